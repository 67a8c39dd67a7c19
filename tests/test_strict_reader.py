"""Issue 19, point 2: xlstock's byte reader of a sheet is as strict as the XML rules.

A differential test: generated sheets, and the same sheets mutated byte by byte, are
read by xlstock's reader (:mod:`xlstock.workbook.sheetxml`, the fast and the general
path) and by lxml's parser with a plain walk of its tree (:func:`oracle`); they must
agree: both refuse, or both accept with the same values. Then each finding of the
trials, end to end through the file adapter and the CLI.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree
from support.xlsx_craft import SHEET1, read_part, rewrite

from xlstock.cells import CellError
from xlstock.errors import WorkbookError
from xlstock.workbook import sheetxml
from xlstock.workbook.xlsx_file import XlsxFile

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_M = f"{{{MAIN_NS}}}"
STRINGS = ["zero", "one & two", "", "three"]
DATE_STYLE = "7"
EPOCH = dt.datetime(1899, 12, 30)
REFUSED = "refused"
CONTEXT = sheetxml.Context(lambda: STRINGS, frozenset({DATE_STYLE}),
                           lambda serial: EPOCH + dt.timedelta(days=serial))


# --- the two readers ----------------------------------------------------------------------


def xlstock_read(data: bytes) -> Any:
    """Cells (row, column) -> value as xlstock reads them, or REFUSED."""
    try:
        sheet = sheetxml.Sheet.scan(data)
        sheetxml.check_well_formed(sheet.data)
        grid = sheetxml.read_cells(sheet, CONTEXT, sheetxml.LAST_ROW, sheetxml.LAST_COLUMN)
    except (sheetxml.SheetXmlError, etree.XMLSyntaxError):
        return REFUSED
    return {(r, c): v for r, row in enumerate(grid, 1) for c, v in enumerate(row, 1)
            if v is not None}


_REF = re.compile(r"([A-Z]{1,3})([0-9]{1,7})$")
_KINDS = {"n", "s", "str", "inlineStr", "b", "e", "d"}


class Refused(Exception):
    pass


def oracle(data: bytes) -> Any:
    """The same, from lxml's tree: the reference reading of SpreadsheetML's cells."""
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        if root.tag != f"{_M}worksheet":
            raise Refused
        sheet_data = root.find(f"{_M}sheetData")
        if sheet_data is None:
            raise Refused
        return _walk(sheet_data)
    except (etree.XMLSyntaxError, Refused):
        return REFUSED


def _walk(sheet_data: etree._Element) -> dict[tuple[int, int], Any]:
    values: dict[tuple[int, int], Any] = {}
    previous = 0
    cells = sheet_data.iter(f"{_M}c")
    if any(c.getparent().tag != f"{_M}row" or c.getparent().getparent() is not sheet_data
           for c in cells):
        raise Refused  # a cell inside a cell, or outside a row
    for row in sheet_data.iter(f"{_M}row"):
        number = _number(row.get("r")) if row.get("r") is not None else previous + 1
        if number <= previous or number > sheetxml.LAST_ROW:
            raise Refused
        previous = number
        column = 0
        for cell in row.iterchildren(f"{_M}c"):
            ref = cell.get("r")
            if ref is not None:
                found = _REF.fullmatch(ref)
                if found is None or _number(found.group(2)) != number:
                    raise Refused
                column = sheetxml.column_number(found.group(1))
                if column > sheetxml.LAST_COLUMN:
                    raise Refused
            else:
                column += 1
            value = _value(cell)
            if value is not None:
                values[(number, column)] = value
    return values


def _number(text: str | None) -> int:
    if text is None or not text.isdigit() or text.startswith("0"):
        raise Refused
    return int(text)


def _value(cell: etree._Element) -> Any:
    kind = cell.get("t", "n")
    v = cell.find(f"{_M}v")
    inline = cell.find(f"{_M}is")
    runs = list(inline.iter(f"{_M}t")) if inline is not None else []
    if (v is not None and len(v)) or any(len(t) for t in runs):
        raise Refused  # markup inside a value
    held = (v.text if v is not None else None) or "".join(t.text or "" for t in runs)
    if kind not in _KINDS:
        if held.strip():
            raise Refused
        return None
    if kind == "inlineStr" and inline is not None:
        return _xstring("".join(t.text or "" for t in inline.iter(f"{_M}t"))) or None
    if v is None:
        return None
    text = v.text or ""
    if kind not in ("str", "inlineStr") and not text.strip():
        return None
    if kind == "n":
        try:
            number: float = int(text) if text.strip().lstrip("-").isdigit() else float(text)
        except ValueError:
            raise Refused from None
        if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
            number = int(number)
        if cell.get("s") == DATE_STYLE:
            try:
                return EPOCH + dt.timedelta(days=float(number))
            except OverflowError:
                return sheetxml.FarDate.of(float(number))
        return number
    if kind == "s":
        if not text.strip().isdigit():
            raise Refused
        index = int(text)
        if not 0 <= index < len(STRINGS):
            raise Refused
        return STRINGS[index] or None
    if kind in ("str", "inlineStr"):
        return _xstring(text) or None
    if kind == "b":
        return text.strip() in ("1", "true")
    if kind == "e":
        return CellError(_xstring(text).strip())
    try:
        return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")).replace(
            tzinfo=None)
    except ValueError:
        raise Refused from None


def _xstring(text: str) -> str:
    """Office's ``_xHHHH_`` escapes (ST_Xstring) decoded."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


# --- generated sheets and their mutations -------------------------------------------------


def _cell_xml(ref: str, kind: str, value: Any) -> str:
    if kind == "n":
        return f'<c r="{ref}"><v>{value}</v></c>'
    if kind == "date":
        return f'<c r="{ref}" s="{DATE_STYLE}"><v>{value}</v></c>'
    if kind == "inline":
        return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'
    if kind == "s":
        return f'<c r="{ref}" t="s"><v>{value}</v></c>'
    if kind == "b":
        return f'<c r="{ref}" t="b"><v>{value}</v></c>'
    if kind == "str":
        return f'<c r="{ref}" t="str"><v>{value}</v></c>'
    return f'<c r="{ref}" s="1"/>'


_VALUES = {
    "n": st.one_of(st.integers(-10**6, 10**6), st.sampled_from(["2.5", "-0.0", "1e3", "7.0"])),
    "date": st.sampled_from(["45000", "45000.5", "2958465", "2958466", "99999999"]),
    "inline": st.sampled_from(["SKU-1", "a &amp; b", "x_x0041_", "", "  padded "]),
    "s": st.integers(0, 3),
    "b": st.sampled_from(["0", "1"]),
    "str": st.sampled_from(["text", "", "&lt;tag&gt;"]),
    "empty": st.none(),
}


@st.composite
def sheets(draw: st.DrawFn) -> bytes:
    rows = []
    numbers = sorted(draw(st.sets(st.integers(1, 12), min_size=1, max_size=5)))
    for number in numbers:
        columns = sorted(draw(st.sets(st.integers(1, 30), max_size=4)))
        cells = []
        for column in columns:
            kind = draw(st.sampled_from(sorted(_VALUES)))
            letters = sheetxml.column_letter(column)
            cells.append(_cell_xml(f"{letters}{number}", kind, draw(_VALUES[kind])))
        rows.append(f'<row r="{number}" spans="1:30">{"".join(cells)}</row>')
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet '
            f'xmlns="{MAIN_NS}"><dimension ref="A1"/><sheetData>{"".join(rows)}'
            "</sheetData></worksheet>").encode()


_INSERTS = [b"<", b">", b'"', b"=", b"&", b"\x01", b"\xff", b" t=", b"/", b"<v>", b"</c>",
            b" r=\"AAAA2\"", b" t=\"\"", b" t=\"x\"", b"<c/>", b"\n", b"&#0;", b"&amp;"]
_REPLACEMENTS = [(b"</v>", b""), (b"</c>", b""), (b"</row>", b""), (b'r="', b'r="AAA'),
                 (b'r="B', b'r="XFE'), (b'r="A', b'r="XFD'), (b'r="C', b'r="c'),
                 (b"<row r=\"", b"<row r=\"1048577"), (b'">', b'" t=>'), (b'<c r="', b"<c q=\""),
                 (b't="inlineStr"', b't="nlineStr"'), (b"<sheetData>", b"\x00<sheetData>"),
                 (b"<sheetData>", b"garbage\x1b<sheetData>"), (b' s="1"', b""),
                 (b't="s"', b't=""'), (b"<v>", b"<v> ")]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = draw(sheets())
    start = data.index(b"<sheetData>")
    for _ in range(draw(st.integers(1, 2))):
        how = draw(st.sampled_from(["delete", "insert", "replace"]))
        if how == "replace":
            old, new = draw(st.sampled_from(_REPLACEMENTS))
            if old in data:
                at = draw(st.sampled_from([m.start() for m in re.finditer(re.escape(old),
                                                                         data)]))
                data = data[:at] + new + data[at + len(old):]
            continue
        at = draw(st.integers(start, len(data) - 1))
        if how == "delete":
            data = data[:at] + data[at + 1:]
        else:
            data = data[:at] + draw(st.sampled_from(_INSERTS)) + data[at:]
    return data


def _agree(data: bytes) -> None:
    expected = oracle(data)
    got = xlstock_read(data)
    assert _comparable(got) == _comparable(expected), data


def _comparable(values: Any) -> Any:
    if values == REFUSED:
        return values
    return {k: (repr(v) if isinstance(v, (float, sheetxml.FarDate)) else v)
            for k, v in values.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sheets())
def test_generated_sheets_read_as_lxml_reads_them(data: bytes) -> None:
    assert oracle(data) != REFUSED
    _agree(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
@example(b'<worksheet xmlns="' + MAIN_NS.encode() + b'"><sheetData><row r="2">'
         b'<c r="E2"><v>5</c></row></sheetData></worksheet>')
def test_mutated_sheets_are_refused_or_read_as_lxml_reads_them(data: bytes) -> None:
    _agree(data)


# --- the trials' findings, end to end -----------------------------------------------------


@pytest.fixture
def merchant(stock_service: Any, tmp_path: Path) -> Any:
    from support.shopkit import Shop

    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 2}})
    return shop


def _received_a1(path: Path) -> bytes:
    """The Stock sheet's cell holding A-1's delivery (column E of A-1's row)."""
    data = read_part(path, SHEET1)
    row = re.search(rb'<row r="(\d+)"[^>]*><c [^>]*><is><t>A-1</t>', data)
    assert row is not None, data[:2000]
    found = re.search(rb'<c r="E' + row.group(1) + rb'"[^>]*>.*?</c>', data)
    assert found is not None, data[:2000]
    return found.group(0)


def _ref(cell: bytes) -> bytes:
    found = re.match(rb'<c r="([A-Z]+\d+)"', cell)
    assert found is not None
    return found.group(1)


def _break(path: Path, old: bytes, new: bytes) -> None:
    data = read_part(path, SHEET1)
    assert old in data
    rewrite(path, {SHEET1: data.replace(old, new, 1)})


BROKEN = {
    "an unclosed <v>": lambda cell: (cell, re.sub(rb"</v>", b"", cell)),
    "a bare t=": lambda cell: (cell, cell.replace(b"<c ", b"<c t= ", 1)),
    "a reference past XFD": lambda cell: (cell, cell.replace(b'r="E', b'r="AAAA', 1)),
    "garbage bytes before sheetData": lambda cell: (b"<sheetData>", b"\x01\x02<sheetData>"),
    "bytes that are not UTF-8": lambda cell: (b"<sheetData>", b"\xff\xfe<sheetData>"),
}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_broken_sheet_xml_is_refused_by_publish_naming_the_sheet(merchant: Any,
                                                                 how: str) -> None:
    path = merchant.workbook
    _break(path, *BROKEN[how](_received_a1(path)))
    live = merchant.live()
    before = path.read_bytes()
    result = merchant.run("publish", str(path), expect=None)
    assert result.exit_code == 1, result.output
    assert "sheet Stock" in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert merchant.live() == live, "a broken sheet was published"
    assert path.read_bytes() == before
    with pytest.raises(WorkbookError, match="sheet Stock"), XlsxFile.open(path,
                                                                          writable=False) as book:
        book.read_sheet("Stock")


def test_a_date_past_9999_in_received_is_refused_as_a_date(merchant: Any) -> None:
    path = merchant.workbook
    cell = _received_a1(path)
    date_style = _a_date_style(path)
    _break(path, cell, f'<c r="{_ref(cell).decode()}" s="{date_style}"><v>2958466</v></c>'
           .encode())
    live = merchant.live()
    result = merchant.run("publish", str(path), expect=None)
    assert result.exit_code == 1, result.output
    assert "is a date" in result.output, result.output
    assert merchant.live() == live, "+2,958,466 units were published"


def _a_date_style(path: Path) -> int:
    """A cell style of the workbook whose number format is a date (added if need be)."""
    import openpyxl

    wb = openpyxl.load_workbook(path)
    wb["Stock"]["Z1"].number_format = "yyyy-mm-dd"
    wb.save(path)
    styles = read_part(path, "xl/styles.xml").decode()
    xfs = re.search(r"<cellXfs[^>]*>(.*?)</cellXfs>", styles, re.S)
    assert xfs is not None
    custom = dict(re.findall(r'<numFmt numFmtId="(\d+)" formatCode="([^"]*)"', styles))
    for index, xf in enumerate(re.findall(r"<xf [^>]*>", xfs.group(1))):
        number_format = re.search(r'numFmtId="(\d+)"', xf)
        if number_format and custom.get(number_format.group(1)) == "yyyy-mm-dd":
            return index
    raise AssertionError("no date style")
