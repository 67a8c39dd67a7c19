"""The contract test: the connector against a real WooCommerce shop.

Skipped unless ``XLSTOCK_WOOCOMMERCE_URL`` (``https://shop.example``),
``XLSTOCK_WOOCOMMERCE_KEY`` (a REST API key with Read/Write permissions, as
``ck_...:cs_...``) and ``XLSTOCK_WOOCOMMERCE_SKU`` (a product with managed stock) are set;
docs/woocommerce.md says how to run it. It adds one unit to that product and takes it back
with a count, checking on the way what the stand-in assumes of WooCommerce
(``inventory_delta`` adds to the level there is; a write's answer carries the level).
"""

from __future__ import annotations

import os

import pytest

from xlstock.planner import PublishLine
from xlstock.shops.woocommerce import WooCommerceConnector

URL = os.environ.get("XLSTOCK_WOOCOMMERCE_URL", "")
KEY = os.environ.get("XLSTOCK_WOOCOMMERCE_KEY", "")
SKU = os.environ.get("XLSTOCK_WOOCOMMERCE_SKU", "")

pytestmark = pytest.mark.skipif(
    not (URL and KEY and SKU),
    reason="set XLSTOCK_WOOCOMMERCE_URL, XLSTOCK_WOOCOMMERCE_KEY (ck_...:cs_...) and "
           "XLSTOCK_WOOCOMMERCE_SKU to run the contract test against a real shop "
           "(docs/woocommerce.md)",
)


def test_the_loop_on_a_real_shop():
    with WooCommerceConnector(URL, credential=KEY) as shop:
        before = shop.read_levels().items[SKU].qty
        added = shop.publish_lines([PublishLine(SKU, before, before + 1, 1)], shop.new_key())
        assert added.levels_after == {SKU: before + 1} and not added.slips
        back = shop.publish_lines([PublishLine(SKU, before + 1, before)], shop.new_key())
        assert back.levels_after == {SKU: before}
        assert shop.read_levels().items[SKU].qty == before
