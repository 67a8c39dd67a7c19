"""What the WooCommerce connector keeps of a catalogue and what it does with a batch it
cannot send as planned, against the stand-in of WooCommerce's REST API over real HTTP:
every row left out is named with its reason, and a batch is never sent blindly."""

from __future__ import annotations

import pytest
from support.woocommerce_standin import WooCommerceStandIn

from xlstock.errors import ServiceRefused
from xlstock.planner import PublishLine
from xlstock.shops.woocommerce import WooCommerceConnector, publish_key


def _connector(shop: WooCommerceStandIn) -> WooCommerceConnector:
    return WooCommerceConnector(shop.url, credential=f"{shop.key}:{shop.secret}")


def test_one_row_per_sku_is_kept_and_every_row_left_out_is_named():
    """Two rows whose SKUs are one for xlstock (a surrounding space, NFD against NFC),
    a SKU with a tab, a variation whose stock is its product's, stock not managed, a
    managed product without a SKU: none kept, each named; the rest kept whole."""
    with WooCommerceStandIn() as shop:
        shop.add_simple("Cap", "B-2", 5, low_stock_amount=2)
        shop.add_simple("Mug", "DUP", 1)
        shop.add_simple("Mug, black", " DUP", 2)
        shop.add_simple("Cafe", "Cafe\u0301", 3)
        shop.add_simple("Cafe too", "Caf\u00e9", 4)
        shop.add_simple("Tabbed", "T\tAB", 6)
        shop.add_simple("Poster", "P-9", 0, manage_stock=False)
        shop.add_simple("Gift card", "", 3)
        shop.add_variable("Hoodie", [
            {"sku": "A-1", "qty": 10, "attributes": {"Colour": "Red", "Size": "L"},
             "low_stock_amount": -1},
            {"sku": "A-3", "qty": None, "manage_stock": "parent",
             "attributes": {"Colour": "Green", "Size": "S"}},
        ], manage_stock=True, qty=7)
        with _connector(shop) as connector:
            snapshot = connector.read_levels()
            bare = connector.read_levels(names=False)
    assert snapshot is not None and bare is not None
    assert sorted(snapshot.items) == ["A-1", "B-2"]
    hoodie = snapshot.items["A-1"]
    assert (hoodie.name, hoodie.variant, hoodie.qty) == ("Hoodie", "Red / L", 10)
    assert (bare.items["A-1"].name, bare.items["A-1"].variant) == ("", "")
    assert snapshot.low_at == {"B-2": 2}  # a threshold below 0 is none
    notices = "\n".join(snapshot.notices)
    # the gift card, and the hoodie's own row (it manages the stock of A-3, with no SKU)
    assert "2 product(s) or variation(s) with managed stock have no SKU" in notices
    assert "2 SKU(s) on more than one product or variation" in notices
    assert "DUP" in notices and "Caf\u00e9" in notices
    assert "without managed stock" in notices and "P-9" in notices
    assert "whose stock is their product's" in notices and "A-3" in notices
    assert "not usable as SKUs (left out): T\tAB" in notices


@pytest.fixture
def shop():
    with WooCommerceStandIn() as standin:
        standin.add_simple("Cap", "B-2", 5)
        standin.add_simple("Belt", "C-3", 8)
        yield standin


def test_a_sku_gone_from_the_shop_stops_the_publish_before_its_batch_is_sent(shop):
    with _connector(shop) as connector:
        connector.read_levels()
        shop.set_manage_stock("C-3", False)  # its level is no longer WooCommerce's
        with pytest.raises(ServiceRefused, match="SKU C-3 is no longer in"):
            connector.publish_lines([PublishLine("B-2", 5, 6, 1), PublishLine("C-3", 8, 9, 1)],
                                    publish_key())
    assert shop.levels()["B-2"] == 5 and not shop.writes  # nothing of the batch was sent

