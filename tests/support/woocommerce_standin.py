"""A faithful stand-in of WooCommerce's REST API v3 (``/wp-json/wc/v3``) for the tests.

:class:`WooCommerceStandIn` serves, on a free loopback port, what xlstock's WooCommerce
connector talks to: products (simple and variable) and their variations, the batch
endpoints, orders and the ``woocommerce_manage_stock`` setting. WooCommerce cannot be
installed here, so each rule below was taken from WooCommerce's and WordPress's own PHP
source (and the REST API documentation where it speaks); where they disagree the source
wins. Sources read (woocommerce/woocommerce ``plugins/woocommerce/``, WordPress core
``wp-includes/``):

- ``includes/rest-api/Controllers/Version3/class-wc-rest-products-controller.php``,
  ``prepare_object_for_database()``: stock data is touched only when the store option
  ``woocommerce_manage_stock`` is ``"yes"`` (otherwise ``manage_stock``,
  ``stock_quantity`` and ``inventory_delta`` are silently ignored, HTTP 200);
  ``stock_quantity`` wins over ``inventory_delta`` (``elseif``); ``inventory_delta`` is
  added to the level the controller has just loaded (``wc_stock_amount(get_stock_quantity())
  + wc_stock_amount(delta)``, then ``save()``): no condition, no compare, last writer wins,
  and not atomic (a sale between the load and the save is lost: ``between_load_and_save``
  lets a test put one there); a product that
  does not manage stock gets ``stock_quantity`` null; a variation id sent to the products
  routes -> 404 ``woocommerce_rest_invalid_product_id`` ("To manipulate product variations
  you should use the /products/&lt;product_id&gt;/variations/&lt;id&gt; endpoint.").
  ``prepare_objects_query()``: the ``sku`` filter is ``_sku IN (explode(',', sku) [+ the
  whole string])`` over products AND variations (MySQL's default collation: case-insensitive,
  trailing spaces ignored).
- ``.../Version3/class-wc-rest-product-variations-controller.php``: the variation's
  ``prepare_object_for_database()`` sets ``parent_id`` from the URL *unconditionally* and,
  unlike the products controller, does not look at the store option; ``manage_stock`` is
  ``wc_string_to_bool``'d (``"parent"`` -> false). Its response shows ``managing_stock()``:
  ``true``, ``false`` or ``"parent"``.
- ``includes/class-wc-product-variation.php``: ``get_manage_stock()`` is ``"parent"`` when
  the variation's own flag is false and the parent's is true; ``get_stock_quantity()`` then
  answers the PARENT's level. A write of ``stock_quantity``/``inventory_delta`` to such a
  variation is accepted (200) but lands in the variation's own, hidden ``_stock``: the
  level every read shows (the parent's) does not move (``writes`` records it with
  ``effective=False``). The delta is computed on the parent's level.
- ``.../Version2/class-wc-rest-product-variations-v2-controller.php``:
  ``update_item_permissions_check()``: a variation under another parent's URL -> 403
  ``woocommerce_rest_cannot_edit`` "Parent product does not match current variation."
  (``rest_authorization_required_code()``: 403 once a key has logged the user in).
  ``batch_items()`` merges ``{"product_id": <url id>}`` UNDER each item (the item's own
  ``product_id`` wins).
- ``.../Version3/class-wc-rest-controller.php``: ``check_batch_limit()`` -> more than 100
  create+update+delete items: 413 ``woocommerce_rest_request_entity_too_large`` "Unable to
  accept more than 100 items for this request."; ``batch_items()`` calls ``update_item()``
  directly: no schema validation and NO permission check per item, errors come back inside
  the HTTP 200 answer as ``{"id", "error": {"code", "message", "data"}}``. Hence, in a
  batch, ``"stock_quantity": "abc"`` is ``intval``'d to 0 (applied), and a variation of
  another parent is re-parented to the URL's product (no error) -- both as WooCommerce does.
  ``get_fields_for_response()`` and WordPress's ``rest_filter_response_fields()``
  (``rest-api.php``) for ``_fields`` (comma list, nested ``a.b``, errors untouched).
- ``.../Version3/class-wc-rest-crud-controller.php``: ``update_item()`` (unknown id ->
  400 ``woocommerce_rest_<post_type>_invalid_id`` "Invalid ID."), ``get_item()`` (404),
  ``get_items()``: ``X-WP-Total``, ``X-WP-TotalPages = ceil(total / per_page)`` and the
  ``Link`` header built with ``add_query_arg()`` from the request's own query (values
  ``urlencode``d, ``page`` replaced in place or appended; ``prev`` only when page > 1 and
  clamped to the last page, ``next`` when pages > page; one header, ``, `` between);
  ``prepare_objects_query()``: ``after``/``before`` go to a WP ``date_query`` on
  ``post_date_gmt`` when ``dates_are_gmt`` else on the local ``post_date``; WordPress's
  ``WP_Date_Query`` is exclusive (``>``/``<``) and ``build_mysql_datetime()`` reads a date
  without offset in the site's timezone and re-expresses any date in the site's timezone
  before comparing it with either column (so an offset date against the GMT column is off
  by the site's offset unless the site is on UTC: kept, ``utc_offset`` selects the site's).
- ``includes/class-wc-rest-authentication.php``: HTTP Basic (or ``consumer_key`` /
  ``consumer_secret`` in the query) is how a key authenticates over HTTPS (the stand-in
  behaves as an HTTPS site); an unknown key authenticates nobody (the route then answers
  401 ``woocommerce_rest_cannot_view`` "Sorry, you cannot list resources." /
  ``woocommerce_rest_cannot_edit`` / ``woocommerce_rest_cannot_batch``); a known key with
  the wrong secret -> 401 ``woocommerce_rest_authentication_error`` "Consumer secret is
  invalid." with ``WWW-Authenticate: Basic realm="..."``; ``check_permissions()`` on
  ``rest_pre_dispatch`` (before routing): a read key writing -> 401
  ``woocommerce_rest_authentication_error`` "The API key provided does not have write
  permissions." (a write-only key reading: "... read permissions.").
- WordPress ``class-wp-rest-server.php`` / ``class-wp-rest-request.php`` /
  ``rest-api.php``: unknown route or method -> 404 ``rest_no_route`` "No route was found
  matching the URL and request method."; invalid arguments -> 400 ``rest_invalid_param``
  "Invalid parameter(s): a, b" with ``params`` and ``details`` (``rest_out_of_bounds``
  "per_page must be between 1 (inclusive) and 100 (inclusive)", ``rest_invalid_type``
  "x is not of type integer.", ``rest_not_in_enum`` "x is not one of a, b.");
  a ``null`` argument is not validated; a broken JSON body -> 400 ``rest_invalid_json``;
  ``wp_json_encode`` escapes ``/`` and non-ASCII.
- ``includes/wc-stock-functions.php`` ``wc_reduce_stock_levels()`` /
  ``wc_update_product_stock()``: an order lowers the level of the product that manages the
  stock (``get_stock_managed_by_id()``: the parent for a ``"parent"`` variation), only when
  the store option is ``"yes"``; ``wc_rest_prepare_date_response()``: dates are
  ``Y-m-d\\TH:i:s`` (the ``_gmt`` ones too, no ``Z``), second precision.
- ``.../Version3/class-wc-rest-setting-options-controller.php``: the setting answers
  ``id, label, description, type, default, tip, value, group_id``.
- Docs: https://woocommerce.github.io/woocommerce-rest-api-docs/ (#pagination, #products,
  #product-variations, #orders, #setting-options, #batch-update-products).

Left out on purpose: OAuth 1.0a over plain HTTP, every product field that is not about
identity or stock (prices are empty strings), taxonomies, images, refunds, product
deletion through ``DELETE`` and order writes. ``inventory_delta`` is not in the products'
item schema (``get_item_schema()``: ``manage_stock`` boolean, ``stock_quantity`` integer,
``low_stock_amount`` integer|null are), so even the single route does not validate it: it
is ``intval``'d. The bodies of the faults (``fail_next``) are close approximations of what
WordPress, PHP-FPM and a proxy answer.
"""

from __future__ import annotations

import base64
import json
import math
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote, urlsplit

from .standin import LoopbackStandIn, drop_connection

NAMESPACE = "/wp-json/wc/v3"
BATCH_LIMIT = 100
MAX_PER_PAGE = 100
AUTH_REALM = ("WooCommerce API. Use a consumer key in the username field and a consumer "
              "secret in the password field.")
VARIATION_ROUTE_MESSAGE = ("To manipulate product variations you should use the "
                           "/products/&lt;product_id&gt;/variations/&lt;id&gt; endpoint.")
PRODUCT_STATUSES = ("any", "future", "trash", "draft", "pending", "private", "publish")
ORDER_STATUSES = ("any", "trash", "pending", "processing", "on-hold", "completed",
                  "cancelled", "refunded", "failed", "checkout-draft")
PRODUCT_ORDERBY = ("date", "modified", "id", "include", "title", "slug", "price",
                   "popularity", "rating", "menu_order")
ORDER_ORDERBY = ("date", "modified", "id", "include", "title", "slug")
STOCK_STATUSES = ("instock", "outofstock", "onbackorder")
PRODUCT_TYPES = ("simple", "grouped", "external", "variable")
FAULT_BODIES: dict[int, tuple[str, bytes]] = {
    500: ("application/json; charset=UTF-8", json.dumps({
        "code": "internal_server_error",
        "message": "<p>There has been a critical error on this website.</p><p><a href="
                   "\"https://wordpress.org/documentation/article/faq-troubleshooting/\">"
                   "Learn more about troubleshooting WordPress.</a></p>",
        "data": {"status": 500}, "additional_errors": []}).replace("/", "\\/").encode()),
    502: ("text/html", b"<html><head><title>502 Bad Gateway</title></head><body><center>"
                       b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
                       b"</body></html>"),
    503: ("text/html; charset=utf-8",
          b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body>"
          b"<h1>Briefly unavailable for scheduled maintenance. Check back in a minute.</h1>"
          b"</body></html>"),
    504: ("text/html", b"<html><head><title>504 Gateway Time-out</title></head><body>"
                       b"<center><h1>504 Gateway Time-out</h1></center><hr><center>nginx"
                       b"</center></body></html>"),
    429: ("text/html", b"<html><head><title>429 Too Many Requests</title></head><body>"
                       b"<center><h1>429 Too Many Requests</h1></center><hr><center>nginx"
                       b"</center></body></html>"),
}


class RestError(Exception):
    """A ``WP_Error`` on its way to becoming a REST answer."""

    def __init__(self, code: str, message: str, status: int,
                 data: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.data = {"status": status, **(data or {})}
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data}


# --- PHP and WordPress semantics ----------------------------------------------------------

_NUMERIC = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_LEADING_INT = re.compile(r"^\s*([+-]?\d+)")
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                      r"(Z|[+-]\d{2}:\d{2})?$", re.IGNORECASE)


def php_intval(value: Any) -> int:
    """PHP's ``intval`` (what ``wc_stock_amount`` does by default): ``"12abc"`` -> 12,
    ``"abc"`` -> 0, ``3.9`` -> 3, ``true`` -> 1, a non-empty array -> 1."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return 0 if math.isnan(value) or math.isinf(value) else int(value)
    if isinstance(value, str):
        if _NUMERIC.match(value):
            number = float(value)
            return int(number) if not math.isinf(number) else 0
        match = _LEADING_INT.match(value)
        return int(match.group(1)) if match else 0
    if isinstance(value, (list, dict)):
        return 1 if value else 0
    return 0


def wc_string_to_bool(value: Any) -> bool:
    """WooCommerce's ``wc_string_to_bool``: ``"parent"`` is false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    if isinstance(value, str):
        return value.lower() in ("yes", "true") or value == "1"
    return False


def isset(body: Mapping[str, Any], key: str) -> bool:
    return body.get(key) is not None


def is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and bool(_NUMERIC.match(value))


def rest_is_integer(value: Any) -> bool:
    return is_numeric(value) and float(value).is_integer()


def rest_is_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value.lower() in ("false", "true", "0", "1")
    return isinstance(value, int) and value in (0, 1)


def rest_parse_date(value: str, site_offset: timedelta) -> datetime | None:
    """``rest_parse_date``'s RFC 3339 shape; a date without offset is the site's time."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        naive = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    zone = match.group(8)
    if zone is None:
        return naive.replace(tzinfo=timezone(site_offset))
    if zone.upper() == "Z":
        return naive.replace(tzinfo=timezone.utc)
    sign = 1 if zone[0] == "+" else -1
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return naive.replace(tzinfo=timezone(sign * offset))


def wp_parse_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value]
    return [part for part in re.split(r"[\s,]+", str(value)) if part]


def php_urlencode(value: Any) -> str:
    return quote_plus(str(value), safe="").replace("~", "%7E")


def wp_json(data: Any) -> bytes:
    """``wp_json_encode`` with WordPress's default flags: compact, ``\\/``, ``\\uXXXX``."""
    return json.dumps(data, separators=(",", ":")).replace("/", "\\/").encode()


def php_query(raw: str) -> dict[str, Any]:
    """The query string as PHP reads ``$_GET``: ``a[]=1&a[]=2`` is a list, else last wins."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = re.fullmatch(r"([^\[\]]+)\[(\d*)\]", key)
        if match:
            existing = params.get(match.group(1))
            if not isinstance(existing, list):
                existing = []
                params[match.group(1)] = existing
            existing.append(value)
        else:
            params[key] = value
    return params


def filter_fields(data: Any, fields_param: Any) -> Any:
    """WordPress's ``rest_filter_response_fields``: keep only the requested (nested) keys."""
    fields = [item.strip() for item in wp_parse_list(fields_param)]
    if not fields:
        return data
    keyed: dict[str, Any] = {}
    for name in fields:
        parts = name.split(".")
        ref = keyed
        skip = False
        while len(parts) > 1:
            head = parts.pop(0)
            if ref.get(head) is True:
                skip = True
                break
            ref = ref.setdefault(head, {})
        if not skip:
            ref[parts[0]] = True
    if isinstance(data, list):
        return [_intersect(item, keyed) for item in data]
    return _intersect(data, keyed)


def _intersect(item: Any, keyed: Mapping[str, Any]) -> Any:
    """``_rest_array_intersect_key_recursive``: a PHP list has integer keys, so a nested
    rule such as ``attributes.option`` keeps none of a list's entries (``[]``), while a
    scalar under a nested rule is kept whole."""
    if isinstance(item, list):
        kept_list = [(str(n), value) for n, value in enumerate(item) if str(n) in keyed]
        return [_nested(value, keyed[n]) for n, value in kept_list]
    if not isinstance(item, dict):
        return item
    return {key: _nested(value, keyed[key]) for key, value in item.items() if key in keyed}


def _nested(value: Any, rule: Any) -> Any:
    if isinstance(rule, dict) and isinstance(value, (dict, list)):
        return _intersect(value, rule)
    return value


def _sku_key(sku: str) -> str:
    """MySQL's default collation compares SKUs case-insensitively, trailing spaces off."""
    return sku.rstrip(" ").casefold()


# --- the shop's data -----------------------------------------------------------------------


@dataclass
class Item:
    """A product (``simple`` / ``variable``) or a ``variation``, as WooCommerce stores it."""

    id: int
    kind: str
    name: str
    sku: str
    manage_stock: bool
    stock: int | None
    created: int
    modified: int
    low_stock_amount: int | None = None
    parent_id: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    children: list[int] = field(default_factory=list)
    stock_status: str = "instock"
    backorders: str = "no"
    status: str = "publish"


@dataclass
class Order:
    id: int
    status: str
    created: int
    modified: int
    line_items: list[dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: str
    status: int
    body_size: int
    answer_size: int
    time: float


@dataclass(frozen=True)
class Write:
    """One applied stock write. ``effective`` is false when it changed only a variation's
    hidden own level while the level everybody reads is its parent's."""

    sku: str
    before: int | None
    after: int | None
    kind: str
    time: float
    item_id: int
    route: str
    effective: bool = True


# --- the stand-in ----------------------------------------------------------------------------


class WooCommerceStandIn(LoopbackStandIn):
    """WooCommerce's REST API v3 on ``http://127.0.0.1:<port>`` (a context manager).

    ``url`` is the shop's address; ``key``/``secret`` the consumer key and secret;
    ``permissions`` (``"read"``, ``"write"``, ``"read_write"``), ``manage_stock`` (the
    store option, ``"yes"``/``"no"``) and ``rest_api_enabled`` are settable at any time.
    ``clock`` gives wall-clock seconds (dates are kept to the second); ``utc_offset`` is
    the site's timezone offset in hours.

    Control API (Python, not HTTP): ``add_simple``, ``add_variable``, ``id_of``,
    ``parent_of``, ``level``, ``levels``, ``set_level``, ``set_manage_stock``, ``sell``,
    ``orders``, ``requests`` (:class:`Call`), ``writes`` (:class:`Write`),
    ``before_write``, ``between_load_and_save``, ``after_write``, ``fail_next``,
    ``drop_next_answer``."""

    thread_name = "woocommerce-standin"

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 permissions: str = "read_write", manage_stock: str = "yes",
                 rest_api_enabled: bool = True, utc_offset: float = 0.0,
                 batch_limit: int = BATCH_LIMIT) -> None:
        self.clock = clock
        self.permissions = permissions
        self.manage_stock = manage_stock
        self.rest_api_enabled = rest_api_enabled
        self.utc_offset = utc_offset
        self.batch_limit = batch_limit
        self.key = "ck_" + _token(40)
        self.secret = "cs_" + _token(40)
        self.lock = threading.RLock()
        self._control = threading.Lock()
        self._items: dict[int, Item] = {}
        self._by_sku: dict[str, int] = {}
        self._orders: dict[int, Order] = {}
        self._ids = iter(range(10, 10**12))
        self._line_ids = iter(range(1, 10**12))
        self._version = 0
        self._write_version = 0
        self._sorted: dict[tuple[Any, ...], list[int]] = {}
        self._calls: list[Call] = []
        self._writes: list[Write] = []
        self._before: list[Callable[..., Any]] = []
        self._after: list[Callable[..., Any]] = []
        self._loaded: list[Callable[..., Any]] = []
        self._start_serving(_handler_for(self))


    @property
    def auth(self) -> tuple[str, str]:
        """``(key, secret)``, ready for ``requests``' ``auth=``."""
        return (self.key, self.secret)

    @property
    def api_url(self) -> str:
        return self.url + NAMESPACE

    # -- the control API: building the shop --

    def _now(self) -> int:
        return int(self.clock())

    def _new_item(self, kind: str, name: str, sku: str, manage_stock: bool, qty: int | None,
                  parent_id: int = 0, low_stock_amount: int | None = None) -> Item:
        if sku and _sku_key(sku) in self._by_sku:
            raise ValueError(f"SKU {sku!r} is already used")
        now = self._now()
        item = Item(next(self._ids), kind, name, sku, manage_stock,
                    qty if manage_stock else None, now, now,
                    low_stock_amount if manage_stock else None, parent_id)
        self._items[item.id] = item
        if sku:
            self._by_sku[_sku_key(sku)] = item.id
        self._version += 1
        return item

    def add_simple(self, name: str, sku: str, qty: int | None,
                   manage_stock: bool = True, low_stock_amount: int | None = None) -> int:
        """A simple product; ``qty`` is ignored (null) when it does not manage stock."""
        with self.lock:
            return self._new_item("simple", name, sku, manage_stock, qty,
                                  low_stock_amount=low_stock_amount).id

    def add_variable(self, name: str, variations: Iterable[Mapping[str, Any]],
                     manage_stock: bool = False, qty: int | None = None,
                     sku: str = "") -> int:
        """A variable product and its variations, each ``{"sku", "qty", "attributes":
        {"Colour": "Red"}, "manage_stock": True | False | "parent", "low_stock_amount"}``.
        ``"parent"`` stores the variation's own flag as false: the parent's level shows
        (when the parent manages stock)."""
        with self.lock:
            parent = self._new_item("variable", name, sku, manage_stock, qty)
            for spec in variations:
                own = spec.get("manage_stock", True)
                own_flag = own is True
                attributes = {str(k): str(v) for k, v in dict(spec.get("attributes", {})).items()}
                label = ", ".join(attributes.values())
                child = self._new_item("variation", f"{name} - {label}" if label else name,
                                       str(spec.get("sku", "")), own_flag, spec.get("qty"),
                                       parent.id, spec.get("low_stock_amount"))
                child.attributes = attributes
                parent.children.append(child.id)
            return parent.id

    def _item(self, sku: str) -> Item:
        item_id = self._by_sku.get(_sku_key(sku))
        if item_id is None:
            raise KeyError(f"no product or variation has SKU {sku!r}")
        return self._items[item_id]

    def id_of(self, sku: str) -> int:
        """The product or variation id that has this SKU."""
        with self.lock:
            return self._item(sku).id

    def parent_of(self, sku: str) -> int:
        """The parent product id of a variation (0 for a product)."""
        with self.lock:
            return self._item(sku).parent_id

    def level(self, sku: str) -> int | None:
        """The level WooCommerce shows for this SKU (a ``"parent"`` variation: the
        parent's)."""
        with self.lock:
            return self._shown_stock(self._item(sku))

    def levels(self) -> dict[str, int | None]:
        """``{sku: shown level}`` for every product and variation that has a SKU."""
        with self.lock:
            return {item.sku: self._shown_stock(item) for item in self._items.values()
                    if item.sku}

    def set_level(self, sku: str, qty: int) -> None:
        """An admin's edit: the level that shows for ``sku`` becomes ``qty`` (a
        ``"parent"`` variation's edit lands on the parent, as in the admin screen)."""
        with self.lock:
            holder = self._stock_holder(self._item(sku))
            if not holder.manage_stock:
                raise ValueError(f"{sku!r} does not manage stock: no level to set")
            holder.stock = qty
            holder.modified = self._now()
            self._write_version += 1

    def set_manage_stock(self, sku: str, manage: bool) -> None:
        """An admin ticks or unticks "Manage stock?" on a product or variation."""
        with self.lock:
            item = self._item(sku)
            item.manage_stock = manage
            if not manage:
                item.stock = None
                item.low_stock_amount = None
            elif item.stock is None:
                item.stock = 0
            item.modified = self._now()

    # -- the control API: orders --

    def sell(self, items: Mapping[str, int], *, status: str = "processing",
             force: bool = False) -> int:
        """A customer's order (``{sku: qty}``), placed and paid: its stock is reduced as
        ``wc_reduce_stock_levels`` does. Refused (``ValueError``) when a managed level is
        short, as checkout refuses, unless ``force``."""
        with self.lock:
            lines = [(self._item(sku), qty) for sku, qty in items.items()]
            if not force:
                for item, qty in lines:
                    shown = self._shown_stock(item)
                    if self._managing(item) and (shown or 0) < qty:
                        raise ValueError(f"not enough stock of {item.sku!r}: {shown} < {qty}")
            now = self._now()
            order = Order(next(self._ids), status, now, now, [])
            for item, qty in lines:
                product_id = item.parent_id if item.kind == "variation" else item.id
                order.line_items.append({
                    "id": next(self._line_ids), "name": item.name, "product_id": product_id,
                    "variation_id": item.id if item.kind == "variation" else 0,
                    "quantity": qty, "sku": item.sku, "subtotal": "0.00", "total": "0.00"})
                if self.manage_stock == "yes" and self._managing(item):
                    holder = self._stock_holder(item)
                    holder.stock = (holder.stock or 0) - qty
                    holder.modified = now
            self._orders[order.id] = order
            self._write_version += 1
            return order.id

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order as the API shows it, oldest first."""
        with self.lock:
            return [self._order_json(order) for order in self._orders.values()]

    # -- the control API: observing and misbehaving --

    @property
    def requests(self) -> list[Call]:
        with self._control:
            return list(self._calls)

    @property
    def writes(self) -> list[Write]:
        with self.lock:
            return list(self._writes)

    def before_write(self, callback: Callable[..., Any]) -> None:
        """``callback(standin, route, body)`` runs when a write to a product, variation or
        batch route has been authenticated and routed, before anything is applied (the
        store lock held: ``sell``/``set_level`` from it are fine)."""
        self._before.append(callback)

    def between_load_and_save(self, callback: Callable[..., Any]) -> None:
        """``callback(standin, sku, loaded_level)`` runs for each item a write changes,
        after the controller has loaded the product and before it saves the level it
        computed from that load. A sale placed here is overwritten even by an
        ``inventory_delta`` write: WooCommerce's REST delta is read-modify-write in PHP
        (``get_stock_quantity() + delta`` then ``save()``), not an atomic increment."""
        self._loaded.append(callback)

    def after_write(self, callback: Callable[..., Any]) -> None:
        """``callback(standin, route, body, status, answer)`` after such a write."""
        self._after.append(callback)

    def log(self, call: Call) -> None:
        with self._control:
            self._calls.append(call)

    # -- stock semantics --

    def _parent(self, item: Item) -> Item | None:
        return self._items.get(item.parent_id) if item.parent_id else None

    def _get_manage_stock(self, item: Item) -> bool | str:
        """``get_manage_stock()`` in view context: a variation inherits as ``"parent"``."""
        if item.kind == "variation" and not item.manage_stock:
            parent = self._parent(item)
            if parent is not None and parent.manage_stock:
                return "parent"
        return item.manage_stock

    def _managing(self, item: Item) -> bool | str:
        """``managing_stock()``: false whenever the store option is not ``"yes"``."""
        return self._get_manage_stock(item) if self.manage_stock == "yes" else False

    def _stock_holder(self, item: Item) -> Item:
        if self._get_manage_stock(item) == "parent":
            parent = self._parent(item)
            assert parent is not None
            return parent
        return item

    def _shown_stock(self, item: Item) -> int | None:
        return self._stock_holder(item).stock

    def _stock_status(self, item: Item) -> str:
        if item.kind == "variable" and item.children:
            shown = [self._stock_status(self._items[c]) for c in item.children
                     if c in self._items]
            return "instock" if "instock" in shown else "outofstock"
        if self._get_manage_stock(item):
            stock = self._shown_stock(item)
            return "instock" if (stock or 0) > 0 else "outofstock"
        return item.stock_status

    # -- rendering --

    def _date(self, seconds: int, local: bool) -> str:
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
        if local:
            moment += timedelta(hours=self.utc_offset)
        return moment.strftime("%Y-%m-%dT%H:%M:%S")

    def _links(self, item: Item) -> dict[str, Any]:
        if item.kind == "variation":
            base = f"{self.api_url}/products/{item.parent_id}/variations"
            return {"self": [{"href": f"{base}/{item.id}"}], "collection": [{"href": base}],
                    "up": [{"href": f"{self.api_url}/products/{item.parent_id}"}]}
        base = f"{self.api_url}/products"
        return {"self": [{"href": f"{base}/{item.id}"}], "collection": [{"href": base}]}

    def _stock_fields(self, item: Item) -> dict[str, Any]:
        return {
            "manage_stock": self._managing(item),
            "stock_quantity": self._shown_stock(item),
            "stock_status": self._stock_status(item),
            "backorders": item.backorders,
            "backorders_allowed": item.backorders != "no",
            "backordered": False,
            "low_stock_amount": item.low_stock_amount,
        }

    def _product_json(self, item: Item) -> dict[str, Any]:
        """``WC_REST_Products_Controller::prepare_object_for_response`` (stock subset)."""
        data: dict[str, Any] = {
            "id": item.id, "name": item.name, "slug": _slug(item.name),
            "permalink": f"{self.url}/?p={item.id}",
            "date_created": self._date(item.created, True),
            "date_created_gmt": self._date(item.created, False),
            "date_modified": self._date(item.modified, True),
            "date_modified_gmt": self._date(item.modified, False),
            "type": item.kind, "status": item.status, "featured": False,
            "catalog_visibility": "visible", "description": "", "short_description": "",
            "sku": item.sku, "price": "", "regular_price": "", "sale_price": "",
            "on_sale": False, "purchasable": False, "total_sales": 0, "virtual": False,
            "downloadable": False, "tax_status": "taxable", "tax_class": "",
        }
        data.update(self._stock_fields(item))
        data.update({
            "sold_individually": False, "parent_id": item.parent_id,
            "attributes": self._product_attributes(item), "default_attributes": [],
            "variations": list(item.children) if item.kind == "variable" else [],
            "menu_order": 0, "meta_data": [], "_links": self._links(item),
        })
        return data

    def _product_attributes(self, item: Item) -> list[dict[str, Any]]:
        if item.kind == "variation":
            return [{"id": 0, "name": name, "option": option}
                    for name, option in item.attributes.items()]
        options: dict[str, list[str]] = {}
        for child_id in item.children:
            child = self._items.get(child_id)
            for name, option in (child.attributes.items() if child else ()):
                values = options.setdefault(name, [])
                if option not in values:
                    values.append(option)
        return [{"id": 0, "name": name, "position": position, "visible": True,
                 "variation": True, "options": values}
                for position, (name, values) in enumerate(options.items())]

    def _variation_json(self, item: Item) -> dict[str, Any]:
        """``WC_REST_Product_Variations_Controller::prepare_object_for_response``."""
        data: dict[str, Any] = {
            "id": item.id,
            "date_created": self._date(item.created, True),
            "date_created_gmt": self._date(item.created, False),
            "date_modified": self._date(item.modified, True),
            "date_modified_gmt": self._date(item.modified, False),
            "description": "", "permalink": f"{self.url}/?p={item.parent_id}",
            "sku": item.sku, "price": "", "regular_price": "", "sale_price": "",
            "on_sale": False, "status": item.status, "purchasable": False,
            "virtual": False, "downloadable": False, "tax_status": "taxable",
            "tax_class": "",
        }
        data.update(self._stock_fields(item))
        data.update({
            "attributes": self._product_attributes(item), "menu_order": 0, "meta_data": [],
            "name": ", ".join(item.attributes.values()), "parent_id": item.parent_id,
            "_links": self._links(item),
        })
        return data

    def _order_json(self, order: Order) -> dict[str, Any]:
        return {
            "id": order.id, "parent_id": 0, "status": order.status, "currency": "EUR",
            "date_created": self._date(order.created, True),
            "date_created_gmt": self._date(order.created, False),
            "date_modified": self._date(order.modified, True),
            "date_modified_gmt": self._date(order.modified, False),
            "total": "0.00", "line_items": [dict(line) for line in order.line_items],
            "number": str(order.id),
            "_links": {"self": [{"href": f"{self.api_url}/orders/{order.id}"}],
                       "collection": [{"href": f"{self.api_url}/orders"}]},
        }

    # -- reading collections --

    def _sorted_ids(self, scope: str, ids: Callable[[], list[int]], orderby: str, order: str,
                    key: Callable[[int], Any]) -> list[int]:
        """The ordered ids of a scope, cached until the catalogue (or, for ``modified``,
        any write) changes: 100,000 products page in constant time."""
        version = (self._version, self._write_version if orderby == "modified" else 0)
        cache_key = (scope, orderby, order, version)
        cached = self._sorted.get(cache_key)
        if cached is None:
            cached = sorted(ids(), key=key, reverse=order == "desc")
            if len(self._sorted) > 32:
                self._sorted.clear()
            self._sorted[cache_key] = cached
        return cached

    def _sort_key(self, orderby: str) -> Callable[[int], Any]:
        items = self._items
        if orderby == "date":
            return lambda i: (items[i].created, i)
        if orderby == "modified":
            return lambda i: (items[i].modified, i)
        if orderby in ("title", "menu_order"):
            return lambda i: (items[i].name.casefold(), i)
        if orderby == "slug":
            return lambda i: (_slug(items[i].name), i)
        return lambda i: i

    def list_products(self, params: Mapping[str, Any], parent: Item | None
                      ) -> tuple[list[dict[str, Any]], int]:
        """The page of products (``parent`` None) or of one product's variations."""
        orderby, order = params["orderby"], params["order"]
        include = params.get("include") or []
        sku = params.get("sku")
        items = self._items
        ids: Callable[[], list[int]]
        if parent is not None:
            def ids() -> list[int]:
                return [c for c in parent.children if c in items]
            scope = f"variations:{parent.id}"
        elif sku:
            def ids() -> list[int]:
                return list(items)
            scope = "products+variations"
        else:
            def ids() -> list[int]:
                return [i for i, item in items.items() if item.kind != "variation"]
            scope = "products"
        if orderby == "include":
            present = set(ids())
            ordered = [i for i in include if i in present]
        else:
            ordered = self._sorted_ids(scope, ids, orderby, order, self._sort_key(orderby))
        matches = self._product_filter(params, sku)
        chosen = [i for i in ordered if matches(self._items[i])] if matches else ordered
        per_page = params["per_page"]
        start = params["offset"] if params.get("offset") is not None else (
            (params["page"] - 1) * per_page)
        render = self._variation_json if parent is not None else self._product_json
        page = [render(self._items[i]) for i in chosen[start:start + per_page]]
        return page, len(chosen)

    def _product_filter(self, params: Mapping[str, Any], sku: str | None
                        ) -> Callable[[Item], bool] | None:
        tests: list[Callable[[Item], bool]] = []
        if sku:
            skus = sku.split(",")
            if len(skus) > 1:
                skus.append(sku)
            wanted = {_sku_key(s) for s in skus}
            tests.append(lambda item: bool(item.sku) and _sku_key(item.sku) in wanted)
        include = params.get("include")
        if include:
            included = set(include)
            tests.append(lambda item: item.id in included)
        exclude = params.get("exclude")
        if exclude:
            excluded = set(exclude)
            tests.append(lambda item: item.id not in excluded)
        if params.get("type"):
            tests.append(lambda item: item.kind == params["type"])
        status = params.get("status", "any")
        if status and status != "any":
            tests.append(lambda item: item.status == status)
        if params.get("stock_status"):
            tests.append(lambda item: self._stock_status(item) == params["stock_status"])
        window = self._date_window(params)
        if window is not None:
            tests.append(lambda item: window(item.created, item.modified))
        if not tests:
            return None
        return lambda item: all(test(item) for test in tests)

    def _date_window(self, params: Mapping[str, Any]
                     ) -> Callable[[int, int], bool] | None:
        """``after``/``before`` on the creation date, ``modified_after``/``modified_before``
        on the modified one, as ``WP_Date_Query`` compares them (see the module docstring)."""
        site = timedelta(hours=self.utc_offset)
        limits = [(name, _site_naive(params[name], site)) for name in
                  ("after", "before", "modified_after", "modified_before")
                  if params.get(name) is not None]
        if not limits:
            return None
        gmt = bool(params.get("dates_are_gmt"))

        def inside(created: int, modified: int) -> bool:
            for name, limit in limits:
                seconds = modified if name.startswith("modified") else created
                stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)
                if not gmt:
                    stamp += site
                if name.endswith("after") and not stamp > limit:
                    return False
                if name.endswith("before") and not stamp < limit:
                    return False
            return True
        return inside

    def list_orders(self, params: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """``GET /orders``: status, date window (see the module docstring), paging."""
        statuses = params.get("status") or ["any"]
        window = self._date_window(params)
        chosen = []
        for order in self._orders.values():
            if "any" not in statuses and order.status not in statuses:
                continue
            if "any" in statuses and order.status in ("trash", "checkout-draft"):
                continue
            if window is not None and not window(order.created, order.modified):
                continue
            if params.get("include") and order.id not in params["include"]:
                continue
            chosen.append(order)
        orderby = params["orderby"]
        if orderby == "include" and params.get("include"):
            rank = {oid: n for n, oid in enumerate(params["include"])}
            chosen.sort(key=lambda o: rank.get(o.id, 0))
        else:
            def key(o: Order) -> tuple[int, int]:
                if orderby == "date":
                    return (o.created, o.id)
                if orderby == "modified":
                    return (o.modified, o.id)
                return (o.id, o.id)
            chosen.sort(key=key, reverse=params["order"] == "desc")
        per_page = params["per_page"]
        start = params["offset"] if params.get("offset") is not None else (
            (params["page"] - 1) * per_page)
        return [self._order_json(o) for o in chosen[start:start + per_page]], len(chosen)

    # -- writing (prepare_object_for_database) --

    def _set_sku(self, item: Item, value: Any) -> None:
        sku = str(value).strip()
        if sku == item.sku:
            return
        if sku:
            other = self._by_sku.get(_sku_key(sku))
            if other is not None and other != item.id:
                raise RestError("product_invalid_sku", "Invalid or duplicated SKU.", 400,
                                {"resource_id": other})
        if item.sku:
            self._by_sku.pop(_sku_key(item.sku), None)
        item.sku = sku
        if sku:
            self._by_sku[_sku_key(sku)] = item.id

    def _apply_quantity(self, item: Item, body: Mapping[str, Any], route: str) -> None:
        """``stock_quantity`` (absolute) else ``inventory_delta`` on the loaded level."""
        shown_before = self._shown_stock(item)
        own_before = item.stock
        if isset(body, "stock_quantity"):
            computed, kind = php_intval(body["stock_quantity"]), "absolute"
        elif isset(body, "inventory_delta"):
            computed = php_intval(shown_before) + php_intval(body["inventory_delta"])
            kind = "delta"
        else:
            return
        for hook in self._loaded:
            hook(self, item.sku, shown_before)
        item.stock = computed
        effective = self._stock_holder(item) is item
        self._writes.append(Write(
            item.sku, shown_before if effective else own_before, item.stock, kind,
            self.clock(), item.id, route, effective))
        self._write_version += 1

    def _apply_low_stock(self, item: Item, body: Mapping[str, Any]) -> None:
        if "low_stock_amount" in body:
            value = body["low_stock_amount"]
            item.low_stock_amount = None if value is None else php_intval(value)

    def prepare_product(self, item: Item, body: Mapping[str, Any], route: str) -> None:
        """``WC_REST_Products_Controller::prepare_object_for_database`` (stock subset)."""
        if item.kind == "variation":
            raise RestError("woocommerce_rest_invalid_product_id", VARIATION_ROUTE_MESSAGE, 404)
        if isset(body, "name"):
            item.name = str(body["name"])
        if isset(body, "sku"):
            self._set_sku(item, body["sku"])
        stock_status = body["stock_status"] if isset(body, "stock_status") else item.stock_status
        if self.manage_stock == "yes":
            if isset(body, "manage_stock"):
                item.manage_stock = wc_string_to_bool(body["manage_stock"])
            if item.manage_stock:
                if item.kind != "variable":
                    item.stock_status = str(stock_status)
                self._apply_quantity(item, body, route)
                self._apply_low_stock(item, body)
            else:
                item.stock = None
                item.stock_status = str(stock_status)
                item.low_stock_amount = None
        elif item.kind != "variable":
            item.stock_status = str(stock_status)
        self._validate_and_save(item)

    def prepare_variation(self, item: Item, body: Mapping[str, Any], route: str) -> None:
        """``WC_REST_Product_Variations_Controller::prepare_object_for_database``."""
        new_parent = php_intval(body.get("product_id"))
        if new_parent != item.parent_id:
            self._move(item, new_parent)
        if isset(body, "sku"):
            self._set_sku(item, body["sku"])
        if isset(body, "manage_stock"):
            item.manage_stock = wc_string_to_bool(body["manage_stock"])
        if isset(body, "stock_status"):
            item.stock_status = str(body["stock_status"])
        if self._get_manage_stock(item):
            self._apply_quantity(item, body, route)
            self._apply_low_stock(item, body)
        else:
            item.stock = None
            item.low_stock_amount = None
        self._validate_and_save(item)

    def _move(self, item: Item, new_parent: int) -> None:
        old = self._items.get(item.parent_id)
        if old is not None and item.id in old.children:
            old.children.remove(item.id)
        item.parent_id = new_parent
        target = self._items.get(new_parent)
        if item.kind == "variation" and target is not None:
            target.children.append(item.id)
        self._version += 1

    def _validate_and_save(self, item: Item) -> None:
        """``WC_Product::validate_props`` then ``save()``: the modified date moves."""
        if not self._get_manage_stock(item):
            item.stock = None
            item.low_stock_amount = None
        item.modified = self._now()

    def create(self, body: Mapping[str, Any], parent: Item | None, route: str) -> Item:
        """A minimal ``create_item``: name, sku, type simple/variable, stock fields."""
        if isset(body, "id") and php_intval(body["id"]):
            post_type = "product_variation" if parent is not None else "product"
            raise RestError(f"woocommerce_rest_{post_type}_exists",
                            f"Cannot create existing {post_type}.", 400)
        if parent is None:
            kind = body.get("type") if body.get("type") in ("simple", "variable") else "simple"
            item = self._new_item(str(kind), str(body.get("name") or "Product"), "", False,
                                  None)
            self.prepare_product(item, body, route)
            return item
        item = self._new_item("variation", parent.name, "", False, None, parent.id)
        parent.children.append(item.id)
        attributes = body.get("attributes")
        if isinstance(attributes, list):
            item.attributes = {str(a.get("name")): str(a.get("option", ""))
                               for a in attributes if isinstance(a, dict) and a.get("name")}
        self.prepare_variation(item, {"product_id": parent.id, **body}, route)
        return item

    def update(self, body: Mapping[str, Any], variations: bool, route: str) -> dict[str, Any]:
        """``WC_REST_CRUD_Controller::update_item`` with the controller's prepare step."""
        item = self._items.get(php_intval(body.get("id")))
        post_type = "product_variation" if variations else "product"
        if item is None:
            raise RestError(f"woocommerce_rest_{post_type}_invalid_id", "Invalid ID.", 400)
        if variations:
            self.prepare_variation(item, body, route)
            return self._variation_json(item)
        self.prepare_product(item, body, route)
        return self._product_json(item)

    def batch(self, body: Mapping[str, Any], parent_id: int | None, route: str) -> Any:
        """``WC_REST_Controller::batch_items`` (and the variations controller's wrapper)."""
        groups = {k: body.get(k) for k in ("create", "update", "delete") if body.get(k)}
        total = sum(len(v) for v in groups.values() if isinstance(v, (list, dict)))
        if total > self.batch_limit:
            raise RestError("woocommerce_rest_request_entity_too_large",
                            f"Unable to accept more than {self.batch_limit} items for this "
                            "request.", 413)
        answer: dict[str, Any] = {}
        parent = self._items.get(parent_id) if parent_id is not None else None
        variations = parent_id is not None
        for entry in _entries(groups.get("create")):
            answer.setdefault("create", []).append(self._batch_one(
                partial(self._created_json, entry, parent, parent_id, route), 0))
        for entry in _entries(groups.get("update")):
            payload = dict(entry) if isinstance(entry, dict) else {}
            if variations:
                payload = {"product_id": parent_id, **payload}
            answer.setdefault("update", []).append(self._batch_one(
                partial(self.update, payload, variations, route), payload.get("id")))
        for entry in _entries(groups.get("delete")):
            if php_intval(entry):
                answer.setdefault("delete", []).append(self._batch_one(
                    partial(self._delete, php_intval(entry), variations), php_intval(entry)))
        return answer or []  # PHP's empty array encodes as []

    def _created_json(self, entry: Any, parent: Item | None, parent_id: int | None,
                      route: str) -> dict[str, Any]:
        if parent_id is not None and parent is None:
            raise RestError("woocommerce_rest_product_variation_invalid_parent",
                            "Cannot set attributes due to invalid parent product.", 404)
        item = self.create(entry if isinstance(entry, dict) else {}, parent, route)
        return self._variation_json(item) if parent else self._product_json(item)

    def _batch_one(self, action: Callable[[], dict[str, Any]], item_id: Any) -> dict[str, Any]:
        try:
            return action()
        except RestError as error:
            return {"id": item_id, "error": {"code": error.code, "message": error.message,
                                             "data": error.data}}

    def _delete(self, item_id: int, variations: bool) -> dict[str, Any]:
        item = self._items.get(item_id)
        post_type = "product_variation" if variations else "product"
        if item is None:
            raise RestError(f"woocommerce_rest_{post_type}_invalid_id", "Invalid ID.", 404)
        shown = self._variation_json(item) if item.kind == "variation" else (
            self._product_json(item))
        for child in list(item.children):
            self._forget(child)
        parent = self._parent(item)
        if parent is not None and item.id in parent.children:
            parent.children.remove(item.id)
        self._forget(item.id)
        return shown

    def _forget(self, item_id: int) -> None:
        item = self._items.pop(item_id, None)
        if item is not None and item.sku:
            self._by_sku.pop(_sku_key(item.sku), None)
        self._version += 1

    def run_write_hooks(self, hooks: list[Callable[..., Any]], *args: Any) -> None:
        for hook in hooks:
            hook(self, *args)


def _entries(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return []


def _site_naive(moment: datetime, site: timedelta) -> datetime:
    """``WP_Date_Query::build_mysql_datetime``: the date re-expressed in the site's zone."""
    return moment.astimezone(timezone(site)).replace(tzinfo=None)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _token(length: int) -> str:
    import secrets
    return secrets.token_hex(length // 2)


# --- argument validation (WP_REST_Request::has_valid_params) ---------------------------------


@dataclass(frozen=True)
class Arg:
    type: str
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[str, ...] | None = None
    items_enum: tuple[str, ...] | None = None


def _collection_args(kind: str) -> dict[str, Arg]:
    args = {
        "context": Arg("string", "view", enum=("view", "edit")),
        "page": Arg("integer", 1, minimum=1),
        "per_page": Arg("integer", 10, minimum=1, maximum=MAX_PER_PAGE),
        "search": Arg("string"),
        "after": Arg("date-time"), "before": Arg("date-time"),
        "modified_after": Arg("date-time"), "modified_before": Arg("date-time"),
        "dates_are_gmt": Arg("boolean", False),
        "exclude": Arg("int-list", []), "include": Arg("int-list", []),
        "offset": Arg("integer"),
        "order": Arg("string", "desc", enum=("asc", "desc")),
        "parent": Arg("int-list", []), "parent_exclude": Arg("int-list", []),
    }
    if kind == "orders":
        args["orderby"] = Arg("string", "date", enum=ORDER_ORDERBY)
        args["status"] = Arg("string-list", ["any"], items_enum=ORDER_STATUSES)
        return args
    args["orderby"] = Arg("string", "date", enum=PRODUCT_ORDERBY)
    args["status"] = Arg("string", "any", enum=PRODUCT_STATUSES)
    args["sku"] = Arg("string")
    args["stock_status"] = Arg("string", enum=STOCK_STATUSES)
    if kind == "products":
        args["type"] = Arg("string", enum=PRODUCT_TYPES)
    return args


ITEM_ARGS = {
    "name": Arg("string"), "sku": Arg("string"), "manage_stock": Arg("boolean"),
    "stock_quantity": Arg("integer"), "low_stock_amount": Arg("integer-or-null"),
    "stock_status": Arg("string", enum=STOCK_STATUSES),
    "backorders": Arg("string", enum=("no", "notify", "yes")),
}


def _check(name: str, value: Any, arg: Arg, site: timedelta) -> tuple[Any, RestError | None]:
    """One argument: (sanitized value, error) as ``rest_validate_request_arg`` and
    ``rest_sanitize_request_arg`` do."""
    def invalid(code: str, message: str, data: Any = "param") -> tuple[Any, RestError]:
        return value, RestError(code, message, 400,
                                {"param": name} if data == "param" else None)

    if arg.type in ("integer", "integer-or-null"):
        if value is None and arg.type == "integer-or-null":
            return None, None
        if not rest_is_integer(value):
            return invalid("rest_invalid_type", f"{name} is not of type integer.")
        number = int(float(value))
        if arg.minimum is not None and arg.maximum is not None and not (
                arg.minimum <= number <= arg.maximum):
            return invalid("rest_out_of_bounds", f"{name} must be between {arg.minimum} "
                           f"(inclusive) and {arg.maximum} (inclusive)", None)
        if arg.minimum is not None and arg.maximum is None and number < arg.minimum:
            return invalid("rest_out_of_bounds",
                           f"{name} must be greater than or equal to {arg.minimum}", None)
        return number, None
    if arg.type == "boolean":
        if not rest_is_boolean(value):
            return invalid("rest_invalid_type", f"{name} is not of type boolean.")
        return (value.lower() in ("true", "1") if isinstance(value, str) else bool(value)), None
    if arg.type == "date-time":
        parsed = rest_parse_date(value, site) if isinstance(value, str) else None
        if parsed is None:
            return invalid("rest_invalid_date", "Invalid date.")
        return parsed, None
    if arg.type == "int-list":
        parts = wp_parse_list(value)
        for n, part in enumerate(parts):
            if not rest_is_integer(part):
                return invalid("rest_invalid_type", f"{name}[{n}] is not of type integer.")
        return [int(float(p)) for p in parts], None
    if arg.type == "string-list":
        parts = wp_parse_list(value)
        for n, part in enumerate(parts):
            if arg.items_enum and part not in arg.items_enum:
                return invalid("rest_not_in_enum", f"{name}[{n}] is not one of "
                               f"{', '.join(arg.items_enum)}.")
        return parts, None
    if not isinstance(value, str):
        return invalid("rest_invalid_type", f"{name} is not of type string.")
    if arg.enum and value not in arg.enum:
        return invalid("rest_not_in_enum", f"{name} is not one of {', '.join(arg.enum)}.")
    return value, None


def validate(params: Mapping[str, Any], args: Mapping[str, Arg], site: timedelta
             ) -> dict[str, Any]:
    """Defaults filled, present non-null arguments checked and sanitized; every invalid
    one named in a single 400 ``rest_invalid_param``."""
    clean = {name: arg.default for name, arg in args.items()}
    invalid: dict[str, str] = {}
    details: dict[str, Any] = {}
    for name, value in params.items():
        arg = args.get(name)
        if arg is None or value is None:
            if arg is None:
                clean[name] = value
            continue
        sanitized, error = _check(name, value, arg, site)
        if error is not None:
            invalid[name] = error.message
            details[name] = {"code": error.code, "message": error.message,
                             "data": {"param": name} if "param" in error.data else None}
        else:
            clean[name] = sanitized
    if invalid:
        raise RestError("rest_invalid_param",
                        f"Invalid parameter(s): {', '.join(invalid)}", 400,
                        {"params": invalid, "details": details})
    return clean


# --- the HTTP side ---------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


NO_ROUTE = RestError("rest_no_route",
                     "No route was found matching the URL and request method.", 404)
READ_METHODS = ("GET", "HEAD")
EDIT_METHODS = ("POST", "PUT", "PATCH")


class Dispatcher:
    """``WP_REST_Server::serve_request`` for one request: authentication, key permissions,
    routing, argument validation, the route's permission check, then the controller."""

    def __init__(self, standin: WooCommerceStandIn, method: str, path: str, query: str,
                 headers: Any, raw: bytes) -> None:
        self.shop = standin
        self.method = method
        self.path = path
        self.query = php_query(query)
        self.headers = headers
        self.raw = raw
        self.site = timedelta(hours=standin.utc_offset)
        self.user = False

    def run(self) -> Answer:
        try:
            return self._serve()
        except RestError as error:
            return Answer(error.status, error.body(), error.headers)

    def _serve(self) -> Answer:
        if not self.shop.rest_api_enabled or not self.path.startswith("/wp-json/wc/"):
            raise NO_ROUTE
        self._authenticate()
        route = self.path[len(NAMESPACE):] if self.path.startswith(NAMESPACE + "/") else None
        if route is None:
            raise NO_ROUTE
        body = self._body()
        params = {**self.query, **body} if isinstance(body, dict) else dict(self.query)
        return self._route(route.rstrip("/"), params, body if isinstance(body, dict) else {})

    def _authenticate(self) -> None:
        key, secret = self._credentials()
        if key is None:
            return
        if key != self.shop.key:
            return  # an unknown key authenticates nobody; the route says 401
        if secret != self.shop.secret:
            raise RestError("woocommerce_rest_authentication_error",
                            "Consumer secret is invalid.", 401,
                            headers={"WWW-Authenticate": f'Basic realm="{AUTH_REALM}"'})
        self.user = True
        permissions = self.shop.permissions
        if self.method in READ_METHODS and permissions not in ("read", "read_write"):
            raise RestError("woocommerce_rest_authentication_error",
                            "The API key provided does not have read permissions.", 401)
        if self.method in (*EDIT_METHODS, "DELETE") and permissions not in (
                "write", "read_write"):
            raise RestError("woocommerce_rest_authentication_error",
                            "The API key provided does not have write permissions.", 401)

    def _credentials(self) -> tuple[str | None, str | None]:
        key, secret = self.query.get("consumer_key"), self.query.get("consumer_secret")
        if key and secret:
            return str(key), str(secret)
        header = self.headers.get("Authorization") or ""
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None, None
            user, _, password = decoded.partition(":")
            if user and password:
                return user, password
        return None, None

    def _body(self) -> Any:
        if not self.raw:
            return {}
        kind = (self.headers.get("Content-Type") or "").lower()
        if "json" in kind:
            try:
                return json.loads(self.raw)
            except ValueError:
                raise RestError("rest_invalid_json", "Invalid JSON body passed.", 400,
                                {"json_error_code": 4,
                                 "json_error_message": "Syntax error"}) from None
        return php_query(self.raw.decode("utf-8", "replace"))

    def _require(self, code: str, message: str) -> None:
        if not self.user:
            raise RestError(code, message, 401)

    def _route(self, route: str, params: dict[str, Any], body: dict[str, Any]) -> Answer:
        parts = route.strip("/").split("/")
        if parts == ["products"]:
            return self._collection_or_create(params, body, None)
        if parts[0] == "products" and len(parts) >= 2:
            if parts[1] == "batch" and len(parts) == 2:
                return self._batch(params, body, None)
            if not parts[1].isdigit():
                raise NO_ROUTE
            product_id = int(parts[1])
            if len(parts) == 2:
                return self._item(product_id, params, body, None)
            if parts[2] == "variations":
                if len(parts) == 3:
                    return self._collection_or_create(params, body, product_id)
                if len(parts) == 4 and parts[3] == "batch":
                    return self._batch(params, body, product_id)
                if len(parts) == 4 and parts[3].isdigit():
                    return self._item(int(parts[3]), params, body, product_id)
        if parts == ["orders"] and self.method in READ_METHODS:
            return self._orders(params)
        if len(parts) == 2 and parts[0] == "orders" and parts[1].isdigit() and (
                self.method in READ_METHODS):
            return self._order(int(parts[1]))
        if len(parts) == 3 and parts[:2] == ["settings", "products"] and (
                self.method in READ_METHODS):
            return self._setting(parts[2])
        raise NO_ROUTE

    # -- products and variations --

    def _collection_or_create(self, params: dict[str, Any], body: dict[str, Any],
                              product_id: int | None) -> Answer:
        kind = "products" if product_id is None else "variations"
        if self.method in READ_METHODS:
            clean = validate(params, _collection_args(kind), self.site)
            self._require("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
            with self.shop.lock:
                parent = None
                if product_id is not None:
                    parent = self.shop._items.get(product_id)
                page: list[dict[str, Any]] = []  # no such parent: post_parent matches nothing
                total = 0
                if product_id is None or parent is not None:
                    page, total = self.shop.list_products(clean, parent)
            base = f"products/{product_id}/variations" if product_id is not None else "products"
            return self._paged(page, total, clean, base)
        if self.method == "POST":
            validate(params, ITEM_ARGS, self.site)
            self._require("woocommerce_rest_cannot_create", "Sorry, you are not allowed to "
                          "create resources.")
            return self._write(body, lambda: self._create(body, product_id), 201)
        raise NO_ROUTE

    def _create(self, body: dict[str, Any], product_id: int | None) -> dict[str, Any]:
        parent = self.shop._items.get(product_id) if product_id is not None else None
        if product_id is not None and parent is None:
            raise RestError("woocommerce_rest_product_variation_invalid_parent",
                            "Cannot set attributes due to invalid parent product.", 404)
        item = self.shop.create(body, parent, self.path)
        if parent is not None:
            return self.shop._variation_json(item)
        return self.shop._product_json(item)

    def _item(self, item_id: int, params: dict[str, Any], body: dict[str, Any],
              product_id: int | None) -> Answer:
        post_type = "product_variation" if product_id is not None else "product"
        if self.method in READ_METHODS:
            self._require("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
            with self.shop.lock:
                item = self.shop._items.get(item_id)
                if item is None:
                    raise RestError(f"woocommerce_rest_{post_type}_invalid_id", "Invalid ID.",
                                    404)
                data = (self.shop._variation_json(item) if product_id is not None
                        else self._as_product(item))
            return self._answer(200, data)
        if self.method not in EDIT_METHODS:
            raise NO_ROUTE
        validate({k: v for k, v in params.items() if k != "id"}, ITEM_ARGS, self.site)
        self._require("woocommerce_rest_cannot_edit",
                      "Sorry, you are not allowed to edit this resource.")
        url_params: dict[str, Any] = {"id": item_id}
        if product_id is not None:
            url_params["product_id"] = product_id
        merged = {**url_params, **params}  # WP_REST_Request: JSON, then GET, then URL
        if product_id is not None:
            with self.shop.lock:
                item = self.shop._items.get(php_intval(merged.get("id")))
                wanted = php_intval(merged.get("product_id"))
                if item is not None and item.parent_id and item.parent_id != wanted:
                    raise RestError("woocommerce_rest_cannot_edit",
                                    "Parent product does not match current variation.", 403)
        return self._write(body, lambda: self.shop.update(merged, product_id is not None,
                                                          self.path), 200)

    def _as_product(self, item: Item) -> dict[str, Any]:
        return self.shop._product_json(item)

    def _batch(self, params: dict[str, Any], body: dict[str, Any],
               product_id: int | None) -> Answer:
        if self.method not in EDIT_METHODS:
            raise NO_ROUTE
        validate({k: v for k, v in params.items() if k in ITEM_ARGS}, ITEM_ARGS, self.site)
        self._require("woocommerce_rest_cannot_batch",
                      "Sorry, you are not allowed to batch manipulate this resource.")
        items = {k: v for k, v in params.items() if v}
        return self._write(body, lambda: self.shop.batch(items, product_id, self.path), 200)

    def _write(self, body: dict[str, Any], action: Callable[[], Any], status: int) -> Answer:
        with self.shop.lock:
            self.shop.run_write_hooks(self.shop._before, self.path, body)
            try:
                answer = self._answer(status, action())
            except RestError as error:
                answer = Answer(error.status, error.body(), error.headers)
            self.shop.run_write_hooks(self.shop._after, self.path, body, answer.status,
                                      answer.body)
        return answer

    # -- orders and settings --

    def _orders(self, params: dict[str, Any]) -> Answer:
        clean = validate(params, _collection_args("orders"), self.site)
        self._require("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        with self.shop.lock:
            page, total = self.shop.list_orders(clean)
        return self._paged(page, total, clean, "orders")

    def _order(self, order_id: int) -> Answer:
        self._require("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
        with self.shop.lock:
            order = self.shop._orders.get(order_id)
            if order is None:
                raise RestError("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
            return self._answer(200, self.shop._order_json(order))

    def _setting(self, setting_id: str) -> Answer:
        self._require("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
        if setting_id != "woocommerce_manage_stock":
            raise RestError("rest_setting_setting_invalid", "Invalid setting.", 404)
        value = self.shop.manage_stock
        return self._answer(200, {
            "id": "woocommerce_manage_stock", "label": "Manage stock",
            "description": "Enable stock management", "type": "checkbox", "default": "yes",
            "tip": "", "value": value, "group_id": "products",
            "_links": {"self": [{"href": f"{self.shop.api_url}/settings/products/"
                                         "woocommerce_manage_stock"}],
                       "collection": [{"href": f"{self.shop.api_url}/settings/products"}]}})

    # -- answers --

    def _answer(self, status: int, data: Any) -> Answer:
        if "_fields" in self.query:
            data = filter_fields(data, self.query["_fields"])
        return Answer(status, data)

    def _paged(self, page: list[dict[str, Any]], total: int, clean: Mapping[str, Any],
               base: str) -> Answer:
        """``get_items()``'s headers: totals and the ``Link`` built by ``add_query_arg``."""
        answer = self._answer(200, page)
        per_page = clean["per_page"]
        pages = math.ceil(total / per_page)
        current = clean["page"]
        answer.headers["X-WP-Total"] = str(total)
        answer.headers["X-WP-TotalPages"] = str(pages)
        links = []
        if current > 1:
            links.append(f'<{self._page_url(base, min(current - 1, pages))}>; rel="prev"')
        if pages > current:
            links.append(f'<{self._page_url(base, current + 1)}>; rel="next"')
        if links:
            answer.headers["Link"] = ", ".join(links)
        return answer

    def _page_url(self, base: str, page: int) -> str:
        query = dict(self.query)
        query["page"] = str(page)
        pairs: list[str] = []
        for key, value in query.items():
            if isinstance(value, list):
                pairs.extend(f"{key}%5B{n}%5D={php_urlencode(v)}" for n, v in enumerate(value))
            else:
                pairs.append(f"{key}={php_urlencode(value)}")
        return f"{self.shop.api_url}/{base}?{'&'.join(pairs)}"


def _handler_for(standin: WooCommerceStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle and the client's
            # delayed ACK add ~40 ms to every small answer on a kept-alive connection
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _send(self, status: int, data: bytes, content_type: str,
                  headers: Mapping[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Robots-Tag", "noindex")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Access-Control-Expose-Headers",
                             "X-WP-Total, X-WP-TotalPages, Link")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self) -> None:
            started = standin.clock()
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not path.startswith("/wp-json/"):
                data = b"<!DOCTYPE html><html><body><h1>Page not found</h1></body></html>"
                # Logged before the answer leaves: the client's next request must find
                # this one in the log (logging after the send let it overtake).
                standin.log(Call(self.command, path, parts.query, 404, len(raw), len(data),
                                 started))
                self._send(404, data, "text/html; charset=UTF-8", {})
                return
            fault = standin.take_fault(self.command)
            if fault is not None:
                status, retry_after = fault
                content_type, data = FAULT_BODIES.get(status, FAULT_BODIES[500])
                extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                standin.log(Call(self.command, path, parts.query, status, len(raw),
                                 len(data), started))
                self._send(status, data, content_type, extra)
                return
            try:
                answer = Dispatcher(standin, self.command, path, parts.query,
                                    self.headers, raw).run()
            except Exception:  # a bug of the stand-in: loud, and answered as WordPress would
                traceback.print_exc()
                _, data = FAULT_BODIES[500]
                answer = Answer(500, json.loads(data.decode().replace("\\/", "/")))
            data = wp_json(answer.body)
            standin.log(Call(self.command, path, parts.query, answer.status, len(raw),
                             len(data), started))
            if standin.take_drop():
                drop_connection(self)
                return
            self._send(answer.status, data, "application/json; charset=UTF-8",
                       answer.headers)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return Handler
