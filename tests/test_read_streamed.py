"""Issue 22: a large sheet part is read as it is inflated, a chunk at a time, so that its
text (288 MB at 1,000,000 rows) is never whole in memory beside the rows being made.
The streamed read gives what the whole read gives (values, the height, merged cells),
refuses what it refuses with the same message, and hands every form it does not read
(a prefix, a comment, a cell in another form) back to the whole read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from support.sheet_samples import CONTEXT, NS
from support.sheet_samples import ROWS as BASE_ROWS
from support.xlsx_craft import SHEET1, edit_part, read_part

from xlstock.errors import WorkbookError
from xlstock.workbook import package, xlsx_file
from xlstock.workbook.sheetxml import (
    Sheet,
    SheetXmlError,
    check_well_formed,
    read_some_cells,
    read_streamed,
)
from xlstock.workbook.xlsx_file import XlsxFile

ROWS = (
    BASE_ROWS
    + "".join(f'<row r="{n}" spans="1:3"><c r="A{n}" t="inlineStr"><is><t>{n:07d}</t></is></c>'
              f'<c r="C{n}"><v>{n % 50}</v></c></row>' for n in range(8, 300))
    + '<row r="310"><c r="E310"><v>3</v></c></row>'
)
MERGES = '<mergeCells count="1"><mergeCell ref="B400:C401"/></mergeCells>'


def part(rows: str = ROWS, tail: str = MERGES, head: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{NS}">'
            f'<dimension ref="A1:E310"/>{head}<sheetData>{rows}</sheetData>{tail}'
            f"</worksheet>").encode()


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[at:at + size] for at in range(0, len(data), size))


def whole(data: bytes, columns: set[int] | None) -> tuple[list[list[Any]], int, Any]:
    """What the whole read gives: well-formedness checked, then the cells read."""
    check_well_formed(data)
    scanned = Sheet.scan(data)
    wanted = None if columns is None else frozenset(columns)
    read = read_some_cells(scanned, CONTEXT, 1_048_576, 16_384, wanted)
    return read.grid, read.unread_last, scanned.merged_cells()


@pytest.mark.parametrize("size", [1, 7, 64, 1000, 1 << 20])
@pytest.mark.parametrize("columns", [None, {1, 3}, {2}, {5}])
def test_the_streamed_read_gives_what_the_whole_read_gives(
        size: int, columns: set[int] | None) -> None:
    data = part()
    streamed = read_streamed(chunks(data, size), CONTEXT, 1_048_576, 16_384,
                             None if columns is None else lambda header: columns)
    assert streamed is not None
    grid, unread_last, merged = whole(data, columns)
    if columns is not None:  # row 1 read alone first: it says which columns to read
        assert streamed.header == ["SKU", "Product", "Online"]
    assert streamed.read.grid == grid
    assert streamed.read.unread_last == unread_last
    assert streamed.merged == merged == {(400, 3), (401, 2), (401, 3)}
    if columns is None or 1 in columns:
        assert grid[2][0] == "B&2" and grid[298][0] == "0000299"


def test_a_byte_order_mark_is_read_as_the_whole_read_takes_it() -> None:
    data = b"\xef\xbb\xbf" + part()
    streamed = read_streamed(chunks(data, 2), CONTEXT, 1_048_576, 16_384, None)
    assert streamed is not None and streamed.read.grid == whole(data, None)[0]


@pytest.mark.parametrize("form", [
    part().replace(b"<worksheet xmlns=", b"<x:worksheet xmlns:x=").replace(
        b"</worksheet>", b"</x:worksheet>"),                       # a prefix
    part(ROWS.replace('<row r="9" ', '<!-- a note --><row r="9" ')),  # a comment
    part(ROWS.replace('<row r="9" ', '<row r="9"><![CDATA[x]]></row><row r="9" ')),
    part(ROWS.replace('<c r="C9">', '<c r="C9" >')),                # a cell in another form
    part(ROWS.replace('<row r="9" spans="1:3">', '<row spans="1:3" r="9">')),  # r not first
    part(tail=MERGES + "<sheetData></sheetData>"),                  # a second sheetData
    part(rows="").replace(b"<sheetData></sheetData>", b"<sheetData/>"),
    part(head="<!-- a comment before the rows -->"),
])
def test_a_form_the_stream_does_not_read_goes_back_to_the_whole_read(form: bytes) -> None:
    assert read_streamed(chunks(form, 50), CONTEXT, 1_048_576, 16_384, None) is None


@pytest.mark.parametrize("broken", [
    part()[:-20],                                          # cut short: the end is missing
    part(ROWS.replace("</row><row r=\"200\"", "<row r=\"200\"")),  # an unclosed row
    part(tail=MERGES + "<extLst><ext uri='x'></extLst>"),  # after the rows
    part(ROWS.replace("B&amp;2", "B&nbsp;2")),            # an undefined entity
])
def test_a_part_that_is_not_well_formed_is_refused_with_the_whole_reads_message(
        broken: bytes) -> None:
    with pytest.raises(SheetXmlError) as from_whole:
        check_well_formed(broken)
    with pytest.raises(SheetXmlError) as from_stream:
        read_streamed(chunks(broken, 100), CONTEXT, 1_048_576, 16_384, None)
    assert str(from_stream.value) == str(from_whole.value)
    assert "not well-formed XML" in str(from_stream.value)


# --- through the file adapter --------------------------------------------------------------


def _workbook(path: Path, rows: int = 3000) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws.append(["SKU", "Product", "Online", "Received", "New level", "Status"])
    for n in range(1, rows + 1):
        name = f"Product {n} & co" + ("! Really?" if n % 11 == 0 else "")  # no comment
        ws.append([f"{n:07d}", name, n % 500, None, n if n % 7 == 0 else None,
                   "ok" if n % 3 else None])
    ws.merge_cells("H5:I6")
    ws["K2999"] = "far note"
    wb.save(path)
    return path


def _read(path: Path, streamed: bool, monkeypatch: pytest.MonkeyPatch,
          columns: set[int] | None) -> tuple[list[list[Any]], list[str], Any]:
    """The sheet's values read by a fresh adapter, the large parts it read whole, and
    what it holds of the part after the read."""
    monkeypatch.setattr(xlsx_file, "STREAM_PART_BYTES", 0 if streamed else 1 << 40)
    monkeypatch.setattr(xlsx_file, "STREAM_CHUNK", 4096)
    whole_reads: list[str] = []
    real = package.Package.read

    def counted(self: package.Package, name: str) -> bytes:
        if name == SHEET1:
            whole_reads.append(name)
        return real(self, name)

    monkeypatch.setattr(package.Package, "read", counted)
    try:
        with XlsxFile.open(path, writable=False) as book:
            wanted = None if columns is None else (lambda header: columns)
            grid = book.read_sheet("Stock", columns=wanted)
            entry = book._entry("Stock")
            return grid, whole_reads, (entry.scanned, book._merged(entry))
    finally:
        monkeypatch.setattr(package.Package, "read", real)


@pytest.mark.parametrize("columns", [None, {1, 3, 5}])
def test_a_large_sheet_is_read_without_its_text_held_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columns: set[int] | None) -> None:
    path = _workbook(tmp_path / "stock.xlsx")
    grid, whole_reads, (text, merged) = _read(path, True, monkeypatch, columns)
    assert whole_reads == [] and text is None
    expected, reads, (_text, merged_whole) = _read(path, False, monkeypatch, columns)
    assert reads == [SHEET1]
    assert grid == expected and merged == merged_whole
    assert grid[2999][0] == "0002999" and len(grid) == 3001
    assert grid[1][1] == ("Product 1 & co" if columns is None else None)


def test_a_large_sheet_in_another_form_is_read_whole_with_the_same_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = edit_part(_workbook(tmp_path / "stock.xlsx"), SHEET1, r'<c r="C2000" ',
                     '<!-- counted --><c r="C2000" ')
    grid, whole_reads, _held = _read(path, True, monkeypatch, None)
    assert whole_reads == [SHEET1]
    assert grid == _read(path, False, monkeypatch, None)[0]


@pytest.mark.parametrize("edit, message", [
    ((r"</sheetData>", "</row></sheetData>"), "not well-formed XML"),
    ((r'<row r="2999"', '<row r="2"'), "row 2 comes after row 2998"),
    ((r'<c r="K2999"', '<c r="XFE2999"'), "past column XFD"),
])
def test_a_large_sheet_refused_names_the_sheet_and_the_cause_as_the_whole_read_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: tuple[str, str],
        message: str) -> None:
    path = _workbook(tmp_path / "stock.xlsx")
    text = read_part(path, SHEET1).decode()
    assert re.search(edit[0], text)
    edit_part(path, SHEET1, *edit, count=1)
    errors = []
    for streamed in (True, False):
        with pytest.raises(WorkbookError) as refused:
            _read(path, streamed, monkeypatch, None)
        errors.append(str(refused.value))
    assert errors[0] == errors[1]
    assert "Stock" in errors[0] and message in errors[0]

