"""A shop on the session's stock service and its workbook, driven through the CLI as a
merchant would (shared by the end-to-end tests)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import openpyxl
import requests
from click.testing import CliRunner

from xlstock.cli import main
from xlstock.model import StockItem
from xlstock.workbook import layout

CATALOGUE = [
    StockItem("A-1", "Hoodie", "Red / L", 10),
    StockItem("B-2", "Cap", "", 5),
    StockItem("C-3", "Belt", "", 8),
    StockItem("00123", "Socks", "Blue", 3),
]
_shop_numbers = itertools.count(1)
_ENGLISH_HEADERS = {french: english for english, french in layout.FRENCH_HEADERS.items()}


class Merchant:
    """A merchant's workbook, driven through the CLI as a merchant would: commands, edits
    typed into sheet Stock, the sheet read back. ``workbook`` and ``env`` (the
    environment of the commands: the token) are set by each kind of shop. Edits and the
    sheet read back name Stock's columns in English, whatever ``language`` the workbook
    is in."""

    workbook: Path
    env: dict[str, str]
    language: str = layout.ENGLISH

    def run(self, *args: str, expect: int | None = 0):
        result = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, result.output
        return result

    def edit(self, **cells_by_sku: Mapping[str, object]) -> None:
        wb = openpyxl.load_workbook(self.workbook)
        ws = wb["Stock"]
        headers = {c.value: c.column for c in ws[1] if c.value}
        for row in range(2, ws.max_row + 1):
            sku = ws.cell(row, headers["SKU"]).value
            for header, value in cells_by_sku.get(sku, {}).items():
                typed = (layout.header_text(header, self.language)
                         if header in layout.FRENCH_HEADERS else header)
                ws.cell(row, headers[typed]).value = value
        wb.save(self.workbook)

    def publish_killed_at(self, failpoint: str, *options: str) -> None:
        """``xlstock publish`` in a process of its own, killed (SIGKILL, by
        :mod:`xlstock.failpoints`) when it reaches ``failpoint``."""
        env = {**os.environ, **self.env, "XLSTOCK_FAILPOINT": failpoint}
        killed = subprocess.run([sys.executable, "-m", "xlstock", "publish",
                                 str(self.workbook), "-q", *options], env=env,
                                capture_output=True, text=True, timeout=300)
        assert killed.returncode == -9, killed.stdout + killed.stderr

    def set_setting(self, label: str, value: object) -> None:
        """Type ``value`` beside ``label`` (its English name) in sheet Settings, as the
        merchant does (``Conflict policy``, ``strict``)."""
        wb = openpyxl.load_workbook(self.workbook)
        ws = wb[layout.sheet_text("Settings", self.language)]
        typed = layout.label_text(label, self.language)
        for row in ws.iter_rows():
            if row[0].value == typed:
                row[1].value = value
                break
        else:
            raise AssertionError(f"no setting {typed!r} in sheet {ws.title}")
        wb.save(self.workbook)

    def sheet(self) -> dict[str, dict[str, object]]:
        wb = openpyxl.load_workbook(self.workbook)
        ws = wb["Stock"]
        headers = [_ENGLISH_HEADERS.get(c.value, c.value) for c in ws[1]]
        rows = {}
        for values in ws.iter_rows(min_row=2, values_only=True):
            record = dict(zip(headers, values, strict=False))
            if record.get("SKU") is not None:
                rows[record["SKU"]] = record
        return rows


class Shop(Merchant):
    """One registered shop on the session's stock service, and a workbook for it."""

    def __init__(self, server, tmp_path: Path, items=CATALOGUE,
                 language: str = layout.ENGLISH) -> None:
        self.server = server
        self.language = language
        self.url = f"https://e2e-{next(_shop_numbers)}.shop.example"
        self.token = server.store.add_shop(self.url, list(items))
        self.workbook = tmp_path / "stock.xlsx"
        self.env = {"XLSTOCK_TOKEN": self.token}

    def new(self) -> None:
        self.run("new", str(self.workbook), "--service", self.server.url, "--shop", self.url,
                 "--lang", self.language)

    def live(self) -> dict[str, int]:
        answer = requests.get(
            f"{self.server.url}/v1/stock", params={"shop": self.url},
            headers={"Authorization": f"Bearer {self.token}"}, timeout=10,
        )
        answer.raise_for_status()
        return {item["sku"]: item["qty"] for item in answer.json()["items"]}

    def sell(self, **lines: int) -> None:
        answer = requests.post(
            f"{self.server.url}/v1/orders", params={"shop": self.url},
            headers={"Authorization": f"Bearer {self.token}"},
            json={"lines": [{"sku": sku.replace("_", "-"), "qty": qty}
                            for sku, qty in lines.items()]},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text

    def history_count(self) -> int:
        answer = requests.get(
            f"{self.server.url}/v1/history", params={"shop": self.url, "limit": "500"},
            headers={"Authorization": f"Bearer {self.token}"}, timeout=10,
        )
        return len(answer.json()["versions"])


