"""The stock file: the one document Publish uploads, and Sync downloads.

Format ``xlstock.stock`` version 3 (protocol 3), JSON, UTF-8::

    {"format": "xlstock.stock", "format_version": 3, "shop": "https://shop.example",
     "items": [{"from": 5, "qty": 7, "sku": "A-1"},
               {"add": 12, "from": 3, "qty": 15, "sku": "B-2"}, ...]}

Each published item carries the level it was planned against (``from``). A count is a
checked set: the service sets ``qty`` only if the SKU still has its ``from`` level. A
delivery carries ``add``, a change in units: the service adds it to the level it has
(``qty`` is then the level planned, ``from + add``, for the records), so a delivery
never conflicts with a sale. The file is applied whole or not at all, so sales of
other SKUs never make a publish stale. Publish lists only the SKUs it changes.
Version 2 is version 3 without ``add``; services read both.

What the service answers on a read has no ``from``; it adds ``version`` (the same tag
as the ``ETag``), ``generated_at``, and ``name`` / ``variant`` on each item.
Serialisation is deterministic: items sorted by SKU, keys sorted, no insignificant
white space, one trailing newline, so that the same levels always give the same bytes
(and the same idempotency check on the service).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from typing import Any

from xlstock.errors import ServiceError
from xlstock.i18n import _
from xlstock.model import (
    MAX_LEVEL,
    LevelItems,
    Snapshot,
    StockItem,
    sku_key,
    sku_problem,
    usual_skus,
    version_problem,
)

FORMAT_NAME = "xlstock.stock"
FORMAT_VERSION = 3
READABLE_VERSIONS = (2, 3)
"""Stock documents a client reads: version 2 differs only in what a publish may carry."""
MEDIA_TYPE = "application/json"


def dumps(shop: str, levels: Mapping[str, int], planned_from: Mapping[str, int],
          adds: Mapping[str, int] | None = None,
          thresholds: Mapping[str, int | None] | None = None,
          undoes: str | None = None) -> bytes:
    """The stock file setting ``levels`` (SKU -> level), each planned against
    ``planned_from`` (SKU -> the level it had when planned), as deterministic bytes.
    The SKUs in ``adds`` (SKU -> units) are deliveries, sent as changes in units.
    ``thresholds`` (SKU -> low-stock threshold, ``None`` for none of its own) are the
    workbook's Low at levels that changed since it last sent them. ``undoes``, the key
    of the publish this one takes back (``xlstock undo``), lets the service mark that
    publish undone."""
    missing = [sku for sku in levels if sku not in planned_from]
    if missing:
        raise ValueError(f"no planned-from level for {len(missing)} SKU(s), e.g. {missing[0]!r}")
    adds = adds or {}
    wrong = [sku for sku, add in adds.items()
             if sku not in levels or int(planned_from[sku]) + int(add) != int(levels[sku])]
    if wrong:
        raise ValueError(f"a delivery that does not add up to its level: {wrong[0]!r}")
    items: list[dict[str, Any]] = []
    for sku in sorted(levels):
        item: dict[str, Any] = {"from": int(planned_from[sku]), "qty": int(levels[sku]),
                                "sku": sku}
        if sku in adds:
            item["add"] = int(adds[sku])
        items.append(item)
    document: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "shop": shop,
        "items": items,
    }
    if thresholds:
        document["thresholds"] = {sku: thresholds[sku] for sku in sorted(thresholds)}
    if undoes:
        document["undoes"] = undoes
    return (
        json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    ).encode("utf-8")


def loads_levels(data: bytes) -> dict[str, int]:
    """SKU -> level from a stock file made by :func:`dumps` (for checks and tests)."""
    document = json.loads(data.decode("utf-8"))
    return {item["sku"]: int(item["qty"]) for item in document["items"]}


_ITEM_KEYS = ("sku", "name", "variant", "qty")
_ITEM_KEY_SET = frozenset(_ITEM_KEYS)


def compact_item(obj: dict[str, Any]) -> Any:
    """A ``json.loads`` object hook for a stock document: an object with exactly the
    keys of an item (``sku``, ``name``, ``variant``, ``qty``) becomes the tuple of its
    values in that order, every other object stays as it is. At 100,000 SKUs the
    decoded document is then 11 MB smaller (a tuple is a third of a dict's size).
    :func:`snapshot_from_document` takes items in either form (a JSON array decodes
    to a list, so a tuple can only be an item)."""
    if obj.keys() == _ITEM_KEY_SET:
        return (obj["sku"], obj["name"], obj["variant"], obj["qty"])
    return obj


def compact_item_without_names(obj: dict[str, Any]) -> Any:
    """:func:`compact_item` with the name and variant of an item left out (empty), for
    an action that needs levels only. Nothing is refused for a name, so the snapshot
    is otherwise the one :func:`compact_item` gives."""
    if obj.keys() == _ITEM_KEY_SET:
        return (obj["sku"], "", "", obj["qty"])
    return obj


def _as_decoded(value: Any) -> Any:
    """``value`` as plain ``json.loads`` gives it: the tuples of :func:`compact_item`
    back to objects, at any depth (for the item-by-item check and its messages)."""
    if type(value) is tuple:
        return {key: _as_decoded(v) for key, v in zip(_ITEM_KEYS, value, strict=True)}
    if type(value) is list:
        return [_as_decoded(v) for v in value]
    if type(value) is dict:
        return {key: _as_decoded(v) for key, v in value.items()}
    return value


def snapshot_from_document(document: Any, *, etag: str, source: str) -> Snapshot:
    """A :class:`Snapshot` from the service's JSON answer to a read of the levels.

    ``source`` names where the document came from (a URL) for error messages.
    Raises :class:`ServiceError` when the document is not a stock file this version
    understands.
    """
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ServiceError(_(
            "{source} did not answer with a stock file (format {format}); check the Stock "
            "service setting", source=source, format=repr(FORMAT_NAME)
        ))
    found = document.get("format_version")
    if found == 1 and not isinstance(found, bool):
        raise ServiceError(_(
            "{source} speaks stock file version 1 (protocol 1); this xlstock needs version "
            "{version}, where each published item carries the level it was planned against: "
            "upgrade the stock service", source=source, version=FORMAT_VERSION
        ))
    if found not in READABLE_VERSIONS or isinstance(found, bool):
        raise ServiceError(_(
            "{source} speaks stock file version {found}; this xlstock understands version "
            "{version}: upgrade xlstock", source=source, found=repr(str(found)[:20]),
            version=FORMAT_VERSION
        ))
    raw_items = document.get("items")
    if not isinstance(raw_items, list):
        raise ServiceError(_("{source} sent a stock file without an item list",
                             source=source))
    problem = version_problem(etag)
    if problem:
        raise ServiceError(_(
            "{source} sent a version tag {tag} that {problem}; nothing was changed. Report "
            "this to whoever runs the stock service", source=source, tag=_shown(etag),
            problem=problem
        ))
    items = _usual_items(raw_items)
    if items is None:
        items = _checked_items(_as_decoded(raw_items), source)
    since, removed = _changes_since(document, items, source)
    return Snapshot(
        shop=str(document.get("shop", "")),
        version=etag,
        items=items,
        generated_at=str(document.get("generated_at", "")),
        since=since,
        removed=removed,
    )


def _changes_since(document: dict[str, Any], items: Mapping[str, StockItem],
                   source: str) -> tuple[str | None, tuple[str, ...]]:
    """``since`` and ``removed`` of a document of the changes since a version
    (``(None, ())`` for a whole document), checked."""
    since = document.get("since")
    if since is None:
        return None, ()
    removed = document.get("removed", [])
    problem: str = ""
    if not isinstance(since, str) or version_problem(since):
        problem = _("a 'since' version {since} that is not a version tag",
                    since=_shown(str(since)))
    elif not isinstance(removed, list) or not all(isinstance(sku, str) for sku in removed):
        problem = _("a 'removed' that is not a list of SKUs")
    else:
        bad = next((sku for sku in removed if sku_problem(sku_key(sku)) or not sku_key(sku)
                    or sku_key(sku) in items), None)
        if bad is not None:
            problem = _("removed SKU {sku} that is not a usable SKU or is also listed",
                        sku=_shown(bad))
        elif len(set(map(sku_key, removed))) != len(removed):
            problem = _("a SKU removed twice")
    if problem:
        raise ServiceError(_(
            "{source} sent the changes since a version with {problem}; nothing was "
            "changed. Report this to whoever runs the stock service", source=source,
            problem=problem))
    return since, tuple(sku_key(sku) for sku in removed)


def _usual_items(raw_items: list[Any]) -> Mapping[str, StockItem] | None:
    """The items of the usual stock file, checked a whole column at a time (at 100,000
    SKUs four times as fast as item by item): each an object with a SKU in the usual
    form (:func:`~xlstock.model.usual_skus`), all SKUs different, whole levels in
    range, text names. ``None`` for anything else: :func:`_checked_items` then finds
    and names it; both give the same items where this one gives any."""
    if not raw_items:
        return {}
    columns = (_compact_columns(raw_items) if type(raw_items[0]) is tuple
               else _object_columns(raw_items))
    if columns is None or not _usual_columns(*columns):
        return None
    skus, names, variants, levels = columns
    if not any(names) and not any(variants):  # read without names: levels alone
        return LevelItems(dict(zip(skus, levels, strict=True)))
    return dict(zip(skus, map(StockItem, skus, names, variants, levels), strict=True))


_Columns = tuple[list[Any], list[Any], list[Any], list[Any]]
"""The SKU, name, variant and level columns of a stock file's items, as sent."""


def _compact_columns(raw_items: list[Any]) -> _Columns | None:
    """The columns of items as :func:`compact_item` made them (a missing name or
    variant as ""), or ``None`` when an object in another form is among them."""
    if {type(raw) for raw in raw_items} != {tuple}:
        return None
    skus, names, variants, levels = (list(map(operator.itemgetter(field), raw_items))
                                     for field in range(4))  # C loops
    return (skus, [name or "" for name in names], [variant or "" for variant in variants],
            levels)


def _object_columns(raw_items: list[Any]) -> _Columns | None:
    """The columns of items decoded as plain objects (a missing name or variant as
    ""), or ``None`` when an item is not an object or has no SKU or level."""
    try:
        skus = [raw["sku"] for raw in raw_items]
        levels = [raw["qty"] for raw in raw_items]
        names = [raw.get("name") or "" for raw in raw_items]
        variants = [raw.get("variant") or "" for raw in raw_items]
    except (TypeError, KeyError, AttributeError):
        return None
    return skus, names, variants, levels


def _usual_columns(skus: list[Any], names: list[Any], variants: list[Any],
                   levels: list[Any]) -> bool:
    """Whether the columns hold the usual items: text SKUs in the usual form, all
    different, text names and variants, whole levels (not ``bool``) in range."""
    if {type(sku) for sku in skus} != {str} or {type(qty) for qty in levels} != {int} \
            or not {type(n) for n in names} | {type(v) for v in variants} <= {str}:
        return False
    if not usual_skus(skus) or len(set(skus)) != len(skus):
        return False
    return not (min(levels) < 0 or max(levels) > MAX_LEVEL)


def _checked_items(raw_items: list[Any], source: str) -> dict[str, StockItem]:
    """The items, item by item, raising :class:`ServiceError` at the first bad one."""
    items: dict[str, StockItem] = {}
    as_given: dict[str, str] = {}
    for raw in raw_items:
        given = raw.get("sku") if isinstance(raw, dict) else None
        qty = raw.get("qty") if isinstance(raw, dict) else None
        sku = sku_key(given) if isinstance(given, str) else ""
        problem = _item_problem(given, sku, qty, items, as_given)
        if problem:
            raise ServiceError(_(
                "{source} sent a stock file with {problem}; nothing was changed. Report this "
                "to whoever runs the stock service", source=source, problem=problem
            ))
        assert isinstance(qty, int) and isinstance(given, str)
        as_given[sku] = given
        items[sku] = StockItem(
            sku=sku,
            name=str(raw.get("name") or ""),
            variant=str(raw.get("variant") or ""),
            qty=qty,
        )
    return items


def _item_problem(given: Any, sku: str, qty: Any, items: Mapping[str, StockItem],
                  as_given: Mapping[str, str]) -> str:
    """What is wrong with one item of a stock file ("" when nothing is)."""
    if not isinstance(given, str) or not sku:
        return _("an item without a SKU")
    if sku_problem(sku):
        return _("SKU {sku} that {problem}", sku=_shown(sku), problem=sku_problem(sku))
    if sku in items:
        if as_given[sku].strip() != given.strip():
            return _("SKU {sku} twice (in two Unicode forms, which are one SKU)",
                     sku=_shown(sku))
        if as_given[sku] != given:
            return _("SKU {sku} twice (once with spaces around it, which are not part of a "
                     "SKU)", sku=_shown(sku))
        return _("SKU {sku} twice", sku=_shown(sku))
    if isinstance(qty, bool) or not isinstance(qty, int) or not 0 <= qty <= MAX_LEVEL:
        return _("SKU {sku} with level {level}", sku=_shown(sku), level=repr(str(qty)[:20]))
    return ""


def _shown(text: str) -> str:
    """A value from the service as a message quotes it: cut after 40 characters."""
    return repr(text) if len(text) <= 40 else f"{text[:37]!r}..."
