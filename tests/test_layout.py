"""Which cells mean what (xlstock.workbook.layout): sheet Stock's headers, Settings, the
Log and the hidden state, on an in-memory workbook adapter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.memory_book import MemoryBook

from xlstock.cells import NO_CACHE, Formula, unchanged
from xlstock.errors import SheetError, UsageError, WorkbookError
from xlstock.workbook import layout
from xlstock.workbook.base import MAX_ROWS


def stock(*rows: list[object]) -> MemoryBook:
    return MemoryBook({"Stock": [list(row) for row in rows]})


# --- sheet Stock ------------------------------------------------------------------------


def test_columns_are_found_by_header_text_in_any_order():
    book = stock(["  new LEVEL ", "Note", "sku", "Online", "RECEIVED"],
                 ["", "mine", "A-1", 5, 2],
                 [None, None, "B-2"])
    table = layout.read_stock(book)
    assert table.columns == {layout.NEW_LEVEL: 1, layout.SKU: 3, layout.ONLINE: 4,
                             layout.RECEIVED: 5}
    assert table.rows == [["", "mine", "A-1", 5, 2], [None, None, "B-2", None, None]]
    assert table.column(layout.SKU) == ["A-1", "B-2"]
    assert table.column(layout.STATUS) == [None, None]
    assert table.value(0, layout.ONLINE) == 5
    assert table.cell(1, layout.RECEIVED) == "Stock!E3"


@pytest.mark.parametrize(("sheets", "message"), [
    ({"Other": [["SKU"]]}, "memory.xlsx has no sheet named 'Stock'; add it with the headers"),
    ({"Stock": [["SKU", "Online", "Received"]]},
     "sheet Stock has no column headed 'New level' in row 1; add it"),
    ({"Stock": [["SKU", "Online", "Received", "New level", "sku "]]},
     "sheet Stock: columns A and E are both headed 'SKU'; rename or delete one"),
    ({"Stock": []}, "sheet Stock has no column headed 'SKU', 'Online', 'Received', 'New level'"),
])
def test_a_sheet_stock_that_cannot_be_read_says_how_to_fix_it(sheets, message):
    with pytest.raises(SheetError) as caught:
        layout.read_stock(MemoryBook(sheets))
    assert str(caught.value.message).startswith(message)


def test_missing_written_columns_are_added_after_the_last_in_one_write():
    book = stock(["SKU", "Online", "Received", "New level", "Note"], ["A-1", 1, None, None, "x"])
    table = layout.read_stock(book)
    layout.ensure_columns(book, table, [layout.CHANGE, layout.SKU, layout.STATUS])
    assert book.writes == [("Stock", 1, 6, [["Change", "Status"]])]
    assert table.columns[layout.CHANGE] == 6 and table.columns[layout.STATUS] == 7
    assert table.width == 7 and table.rows == [["A-1", 1, None, None, "x", None, None]]
    layout.ensure_columns(book, table, [layout.CHANGE])
    assert len(book.writes) == 1


# --- write_column: only the rows that change ----------------------------------------------


def online_table(*levels: object) -> tuple[MemoryBook, layout.StockTable]:
    book = stock(["SKU", "Online", "Received", "New level"],
                 *[[f"S-{n}", level] for n, level in enumerate(levels)])
    return book, layout.read_stock(book)


def test_write_column_writes_close_changes_as_one_block_first_changed_to_last():
    book, table = online_table(1, 2, 3, 4, 5)
    layout.write_column(book, table, layout.ONLINE, [1, 9, 3, 8, 5])
    assert book.writes == [("Stock", 3, 2, [[9], [3], [8]])]
    assert table.column(layout.ONLINE) == [1, 9, 3, 8, 5]
    assert book.column("Online") == [1, 9, 3, 8, 5]


def test_write_column_writes_changes_far_apart_as_blocks_of_their_own():
    far = layout.WRITE_GAP + 3  # WRITE_GAP + 1 unchanged rows between the changes
    book, table = online_table(*range(far + 3))
    values = list(range(far + 3))
    values[1], values[2], values[far + 1] = -1, -2, -3
    layout.write_column(book, table, layout.ONLINE, values)
    assert book.writes == [("Stock", 3, 2, [[-1], [-2]]), ("Stock", far + 3, 2, [[-3]])]
    assert book.column("Online") == values


def test_write_column_to_live_excel_writes_one_block_however_far_apart_the_changes():
    """Each write to Excel crosses to another process: one block, first change to last."""
    far = layout.WRITE_GAP * 4
    book, table = online_table(*range(far + 3))
    book.scattered_writes = False
    values = list(range(far + 3))
    values[1], values[far + 1] = -1, -3
    layout.write_column(book, table, layout.ONLINE, values)
    assert book.writes == [("Stock", 3, 2, [[v] for v in values[1:far + 2]])]
    assert book.column("Online") == values


def test_write_column_writes_nothing_when_nothing_changes():
    book, table = online_table(1, "2", None)
    layout.write_column(book, table, layout.ONLINE, [1, "2", None])
    layout.write_column(book, table, layout.ONLINE, [])
    assert book.writes == []


def test_write_column_tells_equal_values_of_other_types_apart():
    """1 == True == 1.0 in Python, but a cell holding TRUE is not a cell holding 1."""
    book, table = online_table(True, 2.0, "", 4)
    layout.write_column(book, table, layout.ONLINE, [1, 2, None, 4])
    assert book.writes == [("Stock", 2, 2, [[1], [2]])]
    assert [type(v) for v in book.column("Online")][:2] == [int, int]


def test_write_column_from_a_row_and_past_the_last_one_grows_the_table():
    book, table = online_table(1, 2)
    layout.write_column(book, table, layout.ONLINE, [2, 7, 8], first=1)
    assert book.writes == [("Stock", 4, 2, [[7], [8]])]
    assert table.column(layout.ONLINE) == [1, 2, 7, 8]
    assert len(table.rows) == 4 and all(len(row) == table.width for row in table.rows)


def test_write_column_never_writes_below_the_last_row_xlstock_reads():
    book, table = online_table(1)
    with pytest.raises(WorkbookError, match=f"past row {MAX_ROWS:,}"):
        layout.write_column(book, table, layout.ONLINE, [1, 2], first=MAX_ROWS - 2)
    assert book.writes == []


# --- Settings -----------------------------------------------------------------------------


def test_settings_are_read_by_label_with_defaults():
    book = MemoryBook({"Settings": [["  shop url", " https://shop.example "], ["Note", "x"],
                                    ["Conflict policy", "STRICT"]]})
    settings = layout.read_settings(book)
    assert settings.shop_url == "https://shop.example"
    assert settings.service_url == layout.DEFAULT_SERVICE
    assert settings.policy == "strict"
    assert settings.rows == {"Shop URL": 1, "Conflict policy": 3}
    assert settings.next_row == 4


@pytest.mark.parametrize(("rows", "platform"), [
    ([["Shop URL", "https://shop.example"]], layout.XLSTOCK_SERVICE),
    ([["Shop URL", "https://shop.example"], ["shop  PLATFORM", " shopify "]], layout.SHOPIFY),
    ([["Shop URL", "https://Mine.MyShopify.com/"]], layout.SHOPIFY),
    ([["Shop URL", "https://mine.myshopify.com"], ["Shop platform", "xlstock service"]],
     layout.XLSTOCK_SERVICE),
    ([["Shop URL", "https://shop.example"], ["Shop platform", "woocommerce"]],
     layout.WOOCOMMERCE),
])
def test_the_shop_platform_is_read_and_a_myshopify_address_implies_shopify(rows, platform):
    settings = layout.read_settings(MemoryBook({"Settings": [*rows, ["Location", " Depot "]]}))
    assert settings.platform == platform and settings.location == "Depot"


def test_a_setting_that_is_a_formula_reads_as_its_saved_result():
    book = MemoryBook({"Settings": [["Shop URL", Formula('="https://"&"a.example"',
                                                         "https://a.example")],
                                    ["Stock service", Formula("=X1", NO_CACHE)]]})
    settings = layout.read_settings(book)
    assert settings.shop_url == "https://a.example"
    assert settings.service_url == layout.DEFAULT_SERVICE


@pytest.mark.parametrize(("sheets", "message"), [
    ({"Stock": []}, "memory.xlsx has no sheet 'Settings'; add it with labels in column A"),
    ({"Settings": [["Shop URL", "x"], ["Conflict policy", "merge"]]},
     "Settings!B2: conflict policy 'merge' is unknown; write rebase or strict"),
    ({"Settings": [["Shop URL", "x"], ["Shop platform", "Magento"]]},
     "Settings!B2: shop platform 'Magento' is unknown; write one of xlstock service, "
     "Shopify, WooCommerce"),
])
def test_settings_that_cannot_be_used_name_the_cell(sheets, message):
    with pytest.raises(UsageError) as caught:
        layout.read_settings(MemoryBook(sheets))
    assert caught.value.message.startswith(message)


def test_write_settings_adds_missing_labels_and_writes_the_span_in_one_block():
    book = MemoryBook({"Settings": [["Shop URL", "https://shop.example"], ["Note", "mine"],
                                    ["Last sync", "yesterday"]]})
    settings = layout.read_settings(book)
    layout.write_settings(book, settings, {layout.SETTING_LAST_SYNC: "today",
                                           layout.SETTING_VERSION: "7"})
    assert book.writes == [("Settings", 4, 1, [["Online version"]]),
                           ("Settings", 3, 2, [["today"], ["7"]])]
    assert book.read_sheet("Settings")[2:] == [["Last sync", "today"], ["Online version", "7"]]
    assert settings.values["Online version"] == "7"


def test_write_settings_never_overwrites_a_merchants_formula_between_two_values():
    formula = Formula("=TODAY()", 46000)
    book = MemoryBook({"Settings": [["Last sync", "a"], ["Shop URL", formula],
                                    ["Last publish", "b"]]})
    settings = layout.read_settings(book)
    layout.write_settings(book, settings, {layout.SETTING_LAST_SYNC: "x",
                                           layout.SETTING_LAST_PUBLISH: "y"})
    assert sorted(book.writes) == [("Settings", 1, 2, [["x"]]), ("Settings", 3, 2, [["y"]])]
    assert book.read_sheet("Settings")[1][1] is formula


# --- the Log ------------------------------------------------------------------------------


def test_the_log_gets_its_headers_then_one_row_per_entry_read_once():
    book = MemoryBook({"Stock": []})
    log = layout.read_log(book)
    layout.append_log(book, log, ["t1", "sync", "1", 2, "+3 units", "ok"])
    layout.append_log(book, log, ["t2", "publish", "2", 1, "+1 units", "ok"])
    assert book.read_sheet("Log") == [list(layout.LOG_HEADERS),
                                      ["t1", "sync", "1", 2, "+3 units", "ok"],
                                      ["t2", "publish", "2", 1, "+1 units", "ok"]]
    assert "Log" not in book.hidden
    assert layout.read_log(book).next_row == log.next_row == 4


def test_the_log_is_never_written_below_the_last_row_xlstock_reads():
    book = MemoryBook({"Log": []})
    book.set("Log", MAX_ROWS, 1, "last")
    log = layout.read_log(book)
    with pytest.raises(WorkbookError, match=f"sheet Log would reach row {MAX_ROWS + 1:,}"):
        layout.append_log(book, log, ["t", "sync"])


# --- the hidden state ---------------------------------------------------------------------


def test_state_round_trips_through_a_very_hidden_sheet():
    book = MemoryBook({"Stock": []})
    assert layout.read_state(book) == {}
    layout.write_state(book, {"base": {"A-1": 5}, "version": '"3"'})
    assert "_xlstock" in book.hidden
    assert layout.read_state(book) == {"base": {"A-1": 5}, "version": '"3"', "format": 1}


def test_a_long_state_is_cut_into_cells_and_a_shorter_one_clears_the_rest():
    book = MemoryBook({"Stock": []})
    big = {"base": {f"SKU-{n:06}": n for n in range(5000)}}
    layout.write_state(book, big)
    cells = book.read_sheet("_xlstock")
    assert len(cells) > 2 and all(len(row[0]) <= 30_000 for row in cells)
    assert layout.read_state(book)["base"] == big["base"]
    layout.write_state(book, {"base": {}})
    assert len(book.read_sheet("_xlstock")) == 1
    assert layout.read_state(book) == {"base": {}, "format": 1}


def test_a_damaged_state_says_how_to_rebuild_it_and_a_foreign_one_is_ignored():
    book = MemoryBook({"_xlstock": [["{not json"]]})
    with pytest.raises(WorkbookError, match="run `xlstock sync` to rebuild it"):
        layout.read_state(book)
    book = MemoryBook({"_xlstock": [[json.dumps({"format": 99, "base": {"A": 1}})]]})
    assert layout.read_state(book) == {}


_ANY = st.one_of(st.none(), st.just(""), st.integers(0, 2), st.booleans(),
                 st.sampled_from([0.0, 1.0, float("nan"), "1", "a"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ANY, _ANY), min_size=1, max_size=40))
def test_write_column_writes_exactly_the_cells_that_change(pairs: list[tuple[object, object]]):
    now, new = [p[0] for p in pairs], [p[1] for p in pairs]
    book, table = online_table(*now)
    layout.write_column(book, table, layout.ONLINE, new)
    written = {top - 2 + i for _, top, _, block in book.writes for i in range(len(block))}
    must = {i for i, (a, b) in enumerate(pairs) if not unchanged(a, b)}
    assert must <= written
    assert [type(v) for v in table.column(layout.ONLINE)] == [
        type(b) if i in must else type(a) for i, (a, b) in enumerate(pairs)]


def test_a_file_shares_its_rows_with_the_table_and_keeps_them_in_step(
        tmp_path, monkeypatch) -> None:
    """read_stock takes the file adapter's own rows (no copy of 100,000 rows): writes
    keep both in step, a value past the last header is neither lost nor cut, and
    what is saved reads back as the table has it."""
    from openpyxl import Workbook

    from xlstock.workbook import readcache
    from xlstock.workbook.xlsx_file import XlsxFile

    monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    for row in (["SKU", "Online", "Received", "New level"], ["A-1", 5, None, None, None, "note"],
                ["B-2", 7]):
        ws.append(row)
    path = tmp_path / "w.xlsx"
    wb.save(path)
    with XlsxFile.open(path) as book:
        table = layout.read_stock(book)
        assert table.shared == 2 and table.rows[0][5] == "note"
        layout.write_column(book, table, layout.ONLINE, [6, 7, 9])  # a new row too
        layout.write_column(book, table, layout.SKU, ["A-1", "", "C-3"])
        assert table.column(layout.ONLINE) == [6, 7, 9]
        assert table.column(layout.SKU) == ["A-1", None, "C-3"]  # as the cell stores it
        book.save()
    with XlsxFile.open(path, writable=False) as book:
        kept = book.read_sheet("Stock")
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", "off")
    with XlsxFile.open(path, writable=False) as book:
        assert book.read_sheet("Stock") == kept
    assert kept[1:] == [["A-1", 6, None, None, None, "note"], [None, 7, None, None, None, None],
                        ["C-3", 9, None, None, None, None]]


def _plain_state_text(state: dict) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(-3, 10**9), max_size=40),
       st.dictionaries(st.sampled_from(["version", "synced", "pending", "publishes", "a"]),
                       st.one_of(st.none(), st.text(max_size=5), st.integers(),
                                 st.dictionaries(st.text(max_size=3), st.integers(),
                                                 max_size=3)), max_size=4))
def test_the_state_text_is_json_dumps_sorted(base: dict, rest: dict) -> None:
    """The state's text, its ``base`` encoded a slice of SKUs at a time (issue 22: a
    million SKUs), is the bytes ``json.dumps`` gives, whatever the SKUs."""
    from unittest import mock

    state = {**rest, "base": base, "format": 1}
    with mock.patch.object(layout, "_BASE_SLICE", 3):
        assert layout.state_text(state) == _plain_state_text(state)
    assert layout.state_text(state) == _plain_state_text(state)


def test_the_state_text_of_many_skus_holds_less_than_json_dumps() -> None:
    import tracemalloc

    state = {"base": {f"TEE-{n:06d}-RD": n % 500 for n in range(200_000)}, "format": 1,
             "version": "v1"}

    def peak(encode: Any) -> tuple[str, int]:
        tracemalloc.start()
        try:
            return encode(state), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    text, small = peak(layout.state_text)
    same, large = peak(_plain_state_text)
    assert text == same
    assert small < 0.6 * large, (small, large)
