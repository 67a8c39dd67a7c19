"""``xlstock demo``: the whole daily loop on one machine, against an embedded service.

A merchant (or a reviewer) sees in one command what xlstock promises: a sale made
online between Sync and Publish is kept, a delivery is added once, a stocktake is
moved by what sold since it was counted.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from xlstock import actions, interrupts
from xlstock.cli.reporting import format_report
from xlstock.i18n import _
from xlstock.workbook import layout
from xlstock.workbook.base import WorkbookAdapter

DEMO_SHOP = "https://demo-shop.example"
WORKBOOK_NAME = "xlstock-demo.xlsx"
DELIVERY = ("woo-hoodie-blue", 12)
STOCKTAKE = ("woo-beanie", 9)
SALE = {"woo-beanie": 2, "woo-tshirt": 1}
BY_HAND = ("woo-cap", 5, 1)
"""The loop ``demo --serve`` has the merchant try: a delivery of 5 typed into Received
on this SKU, and 1 sold online before the publish."""


def sample_catalogue() -> Path:
    """The sample shop's catalogue shipped with xlstock (WooCommerce's sample data)."""
    return Path(str(resources.files("xlstock") / "data" / "sample_catalogue.csv"))


def run_demo(folder: Path, *, keep_serving: bool, echo: Callable[[str], None]) -> Path:
    """Run the loop; return the workbook's path. With ``keep_serving``, block until
    Ctrl-C with the service still up, so the workbook can be tried by hand."""
    from xlstock.remote.client import HttpStockServiceClient
    from xlstock.server import read_catalogue_csv, start_background_server
    from xlstock.workbook.template import build_workbook, language_from_environment
    from xlstock.workbook.xlsx_file import XlsxFile

    folder.mkdir(parents=True, exist_ok=True)
    workbook = folder / WORKBOOK_NAME
    with tempfile.TemporaryDirectory(prefix="xlstock-demo-") as tmp, \
            start_background_server(Path(tmp) / "shop.db", port=0) as server:
        items = read_catalogue_csv(sample_catalogue())
        token = server.store.add_shop(DEMO_SHOP, items)
        echo(_("1. Started a stock service at {url} with the shop {shop} ({count:n} SKUs, "
               "WooCommerce's sample catalogue).", url=server.url, shop=DEMO_SHOP,
               count=len(items)))
        if workbook.exists():
            workbook.unlink()
        build_workbook(workbook, service_url=server.url, shop_url=DEMO_SHOP,
                       language=language_from_environment())  # the language it speaks
        echo(_("2. Created the workbook {path}.", path=workbook))
        with HttpStockServiceClient(server.url, DEMO_SHOP, token) as service:
            with XlsxFile.open(workbook) as book:
                report = actions.sync(book, service)
            echo(_("3. Sync: {summary}", summary=report.summary))

            with XlsxFile.open(workbook) as book:
                _type_edits(book)
            echo(_("4. Typed a delivery (Received {received:n} on {sku}) and a stocktake (New "
                   "level {counted:n} on {counted_sku}) into sheet Stock.", received=DELIVERY[1],
                   sku=DELIVERY[0], counted=STOCKTAKE[1], counted_sku=STOCKTAKE[0]))

            service.place_order(SALE, reference="demo-1001")
            echo(_("5. Meanwhile a customer bought online: {items}.",
                   items=", ".join(f"{qty} x {sku}" for sku, qty in SALE.items())))

            with XlsxFile.open(workbook) as book:
                report = actions.preview(book, service)
            echo(_("6. Preview:"))
            echo(format_report(report, indent="   "))

            with XlsxFile.open(workbook) as book:
                report = actions.publish(book, service)
            echo(_("7. Publish: {summary}", summary=report.summary))
            levels = service.read_levels().levels()
            echo("   " + _(
                "Online now: {sku} {level:n}, {counted_sku} {counted_level:n} (counted "
                "{counted:n}, less the {sold:n} sold online since Sync), woo-tshirt "
                "{tshirt:n} (the online sale is kept).", sku=DELIVERY[0],
                level=levels[DELIVERY[0]], counted_sku=STOCKTAKE[0],
                counted_level=levels[STOCKTAKE[0]], counted=STOCKTAKE[1],
                sold=SALE[STOCKTAKE[0]], tshirt=levels["woo-tshirt"]))
        echo("\n" + _("The workbook is {path}", path=workbook.resolve()))
        if keep_serving:
            with XlsxFile.open(workbook, writable=False) as book:
                cell = _received_cell(book, BY_HAND[0])
            echo("\n" + _("The stock service keeps running at {url} (Ctrl-C stops it).",
                          url=server.url))
            echo(_("Try the daily loop by hand, in another terminal:"))
            echo("\n".join(f"  {line}"
                           for line in hand_commands(server.url, token, workbook, cell)))
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                interrupts.handled()
                echo(_("Stopped the stock service."))
    return workbook


def hand_commands(service_url: str, token: str, workbook: Path, cell: str) -> list[str]:
    """The commands ``demo --serve`` prints: the whole loop, with the edit a merchant
    makes in a spreadsheet program between Sync and Preview (typing a delivery into
    ``cell``, the Received cell of :data:`BY_HAND`'s SKU), or the one command that does
    the same without one, and a sale online meanwhile. They start with a ``cd`` to the
    workbook's folder, so that they work from a new terminal wherever it opens."""
    name = shlex.quote(workbook.name)
    sku, received, sold = BY_HAND
    type_it = (f'import openpyxl; book = openpyxl.load_workbook("{workbook.name}"); '
               f'book["{layout.STOCK_SHEET}"]["{cell}"] = {received}; '
               f'book.save("{workbook.name}")')
    return [
        f"export XLSTOCK_TOKEN={token}",
        f"cd {shlex.quote(str(workbook.resolve().parent))}",
        f"xlstock sync {name}",
        "# " + _("Edit: open {name} in Excel or LibreOffice, type {received} into Received on "
                 "the row of {sku}", name=workbook.name, received=received, sku=sku),
        "# " + _("(cell {cell}: a delivery), save and close it. With no spreadsheet program "
                 "at hand, this does the same:", cell=cell),
        f"{shlex.quote(sys.executable)} -c {shlex.quote(type_it)}",
        "# " + _("Meanwhile a customer buys {count:n} online:", count=sold),
        f"xlstock order --service {service_url} --shop {DEMO_SHOP} {sku}={sold}",
        f"xlstock preview {name}",
        f"xlstock publish {name}",
    ]


def _received_cell(book: WorkbookAdapter, sku: str) -> str:
    """The A1 name of the Received cell on ``sku``'s row of sheet Stock."""
    table = layout.read_stock(book)
    index = next(i for i in range(len(table.rows)) if table.value(i, layout.SKU) == sku)
    return table.cell(index, layout.RECEIVED).split("!", 1)[1]


def _type_edits(book: WorkbookAdapter) -> None:
    """What the merchant types: a delivery and a counted level."""
    table = layout.read_stock(book)
    for sku, qty, header in ((*DELIVERY, layout.RECEIVED), (*STOCKTAKE, layout.NEW_LEVEL)):
        index = next(i for i in range(len(table.rows)) if table.value(i, layout.SKU) == sku)
        book.write_block(layout.STOCK_SHEET, table.sheet_row(index), table.columns[header],
                         [[qty]])
    book.save()
