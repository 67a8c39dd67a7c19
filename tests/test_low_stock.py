"""Issue 24, the workbook's side: the traffic light that Excel and LibreOffice draw
themselves, and sheet Low stock rewritten by Sync and Preview."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path

import openpyxl
import pytest
from support.office import SOFFICE
from support.shopkit import Shop

from xlstock.workbook import layout

RED = b"1 0.6078431372 0.6078431372"  # the fill of a level at or below zero (FF9B9B)
AMBER = b"1 0.9215686274 0.6117647058"  # at or below the threshold (FFEB9C)


@pytest.fixture
def shop(stock_service, tmp_path):
    shop = Shop(stock_service, tmp_path)  # A-1 10, B-2 5, C-3 8, 00123 3
    shop.new()
    return shop


def _set_setting(path: Path, label: str, value: object) -> None:
    wb = openpyxl.load_workbook(path)
    for row in wb["Settings"].iter_rows():
        if row[0].value == label:
            row[1].value = value
    wb.save(path)


def _low_stock_sheet(path: Path) -> list[tuple]:
    return list(openpyxl.load_workbook(path)["Low stock"].iter_rows(values_only=True))


def test_sync_and_preview_list_the_low_rows_largest_shortfall_first(shop):
    _set_setting(shop.workbook, "Low stock at", 4)  # the default for rows without Low at
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"A-1": {"Low at": 12}, "C-3": {"Low at": 2}})
    shop.sell(**{"00123": 3})
    synced = shop.run("sync", str(shop.workbook))
    assert "2 product(s) at or below their Low at (sheet Low stock)" in synced.output
    rows = _low_stock_sheet(shop.workbook)
    assert rows == [tuple(layout.LOW_STOCK_HEADERS),
                    ("00123", "Socks", "Blue", 0, 4, 4),  # the default 4, 0 left
                    ("A-1", "Hoodie", "Red / L", 10, 12, 2)]  # B-2 5 > 4, C-3 8 > 2
    shop.edit(**{"A-1": {"Low at": None}})  # 10 is above the default 4 now
    shop.run("preview", str(shop.workbook))
    assert [r[0] for r in _low_stock_sheet(shop.workbook)[1:] if r[0]] == ["00123"]


def test_without_a_default_only_the_rows_with_a_low_at_are_listed(shop):
    shop.run("sync", str(shop.workbook))
    assert _low_stock_sheet(shop.workbook) == [tuple(layout.LOW_STOCK_HEADERS)]
    shop.edit(**{"B-2": {"Low at": 6}})  # no Settings default: B-2 alone has a threshold
    previewed = shop.run("preview", str(shop.workbook))
    assert "1 product(s) at or below their Low at" in previewed.output
    assert _low_stock_sheet(shop.workbook)[1:] == [("B-2", "Cap", None, 5, 6, 1)]


def test_a_threshold_that_is_not_a_number_names_the_cell(shop):
    _set_setting(shop.workbook, "Low stock at", "lots")
    result = shop.run("sync", str(shop.workbook), expect=2)
    assert "Settings!B9: Low stock at 'lots'" in result.output


def _render(workbook: Path, tmp_path: Path) -> set[bytes]:
    """LibreOffice prints sheet Stock alone; the fill colours its PDF draws."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    only_stock = tmp_path / "stock-only.xlsx"
    wb = openpyxl.load_workbook(workbook)
    for name in wb.sheetnames:
        if name not in ("Stock", "Settings"):
            del wb[name]
    wb["Settings"].sheet_state = "hidden"
    wb.save(only_stock)
    subprocess.run([str(SOFFICE), "--headless", "--norestore",
                    f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",
                    "--convert-to", "pdf", "--outdir", str(tmp_path), str(only_stock)],
                   check=True, capture_output=True, timeout=120)
    data = (tmp_path / "stock-only.pdf").read_bytes()
    colours: set[bytes] = set()
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            colours.update(re.findall(rb"([\d.]+ [\d.]+ [\d.]+) rg", zlib.decompress(stream)))
        except zlib.error:
            continue
    return colours


@pytest.mark.libreoffice
@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice is not installed")
def test_libreoffice_draws_the_traffic_light_itself(shop, tmp_path):
    shop.run("sync", str(shop.workbook))
    assert not {RED, AMBER} & _render(shop.workbook, tmp_path / "calm")
    shop.edit(**{"A-1": {"Low at": 12}})  # 10 online: amber
    shop.sell(**{"00123": 3})  # 0 online: red
    shop.run("sync", str(shop.workbook))
    assert {RED, AMBER} <= _render(shop.workbook, tmp_path / "low")


@pytest.mark.libreoffice
@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice is not installed")
def test_the_rules_survive_a_libreoffice_round_trip_and_a_sync(shop, tmp_path):
    shop.run("sync", str(shop.workbook))
    out = tmp_path / "resaved"
    subprocess.run([str(SOFFICE), "--headless", "--norestore",
                    f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",
                    "--convert-to", "xlsx", "--outdir", str(out), str(shop.workbook)],
                   check=True, capture_output=True, timeout=120)
    shutil.copyfile(out / shop.workbook.name, shop.workbook)
    shop.sell(**{"00123": 3})
    shop.run("sync", str(shop.workbook))
    rules = [rule.formula[0] for cf in openpyxl.load_workbook(shop.workbook)["Stock"]
             .conditional_formatting for rule in cf.rules]
    assert any("<=0" in formula for formula in rules)
    assert any("LowStockAt" in formula for formula in rules)
    assert {RED} <= _render(shop.workbook, tmp_path / "after")


def test_publish_sends_the_thresholds_that_changed_once(shop):
    """The service's low-stock e-mails need each SKU's threshold: a publish carries the
    Low at levels (else Settings' Low stock at) that changed since the last one sent."""
    from xlstock import actions
    from xlstock.remote.client import HttpStockServiceClient
    from xlstock.workbook.xlsx_file import XlsxFile

    sent: list[dict] = []

    class Watching(HttpStockServiceClient):
        def publish_lines(self, lines, key, *, thresholds=None):
            sent.append(dict(thresholds or {}))
            return super().publish_lines(lines, key, thresholds=thresholds)

    _set_setting(shop.workbook, "Low stock at", 4)
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"A-1": {"Low at": 12, "Received": 1}})
    with Watching(shop.server.url, shop.url, shop.token) as client, \
            XlsxFile.open(shop.workbook) as book:
        actions.publish(book, client)
    assert sent[-1] == {"A-1": 12, "B-2": 4, "C-3": 4, "00123": 4}
    shop.edit(**{"A-1": {"Low at": None, "Received": 1}})
    with Watching(shop.server.url, shop.url, shop.token) as client, \
            XlsxFile.open(shop.workbook) as book:
        actions.publish(book, client)
    assert sent[-1] == {"A-1": 4}
    assert shop.live()["A-1"] == 12
