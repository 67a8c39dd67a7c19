"""Preview and Publish plan only the rows that matter (issue 22), and leave the very
workbook the plan of every row leaves: twin shops on the real stock service, each with
its .xlsx file, take the same sales and the same edits; one previews and publishes
planning every row (the full planner, kept as the reference), the other planning the
rows picked; every part of the two files is then the same, byte for byte (the shop's
address and the service's epoch aside, the one thing that differs between two shops)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests
from support.shopkit import Shop
from support.workbook_corpus import read_parts, set_cells

from xlstock import actions
from xlstock.model import StockItem
from xlstock.workbook import layout

ITEMS = [StockItem(f"S-{n:02d}", f"Item {n}", "", 5 + n) for n in range(40)]
COLUMN = {header: "ABCDEFGHI"[n] for n, header in enumerate(layout.STOCK_HEADERS)}
EDIT, FAULT, CODE = 0, 1, 3  # the publish exit statuses of the scenarios


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both shops' commands see the same clock and the same publish keys."""
    monkeypatch.setattr(actions, "_now", lambda: "2026-01-02T03:04:05+00:00")
    monkeypatch.setattr(actions, "_stamp", lambda language: "2026-01-02 03:04")


def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publish keys counted from 1 again (uuid4 is what the actions make keys of)."""
    counter = itertools.count(1)
    monkeypatch.setattr(actions.uuid, "uuid4", lambda: uuid.UUID(int=next(counter)))


class Twin:
    """A shop and its workbook, synced, with the sheet row of each SKU."""

    def __init__(self, server: Any, folder: Path, language: str) -> None:
        folder.mkdir()
        self.shop = Shop(server, folder, ITEMS, language=language)
        self.shop.new()
        self.shop.run("sync", str(self.shop.workbook))
        book = openpyxl.load_workbook(self.shop.workbook, read_only=True)
        try:
            self.row_of = {row[0]: number for number, row in enumerate(
                book.worksheets[0].iter_rows(min_row=2, values_only=True), start=2)}
        finally:
            book.close()

    def type_in(self, cells: dict[tuple[str, str], Any]) -> None:
        """Cells by (SKU or sheet row, header), as a spreadsheet program writes them."""
        set_cells(self.shop.workbook, "Stock", {
            f"{COLUMN[header]}{self.row_of.get(sku, sku)}": value
            for (sku, header), value in cells.items()})

    def run(self, *args: str, expect: int) -> tuple[str, str]:
        """The command's output (its report) and the shop's epoch after it."""
        output = self.shop.run(*args, str(self.shop.workbook), expect=expect).output
        answer = requests.get(f"{self.shop.server.url}/v1/stock", params={"shop": self.shop.url},
                              headers={"Authorization": f"Bearer {self.shop.token}"},
                              timeout=10)
        epoch = answer.headers["ETag"].strip('"').split(".", 1)[1]
        return output.replace(str(self.shop.workbook.parent), "FOLDER"), epoch

    def parts(self, epoch: str) -> dict[str, bytes]:
        return {name: data.replace(self.shop.url.encode(), b"SHOP").replace(
                    epoch.encode(), b"EPOCH")
                for name, data in read_parts(self.shop.workbook).items()}


def _same(whole: Twin, picked: Twin, step: Callable[[Twin], tuple[str, str]],
          monkeypatch: pytest.MonkeyPatch, sizes: list[int]) -> None:
    """``step`` on each twin, the first planning every row; the reports and the files
    come out alike."""
    with monkeypatch.context() as every_row:
        every_row.setattr(actions, "rows_to_plan", lambda *args, **kwargs: None)
        _keys(every_row)
        said_whole, epoch_whole = step(whole)
    with monkeypatch.context() as keys:
        _keys(keys)
        said_picked, epoch_picked = step(picked)
    assert said_picked.replace(picked.shop.url, "SHOP") == said_whole.replace(
        whole.shop.url, "SHOP")
    one, other = whole.parts(epoch_whole), picked.parts(epoch_picked)
    assert list(one) == list(other)
    for name in one:
        assert one[name] == other[name], name
    assert sizes and max(sizes) < len(ITEMS)  # the picked twin did plan fewer rows


@pytest.fixture
def sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each plan of the picked twin looked at."""
    seen: list[int] = []
    real = actions.rows_to_plan

    def counting(*args: Any, **kwargs: Any) -> list[int] | None:
        picked = real(*args, **kwargs)
        seen.append(len(picked) if picked is not None else len(args[0]))
        return picked

    monkeypatch.setattr(actions, "rows_to_plan", counting)
    return seen


def _edits(twin: Twin) -> None:
    twin.shop.sell(S_04=2, S_02=1, S_30=3)
    twin.type_in({("S-01", layout.RECEIVED): 4, ("S-02", layout.NEW_LEVEL): 9,
                  ("S-03", layout.NEW_LEVEL): 0, ("S-05", layout.ONLINE): 99,
                  ("S-06", layout.RECEIVED): -2, ("S-07", layout.RECEIVED): 0,
                  ("S-30", layout.ONLINE): 32})  # its live level: moved since Sync all the same


def _problems(twin: Twin) -> None:
    twin.shop.sell(S_10=1)
    last = len(ITEMS) + 1
    twin.type_in({
        ("S-01", layout.RECEIVED): "abc", ("S-02", layout.RECEIVED): 1,
        ("S-02", layout.NEW_LEVEL): 3, ("S-03", layout.NEW_LEVEL): -1,
        ("S-08", layout.RECEIVED): -100, ("S-09", layout.RECEIVED): 2,
        ("S-11", layout.RECEIVED): 1,
        (last + 1, layout.SKU): "ZZ-9", (last + 1, layout.RECEIVED): 1,
        (last + 2, layout.SKU): "ZZ-8",
        (last + 3, layout.SKU): "S-09",  # the SKU of an edited row, again
        (last + 4, layout.RECEIVED): 5,  # no SKU
        (last + 5, layout.SKU): "S-20",  # a duplicate of a row at rest
    })


def _after_a_preview(twin: Twin) -> None:
    twin.shop.sell(S_12=1)
    twin.type_in({("S-01", layout.RECEIVED): 4, ("S-02", layout.NEW_LEVEL): 9,
                  ("S-03", layout.RECEIVED): "x"})
    twin.run("preview", expect=FAULT)
    twin.type_in({("S-01", layout.RECEIVED): None, ("S-03", layout.RECEIVED): None,
                  ("S-04", layout.RECEIVED): 1, ("S-05", layout.CHANGE): 7,
                  ("S-06", layout.STATUS): "a note"})


def _conflicts(twin: Twin) -> None:
    twin.shop.sell(S_02=1, S_03=1)
    twin.type_in({("S-02", layout.NEW_LEVEL): 9, ("S-03", layout.RECEIVED): 2,
                  ("S-04", layout.NEW_LEVEL): 1})


SCENARIOS = {
    "edits": (_edits, (), EDIT),
    "problems": (_problems, (), FAULT),
    "after a preview": (_after_a_preview, (), EDIT),
    "strict conflicts": (_conflicts, ("--strict",), CODE),
}


@pytest.mark.parametrize("language", [layout.ENGLISH, layout.FRENCH])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_preview_and_publish_leave_the_workbook_the_plan_of_every_row_leaves(
        stock_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frozen: None,
        sizes: list[int], scenario: str, language: str) -> None:
    prepare, options, published = SCENARIOS[scenario]
    whole, picked = (Twin(stock_service, tmp_path / name, language)
                     for name in ("whole", "picked"))
    for twin in (whole, picked):
        prepare(twin)
    preview_exit = FAULT if published == FAULT else (CODE if options else EDIT)
    _same(whole, picked, lambda twin: twin.run("preview", *options, expect=preview_exit),
          monkeypatch, sizes)
    _same(whole, picked, lambda twin: twin.run("publish", *options, expect=published),
          monkeypatch, sizes)
    if published == EDIT:  # and the next publish, with nothing left to send
        _same(whole, picked, lambda twin: twin.run("publish", expect=EDIT), monkeypatch, sizes)
