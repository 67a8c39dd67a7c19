"""The stock service client against the real stock service (waitress + SQLite) on
loopback, including a publish whose answer is lost on the way back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

try:
    from xlstock.server.runner import RunningServer
except ImportError as exc:  # pragma: no cover - only while the service is being built
    pytest.skip(
        f"the stock service (xlstock.server.runner) cannot be imported: {exc}",
        allow_module_level=True,
    )

from support.faultserver import DroppingProxy

from xlstock.errors import OutcomeUnknown, ServiceRefused, StaleVersion
from xlstock.model import StockItem
from xlstock.remote import Change, HttpStockServiceClient
from xlstock.stockfile import dumps

Shop = tuple[str, str]
Connect = Callable[..., HttpStockServiceClient]


@pytest.fixture
def shop(shop_factory: Callable[..., Shop]) -> Shop:
    return shop_factory()


@pytest.fixture
def connect(stock_service: RunningServer) -> Iterator[Connect]:
    clients: list[HttpStockServiceClient] = []

    def make(shop_url: str, token: str | None, url: str | None = None, **options: Any):
        options.setdefault("deadline", 10)
        options.setdefault("backoff_base", 0.01)
        client = HttpStockServiceClient(url or stock_service.url, shop_url, token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_health(stock_service: RunningServer, connect: Connect, shop: Shop) -> None:
    assert connect(*shop).health()["status"] == "ok"


def test_read_levels_and_not_modified(connect: Connect, shop: Shop) -> None:
    client = connect(*shop)
    snapshot = client.read_levels()
    assert snapshot is not None
    assert snapshot.levels() == {"A-1": 5, "B-2": 10, "00123": 0}
    assert snapshot.items["A-1"].variant == "Red / XL"
    assert snapshot.version.startswith('"') and snapshot.version.endswith('"')
    assert client.read_levels(if_none_match=snapshot.version) is None


def test_publish_then_read_then_replay(connect: Connect, shop: Shop) -> None:
    client = connect(*shop)
    before = client.read_levels()
    assert before is not None
    live = before.levels()
    body = dumps(client.shop_url, {"A-1": 7, "00123": 3}, live)
    result = client.publish(body, "pub-1")
    assert result.applied and not result.replayed
    assert set(result.changes) == {Change("A-1", 5, 7), Change("00123", 0, 3)}
    after = client.read_levels()
    assert after is not None
    assert after.version == result.version != before.version
    assert after.levels() == {"A-1": 7, "B-2": 10, "00123": 3}
    replay = client.publish(body, "pub-1")
    assert replay.replayed and replay.changes == result.changes
    assert replay.version == result.version
    publishes = [entry for entry in client.history() if entry.source == "publish"]
    assert [entry.reference for entry in publishes] == ["pub-1"]
    outcome = client.publish_outcome("pub-1")
    assert outcome is not None and outcome.applied and outcome.changes == result.changes
    assert client.publish_outcome("never-sent") is None


def test_a_sale_after_the_read_makes_the_publish_of_that_sku_stale(
    connect: Connect, shop: Shop
) -> None:
    client = connect(*shop)
    before = client.read_levels()
    assert before is not None
    order = client.place_order({"A-1": 2}, reference="web-1")
    assert [tuple(line) for line in order.lines] == [("A-1", 2, 3)]
    body = dumps(client.shop_url, {"A-1": 9, "B-2": 12}, before.levels())
    with pytest.raises(StaleVersion) as caught:
        client.publish(body, "pub-stale")
    assert caught.value.current_version == order.version
    assert caught.value.moved == {"A-1": 3}
    now = client.read_levels()
    assert now is not None and now.levels()["A-1"] == 3
    outcome = client.publish_outcome("pub-stale")
    assert outcome is not None and not outcome.applied and outcome.status == 412
    assert isinstance(outcome.refusal, StaleVersion)


def test_an_invalid_stock_file_names_every_bad_item(connect: Connect, shop: Shop) -> None:
    client = connect(*shop)
    before = client.read_levels()
    assert before is not None
    body = dumps(client.shop_url, {"A-1": -1, "NOPE": 3}, {"A-1": 5, "NOPE": 0})
    with pytest.raises(ServiceRefused) as caught:
        client.publish(body, "pub-bad")
    assert caught.value.status == 422 and caught.value.code == "invalid_document"
    skus = {item["sku"] for item in caught.value.items}
    assert skus == {"A-1", "NOPE"}
    assert "NOPE" in str(caught.value)


def test_an_order_short_of_stock(connect: Connect, shop: Shop) -> None:
    client = connect(*shop)
    with pytest.raises(ServiceRefused) as caught:
        client.place_order({"A-1": 2, "B-2": 11})
    assert caught.value.code == "insufficient_stock"
    assert [item["sku"] for item in caught.value.items] == ["B-2"]
    snapshot = client.read_levels()
    assert snapshot is not None and snapshot.levels()["A-1"] == 5


def test_wrong_token_and_unregistered_shop(
    connect: Connect, shop: Shop, shop_factory: Callable[..., Shop]
) -> None:
    shop_url, token = shop
    with pytest.raises(ServiceRefused) as unauthorised:
        connect(shop_url, "not-a-token").read_levels()
    assert unauthorised.value.status == 401
    assert "XLSTOCK_TOKEN" in str(unauthorised.value)
    _, other_token = shop_factory()
    with pytest.raises(ServiceRefused) as forbidden:
        connect(shop_url, other_token).read_levels()
    assert forbidden.value.status == 403
    # the token's own shop named, and the setting to correct, in the merchant's words
    assert f"not {shop_url}. If {shop_url} has a typing slip, correct Shop URL in sheet " \
        "Settings" in str(forbidden.value)
    assert other_token not in str(forbidden.value) and token not in str(forbidden.value)


def test_storefront_needs_no_token(connect: Connect, shop: Shop) -> None:
    front = connect(shop[0], None).storefront()
    assert front is not None and front.levels() == {"A-1": 5, "B-2": 10, "00123": 0}


def test_a_large_catalogue_is_published_gzipped(
    connect: Connect, shop_factory: Callable[..., Shop]
) -> None:
    items = [StockItem(f"SKU-{n:05d}", f"Product {n}", "", n % 40) for n in range(5000)]
    client = connect(*shop_factory(items))
    before = client.read_levels()
    assert before is not None and len(before.items) == 5000
    levels = {sku: qty + 1 for sku, qty in before.levels().items()}
    result = client.publish(dumps(client.shop_url, levels, before.levels()), "big-1")
    assert len(result.changes) == 5000
    after = client.read_levels()
    assert after is not None and after.levels() == levels


def test_a_publish_whose_answer_is_lost_is_applied_once(
    stock_service: RunningServer, connect: Connect, shop: Shop
) -> None:
    direct = connect(*shop)
    before = direct.read_levels()
    assert before is not None
    body = dumps(direct.shop_url, {"A-1": 12}, before.levels())
    with DroppingProxy(stock_service.port, (b"PUT /v1/stock",)) as proxy:
        result = connect(*shop, url=proxy.url).publish(body, "pub-lost")
        assert proxy.dropped == 1
    assert result.applied and result.recovered
    assert result.changes == (Change("A-1", 5, 12),)
    publishes = [entry for entry in direct.history() if entry.source == "publish"]
    assert [entry.reference for entry in publishes] == ["pub-lost"]
    after = direct.read_levels()
    assert after is not None and after.levels()["A-1"] == 12
    assert after.version == result.version


def test_outcome_unknown_then_found_by_the_next_publish(
    stock_service: RunningServer, connect: Connect, shop: Shop
) -> None:
    direct = connect(*shop)
    before = direct.read_levels()
    assert before is not None
    body = dumps(direct.shop_url, {"B-2": 4}, before.levels())
    prefixes = (b"PUT /v1/stock", b"GET /v1/publishes/")
    with DroppingProxy(stock_service.port, prefixes, drops=None) as proxy:
        flaky = connect(*shop, url=proxy.url, read_retries=1)
        with pytest.raises(OutcomeUnknown, match="nothing will be counted twice"):
            flaky.publish(body, "pub-unknown")
    outcome = direct.publish_outcome("pub-unknown")
    assert outcome is not None and outcome.applied
    assert outcome.changes == (Change("B-2", 10, 4),)
    again = direct.publish(body, "pub-unknown")
    assert again.replayed
    publishes = [entry for entry in direct.history() if entry.source == "publish"]
    assert len(publishes) == 1
