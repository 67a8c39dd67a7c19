"""What the service benchmarks share: a shop's catalogue, ``xlstock serve`` started on a
free loopback port, and storefront clients placing orders (bench_service.py,
bench_postgres.py).

The clients are threads of the benchmark's own process with keep-alive connections;
each order is one line of one unit with a fresh Idempotency-Key, as ``xlstock order``
sends it.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xlstock.model import StockItem

LEVEL = 900_000_000
"""Every product's level: high enough that no benchmark ever sells one out."""

Order = Callable[[random.Random], tuple[str, str, str]]
"""Chooses an order: ``(shop URL, API token, SKU)``."""


def sku_of(number: int) -> str:
    return f"SKU-{number:06d}"


def catalogue(size: int, *, variant: str = "Blue / L") -> list[StockItem]:
    """``size`` products ``SKU-000000``..., each at :data:`LEVEL`."""
    return [StockItem(sku_of(n), f"Product {n}", variant, LEVEL) for n in range(size)]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that still run (Linux): ``serve --workers``'s."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def service_cpu(pid: int) -> float:
    """CPU seconds used so far by ``xlstock serve`` process ``pid`` and its workers."""
    total = process_cpu(pid)
    for child in children(pid):
        try:
            total += process_cpu(child)
        except OSError:  # it ended meanwhile
            pass
    return total


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Serve:
    """``xlstock serve`` on ``db`` (a file or a ``postgresql://`` URL) on a free loopback
    port, its log in the file ``log``; ``token`` is the API token of its shop, if any;
    ``workers``: its ``--workers``."""

    def __init__(self, db: str | Path, log: Path, *, token: str = "", workers: int = 1) -> None:
        self.token = token
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xlstock.cli", "serve", "--db", str(db), "--port", "0",
             "--daily-quota", "100000", "--workers", str(workers)],
            stdout=subprocess.DEVNULL, stderr=self._log,
        )
        deadline = time.monotonic() + 60
        self.port = 0
        while not self.port:
            if found := re.search(r"on http://127\.0\.0\.1:(\d+)", log.read_text()):
                self.port = int(found.group(1))
            elif self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"xlstock serve did not start: {log.read_text()}")
            else:
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self._log.close()


def place_orders(ports: Sequence[int], clients: int, seconds: float, order: Order,
                 stop: threading.Event | None = None) -> list[float]:
    """Latencies of every order ``clients`` threads placed in ``seconds`` (or until
    ``stop``), client ``n`` talking to ``ports[n % len(ports)]``; ``order`` chooses
    each one."""
    stop = stop or threading.Event()
    end = time.monotonic() + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        rng = random.Random(number)
        conn = http.client.HTTPConnection("127.0.0.1", ports[number % len(ports)], timeout=60)
        mine = []
        while time.monotonic() < end and not stop.is_set():
            shop, token, chosen = order(rng)
            body = json.dumps({"lines": [{"sku": chosen, "qty": 1}]}).encode()
            started = time.perf_counter()
            conn.request("POST", "/v1/orders?shop=" + shop, body, {
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 201:
                raise SystemExit(f"an order got {answer.status}")
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def order_statements(conn: Any, shop: str, shop_id: int, sku: str, *, mark: str = "?",
                     lock: str = "") -> None:
    """The statements the service runs for a one-unit order of ``sku`` (shop row, key,
    level, version, change, order and key rows, level and shop updates), on a connection
    whose ``execute`` returns a cursor: the databases' floors. ``mark`` is the
    connection's placeholder, ``lock`` what locks the shop's row (PostgreSQL)."""

    def run(sql: str, params: tuple[Any, ...]) -> Any:
        return conn.execute(sql.replace("?", mark), params)

    key = uuid.uuid4().hex
    version, count = run("SELECT version, order_count FROM shops WHERE url = ?" + lock,
                         (shop,)).fetchone()
    run("SELECT status FROM idempotency WHERE shop_id = ? AND key = ?", (shop_id, key)).fetchone()
    qty = run("SELECT qty FROM products WHERE shop_id = ? AND sku IN (?)",
              (shop_id, sku)).fetchone()[0]
    run("INSERT INTO versions (shop_id, number, at, source, reference) "
        "VALUES (?, ?, '2026-11-27T10:00:00Z', 'order', 'o')", (shop_id, version + 1))
    run("INSERT INTO changes (shop_id, number, sku, before, after) VALUES (?, ?, ?, ?, ?)",
        (shop_id, version + 1, sku, qty, qty - 1))
    run("INSERT INTO orders (shop_id, id, number, reference, at) "
        "VALUES (?, ?, ?, '', '2026-11-27T10:00:00Z')", (shop_id, count + 1, version + 1))
    run("UPDATE products SET qty = ? WHERE shop_id = ? AND sku = ?", (qty - 1, shop_id, sku))
    run("UPDATE shops SET version = ?, order_count = ? WHERE id = ?",
        (version + 1, count + 1, shop_id))
    run("INSERT INTO idempotency (shop_id, key, action, body_sha256, status, response, "
        "received_at, applied) VALUES (?, ?, 'order', ?, 201, ?, '2026-11-27T10:00:00Z', 1)",
        (shop_id, key, "0" * 64, "{}" * 60))
