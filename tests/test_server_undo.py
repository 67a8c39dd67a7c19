"""Undoing a publish on the stock service (issue 21): ``POST /v1/publishes/{key}/undo``
against the real service on loopback, on SQLite and on PostgreSQL (conftest.py).

Each publish is reversed row by row from the level there is now: a delivery of +d by
-d, a count a -> b by +(a - b), so that the sales made since stay sold."""

from __future__ import annotations

import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from conftest import Api

from xlstock import stockfile
from xlstock.model import StockItem
from xlstock.server.database import open_database
from xlstock.server.storage import MIGRATIONS, SCHEMA_VERSION, StockStore


def new_key() -> str:
    return str(uuid.uuid4())


class Shop:
    """A shop on the session's service, with what an undo test does to it."""

    def __init__(self, stock_service: Any, shop_factory: Any,
                 items: tuple[StockItem, ...] = (StockItem("A-1", "Hoodie", "", 5),
                                                 StockItem("B-2", "Cap", "", 10),
                                                 StockItem("C-3", "Belt", "", 4))) -> None:
        url, token = shop_factory(items)
        self.api = Api(stock_service.url, url, token)

    def levels(self) -> dict[str, int]:
        return self.api.levels()[1]

    def publish(self, counts: dict[str, int] | None = None,
                deliveries: dict[str, int] | None = None) -> str:
        """Publish counts (SKU -> level) and deliveries (SKU -> units); returns the key."""
        live = self.levels()
        counts, deliveries = dict(counts or {}), dict(deliveries or {})
        levels = {**counts, **{sku: live[sku] + add for sku, add in deliveries.items()}}
        key = new_key()
        answer = self.api.request(
            "PUT", "/v1/stock", data=stockfile.dumps(self.api.shop, levels, live, deliveries),
            headers={"Idempotency-Key": key, "Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        return key

    def order(self, **lines: int) -> None:
        answer = self.api.request("POST", "/v1/orders", json={
            "lines": [{"sku": sku.replace("_", "-"), "qty": qty}
                      for sku, qty in lines.items()]})
        assert answer.status_code == 201, answer.text

    def undo(self, publish_key: str, key: str | None = None, **options: bool
             ) -> requests.Response:
        headers = {"Idempotency-Key": key or new_key()} if key is not False else {}
        return self.api.request("POST", f"/v1/publishes/{publish_key}/undo",
                                json=options, headers=headers)


def test_a_delivery_is_undone_keeping_the_sales_made_since(stock_service, shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(deliveries={"A-1": 100})  # 100 typed for 10
    assert shop.levels()["A-1"] == 105
    shop.order(A_1=3)
    answer = shop.undo(published)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["undone"] == published and body["skipped"] == []
    assert [(c["sku"], c["before"], c["after"]) for c in body["changes"]] == [("A-1", 102, 2)]
    assert shop.levels() == {"A-1": 2, "B-2": 10, "C-3": 4}  # the 3 sold stay sold
    assert answer.headers["ETag"].strip('"') == body["version"] == shop.api.levels()[0].strip('"')


def test_a_publish_mixing_deliveries_and_counts_is_undone_row_by_row(stock_service,
                                                                    shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(counts={"B-2": 40}, deliveries={"A-1": 6})  # B-2 counted 10->40
    shop.order(B_2=5, A_1=1)
    answer = shop.undo(published)
    assert answer.status_code == 200, answer.text
    assert {c["sku"]: (c["before"], c["after"]) for c in answer.json()["changes"]} == {
        "A-1": (10, 4), "B-2": (35, 5)}
    assert shop.levels() == {"A-1": 4, "B-2": 5, "C-3": 4}


def test_an_undo_keeps_a_later_publish_of_other_skus(stock_service, shop_factory):
    shop = Shop(stock_service, shop_factory)
    first = shop.publish(counts={"A-1": 50})
    shop.publish(counts={"B-2": 7}, deliveries={"C-3": 2})
    assert shop.undo(first).status_code == 200
    assert shop.levels() == {"A-1": 5, "B-2": 7, "C-3": 6}


def test_the_undo_is_a_version_in_the_history_and_the_publish_says_when(stock_service,
                                                                        shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(counts={"A-1": 8})
    undo_key = new_key()
    done = shop.undo(published, undo_key).json()
    newest = shop.api.get("/v1/history").json()["versions"]
    assert (newest[0]["source"], newest[0]["reference"]) == ("undo", f"undo of publish {published}")
    assert newest[0]["version"] == done["version"]
    assert newest[0]["changes"] == [{"sku": "A-1", "before": 8, "after": 5}]
    assert newest[1]["source"] == "publish" and newest[1]["undone_at"] == done["undone_at"]
    outcome = shop.api.get(f"/v1/publishes/{published}").json()
    assert (outcome["undone_at"], outcome["undone_by"]) == (done["undone_at"], undo_key)
    other = shop.publish(counts={"A-1": 6})
    assert shop.api.get(f"/v1/publishes/{other}").json()["undone_at"] is None


def test_undoing_a_publish_twice_is_refused_naming_the_time_of_the_first(stock_service,
                                                                         shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(deliveries={"A-1": 3})
    first = shop.undo(published).json()
    again = shop.undo(published)
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "already_undone" and error["undone_at"] == first["undone_at"]
    assert first["undone_at"] in error["message"]
    assert shop.undo(published, preview=True).status_code == 409
    assert shop.levels()["A-1"] == 5


def test_replaying_the_same_undo_key_applies_it_once(stock_service, shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(deliveries={"A-1": 3})
    key = new_key()
    first = shop.undo(published, key)
    replay = shop.undo(published, key)
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert shop.levels()["A-1"] == 5
    versions = shop.api.get("/v1/history").json()["versions"]
    assert [v["source"] for v in versions].count("undo") == 1
    reused = shop.undo(published, key, confirm_partial=True)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


def test_a_row_that_would_go_below_zero_refuses_the_undo_then_is_skipped_if_confirmed(
        stock_service, shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(deliveries={"A-1": 10, "B-2": 5})  # A-1 15, B-2 15
    shop.order(A_1=12)  # 3 left: taking back 10 would leave -7
    before = shop.levels()
    refused = shop.undo(published)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "below_zero" and "A-1" in error["message"]
    assert error["items"][0]["sku"] == "A-1" and error["items"][0]["level"] == 3
    assert shop.levels() == before  # nothing applied
    preview = shop.undo(published, key=False, preview=True)
    assert preview.status_code == 200 and preview.json()["needs_confirmation"] is True
    assert shop.levels() == before
    confirmed = shop.undo(published, confirm_partial=True)
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert [s["sku"] for s in body["skipped"]] == ["A-1"]
    assert "below zero" in body["skipped"][0]["problem"]
    assert [(c["sku"], c["after"]) for c in body["changes"]] == [("B-2", 10)]
    assert shop.levels() == {"A-1": 3, "B-2": 10, "C-3": 4}
    assert shop.undo(published, confirm_partial=True).status_code == 409


def test_an_undo_no_row_of_which_can_be_applied_is_refused_even_confirmed(stock_service,
                                                                         shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(deliveries={"C-3": 2})
    shop.order(C_3=6)
    answer = shop.undo(published, confirm_partial=True)
    assert answer.status_code == 422 and "no row" in answer.json()["error"]["message"]
    assert shop.levels()["C-3"] == 0


def test_a_preview_applies_nothing_and_needs_no_key(stock_service, shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(counts={"B-2": 1})
    tag = shop.api.levels()[0]
    preview = shop.undo(published, key=False, preview=True)
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["preview"] is True and body["needs_confirmation"] is False
    assert body["changes"] == [{"sku": "B-2", "before": 1, "after": 10, "change": 9}]
    assert shop.api.levels()[0] == tag
    assert shop.undo(published).status_code == 200


def test_keys_that_name_no_applied_publish_are_refused_with_what_they_are(stock_service,
                                                                         shop_factory):
    shop = Shop(stock_service, shop_factory)
    unknown = shop.undo("never-sent")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    published = shop.publish(counts={"A-1": 9})
    undo_key = new_key()
    shop.undo(published, undo_key)
    of_undo = shop.undo(undo_key)
    assert of_undo.status_code == 422
    assert of_undo.json()["error"]["code"] == "not_a_publish"
    same = shop.publish(counts={"A-1": 5})  # the level it has: changes nothing
    empty = shop.undo(same)
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "nothing_to_undo"


def test_bad_undo_requests_are_4xx_json(stock_service, shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(counts={"A-1": 9})
    no_key = shop.undo(published, key=False)
    assert no_key.status_code == 400
    assert no_key.json()["error"]["code"] == "idempotency_key_required"
    for body in (b"[1]", b'{"confirm_partial": "yes"}', b'{"force": true}', b"{"):
        answer = shop.api.request("POST", f"/v1/publishes/{published}/undo", data=body,
                                  headers={"Idempotency-Key": new_key(),
                                           "Content-Type": "application/json"})
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalid_document"
    no_token = requests.post(f"{stock_service.url}/v1/publishes/{published}/undo",
                             params={"shop": shop.api.shop}, timeout=30)
    assert no_token.status_code == 401
    assert shop.levels()["A-1"] == 9
    empty_body = shop.api.request("POST", f"/v1/publishes/{published}/undo",
                                  headers={"Idempotency-Key": new_key()})
    assert empty_body.status_code == 415
    plain = shop.api.request("POST", f"/v1/publishes/{published}/undo", data=b"",
                             headers={"Idempotency-Key": new_key(),
                                      "Content-Type": "application/json"})
    assert plain.status_code == 200 and shop.levels()["A-1"] == 5


def test_a_key_with_slashes_is_undone_and_its_outcome_still_read(stock_service, shop_factory):
    shop = Shop(stock_service, shop_factory)
    live = shop.levels()
    key = "workbook/2026/publish-1"
    answer = shop.api.request(
        "PUT", "/v1/stock", data=stockfile.dumps(shop.api.shop, {"A-1": 7}, live),
        headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert answer.status_code == 200
    assert shop.undo(key).status_code == 200
    assert shop.api.get(f"/v1/publishes/{key}").json()["undone_at"] is not None
    assert shop.levels()["A-1"] == 5


def test_a_database_of_schema_4_keeps_its_history_and_can_undo_after_migrating(new_db):
    """Step 5 copies versions and changes into tables whose CHECK allows 'undo'."""
    target = new_db()
    old = open_database(target)
    try:
        assert old.migrate(MIGRATIONS[:4]) == 4

        def fill(conn: Any) -> None:
            conn.execute("INSERT INTO shops (url, epoch, version, created_at) "
                         "VALUES ('https://old.example', 'e', 2, 't')")
            shop_id = conn.execute("SELECT id FROM shops").fetchone()[0]
            conn.execute("INSERT INTO products (shop_id, sku, qty) VALUES (?, 'A', 7)",
                         (shop_id,))
            for number, source, reference, before, after in (
                    (1, "catalogue", "c", None, 3), (2, "publish", "k-1", 3, 7)):
                conn.execute("INSERT INTO versions VALUES (?, ?, 't', ?, ?)",
                             (shop_id, number, source, reference))
                conn.execute("INSERT INTO changes VALUES (?, ?, 'A', ?, ?)",
                             (shop_id, number, before, after))

        old.write(fill)
    finally:
        old.close()
    store = StockStore(target)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        history = store.history("https://old.example")["versions"]
        assert [(v["number"], v["source"], v["changes"]) for v in history] == [
            (2, "publish", [{"sku": "A", "before": 3, "after": 7}]),
            (1, "catalogue", [{"sku": "A", "before": None, "after": 3}])]
        answer = store.undo_publish("https://old.example", "k-1", key="u-1", body=b"")
        assert (answer.status, answer.body.get("undone")) == (200, "k-1"), answer.body
        assert store.read_levels("https://old.example")["items"][0]["qty"] == 3
        assert store.history("https://old.example")["versions"][0]["source"] == "undo"
    finally:
        store.close()
    if isinstance(target, Path):
        with sqlite3.connect(target) as check:
            assert check.execute("PRAGMA foreign_key_check").fetchall() == []
            assert "versions_v5" not in check.execute(
                "SELECT group_concat(sql) FROM sqlite_master").fetchone()[0]


def test_undos_of_one_publish_sent_together_apply_once(stock_service, shop_factory):
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(deliveries={"A-1": 20})
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: shop.undo(published), range(6)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 5, [
        a.text for a in answers]
    assert shop.levels()["A-1"] == 5


def test_a_stock_file_that_undoes_a_publish_marks_it_undone_once(stock_service, shop_factory):
    """``xlstock undo`` sends its undo as a stock file naming the publish it takes back
    (``undoes``): the service records that publish undone, so that the account pages offer
    no second undo of it; a stock file undoing a publish undone already applies nothing."""
    shop = Shop(stock_service, shop_factory)
    published = shop.publish(deliveries={"A-1": 100})
    undo_key = new_key()
    answer = shop.api.request(
        "PUT", "/v1/stock",
        data=stockfile.dumps(shop.api.shop, {"A-1": 5}, {"A-1": 105}, {"A-1": -100},
                             undoes=published),
        headers={"Idempotency-Key": undo_key, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    outcome = shop.api.get(f"/v1/publishes/{published}").json()
    assert outcome["undone_by"] == undo_key and outcome["undone_at"]
    again = shop.undo(published)  # what the History page's Undo sends
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_undone"
    once_more = shop.api.request(
        "PUT", "/v1/stock",
        data=stockfile.dumps(shop.api.shop, {"A-1": 0}, {"A-1": 5}, {"A-1": -5},
                             undoes=published),
        headers={"Idempotency-Key": new_key(), "Content-Type": "application/json"})
    assert once_more.status_code == 409, once_more.text
    assert once_more.json()["error"]["code"] == "already_undone"
    assert shop.levels()["A-1"] == 5
    bad = shop.api.request(
        "PUT", "/v1/stock",
        data=stockfile.dumps(shop.api.shop, {"A-1": 6}, {"A-1": 5}, undoes="x" * 201),
        headers={"Idempotency-Key": new_key(), "Content-Type": "application/json"})
    assert bad.status_code == 422 and "undoes" in bad.text and shop.levels()["A-1"] == 5
