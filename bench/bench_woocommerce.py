"""Benchmark xlstock on a WooCommerce shop: Sync and Publish through the WooCommerce
connector against the stand-in of WooCommerce's REST API (tests/support/
woocommerce_standin.py), with the number of requests and the time per request beside
xlstock's own time.

Run: ``python bench/bench_woocommerce.py`` (defaults: ``--sizes 10000 100000 --changes
1000``). The stand-in runs in a process of its own, so that what this process spends
is xlstock's own time (CPU seconds of the command, the workbook included; the
connector's read apart).

Rows: a first Sync of each size into a new workbook (the floor: ``ceil(N / 100)`` pages
of products, WooCommerce's largest page, plus the stock-management setting), and a
Publish of ``--changes`` rows on the largest (half deliveries, half counts: batches of
100; each batch is re-read first and the orders are read around counted batches). The
last column of the publish is the window in which a sale can still be overwritten: from
a batch's re-read to its written answer, the longest and the median.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openpyxl  # noqa: E402

from xlstock import actions  # noqa: E402
from xlstock.shops.woocommerce import WooCommerceConnector  # noqa: E402
from xlstock.workbook.template import build_workbook  # noqa: E402
from xlstock.workbook.xlsx_file import XlsxFile  # noqa: E402

SERVER = """
import sys
sys.path.insert(0, {root!r})
from tests.support.woocommerce_standin import WooCommerceStandIn
shop = WooCommerceStandIn()
for n in range({size}):
    shop.add_simple(f"Product {{n}}", f"SKU-{{n:06d}}", 10 + n % 50)
print(shop.url, shop.key + ":" + shop.secret, flush=True)
sys.stdin.read()
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--changes", type=int, default=1_000)
    args = parser.parse_args()
    os.environ.setdefault("XLSTOCK_CACHE_DIR", "off")
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            server = subprocess.Popen(
                [sys.executable, "-c", SERVER.format(root=str(ROOT), size=size)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert server.stdout is not None and server.stdin is not None
            url, credential = server.stdout.readline().split()
            try:
                path = Path(folder) / f"woo-{size}.xlsx"
                build_workbook(path, shop_url=url, service_url=url, platform="WooCommerce")
                connector = WooCommerceConnector(url, credential=credential)
                read_cpu = 0.0
                read = connector.read_levels

                def timed(*a: Any, _read: Any = read, **k: Any) -> Any:
                    nonlocal read_cpu
                    start = cpu()
                    try:
                        return _read(*a, **k)
                    finally:
                        read_cpu += cpu() - start

                connector.read_levels = timed  # type: ignore[method-assign]
                started, cpu0 = time.perf_counter(), cpu()
                with XlsxFile.open(path) as book:
                    actions.sync(book, connector, allow_mass_change=True)
                wall, spent = time.perf_counter() - started, cpu() - cpu0
                floor = math.ceil(size / 100) + 1
                rows.append((f"sync {size:,} products", f"{connector.requests} (floor {floor})",
                             f"{1000 * connector.request_seconds / connector.requests:.0f} ms",
                             f"{spent:.2f} s (read {read_cpu:.2f} s)", f"{wall:.2f} s", ""))
                if size != max(args.sizes):
                    continue
                book_ = openpyxl.load_workbook(path)
                sheet = book_["Stock"]
                for row in range(2, args.changes + 2):
                    sheet.cell(row=row, column=5 if row % 2 else 6, value=3 if row % 2 else 7)
                book_.save(path)
                connector.requests, connector.request_seconds = 0, 0.0
                started, cpu0 = time.perf_counter(), cpu()
                with XlsxFile.open(path) as book:
                    actions.publish(book, connector, allow_mass_change=True)
                wall, spent = time.perf_counter() - started, cpu() - cpu0
                windows = connector.windows
                rows.append((f"publish {args.changes:,} changes", f"{connector.requests}",
                             f"{1000 * connector.request_seconds / connector.requests:.0f} ms",
                             f"{spent:.2f} s", f"{wall:.2f} s",
                             f"{1000 * max(windows):.0f} ms longest, "
                             f"{1000 * statistics.median(windows):.0f} ms median"
                             if windows else ""))
            finally:
                server.stdin.close()
                server.wait(timeout=60)
    headers = ("what", "requests", "per request", "xlstock's own CPU", "total",
               "window a sale can be overwritten in")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for line in [headers, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)))
    print(f"\nload average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
