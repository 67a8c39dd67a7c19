"""A small writer for Compound File Binary containers ([MS-CFB] version 3).

olefile and the other Python CFB packages read compound files or rewrite streams of
the same size; none creates a new file, which is what a generated ``vbaProject.bin``
needs. This writer does only that: it lays out a complete file in one go from a
mapping of stream paths to bytes, deterministically (no timestamps, no CLSIDs).

Layout: 512-byte sectors; streams shorter than 4,096 bytes go to the mini stream
(64-byte mini sectors, chained in the mini FAT), longer ones to regular sectors. The
directory's sibling trees are plain binary search trees with every node black, which
[MS-CFB] 2.6.4 allows as the simplest valid red-black tree.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

SECTOR = 512
MINI_SECTOR = 64
MINI_CUTOFF = 4096
ENDOFCHAIN = 0xFFFFFFFE
FREESECT = 0xFFFFFFFF
FATSECT = 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF
HEADER_DIFAT_SLOTS = 109
SIGNATURE = bytes.fromhex("D0CF11E0A1B11AE1")

_STORAGE, _STREAM, _ROOT = 1, 2, 5
_BLACK = 1


@dataclass
class _Entry:
    name: str
    kind: int
    data: bytes = b""
    children: dict[str, _Entry] = field(default_factory=dict)
    index: int = -1
    left: int = NOSTREAM
    right: int = NOSTREAM
    child: int = NOSTREAM
    start: int = ENDOFCHAIN
    size: int = 0


def _sort_key(name: str) -> tuple[int, str]:
    """[MS-CFB] 2.6.4: shorter names first, then by upper-cased UTF-16 code units."""
    return (len(name.encode("utf-16-le")), name.upper())


def _check_name(name: str) -> None:
    if not name or len(name) > 31 or any(c in name for c in "/\\:!"):
        raise ValueError(f"invalid compound-file entry name {name!r} (1-31 chars, no /\\:!)")


def _build_tree(streams: Mapping[str, bytes]) -> _Entry:
    root = _Entry("Root Entry", _ROOT)
    for path, data in streams.items():
        parts = path.split("/")
        node = root
        for part in parts[:-1]:
            _check_name(part)
            node = node.children.setdefault(part.upper(), _Entry(part, _STORAGE))
            if node.kind != _STORAGE:
                raise ValueError(f"{path!r}: {part!r} is a stream, not a storage")
        _check_name(parts[-1])
        if parts[-1].upper() in node.children:
            raise ValueError(f"duplicate compound-file entry {path!r}")
        node.children[parts[-1].upper()] = _Entry(parts[-1], _STREAM, data=bytes(data))
    return root


def _number(root: _Entry) -> list[_Entry]:
    """Give every entry its directory index: root first, then depth-first per storage."""
    entries: list[_Entry] = []

    def visit(entry: _Entry) -> None:
        entry.index = len(entries)
        entries.append(entry)
        for child in sorted(entry.children.values(), key=lambda e: _sort_key(e.name)):
            visit(child)

    visit(root)

    def link(entries_sorted: list[_Entry]) -> int:
        if not entries_sorted:
            return NOSTREAM
        middle = len(entries_sorted) // 2
        node = entries_sorted[middle]
        node.left = link(entries_sorted[:middle])
        node.right = link(entries_sorted[middle + 1 :])
        return node.index

    for entry in entries:
        if entry.children:
            entry.child = link(sorted(entry.children.values(), key=lambda e: _sort_key(e.name)))
    return entries


def _chain(fat: list[int], start: int, count: int) -> None:
    for offset in range(count):
        fat[start + offset] = start + offset + 1 if offset + 1 < count else ENDOFCHAIN


def _pad(data: bytes, unit: int) -> bytes:
    return data + b"\0" * (-len(data) % unit)


def _directory_entry(entry: _Entry | None) -> bytes:
    if entry is None:
        return struct.pack("<64sHBBIII16sIQQIQ", b"", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM,
                           b"", 0, 0, 0, 0, 0)
    encoded = entry.name.encode("utf-16-le") + b"\0\0"
    return struct.pack(
        "<64sHBBIII16sIQQIQ", encoded, len(encoded), entry.kind, _BLACK,
        entry.left, entry.right, entry.child, b"", 0, 0, 0, entry.start, entry.size,
    )


def write_compound_file(streams: Mapping[str, bytes]) -> bytes:
    """Return a complete compound file holding ``streams``, keyed by ``/``-separated
    paths (``"VBA/dir"``); storages are created from the paths. Raises ``ValueError``
    for an invalid or duplicate name."""
    root = _build_tree(streams)
    entries = _number(root)
    stream_entries = [e for e in entries if e.kind == _STREAM]

    mini = bytearray()
    mini_fat: list[int] = []
    big: list[_Entry] = []
    for entry in stream_entries:
        entry.size = len(entry.data)
        if entry.size == 0:
            entry.start = ENDOFCHAIN
        elif entry.size < MINI_CUTOFF:
            entry.start = len(mini_fat)
            count = -(-entry.size // MINI_SECTOR)
            mini_fat.extend([0] * count)
            _chain(mini_fat, entry.start, count)
            mini += _pad(entry.data, MINI_SECTOR)
        else:
            big.append(entry)

    body: list[bytes] = []
    fat: list[int] = []

    def allocate(data: bytes) -> int:
        start = len(fat)
        count = len(data) // SECTOR
        fat.extend([0] * count)
        _chain(fat, start, count)
        body.append(data)
        return start

    for entry in big:
        entry.start = allocate(_pad(entry.data, SECTOR))
    if mini:
        root.start = allocate(_pad(bytes(mini), SECTOR))
        root.size = len(mini)
    slots = -(-len(entries) // 4) * 4
    directory = b"".join(_directory_entry(e) for e in entries)
    directory += _directory_entry(None) * (slots - len(entries))
    first_directory = allocate(directory)
    first_mini_fat, mini_fat_sectors = ENDOFCHAIN, 0
    if mini_fat:
        slots = -(-len(mini_fat) // (SECTOR // 4)) * (SECTOR // 4)
        mini_fat.extend([FREESECT] * (slots - len(mini_fat)))
        table = struct.pack(f"<{len(mini_fat)}I", *mini_fat)
        first_mini_fat = allocate(table)
        mini_fat_sectors = len(table) // SECTOR

    fat_sectors = 0
    while fat_sectors * (SECTOR // 4) < len(fat) + fat_sectors:
        fat_sectors += 1
    if fat_sectors > HEADER_DIFAT_SLOTS:
        raise ValueError("compound file too large for a header-only DIFAT (about 6.8 MB)")
    first_fat = len(fat)
    fat.extend([FATSECT] * fat_sectors)
    fat.extend([FREESECT] * (fat_sectors * (SECTOR // 4) - len(fat)))
    body.append(struct.pack(f"<{len(fat)}I", *fat))

    difat = [first_fat + i for i in range(fat_sectors)]
    difat += [FREESECT] * (HEADER_DIFAT_SLOTS - len(difat))
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        SIGNATURE, b"", 0x003E, 0x0003, 0xFFFE, 9, 6, b"",
        0, fat_sectors, first_directory, 0, MINI_CUTOFF,
        first_mini_fat, mini_fat_sectors, ENDOFCHAIN, 0,
    ) + struct.pack(f"<{HEADER_DIFAT_SLOTS}I", *difat)
    return _pad(header, SECTOR) + b"".join(body)
