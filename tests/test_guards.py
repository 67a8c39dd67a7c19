"""The mass-change guard and the token's secrecy, end to end (issue 5, points 6 and 7)."""

from __future__ import annotations

import logging
import zipfile

import openpyxl
from support.shopkit import Shop

from xlstock.model import StockItem

MANY = [StockItem(f"M-{n:02d}", f"Thing {n}", "", 10) for n in range(30)]


def _point_at(shop: Shop, other_url: str, token: str) -> None:
    wb = openpyxl.load_workbook(shop.workbook)
    for row in wb["Settings"].iter_rows():
        if row[0].value == "Shop URL":
            row[1].value = other_url
    wb.save(shop.workbook)
    shop.env = {"XLSTOCK_TOKEN": token}


def test_sync_answered_with_an_empty_catalogue_stops(stock_service, tmp_path):
    shop = Shop(stock_service, tmp_path, MANY)
    shop.new()
    shop.run("sync", str(shop.workbook))
    empty_url = shop.url.replace("https://", "https://empty-")
    _point_at(shop, empty_url, stock_service.store.add_shop(empty_url, []))
    before = shop.sheet()
    result = shop.run("sync", str(shop.workbook), expect=1)
    assert "--allow-mass-change" in result.output
    assert "lists 0 product(s)" in result.output
    after = shop.sheet()
    assert {k: v["Online"] for k, v in after.items()} == {
        k: v["Online"] for k, v in before.items()
    }
    shop.run("sync", str(shop.workbook), "--allow-mass-change")
    assert all("not in the shop online" in row["Status"] for row in shop.sheet().values())


def test_publish_changing_most_of_the_shop_needs_allow_mass_change(stock_service, tmp_path):
    shop = Shop(stock_service, tmp_path, MANY)
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.edit(**{f"M-{n:02d}": {"New level": 0} for n in range(25)})
    result = shop.run("publish", str(shop.workbook), expect=1)
    assert "25 of the shop's 30 levels (25 to zero)" in result.output
    assert "--allow-mass-change" in result.output
    assert set(shop.live().values()) == {10}
    assert shop.sheet()["M-00"]["New level"] == 0
    shop.run("publish", str(shop.workbook), "--allow-mass-change")
    assert sum(shop.live().values()) == 5 * 10


def test_a_small_publish_is_not_a_mass_change(stock_service, tmp_path):
    shop = Shop(stock_service, tmp_path, MANY)
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.edit(**{f"M-{n:02d}": {"Received": 1} for n in range(19)})
    shop.run("publish", str(shop.workbook))
    assert sum(shop.live().values()) == 30 * 10 + 19


def test_the_token_never_reaches_workbook_output_or_logs(stock_service, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    shop = Shop(stock_service, tmp_path)
    shop.new()
    outputs = [shop.run("sync", str(shop.workbook)).output]
    shop.edit(**{"A-1": {"Received": 2}, "B-2": {"New level": -1}})
    outputs.append(shop.run("publish", str(shop.workbook), expect=1).output)
    shop.edit(**{"B-2": {"New level": None}})
    outputs.append(shop.run("publish", str(shop.workbook)).output)
    shop.env = {"XLSTOCK_TOKEN": shop.token + "x"}  # a wrong token: 401 names no token
    outputs.append(shop.run("sync", str(shop.workbook), expect=4).output)
    for text in [*outputs, caplog.text]:
        assert shop.token not in text
    with zipfile.ZipFile(shop.workbook) as archive:
        for name in archive.namelist():
            assert shop.token.encode() not in archive.read(name), name
