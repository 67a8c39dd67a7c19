"""A faithful stand-in of Shopify's Admin GraphQL API, version 2026-04, for the tests.

:class:`ShopifyStandIn` serves, on a free loopback port, what xlstock's Shopify connector
talks to: the GraphQL endpoint, the client-credentials token endpoint and the JSONL files of
bulk operations. Every request is parsed and validated against Shopify's own published
schema (``tests/fixtures/shopify/admin_2026-04.json.gz``, see its README) with graphql-core
and executed by graphql-core over a small in-memory shop, so any selection that is valid
on the supported fields works and anything Shopify's schema refuses is refused.

What the schema cannot say, Shopify's documentation does; the rules implemented here and
where they come from:

- Cost and throttling -- https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits
  and https://shopify.dev/docs/api/usage/limits#the-leaky-bucket-algorithm: scalars and
  enums cost 0, objects 1, a connection 2 plus ``first``/``last`` times the cost of one
  node, a mutation 10; a query over 1,000 points is refused (``MAX_COST_EXCEEDED``); a
  leaky bucket per store refills at the plan's restore rate (Standard 100 points/s,
  Shopify Plus 1,000 points/s, the documented figures). The bucket sizes are not in the
  pages' text this module was written from: the values used (2,000 and 20,000) keep the
  20-seconds-of-restore ratio of every figure Shopify has published (1,000/50, 2,000/100).
  A throttled call is answered HTTP 200 with ``errors[].extensions.code = "THROTTLED"``
  and is not executed. The requested cost is taken from the bucket before execution and
  the difference to the actual cost (computed on what was returned) is refunded.
- ``@idempotent(key:)`` -- https://shopify.dev/docs/api/usage/idempotent-requests,
  https://shopify.dev/docs/api/usage/implementing-idempotency and
  https://shopify.dev/changelog/posts/making-idempotency-mandatory-for-inventory-adjustments-and-refund-mutations:
  mandatory on ``inventorySetQuantities``/``inventoryAdjustQuantities`` from 2026-04
  (missing: "The @idempotent directive is required for this mutation but was not
  provided.", ``BAD_REQUEST``); the key cannot be empty or whitespace (the directive's
  description in the schema); a duplicate (same key, same variables) returns the first
  result and applies nothing; same key with other parameters ->
  ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``; a request still running under the key ->
  ``IDEMPOTENCY_CONCURRENT_REQUEST``; a key whose first request failed (userErrors, nothing
  applied) -> ``IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED`` ("Retry with a new idempotency key",
  the enum's documented meaning; ``failed_keys_rerun=True`` lets such a key run again, the
  other reading some integrators report). Keys are kept 24 hours (``IDEMPOTENCY_RETENTION``; the
  implementing-idempotency page documents a retention window for these mutations, and 24
  hours is the figure quoted from it; configurable).
- ``changeFromQuantity`` -- the input objects' descriptions in the schema and
  https://shopify.dev/docs/apps/build/orders-fulfillment/inventory-management-apps/manage-quantities-states#compare-and-swap:
  must be given on every entry (``null`` skips the check); absent -> "InventoryQuantityInput
  must include the following argument: changeFromQuantity." (``INVALID_FIELD_ARGUMENTS``);
  a mismatch -> a ``CHANGE_FROM_QUANTITY_STALE`` user error per stale entry. Shopify does
  not document whether the other entries of the call are applied: by default nothing is
  (``inventoryAdjustmentGroup: null``); ``stale_applies_others=True`` applies them.
- Input limits: at most 250 entries a call ("The input array size of N is greater than the
  maximum allowed of 250.", ``MAX_INPUT_SIZE_EXCEEDED``); ``first``/``last`` at most 250;
  names, reasons (https://shopify.dev/docs/apps/build/orders-fulfillment/inventory-management-apps/manage-quantities-states),
  ``referenceDocumentUri`` ("Valid URI with scheme and content. For GID format, all
  components (app, entity, id) must be present.") and the quantity bounds of the error
  enums in the schema.
- Scopes -- the schema file carries Shopify's ``requiredAccess`` for every type and field;
  a field the token may not read answers ``ACCESS_DENIED`` ("Access denied for <field>
  field. Required access: ..."), https://shopify.dev/changelog/new-error-messages-for-graphql-operations-without-necessary-access-scopes.
  A ``write_`` scope implies its ``read_`` scope (https://shopify.dev/docs/api/usage/access-scopes).
- Authentication -- https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/client-credentials-grant:
  ``POST /admin/oauth/access_token`` (form-encoded ``grant_type=client_credentials``,
  ``client_id``, ``client_secret``) answers ``{"access_token", "scope", "expires_in": 86399}``.
- Bulk operations -- https://shopify.dev/docs/api/usage/bulk-operations/queries: at least
  one connection, at most five, nested at most two levels, no top-level ``node``/``nodes``;
  up to five bulk queries at a time per shop from 2026-01; the result is JSONL, one object
  a line, nested connection nodes on their own lines with ``__parentId``.

Messages Shopify's pages do not spell out (the exact wording of a syntax error, of a page
size over 250, of a refused token request) are close approximations, marked as such where
they are built.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import secrets
import threading
import time
import traceback
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_client_schema,
    execute,
    get_named_type,
    is_leaf_type,
    parse,
    validate,
    value_from_ast_untyped,
)
from graphql.execution.values import get_variable_values

from .standin import LoopbackStandIn, drop_connection

API_VERSION = "2026-04"
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / (
    f"admin_{API_VERSION}.json.gz")


@dataclass(frozen=True)
class Plan:
    """A store plan's GraphQL Admin API bucket: size in points, restore rate in points/s."""

    name: str
    bucket_size: float
    restore_rate: float


STANDARD = Plan("Standard", 2000.0, 100.0)
PLUS = Plan("Shopify Plus", 20000.0, 1000.0)
MAX_QUERY_COST = 1000
MAX_PAGE_SIZE = 250
MAX_INPUT_SIZE = 250
MUTATION_COST = 10
IDEMPOTENCY_RETENTION = 24 * 3600.0
TOKEN_LIFETIME = 86399
BULK_QUERY_LIMIT = 5
SET_QUANTITY_LIMIT = 1_000_000_000
ADJUST_QUANTITY_LIMIT = 2_000_000_000
DEFAULT_SCOPES = frozenset({"read_products", "read_inventory", "write_inventory", "read_locations"})
REASONS = frozenset({
    "correction", "cycle_count_available", "damaged", "movement_canceled", "movement_created",
    "movement_received", "movement_updated", "other", "promotion", "quality_control",
    "received", "reservation_created", "reservation_deleted", "reservation_updated",
    "restock", "safety_stock", "shrinkage",
})
SET_NAMES = frozenset({"available", "on_hand"})
ADJUST_NAMES = frozenset({"available", "on_hand", "damaged", "incoming", "quality_control",
                          "reserved", "safety_stock"})
INVALID_TOKEN_BODY = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"
ACCESS_DOC = "https://shopify.dev/api/usage/access-scopes"


# --- the schema, built once per process ---------------------------------------------------


@dataclass
class SchemaInfo:
    schema: GraphQLSchema
    access: dict[tuple[str, str | None], tuple[str, tuple[str, ...]]]


@lru_cache(maxsize=1)
def schema_info() -> SchemaInfo:
    """Shopify's 2026-04 schema and its per-type/per-field access requirements (cached)."""
    with gzip.open(SCHEMA_FILE, "rt", encoding="utf-8") as handle:
        raw = json.load(handle)
    schema = build_client_schema(raw["data"], assume_valid=True)
    access: dict[tuple[str, str | None], tuple[str, tuple[str, ...]]] = {}
    for item in raw.get("offline_scopes", {}).get("items", []):
        if item.get("offlineScopes"):
            key = (item["typeName"], item.get("fieldName") if item["type"] == "field" else None)
            access[key] = (item["requiredAccess"], tuple(item["offlineScopes"]))
    return SchemaInfo(schema, access)


def _never_awaitable(value: Any) -> bool:
    """Every resolver here is synchronous: spares graphql-core its check on each value."""
    return False


def _type_of(value: Any, info: Any, abstract_type: Any) -> str | None:
    if isinstance(value, Mapping):
        return value.get("__typename")
    return getattr(value, "typename", None)


# --- the shop's data -------------------------------------------------------------------------


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def gid_number(value: Any, kind: str) -> int | None:
    """The number of ``gid://shopify/<kind>/<n>`` (a query string after it is ignored)."""
    match = re.fullmatch(rf"gid://shopify/{kind}/(\d+)(\?.*)?", str(value))
    return int(match.group(1)) if match else None


def now_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Location:
    typename = "Location"

    def __init__(self, number: int, name: str, active: bool) -> None:
        self.number = number
        self.id = gid("Location", number)
        self.name = name
        self.isActive = active
        self.activatable = False
        self.deactivatable = active
        self.fulfillsOnlineOrders = True
        self.hasActiveInventory = True
        self.isPrimary = False
        self.legacyResourceId = str(number)


class Product:
    typename = "Product"

    def __init__(self, number: int, title: str) -> None:
        self.number = number
        self.id = gid("Product", number)
        self.title = title
        self.handle = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        self.legacyResourceId = str(number)
        self.variant_list: list[Variant] = []

    def variants(self, info: Any, **args: Any) -> dict[str, Any]:
        return connection(info, self.variant_list, args,
                          [variant.number for variant in self.variant_list])


class InventoryLevel:
    typename = "InventoryLevel"

    def __init__(self, item: InventoryItem, location: Location, available: int) -> None:
        self.item = item
        self.location = location
        self.id = f"gid://shopify/InventoryLevel/{location.number}?inventory_item_id={item.number}"
        self.isActive = True
        self.counts: dict[str, int] = {"available": available, "on_hand": available,
                                       "committed": 0}

    def quantity(self, name: str) -> int:
        return self.counts.get(name, 0)

    def quantities(self, info: Any, names: list[str]) -> list[dict[str, Any]]:
        return [{"__typename": "InventoryQuantity", "id": f"{self.id}&name={name}",
                 "name": name, "quantity": self.quantity(name), "updatedAt": None}
                for name in names]


class InventoryItem:
    typename = "InventoryItem"

    def __init__(self, number: int, variant: Variant, tracked: bool) -> None:
        self.number = number
        self.id = gid("InventoryItem", number)
        self.variant = variant
        self.tracked = tracked
        self.requiresShipping = True
        self.legacyResourceId = str(number)
        self.level_by_location: dict[str, InventoryLevel] = {}

    @property
    def sku(self) -> str | None:
        return self.variant.sku

    def inventoryLevel(self, info: Any, locationId: str,
                       includeInactive: bool = False) -> InventoryLevel | None:
        return self.level_by_location.get(locationId)

    def inventoryLevels(self, info: Any, **args: Any) -> dict[str, Any]:
        levels = sorted(self.level_by_location.values(), key=lambda lv: lv.location.number)
        return connection(info, levels, args, [lv.location.number for lv in levels])


class Variant:
    typename = "ProductVariant"

    def __init__(self, number: int, product: Product, sku: str | None, title: str) -> None:
        self.number = number
        self.id = gid("ProductVariant", number)
        self.product = product
        self.sku = sku
        self.title = title
        self.legacyResourceId = str(number)
        self.inventoryItem: InventoryItem = InventoryItem(number, self, True)

    @property
    def displayName(self) -> str:
        return f"{self.product.title} - {self.title}"

    @property
    def inventoryQuantity(self) -> int:
        return sum(level.quantity("available")
                   for level in self.inventoryItem.level_by_location.values())


class AdjustmentGroup:
    typename = "InventoryAdjustmentGroup"

    def __init__(self, number: int, reason: str, uri: str | None, created: str,
                 changes: list[dict[str, Any]]) -> None:
        self.id = gid("InventoryAdjustmentGroup", number)
        self.reason = reason
        self.referenceDocumentUri = uri
        self.createdAt = created
        self.app = None
        self.staffMember = None
        self.change_list = changes

    def changes(self, info: Any, inventoryItemIds: list[str] | None = None,
                locationIds: list[str] | None = None,
                quantityNames: list[str] | None = None) -> list[dict[str, Any]]:
        return [change for change in self.change_list
                if (inventoryItemIds is None or change["item"].id in inventoryItemIds)
                and (locationIds is None or change["location"].id in locationIds)
                and (quantityNames is None or change["name"] in quantityNames)]


# --- connections and search ------------------------------------------------------------------


def encode_cursor(position: int) -> str:
    return base64.b64encode(json.dumps({"last_id": position}).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        return int(json.loads(base64.b64decode(cursor.encode()))["last_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise GraphQLError("Invalid cursor for current pagination sort.",
                           extensions={"code": "BAD_REQUEST"}) from exc


def connection(info: Any, items: list[Any], args: Mapping[str, Any],
               keys: list[int]) -> dict[str, Any]:
    """A Relay connection over ``items`` (sorted by their numeric id, ``keys``): ``first`` /
    ``last``, ``after`` / ``before`` (a cursor carries the id of its node) and ``reverse``.
    Without ``first``/``last`` it is empty, except inside a bulk operation (all nodes)."""
    reverse = bool(args.get("reverse"))
    lo, hi = 0, len(items)
    after, before = args.get("after"), args.get("before")
    if after is not None:
        mark = decode_cursor(after)
        if reverse:
            hi = min(hi, bisect_left(keys, mark))
        else:
            lo = max(lo, bisect_right(keys, mark))
    if before is not None:
        mark = decode_cursor(before)
        if reverse:
            lo = max(lo, bisect_right(keys, mark))
        else:
            hi = min(hi, bisect_left(keys, mark))
    positions = range(lo, max(lo, hi)) if not reverse else range(hi - 1, lo - 1, -1)
    first, last = args.get("first"), args.get("last")
    if first is not None:
        chosen = positions[:first]
    elif last is not None:
        chosen = positions[len(positions) - last:] if last else positions[:0]
    elif getattr(getattr(info, "context", None), "bulk", False):
        chosen = positions
    else:
        chosen = positions[:0]
    window = [items[i] for i in chosen]
    edges = [{"cursor": encode_cursor(keys[i]), "node": items[i]} for i in chosen]
    if chosen:
        has_next = chosen[-1] < len(items) - 1 if not reverse else chosen[-1] > 0
        has_previous = chosen[0] > 0 if not reverse else chosen[0] < len(items) - 1
    else:
        has_next, has_previous = False, lo > 0
    return {
        "edges": edges,
        "nodes": window,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


SEARCH_TERM = re.compile(r'(\w+):(>=|<=|>|<)?("[^"]*"|\S+)')


def search_filter(query: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """Shopify's search syntax, the part a connector uses: ``field:value`` terms (``OR``
    between values of one field, AND between fields), ``id`` comparisons (``id:>5``).
    Unknown fields are ignored, as Shopify ignores them (with a search warning)."""
    if not query:
        return lambda _values: True
    wanted: dict[str, list[tuple[str, str]]] = {}
    for name, op, value in SEARCH_TERM.findall(query):
        wanted.setdefault(name, []).append((op, value.strip('"')))

    def match(values: Mapping[str, Any]) -> bool:
        for name, options in wanted.items():
            if name not in values:
                continue
            have = values[name]
            if not any(_compare(have, op, value) for op, value in options):
                return False
        return True

    return match


def _compare(have: Any, op: str, value: str) -> bool:
    if isinstance(have, int):
        number = gid_number(value, r"\w+") if value.startswith("gid://") else None
        try:
            target = number if number is not None else int(value)
        except ValueError:
            return False
        return {"": have == target, ">": have > target, "<": have < target,
                ">=": have >= target, "<=": have <= target}[op]
    if isinstance(have, bool):
        return str(have).lower() == value.lower()
    if value.endswith("*"):
        return str(have or "").lower().startswith(value[:-1].lower())
    return str(have or "").lower() == value.lower()


# --- cost, scopes and page sizes: one static walk of the operation ---------------------------


@dataclass
class Analysis:
    cost: int = 0
    denied: list[dict[str, Any]] = field(default_factory=list)
    page_errors: list[dict[str, Any]] = field(default_factory=list)


class Walker:
    """Walks an operation against the schema: requested cost (Shopify's rules), fields the
    token's scopes may not read, ``first``/``last`` over 250 or missing on a connection."""

    def __init__(self, info: SchemaInfo, document: DocumentNode, variables: Mapping[str, Any],
                 scopes: frozenset[str], bulk: bool = False) -> None:
        self.info = info
        self.schema = info.schema
        self.fragments = {d.name.value: d for d in document.definitions
                          if isinstance(d, FragmentDefinitionNode)}
        self.variables = variables
        self.scopes = scopes
        self.bulk = bulk
        self.result = Analysis()

    def operation(self, operation: OperationDefinitionNode) -> Analysis:
        root = (self.schema.mutation_type if operation.operation.value == "mutation"
                else self.schema.query_type)
        assert root is not None
        if operation.operation.value == "mutation":
            for node, _owner in self.fields(operation.selection_set, root):
                definition = root.fields.get(node.name.value)
                if definition is not None:
                    self.check_access(root, node, definition, [self.key(node)])
                    self.result.cost += MUTATION_COST
                    self.selection(node.selection_set, get_named_type(definition.type),
                                   [self.key(node)], charge=False)
        else:
            self.result.cost = self.selection(operation.selection_set, root, [], charge=True)
        return self.result

    @staticmethod
    def key(node: FieldNode) -> str:
        return node.alias.value if node.alias else node.name.value

    def fields(self, selection_set: SelectionSetNode | None,
               parent: GraphQLNamedType) -> Iterator[tuple[FieldNode, GraphQLNamedType]]:
        """The fields of a selection with the type each is selected on (fragments expanded;
        a fragment on a concrete type of an interface selects on that type)."""
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                yield selection, parent
                continue
            if isinstance(selection, InlineFragmentNode):
                inner, condition = selection.selection_set, selection.type_condition
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    continue
                inner, condition = fragment.selection_set, fragment.type_condition
            else:
                continue
            owner = self.schema.get_type(condition.name.value) if condition else parent
            yield from self.fields(inner, owner or parent)

    def argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return value_from_ast_untyped(argument.value, self.variables)
        return None

    def selection(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType,
                  path: list[str], charge: bool) -> int:
        total = 0
        for node, owner in self.fields(selection_set, parent):
            total += self.field(node, owner, path + [self.key(node)], charge)
        return total

    def field(self, node: FieldNode, parent: GraphQLNamedType, path: list[str],
              charge: bool) -> int:
        fields = getattr(parent, "fields", None)
        definition = fields.get(node.name.value) if fields else None
        if definition is None:
            return 0  # __typename, or a field of a concrete type under an interface
        named = get_named_type(definition.type)
        self.check_access(parent, node, definition, path)
        if is_leaf_type(named):
            return 0
        if named.name.endswith("Connection") and "first" in definition.args:
            size = self.page_size(node, path)
            per_node = 0
            for child, _owner in self.fields(node.selection_set, named):
                child_def = named.fields.get(child.name.value)  # type: ignore[attr-defined]
                if child_def is None:
                    continue
                child_type = get_named_type(child_def.type)
                self.check_access(named, child, child_def, path + [self.key(child)])
                if child.name.value == "edges":
                    node_type = child_type.fields["node"].type  # type: ignore[attr-defined]
                    for grand, _owner in self.fields(child.selection_set, child_type):
                        if grand.name.value == "node":
                            per_node = max(per_node, 1 + self.selection(
                                grand.selection_set, get_named_type(node_type),
                                path + [self.key(child), "node"], charge))
                elif child.name.value == "nodes":
                    per_node = max(per_node, 1 + self.selection(
                        child.selection_set, child_type, path + [self.key(child)], charge))
            return 2 + size * per_node
        return 1 + self.selection(node.selection_set, named, path, charge)

    def page_size(self, node: FieldNode, path: list[str]) -> int:
        first, last = self.argument(node, "first"), self.argument(node, "last")
        if self.bulk:
            return 1
        if first is None and last is None:
            self.result.page_errors.append(self.error(
                node, path, "you must provide one of first or last", "BAD_REQUEST"))
            return 0
        size = first if first is not None else last
        if size > MAX_PAGE_SIZE or size < 0:
            name = "first" if first is not None else "last"
            # Wording approximated: Shopify refuses page sizes over 250 on every connection.
            self.result.page_errors.append(self.error(
                node, path, f"The `{name}` argument of the `{node.name.value}` connection must "
                f"be between 0 and {MAX_PAGE_SIZE}; {size} was requested.", "BAD_REQUEST"))
        return max(0, min(int(size), MAX_PAGE_SIZE))

    def check_access(self, parent: GraphQLNamedType, node: FieldNode, definition: Any,
                     path: list[str]) -> None:
        requirement = self.info.access.get((parent.name, node.name.value))
        if requirement is None:
            requirement = self.info.access.get((get_named_type(definition.type).name, None))
        if requirement is None or any(scope in self.scopes for scope in requirement[1]):
            return
        text = requirement[0].strip()
        self.result.denied.append({
            **self.error(node, path, f"Access denied for {node.name.value} field. "
                         f"Required access: {text}", "ACCESS_DENIED"),
        })
        self.result.denied[-1]["extensions"].update(
            {"documentation": ACCESS_DOC, "requiredAccess": text})

    @staticmethod
    def error(node: FieldNode, path: list[str], message: str, code: str) -> dict[str, Any]:
        location = node.loc.source.get_location(node.loc.start) if node.loc else None
        return {"message": message,
                "locations": [{"line": location.line, "column": location.column}]
                if location else [],
                "path": list(path), "extensions": {"code": code}}


def granted(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes a token holds, ``write_x`` implying ``read_x``."""
    held = set(scopes)
    held |= {"read_" + scope[len("write_"):] for scope in held if scope.startswith("write_")}
    return frozenset(held)


def actual_cost(selection: Any, data: Any, walker: Walker, parent: GraphQLNamedType) -> int:
    """The cost of what was returned: like the requested cost, with each connection sized by
    the nodes it returned and null objects free."""
    if not isinstance(data, Mapping):
        return 0
    total = 0
    for node, owner in walker.fields(selection, parent):
        fields = getattr(owner, "fields", None)
        definition = fields.get(node.name.value) if fields else None
        value = data.get(walker.key(node))
        if definition is None or value is None:
            continue
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            continue
        if named.name.endswith("Connection") and "first" in definition.args:
            per = 0
            count = 0
            for child, _owner in walker.fields(node.selection_set, named):
                items = value.get(walker.key(child)) or []
                if child.name.value == "nodes":
                    count = max(count, len(items))
                    node_type = get_named_type(named.fields["nodes"].type)  # type: ignore
                    per += sum(1 + actual_cost(child.selection_set, item, walker, node_type)
                               for item in items)
                elif child.name.value == "edges":
                    count = max(count, len(items))
                    edge_type = get_named_type(named.fields["edges"].type)  # type: ignore
                    node_type = get_named_type(edge_type.fields["node"].type)  # type: ignore
                    for grand, _owner in walker.fields(child.selection_set, edge_type):
                        if grand.name.value == "node":
                            per += sum(1 + actual_cost(grand.selection_set,
                                                       item.get(walker.key(grand)), walker,
                                                       node_type) for item in items)
            total += 2 + per
        elif isinstance(value, list):
            total += sum(1 + actual_cost(node.selection_set, item, walker, named)
                         for item in value)
        else:
            total += 1 + actual_cost(node.selection_set, value, walker, named)
    return total


# --- validation errors, in Shopify's (graphql-ruby's) words ----------------------------------

VALIDATION_WORDS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, dict]]],
                        ...] = (
    (re.compile(r"Cannot query field '(\w+)' on type '(\w+)'"),
     lambda m: (f"Field '{m[1]}' doesn't exist on type '{m[2]}'",
                {"code": "undefinedField", "typeName": m[2], "fieldName": m[1]})),
    (re.compile(r"Unknown argument '(\w+)' on field '(\w+)\.(\w+)'"),
     lambda m: (f"Field '{m[3]}' doesn't accept argument '{m[1]}'",
                {"code": "argumentNotAccepted", "name": m[3], "typeName": "Field",
                 "argumentName": m[1]})),
    (re.compile(r"Field '(\w+)' argument '(\w+)' of type '(.+)' is required"),
     lambda m: (f"Field '{m[1]}' is missing required arguments: {m[2]}",
                {"code": "missingRequiredArguments", "className": "Field", "name": m[1],
                 "arguments": m[2]})),
    (re.compile(r"(\w+) cannot represent (.*)"),
     lambda m: (f"Argument has an invalid value ({m[2].split(': ', 1)[-1]}). "
                f"Expected type '{m[1]}'.", {"code": "argumentLiteralsIncompatible"})),
    (re.compile(r"Variable '\$(\w+)' of type '(.+)' used in position expecting type '(.+)'"),
     lambda m: (f"Type mismatch on variable ${m[1]} and argument ({m[2]} / {m[3]})",
                {"code": "variableMismatch", "variableName": m[1], "typeName": m[2]})),
)


def shopify_error(error: GraphQLError, default_code: str) -> dict[str, Any]:
    formatted = dict(error.formatted)
    message = error.message
    extensions: dict[str, Any] = {"code": default_code}
    for pattern, words in VALIDATION_WORDS:
        match = pattern.search(message)
        if match:
            message, extensions = words(match)
            break
    formatted["message"] = message
    formatted["extensions"] = {**extensions, **(error.extensions or {})}
    formatted.setdefault("locations", [])
    return formatted


def _places(document: DocumentNode) -> dict[int, tuple[list[str], str | None, str | None]]:
    """Where each field and argument value sits, as graphql-ruby names it in an error: the
    path (``["query Name", "shop", "nme"]``), and for a value its argument and field."""
    places: dict[int, tuple[list[str], str | None, str | None]] = {}

    def walk(selection_set: SelectionSetNode | None, path: list[str]) -> None:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                here = path + [selection.alias.value if selection.alias
                               else selection.name.value]
                places[id(selection)] = (here, None, None)
                for argument in selection.arguments or ():
                    places[id(argument.value)] = (here + [argument.name.value],
                                                  argument.name.value, selection.name.value)
                walk(selection.selection_set, here)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                walk(selection.selection_set,
                     path + [f"... on {condition.name.value}" if condition else "..."])

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            label = definition.operation.value + (
                f" {definition.name.value}" if definition.name else "")
            walk(definition.selection_set, [label])
        elif isinstance(definition, FragmentDefinitionNode):
            walk(definition.selection_set, [f"fragment {definition.name.value}"])
    return places


def _placed(formatted: dict[str, Any], error: GraphQLError,
            places: Mapping[int, tuple[list[str], str | None, str | None]]) -> dict[str, Any]:
    """Adds graphql-ruby's ``path`` to a validation error, and names the argument and field of
    a value of the wrong type as Shopify does."""
    for node in error.nodes or ():
        place = places.get(id(node))
        if place is None:
            continue
        path, argument, field_name = place
        formatted["path"] = path
        if argument and formatted["extensions"].get("code") == "argumentLiteralsIncompatible":
            formatted["message"] = formatted["message"].replace(
                "Argument has", f"Argument '{argument}' on Field '{field_name}' has", 1)
            formatted["extensions"].update({"typeName": "Field", "argumentName": argument})
        break
    return formatted


# --- the stand-in ---------------------------------------------------------------------------


@dataclass
class Call:
    """One GraphQL request as the stand-in answered it."""

    operation: str
    kind: str
    requested_cost: int
    actual_cost: int | None
    throttled: bool
    key: str | None
    status: int
    variables: dict[str, Any]


@dataclass
class KeyRecord:
    fingerprint: str
    state: str  # "running", "done", "failed"
    at: float
    payload: Any = None


@dataclass
class BulkOperation:
    number: int
    query: str
    created: float
    due: float
    lines: list[str] | None = None
    status: str = "RUNNING"
    typename: str = "BulkOperation"

    @property
    def id(self) -> str:
        return gid("BulkOperation", self.number)


class Context:
    def __init__(self, standin: ShopifyStandIn, variables: Mapping[str, Any] | None = None,
                 bulk: bool = False) -> None:
        self.standin = standin
        self.variables = variables or {}
        self.bulk = bulk


class ShopifyStandIn(LoopbackStandIn):
    """Shopify's Admin GraphQL API 2026-04 on ``http://127.0.0.1:<port>`` (a context manager).

    ``url`` is the store address; ``token`` the valid access token; ``client_id`` /
    ``client_secret`` the app credentials the token endpoint accepts; ``scopes`` the token's
    scopes (settable). See the module docstring for the rules it enforces."""

    thread_name = "shopify-standin"

    def __init__(self, *, plan: Plan = STANDARD, bucket_size: float | None = None,
                 restore_rate: float | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, stale_applies_others: bool = False,
                 bulk_delay: float = 0.0, idempotency_retention: float = IDEMPOTENCY_RETENTION,
                 failed_keys_rerun: bool = False,
                 shop_name: str = "Stand-in shop", scopes: Iterable[str] = DEFAULT_SCOPES
                 ) -> None:
        self.info = schema_info()
        self.bucket_size = float(bucket_size if bucket_size is not None else plan.bucket_size)
        self.restore_rate = float(restore_rate if restore_rate is not None
                                  else plan.restore_rate)
        self.clock = clock
        self.wall_clock = wall_clock
        self.stale_applies_others = stale_applies_others
        self.failed_keys_rerun = failed_keys_rerun
        self.bulk_delay = bulk_delay
        self.idempotency_retention = idempotency_retention
        self.shop_name = shop_name
        self.scopes: set[str] = set(scopes)
        self.token = "shpat_" + secrets.token_hex(16)
        self.client_id = secrets.token_hex(16)
        self.client_secret = "shpss_" + secrets.token_hex(16)
        self.lock = threading.RLock()
        self._keys_lock = threading.Lock()
        self._control_lock = threading.Lock()  # calls, faults, tokens: never the store lock
        # the catalog (locations, variants, indexes) and bulk operations: what reads need,
        # so that a mutation held inside ``self.lock`` never blocks a read
        self._catalog_lock = threading.RLock()
        self._bucket_lock = threading.Lock()
        self._available = self.bucket_size
        self._bucket_time = clock()
        self._numbers = iter(range(1001, 10**12))
        self._locations: dict[str, Location] = {}
        self._products: dict[str, Product] = {}
        self._variants: dict[str, Variant] = {}
        self._items: dict[str, InventoryItem] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._keys: dict[str, KeyRecord] = {}
        self._issued: dict[str, float] = {}
        self._bulk: dict[str, BulkOperation] = {}
        self._calls: list[Call] = []
        self._before: list[Callable[..., Any]] = []
        self._after: list[Callable[..., Any]] = []
        self._documents: dict[tuple[str, str | None], Any] = {}
        self._indexes: dict[str, tuple[list[Any], list[int]]] = {}
        self._start_serving(_handler_for(self))


    @property
    def graphql_url(self) -> str:
        return f"{self.url}/admin/api/{API_VERSION}/graphql.json"

    # -- control API (thread-safe) --

    def _number(self) -> int:
        return next(self._numbers)

    def add_location(self, name: str, active: bool = True) -> str:
        """A new location; returns its gid. The first location is where ``qty`` goes."""
        with self.lock, self._catalog_lock:
            location = Location(self._number(), name, active)
            if not self._locations:
                location.isPrimary = True
            self._locations[location.id] = location
            return location.id

    def add_product(self, title: str, variants: Iterable[Mapping[str, Any]]) -> str:
        """A product with variants ``{"sku", "title", "qty", "tracked"=True,
        "locations"={location gid: qty}}`` (``locations`` replaces ``qty`` and says where the
        item is stocked; without it the item is stocked at the first location only).
        ``sku`` may be None or shared by two variants. Returns the product gid."""
        with self.lock, self._catalog_lock:
            if not self._locations:
                self.add_location("Shop location")
            self._indexes.clear()
            product = Product(self._number(), title)
            self._products[product.id] = product
            first_location = next(iter(self._locations.values()))
            for spec in variants:
                variant = Variant(self._number(), product, spec.get("sku"),
                                  spec.get("title", "Default Title"))
                variant.inventoryItem.tracked = bool(spec.get("tracked", True))
                stocked = spec.get("locations")
                if stocked is None:
                    stocked = {first_location.id: int(spec.get("qty", 0))}
                for location_id, quantity in stocked.items():
                    location = self._locations[location_id]
                    variant.inventoryItem.level_by_location[location_id] = InventoryLevel(
                        variant.inventoryItem, location, int(quantity))
                product.variant_list.append(variant)
                self._variants[variant.id] = variant
                self._items[variant.inventoryItem.id] = variant.inventoryItem
            return product.id

    def _index(self, table: str) -> tuple[list[Any], list[int]]:
        """Variants or inventory items in id order, with their ids (cached until a change)."""
        cached = self._indexes.get(table)
        if cached is not None:  # a read needs no lock: a running mutation must not block it
            return cached
        with self._catalog_lock:
            cached = self._indexes.get(table)
            if cached is None:
                rows = list((self._variants if table == "variants" else self._items).values())
                cached = (rows, [row.number for row in rows])
                self._indexes[table] = cached
            return cached

    def _variant(self, sku: str) -> Variant:
        for variant in self._variants.values():
            if variant.sku == sku:
                return variant
        raise KeyError(f"no variant with SKU {sku!r} in the stand-in")

    def _level(self, sku: str, location: str | None) -> InventoryLevel:
        item = self._variant(sku).inventoryItem
        location = location or next(iter(self._locations))
        try:
            return item.level_by_location[location]
        except KeyError:
            raise KeyError(f"SKU {sku!r} is not stocked at {location}") from None

    def variant_id(self, sku: str) -> str:
        with self.lock:
            return self._variant(sku).id

    def item_id(self, sku: str) -> str:
        with self.lock:
            return self._variant(sku).inventoryItem.id

    def sell(self, sku: str, qty: int, location: str | None = None) -> None:
        """An online order: ``available`` drops by ``qty`` (committed rises), recorded in
        the item's history as a sale."""
        with self.lock:
            level = self._level(sku, location)
            level.counts["available"] -= qty
            level.counts["committed"] = level.counts.get("committed", 0) + qty
            self._record(level.item, {"kind": "sale", "name": "available", "delta": -qty,
                                      "quantity_after": level.counts["available"],
                                      "reason": "order", "reference_document_uri": None,
                                      "key": None, "location": level.location.id})

    def set_level(self, sku: str, qty: int, location: str | None = None) -> None:
        """Set ``available`` directly (an edit in Shopify's admin), recorded as such."""
        with self.lock:
            level = self._level(sku, location)
            delta = qty - level.counts["available"]
            level.counts["available"] = qty
            level.counts["on_hand"] += delta
            self._record(level.item, {"kind": "admin", "name": "available", "delta": delta,
                                      "quantity_after": qty, "reason": "correction",
                                      "reference_document_uri": None, "key": None,
                                      "location": level.location.id})

    def level(self, sku: str, location: str | None = None, name: str = "available") -> int:
        with self.lock:
            return self._level(sku, location).quantity(name)

    def levels(self, location: str | None = None) -> dict[str, int]:
        """``{sku: available}`` at a location (the first by default); variants without SKU
        or not stocked there are left out; of two variants sharing a SKU the last wins."""
        with self.lock:
            location = location or next(iter(self._locations))
            return {variant.sku: variant.inventoryItem.level_by_location[location]
                    .quantity("available")
                    for variant in self._variants.values()
                    if variant.sku is not None
                    and location in variant.inventoryItem.level_by_location}

    def history(self, sku: str) -> list[dict[str, Any]]:
        """Every change applied to the SKU's item: kind (set/adjust/sale/admin), name, delta,
        quantity_after, reason, reference_document_uri, key, location."""
        with self.lock:
            return list(self._history.get(self._variant(sku).inventoryItem.id, []))

    @property
    def calls(self) -> list[Call]:
        with self._control_lock:
            return list(self._calls)

    def before_mutation(self, callback: Callable[..., Any]) -> None:
        """``callback(standin, mutation_name, input)`` runs inside each inventory mutation
        just before it compares and applies (the store lock held: control calls are fine)."""
        self._before.append(callback)

    def after_mutation(self, callback: Callable[..., Any]) -> None:
        """``callback(standin, mutation_name, input, payload)`` after an inventory mutation."""
        self._after.append(callback)

    def bucket_level(self) -> float:
        with self._bucket_lock:
            return self._refill()

    def _record(self, item: InventoryItem, entry: dict[str, Any]) -> None:
        entry["at"] = now_iso(self.wall_clock())
        self._history.setdefault(item.id, []).append(entry)

    # -- throttling --

    def _refill(self) -> float:
        now = self.clock()
        self._available = min(self.bucket_size, self._available
                              + (now - self._bucket_time) * self.restore_rate)
        self._bucket_time = now
        return self._available

    def _throttle_status(self) -> dict[str, float]:
        with self._bucket_lock:
            return {"maximumAvailable": self.bucket_size,
                    "currentlyAvailable": round(self._refill(), 1),
                    "restoreRate": self.restore_rate}

    def _take(self, cost: int) -> bool:
        with self._bucket_lock:
            if self._refill() < cost - 1e-6:
                return False
            self._available = max(0.0, self._available - cost)
            return True

    def _refund(self, points: int) -> None:
        with self._bucket_lock:
            self._refill()
            self._available = min(self.bucket_size, self._available + points)

    # -- authentication --

    def token_valid(self, token: str | None) -> bool:
        if not token:
            return False
        if secrets.compare_digest(token, self.token):
            return True
        with self._control_lock:
            expiry = self._issued.get(token)
            return expiry is not None and self.clock() < expiry

    def issue_token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "The grant type is not supported."}
        if (form.get("client_id") != self.client_id
                or not secrets.compare_digest(form.get("client_secret", ""),
                                              self.client_secret)):
            # RFC 6749 section 5.2 shape; Shopify's exact description is not documented.
            return 400, {"error": "invalid_client",
                         "error_description": "Client authentication failed due to unknown "
                         "client, no client authentication included, or unsupported "
                         "authentication method."}
        token = "shpat_" + secrets.token_hex(16)
        with self._control_lock:
            self._issued[token] = self.clock() + TOKEN_LIFETIME
        return 200, {"access_token": token, "scope": ",".join(sorted(self.scopes)),
                     "expires_in": TOKEN_LIFETIME}

    # -- the GraphQL endpoint --

    def _document(self, query: str, operation_name: str | None) -> Any:
        cache_key = (query, operation_name)
        cached = self._documents.get(cache_key)
        if cached is not None:
            return cached
        try:
            document = parse(query)
        except GraphQLError as exc:
            # Wording approximated: Shopify answers graphql-ruby's parse error text.
            result: Any = ("errors", [shopify_error(exc, "PARSE_ERROR")])
        else:
            errors = validate(self.info.schema, document)
            if errors:
                places = _places(document)
                result = ("errors", [_placed(shopify_error(e, "GRAPHQL_VALIDATION_FAILED"), e,
                                             places) for e in errors])
            else:
                operations = [d for d in document.definitions
                              if isinstance(d, OperationDefinitionNode)]
                chosen = [o for o in operations if operation_name is None
                          or (o.name and o.name.value == operation_name)]
                if len(chosen) != 1:
                    result = ("errors", [{"message": "An operation name is required"
                                          if len(chosen) > 1 else
                                          f'No operation named "{operation_name}"',
                                          "locations": [],
                                          "extensions": {"code": "BAD_REQUEST"}}])
                else:
                    result = ("ok", (document, chosen[0]))
        if len(self._documents) < 2000:
            self._documents[cache_key] = result
        return result

    def answer(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one GraphQL request body (already authenticated)."""
        query = body.get("query")
        variables = body.get("variables") or {}
        operation_name = body.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict):
            return 400, {"errors": {"query": "Required parameter missing or invalid"}}, {}
        outcome, parsed = self._document(query, operation_name)
        if outcome == "errors":
            self._log(operation_name or "?", "invalid", 0, 0, False, None, 200, variables)
            return 200, {"errors": parsed, "extensions": self._cost_extension(0, 0)}, {}
        document, operation = parsed
        kind = operation.operation.value
        name = operation_name or (operation.name.value if operation.name else None) or ",".join(
            s.name.value for s in operation.selection_set.selections
            if isinstance(s, FieldNode))
        coerced = get_variable_values(self.info.schema, operation.variable_definitions or (),
                                      variables)
        if isinstance(coerced, list):
            self._log(name, kind, 0, 0, False, None, 200, variables)
            return 200, {"errors": [shopify_error(e, "INVALID_VARIABLE") for e in coerced],
                         "extensions": self._cost_extension(0, 0)}, {}
        key = self._idempotency_key(operation, variables)
        walker = Walker(self.info, document, getattr(coerced, "coerced", coerced),
                        granted(self.scopes))
        analysis = walker.operation(operation)
        cost = analysis.cost
        if cost > MAX_QUERY_COST:
            self._log(name, kind, cost, None, False, key, 200, variables)
            return 200, {"errors": [{
                "message": f"Query cost is {cost}, which exceeds the single query max cost "
                           f"limit ({MAX_QUERY_COST}).\n\nSee {RATE_LIMITS_DOC} for more "
                           "information on how the\ncost of a query is calculated.\n\nTo query "
                           "larger amounts of data with fewer limits, bulk operations should be "
                           "used instead.\nSee https://shopify.dev/api/usage/bulk-operations/"
                           "queries for usage details.\n",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost,
                               "maxCost": MAX_QUERY_COST, "documentation": RATE_LIMITS_DOC}}],
                "extensions": self._cost_extension(cost, None)}, {}
        if analysis.page_errors or analysis.denied:
            self._log(name, kind, cost, 0, False, key, 200, variables)
            return 200, {"errors": analysis.page_errors + analysis.denied, "data": None,
                         "extensions": self._cost_extension(cost, 0)}, {}
        if not self._take(cost):
            self._log(name, kind, cost, None, True, key, 200, variables)
            return 200, {"errors": [{"message": "Throttled",
                                     "extensions": {"code": "THROTTLED",
                                                    "documentation": RATE_LIMITS_DOC}}],
                         "extensions": self._cost_extension(cost, None)}, {}
        result = execute(self.info.schema, document, root_value=Root(self),
                         context_value=Context(self, variables), variable_values=variables,
                         operation_name=operation_name, type_resolver=_type_of,
                         is_awaitable=_never_awaitable)
        root_type = (self.info.schema.mutation_type if kind == "mutation"
                     else self.info.schema.query_type)
        if kind == "mutation":
            actual = cost
        else:
            actual = actual_cost(operation.selection_set, result.data, walker, root_type)
            actual = min(actual, cost)
        self._refund(cost - actual)
        answer: dict[str, Any] = {}
        if result.errors:
            answer["errors"] = [shopify_error(e, _execution_code(e)) for e in result.errors]
        answer["data"] = result.data
        answer["extensions"] = self._cost_extension(cost, actual)
        self._log(name, kind, cost, actual, False, key, 200, variables)
        return 200, answer, {}

    def _cost_extension(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                         "throttleStatus": self._throttle_status()}}

    def _idempotency_key(self, operation: OperationDefinitionNode,
                         variables: Mapping[str, Any]) -> str | None:
        for node in operation.selection_set.selections:
            for directive in getattr(node, "directives", None) or ():
                if directive.name.value == "idempotent":
                    for argument in directive.arguments:
                        return value_from_ast_untyped(argument.value, variables)
        return None

    def _log(self, operation: str, kind: str, requested: int, actual: int | None,
             throttled: bool, key: str | None, status: int, variables: dict[str, Any]) -> None:
        with self._control_lock:
            self._calls.append(Call(operation, kind, requested, actual, throttled, key,
                                    status, variables))

    # -- inventory mutations --

    def run_inventory_mutation(self, info: Any, name: str, data: Mapping[str, Any]) -> Any:
        """The run-time rules of Shopify's two inventory mutations (see module docstring)."""
        node = info.field_nodes[0]
        key = self._directive_key(info, node, name)
        entries_field = "quantities" if name == "inventorySetQuantities" else "changes"
        entries = list(data.get(entries_field) or [])
        if len(entries) > MAX_INPUT_SIZE:
            raise GraphQLError(
                f"The input array size of {len(entries)} is greater than the maximum allowed "
                f"of {MAX_INPUT_SIZE}.", nodes=[node],
                path=[info.path.key, "input", entries_field],
                extensions={"code": "MAX_INPUT_SIZE_EXCEEDED"})
        if any("changeFromQuantity" not in entry for entry in entries):
            input_type = ("InventoryQuantityInput" if name == "inventorySetQuantities"
                          else "InventoryChangeInput")
            raise GraphQLError(
                f"{input_type} must include the following argument: changeFromQuantity.",
                nodes=[node], path=[info.path.key],
                extensions={"code": "INVALID_FIELD_ARGUMENTS"})
        fingerprint = hashlib.sha256(
            json.dumps([name, data], sort_keys=True, default=str).encode()).hexdigest()
        earlier = self._claim_key(key, fingerprint)
        if earlier is not None:
            return earlier
        payload: Any = None
        try:
            with self.lock:
                payload = self._apply(name, data, entries, entries_field, key)
        finally:
            with self._keys_lock:
                record = self._keys[key]
                record.payload = payload
                record.state = ("done" if payload is not None and (
                    payload["inventoryAdjustmentGroup"] is not None
                    or not payload["userErrors"]) else "failed")
        for callback in self._after:
            callback(self, name, data, payload)
        return payload

    def _directive_key(self, info: Any, node: FieldNode, name: str) -> str:
        for directive in node.directives or ():
            if directive.name.value == "idempotent":
                value: Any = None
                for argument in directive.arguments:
                    if argument.name.value == "key":
                        value = value_from_ast_untyped(argument.value, info.context.variables)
                if not isinstance(value, str) or not value.strip():
                    raise GraphQLError("The idempotency key cannot be an empty string or "
                                       "whitespace only.", nodes=[node], path=[info.path.key],
                                       extensions={"code": "BAD_REQUEST"})
                return value
        raise GraphQLError("The @idempotent directive is required for this mutation but was "
                           "not provided.", nodes=[node], path=[info.path.key],
                           extensions={"code": "BAD_REQUEST"})

    def _claim_key(self, key: str, fingerprint: str) -> Any:
        """None if this request may run (the key is now its own), else the payload to answer."""
        with self._keys_lock:
            now = self.clock()
            record = self._keys.get(key)
            if record is not None and now - record.at > self.idempotency_retention:
                record = None
            if (record is not None and record.state == "failed" and self.failed_keys_rerun
                    and record.fingerprint == fingerprint):
                record = None
            if record is None:
                self._keys[key] = KeyRecord(fingerprint, "running", now)
                return None
            if record.fingerprint != fingerprint:
                return _refusal("IDEMPOTENCY_KEY_PARAMETER_MISMATCH", "The same idempotency "
                                "key cannot be used with different operation parameters.")
            if record.state == "running":
                return _refusal("IDEMPOTENCY_CONCURRENT_REQUEST",
                                "This request is currently in progress, please try again.")
            if record.state == "failed":
                return _refusal("IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED", "A previous request "
                                "with this idempotency key failed. Retry with a new "
                                "idempotency key.")
            return record.payload

    def _apply(self, name: str, data: Mapping[str, Any], entries: list[Mapping[str, Any]],
               entries_field: str, key: str) -> dict[str, Any]:
        for callback in self._before:
            callback(self, name, data)
        setting = name == "inventorySetQuantities"
        errors = self._check_input(data, entries, entries_field, setting)
        if errors:
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        quantity_name = data["name"]
        stale: list[dict[str, Any]] = []
        changes: list[tuple[InventoryLevel, int]] = []
        for index, entry in enumerate(entries):
            level = self._items[entry["inventoryItemId"]].level_by_location[entry["locationId"]]
            current = level.quantity(quantity_name)
            expected = entry["changeFromQuantity"]
            if expected is not None and expected != current:
                stale.append(_user_error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    "The changeFromQuantity value does not match persisted value."
                    if setting else
                    "The changeFromQuantity argument no longer matches the persisted quantity.",
                    ["input", entries_field, str(index), "changeFromQuantity"]))
                continue
            delta = entry["quantity"] - current if setting else entry["delta"]
            changes.append((level, delta))
        limit = SET_QUANTITY_LIMIT if setting else ADJUST_QUANTITY_LIMIT
        bounds = [
            _user_error("INVALID_QUANTITY_TOO_HIGH" if level.quantity(quantity_name) + delta
                        > limit else "INVALID_QUANTITY_TOO_LOW",
                        f"The quantity can't be {'higher' if delta > 0 else 'lower'} than "
                        f"{'' if delta > 0 else '-'}{limit:,}.", ["input", entries_field])
            for level, delta in changes
            if not -limit <= level.quantity(quantity_name) + delta <= limit]
        if bounds:
            return {"inventoryAdjustmentGroup": None, "userErrors": stale + bounds}
        if stale and not self.stale_applies_others:
            return {"inventoryAdjustmentGroup": None, "userErrors": stale}
        group = self._commit(data, changes, key, "set" if setting else "adjust")
        return {"inventoryAdjustmentGroup": group, "userErrors": stale}

    def _check_input(self, data: Mapping[str, Any], entries: list[Mapping[str, Any]],
                     entries_field: str, setting: bool) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        if setting and data["name"] not in SET_NAMES:
            errors.append(_user_error("INVALID_NAME", "The quantity name must be either "
                                      "'available' or 'on_hand'.", ["input", "name"]))
        if not setting and data["name"] not in ADJUST_NAMES:
            errors.append(_user_error("INVALID_QUANTITY_NAME",
                                      "The specified quantity name is invalid.",
                                      ["input", "name"]))
        if data["reason"] not in REASONS:
            errors.append(_user_error("INVALID_REASON", "The specified reason is invalid.",
                                      ["input", "reason"]))
        uri = data.get("referenceDocumentUri")
        if uri is not None and not _valid_reference(uri):
            errors.append(_user_error("INVALID_REFERENCE_DOCUMENT",
                                      "The specified reference document is invalid.",
                                      ["input", "referenceDocumentUri"]))
        seen: set[tuple[str, str]] = set()
        for index, entry in enumerate(entries):
            path = ["input", entries_field, str(index)]
            item = self._items.get(entry["inventoryItemId"])
            location = self._locations.get(entry["locationId"])
            if item is None:
                errors.append(_user_error("INVALID_INVENTORY_ITEM", "The specified inventory "
                                          "item could not be found.",
                                          path + ["inventoryItemId"]))
            if location is None:
                errors.append(_user_error("INVALID_LOCATION", "The specified location could "
                                          "not be found.", path + ["locationId"]))
            if item is not None and location is not None:
                if location.id not in item.level_by_location:
                    errors.append(_user_error(
                        "ITEM_NOT_STOCKED_AT_LOCATION", "The specified inventory item is not "
                        "stocked at the location.", path + ["locationId"]))
                pair = (item.id, location.id)
                if pair in seen:
                    errors.append(_user_error(
                        "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR" if setting
                        else "ADJUST_QUANTITIES_FAILED",
                        "The combination of inventoryItemId and locationId must be unique.",
                        path))
                seen.add(pair)
            if setting and entry["quantity"] < 0:
                errors.append(_user_error("INVALID_QUANTITY_NEGATIVE",
                                          "The quantity can't be negative.",
                                          path + ["quantity"]))
            if setting and entry["quantity"] > SET_QUANTITY_LIMIT:
                errors.append(_user_error("INVALID_QUANTITY_TOO_HIGH", "The total quantity "
                                          "can't be higher than 1,000,000,000.",
                                          path + ["quantity"]))
            ledger = entry.get("ledgerDocumentUri")
            if not setting and data["name"] == "available" and ledger is not None:
                errors.append(_user_error("INVALID_AVAILABLE_DOCUMENT", "A ledger document URI "
                                          "is not allowed when adjusting available.",
                                          path + ["ledgerDocumentUri"]))
            if not setting and data["name"] != "available" and ledger is None:
                errors.append(_user_error("INVALID_QUANTITY_DOCUMENT", "A ledger document URI "
                                          "is required except when adjusting available.",
                                          path + ["ledgerDocumentUri"]))
        return errors

    def _commit(self, data: Mapping[str, Any], changes: list[tuple[InventoryLevel, int]],
                key: str, kind: str) -> AdjustmentGroup:
        quantity_name = data["name"]
        uri = data.get("referenceDocumentUri")
        group_changes: list[dict[str, Any]] = []
        for level, delta in changes:
            touched = [quantity_name]
            if quantity_name == "available":
                touched.append("on_hand")
            elif quantity_name == "on_hand":
                touched.insert(0, "available")
            for touched_name in touched:
                level.counts[touched_name] = level.quantity(touched_name) + delta
                group_changes.append({
                    "__typename": "InventoryChange", "name": touched_name, "delta": delta,
                    "quantityAfterChange": level.counts[touched_name], "item": level.item,
                    "location": level.location, "ledgerDocumentUri": None})
            self._record(level.item, {"kind": kind, "name": quantity_name, "delta": delta,
                                      "quantity_after": level.counts[quantity_name],
                                      "reason": data["reason"], "reference_document_uri": uri,
                                      "key": key, "location": level.location.id})
        return AdjustmentGroup(self._number(), data["reason"], uri,
                               now_iso(self.wall_clock()), group_changes)

    # -- bulk operations --

    def run_bulk_query(self, query: str, group_objects: bool) -> dict[str, Any]:
        problem = self._bulk_problem(query)
        if problem is not None:
            return {"bulkOperation": None,
                    "userErrors": [_user_error("INVALID", problem, ["query"])]}
        with self._catalog_lock:
            running = [op for op in self._bulk.values() if self._bulk_status(op) == "RUNNING"]
            if len(running) >= BULK_QUERY_LIMIT:
                return {"bulkOperation": None, "userErrors": [_user_error(
                    "LIMIT_REACHED", "Bulk operations limit reached. Please try again later.",
                    None)]}
            now = self.clock()
            operation = BulkOperation(self._number(), query, now, now + self.bulk_delay)
            self._bulk[operation.id] = operation
            self._bulk_status(operation)
            return {"bulkOperation": self._bulk_view(operation), "userErrors": []}

    def _bulk_problem(self, query: str) -> str | None:
        try:
            document = parse(query)
        except GraphQLError as exc:
            return f"Invalid bulk query: {exc.message}"
        errors = validate(self.info.schema, document)
        if errors:
            return "Invalid bulk query: " + shopify_error(errors[0], "")["message"]
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1 or operations[0].operation.value != "query":
            return "Bulk queries must contain exactly one query operation."
        root = self.info.schema.query_type
        assert root is not None
        walker = Walker(self.info, document, {}, granted(self.scopes), bulk=True)
        tops = [top for top, _owner in walker.fields(operations[0].selection_set, root)]
        if any(top.name.value in ("node", "nodes") for top in tops):
            return "Bulk queries cannot contain a top level `node` or `nodes` field."
        counts = {"connections": 0, "depth": 0}

        def visit(selection: SelectionSetNode | None, parent: GraphQLNamedType,
                  depth: int) -> None:
            for node, owner in walker.fields(selection, parent):
                definition = getattr(owner, "fields", {}).get(node.name.value)
                if definition is None:
                    continue
                named = get_named_type(definition.type)
                nested = depth
                if named.name.endswith("Connection") and "first" in definition.args:
                    counts["connections"] += 1
                    nested = depth + 1
                    counts["depth"] = max(counts["depth"], nested)
                visit(node.selection_set, named, nested)

        visit(operations[0].selection_set, root, 0)
        walker.operation(operations[0])
        if walker.result.denied:
            return walker.result.denied[0]["message"]
        if counts["connections"] == 0:
            return "Bulk queries must contain at least one connection."
        if counts["connections"] > 5:
            return "Bulk queries cannot contain more than 5 connections."
        if counts["depth"] > 2:
            return "Bulk queries cannot contain connections with a nesting depth greater than 2."
        return None

    def _bulk_status(self, operation: BulkOperation) -> str:
        if operation.status == "RUNNING" and self.clock() >= operation.due:
            operation.lines = self._bulk_lines(operation.query)
            operation.status = "COMPLETED"
        return operation.status

    def _bulk_lines(self, query: str) -> list[str]:
        result = execute(self.info.schema, parse(query), root_value=Root(self),
                         context_value=Context(self, bulk=True), type_resolver=_type_of,
                         is_awaitable=_never_awaitable)
        lines: list[str] = []
        for value in (result.data or {}).values():
            _flatten(value, None, lines)
        return lines

    def _bulk_view(self, operation: BulkOperation) -> dict[str, Any]:
        status = self._bulk_status(operation)
        done = status == "COMPLETED"
        lines = operation.lines or []
        size = sum(len(line) + 1 for line in lines)
        return {
            "__typename": "BulkOperation", "id": operation.id, "status": status,
            "errorCode": None, "type": "QUERY", "query": operation.query,
            "createdAt": now_iso(self.wall_clock()),
            "completedAt": now_iso(self.wall_clock()) if done else None,
            "objectCount": str(len(lines)) if done else "0",
            "rootObjectCount": str(sum('"__parentId"' not in line for line in lines))
            if done else "0",
            "fileSize": str(size) if done else None,
            "url": f"{self.url}/bulk/{operation.number}.jsonl" if done else None,
            "partialDataUrl": None,
        }

    def bulk_file(self, number: int) -> bytes | None:
        with self._catalog_lock:
            operation = self._bulk.get(gid("BulkOperation", number))
            if operation is None or self._bulk_status(operation) != "COMPLETED":
                return None
            return "".join(line + "\n" for line in operation.lines or []).encode()


def _execution_code(error: GraphQLError) -> str:
    """A resolver's own error keeps its code; a bug is an internal error; what is left is
    graphql-core refusing the variables (coercion)."""
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        return "INTERNAL_SERVER_ERROR"
    return "INVALID_VARIABLE"


def _flatten(value: Any, parent_id: str | None, lines: list[str]) -> None:
    """Shopify's bulk JSONL: the nodes of a connection one per line; the nodes of a connection
    nested anywhere inside a node (also under plain objects) on later lines, carrying that
    node's id as ``__parentId``."""
    nodes = value.get("nodes") if isinstance(value, Mapping) else None
    if nodes is None and isinstance(value, Mapping) and "edges" in value:
        nodes = [edge.get("node") for edge in value["edges"] or []]
    for node in nodes or []:
        if node is None:
            continue
        nested: list[Any] = []
        own = _without_connections(node, nested)
        if parent_id is not None:
            own["__parentId"] = parent_id
        lines.append(json.dumps(own, separators=(",", ":")))
        for child in nested:
            _flatten(child, node.get("id"), lines)


def _without_connections(node: Mapping[str, Any], nested: list[Any]) -> dict[str, Any]:
    own: dict[str, Any] = {}
    for key, value in node.items():
        if _is_connection(value):
            nested.append(value)
        elif isinstance(value, Mapping):
            own[key] = _without_connections(value, nested)
        else:
            own[key] = value
    return own


def _is_connection(value: Any) -> bool:
    return isinstance(value, Mapping) and ("edges" in value or "nodes" in value) and all(
        k in ("edges", "nodes", "pageInfo") for k in value)


def _user_error(code: str, message: str, path: list[str] | None) -> dict[str, Any]:
    return {"__typename": "UserError", "code": code, "field": path, "message": message}


def _refusal(code: str, message: str) -> dict[str, Any]:
    return {"inventoryAdjustmentGroup": None, "userErrors": [_user_error(code, message, None)]}


GID_REFERENCE = re.compile(r"gid://([^/\s]+)/([^/\s]+)/([^/\s]+)")
URI_REFERENCE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://?\S+|[A-Za-z][A-Za-z0-9+.-]*:\S+")


def _valid_reference(uri: str) -> bool:
    """``referenceDocumentUri``: a URI with scheme and content; a GID needs app, entity, id."""
    if uri.startswith("gid:"):
        return GID_REFERENCE.fullmatch(uri) is not None
    return URI_REFERENCE.fullmatch(uri) is not None


# --- the root value: Shopify's query and mutation fields ------------------------------------


class Root:
    """The root value graphql-core executes on; each method is a root field."""

    def __init__(self, standin: ShopifyStandIn) -> None:
        self.standin = standin

    def shop(self, info: Any) -> dict[str, Any]:
        slug = re.sub(r"[^a-z0-9]+", "-", self.standin.shop_name.lower()).strip("-")
        return {"__typename": "Shop", "id": gid("Shop", 1), "name": self.standin.shop_name,
                "myshopifyDomain": f"{slug}.myshopify.com", "currencyCode": "EUR",
                "ianaTimezone": "Europe/Paris", "email": "shop@example.com",
                "url": self.standin.url, "primaryDomain": None, "plan": None}

    def currentAppInstallation(self, info: Any) -> dict[str, Any]:
        scopes = [{"__typename": "AccessScope", "handle": scope, "description": scope}
                  for scope in sorted(self.standin.scopes)]
        return {"__typename": "AppInstallation", "id": gid("AppInstallation", 1),
                "accessScopes": scopes}

    def locations(self, info: Any, **args: Any) -> dict[str, Any]:
        with self.standin._catalog_lock:
            match = search_filter(args.get("query"))
            items = [location for location in self.standin._locations.values()
                     if (location.isActive or args.get("includeInactive"))
                     and match({"id": location.number, "name": location.name})]
        return connection(info, items, args, [location.number for location in items])

    def location(self, info: Any, id: str | None = None) -> Location | None:
        with self.standin._catalog_lock:
            return self.standin._locations.get(id or "")

    def productVariants(self, info: Any, **args: Any) -> dict[str, Any]:
        variants, keys = self.standin._index("variants")
        query = args.get("query")
        if query:
            match = search_filter(query)
            variants = [variant for variant in variants if match({
                "id": variant.number, "sku": variant.sku, "title": variant.title,
                "product_id": variant.product.number,
                "inventory_item_id": variant.inventoryItem.number})]
            keys = [variant.number for variant in variants]
        return connection(info, variants, args, keys)

    def productVariantsCount(self, info: Any, limit: int | None = 10_000,
                             query: str | None = None) -> dict[str, Any]:
        """"Count of product variants. Limited to a maximum of 10000 by default" (the
        schema's description); ``limit: null`` counts them all."""
        count = len(self.standin._index("variants")[0])
        if limit is not None and count > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": count, "precision": "EXACT"}

    def productVariant(self, info: Any, id: str) -> Variant | None:
        return self.standin._variants.get(id)

    def product(self, info: Any, id: str) -> Product | None:
        return self.standin._products.get(id)

    def inventoryItem(self, info: Any, id: str) -> InventoryItem | None:
        return self.standin._items.get(id)

    def inventoryItems(self, info: Any, **args: Any) -> dict[str, Any]:
        items, keys = self.standin._index("items")
        query = args.get("query")
        if query:
            match = search_filter(query)
            items = [item for item in items
                     if match({"id": item.number, "sku": item.sku})]
            keys = [item.number for item in items]
        return connection(info, items, args, keys)

    def node(self, info: Any, id: str) -> Any:
        return self._node(id)

    def nodes(self, info: Any, ids: list[str]) -> list[Any]:
        if len(ids) > MAX_PAGE_SIZE:
            raise GraphQLError(f"The input array size of {len(ids)} is greater than the maximum "
                               f"allowed of {MAX_PAGE_SIZE}.", path=[info.path.key, "ids"],
                               extensions={"code": "MAX_INPUT_SIZE_EXCEEDED"})
        return [self._node(one) for one in ids]

    def _node(self, id: str) -> Any:
        standin = self.standin
        for table in (standin._items, standin._variants, standin._locations,
                      standin._products):
            found = table.get(id)  # type: ignore[attr-defined]
            if found is not None:
                return found
        if id in standin._bulk:
            return standin._bulk_view(standin._bulk[id])
        level = re.fullmatch(r"gid://shopify/InventoryLevel/(\d+)\?inventory_item_id=(\d+)", id)
        if level:
            item = standin._items.get(gid("InventoryItem", int(level[2])))
            if item is not None:
                return item.level_by_location.get(gid("Location", int(level[1])))
        return None

    def bulkOperation(self, info: Any, id: str) -> dict[str, Any] | None:
        with self.standin._catalog_lock:
            operation = self.standin._bulk.get(id)
            return self.standin._bulk_view(operation) if operation else None

    def currentBulkOperation(self, info: Any, type: str = "QUERY") -> dict[str, Any] | None:
        with self.standin._catalog_lock:
            if type != "QUERY" or not self.standin._bulk:
                return None
            latest = max(self.standin._bulk.values(), key=lambda op: op.number)
            return self.standin._bulk_view(latest)

    def inventorySetQuantities(self, info: Any, input: dict[str, Any]) -> Any:
        return self.standin.run_inventory_mutation(info, "inventorySetQuantities", input)

    def inventoryAdjustQuantities(self, info: Any, input: dict[str, Any]) -> Any:
        return self.standin.run_inventory_mutation(info, "inventoryAdjustQuantities", input)

    def bulkOperationRunQuery(self, info: Any, query: str,
                              groupObjects: bool = False) -> dict[str, Any]:
        return self.standin.run_bulk_query(query, groupObjects)


# --- HTTP ------------------------------------------------------------------------------------

FAULT_BODIES = {
    429: {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                    "resume uninterrupted service."},
    500: {"errors": "Internal Server Error"},
    502: {"errors": "Bad Gateway"},
    503: {"errors": "Service Unavailable"},
    504: {"errors": "Gateway Timeout"},
}


def _handler_for(standin: ShopifyStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None,
                  content_type: str = "application/json; charset=utf-8") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Request-Id", secrets.token_hex(8))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            match = re.fullmatch(r"/bulk/(\d+)\.jsonl", path)
            content = standin.bulk_file(int(match[1])) if match else None
            if content is None:
                self._send(404, {"errors": "Not Found"})
            else:
                self._send(200, content, content_type="application/jsonl")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            raw = self._body()
            if path == "/admin/oauth/access_token":
                form = self._form(raw)
                status, body = standin.issue_token(form)
                self._send(status, body)
                return
            match = re.fullmatch(r"/admin/api/([^/]+)/graphql\.json", path)
            if match is None or match[1] != API_VERSION:
                self._send(404, {"errors": "Not Found"})
                return
            if not standin.token_valid(self.headers.get("X-Shopify-Access-Token")):
                self._send(401, INVALID_TOKEN_BODY)
                return
            fault = standin.take_fault(self.command)
            if fault is not None:
                status, retry_after = fault
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                self._send(status, FAULT_BODIES.get(status, {"errors": "Error"}), headers)
                return
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                self._send(400, {"errors": {"query": "Required parameter missing or invalid"}})
                return
            try:
                status, answer, headers = standin.answer(body)
            except Exception:  # a bug of the stand-in: loud, and answered as Shopify would
                traceback.print_exc()
                status, answer, headers = 500, FAULT_BODIES[500], {}
            if standin.take_drop():
                drop_connection(self)
                return
            self._send(status, answer, headers)

        def _form(self, raw: bytes) -> dict[str, str]:
            if "json" in (self.headers.get("Content-Type") or ""):
                try:
                    data = json.loads(raw or b"{}")
                except ValueError:
                    return {}
                return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}

    return Handler
