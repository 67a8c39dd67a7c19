"""The streamed patch of a sheet (issue 22: a sheet of 1,000,000 rows, 288 MB of XML, is
never held whole at a save): the same bytes as the patch of the whole part, whatever
the rows written and wherever the chunks of the part end; any form it does not take
is said before a wrong byte could be written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlstock.workbook.base import column_letter
from xlstock.workbook.sheetxml import (
    NotStreamable,
    PatchContext,
    Sheet,
    SheetStream,
    patch_pieces,
)

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
VALUES = st.sampled_from([None, 0, 7, 123456, "text", "a<b&c", 2.5, True])


def _cell(row: int, column: int, form: int) -> str:
    ref = f"{column_letter(column)}{row}"
    return [f'<c r="{ref}"><v>{row * column}</v></c>', f'<c r="{ref}" s="3"/>',
            f'<c r="{ref}" s="9"><v>45000</v></c>',
            f'<c r="{ref}" t="inlineStr"><is><t>x{row}</t></is></c>'][form]


@st.composite
def usual_sheets(draw: Any) -> tuple[bytes, int]:
    """A sheet as Excel, LibreOffice and openpyxl write it, and its last row."""
    rows, number = [], 0
    for _ in range(draw(st.integers(1, 12))):
        number += draw(st.integers(1, 3))
        columns = sorted(draw(st.sets(st.integers(1, 5), max_size=4)))
        cells = "".join(_cell(number, c, draw(st.integers(0, 3))) for c in columns)
        attributes = draw(st.sampled_from(["", ' spans="1:5"', ' s="4" customFormat="1"']))
        row = (f'<row r="{number}"{attributes}>{cells}</row>' if cells
               else f'<row r="{number}"{attributes}/>')
        rows.append(row + draw(st.sampled_from(["", "", "\n", "  "])))
    cols = draw(st.sampled_from(["", '<cols><col min="2" max="3" style="4"/></cols>']))
    tail = draw(st.sampled_from([
        "", f'<autoFilter ref="A1:E{number}"/>',
        '<mergeCells count="1"><mergeCell ref="G1:H1"/></mergeCells>']))
    declaration = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>\n']))
    data = (f'{declaration}<worksheet xmlns="{NS}"><dimension ref="A1:E{number}"/>{cols}'
            f'<sheetData>{"".join(rows)}</sheetData>{tail}</worksheet>')
    return data.encode(), number


@st.composite
def writes_to(draw: Any, last: int) -> dict[int, dict[int, Any]]:
    rows = draw(st.sets(st.integers(1, last + 4), max_size=6))
    return {row: draw(st.dictionaries(st.integers(1, 6), VALUES, min_size=1, max_size=3))
            for row in rows}


def _whole(data: bytes, writes: dict[int, dict[int, Any]],
           filter_rows: tuple[int, int] | None) -> tuple[bytes, list[Any]]:
    sheet = Sheet.scan(data)
    context = PatchContext(sheet.column_styles(), lambda style: "9", frozenset({"9"}))
    return b"".join(patch_pieces(sheet, writes, context, filter_rows=filter_rows)), \
        context.dated


def _streamed(data: bytes, writes: dict[int, dict[int, Any]], chunk: int,
              filter_rows: tuple[int, int] | None) -> tuple[bytes, list[Any]]:
    stream = SheetStream(data[i:i + chunk] for i in range(0, len(data), chunk))
    context = PatchContext(stream.head.column_styles(), lambda style: "9",
                           frozenset({"9"}))
    return b"".join(stream.patch(writes, context, filter_rows=filter_rows)), context.dated


@settings(max_examples=400, deadline=None)
@given(st.data(), usual_sheets(), st.integers(1, 80))
def test_a_streamed_patch_gives_the_bytes_of_the_whole_one(data: Any, sheet: Any,
                                                           chunk: int) -> None:
    xml, last = sheet
    writes = data.draw(writes_to(last))
    grows = max([r for r, cells in writes.items() if any(v is not None
                 for v in cells.values())] + [last])
    filter_rows = (last, grows) if grows > last else None
    assert _streamed(xml, writes, chunk, filter_rows) == _whole(xml, writes, filter_rows)


def test_a_large_sheet_streamed_in_chunks_of_a_megabyte() -> None:
    rows = "".join(f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>SKU-{n:07d}</t></is></c>'
                   f'<c r="B{n}"><v>{n % 500}</v></c></row>' for n in range(1, 60_001))
    xml = (f'<worksheet xmlns="{NS}"><dimension ref="A1:B60000"/><sheetData>{rows}'
           f"</sheetData></worksheet>").encode()
    writes = {n: {2: n % 7, 3: "ok"} for n in range(2, 60_004, 997)}
    assert _streamed(xml, writes, 1 << 20, (60_000, 60_003)) == \
        _whole(xml, writes, (60_000, 60_003))


@pytest.mark.parametrize("xml", [
    # a prefix, a comment, CDATA, a row without its number first, no rows, one cell
    f'<x:worksheet xmlns:x="{NS}"><x:sheetData><x:row r="1"/></x:sheetData></x:worksheet>',
    f'<worksheet xmlns="{NS}"><sheetData><row r="1"/><!-- a note --></sheetData></worksheet>',
    f'<worksheet xmlns="{NS}"><sheetData><row r="1"><c r="A1" t="str"><v><![CDATA[x]]>'
    "</v></c></row></sheetData></worksheet>",
    f'<worksheet xmlns="{NS}"><sheetData><row r="1"/><row spans="1:2" r="2"/></sheetData>'
    "</worksheet>",
    f'<worksheet xmlns="{NS}"><sheetData/></worksheet>',
    f'<worksheet xmlns="{NS}"><dimension ref="A1"/><sheetData><row r="1"/></sheetData>'
    "</worksheet>",
    f'<worksheet xmlns="{NS}"><sheetData><row r="1"/></sheetData><x><sheetData></sheetData>'
    "</x></worksheet>",
    "<worksheet",
])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_a_form_the_stream_does_not_take_is_said_before_any_wrong_byte(xml: str,
                                                                       chunk: int) -> None:
    with pytest.raises(NotStreamable):
        _streamed(xml.encode(), {1: {1: 5}, 3: {2: "x"}}, chunk, None)


# --- the file adapter's save --------------------------------------------------------------


def _workbook(path: Path, rows: int) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws.append(["SKU", "Product", "Online", "Status"])
    for n in range(1, rows + 1):
        ws.append([f"{n:07d}", f"Product {n}", n % 500, "ok" if n % 3 else None])
    wb.create_sheet("Notes")["A1"] = "mine"
    wb.save(path)


WRITES = [(2, 3, 17), (3, 4, "changed"), (40, 3, None), (41, 2, "Renamed & co"),
          (1500, 4, 2.5), (2001, 1, "0002001"), (2001, 3, 9), (2003, 1, "0002003")]


def _saved(original: Path, copy: Path, monkeypatch: pytest.MonkeyPatch,
           streamed: bool) -> tuple[bytes, int]:
    """``original`` copied, read once (the cache filled), opened again (the values from
    the cache, so the sheet's text is not held) and saved after :data:`WRITES`: the
    file's bytes, and how many sheets were streamed."""
    import shutil

    from xlstock.workbook import readcache, sheetxml, xlsx_file
    from xlstock.workbook.xlsx_file import XlsxFile

    shutil.copy(original, copy)
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    monkeypatch.setattr(xlsx_file, "STREAM_PART_BYTES", 0 if streamed else 1 << 40)
    monkeypatch.setattr(xlsx_file, "STREAM_CHUNK", 4096)  # the sheet is 150 KB
    with XlsxFile.open(copy) as book:
        book.read_sheet("Stock")
    made = []
    real = sheetxml.SheetStream.patch

    def counted(stream: SheetStream, *args: Any, **kwargs: Any) -> Any:
        made.append(stream)
        return real(stream, *args, **kwargs)

    monkeypatch.setattr(sheetxml.SheetStream, "patch", counted)
    with XlsxFile.open(copy) as book:
        book.read_sheet("Stock")
        for row, column, value in WRITES:
            book.write_block("Stock", row, column, [[value]])
        book.save()
    with XlsxFile.open(copy, writable=False) as book:
        values = book.read_sheet("Stock")
    assert values[1][2] == 17 and values[2000][0] == "0002001" and values[2002][0] == "0002003"
    return copy.read_bytes(), len(made)


def test_a_sheet_held_only_as_cached_values_is_saved_streamed_byte_for_byte(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = tmp_path / "stock.xlsx"
    _workbook(original, 2000)
    streamed, streams = _saved(original, tmp_path / "streamed.xlsx", monkeypatch, True)
    whole, none = _saved(original, tmp_path / "whole.xlsx", monkeypatch, False)
    assert (streams, none) == (1, 0)
    assert streamed == whole


def test_a_form_found_mid_stream_makes_the_save_patch_the_sheet_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row 1800 with its number after another attribute (no program writes it so; a
    hand might): the stream stops there, the package is made again with the sheet
    patched whole, and the file is the one a whole patch gives."""
    import zipfile

    plain = tmp_path / "plain.xlsx"
    _workbook(plain, 2000)
    original = tmp_path / "stock.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(original, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                assert b'<row r="1800"' in data
                data = data.replace(b'<row r="1800"', b'<row ht="15" r="1800"')
            target.writestr(info, data, zipfile.ZIP_DEFLATED)
    streamed, streams = _saved(original, tmp_path / "streamed.xlsx", monkeypatch, True)
    whole, _none = _saved(original, tmp_path / "whole.xlsx", monkeypatch, False)
    assert streams == 1  # tried, and given up at row 1800
    assert streamed == whole
