"""The reference stock service (``xlstock serve``): the shop's online side on one machine.

``StockStore`` and ``read_catalogue_csv`` need only the standard library; ``serve`` and
``start_background_server`` need the ``server`` extra (Flask, waitress) and are
imported on first use, so that ``import xlstock.server.storage`` works without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xlstock.server.catalogue import read_catalogue_csv
    from xlstock.server.runner import serve, start_background_server
    from xlstock.server.storage import StockStore

__all__ = ["StockStore", "read_catalogue_csv", "serve", "start_background_server"]

_HOMES = {
    "StockStore": "xlstock.server.storage",
    "read_catalogue_csv": "xlstock.server.catalogue",
    "serve": "xlstock.server.runner",
    "start_background_server": "xlstock.server.runner",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'xlstock.server' has no attribute {name!r}")
