"""The fast read of a sheet in the usual form (sheetxml._read_fast), cell by cell and
error by error, and the bounds of XlsxFile.write_block: these pin what the steps of
issue 23's complexity split must keep (the same values, the same messages, the
same order of checks)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from support.xlsx_craft import merchant_workbook

from xlstock.cells import NO_CACHE, Formula
from xlstock.errors import WorkbookError
from xlstock.workbook import sheetxml
from xlstock.workbook.base import MAX_ROWS
from xlstock.workbook.sheetxml import Context, Sheet, read_cells
from xlstock.workbook.xlsx_file import XlsxFile

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
CONTEXT = Context(lambda: ["shared"], frozenset({"9"}), lambda serial: dt.datetime(1899, 12, 30)
                  + dt.timedelta(days=serial))


def read(rows: str, max_rows: int = 40, max_columns: int = 6) -> Any:
    data = f'<worksheet xmlns="{NS}"><sheetData>{rows}</sheetData></worksheet>'.encode()
    sheet = Sheet.scan(data)
    # the usual form: the fast read takes it (and raises what read_cells raises)
    assert sheetxml._read_fast(sheet, CONTEXT, max_rows, max_columns) is not None
    return read_cells(sheet, CONTEXT, max_rows, max_columns)


@pytest.mark.parametrize(("rows", "message"), [
    ('<row r="2"><c r="A2"><v>1</v></c><c r="B3"><v>2</v></c></row>',
     "cell B3 stands in row 2"),
    ('<row r="2"><c r="A2"><v>1</v></c><c r="B3" s="1"/></row>', "cell B3 stands in row 2"),
    ('<row r="2"><c r="A2"><v>1</v></c><c r="B3"><v> </v></c></row>',
     "cell B3 stands in row 2"),
    ('<row r="2"><c r="A2"><v>1</v></c><c r="B3" t="s"><v>0</v></c></row>',
     "cell B3 stands in row 2"),
    ('<c r="A1"><v>1</v></c><row r="2"><c r="A2"><v>1</v></c></row>',
     "cell A1 stands in no row"),
    ('<row r="2"><c r="A2"><v>1</v></c></row><row r="3"><c r="B2"><v>2</v></c></row>',
     "cell B2 stands in row 3"),
    ('<row r="3"><c r="A3"><v>1</v></c></row><row r="2"><c r="A2"><v>1</v></c></row>',
     "row 2 comes after row 3 (rows out of order)"),
    ('<row r="02"><c r="A2"><v>1</v></c></row>',
     "row number '02' is not one from 1 to 1,048,576"),
    ('<row r="1048577"><c r="A1048577"><v>1</v></c></row>',
     "row number '1048577' is not one from 1 to 1,048,576"),
    ('<row r="2"><c r="XFE2"><v>1</v></c></row>',
     "cell reference XFE... is past column XFD, the last a sheet has"),
    ('<row r="2"><c r="XFE2" s="1"/></row>',
     "cell reference XFE... is past column XFD, the last a sheet has"),
    ('<row r="1"><c r="A1"><v>abc</v></c></row>',
     "a number cell holds 'abc', which is not a number"),
    ('<row r="1"><c r="A1" t="s"><v>5</v></c></row>', "shared string '5' does not exist"),
    ('<row r="1"><c r="A1" t="zz"><v>1</v></c></row>', "unknown cell type 'zz'"),
    ('<row r="1"><c r="A1" t="d"><v>2024-01-02T03:04:05Z</v></c>'
     '<c r="B1" t="d"><v>nope</v></c></row>', "a date cell holds 'nope', which is not a date"),
])
def test_each_refusal_of_the_fast_read_names_the_cell_or_row(rows: str, message: str) -> None:
    with pytest.raises(sheetxml.SheetXmlError) as caught:
        read(rows)
    assert str(caught.value) == message


@pytest.mark.parametrize(("rows", "grid"), [
    ('<row r="2"><c r="C2"><v>3</v></c><c r="A2"><v>1</v></c></row>', [[], [1, None, 3]]),
    ('<row r="2"><c r="A2"><v>1</v></c><c r="B2" s="1"/><c r="D2"><v>4</v></c>'
     '<c r="E2"><v>5</v></c></row>', [[], [1, None, None, 4, 5]]),
    ('<row r="1"><c r="A1"><v>2.5</v></c><c r="B1"><v>1e3</v></c><c r="C1"><v>-7</v></c>'
     '<c r="D1"><v> 8 </v></c></row>', [[2.5, 1000, -7, 8]]),
    ('<row r="1"><c r="A1" s="9"><v>2</v></c><c r="B1" t="s"><v>0</v></c>'
     '<c r="C1"><f>1+1</f><v>2</v></c><c r="D1" t="b"><v>1</v></c></row>',
     [[dt.datetime(1900, 1, 1), "shared", Formula("=1+1", 2), True]]),
    ('<row r="1"><c r="A1" t="str"><is><t>x</t></is></c>'
     '<c r="B1" t="inlineStr"><is><t>a&amp;b_x0009_c&#13;</t></is></c></row>',
     [[None, "a&b\tc\r"]]),
    ('<row r="1"><c r="A1" t="inlineStr"><is><t></t></is></c><c r="B1"><v>1</v></c></row>',
     [[None, 1]]),
    ('<row r="1"><c r="A1"><v>1</v></c></row><row r="2"><c r="A2" s="1"/></row>'
     '<row r="4"><c r="B4"><v>4</v></c></row><row r="6"/>', [[1], [], [], [None, 4]]),
    ('<row r="2"><c r="A2"><v>1</v></c><c r="F2" s="1"/><c r="G2" s="1"/></row>'
     '<row r="60"><c r="A60" s="1"/></row>', [[], [1]]),
    ('<row r="1"><c r="A1" t="str"><f>"a"</f><v></v></c><c r="B1"><f>1+1</f><v></v></c>'
     '</row>', [[Formula('="a"', ""), Formula("=1+1", NO_CACHE)]]),
])
def test_the_fast_read_places_every_value(rows: str, grid: list[list[Any]]) -> None:
    assert read(rows) == grid


@pytest.mark.parametrize(("rows", "far"), [
    ('<row r="2"><c r="A2"><v>1</v></c></row><row r="50"><c r="A50"><v>1</v></c></row>',
     (50, 1)),
    ('<row r="2"><c r="A2"><v>1</v></c><c r="B2"><v>1</v></c><c r="C2"><v>1</v></c>'
     '<c r="D2"><v>1</v></c><c r="E2"><v>1</v></c><c r="F2"><v>1</v></c>'
     '<c r="G2"><v>1</v></c></row>', (2, 7)),
    ('<row r="2"><c r="A2"><v>1</v></c><c r="H2"><v>1</v></c></row>', (2, 8)),
    ('<row r="2"><c r="H2"><v>1</v></c></row>', (2, 8)),
])
def test_the_first_value_past_the_limits_stops_the_fast_read(rows: str,
                                                             far: tuple[int, int]) -> None:
    with pytest.raises(sheetxml.FarCell) as caught:
        read(rows)
    assert (caught.value.row, caught.value.column) == far


def test_write_block_refuses_a_start_before_1_and_an_end_past_excel(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    before = path.read_bytes()
    with XlsxFile.open(path) as book:
        with pytest.raises(ValueError, match="row 0, column 1: both start at 1"):
            book.write_block("Stock", 0, 1, [[1]])
        with pytest.raises(ValueError, match="row 2, column 0: both start at 1"):
            book.write_block("Stock", 2, 0, [[1]])
        with pytest.raises(WorkbookError) as caught:
            book.write_block("Stock", MAX_ROWS, 1, [[1], [2]])
        assert str(caught.value).endswith(
            "sheet Stock cannot grow past its last row or column (writing 2 rows from row "
            f"{MAX_ROWS}; row {MAX_ROWS:,} is Excel's last)")
        with pytest.raises(WorkbookError):
            book.write_block("Stock", 1, 16_384, [[1, 2]])
        with pytest.raises(WorkbookError, match="no sheet named"):
            book.write_block("Nope", 0, 1, [[1]])  # the sheet is looked up first
        book.write_block("Stock", 2, 1, [["kept"]])
        assert book.read_sheet("Stock")[1][0] == "kept"
    assert path.read_bytes() == before  # nothing saved
