"""Reading and patching one worksheet part (``xl/worksheets/sheetN.xml``) as bytes.

A sheet of 100,000 rows is 20 MB of XML. Building a tree of it (openpyxl, lxml) costs
seconds and hundreds of MB, and writing a tree back rewrites every byte of the
merchant's sheet. So this module works on the bytes, with regular expressions (rows
and cells never nest, and ``<`` cannot appear unescaped in XML text):
:meth:`Sheet.scan` finds sheetData, :func:`read_cells` reads the cells' values, and
:func:`patch_pieces` copies the part unchanged except the rows that hold a written
cell, where only those cells are replaced. Everything else, attributes, extLst,
formulas and their saved results, stays as it was to the byte.

This is hand-written because no maintained library reads a sheet with its formulas,
saved results and byte positions, or patches single cells in place. Before a part is
read here, :mod:`xlstock.workbook.safety` has refused DTDs (so the only entities are
XML's five and character references), and :func:`normalise` has given any part with
comments, CDATA, processing instructions or a non-UTF-8 encoding (none of which Excel
or LibreOffice write inside a sheet) a canonical form through lxml.
"""

from __future__ import annotations

import array
import bisect
import datetime as dt
import functools
import heapq
import itertools
import math
import operator
import re
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.i18n import _
from xlstock.workbook.base import column_letter
from xlstock.workbook.package import MAIN_NS

_EXACT_FLOAT = 2**53
_ATTRIBUTES = rb"(?:\s+[^\s=>/]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*"
_ATTRIBUTE = re.compile(rb"([^\s=]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_REF = re.compile(r"([A-Z]{1,3})(\d{1,7})$")
_RANGE = re.compile(r"\$?([A-Z]{1,3})\$?(\d{1,7})(?::\$?([A-Z]{1,3})\$?(\d{1,7}))?$")
_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_XSTRING = re.compile(r"_x([0-9A-Fa-f]{4})_")
_NEEDS_XSTRING_ESCAPE = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
_MARKUP_DECLARATION = re.compile(rb"<[!?]")
"""A comment, CDATA section, processing instruction or DTD: nothing a sheet holds."""


class SheetXmlError(ValueError):
    """The part is not a worksheet xlstock can read (the message says what is wrong)."""


LAST_COLUMN = 16_384
"""XFD: the last column a cell reference can name (ECMA-376 Part 1, 18.3.1.4)."""
LAST_ROW = 1_048_576


class FarDate(dt.datetime):
    """A date-formatted number past 9999-12-31 (Excel shows ``#####``): a date, so
    that a quantity column refuses it as one, never the number of days it holds.
    Its datetime value is the last one Python has; ``serial`` is what the cell holds."""

    serial: float

    @classmethod
    def of(cls, serial: float) -> FarDate:
        far = cls(9999, 12, 31, 23, 59, 59, 999_999)
        far.serial = serial
        return far

    def __repr__(self) -> str:
        return f"FarDate({self.serial!r})"


class _NoTree:
    """A parser target that builds nothing: lxml only checks the XML."""

    def close(self) -> None:
        return None


def check_well_formed(data: bytes) -> None:
    """Refuse a part that an XML parser refuses (an unclosed element, an attribute
    without a value, bytes that are not characters, an undefined entity...), as
    openpyxl and Excel do: the byte scanner alone would read past them. lxml's own
    parser, building no tree: about 5 ms a MB."""
    try:
        etree.fromstring(data, _checking_parser())
    except etree.XMLSyntaxError as exc:
        raise _not_well_formed(exc) from None


def _checking_parser() -> etree.XMLParser:
    return etree.XMLParser(target=_NoTree(), resolve_entities=False, no_network=True,
                           huge_tree=True)


def _not_well_formed(exc: etree.XMLSyntaxError) -> SheetXmlError:
    detail = str(exc).splitlines()[0] if str(exc) else "not XML"
    detail = re.sub(r" \(<string>, line \d+\)$", "", detail)
    return SheetXmlError(_("the part is not well-formed XML: {detail}", detail=detail))


class WellFormedCheck:
    """:func:`check_well_formed` for a part read a chunk at a time: lxml's feed parser
    keeps the check's place between chunks (the same messages, the part never whole)."""

    def __init__(self) -> None:
        self._parser = _checking_parser()

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.feed(chunk)
        except etree.XMLSyntaxError as exc:
            raise _not_well_formed(exc) from None

    def close(self) -> None:
        try:
            self._parser.close()
        except etree.XMLSyntaxError as exc:
            raise _not_well_formed(exc) from None


def _checked_row(number: int, letters: str) -> int:
    if not 1 <= number <= LAST_ROW:
        raise SheetXmlError(_("cell reference {letters}{number} is past row {last:n}, the last a "
                              "sheet has", letters=letters, number=number, last=LAST_ROW))
    return number


def column_number(letters: str) -> int:
    """``'A' -> 1``, ``'AB' -> 28``."""
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - 64
    return number


def parse_ref(ref: str) -> tuple[int, int]:
    """``'B7' -> (7, 2)``: row and column."""
    found = _REF.match(ref.upper())
    if not found:
        raise SheetXmlError(_("bad cell reference {ref}", ref=repr(ref)))
    return int(found.group(2)), column_number(found.group(1))


def parse_range(ref: str) -> tuple[int, int, int, int] | None:
    """``'A1:C9' -> (1, 1, 9, 3)`` (top, left, bottom, right); ``None`` if unreadable."""
    found = _RANGE.match(ref.strip().upper())
    if not found:
        return None
    left, top = column_number(found.group(1)), int(found.group(2))
    if found.group(3):
        right, bottom = column_number(found.group(3)), int(found.group(4))
    else:
        right, bottom = left, top
    return min(top, bottom), min(left, right), max(top, bottom), max(left, right)


def range_text(top: int, left: int, bottom: int, right: int) -> str:
    """``(1, 1, 9, 3) -> 'A1:C9'``."""
    first = f"{column_letter(left)}{top}"
    last = f"{column_letter(right)}{bottom}"
    return first if first == last else f"{first}:{last}"


def unescape(text: str) -> str:
    """XML text as the parser would give it: line ends folded, entities replaced,
    then Office's ``_xHHHH_`` escapes (ST_Xstring) decoded."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in text:
        text = _ENTITY.sub(_entity, text)
    if "_x" in text:
        text = _XSTRING.sub(lambda m: chr(int(m.group(1), 16)), text)
    return text


def _entity(found: re.Match[str]) -> str:
    name = found.group(1)
    if name[0] == "#":
        return chr(int(name[2:], 16) if name[1] in "xX" else int(name[1:]))
    return _NAMED[name]


def escape_text(text: str) -> str:
    """Text for an element: markup escaped, a CR kept as a character reference (a
    parser would fold a raw one), a literal ``_xHHHH_`` protected from decoding."""
    if "_x" in text:
        text = _NEEDS_XSTRING_ESCAPE.sub("_x005F_", text)
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        text = text.replace("\r", "&#13;")
    return text


def escape_attribute(text: str) -> str:
    """Text for a double-quoted attribute."""
    return escape_text(text).replace('"', "&quot;").replace("\n", "&#10;").replace(
        "\t", "&#9;")


# --- the patterns, per namespace prefix ---------------------------------------------------


@dataclass(frozen=True)
class _Patterns:
    prefix: bytes
    row: re.Pattern[bytes]
    cell: re.Pattern[bytes]
    formula: re.Pattern[bytes]
    value: re.Pattern[bytes]
    inline: re.Pattern[bytes]
    text: re.Pattern[bytes]
    phonetic: re.Pattern[bytes]
    sheet_data: re.Pattern[bytes]
    sheet_data_end: re.Pattern[bytes]
    dimension: re.Pattern[bytes]
    cols: re.Pattern[bytes]
    merge: re.Pattern[bytes]
    autofilter: re.Pattern[bytes]
    table_part: re.Pattern[bytes]


@functools.lru_cache(maxsize=8)
def patterns_for(prefix: bytes) -> _Patterns:
    """The compiled patterns for XML elements named with ``prefix`` (``b"x:"`` or
    ``b""``): the sheet readers' and the shared strings' (``xlsx_file``)."""
    p = re.escape(prefix)

    def element(name: bytes) -> re.Pattern[bytes]:
        return re.compile(
            rb"<" + p + name + rb"(" + _ATTRIBUTES + rb")\s*(?:/>|>(.*?)</" + p + name
            + rb"\s*>)", re.S)

    return _Patterns(
        prefix=prefix,
        row=element(b"row"),
        # Attributes r, s and t captured by name; any other attribute passed over.
        cell=re.compile(
            rb"<" + p + rb"c((?:\s+(?:r\s*=\s*(?:\"([^\"]*)\"|'([^']*)')"
            rb"|s\s*=\s*[\"']([0-9]+)[\"']|t\s*=\s*(?:\"([^\"]*)\"|'([^']*)')"
            rb"|[^\s=>/]+\s*=\s*(?:\"[^\"]*\"|'[^']*')))*)\s*(?:/>|>(.*?)</" + p
            + rb"c\s*>)", re.S),
        formula=element(b"f"),
        value=re.compile(rb"<" + p + rb"v(?:\s[^>]*)?(?:/>|>(.*?)</" + p + rb"v\s*>)", re.S),
        inline=re.compile(rb"<" + p + rb"is(?:\s[^>]*)?(?:/>|>(.*?)</" + p + rb"is\s*>)",
                          re.S),
        text=re.compile(rb"<" + p + rb"t(?:\s[^>]*)?(?:/>|>(.*?)</" + p + rb"t\s*>)", re.S),
        phonetic=re.compile(rb"<" + p + rb"rPh\b.*?</" + p + rb"rPh\s*>", re.S),
        sheet_data=re.compile(rb"<" + p + rb"sheetData(" + _ATTRIBUTES + rb")\s*(/?)>"),
        sheet_data_end=re.compile(rb"</" + p + rb"sheetData\s*>"),
        dimension=re.compile(rb"<" + p + rb"dimension\s+ref\s*=\s*[\"']([^\"']*)[\"']"),
        cols=element(b"col"),
        merge=re.compile(rb"<" + p + rb"mergeCell\s+ref\s*=\s*[\"']([^\"']*)[\"']"),
        autofilter=re.compile(rb"<" + p + rb"autoFilter\b(" + _ATTRIBUTES + rb")"),
        table_part=re.compile(rb"<" + p + rb"tablePart\b"),
    )


_ROOT = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?worksheet[\s>]")

# The form Excel, LibreOffice and openpyxl write (no prefix, double quotes, r then s then
# t first): read with one findall. A sheet where any cell is in another form is read by
# the general patterns instead (the counts of "<c" and "<row" tell).
_FAST_CELL = re.compile(
    rb'<(?:row r="([0-9]{1,7})"|c r="([A-Z]{1,3})([0-9]{1,7})"(?: s="([0-9]+)")?'
    rb'(?: t="([a-zA-Z]+)")?(?: (?![st]=)[^\s=>]+="[^"]*")*'
    rb"(?:/>|><v>([^<]*)</v></c>|><is><t>([^<]*)</t></is></c>|>(.*?)</c>))", re.S)
"""A row's start (its number, the first group) or a cell, in the usual form: ``s`` and
``t`` where Excel writes them, other attributes after them, each after one space. A
cell in any other form (``t=""``, ``t`` after another attribute, a line break between
attributes) does not match, and the count of ``<c`` sends its chunk to the general
patterns, which read every form."""
_STYLE_ATTRIBUTE = re.compile(rb' s="([0-9]+)"')
_FAST_CELL_RAW = re.compile(
    rb'(<c r="([A-Z]{1,3})[0-9]{1,7}"(?: s="([0-9]+)")?(?: [^>]*?)?(?:/>|>.*?</c>))', re.S)
_FAST_ROW = re.compile(rb'<row r="([0-9]{1,7})"')


class _ColumnNumbers(dict[bytes, int]):
    """Column letters -> number, each computed once (and checked) by :func:`_column_of`
    when first looked up with ``[]``."""

    def __missing__(self, letters: bytes) -> int:
        return _column_of(letters)


_COLUMNS = _ColumnNumbers()


_LETTERS: dict[int, bytes] = {}


def _letters_of(column: int) -> bytes:
    letters = _LETTERS.get(column)
    if letters is None:
        letters = _LETTERS[column] = column_letter(column).encode()
    return letters


def _column_of(letters: bytes) -> int:
    number = _COLUMNS.get(letters)
    if number is None:
        number = column_number(letters.decode().upper())
        if number > LAST_COLUMN:
            raise SheetXmlError(_("cell reference {letters}... is past column XFD, the last a "
                                  "sheet has", letters=letters.decode()))
        _COLUMNS[letters] = number
    return number


def _attributes(raw: bytes) -> dict[str, str]:
    return {
        m.group(1).decode(): unescape((m.group(2) if m.group(2) is not None
                                        else m.group(3)).decode())
        for m in _ATTRIBUTE.finditer(raw)
    }


def text_of(item: bytes, patterns: _Patterns) -> str:
    """The text of a string item (``<si>`` or ``<is>`` content): its ``<t>`` runs
    joined, phonetic runs (``<rPh>``) left out."""
    if b"<" + patterns.prefix + b"rPh" in item:
        item = patterns.phonetic.sub(b"", item)
    runs = [m.group(1) or b"" for m in patterns.text.finditer(item)]
    if any(b"<" in run for run in runs):
        raise SheetXmlError(_("a text run holds markup"))
    return "".join(unescape(run.decode()) for run in runs)


# --- normalising the rare forms --------------------------------------------------------


def needs_normalising(data: bytes) -> bool:
    """Whether the part has a form the byte scanner does not read: comments, CDATA,
    processing instructions past the declaration, or an encoding other than UTF-8."""
    head = data[:200]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        return True
    declaration = re.match(rb"\s*<\?xml[^>]*encoding\s*=\s*[\"']([^\"']+)", head)
    if declaration and declaration.group(1).lower().replace(b"_", b"-") not in (
            b"utf-8", b"utf8"):
        return True
    body = data.find(b"?>") + 2 if data.lstrip().startswith(b"<?xml") else 0
    return _MARKUP_DECLARATION.search(data, body) is not None


def normalise(data: bytes) -> bytes:
    """The part re-serialised by lxml in UTF-8, without comments or processing
    instructions, CDATA as text. Only for parts :func:`needs_normalising`."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                             remove_pis=True, strip_cdata=True, huge_tree=True)
    root = etree.fromstring(data, parser)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


# --- the scanned sheet --------------------------------------------------------------------


@dataclass
class RowSpan:
    """One ``<row>``: its number and where it sits in the part."""

    number: int
    start: int
    end: int


@dataclass
class Sheet:
    """A worksheet part, scanned: where sheetData and each row are."""

    data: bytes
    patterns: _Patterns
    data_start: int
    """Just after ``<sheetData ...>`` (or at ``<sheetData/>``)."""
    data_end: int
    """At ``</sheetData>`` (or just after ``<sheetData/>``)."""
    empty_tag: bool
    _rows: list[RowSpan] | None = None
    usual_cells: bool | None = None
    """Every cell and row of sheetData is in the usual form (:func:`read_columns` may
    find a column's cells by their references alone); ``None``: not known yet."""

    @property
    def rows(self) -> list[RowSpan]:
        """Every ``<row>``, in order (found when first asked for: reading does not need
        them, patching does)."""
        if self._rows is None:
            self._rows = self._find_rows()
        return self._rows

    def _find_rows(self) -> list[RowSpan]:
        data, start, end = self.data, self.data_start, self.data_end
        rows: list[RowSpan] = []
        if self.empty_tag:
            return rows
        previous = 0
        if not self.patterns.prefix:
            starts = [(int(m.group(1)), m.start()) for m in _FAST_ROW.finditer(data, start, end)]
            if len(starts) == data.count(b"<row", start, end):
                # Each row runs to the next one's start (the blank between goes with it).
                for index, (number, at) in enumerate(starts):
                    if number <= previous:
                        raise SheetXmlError(
                            _("row {number} comes after row {previous} (rows out of order)",
                              number=number, previous=previous))
                    stop = starts[index + 1][1] if index + 1 < len(starts) else end
                    rows.append(RowSpan(number, at, stop))
                    previous = number
                if previous > LAST_ROW:
                    raise SheetXmlError(_("row {previous} is past row {last:n}, the last a sheet "
                                          "has", previous=previous, last=LAST_ROW))
                return rows
        for match in self.patterns.row.finditer(data, start, end):
            number_text = _row_number(match.group(1))
            number = int(number_text) if number_text else previous + 1
            if number > LAST_ROW or (number_text or b"1").startswith(b"0"):
                raise SheetXmlError(_("row number {number} is not one from 1 to {last:n}",
                                      number=number, last=LAST_ROW))
            if number <= previous:
                raise SheetXmlError(
                    _("row {number} comes after row {previous} (rows out of order)",
                      number=number, previous=previous))
            rows.append(RowSpan(number, match.start(), match.end()))
            previous = number
        return rows

    @classmethod
    def scan(cls, data: bytes) -> Sheet:
        """Find the prefix, sheetData and the rows. Raises :class:`SheetXmlError`."""
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if needs_normalising(data):
            data = normalise(data)
        root = _ROOT.search(data, 0, 4096)
        if root is None:
            raise SheetXmlError(_("the part has no <worksheet> element"))
        prefix = root.group(1)
        if prefix:
            declared = re.search(rb"xmlns:" + re.escape(prefix) + rb"\s*=\s*[\"']([^\"']*)",
                                 data[:8192])
            if declared is None or declared.group(1).decode() != MAIN_NS:
                raise SheetXmlError(_("the worksheet is not in the SpreadsheetML namespace"))
        patterns = patterns_for(prefix + b":" if prefix else b"")
        opening = patterns.sheet_data.search(data)
        if opening is None:
            raise SheetXmlError(_("the worksheet has no <sheetData> element"))
        if opening.group(2):
            return cls(data, patterns, opening.start(), opening.end(), True)
        if not prefix:  # the usual form: one closing tag, found from the end
            close = data.rfind(b"</sheetData>")
            if close > opening.end():
                return cls(data, patterns, opening.end(), close, False)
        closing = patterns.sheet_data_end.search(data, opening.end())
        if closing is None:
            raise SheetXmlError(_("the worksheet's <sheetData> is not closed"))
        return cls(data, patterns, opening.end(), closing.start(), False)

    def head(self) -> bytes:
        """The part before sheetData's rows."""
        return self.data[:self.data_start]

    def tail(self) -> bytes:
        """The part after sheetData's rows."""
        return self.data[self.data_end:]

    def dimension(self) -> tuple[int, int, int, int] | None:
        found = self.patterns.dimension.search(self.data, 0, self.data_start)
        return parse_range(found.group(1).decode()) if found else None

    def column_styles(self) -> dict[int, str]:
        """Column -> the style index a whole column is formatted with (``<cols>``)."""
        styles: dict[int, str] = {}
        for match in self.patterns.cols.finditer(self.data, 0, self.data_start):
            attrs = _attributes(match.group(1))
            style = attrs.get("style")
            if not style or style == "0":
                continue
            first = int(attrs.get("min", "0") or 0)
            last = min(int(attrs.get("max", first) or first), first + 16_384)
            for column in range(first, last + 1):
                styles[column] = style
        return styles

    def merged_cells(self) -> set[tuple[int, int]]:
        """The cells inside merged ranges other than each range's first (which holds
        the value): a write there would be hidden."""
        covered: set[tuple[int, int]] = set()
        for match in self.patterns.merge.finditer(self.data, self.data_end):
            area = parse_range(match.group(1).decode())
            if area is None:
                continue
            top, left, bottom, right = area
            if (bottom - top + 1) * (right - left + 1) > 1_000_000:
                continue
            for row in range(top, bottom + 1):
                for column in range(left, right + 1):
                    if (row, column) != (top, left):
                        covered.add((row, column))
        return covered


def cell_ref(match: re.Match[bytes]) -> tuple[int, int] | None:
    """The row and column of a cell matched by ``_Patterns.cell`` (``None``: it has no
    reference); a reference that is not one, or past XFD1048576, is refused."""
    raw = match.group(2) if match.group(2) is not None else match.group(3)
    if raw is None:
        return None
    found = _REF.fullmatch(raw.decode())
    if found is None or found.group(2).startswith("0"):
        raise SheetXmlError(_("a cell's reference {value} is not one a sheet has (columns A to "
                              "XFD, rows 1 to 1,048,576)",
                              value=repr(raw.decode(errors='replace')[:20])))
    return (_checked_row(int(found.group(2)), found.group(1)),
            _column_of(found.group(1).encode()))


def cell_kind(match: re.Match[bytes]) -> bytes | None:
    """A cell's ``t`` attribute, matched by ``_Patterns.cell``."""
    return match.group(5) if match.group(5) is not None else match.group(6)


def _row_number(attrs: bytes) -> bytes | None:
    found = re.search(rb"(?:^|\s)r\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", attrs)
    if found is None:
        return None
    number = found.group(1) if found.group(1) is not None else found.group(2)
    if not number.isdigit() or len(number) > 7:
        raise SheetXmlError(_("row number {value} is not a number",
                              value=repr(number.decode(errors='replace'))))
    return number


# --- reading values -----------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What reading a sheet's values needs from the rest of the workbook."""

    shared_strings: Callable[[], list[str]]
    date_styles: frozenset[str]
    """Style indexes whose number format shows a date or time."""
    to_datetime: Callable[[float], dt.datetime]


class FarCell(Exception):
    """A value beyond the limits (the caller names it)."""

    def __init__(self, row: int, column: int) -> None:
        super().__init__(row, column)
        self.row = row
        self.column = column


def read_cells(sheet: Sheet, context: Context, max_rows: int, max_columns: int) -> list[list[Any]]:
    """The sheet's values as rows of cells (row 1 first; rows are as long as their last
    cell, empty rows ``[]``; see :func:`cell_value`). Raises :class:`FarCell` at the
    first value past ``max_rows`` or ``max_columns``."""
    return read_some_cells(sheet, context, max_rows, max_columns, None).grid


@dataclass
class CellsRead:
    """What :func:`read_some_cells` gives: the values of the columns read, and the last
    row where a column not read holds a value (0: none), so that the sheet's height is
    known without those columns."""

    grid: list[list[Any]]
    unread_last: int = 0


def read_some_cells(sheet: Sheet, context: Context, max_rows: int, max_columns: int,
                    columns: Collection[int] | None) -> CellsRead:
    """:func:`read_cells` for the cells of ``columns`` alone (``None``: all). A cell of
    another column is checked for its place (in its row, rows in order, within the
    limits when it holds a value) as every cell is, but its value is not decoded: a
    command pays for the columns it uses, and a column it does not use cannot stop it."""
    wanted = None if columns is None else frozenset(
        c for c in columns if 1 <= c <= max_columns)
    if not sheet.patterns.prefix and not sheet.empty_tag:
        fast = _read_fast(sheet, context, max_rows, max_columns, wanted)
        if fast is not None:
            return fast
    return _read_general(sheet, context, max_rows, max_columns, wanted)


def _read_general(sheet: Sheet, context: Context, max_rows: int,
                  max_columns: int, wanted: frozenset[int] | None) -> CellsRead:
    """:func:`read_some_cells` by the general patterns, which read every form of cell, a
    row at a time; then every ``<c`` of sheetData must have been read in a row."""
    data = sheet.data
    grid: list[list[Any]] = []
    shared: dict[str, tuple[str, int, int]] = {}
    cells_read = unread_last = 0
    for span in sheet.rows:
        number = span.number
        start = data.index(b">", span.start) + 1
        if data[start - 2:start] == b"/>":
            continue
        row, count, unread = _read_row(sheet, span, start, context, shared, max_rows,
                                       max_columns, wanted)
        cells_read += count
        if unread:
            unread_last = number
        if row:
            if number > len(grid):
                grid.extend([] for _ in range(number - len(grid)))
            grid[number - 1] = row
    cell_tag = re.compile(rb"<" + re.escape(sheet.patterns.prefix) + rb"c[\s/>]")
    if not sheet.empty_tag and cells_read != len(cell_tag.findall(data, sheet.data_start,
                                                                  sheet.data_end)):
        raise SheetXmlError(_("a cell stands outside a row, or in a form xlstock cannot read"))
    return CellsRead(grid, unread_last)


def _read_row(sheet: Sheet, span: RowSpan, start: int, context: Context,
              shared: dict[str, tuple[str, int, int]], max_rows: int,
              max_columns: int, wanted: frozenset[int] | None = None
              ) -> tuple[list[Any], int, bool]:
    """One row's values (from ``start``, just after its tag) in the ``wanted`` columns
    (``None``: all), how many cells it has, and whether a column not wanted holds a
    value: a cell's reference must name the row; one without follows the one before."""
    patterns, number = sheet.patterns, span.number
    row: list[Any] = []
    column = count = 0
    unread = False
    for match in patterns.cell.finditer(sheet.data, start, _row_close(sheet, span)):
        count += 1
        ref = cell_ref(match)
        if ref is not None:
            if ref[0] != number:
                raise SheetXmlError(
                    _("cell {column}{row} stands in row {number}",
                      column=column_letter(ref[1]), row=ref[0], number=number))
            column = ref[1]
        else:
            column += 1
        inner = match.group(7)
        if not inner:
            continue
        if wanted is not None and column not in wanted:
            value = _unread_value(inner, match, context, patterns, shared, number, column)
        else:
            value = cell_value(inner, match.group(4), cell_kind(match), context, patterns,
                               shared, number, column)
        if value is None:
            continue
        if number > max_rows or column > max_columns:
            raise FarCell(number, column)
        if wanted is not None and column not in wanted:
            unread = True
            continue
        if column > len(row):
            row.extend([None] * (column - len(row)))
        row[column - 1] = value
    return row, count, unread


def _unread_value(inner: bytes, match: re.Match[bytes], context: Context,
                  patterns: _Patterns, shared: dict[str, tuple[str, int, int]], row: int,
                  column: int) -> Any:
    """The value of a cell in a column not read, as far as its row's place needs it:
    ``None`` for none; a value the reader would refuse counts as one."""
    try:
        return cell_value(inner, match.group(4), cell_kind(match), context, patterns,
                          shared, row, column)
    except SheetXmlError:
        return True


def _row_close(sheet: Sheet, span: RowSpan) -> int:
    """Where the row's ``</row>`` is; only blanks may follow it in its span."""
    data, closing = sheet.data, b"</" + sheet.patterns.prefix + b"row"
    close = data.rfind(closing, span.start, span.end)
    if close < 0 or data[close + len(closing):span.end].strip() != b">":
        raise SheetXmlError(_("row {number} is not closed where the next row starts",
                              number=span.number))
    return close


_CHUNK = 1 << 20
"""Bytes of sheetData read per findall: the cells' tuples of one chunk at a time."""


def _read_fast(sheet: Sheet, context: Context, max_rows: int, max_columns: int,
               wanted: frozenset[int] | None = None) -> CellsRead | None:
    """:func:`read_some_cells` for a sheet in the usual form, its cells found a chunk of
    rows at a time; ``None`` when a cell is in another form (then the general patterns
    read it). The plain number and the plain inline string, most cells, have groups of
    their own."""
    data, end = sheet.data, sheet.data_end
    reader = _FastReader(context, sheet.patterns, max_rows, max_columns, wanted)
    read = reader.read if wanted is None else reader.read_some
    position = sheet.data_start
    while position < end:
        cut = data.find(b"<row ", position + _CHUNK, end)
        cut = end if cut < 0 else cut
        found = _FAST_CELL.findall(data, position, cut)
        if len(found) != data.count(b"<c", position, cut) + data.count(b"<row", position, cut):
            return None  # a cell or row in another form (<c>, <c\n r=...): read generally
        position = cut
        read(found)
        if reader.held:
            reader.held = False
            reader.note_unread(found)
    if sheet.usual_cells is None:
        sheet.usual_cells = True
    return CellsRead(reader.grid, reader.unread_last)


@dataclass
class StreamedCells:
    """What :func:`read_streamed` gives: the values read, row 1's values when some
    columns were asked for, the columns read (``None``: all), and the cells that merged
    ranges cover (:meth:`Sheet.merged_cells`)."""

    read: CellsRead
    header: list[Any]
    wanted: frozenset[int] | None
    merged: set[tuple[int, int]]


class _PartStream:
    """A part's chunks as they are inflated, each checked as XML as it comes (unless
    the part was checked when first read: ``checked``), into a rolling buffer that the
    reader cuts at row starts."""

    def __init__(self, chunks: Iterable[bytes], *, checked: bool = False) -> None:
        self._chunks = iter(chunks)
        self._check: WellFormedCheck | None = None if checked else WellFormedCheck()
        self._first, self._done = True, False
        self.buf = b""

    def more(self) -> bool:
        """Read one more chunk into the buffer; ``False`` at the part's end (checked
        then as a whole document)."""
        chunk = None if self._done else next(self._chunks, None)
        if chunk is None:
            if not self._done:
                self._done = True
                if self._check is not None:
                    self._check.close()
            return False
        if self._check is not None:
            self._check.feed(chunk)
        self.buf += chunk
        if self._first and len(self.buf) >= 3:
            self._first = False
            if self.buf.startswith(b"\xef\xbb\xbf"):
                self.buf = self.buf[3:]
        return True


def read_streamed(chunks: Iterable[bytes], context: Context, max_rows: int, max_columns: int,
                  columns: Callable[[list[Any]], Iterable[int]] | None) -> StreamedCells | None:
    """:func:`check_well_formed` and :func:`read_some_cells` at once, for a large part
    read as it is inflated (``chunks``): its text (288 MB at 1,000,000 rows) is never
    whole in memory beside the rows being made. ``columns``: given row 1's values
    (read first), the columns wanted (``None``: all). ``None`` when the part is not in
    the usual form :func:`_read_fast` reads (a prefix, a comment, a cell in another
    form...): read it whole then. An error found in a chunk is raised when the chunk
    comes, after the rows before it were read."""
    stream = _PartStream(chunks)
    start = _stream_head(stream)
    if start is None:
        return None
    stream.buf = stream.buf[start:]
    header: list[Any] = []
    wanted = None
    if columns is not None:
        header = _stream_header(stream, context, max_rows, max_columns)
        wanted = frozenset(c for c in columns(header) if 1 <= c <= max_columns)
    reader = _FastReader(context, _PATTERNS, max_rows, max_columns, wanted)
    if not _stream_rows(stream, reader, reader.read if wanted is None else reader.read_some):
        return None
    while stream.more():
        pass
    tail = stream.buf
    if tail.find(b"</sheetData>", 12) >= 0 or _MARKUP_DECLARATION.search(tail):
        return None
    merged = Sheet(tail, _PATTERNS, 0, 0, False).merged_cells()
    return StreamedCells(CellsRead(reader.grid, reader.unread_last), header, wanted, merged)


def _stream_head(stream: _PartStream) -> int | None:
    """Where the rows start in the buffer, just after ``<sheetData>``; ``None`` when
    the part is not in the usual form."""
    while True:
        opening = _PATTERNS.sheet_data.search(stream.buf)
        if opening is not None:
            break
        if not stream.more():
            return None
    head = stream.buf[:opening.end()]
    root = _ROOT.search(head, 0, 4096)
    if root is None or root.group(1) or opening.group(2) or needs_normalising(head):
        return None
    return opening.end()


def _stream_header(stream: _PartStream, context: Context, max_rows: int,
                   max_columns: int) -> list[Any]:
    """Row 1's values, read alone (the part's first row, if it is row 1), as the
    file adapter reads them from a whole part."""
    while True:
        buf = stream.buf
        end = buf.find(b"</sheetData>")
        first = buf.find(b"<row")
        second = buf.find(b"<row", first + 4) if first >= 0 else -1
        if second >= 0 or end >= 0 or not stream.more():
            break
    stop = second if second >= 0 else (end if end >= 0 else len(buf))
    if first < 0 or first >= stop:
        return []
    grid = read_cells(Sheet(buf, _PATTERNS, 0, stop, False), context, max_rows, max_columns)
    return grid[0] if len(grid) == 1 else []


def _stream_rows(stream: _PartStream, reader: _FastReader,
                 read: Callable[[list[tuple[bytes, ...]]], None]) -> bool:
    """Read the rows from the buffer a piece at a time, each cut where a row starts,
    up to ``</sheetData>``, which the buffer then starts with; ``False`` when a piece is
    not in the usual form."""
    searched = 0
    while True:
        buf = stream.buf
        end = buf.find(b"</sheetData>", max(searched - 11, 0))
        searched = len(buf)
        cut = end if end >= 0 else buf.rfind(b"<row ")
        if cut > 0:
            if not _read_piece(buf, cut, reader, read):
                return False
            stream.buf = buf[cut:]
            searched -= cut
        if end >= 0:
            return True
        if not stream.more():
            return False


def _read_piece(data: bytes, cut: int, reader: _FastReader,
                read: Callable[[list[tuple[bytes, ...]]], None]) -> bool:
    """One piece of rows, ``data[:cut]``, read as :func:`_read_fast` reads a chunk."""
    found = _FAST_CELL.findall(data, 0, cut)
    if len(found) != data.count(b"<c", 0, cut) + data.count(b"<row", 0, cut) or \
            _declares(data, cut, b"!") or _declares(data, cut, b"?"):
        return False
    read(found)
    if reader.held:
        reader.held = False
        reader.note_unread(found)
    return True


def _declares(data: bytes, cut: int, mark: bytes) -> bool:
    """Whether ``data[:cut]`` holds ``<`` + ``mark`` (a comment, CDATA, a processing
    instruction): the mark alone looked for first, in one fast pass (``<`` is in every
    tag, which makes a search for the pair slow)."""
    return data.find(mark, 0, cut) >= 0 and data.find(b"<" + mark, 0, cut) >= 0


@functools.lru_cache(maxsize=64)
def _column_cells(letters: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """The cells of some columns, in the usual form of :data:`_FAST_CELL` (the group
    after the reference is empty for a cell in another form)."""
    return re.compile(
        rb'<c r="(' + b"|".join(letters) + rb')([0-9]{1,7})"(?:(?: s="([0-9]+)")?'
        rb'(?: t="([a-zA-Z]+)")?(?: (?![st]=)[^\s=>]+="[^"]*")*'
        rb"(/>|><v>([^<]*)</v></c>|><is><t>([^<]*)</t></is></c>|>(.*?)</c>))?", re.S)


class ColumnCells:
    """Cells of a few columns, (row, column, value) when gone through, held as two
    arrays of numbers and a list of values: at 1,000,000 rows the product names as a
    list of tuples were 170 MB at Sync's peak (issue 22)."""

    __slots__ = ("rows", "columns", "values")

    def __init__(self) -> None:
        self.rows = array.array("I")
        self.columns = array.array("H")
        self.values: list[Any] = []

    def extend(self, cells: Sequence[tuple[int, int, Any]]) -> None:
        if cells:
            rows, columns, values = zip(*cells, strict=True)
            self.rows.extend(rows)
            self.columns.extend(columns)
            self.values.extend(values)

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        return zip(self.rows, self.columns, self.values, strict=True)

    def __len__(self) -> int:
        return len(self.values)


def read_columns(sheet: Sheet, context: Context, columns: Collection[int]
                 ) -> ColumnCells | None:
    """The values of some columns as (row, column, value), their cells found by their
    references alone, in one pass: for columns a command asks for after the read
    (:func:`read_some_cells` checked every cell's place then, in these same bytes).
    ``None`` when the part is not all in the usual form, or a cell of these columns is
    not: read them with :func:`read_some_cells` then."""
    if not _usual_cells(sheet):
        return None
    reader = _FastReader(context, sheet.patterns, LAST_ROW, LAST_COLUMN)
    pattern = _column_cells(tuple(_letters_of(column) for column in sorted(columns)))
    values = ColumnCells()
    for found in _chunks(sheet, pattern):
        cells = _found_values(found, reader)
        if cells is None:
            return None
        values.extend(cells)
    return values


def read_columns_streamed(chunks: Iterable[bytes], context: Context, columns: Collection[int]
                          ) -> ColumnCells | None:
    """:func:`read_columns` for a large part read as it is inflated (``chunks``), a
    piece of rows at a time: its text (288 MB at 1,000,000 rows) is never held whole,
    and a save then patches it as it reads it again. For a part read before, whose
    cells' places and XML were checked then (its values come from the sheet cache):
    not checked again. ``None`` when a piece is not all in the usual form."""
    stream = _PartStream(chunks, checked=True)
    start = _stream_head(stream)
    if start is None:
        return None
    stream.buf = stream.buf[start:]
    reader = _FastReader(context, _PATTERNS, LAST_ROW, LAST_COLUMN)
    pattern = _column_cells(tuple(_letters_of(column) for column in sorted(columns)))
    values = ColumnCells()
    while True:
        buf = stream.buf
        end = buf.find(b"</sheetData>")
        cut = end if end >= 0 else buf.rfind(b"<row ")
        if cut > 0:
            found = _piece_values(buf, cut, pattern, reader)
            if found is None:
                return None
            values.extend(found)
            stream.buf = buf[cut:]
        if end >= 0:
            return values
        if not stream.more():
            return None


def _piece_values(data: bytes, cut: int, pattern: re.Pattern[bytes], reader: _FastReader
                  ) -> list[tuple[int, int, Any]] | None:
    """The values of ``pattern``'s columns in a piece of rows, ``data[:cut]``, as
    :func:`read_columns` reads a chunk; ``None`` when a cell or row in it is not in the
    usual form."""
    if data.count(b"<c", 0, cut) != data.count(b'<c r="', 0, cut) or \
            data.count(b"<row", 0, cut) != data.count(b'<row r="', 0, cut) or \
            _declares(data, cut, b"!") or _declares(data, cut, b"?"):
        return None
    return _found_values(pattern.findall(data, 0, cut), reader)


def _found_values(found: list[tuple[bytes, ...]], reader: _FastReader
                  ) -> list[tuple[int, int, Any]] | None:
    """A chunk's cells of the columns read alone: all plain texts at once, else one by
    one; ``None`` when one is not in the usual form."""
    plain = _plain_texts(found)
    return _cells_alone(found, reader) if plain is None else plain


def _plain_texts(found: list[tuple[bytes, ...]]) -> list[tuple[int, int, Any]] | None:
    """A chunk's cells read at once when every one holds plain inline text or nothing
    (``<c .../>``): the product names, most often; ``None`` for any other chunk."""
    found = [cell for cell in found if cell[4] != b"/>"]
    if not found:
        return []
    letters, digits, _styles, kinds, tails, numbers, texts, inners = zip(*found, strict=True)
    if b"" in tails or b"" in texts or any(numbers) or any(inners) or \
            set(kinds) != {b"inlineStr"}:
        return None
    joined = b"".join(texts)
    if b"&" in joined or b"\r" in joined or b"_x" in joined:
        return None
    return list(zip(map(int, digits), map(_COLUMNS.__getitem__, letters),
                    map(bytes.decode, texts), strict=True))


def _cells_alone(found: list[tuple[bytes, ...]], reader: _FastReader
                 ) -> list[tuple[int, int, Any]] | None:
    """A chunk's cells of the columns read alone, one by one; ``None`` when one is not
    in the usual form or shares another cell's formula."""
    date_styles, numbers = reader.date_styles, _COLUMNS
    values: list[tuple[int, int, Any]] = []
    for letters, digits, style, kind, tail, number_text, inline_text, inner in found:
        if not tail or b"si=" in inner:  # another form; a formula shared from elsewhere
            return None
        if inline_text and kind == b"inlineStr":  # as _FastReader.read, most cells
            value: Any = reader.texts.get(inline_text)
            if value is None:
                value = reader.new_text(inline_text)
        elif number_text.isdigit() and not kind and style not in date_styles:
            value = int(number_text)
        else:
            value = reader.value_of(letters, digits, style, kind, number_text, inline_text,
                                    inner)
            if value is None:
                continue
        values.append((int(digits), numbers[letters], value))
    return values


def _chunks(sheet: Sheet, pattern: re.Pattern[bytes]) -> Iterator[list[tuple[bytes, ...]]]:
    """``pattern``'s matches in sheetData, a chunk of rows at a time (the matches of
    100,000 rows at once would be tens of MB more at the command's peak)."""
    data, position, end = sheet.data, sheet.data_start, sheet.data_end
    while position < end:
        cut = data.find(b"<row ", position + _CHUNK, end)
        cut = end if cut < 0 else cut
        yield pattern.findall(data, position, cut)
        position = cut


def _usual_cells(sheet: Sheet) -> bool:
    """Whether every cell and row of sheetData starts as the usual form does (``<c r="``,
    ``<row r="``), without a prefix: counted once a part."""
    if sheet.usual_cells is None:
        data, start, end = sheet.data, sheet.data_start, sheet.data_end
        sheet.usual_cells = not sheet.patterns.prefix and not sheet.empty_tag and \
            data.count(b"<c", start, end) == data.count(b'<c r="', start, end) and \
            data.count(b"<row", start, end) == data.count(b'<row r="', start, end)
    return sheet.usual_cells


_SHARED_TEXTS = 4_096
"""Short texts a read keeps to give again (a dict lookup costs about what decoding a
short text does)."""
_SHARED_TEXT_BYTES = 24
"""The longest text shared: a product name is seldom met twice."""


class _FastReader:
    """The grid :func:`_read_fast` fills, and where it stands between two chunks."""

    def __init__(self, context: Context, patterns: _Patterns, max_rows: int,
                 max_columns: int, wanted: frozenset[int] | None = None) -> None:
        self.context, self.patterns = context, patterns
        self.max_rows, self.max_columns = max_rows, max_columns
        self.wanted = wanted or frozenset()
        self.date_styles = {style.encode() for style in context.date_styles}
        self.shared: dict[str, tuple[str, int, int]] = {}
        self.texts: dict[bytes, str] = {}
        """Short texts read, by their bytes: the rows share one ``str`` a text (Status,
        Variant: at 1,000,000 rows about 50 MB less a column)."""
        self.grid: list[list[Any]] = []
        self.row: list[Any] = []
        self.digits_now = self.row_tag = b""
        self.number = self.row_before = self.unread_last = 0
        self.far_row = self.held = False
        self.quick = b"-"
        self.span = min(max(self.wanted, default=0), max_columns)

    def read(self, found: list[tuple[bytes, ...]]) -> None:
        """Put one chunk's rows and cells in the grid. The plain number and the plain
        inline string are read here; every rarer form of cell by :meth:`odd_value`, a
        row's start by :meth:`start_row`, a new row of values out of the usual order
        by :meth:`next_row`."""
        date_styles, columns, max_columns = self.date_styles, _COLUMNS, self.max_columns
        row, digits_now, row_tag = self.row, self.digits_now, self.row_tag
        number, row_before, quick = self.number, self.row_before, self.quick
        odd_value, next_row, start_row, grid = self.odd_value, self.next_row, self.start_row, \
            self.grid
        texts, new_text = self.texts, self.new_text
        for row_digits, letters, digits, style, kind, number_text, inline_text, inner in found:
            if number_text.isdigit() and not kind and style not in date_styles:
                value: Any = int(number_text)
            elif inline_text and kind == b"inlineStr":
                value = texts.get(inline_text)
                if value is None:
                    value = new_text(inline_text)
            elif row_digits:  # a row starts: the cells that follow must be in it
                row_before, quick, _far = start_row(row_digits, row_before)
                row_tag, digits_now = row_digits, b""
                continue
            else:
                value = odd_value(letters, digits, style, kind, number_text, inline_text, inner,
                                  row_tag)
                if value is None:  # <v> </v>, <c r="B2" s="3"/>...: checked by odd_value
                    continue
            if digits != digits_now:
                if digits == quick:  # the usual next row: in place, in order, in bounds
                    row = []
                    grid.append(row)
                    number = row_before
                else:
                    row, number = next_row(letters, digits, row_tag, number)
                digits_now = digits
            column = columns[letters]
            if column == len(row) + 1 <= max_columns:
                row.append(value)
            else:
                _place(row, number, column, value, max_columns)
        self.row, self.digits_now, self.row_tag = row, digits_now, row_tag
        self.number, self.row_before, self.quick = number, row_before, quick

    def read_some(self, found: list[tuple[bytes, ...]]) -> None:
        """:meth:`read` for the ``wanted`` columns, each row made as wide as the last of
        them at once: a cell of another column is only checked for its place
        (:meth:`skip`)."""
        date_styles, columns, wanted = self.date_styles, _COLUMNS, self.wanted
        row, digits_now, row_tag = self.row, self.digits_now, self.row_tag
        number, row_before, quick, far_row = self.number, self.row_before, self.quick, \
            self.far_row
        odd_value, next_row, start_row, skip = self.odd_value, self.next_row, self.start_row, \
            self.skip
        grid, span, texts, new_text = self.grid, self.span, self.texts, self.new_text
        for row_digits, letters, digits, style, kind, number_text, inline_text, inner in found:
            if row_digits:  # a row starts: the cells that follow must be in it
                row_before, quick, far_row = start_row(row_digits, row_before)
                row_tag, digits_now = row_digits, b""
                continue
            column = columns[letters]
            if column not in wanted:
                skip(letters, digits, style, kind, number_text, inline_text, inner, row_tag,
                     far_row)
                continue
            if number_text.isdigit() and not kind and style not in date_styles:
                value: Any = int(number_text)
            elif inline_text and kind == b"inlineStr":
                value = texts.get(inline_text)
                if value is None:
                    value = new_text(inline_text)
            else:
                value = odd_value(letters, digits, style, kind, number_text, inline_text, inner,
                                  row_tag)
                if value is None:
                    continue
            if digits != digits_now:
                if digits == quick:
                    row = [None] * span
                    grid.append(row)
                    number = row_before
                else:
                    row, number = next_row(letters, digits, row_tag, number)
                    row.extend([None] * (span - len(row)))
                digits_now = digits
            row[column - 1] = value
        self.row, self.digits_now, self.row_tag = row, digits_now, row_tag
        self.number, self.row_before, self.quick, self.far_row = number, row_before, quick, \
            far_row

    def new_text(self, inline_text: bytes) -> str:
        """An inline string's text, met for the first time: kept to be given again
        when short (:attr:`texts`)."""
        value = inline_text.decode()
        if "&" in value or "\r" in value or "_x" in value:
            value = unescape(value)
        if len(inline_text) <= _SHARED_TEXT_BYTES and len(self.texts) < _SHARED_TEXTS:
            self.texts[inline_text] = value
        return value

    def start_row(self, row_digits: bytes, row_before: int) -> tuple[int, bytes, bool]:
        """A row starts: its number, checked (:func:`_row_start`); the reference digits
        that its cells carry when it is the grid's next row within the limits (its first
        value then makes it with no more checks), else ``b"-"``; whether it is past
        the last row read."""
        number = _row_start(row_digits, row_before)
        far = number > self.max_rows
        return number, (b"-" if far or number != len(self.grid) + 1 else row_digits), far

    def skip(self, letters: bytes, digits: bytes, style: bytes, kind: bytes,
             number_text: bytes, inline_text: bytes, inner: bytes, row_tag: bytes,
             far_row: bool) -> None:
        """A cell of a column not read: it must stand in its row; a value past the
        limits stops the read as any value does; a formula is read all the same (a
        shared formula's first cell gives the text of the cells that share it, which
        may be in a column read); and a chunk with content there has the last row of
        such a value looked for (:meth:`note_unread`)."""
        if digits != row_tag:
            _in_row(letters, digits, row_tag)
        if not (number_text or inline_text or inner):
            return
        self.held = True
        far = far_row or _COLUMNS[letters] > self.max_columns
        if not (inner or far):
            return
        value = self.unread_value(letters, digits, style, kind, number_text, inline_text, inner)
        if far and value is not None:
            raise FarCell(int(digits), _COLUMNS[letters])

    def value_of(self, letters: bytes, digits: bytes, style: bytes, kind: bytes,
                 number_text: bytes, inline_text: bytes, inner: bytes) -> Any:
        """A cell's value as :meth:`read` gives it (its place in its row checked
        already)."""
        if number_text and not kind and style not in self.date_styles:
            try:
                return int(number_text)
            except ValueError:
                pass
        elif inline_text and kind == b"inlineStr":
            return unescape(inline_text.decode())
        return self.odd_value(letters, digits, style, kind, number_text, inline_text, inner,
                              digits)

    def unread_value(self, *cell: bytes) -> Any:
        """The value of a cell of a column not read, as far as its row's place needs
        it: ``None`` for none; one the reader would refuse counts as a value."""
        try:
            return self.value_of(*cell)
        except SheetXmlError:
            return True

    def note_unread(self, found: list[tuple[bytes, ...]]) -> None:
        """The last row of the chunk where a column not read holds a value, found from
        the chunk's end (most often its last row)."""
        wanted, floor = self.wanted, self.unread_last
        for _row, letters, digits, *cell in reversed(found):
            if not letters or _COLUMNS[letters] in wanted or not any(cell[2:]):
                continue
            number = int(digits)
            if number <= floor:
                return
            if self.unread_value(letters, digits, *cell) is not None:
                self.unread_last = number
                return

    def odd_value(self, letters: bytes, digits: bytes, style: bytes, kind: bytes,
                  number_text: bytes, inline_text: bytes, inner: bytes, row_tag: bytes) -> Any:
        """The value of a cell in a rarer form (a date, a shared string, a formula, an
        inline string in a cell of another type, a number Python's ``int`` does not
        read...), read as the general read does; ``None`` for none, the cell's reference
        checked then all the same."""
        if inline_text:  # <is> in a cell of another type: as the general read
            inner = b"<is><t>" + inline_text + b"</t></is>"
            value = cell_value(inner, style or None, kind or None, self.context, self.patterns,
                               self.shared, _ref_row(digits, letters), _column_of(letters))
        elif number_text:
            value = _plain(number_text, style or None, kind or None, self.context)
        elif inner:
            value = _simple_formula(inner, style, kind, self.context)
            if value is None:
                value = cell_value(inner, style or None, kind or None, self.context,
                                   self.patterns, self.shared, int(digits), _COLUMNS[letters])
        else:
            value = None
        if value is None:  # no value: the reference checked all the same
            if digits != row_tag:
                _in_row(letters, digits, row_tag)
            if letters not in _COLUMNS:
                _column_of(letters)
        return value

    def next_row(self, letters: bytes, digits: bytes, row_tag: bytes,
                 previous: int) -> tuple[list[Any], int]:
        """The grid row a cell of a new row reference goes in, and its number: the
        reference must be the row's own, rows must come in order, and the first value
        past the limits stops the read before a million rows are made for it."""
        if digits != row_tag:
            _in_row(letters, digits, row_tag)
        number = int(digits)
        if not 1 <= number <= LAST_ROW:  # as _ref_row, one call less a row
            _checked_row(number, letters.decode())
        if number < previous:
            raise SheetXmlError(
                _("row {number} comes after row {previous} (rows out of order)",
                  number=number, previous=previous))
        grid = self.grid
        if number > len(grid):
            far = _COLUMNS[letters]
            if number > self.max_rows or far > self.max_columns:  # before a million rows
                raise FarCell(number, far)                        # are made for it
            grid.extend([] for _ in range(number - len(grid)))
        return grid[number - 1], number


def _row_start(row_digits: bytes, row_before: int) -> int:
    """The number of a row that starts, checked: from 1 to the last, written without
    a leading zero, after the row before it."""
    row_number = int(row_digits)
    if not row_before < row_number <= LAST_ROW or row_digits[0] == 48:  # 48: "0"
        _bad_row(row_digits, row_before)
    return row_number


def _place(row: list[Any], number: int, column: int, value: Any, max_columns: int) -> None:
    """Put a value in its row other than right after its last one: past a gap of
    empty cells, or over an earlier one; refused past the last column read."""
    size = len(row)
    if column > size:
        if column > max_columns:
            raise FarCell(number, column)
        row.extend([None] * (column - size - 1))
        row.append(value)
    else:
        row[column - 1] = value


def _bad_row(digits: bytes, previous: int) -> None:
    number = int(digits)
    if digits[0] == 48 or number > LAST_ROW:  # 48: "0"
        raise SheetXmlError(_("row number {digits} is not one from 1 to {last:n}",
                              digits=repr(digits.decode()), last=LAST_ROW))
    raise SheetXmlError(_("row {number} comes after row {previous} (rows out of order)",
                          number=number, previous=previous))


def _in_row(letters: bytes, digits: bytes, row_tag: bytes) -> None:
    if row_tag:
        raise SheetXmlError(_("cell {letters}{digits} stands in row {row}",
                              letters=letters.decode(), digits=digits.decode(),
                              row=row_tag.decode()))
    raise SheetXmlError(_("cell {letters}{digits} stands in no row", letters=letters.decode(),
                          digits=digits.decode()))


def _ref_row(digits: bytes, letters: bytes) -> int:
    return _checked_row(int(digits), letters.decode())


_CELL_KINDS = frozenset({b"n", b"s", b"str", b"inlineStr", b"b", b"e", b"d"})
"""ST_CellType (ECMA-376 Part 1, 18.18.11)."""
_HOLDS_TEXT = re.compile(rb">\s*[^<\s]")
_NESTED_CELL = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")


def cell_value(inner: bytes, style: bytes | None, kind: bytes | None, context: Context,
               patterns: _Patterns, shared: dict[str, tuple[str, int, int]], row: int,
               column: int) -> Any:
    """A cell's value from its content: ``None`` for none, a ``Formula`` for a formula
    (with its saved result, or ``NO_CACHE`` when the file has none), else the plain
    value."""
    if kind is not None and kind not in _CELL_KINDS and _HOLDS_TEXT.search(inner):
        raise SheetXmlError(_("unknown cell type {value}",
                              value=repr(kind.decode(errors='replace'))))
    p = patterns.prefix
    if inner.startswith(b"<" + p + b"v>") and inner.endswith(b"</" + p + b"v>") and \
            inner.count(b"<") == 2:
        return _plain(inner[len(p) + 3:-(len(p) + 4)], style, kind, context)
    if _NESTED_CELL.search(inner):
        raise SheetXmlError(_("a cell holds another cell"))
    if kind == b"inlineStr":
        return _inline_value(inner, patterns)
    formula_match = patterns.formula.search(inner)
    value_match = patterns.value.search(inner)
    raw = (value_match.group(1) or b"") if value_match else None
    if raw is not None and b"<" in raw:
        raise SheetXmlError(_("a cell's value holds markup"))
    if formula_match is None:
        return None if raw is None else _plain(raw, style, kind, context)
    return _formula_value(formula_match, raw, style, kind, context, shared, row, column)


_PLAIN_FORMULA_KINDS = _CELL_KINDS - {b"inlineStr"}
_SIMPLE_FORMULA = re.compile(rb"<f>([^<]*)</f>(<v>([^<]*)</v>|<v/>)?")
"""A formula cell in the usual form (no prefix, no attribute on ``<f>``), most of them:
read with one match instead of the general patterns (as :func:`_formula_value` reads
it)."""


def _simple_formula(inner: bytes, style: bytes, kind: bytes,
                    context: Context) -> Formula | None:
    """A plain formula's ``Formula`` (``style`` and ``kind`` as the fast pattern gives
    them, empty for none), or ``None`` for any other content."""
    if not inner.startswith(b"<f>") or (kind and kind not in _PLAIN_FORMULA_KINDS):
        return None
    found = _SIMPLE_FORMULA.fullmatch(inner)
    if found is None:
        return None
    text = "=" + unescape(found.group(1).decode())
    raw = None if found.group(2) is None else (found.group(3) or b"")
    if raw is None or (not raw and kind in (b"", b"n")):  # openpyxl writes <v></v>
        return Formula(text, NO_CACHE)
    cached = _plain(raw, style or None, kind or None, context)
    return Formula(text, "" if cached is None else cached)


def _inline_value(inner: bytes, patterns: _Patterns) -> str | None:
    """An inline-string cell's text (``<is>``), ``None`` when it has none."""
    inline = patterns.inline.search(inner)
    return (text_of(inline.group(1) or b"", patterns) or None) if inline else None


def _formula_value(formula_match: re.Match[bytes], raw: bytes | None, style: bytes | None,
                   kind: bytes | None, context: Context,
                   shared: dict[str, tuple[str, int, int]], row: int, column: int) -> Formula:
    """A formula cell's ``Formula``: its saved result, ``NO_CACHE`` when the file has
    none (openpyxl writes ``<v></v>`` for a number formula it did not compute)."""
    formula = _formula(formula_match, shared, row, column)
    if raw is None or (not raw and kind in (None, b"n")):  # openpyxl writes <v></v>
        return Formula(formula, NO_CACHE)
    cached = _plain(raw, style, kind, context)
    return Formula(formula, "" if cached is None else cached)


def _plain(raw: bytes, style: bytes | None, kind: bytes | None, context: Context) -> Any:
    """A ``<v>``'s value as its cell type says: a number (a date when its style shows
    one) read here, every other type by :func:`_typed`."""
    if kind != b"str" and kind != b"inlineStr" and not raw.strip():
        return None  # <v></v>, <v> </v>: no value, whatever the type
    if kind is None or kind == b"n":
        text = raw.strip()
        try:
            number: float | int = int(text)
        except ValueError:
            number = _number(text)
            if number.is_integer() and abs(number) < _EXACT_FLOAT:
                number = int(number)
        if style is not None and style.decode() in context.date_styles:
            try:
                return context.to_datetime(float(number))
            except (OverflowError, ValueError):  # past 9999-12-31: Excel shows #####
                return FarDate.of(float(number))
        return number
    return _typed(raw, kind, context)


def _typed(raw: bytes, kind: bytes, context: Context) -> Any:
    """A ``<v>``'s value in a cell of a type other than number: shared string, text,
    boolean, error or ISO date; an unknown type is refused."""
    if kind == b"s":
        index = int(raw) if raw.strip().isdigit() else -1
        strings = context.shared_strings()
        if not 0 <= index < len(strings):
            raise SheetXmlError(_("shared string {value} does not exist",
                                  value=repr(raw.decode(errors='replace')[:20])))
        return strings[index] or None
    if kind == b"str" or kind == b"inlineStr":
        return unescape(raw.decode()) or None
    if kind == b"b":
        return raw.strip() in (b"1", b"true")
    if kind == b"e":
        return CellError(unescape(raw.decode()).strip())
    if kind == b"d":
        return _iso_date(raw)
    raise SheetXmlError(_("unknown cell type {kind}", kind=repr(kind.decode())))


def _iso_date(raw: bytes) -> dt.datetime | None:
    """A date cell's (``t="d"``) ISO 8601 text as a naive datetime; ``None`` for none."""
    iso = raw.decode().strip()
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise SheetXmlError(_("a date cell holds {text}, which is not a date",
                              text=repr(iso[:40]))) from None


def _number(text: bytes) -> float:
    try:
        return float(text)
    except ValueError:
        raise SheetXmlError(_("a number cell holds {value}, which is not a number",
                              value=repr(text.decode(errors='replace')[:40]))) from None


def _formula(match: re.Match[bytes], shared: dict[str, tuple[str, int, int]], row: int,
             column: int) -> str:
    attrs = _attributes(match.group(1))
    text = unescape((match.group(2) or b"").decode())
    kind = attrs.get("t", "normal")
    if kind == "dataTable":
        return "=TABLE()"
    if kind == "shared" and "si" in attrs:
        if text:
            shared[attrs["si"]] = (text, row, column)
        elif attrs["si"] in shared:
            from openpyxl.formula.translate import Translator

            master, top, left = shared[attrs["si"]]
            origin = f"{column_letter(left)}{top}"
            return Translator("=" + master, origin).translate_formula(
                f"{column_letter(column)}{row}")
    return "=" + text


# --- writing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateSerial:
    """A date written as Excel stores it: a serial number in a date-formatted cell."""

    serial: float


class CellWrites(Mapping[int, Mapping[int, Any]]):
    """The cells a session writes to one sheet, as a mapping row -> column -> value.

    Held by column, each column as runs of consecutive rows (a run: its top row and
    the list of its values), as write_block writes a column down: a first Sync's
    5,000,000 cells of 1,000,000 SKUs are 40 MB this way, 330 MB keyed one integer a
    cell (issue 22). A row's cells are gathered when asked for (the patch asks once
    per row, in order)."""

    __slots__ = ("_tops", "_runs")

    def __init__(self) -> None:
        self._tops: dict[int, list[int]] = {}  # column -> the top row of each run, sorted
        self._runs: dict[int, list[list[Any]]] = {}  # column -> each run's values

    def set(self, row: int, column: int, value: Any) -> None:
        tops = self._tops.get(column)
        if tops is None:
            self._tops[column], self._runs[column] = [row], [[value]]
            return
        runs = self._runs[column]
        index = bisect.bisect_right(tops, row) - 1
        if index >= 0:
            run = runs[index]
            offset = row - tops[index]
            if offset < len(run):  # written again: the last value counts
                run[offset] = value
                return
            if offset == len(run):  # the usual case: the next row down
                run.append(value)
                if index + 1 < len(tops) and tops[index + 1] == row + 1:
                    run.extend(runs.pop(index + 1))  # the gap to the next run filled
                    del tops[index + 1]
                return
        tops.insert(index + 1, row)
        runs.insert(index + 1, [value])

    def _column_runs(self, column: int) -> Iterator[tuple[int, list[Any]]]:
        return zip(self._tops[column], self._runs[column], strict=True)

    def __getitem__(self, row: int) -> dict[int, Any]:
        found = {}
        for column in sorted(self._tops):
            tops = self._tops[column]
            index = bisect.bisect_right(tops, row) - 1
            if index >= 0 and row - tops[index] < len(self._runs[column][index]):
                found[column] = self._runs[column][index][row - tops[index]]
        if not found:
            raise KeyError(row)
        return found

    def __iter__(self) -> Iterator[int]:
        return (row for row, _cells in self.by_row())

    def __len__(self) -> int:
        return sum(1 for _row in self)

    def __bool__(self) -> bool:
        return bool(self._tops)

    def values_written(self) -> Iterable[Any]:
        """Every value written, in no order."""
        return itertools.chain.from_iterable(itertools.chain.from_iterable(
            self._runs.values()))

    def cells(self) -> Iterator[tuple[int, int, Any]]:
        """Every written cell as (row, column, value), in no order."""
        for column in self._tops:
            for top, run in self._column_runs(column):
                yield from zip(range(top, top + len(run)), itertools.repeat(column), run)

    def by_row(self) -> Iterator[tuple[int, dict[int, Any]]]:
        """Each written row, in order, with its cells (column -> value), made as the
        patch asks for it: all at once, a first Sync's 1,000,000 rows were 220 MB.
        Between two rows where a run starts or ends the same columns are written:
        each such stretch is one zip of their runs."""
        edges = (edge for edge, _same in itertools.groupby(heapq.merge(*(
            self._edges(column) for column in self._tops))))
        columns = sorted(self._tops)
        for low, high in itertools.pairwise(edges):
            covering = [(column, self._run_at(column, low)) for column in columns]
            stretch = [(column, run, low - top) for column, (top, run) in covering
                       if run is not None]
            if not stretch:
                continue
            keys = [column for column, _run, _offset in stretch]
            values = [run[offset:offset + high - low] for _column, run, offset in stretch]
            for row, cells in zip(range(low, high), zip(*values, strict=True), strict=True):
                yield row, dict(zip(keys, cells, strict=True))

    def _edges(self, column: int) -> Iterator[int]:
        """The rows where a run of ``column`` starts, and those just past one, in order."""
        for top, run in self._column_runs(column):
            yield top
            yield top + len(run)

    def _run_at(self, column: int, row: int) -> tuple[int, list[Any] | None]:
        """The run of ``column`` holding ``row`` with its top row (``None`` for none)."""
        tops = self._tops[column]
        index = bisect.bisect_right(tops, row) - 1
        if index >= 0 and row - tops[index] < len(self._runs[column][index]):
            return tops[index], self._runs[column][index]
        return 0, None

    def area(self) -> tuple[int, int, int, int] | None:
        """Top, left, bottom and right of the cells given a value (not a clearing
        ``None``), ``None`` when there are none: C loops over each run's values."""
        found = [(column, *rows) for column in self._tops
                 if (rows := self._rows_given(column)) is not None]
        if not found:
            return None
        return (min(top for _c, top, _b in found), min(c for c, _t, _b in found),
                max(bottom for _c, _t, bottom in found), max(c for c, _t, _b in found))

    def _rows_given(self, column: int) -> tuple[int, int] | None:
        """The first and last rows of ``column`` given a value, ``None`` for none."""
        given = [(top + first, top + len(run) - 1 - last)
                 for top, run in self._column_runs(column)
                 if (first := _first_given(run)) is not None
                 and (last := _first_given(reversed(run))) is not None]
        if not given:
            return None
        return given[0][0], given[-1][1]

    def last_row_with_value(self) -> int:
        """The last row given a value (not a clearing ``None``); 0 for none."""
        area = self.area()
        return 0 if area is None else area[2]


def _first_given(values: Iterable[Any]) -> int | None:
    """The index of the first value that is not ``None`` (a C loop), ``None`` for none."""
    return next(itertools.compress(itertools.count(), map(operator.is_not, values,
                                                         itertools.repeat(None))), None)


def _area(cells: Iterable[tuple[int, int]]) -> tuple[int, int, int, int] | None:
    """Top, left, bottom and right of ``cells`` (row, column); ``None`` for none."""
    found: list[int] | None = None
    for row, column in cells:
        if found is None:
            found = [row, column, row, column]
            continue
        found[0], found[1] = min(found[0], row), min(found[1], column)
        found[2], found[3] = max(found[2], row), max(found[3], column)
    return None if found is None else (found[0], found[1], found[2], found[3])


def _written_cells(writes: Mapping[int, Mapping[int, Any]]) -> Iterator[tuple[int, int, Any]]:
    if isinstance(writes, CellWrites):
        return writes.cells()
    return ((r, c, v) for r, cells in writes.items() for c, v in cells.items())


@dataclass
class PatchContext:
    """What patching needs: styles for cells that did not exist, and a date style.
    ``dated`` collects the cells where a number went into a cell formatted as a date
    (one of ``date_styles``), which a read then gives as a date."""

    column_styles: Mapping[int, str]
    date_style: Callable[[str | None], str]
    date_styles: frozenset[str] = frozenset()
    dated: list[tuple[int, int]] = field(default_factory=list)

    def cell(self, row: int, column: int, style: str | None, value: Any) -> bytes:
        """:func:`cell_xml`, noting a number given a date style."""
        if style in self.date_styles and type(value) in (int, float):
            self.dated.append((row, column))
        return cell_xml(row, column, style, value, self.date_style)


def cell_xml(row: int, column: int, style: str | None, value: Any,
             date_style: Callable[[str | None], str]) -> bytes:
    """One ``<c>`` element for ``value`` (``None``: the style alone, or nothing). Text
    and whole numbers, most cells, are written here; other values by
    :func:`_typed_cell_xml`."""
    ref = f"{_letters_of(column).decode()}{row}"
    if isinstance(value, DateSerial):
        style = date_style(style)
    s = f' s="{style}"' if style and style != "0" else ""
    if value is None:
        return f'<c r="{ref}"{s}/>'.encode() if s else b""
    if isinstance(value, str):
        space = ' xml:space="preserve"' if value != value.strip() or "\n" in value else ""
        return (f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{escape_text(value)}</t></is>'
                "</c>").encode()
    if type(value) is int:  # not a bool: that one is t="b"
        return f'<c r="{ref}"{s}><v>{value}</v></c>'.encode()
    return _typed_cell_xml(ref, s, value)


def _typed_cell_xml(ref: str, s: str, value: Any) -> bytes:
    """The ``<c>`` of a value other than text and a plain ``int``: a boolean, a number
    (refused when not finite), a date serial, a formula or an error; any other
    type is refused."""
    if isinstance(value, bool):
        return f'<c r="{ref}"{s} t="b"><v>{int(value)}</v></c>'.encode()
    if isinstance(value, int):
        return f'<c r="{ref}"{s}><v>{value}</v></c>'.encode()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(_("{value} is not a number a cell can hold", value=value))
        return f'<c r="{ref}"{s}><v>{value!r}</v></c>'.encode()
    if isinstance(value, DateSerial):
        return f'<c r="{ref}"{s}><v>{value.serial!r}</v></c>'.encode()
    if isinstance(value, Formula):
        text = value.text[1:] if value.text.startswith("=") else value.text
        return f'<c r="{ref}"{s}><f>{escape_text(text)}</f></c>'.encode()
    if isinstance(value, CellError):
        return f'<c r="{ref}"{s} t="e"><v>{escape_text(value.code)}</v></c>'.encode()
    raise TypeError(f"cannot write a {type(value).__name__}: {value!r}")


def _with_prefix(xml: bytes, prefix: bytes) -> bytes:
    if not prefix:
        return xml
    return re.sub(rb"<(/?)(row|c|is|t|v|f)\b", rb"<\1" + prefix + rb"\2", xml)


def patch_pieces(sheet: Sheet, writes: Mapping[int, Mapping[int, Any]],
                 context: PatchContext, *, filter_rows: tuple[int, int] | None = None
                 ) -> Iterator[bytes | memoryview]:
    """The part with the cells of ``writes`` (row -> column -> value) replaced, created
    or cleared, every other byte as it was, in pieces (unchanged stretches are views of
    the original, never copied). A new cell takes its row's style, or the style of the
    same column in the nearest data row above, or its column's; a new row the
    attributes of the data row above it. ``<dimension>`` grows to cover new cells; with
    ``filter_rows`` ``(last, new_last)``, an autofilter that reached row ``last`` grows
    to ``new_last``."""
    data = sheet.data
    view = memoryview(data)
    patterns = sheet.patterns
    yield _grow_dimension(data[:sheet.data_start], sheet, writes)
    if sheet.empty_tag:  # <sheetData/>: open it, and close it after the new rows
        yield b"<" + patterns.prefix + b"sheetData>"
        position = sheet.data_end
    else:
        position = sheet.data_start
    usual = _usual_form(sheet)
    locate = _locate_fast if usual else _locate_generic(sheet)
    for number, cells in _rows_written(writes):
        pieces, position = _patch_row(sheet, number, cells, position, context, usual, locate)
        yield from pieces
    if sheet.empty_tag:
        yield b"</" + patterns.prefix + b"sheetData>"
    else:
        yield view[position:sheet.data_end]
    after = data[sheet.data_end:]
    if filter_rows is not None:
        after = _grow_autofilter(after, patterns, *filter_rows)
    yield after


def _rows_written(writes: Mapping[int, Mapping[int, Any]]
                  ) -> Iterable[tuple[int, Mapping[int, Any]]]:
    return writes.by_row() if isinstance(writes, CellWrites) else \
        [(number, writes[number]) for number in sorted(writes)]


def _patch_row(sheet: Sheet, number: int, cells: Mapping[int, Any], position: int,
               context: PatchContext, usual: bool, locate: Locator
               ) -> tuple[list[bytes | memoryview], int]:
    """The pieces from ``position`` to the end of row ``number`` patched with ``cells``
    (or to the new row made for them), and the position after them."""
    view = memoryview(sheet.data)
    if usual:
        spliced = _splice_cells(sheet, number, cells, position, context)
        if spliced is not None:
            found, position = spliced
            return [piece if type(piece) is bytes else view[piece[0]:piece[1]]
                    for piece in found], position
    span, insert_at, template = locate(sheet, number, position)
    if span is not None:
        return [view[position:span.start], _rewrite_row(sheet, span, cells, context)], span.end
    pieces: list[bytes | memoryview] = []
    if insert_at > position:
        pieces.append(view[position:insert_at])
        position = insert_at
    new_row = _new_row(sheet, number, template, cells, context)
    if new_row:
        pieces.append(new_row)
    return pieces, position


class NotStreamable(Exception):
    """A part in a form :class:`SheetStream` does not patch (a prefix, no rows, a
    comment, rows without their number first...): it is patched whole instead."""


class SheetStream:
    """A worksheet part patched as it is read, a chunk at a time, so that a sheet of
    1,000,000 rows (288 MB of XML) is never held whole at a save (issue 22): the bytes
    are the ones :func:`patch_pieces` gives for the whole part. Only the usual form
    (no prefix, every row's number first, rows in order, as Excel, LibreOffice and
    openpyxl write, and as a sheet the reader read holds them) is taken: anything else
    raises :class:`NotStreamable`, before or while the pieces are made. The buffer
    holds the row being patched, the row above it (a new row's model) and a chunk."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""
        self._end = -1
        """Where ``</sheetData>`` is in the buffer, once read."""
        self._rows_checked = 0
        self._marks_checked = 0
        if self._read() and self._buf.startswith(b"\xef\xbb\xbf"):
            self._buf = self._buf[3:]
        while True:
            root = _ROOT.search(self._buf, 0, 4096)
            if root is None and len(self._buf) < 4096 and self._read():
                continue
            opening = _PATTERNS.sheet_data.search(self._buf)
            if root is None or root.group(1) or needs_normalising(self._buf[:4096]):
                raise NotStreamable("not the usual form")
            if opening is not None:
                break
            if not self._read():
                raise NotStreamable("no sheetData")
        if opening.group(2):
            raise NotStreamable("no rows")
        start = opening.end()
        self.head = Sheet(self._buf[:start], _PATTERNS, start, start, False)
        """The part before its rows: what a patch's context and ``<dimension>`` need."""
        if self.head.dimension() == (1, 1, 1, 1) or needs_normalising(self.head.data):
            raise NotStreamable("a dimension of one cell, or a comment")
        self._buf = self._buf[start:]
        self._check()

    def _read(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._buf += chunk
        return True

    def _more(self) -> None:
        if not self._read():
            raise NotStreamable("no </sheetData>")
        self._check()

    def _check(self) -> None:
        """The new bytes: no comment, CDATA or processing instruction; the end of the
        rows; each ``<row`` with its number first."""
        buf = self._buf
        if _MARKUP_DECLARATION.search(buf, max(self._marks_checked - 1, 0)):
            raise NotStreamable("a comment, CDATA or processing instruction")
        if self._end < 0:
            end = buf.find(b"</sheetData>", max(self._marks_checked - 11, 0))
            self._end = end
        self._marks_checked = len(buf)
        start = self._rows_checked
        if self._end >= 0:
            upto = stop4 = stop8 = self._end
        else:
            upto = len(buf) - 7
            stop4, stop8 = upto + 3, upto + 7
        if upto > start:
            if buf.count(b"<row", start, stop4) != buf.count(b'<row r="', start, stop8):
                raise NotStreamable("a row without its number first")
            self._rows_checked = upto

    def _drop(self, count: int) -> None:
        self._buf = self._buf[count:]
        if self._end >= 0:
            self._end -= count
        self._rows_checked = max(self._rows_checked - count, 0)
        self._marks_checked -= count

    def patch(self, writes: Mapping[int, Mapping[int, Any]], context: PatchContext, *,
              filter_rows: tuple[int, int] | None = None) -> Iterator[bytes | memoryview]:
        """The pieces of the patched part, as :func:`patch_pieces` makes them."""
        yield _grow_dimension(self.head.data, self.head, writes)
        position = 0
        for number, cells in _rows_written(writes):
            position = yield from self._up_to(number, position)
            sheet = Sheet(self._buf, _PATTERNS, 0, self._limit(), False)
            pieces, position = _patch_row(sheet, number, cells, position, context, True,
                                          _locate_fast)
            yield from pieces
        while self._end < 0:
            keep = max(len(self._buf) - 11, position)
            yield self._buf[position:keep]
            self._drop(keep)
            position = 0
            self._more()
        yield self._buf[position:self._end]
        self._drop(self._end)
        while self._read():
            self._check()
        after = self._buf
        if after.find(b"</sheetData>", 12) >= 0:
            raise NotStreamable("two </sheetData>")
        if filter_rows is not None:
            after = _grow_autofilter(after, _PATTERNS, *filter_rows)
        yield after

    def _limit(self) -> int:
        return self._end if self._end >= 0 else len(self._buf)

    def _up_to(self, number: int, position: int) -> Generator[bytes, None, int]:
        """Read on until the buffer holds row ``number`` and the start of the row after
        it, or the row before which a new row ``number`` goes; the rows passed on the
        way are yielded as they are and let go. Returns the position in the buffer."""
        needle = b'<row r="%d"' % number
        while True:
            buf, limit = self._buf, self._limit()
            at = buf.find(needle, position, limit)
            if self._end >= 0:
                return position
            if at >= 0:
                if buf.find(b"<row ", at + len(needle), limit) >= 0:
                    return position
            else:
                last = buf.rfind(b'<row r="', position, limit)
                found = _FAST_ROW.match(buf, last) if last >= 0 else None
                if found is not None and int(found.group(1)) > number:
                    return position
                if found is not None and last > position:  # passed; the last row kept
                    yield buf[position:last]
                    self._drop(last)
                    position = 0
            keep = self._buf.rfind(b'<row r="', 0, position + 1)  # the row being written
            if keep > 0:
                self._drop(keep)
                position -= keep
            self._more()


_PATTERNS = patterns_for(b"")


def _splice_cells(sheet: Sheet, number: int, cells: Mapping[int, Any], position: int,
                  context: PatchContext) -> tuple[list[Any], int] | None:
    """The usual case of a row written: the row exists at or after ``position`` and
    holds a cell for every column written, each replaced where it stands, with no
    copy of the row. The pieces (``bytes``, or ``(start, stop)`` stretches of the
    part) up to the last cell replaced, and the position after it; ``None`` for any
    other case (:func:`_rewrite_row` then rebuilds the row)."""
    data, end = sheet.data, sheet.data_end
    at = data.find(b'<row r="%d"' % number, position, end)
    if at < 0:
        return None
    row_end = data.find(b"</row>", at, end)
    tag_end = data.find(b">", at, end)
    if row_end < 0 or tag_end < 0 or data[tag_end - 1] == 47:  # <row .../>: no cells
        return None
    pieces: list[Any] = []
    suffix = b"%d" % number
    for column in sorted(cells):
        cell = data.find(b'<c r="' + _letters_of(column) + suffix + b'"', tag_end, row_end)
        if cell < position:  # missing, or cells out of column order
            return None
        close = data.find(b">", cell, row_end)
        if close < 0:
            return None
        if data[close - 1] == 47:  # <c .../>
            stop = close + 1
        else:
            stop = data.find(b"</c>", close, row_end)
            if stop < 0:
                return None
            stop += 4
        style = _STYLE_ATTRIBUTE.search(data, cell, close)
        pieces.append((position, cell))
        pieces.append(context.cell(number, column, style.group(1).decode() if style else None,
                                   cells[column]))
        position = stop
    return pieces, position


def _grow_autofilter(after: bytes, patterns: _Patterns, last_row: int, new_last: int) -> bytes:
    """The sheet's own autofilter (after sheetData), grown to ``new_last`` when it
    reached the sheet's last row ``last_row``."""
    found = re.search(rb"<" + re.escape(patterns.prefix)
                      + rb"autoFilter\b[^>]*?\sref\s*=\s*[\"']([^\"']*)[\"']", after)
    if found is None:
        return after
    area = parse_range(found.group(1).decode())
    if area is None or area[2] < last_row or area[2] >= new_last:
        return after
    ref = range_text(area[0], area[1], new_last, area[3]).encode()
    return after[:found.start(1)] + ref + after[found.end(1):]


Locator = Callable[[Sheet, int, int], tuple["RowSpan | None", int, "RowSpan | None"]]
"""``locate(sheet, number, position)``: the row numbered ``number`` at or after byte
``position`` (or ``None``), where a new row of that number goes, and the data row above
that place (a new row's model)."""


def _usual_form(sheet: Sheet) -> bool:
    """No prefix, and every row carries its number first (as Excel, LibreOffice and
    openpyxl write): rows can be found by their start tags alone."""
    if sheet.patterns.prefix or sheet.empty_tag:
        return False
    start, end = sheet.data_start, sheet.data_end
    return sheet.data.count(b"<row", start, end) == sheet.data.count(b'<row r="', start, end)


def _locate_fast(sheet: Sheet, number: int, position: int
                 ) -> tuple[RowSpan | None, int, RowSpan | None]:
    data, end = sheet.data, sheet.data_end
    needle = b'<row r="%d"' % number
    at = data.find(needle, position, end)
    if at >= 0:
        following = data.find(b"<row ", at + len(needle), end)
        return RowSpan(number, at, following if following >= 0 else end), at, None
    insert_at = end
    for match in _FAST_ROW.finditer(data, position, end):
        if int(match.group(1)) > number:
            insert_at = match.start()
            break
    template = None
    above = data.rfind(b'<row r="', sheet.data_start, insert_at)
    if above >= 0:
        found = _FAST_ROW.match(data, above)
        if found is not None and int(found.group(1)) >= 2:
            template = RowSpan(int(found.group(1)), above, insert_at)
    return None, insert_at, template


def _locate_generic(sheet: Sheet) -> Locator:
    rows = sheet.rows
    numbers = [row.number for row in rows]

    def locate(sheet: Sheet, number: int, position: int
               ) -> tuple[RowSpan | None, int, RowSpan | None]:
        index = bisect.bisect_left(numbers, number)
        if index < len(rows) and numbers[index] == number:
            return rows[index], rows[index].start, None
        insert_at = rows[index].start if index < len(rows) else sheet.data_end
        above = index - 1
        template = rows[above] if above >= 0 and numbers[above] >= 2 else None
        return None, insert_at, template

    return locate


def _grow_dimension(result: bytes, sheet: Sheet, writes: Mapping[int, Mapping[int, Any]]
                    ) -> bytes:
    found = sheet.patterns.dimension.search(result, 0, sheet.data_start)
    if found is None:
        return result
    current = parse_range(found.group(1).decode())
    written = (writes.area() if isinstance(writes, CellWrites)
               else _area((r, c) for r, c, v in _written_cells(writes) if v is not None))
    if current is None or written is None:
        return result
    top, left, bottom, right = current
    if (top, left, bottom, right) == (1, 1, 1, 1) and not sheet.rows:
        top, left = written[0], written[1]
        bottom, right = top, left
    new = (min(top, written[0]), min(left, written[1]), max(bottom, written[2]),
           max(right, written[3]))
    if new == current:
        return result
    return (result[:found.start(1)] + range_text(*new).encode() + result[found.end(1):])


def _cells_of(sheet: Sheet, span: RowSpan) -> tuple[bytes, list[tuple[int, str | None, bytes]]]:
    """A row's start tag attributes and its cells (column, style, bytes)."""
    data = sheet.data
    if not sheet.patterns.prefix:
        tag_end = data.index(b">", span.start)
        if data[tag_end - 1:tag_end] == b"/":
            return data[span.start + 4:tag_end - 1], []
        close = data.find(b"</row>", tag_end, span.end)
        if close >= 0:
            found = _FAST_CELL_RAW.findall(data, tag_end + 1, close)
            if len(found) == data.count(b"<c", tag_end + 1, close):
                return data[span.start + 4:tag_end], [
                    (_column_of(letters), style.decode() if style else None, raw)
                    for raw, letters, style in found
                ]
    match = sheet.patterns.row.match(data, span.start, span.end)
    if match is None:
        raise SheetXmlError(_("row {number} is not well formed", number=span.number))
    attrs = match.group(1)
    cells: list[tuple[int, str | None, bytes]] = []
    inner = match.group(2)
    if inner is None:
        return attrs, cells
    base = match.start(2)
    column = 0
    for cell in sheet.patterns.cell.finditer(data, base, match.end(2)):
        ref = cell_ref(cell)
        column = ref[1] if ref is not None else column + 1
        style = cell.group(4).decode() if cell.group(4) is not None else None
        raw = cell.group(0)
        if ref is None:  # give it a reference, now that cells around it may move
            tag = b"<" + sheet.patterns.prefix + b"c"
            raw = tag + f' r="{column_letter(column)}{span.number}"'.encode() + raw[len(tag):]
        cells.append((column, style, raw))
    return attrs, cells


def _row_style(attrs: dict[str, str]) -> str | None:
    if attrs.get("customFormat") in ("1", "true") and attrs.get("s"):
        return attrs["s"]
    return None


def _patch_row_fast(sheet: Sheet, span: RowSpan, writes: Mapping[int, Any],
                    context: PatchContext) -> bytes | None:
    """The row with ``writes`` spliced in cell by cell, found by their references; ``None``
    when a new cell would go between existing ones (then the row is rebuilt)."""
    row = sheet.data[span.start:span.end]
    suffix = f"{span.number}".encode()
    row_style: str | None | bool = False
    for column in sorted(writes):
        at = row.find(b'<c r="' + _letters_of(column) + suffix + b'"')
        if at >= 0:
            tag_end = row.index(b">", at)
            end = tag_end + 1 if row[tag_end - 1] == 47 else row.index(b"</c>", tag_end) + 4
            style_match = _STYLE_ATTRIBUTE.search(row, at, tag_end)
            style = style_match.group(1).decode() if style_match else None
            row = row[:at] + context.cell(span.number, column, style, writes[column]) + row[end:]
            continue
        if writes[column] is None:
            continue
        close = row.rfind(b"</row>")
        if close < 0:  # <row .../>: open it
            tag_end = row.index(b">")
            row = row[:tag_end - 1].rstrip() + b"></row>" + row[tag_end + 1:]
            close = row.rfind(b"</row>")
        last = row.rfind(b'<c r="', 0, close)
        if last >= 0:
            found = re.match(rb'<c r="([A-Z]{1,3})', row[last:last + 12])
            if found is None or _column_of(found.group(1)) > column:
                return None
        if row_style is False:
            tag = row[:row.index(b">")]
            row_style = _row_style(_attributes(tag[4:])) if b"customFormat" in tag else None
        style = (row_style if isinstance(row_style, str) else None) or \
            context.column_styles.get(column)
        row = row[:close] + context.cell(span.number, column, style, writes[column]) + row[close:]
    return row


def _rewrite_row(sheet: Sheet, span: RowSpan, writes: Mapping[int, Any],
                 context: PatchContext) -> bytes:
    """The row with ``writes`` in it: spliced in place when it can be, else rebuilt."""
    if not sheet.patterns.prefix:
        fast = _patch_row_fast(sheet, span, writes, context)
        if fast is not None:
            return fast
    return _rebuild_row(sheet, span, writes, context)


def _rebuild_row(sheet: Sheet, span: RowSpan, writes: Mapping[int, Any],
                 context: PatchContext) -> bytes:
    """The row made again from its cells: the ones not written copied as they are,
    the written ones in the style they had (a new one in the row's or column's
    style), its ``spans`` widened to the cells it now has."""
    raw_attrs, cells = _cells_of(sheet, span)
    row_style = _row_style(_attributes(raw_attrs)) if b"customFormat" in raw_attrs else None
    existing = {column: (style, raw) for column, style, raw in cells}
    out: list[bytes] = []
    prefix = sheet.patterns.prefix
    columns = _row_columns(existing, writes)
    for column in columns:
        if column not in writes:
            out.append(existing[column][1])
            continue
        style = existing[column][0] if column in existing else (
            row_style or context.column_styles.get(column))
        out.append(_with_prefix(context.cell(span.number, column, style, writes[column]), prefix))
    if b"spans" in raw_attrs:
        raw_attrs = _widen_spans(raw_attrs, [c for c in columns if c in existing or
                                             writes.get(c) is not None])
    start_tag = b"<" + prefix + b"row" + raw_attrs
    return start_tag + b">" + b"".join(out) + b"</" + prefix + b"row>"


def _row_columns(existing: Mapping[int, Any], writes: Mapping[int, Any]) -> list[int]:
    """The row's columns, the existing ones then the new written ones; sorted when a new
    one came or the existing ones were out of order."""
    columns = list(existing) + [c for c in writes if c not in existing]
    if len(columns) > len(existing) or any(
            a > b for a, b in zip(columns, columns[1:], strict=False)):
        columns.sort()
    return columns


def _widen_spans(raw_attrs: bytes, columns: Iterable[int]) -> bytes:
    found = re.search(rb"(\sspans\s*=\s*[\"'])([0-9]+):([0-9]+)([\"'])", raw_attrs)
    columns = list(columns)
    if found is None or not columns:
        return raw_attrs
    first = min(int(found.group(2)), min(columns))
    last = max(int(found.group(3)), max(columns))
    return (raw_attrs[:found.start()] + found.group(1) + f"{first}:{last}".encode()
            + found.group(4) + raw_attrs[found.end():])


_ROW_ATTRIBUTES_KEPT = ("s", "customFormat", "ht", "customHeight", "x14ac:dyDescent")


def _new_row(sheet: Sheet, number: int, template: RowSpan | None, writes: Mapping[int, Any],
             context: PatchContext) -> bytes:
    """A row that did not exist, styled after ``template`` (the data row above)."""
    template_styles: dict[int, str | None] = {}
    attrs: dict[str, str] = {}
    if template is not None:
        raw_attrs, cells = _cells_of(sheet, template)
        attrs = _attributes(raw_attrs)
        template_styles = {column: style for column, style, _ in cells}
    row_style = _row_style(attrs)
    out: list[bytes] = []
    for column in sorted(writes):
        style = template_styles.get(column) or row_style or context.column_styles.get(column)
        out.append(context.cell(number, column, style, writes[column]))
    body = b"".join(out)
    if not body:
        return b""
    kept = "".join(f' {name}="{escape_attribute(attrs[name])}"'
                   for name in _ROW_ATTRIBUTES_KEPT if name in attrs)
    return _with_prefix(f'<row r="{number}"{kept}>'.encode(), sheet.patterns.prefix) + \
        _with_prefix(body, sheet.patterns.prefix) + b"</" + sheet.patterns.prefix + b"row>"


def new_sheet_xml(writes: Mapping[int, Mapping[int, Any]], context: PatchContext) -> bytes:
    """A whole new worksheet part holding ``writes``."""
    rows = []
    cells = [(r, c) for r, c, v in _written_cells(writes) if v is not None]
    for number, written in _rows_written(writes):
        body = b"".join(cell_xml(number, column, None, value, context.date_style)
                        for column, value in sorted(written.items()))
        if body:
            rows.append(f'<row r="{number}">'.encode() + body + b"</row>")
    dimension = "A1"
    if cells:
        dimension = range_text(min(r for r, _ in cells), min(c for _, c in cells),
                               max(r for r, _ in cells), max(c for _, c in cells))
    return (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        + f'<worksheet xmlns="{MAIN_NS}" xmlns:r="http://schemas.openxmlformats.org/'
          f'officeDocument/2006/relationships"><dimension ref="{dimension}"/>'
          '<sheetData>'.encode()
        + b"".join(rows) + b"</sheetData></worksheet>"
    )


def grow_ref(ref: str, bottom: int) -> str | None:
    """``ref`` with its last row moved down to ``bottom``; ``None`` if unchanged."""
    area = parse_range(ref)
    if area is None or area[2] >= bottom:
        return None
    return range_text(area[0], area[1], bottom, area[3])
