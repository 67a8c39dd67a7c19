"""The compound-file writer (:mod:`xlstock.macros.cfb`), read back by olefile in its
strict mode: streams, the directory's sibling trees as [MS-CFB] orders them, names."""

from __future__ import annotations

import io
import os
import random

import olefile
import pytest

from xlstock.macros.cfb import write_compound_file


def _open_strict(data: bytes) -> olefile.OleFileIO:
    return olefile.OleFileIO(io.BytesIO(data), raise_defects=olefile.DEFECT_UNSURE)


def test_compound_file_reads_back_in_olefile_strict_mode() -> None:
    rng = random.Random(7)
    streams = {
        "PROJECT": b"ID=...",
        "PROJECTwm": b"\x00\x00",
        "VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x01\x00",
        "VBA/dir": bytes(rng.getrandbits(8) for _ in range(828)),
        "VBA/mini max": bytes(rng.getrandbits(8) for _ in range(4095)),
        "VBA/cutoff": bytes(rng.getrandbits(8) for _ in range(4096)),
        "VBA/big": bytes(rng.getrandbits(8) for _ in range(70_000)),
        "VBA/empty": b"",
        "Other/Deeper/leaf": b"leaf",
    }
    data = write_compound_file(streams)
    assert data[:8] == bytes.fromhex("D0CF11E0A1B11AE1") and len(data) % 512 == 0
    ole = _open_strict(data)
    listed = {"/".join(path): ole.openstream("/".join(path)).read() for path in ole.listdir()}
    assert listed == streams
    assert ole.get_type("VBA") == olefile.STGTY_STORAGE


def test_compound_file_sibling_trees_are_ordered_as_the_spec_requires() -> None:
    names = ["dir", "a", "ThisWorkbook", "Sheet10", "Sheet2", "xlwings", "_VBA_PROJECT", "Zz"]
    data = write_compound_file({f"VBA/{n}": n.encode() for n in names})
    ole = _open_strict(data)
    entries = ole.direntries

    def key(entry: olefile.olefile.OleDirectoryEntry) -> tuple[int, str]:
        return (len(entry.name), entry.name.upper())

    def check(sid: int, low: tuple[int, str] | None, high: tuple[int, str] | None) -> int:
        if sid == olefile.NOSTREAM:
            return 0
        entry = entries[sid]
        assert (low is None or key(entry) > low) and (high is None or key(entry) < high)
        return 1 + check(entry.sid_left, low, key(entry)) + check(entry.sid_right, key(entry), high)

    vba = next(e for e in entries if e is not None and e.name == "VBA")
    assert check(vba.sid_child, None, None) == len(names)


def test_compound_file_is_deterministic_and_refuses_bad_names() -> None:
    streams = {"A/b": b"1", "c": os.urandom(5000)}
    assert write_compound_file(streams) == write_compound_file(dict(streams))
    with pytest.raises(ValueError, match="invalid compound-file entry name"):
        write_compound_file({"x" * 32: b""})
    with pytest.raises(ValueError, match="duplicate"):
        write_compound_file({"A/b": b"1", "a/B": b"2"})
