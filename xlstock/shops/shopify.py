"""The Shopify connector: Sync, Preview and Publish on a Shopify store through its Admin
GraphQL API (version :data:`API_VERSION`), never overwriting a sale.

* Reading: every variant's SKU, product and variant title, inventory item and its
  ``available`` level at the workbook's location, in pages as large as the query cost
  limit allows, or, above :attr:`ShopifyConnector.bulk_above` variants, one bulk
  operation whose JSONL result is parsed as it streams in. Variants without a SKU, SKUs
  on two variants, untracked items and items not stocked at the location are left out
  and named (:attr:`xlstock.model.Snapshot.notices`), never guessed.
* Publishing: a delivery is ``inventoryAdjustQuantities`` (a change in units, which no
  sale can make stale); a count is ``inventorySetQuantities`` with ``changeFromQuantity``
  = the level it was planned from, Shopify's compare-and-swap. At most 250 quantities a
  call; each call carries ``@idempotent(key:)`` with a key derived from the publish's
  own key (saved in the workbook before anything is sent) and the call's position, and
  its variables depend only on the publish's lines: a publish killed at any moment is
  sent again, call for call, and Shopify replays the calls it had applied.
* What is assumed where Shopify's documentation is silent: a call answered with user
  errors applied nothing, unless its answer carries an ``inventoryAdjustmentGroup``, whose
  changes are then taken as applied (and only the others are planned again).
* Throttling: every answer's ``extensions.cost.throttleStatus`` paces the next request;
  a ``THROTTLED`` answer waits ``(requested - available) / restoreRate`` and resends the
  very same request (same key); 429 and 5xx back off with jitter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
from xlstock.model import (
    Snapshot,
    StockItem,
    is_loopback_host,
    loose_key,
    sku_key,
    sku_problem,
)
from xlstock.planner import PublishLine
from xlstock.remote.connector import (
    SessionOwner,
    levels_version,
    named_skus,
    resolve_token,
    retry_after,
)
from xlstock.remote.transport import (
    Deadline,
    NotJson,
    decode_json,
    mapped_errors,
    read_body,
)

log = logging.getLogger("xlstock.shopify")

API_VERSION = "2026-04"
"""The Admin API version every request names: the one place it is set."""
GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"
TOKEN_PATH = "/admin/oauth/access_token"
MAX_QUANTITIES_PER_CALL = 250
"""Shopify's limit of quantities (or changes) in one inventory mutation."""
MAX_QUERY_COST = 1000
BULK_ABOVE = 400
"""Variants above which Sync reads in one bulk operation: a page of variants costs about
5 points each, so 400 is what a full bucket of the Standard plan (2,000 points) pays for
without waiting; past that, paging waits for the bucket (20 variants a second at 100
points a second) where a bulk operation does not."""
"""Shopify's limit on the requested cost of one query."""
SCOPES = ("read_products", "read_inventory", "write_inventory", "read_locations")
REFERENCE_PREFIX = "gid://xlstock/Publish/"
DELIVERY_REASON = "received"
COUNT_REASON = "cycle_count_available"
MAX_ANSWER = 64 * 1024 * 1024
APP_SCOPES_PAGE = N_("in Shopify's Dev Dashboard: your app > Versions > Access scopes (add "
                   "{scopes}), release a new version, then reinstall the app on the store")

_VARIANT_FIELDS = """
    id sku title displayName
    product { title }
    inventoryItem {
      id tracked
      inventoryLevel(locationId: $location) { quantities(names: ["available"]) { quantity } }
    }
"""
VARIANTS_QUERY = ("query Variants($first: Int!, $after: String, $location: ID!) {"
                  " productVariants(first: $first, after: $after) {"
                  f" nodes {{ {_VARIANT_FIELDS} }}"
                  " pageInfo { hasNextPage endCursor } } }")
COUNT_QUERY = "query VariantCount { productVariantsCount { count precision } }"
LOCATIONS_QUERY = ("query Locations { locations(first: 250) {"
                   " nodes { id name isActive } } }")
LEVELS_QUERY = ("query Levels($ids: [ID!]!, $location: ID!) { nodes(ids: $ids) {"
                " ... on InventoryItem { id inventoryLevel(locationId: $location) {"
                " quantities(names: [\"available\"]) { quantity } } } } }")
_GROUP = ("inventoryAdjustmentGroup { id changes { name delta quantityAfterChange"
          " item { id } } } userErrors { code field message }")
SET_MUTATION = ("mutation SetLevels($input: InventorySetQuantitiesInput!, $key: String!) {"
                f" inventorySetQuantities(input: $input) @idempotent(key: $key) {{ {_GROUP} }} }}")
ADJUST_MUTATION = ("mutation AddUnits($input: InventoryAdjustQuantitiesInput!, $key: String!) {"
                   " inventoryAdjustQuantities(input: $input) @idempotent(key: $key) {"
                   f" {_GROUP} }} }}")
BULK_RUN = ("mutation Bulk($query: String!) { bulkOperationRunQuery(query: $query) {"
            " bulkOperation { id status } userErrors { code field message } } }")
BULK_POLL = ("query BulkStatus($id: ID!) { node(id: $id) { ... on BulkOperation {"
             " id status errorCode objectCount url partialDataUrl } } }")

_STORE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_REQUIRED_ACCESS = re.compile(r"Required access:([^.]*)", re.IGNORECASE)
_SCOPE_NAME = re.compile(r"\b(?:read|write|unauthenticated_read|unauthenticated_write)_[a-z_]+\b")


def missing_scopes(text: str) -> list[str]:
    """The scopes Shopify's "Access denied" messages ask for, by name alone (Shopify writes
    "Required access: `read_locations` access scope or `read_markets_home` access scope."):
    those of xlstock's own :data:`SCOPES` first, as the docs tell a merchant to grant them;
    every scope when none is named."""
    named: list[str] = []
    for clause in _REQUIRED_ACCESS.findall(text):
        for name in _SCOPE_NAME.findall(clause):
            if name not in named:
                named.append(name)
    ours = [scope for scope in SCOPES if scope in named]
    return ours or named or list(SCOPES)


def store_address(text: str) -> str:
    """A store's Admin address from what a merchant types: ``mystore``,
    ``mystore.myshopify.com`` or ``https://mystore.myshopify.com/admin`` all give
    ``https://mystore.myshopify.com``; ``http://127.0.0.1:PORT`` (a loopback stand-in)
    is kept as it is. Raises :class:`UsageError` with the fix for anything else."""
    raw = text.strip().rstrip("/")
    if not raw:
        raise UsageError(_("the Shopify store is empty; give its address, e.g. "
                           "mystore.myshopify.com"))
    scheme, _sep, rest = raw.rpartition("://")
    host_port = rest.split("/", 1)[0]
    host = host_port.rsplit(":", 1)[0].strip("[]").lower().rstrip(".")
    if scheme.lower() == "http" or (scheme == "" and is_loopback_host(host)):
        if is_loopback_host(host):
            return f"http://{host_port.lower()}"
        raise UsageError(_("{address}: a Shopify store is reached over https only "
                           "(https://{host})", address=repr(text), host=host))
    if scheme and scheme.lower() != "https":
        raise UsageError(_("{address} is not a web address; give mystore.myshopify.com",
                           address=repr(text)))
    if "." not in host:
        host += ".myshopify.com"
    if not _STORE.match(host):
        raise UsageError(
            _("{address} is not a Shopify store's own address: give its myshopify.com address "
              "(Shopify admin > Settings > Domains shows it, e.g. mystore.myshopify.com), not the "
              "shop's public domain", address=repr(text))
        )
    return f"https://{host}"


@dataclass(frozen=True)
class ShopifyOutcome:
    """What became of a publish on Shopify (see :class:`xlstock.actions.PublishOutcome`)."""

    key: str
    version: str
    levels_after: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    applied: bool = True


@dataclass
class _Variant:
    sku: str
    item: str
    level: int
    name: str
    variant: str


@dataclass
class _Bucket:
    """Shopify's leaky bucket of query cost, as the last answer showed it."""

    maximum: float = 1000.0
    available: float = 1000.0
    rate: float = 50.0
    seen: float = 0.0

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds to wait before a query of ``cost`` points can run."""
        available = min(self.maximum, self.available + self.rate * max(0.0, now - self.seen))
        need = min(cost, self.maximum)
        return 0.0 if available >= need else (need - available) / self.rate


@dataclass
class _Answer:
    data: Any
    errors: list[dict[str, Any]]
    cost: dict[str, Any]


class ShopifyConnector(SessionOwner):
    """A Shopify store, as Sync, Preview and Publish use it (one location)."""

    outcome_known = False
    """Shopify cannot be asked what became of an idempotency key: an interrupted
    publish is sent again under the same keys, which Shopify replays."""

    def __init__(
        self,
        store: str,
        *,
        token: str | None = None,
        location: str = "",
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        deadline: float = 600.0,
        bulk_above: int = BULK_ABOVE,
        attempts: int = 8,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store_address(store)
        self.shop_url = self.store
        self.location_setting = location.strip()
        self.bulk_above = bulk_above
        self.deadline = deadline
        self.attempts = attempts
        self._credential = token.strip() if token else None
        self._token: str | None = None
        self._sleep = sleep
        self._clock = clock
        self.progress = progress
        self._use_session(session)
        if session is None:
            self._session.trust_env = not is_loopback_host(self.store.split("://")[1]
                                                            .rsplit(":", 1)[0])
        self._bucket = _Bucket()
        self._location: str | None = None
        self._variants: dict[str, _Variant] | None = None
        self._by_item: dict[str, str] = {}
        self.requests = 0
        self.waited = 0.0
        """Seconds spent waiting for Shopify's cost bucket (for the bench)."""
        self._resending = False
        self._left_out: dict[str, str] = {}
        self.points = 0.0
        """Query cost Shopify charged (its ``actualQueryCost``), for the bench."""

    @classmethod
    def from_settings(cls, settings: Any) -> ShopifyConnector:
        """The connector for a workbook's Settings: the store from Shop URL (or Stock
        service), the credential from ``XLSTOCK_TOKEN`` or the keyring."""
        store = settings.shop_url or settings.service_url
        address = store_address(store)
        return cls(address, token=resolve_token(address) or resolve_token(store),
                   location=getattr(settings, "location", "") or "")

    def __repr__(self) -> str:
        return f"ShopifyConnector({self.store!r})"

    # ------------------------------------------------------------------ reading

    def read_levels(self, if_none_match: str | None = None, *,
                    names: bool = True) -> Snapshot | None:
        """Every variant's level at the location (``None`` when they are exactly those
        of version ``if_none_match``: Shopify has no version tag, so xlstock's is a hash
        of the levels)."""
        location = self.location()
        count = self._variant_count()
        if count > self.bulk_above:
            variants, notices = self._read_bulk(location)
        else:
            variants, notices = self._read_pages(location, count)
        self._variants = variants
        self._by_item = {v.item: sku for sku, v in variants.items()}
        version = levels_version("shopify", {sku: v.level for sku, v in variants.items()})
        if if_none_match is not None and if_none_match == version:
            return None
        items = {sku: StockItem(sku, v.name if names else "", v.variant if names else "",
                                v.level)
                 for sku, v in sorted(variants.items())}
        return Snapshot(self.store, version, items, notices=tuple(notices),
                        left_out=self._left_out)

    def location(self) -> str:
        """The location's id: the one named in Settings, or the store's only active one;
        with several and none named, :class:`UsageError` lists them."""
        if self._location is not None:
            return self._location
        answer = self._query(LOCATIONS_QUERY, {}, cost=4)
        nodes = answer.data["locations"]["nodes"]
        active = [n for n in nodes if n.get("isActive", True)]
        wanted = self.location_setting
        if wanted:
            chosen = [n for n in nodes if wanted in (n["id"], str(n["id"]).rsplit("/", 1)[-1])
                      or n["name"].casefold() == wanted.casefold()]
            if not chosen:  # "entrepot principal" for "Entrepôt principal", if only one
                loose = [n for n in nodes if loose_key(n["name"]) == loose_key(wanted)]
                chosen = loose if len(loose) == 1 else []
            if not chosen:
                raise UsageError(
                    _("Settings: Location {location} is not a location of {store}; its locations "
                      "are {locations}: write one of them in Location", location=repr(wanted),
                      store=self.store, locations=_names(active))
                )
            self._location = str(chosen[0]["id"])
        elif len(active) == 1:
            self._location = str(active[0]["id"])
        elif not active:
            raise UsageError(_("{store} has no active location to keep stock at",
                               store=self.store))
        else:
            raise UsageError(
                _("{store} has {count} locations ({locations}); write the one this workbook keeps "
                  "in Settings, Location (one location a workbook)", store=self.store,
                  count=len(active), locations=_names(active))
            )
        return self._location

    def _variant_count(self) -> int:
        answer = self._query(COUNT_QUERY, {}, cost=1)
        return int(answer.data["productVariantsCount"]["count"])

    def _read_pages(self, location: str, expected: int
                    ) -> tuple[dict[str, _Variant], list[str]]:
        """The variants a page at a time, each page as large as the single-query limit
        allows (its cost per variant is learnt from the first answer), the last one cut
        to what is left, so that no page asks the bucket for points it will not use."""
        collected = _Collector()
        after: str | None = None
        per_variant = 5.0
        first = min(100, max(1, expected))
        while True:
            answer = self._query(VARIANTS_QUERY, {"first": first, "after": after,
                                                  "location": location},
                                 cost=2 + first * per_variant)
            page = answer.data["productVariants"]
            for node in page["nodes"]:
                collected.add(node)
            requested = answer.cost.get("requestedQueryCost")
            if isinstance(requested, (int, float)) and requested > 2:
                per_variant = max(1.0, (requested - 2) / first)
            self._say(_("Variants read from Shopify: {count:n} of {total:n}",
                        count=collected.seen, total=expected))
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
            largest = max(1, min(250, int((MAX_QUERY_COST - 2) / per_variant)))
            left = expected - collected.seen
            first = min(largest, left) if left > 0 else largest
        self._left_out = collected.left_out()
        return collected.finish()

    def _read_bulk(self, location: str) -> tuple[dict[str, _Variant], list[str]]:
        query = ("{ productVariants { edges { node {"
                 + _VARIANT_FIELDS.replace("$location", json.dumps(location)) + "} } } }")
        answer = self._query(BULK_RUN, {"query": query}, cost=10)
        payload = answer.data["bulkOperationRunQuery"]
        if payload["userErrors"]:
            raise ServiceRefused(_("{store} refused to read the variants in bulk: {errors}",
                                   store=self.store, errors=_user_errors(payload["userErrors"])))
        operation = payload["bulkOperation"]["id"]
        pause = 0.25
        while True:
            status = self._query(BULK_POLL, {"id": operation}, cost=1).data["node"]
            if status["status"] == "COMPLETED":
                break
            if status["status"] in ("FAILED", "CANCELED", "CANCELING", "EXPIRED"):
                raise ServiceRefused(
                    _("{store}: reading the variants in bulk ended {status} ({reason}); sync "
                      "again later", store=self.store, status=status["status"],
                      reason=status.get("errorCode") or _("no reason given")))
            self._say(_("Shopify is gathering the variants ({count:n} so far)",
                        count=int(status.get("objectCount") or 0)))
            self._sleep(pause)
            pause = min(pause * 2, 5.0)
        collected = _Collector()
        url = status.get("url")
        if url:
            for record in self._jsonl(str(url)):
                collected.add(record)
        self._left_out = collected.left_out()
        return collected.finish()

    def _jsonl(self, url: str) -> Iterator[dict[str, Any]]:
        """The records of a bulk result, one JSON object a line, parsed as they stream."""
        what = f"GET {url.split('?', 1)[0]}"
        deadline = Deadline(self.deadline)
        with mapped_errors(what, deadline, max_body=1 << 40), deadline.watching():
            response = self._session.get(url, stream=True, timeout=(10, 60))
            try:
                if response.status_code != 200:
                    raise ServiceRefused(_("{what} answered {status}; sync again", what=what,
                                           status=response.status_code))
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
            finally:
                response.close()

    # ---------------------------------------------------------------- publishing

    def publish_lines(self, lines: Sequence[PublishLine], key: str) -> ShopifyOutcome:
        """Send the lines in calls of at most 250: counts through
        ``inventorySetQuantities`` checked by ``changeFromQuantity``, then deliveries
        through ``inventoryAdjustQuantities``. A call refused as stale ends the publish
        before its next calls (a strict publish then leaves the deliveries unsent, as the
        contract says of a conflict; a rebase re-plans them with the moved counts), and
        :class:`StaleVersion` names the moved SKUs with their levels and what was
        applied. Resending an interrupted publish (:meth:`resend`) sends every call, as
        some may have been applied before the interruption."""
        if not lines:
            return ShopifyOutcome(key, self._version_now(), {}, 0)
        variants = self._variants_for(lines)
        location = self.location()
        applied: dict[str, int] = {}
        stale: list[PublishLine] = []
        refused: list[dict[str, Any]] = []
        calls = self.calls_for(lines, key)
        for number, (mutation, call_key, chunk) in enumerate(calls, start=1):
            self._say(_("Publishing call {number} of {total} to Shopify", number=number,
                        total=len(calls)))
            variables = _call_variables(mutation, call_key, chunk, variables_of=variants,
                                        location=location)
            failpoints.reach(f"shopify_before_call_{number}")
            done, moved, problems = self._send_call(mutation, variables, chunk)
            failpoints.reach(f"shopify_after_call_{number}")
            applied.update(done)
            stale.extend(moved)
            refused.extend(problems)
            if moved and not self._resending:
                break
        if refused:
            error = ServiceRefused(
                _("{store} refused {count:n} line(s) of the publish: {lines}", store=self.store,
                  count=len(refused),
                  lines="; ".join(f"SKU {p['sku']}: {p['problem']}" for p in refused[:5])
                  + (" ..." if len(refused) > 5 else "")),
                items=refused,
            )
            error.applied = applied
            raise error
        if stale:
            levels = self._levels_of([variants[line.sku].item for line in stale], location)
            shown = ", ".join(line.sku for line in stale[:5])
            raise StaleVersion(
                _("the levels of {count:n} SKU(s) moved on {shop} since they were read ({skus})",
                  count=len(stale), shop=self.store,
                  skus=shown + (" ..." if len(stale) > 5 else "")),
                status=None, code="CHANGE_FROM_QUANTITY_STALE",
                moved={self._by_item[item]: level for item, level in levels.items()},
                applied=applied,
            )
        return ShopifyOutcome(key, "", applied, len(calls))

    def resend(self, lines: Sequence[PublishLine], key: str) -> ShopifyOutcome:
        """:meth:`publish_lines` for an interrupted publish: the same calls under the same
        keys (Shopify applies each once), every one of them sent, even after a stale
        one."""
        self._resending = True
        try:
            return self.publish_lines(lines, key)
        finally:
            self._resending = False

    def publish_outcome(self, key: str) -> ShopifyOutcome | None:
        """Shopify cannot be asked about a key (:attr:`outcome_known`): always ``None``."""
        return None

    @staticmethod
    def calls_for(lines: Sequence[PublishLine], key: str
                  ) -> list[tuple[str, str, list[PublishLine]]]:
        """The publish's calls, worked out from its lines and key alone (so that a rerun
        sends the very same calls): counts first, then deliveries, by SKU, 250 a call,
        each keyed ``KEY-s1``, ``KEY-a1`` ... (a count may be refused as stale, a
        delivery never: the counts go first so that a refused count stops the publish
        before any delivery is applied)."""
        ordered = sorted(lines, key=lambda line: line.sku)
        deltas = [line for line in ordered if line.add is not None]
        sets = [line for line in ordered if line.add is None]
        calls: list[tuple[str, str, list[PublishLine]]] = []
        for mutation, tag, group in ((SET_MUTATION, "s", sets), (ADJUST_MUTATION, "a", deltas)):
            for start in range(0, len(group), MAX_QUANTITIES_PER_CALL):
                number = start // MAX_QUANTITIES_PER_CALL + 1
                calls.append((mutation, f"{key}-{tag}{number}",
                              group[start:start + MAX_QUANTITIES_PER_CALL]))
        return calls

    def _send_call(self, mutation: str, variables: dict[str, Any], chunk: list[PublishLine]
                   ) -> tuple[dict[str, int], list[PublishLine], list[dict[str, Any]]]:
        """One inventory mutation: what it applied (SKU -> level after), the lines found
        stale, and the lines refused for another reason."""
        name = "inventoryAdjustQuantities" if mutation is ADJUST_MUTATION else \
            "inventorySetQuantities"
        payload = self._mutation_payload(mutation, variables, name)
        applied = self._applied_by(payload)
        stale, refused = self._stale_and_refused(payload, chunk, applied)
        return applied, list(dict.fromkeys(stale)), refused

    def _mutation_payload(self, mutation: str, variables: dict[str, Any], name: str
                          ) -> dict[str, Any]:
        """The mutation's answer, asked again (same key) while Shopify says the same call
        is still running; :class:`OutcomeUnknown` when it still is after every try."""
        for attempt in range(self.attempts):
            payload: dict[str, Any] = self._query(mutation, variables, cost=10,
                                                  mutation=True).data[name]
            codes = {e.get("code") for e in payload.get("userErrors") or []}
            if "IDEMPOTENCY_CONCURRENT_REQUEST" not in codes:
                return payload
            self._back_off(attempt, None, "Shopify")  # the same call is still running: ask again
        raise OutcomeUnknown(_(
            "{store} was still applying a publish call after {count} tries; run publish "
            "again: it sends the same calls under the same keys, which Shopify applies once",
            store=self.store, count=self.attempts))

    def _applied_by(self, payload: Mapping[str, Any]) -> dict[str, int]:
        """SKU -> ``available`` level after the change, for each change the mutation's
        adjustment group lists on an inventory item of this store's variants."""
        applied: dict[str, int] = {}
        group = payload.get("inventoryAdjustmentGroup")
        if group:
            for change in group.get("changes") or []:
                sku = self._by_item.get(str((change.get("item") or {}).get("id")))
                after = change.get("quantityAfterChange")
                if sku is not None and change.get("name") == "available" and after is not None:
                    applied[sku] = int(after)
        return applied

    def _stale_and_refused(self, payload: Mapping[str, Any], chunk: list[PublishLine],
                           applied: Mapping[str, int]
                           ) -> tuple[list[PublishLine], list[dict[str, Any]]]:
        """The mutation's user errors sorted out: lines to read and plan again (stale, or
        the whole call when a previous attempt under its key failed), and lines refused for
        another reason; an error naming no line of the call refuses the publish."""
        stale: list[PublishLine] = []
        refused: list[dict[str, Any]] = []
        for error in payload.get("userErrors") or []:
            code = error.get("code")
            line = _line_of(error, chunk)
            if code in ("IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",):
                stale.extend(x for x in chunk if x.sku not in applied)  # read and plan again
                continue
            if line is None:
                raise ServiceRefused(_("{store} refused a publish call: {value}",
                                       store=self.store, value=_user_errors([error])), code=code)
            if line.sku in applied:
                continue
            if code in ("CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"):
                stale.append(line)
            else:
                refused.append({"sku": line.sku, "code": code,
                                "problem": _problem_text(code, error.get("message", ""))})
        return stale, refused

    def _levels_of(self, items: Sequence[str], location: str) -> dict[str, int]:
        """The live ``available`` level of some inventory items (the moved ones)."""
        levels: dict[str, int] = {}
        for start in range(0, len(items), 250):
            chunk = list(items[start:start + 250])
            answer = self._query(LEVELS_QUERY, {"ids": chunk, "location": location},
                                 cost=2 + 3 * len(chunk))
            for node in answer.data["nodes"]:
                if node and node.get("inventoryLevel"):
                    levels[str(node["id"])] = _available(node["inventoryLevel"])
        return levels

    def _variants_for(self, lines: Sequence[PublishLine]) -> dict[str, _Variant]:
        if self._variants is None or any(line.sku not in self._variants for line in lines):
            self.read_levels(names=False)
        assert self._variants is not None
        missing = [line.sku for line in lines if line.sku not in self._variants]
        if missing:
            raise ServiceRefused(
                _("{count} SKU(s) of the publish are no longer variants of {store} at this "
                  "location ({skus}); sync and publish again", count=len(missing),
                  store=self.store, skus=", ".join(missing[:5])),
                items=[{"sku": s, "problem": _("not in the shop")} for s in missing])
        return self._variants

    def _version_now(self) -> str:
        variants = self._variants or {}
        return levels_version("shopify", {sku: v.level for sku, v in variants.items()})

    # ------------------------------------------------------------------ plumbing

    def _access_token(self) -> str:
        """The Admin API token: the one given, or one exchanged for a Dev Dashboard
        app's ``CLIENT_ID:CLIENT_SECRET`` (the client-credentials grant, 24 hours)."""
        if self._token is not None:
            return self._token
        credential = self._credential
        if not credential:
            raise UsageError(
                _("no access token for {store}: store the app's Admin API access token (or "
                  "CLIENT_ID:CLIENT_SECRET) in the keyring (keyring set xlstock {store}) or in "
                  "XLSTOCK_TOKEN; see docs/shopify.md", store=self.store))
        if ":" in credential and not credential.startswith("shp"):
            client_id, _sep, secret = credential.partition(":")
            self._token = self._exchange_credentials(client_id.strip(), secret.strip())
        else:
            self._token = credential
        return self._token

    def _exchange_credentials(self, client_id: str, secret: str) -> str:
        url = self.store + TOKEN_PATH
        deadline = Deadline(60)
        with mapped_errors(f"POST {url}", deadline, max_body=1 << 20, secret=secret), \
                deadline.watching():
            response = self._session.post(url, data={
                "grant_type": "client_credentials", "client_id": client_id,
                "client_secret": secret}, timeout=(10, 30), allow_redirects=False)
        if response.status_code != 200:
            raise ServiceRefused(
                _("{store} refused the app's client id and secret ({status}): check them in the "
                  "Dev Dashboard (your app > Settings), and that the app is installed on this "
                  "store", store=self.store, status=response.status_code), status=403)
        try:
            return str(response.json()["access_token"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceRefused(_("POST {url} did not answer with an access token",
                                   url=url)) from exc

    def _query(self, query: str, variables: Mapping[str, Any], *, cost: float,
               mutation: bool = False) -> _Answer:
        """One GraphQL request, paced by the cost bucket, resent as it is (same
        idempotency key) when throttled, on 429 and 5xx, and when its answer is lost."""
        body = json.dumps({"query": query, "variables": dict(variables)}).encode()
        url = self.store + GRAPHQL_PATH
        what = f"POST {url}"
        for attempt in range(self.attempts):
            wait = self._bucket.wait_for(cost, self._clock())
            if wait > 0:
                self._wait(wait)
            try:
                status, headers, raw = self._post(url, body, what)
            except ServiceUnreachable as lost:
                self._after_loss(lost, attempt, mutation)
                continue
            self._refuse_status(status, raw, what)
            if status == 429 or status >= 500:
                self._after_busy(status, headers, attempt, mutation, what)
                continue
            answer = self._decode(raw, headers, what)
            if self._throttled(answer, cost):
                continue
            if answer.errors:
                raise self._graphql_refusal(answer.errors, what)
            return answer
        raise ServiceRefused(_("{what}: Shopify kept throttling this request; try again later",
                               what=what))

    def _after_loss(self, lost: ServiceUnreachable, attempt: int, mutation: bool) -> None:
        """A request whose answer was lost is sent again after a pause, unless it was the
        last try or it cannot be told whether it arrived (for a mutation: the outcome is
        then unknown)."""
        if attempt + 1 >= self.attempts or lost.may_have_arrived is None:
            raise self._lost(lost, mutation) from lost
        self._back_off(attempt, None, "Shopify")

    def _refuse_status(self, status: int, raw: bytes, what: str) -> None:
        """Refuse an answer that no resend can mend: a refused token (401), a missing
        scope (403), not a Shopify Admin API (404)."""
        if status == 401:
            raise ServiceRefused(
                _("{store} refused the access token (401): store the app's current Admin API "
                  "access token (see docs/shopify.md)", store=self.store), status=401)
        if status == 403:
            raise ServiceRefused(self._scope_message(raw.decode("utf-8", "replace")),
                                 status=403)
        if status == 404:
            raise ServiceRefused(
                _("{what} answered 404: is {store} a Shopify store, and does it serve Admin "
                  "API version {version}?", what=what, store=self.store,
                  version=API_VERSION), status=404)

    def _after_busy(self, status: int, headers: Any, attempt: int, mutation: bool,
                    what: str) -> None:
        """A 429 or 5xx is sent again after the pause Shopify asks for; after the last try
        it is refused (a 5xx on a mutation: the outcome is unknown)."""
        if attempt + 1 >= self.attempts:
            error = ServiceRefused(_("{what} answered {status} {count} times; try again "
                                     "later", what=what, status=status,
                                     count=self.attempts), status=status)
            raise self._lost(error, mutation) if status >= 500 else error
        self._back_off(attempt, retry_after(headers), what, status)

    def _throttled(self, answer: _Answer, cost: float) -> bool:
        """True, after waiting for the bucket to hold the request's cost again, when
        Shopify throttled the request (to be sent again)."""
        throttled = [e for e in answer.errors
                     if (e.get("extensions") or {}).get("code") == "THROTTLED"]
        if not throttled:
            return False
        status_now = answer.cost.get("throttleStatus") or {}
        requested = float(answer.cost.get("requestedQueryCost") or cost)
        rate = float(status_now.get("restoreRate") or self._bucket.rate)
        available = float(status_now.get("currentlyAvailable") or 0)
        self._wait(max(0.0, (requested - available) / rate))
        return True

    def _post(self, url: str, body: bytes, what: str) -> tuple[int, Any, bytes]:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "X-Shopify-Access-Token": self._access_token()}
        deadline = Deadline(min(self.deadline, 120.0))
        started = time.perf_counter()
        with mapped_errors(what, deadline, max_body=MAX_ANSWER, secret=self._token), \
                deadline.watching():
            response = self._session.post(url, data=body, headers=headers, stream=True,
                                          timeout=(10, 60), allow_redirects=False)
            try:
                raw = read_body(response, deadline, MAX_ANSWER)
            finally:
                response.close()
        self.requests += 1
        log.info("%s -> %s (%d bytes, %.3f s)", what, response.status_code, len(raw),
                 time.perf_counter() - started)
        return response.status_code, response.headers, raw

    def _decode(self, raw: bytes, headers: Any, what: str) -> _Answer:
        try:
            document = decode_json(raw, headers.get("Content-Type", ""))
        except NotJson as exc:
            raise ServiceRefused(_("{what} did not answer Shopify's JSON; check the store address "
                                   "in Settings", what=what)) from exc
        if not isinstance(document, dict):
            raise ServiceRefused(_("{what} answered something that is not a GraphQL answer",
                                   what=what))
        cost = (document.get("extensions") or {}).get("cost") or {}
        charged = cost.get("actualQueryCost")
        if isinstance(charged, (int, float)):
            self.points += charged
        throttle = cost.get("throttleStatus") or {}
        if throttle:
            self._bucket = _Bucket(float(throttle.get("maximumAvailable") or 1000),
                                   float(throttle.get("currentlyAvailable") or 0),
                                   float(throttle.get("restoreRate") or 50), self._clock())
        errors = document.get("errors") or []
        if isinstance(errors, str):
            errors = [{"message": errors}]
        return _Answer(document.get("data"), list(errors), cost)

    def _graphql_refusal(self, errors: list[dict[str, Any]], what: str) -> ServiceError:
        denied = [e for e in errors if (e.get("extensions") or {}).get("code")
                  == "ACCESS_DENIED"]
        if denied:
            return ServiceRefused(self._scope_message(" ".join(e.get("message", "")
                                                               for e in denied)), status=403)
        text = "; ".join(str(e.get("message", ""))[:300] for e in errors[:3])
        return ServiceRefused(_("{what} refused the request: {detail}. This is a fault of "
                                "xlstock or of Shopify, not of the workbook: report it",
                                what=what, detail=text))

    def _scope_message(self, text: str) -> str:
        scopes = ", ".join(missing_scopes(text))
        return _("the app's access token for {store} lacks the scope {scopes}: grant {how} "
                 "({detail})", store=self.store, scopes=scopes,
                 how=_(APP_SCOPES_PAGE, scopes=", ".join(SCOPES)), detail=text[:200])

    def _lost(self, error: ServiceError, mutation: bool) -> ServiceError:
        if not mutation:
            return error
        return OutcomeUnknown(_(
            "{problem}. The publish may have reached Shopify: run publish again; it sends the "
            "same calls under the same keys, which Shopify applies once", problem=error.message))

    def _wait(self, seconds: float) -> None:
        self.waited += seconds
        self._say(_("Waiting {seconds:n} s for Shopify's rate limit", seconds=round(seconds, 1)))
        self._sleep(seconds)



class _Collector:
    """Variants as they come (a page or a JSONL line each), kept only when they can be
    told apart and have a level; every one left out is named in the notices."""

    def __init__(self) -> None:
        self.variants: dict[str, _Variant] = {}
        self.seen = 0
        self.no_sku = 0
        self.duplicates: dict[str, int] = {}
        self.untracked: list[str] = []
        self.unstocked: list[str] = []
        self.bad: list[str] = []

    def add(self, node: Mapping[str, Any]) -> None:
        self.seen += 1
        raw = node.get("sku")
        sku = sku_key(raw) if isinstance(raw, str) else ""
        if not sku:
            self.no_sku += 1
            return
        if sku_problem(sku):
            self.bad.append(sku[:40])
            return
        if sku in self.variants or sku in self.duplicates:
            self.duplicates[sku] = self.duplicates.get(sku, 1) + 1
            self.variants.pop(sku, None)
            return
        item = node.get("inventoryItem") or {}
        if not item.get("tracked", True):
            self.untracked.append(sku)
            return
        level = item.get("inventoryLevel")
        if not level:
            self.unstocked.append(sku)
            return
        title = str(node.get("title") or "")
        self.variants[sku] = _Variant(
            sku, str(item["id"]), _available(level),
            str((node.get("product") or {}).get("title") or ""),
            "" if title == "Default Title" else title)

    def left_out(self) -> dict[str, str]:
        """SKU -> why it was left out, for a sheet row that names it."""
        reasons: dict[str, str] = {}
        for skus, reason in (
            (self.untracked, _("Shopify does not track its quantity: switch on 'Track "
                               "quantity' on it in Shopify, then sync")),
            (self.unstocked, _("it is not stocked at this workbook's location: stock it "
                               "there in Shopify, then sync")),
            (list(self.duplicates), _("on more than one variant: give each variant its own "
                                      "SKU in Shopify, then sync")),
        ):
            reasons.update(dict.fromkeys(skus, reason))
        return reasons

    def finish(self) -> tuple[dict[str, _Variant], list[str]]:
        notices: list[str] = []
        if self.no_sku:
            notices.append(_("{count:n} variant(s) in Shopify have no SKU and were left out: "
                             "give each a SKU in Shopify to keep it here", count=self.no_sku))
        for label, skus in (
            (N_("{count:n} SKU(s) on more than one variant in Shopify (left out: give each "
                "variant its own SKU): {skus}"), list(self.duplicates)),
            (N_("{count:n} SKU(s) not tracked by Shopify (left out: switch on 'Track quantity' "
                "to keep it here): {skus}"), self.untracked),
            (N_("{count:n} SKU(s) not stocked at this location (left out): {skus}"),
             self.unstocked),
            (N_("{count:n} SKU(s) not usable as SKUs (left out): {skus}"), self.bad),
        ):
            if skus:
                notices.append(named_skus(label, skus))
        return self.variants, notices


def _available(level: Mapping[str, Any]) -> int:
    for quantity in level.get("quantities") or []:
        if quantity.get("quantity") is not None and quantity.get("name", "available") \
                == "available":
            return int(quantity["quantity"])
    return 0


def _call_variables(mutation: str, key: str, chunk: Sequence[PublishLine], *,
                    variables_of: Mapping[str, _Variant], location: str) -> dict[str, Any]:
    """A call's variables, from its lines alone: the same lines give the same variables
    (Shopify's idempotency compares them)."""
    publish_key = key.rsplit("-", 1)[0]
    reference = REFERENCE_PREFIX + publish_key
    if mutation is ADJUST_MUTATION:
        changes = [{"inventoryItemId": variables_of[line.sku].item, "locationId": location,
                    "delta": line.add, "changeFromQuantity": None} for line in chunk]
        payload: dict[str, Any] = {"name": "available", "reason": DELIVERY_REASON,
                                   "referenceDocumentUri": reference, "changes": changes}
    else:
        quantities = [{"inventoryItemId": variables_of[line.sku].item, "locationId": location,
                       "quantity": line.target, "changeFromQuantity": line.planned_from}
                      for line in chunk]
        payload = {"name": "available", "reason": COUNT_REASON,
                   "referenceDocumentUri": reference, "quantities": quantities}
    return {"input": payload, "key": key}


def _line_of(error: Mapping[str, Any], chunk: Sequence[PublishLine]) -> PublishLine | None:
    """The line a user error's field path points at (``["input", "quantities", "3",
    ...]``), if any."""
    path = error.get("field") or []
    for part in path[2:3]:
        with contextlib.suppress(ValueError, TypeError):
            index = int(part)
            if 0 <= index < len(chunk):
                return chunk[index]
    return None


_PROBLEMS = {
    "ITEM_NOT_STOCKED_AT_LOCATION": N_("not stocked at this location in Shopify; stock it "
                                       "there (Products > the variant > Inventory) or remove "
                                       "the row"),
    "NON_MUTABLE_INVENTORY_ITEM": N_("Shopify does not let apps change this item's level (a "
                                     "bundle?); change it in Shopify"),
    "INVALID_INVENTORY_ITEM": N_("no longer in Shopify; sync again"),
    "INVALID_LOCATION": N_("the location is gone from Shopify; check Settings, Location"),
    "INVALID_QUANTITY_NEGATIVE": N_("the level would be below zero; correct the row"),
    "INVALID_QUANTITY_TOO_HIGH": N_("the level would be above Shopify's limit; correct the "
                                    "row"),
    "INVALID_QUANTITY_TOO_LOW": N_("the level would be below Shopify's limit; correct the row"),
    "ADJUST_QUANTITIES_FAILED": N_("Shopify could not change it just now; publish again in a "
                                   "moment (nothing is counted twice)"),
    "SERVICE_UNAVAILABLE": N_("Shopify could not change it just now; publish again in a "
                              "moment (nothing is counted twice)"),
}
"""What a user error's code means for the row (English: shown translated)."""
_OURS = ("INVALID_NAME", "INVALID_QUANTITY_NAME", "INVALID_REASON", "INVALID_REFERENCE_DOCUMENT",
         "INTERNAL_LEDGER_DOCUMENT", "INVALID_AVAILABLE_DOCUMENT", "INVALID_LEDGER_DOCUMENT",
         "INVALID_QUANTITY_DOCUMENT", "MAX_ONE_LEDGER_DOCUMENT",
         "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", "COMPARE_QUANTITY_REQUIRED")
"""Codes that only a wrong request from xlstock can cause: the merchant cannot fix them."""


def _problem_text(code: str | None, message: str) -> str:
    """What a user error means for the row, and what to do."""
    if code in _PROBLEMS:
        return _(_PROBLEMS[code])
    if code in _OURS:
        return _("Shopify refused what xlstock sent for it ({code}: {message}); this is "
                 "xlstock's fault, not the sheet's: report it. The row was not changed",
                 code=code, message=message[:200])
    return _("Shopify refused it ({code}: {message}); check it in Shopify's admin", code=code,
             message=message[:200])


def _user_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{e.get('code')}: {str(e.get('message', ''))[:200]}" for e in errors)


def _names(nodes: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(str(n.get("name")) for n in nodes[:10]) + (" ..." if len(nodes) > 10
                                                               else "")


