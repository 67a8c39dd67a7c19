"""Connectors to the shop platforms merchants run, beside the xlstock stock service's
client (:mod:`xlstock.remote`), and the one place where a workbook's platform is chosen.

Every connector takes the same plan: the lines of :class:`xlstock.planner.PublishLine`
(a delivery as a change in units, a count checked against the level it was planned
from), and turns them into its platform's calls; it reads the live levels as a
:class:`xlstock.model.Snapshot`. See :class:`xlstock.actions.StockServiceClient`.
"""

from __future__ import annotations

from typing import Any

SHOPIFY = "Shopify"
WOOCOMMERCE = "WooCommerce"


def connector_for(settings: Any) -> Any:
    """The connector for a workbook's Settings (:class:`xlstock.workbook.layout.Settings`,
    read by the caller: ``platform``, ``service_url``, ``shop_url``, ``location``): the
    xlstock service's client, or a platform's. The caller closes it (``with``)."""
    if settings.platform == SHOPIFY:
        from xlstock.shops.shopify import ShopifyConnector

        return ShopifyConnector.from_settings(settings)
    if settings.platform == WOOCOMMERCE:
        from xlstock.shops.woocommerce import WooCommerceConnector

        return WooCommerceConnector.from_settings(settings)
    from xlstock.remote.client import HttpStockServiceClient

    return HttpStockServiceClient.from_settings(settings.service_url, settings.shop_url)
