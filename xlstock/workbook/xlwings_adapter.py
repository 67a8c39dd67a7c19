"""The workbook adapter for a workbook open in Excel, through xlwings.

Every call to Excel crosses a process boundary (COM on Windows, Apple events on macOS),
so this adapter only moves cells in bulk: reading a sheet is one read of the used
range's values and one of its formulas (and a third, of the values with errors named,
only when the sheet shows an error), whatever its size; writing a block is one write.
(For very large blocks xlwings itself splits a transfer into chunks of 100,000 cells
written, 4,000,000 read, to stay within Excel's limits.)

Two Excel habits are handled here, once:

- Excel reads a string assigned to a cell the way it reads typing: ``=...`` becomes a
  formula, ``00123`` the number 123, ``1/2`` a date, ``TRUE`` a boolean. Every string
  is therefore written with a leading apostrophe, Excel's own "this is text" prefix: it
  is not part of the value (``Range.Value`` and ``Range.Formula`` leave it out) and the
  cell's number format is left alone, so a product called ``=HYPERLINK(...)`` or a SKU
  ``00123`` stays exactly that text.
- xlwings reads error cells as ``None`` unless asked for ``err_to_str``, which in turn
  reads them as text such as ``"#N/A"``, like a cell holding that text. The adapter
  reads values without it and formulas: an empty value under a non-empty formula text
  is an error (or a formula showing ""), and only then is the ``err_to_str`` read made
  to name it. COM error numbers that xlwings leaves as integers (the newer errors such
  as ``#SPILL!``) are named here too. Errors come out as :class:`CellError`.

Saving is Excel's own ``Book.save()``: the open file is never written behind Excel's back.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from xlstock.cells import EXCEL_ERRORS, CellError, Formula
from xlstock.errors import WorkbookError, XlstockError
from xlstock.i18n import _
from xlstock.workbook.base import (
    MAX_COLUMNS,
    MAX_ROWS,
    Grid,
    WorkbookAdapter,
    column_letter,
)

if TYPE_CHECKING:
    import xlwings as xw

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
XL_SHEET_VERY_HIDDEN = 2
"""COM's ``XlSheetVisibility.xlSheetVeryHidden``: hidden, and not listed under Unhide."""

_COM_ERROR_BASE = -2146828288
"""``0x800A0000`` as a signed 32-bit integer: COM reports an error cell as this plus
Excel's ``CVErr`` number."""
_CVERR_NUMBERS = {
    2000: "#NULL!", 2007: "#DIV/0!", 2015: "#VALUE!", 2023: "#REF!", 2029: "#NAME?",
    2036: "#NUM!", 2042: "#N/A", 2043: "#GETTING_DATA", 2045: "#SPILL!", 2046: "#CONNECT!",
    2047: "#BLOCKED!", 2048: "#UNKNOWN!", 2049: "#FIELD!", 2050: "#CALC!", 2051: "#BUSY!",
}
_EXACT_FLOAT = 2**53

_BUSY = {-2147418111, -2147417846, -1712}
"""COM ``RPC_E_CALL_REJECTED`` / ``RPC_E_SERVERCALL_RETRYLATER``, Apple event timeout."""
_NOT_ALLOWED = {-1743}
"""Apple event refused: the user has not allowed Python to control Excel."""


def _rows_2d(raw: Any) -> list[list[Any]]:
    """COM gives one cell as a scalar and a range as a tuple of tuples (a flat tuple
    on some engines for one row)."""
    if not isinstance(raw, (list, tuple)):
        return [[raw]]
    if raw and not isinstance(raw[0], (list, tuple)):
        return [list(raw)]
    return [list(row) for row in raw]


def _from_excel(value: Any) -> Any:
    """One cleaned xlwings value as xlstock's cell value."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        code = _CVERR_NUMBERS.get(value - _COM_ERROR_BASE)
        return CellError(code) if code else value
    if isinstance(value, Decimal):  # a Currency-formatted cell over COM
        value = float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT:
        return int(value)
    return value


def _merge(value: Any, formula: Any, named: Any) -> Any:
    """A cell from its value (errors as ``None``), its ``Range.Formula`` text and, for
    cells that may hold an error, its value read with ``err_to_str`` (else ``None``).

    The formula text of a constant is the constant, and of a text cell the text
    without its apostrophe: a cell holding the text ``=x`` has value ``'=x'`` and
    formula ``'=x'``, and is text."""
    if value is None and isinstance(named, str) and named in EXCEL_ERRORS:
        cell: Any = CellError(named)
    else:
        cell = _from_excel(value)
    if (
        isinstance(formula, str)
        and formula.startswith("=")
        and not (isinstance(value, str) and value == formula)
    ):
        return Formula(formula, cell)
    return cell


def _to_excel(value: Any) -> Any:
    """One xlstock value as it must be assigned to an Excel cell."""
    if value is None or isinstance(value, (bool, int, float, dt.date, dt.time)):
        return value
    if isinstance(value, str):
        return "'" + value if value else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Formula):
        return value.text
    if isinstance(value, CellError):
        return value.code
    raise TypeError(f"cannot write a {type(value).__name__} to Excel: {value!r}")


def _trim(grid: Grid) -> Grid:
    while grid and all(v is None for v in grid[-1]):
        grid.pop()
    width = max((i + 1 for row in grid for i, v in enumerate(row) if v is not None), default=0)
    return [row[:width] for row in grid]


def _error_number(exc: BaseException) -> int | None:
    number = getattr(exc, "errornumber", None)  # appscript's CommandError
    if isinstance(number, int):
        return number
    args: tuple[Any, ...] = exc.args
    if len(args) >= 3 and isinstance(args[2], tuple) and len(args[2]) >= 6:
        scode = args[2][5]  # pywin32 com_error: (hresult, text, excepinfo, argerror)
        if isinstance(scode, int) and scode:
            return scode
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _describe(exc: BaseException) -> str:
    args: tuple[Any, ...] = exc.args
    if len(args) >= 3 and isinstance(args[2], tuple) and len(args[2]) >= 3 and args[2][2]:
        return " ".join(str(args[2][2]).split())
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return args[1]
    return " ".join(str(exc).split()) or type(exc).__name__


def _fix_for(exc: BaseException) -> str:
    number = _error_number(exc)
    if number in _BUSY:
        return _("Excel is busy: finish editing the cell (press Enter or Esc) or close the "
                 "open dialog box, then press the button again")
    if number in _NOT_ALLOWED:
        return _("macOS did not let Python control Excel: allow it in System Settings > "
                 "Privacy & Security > Automation (see docs/excel.md), then try again")
    return _("check that the workbook is open, not read-only and its sheets not protected")


class XlwingsWorkbook(WorkbookAdapter):
    """A workbook open in Excel, wrapped around an ``xw.Book``; see the module notes."""

    def __init__(self, book: xw.Book) -> None:
        self._book = book
        try:
            self._label = str(book.name)
        except Exception:
            self._label = _("the Excel workbook")

    scattered_writes = False
    """Each write is a call into Excel, another process: few large ones."""
    shares_rows = False
    """Rows read are copies of Excel's values, however asked for."""

    @property
    def book(self) -> xw.Book:
        """The wrapped xlwings book."""
        return self._book

    @property
    def label(self) -> str:
        """The workbook's name in Excel, e.g. ``stock.xlsm``."""
        return self._label

    @contextmanager
    def _excel(self, doing: str) -> Iterator[None]:
        """Every call into xlwings runs in here: whatever Excel, COM, appscript or
        xlwings raise becomes one :class:`WorkbookError` naming what was being done."""
        try:
            yield
        except XlstockError:
            raise
        except Exception as exc:
            raise WorkbookError(_("{label}: Excel could not {doing}: {detail}; {fix}",
                                  label=self._label, doing=doing, detail=_describe(exc),
                                  fix=_fix_for(exc))) from exc

    def sheet_names(self) -> list[str]:
        """Names of all sheets, very hidden ones included, in workbook order."""
        with self._excel(_("list its sheets")):
            return [str(sheet.name) for sheet in self._book.sheets]

    def _sheet(self, name: str) -> xw.Sheet:
        if name not in self.sheet_names():
            raise WorkbookError(_("{label} has no sheet named {sheet}; add it (or start from "
                                  "`xlstock new`)", label=self._label, sheet=repr(name)))
        with self._excel(_("find sheet {sheet}", sheet=name)):
            return self._book.sheets[name]

    def read_sheet(self, name: str, *, shared: bool = False) -> Grid:
        """Sheet ``name`` from A1 to its last used cell, trimmed of empty trailing rows
        and columns: two bulk reads (values, formulas), three if it shows an error.
        The rows are always the caller's own (``shared`` changes nothing)."""
        sheet = self._sheet(name)
        with self._excel(_("read sheet {sheet}", sheet=name)):
            used = sheet.used_range
            top, left = used.row, used.column
            rows, columns = used.shape
        self._refuse_far(name, top + rows - 1, left + columns - 1)
        with self._excel(_("read sheet {sheet}", sheet=name)):
            values = used.options(ndim=2).value
            formulas = _rows_2d(used.formula)
            maybe_error = any(
                v is None and f for vs, fs in zip(values, formulas, strict=True)
                for v, f in zip(vs, fs, strict=True)
            )
            named = used.options(ndim=2, err_to_str=True).value if maybe_error else None
        grid: Grid = [[None] * (left + columns - 1) for _ in range(top - 1)]
        for r, (value_row, formula_row) in enumerate(zip(values, formulas, strict=True)):
            named_row = named[r] if named else [None] * len(value_row)
            grid.append([None] * (left - 1) + [
                _merge(v, f, e)
                for v, f, e in zip(value_row, formula_row, named_row, strict=True)
            ])
        return _trim(grid)

    def _refuse_far(self, name: str, last_row: int, last_column: int) -> None:
        if last_row > MAX_ROWS:
            limit = _("{count:n} rows", count=MAX_ROWS)
        elif last_column > MAX_COLUMNS:
            limit = _("{count:n} columns (up to {column})", count=MAX_COLUMNS,
                      column=column_letter(MAX_COLUMNS))
        else:
            return
        raise WorkbookError(_(
            "{label}: sheet {sheet} is used as far as cell {far}, beyond the {limit} xlstock "
            "reads; delete the stray rows or columns past the table (select them, right-click, "
            "Delete) and try again", label=self._label, sheet=name,
            far=name + "!" + column_letter(last_column) + str(last_row), limit=limit))

    def write_block(self, name: str, top: int, left: int, rows: Sequence[Sequence[Any]]) -> None:
        """Write a rectangle of values in one range write; strings stay literal text and
        ``None`` clears a cell's value (its formatting stays)."""
        if not rows or not rows[0]:
            return
        width = len(rows[0])
        if any(len(row) != width for row in rows):
            raise ValueError("write_block needs rows of equal length")
        bottom, right = top + len(rows) - 1, left + width - 1
        if top < 1 or left < 1 or bottom > EXCEL_MAX_ROWS or right > EXCEL_MAX_COLUMNS:
            raise WorkbookError(_(
                "{label}: cannot write {where}: outside Excel's {rows:n} rows by {columns:n} "
                "columns", label=self._label,
                where=(f"{name}!{column_letter(max(left, 1))}{top}:"
                       f"{column_letter(min(right, EXCEL_MAX_COLUMNS))}{bottom}"),
                rows=EXCEL_MAX_ROWS, columns=EXCEL_MAX_COLUMNS))
        data = [[_to_excel(v) for v in row] for row in rows]
        sheet = self._sheet(name)
        where = f"{name}!{column_letter(left)}{top}:{column_letter(right)}{bottom}"
        with self._excel(_("write {where}", where=where)):
            sheet.range((top, left)).value = data

    def add_sheet(self, name: str, *, hidden: bool = False) -> None:
        """Add an empty sheet at the end (``hidden``: very hidden); the merchant stays
        on the sheet they were on."""
        with self._excel(_("add sheet {sheet}", sheet=name)):
            sheets = self._book.sheets
            active = sheets.active
            added = sheets.add(name, after=sheets[len(sheets) - 1])
            if hidden:
                _hide_very(added)
            # Sheet.activate() would also bring the Excel app to the front, which fails
            # with "Could not activate App" when another Excel instance is in front.
            active.impl.activate()

    def save(self) -> None:
        """Have Excel save the workbook where it is, in its own format."""
        with self._excel(_("save the workbook")):
            self._book.save()


def _hide_very(sheet: xw.Sheet) -> None:
    if sys.platform == "darwin" and sheet.book.app.engine.name == "excel":
        from appscript import k  # installed with xlwings on macOS

        sheet.api.visible.set(k.sheet_very_hidden)
    else:
        sheet.visible = XL_SHEET_VERY_HIDDEN  # type: ignore[assignment]
