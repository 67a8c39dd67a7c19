"""Orders per second at 100,000 SKUs, on SQLite and on PostgreSQL, with one and with two
``xlstock serve`` instances on one database, side by side in one run, next to floors.

Run: ``python bench/bench_postgres.py`` (defaults: ``--size 100000 --clients 16
--seconds 10``). Needs the ``server`` and ``postgres`` extras and PostgreSQL's programs
(Debian: ``apt-get install postgresql``): the run starts a throw-away PostgreSQL server
in a temporary folder (``xlstock/server/pgcluster.py``), **durable** (``fsync`` and
``synchronous_commit`` on, as SQLite's ``synchronous = FULL``), and removes it at the
end.

Every instance is a real ``xlstock serve`` process on loopback; the storefront clients
are threads of this process with keep-alive connections, one-line orders of one unit
of a random SKU with an Idempotency-Key, spread evenly over the instances. Two SQLite
instances share one file on one machine (the only way SQLite has); two PostgreSQL
instances share one database.

A second table spreads the same 100,000 SKUs over ``--shops`` shops (20 by default),
each order for a random one: what a platform of many shops asks of it.

The floors are each database alone running an order's statements (shop row, key,
level, version, change, order and key rows, level and shop updates), one order per
commit: SQLite on the benchmark's file, PostgreSQL through psycopg with the shop's row
locked (``FOR NO KEY UPDATE``) as the service does. All orders here are one shop's, so on
PostgreSQL they run one after the other on that shop's row lock, each waiting for the
last one's commit; orders of different shops do not wait for one another.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_service import SHOP, order_load, sqlite_floor  # noqa: E402
from loadgen import (  # noqa: E402
    Serve,
    catalogue,
    load_average,
    order_statements,
    percentile,
    place_orders,
    process_cpu,
    sku_of,
)

from xlstock.server.pgcluster import PgCluster, why_unavailable  # noqa: E402
from xlstock.server.storage import StockStore  # noqa: E402


def load(db: str, size: int) -> str:
    store = StockStore(db)
    try:
        return store.add_shop(SHOP, catalogue(size))
    finally:
        store.close()


def measure(db: str, token: str, instances: int, clients: int, seconds: float, size: int,
            folder: Path) -> tuple[float, float, float, float]:
    """orders/s, p50, p99 and service CPU per order of ``instances`` on ``db``."""
    running = [Serve(db, folder / f"serve-{n}.log", token=token) for n in range(instances)]

    def anywhere(rng: random.Random) -> str:
        return f"SKU-{rng.randrange(size):06d}"

    try:
        for instance in running:
            order_load(instance, 2, 1.0, anywhere)  # warm up
        cpu = sum(process_cpu(i.process.pid) for i in running)
        results: list[list[float]] = [[] for _ in running]
        import threading

        def drive(n: int) -> None:
            share = clients // instances + (1 if n < clients % instances else 0)
            results[n] = order_load(running[n], share, seconds, anywhere)

        started = time.monotonic()
        drivers = [threading.Thread(target=drive, args=(n,)) for n in range(instances)]
        for driver in drivers:
            driver.start()
        for driver in drivers:
            driver.join()
        elapsed = time.monotonic() - started
        latencies = [x for part in results for x in part]
        used = sum(process_cpu(i.process.pid) for i in running) - cpu
    finally:
        for instance in running:
            instance.stop()
    return (len(latencies) / elapsed, percentile(latencies, 0.5),
            percentile(latencies, 0.99), used / len(latencies))


def many_shops_load(ports: list[int], shops: list[tuple[str, str]], size: int,
                    clients: int, seconds: float) -> list[float]:
    """Latencies of the one-line orders ``clients`` threads placed in ``seconds``, each
    for a random SKU of a random shop of ``shops`` ((URL, token)), spread over ``ports``."""
    return place_orders(ports, clients, seconds, lambda rng: (
        *shops[rng.randrange(len(shops))], sku_of(rng.randrange(size))))


def measure_many_shops(db: str, count: int, size: int, instances: int, clients: int,
                       seconds: float, folder: Path) -> tuple[float, float, float]:
    """orders/s, p50 and p99 of ``instances`` on ``db`` holding ``count`` shops."""
    store = StockStore(db)
    try:
        shops = []
        for n in range(count):
            url = f"https://shop-{n:03d}.example"
            shops.append((url, store.add_shop(url, catalogue(size, variant=""))))
    finally:
        store.close()
    running = [Serve(db, folder / f"many-{n}.log") for n in range(instances)]
    try:
        ports = [instance.port for instance in running]
        many_shops_load(ports, shops, size, 2 * instances, 1.0)  # warm up
        started = time.monotonic()
        latencies = many_shops_load(ports, shops, size, clients, seconds)
        elapsed = time.monotonic() - started
    finally:
        for instance in running:
            instance.stop()
    return (len(latencies) / elapsed, percentile(latencies, 0.5),
            percentile(latencies, 0.99))


def postgres_floor(url: str, orders: int) -> float:
    """Orders per second of bare PostgreSQL (psycopg, one connection) running an order's
    statements, the shop's row locked, one order per commit."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        shop_id, size = conn.execute(
            "SELECT shops.id, COUNT(*) FROM shops JOIN products ON products.shop_id = "
            "shops.id WHERE url = %s GROUP BY shops.id", (SHOP,)).fetchone()
        rng = random.Random(7)
        started = time.perf_counter()
        for _ in range(orders):
            sku = sku_of(rng.randrange(size))
            with conn.transaction():
                order_statements(conn, SHOP, shop_id, sku, mark="%s", lock=" FOR NO KEY UPDATE")
        return orders / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--shops", type=int, default=20,
                        help="shops of the second table (the SKUs shared among them)")
    args = parser.parse_args()
    why = why_unavailable()
    if why is not None:
        raise SystemExit(f"cannot benchmark PostgreSQL: {why}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="xlstock-bench-pg-") as tmp, \
            PgCluster(durable=True) as cluster:
        folder = Path(tmp)
        sqlite_db = str(folder / "shop.db")
        postgres_db = cluster.new_database()
        for name, db in (("SQLite", sqlite_db), ("PostgreSQL", postgres_db)):
            token = load(db, args.size)
            for instances in (1, 2):
                rate, p50, p99, cpu = measure(db, token, instances, args.clients,
                                              args.seconds, args.size, folder)
                rows.append((name, instances, rate, p50, p99, cpu))
                print(f"{name}, {instances} instance(s): {rate:,.0f} orders/s", flush=True)
        floors = {"SQLite": sqlite_floor(Path(sqlite_db), 2000, 1),
                  "PostgreSQL": postgres_floor(postgres_db, 2000)}
        many = []
        for name, db in (("SQLite", str(folder / "many.db")),
                         ("PostgreSQL", cluster.new_database())):
            for instances in (1, 2):
                if instances == 1:
                    target = db
                else:  # a fresh copy of the same shops, so that both runs start alike
                    target = (str(folder / "many-2.db") if name == "SQLite"
                              else cluster.new_database())
                rate, p50, p99 = measure_many_shops(target, args.shops, args.size // args.shops,
                                                    instances, args.clients, args.seconds,
                                                    folder)
                many.append((name, instances, rate, p50, p99))
                print(f"{name}, {instances} instance(s), {args.shops} shops: {rate:,.0f} "
                      "orders/s", flush=True)
    print(f"\nOrders at {args.size:,} SKUs, {args.clients} clients, one shop "
          f"(load average {load_average()})\n")
    print("| database | instances | orders/s | p50 | p99 | service CPU per order "
          "| floor: the database alone, 1 order per commit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, instances, rate, p50, p99, cpu in rows:
        print(f"| {name} | {instances} | {rate:,.0f} | {p50 * 1000:.1f} ms "
              f"| {p99 * 1000:.1f} ms | {cpu * 1000:.2f} ms | {floors[name]:,.0f}/s |")
    print(f"\nOrders at {args.size:,} SKUs over {args.shops} shops "
          f"({args.size // args.shops:,} each), {args.clients} clients, each order for a "
          "random shop\n")
    print("| database | instances | orders/s | p50 | p99 |")
    print("|---|---:|---:|---:|---:|")
    for name, instances, rate, p50, p99 in many:
        print(f"| {name} | {instances} | {rate:,.0f} | {p50 * 1000:.1f} ms "
              f"| {p99 * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
