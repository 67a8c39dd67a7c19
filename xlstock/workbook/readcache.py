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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import platformdirs

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.workbook.base import MAX_COLUMNS, MAX_ROWS

FORMAT = 3
"""Bumped whenever the reader could give another value for the same bytes (2: a read
of some columns keeps which, and the last row the others hold a value in; 3: an entry
may be a delta over another)."""
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
    """What a read kept: its rows of values, the merged-over cells, the columns read
    from row 2 down (``None``: all; row 1 is always whole) and the last row where a
    column not read holds a value (0: none)."""

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


def load(key: str) -> Kept | None:
    """What was kept under ``key`` (a whole entry, or deltas over one), or ``None``."""
    where = folder()
    if where is None or not _own_folder(where):
        return None
    return _load(where, key, MAX_CHAIN)


def _load(where: Path, key: str, deltas: int) -> Kept | None:
    """The entry under ``key``, through at most ``deltas`` deltas."""
    found = _document(where, key, deltas)
    if found is None:
        return None
    document, delta = found
    try:
        kept = Kept([], {(_checked_count(r, MAX_ROWS), _checked_count(c, MAX_COLUMNS))
                         for r, c in document["merged"]},
                    _checked_columns(document["columns"]),
                    _checked_count(document["unread_last"], MAX_ROWS),
                    document["usual"] is True, (key,))
        if not delta:
            kept.grid = _checked_grid(document["rows"])
            return kept
        base_key = document["base"]
        added = _checked_added(document["added"])
        cells = _checked_cells(document["cells"])
        del document
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        log.debug("sheet cache %s ignored: %s", key, exc)
        return None
    if type(base_key) is not str or not _KEY.fullmatch(base_key):
        return None
    return _over(_load(where, base_key, deltas - 1), kept, added, cells)


def _document(where: Path, key: str, deltas: int) -> tuple[dict[str, Any], bool] | None:
    """The decoded file of the entry under ``key``, whole or (``True``) a delta, if it
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
        # Decoded first, the bytes let go: json.loads of bytes holds them and their
        # text together while the rows are made (76 MB more at 1,000,000 rows).
        text = data.decode("ascii")
        del data
        document = json.loads(text)
        del text
    except (ValueError, RecursionError) as exc:
        log.debug("sheet cache %s ignored: %s", key, exc)
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT or \
            document.get("key") != key:
        return None
    return document, delta


def _over(base: Kept | None, delta: Kept, added: Mapping[int, Sequence[Any]],
          cells: Iterable[tuple[int, int, Any]]) -> Kept | None:
    """``delta`` (its grid empty) made whole over its ``base``: the columns read since
    added, its cells set; ``None`` when the base is missing or holds other columns."""
    if base is None or (added and base.columns is None) or delta.columns != (
            None if base.columns is None else base.columns | added.keys()):
        return None
    _add_columns(base.grid, added)
    _apply(base.grid, cells)
    delta.grid, delta.chain = base.grid, (*base.chain, *delta.chain)
    return delta


_KEY = re.compile(r"[0-9a-f]{64}")


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
        checked.append((_checked_count(row, MAX_ROWS), _checked_count(column, MAX_COLUMNS),
                        value))
    return checked


def _checked_added(added: Any) -> dict[int, list[Any]]:
    """A delta's columns read since its base, ``[[column, [value of row 2, ...]], ...]``."""
    if type(added) is not list:
        raise ValueError("not a list of columns")
    checked = {}
    for item in added:
        if type(item) is not list or len(item) != 2 or type(item[1]) is not list or \
                len(item[1]) >= MAX_ROWS:
            raise ValueError("not a column")
        column = _checked_count(item[0], MAX_COLUMNS)
        if column < 1:
            raise ValueError("not a column")
        checked[column] = _checked_values(item[1])
    return checked


def _checked_values(values: list[Any]) -> list[Any]:
    """``values`` if each is a value a read could give, the special ones made again."""
    kinds = set(map(type, values))
    if not kinds <= _PLAIN | {dict}:
        raise ValueError("a value of another kind")
    return [_decoded(v) for v in values] if dict in kinds else values


def place(grid: list[list[Any]], cells: Iterable[tuple[int, int, Any]]) -> None:
    """Put each ``(row, column, value)`` (from 1) in ``grid``, in place: rows added
    empty below it, a row widened with ``None`` up to the column, as needed. The one
    loop that fills a grid with cells read or kept apart from it (the columns a file
    adapter reads late, a delta's columns and cells)."""
    for number, column, value in cells:
        if number > len(grid):
            grid.extend([] for _ in range(number - len(grid)))
        line = grid[number - 1]
        if column > len(line):
            line.extend([None] * (column - len(line)))
        line[column - 1] = value


def _add_columns(grid: list[list[Any]], added: Mapping[int, Sequence[Any]]) -> None:
    """Put the values of columns read since an entry into its grid (rows 2 down); a
    blank is no cell. C iterators alone: a column is a million values at most."""
    for column, values in added.items():
        cells = zip(itertools.count(2), itertools.repeat(column), values)
        place(grid, itertools.compress(cells, map(operator.is_not, values,
                                                  itertools.repeat(None))))


def _apply(grid: list[list[Any]], cells: Iterable[tuple[int, int, Any]]) -> None:
    """Put ``cells`` in ``grid`` and leave it as a read gives it (no ``None`` at a
    row's end, no empty row at the end)."""
    touched = set()

    def checked() -> Iterator[tuple[int, int, Any]]:
        for row, column, value in cells:
            if row < 1 or column < 1:
                raise ValueError("not a cell")
            touched.add(row - 1)
            yield row, column, value

    place(grid, checked())
    for index in touched:
        line = grid[index]
        if line and line[-1] is None:
            grid[index] = list(_trimmed(line))
    while grid and not grid[-1]:
        grid.pop()


def store(key: str, grid: Sequence[Sequence[Any]], merged: Iterable[tuple[int, int]], *,
          columns: Iterable[int] | None = None, unread_last: int = 0,
          usual: bool = False) -> None:
    """Keep ``grid`` (rows of values as a read gives them; of ``columns`` alone from
    row 2 down, when given, ``unread_last`` and ``usual`` as in :class:`Kept`) under
    ``key``; a
    failure to write is only logged (the cache is a speed-up, never needed)."""
    rows = _normalised(grid)

    def write(out: TextIO) -> None:
        # In blocks of rows: the text of 100,000 rows at once would be 15 MB more
        # at the command's peak (the text, and its bytes).
        out.write('"rows":[')
        for start in range(0, len(rows), _BLOCK):
            out.write(("," if start else "") + _block_text(rows[start:start + _BLOCK]))
        out.write("]")

    _write(key, ".json", _head(key, merged, columns, unread_last, usual), write)


def store_delta(key: str, chain: Sequence[str], cells: Iterable[tuple[int, int, Any]],
                merged: Iterable[tuple[int, int]], *, columns: Iterable[int] | None = None,
                grid: Sequence[Sequence[Any]] = (), added: Iterable[int] = (),
                unread_last: int = 0, usual: bool = False) -> bool:
    """Keep under ``key`` the values of the entry ``chain[-1]`` (loaded through
    ``chain``, see :attr:`Kept.chain`) with the ``added`` columns of ``grid`` (those
    read since) and ``cells`` (row, column, value) set; the rest as in :func:`store`
    (``columns``: the entry's and the added ones). ``False`` when the chain is
    already :data:`MAX_CHAIN` deltas long: keep the grid whole instead. The entries
    of the chain are marked as just used, so that pruning keeps them while the delta
    is kept."""
    if not chain or len(chain) > MAX_CHAIN or key in chain:  # never over itself
        return False
    where = folder()
    if where is None:
        return True
    for older in chain:  # before the write prunes
        with contextlib.suppress(OSError):
            os.utime(where / (f"{older}.json" if older == chain[0] else f"{older}{_DELTA}"))
    head = _head(key, merged, columns, unread_last, usual)
    head["base"] = chain[-1]
    listed = [[row, column, value] for row, column, value in cells]

    def write(out: TextIO) -> None:
        out.write('"added":[')
        for number, column in enumerate(sorted(added)):
            out.write(f'{"," if number else ""}[{column},[')
            # A column at a time, in blocks: the text of 1,000,000 names at once
            # would be tens of MB more at the command's peak.
            values = _trimmed(_column(grid, column))
            for start in range(0, len(values), _BLOCK * 10):
                out.write(("," if start else "") +
                          _block_text([values[start:start + _BLOCK * 10]])[1:-1])
            out.write("]]")
        out.write('],"cells":[' + _block_text(listed) + "]")

    _write(key, _DELTA, head, write)
    return True


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
          unread_last: int, usual: bool) -> dict[str, Any]:
    return {"format": FORMAT, "key": key, "merged": sorted(merged),
            "columns": None if columns is None else sorted(columns),
            "unread_last": unread_last, "usual": usual}


def _write(key: str, suffix: str, head: dict[str, Any],
           write: Callable[[TextIO], None]) -> bool:
    """Write ``head`` and what ``write`` adds to it as the file ``key + suffix``,
    atomically, readable by its owner alone; ``False`` (logged) when it could not be."""
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
            out.write(json.dumps(head, separators=(",", ":"))[:-1] + ",")
            write(out)
            out.write("}")
        os.replace(temp, where / f"{key}{suffix}")
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
    written: it is gone); a temporary file a killed run left behind (over an hour old)
    goes too."""
    files = sorted(((p.stat().st_mtime, p) for p in where.glob("*.json")), reverse=True)
    deltas = [(mtime, p) for mtime, p in files if p.name.endswith(_DELTA)]
    wholes = [(mtime, p) for mtime, p in files if not p.name.endswith(_DELTA)]
    oldest = wholes[KEEP - 1][0] if len(wholes) > KEEP else 0.0
    gone = [p for _mtime, p in wholes[KEEP:]] + [
        p for number, (mtime, p) in enumerate(deltas)
        if number >= KEEP * MAX_CHAIN or mtime < oldest]
    stale = [p for p in where.glob(".*.tmp") if time.time() - p.stat().st_mtime > 3600]
    for old in gone + stale:
        with contextlib.suppress(OSError):
            old.unlink()


def _normalised(grid: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """The rows as a read gives them: each as long as its last value, the empty rows
    after the last value left out."""
    rows = [_trimmed(row) if row and row[-1] is None else row for row in grid]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def _trimmed(row: Sequence[Any]) -> Sequence[Any]:
    end = len(row)
    while end and row[end - 1] is None:
        end -= 1
    return row[:end]


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


def _checked_grid(grid: Any) -> list[list[Any]]:
    """``grid`` if it is rows of values a read could give (within the reader's limits),
    with the special values made again; else :class:`ValueError`."""
    if type(grid) is not list or len(grid) > MAX_ROWS:
        raise ValueError("not rows of values")
    if grid and ({type(row) for row in grid} != {list}
                 or max(len(row) for row in grid) > MAX_COLUMNS):
        raise ValueError("not rows of values")
    kinds = set(map(type, itertools.chain.from_iterable(grid)))
    if not kinds <= _PLAIN | {dict}:
        raise ValueError("a value of another kind")
    if dict in kinds:
        grid = [[_decoded(v) for v in row] if dict in {type(v) for v in row} else row
                for row in grid]
    return grid
