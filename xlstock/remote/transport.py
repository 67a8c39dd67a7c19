"""The HTTP plumbing under :class:`~xlstock.remote.client.HttpStockServiceClient`.

Three things live here, apart from the protocol logic:

* :class:`Deadline`, an overall time limit for one call. A watchdog timer shuts the
  call's sockets down when it passes, so that a server dripping one byte a second (in
  the headers or in the body) is cut off at the deadline, not only by the per-read
  timeout that each byte resets.
* :class:`WatchedAdapter`, a ``requests`` transport adapter whose urllib3 connections
  register their sockets with the current deadline.
* :func:`mapped_errors`, the one place where requests, urllib3, socket, zlib and JSON
  exceptions become the :mod:`xlstock.errors` tree.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from xlstock.errors import ServiceError, ServiceRefused, ServiceUnreachable
from xlstock.i18n import _

_LOCAL = threading.local()
_CHUNK = 64 * 1024


class DeadlineExceeded(Exception):
    """Internal: the overall deadline of a call passed (mapped by :func:`mapped_errors`)."""


class BodyTooLarge(Exception):
    """Internal: an answer grew past the size cap (mapped by :func:`mapped_errors`)."""


class NotJson(Exception):
    """Internal: an answer that should be JSON is not (mapped by :func:`mapped_errors`)."""

    def __init__(self, content_type: str, cause: Exception | None = None) -> None:
        super().__init__(content_type)
        self.content_type = content_type
        self.cause = cause


class Deadline:
    """The moment a whole call (all its attempts, every byte of every answer) must end.

    While :meth:`watching` is active, sockets that urllib3 connects or reuses in this
    thread are registered; when the deadline passes a timer thread shuts them down, which
    wakes any blocked read. ``expired`` is set before the sockets are shut, so a reader
    that sees an early end of data can tell a cut from a genuine end.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> None:
        if self.expired or self.remaining() <= 0:
            self.expired = True
            raise DeadlineExceeded()

    def register(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.expired:
                _shut(sock)
            elif sock not in self._sockets:
                self._sockets.append(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    @contextlib.contextmanager
    def watching(self) -> Iterator[Deadline]:
        """Arm the watchdog for the code in the ``with`` block (one exchange)."""
        self.check()
        previous = getattr(_LOCAL, "deadline", None)
        _LOCAL.deadline = self
        timer = threading.Timer(max(self.remaining(), 0.0), self._fire)
        timer.daemon = True
        timer.start()
        try:
            yield self
        finally:
            timer.cancel()
            _LOCAL.deadline = previous
            with self._lock:
                self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _register_current(sock: socket.socket | None) -> None:
    deadline = getattr(_LOCAL, "deadline", None)
    if deadline is not None:
        deadline.register(sock)


class _Watched:
    """Mixin for urllib3 connections: hand the socket to the call's deadline watchdog
    at every step, so that a stalled peer is cut off when the deadline passes."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _register_current(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register_current(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> Any:
        _register_current(self.sock)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections obey the current :class:`Deadline`.

    urllib3 never retries on its own here (``max_retries=0``): the client decides what
    may be retried, because a publish must never be re-sent blindly.
    """

    def __init__(self) -> None:
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


def read_body(response: requests.Response, deadline: Deadline, max_body: int) -> bytes:
    """The whole body of a streamed ``response``, inflated, at most ``max_body`` bytes.

    Reads with ``read1`` so that the clock is checked after every arrival of data, and
    inflates gzip/deflate itself with a bounded output size, so a small compressed body
    cannot expand past the cap (a zip bomb) before it is refused.
    """
    decoder = _decoder_for(response, max_body)
    parts = io.BytesIO()  # grown in place and handed over whole: a join of the pieces
    size = 0              # held the body twice (120 MB at 1,000,000 SKUs)
    raw = response.raw
    while True:
        deadline.check()
        chunk = raw.read1(_CHUNK, decode_content=False)
        if not chunk:
            break
        if decoder is None:
            size += len(chunk)
            if size > max_body:
                raise BodyTooLarge()
            parts.write(chunk)
            continue
        size = _inflate(decoder, chunk, size, max_body, parts)
    deadline.check()
    if decoder is not None:
        _finish_inflating(decoder, size, max_body, parts)
    return parts.getvalue()


def _decoder_for(response: requests.Response, max_body: int) -> Any:
    """The zlib decoder the answer's ``Content-Encoding`` asks for (None when it is plain).

    Refuses an encoding xlstock cannot inflate (:class:`NotJson`), and a plain answer
    whose declared ``Content-Length`` is already past the cap (:class:`BodyTooLarge`),
    before a byte of the body is read.
    """
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    decoder: Any = None
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    elif encoding not in ("", "identity"):
        raise NotJson(f"content encoded as {encoding!r}")
    if not decoder:
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > max_body:
            raise BodyTooLarge()
    return decoder


def _inflate(decoder: Any, chunk: bytes, size: int, max_body: int, parts: io.BytesIO) -> int:
    """Inflate one compressed ``chunk`` onto ``parts``, never more than the cap allows;
    the new total size (:class:`BodyTooLarge` as soon as it passes ``max_body``)."""
    pending = chunk
    while pending:
        out = decoder.decompress(pending, max_body - size + 1)
        size += len(out)
        if size > max_body:
            raise BodyTooLarge()
        parts.write(out)
        pending = decoder.unconsumed_tail
    return size


def _finish_inflating(decoder: Any, size: int, max_body: int, parts: io.BytesIO) -> None:
    """Flush the decoder's tail onto ``parts``; a compressed stream that stops before its
    end marker is damaged (:class:`zlib.error`), unless the body was empty."""
    tail = decoder.flush()
    size += len(tail)
    if size > max_body:
        raise BodyTooLarge()
    parts.write(tail)
    if not decoder.eof and size:
        raise zlib.error("compressed answer ends early")


def decode_json(body: bytes, content_type: str,
                object_hook: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """The JSON value of an answer body (each object passed through ``object_hook``
    when given, as :func:`json.loads` does); :class:`NotJson` when it is anything else."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise NotJson(kind)
    try:
        return json.loads(body, object_hook=object_hook)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotJson(kind or "an unlabelled body", exc) from exc


def _connect_failed(exc: BaseException) -> bool:
    """True when ``exc`` shows the request never left this machine (no connection)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, urllib3.exceptions.ConnectTimeoutError):
            return True
        if isinstance(item, urllib3.exceptions.MaxRetryError) and item.reason is not None:
            stack.append(item.reason)
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
        for linked in (item.__cause__, item.__context__):
            if linked is not None:
                stack.append(linked)
    return False


_CONNECT_TIMEOUTS: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectTimeout,
    urllib3.exceptions.ConnectTimeoutError,
)
_READ_TIMEOUTS: tuple[type[Exception], ...] = (
    requests.exceptions.ReadTimeout,
    urllib3.exceptions.ReadTimeoutError,
    TimeoutError,
)
_BROKEN: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)
_LATE: tuple[type[Exception], ...] = (*_READ_TIMEOUTS, zlib.error, *_BROKEN)
"""Failures that, once the deadline has passed, are the deadline's doing."""
_FOREIGN: tuple[type[Exception], ...] = (
    DeadlineExceeded,
    BodyTooLarge,
    NotJson,
    *_CONNECT_TIMEOUTS,
    requests.exceptions.SSLError,
    *_LATE,
    requests.exceptions.RequestException,
)
"""Every exception :func:`mapped_errors` translates; anything else passes through."""


@contextlib.contextmanager
def mapped_errors(
    what: str, deadline: Deadline, *, max_body: int, secret: str | None = None,
    past_the_cap: str | None = None,
) -> Iterator[None]:
    """Translate every foreign exception raised in the block into the error tree.

    ``what`` names the request for messages, e.g. ``"GET http://127.0.0.1:8765/v1/stock"``
    (never with the token). Each message says what to do; a failure on the way says
    whether the request may have reached the service (``may_have_arrived``).
    ``past_the_cap`` says why no right answer is larger than ``max_body`` (by default:
    far larger than any catalogue).
    """
    try:
        yield
    except ServiceError:
        raise
    except _FOREIGN as exc:
        raise _translated(exc, what, deadline, max_body, secret, past_the_cap) from exc


def _translated(exc: BaseException, what: str, deadline: Deadline, max_body: int,
                secret: str | None, past_the_cap: str | None = None) -> ServiceError:
    """The :class:`ServiceError` for one foreign exception, the first kind that matches
    winning (a connect timeout is also a connection error, an SSL error too)."""
    if isinstance(exc, DeadlineExceeded):
        return mapped_deadline(what, deadline)
    if isinstance(exc, BodyTooLarge):
        return ServiceRefused(
            _("{what} sent an answer larger than {size:n} MiB, {why}; it is not the stock "
              "service: check the Stock service setting", what=what,
              size=max_body // (1024 * 1024),
              why=past_the_cap or _("far larger than any catalogue")),
            may_have_arrived=True,
        )
    if isinstance(exc, NotJson):
        return _not_json(what, exc)
    if isinstance(exc, _CONNECT_TIMEOUTS):
        return _connect_timeout(what, deadline)
    if isinstance(exc, requests.exceptions.SSLError):
        return ServiceUnreachable(
            _("{what}: the TLS certificate could not be verified ({detail}); xlstock always "
              "verifies TLS: fix the service's certificate, or check the Stock service setting",
              what=what, detail=_brief(exc, secret)),
            may_have_arrived=False,
        )
    if isinstance(exc, _LATE):
        return _late_failure(exc, what, deadline, secret)
    return ServiceUnreachable(
        _("{what} failed ({detail}); check the Stock service setting", what=what,
          detail=_brief(exc, secret)),
        may_have_arrived=False,
    )


def _not_json(what: str, exc: NotJson) -> ServiceRefused:
    """The refusal for an answer that is not JSON: a web page gets its own words."""
    if exc.content_type.startswith("text/html"):
        return ServiceRefused(_("{what} answered a web page, not the stock service; check "
                                "the Stock service setting", what=what))
    return ServiceRefused(_("{what} answered {kind}, not the stock service's JSON; check "
                            "the Stock service setting", what=what,
                            kind=exc.content_type))


def _connect_timeout(what: str, deadline: Deadline) -> ServiceUnreachable:
    """No connection in time: the whole call's deadline, or one connect attempt's."""
    if deadline.expired:
        return ServiceUnreachable(
            _("{what}: no connection within the deadline of {seconds:n} s; is the stock "
              "service running (`xlstock serve`)? check the Stock service setting",
              what=what, seconds=deadline.seconds),
            may_have_arrived=False,
        )
    return ServiceUnreachable(
        _("{what}: could not connect in time; is the stock service running "
          "(`xlstock serve`)? check the Stock service setting and the network", what=what),
        may_have_arrived=False,
    )


def _late_failure(exc: BaseException, what: str, deadline: Deadline,
                  secret: str | None) -> ServiceUnreachable:
    """A read timeout, a damaged compressed answer or a broken connection: the deadline's
    message once it has passed, else what broke, and whether the request may have arrived
    (only a connection never made says it did not)."""
    if deadline.expired:
        return mapped_deadline(what, deadline)
    if isinstance(exc, _READ_TIMEOUTS):
        return ServiceUnreachable(
            _("{what}: the stock service stopped answering (read timeout); try again later, "
              "and check that `xlstock serve` is healthy", what=what),
            may_have_arrived=True,
        )
    if isinstance(exc, zlib.error):
        return ServiceUnreachable(
            _("{what} sent a damaged compressed answer ({detail}); try again, and check the "
              "Stock service setting", what=what, detail=_brief(exc, secret)),
            may_have_arrived=True,
        )
    if _connect_failed(exc):
        return ServiceUnreachable(
            _("{what}: could not connect; is the stock service running (`xlstock "
              "serve`)? check the Stock service setting", what=what),
            may_have_arrived=False,
        )
    return ServiceUnreachable(
        _("{what}: the connection broke before the whole answer arrived ({detail}); try "
          "again, and check the Stock service setting", what=what,
          detail=_brief(exc, secret)),
        may_have_arrived=True,
    )


def mapped_deadline(what: str, deadline: Deadline) -> ServiceUnreachable:
    return ServiceUnreachable(
        _("{what} did not finish answering within {seconds:n} s; the stock service is too "
          "slow or stuck: try again later, and check the Stock service setting", what=what,
          seconds=deadline.seconds),
        may_have_arrived=True,
    )


def _brief(exc: BaseException, secret: str | None) -> str:
    """A short, token-free description of a low-level error for a message."""
    inner: BaseException = exc
    while True:
        reason = getattr(inner, "reason", None)
        if isinstance(reason, BaseException):
            inner = reason
            continue
        args = getattr(inner, "args", ())
        if args and isinstance(args[0], BaseException) and args[0] is not inner:
            inner = args[0]
            continue
        break
    text = str(inner) or type(inner).__name__
    if secret:
        text = text.replace(secret, "***")
    return text[:200]
