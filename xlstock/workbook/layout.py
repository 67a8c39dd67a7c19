"""Which cells mean what: sheet Stock's headers, Settings' labels, the Log's columns
and the hidden state, on top of any :class:`~xlstock.workbook.base.WorkbookAdapter`.
"""

from __future__ import annotations

SKU = "SKU"
PRODUCT = "Product"
VARIANT = "Variant"
ONLINE = "Online"
RECEIVED = "Received"
NEW_LEVEL = "New level"
CHANGE = "Change"
LOW_AT = "Low at"
STATUS = "Status"

STOCK_HEADERS = (SKU, PRODUCT, VARIANT, ONLINE, RECEIVED, NEW_LEVEL, CHANGE, LOW_AT, STATUS)
"""The template's column order; a merchant may reorder them and add their own."""
REQUIRED_HEADERS = (SKU, ONLINE, RECEIVED, NEW_LEVEL)

SETTING_SERVICE = "Stock service"
SETTING_SHOP = "Shop URL"
SETTING_POLICY = "Conflict policy"
SETTING_LAST_SYNC = "Last sync"
SETTING_LAST_PUBLISH = "Last publish"
SETTING_VERSION = "Online version"
SETTING_LABELS = (
    SETTING_SERVICE, SETTING_SHOP, SETTING_POLICY,
    SETTING_LAST_SYNC, SETTING_LAST_PUBLISH, SETTING_VERSION,
)
DEFAULT_SERVICE = "http://127.0.0.1:8765"
POLICIES = ("rebase", "strict")

LOG_HEADERS = ("When", "Action", "Online version", "Rows changed", "Units", "Result")
