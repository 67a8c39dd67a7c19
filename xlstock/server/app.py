"""The stock service's HTTP API (protocol 3 under ``/v1``, docs/protocol.md) as a Flask
application.

HTTP only: headers, bodies, status codes. What a publish or an order does, and the
answer it gets, is decided by :class:`xlstock.server.storage.StockStore`. Every answer
is JSON, errors included (``{"error": {"code", "message", "items"?}}``), so that no
shop-supplied text is ever rendered as HTML.

Built as Flask's tutorial builds an application: the routes on a module-level blueprint
(:data:`api`; the account pages on theirs, :mod:`xlstock.server.account.pages`), a short
:func:`create_app` putting the service's state in ``app.extensions["xlstock"]``
(:class:`Service`), one ``after_request`` for the security headers of every answer.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import unquote_plus

from xlstock import __version__
from xlstock.errors import MissingExtra
from xlstock.model import MAX_SKUS, ValueProblem, normalise_shop_url
from xlstock.server.accounts import AccountStore, revoked_message, updates_off_message
from xlstock.server.documents import error_body
from xlstock.server.storage import (
    HISTORY_LIMIT_MAX,
    StockStore,
    UnknownShop,
    WriteAnswer,
    undo_options,
)

try:
    from flask import Blueprint, Flask, Response, current_app, request
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import PathConverter
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingExtra("server", "the stock service (Flask and waitress)") from exc

DEFAULT_MAX_BODY = (MAX_SKUS + 1) * 256
"""Request bodies are capped here (256 MiB, after inflation): a publish of every SKU a
whole Excel sheet holds, at up to 256 bytes a line (a line with a SKU of 100 characters
takes about 160)."""
GZIP_MIN_SIZE = 1024
"""Answers smaller than this are sent as they are: gzip would save nothing worth a CPU."""
JSON_TYPE = "application/json"
KEY_PATTERN = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?")

log = logging.getLogger("xlstock.server")
_SHOP_IN_QUERY = re.compile(r"(?:^|&)shop=([^&]*)")

PROTOCOL_VERSION = 3

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "shop_not_registered", 404: "not_found",
    405: "method_not_allowed", 409: "insufficient_stock", 412: "stale_version",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_document",
    429: "quota_exceeded", 431: "headers_too_large", 500: "internal_error",
}
OTHER_CODES = ("idempotency_key_required", "idempotency_key_reused", "levels_moved",
               "unsupported_format_version", "already_undone", "below_zero", "not_a_publish",
               "nothing_to_undo")
"""Error codes beyond the one per status in ``_CODES``."""


GZIP_LEVEL = 1
"""zlib level of gzip answers: 1, as nginx's default, deflates a 100,000-SKU stock
document (8 MB) four times as fast as level 6, for a third more bytes."""


class DocumentCache:
    """The last stock and storefront documents the service made per shop, as sent (plain
    and gzip), under their version tag.

    A version reads as the same bytes for ever (the tag is strong, ``generated_at`` is
    the version's time), so a document cached under the shop's current tag is that
    read's answer: after a Sync, the Preview and Publish that follow at the same
    version get it without the database building 100,000 items again. The key holds
    the shop's URL (a shop moved to another address is another document) and the
    document kind. At most ``entries`` documents and ``max_bytes`` of them are kept,
    the least recently used going first; a document over ``max_bytes`` is not kept.
    Each worker process has its own.
    """

    def __init__(self, *, entries: int = 16, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._documents: OrderedDict[tuple[str, str], _Cached] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, kind: str, shop: str, tag: str) -> _Cached | None:
        with self._lock:
            cached = self._documents.get((kind, shop))
            if cached is None or cached.tag != tag:
                return None
            self._documents.move_to_end((kind, shop))
            return cached

    def put(self, kind: str, shop: str, cached: _Cached) -> None:
        with self._lock:
            old = self._documents.pop((kind, shop), None)
            if old is not None:
                self._bytes -= old.size
            if cached.size > self._max_bytes:
                return
            self._documents[(kind, shop)] = cached
            self._bytes += cached.size
            while len(self._documents) > self._entries or self._bytes > self._max_bytes:
                _, dropped = self._documents.popitem(last=False)
                self._bytes -= dropped.size


class _Cached:
    """One document as sent: its tag, its JSON bytes, and their gzip made on first
    demand (under the cache's caller, once per document)."""

    __slots__ = ("tag", "body", "_gzipped", "_lock")

    def __init__(self, tag: str, body: bytes) -> None:
        self.tag = tag
        self.body = body
        self._gzipped: bytes | None = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return 2 * len(self.body)  # the body, and room for its gzip

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
            return self._gzipped


class ApiError(Exception):
    """An error answer: status, stable code, human message, optional extra headers."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.fields = dict(fields or {})


def json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from the request: escape, never fail
        data = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    response = Response(data, status=status, mimetype=JSON_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def inflate(data: bytes, cap: int) -> bytes:
    """The gzip ``data`` inflated, refusing with 413 as soon as the output passes ``cap``
    (a small body that would inflate to gigabytes is never inflated whole)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while not inflater.eof:
            chunk = inflater.decompress(pending, cap + 1 - len(out))
            out += chunk
            if len(out) > cap:
                raise ApiError(
                    413, "payload_too_large",
                    f"the body inflates past the limit of {cap:,} bytes; nothing was read",
                )
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
    except zlib.error as exc:
        raise ApiError(400, "bad_request", f"the gzip body is corrupt ({exc})") from exc
    if not inflater.eof:
        raise ApiError(400, "bad_request", "the gzip body is cut short; send it whole")
    if inflater.unused_data:
        raise ApiError(400, "bad_request", "the body holds data after its gzip stream")
    return bytes(out)


def _clean_for_log(text: str) -> str:
    text = text[:300]
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _logged(app: Callable, logger: logging.Logger) -> Callable:
    """WSGI middleware: one log line per request (method, path, shop, status, time).
    The token travels in a header and is never logged."""

    def middleware(environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []

        def recording_start_response(code: str, headers: list, exc_info: Any = None) -> Any:
            status.append(code.split(" ", 1)[0])
            return start_response(code, headers, exc_info)

        try:
            return app(environ, recording_start_response)
        finally:
            if logger.isEnabledFor(logging.INFO):
                _log_request(logger, environ, status, started)

    return middleware


def _log_request(logger: logging.Logger, environ: dict, status: list[str],
                 started: float) -> None:
    query = environ.get("QUERY_STRING", "")
    found = _SHOP_IN_QUERY.search(query)
    shop = unquote_plus(found.group(1)) if found else ""
    logger.info(
        "%s %s%s %s %.1fms",
        environ.get("REQUEST_METHOD", "?"),
        _clean_for_log(environ.get("PATH_INFO", "")),
        f" shop={_clean_for_log(shop)}" if shop else "",
        status[0] if status else "-",
        (time.perf_counter() - started) * 1000,
    )


@dataclass(frozen=True)
class Service:
    """What the application serves from, kept in ``app.extensions["xlstock"]`` (Flask's
    place for it) and reached in a request through :func:`service`."""

    store: StockStore
    accounts: AccountStore
    documents: DocumentCache
    max_body: int


def service() -> Service:
    """The :class:`Service` of the application handling this request."""
    found: Service = current_app.extensions["xlstock"]
    return found


api = Blueprint("api", __name__, url_prefix="/v1")
"""Protocol v1's routes; the error answers, the security headers and gzip are the whole
application's (registered from here, on :func:`create_app`'s application)."""


def create_app(store: StockStore, *, max_body: int = DEFAULT_MAX_BODY) -> Flask:
    """The WSGI application serving protocol v1 from ``store``, and the account pages.

    ``max_body`` caps request bodies, after gzip inflation (413 beyond it).
    """
    from xlstock.server.account import account_pages

    app = Flask("xlstock.server", static_folder=None)
    app.extensions["xlstock"] = Service(store, AccountStore(store), DocumentCache(), max_body)
    app.url_map.strict_slashes = False
    app.register_blueprint(account_pages)
    # Rules take the map's settings when added: the API's, added now, never merge slashes
    # (a key may hold "/": never answer with a redirect); the pages' still do.
    app.url_map.merge_slashes = False
    app.url_map.converters["key"] = _KeyConverter
    app.register_blueprint(api)
    app.after_request(security_headers)
    app.after_request(compress)
    app.wsgi_app = _logged(app.wsgi_app, log)  # type: ignore[method-assign]
    return app


def changes_since(store: StockStore, shop: str, tag: str) -> Response | None:
    """The answer to ``GET /v1/stock?since=<version>``: the products changed since that
    version, when the shop's history reaches back to it (docs/protocol.md, "Changes
    since a version"); ``None`` for a request without ``since``, a HEAD, a client that
    has the current version (304), or a version the history does not reach: the whole
    document answers those, and every client understands it."""
    since = request.args.get("since")
    if not since or request.method != "GET" or (
        request.if_none_match.contains_weak(tag) or request.if_none_match.star_tag
    ):
        return None
    changes = store.stock_changes(shop, since)
    if changes is None:
        return None
    response = Response(changes[1], status=200, mimetype=JSON_TYPE)
    response.set_etag(changes[0])
    return response


# -- what the routes share -----------------------------------------------------------------


def fail(status: int, message: str, code: str | None = None, *,
         fields: Mapping[str, Any] | None = None,
         headers: Mapping[str, str] | None = None) -> NoReturn:
    raise ApiError(status, code or _CODES[status], message, headers=dict(headers or {}),
                   fields=fields)


def shop_parameter() -> str:
    """The request's ``shop`` parameter, normalised (400 when missing or wrong)."""
    raw = request.args.get("shop")
    if not raw:
        fail(400, "the shop parameter is missing; add ?shop=<the shop's URL>")
    try:
        return normalise_shop_url(raw)
    except ValueProblem as exc:
        fail(400, f"the shop parameter is wrong: {exc}")


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="xlstock"'}


def authorised_shop(*, stock_updates: bool = False) -> str:
    """The shop the request's token is for (401/403 otherwise); with ``stock_updates``,
    also refused (403) while the shop's updates are off."""
    accounts = service().accounts
    token_shop = _token_shop(accounts)
    shop = shop_parameter()
    if token_shop != shop:
        fail(403, f"this API token is for the shop {token_shop}, not {shop}: check the "
             f"shop's address for a typing slip, or register {shop} with: xlstock shop "
             f"add {shop} --db FILE, and use the token it prints",
             code="shop_not_registered", fields={"token_shop": token_shop, "shop": shop})
    if stock_updates and not accounts.stock_updates_on(shop):
        fail(403, updates_off_message(shop, request.host_url), code="stock_updates_off")
    return shop


def _token_shop(accounts: AccountStore) -> str:
    """The shop of the request's bearer token (401: none, unknown or revoked)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        fail(401, "no API token: send the header 'Authorization: Bearer <token>' with the "
             "token 'xlstock shop add' printed", headers=_CHALLENGE)
    token_shop = accounts.store.authenticate(token)
    if token_shop is None:
        revoked_at = accounts.revocation(token)
        if revoked_at is not None:
            fail(401, revoked_message(revoked_at, request.host_url), code="token_revoked",
                 headers=_CHALLENGE)
        fail(401, "this API token is not known to the stock service; use a token from "
             f"the API tokens page ({request.host_url}account/tokens) or the one "
             "'xlstock shop add <shop URL> --db FILE' printed", headers=_CHALLENGE)
    accounts.note_token_used(token)
    return token_shop


def idempotency_key(*, required: bool) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None and not required:
        return None
    if key is None or not KEY_PATTERN.fullmatch(key):
        fail(400, "send an 'Idempotency-Key' header of 1 to 200 printable ASCII "
             "characters (a new UUID for each new request, the same one for a retry)",
             code="idempotency_key_required")
    return key


def request_body() -> bytes:
    """The request's JSON body as bytes, inflated when gzip (415, 413 otherwise)."""
    max_body = service().max_body
    if request.mimetype != JSON_TYPE:
        fail(415, f"the body must be JSON sent as Content-Type: {JSON_TYPE} "
             f"(got {request.mimetype or 'none'!r})")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        fail(415, f"the body must be UTF-8 (got charset {charset!r})")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip"):
        fail(415, f"Content-Encoding {encoding!r} is not supported; send gzip or "
             "no encoding")
    if request.content_length is not None and request.content_length > max_body:
        fail(413, f"the body is {request.content_length:,} bytes; the limit is "
             f"{max_body:,}")
    data = request.stream.read(max_body + 1)
    if len(data) > max_body:
        fail(413, f"the body is over the limit of {max_body:,} bytes")
    if encoding in ("gzip", "x-gzip"):
        data = inflate(data, max_body)
    return data


def answer_response(answer: WriteAnswer) -> Response:
    headers = dict(answer.headers)
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    response = json_response(answer.status, answer.body, headers)
    if answer.etag:
        response.set_etag(answer.etag)
    return response


def tagged(kind: str, shop: str, tag: str, read: Callable[[], tuple[str, bytes]]) -> Response:
    """The JSON document ``read`` makes (with its own tag: it may be newer than ``tag``),
    or 304 when the client has version ``tag``; a HEAD answers the tag without reading
    anything. A document already made at ``tag`` comes from the service's
    :class:`DocumentCache` (gzip included) without ``read``."""
    if request.if_none_match.contains_weak(tag) or request.if_none_match.star_tag:
        response = Response(status=304)
        response.set_etag(tag)
        return response
    if request.method == "HEAD":
        response = Response(status=200, mimetype=JSON_TYPE)
        response.set_etag(tag)
        return response
    documents = service().documents
    cached = documents.get(kind, shop, tag)
    if cached is None:
        cached = _Cached(*read())
        documents.put(kind, shop, cached)
    if len(cached.body) >= GZIP_MIN_SIZE and request.accept_encodings["gzip"] > 0:
        response = Response(cached.gzipped(), status=200, mimetype=JSON_TYPE)
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(cached.body, status=200, mimetype=JSON_TYPE)
    response.set_etag(cached.tag)
    return response


# -- the routes ----------------------------------------------------------------------------


@api.get("/health")
def health() -> Response:
    return json_response(200, {"status": "ok", "version": __version__,
                               "protocol": PROTOCOL_VERSION},
                         {"Access-Control-Allow-Origin": "*"})


@api.get("/stock")
def read_levels() -> Response:
    store = service().store
    shop = authorised_shop(stock_updates=True)
    tag = store.current_tag(shop)
    changes = changes_since(store, shop, tag)
    if changes is not None:
        return changes
    return tagged("stock", shop, tag, lambda: store.stock_document(shop))


@api.put("/stock")
def publish() -> Response:
    shop = authorised_shop(stock_updates=True)
    key = idempotency_key(required=True)
    assert key is not None
    if_match: set[str] | None = None
    if "If-Match" in request.headers and not request.if_match.star_tag:
        if_match = {str(tag) for tag in request.if_match.as_set(include_weak=False)}
    body = request_body()
    return answer_response(service().store.publish(shop, key=key, body=body,
                                                   if_match=if_match))


@api.get("/publishes/<key:key>")
def publish_outcome(key: str) -> Response:
    shop = authorised_shop()
    outcome = service().store.publish_outcome(shop, key)
    if outcome is None:
        fail(404, f"the stock service never received a publish with Idempotency-Key "
             f"{key!r} for {shop}; it was not applied: publish again")
    return json_response(200, outcome)


@api.post("/publishes/<key:key>/undo")
def undo_publish(key: str) -> Response:
    shop = authorised_shop(stock_updates=True)
    body = request_body()
    options, _ = undo_options(body)
    undo_key = idempotency_key(required=options is None or not options.preview)
    return answer_response(service().store.undo_publish(shop, key, key=undo_key, body=body))


@api.post("/orders")
def order() -> Response:
    shop = authorised_shop(stock_updates=True)
    key = idempotency_key(required=False)
    body = request_body()
    return answer_response(service().store.order(shop, body=body, key=key))


@api.get("/storefront")
def storefront() -> Response:
    store = service().store
    shop = shop_parameter()
    try:
        tag = store.current_tag(shop)
    except UnknownShop:
        fail(404, f"no shop {shop} is registered with this stock service")
    response = tagged("storefront", shop, tag, lambda: store.storefront_document(shop))
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@api.get("/history")
def history() -> Response:
    shop = authorised_shop()
    limit = _integer_parameter("limit", 50, minimum=1, maximum=HISTORY_LIMIT_MAX)
    before = _integer_parameter("before", None, minimum=1, maximum=None)
    return json_response(200, service().store.history(shop, limit=limit or 50,
                                                      before=before))


# -- errors, headers and gzip: the whole application's -----------------------------------


@api.app_errorhandler(ApiError)
def api_error(error: ApiError) -> Response:
    return json_response(error.status, error_body(error.code, error.message,
                                                  fields=error.fields), error.headers)


@api.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """Flask's own refusals (no such route, method, a body too large) as JSON errors;
    the account pages answer theirs as pages (see :mod:`xlstock.server.account.pages`)."""
    status = error.code or 500
    headers = {}
    if status == 404:
        message = (f"there is no {request.path!r} on this stock service; the API is under "
                   "/v1 (see docs/protocol.md)")
    elif status == 405:
        allowed = ", ".join(sorted(getattr(error, "valid_methods", None) or []))
        message = f"{request.method} is not allowed on {request.path}; use {allowed}"
        headers["Allow"] = allowed
    else:
        message = error.description or error.name
    return json_response(status, error_body(_CODES.get(status, "bad_request"), message),
                         headers)


@api.app_errorhandler(Exception)
def internal_error(error: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.path)
    return json_response(500, error_body(
        "internal_error",
        "the stock service failed on this request and applied nothing; try again, and "
        "if it persists see the service's log",
    ))


API_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
"""On every answer but the account pages': JSON never sniffed as HTML, and a document
read again is checked against its version (ETag) before it is used."""
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
"""On every answer of the account pages (their stylesheet included): no script at all,
never in a frame; the pages themselves also ``Cache-Control: no-store``."""


def security_headers(response: Response) -> Response:
    """The security headers of every answer, in this one place."""
    if request.blueprint == "account":
        response.headers.update(PAGE_HEADERS)
        if request.endpoint != "account.static":
            response.headers["Cache-Control"] = "no-store"
    else:
        response.headers.update(API_HEADERS)
    return response


def compress(response: Response) -> Response:
    """gzip an answer of :data:`GZIP_MIN_SIZE` bytes or more, when the client takes it."""
    response.headers["Vary"] = "Accept-Encoding"
    if (
        response.direct_passthrough
        or response.status_code < 200 or response.status_code in (204, 304)
        or (response.content_length or 0) < GZIP_MIN_SIZE
        or "Content-Encoding" in response.headers
        or request.accept_encodings["gzip"] <= 0
    ):
        return response
    data = response.get_data()
    response.set_data(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    return response


class _KeyConverter(PathConverter):
    """An idempotency key in a path: any text, slashes included (even first or doubled)."""

    regex = ".+"
    part_isolating = False


def _integer_parameter(
    name: str, default: int | None, *, minimum: int, maximum: int | None
) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,12}", raw) or int(raw) < minimum or (
        maximum is not None and int(raw) > maximum
    ):
        bound = f"{minimum}..{maximum}" if maximum is not None else f"{minimum} or more"
        raise ApiError(400, "bad_request", f"the {name} parameter must be a whole number "
                       f"{bound} (got {raw[:20]!r})")
    return int(raw)
