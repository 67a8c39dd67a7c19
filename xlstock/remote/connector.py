"""What the connectors share (the stock service's in ``remote.client``, the platforms' in
``shops/``): the client's lifetime, the API token's look-up, the version tag of a
platform that has none, and the pause before a request is sent again."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from xlstock.i18n import _
from xlstock.model import ValueProblem, normalise_shop_url
from xlstock.remote.transport import WatchedAdapter

log = logging.getLogger("xlstock.remote")

TOKEN_ENV = "XLSTOCK_TOKEN"
KEYRING_SERVICE = "xlstock"


class SessionOwner:
    """A connector over a ``requests`` session it may own: closed with it (when it made
    it), usable in a ``with`` block."""

    _session: requests.Session
    _owns_session: bool

    progress: Any = None
    """Where a long read or publish says how far it is (the CLI's progress line): a
    callable taking a message, set by the caller; at most one message a second."""
    _said_at = -1.0

    def _say(self, message: str) -> None:
        now = time.monotonic()
        if self.progress is not None and now - self._said_at >= 1.0:
            self._said_at = now
            self.progress(message)

    _sleep: Callable[[float], None]
    """How a connector that backs off waits (each sets it: its tests give another)."""

    def _back_off(self, attempt: int, retry_after: float | None, what: str,
                  status: int | None = None) -> None:
        """Wait before try ``attempt + 2`` of a request (:func:`backoff_delay`), said
        whatever was said a moment ago: a merchant looking at a still screen for a minute
        must know xlstock is waiting, and why (``status`` ``None``: the connection was
        lost)."""
        seconds = backoff_delay(attempt, retry_after)
        if self.progress is not None and seconds >= 1.0:
            self._said_at = time.monotonic()
            if status is None:
                self.progress(_("{what}: connection lost; trying again in {seconds:n} s",
                                what=what, seconds=round(seconds)))
            else:
                self.progress(_("{what} answered {status} (busy); trying again in "
                                "{seconds:n} s", what=what, status=status,
                                seconds=round(seconds)))
        self._sleep(seconds)

    def _use_session(self, session: requests.Session | None) -> None:
        """Work over ``session``, or over one of its own (closed with it) whose every
        request the deadline watches (:class:`~xlstock.remote.transport.WatchedAdapter`)."""
        self._owns_session = session is None
        self._session = session or requests.Session()
        if session is None:
            adapter = WatchedAdapter()
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def settle_environment(session: requests.Session, url: str) -> dict[str, Any]:
    """Read once what ``requests`` would look up in the environment on every request
    (proxies for ``url``, a CA bundle), and stop it looking: a sync of 100,000 products
    is 1,000 requests, and each look-up costs a fraction of a millisecond. Returns the
    ``proxies`` and ``verify`` to pass to each request."""
    proxies = requests.utils.get_environ_proxies(url) if session.trust_env else {}
    verify: Any = True
    if session.trust_env:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") \
            or True
    session.trust_env = False
    return {"proxies": proxies, "verify": verify}


def named_skus(label: str, skus: Sequence[str]) -> str:
    """A read's notice about SKUs it left out or moved: ``label``, a message marked with
    ``N_`` whose ``{count:n}`` is how many and ``{skus}`` the first ten of them."""
    return _(label, count=len(skus), skus=", ".join(skus[:10])
             + (" ..." if len(skus) > 10 else ""))


def levels_version(platform: str, levels: Mapping[str, int]) -> str:
    """xlstock's version tag for a platform's levels, which have none of their own: a
    hash of them (the same levels, the same tag), ``platform:`` first."""
    digest = hashlib.sha256()
    for sku in sorted(levels):
        digest.update(f"{sku}\t{levels[sku]}\n".encode())
    return f"{platform}:{digest.hexdigest()[:20]}"


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before try ``attempt + 2``: the server's ``Retry-After`` (at most
    a minute), else exponential backoff with jitter (0.5 s doubling, at most 30 s)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), 60.0)
    ceiling = min(30.0, 0.5 * 2 ** attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (in seconds, or an HTTP date), if
    it holds one; never negative."""
    value = str(headers.get("Retry-After") or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - time.time())
    return max(0.0, seconds) if math.isfinite(seconds) else None


def resolve_token(shop_url: str) -> str | None:
    """The API token for ``shop_url``: ``$XLSTOCK_TOKEN``, else the system keyring
    (service ``xlstock``, user = the normalised shop URL, then the URL as written).
    A missing or failing keyring counts as no token."""
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    users = [shop_url.strip()]
    with contextlib.suppress(ValueProblem):
        users.insert(0, normalise_shop_url(shop_url))
    try:
        import keyring
    except Exception:  # noqa: BLE001 - a broken keyring install means "no keyring"
        return None
    for user in dict.fromkeys(users):
        try:
            secret = keyring.get_password(KEYRING_SERVICE, user)
        except Exception:  # noqa: BLE001 - any backend failure means "no token there"
            log.debug("keyring lookup failed for %s", user, exc_info=True)
            continue
        if secret and secret.strip():
            return secret.strip()
    return None
