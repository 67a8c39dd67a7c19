"""One row limit for reading and writing (xlstock.workbook.base.MAX_ROWS): sync refuses,
before writing, to grow sheet Stock past it, and a sheet sync filled to it is one that
every command reads. Against a scripted service on loopback (tests/support/faultserver.py), with
the real limit: the sheets are sparse, so that 200,000 rows cost little."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner, Result
from support.faultserver import FakeStock, FaultServer

from xlstock.cli import main
from xlstock.workbook import layout
from xlstock.workbook.base import MAX_ROWS

SHOP = "https://big.shop.example"
ENV = {"XLSTOCK_TOKEN": "scripted-token"}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)


@pytest.fixture
def service() -> Iterator[tuple[FaultServer, FakeStock]]:
    with FaultServer() as server:
        yield server, FakeStock(SHOP, {"A-1": 10, "B-2": 5, "C-3": 8}).install(server)


@pytest.fixture
def workbook(service: tuple[FaultServer, FakeStock], tmp_path: Path) -> Path:
    server, _ = service
    path = tmp_path / "stock.xlsx"
    assert run("new", str(path), "--service", server.url, "--shop", SHOP).exit_code == 0
    assert run("sync", str(path), "-q").exit_code == 0
    return path


def _note_at(path: Path, row: int) -> None:
    """A merchant's own note far down their own column: the table reaches that row."""
    wb = openpyxl.load_workbook(path)
    ws = wb[layout.STOCK_SHEET]
    ws.cell(1, 12, "Notes")
    ws.cell(row, 12, "recount in spring")
    wb.save(path)


def test_a_service_listing_more_skus_than_a_sheet_holds_is_refused_before_writing(
    service: tuple[FaultServer, FakeStock], workbook: Path
) -> None:
    _, stock = service
    stock.levels.update({f"N-{n:06d}": 1 for n in range(MAX_ROWS - 3)})  # one too many
    stock.number += 1
    stock_sheet = openpyxl.load_workbook(workbook)[layout.STOCK_SHEET]
    before = [[c.value for c in row] for row in stock_sheet.iter_rows()]
    result = run("sync", str(workbook), "-q")
    assert result.exit_code == 4, result.output
    assert result.stderr == (
        f"xlstock: the stock service lists 200,000 SKUs for {SHOP}, more than sheet Stock "
        "can hold: xlstock reads and writes at most 199,999 rows below the header (row "
        "200,000 is the last); nothing was changed\n")
    after = openpyxl.load_workbook(workbook)
    assert [[c.value for c in row] for row in after[layout.STOCK_SHEET].iter_rows()] == before
    log = after[layout.LOG_SHEET]
    assert str(log.cell(log.max_row, 6).value).startswith("failed: the stock service lists")
    assert sorted(p.name for p in workbook.parent.iterdir()) == ["stock.xlsx"]


@pytest.mark.slow  # about 10 s with the openpyxl adapter: 200,000 rows, if sparse
def test_sync_fills_a_sheet_to_the_last_row_and_every_command_reads_it(
    service: tuple[FaultServer, FakeStock], workbook: Path
) -> None:
    _, stock = service
    _note_at(workbook, MAX_ROWS - 2)  # the table now ends two rows above the limit
    stock.levels.update({"D-4": 2, "E-5": 3})
    stock.number += 1
    synced = run("sync", str(workbook), "-q")
    assert synced.exit_code == 0, synced.output
    book = openpyxl.load_workbook(workbook, read_only=True)
    try:  # a read-only workbook holds its file open until closed
        last = list(book[layout.STOCK_SHEET].iter_rows(
            min_row=MAX_ROWS - 1, max_row=MAX_ROWS + 1, values_only=True))
    finally:
        book.close()
    assert [row[0] for row in last] == ["D-4", "E-5"]  # nothing below MAX_ROWS
    assert run("validate", str(workbook)).exit_code == 0  # reads it, as every command does


def test_sync_refuses_new_rows_that_would_pass_the_last_row(
    service: tuple[FaultServer, FakeStock], workbook: Path
) -> None:
    _, stock = service
    _note_at(workbook, MAX_ROWS - 2)
    stock.levels.update({"D-4": 2, "E-5": 3, "F-6": 4})
    stock.number += 1
    result = run("sync", str(workbook), "-q")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(
        "xlstock: sheet Stock uses 199,997 rows below the header and the stock service "
        "lists 3 SKUs new to it: 200,000 rows, more than the 199,999 xlstock reads and "
        "writes (row 200,000 is the last); nothing was changed. Delete rows"), result.stderr
    assert run("validate", str(workbook)).exit_code == 0
    book = openpyxl.load_workbook(workbook, read_only=True)
    try:  # a read-only workbook holds its file open until closed
        ws = book[layout.STOCK_SHEET]
        assert [row[0] for row in ws.iter_rows(min_row=5, max_row=6, values_only=True)] == [
            None, None]
    finally:
        book.close()


def test_the_sheet_layer_never_writes_past_the_last_row(workbook: Path) -> None:
    """The backstop under sync's own check: any column or Log write below MAX_ROWS is
    refused, so no action can leave a sheet that the next command would refuse."""
    from xlstock.errors import WorkbookError
    from xlstock.workbook.xlsx_file import XlsxFile

    with XlsxFile.open(workbook) as book:
        table = layout.read_stock(book)
        layout.write_column(book, table, layout.SKU, ["LAST"], first=MAX_ROWS - 2)  # row MAX
        with pytest.raises(WorkbookError) as caught:
            layout.write_column(book, table, layout.SKU, ["X", "Y"], first=MAX_ROWS - 2)
    assert str(caught.value) == (
        f"{workbook}: sheet Stock would reach row 200,001, past row 200,000, the last one "
        "xlstock reads. Delete rows you no longer need and try again")
