"""The reference stock service (``xlstock serve``): the shop's online side on one machine.

``StockStore`` and ``read_catalogue_csv`` need only the standard library; ``serve`` and
``start_background_server`` need the ``server`` extra (Flask, waitress) and are
imported on first use, so that ``import xlstock.server.storage`` works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xlstock.server.catalogue import read_catalogue_csv
    from xlstock.server.runner import serve, start_background_server
    from xlstock.server.storage import StockStore

__all__ = ["StockStore", "read_catalogue_csv", "serve", "start_background_server"]


def __getattr__(name: str) -> Any:
    # plain imports, so that lint-imports sees them (tests/test_architecture.py)
    if name == "StockStore":
        from xlstock.server.storage import StockStore
        return StockStore
    if name == "read_catalogue_csv":
        from xlstock.server.catalogue import read_catalogue_csv
        return read_catalogue_csv
    if name in ("serve", "start_background_server"):
        from xlstock.server import runner
        return getattr(runner, name)
    raise AttributeError(f"module 'xlstock.server' has no attribute {name!r}")
