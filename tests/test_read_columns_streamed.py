"""Issue 22: a column asked for after a large part's values came from the sheet cache
(Sync's product names, which Preview and Publish do not keep) is read as the part is
inflated, a piece of rows at a time: the part's text (288 MB at 1,000,000 rows) is not
held, and the save that follows patches it as it reads it again. The values are those
the read of the whole text gives."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support.sheet_samples import CONTEXT, NS, ROWS
from support.xlsx_craft import SHEET1, edit_part, merchant_workbook
from test_readcache import fresh_read

from xlstock.workbook import readcache, sheetxml, xlsx_file
from xlstock.workbook.sheetxml import Sheet
from xlstock.workbook.xlsx_file import XlsxFile


def part(rows: str, prefix: str = "") -> bytes:
    p = f"{prefix}:" if prefix else ""
    if prefix:
        rows = re.sub(r"<(/?)(row|c|v|f|is|t)\b", rf"<\1{p}\2", rows)
    xmlns = f'xmlns:{prefix}="{NS}"' if prefix else f'xmlns="{NS}"'
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<{p}worksheet '
            f'{xmlns}><{p}sheetData>{rows}</{p}sheetData><{p}pageMargins left="0.7"/>'
            f'</{p}worksheet>').encode()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


MANY = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>S-{r}</t></is></c>'
               f'<c r="B{r}" t="inlineStr"><is><t>Name {r}</t></is></c>'
               f'<c r="C{r}"><v>{r}</v></c></row>' for r in range(1, 300))


@pytest.mark.parametrize("size", [7, 64, 1000, 1 << 20])
@pytest.mark.parametrize("rows", [ROWS, MANY])
@pytest.mark.parametrize("columns", [{1}, {2}, {2, 3}, {1, 2, 3, 4}, {7}])
def test_read_as_inflated_the_columns_are_those_of_the_whole_text(
        size: int, rows: str, columns: set[int]) -> None:
    data = part(rows)
    whole = sheetxml.read_columns(Sheet.scan(data), CONTEXT, columns)
    streamed = sheetxml.read_columns_streamed(chunks(data, size), CONTEXT, columns)
    assert whole is not None and streamed is not None
    assert sorted(streamed) == sorted(whole)


@pytest.mark.parametrize("odd", [
    ("<row r=\"3\">", "<!-- a note --><row r=\"3\">"),  # a comment among the rows
    ("<row r=\"3\">", "<row spans=\"1:3\" r=\"3\">"),  # a row's number not first
    ('<c r="C3">', '<c  r="C3">'),  # a cell in another form
    ("<row r=\"3\">", "<?pi x?><row r=\"3\">"),  # a processing instruction
])
def test_a_part_not_all_in_the_usual_form_is_left_to_the_fresh_read(
        odd: tuple[str, str]) -> None:
    data = part(ROWS.replace(*odd))
    assert sheetxml.read_columns_streamed(chunks(data, 50), CONTEXT, {3}) is None
    assert sheetxml.read_columns_streamed(chunks(part(ROWS, "x"), 50), CONTEXT, {3}) is None


# --- the file adapter ------------------------------------------------------------------


@pytest.fixture
def streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every part counts as large (read and saved as it is inflated, 4 KB at a time), the
    cache keeps sheets of any size; the parts read whole are listed."""
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    monkeypatch.setattr(xlsx_file, "STREAM_PART_BYTES", 0)
    monkeypatch.setattr(xlsx_file, "STREAM_LATE_COLUMNS_BYTES", 0)
    monkeypatch.setattr(xlsx_file, "STREAM_CHUNK", 4096)
    scanned: list[Any] = []
    real = Sheet.scan

    def counted(data: bytes) -> Sheet:
        if len(data) > 10_000:
            scanned.append(len(data))
        return real(data)

    monkeypatch.setattr(Sheet, "scan", staticmethod(counted))
    return scanned


def test_a_column_read_late_is_read_as_inflated_and_the_save_streams(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed: list[Any]) -> None:
    """Publish kept SKU and Online; Sync asks for the product names too, writes, saves:
    the sheet's text is never held whole, and the file reads as expected."""
    path = merchant_workbook(tmp_path / "w.xlsx", rows=400)  # Supplier, SKU, Product, Online
    whole = fresh_read(path, monkeypatch)
    with XlsxFile.open(path, writable=False) as book:  # read from the file, kept
        book.read_sheet("Stock", shared=True, columns=lambda _header: (2, 4))
    streamed.clear()
    with XlsxFile.open(path) as book:
        rows = book.read_sheet("Stock", shared=True, columns=lambda _header: (2, 4))
        assert book._entry("Stock").kept
        book.read_sheet("Stock", shared=True, columns=lambda _header: (3,))  # read late
        assert [row[2] for row in rows] == [row[2] for row in whole]
        assert book._entry("Stock").scanned is None
        book.write_block("Stock", 5, 3, [["Renamed"]])
        book.write_block("Stock", 402, 2, [["NEW-1"]])
        book.save()
    assert streamed == [], "the sheet's text was read whole"
    expected = [row[:] for row in whole] + [[None, "NEW-1"] + [None] * 5]
    expected[4][2] = "Renamed"
    assert fresh_read(path, monkeypatch) == expected


def test_a_comment_among_the_rows_makes_the_late_column_a_fresh_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed: list[Any]) -> None:
    path = merchant_workbook(tmp_path / "w.xlsx", rows=400)
    edit_part(path, SHEET1, '<row r="300"', '<!-- a note --><row r="300"')
    whole = fresh_read(path, monkeypatch)
    with XlsxFile.open(path, writable=False) as book:
        book.read_sheet("Stock", shared=True, columns=lambda _header: (2, 4))
    with XlsxFile.open(path, writable=False) as book:
        rows = book.read_sheet("Stock", shared=True, columns=lambda _header: (2, 4))
        streamed.clear()
        book.read_sheet("Stock", shared=True, columns=lambda _header: (3,))
        assert [row[2] for row in rows] == [row[2] for row in whole]
    assert streamed, "read as inflated, past a comment"


def test_below_the_threshold_the_late_column_reads_the_text_the_save_then_patches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed: list[Any]) -> None:
    """At 100,000 rows holding the text (28 MB) is cheaper than reading it twice."""
    monkeypatch.setattr(xlsx_file, "STREAM_LATE_COLUMNS_BYTES", 1 << 40)
    path = merchant_workbook(tmp_path / "w.xlsx", rows=400)
    with XlsxFile.open(path, writable=False) as book:
        book.read_sheet("Stock", shared=True, columns=lambda _header: (2, 4))
    streamed.clear()
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock", shared=True, columns=lambda _header: (2, 4))
        book.read_sheet("Stock", shared=True, columns=lambda _header: (3,))
        assert book._entry("Stock").scanned is not None
        book.write_block("Stock", 5, 3, [["Renamed"]])
        book.save()
    assert len(streamed) == 1  # read once, patched as held
    assert fresh_read(path, monkeypatch)[4][2] == "Renamed"


def test_the_cells_read_late_are_held_in_arrays_not_tuples() -> None:
    """Issue 22: the product names read late at 1,000,000 rows were a list of
    (row, column, value) tuples, 170 MB at Sync's peak; held as two arrays of numbers
    and the values, a cell costs its value and a dozen bytes."""
    import sys
    import tracemalloc

    count = 20_000
    data = part("".join(f'<row r="{r}"><c r="B{r}" t="inlineStr"><is><t>Name {r}</t></is>'
                        f'</c><c r="C{r}"><v>{r}</v></c></row>' for r in range(1, count + 1)))
    pieces = chunks(data, 1 << 16)
    tracemalloc.start()
    try:
        found = sheetxml.read_columns_streamed(pieces, CONTEXT, {2, 3})
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert found is not None and len(found) == 2 * count
    assert sorted(found)[:2] == [(1, 2, "Name 1"), (1, 3, 1)]
    values = sum(sys.getsizeof(value) for value in found.values if type(value) is str or
                 value > 256)  # Python makes the small numbers once
    assert held < values + 24 * 2 * count, (held, values)  # tuples: 100 bytes a cell more
