"""The last Sync's levels held once (issue 22 point 1, 1,000,000 SKUs under 700 MB):
changed in place by a Sync of changes (no copy of a million levels), let go before a
command's last save; a plan that holds no list of the columns it reads once."""

from __future__ import annotations

import sys

import pytest
from support.shopkit import Shop

from xlstock import actions
from xlstock.errors import MassChangeError
from xlstock.model import StockItem
from xlstock.workbook import layout
from xlstock.workbook.xlsx_file import XlsxFile

CATALOGUE = [StockItem(f"S-{n:03d}", f"Product {n}", "", 300 + n % 3) for n in range(40)]


def _session_and_changes(shop: Shop, monkeypatch):
    monkeypatch.setenv("XLSTOCK_TOKEN", shop.token)
    book = XlsxFile.open(shop.workbook)
    settings = layout.read_settings(book)
    session = actions._WorkbookSession.read(book, settings)
    with actions.service_for(settings) as service:
        snapshot = actions._changes_for_sync(session, service, str(session.state["synced"]),
                                             names=True)
    assert snapshot is not None and not snapshot.whole
    return book, session, snapshot


def test_a_sync_of_changes_lays_them_into_the_levels_without_a_copy(
        stock_service, tmp_path, monkeypatch) -> None:
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.sell(S_001=2, S_030=1)
    book, session, snapshot = _session_and_changes(shop, monkeypatch)
    with book:
        base = session.state["base"]
        actions._apply_sync(session, snapshot, False, actions._noop)
        assert session.state["base"] is base  # the same dict, changed in place
        assert base == shop.live() and base["S-001"] == 299


def test_a_refused_sync_leaves_the_levels_as_they_were(stock_service, tmp_path,
                                                       monkeypatch) -> None:
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    shop.run("sync", str(shop.workbook))
    stock_service.store.remove_products(shop.url, [f"S-{n:03d}" for n in range(30)])
    book, session, snapshot = _session_and_changes(shop, monkeypatch)
    with book:
        base = session.state["base"]
        before = dict(base)
        with pytest.raises(MassChangeError) as refused:
            actions._apply_sync(session, snapshot, False, actions._noop)
        assert "lists 10 product(s)" in str(refused.value.message)
        assert "30 of the 40 SKUs" in str(refused.value.message)
        assert session.state["base"] is base and base == before


def test_the_skus_not_on_the_sheet_are_found_either_way() -> None:
    live = {sku: StockItem(sku, qty=1) for sku in ("N-1", "A-1", "N-2")}
    assert actions._not_on_sheet(live, ["A-1", None, "B-1"] * 3) == ["N-1", "N-2"]  # few
    assert actions._not_on_sheet(live, ["A-1", None]) == ["N-1", "N-2"]  # as many as rows


def test_the_levels_are_let_go_before_the_last_save(stock_service, tmp_path) -> None:
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    shop.run("sync", str(shop.workbook))
    with XlsxFile.open(shop.workbook) as book:
        session = actions._WorkbookSession.read(book, layout.read_settings(book))
        session.log("sync", 0, 0, "a row")
        session.save(last=True)
        assert "base" not in session.state and session.skus is not None
        with pytest.raises(RuntimeError):
            session.save_state()  # would write a memory without its levels
    with XlsxFile.open(shop.workbook, writable=False) as book:
        assert layout.read_state(book)["base"] == shop.live()


def test_a_table_column_read_as_it_is_gone_through() -> None:
    table = layout.StockTable(columns={layout.SKU: 1, layout.STATUS: 3},
                              rows=[["A-1", 5, "ok"], ["B-2", 6, None]], width=3)
    assert list(table.values(layout.STATUS)) == table.column(layout.STATUS) == ["ok", None]
    assert list(table.values(layout.CHANGE)) == [None, None]  # no such column
    table.rows.append(["C-3"])  # a row shorter than the table: as column() reads it
    assert list(table.values(layout.STATUS)) == ["ok", None, None]
    column = actions._Column(table, layout.STATUS)
    assert (len(column), column[0], column[-3], column[2], column[0:2]) == \
        (3, "ok", "ok", None, ["ok", None])
    assert list(column) == ["ok", None, None]
    with pytest.raises(IndexError):
        column[3]


def test_a_plan_holds_no_list_of_the_edit_change_or_status_columns(
        stock_service, tmp_path, monkeypatch) -> None:
    """At 1,000,000 rows each list of a column is 8 MB at Preview's and Publish's peak:
    the plan holds the SKUs, the Online cells and the two levels of each row as lists,
    and reads Received, New level, Change and Status as it goes (it held nine lists)."""
    import tracemalloc

    count = 20_000
    items = [StockItem(f"P-{n:06d}", f"Product {n}", "", n % 50) for n in range(count)]
    shop = Shop(stock_service, tmp_path, items=items)
    shop.new()
    shop.run("sync", str(shop.workbook))
    monkeypatch.setenv("XLSTOCK_TOKEN", shop.token)
    with XlsxFile.open(shop.workbook, writable=False) as book:
        settings = layout.read_settings(book)
        session = actions._WorkbookSession.read(book, settings)
        for header in (layout.SKU, layout.ONLINE, layout.RECEIVED, layout.NEW_LEVEL,
                       layout.CHANGE, layout.STATUS):
            session.table.column(header)  # every column read before the plan
        with actions.service_for(settings) as service:
            snapshot = service.read_levels(names=False)
        snapshot.level_map()
        one_list = sys.getsizeof(list(range(count)))
        tracemalloc.start()
        try:
            plan, _rows = actions._plan(session, snapshot, None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert plan.ok and not plan.changed
    assert peak < 6 * one_list, (peak, one_list)
