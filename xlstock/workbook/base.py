"""The workbook adapter interface: what every engine (openpyxl, xlwings) provides.

Deliberately tiny (after httpx's two-method transport): read a sheet as a grid,
write a rectangular block, add a sheet, save. Everything about *which* cells mean
what lives once in :mod:`xlstock.workbook.layout`, on top of any adapter.

Values crossing this interface are plain Python values (``str``, ``int``, ``float``,
``bool``, ``datetime``, ``None``) plus :class:`xlstock.cells.Formula` and
:class:`xlstock.cells.CellError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

Grid = list[list[Any]]
Wanted = Callable[[list[Any]], Iterable[int]]
"""Given a sheet's row 1, the (1-based) columns a read wants below it."""

STOCK_SHEET = "Stock"
SETTINGS_SHEET = "Settings"
LOG_SHEET = "Log"
LOW_STOCK_SHEET = "Low stock"
HOWTO_SHEET = "How to"
STATE_SHEET = "_xlstock"

MAX_ROWS = 1_048_576
"""The last row of a sheet, Excel's own, the one limit for reading and for writing: a
header and :data:`xlstock.model.MAX_SKUS` rows below it. Sync refuses, before writing,
to grow sheet Stock past it, so that a workbook xlstock wrote is always one that every
command reads (and that Excel opens whole)."""
MAX_COLUMNS = 256
"""Columns a sheet may use before xlstock refuses to read it (a stray cell far right)."""
EVERY_COLUMN = frozenset(range(1, MAX_COLUMNS + 1))
"""Every column a read may hold, as a set of their numbers."""


def column_letter(index: int) -> str:
    """``1 -> 'A'``, ``28 -> 'AB'``."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


class WorkbookAdapter(Protocol):
    """One open workbook. Adapters raise :class:`xlstock.errors.WorkbookError` (with
    the sheet or cell named) for anything they cannot do."""

    shares_rows: bool
    """Whether ``read_sheet(..., shared=True)`` gives the adapter's own rows (which
    :meth:`write_block` keeps in step: a file, ``True``) or a copy (``False``)."""

    scattered_writes: bool
    """Whether many small :meth:`write_block` calls cost about what one large one does
    (a file patched in memory: ``True``). ``False`` where each call crosses to another
    process (live Excel): a column is then written as one block, first change to last."""

    @property
    def label(self) -> str:
        """How messages name this workbook (its file path, or its Excel name)."""
        ...

    def sheet_names(self) -> list[str]:
        """Names of all sheets, hidden ones included, in workbook order."""
        ...

    def read_sheet(self, name: str, *, shared: bool = False) -> Grid:
        """The used part of sheet ``name`` as rows of values, row 1 first, trimmed of
        empty trailing rows and columns (an empty sheet gives ``[]``). Formula cells
        come as ``Formula(text, cached)``; error values as ``CellError``. Raises
        ``WorkbookError`` if the sheet is missing or uses more than ``MAX_ROWS`` rows
        or ``MAX_COLUMNS`` columns (naming the far cell).

        The rows are the caller's own, unless ``shared``: then they may be the
        adapter's (a file adapter spares a copy of 100,000 rows), rows may be of
        unequal length, :meth:`write_block` keeps them in step, and the caller may only
        add ``None`` at their ends."""
        ...

    def write_block(self, name: str, top: int, left: int, rows: Sequence[Sequence[Any]]) -> None:
        """Write a rectangle of values with its top-left cell at (``top``, ``left``),
        both 1-based. ``str`` values are always stored as literal text, never as a
        formula (a product called ``=HYPERLINK(...)`` stays text). ``None`` clears a
        cell's value (its formatting stays). Other cells are not touched."""
        ...

    def add_sheet(self, name: str, *, hidden: bool = False) -> None:
        """Add an empty sheet at the end (``hidden``: very hidden, for tool state)."""
        ...

    def save(self) -> None:
        """Make the changes durable. File adapters save atomically (temporary file in
        the same folder, flushed, renamed over the original); on any failure the
        original is untouched and ``WorkbookError`` says why."""
        ...


@runtime_checkable
class ColumnReader(Protocol):
    """An adapter that can read some columns of a sheet (a file: the cells of the other
    columns are not decoded), and the others when asked. Sheet Stock is read this way
    where the adapter allows it (:func:`xlstock.workbook.layout.read_stock`)."""

    reads_columns: bool
    """Always ``True``: what tells such an adapter from the others."""

    def read_sheet(self, name: str, *, shared: bool = False,
                   columns: Wanted | None = None) -> Grid:
        """:meth:`WorkbookAdapter.read_sheet`; with ``columns``, only the cells of the
        columns it gives for row 1 are read below row 1 (the others are ``None``; the
        rows reach the last row holding a value in any column). Called again with
        other columns, it fills them in, in the rows a shared read gave; a write reads
        the columns it writes first."""
        ...
