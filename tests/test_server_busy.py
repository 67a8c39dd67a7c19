"""The stock service under a busy shop (issue 9): connections that never arrive whole,
orders that touch only their own rows, reads that never take the write lock, bounded
storage, per-shop order ids, the schema migration that brings them."""

from __future__ import annotations

import datetime as dt
import json
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Api

from xlstock import stockfile
from xlstock.model import StockItem
from xlstock.server.database import SQLiteDatabase, migrate
from xlstock.server.runner import ServerSettings, start_background_server
from xlstock.server.schema import MIGRATIONS
from xlstock.server.storage import StockStore

SHOP = "https://busy.example"


# --- connections ---------------------------------------------------------------------------


def _closed_by_server(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b""
    except OSError:
        return True


def _wait_until_closed(socks: list[socket.socket], seconds: float) -> int:
    """How many of ``socks`` the server closed within ``seconds``."""
    end = time.monotonic() + seconds
    closed: set[int] = set()
    while time.monotonic() < end and len(closed) < len(socks):
        for index, sock in enumerate(socks):
            if index not in closed and _closed_by_server(sock):
                closed.add(index)
        time.sleep(0.1)
    return len(closed)


def test_idle_and_byte_a_second_connections_neither_block_a_new_client_nor_stay(tmp_path):
    """150 idle sockets and 100 senders of headers at one byte a second are open; a new
    client is answered within a second, and every one of them is dropped within the
    timeouts (2 s idle, 2 s for headers here; 15 s and 10 s by default)."""
    settings = ServerSettings(idle_timeout=2, header_timeout=2.0, request_timeout=4.0)
    with start_background_server(tmp_path / "c.db", settings=settings) as running:
        address = ("127.0.0.1", running.port)
        idle = [socket.create_connection(address, timeout=5) for _ in range(150)]
        slow = [socket.create_connection(address, timeout=5) for _ in range(100)]
        request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60
        stop = threading.Event()

        def drip() -> None:
            for position in range(len(request)):  # bounded: 60 s at most
                for sock in slow:
                    try:
                        sock.send(request[position:position + 1])
                    except OSError:
                        pass
                if stop.wait(1.0):
                    return

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        try:
            time.sleep(1.2)  # every slow sender is mid-headers, every idle socket open
            started = time.monotonic()
            answer = requests.get(running.url + "/v1/health", timeout=5)
            waited = time.monotonic() - started
            assert answer.status_code == 200
            assert waited < 1.0, waited
            assert _wait_until_closed(idle, 6) == 150
            assert _wait_until_closed(slow, 6) == 100
        finally:
            stop.set()
            dripper.join(5)
            for sock in idle + slow:
                sock.close()


RECONNECTOR = str(Path(__file__).with_name("support") / "reconnector.py")


def test_past_the_cap_idle_connections_that_reconnect_never_delay_a_new_client(tmp_path):
    """Issue 19: 1,100 idle connections that reconnect when dropped delayed new clients
    (median 3.9 s, 2 of 5 timed out) past a cap of 1,000. Here, bounded: a cap of 100
    and 140 idle connections from another process, each reconnecting at once when
    dropped; 20 new clients, one after another, each answered within 1 s."""
    settings = ServerSettings(connections=100, idle_timeout=15)
    with start_background_server(tmp_path / "cap.db", settings=settings) as running:
        attacker = subprocess.Popen(
            [sys.executable, RECONNECTOR, str(running.port), "140", "30"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert attacker.stdout is not None
            assert attacker.stdout.readline().strip() == "open"
            waits = []
            for _ in range(20):
                started = time.monotonic()
                try:
                    answer = requests.get(running.url + "/v1/health", timeout=5)
                    assert answer.status_code == 200
                    waits.append(time.monotonic() - started)
                except requests.RequestException:
                    waits.append(float("inf"))
            waits.sort()
            assert waits[-1] < 1.0, f"median {waits[10]:.3f} s, slowest {waits[-1]:.3f} s"
            assert running._server.dropped_for_room >= 20  # the cap was reached each time
        finally:
            attacker.kill()
            attacker.communicate(timeout=10)


def test_a_body_that_never_finishes_arriving_is_dropped(tmp_path, shop_factory):
    settings = ServerSettings(header_timeout=1.0, request_timeout=1.5)
    with start_background_server(tmp_path / "b.db", settings=settings) as running:
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        try:
            sock.sendall(b"POST /v1/orders?shop=https://x.example HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            assert _wait_until_closed([sock], 5) == 1
        finally:
            sock.close()


def test_the_default_settings_take_hundreds_of_connections():
    assert ServerSettings().connections >= 500
    assert ServerSettings().idle_timeout <= 30 and ServerSettings().header_timeout <= 30


def _raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:  # closed with part of the request unread
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("request_bytes, status, code", [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
     "bad_request"),
    (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 262_150 + b"\r\n\r\n", 431,
     "headers_too_large"),
    (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
], ids=["request line", "transfer coding", "headers too large", "malformed header"])
def test_requests_the_web_server_cannot_read_get_json_errors(stock_service, request_bytes,
                                                             status, code):
    got, headers, body = _raw(stock_service.port, request_bytes)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == code


def test_head_answers_the_tag_without_reading_the_levels(stock_service, api, monkeypatch):
    etag, _ = api.levels()

    def never(*args: Any) -> Any:
        raise AssertionError("HEAD read the levels")

    monkeypatch.setattr(stock_service.store, "read_levels", never)
    answer = api.request("HEAD", "/v1/stock")
    assert answer.status_code == 200
    assert answer.headers["ETag"] == etag
    assert answer.content == b""


# --- orders in O(items), reads without the write lock ----------------------------------------


class _Recorder:
    """A connection that records every statement run through it."""

    def __init__(self, conn: sqlite3.Connection, log: list[tuple[str, Any]]) -> None:
        self._conn = conn
        self._log = log

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._log.append((sql, params))
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        rows = list(rows)
        self._log.append((sql, rows[0] if rows else None))
        return self._conn.executemany(sql, rows)


class RecordingDatabase(SQLiteDatabase):
    """The SQLite database, recording each transaction's kind and its statements."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.statements: list[tuple[str, Any]] = []
        self.transactions: list[bool] = []

    @contextmanager
    def read(self) -> Iterator[Any]:
        self.transactions.append(False)
        with super().read() as conn:
            yield _Recorder(conn, self.statements)

    def write(self, job: Any, *, lock_key: str | None = None) -> Any:
        self.transactions.append(True)
        return super().write(lambda conn: job(_Recorder(conn, self.statements)),
                             lock_key=lock_key)


def _plans(path: Any, statements: list[tuple[str, Any]]) -> list[str]:
    """The query plan of each recorded statement that has parameters to plan with."""
    found = []
    with sqlite3.connect(path) as conn:
        for sql, params in statements:
            if params is None:
                continue
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params):
                found.append(f"{row[-1]}  <-  {' '.join(sql.split())[:80]}")
    return found


def _order_statements(path: Any, catalogue_size: int) -> list[tuple[str, Any]]:
    database = RecordingDatabase(path)
    store = StockStore(database)
    try:
        store.add_shop(SHOP, [StockItem(f"SKU-{n:06d}", qty=10) for n in range(catalogue_size)])
        database.statements.clear()
        body = json.dumps({"lines": [{"sku": "SKU-000001", "qty": 1},
                                     {"sku": "SKU-000002", "qty": 2}]}).encode()
        assert store.order(SHOP, body=body, key="order-1").status == 201
        return list(database.statements)
    finally:
        store.close()


def test_an_order_reads_and_writes_only_its_own_rows_through_indexes(tmp_path):
    small = _order_statements(tmp_path / "small.db", 10)
    large = _order_statements(tmp_path / "large.db", 5000)
    assert [sql for sql, _ in small] == [sql for sql, _ in large]  # the same work at any size
    plans = _plans(tmp_path / "large.db", large)
    assert plans and not [plan for plan in plans if "SCAN" in plan], plans


def test_a_publish_reads_and_writes_only_the_rows_it_lists(tmp_path):
    database = RecordingDatabase(tmp_path / "p.db")
    store = StockStore(database)
    try:
        store.add_shop(SHOP, [StockItem(f"SKU-{n:06d}", qty=10) for n in range(3000)])
        database.statements.clear()
        body = stockfile.dumps(SHOP, {"SKU-000007": 12}, {"SKU-000007": 10})
        assert store.publish(SHOP, key="p-1", body=body).status == 200
        plans = _plans(tmp_path / "p.db", database.statements)
    finally:
        store.close()
    assert plans and not [plan for plan in plans if "SCAN" in plan], plans


def test_sync_storefront_history_and_outcomes_never_take_the_write_lock(tmp_path):
    database = RecordingDatabase(tmp_path / "r.db")
    store = StockStore(database)
    try:
        store.add_shop(SHOP, [StockItem("A", qty=3)])
        database.transactions.clear()
        store.read_levels(SHOP)
        store.storefront(SHOP)
        store.history(SHOP)
        store.publish_outcome(SHOP, "never")
        store.current_tag(SHOP)
        store.authenticate("xls_nothing")
        assert database.transactions == [False] * 6
    finally:
        store.close()


def test_a_reader_in_the_middle_of_a_read_never_holds_up_an_order(tmp_path):
    path = tmp_path / "w.db"
    store = StockStore(path)
    store.add_shop(SHOP, [StockItem("A", qty=5)])
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT qty FROM products").fetchone() == (5,)
        started = time.monotonic()
        outcome = store.order(SHOP, body=b'{"lines":[{"sku":"A","qty":1}]}')
        assert outcome.status == 201
        assert time.monotonic() - started < 1.0
        assert reader.execute("SELECT qty FROM products").fetchone() == (5,)  # its snapshot
        reader.execute("COMMIT")
    finally:
        reader.close()
        store.close()


# --- order ids, migration ------------------------------------------------------------------


def test_order_ids_are_counted_per_shop(make_api):
    first, second = make_api(), make_api()
    assert [first.order({"A-1": 1}).json()["order"] for _ in range(2)] == [1, 2]
    assert second.order({"A-1": 1}).json()["order"] == 1
    assert first.history()[0]["reference"] == "order-2"


def test_a_first_release_database_is_migrated_keeping_every_order_id(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    conn.executescript("""
        INSERT INTO shops (id, url, epoch, version, created_at) VALUES
            (1, 'https://a.example', 'e1', 3, '2026-01-01T00:00:00Z'),
            (2, 'https://b.example', 'e2', 1, '2026-01-01T00:00:00Z');
        INSERT INTO products (shop_id, sku, qty) VALUES (1, 'A', 5), (2, 'B', 5);
        INSERT INTO orders (id, shop_id, number, reference, at) VALUES
            (1, 1, 2, 'web-1', '2026-01-01T00:00:00Z'),
            (2, 2, 1, '', '2026-01-01T00:00:00Z'),
            (3, 1, 3, '', '2026-01-01T00:00:00Z');
    """)
    conn.close()
    store = StockStore(path)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        a = store.order("https://a.example", body=b'{"lines":[{"sku":"A","qty":1}]}')
        b = store.order("https://b.example", body=b'{"lines":[{"sku":"B","qty":1}]}')
        assert (a.body["order"], b.body["order"]) == (4, 3)
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT shop_id, id, reference FROM orders ORDER BY shop_id, id")
        assert rows.fetchall() == [(1, 1, "web-1"), (1, 3, ""), (1, 4, ""), (2, 2, ""),
                                   (2, 3, "")]


# --- bounded storage ---------------------------------------------------------------------


def test_a_refused_15_mb_document_stores_a_few_kib(api, stock_service):
    items = [{"sku": f"SKU-{n:07d}-" + "x" * 30, "from": 0, "qty": -1} for n in range(200_000)]
    body = json.dumps({"format": "xlstock.stock", "format_version": 2, "shop": api.shop,
                       "items": items}).encode()
    assert 15_000_000 < len(body) < 16 * 1024 * 1024
    key = str(uuid.uuid4())
    answer = api.publish(body, key=key)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["items_total"] == 200_000
    assert 0 < len(error["items"]) <= 100
    assert len(answer.content) < 16 * 1024
    outcome = api.get(f"/v1/publishes/{key}")
    assert len(outcome.content) < 17 * 1024
    assert api.publish(body, key=key).json() == answer.json()  # the replay is the answer


def test_a_shop_over_its_daily_quota_is_refused_until_midnight(tmp_path):
    now = [dt.datetime(2026, 11, 27, 23, 0, tzinfo=dt.timezone.utc)]
    store = StockStore(tmp_path / "q.db", clock=lambda: now[0], daily_quota=20_000)
    try:
        store.add_shop(SHOP, [StockItem("A", qty=1_000_000)])
        order = b'{"lines":[{"sku":"A","qty":1}]}'
        statuses = [store.order(SHOP, body=order, key=f"o-{n}").status for n in range(200)]
        taken = statuses.count(201)
        assert 10 < taken < 200 and set(statuses[taken:]) == {429}
        refused = store.order(SHOP, body=order, key="late")
        assert refused.body["error"]["code"] == "quota_exceeded"
        assert refused.headers["Retry-After"] == "3600"
        assert store.read_levels(SHOP)["items"][0]["qty"] == 1_000_000 - taken
        now[0] += dt.timedelta(hours=1)
        assert store.order(SHOP, body=order, key="next-day").status == 201
    finally:
        store.close()


def test_the_quota_answer_reaches_the_client_with_retry_after(tmp_path):
    settings = ServerSettings(daily_quota=1)
    with start_background_server(tmp_path / "q.db", settings=settings) as running:
        token = running.store.add_shop(SHOP, [StockItem("A", qty=5)])
        api = Api(running.url, SHOP, token)
        assert api.order({"A": 1}).status_code == 201  # the first write may pass the quota
        refused = api.order({"A": 1})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert int(refused.headers["Retry-After"]) > 0


# --- publish under order load -------------------------------------------------------------


def test_publish_succeeds_10_of_10_while_16_threads_order_other_skus(stock_service, tmp_path):
    """``xlstock publish`` (the CLI, on a real workbook) ten times while sixteen storefront
    threads sell other SKUs as fast as they can: every publish goes through on its first
    try, and every delivery and every sale is counted once."""
    from support.shopkit import Shop

    own = [StockItem(f"OWN-{n}", "Own", "", 100) for n in range(5)]
    sold = [StockItem(f"SOLD-{n:02d}", "Sold", "", 1_000_000) for n in range(32)]
    shop = Shop(stock_service, tmp_path, own + sold)
    shop.new()
    shop.run("sync", str(shop.workbook))
    stop = threading.Event()
    taken: list[int] = [0] * 16
    during: list[int] = []

    def buyer(n: int) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {shop.token}"}
        end = time.monotonic() + 90
        for i in range(100_000):
            if stop.is_set() or time.monotonic() > end:
                break
            answer = session.post(
                f"{stock_service.url}/v1/orders", params={"shop": shop.url}, headers=headers,
                json={"lines": [{"sku": f"SOLD-{(n * 7 + i) % 32:02d}", "qty": 1}]}, timeout=30,
            )
            assert answer.status_code == 201, answer.text
            taken[n] += 1
        session.close()

    buyers = [threading.Thread(target=buyer, args=(n,), daemon=True) for n in range(16)]
    for thread in buyers:
        thread.start()
    try:
        time.sleep(0.3)
        for attempt in range(10):
            sku = f"OWN-{attempt % 5}"
            shop.edit(**{sku: {"Received": attempt + 1}})
            before = sum(taken)
            result = shop.run("publish", str(shop.workbook))
            during.append(sum(taken) - before)
            assert "moved during publish" not in result.output, result.output
    finally:
        stop.set()
        for thread in buyers:
            thread.join(60)
    assert all(count > 0 for count in during), during  # sales landed during every publish
    live = shop.live()
    for n in range(5):
        received = sum(attempt + 1 for attempt in range(10) if attempt % 5 == n)
        assert live[f"OWN-{n}"] == 100 + received
    assert sum(1_000_000 - live[item.sku] for item in sold) == sum(taken)
