"""Publishes that the workbook has not recorded (yet).

A publish keeps its pending key and lines here before it uploads (``actions``: the
workbook is then saved once, with the result, and the entry removed), so that a run
killed after the upload, or whose save fails (another program saved over the workbook,
the disk is full), is finished by the next one without sending anything twice. Live
Excel, which has no path, saves the key in the workbook instead. Entries are kept in
the user's own state folder (``$XDG_STATE_HOME/xlstock/unrecorded`` as
``platformdirs`` finds it, or ``XLSTOCK_JOURNAL_DIR``), under the workbook's path and the
shop: the next online command on that workbook takes it back as its pending publish and
records it (nothing sent twice), then drops it. Files are the owner's alone, and one
that is not the current user's, or is a link, is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import platformdirs

ENV = "XLSTOCK_JOURNAL_DIR"


def folder() -> Path:
    chosen = os.environ.get(ENV, "").strip()
    if chosen:
        return Path(chosen)
    return platformdirs.user_state_path("xlstock", appauthor=False) / "unrecorded"


def _entry(workbook: Path, shop: str) -> Path:
    name = hashlib.sha256(f"{Path(workbook).resolve()}\n{shop}".encode()).hexdigest()[:32]
    return folder() / f"{name}.json"


def keep(workbook: Path, shop: str, pending: dict[str, Any]) -> Path:
    """Keep ``pending`` (a publish the shop applied) for the workbook at ``workbook``."""
    place = _entry(workbook, shop)
    place.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = place.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump({"workbook": str(Path(workbook).resolve()), "shop": shop,
                   "pending": pending}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, place)
    return place


def take(workbook: Path, shop: str) -> dict[str, Any] | None:
    """The publish kept for this workbook and shop, or ``None``."""
    place = _entry(workbook, shop)
    try:
        status = os.lstat(place)
        if not stat.S_ISREG(status.st_mode) or status.st_uid != os.getuid():
            return None
        document = json.loads(place.read_text(encoding="utf-8"))
    except (OSError, ValueError, AttributeError):
        return None
    pending = document.get("pending") if isinstance(document, dict) else None
    if not isinstance(pending, dict) or not isinstance(pending.get("key"), str) or \
            document.get("shop") != shop:
        return None
    return pending


def drop(workbook: Path, shop: str) -> None:
    with contextlib.suppress(OSError):
        _entry(workbook, shop).unlink()
