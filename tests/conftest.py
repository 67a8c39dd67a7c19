"""Shared fixtures: one real stock service on a free loopback port for the whole session,
and a way to register a fresh shop on it for each test (tests stay independent).

The service's own tests (:data:`BOTH_BACKENDS`) run twice: on SQLite and on PostgreSQL
(a throw-away server the session starts in a temporary folder, see
``xlstock/server/pgcluster.py``; skipped, saying why, when PostgreSQL is not installed).
Every other test uses SQLite only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.serviceproc import ServiceProcess
from support.vba_craft import macro_workbook

from xlstock import stockfile
from xlstock.model import StockItem
from xlstock.server.pgcluster import PgCluster, why_unavailable
from xlstock.server.runner import RunningServer, start_background_server

BOTH_BACKENDS = {
    "test_server_storage", "test_server_api", "test_server_concurrency",
    "test_account_pages", "test_server_fuzz", "test_account_guards", "test_server_undo",
    "test_undo_pages", "test_low_stock_mail", "test_account_passwords", "test_workers",
    "test_server_changes",
}
"""Test modules whose ``backend`` (and so ``stock_service`` and ``new_db``) is SQLite, then
PostgreSQL."""
SEVERAL_WORKERS = {"test_server_concurrency"}
"""Test modules whose ``stock_service`` is one process serving in a thread of the tests',
then ``xlstock serve --workers 2``, a process of its own with two workers."""


@pytest.fixture(autouse=True, scope="session")
def _sheet_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cache of sheet values (:mod:`xlstock.workbook.readcache`) in a folder of the
    session's, never the user's; commands run as subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("sheet-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("XLSTOCK_CACHE_DIR", str(folder))
    # ... and the publishes a workbook could not record (xlstock.workbook.journal) too
    patch.setenv("XLSTOCK_JOURNAL_DIR", str(tmp_path_factory.mktemp("journal")))
    # ... and new workbooks in English whatever the machine's language (tests of French
    # ones ask for it)
    patch.setenv("XLSTOCK_LANG", "en")
    yield folder
    patch.undo()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.module.__name__ in BOTH_BACKENDS:
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True,
                             scope="session")
    if "workers" in metafunc.fixturenames and metafunc.module.__name__ in SEVERAL_WORKERS:
        metafunc.parametrize("workers", [1, 2], indirect=True, scope="session",
                             ids=["1worker", "2workers"])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throw-away PostgreSQL server for the session (started on first use)."""
    why = why_unavailable()
    if why is not None:
        pytest.skip(why)
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql`` (see :data:`BOTH_BACKENDS`)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def workers(request: pytest.FixtureRequest) -> int:
    """The stock service's worker processes (see :data:`SEVERAL_WORKERS`)."""
    return int(getattr(request, "param", 1))


@pytest.fixture
def new_db(request: pytest.FixtureRequest, backend: str,
           tmp_path: Any) -> Callable[[str], Any]:
    """``new_db(name)``: a new empty stock database of this test's backend: an SQLite file
    in ``tmp_path``, or a new database on the session's PostgreSQL server (its URL)."""

    def make(name: str = "shop.db") -> Any:
        if backend == "postgresql":
            return request.getfixturevalue("pg_cluster").new_database()
        return tmp_path / name

    return make

DEFAULT_ITEMS = (
    StockItem("A-1", "Hoodie", "Red / XL", 5),
    StockItem("B-2", "Cap", "", 10),
    StockItem("00123", "Socks", "Blue", 0),
)


@pytest.fixture(scope="session")
def stock_service(request: pytest.FixtureRequest, backend: str, workers: int,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The stock service, running for real (waitress; SQLite or PostgreSQL) in a background
    thread; with several ``workers``, ``xlstock serve --workers N`` in a process of its
    own (``url`` and ``store`` alike)."""
    folder = tmp_path_factory.mktemp("stock-service")
    db: Any = folder / "service.db"
    if backend == "postgresql":
        db = request.getfixturevalue("pg_cluster").new_database()
    if workers > 1:
        with ServiceProcess(db, folder / "serve.log", "--workers", str(workers)) as process:
            process.wait_for_workers(workers)
            yield process  # type: ignore[misc]
            assert process.stop() == 0, process.text()
        return
    with start_background_server(db) as running:
        yield running


ShopFactory = Callable[..., tuple[str, str]]


@pytest.fixture
def shop_factory(stock_service: RunningServer) -> ShopFactory:
    """``shop_factory(items=DEFAULT_ITEMS) -> (shop_url, token)``: a newly registered shop
    with its own unique URL on the session's service."""

    def register(items: Iterable[StockItem] | None = DEFAULT_ITEMS) -> tuple[str, str]:
        url = f"https://shop-{uuid.uuid4().hex[:12]}.example"
        token = stock_service.store.add_shop(url, list(items) if items is not None else None)
        return url, token

    return register


class Api:
    """A thin requests wrapper naming the shop and the token once."""

    def __init__(self, base_url: str, shop: str, token: str | None) -> None:
        self.base_url = base_url
        self.shop = shop
        self.token = token

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                params: dict[str, Any] | None = None, **kwargs: Any) -> requests.Response:
        all_headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        all_headers.update(headers or {})
        all_params = {"shop": self.shop, **(params or {})}
        return requests.request(method, self.base_url + path, headers=all_headers,
                                    params=all_params, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def levels(self) -> tuple[str, dict[str, int]]:
        """The current ETag and SKU -> level."""
        answer = self.get("/v1/stock")
        assert answer.status_code == 200, answer.text
        return answer.headers["ETag"], {i["sku"]: i["qty"] for i in answer.json()["items"]}

    def stock_file(self, levels: dict[str, int],
                   planned_from: dict[str, int] | None = None) -> bytes:
        """A stock file setting ``levels``, each item planned against ``planned_from``
        (default: the live levels now; 0 for a SKU the shop lacks)."""
        if planned_from is None:
            planned_from = self.levels()[1]
        return stockfile.dumps(self.shop, levels,
                               {sku: planned_from.get(sku, 0) for sku in levels})

    def publish(self, body: bytes, *, key: str | None, etag: str | None = None,
                headers: dict[str, str] | None = None) -> requests.Response:
        all_headers = {"Content-Type": "application/json"}
        if etag is not None:
            all_headers["If-Match"] = etag
        if key is not None:
            all_headers["Idempotency-Key"] = key
        all_headers.update(headers or {})
        return self.request("PUT", "/v1/stock", headers=all_headers, data=body)

    def order(self, lines: dict[str, int], *, key: str | None = None,
              reference: str | None = None) -> requests.Response:
        body: dict[str, Any] = {"lines": [{"sku": s, "qty": q} for s, q in lines.items()]}
        if reference is not None:
            body["reference"] = reference
        headers = {"Idempotency-Key": key} if key else {}
        return self.request("POST", "/v1/orders", json=body, headers=headers)

    def history(self, **params: Any) -> list[dict[str, Any]]:
        answer = self.get("/v1/history", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()["versions"]


@pytest.fixture
def api(stock_service: RunningServer, shop_factory: ShopFactory) -> Api:
    """An :class:`Api` for a fresh shop holding :data:`DEFAULT_ITEMS`."""
    url, token = shop_factory()
    return Api(stock_service.url, url, token)


@pytest.fixture
def make_api(stock_service: RunningServer, shop_factory: ShopFactory) -> Callable[..., Api]:
    """``make_api(items)``: an :class:`Api` for a fresh shop holding ``items``."""

    def make(items: Iterable[StockItem] = DEFAULT_ITEMS) -> Api:
        url, token = shop_factory(items)
        return Api(stock_service.url, url, token)

    return make


@pytest.fixture
def xlsm(tmp_path: Path) -> Path:
    """A macro-enabled workbook as ``xlstock new PATH.xlsm`` makes it."""
    return macro_workbook(tmp_path)
