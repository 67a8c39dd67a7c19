"""The stock-service client on requests: timeouts, retries, ETag, idempotency keys.

Use :class:`HttpStockServiceClient` (``HttpStockServiceClient.from_settings(service_url,
shop_url)`` finds the token in ``$XLSTOCK_TOKEN`` or the system keyring), in a ``with``
block so that its HTTP session is closed.
"""

from xlstock.remote.client import (
    Change,
    HistoryChange,
    HistoryEntry,
    HttpStockServiceClient,
    OrderLine,
    OrderResult,
    PublishOutcome,
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
    "PublishOutcome",
    "HttpStockServiceClient",
    "as_etag",
    "check_service_url",
    "is_loopback_host",
    "resolve_token",
]
