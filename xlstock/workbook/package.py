"""A workbook file as a package of parts (ECMA-376 Part 2, OPC): read the parts that are
needed, write a new package in which every part xlstock does not change is copied
byte for byte, compressed bytes included.

Python's ``zipfile`` reads members well but can only write a member through its own
compressor, so copying an untouched 20 MB sheet would mean inflating and deflating it
again on every save. :func:`write_package` is a small hand-written zip writer (local
headers, central directory, end record; no zip64, which the size caps of
:mod:`xlstock.workbook.safety` make unnecessary) that copies a member's stored bytes as
they are, with their CRC, and deflates only the parts it is given anew. No maintained
library offers that raw copy.
"""

from __future__ import annotations

import collections
import io
import itertools
import os
import posixpath
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from lxml import etree

from xlstock.i18n import _

REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
DOC_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_LOCAL_SIGNATURE = 0x04034B50
_CENTRAL_SIGNATURE = 0x02014B50
_END_SIGNATURE = 0x06054B50
_UTF8_NAMES = 0x800
_LIMIT = 0xFFFFFFFF
COMPRESS_LEVEL = 6
"""zlib's default, for the parts xlstock rewrites..."""
LARGE_PART = 1024 * 1024
LARGE_PART_LEVEL = 1
"""...except large ones (a sheet of 100,000 rows is 28 MB, xlstock's memory of their
levels 2 MB): level 1 deflates them three times faster, to a file about 15% larger
(``bench/bench_workbook.py``)."""

XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
"""For the small parts xlstock edits (workbook, relationships, content types, styles,
tables). :mod:`xlstock.workbook.safety` has refused any DTD before a part gets here;
entities are not resolved and nothing is fetched all the same."""


def parse_xml(data: bytes) -> etree._Element:
    """A small part as an element tree (see :data:`XML_PARSER`)."""
    return etree.fromstring(data, XML_PARSER)


def serialize_xml(root: etree._Element) -> bytes:
    """An edited small part, with the declaration Office writes."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


@dataclass(frozen=True)
class Relationship:
    """One relationship of a part: its id, type and target part (resolved)."""

    id: str
    type: str
    target: str
    external: bool


def rels_part(part: str) -> str:
    """The relationships part of ``part``: ``xl/workbook.xml`` ->
    ``xl/_rels/workbook.xml.rels``."""
    folder, base = posixpath.split(part)
    return posixpath.join(folder, "_rels", base + ".rels")


def resolve(source: str, target: str) -> str:
    """A relationship target, relative to its source part, as a part name."""
    if target.startswith("/"):
        return target[1:]
    return posixpath.normpath(posixpath.join(posixpath.dirname(source), target))


class Package:
    """The parts of a workbook file held in memory (the zip's bytes, read once)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        self.infos = [i for i in self.zip.infolist() if not i.is_dir()]
        self._by_name = {i.filename: i for i in self.infos}

    def __contains__(self, part: str) -> bool:
        return part in self._by_name

    def names(self) -> list[str]:
        """Every part, in the zip's order."""
        return [i.filename for i in self.infos]

    def read(self, part: str) -> bytes:
        """A part's bytes, inflated (``KeyError`` if the package has no such part).

        A large part is inflated a chunk at a time into a buffer of its size, made
        once: ``zipfile``'s own read joins what it inflates as it goes, and holds about
        twice the part at its end (577 MB for a sheet of 1,000,000 rows, 280 MB so)."""
        info = self._by_name[part]
        if info.file_size < LARGE_PART:
            return self.zip.read(info)
        out = io.BytesIO()
        out.seek(info.file_size - 1)
        out.write(b"\0")  # the buffer at its size, once
        out.seek(0)
        with self.zip.open(info) as member:  # its CRC and size checked, as by zip.read
            while chunk := member.read(LARGE_PART):
                out.write(chunk)
        if out.tell() != info.file_size:
            raise zipfile.BadZipFile(_("part {part} is truncated", part=part))
        return out.getvalue()

    def size(self, part: str) -> int:
        """A part's size inflated (``KeyError`` if the package has no such part)."""
        return self._by_name[part].file_size

    def chunks(self, part: str, size: int = 1024 * 1024) -> Iterator[bytes]:
        """A part's bytes, inflated, ``size`` at a time (its CRC checked at the end),
        for a part too large to hold whole."""
        with self.zip.open(self._by_name[part]) as member:
            while chunk := member.read(size):
                yield chunk

    def relationships(self, part: str) -> list[Relationship]:
        """The relationships of ``part`` (``[]`` when it has none)."""
        name = rels_part(part)
        if name not in self:
            return []
        found = []
        for node in parse_xml(self.read(name)):
            if node.tag != f"{{{REL_NS}}}Relationship":
                continue
            external = node.get("TargetMode", "").lower() == "external"
            target = node.get("Target", "")
            found.append(Relationship(
                node.get("Id", ""), node.get("Type", ""),
                target if external else resolve(part, target), external,
            ))
        return found

    def stored(self, part: str) -> tuple[zipfile.ZipInfo, bytes]:
        """A part's entry and its bytes exactly as stored (still compressed), read from
        behind its local header; the central directory's sizes and CRC describe them."""
        info = self._by_name[part]
        offset = info.header_offset
        header = self.data[offset:offset + _LOCAL.size]
        if len(header) < _LOCAL.size or _LOCAL.unpack(header)[0] != _LOCAL_SIGNATURE:
            raise zipfile.BadZipFile(_("part {part}: bad local header", part=part))
        name_length, extra_length = struct.unpack_from("<HH", header, 26)
        start = offset + _LOCAL.size + name_length + extra_length
        body = self.data[start:start + info.compress_size]
        if len(body) != info.compress_size:
            raise zipfile.BadZipFile(_("part {part} is truncated", part=part))
        return info, body


@dataclass(frozen=True)
class _Entry:
    name: str
    method: int
    date_time: tuple[int, int, int, int, int, int]
    crc: int
    compressed: bytes
    size: int


def _dos_time(date_time: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time
    year = min(max(year, 1980), 2107)
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


def write_package(out: io.BufferedIOBase | io.BytesIO, source: Package,
                  replaced: Mapping[str, bytes | Iterable[bytes | memoryview]],
                  dropped: Iterable[str] = (),
                  added: Iterable[tuple[str, bytes]] = ()) -> None:
    """Write a package to ``out``: ``source``'s parts in their order, each copied as
    stored unless ``replaced`` gives it new bytes, whole or in pieces (then deflated),
    or it is ``dropped``; then the ``added`` parts. Entries keep their names and
    dates."""
    skip = set(dropped)
    entries: list[_Entry] = []
    for info in source.infos:
        name = info.filename
        if name in skip:
            continue
        if name in replaced:
            entries.append(_deflated(name, replaced[name], info.date_time))
            continue
        info, body = source.stored(name)
        entries.append(_Entry(name, info.compress_type, info.date_time, info.CRC, body,
                              info.file_size))
    for name, data in added:
        entries.append(_deflated(name, data, (1980, 1, 1, 0, 0, 0)))
    _write_entries(out, entries)


def _deflated(name: str, data: bytes | Iterable[bytes | memoryview],
              date_time: tuple[int, int, int, int, int, int]) -> _Entry:
    """A part deflated, from its bytes or its pieces: up to :data:`LARGE_PART` bytes at
    :data:`COMPRESS_LEVEL`, a larger part (known once that much has streamed in) at
    :data:`LARGE_PART_LEVEL`, in blocks on :data:`DEFLATE_THREADS` threads (zlib lets
    go of the GIL while it works)."""
    if isinstance(data, bytes):
        view = memoryview(data)
        data = [view[i:i + DEFLATE_BLOCK] for i in range(0, len(data), DEFLATE_BLOCK)]
    pieces = iter(data)
    head = bytearray()
    for piece in pieces:
        head += piece
        if len(head) > LARGE_PART:
            crc, size, compressed = _deflate_in_blocks(itertools.chain([head], pieces),
                                                       LARGE_PART_LEVEL)
            return _Entry(name, zipfile.ZIP_DEFLATED, date_time, crc, compressed, size)
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -15)
    compressed = compressor.compress(head) + compressor.flush()
    return _Entry(name, zipfile.ZIP_DEFLATED, date_time, zlib.crc32(head), compressed,
                  len(head))


DEFLATE_BLOCK = 2 * 1024 * 1024
"""Bytes of a large part deflated as one block."""
DEFLATE_THREADS = max(1, min(4, os.cpu_count() or 1))
_WINDOW = 32 * 1024


def _deflate_in_blocks(pieces: Iterable[bytes | bytearray | memoryview],
                       level: int) -> tuple[int, int, bytes]:
    """(CRC, size, raw deflate stream) of the pieces, their blocks deflated in parallel.

    Written by hand, as pigz does it (no maintained library deflates a zip member this
    way): each block is deflated on its own, primed with the last 32 KiB of the block
    before as its dictionary, and ends with a sync flush (an empty stored block), the
    last with the final block. The blocks' streams joined are one valid deflate stream,
    about as small as one compressor's. At most one block a thread, and the one being
    filled, are held at a time."""
    crc = size = 0
    block = bytearray()
    previous = b""
    done: list[bytes] = []
    in_flight: collections.deque[Future[bytes]] = collections.deque()
    with ThreadPoolExecutor(max_workers=DEFLATE_THREADS) as pool:
        for piece in pieces:
            crc = zlib.crc32(piece, crc)
            size += len(piece)
            block += piece
            if len(block) >= DEFLATE_BLOCK:
                if len(in_flight) >= DEFLATE_THREADS:
                    done.append(in_flight.popleft().result())
                in_flight.append(pool.submit(_deflate_block, block, previous, level, False))
                previous = bytes(block[-_WINDOW:])
                block = bytearray()
        in_flight.append(pool.submit(_deflate_block, block, previous, level, True))
        done.extend(stream.result() for stream in in_flight)
    return crc, size, b"".join(done)


def _deflate_block(data: bytearray, dictionary: bytes, level: int, last: bool) -> bytes:
    compressor = (zlib.compressobj(level, zlib.DEFLATED, -15, zdict=dictionary) if dictionary
                  else zlib.compressobj(level, zlib.DEFLATED, -15))
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last
                                                        else zlib.Z_SYNC_FLUSH)


def _write_entries(out: io.BufferedIOBase | io.BytesIO, entries: list[_Entry]) -> None:
    central = bytearray()
    offset = 0
    for entry in entries:
        name = entry.name.encode("utf-8")
        flags = 0 if entry.name.isascii() else _UTF8_NAMES
        if max(offset, entry.size, len(entry.compressed)) >= _LIMIT:
            raise zipfile.LargeZipFile(_("part {part} is too large for a workbook",
                                          part=entry.name))
        dos_time, dos_date = _dos_time(entry.date_time)
        out.write(_LOCAL.pack(_LOCAL_SIGNATURE, 20, flags, entry.method, dos_time, dos_date,
                              entry.crc, len(entry.compressed), entry.size, len(name), 0))
        out.write(name)
        out.write(entry.compressed)
        central += _CENTRAL.pack(_CENTRAL_SIGNATURE, 20, 20, flags, entry.method, dos_time,
                                 dos_date, entry.crc, len(entry.compressed), entry.size,
                                 len(name), 0, 0, 0, 0, 0, offset)
        central += name
        offset += _LOCAL.size + len(name) + len(entry.compressed)
    out.write(central)
    out.write(_END.pack(_END_SIGNATURE, 0, 0, len(entries), len(entries), len(central),
                        offset, 0))
