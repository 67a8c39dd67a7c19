"""``xlstock serve --workers N`` (issue 22, point 6): several processes on one port and
one database, for real: ``xlstock serve`` runs as a process of its own, the clients are
threads of the tests talking HTTP on 127.0.0.1, a worker is killed with SIGKILL while
the orders go on. The races of tests/test_server_concurrency.py run against two workers
too (conftest.py's ``stock_service``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from support.serviceproc import ServiceProcess

from xlstock.cli import main
from xlstock.model import StockItem
from xlstock.server.accounts import AccountStore
from xlstock.server.storage import StockStore
from xlstock.server.workers import cores

SHOP = "https://workers.example"
SERVED = re.compile(r"\[(\d+)\]: (?:GET|POST|PUT) /v1/")


def served_by(log: str) -> Counter[int]:
    """How many requests each process logged."""
    return Counter(int(pid) for pid in SERVED.findall(log))


def order(session: Any, base: str, token: str, lines: dict[str, int], *,
          shop: str = SHOP, key: str | None = None) -> requests.Response:
    return session.post(
        base + "/v1/orders", params={"shop": shop}, timeout=30,
        headers={"Authorization": f"Bearer {token}",
                 "Idempotency-Key": key or str(uuid.uuid4())},
        json={"lines": [{"sku": sku, "qty": qty} for sku, qty in lines.items()]})


def levels_and_orders(store: StockStore, shop: str = SHOP) -> tuple[dict[str, int], int]:
    levels = {item["sku"]: item["qty"] for item in store.read_levels(shop)["items"]}
    versions = store.history(shop, limit=100_000)["versions"]
    return levels, sum(v["source"] == "order" for v in versions)


@pytest.fixture
def service(new_db, tmp_path: Path) -> Iterator[ServiceProcess]:
    """``xlstock serve --workers 2`` on this test's backend."""
    with ServiceProcess(new_db(), tmp_path / "serve.log", "--workers", "2",
                        "--threads", "8") as process:
        process.wait_for_workers(2)
        yield process


def until_served_by(service: ServiceProcess, wanted: set[int], timeout: float = 30) -> None:
    """Health checks on fresh connections, 8 at a time, until each of ``wanted`` logged
    one (the kernel hands a new connection to whichever worker accepts first)."""
    deadline = time.monotonic() + timeout

    def check() -> None:
        assert requests.get(service.url + "/v1/health", timeout=10).status_code == 200

    while not wanted <= set(served_by(service.text())):
        assert time.monotonic() < deadline, (wanted, service.text()[-3000:])
        threads = [threading.Thread(target=check) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)


def test_two_workers_both_serve_on_one_port(service):
    workers = service.workers()
    assert len(workers) == 2 and service.pid not in workers
    until_served_by(service, workers)
    assert set(served_by(service.text())) == workers  # the supervisor serves nothing


def test_a_worker_killed_under_load_loses_no_order_and_the_service_answers_on(service):
    token = service.store.add_shop(SHOP, [StockItem("ITEM", qty=100_000)])
    threads, orders_each = 8, 40
    acknowledged: dict[str, int] = {}
    retried: list[str] = []
    lock = threading.Lock()
    halfway = threading.Event()
    stop = threading.Event()  # the buyers go on ordering until the kill has hit one

    def buyer(n: int) -> None:
        with requests.Session() as session:  # keep-alive: a connection to one worker
            i = 0
            while i < orders_each or not stop.is_set():
                i += 1
                if n == 0 and i == orders_each // 3:
                    halfway.set()
                key, qty = str(uuid.uuid4()), 1 + (n + i) % 3
                for _attempt in range(50):
                    try:
                        answer = order(session, service.url, token, {"ITEM": qty}, key=key)
                    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                        # Its worker is gone (before the answer, or in the middle of it):
                        # the same order, same key, to the same address, as a storefront
                        # retries.
                        with lock:
                            retried.append(key)
                        time.sleep(0.05)
                        continue
                    assert answer.status_code == 201, answer.text
                    with lock:
                        acknowledged[key] = qty
                    break
                else:
                    raise AssertionError("the order never got through")

    failures: list[BaseException] = []

    def buying(n: int) -> None:
        try:
            buyer(n)
        except BaseException as failed:  # named in the test's failure, not lost in a thread
            failures.append(failed)
            halfway.set()

    buyers = [threading.Thread(target=buying, args=(n,)) for n in range(threads)]
    for thread in buyers:
        thread.start()
    assert halfway.wait(60)
    signal_sent = time.monotonic()
    # The worker that served the most orders so far holds open connections of buyers.
    # A kill that falls between two requests of every connection it holds is not seen
    # (urllib3 finds the connection closed and quietly opens one to the other worker),
    # so the busiest worker is killed again, once replaced, until a kill has cut a
    # buyer's request: at most three kills (CI once saw one kill miss them all).
    victims: list[int] = []
    while not retried and len(victims) < 3:
        alive = service.wait_for_workers(2)
        counts = served_by(service.text())
        victim = max(alive, key=lambda pid: counts[pid])
        os.kill(victim, signal.SIGKILL)
        victims.append(victim)
        hit_by = time.monotonic() + 10
        while not retried and time.monotonic() < hit_by:
            time.sleep(0.05)
    stop.set()
    for thread in buyers:
        thread.join(120)
    assert not any(thread.is_alive() for thread in buyers)
    assert failures == []
    assert retried, "the kill hit no buyer's connection"
    assert len(acknowledged) >= threads * orders_each
    levels, orders = levels_and_orders(service.store)
    # Every acknowledged order is there once: none lost with the worker, none doubled
    # by the retries under the same key.
    assert levels["ITEM"] == 100_000 - sum(acknowledged.values())
    assert orders == len(acknowledged)
    # The supervisor replaced the worker, and the new one serves.
    workers = service.wait_for_workers(2)
    for victim in victims:
        assert victim not in workers
        assert re.search(rf"worker \d \(process {victim}\) was killed by SIGKILL",
                         service.text())
    until_served_by(service, workers)
    assert time.monotonic() - signal_sent < 120
    assert service.stop() == 0
    assert "stock service stopped" in service.text()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_every_worker_and_the_service_exits_0(service, stop):
    workers = service.workers()
    service.process.send_signal(stop)
    assert service.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    text = service.text()
    assert f"[{service.pid}]: stopping on {stop.name}" in text
    for pid in workers:  # each told by the supervisor, each stopping cleanly
        assert f"[{pid}]: stopping on SIGTERM" in text
    assert "stock service stopped" in text
    with pytest.raises(requests.ConnectionError):
        requests.get(service.url + "/v1/health", timeout=5)


def test_workers_stop_when_their_supervisor_is_killed(service):
    workers = service.workers()
    service.process.send_signal(signal.SIGKILL)
    service.process.wait(10)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, service.text()[-2000:]
        time.sleep(0.1)
    assert service.text().count("the service's supervisor is gone: this worker stops") == 2


def test_workers_that_keep_dying_at_start_stop_the_service_with_a_message(tmp_path):
    with ServiceProcess(tmp_path / "shop.db", tmp_path / "serve.log", "--workers", "2",
                        env={"XLSTOCK_FAILPOINT": "worker-start"}) as service:
        status = service.process.wait(60)
        text = service.text()
    assert status == 2, text
    assert "the service's workers keep stopping as they start" in text
    assert "fix it" in text
    assert "was killed by SIGKILL" in text


def test_a_database_it_cannot_open_is_said_before_any_worker_starts(tmp_path):
    missing = tmp_path / "no-such-folder" / "shop.db"
    result = CliRunner().invoke(main, ["serve", "--db", str(missing), "--port", "0",
                                       "--workers", "2"])
    assert result.exit_code == 2, result.output
    assert "cannot open the stock database" in result.output
    assert "worker 1 started" not in result.output


def test_a_port_in_use_is_said_once(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "s.db"),
                                           "--port", str(port), "--workers", "2"])
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


@pytest.mark.parametrize("given, problem", [
    ("two", "'two' is not a number of workers"),
    ("-1", "-1 workers: pass 1 to 256"),
    ("300", "300 workers: pass 1 to 256"),
])
def test_a_bad_number_of_workers_is_a_usage_error(tmp_path, given, problem):
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "s.db"),
                                       "--workers", given])
    assert result.exit_code == 2
    assert problem in result.output


def test_auto_runs_one_worker_per_core(tmp_path):
    with ServiceProcess(tmp_path / "shop.db", tmp_path / "serve.log",
                        "--workers", "auto") as service:
        expected = cores()
        if expected == 1:
            assert not service.workers()  # one core: one process, no supervisor
        else:
            service.wait_for_workers(expected)
            assert f"{expected} workers" in service.text()


# -- low-stock e-mails: one sender for all the workers ------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_low_stock_e_mails_are_sent_once_by_one_worker(new_db, tmp_path):
    from aiosmtpd.controller import Controller

    received: list[str] = []

    class Inbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.extend(envelope.rcpt_tos)
            return "250 OK"

    controller = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
    controller.start()
    db = new_db()
    try:
        with ServiceProcess(db, tmp_path / "serve.log", "--workers", "2", "--smtp-host",
                            "127.0.0.1", "--smtp-port", str(controller.port),
                            "--low-stock-digest", "0") as service:
            workers = service.wait_for_workers(2)
            shops = [_merchant_shop(service.store) for _ in range(4)]

            def sell(shop: tuple[str, str, str]) -> None:
                url, token, _ = shop
                for _ in range(3):  # fresh connections: through either worker
                    assert order(requests, service.url, token, {"A-1": 3},
                                 shop=url).status_code == 201

            threads = [threading.Thread(target=sell, args=(shop,)) for shop in shops]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            deadline = time.monotonic() + 40
            while len(received) < len(shops) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(6)  # past a sender's poll: a second sender would have sent by now
            senders = re.findall(r"\[(\d+)\]: low stock e-mails through", service.text())
    finally:
        controller.stop()
    assert sorted(received) == sorted(email for _, _, email in shops)
    assert len(senders) == 1 and int(senders[0]) in workers


def _merchant_shop(store: StockStore) -> tuple[str, str, str]:
    """A shop of an account with low-stock e-mails on at 5: its URL, token, e-mail."""
    accounts = AccountStore(store)
    address, password, _ = accounts.add_account(f"m-{uuid.uuid4().hex[:8]}@shop.example")
    account = accounts.sign_in(address, password, "127.0.0.1").account
    url = f"https://shop-{uuid.uuid4().hex[:12]}.example"
    token = store.add_shop(url, [StockItem("A-1", "Hoodie", "", 14)])
    assert accounts.save_shop_url(account, url, proof=token)[0] == "claimed"
    shop = accounts.shop_of(account)
    accounts.save_services(shop, stock_updates=True, low_stock_at=5)
    return url, token, address


# -- SQLite: the writers of several workers ------------------------------------------


@contextlib.contextmanager
def writing_back_to_back(busy: Any, statement: str, seconds: float = 4.0) -> Iterator[None]:
    """``busy`` (a database, as one worker has) runs ``statement`` in writes that each
    hold the lock 50 ms, from four request threads for ``seconds``: the busy worker
    always has a write waiting, and starts its next one the moment one commits, as under
    load. The ``with`` body runs 0.3 s in; the writers are joined after it."""
    stop = time.monotonic() + seconds

    def hold(conn: Any) -> None:
        conn.execute(statement)
        time.sleep(0.05)

    def writes_back_to_back() -> None:
        while time.monotonic() < stop:
            busy.write(hold)

    writers = [threading.Thread(target=writes_back_to_back) for _ in range(4)]
    for writer in writers:
        writer.start()
    time.sleep(0.3)
    try:
        yield
    finally:
        for writer in writers:
            writer.join(30)


def test_a_write_waiting_for_another_processs_writes_gets_in_as_soon_as_one_ends(tmp_path):
    """Two databases on one file stand for two workers (each its own connections and
    writer thread, as each process has). One commits back to back for 4 s, each write
    holding the lock 50 ms; the other's write must get in between two of them. With
    SQLite's busy wait alone it polled (up to every 100 ms), almost never found the
    lock free in the gaps between writes, and waited for the whole 4 s."""
    from xlstock.server.database import SQLiteDatabase

    busy, other = SQLiteDatabase(tmp_path / "shop.db"), SQLiteDatabase(tmp_path / "shop.db")
    try:
        busy.write(lambda conn: conn.execute("CREATE TABLE t (who TEXT)"))
        with writing_back_to_back(busy, "INSERT INTO t VALUES ('busy')"):
            started = time.monotonic()
            other.write(lambda conn: conn.execute("INSERT INTO t VALUES ('other')"))
            waited = time.monotonic() - started
    finally:
        busy.close()
        other.close()
    assert waited < 1.5, f"the write waited {waited:.2f} s for the other process's writes"


def test_a_worker_starting_beside_busy_writers_does_not_wait_for_them(tmp_path):
    """A replaced worker opens the (migrated) database while the others write back to
    back: it must start at once. It took the write lock to check the schema, and
    waited (SQLite's polling wait) for the others' whole run of writes."""
    from xlstock.server.database import SQLiteDatabase

    StockStore(tmp_path / "shop.db").close()  # the supervisor migrates it first
    busy = SQLiteDatabase(tmp_path / "shop.db")
    try:
        with writing_back_to_back(busy, "UPDATE shops SET version = version WHERE id = -1"):
            started = time.monotonic()
            StockStore(tmp_path / "shop.db").close()
            waited = time.monotonic() - started
    finally:
        busy.close()
    assert waited < 1.5, f"the new worker's store waited {waited:.2f} s to open"


def test_a_write_transaction_inside_another_fails_at_once_rather_than_waiting_for_itself(
        tmp_path):
    from xlstock.server.database import SQLiteDatabase

    db = SQLiteDatabase(tmp_path / "shop.db")
    try:
        started = time.monotonic()
        with db.transaction():
            with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
                with db.transaction():
                    pass
        assert time.monotonic() - started < 5
    finally:
        db.close()
