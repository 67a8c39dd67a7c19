"""The contract test: the loop against a real Shopify development store.

Skipped unless ``XLSTOCK_SHOPIFY_STORE`` (``my-dev-store.myshopify.com``),
``XLSTOCK_SHOPIFY_TOKEN`` (an app's Admin API token with read_products, read_inventory,
write_inventory and read_locations) and ``XLSTOCK_SHOPIFY_SKU`` (a tracked variant's SKU)
are set; docs/shopify.md says how to run it. It adds one unit to that variant and takes
it back, and checks on the way what the stand-in assumes of Shopify.
"""

from __future__ import annotations

import os
import uuid

import pytest

from xlstock.errors import StaleVersion
from xlstock.planner import PublishLine
from xlstock.shops.shopify import ShopifyConnector

STORE = os.environ.get("XLSTOCK_SHOPIFY_STORE", "")
TOKEN = os.environ.get("XLSTOCK_SHOPIFY_TOKEN", "")
SKU = os.environ.get("XLSTOCK_SHOPIFY_SKU", "")

pytestmark = pytest.mark.skipif(
    not (STORE and TOKEN and SKU),
    reason="set XLSTOCK_SHOPIFY_STORE, XLSTOCK_SHOPIFY_TOKEN and XLSTOCK_SHOPIFY_SKU to run "
           "the contract test against a real development store (docs/shopify.md)",
)


def test_the_loop_on_a_real_store():
    with ShopifyConnector(STORE, token=TOKEN,
                          location=os.environ.get("XLSTOCK_SHOPIFY_LOCATION", "")) as shop:
        run = uuid.uuid4().hex  # keys are Shopify's for 24 hours: new ones every run
        before = shop.read_levels().items[SKU].qty
        added = shop.publish_lines([PublishLine(SKU, before, before + 1, 1)], f"{run}-c1")
        assert added.levels_after == {SKU: before + 1}
        with pytest.raises(StaleVersion) as stale:  # a count planned from a level gone
            shop.publish_lines([PublishLine(SKU, before, before)], f"{run}-c2")
        assert stale.value.moved == {SKU: before + 1} and not stale.value.applied
        back = shop.publish_lines([PublishLine(SKU, before + 1, before)], f"{run}-c3")
        assert back.levels_after == {SKU: before}
        replay = shop.publish_lines([PublishLine(SKU, before + 1, before)], f"{run}-c3")
        assert shop.read_levels().items[SKU].qty == before and replay.calls == 1
