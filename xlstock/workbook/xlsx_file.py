"""The workbook adapter for an ``.xlsx``/``.xlsm`` file, with no Excel: read what an
action needs, and patch only what xlstock owns.

Opening, in order: take the per-workbook lock (two xlstock runs never interleave on one
file), refuse a workbook open in Excel or LibreOffice, read the file's bytes once, and
refuse hostile or foreign files before any XML is parsed
(:mod:`xlstock.workbook.safety`). Then only ``xl/workbook.xml``, its relationships and
the styles' number formats are read; a sheet is read when an action asks for it, from
its own part (:mod:`xlstock.workbook.sheetxml`), with the shared strings when it uses
them.

Saving writes a new package (:mod:`xlstock.workbook.package`) in which every part is
copied as stored, byte for byte, except: the sheets written to (only their written
cells and rows change, see :func:`xlstock.workbook.sheetxml.patch_pieces`), ``xl/workbook.xml``
(a sheet added; ``fullCalcOnLoad`` so that Excel recalculates the merchant's formulas;
an autofilter's range grown; xlstock's state sheet put back to very hidden where
another program, LibreOffice, saved it only hidden), the relationships and content
types of a new sheet, an Excel table or autofilter over a sheet whose rows grew,
``xl/styles.xml`` when a date needs a date format, and ``xl/calcChain.xml``, dropped
when a formula cell was overwritten (Excel rebuilds it). Charts, pictures, pivot
tables, macros, comments, extLst content and every other part come out as they went in.

The save is atomic: the package goes to a temporary file in the same folder, flushed
to disk and checked, then renamed over the original, and the folder entry flushed. If
any step fails, the temporary file is removed and the original is as it was.

No save over someone else's save: just before the rename, the file must still be the
one this session last read or wrote (the same file identity, size and modification
time, and the same SHA-256 of its bytes). If another program saved it meanwhile, its
file is kept, nothing is saved over it, and :class:`~xlstock.errors.WorkbookChangedError`
says what to do. A read-only file (no write permission, or the read-only attribute) is
refused at :meth:`XlsxFile.open` when it is opened for writing, before anything is
read or sent (:class:`~xlstock.errors.ReadOnlyWorkbookError`).

Every foreign exception (zipfile, XML, OS) becomes a :class:`~xlstock.errors.WorkbookError`
in :func:`_translate`, and only there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import io
import itertools
import logging
import math
import os
import re
import stat
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from lxml import etree

from xlstock.cells import CellError, Formula, unchanged
from xlstock.errors import ReadOnlyWorkbookError, WorkbookChangedError, WorkbookError
from xlstock.i18n import _
from xlstock.workbook import readcache, safety, sheetxml
from xlstock.workbook.base import (
    EVERY_COLUMN,
    MAX_COLUMNS,
    MAX_ROWS,
    STATE_SHEET,
    Grid,
    Wanted,
    column_letter,
)
from xlstock.workbook.files import TEMP_SUFFIX, fsync_directory
from xlstock.workbook.locking import RunLock, excel_lock_owner, refuse_if_open_in_a_spreadsheet
from xlstock.workbook.package import (
    CT_NS,
    DOC_REL_NS,
    MAIN_NS,
    REL_NS,
    Package,
    parse_xml,
    rels_part,
    serialize_xml,
    write_package,
)

EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_TEXT = 32_767
log = logging.getLogger(__name__)
_KNOWN_ON_READ = frozenset({str, int, bool, type(None)})
"""Types of written values that a read of the saved part gives back as they are
(an ``int`` unless its cell is date-formatted: the patch tells)."""
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_ILLEGAL_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters an XML 1.0 document, hence an .xlsx cell, cannot hold."""
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")

_M = f"{{{MAIN_NS}}}"
_REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_WORKSHEET_TYPE = _REL_TYPE + "worksheet"
_CHARTSHEET_TYPE = _REL_TYPE + "chartsheet"
_TABLE_TYPE = _REL_TYPE + "table"
STREAM_PART_BYTES = 4 * 1024 * 1024
"""A written sheet whose part is this large (14,000 rows or so) is patched as it is read
(:class:`~xlstock.workbook.sheetxml.SheetStream`) when this session does not hold its
text already."""
STREAM_CHUNK = 1024 * 1024
"""Bytes of such a part inflated at a time."""
STREAM_LATE_COLUMNS_BYTES = 64 * 1024 * 1024
"""A sheet whose values came from the cache and whose part is this large (230,000 rows
or so) has a column asked for later (Sync's product names) read as the part is
inflated, its text not held (288 MB at 1,000,000 rows); a smaller one is read whole,
which its save then patches without reading it again (0.1 s less at 100,000 rows)."""
_WORKSHEET_CONTENT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_CALC_CHAIN_CONTENT = "application/vnd.openxmlformats-officedocument.spreadsheetml.calcChain+xml"
_DATE_FORMAT_ID = "22"
"""Excel's built-in ``m/d/yyyy h:mm``: the format a written date gets in a plain cell."""
_BUILTIN_DATE_FORMATS = frozenset({*range(14, 23), 45, 46, 47, *range(27, 37), *range(50, 59)})
"""Built-in number formats that show a date or time (ECMA-376 Part 1, 18.8.30; 27-36
and 50-58 in East Asian locales)."""
_NOT_IN_DATE_TEST = re.compile(r'"[^"]*"|\\.|\[(?![hms]+\])[^\]]*\]|_.|\*.', re.IGNORECASE)
_DATE_PARTS = re.compile(r"[dmyhs]", re.IGNORECASE)
_WINDOWS_EPOCH = dt.datetime(1899, 12, 30)
_MAC_EPOCH = dt.datetime(1904, 1, 1)
_LOTUS_LEAP_DAY = 60
"""Excel's 1900 date system counts a 29 February 1900 that never was (serial 60)."""


# Reading a date is two small rules, written here rather than taken from openpyxl:
# importing openpyxl costs 0.15 s, a third of a small command's time.


def sheet_names_in(path: str | os.PathLike[str]) -> list[str]:
    """The names of the sheets of the workbook at ``path``, read from its workbook part
    alone: no lock, no sheet read (for the command line to choose its language before a
    command opens the workbook). Raises :class:`WorkbookError` as :meth:`XlsxFile.open`
    would for a file that is not a safe workbook."""
    checked = safety.check_file(path)  # sizes, inflation and prologs: then the read is safe
    with zipfile.ZipFile(path) as archive:
        root = parse_xml(archive.read(checked.workbook_part))
    return [node.get("name", "") for node in root.iter(f"{_M}sheet")]


def is_date_format(code: str) -> bool:
    """Whether a number format shows a date or time: a d, m, y, h or s outside quoted
    text, escapes, colours and conditions (``[h]`` elapsed hours count)."""
    return bool(_DATE_PARTS.search(_NOT_IN_DATE_TEST.sub("", code)))


def serial_to_datetime(serial: float, epoch: dt.datetime) -> dt.datetime:
    """An Excel serial date as a datetime (a time alone falls on 1899-12-30)."""
    day, fraction = divmod(serial, 1)
    if epoch == _WINDOWS_EPOCH and 1 <= serial < _LOTUS_LEAP_DAY:
        day += 1
    return epoch + dt.timedelta(days=day, milliseconds=round(fraction * 86_400_000))


def datetime_to_serial(value: dt.datetime, epoch: dt.datetime) -> float:
    """A datetime as the serial number Excel stores."""
    delta = value - epoch
    serial = delta.days + (delta.seconds + delta.microseconds / 1e6) / 86_400
    if epoch == _WINDOWS_EPOCH and 1 <= serial < _LOTUS_LEAP_DAY + 1:
        serial -= 1
    return serial
_WORKBOOK_ORDER = (
    "fileVersion", "fileSharing", "workbookPr", "AlternateContent", "workbookProtection",
    "bookViews", "sheets", "functionGroups", "externalReferences", "definedNames", "calcPr",
)
"""CT_Workbook's children up to calcPr, in schema order (ECMA-376 Part 1, 18.2.27)."""


def locked_message(label: str, path: Path) -> str:
    """A save the operating system refused: most often Excel holding the file."""
    owner = excel_lock_owner(path)
    if owner:
        return _("{label}: the workbook is open in another program (Excel?) (Excel says it is "
                 "open by {owner}) or read-only: close it and try again", label=label,
                 owner=owner)
    return _("{label}: the workbook is open in another program (Excel?) or read-only: close "
             "it and try again", label=label)


@contextlib.contextmanager
def _translate(label: str, path: Path, doing: str) -> Iterator[None]:  # doing: a _() phrase
    """The one place where foreign exceptions become :class:`WorkbookError`."""
    try:
        yield
    except WorkbookError:
        raise
    except PermissionError as exc:
        raise WorkbookError(locked_message(label, path)) from exc
    except FileNotFoundError as exc:
        raise WorkbookError(_("{label}: no such file (while trying to {doing})", label=label,
                              doing=doing)) from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise WorkbookError(_(
                "{label}: the disk is full, so the workbook could not be saved (it is "
                "unchanged); free some space and try again", label=label
            )) from exc
        raise WorkbookError(_("{label}: could not {doing}: {detail}", label=label, doing=doing,
                              detail=exc.strerror or exc)) from exc
    except MemoryError as exc:
        raise WorkbookError(_("{label} is too large to {doing} in this computer's memory",
                              label=label, doing=doing)) from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise WorkbookError(safety.damaged_message(label, exc)) from exc
    except (sheetxml.SheetXmlError, etree.XMLSyntaxError, ValueError, KeyError,
            IndexError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WorkbookError(_(
            "{label}: could not {doing} ({detail}); if Excel opens the workbook, save a fresh "
            "copy with File > Save As and try again", label=label, doing=doing, detail=detail
        )) from exc


@dataclass
class _SheetEntry:
    """A sheet as ``xl/workbook.xml`` lists it, and what this session did to it."""

    name: str
    part: str
    chart: bool = False
    new: bool = False
    hidden: bool = False
    scanned: sheetxml.Sheet | None = None
    grid: Grid | None = None
    """Values as read, with this session's writes applied (rows may be ragged)."""
    last_row: int = 0
    """The last row holding a value when the sheet was first read."""
    writes: sheetxml.CellWrites = field(default_factory=sheetxml.CellWrites)
    merged: set[tuple[int, int]] | None = None
    cache_key: str | None = None
    """The :mod:`readcache` key of the part as read (``None``: a part too small to keep)."""
    kept: bool = False
    """The grid is the one the cache holds under ``cache_key``."""
    cache_chain: tuple[str, ...] = ()
    """The cache files the entry under ``cache_key`` is made from (see
    :attr:`readcache.Kept.chain`): a save keeps its cells over them."""
    read_since: frozenset[int] | None = None
    """The columns read from the part since the grid was the cache's entry under
    ``cache_key`` (``None``: it never was, or columns beyond listing were read)."""
    streamable: bool = True
    """Its part may be patched as it is read (see ``XlsxFile._sheet_stream``)."""
    cache_ok: bool = True
    """This session's writes leave values the file adapter knows exactly (plain values,
    no formula overwritten, no number in a date-formatted cell): after a save, the grid
    is what a read of the saved part gives."""
    read_columns: frozenset[int] | None = None
    """The columns whose values the grid holds from row 2 down (``None``: all; row 1 is
    always whole): a command reads the columns it asks for, the others when asked."""
    unread_last: int = 0
    """The last row where a column not read holds a value (it counts in the sheet's
    height, and no write changes it: a column is read before it is written)."""
    cache_held: frozenset[int] | None = frozenset()
    """The columns the cache's entry ``cache_chain`` holds from row 2 down (``None``:
    all)."""
    cache_more: frozenset[int] = frozenset()
    """Columns with values that entry holds and the grid lacks (not asked for yet):
    taken from the cache when asked for, not read from the part."""
    outside_last: int = 0
    """The last row where a column neither the grid nor that entry holds has a value."""
    usual: bool | None = None
    """Every cell and row of the part is in the usual form (a fast read found it so; a
    patch keeps it so): a column read later is found by its cells' references."""


@dataclass(frozen=True)
class _FileSeen:
    """What a file looked like when this session last read or wrote it."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> _FileSeen:
        status = os.stat(path)
        return cls(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _digest_of_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


class _Styles:
    """The number formats of ``xl/styles.xml``: which cell styles show dates, and a
    date style added on demand."""

    def __init__(self, package: Package, part: str | None) -> None:
        self.part = part
        self._root: etree._Element | None = None
        self.changed = False
        self._formats: list[str] = []
        self._date_variant: dict[str | None, str] = {}
        self._custom: dict[str | None, str] = {}
        if part is not None and part in package:
            self._root = parse_xml(package.read(part))
            self._custom = {node.get("numFmtId"): node.get("formatCode", "")
                            for node in self._root.iter(f"{_M}numFmt")}
            xfs = self._root.find(f"{_M}cellXfs")
            self._formats = [xf.get("numFmtId", "0") for xf in (xfs if xfs is not None else [])
                             if xf.tag == f"{_M}xf"]
        self.date_styles = frozenset(
            str(index) for index, fmt in enumerate(self._formats) if self._is_date(fmt))

    def _is_date(self, number_format: str) -> bool:
        try:
            number = int(number_format)
        except ValueError:
            return False
        if number_format in self._custom:
            return is_date_format(self._custom[number_format])
        return number in _BUILTIN_DATE_FORMATS

    def date_style(self, style: str | None) -> str:
        """A style index like ``style`` (or the default) that shows a date and time."""
        if style is not None and style in self.date_styles:
            return style
        if style in self._date_variant:
            return self._date_variant[style]
        if self._root is None:
            raise WorkbookError(_("the workbook has no styles part, so a date cannot be written"))
        xfs = self._root.find(f"{_M}cellXfs")
        if xfs is None:
            raise WorkbookError(_("the workbook's styles have no cell formats"))
        models = [x for x in xfs if x.tag == f"{_M}xf"]
        index = int(style) if style and style.isdigit() and int(style) < len(models) else 0
        clone = etree.fromstring(etree.tostring(models[index])) if models else etree.Element(
            f"{_M}xf")
        clone.set("numFmtId", _DATE_FORMAT_ID)
        clone.set("applyNumberFormat", "1")
        clone.tail = None
        xfs.append(clone)
        xfs.set("count", str(len(models) + 1))
        new_index = str(len(models))
        self._formats.append(_DATE_FORMAT_ID)
        self.date_styles = self.date_styles | {new_index}
        self._date_variant[style] = new_index
        self.changed = True
        return new_index

    def to_bytes(self) -> bytes:
        assert self._root is not None
        return serialize_xml(self._root)


class XlsxFile:
    """One workbook file; see the module's docstring.

    Use :meth:`open` (a context manager: leaving it releases the lock)::

        with XlsxFile.open("stock.xlsx") as book:
            grid = book.read_sheet("Stock")
            book.write_block("Stock", 2, 4, [[12], [7]])
            book.save()
    """

    def __init__(self, path: Path, label: str, data: bytes, workbook_part: str, *,
                 writable: bool, lock: RunLock | None) -> None:
        self._path = path
        self._label = label
        self._writable = writable
        self._lock = lock
        self._closed = False
        self._formulas_overwritten = False
        self._workbook_part = workbook_part
        self._seen: _FileSeen | None = None
        if writable:
            with contextlib.suppress(OSError):  # gone already: the save's check says so
                self._seen = _FileSeen.of(path)
        """The file as this session last read or wrote it (taken after the read: a file
        replaced in between has other bytes than ``data``, which the save's check sees)."""
        self._load(data)

    def _load(self, data: bytes) -> None:
        with _translate(self._label, self._path, _("read the workbook")):
            self._package = Package(data)
            self._workbook_rels = self._package.relationships(self._workbook_part)
            root = parse_xml(self._package.read(self._workbook_part))
            by_id = {r.id: r for r in self._workbook_rels}
            self._sheets: list[_SheetEntry] = []
            sheets = root.find(f"{_M}sheets")
            for node in (sheets if sheets is not None else []):
                if node.tag != f"{_M}sheet":
                    continue
                rel = by_id.get(node.get(f"{{{DOC_REL_NS}}}id", ""))
                if rel is None:
                    continue
                self._sheets.append(_SheetEntry(
                    node.get("name", ""), rel.target, chart=rel.type == _CHARTSHEET_TYPE,
                    hidden=node.get("state", "visible") != "visible"))
            properties = root.find(f"{_M}workbookPr")
            date1904 = properties is not None and properties.get("date1904") in ("1", "true")
            self._epoch = _MAC_EPOCH if date1904 else _WINDOWS_EPOCH
            kinds = {r.type.rsplit("/", 1)[-1]: r.target for r in self._workbook_rels}
            self._shared_strings_part = kinds.get("sharedStrings")
            self._styles = _Styles(self._package, kinds.get("styles"))
            self._shared_strings: list[str] | None = None

    # --- opening and closing ----------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, writable: bool = True) -> XlsxFile:
        """Open the workbook at ``path``.

        With ``writable`` (the default) the workbook is locked against other xlstock
        runs until :meth:`close`, a workbook open in an office program is refused, and
        temporary files a killed run left behind are removed. ``writable=False`` takes
        no lock and refuses :meth:`save`."""
        label = os.fspath(path)
        real = Path(os.path.realpath(path))
        if writable:
            _refuse_read_only(real, label)
            refuse_if_open_in_a_spreadsheet(real, label)
        lock = RunLock(real, label) if writable else None
        if lock is not None:
            with _translate(label, real, _("lock the workbook")):
                lock.acquire()
        try:
            if writable:
                _remove_stale_temp_files(real)
            data, checked = safety.read_checked(real)
            log.info("opened %s (%d bytes)", label, len(data))
            return cls(real, label, data, checked.workbook_part, writable=writable, lock=lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def close(self) -> None:
        """Release the lock (the workbook is not saved). Safe to call twice. The values
        of large sheets read from the file and not written since go to
        :mod:`readcache`, for the next command."""
        if self._closed:
            return
        self._closed = True
        try:
            for entry in self._sheets:
                if entry.grid is not None and entry.cache_key and not entry.kept \
                        and not entry.writes:
                    self._keep(entry.cache_key, entry, entry.grid)
        except Exception as exc:  # a speed-up only: never a reason for a command to fail
            log.debug("sheet values not kept: %s", exc)
        finally:
            if self._lock is not None:
                self._lock.release()

    def _keep(self, key: str, entry: _SheetEntry, grid: Grid) -> readcache.Stored | None:
        """Keep the grid whole under ``key``, with the columns the cache holds that it
        lacks (copied from the cache's files one at a time)."""
        read, more = entry.read_columns, entry.cache_more
        return readcache.store(key, grid, self._merged(entry),
                               columns=None if read is None else read | more,
                               unread_last=entry.outside_last, usual=bool(entry.usual),
                               chain=entry.cache_chain, more=more)

    def _merged(self, entry: _SheetEntry) -> set[tuple[int, int]]:
        if entry.merged is None:
            entry.merged = self._scanned(entry).merged_cells()
        return entry.merged

    def __enter__(self) -> XlsxFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- the WorkbookAdapter protocol ---------------------------------------------------

    scattered_writes = True
    """A write is a note in memory until :meth:`save` patches the part."""
    shares_rows = True
    """``read_sheet(shared=True)`` gives the session's own rows."""
    reads_columns = True
    """``read_sheet(columns=...)`` reads only the columns asked for (``ColumnReader``)."""

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
        return [entry.name for entry in self._sheets]

    def _entry(self, name: str) -> _SheetEntry:
        self._check_open()
        for entry in self._sheets:
            if entry.name == name:
                if entry.chart:
                    raise WorkbookError(_("{label}: sheet {sheet} is a chart sheet, not a sheet "
                                          "of cells", label=self._label, sheet=repr(name)))
                return entry
        raise WorkbookError(_("{label} has no sheet named {sheet}", label=self._label,
                              sheet=repr(name)))

    def _scanned(self, entry: _SheetEntry) -> sheetxml.Sheet:
        if entry.scanned is None:
            with _translate(self._label, self._path, _("read sheet {sheet}", sheet=entry.name)):
                entry.scanned = sheetxml.Sheet.scan(self._package.read(entry.part))
        return entry.scanned

    def _cache_key(self, entry: _SheetEntry) -> str | None:
        """The key under which :mod:`readcache` keeps this sheet's values, or ``None``
        (the cache is off, or the part is small)."""
        if entry.new or entry.part not in self._package or readcache.folder() is None:
            return None
        info, body = self._package.stored(entry.part)
        if info.file_size < readcache.MIN_PART_BYTES:
            return None
        parts = [f"{info.compress_type} {info.file_size} {info.CRC}".encode(), body]
        for other in (self._shared_strings_part, self._styles.part, self._workbook_part):
            if other and other in self._package:
                other_info, other_body = self._package.stored(other)
                parts += [f"{other_info.compress_type}".encode(), other_body]
            else:
                parts += [b"", b""]
        return readcache.key_of(parts)

    def _grid(self, entry: _SheetEntry, columns: Wanted | None = None) -> Grid:
        """The sheet's values as read (from the sheet cache when it has them), with
        this session's writes; of the ``columns`` that the header row gives (``None``:
        all), at least, from row 2 down."""
        if entry.grid is None:
            if entry.new:
                entry.grid = []
                return entry.grid
            key = self._cache_key(entry)
            kept = readcache.load(key, columns) if key is not None else None
            if kept is not None:
                entry.grid, entry.merged = kept.grid, kept.merged
                entry.read_columns, entry.unread_last = kept.columns, kept.unread_last
                entry.usual = kept.usual or None
                entry.cache_key, entry.kept, entry.cache_chain = key, True, kept.chain
                entry.read_since = frozenset()
                entry.cache_held, entry.cache_more = kept.held, kept.more
                entry.outside_last = kept.outside_last
            else:
                entry.cache_key = key
                self._read_part(entry, columns)
                assert entry.grid is not None
                _trim(entry.grid)
            grid = entry.grid
            assert grid is not None
            if len(grid) < entry.unread_last:
                grid.extend([] for _ in range(entry.unread_last - len(grid)))
            entry.last_row = self._height(entry)
            scanned = entry.scanned
            if scanned is not None and len(scanned.data) >= STREAM_PART_BYTES:
                self._merged(entry)    # a save patches it as it reads it: its text (288 MB
                entry.scanned = None   # at 1,000,000 rows) is not held meanwhile
        if entry.read_columns is not None:
            self._read_more(entry, columns)
        assert entry.grid is not None
        return entry.grid

    def _read_part(self, entry: _SheetEntry, columns: Wanted | None) -> None:
        """Read the sheet's values from its part: the header row first when only some
        columns are wanted (it says which), then the rows."""
        if self._read_streamed(entry, columns):
            return
        sheet = self._scanned(entry)
        with self._reading(entry):
            sheetxml.check_well_formed(sheet.data)
            wanted = None
            header: list[Any] = []
            if columns is not None:
                header = self._header_row(entry)
                wanted = frozenset(c for c in columns(header) if 1 <= c <= MAX_COLUMNS)
            read = sheetxml.read_some_cells(sheet, self._context(), MAX_ROWS, MAX_COLUMNS,
                                            wanted)
        _take_read(entry, read, wanted, header)
        entry.usual = sheet.usual_cells

    def _read_streamed(self, entry: _SheetEntry, columns: Wanted | None) -> bool:
        """:meth:`_read_part` for a large part, read as it is inflated: its text (288 MB
        at 1,000,000 rows) is not held beside the rows being made, nor after (a save
        patches it as it reads it again). ``False``: read it whole (a small part, or a
        form the stream does not read)."""
        if entry.scanned is not None or entry.part not in self._package or \
                self._package.size(entry.part) < STREAM_PART_BYTES:
            return False
        with self._reading(entry):
            streamed = sheetxml.read_streamed(
                self._package.chunks(entry.part, STREAM_CHUNK), self._context(), MAX_ROWS,
                MAX_COLUMNS, columns)
        if streamed is None:
            return False
        _take_read(entry, streamed.read, streamed.wanted, streamed.header)
        entry.usual, entry.merged = True, streamed.merged
        return True

    def _header_row(self, entry: _SheetEntry) -> list[Any]:
        """Row 1's values, read alone (the part's first row, if it is row 1)."""
        sheet = self._scanned(entry)
        row_tag = b"<" + sheet.patterns.prefix + b"row"
        first = sheet.data.find(row_tag, sheet.data_start, sheet.data_end)
        if first < 0 or sheet.empty_tag:
            return []
        second = sheet.data.find(row_tag, first + len(row_tag), sheet.data_end)
        alone = sheetxml.Sheet(sheet.data, sheet.patterns, sheet.data_start,
                               second if second >= 0 else sheet.data_end, False)
        grid = sheetxml.read_cells(alone, self._context(), MAX_ROWS, MAX_COLUMNS)
        return grid[0] if len(grid) == 1 else []

    def _read_more(self, entry: _SheetEntry, columns: Wanted | None) -> None:
        """Read the columns wanted that the grid lacks (``None``: every one) into it, in
        place (the rows a shared read gave are the ones filled): a column alone by its
        cells' references when the part is in the usual form, else by a read of the
        part for those columns."""
        read = entry.read_columns
        assert entry.grid is not None and read is not None
        if columns is None:
            missing = EVERY_COLUMN - read
        else:  # most often a write to a column read already: nothing to do
            header = entry.grid[0] if entry.grid else []
            missing = frozenset(c for c in columns(header)
                                if c not in read and 1 <= c <= MAX_COLUMNS)
        taken = self._take_kept(entry, missing)
        read, missing = read | taken, missing - taken
        entry.read_columns = None if columns is None and not missing else read
        if not missing:
            return
        with self._reading(entry):
            found = self._columns_read(entry, missing, alone=columns is not None)
        readcache.place(entry.grid, found)  # the rows a shared read gave filled in place
        entry.read_columns = None if columns is None else read | missing
        entry.kept = False  # the cache may keep the columns read since
        if entry.read_since is not None:
            entry.read_since = None if columns is None else entry.read_since | missing

    @staticmethod
    def _take_kept(entry: _SheetEntry, missing: frozenset[int]) -> frozenset[int]:
        """Put in the grid the ``missing`` columns the sheet cache holds (not asked for
        when it was loaded): the columns taken (none when its files are gone)."""
        wanted = missing & entry.cache_more
        if not wanted:
            return frozenset()
        found = readcache.load_columns(entry.cache_chain, wanted)
        if found is None:  # pruned or damaged since: read from the part
            entry.cache_more = frozenset()
            return frozenset()
        assert entry.grid is not None
        readcache.add_columns(entry.grid, found)
        entry.cache_more -= wanted
        return wanted

    def _columns_read(self, entry: _SheetEntry, missing: frozenset[int], *, alone: bool
                      ) -> Iterable[tuple[int, int, Any]]:
        """The values of the ``missing`` columns as (row, column, value): each column
        ``alone`` by its cells' references where it can be, else by a read of the part
        for those columns."""
        if alone and entry.scanned is None and \
                self._package.size(entry.part) >= STREAM_LATE_COLUMNS_BYTES:
            # Checked when first read (here, or before its values were kept in the
            # cache). Read as it is inflated, its text is not held (a save streams it).
            streamed = sheetxml.read_columns_streamed(
                self._package.chunks(entry.part, STREAM_CHUNK), self._context(), missing)
            if streamed is not None:
                return streamed
        sheet = self._scanned(entry)
        if entry.usual:  # known from the read, the cache, or the part this one was patched from
            sheet.usual_cells = True
        if alone:
            found = sheetxml.read_columns(sheet, self._context(), missing)
            if found is not None:
                return found
        read = sheetxml.read_some_cells(sheet, self._context(), MAX_ROWS, MAX_COLUMNS, missing)
        return ((number, column, value) for number, row in enumerate(read.grid, start=1)
                for column, value in enumerate(row, start=1)
                if value is not None and column in missing)

    @contextlib.contextmanager
    def _reading(self, entry: _SheetEntry) -> Iterator[None]:
        """Foreign errors translated, and a value far outside the table named."""
        with _translate(self._label, self._path, _("read sheet {sheet}", sheet=entry.name)):
            try:
                yield
            except sheetxml.FarCell as far:
                why = (_("past row {row:n}, Excel's last", row=MAX_ROWS)
                       if far.row > MAX_ROWS
                       else _("more than {count:n} columns", count=MAX_COLUMNS))
                raise WorkbookError(_(
                    "{label}: sheet {sheet} has a value at {cell}, far outside the table "
                    "({why}); delete it and try again", label=self._label,
                    sheet=entry.name, cell=column_letter(far.column) + str(far.row),
                    why=why)) from None

    def _context(self) -> sheetxml.Context:
        return sheetxml.Context(self._strings, self._styles.date_styles, self._to_datetime)

    def _height(self, entry: _SheetEntry) -> int:
        """The last row holding a value, in the columns read or the others."""
        return max(_last_row(entry.grid or []), entry.unread_last)

    def _strings(self) -> list[str]:
        if self._shared_strings is None:
            part = self._shared_strings_part
            if part is None or part not in self._package:
                self._shared_strings = []
            else:
                with _translate(self._label, self._path, _("read the shared strings")):
                    data = self._package.read(part)
                    sheetxml.check_well_formed(data)
                    self._shared_strings = _read_shared_strings(data)
        return self._shared_strings

    def _to_datetime(self, serial: float) -> dt.datetime:
        return serial_to_datetime(serial, self._epoch)

    def read_sheet(self, name: str, *, shared: bool = False,
                   columns: Wanted | None = None) -> Grid:
        """The used part of sheet ``name`` (see :class:`~xlstock.workbook.base.WorkbookAdapter`;
        ``shared``: the session's own rows, which :meth:`write_block` keeps in step).

        ``columns``: given row 1's values, the columns wanted (see
        :class:`~xlstock.workbook.base.ColumnReader`): the others' cells below row 1
        are ``None`` (the rows still reach the last row holding a value in any
        column) until a read or a write asks for them. A call with other columns
        fills them in, in the rows a shared read gave.

        Reads the sheet's own part as bytes, so a lone value far away costs nothing
        before it is refused. Formula cells come as ``Formula(text, cached)`` with
        ``text`` starting ``=`` and ``cached`` the result saved in the file (or
        ``NO_CACHE``). Dates and times come as ``datetime``; whole numbers as ``int``;
        rich text as its plain ``str``; empty text as ``None``."""
        entry = self._entry(name)
        grid = self._grid(entry, columns)
        height = self._height(entry)
        if shared:
            return grid[:height]
        width = max((_row_width(row) for row in grid[:height]), default=0)
        return [row[:width] + [None] * (width - len(row)) if len(row) < width else row[:width]
                for row in grid[:height]]

    def write_block(self, name: str, top: int, left: int, rows: Sequence[Sequence[Any]]) -> None:
        """Write ``rows`` with its top-left cell at (``top``, ``left``), 1-based.

        ``str`` is always literal text (never a formula, whatever it starts with);
        ``None`` (and ``""``) clears a value and keeps the cell's formatting; ``Formula``
        writes its text as a formula; ``CellError`` an error value. A cell that already
        holds the value is left alone, so an unchanged sheet is saved byte for byte. A
        cell created here takes its row's or column's style, as one typed into in Excel
        would. Text Excel cannot hold (control characters, over 32,767 characters) and
        cells inside merged ranges are refused with the cell named."""
        entry = self._entry(name)
        self._check_block(name, top, left, rows)
        width = max(map(len, rows), default=0)
        grid = self._grid(entry, lambda _header: range(left, left + width))
        for i, values in enumerate(rows):
            row = top + i
            for j, value in enumerate(values):
                column = left + j
                line = grid[row - 1] if row <= len(grid) else None
                current = line[column - 1] if line is not None and column <= len(line) else None
                if unchanged(current, value):
                    continue  # most of a column written back as it was
                self._write_cell(entry, grid, row, column, current, value)

    def _check_block(self, name: str, top: int, left: int,
                     rows: Sequence[Sequence[Any]]) -> None:
        """Refuse a block that starts before row or column 1, or would end past Excel's
        last row or column."""
        if top < 1 or left < 1:
            raise ValueError(f"write_block at row {top}, column {left}: both start at 1")
        height = len(rows)
        width = max(map(len, rows), default=0)
        if top + height - 1 > MAX_ROWS or left + width - 1 > EXCEL_MAX_COLUMNS:
            raise WorkbookError(_(
                "{label}: sheet {sheet} cannot grow past its last row or column (writing "
                "{count:n} rows from row {top}; row {last:n} is Excel's last)",
                label=self._label, sheet=name, count=height, top=top, last=MAX_ROWS))

    def _write_cell(self, entry: _SheetEntry, grid: Grid, row: int, column: int, current: Any,
                    value: Any) -> None:
        """Write one changed value: checked (the cell named), refused in a merged range,
        noted for the save and put in the grid. A formula overwritten, or a value the
        read does not give back as it is, makes the kept values stale."""
        name = entry.name
        value = self._checked(name, row, column, value)
        if unchanged(current, value):  # the same once stored (a time zone dropped)
            return
        self._refuse_merged(entry, row, column)
        if isinstance(current, Formula):
            self._formulas_overwritten = True
            entry.cache_ok = False
        if type(value) not in _KNOWN_ON_READ:
            entry.cache_ok = False
        entry.writes.set(row, column, (
            sheetxml.DateSerial(datetime_to_serial(value, self._epoch))
            if isinstance(value, dt.datetime) else value))
        if row > len(grid):  # as wide as row 1 at once: grown cell by cell, a row of 9
            width = len(grid[0]) if grid else 0  # cells holds room for 16 (issue 22)
            grid.extend([None] * width for _ in range(row - len(grid)))
        line = grid[row - 1]
        if column > len(line):
            line.extend([None] * (column - len(line)))
        line[column - 1] = value

    def _checked(self, name: str, row: int, column: int, value: Any) -> Any:
        """``value`` as it will be stored, or a refusal naming the cell."""
        if value is None or value == "":
            return None
        if isinstance(value, str):
            bad = _ILLEGAL_TEXT.search(value)
            if bad:
                raise WorkbookError(_(
                    "{where}: the text holds a character an Excel cell cannot store "
                    "({character}); remove it at its source", where=self._cell(name, row, column),
                    character="U+" + format(ord(bad.group()), "04X")))
            if len(value) > EXCEL_MAX_TEXT:
                raise WorkbookError(_(
                    "{where}: the text is {count:n} characters, over Excel's {limit:n} per "
                    "cell", where=self._cell(name, row, column), count=len(value),
                    limit=EXCEL_MAX_TEXT))
            return value
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise WorkbookError(_("{where}: {value} is not a number Excel can store",
                                      where=self._cell(name, row, column), value=value))
            return value
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:  # Excel has no time zones
                return value.astimezone().replace(tzinfo=None)
            return value
        if isinstance(value, dt.date):
            return dt.datetime.combine(value, dt.time())
        if isinstance(value, dt.time):
            return dt.datetime.combine(_EXCEL_EPOCH.date(), value.replace(tzinfo=None))
        if isinstance(value, (Formula, CellError)):
            return value
        raise TypeError(
            f"cannot write a {type(value).__name__} to sheet {name} cell "
            f"{column_letter(column)}{row}: {value!r}")

    def _cell(self, name: str, row: int, column: int) -> str:
        """A cell named for a message (only when one is needed: a write may check 100,000
        cells)."""
        return _("{label}: sheet {sheet} cell {cell}", label=self._label, sheet=name,
                 cell=column_letter(column) + str(row))

    def _refuse_merged(self, entry: _SheetEntry, row: int, column: int) -> None:
        if entry.new:
            return
        if (row, column) in self._merged(entry):
            raise WorkbookError(_(
                "{label}: sheet {sheet} cell {cell} is inside merged cells; unmerge them (Home "
                "> Merge & Center) and try again", label=self._label, sheet=entry.name,
                cell=column_letter(column) + str(row)))

    def add_sheet(self, name: str, *, hidden: bool = False) -> None:
        """Add an empty sheet at the end; ``hidden`` makes it very hidden (not listed
        under Unhide in Excel). Refuses a name the workbook already has (Excel compares
        sheet names ignoring case) and a name Excel does not allow."""
        self._check_open()
        if any(entry.name.casefold() == name.casefold() for entry in self._sheets):
            raise WorkbookError(_("{label} already has a sheet named {sheet}", label=self._label,
                                  sheet=repr(name)))
        if not name or len(name) > 31 or _SHEET_NAME_FORBIDDEN.search(name) or \
                name.startswith("'") or name.endswith("'"):
            raise WorkbookError(_(
                "{label}: {sheet} cannot name a sheet (1 to 31 characters, none of [ ] : * ? "
                "/ \\, not starting or ending with ')", label=self._label, sheet=repr(name)))
        taken = set(self._package.names()) | {e.part for e in self._sheets}
        number = 1
        while f"xl/worksheets/sheet{number}.xml" in taken:
            number += 1
        self._sheets.append(_SheetEntry(name, f"xl/worksheets/sheet{number}.xml", new=True,
                                        hidden=hidden, grid=[]))

    def save(self) -> None:
        """Save atomically over the original (see the module's docstring). A session
        that changed nothing leaves the file untouched."""
        self._check_open()
        if not self._writable:
            raise WorkbookError(_("{label} was opened for reading only; it was not saved",
                                  label=self._label))
        if not any(e.writes or e.new for e in self._sheets):
            return
        temp = self._path.with_name(f".{self._path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
        try:
            with _translate(self._label, self._path, _("save the workbook")):
                data, written = self._package_bytes()
                for entry in self._sheets:  # patched: their old text (28 MB at 100,000
                    if entry.writes:        # rows) is scanned again if ever needed
                        entry.scanned = None
                _write_temp(temp, data)
                _check_saved(temp, self._label, written)
                _copy_mode(self._path, temp)
                self._refuse_if_replaced()
                os.replace(temp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        with contextlib.suppress(OSError):  # gone already: the next save's check says so
            self._seen = _FileSeen.of(self._path)
        fsync_directory(self._path.parent)
        self._after_save(data)
        log.info("saved %s (%d bytes)", self._label, len(data))

    def check_unchanged(self) -> None:
        """What :meth:`save` checks last, without writing: :class:`WorkbookChangedError`
        when another program saved the file since this session read or wrote it (a
        publish asks before it sends, as it saves only once, after)."""
        self._check_open()
        with _translate(self._label, self._path, "check the workbook"):
            self._refuse_if_replaced()

    def _refuse_if_replaced(self) -> None:
        """Raise :class:`WorkbookChangedError` when the file is no longer the one this
        session last read or wrote: another program saved it meanwhile."""
        try:
            seen = _FileSeen.of(self._path)
            same = seen == self._seen and _digest_of_file(self._path) == hashlib.sha256(
                self._package.data).digest()
        except FileNotFoundError:
            same = False
        if not same:
            raise WorkbookChangedError(_(
                "{label} was saved by another program while xlstock was working on it; "
                "xlstock kept that program's file and saved nothing over it. Open the "
                "workbook, check that your latest edits are in it, save and close it, then "
                "run the command again", label=self._label))

    def _after_save(self, data: bytes) -> None:
        """The saved file is the new original: later writes patch it. What was read
        stays; a sheet that was not written keeps its scan (its part is the same). The
        values of a large sheet go to :mod:`readcache` under the saved part's key when
        they are known exactly (see ``_SheetEntry.cache_ok``)."""
        before = {e.name: e for e in self._sheets}
        self._load(data)
        for entry in self._sheets:
            old = before.get(entry.name)
            if old is None:
                continue
            entry.grid = old.grid
            entry.read_columns, entry.unread_last = old.read_columns, old.unread_last
            entry.cache_chain, entry.cache_held = old.cache_chain, old.cache_held
            entry.cache_more, entry.outside_last = old.cache_more, old.outside_last
            entry.usual = old.usual
            entry.last_row = self._height(entry)
            entry.merged = old.merged
            if not old.writes and not old.new:
                entry.scanned = old.scanned
            if old.grid is None or not (old.cache_ok or not old.writes):
                continue
            try:
                key = self._cache_key(entry)
                if key is None:
                    continue
                if key != old.cache_key or not old.kept:
                    if not self._keep_saved(key, entry, old):
                        entry.cache_chain, entry.cache_more = (), frozenset()
                        continue
                entry.cache_key, entry.kept, entry.read_since = key, True, frozenset()
            except Exception as exc:  # the workbook is saved: the cache is only a speed-up
                log.debug("sheet values not kept: %s", exc)
        self._formulas_overwritten = False

    def _keep_saved(self, key: str, entry: _SheetEntry, old: _SheetEntry) -> bool:
        """Keep the values of a saved sheet under ``key``: only the cells this session
        wrote (and the columns it read since), over the entry its values came from,
        when they came from the cache and are few (O(k) where the whole grid is O(N));
        else the whole grid. ``entry`` then says what the cache holds; ``False`` when
        nothing could be kept."""
        grid, since = old.grid, old.read_since
        assert grid is not None
        stored = None
        if since is not None and old.cache_key not in (None, key) and \
                old.cache_chain[-1:] == (old.cache_key,) and \
                _count_below(old.writes.cells(), max(len(grid) // 4, 1)):
            cells = [(row, column, _grid_value(grid, row, column))
                     for row, column, _value in old.writes.cells()]
            held = old.cache_held
            stored = readcache.store_delta(
                key, old.cache_chain, cells, self._merged(entry),
                columns=None if held is None else held | since, grid=grid, added=since,
                unread_last=old.outside_last, usual=bool(entry.usual))
            chain = (*old.cache_chain, key)
        if stored is None:
            stored, chain = self._keep(key, entry, grid), (key,)
        if stored is None:
            return False
        entry.cache_chain, entry.cache_held = chain, stored.held
        entry.cache_more = old.cache_more & stored.lasts.keys()
        if stored.held is not None:
            entry.cache_more &= stored.held
        return True

    # --- building the new package ------------------------------------------------------

    def _package_bytes(self) -> tuple[bytes, set[str]]:
        """The new package, and the names of the parts written anew (the others are
        copied as stored); made again, that sheet patched whole, when a streamed sheet
        turns out to be in a form the stream does not take."""
        while True:
            try:
                return self._package_bytes_once()
            except sheetxml.NotStreamable:
                continue  # the sheet is marked: it is patched whole this time

    def _package_bytes_once(self) -> tuple[bytes, set[str]]:
        replaced: dict[str, bytes | Iterable[bytes | memoryview]] = {}
        added: list[tuple[str, bytes]] = []
        dropped: list[str] = []
        grown: dict[str, int] = {}
        patched = self._sheet_parts(replaced, added, grown)
        self._workbook_parts(replaced, dropped, grown)
        if self._styles.changed and self._styles.part is not None:
            replaced[self._styles.part] = self._styles.to_bytes()
        out = io.BytesIO()
        write_package(out, self._package, replaced, dropped, added)
        for entry, context in patched:  # every piece is written: the patch is complete
            if context.dated:  # a number in a date-formatted cell reads back as a date,
                entry.cache_ok = False  # not as the number the grid holds
        return out.getvalue(), set(replaced) | {name for name, _ in added}

    def _sheet_parts(self, replaced: dict[str, bytes | Iterable[bytes | memoryview]],
                     added: list[tuple[str, bytes]], grown: dict[str, int]
                     ) -> list[tuple[_SheetEntry, sheetxml.PatchContext]]:
        """The sheets' parts: a new sheet's made whole (in ``added``), a written one's
        patched (in ``replaced``, with the tables of a sheet that grew; its new last row
        in ``grown``). Returns the patched sheets with their contexts."""
        context_for = self._patch_context
        patched: list[tuple[_SheetEntry, sheetxml.PatchContext]] = []
        for entry in self._sheets:
            if entry.new:
                added.append((entry.part, sheetxml.new_sheet_xml(entry.writes,
                                                                 context_for(None))))
            elif entry.writes:
                stream = self._sheet_stream(entry)
                sheet = stream.head if stream is not None else self._scanned(entry)
                new_last = entry.writes.last_row_with_value()
                grows = new_last > entry.last_row
                if grows:
                    grown[entry.name] = new_last
                    replaced.update(self._grown_tables(entry, new_last))
                context = context_for(sheet)
                patched.append((entry, context))
                filter_rows = (entry.last_row, new_last) if grows else None
                pieces = (self._streamed(entry, stream, context, filter_rows)
                          if stream is not None else
                          sheetxml.patch_pieces(sheet, entry.writes, context,
                                                filter_rows=filter_rows))
                # Streamed into the compressor; joined now only when a date may add a
                # style, so that styles.xml is complete before it is written.
                replaced[entry.part] = b"".join(pieces) if _writes_dates(entry) else pieces
        return patched

    def _sheet_stream(self, entry: _SheetEntry) -> sheetxml.SheetStream | None:
        """The part of a large written sheet whose text this session does not hold (its
        values came from :mod:`readcache`), to be patched as it is read instead of
        read whole (288 MB at 1,000,000 rows); ``None``: patch it whole."""
        if entry.scanned is not None or not entry.streamable:
            return None
        info, _body = self._package.stored(entry.part)
        if info.file_size < STREAM_PART_BYTES:
            return None
        try:
            return sheetxml.SheetStream(self._package.chunks(entry.part, STREAM_CHUNK))
        except sheetxml.NotStreamable:
            entry.streamable = False
            return None

    @staticmethod
    def _streamed(entry: _SheetEntry, stream: sheetxml.SheetStream,
                  context: sheetxml.PatchContext, filter_rows: tuple[int, int] | None
                  ) -> Iterator[bytes | memoryview]:
        """The stream's pieces; a form it finds it does not take marks the sheet to be
        patched whole when the package is made again (:meth:`_package_bytes`)."""
        try:
            yield from stream.patch(entry.writes, context, filter_rows=filter_rows)
        except sheetxml.NotStreamable:
            entry.streamable = False
            raise

    def _workbook_parts(self, replaced: dict[str, bytes | Iterable[bytes | memoryview]],
                        dropped: list[str], grown: dict[str, int]) -> None:
        """The workbook's own parts that change: workbook.xml; its relationships and the
        content types when sheets were added or the calculation chain is dropped (a
        formula was overwritten, so the chain Excel keeps is stale)."""
        new_sheets = [e for e in self._sheets if e.new]
        calc_chain = self._calc_chain_part()
        drop_chain = calc_chain is not None and self._formulas_overwritten
        if drop_chain and calc_chain is not None:
            dropped.append(calc_chain)
        workbook = self._patched_workbook(new_sheets, grown)
        if workbook is not None:
            replaced[self._workbook_part] = workbook
        if new_sheets or drop_chain:
            rels_name = rels_part(self._workbook_part)
            replaced[rels_name] = self._patched_workbook_rels(new_sheets, drop_chain)
            replaced[safety.CONTENT_TYPES_PART] = self._patched_content_types(
                new_sheets, calc_chain if drop_chain else None)

    def _patch_context(self, sheet: sheetxml.Sheet | None) -> sheetxml.PatchContext:
        return sheetxml.PatchContext(sheet.column_styles() if sheet is not None else {},
                                     self._styles.date_style, self._styles.date_styles)

    def _calc_chain_part(self) -> str | None:
        for rel in self._workbook_rels:
            if rel.type.endswith("/calcChain") and rel.target in self._package:
                return rel.target
        return None

    def _grown_tables(self, entry: _SheetEntry, new_last: int) -> dict[str, bytes]:
        """The Excel tables on the sheet that reached its last row, grown to ``new_last``."""
        grown: dict[str, bytes] = {}
        for rel in self._package.relationships(entry.part):
            if rel.type != _TABLE_TYPE or rel.external or rel.target not in self._package:
                continue
            root = parse_xml(self._package.read(rel.target))
            area = sheetxml.parse_range(root.get("ref", ""))
            if area is None or int(root.get("totalsRowCount", "0") or 0) > 0:
                continue
            if area[2] < entry.last_row or area[2] >= new_last:
                continue
            root.set("ref", sheetxml.range_text(area[0], area[1], new_last, area[3]))
            autofilter = root.find(f"{_M}autoFilter")
            if autofilter is not None:
                bigger = sheetxml.grow_ref(autofilter.get("ref", ""), new_last)
                if bigger:
                    autofilter.set("ref", bigger)
            grown[rel.target] = serialize_xml(root)
        return grown

    def _patched_workbook(self, new_sheets: list[_SheetEntry],
                          grown: dict[str, int]) -> bytes | None:
        """``xl/workbook.xml`` with the new sheets, ``fullCalcOnLoad`` and grown filter
        ranges; ``None`` when it needs no change."""
        root = parse_xml(self._package.read(self._workbook_part))
        changed = _full_calc_on_load(root)
        changed = _keep_state_very_hidden(root) or changed
        if new_sheets:
            self._add_sheet_nodes(root, new_sheets)
            changed = True
        names = root.find(f"{_M}definedNames")
        if grown and names is not None:
            changed = self._grow_filter_names(names, grown) or changed
        return serialize_xml(root) if changed else None

    def _add_sheet_nodes(self, root: etree._Element, new_sheets: list[_SheetEntry]) -> None:
        """A ``<sheet>`` in workbook.xml for each new sheet, numbered after the others."""
        sheets = root.find(f"{_M}sheets")
        if sheets is None:
            raise WorkbookError(_("{label}: xl/workbook.xml lists no sheets",
                                  label=self._label))
        ids = [int(s.get("sheetId", "0") or 0) for s in sheets]
        next_id = max(ids, default=0) + 1
        for entry, rel_id in zip(new_sheets, self._new_rel_ids(len(new_sheets)),
                                 strict=True):
            node = etree.SubElement(sheets, f"{_M}sheet")
            node.set("name", entry.name)
            node.set("sheetId", str(next_id))
            if entry.hidden:
                node.set("state", "veryHidden")
            node.set(f"{{{DOC_REL_NS}}}id", rel_id)
            next_id += 1

    def _grow_filter_names(self, names: etree._Element, grown: dict[str, int]) -> bool:
        """Grow each sheet's ``_xlnm._FilterDatabase`` range that ends above its sheet's
        new last row down to it; whether any changed."""
        order = [e.name for e in self._sheets]
        changed = False
        for defined in names:
            if defined.get("name", "").lower() != "_xlnm._filterdatabase":
                continue
            try:
                sheet_name = order[int(defined.get("localSheetId", "-1"))]
            except (ValueError, IndexError):
                continue
            if sheet_name not in grown or not defined.text or "!" not in defined.text:
                continue
            where, ref = defined.text.rsplit("!", 1)
            area = sheetxml.parse_range(ref)
            if area is None or area[2] >= grown[sheet_name]:
                continue
            top, left, _bottom, right = area
            defined.text = (f"{where}!${column_letter(left)}${top}:"
                            f"${column_letter(right)}${grown[sheet_name]}")
            changed = True
        return changed

    def _new_rel_ids(self, count: int) -> list[str]:
        taken = {r.id for r in self._workbook_rels}
        ids: list[str] = []
        number = 1
        while len(ids) < count:
            candidate = f"rId{number}"
            if candidate not in taken:
                ids.append(candidate)
            number += 1
        return ids

    def _patched_workbook_rels(self, new_sheets: list[_SheetEntry], drop_chain: bool) -> bytes:
        name = rels_part(self._workbook_part)
        root = parse_xml(self._package.read(name)) if name in self._package else etree.Element(
            f"{{{REL_NS}}}Relationships", nsmap={None: REL_NS})
        if drop_chain:
            for node in list(root):
                if node.get("Type", "").endswith("/calcChain"):
                    root.remove(node)
        folder = self._workbook_part.rsplit("/", 1)[0] + "/" if "/" in self._workbook_part \
            else ""
        for entry, rel_id in zip(new_sheets, self._new_rel_ids(len(new_sheets)), strict=True):
            node = etree.SubElement(root, f"{{{REL_NS}}}Relationship")
            node.set("Id", rel_id)
            node.set("Type", _WORKSHEET_TYPE)
            node.set("Target", entry.part[len(folder):] if entry.part.startswith(folder)
                     else "/" + entry.part)
        return serialize_xml(root)

    def _patched_content_types(self, new_sheets: list[_SheetEntry],
                               dropped_chain: str | None) -> bytes:
        root = parse_xml(self._package.read(safety.CONTENT_TYPES_PART))
        if dropped_chain is not None:
            for node in list(root):
                if node.get("PartName", "").lstrip("/").lower() == dropped_chain.lower():
                    root.remove(node)
        for entry in new_sheets:
            node = etree.SubElement(root, f"{{{CT_NS}}}Override")
            node.set("PartName", "/" + entry.part)
            node.set("ContentType", _WORKSHEET_CONTENT)
        return serialize_xml(root)

    def _check_open(self) -> None:
        if self._closed:
            raise WorkbookError(_("{label} was closed; open it again", label=self._label))


# --- helpers -----------------------------------------------------------------------------


def _writes_dates(entry: _SheetEntry) -> bool:
    return any(isinstance(value, sheetxml.DateSerial) for value in entry.writes.values_written())


def _count_below(items: Iterable[Any], limit: int) -> bool:
    """Whether ``items`` are fewer than ``limit`` (counting no further)."""
    return next(itertools.islice(items, limit - 1, None), _NONE) is _NONE


_NONE = object()


def _grid_value(grid: Grid, row: int, column: int) -> Any:
    line = grid[row - 1] if row <= len(grid) else []
    return line[column - 1] if column <= len(line) else None


def _row_width(row: list[Any]) -> int:
    for index in range(len(row) - 1, -1, -1):
        if row[index] is not None:
            return index + 1
    return 0


def _take_read(entry: _SheetEntry, read: sheetxml.CellsRead, wanted: frozenset[int] | None,
               header: list[Any]) -> None:
    """Keep a read of the part's rows (whole, or streamed) on ``entry``: row 1 is the
    ``header`` read first when only the ``wanted`` columns were (the rows read lack it)."""
    entry.grid, entry.unread_last, entry.read_columns = read.grid, read.unread_last, wanted
    entry.outside_last, entry.cache_more = read.unread_last, frozenset()
    if wanted is not None and entry.grid:
        entry.grid[0] = header
    elif header:
        entry.grid.append(header)


def _trim(grid: Grid) -> None:
    """Each row made exactly as long as it is: a row grown cell by cell holds room for
    16 cells where 9 are used (5 MB over 100,000 rows). One row at a time, so that no
    second grid is ever held."""
    for index, row in enumerate(grid):
        if row:
            grid[index] = row[:]


def _last_row(grid: Grid) -> int:
    for index in range(len(grid) - 1, -1, -1):
        if any(v is not None for v in grid[index]):
            return index + 1
    return 0


def _read_shared_strings(data: bytes) -> list[str]:
    """The shared string table, in order (phonetic runs left out)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if sheetxml.needs_normalising(data):
        data = sheetxml.normalise(data)
    root = re.search(rb"<(?:([A-Za-z_][\w.-]*):)?sst[\s>]", data[:4096])
    prefix = (root.group(1) + b":") if root and root.group(1) else b""
    patterns = sheetxml.patterns_for(prefix)
    item = re.compile(rb"<" + re.escape(prefix) + rb"si(?:\s[^>]*)?(?:/>|>(.*?)</"
                      + re.escape(prefix) + rb"si\s*>)", re.S)
    simple = re.compile(rb"<" + re.escape(prefix) + rb"t(?: xml:space=\"preserve\")?>([^<]*)</"
                        + re.escape(prefix) + rb"t>$")
    strings = []
    for match in item.finditer(data):
        inner = match.group(1) or b""
        quick = simple.match(inner)
        if quick:
            strings.append(sheetxml.unescape(quick.group(1).decode()))
        else:
            strings.append(sheetxml.text_of(inner, patterns))
    return strings


def _full_calc_on_load(root: etree._Element) -> bool:
    """Ask Excel to recalculate every formula on load (``calcPr fullCalcOnLoad``, the
    element added where the schema puts it); whether workbook.xml changed."""
    calc = root.find(f"{_M}calcPr")
    if calc is None:
        calc = etree.Element(f"{_M}calcPr")
        _insert_in_order(root, calc, "calcPr")
    if calc.get("fullCalcOnLoad") not in ("1", "true"):
        calc.set("fullCalcOnLoad", "1")
        return True
    return False


def _keep_state_very_hidden(root: etree._Element) -> bool:
    """Put xlstock's state sheet back to very hidden (not listed under Excel's Unhide)
    where another program showed it or left it only hidden: LibreOffice saves it
    ``hidden``. Whether ``xl/workbook.xml`` changed."""
    sheets = root.find(f"{_M}sheets")
    for node in sheets if sheets is not None else []:
        if node.get("name") == STATE_SHEET and node.get("state") != "veryHidden":
            node.set("state", "veryHidden")
            return True
    return False


def _insert_in_order(root: etree._Element, element: etree._Element, name: str) -> None:
    """Put ``element`` where CT_Workbook's order wants it."""
    before = set(_WORKBOOK_ORDER[:_WORKBOOK_ORDER.index(name)])
    position = 0
    for index, child in enumerate(root):
        local = etree.QName(child).localname if isinstance(child.tag, str) else ""
        if local in before:
            position = index + 1
    root.insert(position, element)


def _write_temp(temp: Path, data: bytes) -> None:
    """Write the new package to a new file ``temp`` and flush it to the disk."""
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _check_saved(temp: Path, label: str, written: set[str]) -> None:
    """The saved file must be a readable package with a workbook in it: every part
    written anew whole (inflated, its CRC checked), every part copied where the
    directory says (its local header read; its bytes are those it had)."""
    with zipfile.ZipFile(temp) as zf:
        names = set(zf.namelist())
        try:
            for name in sorted(names):
                with zf.open(name) as part:
                    while name in written and part.read(1 << 22):
                        pass
            bad = None
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            bad = str(exc)
    if bad is not None or safety.CONTENT_TYPES_PART not in names or not any(
        n.startswith("xl/workbook") for n in names
    ):
        raise WorkbookError(_("{label}: the saved copy came out incomplete; the original is "
                              "kept", label=label))


def _refuse_read_only(path: Path, label: str) -> None:
    """A read-only workbook is refused before anything is read or sent: a save would
    replace it (the folder is writable), where Excel and LibreOffice refuse to."""
    try:
        status = path.stat()
    except OSError:
        return  # the read that follows names what is wrong
    if not stat.S_ISREG(status.st_mode):
        return
    if status.st_mode & stat.S_IWUSR and os.access(path, os.W_OK):
        return
    raise ReadOnlyWorkbookError(_(
        "{label} is read-only, so xlstock will not save over it (nothing was read or sent); "
        "make it writable (File Explorer: Properties > untick Read-only; Mac or Linux: chmod "
        "u+w) or work on a copy, and try again", label=label))


def _copy_mode(original: Path, temp: Path) -> None:
    with contextlib.suppress(OSError):
        os.chmod(temp, stat.S_IMODE(original.stat().st_mode))


def _remove_stale_temp_files(path: Path) -> None:
    """Temporary files of this workbook that a killed run left (we hold the lock, so no
    live run owns one)."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
