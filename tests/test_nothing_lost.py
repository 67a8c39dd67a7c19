"""Issue 19, "Nothing lost, no one in": xlstock never saves over a workbook another
program saved while a command ran, never replaces a read-only workbook, and puts its
hidden state sheet back to very hidden after an office program showed it.

The real CLI against the real stock service; "another program" is a second writer of
the file (openpyxl, as any program saving a delivery typed in), run at the moment the
trials found it harmful: while publish talks to the shop."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner, Result
from support.shopkit import Shop
from support.xlsx_craft import merchant_workbook

from xlstock.cli import main
from xlstock.errors import ReadOnlyWorkbookError, WorkbookChangedError
from xlstock.remote import client as client_module
from xlstock.workbook.xlsx_file import XlsxFile


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _typed_elsewhere(path: Path, cell: str, value: Any) -> bytes:
    """Another program saves the workbook with ``value`` typed in sheet Stock's
    ``cell`` (a new file renamed over the old, as Excel saves); its bytes."""
    wb = openpyxl.load_workbook(path)
    wb["Stock"][cell] = value
    other = path.with_name("elsewhere.xlsx")
    wb.save(other)
    os.replace(other, path)
    return path.read_bytes()


# --- the file adapter ---------------------------------------------------------------------


def test_a_workbook_replaced_after_opening_is_not_saved_over(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 4, [[77]])
        theirs = _typed_elsewhere(path, "E3", 12)
        with pytest.raises(WorkbookChangedError, match="stock.xlsx was saved by another "
                                                       "program") as refused:
            book.save()
    assert "saved nothing over it" in str(refused.value)
    assert path.read_bytes() == theirs
    assert _leftovers(tmp_path) == []


def test_a_workbook_rewritten_in_place_with_the_same_size_and_time_is_not_saved_over(
        tmp_path: Path) -> None:
    """Identity, size and modification time all the same: only the bytes tell."""
    path = merchant_workbook(tmp_path / "stock.xlsx")
    before = path.stat()
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 4, [[77]])
        data = bytearray(path.read_bytes())
        data[10] ^= 1  # the first part's time stamp in its local header: still a zip
        with open(path, "r+b") as fh:  # in place: the same inode
            fh.write(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_ino == before.st_ino and path.stat().st_size == before.st_size
        with pytest.raises(WorkbookChangedError):
            book.save()
    assert path.read_bytes() == bytes(data)


def test_a_second_save_compares_with_what_this_session_wrote(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 4, [[77]])
        book.save()
        book.write_block("Stock", 3, 4, [[78]])
        book.save()  # its own first save is no one else's
        book.write_block("Stock", 4, 4, [[79]])
        theirs = _typed_elsewhere(path, "E2", 5)
        with pytest.raises(WorkbookChangedError):
            book.save()
    assert path.read_bytes() == theirs


def test_a_workbook_deleted_meanwhile_is_not_saved_again(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 4, [[77]])
        path.rename(tmp_path / "moved.xlsx")
        with pytest.raises(WorkbookChangedError):
            book.save()
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o444, 0o555])
def test_a_read_only_workbook_is_refused_at_opening(tmp_path: Path, mode: int) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    os.chmod(path, mode)
    with pytest.raises(ReadOnlyWorkbookError, match="stock.xlsx is read-only"):
        XlsxFile.open(path)
    with XlsxFile.open(path, writable=False) as book:  # reading it is fine
        assert book.read_sheet("Stock")[1][0] == "Acme 0"


# --- end to end: publish -------------------------------------------------------------------


@pytest.fixture
def merchant(stock_service: Any, tmp_path: Path) -> Shop:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 2}})
    return shop


def _run(shop: Shop, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=shop.env, catch_exceptions=False)


def _another_program_saves_during(monkeypatch: pytest.MonkeyPatch, method: str, shop: Shop,
                                  *, after: bool = False) -> dict[str, bytes]:
    """Patch the client's ``method`` so that another program saves the workbook (a
    delivery of 7 typed for C-3) just before (or ``after``) the real call."""
    original: Callable[..., Any] = getattr(client_module.HttpStockServiceClient, method)
    saved: dict[str, bytes] = {}

    def with_a_save(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not after and not saved:
            saved["theirs"] = _delivery_for_c3(shop.workbook)
        result = original(self, *args, **kwargs)
        if after and not saved:
            saved["theirs"] = _delivery_for_c3(shop.workbook)
        return result

    monkeypatch.setattr(client_module.HttpStockServiceClient, method, with_a_save)
    return saved


def _delivery_for_c3(path: Path) -> bytes:
    wb = openpyxl.load_workbook(path)
    ws = wb["Stock"]
    headers = {c.value: c.column for c in ws[1] if c.value}
    for row in range(2, ws.max_row + 1):
        if ws.cell(row, headers["SKU"]).value == "C-3":
            ws.cell(row, headers["Received"]).value = 7
    other = path.with_name("elsewhere.xlsx")
    wb.save(other)
    os.replace(other, path)
    return path.read_bytes()


def test_publish_keeps_a_delivery_saved_by_another_program_while_it_read_the_shop(
        merchant: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trials' case: the other program saves while publish asks the shop for its
    levels; publish sends nothing and keeps their file with both deliveries."""
    live = merchant.live()
    saved = _another_program_saves_during(monkeypatch, "read_levels", merchant)
    result = _run(merchant, "publish", str(merchant.workbook))
    assert result.exit_code == 1, result.output
    assert "saved by another program" in result.stderr
    assert "Traceback" not in result.output
    assert merchant.live() == live, "something was sent"
    assert merchant.workbook.read_bytes() == saved["theirs"]
    sheet = merchant.sheet()
    assert sheet["A-1"]["Received"] == 2 and sheet["C-3"]["Received"] == 7
    assert _leftovers(merchant.workbook.parent) == []
    monkeypatch.undo()
    _run(merchant, "publish", str(merchant.workbook), "-q")  # the next publish sends both
    assert merchant.live()["A-1"] == live["A-1"] + 2
    assert merchant.live()["C-3"] == live["C-3"] + 7


def test_publish_applied_then_file_replaced_says_the_levels_were_published(
        merchant: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    live = merchant.live()
    saved = _another_program_saves_during(monkeypatch, "publish", merchant, after=True)
    result = _run(merchant, "publish", str(merchant.workbook))
    assert result.exit_code == 1, result.output
    assert "saved by another program" in result.stderr
    assert "WERE published" in result.stderr
    assert merchant.live()["A-1"] == live["A-1"] + 2
    assert merchant.workbook.read_bytes() == saved["theirs"]
    assert _leftovers(merchant.workbook.parent) == []
    monkeypatch.undo()  # their file holds the key saved before the upload: the next
    _run(merchant, "publish", str(merchant.workbook), "-q")  # publish records it
    assert merchant.live()["A-1"] == live["A-1"] + 2, "the delivery was sent twice"
    assert merchant.live()["C-3"] == live["C-3"] + 7


def test_a_publish_the_workbook_could_not_record_is_never_sent_twice(
        merchant: Shop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The case the pending key cannot cover: the other program's copy was made before
    publish saved its key (it has the delivery of 2 still typed, and no key). The publish
    applied online is kept outside the workbook, and the next publish records it from
    there: the delivery is not sent a second time; their own new delivery is sent."""
    monkeypatch.setenv("XLSTOCK_JOURNAL_DIR", str(tmp_path / "journal"))
    live = merchant.live()
    before_publish = merchant.workbook.read_bytes()
    original = client_module.HttpStockServiceClient.publish

    def then_an_old_copy_is_saved(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        merchant.workbook.write_bytes(before_publish)
        _delivery_for_c3(merchant.workbook)
        return result

    monkeypatch.setattr(client_module.HttpStockServiceClient, "publish",
                        then_an_old_copy_is_saved)
    result = _run(merchant, "publish", str(merchant.workbook))
    assert result.exit_code == 1 and "WERE published" in result.stderr
    assert merchant.live()["A-1"] == live["A-1"] + 2
    assert list((tmp_path / "journal").glob("*.json"))
    monkeypatch.setattr(client_module.HttpStockServiceClient, "publish", original)
    again = _run(merchant, "publish", str(merchant.workbook), "-q")
    assert again.exit_code == 0, again.output
    assert merchant.live()["A-1"] == live["A-1"] + 2, "the delivery was sent twice"
    assert merchant.live()["C-3"] == live["C-3"] + 7
    assert merchant.sheet()["A-1"]["Received"] is None
    assert not list((tmp_path / "journal").glob("*.json"))


def test_publish_refuses_a_read_only_workbook_before_sending(merchant: Shop) -> None:
    live = merchant.live()
    os.chmod(merchant.workbook, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    before = merchant.workbook.read_bytes()
    result = _run(merchant, "publish", str(merchant.workbook))
    assert result.exit_code == 1, result.output
    assert f"{merchant.workbook} is read-only" in result.stderr
    assert merchant.live() == live
    assert merchant.workbook.read_bytes() == before
    assert stat.S_IMODE(merchant.workbook.stat().st_mode) == 0o444
    shutil.copy(merchant.workbook, merchant.workbook.with_name("copy.xlsx"))


# --- the hidden state sheet stays very hidden ------------------------------------------------


def _state_of_state_sheet(path: Path) -> str | None:
    import re
    import zipfile

    with zipfile.ZipFile(path) as zf:
        workbook = zf.read("xl/workbook.xml").decode()
    found = re.search(r'<sheet [^>]*name="_xlstock"[^>]*>', workbook)
    assert found is not None, workbook
    state = re.search(r'state="([^"]*)"', found.group(0))
    return state.group(1) if state else None


@pytest.mark.parametrize("shown", ["hidden", "visible", None])
def test_every_save_puts_the_state_sheet_back_to_very_hidden(merchant: Shop,
                                                             shown: str | None) -> None:
    from support.xlsx_craft import edit_part

    path = merchant.workbook
    assert _state_of_state_sheet(path) == "veryHidden"
    edit_part(path, "xl/workbook.xml", r'(<sheet [^>]*name="_xlstock"[^>]*) state="veryHidden"',
              rf'\1 state="{shown}"' if shown else r"\1")
    assert _state_of_state_sheet(path) == shown
    _run(merchant, "sync", str(path), "-q")
    assert _state_of_state_sheet(path) == "veryHidden"


@pytest.mark.libreoffice
def test_the_state_sheet_libreoffice_showed_is_very_hidden_again_after_a_command(
        merchant: Shop, tmp_path: Path) -> None:

    from support.office import SOFFICE, resave

    if SOFFICE is None:
        pytest.skip("LibreOffice is not installed (soffice not on PATH)")
    resave(merchant.workbook, tmp_path)
    assert _state_of_state_sheet(merchant.workbook) == "hidden"  # Excel's Unhide lists it
    live = merchant.live()
    _run(merchant, "publish", str(merchant.workbook), "-q")
    assert merchant.live()["A-1"] == live["A-1"] + 2
    assert _state_of_state_sheet(merchant.workbook) == "veryHidden"


# --- one save per publish (issue 22, point 3) ------------------------------------------------


class _CountingSaves:
    """The file adapter, counting its saves."""

    def __init__(self, book: XlsxFile) -> None:
        self.book = book
        self.saves = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.book, name)

    def save(self) -> None:
        self.saves += 1
        self.book.save()


def _journal(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_publish_saves_the_workbook_once(merchant: Shop, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """The key goes to the journal (flushed) before the upload, not to a save of the
    whole workbook: the workbook is saved once, with the result, and the entry goes."""
    from xlstock import actions
    from xlstock.remote.client import HttpStockServiceClient

    journal = tmp_path / "journal"
    monkeypatch.setenv("XLSTOCK_JOURNAL_DIR", str(journal))
    live = merchant.live()
    kept_before_upload: list[list[Path]] = []
    original = client_module.HttpStockServiceClient.publish

    def looking_at_the_journal(self: Any, *args: Any, **kwargs: Any) -> Any:
        kept_before_upload.append(_journal(journal))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(client_module.HttpStockServiceClient, "publish",
                        looking_at_the_journal)
    with XlsxFile.open(merchant.workbook) as opened, HttpStockServiceClient(
            merchant.server.url, merchant.url, merchant.token) as client:
        book = _CountingSaves(opened)
        actions.publish(book, client)  # type: ignore[arg-type]
    assert book.saves == 1
    assert [len(k) for k in kept_before_upload] == [1]
    assert _journal(journal) == []
    assert merchant.live()["A-1"] == live["A-1"] + 2
    assert merchant.sheet()["A-1"]["Received"] is None


@pytest.mark.parametrize("failpoint", ["before_upload", "after_upload"])
def test_a_publish_killed_before_its_one_save_leaves_the_file_and_is_finished_once(
        merchant: Shop, failpoint: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    journal = tmp_path / "journal"
    before = merchant.workbook.read_bytes()
    live = merchant.live()
    env = {**os.environ, **merchant.env, "XLSTOCK_FAILPOINT": failpoint,
           "XLSTOCK_JOURNAL_DIR": str(journal)}
    killed = subprocess.run([sys.executable, "-m", "xlstock", "publish",
                             str(merchant.workbook), "-q"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode != 0, killed.stdout + killed.stderr
    assert merchant.workbook.read_bytes() == before  # not one save before the upload
    assert len(_journal(journal)) == 1
    kept = json.loads(_journal(journal)[0].read_text())["pending"]
    assert kept["levels"] == {"A-1": live["A-1"] + 2}  # the row it changes, no other
    env.pop("XLSTOCK_FAILPOINT")
    again = subprocess.run([sys.executable, "-m", "xlstock", "publish",
                            str(merchant.workbook)], env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "interrupted publish" in again.stdout
    assert merchant.live()["A-1"] == live["A-1"] + 2, "sent twice, or never"
    assert merchant.sheet()["A-1"]["Received"] is None
    assert _journal(journal) == []


def test_a_journal_entry_left_after_the_save_is_never_recorded_again(
        merchant: Shop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A stop between the save and the entry's removal: the workbook records that
    publish already, so the next command drops the entry and keeps the new edits."""
    from xlstock.workbook import journal as journal_module

    journal = tmp_path / "journal"
    monkeypatch.setenv("XLSTOCK_JOURNAL_DIR", str(journal))
    live = merchant.live()
    monkeypatch.setattr(journal_module, "drop", lambda *args: None)
    assert _run(merchant, "publish", str(merchant.workbook), "-q").exit_code == 0
    assert len(_journal(journal)) == 1
    monkeypatch.undo()
    monkeypatch.setenv("XLSTOCK_JOURNAL_DIR", str(journal))
    merchant.edit(**{"A-1": {"Received": 3}})
    result = _run(merchant, "publish", str(merchant.workbook))
    assert result.exit_code == 0, result.output
    assert "interrupted" not in result.output
    assert merchant.live()["A-1"] == live["A-1"] + 2 + 3
    assert _journal(journal) == []
