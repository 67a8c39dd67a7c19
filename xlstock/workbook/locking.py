"""Who else is working on a workbook file: a spreadsheet program, or another xlstock run.

**Spreadsheet programs.** Excel and LibreOffice leave a small file beside a workbook
they have open: Excel ``~$stock.xlsx``, LibreOffice ``.~lock.stock.xlsx#``. Saving the
workbook behind their back would be undone by their next save (Excel for Mac and
LibreOffice do not lock the file itself), so a writing run refuses such a workbook
first, naming who has it open (:func:`refuse_if_open_in_a_spreadsheet`).

**Other xlstock runs.** :class:`RunLock` holds an OS lock (``flock`` on Unix,
``msvcrt.locking`` on Windows) on ``.<name>.xlstock-lock`` beside the workbook, with the
holder's pid, start time and computer written inside it for the message a second run
gets. The OS drops the lock when the holder dies, and the file goes when the run ends:
on Unix the holder unlinks it while it still holds the lock, and a run that locked a
file which was unlinked meanwhile (it opened it just before) sees that the path no
longer names it and starts again; on Windows the file is opened delete-on-close, so it
goes with the last handle. A run killed outright leaves the file on Unix (harmless, and
without a lock on it); the next run takes it over and removes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from xlstock import i18n
from xlstock.errors import WorkbookError
from xlstock.i18n import _

LOCK_SUFFIX = ".xlstock-lock"
_OLD_OWNER_SUFFIX = ".xlstock-owner"
"""Where earlier versions kept the holder's details beside the lock; removed when seen."""
_ATTEMPTS = 50
"""Times a run starts again because the lock file it locked had been removed meanwhile
(each time another run finished in between): far more than real contention gives."""
_HOLDER_WAIT = 0.2
"""Seconds a refused run waits for the holder to finish writing its details."""
_WINDOWS_LOCK_OFFSET = 1 << 30
"""Windows locks are mandatory: the byte locked lies far past the holder's details, so
that a second run can still read them."""


# --- spreadsheet programs ----------------------------------------------------------------


def excel_lock_owner(path: str | os.PathLike[str]) -> str | None:
    """The user named in Excel's owner file ``~$<name>`` beside ``path``, if there is one.

    Excel writes it while the workbook is open: one byte with the name's length, the name
    in the Windows code page, spaces up to offset 54 or 55, then a two-byte length and
    the name again in UTF-16LE (Word's variant pads with zeros and puts the second copy
    at 54). The UTF-16 copy is preferred; the code-page copy is the fallback."""
    path = Path(path)
    owner_file = path.with_name("~$" + path.name)
    try:
        with open(owner_file, "rb") as fh:
            data = fh.read(512)
    except OSError:
        return None
    if not data or not 1 <= data[0] <= 52:
        return None
    for at in (55, 54):
        if len(data) >= at + 2:
            length = int.from_bytes(data[at:at + 2], "little")
            end = at + 2 + 2 * length
            if 1 <= length <= 52 and len(data) >= end:
                try:
                    name = data[at + 2:end].decode("utf-16-le").strip()
                except UnicodeDecodeError:
                    continue
                if name and name.isprintable():
                    return name
    name = data[1:1 + data[0]].decode("cp1252", errors="replace").strip()
    return name if name and name.isprintable() else None


@dataclass(frozen=True)
class LibreOfficeLock:
    """What LibreOffice's lock file says: who, on which computer, since when."""

    user: str | None
    host: str | None
    since: str | None


def libreoffice_lock_file(path: str | os.PathLike[str]) -> Path:
    """LibreOffice's lock file for the workbook ``path``: ``.~lock.<name>#`` beside it."""
    path = Path(path)
    return path.with_name(f".~lock.{path.name}#")


def libreoffice_lock(path: str | os.PathLike[str]) -> LibreOfficeLock | None:
    """LibreOffice's lock file beside ``path``, read; ``None`` when there is none.

    It is one line of UTF-8, ``user name,system user,computer,dd.mm.yyyy hh:mm,profile
    URL;``, with ``\\``, ``,`` and ``;`` escaped by a backslash inside a field (the user
    name is the one under Tools > Options > User Data, empty when it was never set, so
    the system user stands in for it). A file that cannot be read still counts: it says
    the workbook is open, only not by whom."""
    try:
        with open(libreoffice_lock_file(path), "rb") as fh:
            data = fh.read(4096)
    except FileNotFoundError:
        return None
    except OSError:
        return LibreOfficeLock(None, None, None)
    fields = _lock_fields(data.decode("utf-8", errors="replace"))
    fields += [""] * (4 - len(fields))

    def shown(text: str) -> str | None:
        text = text.strip()
        return text if text and text.isprintable() else None

    return LibreOfficeLock(shown(fields[0]) or shown(fields[1]), shown(fields[2]),
                           shown(fields[3]))


def _lock_stamp(text: str) -> dt.datetime | None:
    """When LibreOffice opened the workbook, from its lock file's ``01.12.2026 10:00``
    (its own format, whatever the language: said again in the merchant's), or ``None``."""
    try:
        return dt.datetime.strptime(text.strip(), "%d.%m.%Y %H:%M")
    except ValueError:
        return None


def _lock_fields(text: str) -> list[str]:
    """The fields of a LibreOffice lock entry, unescaped, up to its closing ``;``."""
    fields: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            fields.append("".join(current))
            current = []
        elif char == ";":
            break
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def refuse_if_open_in_a_spreadsheet(path: Path, label: str) -> None:
    """Refuse (:class:`WorkbookError`) a workbook that Excel or LibreOffice has open,
    naming who has it and what to do. A writing run calls this before any work: the
    program's next save would silently undo xlstock's (on a Mac, where Excel does not
    lock the file, and with LibreOffice everywhere), or the save would fail (Excel on
    Windows). Reading the workbook (``validate``) is fine and does not call it."""
    owner_file = path.with_name("~$" + path.name)
    if owner_file.exists():
        owner = excel_lock_owner(path)
        if owner:
            raise WorkbookError(_(
                "{label} is open in Excel by {owner}: close it there first, or use the Sync, "
                "Preview and Publish buttons inside Excel. If Excel is not running, delete "
                "{lock}", label=label, owner=owner, lock=owner_file.name))
        raise WorkbookError(_(
            "{label} is open in Excel: close it there first, or use the Sync, Preview and "
            "Publish buttons inside Excel. If Excel is not running, delete {lock}",
            label=label, lock=owner_file.name))
    office = libreoffice_lock(path)
    if office is not None:
        who = []  # whom the lock names, each part in the language's words
        if office.user:
            who.append(_("by {user}", user=office.user))
        if office.host and office.host != socket.gethostname():
            who.append(_("on {host}", host=office.host))
        if office.since:
            opened = _lock_stamp(office.since)
            who.append(_("(since {since})", since=office.since) if opened is None else
                       _("(since {since:dt})", since=opened))
        lock = libreoffice_lock_file(path).name
        if who:
            raise WorkbookError(_(
                "{label} is open in LibreOffice {who}: close it there first, then try again. "
                "If LibreOffice is not running, delete {lock}", label=label,
                who=" ".join(who), lock=lock))
        raise WorkbookError(_(
            "{label} is open in LibreOffice: close it there first, then try again. If "
            "LibreOffice is not running, delete {lock}", label=label, lock=lock))


# --- other xlstock runs -------------------------------------------------------------------


def lock_file(path: Path) -> Path:
    """The run lock's file for the workbook ``path``: ``.<name>.xlstock-lock`` beside it."""
    return path.with_name(f".{path.name}{LOCK_SUFFIX}")


class RunLock:
    """The per-workbook lock of one xlstock run (see the module's docstring).

    :meth:`acquire` never waits: a workbook another run holds is refused at once with
    that run's pid, start time and computer. :meth:`release` removes the lock file.
    Also a context manager."""

    def __init__(self, path: Path, label: str) -> None:
        self.label = label
        self.lock_path = lock_file(path)
        self._old_owner_path = path.with_name(f".{path.name}{_OLD_OWNER_SUFFIX}")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`WorkbookError` saying who holds it."""
        if self._fd is not None:
            return
        try:
            for _ in range(_ATTEMPTS):
                fd = _open(self.lock_path)
                try:
                    if not _lock(fd):
                        raise WorkbookError(self._busy_message(_wait_for_holder(fd)))
                    if _names(self.lock_path, fd):
                        _write_holder(fd)
                        self._fd = fd
                        break
                finally:
                    if self._fd != fd:
                        os.close(fd)
            else:
                raise WorkbookError(self._busy_message(None))
        except OSError as exc:
            raise WorkbookError(self._cannot_lock_message(exc)) from exc
        with contextlib.suppress(OSError):
            self._old_owner_path.unlink()

    def release(self) -> None:
        """Remove the lock file and drop the lock. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if sys.platform != "win32" and _names(self.lock_path, fd):
                # Still holding the lock: no other run has this file locked, and one that
                # locks it after this sees that the path no longer names it.
                with contextlib.suppress(OSError):
                    os.unlink(self.lock_path)
        finally:
            os.close(fd)  # drops the lock; on Windows, deletes the file with the handle

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def _busy_message(self, holder: dict[str, object] | None) -> str:
        try:
            if holder:
                since = dt.datetime.fromisoformat(str(holder["since"]))
                known = dict(label=self.label, since=i18n.stamp(since, i18n.current()),
                             pid=int(str(holder["pid"])))
                host = holder.get("host")
                if host and host != socket.gethostname():
                    return _("another xlstock run is working on {label} (since {since}, pid "
                             "{pid} on {host}); wait for it to finish and try again",
                             host=host, **known)
                return _("another xlstock run is working on {label} (since {since}, pid "
                         "{pid}); wait for it to finish and try again", **known)
        except (ValueError, KeyError, TypeError):
            pass
        return _("another xlstock run is working on {label}; wait for it to finish and try "
                 "again", label=self.label)

    def _cannot_lock_message(self, exc: OSError) -> str:
        folder = self.lock_path.parent
        if exc.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
            return _(
                "{label}: the folder {folder} does not support file locks ({detail}), so "
                "xlstock cannot keep two runs apart there; move the workbook to a folder on "
                "this computer's disk and try again", label=self.label, folder=folder,
                detail=exc.strerror or exc)
        return _(
            "{label}: xlstock cannot write in the workbook's folder ({folder}: {detail}); "
            "move the workbook to a folder you can save in and try again", label=self.label,
            folder=folder, detail=exc.strerror or exc)


def _holder_details() -> bytes:
    return json.dumps({
        "pid": os.getpid(),
        "since": dt.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
    }).encode("utf-8")


def _write_holder(fd: int) -> None:
    """Only for the message a second run gets: a failure here does not stop the run."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, _holder_details())


def _read_holder(fd: int) -> dict[str, object] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        holder = json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _wait_for_holder(fd: int) -> dict[str, object] | None:
    """The holder's details; a run that has just taken the lock may not have written
    them yet, so an empty or half-written file is read again for a moment."""
    deadline = time.monotonic() + _HOLDER_WAIT
    while True:
        holder = _read_holder(fd)
        if holder is not None or time.monotonic() > deadline:
            return holder
        time.sleep(0.01)


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


if sys.platform == "win32":  # pragma: no cover - the suite runs on Linux
    import msvcrt

    def _open(path: Path) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_BINARY | os.O_NOINHERIT | os.O_TEMPORARY
        return os.open(path, flags, 0o666)

    def _lock(fd: int) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EDEADLK):
                return False
            raise
        return True

else:
    import fcntl

    def _open(path: Path) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        return os.open(path, flags, 0o666)

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return False
            raise
        return True
