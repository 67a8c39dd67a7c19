"""The stock file: deterministic bytes for Publish, and the checks on what Sync reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xlstock import stockfile
from xlstock.errors import ServiceError
from xlstock.model import StockItem, sku_key, sku_problem, usual_skus
from xlstock.stockfile import (
    FORMAT_NAME,
    FORMAT_VERSION,
    dumps,
    loads_levels,
    snapshot_from_document,
)

SHOP = "https://shop.example"
SOURCE = "http://127.0.0.1:5000/v1/shops/levels"


def same(levels: dict[str, int]) -> bytes:
    """The stock file setting ``levels``, each planned from the level it sets."""
    return dumps(SHOP, levels, levels)


def test_dumps_exact_bytes() -> None:
    data = dumps(SHOP, {"B-2": 0, "A-1": 12}, {"A-1": 10, "B-2": 3, "C-3": 1})
    assert data == (
        b'{"format":"xlstock.stock","format_version":3,"items":'
        b'[{"from":10,"qty":12,"sku":"A-1"},{"from":3,"qty":0,"sku":"B-2"}],'
        b'"shop":"https://shop.example"}\n'
    )


def test_a_delivery_is_sent_as_a_change_in_units() -> None:
    data = dumps(SHOP, {"A-1": 12, "B-2": 0}, {"A-1": 10, "B-2": 3}, {"A-1": 2})
    assert data == (
        b'{"format":"xlstock.stock","format_version":3,"items":'
        b'[{"add":2,"from":10,"qty":12,"sku":"A-1"},{"from":3,"qty":0,"sku":"B-2"}],'
        b'"shop":"https://shop.example"}\n'
    )
    with pytest.raises(ValueError, match="does not add up"):
        dumps(SHOP, {"A-1": 12}, {"A-1": 10}, {"A-1": 3})


def test_dumps_needs_the_planned_from_level_of_every_item() -> None:
    with pytest.raises(ValueError, match="'A-1'"):
        dumps(SHOP, {"A-1": 1}, {})


def test_dumps_empty() -> None:
    assert json.loads(same({})) == {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "shop": SHOP, "items": []
    }


def test_dumps_is_the_same_whatever_the_insertion_order() -> None:
    levels = {"b": 1, "a": 2, "C": 3, "00123": 4, "123": 5}
    reordered = dict(reversed(list(levels.items())))
    assert same(levels) == same(reordered)


def test_dumps_sorts_by_code_point_and_keeps_case_and_zeros() -> None:
    levels = {"b": 1, "B": 2, "0012": 3, "12": 4, "\u00e9": 5, "e": 6}
    skus = [item["sku"] for item in json.loads(same(levels))["items"]]
    assert skus == ["0012", "12", "B", "b", "e", "\u00e9"]


def test_dumps_writes_unicode_as_utf8_not_escapes() -> None:
    data = same({"Caf\u00e9-\U0001f600": 1})
    assert "Caf\u00e9-\U0001f600".encode() in data
    assert b"\\u" not in data


def test_dumps_escapes_what_json_must() -> None:
    sku = 'quote " backslash \\ slash /'
    data = same({sku: 1})
    assert loads_levels(data) == {sku: 1}
    assert data.count(b"\n") == 1
    assert data.endswith(b"}\n")


def test_dumps_writes_whole_numbers() -> None:
    document = json.loads(same({"A": 3}))
    assert document["items"][0]["qty"] == 3
    assert isinstance(document["items"][0]["qty"], int)


def test_loads_levels_round_trip() -> None:
    levels = {"A-1": 0, "a-1": 5, "00123": 1_000_000_000, " spaced ": 7}
    assert loads_levels(same(levels)) == levels


# --- what Sync reads --------------------------------------------------------------------

def _document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "shop": SHOP,
        "version": '"v7"',
        "generated_at": "2024-05-01T10:00:00Z",
        "items": [
            {"sku": "A-1", "name": "Shirt", "variant": "Red / XL", "qty": 4},
            {"sku": "B-2", "name": "Mug", "variant": None, "qty": 0},
            {"sku": "C-3", "qty": 9},
        ],
    }
    document.update(overrides)
    return document


def test_snapshot_from_document() -> None:
    snap = snapshot_from_document(_document(), etag='"v7"', source=SOURCE)
    assert snap.shop == SHOP
    assert snap.version == '"v7"'
    assert snap.generated_at == "2024-05-01T10:00:00Z"
    assert snap.items == {
        "A-1": StockItem("A-1", "Shirt", "Red / XL", 4),
        "B-2": StockItem("B-2", "Mug", "", 0),
        "C-3": StockItem("C-3", "", "", 9),
    }
    assert snap.levels() == {"A-1": 4, "B-2": 0, "C-3": 9}


def test_snapshot_reads_what_dumps_writes() -> None:
    levels = {"A": 1, "B": 2}
    document = json.loads(same(levels))
    assert snapshot_from_document(document, etag="e", source=SOURCE).levels() == levels


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "did not answer with a stock file (format 'xlstock.stock')"),
        ("<html>", "did not answer with a stock file"),
        (None, "did not answer with a stock file"),
        ({"items": []}, "did not answer with a stock file"),
        (_document(format="other"), "did not answer with a stock file"),
        (_document(format_version=4), "speaks stock file version '4'; this xlstock understands "
                                      "version 3: upgrade xlstock"),
        (_document(format_version=1), "speaks stock file version 1 (protocol 1); this xlstock "
                                      "needs version 3"),
        (_document(format_version="1"), "speaks stock file version '1'"),
        (_document(items=None), "sent a stock file without an item list"),
        (_document(items={"A": 1}), "sent a stock file without an item list"),
        (_document(items=[{"qty": 1}]), "sent a stock file with"),
        (_document(items=[{"sku": "A"}]), "sent a stock file with"),
        (_document(items=[{"sku": "A", "qty": "3"}]), "sent a stock file with"),
        (_document(items=[{"sku": "A", "qty": 3.0}]), "sent a stock file with"),
        (_document(items=[{"sku": "A", "qty": True}]), "sent a stock file with"),
        (_document(items=[{"sku": "A", "qty": None}]), "sent a stock file with"),
        (_document(items=["A"]), "sent a stock file with"),
        (_document(items=[7]), "sent a stock file with"),
    ],
    ids=lambda v: None if isinstance(v, str) else repr(v)[:40],
)
def test_snapshot_refuses_what_is_not_a_stock_file(document: Any, message: str) -> None:
    with pytest.raises(ServiceError) as caught:
        snapshot_from_document(document, etag="e", source=SOURCE)
    assert str(caught.value).startswith(SOURCE + " ")
    assert message in str(caught.value)


def test_snapshot_malformed_item_quote_is_short() -> None:
    document = _document(items=[{"sku": "A", "qty": "x" * 10_000}])
    with pytest.raises(ServiceError) as caught:
        snapshot_from_document(document, etag="e", source=SOURCE)
    assert len(str(caught.value)) < len(SOURCE) + 150


@pytest.mark.parametrize(
    "items",
    [
        [{"sku": None, "qty": 1}],
        [{"sku": 123, "qty": 1}],
        [{"sku": "A", "qty": -1}],
        [{"sku": "A", "qty": 10**12}],
        [{"sku": "A", "qty": 1}, {"sku": "A", "qty": 2}],
        [{"sku": "A\nB", "qty": 1}],
    ],
    ids=["null sku", "number sku", "negative level", "huge level", "repeated sku",
         "control character"],
)
def test_snapshot_refuses_items_the_service_must_never_send(items: list[Any]) -> None:
    with pytest.raises(ServiceError, match=SOURCE):
        snapshot_from_document(_document(items=items), etag="e", source=SOURCE)


def test_snapshot_keys_skus_as_they_are_compared() -> None:
    """NFC, without surrounding spaces: the form the sheet's SKUs are read in and the
    service compares, so that one SKU never becomes two rows."""
    document = _document(items=[{"sku": "Cafe\u0301-1", "qty": 3}, {"sku": " B-2 ", "qty": 1}])
    snap = snapshot_from_document(document, etag="e", source=SOURCE)
    assert snap.levels() == {"Caf\u00e9-1": 3, "B-2": 1}
    assert snap.items["Caf\u00e9-1"].sku == "Caf\u00e9-1"


@pytest.mark.parametrize(("items", "etag", "message"), [
    ([{"sku": "Cafe\u0301", "qty": 1}, {"sku": "Caf\u00e9", "qty": 2}], "e",
     "with SKU 'Café' twice (in two Unicode forms, which are one SKU)"),
    ([{"sku": "A", "qty": 1}, {"sku": "A ", "qty": 2}], "e",
     "with SKU 'A' twice (once with spaces around it, which are not part of a SKU)"),
    ([{"sku": "   ", "qty": 1}], "e", "with an item without a SKU"),
    ([{"sku": "S" * 101, "qty": 1}], "e",
     f"with SKU {'S' * 37!r}... that is 101 characters long; the limit is 100"),
    ([], "V" * 201, f"sent a version tag {'V' * 37!r}... that is 201 characters long; the "
                    "limit is 200"),
    ([], "", "sent a version tag '' that is empty"),
    ([], '"v 1"', "sent a version tag '\"v 1\"' that holds characters an HTTP version tag"),
], ids=["two Unicode forms", "spaces around", "blank", "101 characters", "long tag",
        "empty tag", "space in tag"])
def test_snapshot_refuses_what_no_sheet_could_hold_naming_the_service(
    items: list[Any], etag: str, message: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        snapshot_from_document(_document(items=items), etag=etag, source=SOURCE)
    assert str(caught.value).startswith(f"{SOURCE} sent ")
    assert message in str(caught.value)
    assert str(caught.value).endswith(
        "; nothing was changed. Report this to whoever runs the stock service")


# --- the column-at-a-time check of the usual stock file agrees with the item-by-item one


_SKU_TEXT = st.one_of(
    st.text(alphabet="AB ", max_size=2),  # SKUs that collide, with and without spaces
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=6),
    st.sampled_from(["A-1", " A-1", "A-1 ", "a\tb", "Cafe\u0301", "Caf\u00e9", "", "   ",
                     "x" * 100, "x" * 101, "\u00a0B"]),
)
_ITEM = st.fixed_dictionaries(
    {"sku": st.one_of(_SKU_TEXT, _SKU_TEXT, st.integers(0, 9), st.none()),
     "qty": st.one_of(st.integers(0, 3), st.integers(0, 3), st.just(-1),
                      st.just(1_000_000_001), st.booleans(), st.floats(0, 3), st.just("4"))},
    optional={"name": st.one_of(st.text(max_size=4), st.integers(0, 3), st.none()),
              "variant": st.one_of(st.text(max_size=4), st.none())},
)


@settings(max_examples=400, deadline=None)
@example([{"sku": "A", "qty": 1}, {"sku": "A", "qty": 2}])
@example([{"sku": "A", "qty": 1_000_000_001}])
@example([{"sku": " A", "qty": 1}])
@given(st.lists(st.one_of(_ITEM, _ITEM, _ITEM, st.integers(0, 3), st.text(max_size=3)),
                max_size=6))
def test_the_usual_items_are_those_the_item_by_item_check_gives(raw: list[Any]) -> None:
    usual = stockfile._usual_items(raw)
    if usual is None:
        return
    assert usual == stockfile._checked_items(raw, "https://service.example")


_ODD_OBJECT = st.sampled_from([
    {"sku": "Q", "qty": 1, "name": "n", "colour": "red"},  # four keys, not an item's
    {"sku": "R", "qty": 1, "name": {"sku": "x", "name": "y", "variant": "", "qty": 1},
     "variant": ""},  # a name that looks like an item
    {"sku": "S", "name": "n", "variant": "v", "qty": 2, "extra": 1},
])


@settings(max_examples=300, deadline=None)
@example([{"sku": "A", "name": "n", "variant": "", "qty": 1}, 5])
@given(st.lists(st.one_of(_ITEM, _ITEM, _ITEM, _ODD_OBJECT, st.integers(0, 3)), max_size=6))
def test_compact_items_give_the_snapshot_or_the_refusal_the_dicts_give(raw: list[Any]) -> None:
    text = json.dumps(_document(items=raw))

    def outcome(document: Any) -> Any:
        try:
            return snapshot_from_document(document, etag="e", source=SOURCE)
        except ServiceError as error:
            return str(error)

    plain = outcome(json.loads(text))
    compact = outcome(json.loads(text, object_hook=stockfile.compact_item))
    levels_only = outcome(json.loads(text, object_hook=stockfile.compact_item_without_names))
    if isinstance(plain, str) or isinstance(compact, str) or isinstance(levels_only, str):
        assert compact == levels_only == plain
    else:
        assert compact.items == plain.items
        assert levels_only.levels() == plain.levels()


def test_compact_item_makes_tuples_of_items_only() -> None:
    document = json.loads(json.dumps(_document(items=[
        {"qty": 3, "variant": "v", "name": "n", "sku": "A"},
        {"sku": "B", "qty": 1},
    ])), object_hook=stockfile.compact_item)
    assert document["items"] == [("A", "n", "v", 3), {"sku": "B", "qty": 1}]
    assert isinstance(document, dict)


@given(st.lists(_SKU_TEXT, max_size=5))
def test_usual_skus_are_skus_the_one_rule_accepts_as_they_are(skus: list[str]) -> None:
    if usual_skus(skus):
        assert all(sku_problem(sku) is None and sku_key(sku) == sku for sku in skus)


def test_levels_alone_are_held_as_one_dict_of_levels() -> None:
    """A read without names (Preview, Publish) keeps one dict SKU -> level, not an item
    object per SKU: at 1,000,000 SKUs about 120 MB less (issue 22). Same levels, same
    items on look-up, at under 60% of the memory the named form keeps."""
    import tracemalloc

    items = [{"sku": f"TEE-{n:06d}-RD", "name": "", "variant": "", "qty": n % 500}
             for n in range(20_000)]
    text = json.dumps(_document(items=items))
    named = [dict(item, name=f"Tee {n}") for n, item in enumerate(items)]
    named_text = json.dumps(_document(items=named))

    def kept(text: str) -> tuple[Any, int]:
        document = json.loads(text, object_hook=stockfile.compact_item)
        tracemalloc.start()
        try:
            snapshot = snapshot_from_document(document, etag="e", source=SOURCE)
            del document
            return snapshot, tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    levels_only, small = kept(text)
    with_names, large = kept(named_text)
    assert isinstance(levels_only.items, stockfile.LevelItems)
    assert levels_only.levels() == with_names.levels()
    assert levels_only.level_map() == with_names.level_map()
    assert levels_only.items["TEE-000007-RD"] == StockItem("TEE-000007-RD", qty=7)
    assert dict(levels_only.items) == {sku: StockItem(sku, qty=item.qty)
                                       for sku, item in with_names.items.items()}
    assert small < 0.6 * large, (small, large)


def test_levels_alone_move_as_named_items_do() -> None:
    """``with_levels`` (a publish re-planned on the levels a 412 gave) and the read-only
    ``level_map`` of levels held alone: as for named items."""
    from xlstock.model import LevelItems, Snapshot

    plain = Snapshot("s", "v1", {"A": StockItem("A", qty=1), "B": StockItem("B", "Bee", "", 2)})
    alone = Snapshot("s", "v1", LevelItems({"A": 1, "B": 2}, {"B": StockItem("B", "Bee", "", 2)}))
    assert alone == plain
    moved, moved_alone = plain.with_levels({"B": 5, "C": 3}, "v2"), \
        alone.with_levels({"B": 5, "C": 3}, "v2")
    assert moved_alone == moved and moved_alone.version == "v2"
    assert moved_alone.items["B"] == StockItem("B", "Bee", "", 5)
    assert alone.levels() == {"A": 1, "B": 2}  # the snapshot it came from is unchanged
    assert alone.level_map() is alone.items.levels  # not copied
    assert "A" in alone.items and "Z" not in alone.items and len(alone.items) == 2
