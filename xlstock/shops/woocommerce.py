"""The WooCommerce connector: Sync, Preview and Publish on a WooCommerce shop through its
REST API (``/wp-json/wc/v3``), with the race made as small as the API allows and every
slip found and told.

WooCommerce has no conditional stock write: ``stock_quantity`` is absolute and the last
writer wins. So:

* A delivery is sent as ``inventory_delta``: WooCommerce's REST controller adds it to the
  level it loads while handling the request, so only a sale landing inside that handling
  (milliseconds) could be lost; such a sale is found and taken off again as a count's is
  (below).
* A count is an absolute ``stock_quantity``. Just before each batch (at most 100 items,
  WooCommerce's limit) the batch's live levels are read again; a count whose level moved
  since it was planned is not written but handed back to the planner (``StaleVersion``:
  re-planned under ``rebase``, refused under ``strict``). Then the batch is written.
* A sale landing between that re-read and the write is overwritten, and reading the level
  back cannot show it (it reads what was written). xlstock finds it in the shop's orders
  created since the re-read (``/orders?after=``, each order counted once): when the level
  left is the count itself although sales came in, those sales were overwritten, and
  xlstock takes them off again with an ``inventory_delta`` (the rule of the plan: a count
  is moved by what sold). A delivery the same way: its level should be the re-read level
  plus the delivery less those sales. Anything it cannot explain is reported on its row
  as "a sale may have been overwritten", with the numbers.
* A publish killed at any moment: WooCommerce cannot be asked what it applied, so the
  next publish decides line by line from the live level and the sales since the publish
  was planned (its key carries that time): at ``to - sales`` it was applied, at ``from -
  sales`` it was not (and is sent), anything else is reported, never sent again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from xlstock import failpoints
from xlstock.errors import (
    OutcomeUnknown,
    ServiceError,
    ServiceRefused,
    ServiceUnreachable,
    StaleVersion,
    UsageError,
)
from xlstock.i18n import N_, _
from xlstock.model import Snapshot, StockItem, is_loopback_host, sku_key, sku_problem
from xlstock.planner import PublishLine
from xlstock.remote.connector import (
    SessionOwner,
    levels_version,
    named_skus,
    resolve_token,
    retry_after,
    settle_environment,
)
from xlstock.remote.transport import (
    Deadline,
    NotJson,
    decode_json,
    mapped_errors,
    read_body,
)

log = logging.getLogger("xlstock.woocommerce")

API = "/wp-json/wc/v3"
PAGE = 100
"""WooCommerce's largest page (``per_page``) and batch (items a batch request takes)."""
BUSY = (429, 500, 502, 503, 504)
"""Statuses a busy or failing server answers (often with a proxy's HTML page, not JSON)."""
PRODUCT_FIELDS = "id,name,sku,type,manage_stock,stock_quantity,low_stock_amount"
VARIATION_FIELDS = "id,sku,manage_stock,stock_quantity,attributes,low_stock_amount"
ORDER_FIELDS = "id,date_created_gmt,line_items,status"
MAX_ANSWER = 64 * 1024 * 1024
KEYS_MENU = N_("WooCommerce > Settings > Advanced > REST API")
KEYS_PAGE = N_("{menu}: edit the key (or add one) and set Permissions to Read/Write")
"""Where the REST API keys are, and what to do there (English: shown translated)."""


def _keys_page() -> str:
    return _(KEYS_PAGE, menu=_(KEYS_MENU))
_STAMP = "%Y%m%dT%H%M%SZ"


def shop_address(text: str) -> str:
    """The shop's address: https, or http for a loopback host (a stand-in)."""
    raw = text.strip().rstrip("/")
    scheme, _sep, rest = raw.rpartition("://")
    host = rest.split("/", 1)[0].rsplit(":", 1)[0].strip("[]").lower()
    if not host:
        raise UsageError(_("the WooCommerce shop's address is empty; give it, e.g. "
                           "https://shop.example"))
    if scheme.lower() == "http" and not is_loopback_host(host):
        raise UsageError(_("{address}: a WooCommerce shop is reached over https only (its REST "
                           "API keys travel with every request)", address=repr(text)))
    if scheme and scheme.lower() not in ("http", "https"):
        raise UsageError(_("{address} is not a web address; give https://shop.example",
                           address=repr(text)))
    return raw if scheme else f"https://{raw}"


def publish_key(now: dt.datetime | None = None) -> str:
    """A publish key that carries its time (UTC, to the second), so that a rerun knows
    since when to count the shop's sales."""
    import uuid

    moment = now or dt.datetime.now(dt.timezone.utc)
    return f"{moment.strftime(_STAMP)}-{uuid.uuid4().hex[:20]}"


def key_time(key: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(key.split("-", 1)[0], _STAMP).replace(
            tzinfo=dt.timezone.utc)
    except ValueError:
        return None


@dataclass(frozen=True)
class WooOutcome:
    """What became of a publish on WooCommerce (see :class:`xlstock.actions.PublishOutcome`)."""

    key: str
    version: str
    levels_after: dict[str, int] = field(default_factory=dict)
    slips: tuple[tuple[str, str], ...] = ()
    """A sale each that may have been overwritten and could not be repaired."""
    repaired: tuple[str, ...] = ()
    applied: bool = True


@dataclass
class _Item:
    sku: str
    product: int
    variation: int | None
    level: int
    name: str = ""
    variant: str = ""
    low_at: int | None = None

    @property
    def endpoint(self) -> str:
        if self.variation is None:
            return "/products/batch"
        return f"/products/{self.product}/variations/batch"

    @property
    def id(self) -> int:
        return self.variation if self.variation is not None else self.product


class WooCommerceConnector(SessionOwner):
    """A WooCommerce shop, as Sync, Preview and Publish use it."""

    outcome_known = False

    def __init__(
        self,
        shop: str,
        *,
        credential: str | None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
        progress: Callable[[str], None] | None = None,
        margin: float = 2.0,
    ) -> None:
        self.shop = shop_address(shop)
        self.shop_url = self.shop
        self.attempts = attempts
        self.margin = margin
        self.progress = progress
        self._credential = credential
        self._sleep = sleep
        self._use_session(session)
        self._environment = settle_environment(self._session, self.shop)
        self._items: dict[str, _Item] | None = None
        self._resending = False
        self._sales: dict[str, int] | None = None
        self.requests = 0
        self.request_seconds = 0.0
        self.windows: list[float] = []
        """Seconds from each re-read's start to its batch's written answer: the most a
        sale can be overwritten in (for the bench)."""
        self.location = ""
        """A Location the workbook names: WooCommerce has none, so Sync says it is left
        aside rather than let the merchant think the sheet is that location's stock."""

    @classmethod
    def from_settings(cls, settings: Any) -> WooCommerceConnector:
        address = shop_address(settings.shop_url or settings.service_url)
        connector = cls(address, credential=resolve_token(address))
        connector.location = str(getattr(settings, "location", "") or "")
        return connector

    def __repr__(self) -> str:
        return f"WooCommerceConnector({self.shop!r})"

    # ------------------------------------------------------------------ reading

    def read_levels(self, if_none_match: str | None = None, *,
                    names: bool = True) -> Snapshot | None:
        """Every simple product and variation with managed stock (``None`` when the
        levels are those of version ``if_none_match``, a hash of them)."""
        self._check_stock_management()
        collected = _Collector()
        variable: list[dict[str, Any]] = []
        for product in self._pages("/products", {"_fields": PRODUCT_FIELDS}):
            if product.get("type") == "variable":
                variable.append(product)
                if product.get("manage_stock") is True:
                    collected.add(product, None, names)  # its stock is the parent's
                continue
            collected.add(product, None, names)
        for number, product in enumerate(variable, start=1):
            self._say(_("Reading the variations of {number:n} of {total:n} variable products",
                        number=number, total=len(variable)))
            for variation in self._pages(f"/products/{product['id']}/variations",
                                         {"_fields": VARIATION_FIELDS}):
                collected.add_variation(product, variation, names)
        items, notices = collected.finish()
        left_out = collected.left_out()
        if self.location:
            notices.insert(0, _(
                "Settings: Location {location!r} is left aside: WooCommerce keeps one stock "
                "level per product, not one per location; clear Location",
                location=self.location))
        self._items = items
        low_at = {sku: item.low_at for sku, item in items.items() if item.low_at is not None}
        version = levels_version("woocommerce", {sku: item.level for sku, item in items.items()})
        if if_none_match is not None and if_none_match == version:
            return None
        stock = {sku: StockItem(sku, item.name, item.variant, item.level)
                 for sku, item in sorted(items.items())}
        return Snapshot(self.shop, version, stock, notices=tuple(notices), low_at=low_at,
                        left_out=left_out)

    def _check_stock_management(self) -> None:
        answer = self._get("/settings/products/woocommerce_manage_stock", {})
        if answer.status == 200 and isinstance(answer.data, dict) and \
                answer.data.get("value") == "no":
            raise UsageError(
                _("stock management is switched off on {shop}: switch it on in WooCommerce > "
                  "Settings > Products > Inventory > Manage stock, then sync", shop=self.shop))

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            answer = self._get(path, {**params, "per_page": PAGE, "page": page})
            if answer.status != 200 or not isinstance(answer.data, list):
                raise self._refusal(answer, f"GET {path}")
            yield from answer.data
            total = _int(answer.headers.get("X-WP-TotalPages"))
            if total is None or page >= total or not answer.data:
                return
            page += 1

    # ---------------------------------------------------------------- publishing

    def publish_lines(self, lines: Sequence[PublishLine], key: str) -> WooOutcome:
        """Send the lines in batches of at most 100 (one endpoint a batch), each after a
        re-read of its live levels; see the module's docstring."""
        items = self._items_for(lines)
        planned_at = key_time(key)
        applied: dict[str, int] = {}
        moved: dict[str, int] = {}
        slips: list[tuple[str, str]] = []
        repaired: list[str] = []
        batches = self.batches_for(lines, items)
        for number, batch in enumerate(batches, start=1):
            self._say(_("Publishing batch {number} of {total} to WooCommerce", number=number,
                        total=len(batches)))
            counts = any(line.add is None for line in batch)
            # The orders before the re-read: whatever comes after them is a sale that may
            # land between the re-read and the write (told apart by order id, not by
            # clocks, which WooCommerce keeps to the second), or inside a delivery's write.
            before = self._order_ids_since(_utc_now() - dt.timedelta(seconds=60))
            reread_started = time.perf_counter()
            live, reread_at = self._live_levels(batch, items)
            failpoints.reach(f"woocommerce_before_batch_{number}")
            send = self._lines_to_send(batch, live, planned_at, items, applied, moved, slips)
            if moved and not self._resending:
                break  # nothing more is written: the moved counts are planned again first
            if not send:
                continue
            written = self._write(batch[0], send, items)
            if counts:
                self.windows.append(time.perf_counter() - reread_started)
            failpoints.reach(f"woocommerce_after_batch_{number}")
            sent = [line for line in send if line.sku in written]
            levels, found, fixed = self._find_slips(sent, live, before, reread_at, items)
            written.update(levels)
            applied.update(written)
            slips.extend(found)
            repaired.extend(fixed)
        if moved:
            raise StaleVersion(
                _("the levels of {count:n} SKU(s) moved on {shop} since they were read ({skus})",
                  count=len(moved), shop=self.shop, skus=", ".join(sorted(moved)[:5])),
                status=None, code="levels_moved",
                moved=moved, applied=applied)
        return WooOutcome(key, "", applied, tuple(slips), tuple(repaired))

    def _lines_to_send(self, batch: Sequence[PublishLine], live: Mapping[str, int],
                       planned_at: dt.datetime | None, items: Mapping[str, _Item],
                       applied: dict[str, int], moved: dict[str, int],
                       slips: list[tuple[str, str]]) -> list[PublishLine]:
        """The lines of a batch still to be written, against the levels just re-read.

        A line an interrupted publish already applied goes to ``applied``; one it may or
        may not have applied to ``applied`` and ``slips`` (nothing is sent again); a count
        whose level moved since the sync to ``moved``. A SKU gone from the shop stops the
        publish (:class:`ServiceRefused`)."""
        send: list[PublishLine] = []
        for line in batch:
            level = live.get(line.sku)
            if level is None:
                raise ServiceRefused(_("SKU {sku} is no longer in {shop}; sync and publish "
                                       "again", sku=line.sku, shop=self.shop))
            done = self._already_applied(line, level, planned_at, items)
            if done is True:
                applied[line.sku] = level
            elif done is None:
                slips.append((line.sku, _(
                    "a publish was interrupted and the level is now {level} (planned from "
                    "{planned_from} to {target}); it cannot be told whether it was applied: "
                    "nothing was sent again; count the shelf and publish a New level",
                    level=level, planned_from=line.planned_from, target=line.target)))
                applied[line.sku] = level
            elif line.add is None and level != line.planned_from:
                moved[line.sku] = level
            else:
                send.append(line)
        return send

    def publish_outcome(self, key: str) -> WooOutcome | None:
        """WooCommerce cannot be asked about a key: always ``None``."""
        return None

    @staticmethod
    def batches_for(lines: Sequence[PublishLine], items: Mapping[str, _Item]
                    ) -> list[list[PublishLine]]:
        """The lines by endpoint (simple products; each variable product's variations),
        by SKU, 100 a batch; the batches with counts first. A count whose level moved
        ends the publish before its batch is written (deliveries never move), so a
        strict publish whose counts fit one batch publishes nothing on a conflict."""
        by_endpoint: dict[str, list[PublishLine]] = {}
        for line in sorted(lines, key=lambda line: line.sku):
            by_endpoint.setdefault(items[line.sku].endpoint, []).append(line)
        batches = [group[start:start + PAGE] for _, group in sorted(by_endpoint.items())
                   for start in range(0, len(group), PAGE)]
        return sorted(batches, key=lambda batch: all(line.add is not None for line in batch))

    def _already_applied(self, line: PublishLine, level: int, planned_at: dt.datetime | None,
                         items: Mapping[str, _Item]) -> bool | None:
        """For a line of an interrupted publish (``planned_at`` known and old): whether
        it was applied (``True``), was not (``False``), or cannot be told (``None``),
        from its live level and the sales since it was planned. ``False`` for a fresh
        publish."""
        if planned_at is None or not self._resending:
            return False
        sold = self._sales_since(planned_at - dt.timedelta(seconds=self.margin)) \
            .get(line.sku, 0)
        if level == line.target - sold:
            return True
        if level == line.planned_from - sold:
            return False
        return None

    def new_key(self) -> str:
        """The key of a new publish: it carries its time (:func:`publish_key`)."""
        return publish_key()

    def resend(self, lines: Sequence[PublishLine], key: str) -> WooOutcome:
        """:meth:`publish_lines` for a publish sent before and interrupted: each line
        is checked against the live level and the sales since before it is sent."""
        self._resending = True
        self._sales = None
        try:
            return self.publish_lines(lines, key)
        finally:
            self._resending = False

    def _sales_since(self, since: dt.datetime) -> dict[str, int]:
        if self._sales is not None:
            return self._sales
        self._sales = _units_sold(self._orders_after(since))
        return self._sales

    def _orders_after(self, since: dt.datetime) -> list[dict[str, Any]]:
        seen: dict[int, dict[str, Any]] = {}
        stamp = since.strftime("%Y-%m-%dT%H:%M:%S")
        for order in self._pages("/orders", {"after": stamp, "dates_are_gmt": "true",
                                             "_fields": ORDER_FIELDS, "status": "any"}):
            seen.setdefault(int(order["id"]), order)  # an order counted once
        return list(seen.values())

    def _live_levels(self, batch: Sequence[PublishLine], items: Mapping[str, _Item]
                     ) -> tuple[dict[str, int], dt.datetime]:
        """The batch's live levels, read just before it is written, and the shop's time
        of that read (its ``Date`` header, to the second, less the margin)."""
        first = items[batch[0].sku]
        ids = ",".join(str(items[line.sku].id) for line in batch)
        path = "/products" if first.variation is None else \
            f"/products/{first.product}/variations"
        answer = self._get(path, {"include": ids, "per_page": PAGE,
                                  "_fields": "id,stock_quantity"})
        if answer.status != 200 or not isinstance(answer.data, list):
            raise self._refusal(answer, f"GET {path}")
        by_id = {int(row["id"]): row.get("stock_quantity") for row in answer.data}
        live = {line.sku: int(by_id[items[line.sku].id]) for line in batch
                if by_id.get(items[line.sku].id) is not None}
        return live, answer.time - dt.timedelta(seconds=self.margin)

    def _write(self, first: PublishLine, lines: Sequence[PublishLine],
               items: Mapping[str, _Item]) -> dict[str, int]:
        """One batch write; SKU -> level left for each line WooCommerce applied. A line
        it refused (an error inside its 200 answer) raises :class:`ServiceRefused` naming
        the SKU, with what was applied."""
        path = items[first.sku].endpoint
        update = _update_entries(lines, items)
        answer = self._send("POST", path, {"update": update})
        if answer.status == 413:
            raise ServiceRefused(_("{shop} refused a batch of {count} items (413): it takes fewer "
                                   "than WooCommerce's 100; report this", shop=self.shop,
                                   count=len(update)))
        if answer.status != 200 or not isinstance(answer.data, dict):
            raise self._refusal(answer, f"POST {path}")
        written, refused = _batch_answer(answer.data, lines, items)
        if refused:
            error = ServiceRefused(
                _("{shop} refused {count:n} line(s): {lines}", shop=self.shop, count=len(refused),
                  lines="; ".join(f"SKU {r['sku']}: {r['problem']}" for r in refused[:5])),
                items=refused)
            error.applied = written
            raise error
        return written

    def _find_slips(self, sent: Sequence[PublishLine], live: Mapping[str, int],
                    before: set[int], reread_at: dt.datetime, items: Mapping[str, _Item]
                    ) -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
        """Sales of the SKUs written in orders that were not there before the re-read
        may have been overwritten by the write (a count's level; a delivery's, which
        WooCommerce loads, adds to and saves): when the level left is the one written
        (the count, or the re-read level plus the delivery), they were, and they are
        taken off again (the rule of the plan: a count is moved by what sold); when it is
        that less those sales, they came after the write; any other level is reported."""
        if not sent:
            return {}, [], []
        sold = _units_sold(order for order in
                           self._orders_after(reread_at - dt.timedelta(seconds=60))
                           if int(order["id"]) not in before)
        levels: dict[str, int] = {}
        slips: list[tuple[str, str]] = []
        repaired: list[str] = []
        for line in sent:
            sales = sold.get(line.sku, 0)
            if not sales:
                continue
            now = self._level_now(line.sku, items)
            written = line.target if line.add is None else live[line.sku] + line.add
            if now == written - sales:
                levels[line.sku] = now  # the sales came after the write: nothing lost
            elif now == written:
                fixed = self._repair(line.sku, -sales, items)
                levels[line.sku] = fixed
                repaired.append(
                    _("{sku}: {sales:n} unit(s) sold while the count was written "
                      "were overwritten; taken off again ({left:n} left)",
                      sku=line.sku, sales=sales, left=fixed) if line.add is None else
                    _("{sku}: {sales:n} unit(s) sold while the delivery was added were "
                      "overwritten; taken off again ({left:n} left)",
                      sku=line.sku, sales=sales, left=fixed))
            else:
                levels[line.sku] = now
                slips.append((line.sku, _(
                    "a sale may have been overwritten (counted {target:n}, {sales:n} sold "
                    "since the re-read, {now:n} online now); count it again",
                    target=line.target, sales=sales, now=now) if line.add is None else _(
                    "a sale may have been overwritten ({level:n} online before the delivery "
                    "of {add:n}, {sales:n} sold since, {now:n} online now); count it again",
                    level=live[line.sku], add=line.add, sales=sales, now=now)))
        return levels, slips, repaired

    def _order_ids_since(self, since: dt.datetime) -> set[int]:
        return {int(order["id"]) for order in self._orders_after(since)}

    def _level_now(self, sku: str, items: Mapping[str, _Item]) -> int:
        item = items[sku]
        path = f"/products/{item.product}" if item.variation is None else \
            f"/products/{item.product}/variations/{item.variation}"
        answer = self._get(path, {"_fields": "id,stock_quantity"})
        if answer.status != 200 or not isinstance(answer.data, dict):
            raise self._refusal(answer, f"GET {path}")
        return int(answer.data.get("stock_quantity") or 0)

    def _repair(self, sku: str, delta: int, items: Mapping[str, _Item]) -> int:
        item = items[sku]
        path = f"/products/{item.product}" if item.variation is None else \
            f"/products/{item.product}/variations/{item.variation}"
        answer = self._send("PUT", path, {"inventory_delta": delta})
        if answer.status != 200 or not isinstance(answer.data, dict):
            raise self._refusal(answer, f"PUT {path}")
        return int(answer.data.get("stock_quantity") or 0)

    def _items_for(self, lines: Sequence[PublishLine]) -> dict[str, _Item]:
        if self._items is None or any(line.sku not in self._items for line in lines):
            self.read_levels(names=False)
        assert self._items is not None
        missing = [line.sku for line in lines if line.sku not in self._items]
        if missing:
            raise ServiceRefused(_("{count} SKU(s) of the publish are no longer in {shop} "
                                   "({skus}); sync and publish again", count=len(missing),
                                   shop=self.shop, skus=", ".join(missing[:5])),
                                 items=[{"sku": s, "problem": _("not in the shop")}
                                                 for s in missing])
        return self._items

    # ------------------------------------------------------------------ plumbing

    def _auth(self) -> tuple[str, str]:
        credential = self._credential or ""
        key, _sep, secret = credential.partition(":")
        if not key.strip() or not secret.strip():
            raise UsageError(
                _("no REST API key for {shop}: create one in {value} and store it as KEY:SECRET "
                  "in the keyring (keyring set xlstock {shop}) or in XLSTOCK_TOKEN; see "
                  "docs/woocommerce.md", shop=self.shop, value=_(KEYS_MENU)))
        return key.strip(), secret.strip()

    def _get(self, path: str, params: Mapping[str, Any]) -> _Answer:
        return self._request("GET", path, params=params)

    def _send(self, method: str, path: str, body: Any) -> _Answer:
        return self._request(method, path, body=body, resend=False)

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 body: Any = None, resend: bool = True) -> _Answer:
        """One request, retried on 429/5xx and lost connections when it is a read (a
        write is never sent twice: WooCommerce has no idempotency key)."""
        url = self.shop + API + path
        what = f"{method} {url}"
        for attempt in range(self.attempts):
            try:
                answer = self._exchange(method, url, what, params, body)
            except ServiceUnreachable as lost:
                if resend and attempt + 1 < self.attempts:
                    self._back_off(attempt, None, what)
                    continue
                if not resend and lost.may_have_arrived is not False:
                    raise OutcomeUnknown(_(
                        "{problem}. The write may have reached WooCommerce: run publish again; "
                        "it checks each line against the shop's level and its sales before "
                        "sending anything again", problem=lost.message)) from lost
                raise
            if answer.status in BUSY:
                # a 429 is answered before WordPress runs: nothing was applied, a write too
                if (resend or answer.status == 429) and attempt + 1 < self.attempts:
                    self._back_off(attempt, retry_after(answer.headers), what,
                                   answer.status)
                    continue
                raise self._busy(answer.status, what, resend, attempt + 1)
            if answer.status in (401, 403):
                raise self._refusal(answer, what)
            if answer.status == 404 and isinstance(answer.data, dict) and \
                    answer.data.get("code") == "rest_no_route":
                raise ServiceRefused(
                    _("{what} answered rest_no_route: the WooCommerce REST API is not there. Is "
                      "WooCommerce active on the site, and are pretty permalinks on (WordPress > "
                      "Settings > Permalinks, anything but Plain)?", what=what), status=404)
            return answer
        raise ServiceRefused(_("{what} kept failing; try again later", what=what))

    def _exchange(self, method: str, url: str, what: str, params: Mapping[str, Any] | None,
                  body: Any) -> _Answer:
        deadline = Deadline(120)
        started = time.perf_counter()
        key, secret = self._auth()
        with mapped_errors(what, deadline, max_body=MAX_ANSWER, secret=secret), \
                deadline.watching():
            response = self._session.request(
                method, url, params=dict(params or {}), auth=(key, secret),
                data=None if body is None else json.dumps(body).encode(),
                headers={"Accept": "application/json", "Content-Type": "application/json"},
                stream=True, timeout=(10, 60), allow_redirects=False, **self._environment)
            try:
                raw = read_body(response, deadline, MAX_ANSWER)
            finally:
                response.close()
        self.requests += 1
        self.request_seconds += time.perf_counter() - started
        log.info("%s -> %s (%d bytes, %.3f s)", what, response.status_code, len(raw),
                 time.perf_counter() - started)
        try:
            data = decode_json(raw, response.headers.get("Content-Type", "")) if raw else None
        except NotJson as exc:
            if response.status_code in BUSY:  # a proxy's or a maintenance page
                return _Answer(response.status_code, response.headers, None,
                               dt.datetime.now(dt.timezone.utc))
            raise ServiceRefused(_("{what} did not answer WooCommerce's JSON: is {shop} a "
                                   "WooCommerce shop?", what=what, shop=self.shop)) from exc
        try:
            moment = parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError):
            moment = dt.datetime.now(dt.timezone.utc)
        return _Answer(response.status_code, response.headers, data, moment)

    def _busy(self, status: int, what: str, resend: bool, tries: int) -> ServiceError:
        """The error of a request still answered 429 or 5xx after its last try; a write
        answered 5xx may have been applied all the same (the server failed on its way, or
        a proxy gave up waiting for it)."""
        error = ServiceRefused(_("{what} answered {status} {count} times; try again later",
                                 what=what, status=status, count=tries), status=status)
        if resend or status == 429:
            return error
        return OutcomeUnknown(_(
            "{problem}. The write may have reached WooCommerce: run publish again; it checks "
            "each line against the shop's level and its sales before sending anything again",
            problem=error.message))

    def _refusal(self, answer: _Answer, what: str) -> ServiceError:
        data = answer.data if isinstance(answer.data, dict) else {}
        code = str(data.get("code") or "")
        message = str(data.get("message") or "")[:300]
        if answer.status in (401, 403) and "write permission" in message.lower():
            return ServiceRefused(
                _("{shop} refused to change stock with this REST API key (it has no write "
                  "permissions); {how}", shop=self.shop, how=_keys_page()),
                status=answer.status, code=code)
        if answer.status in (401, 403):
            if "cannot_view" in code or "authentication" in code or "cannot_list" in code \
                    or answer.status == 401 and "edit" not in code and "create" not in \
                    code and "batch" not in code:
                return ServiceRefused(
                    _("{shop} refused the REST API key ({status} {code}): check the key and "
                      "secret ({how})", shop=self.shop, status=answer.status, code=code,
                      how=_keys_page()), status=answer.status, code=code)
            return ServiceRefused(
                _("{shop} refused to change stock with this REST API key ({status} {code}): it "
                  "has no write rights; {how}", shop=self.shop, status=answer.status,
                  code=code, how=_keys_page()),
                status=answer.status, code=code)
        return ServiceRefused(_("{what} answered {status} {code}: {message}", what=what,
                                status=answer.status, code=code, message=message),
                              status=answer.status, code=code)



@dataclass
class _Answer:
    status: int
    headers: Any
    data: Any
    time: dt.datetime


class _Collector:
    """Products and variations as they come; only those with managed stock and a SKU of
    their own are kept, every one left out is named."""

    def __init__(self) -> None:
        self.items: dict[str, _Item] = {}
        self.duplicates: set[str] = set()
        self.no_sku = 0
        self.unmanaged: list[str] = []
        self.parent_stock: list[str] = []
        self.bad: list[str] = []

    def add(self, product: Mapping[str, Any], variation: Mapping[str, Any] | None,
            names: bool) -> None:
        row = variation or product
        sku = self._keepable(row)
        if sku:
            self.items[sku] = _item_of(product, variation, row, sku, names)

    def _keepable(self, row: Mapping[str, Any]) -> str:
        """The SKU of ``row`` when it is kept; "" when it is left out, after counting it
        where :meth:`finish` names it (no SKU, an unusable SKU, stock not managed, a SKU
        seen twice: then neither row is kept)."""
        sku = sku_key(str(row.get("sku") or ""))
        if not sku:
            if row.get("manage_stock") is True:
                self.no_sku += 1
            return ""
        if sku_problem(sku):
            self.bad.append(sku[:40])
            return ""
        if row.get("manage_stock") is not True or row.get("stock_quantity") is None:
            self.unmanaged.append(sku)
            return ""
        if sku in self.items or sku in self.duplicates:
            self.duplicates.add(sku)
            self.items.pop(sku, None)
            return ""
        return sku

    def add_variation(self, product: Mapping[str, Any], variation: Mapping[str, Any],
                      names: bool) -> None:
        if variation.get("manage_stock") == "parent":
            sku = sku_key(str(variation.get("sku") or ""))
            if sku:
                self.parent_stock.append(sku)
            return
        self.add(product, variation, names)

    def left_out(self) -> dict[str, str]:
        """SKU -> why it was left out, for a sheet row that names it."""
        reasons: dict[str, str] = {}
        for skus, reason in (
            (self.unmanaged, _("WooCommerce does not manage its stock: tick 'Manage stock?' "
                               "on it in WooCommerce, then sync")),
            (self.duplicates, _("on more than one product or variation: give each its own "
                                "SKU in WooCommerce, then sync")),
        ):
            reasons.update(dict.fromkeys(skus, reason))
        return reasons

    def finish(self) -> tuple[dict[str, _Item], list[str]]:
        notices: list[str] = []
        if self.no_sku:
            notices.append(_("{count:n} product(s) or variation(s) with managed stock have no "
                             "SKU and were left out: give each a SKU in WooCommerce",
                             count=self.no_sku))
        for label, skus in (
            (N_("{count:n} SKU(s) on more than one product or variation (left out: give each "
                "its own SKU): {skus}"), sorted(self.duplicates)),
            (N_("{count:n} SKU(s) without managed stock in WooCommerce (left out: tick 'Manage "
                "stock?' to keep it here): {skus}"), self.unmanaged),
            (N_("{count:n} SKU(s) of variations whose stock is their product's (kept on the "
                "product's row): {skus}"), self.parent_stock),
            (N_("{count:n} SKU(s) not usable as SKUs (left out): {skus}"), self.bad),
        ):
            if skus:
                notices.append(named_skus(label, skus))
        return self.items, notices


def _item_of(product: Mapping[str, Any], variation: Mapping[str, Any] | None,
             row: Mapping[str, Any], sku: str, names: bool) -> _Item:
    """The kept :class:`_Item` of a product, or of one of its variations (``row`` is the
    variation then): names only when asked for, a low-stock threshold only when it is a
    whole number of at least 0."""
    variant = ""
    if variation is not None:
        variant = " / ".join(str(a.get("option") or "") for a in
                             variation.get("attributes") or [])
    low = row.get("low_stock_amount")
    return _Item(sku, int(product["id"]),
                 None if variation is None else int(variation["id"]),
                 int(row["stock_quantity"]),
                 str(product.get("name") or "") if names else "",
                 variant if names else "",
                 low if isinstance(low, int) and not isinstance(low, bool)
                 and low >= 0 else None)


def _update_entries(lines: Sequence[PublishLine], items: Mapping[str, _Item]
                    ) -> list[dict[str, Any]]:
    """The ``update`` list of a batch write: a delivery as a delta, a count as the level."""
    update = []
    for line in lines:
        entry: dict[str, Any] = {"id": items[line.sku].id, "manage_stock": True}
        if line.add is not None:
            entry["inventory_delta"] = line.add
        else:
            entry["stock_quantity"] = line.target
        update.append(entry)
    return update


def _batch_answer(data: Mapping[str, Any], lines: Sequence[PublishLine],
                  items: Mapping[str, _Item]
                  ) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """What a batch write's answer says of each line sent: SKU -> level left for those
    applied, and the refused ones with their problem (an error in its row, or no row
    at all for it); rows for items not sent are ignored."""
    by_id = {items[line.sku].id: line for line in lines}
    written: dict[str, int] = {}
    refused: list[dict[str, Any]] = []
    for row in data.get("update") or []:
        sent = by_id.get(int(row.get("id") or 0))
        if sent is None:
            continue
        error = row.get("error")
        if error:
            refused.append({"sku": sent.sku, "problem": _item_problem(error)})
        elif row.get("stock_quantity") is not None:
            written[sent.sku] = int(row["stock_quantity"])
    named = {r["sku"] for r in refused}
    missing = [line.sku for line in lines if line.sku not in written and line.sku not in named]
    refused.extend({"sku": sku, "problem": _("WooCommerce's answer does not list it; sync "
                                             "and check its level")} for sku in missing)
    return written, refused


def _units_sold(orders: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """SKU -> units the orders' lines sold."""
    sold: dict[str, int] = {}
    for order in orders:
        for line in order.get("line_items") or []:
            sku = sku_key(str(line.get("sku") or ""))
            if sku:
                sold[sku] = sold.get(sku, 0) + int(line.get("quantity") or 0)
    return sold


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _item_problem(error: Mapping[str, Any]) -> str:
    code = str(error.get("code") or "")
    message = str(error.get("message") or "")[:200]
    if "invalid_id" in code:
        return _("no longer in WooCommerce; sync again")
    return _("WooCommerce refused it ({code}: {message})", code=code, message=message)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

