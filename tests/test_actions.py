"""The four actions (xlstock.actions) on their own: an in-memory workbook and a fake
stock service through the adapter and client Protocols, no file, no network, no CLI."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.memory_book import SHOP, FakeStockService, MemoryBook

from xlstock import actions
from xlstock.errors import ConflictError, SheetError
from xlstock.workbook.layout import (
    CHANGE,
    NEW_LEVEL,
    ONLINE,
    PRODUCT,
    RECEIVED,
    SKU,
    STATUS,
    STOCK_HEADERS,
)

COLUMN = {header: number for number, header in enumerate(STOCK_HEADERS, start=1)}


def synced(levels: dict[str, int], *, policy: str = "rebase") -> tuple[MemoryBook,
                                                                       FakeStockService]:
    """A workbook synced with a shop holding ``levels``."""
    book, service = MemoryBook.stock(policy=policy), FakeStockService(dict(levels))
    actions.sync(book, service)
    return book, service


def type_in(book: MemoryBook, sku: str, header: str, value: object) -> None:
    row = book.column(SKU).index(sku) + 2
    book.set("Stock", row, COLUMN[header], value)


def data(book: MemoryBook) -> dict[str, list[object]]:
    """What the failure rule keeps: levels, edits and SKUs."""
    return {h: book.column(h) for h in (SKU, ONLINE, RECEIVED, NEW_LEVEL)}


# --- sync -------------------------------------------------------------------------------


def test_sync_writes_the_live_levels_names_and_a_log_row():
    book, service = synced({"B-2": 0, "A-1": 5})
    assert book.column(SKU) == ["A-1", "B-2"]
    assert book.column(ONLINE) == [5, 0]
    assert book.column(PRODUCT) == ["Product A-1", "Product B-2"]
    assert book.saves == 1
    log = book.read_sheet("Log")
    assert log[0][:2] == ["When", "Action"] and log[1][1] == "sync"
    assert "_xlstock" in book.hidden


def test_sync_keeps_edits_appends_new_skus_and_flags_vanished_ones():
    book, service = synced({"A-1": 5, "B-2": 1})
    type_in(book, "A-1", RECEIVED, 3)
    service.levels = {"A-1": 4, "C-3": 9}
    service.number += 1
    actions.sync(book, service)
    assert book.column(SKU) == ["A-1", "B-2", "C-3"]
    assert book.column(ONLINE) == [4, 1, 9]
    assert book.column(RECEIVED) == [3, None, None]
    assert book.column(STATUS)[1].startswith("not in the shop online (row kept)")


def test_a_second_sync_at_the_same_version_writes_no_level():
    book, service = synced({"A-1": 5})
    writes = len(book.writes)
    report = actions.sync(book, service)
    assert "Nothing changed" in report.summary
    assert not [w for w in book.writes[writes:] if w[0] == "Stock"]


def test_the_first_sync_says_ok_so_that_the_first_preview_rewrites_no_status():
    """Issue 22, point 4: a sync filling an empty sheet wrote "new" on every row, and
    the first preview rewrote them all to "ok" (+0.8 s at 100,000 rows). Rows a later
    sync adds still say "new"."""
    book, service = synced({"A-1": 5, "B-2": 1, "C-3": 2})
    assert book.column(STATUS) == ["ok", "ok", "ok"]
    type_in(book, "B-2", RECEIVED, 4)
    writes = len(book.writes)
    actions.preview(book, service)
    status_rows = [top + i for name, top, left, rows in book.writes[writes:]
                   if name == "Stock" and left <= COLUMN[STATUS] < left + len(rows[0])
                   for i in range(len(rows))]
    assert status_rows == [3]  # B-2's row alone: "changed"
    assert book.column(STATUS) == ["ok", "changed", "ok"]
    service.levels["D-4"] = 7
    service.number += 1
    actions.sync(book, service)
    assert book.column(SKU)[-1] == "D-4" and book.column(STATUS)[-1] == "new"


# --- preview ----------------------------------------------------------------------------


def test_preview_marks_the_changes_and_sends_nothing():
    book, service = synced({"A-1": 5, "B-2": 2, "C-3": 1})
    type_in(book, "A-1", RECEIVED, 3)
    type_in(book, "B-2", NEW_LEVEL, 7)
    service.sell("C-3", 1)
    report = actions.preview(book, service)
    assert report.error is None
    assert book.column(CHANGE) == [3, 5, None]
    assert book.column(STATUS) == ["changed", "changed", "ok"]
    assert book.column(ONLINE) == [5, 2, 1]  # preview never moves a level
    assert book.column(RECEIVED) == [3, None, None]
    assert service.bodies == [] and service.levels == {"A-1": 5, "B-2": 2, "C-3": 0}


def test_preview_names_a_conflict_without_sending():
    book, service = synced({"A-1": 5}, policy="strict")
    type_in(book, "A-1", NEW_LEVEL, 10)
    service.sell("A-1", 1)
    report = actions.preview(book, service)
    assert isinstance(report.error, ConflictError)
    assert service.bodies == []


# --- publish ----------------------------------------------------------------------------


def test_publish_sends_only_the_changes_each_with_its_from_level():
    book, service = synced({"A-1": 5, "B-2": 2, "C-3": 8})
    type_in(book, "A-1", RECEIVED, 3)
    type_in(book, "B-2", NEW_LEVEL, 6)
    service.sell("A-1", 1)  # sold online since Sync: kept (rebase)
    report = actions.publish(book, service)
    assert report.error is None, report.summary
    (sent,) = service.bodies
    # the delivery is a change in units (never a conflict), the count a checked level
    assert sent["items"] == [{"add": 3, "from": 4, "qty": 7, "sku": "A-1"},
                             {"from": 2, "qty": 6, "sku": "B-2"}]
    assert service.levels == {"A-1": 7, "B-2": 6, "C-3": 8}
    assert book.column(ONLINE) == [7, 6, 8]
    assert book.column(RECEIVED) == [None, None, None]
    assert book.column(NEW_LEVEL) == [None, None, None]
    assert book.column(CHANGE) == [3, 4, None]
    assert book.read_sheet("Log")[-1][1] == "publish"
    again = actions.publish(book, service)
    assert "Nothing to publish" in again.summary and len(service.bodies) == 1


def test_a_sale_between_read_and_publish_is_replanned_never_overwritten():
    book, service = synced({"A-1": 5})
    type_in(book, "A-1", NEW_LEVEL, 9)
    sales = iter([2])
    service.before_publish = lambda shop: [shop.sell("A-1", n) for n in sales]
    actions.publish(book, service)
    assert [d["items"] for d in service.refused] == [[{"from": 5, "qty": 9, "sku": "A-1"}]]
    assert [d["items"] for d in service.bodies] == [[{"from": 3, "qty": 7, "sku": "A-1"}]]
    assert service.levels == {"A-1": 7} and book.column(ONLINE) == [7]


def test_a_delivery_lands_on_a_sale_between_read_and_publish_without_a_retry():
    """A delivery is a change in units: a sale racing it changes nothing of the plan,
    and Online shows the level the shop was left at, not the one planned."""
    book, service = synced({"A-1": 5})
    type_in(book, "A-1", RECEIVED, 3)
    sales = iter([2])
    service.before_publish = lambda shop: [shop.sell("A-1", n) for n in sales]
    actions.publish(book, service)
    assert service.refused == []
    assert [d["items"] for d in service.bodies] == [[{"add": 3, "from": 5, "qty": 8,
                                                      "sku": "A-1"}]]
    assert service.levels == {"A-1": 6} and book.column(ONLINE) == [6]


def test_a_conflict_publishes_nothing_and_leaves_the_data_as_it_was():
    book, service = synced({"A-1": 5, "B-2": 2}, policy="strict")
    type_in(book, "A-1", NEW_LEVEL, 10)
    type_in(book, "B-2", RECEIVED, 1)
    service.sell("A-1", 1)
    before = data(book)
    with pytest.raises(ConflictError):
        actions.publish(book, service)
    assert service.bodies == [] and service.levels == {"A-1": 4, "B-2": 2}
    assert data(book) == before
    assert "conflict" in book.column(STATUS)[0]
    assert book.read_sheet("Log")[-1][5].startswith("failed: ")


def test_a_sheet_error_publishes_nothing_and_names_the_row():
    book, service = synced({"A-1": 5, "B-2": 2})
    type_in(book, "A-1", RECEIVED, 3)
    type_in(book, "B-2", RECEIVED, "lots")
    before = data(book)
    with pytest.raises(SheetError) as caught:
        actions.publish(book, service)
    assert not isinstance(caught.value, ConflictError)
    assert [p.row for p in caught.value.problems] == [3]
    assert service.bodies == [] and data(book) == before
    assert book.column(STATUS)[1].startswith("error: ")


# --- validate ---------------------------------------------------------------------------


def test_validate_reports_bad_cells_and_writes_nothing():
    book = MemoryBook.stock([
        ["A-1", "Cap", "", 5, "abc"],
        ["B-2", "Hat", "", 2, None, -1],
        ["C-3", "Scarf", "", 4, 2, 3],
        ["D-4", "Belt", "", 1, 1],
        ["D-4", "Belt again", "", 1],
        ["A\tB", "Tab", "", 1],
    ])
    report = actions.validate(book)
    assert type(report.error) is SheetError
    problems = {p.row: p.message for p in report.error.problems}
    assert problems == {
        2: "Received 'abc' is not a whole number; type one",
        3: "New level -1 is below 0; type 0 or more",
        4: "both Received and New level are filled; keep one (Received adds a delivery, "
           "New level sets a counted level)",
        5: "SKU is also on row 6; keep one row per SKU",
        6: "SKU is also on row 5; keep one row per SKU",
        7: "SKU holds a control character (line break, tab...); retype it",
    }
    assert book.writes == [] and book.saves == 0


def test_validate_passes_a_good_sheet():
    book = MemoryBook.stock([["A-1", "Cap", "", 5, 2], ["B-2", "Hat", "", 2, None, 0]])
    report = actions.validate(book)
    assert report.error is None
    assert report.summary == "Sheet Stock is valid: 2 SKU(s), 2 edit(s)."
    assert book.writes == []


def test_the_fake_shop_is_the_one_the_workbook_names():
    book, service = synced({"A-1": 1})
    assert service.shop == SHOP


def test_the_sheet_fingerprint_is_the_hash_workbooks_already_hold():
    """A column at a time, the same bytes as the repr of the three columns as one tuple,
    which earlier versions stored in the hidden state: their next Sync still gets 304."""
    import hashlib

    from xlstock.cells import Formula

    skus = ["A-1", None, "Caf\u00e9 \ud800", "0012"]
    online = [5, Formula("=2+3", 5), None, "7"]
    status = ["ok", "", None, "new"]
    whole = (list(skus), [v if type(v) is int else actions._edit_value(v) for v in online],
             [v or None for v in status])  # the tuple earlier versions hashed whole
    assert actions._sheet_fingerprint(skus, online, status) == hashlib.sha256(
        repr(whole).encode("utf-8", "surrogatepass")).hexdigest()


def test_the_fingerprint_of_many_rows_is_that_hash_made_a_slice_at_a_time():
    """Past one slice, the same hash; and the text of a whole column is never held (at a
    first Sync of 1,000,000 SKUs it was 30 MB at the command's peak: issue 22)."""
    import hashlib
    import tracemalloc

    count = 100_000 + 5
    skus = [f"SKU-{i:07d}" for i in range(count)]
    online = list(range(count))
    status = ["new"] * (count - 1) + [""]
    whole = (skus, online, status[:-1] + [None])
    expected = hashlib.sha256(repr(whole).encode("utf-8", "surrogatepass")).hexdigest()
    tracemalloc.start()
    try:
        found = actions._sheet_fingerprint(skus, online, status)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == expected
    assert count > 3 * actions._REPR_SLICE
    text = len(repr(skus))  # 1.5 MB: with a copy of the column, as text and as bytes, 2.5x
    assert peak < text, (peak, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=4), st.sampled_from(
    ["A-1", " A-1", "a\tb", "Cafe\u0301", "", "   ", "x" * 100, "x" * 101]),
    st.integers(0, 99), st.floats(0, 99), st.booleans()), max_size=6))
def test_a_column_of_skus_is_cleaned_as_cell_by_cell(column: list[object]) -> None:
    assert actions._clean_skus(list(column)) == [actions._sku_or_none(v) for v in column]
