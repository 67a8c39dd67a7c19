"""xlstock.workbook.files: the atomic write every saved workbook goes through."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from xlstock.errors import WorkbookError
from xlstock.workbook import files
from xlstock.workbook.files import write_atomic


def leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def test_a_replaced_file_gets_the_new_bytes_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "stock.xlsx"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    write_atomic(target, b"new bytes")
    assert target.read_bytes() == b"new bytes"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path, target.name) == []


def test_a_new_file_gets_the_usual_mode_not_the_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "new.xlsm"
    mask = os.umask(0o022)
    try:
        write_atomic(target, b"x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_full_disk_leaves_the_file_as_it_was_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "stock.xlsx"
    target.write_bytes(b"old")
    real_fsync = os.fsync

    def full(fd: int) -> None:
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(WorkbookError, match=r"the disk is full \(stock.xlsx is unchanged\)"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, target.name) == []


def test_a_folder_that_does_not_exist_is_named(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "stock.xlsx"
    with pytest.raises(WorkbookError, match=f"Cannot write {target}"):
        write_atomic(target, b"x")


def test_a_read_only_file_is_never_replaced(tmp_path: Path) -> None:
    """Issue 19: a chmod 444 workbook in a writable folder was replaced."""
    from xlstock.errors import ReadOnlyWorkbookError

    target = tmp_path / "stock.xlsm"
    target.write_bytes(b"old")
    os.chmod(target, 0o444)
    with pytest.raises(ReadOnlyWorkbookError, match="stock.xlsm is read-only"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, target.name) == []


def test_a_file_another_program_saved_since_it_was_read_is_kept(tmp_path: Path) -> None:
    from xlstock.errors import WorkbookChangedError

    target = tmp_path / "stock.xlsm"
    target.write_bytes(b"as read")
    write_atomic(target, b"mine", expected=b"as read")  # unchanged since: replaced
    assert target.read_bytes() == b"mine"
    target.write_bytes(b"theirs")
    with pytest.raises(WorkbookChangedError, match="saved by another program"):
        write_atomic(target, b"mine again", expected=b"mine")
    assert target.read_bytes() == b"theirs"
    assert leftovers(tmp_path, target.name) == []
