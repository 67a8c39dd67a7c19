"""Writing a whole workbook file atomically: the one way xlstock puts bytes it made
(a new workbook, a macro workbook, a refreshed VBA project) on the disk."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from xlstock.errors import ReadOnlyWorkbookError, WorkbookChangedError, WorkbookError
from xlstock.i18n import _

TEMP_SUFFIX = ".xlstock-tmp"
"""Temporary files end so; the openpyxl adapter removes those a killed run left."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: bytes, *,
                 expected: bytes | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, flushed
    to the disk and renamed over ``path``: a failure leaves ``path`` as it was and no
    temporary file behind. A replaced file keeps its permissions; a new one gets the
    usual ones (the umask's), not the temporary file's owner-only mode.

    A read-only ``path`` is never replaced (:class:`ReadOnlyWorkbookError`). With
    ``expected`` (the bytes the caller read from ``path``), a ``path`` that no longer
    holds them, saved meanwhile by another program, is kept and nothing is written
    (:class:`WorkbookChangedError`)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    _refuse_read_only(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                             dir=folder)
    except OSError as exc:
        raise _translate(path, exc) from exc
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
        with contextlib.suppress(OSError):
            os.chmod(temporary, mode)
        if expected is not None:
            _refuse_if_replaced(path, expected)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _translate(path, exc) from exc
        raise
    fsync_directory(folder)


def _refuse_read_only(path: Path) -> None:
    try:
        status = path.stat()
    except OSError:
        return  # a new file
    if stat.S_ISREG(status.st_mode) and not (
            status.st_mode & stat.S_IWUSR and os.access(path, os.W_OK)):
        raise ReadOnlyWorkbookError(_(
            "{path} is read-only, so xlstock will not replace it; make it writable (File "
            "Explorer: Properties > untick Read-only; Mac or Linux: chmod u+w) or write to "
            "another file, and try again", path=path))


def _refuse_if_replaced(path: Path, expected: bytes) -> None:
    try:
        with open(path, "rb") as fh:
            same = hashlib.sha256(fh.read()).digest() == hashlib.sha256(expected).digest()
    except FileNotFoundError:
        same = False
    if not same:
        raise WorkbookChangedError(_(
            "{path} was saved by another program while xlstock was working on it; xlstock "
            "kept that program's file and wrote nothing over it. Close the workbook there "
            "and run the command again", path=path))


def fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the OS allows it (not on Windows); a
    failure here cannot undo the rename, which has happened, so it is ignored."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _translate(path: Path, exc: OSError) -> WorkbookError:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return WorkbookError(_("Cannot write {path}: the disk is full ({name} is unchanged); "
                               "free some space and try again", path=path, name=path.name))
    return WorkbookError(_("Cannot write {path}: {detail}. If the file is open in Excel, "
                           "close it and try again.", path=path, detail=exc.strerror))
