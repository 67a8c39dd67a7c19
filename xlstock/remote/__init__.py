"""The stock-service client on requests: timeouts, retries, ETag, idempotency keys.

Use :class:`StockService` (``StockService.from_settings(service_url, shop_url)`` finds
the token in ``$XLSTOCK_TOKEN`` or the system keyring).
"""

from xlstock.remote.client import (
    Change,
    HistoryChange,
    HistoryEntry,
    OrderLine,
    OrderResult,
    PublishResult,
    StockService,
    as_etag,
    check_service_url,
    is_loopback_host,
    resolve_token,
)

__all__ = [
    "Change",
    "HistoryChange",
    "HistoryEntry",
    "OrderLine",
    "OrderResult",
    "PublishResult",
    "StockService",
    "as_etag",
    "check_service_url",
    "is_loopback_host",
    "resolve_token",
]
