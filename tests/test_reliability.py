"""The reliability promise of issue 5, end to end: the real CLI, on a merchant's real
workbook, against the real stock service (or, for a misbehaving service, a scripted
one on loopback).

"Safe" is checked the same way everywhere (:func:`assert_safe`): a one-line message
naming the problem and the fix, no traceback, the contract's exit status, nothing
published (the shop's levels and history unchanged), the workbook's bytes (or, when the
action legitimately records why it failed, its data outside Status and the Log)
unchanged, and no temporary file left in the workbook's folder.

docs/reliability.md lists every case with the test that proves it.
"""

from __future__ import annotations

import io
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner, Result
from msoffcrypto.format.ooxml import OOXMLFile
from shopkit import Shop
from xlsx_craft import LAUGHS, SHEET1, read_part, rewrite, set_declared_size

from xlstock.cli import main
from xlstock.workbook import layout
from xlstock.workbook.vba.cfb import write_compound_file

SECONDS = 5.0
"""Every hostile workbook is refused within this (most take a few milliseconds)."""
REPO = Path(__file__).resolve().parent.parent


# --- the merchant, the shop, and what "safe" means ----------------------------------------


@pytest.fixture
def merchant(stock_service: Any, tmp_path: Path) -> Shop:
    """A registered shop and its synced workbook, with a delivery and a count typed in
    (so that anything that went wrong would have something to publish)."""
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 2}, "B-2": {"New level": 1}})
    return shop


class World:
    """What must not change when an action fails: the shop online, the workbook, its
    folder."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.live = shop.live()
        self.history = shop.history_count()
        self.workbook = shop.workbook.read_bytes() if shop.workbook.exists() else b""
        self.folder = _listing(shop.workbook.parent)

    def data(self) -> dict[str, Any]:
        """Every cell of the workbook outside column Status and sheet Log."""
        return _data_outside_status_and_log(self.shop.workbook)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _data_outside_status_and_log(path: Path) -> dict[str, Any]:
    wb = openpyxl.load_workbook(path)
    data: dict[str, Any] = {}
    for ws in wb.worksheets:
        if ws.title == layout.LOG_SHEET:
            continue
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
        if ws.title == layout.STOCK_SHEET and rows:
            status = [i for i, h in enumerate(rows[0]) if h == layout.STATUS]
            rows = [[v for i, v in enumerate(r) if i not in status] for r in rows]
        data[ws.title] = rows
    return data


def run(shop: Shop, *args: str) -> Result:
    """One CLI run as a merchant would type it (an unexpected exception fails the test:
    it would be a traceback)."""
    return CliRunner().invoke(main, list(args), env=shop.env, catch_exceptions=False)


def assert_safe(result: Result, before: World, *, status: int, says: str | list[str],
                bytes_unchanged: bool = True) -> str:
    """The issue's definition of safe; returns the message."""
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    message = lines[0]
    assert message.startswith("xlstock: "), message
    for fragment in [says] if isinstance(says, str) else says:
        assert fragment in message, message
    shop = before.shop
    assert shop.live() == before.live, "levels changed online"
    assert shop.history_count() == before.history, "a version was published"
    if bytes_unchanged:
        assert shop.workbook.read_bytes() == before.workbook, "the workbook was written"
    else:
        assert _data_outside_status_and_log(shop.workbook) == before.data_at_start
    assert _listing(shop.workbook.parent) == before.folder, "files were left behind"
    return message


def world(shop: Shop) -> World:
    """The world before an action, with the workbook's data for :func:`assert_safe`."""
    state = World(shop)
    state.data_at_start = state.data() if shop.workbook.exists() else {}  # type: ignore[attr-defined]
    return state


# --- issue point 2: hostile workbooks -------------------------------------------------------


def _sheet_xml(path: Path) -> str:
    text = read_part(path, SHEET1).decode("utf-8")
    return re.sub(r"^<\?xml[^>]*\?>\s*", "", text)


def billion_laughs(path: Path) -> None:
    sheet = LAUGHS.replace("lolz", "worksheet") + _sheet_xml(path).replace("<v>", "<v>&lol9;", 1)
    rewrite(path, {SHEET1: sheet.encode()})


def external_entity(path: Path) -> None:
    prolog = '<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    rewrite(path, {SHEET1: (prolog + _sheet_xml(path).replace("<v>", "<v>&xxe;", 1)).encode()})


def zip_bomb_by_ratio(path: Path) -> None:
    sheet = _sheet_xml(path).encode() + b"<!--" + b" " * (64 * 1024 * 1024) + b"-->"
    rewrite(path, {SHEET1: sheet})


def zip_bomb_by_size(path: Path) -> None:
    set_declared_size(path, SHEET1, 3 * 1024**3)


def cell_at_xfd1048576(path: Path) -> None:
    sheet = _sheet_xml(path).replace(
        "</sheetData>", '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
    )
    rewrite(path, {SHEET1: sheet.encode()})


def not_a_zip(path: Path) -> None:
    path.write_text("SKU,Online,Received\nA-1,10,2\n")


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def password_protected(path: Path) -> None:
    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(path.read_bytes())).encrypt("secret", encrypted)
    path.write_bytes(encrypted.getvalue())


def old_xls_renamed(path: Path) -> None:
    path.write_bytes(write_compound_file({"Workbook": b"\x09\x08" + b"\0" * 5000,
                                          "\x05SummaryInformation": b"\0" * 200}))


def stock_without_header(path: Path) -> None:
    wb = openpyxl.load_workbook(path)
    wb[layout.STOCK_SHEET].delete_rows(1)
    wb.save(path)


def duplicate_headers(path: Path) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb[layout.STOCK_SHEET]
    ws.cell(1, ws.max_column + 1).value = " online "
    wb.save(path)


HOSTILE: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "billion laughs": (billion_laughs, ["declares a DTD", "will not read this file"]),
    "external entity (XXE)": (external_entity, ["declares a DTD", "will not read this file"]),
    "zip bomb (compression ratio)": (zip_bomb_by_ratio, ["may be a zip bomb"]),
    "zip bomb (inflated size)": (zip_bomb_by_size, ["may be a zip bomb"]),
    "a cell at XFD1048576": (cell_at_xfd1048576, ["has a value at XFD1048576"]),
    "not a zip": (not_a_zip, ["is not an .xlsx workbook", "save"]),
    "truncated": (truncated, ["incomplete or damaged"]),
    "password-protected": (password_protected, ["is password-protected: remove the password"]),
    "old .xls renamed .xlsx": (old_xls_renamed, ["is an old .xls file", "Excel Workbook (.xlsx)"]),
    "Stock without its header": (stock_without_header, ["has no column headed", "add it"]),
    "duplicate headers": (duplicate_headers, ["are both headed 'Online'", "rename or delete one"]),
}
COMMANDS = ("sync", "preview", "publish", "validate")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_workbook_is_safe_for_every_command(merchant: Shop, case: str,
                                                    command: str) -> None:
    damage, expected = HOSTILE[case]
    damage(merchant.workbook)
    before = world_of_files(merchant)
    args = [command, str(merchant.workbook)] + (["-q"] if command != "validate" else [])
    started = time.perf_counter()
    result = run(merchant, *args)
    elapsed = time.perf_counter() - started
    message = assert_safe(result, before, status=1, says=expected)
    assert "stock.xlsx" in message or "sheet Stock" in message
    assert elapsed < SECONDS, f"{case}: {command} took {elapsed:.1f} s"


def world_of_files(shop: Shop) -> World:
    """:class:`World` for a workbook that may not even be a workbook any more."""
    return World(shop)


@pytest.mark.parametrize("case", ["billion laughs", "zip bomb (inflated size)",
                                  "zip bomb (compression ratio)", "a cell at XFD1048576"])
def test_hostile_workbook_cannot_exhaust_a_real_process(merchant: Shop, case: str) -> None:
    """The command in its own process, its memory capped at 1 GiB of address space:
    it ends at once with the message, never a MemoryError or a kill."""
    HOSTILE[case][0](merchant.workbook)
    before = World(merchant)

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))

    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "xlstock.cli", "sync", str(merchant.workbook), "-q"],
        env={**os.environ, **merchant.env}, capture_output=True, text=True, timeout=60,
        preexec_fn=cap_memory,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("xlstock: "), done.stderr
    assert HOSTILE[case][1][0] in done.stderr
    assert elapsed < 15, f"{case} took {elapsed:.1f} s"
    assert merchant.workbook.read_bytes() == before.workbook
    assert merchant.history_count() == before.history
