"""xlstock.workbook.package: the raw-copy zip writer and the deflate of large parts."""

from __future__ import annotations

import io
import zipfile
import zlib

import pytest

from xlstock.workbook import package
from xlstock.workbook.package import Package, write_package


def _zip(parts: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return out.getvalue()


def _stored(data: bytes) -> dict[str, tuple[int, int, bytes]]:
    """name -> (method, CRC, compressed bytes), as the file holds them."""
    found = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            raw = data[info.header_offset:]
            start = 30 + int.from_bytes(raw[26:28], "little") + int.from_bytes(raw[28:30],
                                                                                "little")
            found[info.filename] = (info.compress_type, info.CRC,
                                    raw[start:start + info.compress_size])
    return found


def test_parts_not_replaced_are_copied_as_stored_and_the_rest_deflated_anew() -> None:
    source = _zip({"a.xml": b"<a>" + b"x" * 5000 + b"</a>", "b.bin": bytes(range(256)) * 9,
                   "gone.xml": b"<gone/>"})
    out = io.BytesIO()
    write_package(out, Package(source), {"a.xml": [b"<a>", b"new", b"</a>"]},
                  dropped=["gone.xml"], added=[("c.xml", b"<c/>")])
    before, after = _stored(source), _stored(out.getvalue())
    assert list(after) == ["a.xml", "b.bin", "c.xml"]
    assert after["b.bin"] == before["b.bin"]  # byte for byte, compressed bytes included
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
        assert zf.testzip() is None
        assert zf.read("a.xml") == b"<a>new</a>"
        assert zf.read("c.xml") == b"<c/>"


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_large_part_deflated_in_blocks_is_one_valid_stream(
    monkeypatch: pytest.MonkeyPatch, threads: int, as_bytes: bool
) -> None:
    """A part that grows past LARGE_PART is deflated in blocks on threads (whatever size
    it had before); joined, the blocks inflate to the part, under its CRC and size."""
    monkeypatch.setattr(package, "LARGE_PART", 1000)
    monkeypatch.setattr(package, "DEFLATE_BLOCK", 4096)
    monkeypatch.setattr(package, "DEFLATE_THREADS", threads)
    rows = b"".join(b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (i, i, i * 7)
                    for i in range(1, 3000))
    data = rows if as_bytes else [rows[i:i + 777] for i in range(0, len(rows), 777)]
    entry = package._deflated("xl/worksheets/sheet1.xml", data, (2026, 1, 1, 0, 0, 0))
    assert entry.size == len(rows)
    assert entry.crc == zlib.crc32(rows)
    assert zlib.decompress(entry.compressed, -15) == rows
    assert len(entry.compressed) < len(rows) // 3


def test_a_small_part_is_one_stream_at_the_default_level() -> None:
    entry = package._deflated("x.xml", [b"<x>", b"y" * 100, b"</x>"], (2026, 1, 1, 0, 0, 0))
    expected = zlib.compressobj(package.COMPRESS_LEVEL, zlib.DEFLATED, -15)
    data = b"<x>" + b"y" * 100 + b"</x>"
    assert entry.compressed == expected.compress(data) + expected.flush()
    assert (entry.size, entry.crc) == (len(data), zlib.crc32(data))


def _zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


def test_a_large_part_is_read_into_one_buffer_of_its_size() -> None:
    """zipfile's own read holds about 2.5 times a large part at its end (577 MB for the
    sheet of 1,000,000 rows); the package's read about once (issue 22)."""
    import tracemalloc

    data = b"".join(b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (n, n, n % 500)
                    for n in range(200_000))
    source = Package(_zipped("xl/worksheets/sheet1.xml", data))
    tracemalloc.start()
    try:
        read = source.read("xl/worksheets/sheet1.xml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert read == data and len(data) > package.LARGE_PART
    assert peak < 1.8 * len(data), (peak, len(data))  # zipfile: 2.5 times


def test_a_large_part_that_is_not_what_its_entry_says_is_refused() -> None:
    data = bytes(range(256)) * 8192
    zipped = bytearray(_zipped("big.xml", data))
    crc = zlib.crc32(data).to_bytes(4, "little")
    for at in range(len(zipped) - 3):  # the CRC in the local header and the directory
        if zipped[at:at + 4] == crc:
            zipped[at] ^= 1
    with pytest.raises(zipfile.BadZipFile):
        Package(bytes(zipped)).read("big.xml")
