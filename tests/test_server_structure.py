"""The Flask application is built the way Flask's own documentation builds one (issue 23,
point 1): routes on module-level blueprints (never closures inside a factory), a short
``create_app``, the service's state in ``app.extensions``, and no function of the API or
of the account pages above complexity 15."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from xlstock.server import app as app_module
from xlstock.server.account import pages
from xlstock.server.app import Service, create_app
from xlstock.server.storage import StockStore

ROOT = Path(__file__).resolve().parents[1]
MAX_COMPLEXITY = 15


def test_every_route_is_a_module_level_function(tmp_path):
    store = StockStore(tmp_path / "s.db")
    try:
        app = create_app(store)
        assert isinstance(app.extensions["xlstock"], Service)
        assert app.extensions["xlstock"].store is store
        views = {rule.endpoint: app.view_functions[rule.endpoint]
                 for rule in app.url_map.iter_rules()}
    finally:
        store.close()
    assert {"api.health", "api.publish", "account.sign_in", "account.stock"} <= set(views)
    for endpoint, view in views.items():
        if endpoint.endswith("static"):
            continue
        module = inspect.getmodule(inspect.unwrap(view))
        assert module in (app_module, pages), endpoint
        assert "<locals>" not in view.__qualname__, (
            f"{endpoint} is a closure ({view.__qualname__}): define it at module level")
        assert getattr(module, view.__name__) is not None, endpoint


def test_create_app_is_short():
    lines = inspect.getsource(create_app).splitlines()
    assert len(lines) <= 50, len(lines)


def test_no_function_of_the_api_or_the_pages_is_above_complexity_15():
    files = [ROOT / "xlstock" / "server" / "app.py",
             ROOT / "xlstock" / "server" / "account" / "pages.py"]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
         "--select", "C901", "--config", f"lint.mccabe.max-complexity={MAX_COMPLEXITY}",
         *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
