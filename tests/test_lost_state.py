"""Issue 19: a count is never published as an absolute level over a possible sale, even
when xlstock's memory of the last Sync (the very hidden state sheet) is gone.

Each way a merchant loses it, with a sale between Sync and Publish: the count is planned
from the Online cell (the level the merchant counted against) and the sale is kept; with
no Online number either, the row is refused ("Sync first") and nothing is sent."""

from __future__ import annotations

import openpyxl
import pytest
from support.shopkit import Shop

from xlstock.workbook import layout
from xlstock.workbook.base import STATE_SHEET
from xlstock.workbook.xlsx_file import XlsxFile


@pytest.fixture
def shop(stock_service, tmp_path):
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))  # A-1 10, B-2 5
    return shop


def _delete_state_sheet(shop: Shop) -> None:
    wb = openpyxl.load_workbook(shop.workbook)
    del wb[STATE_SHEET]
    wb.save(shop.workbook)


def _copy_into_another_workbook(shop: Shop) -> None:
    """The usual way to merge files: Stock and Settings copied cell by cell into a new
    workbook, which has no hidden sheet."""
    source = openpyxl.load_workbook(shop.workbook)
    target = openpyxl.Workbook()
    target.remove(target.active)
    for name in ("Stock", "Settings"):
        sheet = target.create_sheet(name)
        for row in source[name].iter_rows(values_only=True):
            sheet.append(list(row))
    target.save(shop.workbook)


def _forget_one_row(shop: Shop) -> None:
    with XlsxFile.open(shop.workbook) as book:
        state = layout.read_state(book)
        del state["base"]["B-2"]
        layout.write_state(book, state)
        book.save()


@pytest.mark.parametrize("lose", [_delete_state_sheet, _copy_into_another_workbook,
                                  _forget_one_row],
                         ids=["state sheet deleted", "copied into another workbook",
                              "state row missing"])
def test_a_count_is_planned_from_online_when_the_memory_is_lost(shop, lose):
    lose(shop)
    shop.edit(**{"B-2": {"New level": 10}})  # counted 10 where Online said 5
    shop.sell(B_2=2)
    preview = shop.run("preview", str(shop.workbook))
    assert "planned from Online 5" in preview.output
    shop.run("publish", str(shop.workbook))
    assert shop.live()["B-2"] == 10 - 2  # the 2 sold since are kept, not overwritten


def test_a_count_without_any_baseline_is_refused_and_nothing_is_sent(shop):
    _delete_state_sheet(shop)
    shop.edit(**{"B-2": {"New level": 10, "Online": None}, "A-1": {"Received": 1}})
    shop.sell(B_2=2)
    result = shop.run("publish", str(shop.workbook), expect=1)
    assert "Sync first" in result.output
    assert shop.live() == {"A-1": 10, "B-2": 3, "C-3": 8, "00123": 3}
    assert "Sync first" in str(shop.sheet()["B-2"]["Status"])
