"""Who else is working on a workbook (xlstock/workbook/locking.py), on real files and
real processes: the run lock leaves no file behind, keeps runs apart while its file
comes and goes, and names its holder from inside the file; Excel's and LibreOffice's
lock files stop a writing run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.shopkit import Shop
from support.xlsx_craft import merchant_workbook

from xlstock import i18n
from xlstock.cli import main
from xlstock.errors import WorkbookError
from xlstock.workbook import locking
from xlstock.workbook.locking import (
    RunLock,
    libreoffice_lock,
    refuse_if_open_in_a_spreadsheet,
)
from xlstock.workbook.xlsx_file import XlsxFile


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- the run lock ---------------------------------------------------------------------------


def test_no_file_stays_beside_the_workbook_after_a_run(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        assert listing(tmp_path) == [".stock.xlsx.xlstock-lock", "stock.xlsx"]
        book.write_block("Stock", 2, 4, [[5]])
        book.save()
    assert listing(tmp_path) == ["stock.xlsx"]
    with pytest.raises(RuntimeError), XlsxFile.open(path):
        raise RuntimeError("the work failed")
    assert listing(tmp_path) == ["stock.xlsx"]


def test_the_whole_loop_leaves_only_the_workbook(stock_service, tmp_path: Path) -> None:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 2}})
    for command in ("validate", "preview", "publish", "sync"):
        shop.run(command, str(shop.workbook), *([] if command == "validate" else ["-q"]))
    shop.run("buttons", str(shop.workbook))
    assert listing(tmp_path) == ["stock.xlsm", "stock.xlsx"]


def test_the_holder_is_named_from_inside_the_lock_file(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    (tmp_path / ".stock.xlsx.xlstock-owner").write_text("{}")  # left by an older xlstock
    with RunLock(path, "stock.xlsx") as lock:
        holder = json.loads(lock.lock_path.read_text(encoding="utf-8"))
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert listing(tmp_path) == [".stock.xlsx.xlstock-lock", "stock.xlsx"]
        with pytest.raises(WorkbookError) as caught:
            RunLock(path, "stock.xlsx").acquire()
    message = str(caught.value)
    assert message.startswith("another xlstock run is working on stock.xlsx (since ")
    assert f"pid {os.getpid()})" in message and "wait for it to finish" in message


def test_a_holder_on_another_computer_is_named_with_it(tmp_path: Path) -> None:
    path = tmp_path / "stock.xlsx"
    holder = {"pid": 4242, "since": "2026-11-27T10:31:02", "host": "shop-pc"}
    script = textwrap.dedent(f"""
        import fcntl, json, os, sys
        fd = os.open({str(locking.lock_file(path))!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({holder!r}).encode())
        print("locked", flush=True)
        sys.stdin.read()
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as other:
        assert other.stdout is not None and other.stdin is not None
        try:
            assert other.stdout.readline().strip() == "locked"
            with pytest.raises(WorkbookError) as caught:
                RunLock(path, "stock.xlsx").acquire()
        finally:
            other.stdin.close()
            other.wait(timeout=30)
    assert "(since 2026-11-27 10:31:02, pid 4242 on shop-pc)" in str(caught.value)


def test_a_killed_run_leaves_a_file_the_next_run_takes_over(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    killed = ("import os\nfrom xlstock.workbook.locking import RunLock\nfrom pathlib import Path\n"
              f"RunLock(Path({str(path)!r}), 'stock.xlsx').acquire()\nos._exit(9)\n")
    subprocess.run([sys.executable, "-c", killed], check=False, timeout=60)
    assert listing(tmp_path) == [".stock.xlsx.xlstock-lock", "stock.xlsx"]  # no lock on it
    with XlsxFile.open(path):
        holder = json.loads(locking.lock_file(path).read_text(encoding="utf-8"))
        assert holder["pid"] == os.getpid()
    assert listing(tmp_path) == ["stock.xlsx"]


def test_a_lock_file_removed_between_open_and_lock_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the unlink on release opens: this run opens the lock file, the holder
    releases (removing it) and a third run creates a new one and locks it, and only then
    does this run lock the file it opened, now nameless. It must see that and start
    again on the file the path names (which the third run holds)."""
    path = tmp_path / "stock.xlsx"
    real_lock = locking._lock
    first, third = RunLock(path, "stock.xlsx"), RunLock(path, "stock.xlsx")
    first.acquire()
    opened_inodes: list[int] = []
    others_moving = False

    def lock_after_the_others_moved(fd: int) -> bool:
        nonlocal others_moving
        if others_moving:
            return real_lock(fd)
        opened_inodes.append(os.fstat(fd).st_ino)
        if len(opened_inodes) == 1:
            others_moving = True
            first.release()  # removes the file this run has open
            third.acquire()  # a new file at the same path, locked
            others_moving = False
        return real_lock(fd)

    monkeypatch.setattr(locking, "_lock", lock_after_the_others_moved)
    with pytest.raises(WorkbookError, match="another xlstock run is working on stock.xlsx"):
        RunLock(path, "stock.xlsx").acquire()
    assert len(opened_inodes) == 2 and opened_inodes[0] != opened_inodes[1]
    assert locking.lock_file(path).stat().st_ino == opened_inodes[1]
    third.release()
    assert listing(tmp_path) == []


RACER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from xlstock.errors import WorkbookError
    from xlstock.workbook.locking import RunLock

    workbook, inside, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    done = overlaps = 0
    while done < rounds:
        lock = RunLock(workbook, "stock.xlsx")
        try:
            lock.acquire()
        except WorkbookError:
            continue
        try:
            try:  # only one run at a time may hold this marker
                fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.close(fd)
            except FileExistsError:
                overlaps += 1
            else:
                time.sleep(0.0005)
                os.unlink(inside)
            done += 1
        finally:
            lock.release()
    print(overlaps)
""")


def test_runs_never_interleave_while_the_lock_file_comes_and_goes(tmp_path: Path) -> None:
    workbook, inside = tmp_path / "stock.xlsx", tmp_path / "inside"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(workbook), str(inside), "200"],
                               stdout=subprocess.PIPE, text=True) for _ in range(4)]
    overlaps = [int(racer.communicate(timeout=240)[0]) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0, 0, 0]
    assert overlaps == [0, 0, 0, 0]
    assert listing(tmp_path) == []


def test_a_folder_without_file_locks_is_named(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def no_locks(fd: int) -> bool:
        raise OSError(37, "No locks available")  # ENOLCK: an NFS share without lockd

    monkeypatch.setattr(locking, "_lock", no_locks)
    with pytest.raises(WorkbookError) as caught:
        RunLock(tmp_path / "stock.xlsx", "stock.xlsx").acquire()
    assert f"the folder {tmp_path} does not support file locks" in str(caught.value)
    assert "move the workbook to a folder on this computer's disk" in str(caught.value)


# --- spreadsheet programs ----------------------------------------------------------------------


LIBREOFFICE_LOCKS = [
    # As LibreOffice 7.4 wrote them (tests/test_libreoffice.py makes it write one for real).
    (b",root,vm,01.12.2026 01:32,file:///tmp/lo-exp/profile;", "root", "vm",
     "01.12.2026 01:32"),
    ("Zoë Ünal\\, Jr\\; x\\\\y,zoe,shop-pc,01.12.2026 10:00,file:///home/zoe/.config/"
     "libreoffice/4;".encode(), "Zoë Ünal, Jr; x\\y", "shop-pc", "01.12.2026 10:00"),
    (b"Jane Doe,jane,host", "Jane Doe", "host", None),  # cut short
    (b"", None, None, None),  # empty: open, by someone unknown
    (b"\xff\xfe\x00garbage\n;", None, None, None),
]


@pytest.mark.parametrize(("content", "user", "host", "since"), LIBREOFFICE_LOCKS)
def test_libreoffice_lock_file_formats(tmp_path: Path, content: bytes, user: str | None,
                                       host: str | None, since: str | None) -> None:
    book = tmp_path / "stock.xlsx"
    assert libreoffice_lock(book) is None
    (tmp_path / ".~lock.stock.xlsx#").write_bytes(content)
    found = libreoffice_lock(book)
    assert found is not None
    assert (found.user, found.host, found.since) == (user, host, since)


def test_a_workbook_open_in_libreoffice_is_refused_naming_the_user(tmp_path: Path) -> None:
    book = tmp_path / "stock.xlsx"
    refuse_if_open_in_a_spreadsheet(book, "stock.xlsx")  # nothing beside it: fine
    lock = tmp_path / ".~lock.stock.xlsx#"
    lock.write_bytes(f"Zoë Ünal,zoe,{socket.gethostname()},01.12.2026 10:00,x;".encode())
    with pytest.raises(WorkbookError) as caught:
        refuse_if_open_in_a_spreadsheet(book, "stock.xlsx")
    assert str(caught.value) == (
        "stock.xlsx is open in LibreOffice by Zoë Ünal (since 2026-12-01 10:00): close it "
        "there first, then try again. If LibreOffice is not running, delete "
        ".~lock.stock.xlsx#")
    with i18n.speaking("fr"), pytest.raises(WorkbookError) as in_french:
        refuse_if_open_in_a_spreadsheet(book, "stock.xlsx")
    # LibreOffice writes its own date format in the lock; the merchant reads hers
    assert "ouvert dans LibreOffice par Zoë Ünal (depuis 01/12/2026 10:00)" in \
        str(in_french.value)
    lock.write_bytes(f"Zoë Ünal,zoe,{socket.gethostname()},hier soir,x;".encode())
    with pytest.raises(WorkbookError, match=r"by Zoë Ünal \(since hier soir\)"):
        refuse_if_open_in_a_spreadsheet(book, "stock.xlsx")
    lock.write_bytes(b",zoe,shop-pc,01.12.2026 10:00,x;")
    with pytest.raises(WorkbookError, match="open in LibreOffice by zoe on shop-pc "):
        refuse_if_open_in_a_spreadsheet(book, "stock.xlsx")


@pytest.mark.parametrize("command", ["sync", "preview", "publish", "buttons"])
def test_every_writing_command_refuses_a_workbook_open_in_libreoffice(
    stock_service, tmp_path: Path, command: str
) -> None:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 2}})
    if command == "buttons":  # it writes the .xlsm: that is the file that must not be open
        shop.run("buttons", str(shop.workbook))
        shop.workbook = shop.workbook.with_suffix(".xlsm")
    lock = tmp_path / f".~lock.{shop.workbook.name}#"
    lock.write_bytes(b"Zo\xc3\xab \xc3\x9cnal,zoe,pc,x,y;")
    before, live, folder = shop.workbook.read_bytes(), shop.live(), listing(tmp_path)
    result = CliRunner().invoke(main, [command, str(shop.workbook)], env=shop.env)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"xlstock: {shop.workbook} is open in LibreOffice by "
                                    "Zoë Ünal"), result.stderr
    assert f"If LibreOffice is not running, delete {lock.name}" in result.stderr
    assert shop.workbook.read_bytes() == before and shop.live() == live
    assert listing(tmp_path) == folder
    assert shop.run("validate", str(shop.workbook)).exit_code == 0  # reading is fine
