"""The workbook adapter for an ``.xlsx``/``.xlsm`` file, through openpyxl (no Excel).

Opening a workbook, in order: take the per-workbook lock (two xlstock runs never
interleave on one file), read the file's bytes once, refuse hostile or foreign files
before any XML is parsed (:mod:`xlstock.workbook.safety`), load those same bytes with
openpyxl (formulas kept, VBA kept for ``.xlsm``), and refuse to go on if a save would
drop part of it (charts, pictures, pivot tables...), unless a registered keeper carries
that part over.

Saving is atomic: the workbook is written to a temporary file in the same folder,
flushed to disk, checked, then renamed over the original, and the folder entry flushed.
If any step fails, the temporary file is removed and the original is as it was.

Every foreign exception (openpyxl, zipfile, XML, OS) becomes a
:class:`~xlstock.errors.WorkbookError` in :func:`_translate`, and only there.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import errno
import io
import math
import os
import re
import stat
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.cell.rich_text import CellRichText
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import column_index_from_string
from openpyxl.workbook.properties import CalcProperties
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula
from openpyxl.worksheet.worksheet import Worksheet

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.errors import WorkbookError
from xlstock.workbook import safety
from xlstock.workbook.base import MAX_COLUMNS, MAX_ROWS, Grid
from xlstock.workbook.files import TEMP_SUFFIX
from xlstock.workbook.locking import (
    RunLock,
    excel_lock_owner,
    refuse_if_open_in_a_spreadsheet,
)

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_TEXT = 32_767
_EXACT_FLOAT = 2**53
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_MACRO_SUFFIXES = (".xlsm", ".xltm")
_TEMP_SUFFIX = TEMP_SUFFIX
_ILLEGAL_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters an XML 1.0 document, hence an .xlsx cell, cannot hold."""


def _locked_message(label: str, path: Path) -> str:
    owner = excel_lock_owner(path)
    who = f" (Excel says it is open by {owner})" if owner else ""
    return (
        f"{label}: the workbook is open in another program (Excel?){who} or read-only: "
        "close it and try again"
    )


@contextlib.contextmanager
def _translate(label: str, path: Path, doing: str) -> Iterator[None]:
    """The one place where foreign exceptions become :class:`WorkbookError`."""
    try:
        yield
    except WorkbookError:
        raise
    except PermissionError as exc:
        raise WorkbookError(_locked_message(label, path)) from exc
    except FileNotFoundError as exc:
        raise WorkbookError(f"{label}: no such file (while trying to {doing})") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise WorkbookError(
                f"{label}: the disk is full, so the workbook could not be saved (it is "
                "unchanged); free some space and try again"
            ) from exc
        raise WorkbookError(
            f"{label}: could not {doing}: {exc.strerror or exc}"
        ) from exc
    except MemoryError as exc:
        raise WorkbookError(
            f"{label} is too large to {doing} in this computer's memory"
        ) from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise WorkbookError(safety._damaged(label, exc)) from exc
    except Exception as exc:
        # openpyxl reports a malformed part with whatever Python error its parser met
        # (ValueError, KeyError, TypeError, AttributeError, IndexError, ParseError...).
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WorkbookError(
            f"{label}: could not {doing} ({detail}); if Excel opens the workbook, save a "
            "fresh copy with File > Save As and try again"
        ) from exc


def _to_datetime(value: Any) -> dt.datetime:
    """Date and time cells all come as ``datetime``, as Excel's own serial would."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, dt.time):
        return dt.datetime.combine(_EXCEL_EPOCH.date(), value)
    if isinstance(value, dt.timedelta):
        return _EXCEL_EPOCH + value
    raise TypeError(value)


def _plain(value: Any, data_type: str) -> Any:
    """An openpyxl cell value as xlstock's plain value (formulas handled by the caller)."""
    if value is None:
        return None
    if data_type == "e":
        return CellError(str(value))
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _EXACT_FLOAT:
            return int(value)
        return value
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, CellRichText):
        return str(value)
    if isinstance(value, (dt.date, dt.time, dt.timedelta)):
        return _to_datetime(value)
    return str(value)


def _formula_text(value: Any) -> str:
    if isinstance(value, ArrayFormula):
        return value.text or ""
    if isinstance(value, DataTableFormula):
        return "=TABLE()"
    return str(value)


class OpenpyxlWorkbook:
    """One workbook file, open through openpyxl; see the module's docstring.

    Use :meth:`open` (a context manager: leaving it releases the lock)::

        with OpenpyxlWorkbook.open("stock.xlsx") as book:
            grid = book.read_sheet("Stock")
            book.write_block("Stock", 2, 4, [[12], [7]])
            book.save()
    """

    def __init__(self, path: Path, label: str, workbook: Workbook, data: bytes,
                 package: safety.Package, *, writable: bool, lock: RunLock | None) -> None:
        self._path = path
        self._data = data
        self._label = label
        self._wb = workbook
        self._package = package
        self._writable = writable
        self._lock = lock
        self._cached: dict[str, dict[tuple[int, int], Any]] = {}
        self._closed = False

    # --- opening and closing ----------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, writable: bool = True) -> OpenpyxlWorkbook:
        """Open the workbook at ``path``.

        With ``writable`` (the default) the workbook is locked against other xlstock
        runs until :meth:`close`, temporary files a killed run left behind are removed,
        and a workbook holding content a save would lose is refused now, before any
        work is done. ``writable=False`` takes no lock, accepts such a workbook for
        reading, and refuses :meth:`save`."""
        label = os.fspath(path)
        real = Path(os.path.realpath(path))
        if writable:
            refuse_if_open_in_a_spreadsheet(real, label)
        lock = RunLock(real, label) if writable else None
        if lock is not None:
            with _translate(label, real, "lock the workbook"):
                lock.acquire()
        try:
            return cls._load(real, label, writable=writable, lock=lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @classmethod
    def _load(cls, real: Path, label: str, *, writable: bool,
              lock: RunLock | None) -> OpenpyxlWorkbook:
        if writable:
            _remove_stale_temp_files(real)
        data, package = safety.read_checked(real)
        keep_vba = real.suffix.lower() in _MACRO_SUFFIXES
        with _translate(label, real, "read the workbook"), warnings.catch_warnings(
            record=True
        ) as caught:
            warnings.simplefilter("always")
            workbook = load_workbook(io.BytesIO(data), keep_vba=keep_vba, rich_text=True,
                                     keep_links=True)
        book = cls(real, label, workbook, data, package, writable=writable, lock=lock)
        if writable:
            safety.load_builtin_keepers()
            lost = safety.lost_parts(io.BytesIO(data), package, keep_vba=keep_vba)
            lost.extend(
                safety.LostPart("(sheet contents)", str(w.message).rstrip("."))
                for w in caught
                if safety.warning_is_loss(str(w.message))
            )
            if lost:
                raise WorkbookError(safety.describe_losses(label, lost))
        return book

    def close(self) -> None:
        """Release the lock (the workbook is not saved). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._wb.vba_archive is not None:
            self._wb.vba_archive.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> OpenpyxlWorkbook:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- the WorkbookAdapter protocol ---------------------------------------------------

    @property
    def label(self) -> str:
        """The workbook's path as it was given to :meth:`open`."""
        return self._label

    @property
    def path(self) -> Path:
        """The workbook file (symbolic links resolved: the file a save replaces)."""
        return self._path

    def sheet_names(self) -> list[str]:
        """All sheet names, hidden ones and chart sheets included, in workbook order."""
        return list(self._wb.sheetnames)

    def _worksheet(self, name: str) -> Worksheet:
        self._check_open()
        if name not in self._wb.sheetnames:
            raise WorkbookError(f"{self._label} has no sheet named {name!r}")
        sheet = self._wb[name]
        if not isinstance(sheet, Worksheet):
            raise WorkbookError(
                f"{self._label}: sheet {name!r} is a chart sheet, not a sheet of cells"
            )
        return sheet

    def read_sheet(self, name: str) -> Grid:
        """The used part of sheet ``name`` (see :class:`~xlstock.workbook.base.WorkbookAdapter`).

        Works from the cells the file holds (a sparse map), so a lone value far away
        costs nothing before it is refused. Formula cells come as ``Formula(text,
        cached)`` with ``text`` starting ``=``; ``cached`` is read from the file's saved
        values (a second, read-only pass over this sheet, made only when it has
        formulas) or ``NO_CACHE``. Dates and times come as ``datetime``; whole floats as
        ``int``; rich text as its plain ``str``; empty text as ``None``."""
        sheet = self._worksheet(name)
        cells: dict[tuple[int, int], Cell] = sheet._cells  # the sparse map openpyxl keeps
        last_row = last_column = 0
        far_row: tuple[int, int] | None = None
        far_column: tuple[int, int] | None = None
        formulas: list[tuple[int, int]] = []
        for (row, column), cell in cells.items():
            if cell._value is None or cell._value == "":
                continue
            if row > last_row:
                last_row, far_row = row, (row, column)
            if column > last_column:
                last_column, far_column = column, (row, column)
            if cell.data_type == "f":
                formulas.append((row, column))
        if last_row > MAX_ROWS and far_row is not None:
            self._refuse_far(name, far_row, f"more than {MAX_ROWS:,} rows")
        if last_column > MAX_COLUMNS and far_column is not None:
            self._refuse_far(name, far_column, f"more than {MAX_COLUMNS} columns")
        cached = self._cached_values(name) if formulas else {}
        grid: Grid = [[None] * last_column for _ in range(last_row)]
        for (row, column), cell in cells.items():
            value = cell._value
            if value is None or value == "":
                continue
            if cell.data_type == "f":
                grid[row - 1][column - 1] = Formula(
                    _formula_text(value), cached.get((row, column), NO_CACHE)
                )
            else:
                grid[row - 1][column - 1] = _plain(value, cell.data_type)
        return grid

    def _refuse_far(self, name: str, where: tuple[int, int], why: str) -> None:
        cell = f"{get_column_letter(where[1])}{where[0]}"
        raise WorkbookError(
            f"{self._label}: sheet {name} has a value at {cell}, far outside the table "
            f"({why}); delete it and try again"
        )

    def _cached_values(self, name: str) -> dict[tuple[int, int], Any]:
        """The values Excel saved for sheet ``name``'s cells, from a read-only pass.
        A formula whose cell carries no saved value is absent."""
        if name in self._cached:
            return self._cached[name]
        values: dict[tuple[int, int], Any] = {}
        with _translate(self._label, self._path, f"read the saved values of sheet {name}"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            readonly = load_workbook(io.BytesIO(self._data), read_only=True, data_only=True,
                                     keep_links=False)
            try:
                if name in readonly.sheetnames:
                    sheet = readonly[name]
                    sheet.reset_dimensions()
                    for row in sheet.iter_rows():
                        for cell in row:
                            value = getattr(cell, "value", None)
                            if value is not None:
                                values[(cell.row, cell.column)] = _plain(value, cell.data_type)
            finally:
                readonly.close()
        self._cached[name] = values
        return values

    def write_block(self, name: str, top: int, left: int, rows: Sequence[Sequence[Any]]) -> None:
        """Write ``rows`` with its top-left cell at (``top``, ``left``), 1-based.

        ``str`` is always literal text (never a formula, whatever it starts with);
        ``None`` (and ``""``) clears a value and keeps the cell's formatting; ``Formula`` writes its
        text as a formula; ``CellError`` an error value. A cell created here takes its
        row's or column's style, as one typed into in Excel would. Text Excel cannot hold
        (control characters, over 32,767 characters) and cells inside merged ranges are
        refused with the cell named."""
        self._check_open()
        sheet = self._worksheet(name)
        if top < 1 or left < 1:
            raise ValueError(f"write_block at row {top}, column {left}: both start at 1")
        height = len(rows)
        width = max((len(r) for r in rows), default=0)
        if top + height - 1 > EXCEL_MAX_ROWS or left + width - 1 > EXCEL_MAX_COLUMNS:
            raise WorkbookError(
                f"{self._label}: sheet {name} cannot grow past Excel's last row or column "
                f"(writing {height} rows from row {top})"
            )
        cells: dict[tuple[int, int], Cell] = sheet._cells
        column_styles: dict[int, Any] | None = None
        for i, values in enumerate(rows):
            row = top + i
            for j, value in enumerate(values):
                column = left + j
                cell = cells.get((row, column))
                if value is None or value == "":
                    if cell is not None and not isinstance(cell, MergedCell):
                        cell.value = None
                    continue
                if cell is None:
                    if column_styles is None:
                        column_styles = _column_styles(sheet)
                    cell = sheet.cell(row=row, column=column)
                    _adopt_style(sheet, cell, column_styles)
                elif isinstance(cell, MergedCell):
                    raise WorkbookError(
                        f"{self._label}: sheet {name} cell {cell.coordinate} is inside merged "
                        "cells; unmerge them (Home > Merge & Center) and try again"
                    )
                self._set(name, cell, value)

    def _set(self, name: str, cell: Cell, value: Any) -> None:
        if isinstance(value, str):
            bad = _ILLEGAL_TEXT.search(value)
            if bad:
                raise WorkbookError(
                    f"{self._label}: sheet {name} cell {cell.coordinate}: the text holds a "
                    f"character an Excel cell cannot store (U+{ord(bad.group()):04X}); "
                    "remove it at its source"
                )
            if len(value) > EXCEL_MAX_TEXT:
                raise WorkbookError(
                    f"{self._label}: sheet {name} cell {cell.coordinate}: the text is "
                    f"{len(value):,} characters, over Excel's {EXCEL_MAX_TEXT:,} per cell"
                )
            cell._value = value
            cell.data_type = "s"
        elif isinstance(value, bool):
            cell.value = value
        elif isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise WorkbookError(
                    f"{self._label}: sheet {name} cell {cell.coordinate}: {value} is not a "
                    "number Excel can store"
                )
            cell.value = value
        elif isinstance(value, dt.datetime) and value.tzinfo is not None:
            cell.value = value.astimezone().replace(tzinfo=None)  # Excel has no time zones
        elif isinstance(value, dt.time) and value.tzinfo is not None:
            cell.value = value.replace(tzinfo=None)
        elif isinstance(value, (dt.datetime, dt.date, dt.time)):
            cell.value = value
        elif isinstance(value, Formula):
            cell.value = value.text if value.text.startswith("=") else "=" + value.text
            cell.data_type = "f"
        elif isinstance(value, CellError):
            cell._value = value.code
            cell.data_type = "e"
        else:
            raise TypeError(
                f"cannot write a {type(value).__name__} to sheet {name} cell "
                f"{cell.coordinate}: {value!r}"
            )

    def add_sheet(self, name: str, *, hidden: bool = False) -> None:
        """Add an empty sheet at the end; ``hidden`` makes it very hidden (not listed
        under Unhide in Excel). Refuses a name the workbook already has (Excel compares
        sheet names ignoring case)."""
        self._check_open()
        if any(existing.casefold() == name.casefold() for existing in self._wb.sheetnames):
            raise WorkbookError(f"{self._label} already has a sheet named {name!r}")
        try:
            sheet = self._wb.create_sheet(name)
        except ValueError as exc:
            raise WorkbookError(f"{self._label}: {name!r} cannot name a sheet ({exc})") from exc
        if hidden:
            sheet.sheet_state = "veryHidden"

    def save(self) -> None:
        """Save atomically over the original (see the module's docstring)."""
        self._check_open()
        if not self._writable:
            raise WorkbookError(f"{self._label} was opened for reading only; it was not saved")
        if self._wb.calculation is None:
            self._wb.calculation = CalcProperties()
        # openpyxl writes formulas without their computed values: Excel must recompute.
        self._wb.calculation.fullCalcOnLoad = True
        temp = self._path.with_name(f".{self._path.name}.{uuid.uuid4().hex[:8]}{_TEMP_SUFFIX}")
        try:
            with _translate(self._label, self._path, "save the workbook"):
                _write_temp(self._wb, temp)
                keepers = safety.keepers_for(self._package.parts)
                for keeper in keepers:
                    keeper.keep(self._path, temp)
                if keepers:
                    _fsync_file(temp)
                _check_saved(temp, self._label)
                _copy_mode(self._path, temp)
                os.replace(temp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(self._path.parent)

    def _check_open(self) -> None:
        if self._closed:
            raise WorkbookError(f"{self._label} was closed; open it again")


def _column_styles(sheet: Worksheet) -> dict[int, Any]:
    """Column index -> the column's style array, for columns formatted as a whole."""
    styles: dict[int, Any] = {}
    for key, dim in sheet.column_dimensions.items():
        if not dim.has_style:
            continue
        first = dim.min or column_index_from_string(key)
        last = dim.max or first
        for column in range(first, min(last, EXCEL_MAX_COLUMNS) + 1):
            styles[column] = dim._style
    return styles


def _adopt_style(sheet: Worksheet, cell: Cell, column_styles: dict[int, Any]) -> None:
    row_dim = sheet.row_dimensions.get(cell.row)
    if row_dim is not None and row_dim.has_style:
        cell._style = copy.copy(row_dim._style)
    elif cell.column in column_styles:
        cell._style = copy.copy(column_styles[cell.column])


def _write_temp(workbook: Workbook, temp: Path) -> None:
    """Write the workbook to a new file ``temp`` and flush it to the disk."""
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as fh:
        workbook.save(fh)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_saved(temp: Path, label: str) -> None:
    """The saved file must at least be a readable package with a workbook in it."""
    with zipfile.ZipFile(temp) as zf:
        names = set(zf.namelist())
    if safety.CONTENT_TYPES_PART not in names or not any(
        n.startswith("xl/workbook") for n in names
    ):
        raise WorkbookError(f"{label}: the saved copy came out incomplete; the original is kept")


def _copy_mode(original: Path, temp: Path) -> None:
    with contextlib.suppress(OSError):
        os.chmod(temp, stat.S_IMODE(original.stat().st_mode))


def _fsync_directory(folder: Path) -> None:
    """Make the rename durable where the OS allows it (not on Windows); a failure here
    cannot undo the save, which has happened, so it is ignored."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale_temp_files(path: Path) -> None:
    """Temporary files of this workbook that a killed run left (we hold the lock, so no
    live run owns one)."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if entry.name.startswith(prefix) and entry.name.endswith(_TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
