"""Benchmark the stock service as a busy shop uses it, next to floors measured in the
same run.

Run: ``python bench/bench_service.py`` (defaults: ``--sizes 1000 100000 --clients 8 32
--seconds 10 --publishes 10 --parts orders sync publish --workers 1``). Needs the
``server`` extra. ``--workers 1 2`` measures the orders with ``xlstock serve --workers 1``,
then ``--workers 2``. Everything runs on loopback: the service is a real ``xlstock serve`` process;
the storefront clients are threads of this process, each with a keep-alive
connection, placing one-line orders with an Idempotency-Key as ``xlstock order`` does.

It prints three tables:

1. **Orders**: orders per second with p50 and p99 latency for each catalogue size,
   number of workers and number of clients, and the CPU per order of the service (all
   its processes) and of the clients (this process): on a machine of few cores, what
   the clients take is not the service's. Next to them, the SQLite floor:
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
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadgen import (  # noqa: E402
    Serve,
    catalogue,
    load_average,
    order_statements,
    percentile,
    place_orders,
    service_cpu,
    sku_of,
)

from xlstock import stockfile  # noqa: E402
from xlstock.errors import StaleVersion  # noqa: E402
from xlstock.remote import HttpStockServiceClient  # noqa: E402
from xlstock.server.storage import StockStore  # noqa: E402

SHOP = "https://bench.example"


class Service(Serve):
    """``xlstock serve [--workers N]`` on a free loopback port, over a database holding
    one shop."""

    def __init__(self, folder: Path, size: int, name: str, workers: int = 1) -> None:
        self.db = folder / f"{name}-{size}.db"
        store = StockStore(self.db)
        token = store.add_shop(SHOP, catalogue(size))
        store.close()
        super().__init__(self.db, folder / f"{name}-{size}.log", token=token,
                         workers=workers)


def order_load(
    service: Serve, clients: int, seconds: float, pick: Callable[[random.Random], str],
    stop: threading.Event | None = None,
) -> list[float]:
    """Latencies of every order ``clients`` threads placed in ``seconds`` (or until
    ``stop``) in the bench shop; each order is one unit of the SKU ``pick`` chooses."""
    return place_orders([service.port], clients, seconds,
                        lambda rng: (SHOP, service.token, pick(rng)), stop)


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
            order_statements(conn, SHOP, shop_id, sku_of(rng.randrange(size)))
        conn.execute("COMMIT")
    rate = (orders // per_commit * per_commit) / (time.perf_counter() - started)
    conn.close()
    return rate


def bench_orders(folder: Path, sizes: list[int], clients: list[int], seconds: float,
                 workers: list[int]) -> list[str]:
    lines = [
        "| SKUs | workers | clients | orders/s | p50 | p99 | service CPU per order "
        "| clients' CPU per order | SQLite floor, 1 order per commit "
        "| SQLite floor, 50 per commit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        measured = []
        for count_of_workers in workers:
            service = Service(folder, size, f"orders-w{count_of_workers}", count_of_workers)

            def anywhere(rng: random.Random, size: int = size) -> str:
                return f"SKU-{rng.randrange(size):06d}"

            try:
                order_load(service, 4, 1.0, anywhere)  # warm up
                for count in clients:
                    cpu = service_cpu(service.process.pid)
                    ours = time.process_time()
                    started = time.monotonic()
                    latencies = order_load(service, count, seconds, anywhere)
                    elapsed = time.monotonic() - started
                    cpu_per_order = (service_cpu(service.process.pid) - cpu) / len(latencies)
                    clients_cpu = (time.process_time() - ours) / len(latencies)
                    measured.append((count_of_workers, count, len(latencies) / elapsed,
                                     percentile(latencies, 0.5), percentile(latencies, 0.99),
                                     cpu_per_order, clients_cpu))
            finally:
                service.stop()
        alone = sqlite_floor(service.db, 2000, 1)
        grouped = sqlite_floor(service.db, 20000, 50)
        for count_of_workers, count, rate, p50, p99, cpu_per_order, clients_cpu in measured:
            lines.append(f"| {size:,} | {count_of_workers} | {count} | {rate:,.0f} "
                         f"| {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms "
                         f"| {cpu_per_order * 1000:.2f} ms | {clients_cpu * 1000:.2f} ms "
                         f"| {alone:,.0f}/s | {grouped:,.0f}/s |")
    return [f"Orders (load average {load_average()}; {os.cpu_count()} cores)", ""] + lines


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
                    moved = stale.moved
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
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="the orders table for each of these serve --workers")
    parser.add_argument("--publishes", type=int, default=10)
    parser.add_argument("--parts", nargs="+", choices=["orders", "sync", "publish"],
                        default=["orders", "sync", "publish"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xlstock-bench-service-") as tmp:
        folder = Path(tmp)
        if "orders" in args.parts:
            print("\n".join(bench_orders(folder, args.sizes, args.clients, args.seconds,
                                          args.workers)),
                  "\n", flush=True)
        if "sync" in args.parts:
            print("\n".join(bench_sync(folder, max(args.sizes))), "\n", flush=True)
        if "publish" in args.parts:
            print("\n".join(bench_publish(folder, max(args.sizes), args.publishes)))


if __name__ == "__main__":
    main()
