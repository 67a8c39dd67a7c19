"""Issue 22: sheet Stock read only as far as a command needs it. A command reads the
columns it uses (Preview, Publish and Validate no product names, no command the
merchant's own columns); a cell of another column is checked for its place but not
decoded, and a column asked for later is read then, with the same values a whole read
gives."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.sheet_samples import CONTEXT, NS, ROWS
from support.shopkit import Shop
from support.xlsx_craft import SHEET1, edit_part, merchant_workbook, read_part
from test_readcache import fresh_read

from xlstock.cells import Formula
from xlstock.workbook import layout, readcache, sheetxml
from xlstock.workbook.sheetxml import Sheet, read_cells, read_some_cells
from xlstock.workbook.xlsx_file import XlsxFile


def sheet(rows: str, prefix: str = "") -> Sheet:
    p = f"{prefix}:" if prefix else ""
    if prefix:
        rows = re.sub(r"<(/?)(row|c|v|f|is|t)\b", rf"<\1{p}\2", rows)
    xmlns = f'xmlns:{prefix}="{NS}"' if prefix else f'xmlns="{NS}"'
    return Sheet.scan(f"<{p}worksheet {xmlns}><{p}sheetData>{rows}</{p}sheetData>"
                      f"</{p}worksheet>".encode())


def only(grid: list[list[Any]], columns: set[int]) -> list[list[Any]]:
    """``grid`` with the values of other columns dropped, rows trimmed."""
    kept = [[v if c in columns else None for c, v in enumerate(row, start=1)] for row in grid]
    for row in kept:
        while row and row[-1] is None:
            row.pop()
    return kept


@pytest.mark.parametrize("prefix", ["", "x"])  # the fast read and the general one
@pytest.mark.parametrize("columns", [{1}, {2}, {1, 3}, {3, 4}, {5}, set()])
def test_the_columns_read_hold_what_a_whole_read_gives(prefix: str, columns: set[int]) -> None:
    whole = read_cells(sheet(ROWS, prefix), CONTEXT, 100, 100)
    some = read_some_cells(sheet(ROWS, prefix), CONTEXT, 100, 100, columns)
    padded = some.grid + [[] for _ in range(len(whole) - len(some.grid))]
    assert only(padded, columns) == only(whole, columns)
    # the rows reach the last row a value stands in, read or not: row 5's name, as row
    # 6's empty shared string and blank number are no values
    assert max(len(some.grid), some.unread_last) == len(whole) == 5
    assert whole[1][3] == Formula("=C2*2", -8) and whole[2][1] == dt.datetime(2023, 3, 15, 12)


@pytest.mark.parametrize("prefix", ["", "x"])
def test_a_cell_the_reader_would_refuse_stops_only_a_read_of_its_column(prefix: str) -> None:
    rows = ROWS.replace('<c r="B2" t="s"><v>0</v></c>', '<c r="B2"><v>abc</v></c>')
    with pytest.raises(sheetxml.SheetXmlError, match="a number cell holds 'abc'"):
        read_cells(sheet(rows, prefix), CONTEXT, 100, 100)
    some = read_some_cells(sheet(rows, prefix), CONTEXT, 100, 100, {1, 3})
    assert [row[:3] for row in some.grid[1:3]] == [["A-1", None, -4], ["B&2", None, 7]]
    with pytest.raises(sheetxml.SheetXmlError, match="a number cell holds 'abc'"):
        read_some_cells(sheet(rows, prefix), CONTEXT, 100, 100, {2})


@pytest.mark.parametrize(("rows", "message"), [
    ('<row r="2"><c r="A2"><v>1</v></c><c r="B3"><v>2</v></c></row>', "cell B3 stands in row 2"),
    ('<row r="2"><c r="A2"><v>1</v></c><c r="B3" s="1"/></row>', "cell B3 stands in row 2"),
    ('<row r="2"><c r="A2"><v>1</v></c></row><row r="3"><c r="B2"><v>2</v></c></row>',
     "cell B2 stands in row 3"),
    ('<row r="3"><c r="A3"><v>1</v></c></row><row r="2"><c r="B2"><v>1</v></c></row>',
     "row 2 comes after row 3 (rows out of order)"),
    ('<row r="2"><c r="XFE2" s="1"/></row>',
     "cell reference XFE... is past column XFD, the last a sheet has"),
])
def test_a_cell_not_read_is_checked_for_its_place(rows: str, message: str) -> None:
    with pytest.raises(sheetxml.SheetXmlError, match=re.escape(message)):
        read_some_cells(sheet(rows), CONTEXT, 40, 6, {1})


def test_a_value_far_outside_the_table_is_refused_in_a_column_not_read() -> None:
    rows = '<row r="2"><c r="A2"><v>1</v></c><c r="H2" s="3"/><c r="Z2"><v>5</v></c></row>'
    with pytest.raises(sheetxml.FarCell) as far:
        read_some_cells(sheet(rows), CONTEXT, 40, 6, {1})
    assert (far.value.row, far.value.column) == (2, 26)
    assert read_some_cells(sheet(rows.replace("<v>5</v>", "")), CONTEXT, 40, 6, {1}
                           ).grid == [[], [1]]  # a styled cell far right is no value


@pytest.mark.parametrize("prefix", ["", "x"])
def test_a_formula_shared_from_a_column_not_read_keeps_its_text(prefix: str) -> None:
    rows = ('<row r="2"><c r="A2"><v>1</v></c><c r="B2"><f t="shared" ref="B2:C3" si="0">A2*2'
            '</f><v>2</v></c><c r="C2"><f t="shared" si="0"/><v>4</v></c></row>'
            '<row r="3"><c r="A3"><v>2</v></c><c r="C3"><f t="shared" si="0"/><v>8</v></c></row>')
    whole = read_cells(sheet(rows, prefix), CONTEXT, 40, 6)
    some = read_some_cells(sheet(rows, prefix), CONTEXT, 40, 6, {3})
    assert [row[2] for row in some.grid[1:]] == [row[2] for row in whole[1:]] == [
        Formula("=B2*2", 4), Formula("=B3*2", 8)]
    # read alone, a column whose formulas share another's text is read whole instead
    assert sheetxml.read_columns(sheet(rows), CONTEXT, {3}) is None


def test_columns_alone_by_their_references() -> None:
    whole = read_cells(sheet(ROWS), CONTEXT, 100, 100)
    for columns in ({1}, {2}, {3}, {4}, {2, 4}, {1, 2, 3, 4}, {7}):
        found = sheetxml.read_columns(sheet(ROWS), CONTEXT, columns)
        assert found is not None
        assert sorted(found) == sorted(
            (number, column, value) for number, row in enumerate(whole, start=1)
            for column, value in enumerate(row, start=1)
            if value is not None and column in columns)
    odd = ROWS.replace('<c r="C3"><v>7</v></c>', '<c r="C3"  ><v>7</v></c>')
    assert sheetxml.read_columns(sheet(odd), CONTEXT, {3}) is None  # not the usual form
    assert sheetxml.read_columns(sheet(ROWS, "x"), CONTEXT, {3}) is None


@pytest.mark.parametrize("last", ["<t>N5</t>", "<t>a&amp;b</t>", '<t xml:space="preserve"> x</t>'])
def test_plain_names_are_read_at_once(last: str) -> None:
    rows = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>N{r}</t></is></c>'
                   f'<c r="B{r}" s="1"/><c r="C{r}"><v>{r}</v></c></row>' for r in range(1, 5))
    rows += f'<row r="5"><c r="A5" t="inlineStr"><is>{last}</is></c></row>'
    whole = read_cells(sheet(rows), CONTEXT, 9, 9)
    for columns in ({1}, {1, 2}, {2, 3}):
        assert sorted(sheetxml.read_columns(sheet(rows), CONTEXT, columns) or []) == sorted(
            (number, column, value) for number, row in enumerate(whole, start=1)
            for column, value in enumerate(row, start=1)
            if value is not None and column in columns)
    found = sheetxml._column_cells((b"A", b"B")).findall(sheet(rows).data)
    assert (sheetxml._plain_texts(found) is None) == (last != "<t>N5</t>")  # at once or not


# --- the file adapter --------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(folder))
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    return folder


def wanting(*columns: int) -> Any:
    return lambda header: columns


def test_a_column_asked_for_later_is_read_into_the_shared_rows(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = merchant_workbook(tmp_path / "w.xlsx", rows=5)  # Supplier, SKU, Product, ...
    whole = fresh_read(path, monkeypatch)
    for _ in range(2):  # read from the file, then from the cache, which kept SKU alone
        with XlsxFile.open(path, writable=False) as book:
            rows = book.read_sheet("Stock", shared=True, columns=wanting(2))
            assert rows[0] == whole[0]  # the header row whole
            assert [row[1] for row in rows] == [row[1] for row in whole]
            assert all(len(row) < 3 or row[2] is None for row in rows[1:])  # no Product
            assert len(rows) == len(whole)
    kept = readcache.load(next(cache.glob("*.json")).stem)
    assert kept is not None and kept.columns == {2}
    with XlsxFile.open(path, writable=False) as book:
        rows = book.read_sheet("Stock", shared=True, columns=wanting(2))
        book.read_sheet("Stock", shared=True, columns=wanting(3, 7))
        assert only(rows[1:], {2, 3, 7}) == only(whole[1:], {2, 3, 7})  # filled in place
        assert book.read_sheet("Stock") == whole
    kept = readcache.load(next(cache.glob("*.json")).stem)
    assert kept is not None and kept.columns is None  # the whole read kept at last


def test_a_write_to_a_column_not_read_compares_with_the_file(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = merchant_workbook(tmp_path / "w.xlsx", rows=5)
    whole = fresh_read(path, monkeypatch)
    before = hashlib.sha256(path.read_bytes()).digest()
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock", shared=True, columns=wanting(2))
        products = [[row[2]] for row in whole[1:]]
        book.write_block("Stock", 2, 3, products)  # the same names: nothing to write
        book.save()
    assert hashlib.sha256(path.read_bytes()).digest() == before
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock", shared=True, columns=wanting(2))
        book.write_block("Stock", 3, 3, [["Renamed"]])
        book.save()
    expected = [row[:] for row in whole]
    expected[2][2] = "Renamed"
    assert fresh_read(path, monkeypatch) == expected
    with XlsxFile.open(path, writable=False) as book:  # the saved values, from the cache
        assert book.read_sheet("Stock") == expected


def test_rows_holding_values_only_in_columns_not_read_count(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = merchant_workbook(tmp_path / "w.xlsx", rows=3)
    edit_part(path, SHEET1, r'<c r="B4"[^>]*?(/>|>.*?</c>)', "")  # row 4: a Supplier alone
    edit_part(path, SHEET1, r'<c r="[C-G]4"[^>]*?(/>|>.*?</c>)', "")
    whole = fresh_read(path, monkeypatch)
    assert len(whole) == 4 and whole[3][1] is None
    for _ in range(2):  # from the file, then from the cache
        with XlsxFile.open(path, writable=False) as book:
            assert len(book.read_sheet("Stock", shared=True, columns=wanting(2))) == 4


# --- the commands --------------------------------------------------------------------------


def test_preview_publish_and_validate_do_not_read_the_product_names(stock_service,
                                                                   tmp_path: Path) -> None:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))
    assert b"<t>Hoodie</t>" in read_part(shop.workbook, SHEET1)
    # a Product cell the reader refuses (a number cell holding text): a command that
    # reads the names says so; one that does not need them never decodes it
    shop.edit(**{"A-1": {"Received": 2}})
    edit_part(shop.workbook, SHEET1, r'<c r="B2"[^>]*>.*?</c>', '<c r="B2"><v>abc</v></c>')
    for command in ("validate", "preview", "publish"):
        shop.run(command, str(shop.workbook))
    assert shop.live()["A-1"] == 12
    assert b'<c r="B2"><v>abc</v></c>' in read_part(shop.workbook, SHEET1)  # kept as it was
    refused = shop.run("sync", str(shop.workbook), expect=None)
    assert refused.exit_code != 0 and "a number cell holds 'abc'" in refused.output


def test_no_command_reads_the_merchants_own_columns(stock_service, tmp_path: Path) -> None:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"A-1": {"Received": 2}})
    edit_part(shop.workbook, SHEET1, r'(<row r="2"[^>]*>.*?)</row>',
              r'\1<c r="J2"><v>abc</v></c></row>', count=1)  # a cell no read accepts
    shop.sell(**{"B-2": 1})
    for command in ("sync", "validate", "preview", "publish"):
        shop.run(command, str(shop.workbook))
    assert shop.live()["A-1"] == 12
    with XlsxFile.open(shop.workbook, writable=False) as book:
        table = layout.read_stock(book, (layout.SKU, layout.ONLINE))
        online = dict(zip(table.column(layout.SKU), table.column(layout.ONLINE), strict=True))
    assert online["A-1"] == 12 and online["B-2"] == 4  # synced, then published
    assert b'<c r="J2"><v>abc</v></c>' in read_part(shop.workbook, SHEET1)


def test_preview_reads_the_names_for_the_low_stock_list(stock_service, tmp_path: Path) -> None:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"A-1": {"Low at": 12}})
    shop.run("preview", str(shop.workbook))
    with XlsxFile.open(shop.workbook, writable=False) as book:
        assert book.read_sheet("Low stock")[1][:4] == ["A-1", "Hoodie", "Red / L", 10]
    with XlsxFile.open(shop.workbook, writable=False) as book:
        table = layout.read_stock(book, layout.WITHOUT_NAMES)
        index = table.column(layout.SKU).index("A-1")
        assert table.rows[index][table.columns[layout.PRODUCT] - 1] is None  # not read yet
        assert table.column(layout.PRODUCT)[index] == "Hoodie"  # read when asked for
        assert table.value(index, layout.VARIANT) == "Red / L"


@pytest.mark.parametrize("cell", [
    '<c r="A1"><f>1+1</f><v>2</v></c>', '<c r="A1"><f>1+1</f></c>',
    '<c r="A1"><f>1+1</f><v></v></c>', '<c r="A1" t="str"><f>B1&amp;"x"</f><v/></c>',
    '<c r="A1" t="str"><f>B1&amp;"x"</f><v>a&amp;x</v></c>', '<c r="A1" t="str"><f>B1</f></c>',
    '<c r="A1" t="e"><f>1/0</f><v>#DIV/0!</v></c>', '<c r="A1" t="b"><f>TRUE()</f><v>1</v></c>',
    '<c r="A1" s="9"><f>TODAY()</f><v>45000</v></c>', '<c r="A1"><f></f><v>3</v></c>',
    '<c r="A1" t="zz"><f>1+1</f><v></v></c>', '<c r="A1" t="inlineStr"><f>1</f><v>2</v></c>',
])
def test_a_plain_formula_reads_as_the_general_patterns_read_it(cell: str) -> None:
    """The fast read's one match for a formula cell in the usual form gives what the
    general patterns give (a prefixed part is read by them)."""
    def read(prefix: str) -> Any:
        try:
            return read_cells(sheet(f'<row r="1">{cell}</row>', prefix), CONTEXT, 9, 9)
        except sheetxml.SheetXmlError as error:
            return str(error)
    assert read("") == read("x")


@pytest.mark.parametrize(("field", "value"), [
    ("columns", ["2"]), ("columns", [300]), ("columns", 2), ("unread_last", -1),
    ("unread_last", 2_000_000), ("unread_last", "5"),
])
def test_a_kept_read_of_another_shape_is_ignored(tmp_path: Path, cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 field: str, value: Any) -> None:
    path = merchant_workbook(tmp_path / "w.xlsx", rows=3)
    whole = fresh_read(path, monkeypatch)
    with XlsxFile.open(path, writable=False) as book:
        book.read_sheet("Stock", shared=True, columns=wanting(2))
    [kept] = cache.glob("*.json")
    document = json.loads(kept.read_text())
    document[field] = value
    kept.write_text(json.dumps(document))
    assert readcache.load(kept.stem) is None
    with XlsxFile.open(path, writable=False) as book:  # read from the file instead
        assert book.read_sheet("Stock") == whole
