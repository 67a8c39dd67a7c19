"""The values of large sheets, kept between commands in the user's cache folder.

Reading sheet Stock of 100,000 rows is 0.7 s of pattern matching in Python, paid by
every command. Most commands read what the command before them saved (Sync after
yesterday's Publish, Publish after Preview), so the file adapter keeps, for each sheet
part over :data:`MIN_PART_BYTES`, the values a read gives, as JSON, under a key that is
a SHA-256 of everything a read depends on: the sheet part's bytes as stored in the zip,
those of the shared strings, styles and workbook parts (the date epoch), this module's
format and the reader's limits. A workbook changed in any way by any other program
gives another key, and the values are read from the file as always. Nothing is kept
beside the workbook or inside it.

What is kept is a read's result: values read from the file, or, after a save, the
values the file adapter knows the saved part holds (it keeps them only when it knows
them exactly: see ``XlsxFile.save``); for a read of some columns, which ones (a command
that needs another reads it from the file). A kept file that is unreadable, of another format
or of a shape no read could give is ignored (read from the workbook instead), so a
damaged cache costs time, never a value.

Each column is kept in a file of its own (``KEY.cN.values``: its values from row 2
down), beside a small head (``KEY.json``: row 1, the merged cells, each column's last
row), so that a command decodes only the columns it asks for: Preview and Publish never
the product names, 120 MB at 1,000,000 rows. A column of few distinct texts (Status,
Variant) is kept as a table of them and each row's number in it: its rows share one
``str`` a text where JSON makes one a row (50 MB a column at 1,000,000 rows). A column
not decoded at first is given by :func:`load_columns` when asked for.

A save that patched k cells of a part whose values came from the cache keeps only those
cells (:func:`store_delta`, ``KEY.delta.json``), over the entry they were patched from:
O(k) to write, where the whole grid of 100,000 rows was 40 ms of JSON (issue 22). A
load applies such a chain of deltas to its whole entry; after :data:`MAX_CHAIN` deltas,
or a delta as large as a quarter of the rows, the grid is kept whole again. A delta
whose entries are gone or damaged is ignored like any other damaged file.

The folder: ``XLSTOCK_CACHE_DIR`` (empty or ``off``: no cache), else ``sheets`` in the
user's cache folder as ``platformdirs`` finds it (``$XDG_CACHE_HOME/xlstock/sheets``,
``~/.cache/...``; ``%LOCALAPPDATA%\\xlstock\\Cache\\sheets`` on Windows;
``~/Library/Caches/xlstock/sheets`` on macOS). At most :data:`KEEP` files are kept, the
oldest removed first. Hand-written: no maintained library caches the values of a
worksheet part.

The cache trusts only what its user could have written: a file is used only if the
current user owns it and its folder, it is no symbolic link, and the folder is not
writable by group or others (on POSIX; on Windows the folder is the user's own by its
access rights). Anything else is ignored, and nothing is written there: a file planted
by another user, or a link to one, never stands for a sheet's values.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import operator
import os
import re
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import platformdirs

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.workbook.base import EVERY_COLUMN, MAX_COLUMNS, MAX_ROWS

FORMAT = 4
"""Bumped whenever the reader could give another value for the same bytes, or the files
change form (2: a read of some columns keeps which, and the last row the others hold a
value in; 3: an entry may be a delta over another; 4: each column in a file of its
own)."""
MIN_PART_BYTES = 1 << 20
"""Sheet parts smaller than this (about 4,000 rows) are read every time: fast anyway."""
KEEP = 8
"""Whole entries kept; the oldest beyond this are removed when one is written (and the
deltas beyond ``KEEP * MAX_CHAIN``)."""
MAX_CHAIN = 4
"""Deltas at most between a load and the whole entry under them."""
_DELTA = ".delta.json"

log = logging.getLogger(__name__)
_PLAIN = frozenset({str, int, float, bool, type(None)})


def folder() -> Path | None:
    """The cache folder, or ``None`` when the cache is off."""
    chosen = os.environ.get("XLSTOCK_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "no") else Path(chosen)
    return platformdirs.user_cache_path("xlstock", appauthor=False) / "sheets"


def _own_folder(where: Path) -> bool:
    """Whether ``where`` is a folder of the current user's that no one else can write."""
    try:
        status = os.stat(where)
    except OSError:
        return False
    if not stat.S_ISDIR(status.st_mode):
        return False
    if not hasattr(os, "getuid"):  # Windows: the user's cache folder by its access rights
        return True
    return status.st_uid == os.getuid() and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read_own_file(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of the current user's (never through
    a symbolic link), else ``None``."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    if not hasattr(os, "O_NOFOLLOW") and path.is_symlink():
        return None
    try:
        fd = os.open(path, flags)
    except OSError:  # missing, or a symbolic link (ELOOP)
        return None
    with os.fdopen(fd, "rb") as fh:
        status = os.fstat(fh.fileno())
        if not stat.S_ISREG(status.st_mode):
            return None
        if hasattr(os, "getuid") and status.st_uid != os.getuid():
            return None
        return fh.read()


def key_of(parts: Iterable[bytes]) -> str:
    """The key of a read that depends on ``parts`` (each as stored: a part's zip entry
    header fields and its compressed bytes, or ``b""`` for a part the workbook lacks)."""
    digest = hashlib.sha256(f"xlstock sheet values {FORMAT} {MAX_ROWS} {MAX_COLUMNS}".encode())
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass
class Kept:
    """What a read kept: its rows of values, the merged-over cells, the columns the rows
    hold from row 2 down (``None``: all; row 1 is always whole) and the last row where a
    column they lack holds a value (0: none)."""

    grid: list[list[Any]]
    merged: set[tuple[int, int]]
    columns: frozenset[int] | None = None
    unread_last: int = 0
    usual: bool = False
    """Every cell and row of the part is in the usual form (a column read later is
    found by its cells' references without counting them again)."""
    chain: tuple[str, ...] = ()
    """The keys of the files it was made from: its whole entry first, then each delta
    over it (the last is the key loaded)."""
    held: frozenset[int] | None = None
    """The columns the entry holds from row 2 down (``None``: all): those of
    :attr:`columns`, and :attr:`more`."""
    more: frozenset[int] = frozenset()
    """Columns the entry holds values of that the rows lack (not asked for):
    :func:`load_columns` gives them, without reading the workbook."""
    outside_last: int = 0
    """The last row where a column the entry does not hold has a value (0: none)."""


def load(key: str, columns: Callable[[list[Any]], Iterable[int]] | None = None
         ) -> Kept | None:
    """What was kept under ``key`` (a whole entry, or deltas over one), or ``None``;
    given row 1's values, ``columns`` says which columns to decode (``None``: all):
    the others' values stay in their files until :func:`load_columns` asks."""
    where = folder()
    if where is None or not _own_folder(where):
        return None
    heads = _chain(where, key)
    if heads is None:
        return None
    top = heads[-1]
    header = _header(heads)
    lasts = top.lasts
    try:
        wanted = None if columns is None else frozenset(
            c for c in columns(list(header)) if 1 <= c <= MAX_COLUMNS)
    except (TypeError, ValueError):
        return None
    decoded = sorted(lasts if wanted is None else wanted & lasts.keys())
    found = _columns(where, heads, decoded)
    if found is None:
        return None
    more = frozenset(lasts.keys() - found.keys())
    held = top.held
    unread_last = max([top.unread_last, *(lasts[c] for c in more)])
    grid = _grid_of(header, found)
    del found
    return Kept(grid, top.merged, None if held is None and not more else
                (held if held is not None else EVERY_COLUMN) - more,
                unread_last, top.usual, tuple(h.key for h in heads), held, more,
                top.unread_last)


def load_columns(chain: Sequence[str], columns: Iterable[int]) -> dict[int, list[Any]] | None:
    """The values of ``columns`` (from row 2 down, each as long as its last value) in
    the entry that ``chain`` makes (see :attr:`Kept.chain`); ``None`` when it is no
    longer there whole (pruned, damaged): read them from the workbook instead."""
    chained = _heads_of(chain)
    return None if chained is None else _columns_of(*chained, columns)


def _heads_of(chain: Sequence[str]) -> tuple[Path, list[_Head]] | None:
    """The cache folder and the heads of the entry ``chain`` makes, if it is still
    that chain."""
    where = folder()
    if not chain or where is None or not _own_folder(where):
        return None
    heads = _chain(where, chain[-1])
    if heads is None or tuple(h.key for h in heads) != tuple(chain):
        return None
    return where, heads


def _columns_of(where: Path, heads: Sequence[_Head], columns: Iterable[int]
                ) -> dict[int, list[Any]] | None:
    """:func:`load_columns` over heads already read."""
    wanted = sorted(set(columns))
    found = _columns(where, heads, [c for c in wanted if c in heads[-1].lasts])
    if found is None:
        return None
    return {c: found.get(c, []) for c in wanted}


@dataclass
class _Head:
    """The small file of an entry: what it holds, and for a delta, over what."""

    key: str
    merged: set[tuple[int, int]]
    held: frozenset[int] | None
    unread_last: int
    usual: bool
    lasts: dict[int, int]
    """The last row holding a value, by column, of the entry (the delta laid over its
    base)."""
    files: frozenset[int]
    """The columns whose values have a file of this key's (``KEY.cN.values``)."""
    header: list[Any] | None = None
    """Row 1 (a whole entry's)."""
    base: str | None = None
    cells: list[tuple[int, int, Any]] = field(default_factory=list)
    """A delta's cells over its base."""


def _chain(where: Path, key: str) -> list[_Head] | None:
    """The heads from the whole entry under ``key`` (through at most
    :data:`MAX_CHAIN` deltas) up to ``key``'s, or ``None`` (missing, damaged, of
    another format, or a delta whose columns do not follow from its base's)."""
    heads: list[_Head] = []
    while True:
        found = _document(where, key, MAX_CHAIN - len(heads))
        if found is None:
            return None
        document, delta = found
        try:
            head = _checked_head(key, document, delta)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            log.debug("sheet cache %s ignored: %s", key, exc)
            return None
        heads.append(head)
        if head.base is None:
            break
        key = head.base
    heads.reverse()
    for under, over in itertools.pairwise(heads):
        if over.files and under.held is None or over.held != (
                None if under.held is None else under.held | over.files):
            return None
    return heads


def _checked_head(key: str, document: dict[str, Any], delta: bool) -> _Head:
    lasts = {_checked_count(c, MAX_COLUMNS): _checked_count(r, MAX_ROWS)
             for c, r in document["lasts"]}
    head = _Head(key, {(_checked_count(r, MAX_ROWS), _checked_count(c, MAX_COLUMNS))
                       for r, c in document["merged"]},
                 _checked_columns(document["columns"]),
                 _checked_count(document["unread_last"], MAX_ROWS),
                 document["usual"] is True, lasts,
                 frozenset(_checked_count(c, MAX_COLUMNS) for c in document["files"]))
    if not head.files <= lasts.keys() or 0 in lasts or 0 in head.files:
        raise ValueError("not columns")
    if delta:
        head.base = document["base"]
        if type(head.base) is not str or not _KEY.fullmatch(head.base) or head.base == key:
            raise ValueError("not a base")
        head.cells = _checked_cells(document["cells"])
    else:
        header = document["header"]
        if type(header) is not list or len(header) > MAX_COLUMNS:
            raise ValueError("not a row")
        head.header = _checked_values(header)
        if head.files != lasts.keys():
            raise ValueError("a column without its file")
    return head


def _header(heads: Sequence[_Head]) -> list[Any]:
    """Row 1 of the entry ``heads`` make: the whole entry's, each delta's cells set."""
    header = list(heads[0].header or ())
    cells = [(1, c, v) for h in heads[1:] for r, c, v in h.cells if r == 1]
    if cells:
        place([header], cells)
        _trimmed_list(header)
    return header


def _columns(where: Path, heads: Sequence[_Head], columns: Iterable[int]
             ) -> dict[int, list[Any]] | None:
    """The values of each of ``columns`` that holds one, from row 2 down: from the file
    of the newest entry in ``heads`` that has one, with the cells of the deltas after
    it set; ``None`` when a file is missing or damaged."""
    found: dict[int, list[Any]] = {}
    for column in columns:
        source = max((i for i, h in enumerate(heads) if column in h.files), default=None)
        if source is None:
            values: list[Any] = []
        else:
            read = _column_file(where, heads[source].key, column)
            if read is None:
                return None
            values = read
        for head in heads[1 if source is None else source + 1:]:  # the deltas after it
            for row, col, value in head.cells:
                if col == column and row >= 2:
                    if row - 1 > len(values):
                        values.extend([None] * (row - 1 - len(values)))
                    values[row - 2] = value
        values = _trimmed_list(values)
        if len(values) + 1 != heads[-1].lasts.get(column, 1):
            log.debug("sheet cache %s ignored: column %d of another length",
                      heads[-1].key, column)
            return None
        if values:
            found[column] = values
    return found


def _column_file(where: Path, key: str, column: int) -> list[Any] | None:
    """The values kept in ``KEY.cN.values``, or ``None``."""
    name = f"{key}{_COLUMN.format(column)}"
    try:
        data = _read_own_file(where / name)
        if data is None:
            return None
        text = data.decode("ascii")
        del data
        document = json.loads(text)
        del text
        if type(document) is not dict or document.get("format") != FORMAT or \
                document.get("key") != key or document.get("column") != column:
            return None
        return _values_of(document)
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
        log.debug("sheet cache %s ignored: %s", name, exc)
        return None


def _values_of(document: dict[str, Any]) -> list[Any] | None:
    """A column file's values: as kept, or made from a table and each row's number."""
    if "table" in document:
        table, codes = _checked_values(document["table"]), document["codes"]
        if type(codes) is not list or len(codes) >= MAX_ROWS or (
                codes and (set(map(type, codes)) != {int} or min(codes) < 0
                           or max(codes) >= len(table))):
            return None
        return list(map(table.__getitem__, codes))
    values = document["values"]
    if type(values) is not list or len(values) >= MAX_ROWS:
        return None
    return _checked_values(values)


def _grid_of(header: list[Any], columns: Mapping[int, list[Any]]) -> list[list[Any]]:
    """Rows from row 1's values and the columns' (row 2 down): each as wide as the
    widest column given, ``None`` where a column has no value (or was not given)."""
    width = max(columns, default=0)
    if not width:
        return [header] if header else []
    lines = [columns.get(c, ()) for c in range(1, width + 1)]
    return [header, *map(list, itertools.zip_longest(*lines))]


_KEY = re.compile(r"[0-9a-f]{64}")
_COLUMN = ".c{}.values"
"""A column's values, in a file of their own (a command decodes the columns it needs)."""


def _document(where: Path, key: str, deltas: int) -> tuple[dict[str, Any], bool] | None:
    """The decoded head of the entry under ``key``, whole or (``True``) a delta, if it
    is one of this format for this key; else ``None``."""
    delta = False
    try:
        data = _read_own_file(where / f"{key}.json")
        if data is None and deltas > 0:
            delta, data = True, _read_own_file(where / f"{key}{_DELTA}")
    except OSError:
        return None
    if data is None:
        log.debug("sheet cache %s ignored: missing, or not a file of this user's", key)
        return None
    try:
        document = json.loads(data.decode("ascii"))
    except (ValueError, RecursionError) as exc:
        log.debug("sheet cache %s ignored: %s", key, exc)
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT or \
            document.get("key") != key:
        return None
    return document, delta


def _checked_cells(cells: Any) -> list[tuple[int, int, Any]]:
    """A delta's cells, ``[[row, column, value], ...]``, as a save could write them."""
    if type(cells) is not list:
        raise ValueError("not a list of cells")
    checked = []
    for cell in cells:
        if type(cell) is not list or len(cell) != 3:
            raise ValueError("not a cell")
        row, column, value = cell
        if type(value) not in _PLAIN:
            if type(value) is not dict:
                raise ValueError("a value of another kind")
            value = _decoded(value)
        row, column = _checked_count(row, MAX_ROWS), _checked_count(column, MAX_COLUMNS)
        if row < 1 or column < 1:
            raise ValueError("not a cell")
        checked.append((row, column, value))
    return checked


def _checked_values(values: Any) -> list[Any]:
    """``values`` if each is a value a read could give, the special ones made again."""
    if type(values) is not list:
        raise ValueError("not a list of values")
    kinds = set(map(type, values))
    if not kinds <= _PLAIN | {dict}:
        raise ValueError("a value of another kind")
    return [_decoded(v) for v in values] if dict in kinds else values


def place(grid: list[list[Any]], cells: Iterable[tuple[int, int, Any]]) -> None:
    """Put each ``(row, column, value)`` (from 1) in ``grid``, in place: rows added
    empty below it, a row widened with ``None`` up to the column, as needed. The one
    loop that fills a grid with cells read or kept apart from it (the columns a file
    adapter reads late, or takes from the cache)."""
    for number, column, value in cells:
        if number > len(grid):
            grid.extend([] for _ in range(number - len(grid)))
        line = grid[number - 1]
        if column > len(line):
            line.extend([None] * (column - len(line)))
        line[column - 1] = value


def add_columns(grid: list[list[Any]], added: Mapping[int, Sequence[Any]]) -> None:
    """Put the values of ``added`` columns (row 2 down) into ``grid``; a blank is no
    cell. C iterators alone: a column is a million values at most."""
    for column, values in added.items():
        cells = zip(itertools.count(2), itertools.repeat(column), values)
        place(grid, itertools.compress(cells, map(operator.is_not, values,
                                                  itertools.repeat(None))))


def store(key: str, grid: Sequence[Sequence[Any]], merged: Iterable[tuple[int, int]], *,
          columns: Iterable[int] | None = None, unread_last: int = 0,
          usual: bool = False, chain: Sequence[str] = (), more: Iterable[int] = ()
          ) -> Stored | None:
    """Keep ``grid`` (rows of values as a read gives them; of ``columns`` alone from
    row 2 down, when given, ``unread_last`` and ``usual`` as in :class:`Kept`) under
    ``key``, each column in a file of its own; the ``more`` columns (that the grid
    lacks) copied from the entry ``chain`` makes, one at a time (the cache keeps what
    it had; a column it can no longer give is left out, and ``unread_last`` counts
    it). Returns what the entry holds; ``None`` when it could not be written (only
    logged: the cache is a speed-up, never needed)."""
    if folder() is None:
        return None
    held = None if columns is None else set(columns)
    lasts = _store_columns(key, grid, held)
    if lasts is None or not _copy_columns(key, chain, sorted(set(more)), held, lasts):
        return None
    header = _trimmed_list(list(grid[0])) if grid else []
    head = _head(key, merged, held, unread_last, usual, lasts, lasts)
    head["header"] = [_encoded(v) for v in header]
    if not _write(key, ".json", head):
        return None
    return Stored(None if held is None else frozenset(held), lasts)


def _store_columns(key: str, grid: Sequence[Sequence[Any]], held: set[int] | None
                   ) -> dict[int, int] | None:
    """Write each of the grid's columns (of ``held``, when given) that has a value in
    a file; the last row of each, or ``None`` when one could not be written."""
    lasts: dict[int, int] = {}
    for column in range(1, max(map(len, grid), default=0) + 1):
        if held is not None and column not in held:
            continue
        values = _trimmed_list(_column(grid, column))
        if values:
            if not _write_column(key, column, values):
                return None
            lasts[column] = len(values) + 1
        del values
    return lasts


def _copy_columns(key: str, chain: Sequence[str], more: Sequence[int],
                  held: set[int] | None, lasts: dict[int, int]) -> bool:
    """Write the ``more`` columns of the entry ``chain`` makes under ``key``, one at a
    time (its heads read once); a column it no longer gives is left out of ``held``.
    ``False`` when one could not be written."""
    chained = _heads_of(chain) if more else None
    for column in more:
        copied = None if chained is None else _columns_of(*chained, [column])
        if copied is None:
            log.debug("sheet cache: column %d of %s no longer kept", column, chain[-1:])
            if held is not None:
                held.discard(column)
            continue
        values = copied.pop(column, [])
        del copied
        if values:
            if not _write_column(key, column, values):
                return False
            lasts[column] = len(values) + 1
        if held is not None:
            held.add(column)
    return True


class Stored(NamedTuple):
    """What an entry written holds: its columns from row 2 down (``None``: all), and
    the last row holding a value, by column."""

    held: frozenset[int] | None
    lasts: dict[int, int]


def store_delta(key: str, chain: Sequence[str], cells: Iterable[tuple[int, int, Any]],
                merged: Iterable[tuple[int, int]], *, columns: Iterable[int] | None = None,
                grid: Sequence[Sequence[Any]] = (), added: Iterable[int] = (),
                unread_last: int = 0, usual: bool = False) -> Stored | None:
    """Keep under ``key`` the values of the entry ``chain[-1]`` (loaded through
    ``chain``, see :attr:`Kept.chain`) with the ``added``
    columns of ``grid`` (those read since, each in a file) and ``cells`` (row, column,
    value, as ``grid`` now holds them) set; the rest as in :func:`store` (``columns``:
    the entry's and the added ones). Returns what the entry holds; ``None`` when the
    chain is already :data:`MAX_CHAIN` deltas long (keep the grid whole instead) or
    the delta could not be written. The files of the chain are marked as just used, so
    that pruning keeps them while the delta is kept."""
    if not chain or len(chain) > MAX_CHAIN or key in chain:  # never over itself
        return None
    where = folder()
    lasts = None if where is None else _lasts_of(where, chain[-1])
    if where is None or lasts is None:
        return None
    for older in chain:  # before the write prunes
        for path in where.glob(f"{older}*"):
            with contextlib.suppress(OSError):
                os.utime(path)
    files = _store_added(key, grid, sorted(set(added)), lasts)
    if files is None:
        return None
    listed = _listed_cells(cells, grid, lasts)
    lasts = {c: r for c, r in lasts.items() if r > 1}
    head = _head(key, merged, columns, unread_last, usual, lasts, files)
    head["base"], head["cells"] = chain[-1], listed
    if not _write(key, _DELTA, head):
        return None
    return Stored(None if columns is None else frozenset(columns), lasts)


def _lasts_of(where: Path, key: str) -> dict[int, int] | None:
    """The last row of each column of the entry under ``key`` (its head alone), or
    ``None`` when it is not there whole."""
    found = _document(where, key, 1)
    try:
        return None if found is None else _checked_head(key, *found).lasts
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


def _store_added(key: str, grid: Sequence[Sequence[Any]], added: Sequence[int],
                 lasts: dict[int, int]) -> set[int] | None:
    """Write the ``added`` columns of ``grid`` in files of ``key``'s, their last rows
    set in ``lasts``: the columns with a file, or ``None`` when one could not be written."""
    files: set[int] = set()
    for column in added:
        values = _trimmed_list(_column(grid, column))
        lasts.pop(column, None)
        if values:
            if not _write_column(key, column, values):
                return None
            lasts[column] = len(values) + 1
            files.add(column)
    return files


def _listed_cells(cells: Iterable[tuple[int, int, Any]], grid: Sequence[Sequence[Any]],
                  lasts: dict[int, int]) -> list[list[Any]]:
    """The cells as a delta lists them, each column's last row in ``lasts`` moved by
    them (a clear of the last value found in ``grid``)."""
    listed = []
    for row, column, value in cells:
        listed.append([row, column, _encoded(value)])
        if value is not None and row > lasts.get(column, 0):
            lasts[column] = row
        elif value is None and row == lasts.get(column, 0):
            lasts[column] = _last_of(grid, column, row)
    return listed


def _last_of(grid: Sequence[Sequence[Any]], column: int, below: int) -> int:
    """The last row at or above ``below`` where ``grid`` holds a value in ``column``
    (1 when none from row 2 down: no values)."""
    for row in range(min(below, len(grid)), 1, -1):
        line = grid[row - 1]
        if len(line) >= column and line[column - 1] is not None:
            return row
    return 1


def _write_column(key: str, column: int, values: list[Any]) -> bool:
    """Write a column's values (row 2 down) as the file ``KEY.cN.values``: as they
    are, or, for a column of few distinct texts (Status, Variant), as a table of them
    and each row's number in it (the rows loaded share one ``str`` a text: at
    1,000,000 rows 50 MB less a column)."""
    head: dict[str, Any] = {"format": FORMAT, "key": key, "column": column}
    table = _table(values)
    if table is not None:
        index = {v: i for i, v in enumerate(table)}
        codes = list(map(index.__getitem__, values))
        head["table"] = table
        return _write(key, _COLUMN.format(column), head,
                      lambda out: _write_list(out, "codes", codes), prune=False)
    return _write(key, _COLUMN.format(column), head,
                  lambda out: _write_list(out, "values", values), prune=False)


_TABLE_MAX = 256
"""Distinct texts at most in a column kept as a table (a row's number in it is a small
``int``, which Python never makes twice)."""


def _table(values: list[Any]) -> list[Any] | None:
    """The distinct values of a column of texts and blanks, ``None`` first, if they are
    few; else ``None``."""
    if not values or not set(map(type, values)) <= {str, type(None)}:
        return None
    distinct = set(values)
    if len(distinct) > _TABLE_MAX:
        return None
    distinct.discard(None)
    return [None, *sorted(distinct)]


def _write_list(out: TextIO, name: str, values: list[Any]) -> None:
    """``"name":[values]``, in blocks: the text of 1,000,000 names at once would be
    tens of MB more at the command's peak."""
    out.write(f'"{name}":[')
    step = _BLOCK * 10
    for start in range(0, len(values), step):
        out.write(("," if start else "") + _block_text([values[start:start + step]])[1:-1])
    out.write("]")


def _trimmed_list(values: list[Any]) -> list[Any]:
    """``values`` without the ``None`` at its end (found by C iterators)."""
    last = next(itertools.compress(range(len(values) - 1, -1, -1),
                                   map(operator.is_not, reversed(values),
                                       itertools.repeat(None))), -1)
    if last + 1 < len(values):
        del values[last + 1:]
    return values


def _column(grid: Sequence[Sequence[Any]], column: int) -> list[Any]:
    """The values of ``column`` from row 2 down (one C loop when every row reaches it,
    as the rows of sheet Stock do)."""
    rows = itertools.islice(grid, 1, None)
    try:
        return list(map(operator.itemgetter(column - 1), rows))
    except IndexError:
        return [row[column - 1] if len(row) >= column else None
                for row in itertools.islice(grid, 1, None)]


def _head(key: str, merged: Iterable[tuple[int, int]], columns: Iterable[int] | None,
          unread_last: int, usual: bool, lasts: Mapping[int, int],
          files: Iterable[int]) -> dict[str, Any]:
    return {"format": FORMAT, "key": key, "merged": sorted(merged),
            "columns": None if columns is None else sorted(columns),
            "unread_last": unread_last, "usual": usual, "lasts": sorted(lasts.items()),
            "files": sorted(files)}


def _write(key: str, suffix: str, head: dict[str, Any],
           write: Callable[[TextIO], None] | None = None, *, prune: bool = True) -> bool:
    """Write ``head`` and what ``write`` adds to it as the file ``key + suffix``,
    atomically, readable by its owner alone; ``False`` (logged) when it could not be.
    ``prune``: then the oldest entries go (see :func:`_prune`)."""
    where = folder()
    if where is None:
        return False
    temp = where / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _own_folder(where):
            log.debug("sheet cache not kept: %s is not this user's own folder", where)
            return False
        with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                  encoding="ascii") as out:  # the merchant's stock: for their eyes only
            text = json.dumps(head, separators=(",", ":"))
            if write is None:
                out.write(text)
            else:
                out.write(text[:-1] + ",")
                write(out)
                out.write("}")
        os.replace(temp, where / f"{key}{suffix}")
        if prune:
            _prune(where)
        return True
    except (OSError, TypeError, ValueError) as exc:  # a value no read gives, a full disk
        log.debug("sheet cache %s not written: %s", key, exc)
        with contextlib.suppress(OSError):
            temp.unlink()
        return False
    except BaseException:  # Ctrl-C while writing: no half-written file stays behind
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


_BLOCK = 5_000


def _block_text(rows: Sequence[Sequence[Any]]) -> str:
    """The rows as JSON, without the brackets of their list."""
    try:
        text = json.dumps(rows, separators=(",", ":"))
    except TypeError:  # a formula, an error value or a date among the values
        text = json.dumps([[_encoded(v) for v in row] if _special(row) else row
                           for row in rows], separators=(",", ":"))
    return text[1:-1]


def _prune(where: Path) -> None:
    """At most :data:`KEEP` whole entries and ``KEEP * MAX_CHAIN`` deltas, the newest,
    and no delta older than every whole entry kept (its own was touched when it was
    written: it is gone); the columns' files of an entry gone go with it; a temporary
    file a killed run left behind (over an hour old) goes too."""
    files = sorted(((p.stat().st_mtime, p) for p in where.glob("*.json")), reverse=True)
    deltas = [(mtime, p) for mtime, p in files if p.name.endswith(_DELTA)]
    wholes = [(mtime, p) for mtime, p in files if not p.name.endswith(_DELTA)]
    oldest = wholes[KEEP - 1][0] if len(wholes) > KEEP else 0.0
    gone = [p for _mtime, p in wholes[KEEP:]] + [
        p for number, (mtime, p) in enumerate(deltas)
        if number >= KEEP * MAX_CHAIN or mtime < oldest]
    for old in gone + _stale(where):
        with contextlib.suppress(OSError):
            old.unlink()
    _prune_columns(where, {p.name[:64] for _mtime, p in files} - {p.name[:64] for p in gone})


def _stale(where: Path) -> list[Path]:
    """The temporary files a killed run left behind (over an hour old)."""
    return [p for p in where.glob(".*.tmp") if time.time() - p.stat().st_mtime > 3600]


def _prune_columns(where: Path, heads: set[str]) -> None:
    """The columns' files of no entry kept (``heads``: their keys) go, once old enough
    not to be a running save's (its head comes last)."""
    for column in where.glob("*.values"):
        with contextlib.suppress(OSError):
            if column.name[:64] not in heads and \
                    time.time() - column.stat().st_mtime > _ORPHAN_SECONDS:
                column.unlink()


_ORPHAN_SECONDS = 60
"""A column's file with no head yet may be one a running save has just written (its
head comes last): kept this long."""


def _special(row: Sequence[Any]) -> bool:
    return any(type(v) not in _PLAIN for v in row)


def _encoded(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Formula):
        return {"f": value.text, "c": _encoded(value.cached)}
    if value is NO_CACHE:
        return {"n": 1}
    if isinstance(value, CellError):
        return {"e": value.code}
    if isinstance(value, dt.datetime):
        return {"d": value.isoformat()}
    raise TypeError(f"no cache form for a {type(value).__name__}")


def _decoded(value: Any) -> Any:
    if type(value) is not dict:
        return value
    if "f" in value:
        return Formula(str(value["f"]), _decoded(value["c"]))
    if "n" in value:
        return NO_CACHE
    if "e" in value:
        return CellError(str(value["e"]))
    if "d" in value:
        return dt.datetime.fromisoformat(str(value["d"]))
    raise ValueError("an unknown value")


def _checked_columns(columns: Any) -> frozenset[int] | None:
    if columns is None:
        return None
    if type(columns) is not list:
        raise ValueError("not a list of columns")
    return frozenset(_checked_count(column, MAX_COLUMNS) for column in columns)


def _checked_count(value: Any, limit: int) -> int:
    if type(value) is not int or not 0 <= value <= limit:
        raise ValueError("not a row or column")
    return value
