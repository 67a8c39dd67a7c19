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

import datetime as dt
import errno
import io
import os
import re
import resource
import ssl
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import openpyxl
import pytest
from click.testing import CliRunner, Result
from msoffcrypto.format.ooxml import OOXMLFile
from support.faultserver import DroppingProxy, FakeStock, FaultServer, Reply
from support.shopkit import Shop
from support.xlsx_craft import (
    LAUGHS,
    SHEET1,
    excel_owner_file,
    read_part,
    rewrite,
    set_declared_size,
)

from xlstock.cli import main
from xlstock.macros.cfb import write_compound_file
from xlstock.remote import client as client_module
from xlstock.workbook import layout
from xlstock.workbook import xlsx_file as adapter_module
from xlstock.workbook.xlsx_file import XlsxFile

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
    folder. ``data`` (with ``with_data``) is the workbook's cells outside column Status
    and sheet Log, for actions that may record why they failed."""

    def __init__(self, shop: Shop, *, with_data: bool = False) -> None:
        self.shop = shop
        self.live = shop.live()
        self.history = shop.history_count()
        self.workbook = shop.workbook.read_bytes()
        self.folder = _listing(shop.workbook.parent)
        self.data = _data_outside_status_and_log(shop.workbook) if with_data else None


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _data_outside_status_and_log(path: Path) -> dict[str, Any]:
    """Every cell outside column Status and sheet Log; the hidden state as what it
    means (an interrupted publish forgotten reads as no pending publish)."""
    wb = openpyxl.load_workbook(path)
    data: dict[str, Any] = {}
    for ws in wb.worksheets:
        if ws.title in (layout.LOG_SHEET, layout.STATE_SHEET):
            continue
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
        if ws.title == layout.STOCK_SHEET and rows:
            status = [i for i, h in enumerate(rows[0]) if h == layout.STATUS]
            rows = [[v for i, v in enumerate(r) if i not in status] for r in rows]
        data[ws.title] = rows
    with XlsxFile.open(path, writable=False) as book:
        state = layout.read_state(book)
    data[layout.STATE_SHEET] = {k: v for k, v in state.items() if v is not None}
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
        assert before.data is not None, "take World(shop, with_data=True)"
        assert _data_outside_status_and_log(shop.workbook) == before.data
    assert _listing(shop.workbook.parent) == before.folder, "files were left behind"
    return message


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
    before = World(merchant)
    args = [command, str(merchant.workbook)] + (["-q"] if command != "validate" else [])
    started = time.perf_counter()
    result = run(merchant, *args)
    elapsed = time.perf_counter() - started
    message = assert_safe(result, before, status=1, says=expected)
    assert "stock.xlsx" in message or "sheet Stock" in message
    assert elapsed < SECONDS, f"{case}: {command} took {elapsed:.1f} s"


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


# --- issue point 4: a misbehaving service ----------------------------------------------------

QUICK: dict[str, Any] = {"timeout": (2.0, 2.0), "deadline": 3.0, "backoff_base": 0.01,
                         "backoff_max": 0.05, "retry_after_cap": 0.5}
"""The client's timings for these tests: the same code paths as the defaults (5 s / 30 s
timeouts, a 120 s deadline, Retry-After capped at 30 s), scaled down to keep them fast."""


@pytest.fixture
def quick_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's stock-service client with :data:`QUICK` timings."""
    original = client_module.HttpStockServiceClient.from_settings.__func__  # type: ignore[attr-defined]

    def from_settings(cls: type, service_url: str, shop_url: str, **options: Any) -> Any:
        return original(cls, service_url, shop_url, **{**QUICK, **options})

    monkeypatch.setattr(client_module.HttpStockServiceClient, "from_settings",
                        classmethod(from_settings))


class ScriptedShop:
    """A shop on a :class:`FaultServer` (its honest part a :class:`FakeStock`), with the
    same face as :class:`Shop` for :class:`World` and :func:`assert_safe`."""

    url = "https://scripted.shop.example"
    language = "en"

    def __init__(self, server: FaultServer, tmp_path: Path) -> None:
        self.server = server
        self.stock = FakeStock(self.url, {"A-1": 10, "B-2": 5, "00123": 3}).install(server)
        self.workbook = tmp_path / "stock.xlsx"
        self.env = {"XLSTOCK_TOKEN": "scripted-token"}

    def live(self) -> dict[str, int]:
        return dict(self.stock.levels)

    def history_count(self) -> int:
        return self.stock.applications


@pytest.fixture
def scripted(tmp_path: Path, quick_client: None) -> Iterator[ScriptedShop]:
    """A synced workbook with a delivery and a count typed in, on a scripted service."""
    with FaultServer() as server:
        shop = ScriptedShop(server, tmp_path)
        for args in (["new", str(shop.workbook), "--service", server.url, "--shop", shop.url],
                     ["sync", str(shop.workbook), "-q"]):
            assert run(shop, *args).exit_code == 0  # type: ignore[arg-type]
        Shop.edit(shop, **{"A-1": {"Received": 2}, "B-2": {"New level": 1}})  # type: ignore[arg-type]
        yield shop


def _big_body() -> Reply:
    """An answer announcing 513 MiB, past the 512 MiB cap (a whole sheet of SKUs at 512
    bytes each): refused on its Content-Length, as streaming that much takes longer than
    these tests' deadline on a busy machine. The cut-off while streaming, and a gzip
    bomb, are tests/test_remote_client.py's and tests/test_transport.py's."""
    return Reply(body=b'{"format": "xlstock.stock", "items": [',
                 headers={"Content-Length": str(513 * 1024 * 1024)})


def _html() -> Reply:
    return Reply(200, body=b"<html><body>Welcome to our shop!</body></html>",
                 content_type="text/html; charset=utf-8")


def _document(reply: Callable[..., Reply], **options: Any) -> Callable[[ScriptedShop], Reply]:
    return lambda shop: reply(json=shop.stock.document(), **options)


def _redirect(shop: ScriptedShop) -> Reply:
    return Reply(307, headers={"Location": f"{shop.server.url}/v2/stock"})


FAULTY: dict[str, tuple[str, Callable[[ScriptedShop], Reply]]] = {
    "connection dropped mid-body": ("GET", _document(Reply, fault="drop_mid_body")),
    "truncated body": ("GET", _document(Reply, fault="truncate")),
    "bytes dripping slowly": ("GET", _document(Reply, fault="drip_body", drip_interval=0.2)),
    "HTML instead of JSON": ("GET", lambda shop: _html()),
    "a body far larger than any catalogue": (
        "GET", lambda shop: _big_body()),
    "a redirect on publish": ("PUT", _redirect),
    "500 on publish, never applied": (
        "PUT", lambda shop: Reply(500, json={"error": {"code": "internal", "message": "boom"}})),
}
FAULT_MESSAGES = {
    "connection dropped mid-body": ["the connection broke before the whole answer arrived",
                                    "try again"],
    "truncated body": ["the connection broke before the whole answer arrived", "try again"],
    "bytes dripping slowly": ["did not finish answering within 3 s", "try again later"],
    "HTML instead of JSON": ["answered a web page, not the stock service",
                             "check the Stock service setting"],
    "a body far larger than any catalogue": ["larger than 512 MiB",
                                             "check the Stock service setting"],
    "a redirect on publish": ["redirect (307)", "never follows redirects",
                              "put the right address in the Stock service setting"],
    "500 on publish, never applied": ["refused (500 internal)", "try again later"],
}
FAULT_RUNS = [(fault, command) for fault, (method, _) in FAULTY.items()
              for command in ("sync", "preview", "publish")
              if method == "GET" or command == "publish"]


@pytest.mark.parametrize(("fault", "command"), FAULT_RUNS)
def test_a_misbehaving_service_is_safe(scripted: ScriptedShop, fault: str, command: str) -> None:
    method, reply = FAULTY[fault]
    scripted.server.on(method, "/v1/stock", reply(scripted))
    before = World(scripted, with_data=True)  # type: ignore[arg-type]
    started = time.perf_counter()
    result = run(scripted, command, str(scripted.workbook), "-q")  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    message = assert_safe(result, before, status=4, says=FAULT_MESSAGES[fault],
                          bytes_unchanged=False)
    assert scripted.url in message or scripted.server.url in message
    assert elapsed < QUICK["deadline"] * 2 + 2, f"{fault}: {command} took {elapsed:.1f} s"
    assert scripted.server.requests_to("PUT", "/v2/stock") == []
    log = openpyxl.load_workbook(scripted.workbook)[layout.LOG_SHEET]
    last = [c.value for c in log[log.max_row]]
    assert last[1] == command and str(last[-1]).startswith("failed: "), last


@pytest.mark.parametrize("answer", [
    Reply(500, json={"error": {"code": "internal", "message": "boom"}}),
    Reply(429, json={"error": {"code": "rate_limited", "message": "slow down"}},
          headers={"Retry-After": "1000000"}),
    Reply(503, json={"error": {"code": "busy", "message": "busy"}}, headers={"Retry-After": "2"}),
], ids=["500 then 200", "429 with a huge Retry-After", "503 with Retry-After"])
def test_a_read_refused_once_is_retried(scripted: ScriptedShop, answer: Reply) -> None:
    scripted.server.on("GET", "/v1/stock", answer, scripted.stock.read)
    started = time.perf_counter()
    result = run(scripted, "publish", str(scripted.workbook), "-q")  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started < 3, "Retry-After was not capped"
    assert scripted.stock.levels == {"A-1": 12, "B-2": 1, "00123": 3}
    assert scripted.stock.applications == 1


def _set_setting(path: Path, label: str, value: str) -> None:
    wb = openpyxl.load_workbook(path)
    for row in wb[layout.SETTINGS_SHEET].iter_rows():
        if row[0].value == label:
            row[1].value = value
    wb.save(path)


def test_a_publish_applied_whose_answer_never_arrived_is_applied_once(
    merchant: Shop, quick_client: None
) -> None:
    history = merchant.history_count()
    with DroppingProxy(merchant.server.port, (b"PUT /v1/stock",)) as proxy:
        _set_setting(merchant.workbook, layout.SETTING_SERVICE, proxy.url)
        result = run(merchant, "publish", str(merchant.workbook), "-q")
        assert proxy.dropped == 1
    assert result.exit_code == 0, result.output
    assert merchant.history_count() == history + 1
    assert merchant.live()["A-1"] == 12 and merchant.live()["B-2"] == 1
    row = merchant.sheet()["A-1"]
    assert row["Online"] == 12 and row["Received"] is None


def test_a_publish_whose_outcome_cannot_be_learnt_is_finished_by_the_next_run(
    merchant: Shop, quick_client: None
) -> None:
    history = merchant.history_count()
    lost = (b"PUT /v1/stock", b"GET /v1/publishes/")
    with DroppingProxy(merchant.server.port, lost, drops=None) as proxy:
        _set_setting(merchant.workbook, layout.SETTING_SERVICE, proxy.url)
        first = run(merchant, "publish", str(merchant.workbook), "-q")
        assert first.exit_code == 4, first.output
        assert "nothing will be counted twice" in first.stderr
        assert len(first.stderr.splitlines()) == 1
        assert merchant.sheet()["A-1"]["Received"] == 2  # not recorded as sent yet
        proxy.drop_prefixes = ()  # the network is back
        second = run(merchant, "publish", str(merchant.workbook), "-q")
    assert second.exit_code == 0, second.output
    assert "had reached the shop" in second.output
    assert merchant.history_count() == history + 1
    assert merchant.live()["A-1"] == 12 and merchant.live()["B-2"] == 1
    row = merchant.sheet()["A-1"]
    assert row["Online"] == 12 and row["Received"] is None


# --- issue point 5: crash and disk faults ----------------------------------------------------


def _fail_on_save(monkeypatch: pytest.MonkeyPatch, step: str, error: BaseException,
                  after: int = 0) -> None:
    """Make step ``step`` of the workbook's save fail, from save number ``after + 1`` on
    (the faults a full disk, a dying USB stick or a pulled cable give)."""
    calls = {"n": 0}

    def failing(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            outcome = real(*args, **kwargs)
            if calls["n"] > after:
                raise error
            return outcome
        return wrapper

    if step == "rename over the original":
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            calls["n"] += 1
            if calls["n"] > after:
                raise error
            real_replace(src, dst)

        monkeypatch.setattr(adapter_module.os, "replace", replace)
        return
    target = {"temp file write": "_write_temp", "check of the saved copy": "_check_saved"}[step]
    monkeypatch.setattr(adapter_module, target, failing(getattr(adapter_module, target)))


SAVE_STEPS = ("temp file write", "check of the saved copy", "rename over the original")


@pytest.mark.parametrize("command", ["sync", "preview"])
@pytest.mark.parametrize("step", SAVE_STEPS)
def test_a_failure_at_any_save_step_keeps_the_workbook_and_publishes_nothing(
    merchant: Shop, monkeypatch: pytest.MonkeyPatch, step: str, command: str
) -> None:
    before = World(merchant)
    _fail_on_save(monkeypatch, step, OSError(errno.EIO, "Input/output error"))
    result = run(merchant, command, str(merchant.workbook), "-q")
    assert_safe(result, before, status=1, says=["stock.xlsx", "could not save the workbook",
                                                "Input/output error"])


@pytest.mark.parametrize("step", SAVE_STEPS)
def test_a_publish_whose_one_save_fails_is_recorded_by_the_next_never_sent_twice(
    merchant: Shop, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Publish saves once, after the upload (its key is kept in the journal before it,
    issue 22): a save that fails says the levels were published, the workbook is as it
    was, and the next publish records that publish, sending nothing twice."""
    before = World(merchant)
    _fail_on_save(monkeypatch, step, OSError(errno.EIO, "Input/output error"))
    result = run(merchant, "publish", str(merchant.workbook), "-q")
    if step == "rename over the original":  # the journal's own rename fails too: the
        # key is then saved in the workbook before the upload, that save fails, and
        # nothing is sent
        assert_safe(result, before, status=1, says=["stock.xlsx", "could not save the "
                                                    "workbook", "Input/output error"])
        return
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "could not save the workbook" in message, message
    assert "The levels WERE published to" in message and "sends nothing twice" in message
    assert merchant.workbook.read_bytes() == before.workbook
    assert _listing(merchant.workbook.parent) == before.folder
    assert merchant.history_count() == before.history + 1
    again = run(merchant, "publish", str(merchant.workbook), "-q")
    assert again.exit_code == 0, again.output
    assert merchant.history_count() == before.history + 1
    assert merchant.live()["A-1"] == 12 and merchant.sheet()["A-1"]["Received"] is None


@pytest.mark.parametrize("command", ["sync"])
def test_the_disk_full(merchant: Shop, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    before = World(merchant)
    _fail_on_save(monkeypatch, "temp file write", OSError(errno.ENOSPC, "No space left on device"))
    result = run(merchant, command, str(merchant.workbook), "-q")
    assert_safe(result, before, status=1, says=["the disk is full", "it is unchanged",
                                                "free some space and try again"])


def test_the_disk_full_after_the_upload(merchant: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The levels reached the shop but the workbook cannot record it: the merchant is
    told so, and the next publish (with space freed) records it without sending twice."""
    history = merchant.history_count()
    _fail_on_save(monkeypatch, "temp file write",  # publish's one save, after the upload
                  OSError(errno.ENOSPC, "No space left on device"))
    result = run(merchant, "publish", str(merchant.workbook), "-q")
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "the disk is full" in message, message
    assert "The levels WERE published to" in message, message
    assert "run publish again" in message and "sends nothing twice" in message
    assert merchant.history_count() == history + 1
    assert _listing(merchant.workbook.parent) == ["stock.xlsx"]
    again = run(merchant, "publish", str(merchant.workbook), "-q")
    assert again.exit_code == 0, again.output
    assert "had reached the shop" in again.output
    assert merchant.history_count() == history + 1
    assert merchant.live()["A-1"] == 12
    row = merchant.sheet()["A-1"]
    assert row["Online"] == 12 and row["Received"] is None


@pytest.mark.parametrize("command", ["sync", "preview", "publish"])
def test_a_workbook_open_in_excel_names_its_owner(merchant: Shop, command: str) -> None:
    (merchant.workbook.parent / "~$stock.xlsx").write_bytes(excel_owner_file("Zoë Ünal"))
    before = World(merchant)
    result = run(merchant, command, str(merchant.workbook), "-q")
    assert_safe(result, before, status=1, says=["is open in Excel by Zoë Ünal",
                                                "close it there first"])
    assert run(merchant, "validate", str(merchant.workbook)).exit_code == 0  # reading is fine


@pytest.mark.parametrize("command", ["sync", "preview", "publish"])
def test_two_runs_on_one_workbook(merchant: Shop, command: str) -> None:
    holder = (
        "import sys\nfrom xlstock.workbook.xlsx_file import XlsxFile\n"
        f"with XlsxFile.open({str(merchant.workbook)!r}):\n"
        "    print('locked', flush=True)\n    sys.stdin.read()\n"
    )
    with subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as other_run:
        assert other_run.stdout is not None and other_run.stdin is not None
        try:
            assert other_run.stdout.readline().strip() == "locked"
            before = World(merchant)
            result = run(merchant, command, str(merchant.workbook), "-q")
            assert_safe(result, before, status=1, says=[
                "another xlstock run is working on", f"pid {other_run.pid}",
                "wait for it to finish and try again"])
        finally:
            other_run.stdin.close()
            other_run.wait(timeout=30)
    assert run(merchant, command, str(merchant.workbook), "-q").exit_code == 0


# --- issue point 3: hostile cells, through publish ---------------------------------------------


@pytest.fixture
def synced(stock_service: Any, tmp_path: Path) -> Shop:
    """A registered shop and its freshly synced workbook, nothing typed in yet."""
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    return shop


def _set_cells(path: Path, sku: str, values: dict[str, Any]) -> int:
    """Type ``values`` (header -> value) into the row of ``sku``; returns its row."""
    wb = openpyxl.load_workbook(path)
    ws = wb[layout.STOCK_SHEET]
    headers = {c.value: c.column for c in ws[1] if c.value}
    for row in range(2, ws.max_row + 1):
        if ws.cell(row, headers[layout.SKU]).value == sku:
            for header, value in values.items():
                ws.cell(row, headers[header]).value = value
            wb.save(path)
            return row
    raise AssertionError(f"{sku} not on the sheet")


ACCEPTED_CELLS = [
    ("Received", "7", 17), ("Received", " 12 ", 22), ("Received", -3, 7),
    ("Received", 2.0, 12), ("New level", "007", 7), ("New level", 0, 0),
]
REFUSED_CELLS = [
    ("Received", "12 boxes", "Received '12 boxes' is not a whole number; type one"),
    ("Received", 2.5, "Received 2.5 is not a whole number; type one"),
    ("Received", True, "Received is TRUE; type a whole number"),
    ("Received", dt.datetime(2026, 3, 12), "Received is a date; format the cell as Number"),
    ("Received", 99_999_999_999, "is beyond 1,000,000,000; check for a typing slip"),
    ("Received", "#N/A", "Received is the error #N/A; type a whole number"),
    ("Received", "=A2*0+5", "Received is a formula with no saved result"),
    ("Received", -11, "Received -11 would leave -1 in stock"),
    ("New level", -3, "New level -3 is below 0; type 0 or more"),
]


@pytest.mark.parametrize(("column", "value", "level"), ACCEPTED_CELLS)
def test_a_quantity_cell_accepted_by_a_rule(synced: Shop, column: str, value: Any,
                                            level: int) -> None:
    _set_cells(synced.workbook, "A-1", {column: value})
    result = run(synced, "publish", str(synced.workbook), "-q")
    assert result.exit_code == 0, result.output
    assert synced.live()["A-1"] == level
    row = synced.sheet()["A-1"]
    assert row["Online"] == level and row[column] is None


@pytest.mark.parametrize(("column", "value", "says"), REFUSED_CELLS)
def test_a_quantity_cell_refused_names_its_row(synced: Shop, column: str, value: Any,
                                               says: str) -> None:
    row = _set_cells(synced.workbook, "A-1", {column: value})
    before = World(synced, with_data=True)
    result = run(synced, "publish", str(synced.workbook), "-q")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    first, *rows = result.stderr.splitlines()
    assert first == "xlstock: 1 row(s) of sheet Stock need fixing; nothing was sent"
    assert len(rows) == 1 and rows[0].startswith(f"  Stock row {row}, SKU 'A-1': ")
    assert says in rows[0], rows[0]
    assert synced.live() == before.live and synced.history_count() == before.history
    assert _data_outside_status_and_log(synced.workbook) == before.data
    assert str(synced.sheet()["A-1"]["Status"]).startswith("error: ")


@pytest.mark.parametrize(("typed", "outcome"), [
    (" A-1 ", 12),
    ("A-1\u00a0", 12),
    ("a-1", "(case differs): type it exactly so"),
    (123, "the shop has '00123': format column SKU as Text and type 00123"),
])
def test_a_sku_cell_matches_only_the_shops_key(synced: Shop, typed: Any,
                                               outcome: int | str) -> None:
    sku = "00123" if typed == 123 else "A-1"
    _set_cells(synced.workbook, sku, {layout.SKU: typed, layout.RECEIVED: 2})
    before = World(synced)
    result = run(synced, "publish", str(synced.workbook), "-q")
    if isinstance(outcome, int):
        assert result.exit_code == 0, result.output
        assert synced.live()["A-1"] == outcome
        return
    assert result.exit_code == 1, result.output
    assert "is not in the shop online" in result.stderr and outcome in result.stderr
    assert synced.live() == before.live and synced.history_count() == before.history


def test_names_from_a_service_are_text_cleaned_and_capped(tmp_path: Path,
                                                          quick_client: None) -> None:
    """A service that is not the reference one (which refuses such names) sends control
    characters, a formula and 40,000 characters: the sheet gets plain, clean, capped text."""
    with FaultServer() as server:
        shop = ScriptedShop(server, tmp_path)
        document = shop.stock.document()
        document["items"][0].update(name="=HYPERLINK(\"http://evil.example\",\"Click\")",
                                    variant="Red\x1b[31m\r\nXL\u2028")
        document["items"][1].update(name="N" * 40_000, variant="V" * 40_000)
        server.on("GET", "/v1/stock", Reply(json=document, headers={"ETag": '"v1"'}))
        run(shop, "new", str(shop.workbook), "--service", server.url,  # type: ignore[arg-type]
            "--shop", shop.url)
        result = run(shop, "sync", str(shop.workbook), "-q")  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    ws = openpyxl.load_workbook(shop.workbook)[layout.STOCK_SHEET]
    rows = {r[0].value: r for r in ws.iter_rows(min_row=2)}
    product, variant = rows["00123"][1], rows["00123"][2]
    assert product.data_type == "s" and product.value.startswith("=HYPERLINK")
    assert variant.value == "Red [31m  XL"
    assert len(rows["A-1"][1].value) == 500 and len(rows["A-1"][2].value) == 500


NFD = unicodedata.normalize("NFD", "Café-1")


def _add_item(sku: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["items"].append(
        {"sku": sku, "name": "From the service", "variant": "", "qty": 4})


BAD_SERVICE_VALUES: dict[str, tuple[Callable[[dict[str, Any]], None], str, list[str]]] = {
    "a SKU of 40,000 characters": (_add_item("S" * 40_000), '"v1"', [
        "sent a stock file with SKU 'SSSSS", "that is 40,000 characters long; the limit is 100"]),
    "a SKU of 101 characters": (_add_item("S" * 101), '"v1"', [
        "that is 101 characters long; the limit is 100"]),
    "a SKU with a line break": (_add_item("A-\n9"), '"v1"', [
        "that holds a control character (line break, tab...)"]),
    "one SKU in two Unicode forms": (
        lambda d: (_add_item(NFD)(d), _add_item(unicodedata.normalize("NFC", NFD))(d)), '"v1"',
        ["sent a stock file with SKU 'Café-1' twice (in two Unicode forms, which are one SKU)"]),
    "a version tag of 40,000 characters": (lambda d: None, f'"{"V" * 40_000}"', [
        "sent a version tag '\"VVVVV", "that is 40,002 characters long; the limit is 200"]),
    "a version tag with a line break": (lambda d: None, '"v1\u00e9"', [
        "that holds characters an HTTP version tag (ETag) cannot"]),
}


@pytest.mark.parametrize("command", ["sync", "preview", "publish"])
@pytest.mark.parametrize("case", list(BAD_SERVICE_VALUES))
def test_a_bad_value_from_the_service_is_named_as_the_services(scripted: ScriptedShop,
                                                               case: str, command: str) -> None:
    """Values the sheet could not hold (or would read as another SKU) are refused where
    they arrive, naming the service, before anything is written; never blamed on a
    cell of the workbook, which has done nothing wrong."""
    change, etag, says = BAD_SERVICE_VALUES[case]
    document = scripted.stock.document()
    change(document)
    scripted.server.on("GET", "/v1/stock", Reply(json=document, headers={"ETag": etag}))
    before = World(scripted, with_data=True)  # type: ignore[arg-type]
    result = run(scripted, command, str(scripted.workbook), "-q")  # type: ignore[arg-type]
    message = assert_safe(result, before, status=4, bytes_unchanged=False, says=[
        f"GET {scripted.server.url}/v1/stock sent ", *says,
        "nothing was changed. Report this to whoever runs the stock service"])
    assert "cell" not in message and "sheet" not in message.casefold(), message
    assert scripted.server.requests_to("PUT", "/v1/stock") == []


def test_a_bad_version_tag_in_a_publish_answer_is_named_and_never_counts_twice(
    scripted: ScriptedShop
) -> None:
    """The publish was applied, but its answer carries a version tag no workbook cell can
    hold: the outcome is reported as unknown (naming the tag), the publish key and the
    edits stay, and once the service answers properly the next publish records it
    without sending anything twice."""
    stock = scripted.stock

    def applied_with_a_long_tag(seen: Any) -> Reply:
        stock.publish(seen)
        key = seen.headers["idempotency-key"]
        body, status, response = stock.publishes[key]
        stock.publishes[key] = (body, status, {**response, "version": "V" * 40_000})
        return Reply(status, json=stock.publishes[key][2])

    scripted.server.on("PUT", "/v1/stock", applied_with_a_long_tag)
    result = run(scripted, "publish", str(scripted.workbook), "-q")  # type: ignore[arg-type]
    assert result.exit_code == 4, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert f"{scripted.server.url}/v1/publishes/" in message
    assert "(ValueError: version tag is 40,002 characters long; the limit is 200)" in message
    assert "the next `xlstock publish` will find out; nothing will be counted twice" in message
    assert "cell" not in message
    assert stock.applications == 1 and stock.levels["A-1"] == 12
    assert _listing(scripted.workbook.parent) == ["stock.xlsx"]

    for key, (body, status, response) in list(stock.publishes.items()):  # the service fixed
        stock.publishes[key] = (body, status, {**response, "version": "v2"})
    scripted.server.on("PUT", "/v1/stock", stock.publish)
    again = run(scripted, "publish", str(scripted.workbook), "-q")  # type: ignore[arg-type]
    assert again.exit_code == 0, again.output
    assert "had reached the shop" in again.stdout
    assert stock.applications == 1 and stock.levels["A-1"] == 12
    row = Shop.sheet(scripted)["A-1"]  # type: ignore[arg-type]
    assert row["Online"] == 12 and row["Received"] is None


@pytest.mark.parametrize("service_form", ["NFD", "NFC"])
def test_a_sku_in_another_unicode_form_is_the_same_row(tmp_path: Path, quick_client: None,
                                                       service_form: str) -> None:
    """The sheet's SKU typed in one Unicode form (a Mac types é as e + accent), the
    service's in the other: sync keeps one row, validate accepts the sheet, and publish
    sends the SKU in NFC, the form the service compares."""
    nfc = unicodedata.normalize("NFC", NFD)
    with FaultServer() as server:
        shop = ScriptedShop(server, tmp_path)
        stock = FakeStock(shop.url, {"A-1": 10, nfc: 4}).install(server)
        assert run(shop, "new", str(shop.workbook), "--service", server.url,  # type: ignore[arg-type]
                   "--shop", shop.url).exit_code == 0
        assert run(shop, "sync", str(shop.workbook), "-q").exit_code == 0  # type: ignore[arg-type]
        sheet_form = NFD if service_form == "NFC" else nfc
        _set_cells(shop.workbook, nfc, {layout.SKU: sheet_form, layout.RECEIVED: 3})
        stock.number += 1  # a new version, so that this sync reads the levels again
        if service_form == "NFD":
            document = stock.document()
            for item in document["items"]:
                item["sku"] = unicodedata.normalize("NFD", item["sku"])
            server.on("GET", "/v1/stock", Reply(json=document, headers={"ETag": stock.etag}),
                      stock.read)
        synced = run(shop, "sync", str(shop.workbook), "-q")  # type: ignore[arg-type]
        assert synced.exit_code == 0, synced.output
        assert "0 new, 0 not in the shop online" in synced.stdout
        skus = [r[0].value for r in openpyxl.load_workbook(shop.workbook)[layout.STOCK_SHEET]
                .iter_rows(min_row=2)]
        assert len(skus) == 2
        validated = run(shop, "validate", str(shop.workbook))  # type: ignore[arg-type]
        assert validated.exit_code == 0, validated.output
        published = run(shop, "publish", str(shop.workbook), "-q")  # type: ignore[arg-type]
        assert published.exit_code == 0, published.output
        sent = server.requests_to("PUT", "/v1/stock")[-1].json()
        assert {"sku": nfc, "add": 3, "from": 4, "qty": 7} in sent["items"]
        assert stock.levels[nfc] == 7


# --- issue point 7: security ----------------------------------------------------------------


def _every_command(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _every_command(command, f"{prefix}{name} ")


def test_no_command_takes_the_token_as_an_argument() -> None:
    """Process arguments are visible to every user of the computer (ps, /proc): the
    token is only ever read from XLSTOCK_TOKEN or the keyring. A flag takes no value
    (`shop add --new-token` asks for a token, it does not carry one)."""
    commands = dict(_every_command(main))
    assert {"sync", "preview", "publish", "order", "shop add"} <= set(commands)
    for name, command in commands.items():
        for param in command.params:
            if getattr(param, "is_flag", False):
                continue
            words = " ".join([param.name or "", *getattr(param, "opts", [])]).lower()
            assert not re.search(r"token|passw|secret|credential|api.?key", words), (name, words)


def test_tls_verification_cannot_be_turned_off_in_the_code() -> None:
    turned_off = re.compile(
        r"verify\s*=\s*(False|0|None)\b|CERT_NONE|check_hostname\s*=\s*False"
        r"|_create_unverified_context|disable_warnings|InsecureRequestWarning"
    )
    sources = sorted((REPO / "xlstock").rglob("*.py"))
    assert len(sources) > 20
    for source in sources:
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            assert not turned_off.search(line), f"{source.relative_to(REPO)}:{number}: {line}"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("environment", [{}, {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": "",
                                               "PYTHONHTTPSVERIFY": "0"}],
                         ids=["plain", "environment asking to skip verification"])
def test_a_self_signed_certificate_is_refused(merchant: Shop, self_signed: tuple[Path, Path],
                                              environment: dict[str, str]) -> None:
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with FaultServer() as server:
        server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
        url = f"https://127.0.0.1:{server.port}"
        _set_setting(merchant.workbook, layout.SETTING_SERVICE, url)
        merchant.env = {**merchant.env, **environment}
        before = World(merchant, with_data=True)
        result = run(merchant, "publish", str(merchant.workbook), "-q")
        assert server.seen == []
    assert_safe(result, before, status=4, bytes_unchanged=False, says=[
        url, "the TLS certificate could not be verified", "xlstock always verifies TLS"])


@pytest.mark.parametrize("url", ["http://stock.example", "http://10.0.0.7:8765",
                                 "http://[2001:db8::1]/", "http://127.0.0.1.example"])
def test_plain_http_to_another_computer_is_refused(merchant: Shop, url: str) -> None:
    _set_setting(merchant.workbook, layout.SETTING_SERVICE, url)
    before = World(merchant, with_data=True)
    result = run(merchant, "sync", str(merchant.workbook), "-q")
    assert_safe(result, before, status=2, bytes_unchanged=False, says=[
        "uses plain http:// to another computer", "use https://"])
    ordered = run(merchant, "order", "--service", url, "--shop", merchant.url, "A-1=1")
    assert ordered.exit_code == 2 and "use https://" in ordered.stderr


def test_the_token_is_not_echoed_from_a_service_answer(tmp_path: Path,
                                                       quick_client: None) -> None:
    """A service (or a proxy before it) that echoes the Authorization header into its
    error message cannot make xlstock print the token."""
    with FaultServer() as server:
        shop = ScriptedShop(server, tmp_path)
        run(shop, "new", str(shop.workbook), "--service", server.url,  # type: ignore[arg-type]
            "--shop", shop.url)

        def echo(seen: Any) -> Reply:
            said = f"token {seen.headers.get('authorization')} is not valid"
            return Reply(401, json={"error": {"code": "unauthorized", "message": said}})

        server.on("GET", "/v1/stock", echo)
        result = run(shop, "sync", str(shop.workbook), "-q")  # type: ignore[arg-type]
    assert result.exit_code == 4, result.output
    assert "scripted-token" not in result.output
    with zipfile.ZipFile(shop.workbook) as archive:
        for name in archive.namelist():
            assert b"scripted-token" not in archive.read(name), name


# --- the page that lists all this -------------------------------------------------------------


def _tests_named(page: str) -> set[tuple[str, str]]:
    """(file, function) for each `tests/file.py::name` on a page; `::name` goes with the
    file named last."""
    named: set[tuple[str, str]] = set()
    current = ""
    for file, name in re.findall(r"(tests/\w+\.py)?::([A-Za-z_]\w*)", page):
        current = file or current
        assert current, f"::{name} follows no file on the page"
        named.add((current, name))
    return named


@pytest.mark.parametrize("page", ["docs/reliability.md", "SECURITY.md"])
def test_the_pages_name_real_tests(page: str) -> None:
    named = _tests_named((REPO / page).read_text(encoding="utf-8"))
    assert len(named) > 10
    missing = [
        f"{file}::{name}" for file, name in sorted(named)
        if not re.search(rf"^def {name}\(", (REPO / file).read_text(encoding="utf-8"),
                         re.MULTILINE)
    ]
    assert missing == []


def test_the_reliability_page_lists_every_test_here() -> None:
    named = _tests_named((REPO / "docs" / "reliability.md").read_text(encoding="utf-8"))
    listed = {name for file, name in named if file == "tests/test_reliability.py"}
    here = set(re.findall(r"^def (test_\w+)\(", Path(__file__).read_text(encoding="utf-8"),
                          re.MULTILINE))
    about_the_pages = {"test_the_pages_name_real_tests",
                       "test_the_reliability_page_lists_every_test_here"}
    assert sorted(here - listed - about_the_pages) == []
