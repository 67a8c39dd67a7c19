"""Who else has the workbook: xlstock's own per-workbook lock (two runs never
interleave on one file) and the owner files office programs keep beside a workbook they
have open."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout

from xlstock.errors import WorkbookError


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


def locked_message(label: str, path: Path) -> str:
    owner = excel_lock_owner(path)
    who = f" (Excel says it is open by {owner})" if owner else ""
    return (
        f"{label}: the workbook is open in another program (Excel?){who} or read-only: "
        "close it and try again"
    )


class RunLock:
    """The per-workbook lock: an OS file lock (``filelock``) on ``.<name>.xlstock-lock``
    beside the workbook, with the holder's pid and start time in ``.<name>.xlstock-owner``
    for the message a second run gets. The OS drops the lock if the holder dies."""

    def __init__(self, path: Path, label: str) -> None:
        self.label = label
        self.lock_path = path.with_name(f".{path.name}.xlstock-lock")
        self.owner_path = path.with_name(f".{path.name}.xlstock-owner")
        self._lock = FileLock(str(self.lock_path), timeout=0)
        self.held = False

    def acquire(self) -> None:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise WorkbookError(self._busy_message()) from None
        except OSError as exc:
            raise WorkbookError(
                f"{self.label}: xlstock cannot write in the workbook's folder "
                f"({self.lock_path.parent}: {exc.strerror or exc}); move the workbook to a "
                "folder you can save in and try again"
            ) from exc
        self.held = True
        owner = {
            "pid": os.getpid(),
            "since": dt.datetime.now().isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        }
        with contextlib.suppress(OSError):
            self.owner_path.write_text(json.dumps(owner), encoding="utf-8")

    def _busy_message(self) -> str:
        detail = ""
        try:
            owner = json.loads(self.owner_path.read_text(encoding="utf-8"))
            since = dt.datetime.fromisoformat(str(owner["since"]))
            detail = f" (since {since:%Y-%m-%d %H:%M:%S}, pid {int(owner['pid'])}"
            host = owner.get("host")
            if host and host != socket.gethostname():
                detail += f" on {host}"
            detail += ")"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return (
            f"another xlstock run is working on {self.label}{detail}; wait for it to "
            "finish and try again"
        )

    def release(self) -> None:
        if not self.held:
            return
        with contextlib.suppress(OSError):
            self.owner_path.unlink()
        self._lock.release()
        self.held = False


def refuse_if_open_in_excel(real: Path, label: str) -> None:
    """Excel keeps an owner file ``~$name`` beside a workbook it has open. Saving the
    file behind Excel's back would be lost at Excel's next save (on a Mac, where Excel
    does not lock the file) or fail (on Windows), so a writing run stops first."""
    owner_file = real.with_name("~$" + real.name)
    if not owner_file.exists():
        return
    owner = excel_lock_owner(real)
    by = f" by {owner}" if owner else ""
    raise WorkbookError(
        f"{label} is open in Excel{by}: close it there first, or use the Sync, Preview and "
        f"Publish buttons inside Excel. If Excel is not running, delete {owner_file.name}"
    )
