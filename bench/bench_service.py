"""Benchmark the stock service as a busy shop uses it, next to floors measured in the
same run.

Run: ``python bench/bench_service.py`` (defaults: ``--sizes 1000 100000 --clients 8 32
--seconds 10 --publishes 10 --parts orders sync publish``). Needs the ``server``
extra. Everything runs on loopback: the service is a real ``xlstock serve`` process;
the storefront clients are threads of this process, each with a keep-alive
connection, placing one-line orders with an Idempotency-Key as ``xlstock order`` does.

It prints three tables:

1. **Orders**: orders per second with p50 and p99 latency for each catalogue size and
   number of clients, and the service's CPU per order. Next to them, the SQLite floor:
   the same statements an order runs (shop, idempotency lookup, the SKU's level, the
   version, change, order and idempotency rows, the level and the shop's row), in bare
   SQLite on the same database file, one transaction per order with ``synchronous =
   FULL`` (what one writer committing each order alone can do), and 50 orders per
   commit (the service commits the orders that arrive together in one group).
2. **Sync**: ``GET /v1/stock`` of the largest catalogue, gzip and plain, against its
   floor: ``json.dumps`` of the same document, and ``gzip`` of it, in this process.
3. **Publish under order load**: publishes of 10 SKUs through the real client while 8
   storefront clients sell: other SKUs (never a conflict), the very SKUs published
   (re-planned from the 412's levels, at most 3 tries, as ``xlstock publish`` does), and
   for contrast with protocol 1's whole-shop condition (``If-Match``).

The machine's load average is printed with each table: other work on the machine
lowers every figure (the service is one process; on 2 cores the clients take a share).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xlstock import stockfile  # noqa: E402
from xlstock.errors import StaleVersion  # noqa: E402
from xlstock.model import StockItem  # noqa: E402
from xlstock.remote import HttpStockServiceClient  # noqa: E402
from xlstock.server.storage import StockStore  # noqa: E402

SHOP = "https://bench.example"
LEVEL = 900_000_000


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Service:
    """``xlstock serve`` on a free loopback port, over a database holding one shop."""

    def __init__(self, folder: Path, size: int, name: str) -> None:
        self.db = folder / f"{name}-{size}.db"
        store = StockStore(self.db)
        self.token = store.add_shop(
            SHOP, [StockItem(f"SKU-{n:06d}", f"Product {n}", "Blue / L", LEVEL)
                   for n in range(size)]
        )
        store.close()
        self.log = open(folder / f"{name}-{size}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xlstock.cli", "serve", "--db", str(self.db), "--port", "0",
             "--daily-quota", "100000"],
            stderr=subprocess.PIPE, text=True,
        )
        assert self.process.stderr is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise SystemExit("xlstock serve ended before listening")
            if found := re.search(r"on http://127\.0\.0\.1:(\d+)", line):
                port = int(found.group(1))
        assert port is not None
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.write(line)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def order_load(
    service: Service, clients: int, seconds: float, pick: Callable[[random.Random], str],
    stop: threading.Event | None = None,
) -> list[float]:
    """Latencies of every order ``clients`` threads placed in ``seconds`` (or until
    ``stop``); each order is one line of one unit of the SKU ``pick`` chooses."""
    stop = stop or threading.Event()
    end = time.monotonic() + seconds
    latencies: list[float] = []
    lock = threading.Lock()
    path = "/v1/orders?shop=" + SHOP
    headers = {"Authorization": f"Bearer {service.token}", "Content-Type": "application/json"}

    def client(number: int) -> None:
        rng = random.Random(number)
        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
        mine = []
        for _ in range(10_000_000):
            if time.monotonic() >= end or stop.is_set():
                break
            body = json.dumps({"lines": [{"sku": pick(rng), "qty": 1}]}).encode()
            started = time.perf_counter()
            conn.request("POST", path, body, {**headers, "Idempotency-Key": uuid.uuid4().hex})
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


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def sqlite_floor(db: Path, orders: int, per_commit: int) -> float:
    """Orders per second of bare SQLite running an order's statements on ``db``,
    ``per_commit`` orders per transaction, ``synchronous = FULL``."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    shop_id, size = conn.execute(
        "SELECT shops.id, COUNT(*) FROM shops JOIN products ON products.shop_id = shops.id "
        "WHERE url = ?", (SHOP,)
    ).fetchone()
    rng = random.Random(7)
    started = time.perf_counter()
    for _ in range(0, orders, per_commit):
        conn.execute("BEGIN IMMEDIATE")
        for _order in range(per_commit):
            key, sku = uuid.uuid4().hex, f"SKU-{rng.randrange(size):06d}"
            version, count = conn.execute(
                "SELECT version, order_count FROM shops WHERE url = ?", (SHOP,)).fetchone()
            conn.execute("SELECT status FROM idempotency WHERE shop_id = ? AND key = ?",
                         (shop_id, key)).fetchone()
            qty = conn.execute("SELECT qty FROM products WHERE shop_id = ? AND sku IN (?)",
                               (shop_id, sku)).fetchone()[0]
            conn.execute("INSERT INTO versions (shop_id, number, at, source, reference) "
                         "VALUES (?, ?, '2026-11-27T10:00:00Z', 'order', 'o')",
                         (shop_id, version + 1))
            conn.execute("INSERT INTO changes (shop_id, number, sku, before, after) "
                         "VALUES (?, ?, ?, ?, ?)", (shop_id, version + 1, sku, qty, qty - 1))
            conn.execute("INSERT INTO orders (shop_id, id, number, reference, at) "
                         "VALUES (?, ?, ?, '', '2026-11-27T10:00:00Z')",
                         (shop_id, count + 1, version + 1))
            conn.execute("UPDATE products SET qty = ? WHERE shop_id = ? AND sku = ?",
                         (qty - 1, shop_id, sku))
            conn.execute("UPDATE shops SET version = ?, order_count = ? WHERE id = ?",
                         (version + 1, count + 1, shop_id))
            conn.execute("INSERT INTO idempotency (shop_id, key, action, body_sha256, status, "
                         "response, received_at, applied) VALUES (?, ?, 'order', ?, 201, ?, "
                         "'2026-11-27T10:00:00Z', 1)", (shop_id, key, "0" * 64, "{}" * 60))
        conn.execute("COMMIT")
    rate = (orders // per_commit * per_commit) / (time.perf_counter() - started)
    conn.close()
    return rate


def bench_orders(folder: Path, sizes: list[int], clients: list[int],
                 seconds: float) -> list[str]:
    lines = [
        "| SKUs | clients | orders/s | p50 | p99 | service CPU per order "
        "| SQLite floor, 1 order per commit | SQLite floor, 50 per commit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        service = Service(folder, size, "orders")
        measured = []

        def anywhere(rng: random.Random, size: int = size) -> str:
            return f"SKU-{rng.randrange(size):06d}"

        try:
            order_load(service, 4, 1.0, anywhere)  # warm up
            for count in clients:
                cpu = process_cpu(service.process.pid)
                started = time.monotonic()
                latencies = order_load(service, count, seconds, anywhere)
                elapsed = time.monotonic() - started
                cpu_per_order = (process_cpu(service.process.pid) - cpu) / len(latencies)
                measured.append((count, len(latencies) / elapsed, percentile(latencies, 0.5),
                                 percentile(latencies, 0.99), cpu_per_order))
        finally:
            service.stop()
        alone = sqlite_floor(service.db, 2000, 1)
        grouped = sqlite_floor(service.db, 20000, 50)
        for count, rate, p50, p99, cpu_per_order in measured:
            lines.append(f"| {size:,} | {count} | {rate:,.0f} | {p50 * 1000:.1f} ms "
                         f"| {p99 * 1000:.1f} ms | {cpu_per_order * 1000:.2f} ms "
                         f"| {alone:,.0f}/s | {grouped:,.0f}/s |")
    return [f"Orders (load average {load_average()})", ""] + lines


def best_of(repeat: int, action: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_sync(folder: Path, size: int) -> list[str]:
    service = Service(folder, size, "sync")
    try:
        client = HttpStockServiceClient(service.url, SHOP, service.token, deadline=300)
        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=300)
        sizes: dict[str, int] = {}

        def get(encoding: str) -> None:
            conn.request("GET", "/v1/stock?shop=" + SHOP,
                         headers={"Authorization": f"Bearer {service.token}",
                                  "Accept-Encoding": encoding})
            answer = conn.getresponse()
            sizes[encoding] = len(answer.read())

        gzipped = best_of(5, lambda: get("gzip"))
        plain = best_of(5, lambda: get("identity"))
        snapshot = best_of(3, client.read_levels)
        conn.request("GET", "/v1/stock?shop=" + SHOP,
                     headers={"Authorization": f"Bearer {service.token}"})
        document = json.loads(conn.getresponse().read())
        etag = client.read_levels().version
        not_modified = best_of(20, lambda: client.read_levels(etag))
        client.close()
        conn.close()
    finally:
        service.stop()
    encode = best_of(5, lambda: json.dumps(document, ensure_ascii=False,
                                           separators=(",", ":")).encode())
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    squeeze = best_of(5, lambda: gzip.compress(data, compresslevel=6, mtime=0))
    return [
        f"Sync of {size:,} levels (load average {load_average()})",
        "",
        "| what | time | bytes |",
        "|---|---:|---:|",
        f"| GET /v1/stock, gzip | {milliseconds(gzipped)} | {sizes['gzip']:,} |",
        f"| GET /v1/stock, plain | {milliseconds(plain)} | {sizes['identity']:,} |",
        f"| xlstock's read_levels (GET, inflate, check every item) | {milliseconds(snapshot)} "
        "| |",
        f"| GET /v1/stock with the current If-None-Match (304) | {milliseconds(not_modified)} "
        "| 0 |",
        f"| floor: json.dumps of the document | {milliseconds(encode)} | {len(data):,} |",
        f"| floor: json.dumps + gzip (level 6) | {milliseconds(encode + squeeze)} "
        f"| {len(gzip.compress(data, 6, mtime=0)):,} |",
    ]


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def publishes(service: Service, rounds: int, skus: list[str], *,
              whole_shop: bool) -> tuple[int, int, int, list[float]]:
    """``rounds`` publishes of +1 on each of ``skus`` through the real client, each
    planned on a fresh read of the levels and re-planned, on a 412, on the levels it
    names (at most 3 tries, as ``xlstock publish`` does); with ``whole_shop``, sent with
    the read's version as If-Match and re-planned on a new read (protocol 1). Returns
    successes, first-try successes, tries, and each successful publish's time."""
    client = HttpStockServiceClient(service.url, SHOP, service.token, deadline=120)
    succeeded = first_try = tries = 0
    took: list[float] = []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            snapshot = client.read_levels()
            live = {sku: snapshot.items[sku].qty for sku in skus}
            version = snapshot.version
            for attempt in range(1, 4):
                tries += 1
                body = stockfile.dumps(SHOP, {sku: live[sku] + 1 for sku in skus}, live)
                try:
                    client.publish(body, uuid.uuid4().hex,
                                   if_match=version if whole_shop else None)
                except StaleVersion as stale:
                    moved = getattr(stale, "moved", None)
                    if moved and not whole_shop:
                        live.update(moved)
                    else:
                        fresh = client.read_levels()
                        live = {sku: fresh.items[sku].qty for sku in skus}
                        version = fresh.version
                    continue
                succeeded += 1
                first_try += attempt == 1
                took.append(time.perf_counter() - started)
                break
    finally:
        client.close()
    return succeeded, first_try, tries, took


def bench_publish(folder: Path, size: int, rounds: int) -> list[str]:
    service = Service(folder, size, "publish")
    rows = []
    try:
        published = [f"SKU-{n:06d}" for n in range(10)]

        def others(rng: random.Random) -> str:
            return f"SKU-{rng.randrange(10, size):06d}"

        def some_published(rng: random.Random) -> str:
            return rng.choice(published) if rng.random() < 0.05 else others(rng)

        def all_published(rng: random.Random) -> str:
            return rng.choice(published)

        cases = [
            ("other SKUs", others, False),
            ("other SKUs, and 1 order in 20 a SKU being published", some_published, False),
            ("only the SKUs being published (the extreme)", all_published, False),
            ("other SKUs, publishing with If-Match (protocol 1)", others, True),
        ]
        for name, pick, whole_shop in cases:
            stop = threading.Event()
            sold: list[list[float]] = []

            def sell(pick: Callable[[random.Random], str] = pick,
                     stop: threading.Event = stop, sold: list[list[float]] = sold) -> None:
                sold.append(order_load(service, 8, 600, pick, stop))

            load = threading.Thread(target=sell)
            load.start()
            time.sleep(1.0)
            started = time.monotonic()
            done, first, tries, took = publishes(service, rounds, published,
                                                 whole_shop=whole_shop)
            elapsed = time.monotonic() - started
            stop.set()
            load.join()
            rows.append((name, done, first, tries,
                         percentile(took, 0.5) if took else float("nan"),
                         len(sold[0]) / (elapsed + 1.0)))
    finally:
        service.stop()
    lines = [
        f"Publish of 10 SKUs while 8 clients order ({size:,} SKUs; load average "
        f"{load_average()})",
        "",
        "| the clients buy | published | on the first try | tries | p50 publish "
        "(read + plan + PUT) | orders/s meanwhile |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, done, first, tries, p50, rate in rows:
        lines.append(f"| {name} | {done}/{rounds} | {first} | {tries} | {p50 * 1000:,.0f} ms "
                     f"| {rate:,.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--publishes", type=int, default=10)
    parser.add_argument("--parts", nargs="+", choices=["orders", "sync", "publish"],
                        default=["orders", "sync", "publish"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xlstock-bench-service-") as tmp:
        folder = Path(tmp)
        if "orders" in args.parts:
            print("\n".join(bench_orders(folder, args.sizes, args.clients, args.seconds)),
                  "\n", flush=True)
        if "sync" in args.parts:
            print("\n".join(bench_sync(folder, max(args.sizes))), "\n", flush=True)
        if "publish" in args.parts:
            print("\n".join(bench_publish(folder, max(args.sizes), args.publishes)))


if __name__ == "__main__":
    main()
