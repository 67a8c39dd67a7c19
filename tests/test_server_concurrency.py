"""Races on the real service: conditional publishes, orders during a publish, replays."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from xlstock.model import StockItem


def test_two_clients_publishing_the_same_sku_from_the_same_level_exactly_one_wins(api):
    _, planned = api.levels()
    start = threading.Barrier(2)
    plans = {"first": {"A-1": 11}, "second": {"A-1": 22}}

    def publish(name: str):
        body = api.stock_file(plans[name], planned)
        start.wait()
        return name, api.publish(body, key=str(uuid.uuid4()))

    with ThreadPoolExecutor(2) as pool:
        answers = dict(pool.map(publish, plans))
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [200, 412]
    winner = next(name for name, answer in answers.items() if answer.status_code == 200)
    loser = next(name for name in plans if name != winner)
    assert answers[loser].json()["error"]["code"] == "levels_moved"
    assert answers[loser].headers["ETag"] == answers[winner].headers["ETag"]
    assert api.levels()[1]["A-1"] == plans[winner]["A-1"]
    assert [v["source"] for v in api.history()] == ["publish", "catalogue"]


def test_eight_threads_ordering_while_a_publish_happens_keep_exact_levels(make_api):
    api = make_api([StockItem("SCARCE", qty=50), StockItem("PLENTY", qty=1000),
                    StockItem("DELIVERED", qty=10)])
    threads, orders_each = 8, 20
    start = threading.Barrier(threads + 1)
    taken = {"SCARCE": 0, "PLENTY": 0}
    refused = []
    lock = threading.Lock()

    def buyer(n: int) -> None:
        start.wait()
        for i in range(orders_each):
            sku = "SCARCE" if i % 2 == 0 else "PLENTY"
            answer = api.order({sku: 1 if sku == "SCARCE" else 3}, reference=f"t{n}-{i}")
            with lock:
                if answer.status_code == 201:
                    taken[sku] += 1 if sku == "SCARCE" else 3
                else:
                    assert answer.status_code == 409, answer.text
                    refused.append(sku)

    def merchant() -> int:
        """A rebase-style publish: +50 PLENTY and +5 DELIVERED on the live levels, each
        re-planned on the level a 412 gives for it whenever an order moved it."""
        start.wait()
        _, live = api.levels()
        for attempt in range(1, 500):
            body = api.stock_file({"PLENTY": live["PLENTY"] + 50,
                                   "DELIVERED": live["DELIVERED"] + 5}, live)
            answer = api.publish(body, key=str(uuid.uuid4()))
            if answer.status_code == 200:
                return attempt
            assert answer.status_code == 412, answer.text
            live.update({item["sku"]: item["current"]
                         for item in answer.json()["error"]["items"]})
        raise AssertionError("the publish never got through")

    with ThreadPoolExecutor(threads + 1) as pool:
        buyers = [pool.submit(buyer, n) for n in range(threads)]
        publishing = pool.submit(merchant)
        for future in buyers:
            future.result()
        publishing.result()

    _, levels = api.levels()
    assert levels["SCARCE"] == 50 - taken["SCARCE"] == 0
    assert levels["PLENTY"] == 1000 + 50 - taken["PLENTY"]
    assert levels["DELIVERED"] == 15
    assert refused == ["SCARCE"] * (threads * orders_each // 2 - 50)
    versions = api.history(limit=500)
    orders = [v for v in versions if v["source"] == "order"]
    assert len(orders) == (taken["SCARCE"] + taken["PLENTY"] // 3)
    assert [v["source"] for v in versions].count("publish") == 1
    for sku, level in levels.items():
        history_total = sum(change["after"] - (change["before"] or 0)
                            for v in versions for change in v["changes"] if change["sku"] == sku)
        assert history_total == level, sku


def test_scarce_stock_is_never_oversold_under_concurrent_orders(make_api):
    api = make_api([StockItem("LAST-ONES", qty=5)])
    start = threading.Barrier(8)

    def buy(_: int) -> int:
        start.wait()
        return api.order({"LAST-ONES": 2}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(buy, range(8)))
    assert statuses.count(201) == 2
    assert statuses.count(409) == 6
    assert api.levels()[1]["LAST-ONES"] == 1


def test_a_publish_replayed_concurrently_is_applied_once(api):
    body = api.stock_file({"B-2": 77})
    key = str(uuid.uuid4())
    start = threading.Barrier(6)

    def send(_: int):
        start.wait()
        return api.publish(body, key=key)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 5
    assert [v["source"] for v in api.history()] == ["publish", "catalogue"]
    assert api.levels()[1]["B-2"] == 77
