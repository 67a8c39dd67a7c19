"""Issue 21: ``xlstock undo`` takes back a publish without losing the sales made since,
on the xlstock service and on the Shopify and WooCommerce stand-ins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.shopkit import Shop

from xlstock.planner import REBASE, STRICT, PublishLine, plan_undo


def _publish_key(shop: Shop) -> str:
    result = shop.run("history", str(shop.workbook))
    return result.output.split()[0]


@pytest.fixture
def shop(stock_service, tmp_path):
    shop = Shop(stock_service, tmp_path)  # A-1 10, B-2 5, C-3 8, 00123 3
    shop.new()
    shop.run("sync", str(shop.workbook))
    return shop


def test_plan_undo_keeps_the_sales_made_since():
    published = {"A-1": PublishLine("A-1", 10, 110, 100), "B-2": PublishLine("B-2", 5, 50)}
    rows = {r.sku: r for r in plan_undo(published, {}, {"A-1": 107, "B-2": 48})}
    assert (rows["A-1"].change, rows["A-1"].target) == (-100, 7)
    assert (rows["B-2"].change, rows["B-2"].target) == (-45, 3)
    strict = {r.sku: r for r in plan_undo(published, {}, {"A-1": 107, "B-2": 48},
                                          policy=STRICT)}
    assert strict["B-2"].line is None and "moved from 50 to 48" in strict["B-2"].problem
    assert strict["A-1"].target == 7  # a delivery is a change in units under both
    low = plan_undo(published, {}, {"A-1": 20, "B-2": 50}, policy=REBASE)
    assert low[0].line is None and "below zero" in low[0].problem


def test_undo_after_sales_of_the_same_skus(shop):
    shop.edit(**{"A-1": {"Received": 100}, "B-2": {"New level": 50}})  # 100 by mistake
    shop.run("publish", str(shop.workbook))
    shop.sell(A_1=3, B_2=2)
    preview = shop.run("undo", str(shop.workbook), "--preview")
    assert "nothing was sent" in preview.output and shop.live()["A-1"] == 107
    shop.run("undo", str(shop.workbook), "--yes")
    assert shop.live()["A-1"] == 10 - 3 and shop.live()["B-2"] == 5 - 2
    sheet = shop.sheet()
    assert sheet["A-1"]["Online"] == 7 and sheet["A-1"]["Change"] == -100
    history = shop.run("history", str(shop.workbook)).output
    assert "undo of publish" in history and "undone at" in history


def test_undo_twice_is_refused_with_the_time_of_the_first(shop):
    shop.edit(**{"A-1": {"Received": 4}})
    shop.run("publish", str(shop.workbook))
    key = _publish_key(shop)
    shop.run("undo", str(shop.workbook), "--yes")
    again = shop.run("undo", str(shop.workbook), "--yes", expect=2)
    assert "itself an undo" in again.output
    named = shop.run("undo", str(shop.workbook), "--publish", key, "--yes", expect=2)
    assert "was undone already, at" in named.output
    assert shop.live()["A-1"] == 10


def test_undo_of_an_earlier_publish_leaves_a_later_one_alone(shop):
    shop.edit(**{"A-1": {"Received": 5}})
    shop.run("publish", str(shop.workbook))
    first = _publish_key(shop)
    shop.edit(**{"C-3": {"New level": 20}})
    shop.run("publish", str(shop.workbook))
    shop.run("undo", str(shop.workbook), "--publish", first, "--yes")
    assert shop.live()["A-1"] == 10 and shop.live()["C-3"] == 20


def test_undo_below_zero_is_refused_then_partial_sends_the_rest(shop):
    shop.edit(**{"A-1": {"Received": 5}, "C-3": {"Received": 2}})
    shop.run("publish", str(shop.workbook))  # A-1 15, C-3 10
    shop.sell(C_3=9)  # 1 left: taking the 2 back would go below zero
    refused = shop.run("undo", str(shop.workbook), "--yes", expect=1)
    assert "C-3" in refused.output and "below zero" in refused.output
    assert shop.live()["A-1"] == 15
    shop.run("undo", str(shop.workbook), "--yes", "--partial")
    assert shop.live()["A-1"] == 10 and shop.live()["C-3"] == 1


def test_undo_asks_before_it_sends(shop):
    shop.edit(**{"A-1": {"Received": 5}})
    shop.run("publish", str(shop.workbook))
    result = shop.run("undo", str(shop.workbook), expect=2)  # no terminal, no --yes
    assert "--yes" in result.output and shop.live()["A-1"] == 15


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", ["before_upload", "after_upload"])
def test_an_undo_killed_midway_is_finished_once(shop, failpoint):
    shop.edit(**{"A-1": {"Received": 5}})
    shop.run("publish", str(shop.workbook))
    env = {**os.environ, **shop.env, "XLSTOCK_FAILPOINT": failpoint}
    killed = subprocess.run([sys.executable, "-m", "xlstock", "undo", str(shop.workbook),
                             "--yes", "-q"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    shop.sell(A_1=1)
    shop.run("undo", str(shop.workbook), "--yes")
    assert shop.live()["A-1"] == 10 - 1
    shop.run("undo", str(shop.workbook), "--yes", expect=2)
    assert shop.live()["A-1"] == 9


def test_undo_on_shopify_and_woocommerce(tmp_path):
    from support.shopify_standin import ShopifyStandIn
    from support.woocommerce_standin import WooCommerceStandIn
    from test_shopify import Merchant as ShopifyMerchant
    from test_shopify import _stock as shopify_stock
    from test_woocommerce import Merchant as WooMerchant
    from test_woocommerce import _stock as woo_stock

    with ShopifyStandIn() as store:
        shopify_stock(store, extra=False)
        person = ShopifyMerchant(store, tmp_path, "shopify.xlsx")
        person.new()
        person.run("sync", str(person.workbook))
        person.edit(**{"A-1": {"Received": 100}, "B-2": {"New level": 50}})
        person.run("publish", str(person.workbook))
        store.sell("A-1", 2)
        store.sell("B-2", 1)
        person.run("undo", str(person.workbook), "--yes")
        assert store.level("A-1") == 8 and store.level("B-2") == 4
    with WooCommerceStandIn() as woo:
        woo_stock(woo)
        person = WooMerchant(woo, tmp_path, "woo.xlsx")
        person.new()
        person.run("sync", str(person.workbook))
        person.edit(**{"B-2": {"Received": 100}, "C-3": {"New level": 50}})
        person.run("publish", str(person.workbook))
        woo.sell({"B-2": 2, "C-3": 1})
        person.run("undo", str(person.workbook), "--yes")
        assert woo.level("B-2") == 3 and woo.level("C-3") == 7


def _undo_online(shop: Shop, key: str) -> None:
    """The merchant undoes the publish on the service (as the account pages do)."""
    import uuid

    import requests

    answer = requests.post(
        f"{shop.server.url}/v1/publishes/{key}/undo", params={"shop": shop.url},
        headers={"Authorization": f"Bearer {shop.token}",
                 "Idempotency-Key": uuid.uuid4().hex},
        json={"confirm_partial": False, "preview": False}, timeout=10)
    assert answer.status_code == 200, answer.text


def test_a_publish_undone_online_is_never_undone_again_from_the_workbook(shop):
    shop.edit(**{"A-1": {"Received": 5}})
    shop.run("publish", str(shop.workbook))
    key = _publish_key(shop)
    _undo_online(shop, key)
    assert shop.live()["A-1"] == 10
    refused = shop.run("undo", str(shop.workbook), "--yes", expect=2)
    assert "undone already" in refused.output and "account pages" in refused.output
    assert shop.live()["A-1"] == 10


def test_sync_learns_of_a_publish_undone_online(shop):
    import openpyxl

    shop.edit(**{"A-1": {"Received": 5}})
    shop.run("publish", str(shop.workbook))
    key = _publish_key(shop)
    _undo_online(shop, key)
    shop.run("sync", str(shop.workbook))
    log = [r for r in openpyxl.load_workbook(shop.workbook)["Log"].iter_rows(values_only=True)]
    assert log[-1][1] == "undo (online)" and key in log[-1][5]
    assert "undone at" in shop.run("history", str(shop.workbook)).output
    assert shop.sheet()["A-1"]["Online"] == 10


def test_a_publish_undone_from_the_workbook_cannot_be_undone_again_online(shop):
    """``xlstock undo`` tells the service which publish it takes back: the account
    pages' History marks it undone and offers no second undo of it (which would have
    moved every level back a second time)."""
    import uuid

    import requests

    shop.edit(**{"A-1": {"Received": 5}})
    shop.run("publish", str(shop.workbook))
    key = _publish_key(shop)
    shop.run("undo", str(shop.workbook), "--yes")
    assert shop.live()["A-1"] == 10
    auth = {"Authorization": f"Bearer {shop.token}"}
    history = requests.get(f"{shop.server.url}/v1/history", params={"shop": shop.url},
                           headers=auth, timeout=10).json()
    published = [v for v in history["versions"] if v["reference"] == key]
    assert published and published[0]["undone_at"], published
    again = requests.post(
        f"{shop.server.url}/v1/publishes/{key}/undo", params={"shop": shop.url},
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        json={"confirm_partial": False, "preview": False}, timeout=10)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_undone"
    assert shop.live()["A-1"] == 10
