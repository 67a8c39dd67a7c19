"""The command line's own wiring: what an online command opens, reads and closes, and
how sheet Log is appended to."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from support.shopkit import Shop

from xlstock.remote.client import HttpStockServiceClient
from xlstock.workbook import layout
from xlstock.workbook.base import LOG_SHEET, Grid
from xlstock.workbook.xlsx_file import XlsxFile


@pytest.fixture
def shop(stock_service, tmp_path) -> Shop:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))
    return shop


@pytest.mark.parametrize("command", ["sync", "preview", "publish"])
def test_an_online_command_reads_settings_once_and_closes_its_client(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    shop.edit(**{"A-1": {"Received": 2}})
    reads: Counter[str] = Counter()
    read_sheet = XlsxFile.read_sheet

    def counted(self: XlsxFile, name: str, **options: bool) -> Grid:
        reads[name] += 1
        return read_sheet(self, name, **options)

    closed: list[HttpStockServiceClient] = []
    close = HttpStockServiceClient.close

    def recorded(self: HttpStockServiceClient) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(XlsxFile, "read_sheet", counted)
    monkeypatch.setattr(HttpStockServiceClient, "close", recorded)
    shop.run(command, str(shop.workbook), "-q")
    assert reads[layout.SETTINGS_SHEET] == 1
    assert reads[LOG_SHEET] <= 1
    assert len(closed) == 1


@pytest.mark.parametrize("command", ["sync", "preview", "publish", "validate"])
def test_a_workbook_command_pauses_the_cycle_collector_and_turns_it_back_on(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    shop.edit(**{"A-1": {"Received": 2}})
    collector_on: list[bool] = []
    read_sheet = XlsxFile.read_sheet

    def watched(self: XlsxFile, name: str, **options: bool) -> Grid:
        collector_on.append(gc.isenabled())
        return read_sheet(self, name, **options)

    monkeypatch.setattr(XlsxFile, "read_sheet", watched)
    assert gc.isenabled()
    shop.run(command, str(shop.workbook), *(["-q"] if command != "validate" else []))
    assert collector_on and not any(collector_on)
    assert gc.isenabled()


def test_the_cycle_collector_is_back_on_after_a_command_that_fails(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.edit(**{"A-1": {"Received": "two"}})
    shop.run("publish", str(shop.workbook), "-q", expect=1)
    assert gc.isenabled()


class _MemoryBook:
    """A workbook adapter over a dict of grids, counting the sheets it reads."""

    label = "memory.xlsx"
    scattered_writes = True
    shares_rows = False

    def __init__(self, sheets: dict[str, Grid]) -> None:
        self.sheets = sheets
        self.reads: Counter[str] = Counter()

    def sheet_names(self) -> list[str]:
        return list(self.sheets)

    def read_sheet(self, name: str, *, shared: bool = False) -> Grid:
        self.reads[name] += 1
        return [list(row) for row in self.sheets[name]]

    def write_block(self, name: str, top: int, left: int,
                    rows: Sequence[Sequence[Any]]) -> None:
        grid = self.sheets[name]
        for offset, values in enumerate(rows):
            while len(grid) < top + offset:
                grid.append([])
            row = grid[top + offset - 1]
            row.extend([None] * (left - 1 + len(values) - len(row)))
            row[left - 1:left - 1 + len(values)] = list(values)

    def add_sheet(self, name: str, *, hidden: bool = False) -> None:
        self.sheets[name] = []

    def save(self) -> None:
        pass


def test_the_log_is_read_once_however_many_entries_are_appended() -> None:
    book = _MemoryBook({})
    log = layout.read_log(book)
    layout.append_log(book, log, ["t1", "publish (recovered)", "v1", 1, 2, "finished"])
    layout.append_log(book, log, ["t2", "publish", "v2", 3, 4, "published"])
    assert book.sheets[LOG_SHEET] == [
        list(layout.LOG_HEADERS),
        ["t1", "publish (recovered)", "v1", 1, 2, "finished"],
        ["t2", "publish", "v2", 3, 4, "published"],
    ]
    assert book.reads[LOG_SHEET] == 0  # no sheet yet: nothing to read

    again = layout.read_log(book)
    layout.append_log(book, again, ["t3", "sync", "v3", 0, 0, "nothing changed"])
    layout.append_log(book, again, ["t4", "sync", "v3", 0, 0, "nothing changed"])
    assert [row[0] for row in book.sheets[LOG_SHEET]] == ["When", "t1", "t2", "t3", "t4"]
    assert book.reads[LOG_SHEET] == 1
