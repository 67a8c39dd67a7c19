"""One contract, every workbook adapter: the openpyxl file adapter and the xlwings
adapter (on a real ``xw.Book`` over the test engine in ``support/xlwings_engine.py``).

Both start from the same ``.xlsx`` file, written here with openpyxl, with the values
Excel would have calculated for its formulas put into the file as Excel saves them.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from html import escape
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.cell.cell import TYPE_ERROR, TYPE_STRING
from openpyxl.styles import PatternFill
from support.xlwings_engine import Error, book_impl, start_excel

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.errors import WorkbookError
from xlstock.workbook.base import MAX_COLUMNS, MAX_ROWS, WorkbookAdapter, column_letter
from xlstock.workbook.xlsx_file import XlsxFile
from xlstock.workbook.xlwings_adapter import XlwingsWorkbook

FILL = "fill"
"""A cell spec: formatted (a yellow fill), no value."""

HOSTILE_TEXT = [
    '=HYPERLINK("http://evil.example","click")', "00123", "-5 units", "+1", "@home",
    "TRUE", "#N/A", "1/2", "2024-01-05", "'quoted", "1e5", "12%", "  padded  ", "=",
]
"""Strings Excel would turn into a formula, number, boolean, error or date if typed."""


def write_xlsx(path: Path, sheets: dict[str, dict[str, Any]]) -> None:
    """A workbook file with these cells; a ``Formula`` gets its ``cached`` value into
    the file as Excel saves it, an ``str`` is always text, ``FILL`` only formats."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    cached: dict[int, dict[str, Any]] = {}
    for index, (name, cells) in enumerate(sheets.items(), start=1):
        ws = wb.create_sheet(name)
        for address, value in cells.items():
            cell = ws[address]
            if value == FILL:
                cell.fill = PatternFill("solid", fgColor="FFFF00")
            elif isinstance(value, Formula):
                cell.value = value.text
                cached.setdefault(index, {})[address] = value.cached
            elif isinstance(value, CellError):
                cell.value = value.code
                cell.data_type = TYPE_ERROR
            elif isinstance(value, str):
                cell.value = value
                cell.data_type = TYPE_STRING
            else:
                cell.value = value
    wb.save(path)
    if cached:
        _put_cached_values(path, cached)


def _put_cached_values(path: Path, cached: dict[int, dict[str, Any]]) -> None:
    with zipfile.ZipFile(path) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    for index, cells in cached.items():
        part = f"xl/worksheets/sheet{index}.xml"
        xml = parts[part].decode()
        for address, value in cells.items():
            if isinstance(value, CellError):
                kind, text = ' t="e"', value.code
            elif isinstance(value, str):
                kind, text = ' t="str"', value
            elif isinstance(value, bool):
                kind, text = ' t="b"', str(int(value))
            else:
                kind, text = "", repr(value)
            xml, found = re.subn(
                rf'<c r="{address}"([^>]*)><f>(.*?)</f>(?:<v ?/>|<v></v>)',
                lambda m, a=address, k=kind, t=text: (
                    f'<c r="{a}"{m.group(1)}{k}><f>{m.group(2)}</f><v>{escape(t)}</v>'
                ),
                xml,
            )
            assert found == 1, f"formula cell {address} not found in {part}"
        parts[part] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)


class Harness:
    """Opens the same workbook file through one adapter, and again after a save."""

    kind = ""

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, sheets: dict[str, dict[str, Any]] | None = None) -> WorkbookAdapter:
        write_xlsx(self.path, sheets or {"Stock": {}})
        return self.reopen()

    def reopen(self) -> WorkbookAdapter:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileHarness(Harness):
    kind = "file"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.adapter_class = XlsxFile
        self.stack = ExitStack()

    def reopen(self) -> WorkbookAdapter:
        self.close()
        self.stack = ExitStack()
        return self.stack.enter_context(self.adapter_class.open(self.path))

    def close(self) -> None:
        self.stack.close()


class ExcelHarness(Harness):
    kind = "xlwings"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.book: Any = None

    def reopen(self) -> WorkbookAdapter:
        self.close()
        self.book = start_excel().open(self.path)
        return XlwingsWorkbook(self.book)

    def close(self) -> None:
        if self.book is not None:
            self.book.app.quit()
            self.book = None


@pytest.fixture(params=[FileHarness, ExcelHarness], ids=["file", "xlwings"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    made = request.param(tmp_path / "stock.xlsx")
    yield made
    made.close()


def test_read_sheet_is_the_used_part_trimmed(harness: Harness) -> None:
    book = harness.open({"Stock": {
        "A1": "SKU", "B1": "Online", "A2": "A-1", "B2": 5, "C3": 1,
        "F20": FILL, "A30": FILL,
    }})
    assert book.read_sheet("Stock") == [
        ["SKU", "Online", None],
        ["A-1", 5, None],
        [None, None, 1],
    ]


def test_used_range_away_from_a1_is_placed_from_a1(harness: Harness) -> None:
    book = harness.open({"Stock": {"C4": "x", "D5": 2}})
    assert book.read_sheet("Stock") == [
        [None] * 4, [None] * 4, [None] * 4, [None, None, "x", None], [None, None, None, 2],
    ]


def test_empty_sheet_reads_as_no_rows(harness: Harness) -> None:
    book = harness.open({"Stock": {}, "Log": {"B2": FILL}})
    assert book.read_sheet("Stock") == []
    assert book.read_sheet("Log") == []


def test_cell_types(harness: Harness) -> None:
    book = harness.open({"Stock": {
        "A1": "00123", "B1": 5, "C1": 2.5, "D1": True, "E1": dt.datetime(2024, 1, 5),
        "F1": "=not a formula", "G1": "#N/A", "H1": -7,
        "A2": CellError("#N/A"), "B2": CellError("#DIV/0!"),
        "C2": Formula("=1+2", 3), "D2": Formula('="a"&"b"', "ab"),
        "E2": Formula("=Z99", CellError("#REF!")), "F2": Formula("=1>0", True),
    }})
    first, second = book.read_sheet("Stock")
    assert first == ["00123", 5, 2.5, True, dt.datetime(2024, 1, 5), "=not a formula",
                     "#N/A", -7]
    assert [type(v) for v in first[:3]] == [str, int, float]
    assert second == [
        CellError("#N/A"), CellError("#DIV/0!"),
        Formula("=1+2", 3), Formula('="a"&"b"', "ab"),
        Formula("=Z99", CellError("#REF!")), Formula("=1>0", True), None, None,
    ]


def test_formula_without_a_saved_value(harness: Harness) -> None:
    """A file written by a tool that does not calculate: openpyxl cannot know the
    value (``NO_CACHE``); Excel calculates on open (the engine leaves it empty)."""
    path = harness.path
    wb = openpyxl.Workbook()
    wb.active.title = "Stock"
    wb.active["A1"] = "=1+2"
    wb.save(path)
    book = harness.reopen()
    [[cell]] = book.read_sheet("Stock")
    assert isinstance(cell, Formula) and cell.text == "=1+2"
    assert cell.cached in (NO_CACHE, None, 3)


def test_text_is_written_as_text_never_as_formula(harness: Harness) -> None:
    book = harness.open({"Stock": {"A1": "SKU"}})
    book.write_block("Stock", 2, 1, [[text] for text in HOSTILE_TEXT])
    book.write_block("Stock", 1, 2, [HOSTILE_TEXT])
    expected = [["SKU", *HOSTILE_TEXT]] + [[text] + [None] * len(HOSTILE_TEXT)
                                           for text in HOSTILE_TEXT]
    assert book.read_sheet("Stock") == expected
    book.save()
    assert harness.reopen().read_sheet("Stock") == expected
    wb = openpyxl.load_workbook(harness.path)
    assert all(c.data_type == TYPE_STRING for row in wb["Stock"].iter_rows() for c in row
               if c.value is not None)


def test_write_block_writes_types_and_only_its_rectangle(harness: Harness) -> None:
    book = harness.open({"Stock": {"A1": "keep", "B1": "old", "C1": "old", "D1": "keep",
                                   "B2": "old", "C2": "old", "A3": "keep"}})
    book.write_block("Stock", 1, 2, [[7, 1.5], [False, dt.datetime(2024, 2, 29, 13, 30)]])
    assert book.read_sheet("Stock") == [
        ["keep", 7, 1.5, "keep"],
        [None, False, dt.datetime(2024, 2, 29, 13, 30), None],
        ["keep", None, None, None],
    ]


def test_none_clears_the_value_and_keeps_the_format(harness: Harness) -> None:
    book = harness.open({"Stock": {"A1": "SKU", "B1": "Online", "A2": "A-1", "B2": 5,
                                   "C2": "note"}})
    ws_fill_file = openpyxl.load_workbook(harness.path)
    ws_fill_file["Stock"]["B2"].fill = PatternFill("solid", fgColor="FF0000")
    ws_fill_file.save(harness.path)
    book = harness.reopen()
    book.write_block("Stock", 2, 2, [[None, None]])
    assert book.read_sheet("Stock") == [["SKU", "Online"], ["A-1", None]]
    book.save()
    cell = openpyxl.load_workbook(harness.path)["Stock"]["B2"]
    assert cell.value is None
    assert cell.fill.fgColor.rgb == "00FF0000" or cell.fill.fgColor.rgb.endswith("FF0000")


def test_add_sheet_appends_and_hides_very(harness: Harness) -> None:
    book = harness.open({"Stock": {"A1": "SKU"}, "Settings": {"A1": "Shop URL"}})
    book.add_sheet("Log")
    book.add_sheet("_xlstock", hidden=True)
    assert book.sheet_names() == ["Stock", "Settings", "Log", "_xlstock"]
    assert book.read_sheet("_xlstock") == []
    book.write_block("_xlstock", 1, 1, [['{"format": 1}']])
    book.save()
    wb = openpyxl.load_workbook(harness.path)
    assert wb.sheetnames == ["Stock", "Settings", "Log", "_xlstock"]
    assert wb["_xlstock"].sheet_state == "veryHidden"
    assert wb["Log"].sheet_state == "visible"
    assert wb.active.title == "Stock"
    again = harness.reopen()
    assert again.sheet_names() == ["Stock", "Settings", "Log", "_xlstock"]
    assert again.read_sheet("_xlstock") == [['{"format": 1}']]


def test_save_persists_and_unsaved_changes_do_not(harness: Harness) -> None:
    book = harness.open({"Stock": {"A1": "SKU", "A2": "A-1"}})
    book.write_block("Stock", 2, 2, [[11]])
    book.save()
    book.write_block("Stock", 2, 2, [[99]])
    assert harness.reopen().read_sheet("Stock") == [["SKU", None], ["A-1", 11]]


def test_a_value_on_excels_last_row_is_read(harness: Harness) -> None:
    """The row limit is Excel's own: no row of a sheet is past it (a file claiming one is
    refused as damaged, tests/test_xlsx_file.py)."""
    book = harness.open({"Stock": {"A1": "SKU", f"B{MAX_ROWS}": "last"}})
    grid = book.read_sheet("Stock")
    assert len(grid) == MAX_ROWS == 1_048_576
    assert grid[-1][1] == "last" and grid[0][0] == "SKU"


def test_far_column_is_refused_naming_the_cell(harness: Harness) -> None:
    far = f"{column_letter(MAX_COLUMNS + 1)}3"
    book = harness.open({"Stock": {"A1": "SKU", far: 1}})
    with pytest.raises(WorkbookError, match=rf"\b{far}\b"):
        book.read_sheet("Stock")


def test_missing_sheet_is_named(harness: Harness) -> None:
    book = harness.open({"Stock": {"A1": "SKU"}})
    with pytest.raises(WorkbookError, match="Nope"):
        book.read_sheet("Nope")
    with pytest.raises(WorkbookError, match="Nope"):
        book.write_block("Nope", 1, 1, [[1]])


def test_label_names_the_workbook(harness: Harness) -> None:
    assert "stock.xlsx" in harness.open().label


# --- xlwings only: how the adapter talks to Excel -------------------------------------


@pytest.fixture
def excel_book() -> Iterator[Any]:
    """A 10,000-row sheet Stock open in the test engine."""
    book = start_excel().new("big.xlsx")
    book.sheets[0].name = "Stock"
    rows = [["SKU", "Online", "Received"]]
    rows += [[f"SKU-{r:05d}", r, None] for r in range(2, 10_002)]
    book_impl(book).sheets("Stock").fill(rows)
    yield book
    book.app.quit()


def test_reading_a_sheet_is_two_bulk_reads(excel_book: Any) -> None:
    grid = XlwingsWorkbook(excel_book).read_sheet("Stock")
    assert len(grid) == 10_001 and grid[-1] == ["SKU-10001", 10001, None]
    assert book_impl(excel_book).ops == {"read values": 1, "read formulas": 1}


def test_error_cells_cost_one_more_read(excel_book: Any) -> None:
    book_impl(excel_book).sheets("Stock").put("C9", Error("#N/A"))
    XlwingsWorkbook(excel_book).read_sheet("Stock")
    assert book_impl(excel_book).ops == {"read values": 2, "read formulas": 1}


def test_writing_a_column_is_one_write(excel_book: Any) -> None:
    book = XlwingsWorkbook(excel_book)
    book.write_block("Stock", 2, 3, [[n % 7 or None] for n in range(10_000)])
    assert book_impl(excel_book).ops == {"write values": 1}
    assert book_impl(excel_book).op_log == [("write values", "Stock!$C$2:$C$10001", 10_000)]


def test_added_sheet_leaves_the_merchant_on_their_sheet(excel_book: Any) -> None:
    XlwingsWorkbook(excel_book).add_sheet("_xlstock", hidden=True)
    assert excel_book.sheets.active.name == "Stock"
    assert book_impl(excel_book).sheets("_xlstock").very_hidden


def test_excel_failures_become_workbook_errors_naming_the_action(
    excel_book: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ComError(Exception):
        """Shaped like pywin32's com_error: (hresult, text, excepinfo, argerror)."""

    def rejected(*args: Any, **kwargs: Any) -> None:
        raise ComError(-2147418111, "Call was rejected by callee.", None, None)

    monkeypatch.setattr(book_impl(excel_book), "save", rejected)
    with pytest.raises(WorkbookError, match=r"big\.xlsx: Excel could not save the workbook: "
                                            r"Call was rejected by callee\.; Excel is busy"
                       ) as caught:
        XlwingsWorkbook(excel_book).save()
    assert isinstance(caught.value.__cause__, ComError)
