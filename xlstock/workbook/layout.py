"""Which cells mean what: sheet Stock's headers, Settings' labels, the Log's columns
and the hidden state, on top of any :class:`~xlstock.workbook.base.WorkbookAdapter`.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, overload

from xlstock import i18n
from xlstock.cells import NO_CACHE, Formula, unchanged
from xlstock.errors import SheetError, UsageError, WorkbookError
from xlstock.i18n import NC_, _
from xlstock.model import ValueProblem, loose_key, parse_quantity
from xlstock.workbook import statecells
from xlstock.workbook.base import (
    LOG_SHEET,
    LOW_STOCK_SHEET,
    MAX_ROWS,
    SETTINGS_SHEET,
    STATE_SHEET,
    STOCK_SHEET,
    ColumnReader,
    WorkbookAdapter,
    column_letter,
)

WORDS = "workbook"
"""The catalogue's context of the workbook's own words: its sheet names, headers and
Settings labels (translated apart from the same English in a message)."""

SKU = NC_("workbook", "SKU")
PRODUCT = NC_("workbook", "Product")
VARIANT = NC_("workbook", "Variant")
ONLINE = NC_("workbook", "Online")
RECEIVED = NC_("workbook", "Received")
NEW_LEVEL = NC_("workbook", "New level")
CHANGE = NC_("workbook", "Change")
LOW_AT = NC_("workbook", "Low at")
STATUS = NC_("workbook", "Status")

STOCK_HEADERS = (SKU, PRODUCT, VARIANT, ONLINE, RECEIVED, NEW_LEVEL, CHANGE, LOW_AT, STATUS)
"""The template's column order; a merchant may reorder them and add their own."""
WITHOUT_NAMES = tuple(h for h in STOCK_HEADERS if h not in (PRODUCT, VARIANT))
"""The columns of an action that needs no product names (Preview, Publish, Validate):
the names, most of the sheet's text, are read only if it asks for them."""
REQUIRED_HEADERS = (SKU, ONLINE, RECEIVED, NEW_LEVEL)

SETTING_SERVICE = NC_("workbook", "Stock service")
SETTING_SHOP = NC_("workbook", "Shop URL")
SETTING_POLICY = NC_("workbook", "Conflict policy")
SETTING_LAST_SYNC = NC_("workbook", "Last sync")
SETTING_LAST_PUBLISH = NC_("workbook", "Last publish")
SETTING_VERSION = NC_("workbook", "Online version")
SETTING_PLATFORM = NC_("workbook", "Shop platform")
SETTING_LOCATION = NC_("workbook", "Location")
SETTING_LOW_STOCK = NC_("workbook", "Low stock at")
SETTING_LABELS = (
    SETTING_SERVICE, SETTING_SHOP, SETTING_POLICY,
    SETTING_LAST_SYNC, SETTING_LAST_PUBLISH, SETTING_VERSION,
    SETTING_PLATFORM, SETTING_LOCATION, SETTING_LOW_STOCK,
)
LOW_STOCK_NAME = "LowStockAt"
"""The workbook's defined name for Settings' ``Low stock at``, which the colour rules of
sheet Stock use."""
LOW_STOCK_HEADERS = (SKU, PRODUCT, VARIANT, NC_("workbook", "Level"), LOW_AT,
                     NC_("workbook", "Shortfall"))
DEFAULT_SERVICE = "http://127.0.0.1:8765"
POLICIES = ("rebase", "strict")

XLSTOCK_SERVICE = NC_("workbook", "xlstock service")
SHOPIFY = "Shopify"
WOOCOMMERCE = "WooCommerce"
PLATFORMS = (XLSTOCK_SERVICE, SHOPIFY, WOOCOMMERCE)
"""What Settings' ``Shop platform`` may say, as the template's list offers it."""

LOG_HEADERS = (NC_("workbook", "When"), NC_("workbook", "Action"), SETTING_VERSION,
               NC_("workbook", "Rows changed"), NC_("workbook", "Units"), NC_("workbook", "Result"))

STATE_FORMAT = 1
_STATE_CHUNK = statecells.CELL_LIMIT
"""Characters per state cell: under Excel's 32,767-character cell limit."""


# --- the workbook's language ---------------------------------------------------------------
# A workbook is English or French: its sheet names, headers and labels. xlstock reads
# both whatever the machine's language, and writes its own words in the workbook's.

ENGLISH, FRENCH = i18n.ENGLISH, i18n.FRENCH
LANGUAGES = i18n.LANGUAGES
SHEET_NAMES = (STOCK_SHEET, NC_("workbook", "Settings"), NC_("workbook", "Log"),
               NC_("workbook", "Low stock"), NC_("workbook", "How to"))
"""xlstock's sheets (their English names are base's ``*_SHEET``)."""


def _in(language: str, words: Sequence[str]) -> dict[str, str]:
    return {word: i18n.translate_in(WORDS, word, language) for word in words}


HEADERS_IN = {language: _in(language, STOCK_HEADERS) for language in LANGUAGES}
"""Sheet Stock's headers in each language, from the catalogue (French in the words of the
help text and account pages: En ligne, Reçu, Nouveau niveau...)."""
LABELS_IN = {language: _in(language, SETTING_LABELS) for language in LANGUAGES}
SHEETS_IN = {language: _in(language, SHEET_NAMES) for language in LANGUAGES}
LOG_HEADERS_IN = {language: tuple(_in(language, LOG_HEADERS).values())
                  for language in LANGUAGES}
LOW_STOCK_HEADERS_IN = {language: tuple(_in(language, LOW_STOCK_HEADERS).values())
                        for language in LANGUAGES}
FRENCH_HEADERS = HEADERS_IN[FRENCH]
FRENCH_LABELS = LABELS_IN[FRENCH]
FRENCH_SHEETS = {sheet: text for sheet, text in SHEETS_IN[FRENCH].items() if sheet != text}
FRENCH_LOG_HEADERS = LOG_HEADERS_IN[FRENCH]
FRENCH_LOW_STOCK_HEADERS = LOW_STOCK_HEADERS_IN[FRENCH]


def header_text(header: str, language: str) -> str:
    """A canonical Stock header (``layout.ONLINE``...) as a workbook of ``language``
    writes it."""
    return HEADERS_IN.get(language, HEADERS_IN[ENGLISH])[header]


def platform_text(platform: str, language: str) -> str:
    """A platform's name as a workbook of ``language`` writes it (only the xlstock
    service's is translated: "service xlstock")."""
    return i18n.translate_in(WORDS, platform, language) \
        if platform == XLSTOCK_SERVICE else platform


_PLATFORM_WORDS = {"": XLSTOCK_SERVICE, "xlstock": XLSTOCK_SERVICE,
                   **{platform_text(XLSTOCK_SERVICE, language).casefold(): XLSTOCK_SERVICE
                      for language in LANGUAGES},
                   **{platform.casefold(): platform for platform in PLATFORMS}}


def label_text(label: str, language: str) -> str:
    return LABELS_IN.get(language, {}).get(label, label)


def sheet_text(sheet: str, language: str) -> str:
    return SHEETS_IN.get(language, {}).get(sheet, sheet)


def _header_key(value: Any) -> str:
    """How headers, labels and sheet names are compared: case, accents and the spaces
    around and between words ignored ("Nouveau  niveau", "NOUVEAU NIVEAU", "Recu")."""
    return "" if value is None else loose_key(str(value))


_KNOWN = {_header_key(text): h for language in LANGUAGES
          for h, text in HEADERS_IN[language].items()}
_ONLY_IN = {_header_key(text): language for language in LANGUAGES
            for h, text in HEADERS_IN[language].items()
            if sum(_header_key(text) == _header_key(HEADERS_IN[other][h])
                   for other in LANGUAGES) == 1}
"""A header's words that only one language uses ("Reçu"; not "SKU"), and that
language."""


def sheet_in(book: WorkbookAdapter, sheet: str) -> str | None:
    """The name under which ``book`` has xlstock's sheet ``sheet`` (its English name),
    in either language, or ``None``."""
    wanted = {_header_key(sheet_text(sheet, language)) for language in LANGUAGES}
    for name in book.sheet_names():
        if _header_key(name) in wanted:
            return name
    return None


def language_of(book: WorkbookAdapter) -> str:
    """The workbook's language: the one whose names it has one of xlstock's sheets
    under (Paramètres, Journal...), else English."""
    return language_of_sheets(book.sheet_names())


def language_of_sheets(sheet_names: Iterable[str]) -> str:
    """:func:`language_of` a workbook whose sheets are ``sheet_names``."""
    names = {_header_key(name) for name in sheet_names}
    for language in LANGUAGES:
        own = {_header_key(text) for sheet, text in SHEETS_IN[language].items()
               if _header_key(text) != _header_key(sheet)}
        if names & own:
            return language
    return ENGLISH


@dataclass
class StockTable:
    """Sheet Stock as read: where each known column is, and the data rows.

    ``columns`` maps a canonical header (``layout.ONLINE``...) to its 1-based column;
    ``rows[i]`` is sheet row ``i + 2``, padded to the table's width.
    """

    columns: dict[str, int]
    rows: list[list[Any]]
    width: int
    shared: int = 0
    """How many of ``rows`` (from the first) are the workbook adapter's own
    (``read_sheet(shared=True)``): its :meth:`write_block` keeps them in step, and
    they may be longer than ``width``."""
    language: str = ENGLISH
    """The language its headers are in (new columns are headed in it)."""
    read: set[int] | None = None
    """The columns whose values ``rows`` hold (``None``: all); another is read into
    the shared rows by ``read_more`` when first asked for."""
    read_more: Callable[[int], None] | None = None
    _widths: tuple[int, int] = field(default=(-1, 0), repr=False, compare=False)

    def _ensure_read(self, column: int) -> None:
        if self.read is not None and column not in self.read:
            if self.read_more is not None:
                self.read_more(column)
            self.read.add(column)

    def value(self, index: int, header: str) -> Any:
        column = self.columns.get(header)
        if column is None:
            return None
        self._ensure_read(column)
        row = self.rows[index]
        return row[column - 1] if column <= len(row) else None

    def column(self, header: str) -> list[Any]:
        """Every data row's value in column ``header`` (``None`` where it has none)."""
        column = self.columns.get(header)
        if column is None:
            return [None] * len(self.rows)
        self._ensure_read(column)
        try:  # rows are as wide as the table (read_stock pads them): one C loop
            return list(map(operator.itemgetter(column - 1), self.rows))
        except IndexError:
            return [row[column - 1] if column <= len(row) else None for row in self.rows]

    def values(self, header: str) -> Iterator[Any]:
        """:meth:`column`'s values made as they are gone through (no list of them)."""
        column = self.columns.get(header)
        if column is None:
            return itertools.repeat(None, len(self.rows))
        self._ensure_read(column)
        if self._narrowest() < column:
            return iter(self.column(header))
        return map(operator.itemgetter(column - 1), self.rows)

    def _narrowest(self) -> int:
        """The length of the shortest row (rows only grow: worked out again only when
        rows were added)."""
        count, narrowest = self._widths
        if count != len(self.rows):
            narrowest = min(map(len, self.rows), default=0)
            self._widths = (len(self.rows), narrowest)
        return narrowest

    @staticmethod
    def sheet_row(index: int) -> int:
        return index + 2

    def cell(self, index: int, header: str) -> str:
        """The A1 name of a cell, for messages: ``Stock!E7``."""
        return f"{STOCK_SHEET}!{column_letter(self.columns[header])}{index + 2}"


def read_stock(book: WorkbookAdapter, headers: Collection[str] | None = None) -> StockTable:
    """Sheet Stock, its columns found by header text (case and spaces ignored); with
    ``headers``, only their columns read where the adapter can (a file: the cells of
    the others are not decoded), another read when first asked for.

    Raises :class:`SheetError` naming the missing or doubled header and the fix.
    """
    if STOCK_SHEET not in book.sheet_names():
        raise SheetError(_(
            "{book} has no sheet named {sheet}; add it with the headers {headers} in row 1 "
            "(or start from `xlstock new`)", book=book.label, sheet=repr(STOCK_SHEET),
            headers=", ".join(STOCK_HEADERS)
        ))
    read: set[int] | None = None
    read_more: Callable[[int], None] | None = None
    if headers is not None and isinstance(book, ColumnReader):
        reader: ColumnReader = book
        read = set()

        def wanted(header: list[Any]) -> set[int]:
            found = _stock_columns(header)[0]
            read.update(found[h] for h in headers if h in found)
            return read

        def read_more(column: int) -> None:
            reader.read_sheet(STOCK_SHEET, shared=True, columns=lambda _header: (column,))

        grid = reader.read_sheet(STOCK_SHEET, shared=True, columns=wanted)
    else:
        grid = book.read_sheet(STOCK_SHEET, shared=True)  # 100,000 rows not copied
    header = grid[0] if grid else []
    columns, language = _stock_columns(header)
    missing = [h for h in REQUIRED_HEADERS if h not in columns]
    if missing:
        raise SheetError(_(
            "sheet {sheet} has no column headed {missing} in row 1; add it (the template's "
            "row 1 is: {headers})", sheet=STOCK_SHEET,
            missing=", ".join(repr(m) for m in missing), headers=", ".join(STOCK_HEADERS)
        ))
    width = max(len(header), 1)
    rows = grid[1:]
    for row in rows:  # padded with None: all the adapter lets a caller change
        if len(row) < width:
            row.extend([None] * (width - len(row)))
    return StockTable(columns=columns, rows=rows, width=width,
                      shared=len(rows) if book.shares_rows else 0, language=language,
                      read=read, read_more=read_more)


def _stock_columns(header: Sequence[Any]) -> tuple[dict[str, int], str]:
    """Sheet Stock's known columns (canonical header -> 1-based column) and the
    language most of their headers are in; a header found twice is refused."""
    columns: dict[str, int] = {}
    votes = dict.fromkeys(LANGUAGES, 0)
    for index, value in enumerate(header, start=1):
        key = _header_key(value)
        known = _KNOWN.get(key)
        if known is None:
            continue
        if known in columns:
            _refuse_twice(header, columns[known], index, known)
        columns[known] = index
        if key in _ONLY_IN:
            votes[_ONLY_IN[key]] += 1
    return columns, max(LANGUAGES, key=lambda language: votes[language])  # a tie: English


def _refuse_twice(header: Sequence[Any], before: int, index: int, known: str) -> NoReturn:
    """Two columns of sheet Stock mean the same (in one language or in two)."""
    first, value = header[before - 1], header[index - 1]
    both = dict(sheet=STOCK_SHEET, first=column_letter(before), second=column_letter(index),
                header=repr(known))
    if _header_key(first) == _header_key(value):
        raise SheetError(_("sheet {sheet}: columns {first} and {second} are both "
                           "headed {header}; rename or delete one", **both))
    raise SheetError(_(
        "sheet {sheet}: columns {first} and {second} are both headed {header} "
        "({first_text} and {second_text}); rename or delete one", **both,
        first_text=repr(str(first).strip()), second_text=repr(str(value).strip())))


def ensure_columns(book: WorkbookAdapter, table: StockTable, headers: Sequence[str]) -> None:
    """Give the table the written columns it lacks (Product, Variant, Change, Status),
    as new headed columns after the last one; one write, only when needed."""
    missing = [h for h in headers if h not in table.columns]
    if not missing:
        return
    start = table.width + 1
    book.write_block(STOCK_SHEET, 1, start,
                     [[header_text(header, table.language) for header in missing]])
    for offset, header in enumerate(missing):
        table.columns[header] = start + offset
    table.width += len(missing)
    for row in table.rows:
        row.extend([None] * len(missing))


def write_column(
    book: WorkbookAdapter, table: StockTable, header: str, values: Sequence[Any], *, first: int = 0
) -> None:
    """Write ``values`` down column ``header`` from data row ``first`` (0-based), and
    keep ``table`` in step. Nothing is written when no value differs from the table's.
    To a workbook that takes scattered writes cheaply (a file) only the runs of rows
    that differ go, runs closer than :data:`WRITE_GAP` rows as one block; to one that
    does not (live Excel) one block from the first differing row to the last."""
    if not values:
        return
    _refuse_past_the_last_row(book, STOCK_SHEET, first + 1 + len(values))
    column = table.columns[header] - 1
    rows = table.rows
    current = table.column(header)[first:first + len(values)]
    if len(current) == len(values) and _same(current, values):
        return  # the usual column of a second Sync: nothing to compare row by row
    adopt = _grow(book, table, first + len(values))
    current += [None] * (len(values) - len(current))  # the rows just added
    # The rows whose value differs: the same objects passed over in C (a Sync's column
    # is the table's with the changed rows set), equal values of equal types then, the
    # rest asked of unchanged() ("" and None are one value). A generator, and only the
    # rows the table holds itself noted: at a first Sync of 1,000,000 SKUs, lists of
    # every row's offset were 70 MB at the peak (issue 22).
    differ = (offset for offset in itertools.compress(itertools.count(), map(
        operator.is_not, current, values))
        if type(current[offset]) is not type(values[offset])
        or current[offset] != values[offset])
    runs, written = _runs(differ, current, values,
                          math.inf if adopt else table.shared - first)
    if runs and not book.scattered_writes:
        runs = [[runs[0][0], runs[-1][1]]]
    for low, high in runs:
        book.write_block(STOCK_SHEET, first + 2 + low, column + 1,
                         _OneColumn(values, low, high))
    if adopt:
        _adopt_rows(book, table, column, first + len(values))
    for offset in written:  # the adapter's own rows are in step already (as it stores)
        if first + offset >= table.shared:
            rows[first + offset][column] = values[offset]


def _grow(book: WorkbookAdapter, table: StockTable, count: int) -> bool:
    """Make ``table`` ``count`` data rows long, or say (``True``) that the rows it lacks
    are to be the adapter's own, taken by :func:`_adopt_rows` once written."""
    rows = table.rows
    if count > len(rows) and table.shared == len(rows) and book.shares_rows \
            and isinstance(book, ColumnReader):
        return True
    rows.extend([None] * table.width for _ in range(count - len(rows)))
    return False


def _adopt_rows(book: WorkbookAdapter, table: StockTable, column: int, count: int) -> None:
    """Give ``table`` the adapter's own rows for the data rows just written below its
    last, as it has for those it read: a first Sync of 1,000,000 SKUs held a second
    list per row, 130 MB (issue 22). Rows the adapter does not hold (nothing but
    blanks was written there) are the table's own, blank."""
    assert isinstance(book, ColumnReader)
    grid = book.read_sheet(STOCK_SHEET, shared=True, columns=lambda _header: (column + 1,))
    own = grid[1 + len(table.rows):1 + count]
    width = table.width
    for row in own:
        if len(row) < width:
            row.extend([None] * (width - len(row)))
    table.rows.extend(own)
    table.shared = len(table.rows)
    table.rows.extend([None] * width for _ in range(count - len(table.rows)))


def write_cells(book: WorkbookAdapter, table: StockTable, header: str,
                values: Mapping[int, Any]) -> None:
    """Write ``values`` (data row, 0-based -> value) into column ``header`` of rows the
    table holds, and keep ``table`` in step: the blocks :func:`write_column` writes for
    the column with those rows changed, at the cost of those rows alone."""
    if not values:
        return
    column = table.columns[header] - 1
    rows = table.rows
    indices = sorted(values)
    _refuse_past_the_last_row(book, STOCK_SHEET, indices[-1] + 2)
    current = {i: rows[i][column] if column < len(rows[i]) else None for i in indices}
    differ = [i for i in indices if current[i] is not values[i]
              and (type(current[i]) is not type(values[i]) or current[i] != values[i])]
    runs, written = _runs(differ, current, values, table.shared)
    if runs and not book.scattered_writes:
        runs = [[runs[0][0], runs[-1][1]]]
    for low, high in runs:
        block = [values[i] if i in values else rows[i][column] for i in range(low, high)]
        book.write_block(STOCK_SHEET, low + 2, column + 1, _OneColumn(block, 0, high - low))
    for index in written:
        if index >= table.shared:
            rows[index][column] = values[index]


def _runs(differ: Iterable[int], current: Sequence[Any] | Mapping[int, Any],
          values: Sequence[Any] | Mapping[int, Any], noted_from: float = 0,
          ) -> tuple[list[list[int]], list[int]]:
    """The runs ``[low, high)`` of the rows to write (of those that ``differ``, the ones
    :func:`unchanged` does not pass over), runs closer than :data:`WRITE_GAP` rows as
    one, and those rows from ``noted_from`` on."""
    runs: list[list[int]] = []
    written: list[int] = []
    for offset in differ:
        if unchanged(current[offset], values[offset]):
            continue
        if offset >= noted_from:
            written.append(offset)
        if runs and offset - runs[-1][1] <= WRITE_GAP:
            runs[-1][1] = offset + 1
        else:
            runs.append([offset, offset + 1])
    return runs, written


class _OneColumn(Sequence[Sequence[Any]]):
    """``values[low:high]`` as the rows of a one-column block, each row made when asked
    for (a list of 100,000 one-item lists is 7 MB)."""

    __slots__ = ("_values", "_low", "_high")

    def __init__(self, values: Sequence[Any], low: int, high: int) -> None:
        self._values, self._low, self._high = values, low, high

    def __len__(self) -> int:
        return self._high - self._low

    def __iter__(self) -> Iterator[Sequence[Any]]:
        return zip(self._values[self._low:self._high])  # 1-tuples, in C

    @overload
    def __getitem__(self, index: int) -> Sequence[Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Sequence[Any]]: ...

    def __getitem__(self, index: int | slice) -> Sequence[Any] | Sequence[Sequence[Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return (self._values[self._low + index],)


def _same(current: list[Any], values: Sequence[Any]) -> bool:
    """Whether writing ``values`` over ``current`` (as long) changes no cell, told by C
    loops (equal values of equal types); ``False`` may still change none:
    :func:`~xlstock.cells.unchanged` decides each cell then."""
    return current == list(values) and list(map(type, current)) == list(map(type, values))


WRITE_GAP = 32
"""Rows of unchanged values that :func:`write_column` writes again rather than start
another block."""


@dataclass
class Settings:
    """Sheet Settings: the values the actions need, and where each label sits."""

    service_url: str
    shop_url: str
    policy: str
    rows: dict[str, int]
    values: dict[str, Any]
    next_row: int
    platform: str = XLSTOCK_SERVICE
    """One of :data:`PLATFORMS`: where the shop's live levels are."""
    sheet: str = SETTINGS_SHEET
    """The sheet's name in the workbook (``Paramètres`` in a French one)."""
    language: str = ENGLISH
    location: str = ""
    """The platform's location the workbook keeps (blank: the shop's only one)."""
    low_stock_at: int | None = None
    """The low-stock threshold of rows whose Low at is blank (``None``: no alert)."""


def read_settings(book: WorkbookAdapter) -> Settings:
    """Sheet Settings (labels in column A, values in B). Raises :class:`UsageError` for
    a missing sheet, shop URL or an unknown conflict policy, naming the cell."""
    sheet = sheet_in(book, SETTINGS_SHEET)
    if sheet is None:
        raise UsageError(_(
            "{book} has no sheet {sheet}; add it with labels in column A ({labels}) and "
            "values in column B", book=book.label, sheet=repr(SETTINGS_SHEET),
            labels=", ".join(SETTING_LABELS[:3])
        ))
    grid = book.read_sheet(sheet)
    rows: dict[str, int] = {}
    values: dict[str, Any] = {}
    by_key = {_header_key(text): label for language in LANGUAGES
              for label, text in LABELS_IN[language].items()}
    for number, line in enumerate(grid, start=1):
        label = by_key.get(_header_key(line[0] if line else None))
        if label and label not in rows:
            rows[label] = number
            values[label] = line[1] if len(line) > 1 else None
    service = _setting_text(values.get(SETTING_SERVICE)) or DEFAULT_SERVICE
    shop = _setting_text(values.get(SETTING_SHOP))
    policy = (_setting_text(values.get(SETTING_POLICY)) or "rebase").casefold()
    if policy not in POLICIES:
        where = f"{sheet}!B{rows[SETTING_POLICY]}"
        raise UsageError(_(
            "{where}: conflict policy {policy} is unknown; write rebase or strict",
            where=where, policy=repr(policy)
        ))
    platform = _platform(_setting_text(values.get(SETTING_PLATFORM)), shop,
                         rows.get(SETTING_PLATFORM), sheet)
    return Settings(
        service_url=service, shop_url=shop, policy=policy, rows=rows, values=values,
        next_row=len(grid) + 1, platform=platform,
        location=_setting_text(values.get(SETTING_LOCATION)),
        low_stock_at=_threshold(values.get(SETTING_LOW_STOCK), rows.get(SETTING_LOW_STOCK),
                                sheet),
        sheet=sheet, language=_language_of_sheet(sheet, SETTINGS_SHEET),
    )


def _language_of_sheet(name: str, sheet: str) -> str:
    """The language whose name of xlstock's sheet ``sheet`` is ``name``."""
    key = _header_key(name)
    return next((language for language in LANGUAGES
                 if _header_key(sheet_text(sheet, language)) == key), ENGLISH)


def _threshold(value: Any, row: int | None, sheet: str = SETTINGS_SHEET) -> int | None:
    """Settings' ``Low stock at``: blank for none, else a whole number >= 0."""
    if isinstance(value, Formula):
        value = value.cached if value.cached is not NO_CACHE else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = whole_or_none(value)
    if number is None or number < 0:
        raise UsageError(_("{where}: Low stock at {value} is not a whole number 0 or more; "
                           "type one, or leave it blank for no alert",
                           where=f"{sheet}!B{row}", value=repr(value)))
    return number


def whole_or_none(value: Any) -> int | None:
    """A cell's whole number as Received and New level read it
    (:func:`xlstock.model.parse_quantity`: a number, digits in text, a formula's saved
    result), or ``None`` for a blank or anything else."""
    try:
        return parse_quantity(value, what="a level")
    except ValueProblem:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def low_stock(table: StockTable, default: int | None) -> list[list[Any]]:
    """The rows at or below their threshold (Low at, else ``default``), as sheet Low
    stock lists them: SKU, product, variant, level, Low at, shortfall; the largest
    shortfall first."""
    found: list[list[Any]] = []
    low_ats = table.column(LOW_AT)
    if default is None and low_ats.count(None) == len(low_ats):
        return found  # no threshold anywhere (the usual sheet): no row walked
    columns = (table.column(SKU), table.column(ONLINE), low_ats)
    for index, (sku, online, low_at) in enumerate(zip(*columns, strict=True)):
        # a plain int (nearly every Online cell) is its own whole number: not parsed
        level = online if type(online) is int else whole_or_none(online)
        threshold = low_at if type(low_at) is int or low_at is None else whole_or_none(low_at)
        if threshold is None:
            threshold = default
        if sku is None or level is None or threshold is None or level > threshold:
            continue
        found.append([sku, index, None, level, threshold, threshold - level])
    if found:  # the names, read only when a row is listed
        product, variant = table.column(PRODUCT), table.column(VARIANT)
        for row in found:
            row[1], row[2] = product[row[1]], variant[row[1]]
    found.sort(key=lambda row: (-row[5], str(row[0])))
    return found


def write_low_stock(book: WorkbookAdapter, rows: Sequence[Sequence[Any]]) -> None:
    """Rewrite sheet Low stock (xlstock's own, like Log) with ``rows`` under its headers,
    blanking what an earlier list left below."""
    sheet = sheet_in(book, LOW_STOCK_SHEET)
    language = language_of(book)
    if sheet is None:
        sheet = sheet_text(LOW_STOCK_SHEET, language)
        book.add_sheet(sheet)
        before = 0
    else:
        before = len(book.read_sheet(sheet))
    headers = LOW_STOCK_HEADERS_IN.get(language, LOW_STOCK_HEADERS)
    width = len(headers)
    block = [list(headers), *(list(row) for row in rows)]
    block.extend([None] * width for _ in range(max(0, before - len(block))))
    _refuse_past_the_last_row(book, sheet, len(block))
    book.write_block(sheet, 1, 1, block)


def _platform(text: str, shop: str, row: int | None, sheet: str = SETTINGS_SHEET) -> str:
    """The platform Settings name; a blank one is the xlstock service, unless the shop's
    address is a Shopify store's (``*.myshopify.com``)."""
    platform = _PLATFORM_WORDS.get(" ".join(text.split()).casefold())
    if platform is None:
        where = f"{sheet}!B{row}"
        raise UsageError(_(
            "{where}: shop platform {platform} is unknown; write one of {platforms}",
            where=where, platform=repr(text), platforms=", ".join(PLATFORMS)
        ))
    if not text and shop_host(shop).endswith(".myshopify.com"):
        return SHOPIFY
    return platform


def shop_host(url: str) -> str:
    """The host of a shop address, lower case ("" when there is none)."""
    rest = url.strip().split("://", 1)[-1]
    return rest.split("/", 1)[0].split(":", 1)[0].casefold().rstrip(".")


def _setting_text(value: Any) -> str:
    if isinstance(value, Formula):
        value = value.cached if value.cached is not NO_CACHE else None
    return "" if value is None else str(value).strip()


def write_settings(book: WorkbookAdapter, settings: Settings, updates: dict[str, Any]) -> None:
    """Set the values of some labels; labels the sheet lacks are added below the
    last row. One block write over the span of rows involved."""
    for label in updates:
        if label not in settings.rows:
            settings.rows[label] = settings.next_row
            book.write_block(settings.sheet, settings.next_row, 1,
                             [[label_text(label, settings.language)]])
            settings.next_row += 1
    by_row = {settings.rows[label]: value for label, value in updates.items()}
    kept = {row: settings.values.get(label) for label, row in settings.rows.items()}
    top, bottom = min(by_row), max(by_row)
    span = range(top, bottom + 1)
    if any(isinstance(kept.get(row), Formula) for row in span if row not in by_row):
        for row, value in by_row.items():  # never overwrite a merchant's formula
            book.write_block(settings.sheet, row, 2, [[value]])
    else:
        block = [[by_row[row] if row in by_row else kept.get(row)] for row in span]
        book.write_block(settings.sheet, top, 2, block)
    for label, value in updates.items():
        settings.values[label] = value


@dataclass
class Log:
    """Sheet Log as appending needs it: the row the next entry goes to (1 when the sheet
    is empty or missing: the headers go first). Found once per command by
    :func:`read_log`, then kept in step by :func:`append_log`."""

    next_row: int
    sheet: str = LOG_SHEET
    language: str = ENGLISH


def read_log(book: WorkbookAdapter) -> Log:
    """Where sheet Log's next entry goes (in a sheet named in the workbook's language
    when there is none yet)."""
    sheet = sheet_in(book, LOG_SHEET)
    if sheet is None:
        language = language_of(book)
        return Log(next_row=1, sheet=sheet_text(LOG_SHEET, language), language=language)
    return Log(next_row=len(book.read_sheet(sheet)) + 1, sheet=sheet,
               language=_language_of_sheet(sheet, LOG_SHEET))


LOG_RESULT_LIMIT = 280
"""Characters of a Log row's Result: a longer one is cut at a word boundary and ends
with an ellipsis (the whole message was on stderr)."""


def shorten_result(text: str, limit: int = LOG_RESULT_LIMIT) -> str:
    """``text`` if it fits in ``limit`` characters, else cut after its last whole word
    that fits (mid-word only for a word longer than half the limit) with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit]  # one character for the ellipsis: at most limit - 1 kept
    space = cut.rfind(" ")
    kept = cut[:space] if space > limit // 2 else cut[: limit - 1]
    return kept.rstrip(" ,;:-") + "\u2026"


def append_log(book: WorkbookAdapter, log: Log, entry: Sequence[Any]) -> None:
    """Append one row to sheet Log (when, action, online version, rows, units, result)
    at ``log.next_row``, without reading the sheet again. A Result longer than
    :data:`LOG_RESULT_LIMIT` is cut by :func:`shorten_result`."""
    entry = list(entry)
    if len(entry) >= len(LOG_HEADERS) and isinstance(entry[-1], str):
        entry[-1] = shorten_result(entry[-1])
    if log.sheet not in book.sheet_names():
        book.add_sheet(log.sheet)
    if log.next_row == 1:
        headers = LOG_HEADERS_IN.get(log.language, LOG_HEADERS)
        rows = [list(headers), list(entry)]
    else:
        _refuse_past_the_last_row(book, log.sheet, log.next_row)
        rows = [list(entry)]
    book.write_block(log.sheet, log.next_row, 1, rows)
    log.next_row += len(rows)


def _refuse_past_the_last_row(book: WorkbookAdapter, sheet: str, last: int) -> None:
    """Never write below :data:`~xlstock.workbook.base.MAX_ROWS`: the next command could
    not read the sheet back. (Sync checks first, with a message about the shop.)"""
    if last > MAX_ROWS:
        raise WorkbookError(_(
            "{book}: sheet {sheet} would reach row {row:n}, past row {last:n}, Excel's last. "
            "Delete rows you no longer need and try again", book=book.label,
            sheet=sheet, row=last, last=MAX_ROWS
        ))


def read_state(book: WorkbookAdapter, *, levels: bool = True) -> dict[str, Any]:
    """The tool's own memory (levels at the last Sync, a pending publish), kept as JSON
    in column A of the very hidden sheet ``_xlstock``; ``{}`` when there is none. Its
    levels laid out in cells of their own (:mod:`~xlstock.workbook.statecells`) come as
    a :class:`~xlstock.workbook.statecells.SyncLevels`, which a save patches;
    ``levels=False``: without them (their cells not decoded, when laid out so)."""
    if STATE_SHEET not in book.sheet_names():
        return {}
    column = [row[0] if row else None for row in book.read_sheet(STATE_SHEET)]
    try:
        state = statecells.read(column, levels=levels)
    except ValueError:
        state = None  # read whole: a damaged text gets its message there
    if state is None:
        state = _whole_state(book, column)
        if not levels and isinstance(state, dict):
            state.pop("base", None)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        return {}
    return state


def _whole_state(book: WorkbookAdapter, column: Sequence[Any]) -> Any:
    """The state read as one text, its cells joined (as every release wrote it)."""
    text = "".join(value for value in column if isinstance(value, str))
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise WorkbookError(_(
            "{book}: the hidden sheet {sheet} is damaged; run `xlstock sync` to rebuild it "
            "(edits in Received/New level are kept)", book=book.label, sheet=STATE_SHEET
        )) from exc


_BASE_SLICE = 10_000


def state_text(state: Mapping[str, Any]) -> str:
    """``json.dumps(state, sort_keys=True, separators=(",", ":"))``, with the levels of
    the last Sync (``base``) encoded :data:`_BASE_SLICE` SKUs at a time: ``json.dumps``
    sorts a million SKUs as a list of pairs and joins a million pieces, about 120 MB
    more at the moment Publish writes its state (issue 22)."""
    base = state.get("base")
    if not isinstance(base, dict) or len(base) <= _BASE_SLICE:
        return json.dumps(state, sort_keys=True, separators=(",", ":"))
    ordered = sorted(base)
    slices = [json.dumps(dict(zip(part, map(base.__getitem__, part), strict=True)),
                         separators=(",", ":"))[1:-1]
              for part in (ordered[i:i + _BASE_SLICE] for i in range(0, len(ordered),
                                                                   _BASE_SLICE))]
    del ordered
    parts: list[str] = []
    for key, value in sorted(state.items()):
        parts.append("," + json.dumps(key) + ":" if parts else "{" + json.dumps(key) + ":")
        if key == "base":
            parts.append("{")
            for index, encoded in enumerate(slices):
                parts.extend((",", encoded) if index else (encoded,))
            parts.append("}")
        else:
            parts.append(json.dumps(value, sort_keys=True, separators=(",", ":")))
    parts.append("}")
    return "".join(parts)


def write_state(book: WorkbookAdapter, state: dict[str, Any]) -> None:
    """Store the state, replacing the previous one: the rows of column A whose text
    changed, in a block write each run of them (one, first change to last, where each
    write crosses to another process). Many levels are laid out in cells of
    their own, those whose SKUs did not change kept as read
    (:func:`~xlstock.workbook.statecells.lay_out`); few, in one text
    (:func:`state_text`)."""
    if STATE_SHEET not in book.sheet_names():
        book.add_sheet(STATE_SHEET, hidden=True)
        before: list[Any] = []
    else:
        before = [row[0] if row else None for row in book.read_sheet(STATE_SHEET)]
    state = {**state, "format": STATE_FORMAT}
    laid = statecells.lay_out(state)
    if laid is None:
        text = state_text(state)
        column: list[Any] = [text[i:i + _STATE_CHUNK] for i in range(0, len(text), _STATE_CHUNK)]
    else:
        column = laid[0]
    runs = list(statecells.runs(before, column))
    if runs and not book.scattered_writes:  # one block, first change to last (live Excel)
        top, last = runs[0][0], runs[-1][0] + len(runs[-1][1])
        runs = [(top, [column[row] if row < len(column) else None for row in range(top, last)])]
    for top, values in runs:
        book.write_block(STATE_SHEET, top + 1, 1, [[value] for value in values])
    statecells.written(state, None if laid is None else laid[1])
