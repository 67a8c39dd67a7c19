"""One row limit, Excel's (xlstock.workbook.base.MAX_ROWS, row 1,048,576), for reading,
writing, the service's answers and the catalogue loader: sync refuses, before writing, to
grow sheet Stock past it, and a sheet sync filled to it is one that every command reads.
Against a scripted service on loopback (tests/support/faultserver.py), with the real limit:
most sheets here are sparse, so that a million rows cost little."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner, Result
from support.faultserver import FakeStock, FaultServer

from xlstock.cli import main
from xlstock.model import MAX_SKUS
from xlstock.workbook import layout
from xlstock.workbook.base import MAX_ROWS
from xlstock.workbook.xlsx_file import XlsxFile

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
        f"xlstock: the stock service lists 1,048,576 SKUs for {SHOP}, more than sheet Stock "
        "can hold: an Excel sheet has 1,048,575 rows below the header (row 1,048,576 is "
        "Excel's last); nothing was changed\n")
    after = openpyxl.load_workbook(workbook)
    assert [[c.value for c in row] for row in after[layout.STOCK_SHEET].iter_rows()] == before
    log = after[layout.LOG_SHEET]
    assert str(log.cell(log.max_row, 6).value).startswith("failed: the stock service lists")
    assert sorted(p.name for p in workbook.parent.iterdir()) == ["stock.xlsx"]


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
        "xlstock: sheet Stock uses 1,048,573 rows below the header and the stock service "
        "lists 3 SKUs new to it: 1,048,576 rows, more than the 1,048,575 an Excel sheet has "
        "(row 1,048,576 is Excel's last); nothing was changed. Delete rows"), result.stderr
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

    with XlsxFile.open(workbook) as book:
        table = layout.read_stock(book)
        layout.write_column(book, table, layout.SKU, ["LAST"], first=MAX_ROWS - 2)  # row MAX
        with pytest.raises(WorkbookError) as caught:
            layout.write_column(book, table, layout.SKU, ["X", "Y"], first=MAX_ROWS - 2)
    assert str(caught.value) == (
        f"{workbook}: sheet Stock would reach row 1,048,577, past row 1,048,576, Excel's "
        "last. Delete rows you no longer need and try again")



def _stock_rows(path: Path) -> list[int]:
    """The row numbers of sheet Stock, the largest sheet, read from its XML in the zip
    with a pattern (openpyxl would take minutes over a million rows)."""
    with zipfile.ZipFile(path) as archive:
        sheets = [i for i in archive.infolist() if i.filename.startswith("xl/worksheets/")]
        part = max(sheets, key=lambda info: info.file_size)
        return [int(n) for n in re.findall(rb'<row r="(\d+)"', archive.read(part))]


@pytest.mark.slow  # about a minute: a whole sheet of 1,048,575 SKUs, written and read
def test_a_whole_sheet_of_skus_is_synced_published_and_read(
    service: tuple[FaultServer, FakeStock], workbook: Path
) -> None:
    _, stock = service
    stock.levels.update({f"{n:07d}": n % 500 for n in range(MAX_SKUS - 3)})  # all of it
    stock.number += 1
    synced = run("sync", str(workbook), "-q")
    assert synced.exit_code == 0, synced.output
    rows = _stock_rows(workbook)
    assert len(rows) == MAX_ROWS and rows[-1] == MAX_ROWS == 1_048_576
    with XlsxFile.open(workbook) as book:  # a count typed on the last row
        table = layout.read_stock(book)
        assert len(table.rows) == MAX_SKUS
        layout.write_column(book, table, layout.NEW_LEVEL, [7], first=MAX_SKUS - 1)
        book.save()
    last = f"{MAX_SKUS - 4:07d}"  # sorted after A-1, B-2, C-3: on the last row
    published = run("publish", str(workbook), "-q")
    assert published.exit_code == 0, published.output
    assert stock.levels[last] == 7 and stock.levels["0000001"] == 1
    assert len(stock.levels) == MAX_SKUS
    assert run("validate", str(workbook)).exit_code == 0
    assert len(_stock_rows(workbook)) == MAX_ROWS


def test_one_limit_everywhere() -> None:
    """Excel's: the sheet's rows, a shop's SKUs, and an answer that can hold them."""
    from xlstock.remote.client import DEFAULT_MAX_BODY
    from xlstock.server.app import DEFAULT_MAX_BODY as SERVICE_MAX_BODY

    assert MAX_ROWS == MAX_SKUS + 1 == 1_048_576
    assert DEFAULT_MAX_BODY >= MAX_SKUS * 500 and SERVICE_MAX_BODY >= MAX_SKUS * 200


def test_a_catalogue_of_more_skus_than_a_sheet_holds_is_refused(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.csv"
    with catalogue.open("w") as out:
        out.write("sku,name,variant,qty\n")
        out.writelines(f"{n:07d},Tee,,1\n" for n in range(MAX_SKUS + 1))
    db = tmp_path / "shop.db"
    result = CliRunner().invoke(main, ["shop", "add", SHOP, "--db", str(db),
                                       "--catalogue", str(catalogue)])
    assert result.exit_code == 2, result.output
    assert (f"the catalogue {catalogue} lists 1,048,576 SKUs, more than the 1,048,575 an "
            "Excel sheet holds below its header (row 1,048,576 is Excel's last), so no "
            "workbook could keep their levels; nothing was loaded. Split the products into "
            "shops of at most 1,048,575 SKUs") in result.output


def test_a_shop_grown_past_a_sheet_by_its_catalogue_is_refused(tmp_path: Path) -> None:
    from xlstock.errors import UsageError
    from xlstock.model import CatalogueItem
    from xlstock.server.storage import StockStore

    store = StockStore(tmp_path / "shop.db")
    try:
        store.register_shop(SHOP, [CatalogueItem("OLD-1", "Tee", "", 1)])
        more = (CatalogueItem(f"{n:07d}", "Tee", "", 1) for n in range(MAX_SKUS))
        with pytest.raises(UsageError) as caught:
            store.register_shop(SHOP, more)
        assert str(caught.value).startswith(
            f"with this catalogue {SHOP} would list 1,048,576 SKUs, more than the 1,048,575")
        assert store.read_levels(SHOP)["items"] == [
            {"sku": "OLD-1", "name": "Tee", "variant": "", "qty": 1}]
    finally:
        store.close()
