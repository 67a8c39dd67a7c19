"""Sync fetches what changed (issue 22, point 2): the workbook's Sync applies the changes
since its last Sync (``GET /v1/stock?since=``, tests/test_server_changes.py) by SKU,
checked against a whole Sync of a copy of the same workbook, on the real service."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import openpyxl
import pytest
from support.shopkit import Shop

from xlstock.model import StockItem
from xlstock.remote.client import HttpStockServiceClient
from xlstock.workbook import journal, layout
from xlstock.workbook.xlsx_file import XlsxFile

# --- the workbook ------------------------------------------------------------------------

CATALOGUE = [StockItem(f"S-{n:03d}", f"Product {n}", ["", "Red", "Blue"][n % 3], 20 + n % 7)
             for n in range(40)] + [StockItem("00123", "Socks", "", 3)]


class _Reads:
    """What each read of the levels answered: whole (True) or changes (False)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: list[bool | None] = []
        real = HttpStockServiceClient.read_levels

        def spy(client, *args, **kwargs):
            snapshot = real(client, *args, **kwargs)
            self.answers.append(None if snapshot is None else snapshot.whole)
            return snapshot

        monkeypatch.setattr(HttpStockServiceClient, "read_levels", spy)
        self.monkeypatch = monkeypatch

    def whole_only(self, on: bool) -> None:
        self.monkeypatch.setattr(HttpStockServiceClient, "reads_changes", not on)


def _state(path: Path) -> dict:
    book = XlsxFile.open(path, writable=False)
    try:
        return layout.read_state(book)
    finally:
        book.close()


def _grid(path: Path) -> list[tuple]:
    wb = openpyxl.load_workbook(path)
    return [row for row in wb["Stock"].iter_rows(values_only=True)]


def _sync_both_ways(shop: Shop, reads: _Reads, tmp_path: Path, name: str) -> bool:
    """Sync the workbook (changes when the service has them) and a copy of it with the
    whole shop; both must end the same. Whether the first was a Sync of changes."""
    twin = tmp_path / f"{name}-whole.xlsx"
    shutil.copy(shop.workbook, twin)
    reads.answers.clear()
    shop.run("sync", str(shop.workbook))
    by_changes = reads.answers == [False]
    reads.whole_only(True)
    try:
        reads.answers.clear()
        shop.run("sync", str(twin))
        assert reads.answers == [True]
    finally:
        reads.whole_only(False)
    assert _grid(shop.workbook) == _grid(twin)
    mine, theirs = _state(shop.workbook), _state(twin)
    assert mine["base"] == theirs["base"]
    assert mine["synced"] == theirs["synced"] and mine["synced_sheet"] == theirs["synced_sheet"]
    return by_changes


def _preview_both_ways(shop: Shop, reads: _Reads, tmp_path: Path, name: str) -> bool:
    """Preview the workbook (live levels from the changes since its last Sync) and a copy
    of it (the whole shop read); both must end the same. Whether the first used changes."""
    twin = tmp_path / f"{name}-preview-whole.xlsx"
    shutil.copy(shop.workbook, twin)
    reads.answers.clear()
    mine = shop.run("preview", str(shop.workbook), expect=None)
    by_changes = reads.answers == [False]
    reads.whole_only(True)
    try:
        reads.answers.clear()
        theirs = shop.run("preview", str(twin), expect=None)
        assert reads.answers == [True]
    finally:
        reads.whole_only(False)
    assert (mine.exit_code, mine.output) == (theirs.exit_code, theirs.output)
    assert _grid(shop.workbook) == _grid(twin)
    return by_changes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sync_of_changes_ends_as_a_whole_sync(stock_service, tmp_path, monkeypatch, seed):
    """Property: over random orders, additions, renames, removals, publishes and edits,
    the Sync that applies the changes since the last one leaves exactly the sheet and
    the memory a whole Sync leaves."""
    rng = random.Random(seed)
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    store = stock_service.store
    used_changes = 0
    for round_number in range(6):
        live = shop.live()
        for _ in range(rng.randint(0, 6)):
            sku = rng.choice(sorted(live))
            if live[sku] > 0:
                shop.sell(**{sku: 1})
                live[sku] -= 1
        if rng.random() < 0.4:
            store.register_shop(shop.url, [StockItem(f"N-{seed}-{round_number}", "New", "", 5)],
                                another_token=False)
        if rng.random() < 0.4:
            sku = rng.choice(sorted(live))
            store.register_shop(shop.url, [StockItem(sku, f"Renamed {round_number}", "", None)],
                                another_token=False)
        if rng.random() < 0.3:
            store.remove_products(shop.url, [rng.choice(sorted(live))])
        if rng.random() < 0.4:
            sku = rng.choice(sorted(shop.sheet()))
            shop.edit(**{sku: {"Received": rng.randint(1, 3)}})
            shop.run("publish", str(shop.workbook), expect=None)
        if rng.random() < 0.5:  # an edit waiting, and a Status a preview wrote
            sku = rng.choice(sorted(shop.sheet()))
            shop.edit(**{sku: {"New level": rng.randint(0, 9)}})
            for _ in range(rng.randint(0, 2)):  # sales after the last Sync
                moved = rng.choice(sorted(live))
                if live[moved] > 0:
                    shop.sell(**{moved: 1})
                    live[moved] -= 1
            used_changes += _preview_both_ways(shop, reads, tmp_path, f"round{round_number}")
        used_changes += _sync_both_ways(shop, reads, tmp_path, f"round{round_number}")
        assert {sku: row["Online"] for sku, row in shop.sheet().items()
                if sku in shop.live()} == shop.live()
    assert used_changes >= 6  # the changes were used, not the whole shop every time


def test_added_skus_are_appended_and_a_removed_one_flagged(stock_service, tmp_path,
                                                          monkeypatch):
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    stock_service.store.register_shop(shop.url, [StockItem("ADD-1", "Added", "Green", 7)],
                                      another_token=False)
    stock_service.store.remove_products(shop.url, ["S-005"])
    assert _sync_both_ways(shop, reads, tmp_path, "add")
    rows = shop.sheet()
    assert list(rows)[-1] == "ADD-1"
    assert (rows["ADD-1"]["Online"], rows["ADD-1"]["Product"], rows["ADD-1"]["Status"]) == \
        (7, "Added", "new")
    assert rows["S-005"]["Status"].startswith("not in the shop online")
    assert rows["S-005"]["Online"] == 25  # kept as it was


def test_history_gone_falls_back_to_the_whole_shop(stock_service, tmp_path, monkeypatch):
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    shop.sell(S_001=2)
    monkeypatch.setattr(stock_service.store, "changes_window", 0)
    reads.answers.clear()
    shop.run("sync", str(shop.workbook))
    assert reads.answers == [True]
    assert shop.sheet()["S-001"]["Online"] == 19


def test_rows_sorted_by_hand_get_the_changes_by_sku(stock_service, tmp_path, monkeypatch):
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    wb = openpyxl.load_workbook(shop.workbook)
    ws = wb["Stock"]
    rows = [[cell.value for cell in row] for row in ws.iter_rows(min_row=2)]
    rows.reverse()  # sorted Z to A
    for r, values in enumerate(rows, start=2):
        for c, value in enumerate(values, start=1):
            ws.cell(r, c).value = value
    wb.save(shop.workbook)
    shop.sell(S_003=1, S_030=2)
    assert _sync_both_ways(shop, reads, tmp_path, "sorted")
    sheet = shop.sheet()
    assert (sheet["S-003"]["Online"], sheet["S-030"]["Online"]) == (22, 20)
    assert list(sheet)[0] == "S-039"


def test_rows_deleted_by_hand_make_the_sync_read_the_whole_shop(stock_service, tmp_path,
                                                               monkeypatch):
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    wb = openpyxl.load_workbook(shop.workbook)
    wb["Stock"].delete_rows(5, 2)  # S-003 and S-004 gone from the sheet
    wb.save(shop.workbook)
    shop.sell(S_010=1)
    reads.answers.clear()
    shop.run("sync", str(shop.workbook))
    assert reads.answers == [False, True]  # the changes could not stand alone
    sheet = shop.sheet()
    assert sheet["S-003"]["Status"] == "new" and sheet["S-004"]["Online"] == 24
    assert sheet["S-010"]["Online"] == 22


def test_online_typed_over_is_set_right_by_a_sync_of_changes(stock_service, tmp_path,
                                                            monkeypatch):
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"S-002": {"Online": 999}})
    shop.sell(S_001=1)
    assert _sync_both_ways(shop, reads, tmp_path, "typed")
    assert shop.sheet()["S-002"]["Online"] == 22


def test_damaged_memory_makes_the_sync_read_the_whole_shop(stock_service, tmp_path,
                                                          monkeypatch):
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    wb = openpyxl.load_workbook(shop.workbook)
    ws = wb[layout.STATE_SHEET]
    state = json.loads("".join(str(row[0]) for row in ws.iter_rows(values_only=True)
                               if row and isinstance(row[0], str)))
    state["base"]["S-001"] = "twenty"  # not a level
    ws.delete_rows(1, ws.max_row)
    ws.cell(1, 1).value = json.dumps(state)
    wb.save(shop.workbook)
    shop.sell(S_001=1)
    reads.answers.clear()
    shop.run("sync", str(shop.workbook))
    assert reads.answers == [False, True]
    assert shop.sheet()["S-001"]["Online"] == 20


def test_publish_plans_on_the_changes_and_never_overwrites_a_sale(stock_service, tmp_path,
                                                                  monkeypatch):
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"S-001": {"New level": 30}, "S-002": {"Received": 5}})
    shop.sell(S_001=2, S_002=1, S_003=1)  # sold online after the Sync
    reads.answers.clear()
    shop.run("publish", str(shop.workbook))
    assert reads.answers == [False]  # planned on the changes since the Sync
    live = shop.live()
    assert (live["S-001"], live["S-002"], live["S-003"]) == (28, 26, 22)
    sheet = shop.sheet()
    assert (sheet["S-001"]["Online"], sheet["S-002"]["Online"]) == (28, 26)
    shop.run("publish", str(shop.workbook))  # nothing left to send
    assert shop.live() == live
    # the next Sync takes the changes since the last Sync, the publish included
    shop.sell(S_004=1)
    assert _sync_both_ways(shop, reads, tmp_path, "after-publish")
    assert shop.sheet()["S-004"]["Online"] == 23


def test_strict_policy_sees_a_sale_in_the_changes(stock_service, tmp_path, monkeypatch):
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"S-006": {"New level": 3}})
    shop.sell(S_006=1)
    reads.answers.clear()
    result = shop.run("publish", "--strict", str(shop.workbook), expect=3)
    assert reads.answers == [False]
    assert "S-006" in result.output
    assert shop.live()["S-006"] == 25


SORT_IN_LIBREOFFICE = r'''
import uno

with libreoffice() as (ctx, desktop):
    url = ARGS[0]
    doc = desktop.loadComponentFromURL(url, "_blank", 0, (prop("Hidden", True),))
    try:
        sheet = doc.Sheets.getByName("Stock")
        cursor = sheet.createCursor()
        cursor.gotoEndOfUsedArea(False)
        end = cursor.RangeAddress
        rows = sheet.getCellRangeByPosition(0, 1, end.EndColumn, end.EndRow)
        field = uno.createUnoStruct("com.sun.star.table.TableSortField")
        field.Field = 0
        field.IsAscending = False
        fields = uno.Any("[]com.sun.star.table.TableSortField", (field,))
        uno.invoke(rows, "sort", ((prop("SortFields", fields), prop("ContainsHeader", False)),))
        doc.storeToURL(url, (prop("FilterName", "Calc MS Excel 2007 XML"),))
    finally:
        doc.close(True)
print(json.dumps({"rows": end.EndRow}))
'''


@pytest.mark.libreoffice
def test_rows_sorted_in_libreoffice_get_the_changes_by_sku(stock_service, tmp_path,
                                                           monkeypatch):
    from support.office import libreoffice_missing
    from support.uno_scripts import run_uno_script, uno_script

    missing = libreoffice_missing()
    if missing:
        pytest.skip(missing)
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    found = run_uno_script(uno_script(SORT_IN_LIBREOFFICE), tmp_path / "uno",
                           tmp_path / "lo-profile", shop.workbook.resolve().as_uri(),
                           timeout=120, name="sort.py")
    assert found["rows"] == len(CATALOGUE)
    assert list(shop.sheet())[0] == "S-039"  # LibreOffice sorted and saved it
    shop.sell(S_003=1, S_039=2)
    assert _sync_both_ways(shop, reads, tmp_path, "lo-sorted")
    sheet = shop.sheet()
    assert (sheet["S-003"]["Online"], sheet["S-039"]["Online"]) == (22, 22)
    assert list(sheet)[0] == "S-039"


def test_a_pending_publish_keeps_the_levels_of_its_own_rows_only(stock_service, tmp_path,
                                                                 monkeypatch):
    """The publish key is kept before the upload (in the journal, the workbook is saved
    once after it) with what a recovery needs: the levels of the rows it changes, not
    those of the whole shop."""
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"S-001": {"Received": 2}, "S-002": {"New level": 9}})
    seen = []
    real = HttpStockServiceClient.publish_lines

    def spy(client, lines, key, **kwargs):
        kept = journal.take(shop.workbook.resolve(), shop.url)  # as kept before the upload
        seen.append(kept if kept is not None else _state(shop.workbook)["pending"])
        return real(client, lines, key, **kwargs)

    monkeypatch.setattr(HttpStockServiceClient, "publish_lines", spy)
    shop.run("publish", str(shop.workbook))
    assert len(seen) == 1 and seen[0]["levels"] == {"S-001": 23, "S-002": 9}
    assert set(seen[0]["changes"]) == {"S-001", "S-002"}
    assert shop.live()["S-001"] == 23 and shop.live()["S-002"] == 9


def test_a_sync_after_a_preview_with_nothing_sold_reads_no_level(stock_service, tmp_path,
                                                                 monkeypatch):
    """Nothing changed online (304), but a preview wrote Status since the last Sync: the
    changes since (none) are applied, not the whole shop read again."""
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    reads = _Reads(monkeypatch)
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"S-001": {"Received": "x"}})  # an error a preview writes in Status
    shop.run("preview", str(shop.workbook), expect=1)
    assert shop.sheet()["S-001"]["Status"].startswith("error")
    shop.edit(**{"S-001": {"Received": None}})
    twin = tmp_path / "twin.xlsx"
    shutil.copy(shop.workbook, twin)
    reads.answers.clear()
    shop.run("sync", str(shop.workbook))
    assert reads.answers == [None, False]
    assert shop.sheet()["S-001"]["Status"] is None  # the stale error cleared, as a whole Sync
    reads.whole_only(True)
    shop.run("sync", str(twin))
    assert _grid(shop.workbook) == _grid(twin)


def test_live_levels_from_the_changes_are_held_as_levels_alone(stock_service, tmp_path,
                                                                monkeypatch):
    """Preview and Publish lay the changes since the last Sync over its levels as one
    dict of levels (no item object per SKU, no copy of the Sync's memory to plan on:
    issue 22, 1,000,000 SKUs), and plan as on the whole shop read."""
    from xlstock import actions
    from xlstock.model import LevelItems

    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.sell(S_001=2, S_005=1)
    monkeypatch.setenv("XLSTOCK_TOKEN", shop.token)
    with XlsxFile.open(shop.workbook, writable=False) as book:
        settings = layout.read_settings(book)
        session = actions._WorkbookSession.read(book, settings)
        remembered = dict(session.state["base"])
        with actions.service_for(settings) as service:
            live = actions._read_live(session, service, names=False)
            whole = service.read_levels(names=False)
        plan, _rows = actions._plan(session, live, None)
        whole_plan, _rows = actions._plan(session, whole, None)
    assert isinstance(live.items, LevelItems) and live.whole
    assert live.levels() == whole.levels() == shop.live()
    assert live.items["S-001"] == whole.items["S-001"] == StockItem("S-001", qty=19)
    assert plan == whole_plan
    assert session.state["base"] == remembered  # the memory of the Sync is not moved
