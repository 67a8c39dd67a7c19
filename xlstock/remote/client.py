"""The stock service client: :class:`HttpStockServiceClient`.

One object per (service, shop). Every call has a connect and read timeout and an
overall deadline that bounds the whole answer (all attempts, every byte). Reads are
retried with exponential backoff and jitter; a publish is only ever re-sent with its
same idempotency key, and when its answer is lost the client asks the service for the
outcome instead of guessing. Redirects are never followed. Plain ``http://`` is only
accepted for a loopback host and TLS is always verified. The token goes into the
``Authorization`` header of each request and nowhere else: not in URLs, messages,
logs or ``repr()``.

Versions (``Snapshot.version``, ``PublishOutcome.version``, ``OrderResult.version``)
are always in entity-tag form, with their double quotes (``"v12"``), exactly as the
``ETag`` header carries them; methods taking a version accept it with or without the
quotes.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import random
import re
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeVar, overload
from urllib.parse import quote, urlsplit

import requests
import requests.auth
from requests.structures import CaseInsensitiveDict

from xlstock import __version__
from xlstock.errors import (
    OutcomeUnknown,
    ServiceError,
    ServiceRefused,
    ServiceUnreachable,
    StaleVersion,
    UsageError,
)
from xlstock.i18n import ENGLISH, _, current
from xlstock.model import (
    MAX_SKUS,
    Snapshot,
    StockItem,
    ValueProblem,
    is_loopback_host,
    is_web_address,
    join_web_address,
    normalise_shop_url,
    split_web_address,
    version_problem,
)
from xlstock.planner import PublishLine
from xlstock.remote.connector import (
    KEYRING_SERVICE,
    TOKEN_ENV,
    SessionOwner,
    resolve_token,
    retry_after,
)
from xlstock.remote.transport import (
    Deadline,
    NotJson,
    WatchedAdapter,
    decode_json,
    mapped_errors,
    read_body,
)
from xlstock.stockfile import (
    compact_item,
    compact_item_without_names,
    dumps,
    snapshot_from_document,
)

log = logging.getLogger("xlstock.remote")
_Recorded = TypeVar("_Recorded")

USER_AGENT = f"xlstock/{__version__}"
BYTES_PER_SKU = 512
"""What one SKU may take in an answer, on average: its SKU, name, variant and level in
JSON take about 100 bytes."""
DEFAULT_MAX_BODY = (MAX_SKUS + 1) * BYTES_PER_SKU
"""Largest answer accepted, after inflation (512 MiB): the levels of a whole Excel sheet
of SKUs (:data:`~xlstock.model.MAX_SKUS`), at :data:`BYTES_PER_SKU` each."""
GZIP_THRESHOLD = 64 * 1024
"""Stock files larger than this are uploaded gzip-compressed."""

_RETRY_READ_STATUSES = frozenset({429, 500, 502, 503, 504})
_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")
_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]+")
_ITEMS_IN_MESSAGE = 20
_REASON_IN_BRIEF = 40
"""Characters of a service's reason the Log's Result keeps (``ServiceError.brief``), so
that what to do, after it, fits whole in the Log's limit."""
_OTHER_SHOP = re.compile(r"this API token is for the shop (?P<token_shop>\S+), "
                         r"not (?P<shop>\S+): ")
"""The words of a service from before ``shop_not_registered`` carried ``token_shop`` and
``shop`` (server/app.py ``authorised_shop``): read only when those fields are absent."""


class Change(NamedTuple):
    """One SKU's level before and after a publish (or an order)."""

    sku: str
    before: int
    after: int


class HistoryChange(NamedTuple):
    """One SKU's level before and after a version in the history; ``None`` when the SKU
    did not exist on that side (e.g. added by a catalogue load)."""

    sku: str
    before: int | None
    after: int | None


class OrderLine(NamedTuple):
    """One line of a placed order: the SKU, the units sold, the level left."""

    sku: str
    qty: int
    level: int


@dataclass(frozen=True)
class PublishOutcome:
    """What became of a publish.

    ``version`` is the shop's new version tag (ETag form). ``replayed`` is true when the
    service had already applied this key before this answer (an idempotent replay, or a
    record read back with :meth:`HttpStockServiceClient.publish_outcome`);
    ``recovered`` is true when the result was read back because the publish's own
    answer was lost.

    ``applied`` is false only for a result from
    :meth:`HttpStockServiceClient.publish_outcome` about a publish the service refused
    (e.g. 412 or 422): then ``status`` is the status it got and ``refusal`` is the error
    its answer would have raised
    (:class:`~xlstock.errors.StaleVersion` or :class:`~xlstock.errors.ServiceRefused`).
    """

    key: str
    version: str
    published_at: str
    changes: tuple[Change, ...]
    replayed: bool = False
    applied: bool = True
    status: int = 200
    recovered: bool = False
    refusal: ServiceError | None = field(default=None, compare=False, repr=False)
    undone_at: str | None = None
    """When the publish was undone on the service (its account pages or another
    workbook), from :meth:`HttpStockServiceClient.publish_outcome`."""
    undone_by: str | None = None

    @property
    def levels_after(self) -> dict[str, int]:
        """SKU -> the level the publish left, for each SKU it changed."""
        return {change.sku: change.after for change in self.changes}


@dataclass(frozen=True)
class OrderResult:
    """A storefront sale the service accepted; ``version`` is the shop's new tag."""

    order: str
    version: str
    lines: tuple[OrderLine, ...]
    replayed: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a shop's levels: who made it (publish, order, catalogue) and what
    it changed. ``version`` is in ETag form."""

    version: str
    number: int
    at: str
    source: str
    reference: str
    changes: tuple[HistoryChange, ...]


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: CaseInsensitiveDict[str]
    body: bytes
    what: str


class _Bearer(requests.auth.AuthBase):
    """The token on one request; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "<bearer token>"


def check_service_url(url: str) -> str:
    """The stock service's base URL in canonical form, or :class:`UsageError`.

    Refuses anything but http(s), user names or passwords in the URL, a query or
    fragment, and plain ``http://`` to a host other than this computer.
    """
    text = (url or "").strip()
    try:
        parts, port = split_web_address(text)
    except ValueError as exc:
        raise UsageError(_(
            "Settings, Stock service: the address is not a valid URL; write it like "
            "https://stock.example or http://127.0.0.1:8765"
        )) from exc
    if not is_web_address(parts):
        raise UsageError(_(
            "Settings, Stock service: {address} is not a web address; write it like "
            "https://stock.example or http://127.0.0.1:8765", address=repr(text[:100])
        ))
    host = (parts.hostname or "").lower()
    if parts.username is not None or parts.password is not None:
        raise UsageError(_(
            "Settings, Stock service: the address for {host} holds a user name or password; "
            "remove it (the API token goes in {variable} or the system keyring)", host=host,
            variable=TOKEN_ENV
        ))
    if parts.query or parts.fragment:
        raise UsageError(_(
            "Settings, Stock service: {address} has a '?' or '#' part; write only the "
            "service's base address, e.g. https://stock.example", address=repr(text[:100])
        ))
    if parts.scheme.lower() == "http" and not is_loopback_host(host):
        raise UsageError(_(
            "Settings, Stock service: {address} uses plain http:// to another computer; use "
            "https:// (plain http is accepted only for 127.0.0.1, ::1 and localhost)",
            address=repr(text[:100])
        ))
    return join_web_address(parts, port, keep_default_port=True)


def shop_url_setting(shop_url: str) -> str:
    """The Shop URL setting in canonical form, or :class:`UsageError` naming the setting."""
    try:
        return normalise_shop_url(shop_url)
    except ValueProblem as exc:
        raise UsageError(_("Settings, Shop URL: {problem}", problem=exc)) from exc


def as_etag(version: str) -> str:
    """``version`` in entity-tag form (double-quoted), as If-Match and If-None-Match need."""
    text = (version or "").strip()
    if text.startswith('"') or text.startswith('W/"'):
        tag = text
    else:
        tag = f'"{text}"'
    inner = tag[3:-1] if tag.startswith("W/") else tag[1:-1]
    if len(tag) < 2 or not tag.endswith('"') or not re.fullmatch(r"[\x21\x23-\x7e]*", inner):
        raise ValueError(f"{version!r} is not a version tag the stock service gave")
    return tag


def _tag_text(version: str) -> str | None:
    """A version tag as the ``since`` parameter names it (no quotes, no ``W/``), or
    ``None`` for text that is no tag (then the whole document is asked for)."""
    try:
        tag = as_etag(version)
    except ValueError:
        return None
    return tag[3:-1] if tag.startswith("W/") else tag[1:-1]


def _no_token_message(shop_url: str, service_url: str) -> str:
    """Where to set the token, and where a merchant gets one: the API tokens page of the
    account on the stock service (``xlstock shop add`` prints one for a script)."""
    page = f"{service_url.rstrip('/')}/account/tokens"
    if not _keyring_usable():
        return _(
            "no API token for shop {shop}: create one on the API tokens page of your "
            "account ({page}) and set the environment variable {variable} to it (this "
            "computer has no system keyring to keep it in; `xlstock shop add` also prints "
            "a token when it registers the shop)", shop=shop_url, page=page,
            variable=TOKEN_ENV
        )
    return _(
        "no API token for shop {shop}: create one on the API tokens page of your account "
        "({page}), then set the environment variable {variable}, or store it in the "
        "system keyring with `keyring set {service} {shop}` (`xlstock shop add` also "
        "prints a token when it registers the shop)", shop=shop_url, page=page,
        variable=TOKEN_ENV, service=KEYRING_SERVICE
    )


def _keyring_usable() -> bool:
    """Whether a system keyring backend exists (a headless Linux server often has none,
    and `keyring set` then fails with a traceback)."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:  # noqa: BLE001 - a broken keyring install means "no keyring"
        return False
    try:
        return not isinstance(keyring.get_keyring(), fail.Keyring)
    except Exception:  # noqa: BLE001 - a backend that cannot even be found is none
        return False


class HttpStockServiceClient(SessionOwner):
    """Client of the stock service for one shop, over HTTP (the actions'
    :class:`~xlstock.actions.StockServiceClient`). Use it in a ``with`` block, or call
    :meth:`close`: it holds a ``requests`` session and its connections.

    ``timeout`` is (connect, read) seconds, or one number for both; ``deadline`` bounds
    each whole call; ``read_retries`` is how many times a read is retried after a
    connection error, 429, 500, 502, 503 or 504. ``publish_attempts`` bounds how many
    times one publish (or order) is sent, always with the same key. ``backoff_base``,
    ``backoff_max`` and ``retry_after_cap`` (the longest ``Retry-After`` honoured) and
    ``max_body`` (the largest answer, inflated) rarely need changing.

    A ``session`` given by the caller is used as is, except that the client mounts its
    own transport adapter on it (the adapter enforces the deadline); the caller closes it.
    """

    def __init__(
        self,
        service_url: str,
        shop_url: str,
        token: str | None = None,
        *,
        timeout: float | tuple[float, float] = (5, 30),
        deadline: float = 120.0,
        read_retries: int = 3,
        session: requests.Session | None = None,
        publish_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_cap: float = 30.0,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.service_url = check_service_url(service_url)
        self.shop_url = shop_url_setting(shop_url)
        if token is not None:
            token = token.strip()
            if not _TOKEN_PATTERN.fullmatch(token):
                raise UsageError(_(
                    "the API token for shop {shop} holds spaces or control characters; copy "
                    "it again from the output of `xlstock shop add`", shop=self.shop_url
                ))
        self._token = token or None
        if isinstance(timeout, (int, float)):
            self.connect_timeout = self.read_timeout = float(timeout)
        else:
            self.connect_timeout, self.read_timeout = (float(t) for t in timeout)
        self.deadline = float(deadline)
        self.read_retries = max(0, int(read_retries))
        self.publish_attempts = max(1, int(publish_attempts))
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.retry_after_cap = float(retry_after_cap)
        self.max_body = int(max_body)
        self._past_the_cap = (
            _("more than the {skus:n} SKUs of a whole Excel sheet take at {size} bytes each",
              skus=MAX_SKUS, size=BYTES_PER_SKU) if self.max_body == DEFAULT_MAX_BODY
            else None)  # mapped_errors' own: far larger than any catalogue
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        adapter = WatchedAdapter()
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        host = urlsplit(self.service_url).hostname or ""
        self._proxies: Any = None
        if is_loopback_host(host):
            self._proxies = {"http": None, "https": None, "all": None}

    @classmethod
    def from_settings(
        cls, service_url: str, shop_url: str, **options: Any
    ) -> HttpStockServiceClient:
        """A client whose token comes from ``$XLSTOCK_TOKEN`` or the system keyring
        (see :func:`resolve_token`); :class:`UsageError` saying how to set one if none."""
        shop = shop_url_setting(shop_url)
        token = resolve_token(shop_url)
        if token is None:
            raise UsageError(_no_token_message(shop, service_url))
        return cls(service_url, shop, token, **options)

    def __repr__(self) -> str:
        return (f"HttpStockServiceClient(service_url={self.service_url!r}, "
                f"shop_url={self.shop_url!r})")

    # ----------------------------------------------------------------- public calls

    def health(self) -> dict[str, Any]:
        """``GET /v1/health``: ``{"status": "ok", "version": ...}`` (no token needed)."""
        deadline = Deadline(self.deadline)
        answer = self._read("/v1/health", deadline, auth=False, params={})
        if answer.status != 200:
            raise self._refusal(answer, deadline)
        document = self._json(answer, deadline)
        if not isinstance(document, dict) or document.get("status") != "ok":
            raise ServiceRefused(_(
                "{what} did not answer like the stock service; check the Stock service "
                "setting", what=answer.what
            ))
        return document

    reads_changes = True
    """``read_levels(since=...)`` may answer only what changed since a version."""

    marks_undos = True
    """``publish_lines(undoes=KEY)`` has the service mark publish KEY undone."""

    @overload
    def read_levels(self, *, names: bool = True) -> Snapshot: ...

    @overload
    def read_levels(self, if_none_match: str | None, *, names: bool = True,
                    since: str | None = None) -> Snapshot | None: ...

    def read_levels(self, if_none_match: str | None = None, *, names: bool = True,
                    since: str | None = None) -> Snapshot | None:
        """The shop's live levels (one ``GET /v1/stock``), with the ``ETag`` as
        ``Snapshot.version``.

        With ``if_none_match`` (a version from an earlier read) the service may answer
        304 Not Modified: then this returns ``None``, meaning the levels are still those
        of that version. With ``since`` (a version from an earlier read) the service
        may answer only the products changed since (``Snapshot.since`` says so); a
        service without that version's history, or from before it, answers the whole
        document. ``names=False`` leaves the items' names and variants empty (Preview
        and Publish need levels only: 12 MB less at 100,000 SKUs).
        """
        deadline = Deadline(self.deadline)
        headers = {}
        if if_none_match:
            headers["If-None-Match"] = as_etag(if_none_match)
        asked = _tag_text(since) if since else None
        answer = self._read("/v1/stock", deadline, headers=headers,
                            extra_params={"since": asked} if asked else None)
        if answer.status == 304:
            return None
        if answer.status != 200:
            raise self._refusal(answer, deadline)
        document = self._json(answer, deadline,
                              compact_item if names else compact_item_without_names)
        answer = replace(answer, body=b"")  # decoded: let it go (60 MB at 1,000,000 SKUs)
        etag = answer.headers.get("ETag", "").strip()
        if not etag and isinstance(document, dict) and document.get("version"):
            with self._parsing(answer.what):
                etag = as_etag(str(document["version"]))
        if not etag:
            raise ServiceRefused(_(
                "{what} sent levels without a version tag (ETag), so they cannot be published "
                "safely; check the Stock service setting", what=answer.what
            ))
        snapshot = snapshot_from_document(document, etag=etag, source=answer.what)
        self._check_shop(snapshot.shop, answer.what)
        if snapshot.since is not None and snapshot.since != asked:
            raise ServiceRefused(_(
                "{source} sent the changes since version {since}, not since {asked} as "
                "asked; nothing was changed. Report this to whoever runs the stock service",
                source=answer.what, since=repr(snapshot.since[:40]), asked=repr(str(asked)[:40])))
        return snapshot

    accepts_thresholds = True
    """The stock file carries the workbook's low-stock thresholds (for the service's
    e-mails)."""

    def publish_lines(self, lines: Sequence[PublishLine], key: str, *,
                      thresholds: Mapping[str, int | None] | None = None,
                      undoes: str | None = None) -> PublishOutcome:
        """Publish the plan's ``lines`` as one stock file (protocol 3: a delivery as a
        change in units, a count checked against its ``from``), applied by the service
        whole or not at all, with the ``thresholds`` that changed; an undo names the
        publish it takes back (``undoes``), which the service then marks undone (its
        account pages offer no second undo of it); see :meth:`publish`."""
        body = dumps(self.shop_url, {line.sku: line.target for line in lines},
                     {line.sku: line.planned_from for line in lines},
                     {line.sku: line.add for line in lines if line.add is not None},
                     thresholds, undoes)
        return self.publish(body, key)

    def publish(self, body: bytes, key: str, *, if_match: str | None = None) -> PublishOutcome:
        """Upload the stock file ``body`` (``PUT /v1/stock``) under the idempotency key
        ``key``. Each item in it carries the level it was planned against: the service
        applies the file only if every listed SKU still has that level. ``if_match``, a
        version, adds the stricter condition that the whole shop is still at it.

        Raises :class:`StaleVersion` (412; ``.moved`` maps each moved SKU to its current
        level when the service listed them all, else ``None``; ``.current_version`` holds
        the live tag when sent), :class:`ServiceRefused` (422 with ``.items``, a redirect,
        401/403 ...), :class:`ServiceUnreachable` when nothing reached the service, and
        :class:`OutcomeUnknown` when the request may have been applied but neither its
        answer nor its recorded outcome could be obtained (keep ``key``: the next
        publish asks :meth:`publish_outcome`). When the answer is lost but the service
        can be asked, the recorded outcome is returned (``recovered=True``) or raised.
        The request is only ever re-sent with the same key and body, which the service
        replays instead of applying twice.
        """
        _check_key(key)
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        if if_match is not None:
            headers["If-Match"] = as_etag(if_match)
        payload = body
        if len(body) > GZIP_THRESHOLD:
            payload = gzip.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self._require_token()
        deadline = Deadline(self.deadline)

        def recorded(lost: ServiceError) -> PublishOutcome | None:
            outcome = self._outcome_after_loss(key, lost)
            return None if outcome is None else self._settle(outcome)

        answer = self._send_keyed("PUT", "/v1/stock", deadline, headers, payload,
                                  recorded=recorded,
                                  unknown=lambda lost: self._outcome_unknown(key, lost))
        if isinstance(answer, PublishOutcome):
            return answer
        status = answer.status
        if status == 200:
            try:
                return self._publish_outcome(answer, deadline, key)
            except ServiceRefused as exc:
                outcome = recorded(exc)
                if outcome is not None:
                    return outcome
                raise self._outcome_unknown(key, exc) from exc
        refusal = self._refusal(answer, deadline)
        if status in (500, 502, 503, 504):
            outcome = recorded(refusal)
            if outcome is not None:
                return outcome
            if status in (502, 504):
                raise self._outcome_unknown(key, refusal) from refusal
        raise refusal

    def publish_outcome(self, key: str) -> PublishOutcome | None:
        """What the service recorded for the publish with idempotency key ``key``
        (``GET /v1/publishes/<key>``).

        ``None``: the service never saw that key for this shop (nothing was applied).
        Otherwise a :class:`PublishOutcome` with ``recovered=True``: ``applied=True`` with
        the publish's result, or ``applied=False`` with the recorded ``status`` and the
        ``refusal`` that answer meant. It never raises for a refused publish; it raises
        only when the service itself cannot be asked.
        """
        _check_key(key)
        deadline = Deadline(self.deadline)
        answer = self._read(f"/v1/publishes/{quote(key, safe='')}", deadline)
        if answer.status == 404:
            try:
                document = decode_json(answer.body, answer.headers.get("Content-Type", ""))
            except NotJson:
                document = None
            error = document.get("error") if isinstance(document, dict) else None
            if isinstance(error, dict) and error.get("code") == "not_found":
                return None
        if answer.status != 200:
            raise self._refusal(answer, deadline)
        document = self._json(answer, deadline)
        with self._parsing(answer.what):
            status = int(document["status"])
            applied = document["applied"]
            if not isinstance(applied, bool):
                raise TypeError(applied)
            response = document.get("response")
            if str(document.get("key", key)) != key:
                raise ValueError("the outcome names another key")
        if applied:
            result = self._outcome_from_document(response, {}, answer.what, key)
            return replace(
                result,
                replayed=True,
                status=status,
                recovered=True,
                undone_at=str(document["undone_at"]) if document.get("undone_at") else None,
                undone_by=str(document["undone_by"]) if document.get("undone_by") else None,
            )
        refusal = self._refusal_from(
            status, response, CaseInsensitiveDict(), f"PUT {self.service_url}/v1/stock ({key})"
        )
        return PublishOutcome(
            key=key,
            version="",
            published_at="",
            changes=(),
            replayed=True,
            applied=False,
            status=status,
            recovered=True,
            refusal=refusal,
        )

    def place_order(
        self, lines: Mapping[str, int], reference: str | None = None, *, key: str | None = None
    ) -> OrderResult:
        """A storefront sale (``POST /v1/orders``): every line decremented at once, or
        none. Raises :class:`ServiceRefused` with ``code == "insufficient_stock"`` and
        ``.items`` naming each short SKU (409), or ``code == "invalid_document"`` (422).

        Each order carries an idempotency key (``key``, or a fresh one), so a lost answer
        is re-sent safely with the same key, a bounded number of times.
        """
        key = key or f"order-{uuid.uuid4()}"
        _check_key(key)
        document: dict[str, Any] = {
            "lines": [{"sku": sku, "qty": qty} for sku, qty in lines.items()]
        }
        if reference is not None:
            document["reference"] = reference
        payload = json.dumps(document, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        self._require_token()
        deadline = Deadline(self.deadline)

        def unknown(exc: ServiceError) -> ServiceError:
            return type(exc)(_(
                "{problem} The order may or may not have been recorded: look at the "
                "shop's history before ordering again.", problem=exc.message))

        answer = self._send_keyed("POST", "/v1/orders", deadline, headers, payload,
                                  recorded=_nothing_recorded, unknown=unknown)
        if answer.status not in (200, 201):
            raise self._refusal(answer, deadline)
        body = self._json(answer, deadline)
        with self._parsing(answer.what):
            return OrderResult(
                order=str(body["order"]),
                version=answer.headers.get("ETag", "").strip() or as_etag(body["version"]),
                lines=tuple(
                    OrderLine(str(line["sku"]), _whole(line["qty"]), _whole(line["level"]))
                    for line in body["lines"]
                ),
                replayed=_replayed(answer),
            )

    def history(self, limit: int = 50, before: int | None = None) -> list[HistoryEntry]:
        """The shop's versions, newest first (``GET /v1/history``), at most ``limit``
        (1..500); ``before`` pages back from a version number."""
        params: dict[str, Any] = {"limit": int(limit)}
        if before is not None:
            params["before"] = int(before)
        deadline = Deadline(self.deadline)
        answer = self._read("/v1/history", deadline, extra_params=params)
        if answer.status != 200:
            raise self._refusal(answer, deadline)
        document = self._json(answer, deadline)
        with self._parsing(answer.what):
            return [
                HistoryEntry(
                    version=as_etag(str(entry["version"])),
                    number=_whole(entry["number"]),
                    at=str(entry.get("at", "")),
                    source=str(entry.get("source", "")),
                    reference=str(entry.get("reference") or ""),
                    changes=tuple(
                        HistoryChange(
                            str(change["sku"]),
                            _whole_or_none(change.get("before")),
                            _whole_or_none(change.get("after")),
                        )
                        for change in entry.get("changes") or []
                    ),
                )
                for entry in document["versions"]
            ]

    def storefront(self, if_none_match: str | None = None) -> Snapshot | None:
        """The published stock file as shop pages see it (``GET /v1/storefront``, no
        token): SKUs and live levels only. ``None`` on 304, as :meth:`read_levels`."""
        deadline = Deadline(self.deadline)
        headers = {}
        if if_none_match:
            headers["If-None-Match"] = as_etag(if_none_match)
        answer = self._read("/v1/storefront", deadline, headers=headers, auth=False)
        if answer.status == 304:
            return None
        if answer.status != 200:
            raise self._refusal(answer, deadline)
        document = self._json(answer, deadline)
        with self._parsing(answer.what):
            etag = answer.headers.get("ETag", "").strip() or as_etag(str(document["version"]))
            items = {}
            for raw in document["items"]:
                sku = str(raw["sku"])
                items[sku] = StockItem(sku=sku, qty=_whole(raw["qty"]))
            shop = str(document.get("shop", ""))
        self._check_shop(shop, answer.what)
        return Snapshot(shop=shop, version=etag, items=items)

    # ----------------------------------------------------------------- plumbing

    def _require_token(self) -> None:
        if self._token is None:
            raise UsageError(_no_token_message(self.shop_url, self.service_url))

    def _exchange(
        self,
        method: str,
        path: str,
        deadline: Deadline,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        auth: bool = True,
        extra_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> _Answer:
        """One request and its whole answer, within ``deadline``; any status comes back.
        Transport failures raise mapped errors that say ``may_have_arrived``."""
        if auth:
            self._require_token()
        url = self.service_url + path
        what = f"{method} {url}"
        all_headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
        }
        all_headers.update(headers or {})
        query = dict(params) if params is not None else {"shop": self.shop_url}
        query.update(extra_params or {})
        started = time.monotonic()
        with mapped_errors(what, deadline, max_body=self.max_body, secret=self._token,
                           past_the_cap=self._past_the_cap):
            with deadline.watching():
                remaining = max(deadline.remaining(), 0.001)
                response = self._session.request(
                    method,
                    url,
                    params=query,
                    headers=all_headers,
                    data=data,
                    auth=_Bearer(self._token) if auth and self._token else None,
                    timeout=(
                        min(self.connect_timeout, remaining),
                        min(self.read_timeout, remaining),
                    ),
                    allow_redirects=False,
                    stream=True,
                    verify=True,
                    proxies=self._proxies,
                )
                try:
                    body = read_body(response, deadline, self.max_body)
                finally:
                    response.close()
        log.info(  # -v shows it
            "%s -> %s (%d bytes, %.3f s)",
            what,
            response.status_code,
            len(body),
            time.monotonic() - started,
        )
        return _Answer(response.status_code, response.headers, body, what)

    def _read(
        self,
        path: str,
        deadline: Deadline,
        *,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        extra_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> _Answer:
        """A GET, retried with backoff on connection errors and 429/5xx answers."""
        attempt = 0
        while True:
            try:
                answer = self._exchange(
                    "GET",
                    path,
                    deadline,
                    headers=headers,
                    auth=auth,
                    extra_params=extra_params,
                    params=params,
                )
            except ServiceUnreachable:
                if not self._pause(deadline, attempt, None, limit=self.read_retries):
                    raise
                attempt += 1
                continue
            if answer.status in _RETRY_READ_STATUSES and self._pause(
                deadline, attempt, _retry_after(answer), limit=self.read_retries
            ):
                attempt += 1
                continue
            return answer

    def _pause(
        self, deadline: Deadline, attempt: int, retry_after: float | None, *, limit: int
    ) -> bool:
        """Sleep before retry number ``attempt + 1`` of at most ``limit``; False when no
        retry is left or the wait would pass the deadline. A ``Retry-After`` is honoured
        up to ``retry_after_cap``; otherwise exponential backoff with jitter."""
        if attempt >= limit:
            return False
        if retry_after is not None:
            delay = min(max(retry_after, 0.0), self.retry_after_cap)
        else:
            ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if delay >= deadline.remaining():
            return False
        time.sleep(delay)
        return True

    def _send_keyed(
        self, method: str, path: str, deadline: Deadline, headers: Mapping[str, str],
        payload: bytes, *, recorded: Callable[[ServiceError], _Recorded | None],
        unknown: Callable[[ServiceError], Exception],
    ) -> _Answer | _Recorded:
        """Send a request under an idempotency key (in ``headers``) until it has an
        answer that is not "busy": the same key and body again after a lost answer or a
        429/502/503/504, while sends and time are left (the service replays a key it has
        seen). An answer lost after the request may have arrived is first looked up
        (``recorded``: what the service recorded for the key, returned as is, or
        ``None``); when no send is left it becomes ``unknown``'s error."""
        sends = 0
        while True:
            sends += 1
            try:
                answer = self._exchange(method, path, deadline, headers=headers, data=payload)
            except ServiceError as exc:
                arrived = exc.may_have_arrived
                if arrived is None:
                    raise
                if arrived:
                    outcome = recorded(exc)
                    if outcome is not None:
                        return outcome
                if self._resend_pause(deadline, sends, None):
                    continue
                if arrived:
                    raise unknown(exc) from exc
                raise
            if answer.status in (429, 502, 503, 504) and self._resend_pause(
                deadline, sends, _retry_after(answer)
            ):
                continue
            return answer

    def _resend_pause(self, deadline: Deadline, sends: int, retry_after: float | None) -> bool:
        """Wait before sending a publish or order again (same key), if allowed."""
        return self._pause(deadline, sends - 1, retry_after, limit=self.publish_attempts - 1)

    def _json(self, answer: _Answer, deadline: Deadline,
              object_hook: Callable[[dict[str, Any]], Any] | None = None) -> Any:
        with mapped_errors(answer.what, deadline, max_body=self.max_body, secret=self._token,
                           past_the_cap=self._past_the_cap):
            return decode_json(answer.body, answer.headers.get("Content-Type", ""),
                               object_hook)

    @contextlib.contextmanager
    def _parsing(self, what: str) -> Iterator[None]:
        """An answer that is JSON but not the shape this xlstock expects."""
        try:
            yield
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ServiceRefused(_(
                "{what} sent an answer this xlstock does not understand ({detail}); upgrade "
                "xlstock, or check the Stock service setting", what=what,
                detail=type(exc).__name__ + ": " + str(exc)[:80]
            )) from exc

    def _check_shop(self, shop: str, what: str) -> None:
        try:
            same = normalise_shop_url(shop) == self.shop_url
        except ValueProblem:
            same = False
        if not same:
            raise ServiceRefused(_(
                "{what} answered for shop {other}, not {shop}; check the Stock service and "
                "Shop URL settings", what=what, other=repr(shop[:100]), shop=self.shop_url
            ))

    def _publish_outcome(self, answer: _Answer, deadline: Deadline, key: str) -> PublishOutcome:
        document = self._json(answer, deadline)
        result = self._outcome_from_document(document, answer.headers, answer.what, key)
        return replace(result, replayed=True) if _replayed(answer) else result

    def _outcome_from_document(
        self, document: Any, headers: Mapping[str, str], what: str, key: str
    ) -> PublishOutcome:
        with self._parsing(what):
            if str(document["key"]) != key:
                raise ValueError(f"the answer is for key {str(document['key'])[:40]!r}")
            version = headers.get("ETag", "").strip() or as_etag(str(document["version"]))
            problem = version_problem(version)
            if problem:
                raise ValueError(f"version tag {problem}")
            return PublishOutcome(
                key=key,
                version=version,
                published_at=str(document.get("published_at", "")),
                changes=_changes(document.get("changes") or []),
            )

    def _outcome_after_loss(self, key: str, cause: ServiceError) -> PublishOutcome | None:
        """Ask the service what became of publish ``key`` after its answer was lost;
        :class:`OutcomeUnknown` when the service cannot be asked either."""
        log.debug("publish %s: answer lost (%s); asking for its outcome", key, cause.message)
        try:
            return self.publish_outcome(key)
        except (ServiceError, UsageError) as exc:
            raise self._outcome_unknown(key, exc) from cause

    def _outcome_unknown(self, key: str, cause: Exception) -> OutcomeUnknown:
        return OutcomeUnknown(
            _("the answer to publish {key} (PUT {url}) never arrived and the outcome could "
              "not be confirmed ({cause}). The outcome is unknown: the next `xlstock publish` "
              "will find out; nothing will be counted twice.", key=key,
              url=self.service_url + "/v1/stock", cause=cause),
            key=key,
            code="outcome_unknown",
        )

    @staticmethod
    def _settle(outcome: PublishOutcome) -> PublishOutcome:
        if outcome.applied:
            return outcome
        assert outcome.refusal is not None
        raise outcome.refusal

    def _refusal(self, answer: _Answer, deadline: Deadline) -> ServiceError:
        """The error an unsuccessful answer means (never raised here)."""
        if 300 <= answer.status < 400:
            location = answer.headers.get("Location", "").strip() or _("(no Location given)")
            return ServiceRefused(
                _("{what} answered with a redirect ({status}) to {location}; xlstock never "
                  "follows redirects: put the right address in the Stock service setting",
                  what=answer.what, status=answer.status, location=location[:200]),
                status=answer.status,
                code="redirect",
            )
        content_type = answer.headers.get("Content-Type", "")
        try:
            document = decode_json(answer.body, content_type)
        except NotJson as exc:
            if exc.content_type.startswith("text/html"):
                return ServiceRefused(
                    _("{what} answered a web page ({status}), not the stock service; check "
                      "the Stock service setting", what=answer.what, status=answer.status),
                    status=answer.status,
                )
            document = None
        return self._refusal_from(answer.status, document, answer.headers, answer.what)

    def _refusal_from(
        self, status: int, document: Any, headers: Mapping[str, str], what: str
    ) -> ServiceError:
        error = document.get("error") if isinstance(document, dict) else None
        code, message, items = _error_fields(error)
        other = _other_shop(status, code, message, error)
        full = self._refusal_text(status, code, message, items, what, other)
        refusal: ServiceError
        if status == 412:
            refusal = StaleVersion(
                full, status=status, code=code, items=items,
                current_version=headers.get("ETag", "").strip() or None,
                moved=_moved_levels(code, items, error if isinstance(error, dict) else {}),
            )
        else:
            refusal = ServiceRefused(full, status=status, code=code, items=items)
        if len(message) > _REASON_IN_BRIEF:  # the Log keeps the fix whole, not its words
            short = textwrap.shorten(message, _REASON_IN_BRIEF, placeholder=" \u2026")
            # the hint reads the words shown: a page the cut words no longer name is named
            refusal.brief = self._refusal_text(status, code, short, [], what, other)
        return refusal

    def _refusal_text(self, status: int, code: str | None, message: str,
                      items: list[dict[str, Any]], what: str,
                      other: Mapping[str, str] | None = None) -> str:
        """The merchant's message for a refusal: what was refused and why, what to do, then
        the SKUs the service listed and its own words did not already name (a few at most),
        never with the token in it."""
        answered = f"{status} {code}" if code else str(status)
        hint = self._hint(status, code, message)
        if other:  # said in the merchant's language, naming the setting to correct
            text = _("{what} was refused ({status}): the API token is for the shop "
                     "{token_shop}, not {shop}. If {shop} has a typing slip, correct Shop "
                     "URL in sheet Settings; else use a token of {shop}", what=what,
                     status=answered, token_shop=other["token_shop"], shop=other["shop"])
        elif message:  # the service's own words, quoted in the merchant's language's way
            text = _("{what} was refused ({status}): {reason}. {hint}", what=what,
                     status=answered, reason=message.rstrip("."), hint=hint)
        else:
            text = _("{what} was refused ({status}). {hint}", what=what, status=answered,
                     hint=hint)
        lines = [str(text)]
        unnamed = [item for item in items if not _named_in(message, item)]
        for item in unnamed[:_ITEMS_IN_MESSAGE]:
            lines.append(f"  SKU {str(item.get('sku', '?'))[:100]!r}: {item.get('problem', '')}")
        if len(unnamed) > _ITEMS_IN_MESSAGE:
            lines.append("  " + _("... and {count:n} more",
                                  count=len(unnamed) - _ITEMS_IN_MESSAGE))
        full = "\n".join(lines)
        if self._token:
            full = full.replace(self._token, "***")
        return full

    def _hint(self, status: int, code: str | None, message: str) -> str:
        if status == 401:
            return self._token_hint(code, message)
        if status == 409 and code == "already_undone":
            return _("Nothing was sent: that publish was undone already (xlstock history "
                     "lists the publishes; the History page of the account says by what)")
        if status == 403 and code == "stock_updates_off":
            if "/account/services" in message and current() == ENGLISH:
                return _("Nothing was changed")  # said in the service's (English) words
            return _("Switch on 'Automatic stock level update' on the Services page ({page}); "
                     "nothing was changed", page=self.service_url + "/account/services")
        if status == 403:
            return _("Register the shop URL on the Account profile page ({page}), or on the "
                     "service's computer: xlstock shop add {shop} --db FILE",
                     page=self.service_url + "/account/profile", shop=self.shop_url)
        hints = {
            404: _("Check the Stock service setting (the service's base address) and Shop URL"),
            409: _("Nothing was sold; the shop has too few in stock"),
            412: _("The live levels changed since they were read; sync again (nothing was "
                   "changed)"),
            413: _("The stock file is larger than the service accepts"),
            422: _("Nothing was changed; fix what is listed and try again"),
            429: _("The stock service is busy; try again in a minute"),
        }
        if status in hints:
            return hints[status]
        if status >= 500:
            return _("The stock service failed; try again later, or look at the service's log")
        return _("Upgrade xlstock, or check the Stock service setting")

    def _token_hint(self, code: str | None, message: str) -> str:
        """What to do about a refused API token (401)."""
        page = f"{self.service_url}/account/tokens"
        # the service's message gives the page, in English: said again in any other
        named = "/account/tokens" in message and current() == ENGLISH
        keyring = _keyring_usable()
        where = (_("set {variable}", variable=TOKEN_ENV) if not keyring else
                 _("set {variable}, or run `keyring set {service} {shop}`", variable=TOKEN_ENV,
                   service=KEYRING_SERVICE, shop=self.shop_url))
        if code == "token_revoked":
            if named:
                return _("Give xlstock the new token: {where}", where=where)
            return _("Create a new token on the API tokens page ({page}). Give xlstock the new "
                     "token: {where}", page=page, where=where)
        if not keyring:
            if named:
                return _("Check the API token in {variable}", variable=TOKEN_ENV)
            return _("Check the API token in {variable} (the API tokens page {page} creates "
                     "one; so does `xlstock shop add`)", variable=TOKEN_ENV, page=page)
        if named:
            return _("Check the API token: {where}", where=where)
        return _("Check the API token: {where} (the API tokens page {page} creates one; so "
                 "does `xlstock shop add`)", where=where, page=page)


def _nothing_recorded(lost: ServiceError) -> None:
    """An order's outcome cannot be asked for: a lost answer is sent again."""
    return None


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
        raise ValueError("an idempotency key is 1 to 200 printable ASCII characters, no spaces")


def _error_fields(error: Any) -> tuple[str | None, str, list[dict[str, Any]]]:
    """The code, message and listed items of a refusal's ``error`` object; whatever is
    missing or of the wrong shape is left out (None, "" and [])."""
    code: str | None = None
    message = ""
    items: list[dict[str, Any]] = []
    if isinstance(error, dict):
        code = str(error.get("code") or "") or None
        message = str(error.get("message") or "")
        raw_items = error.get("items")
        if isinstance(raw_items, list):
            items = [item for item in raw_items if isinstance(item, dict)]
    return code, message, items


def _other_shop(status: int, code: str | None, message: str,
                error: Any) -> dict[str, str] | None:
    """``{"token_shop", "shop"}`` of a refusal of a token given with another shop's URL
    (403 ``shop_not_registered``), to say it in the merchant's language; ``None`` for any
    other refusal. The error's fields first (the message is for people and may change);
    a service from before them is read from its words."""
    if status != 403:
        return None
    if code == "shop_not_registered" and isinstance(error, dict):
        token_shop, shop = error.get("token_shop"), error.get("shop")
        if isinstance(token_shop, str) and isinstance(shop, str) and token_shop and shop:
            return {"token_shop": token_shop[:200], "shop": shop[:200]}
    matched = _OTHER_SHOP.match(message)
    return matched.groupdict() if matched else None


def _named_in(message: str, item: Mapping[str, Any]) -> bool:
    """Whether the service's message already names this item's SKU and problem (so that
    listing it again under the message would only repeat it)."""
    sku, problem = str(item.get("sku", "")), str(item.get("problem", ""))
    return f"{sku}: {problem}" in message or f"{sku!r}: {problem}" in message


def _moved_levels(
    code: str | None, items: list[dict[str, Any]], error: Mapping[str, Any]
) -> dict[str, int] | None:
    """SKU -> current level of every item a 412 ``levels_moved`` names, or ``None``
    when the answer does not name them all (then the levels must be read again)."""
    if code != "levels_moved" or not items:
        return None
    total = error.get("items_total")
    if isinstance(total, int) and not isinstance(total, bool) and total > len(items):
        return None
    moved: dict[str, int] = {}
    for item in items:
        sku, current = item.get("sku"), item.get("current")
        if not isinstance(sku, str) or isinstance(current, bool) or not isinstance(current, int):
            return None
        moved[sku] = current
    return moved


def _replayed(answer: _Answer) -> bool:
    return answer.headers.get("Idempotent-Replayed", "").strip().lower() == "true"


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not a whole number")
    return value


def _whole_or_none(value: Any) -> int | None:
    return None if value is None else _whole(value)


def _changes(raw: Any) -> tuple[Change, ...]:
    return tuple(
        Change(str(change["sku"]), _whole(change["before"]), _whole(change["after"]))
        for change in raw
    )


def _retry_after(answer: _Answer) -> float | None:
    """Seconds to wait from a busy answer's ``Retry-After`` (429 and 503 only)."""
    return retry_after(answer.headers) if answer.status in (429, 503) else None
