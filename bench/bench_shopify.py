"""Benchmark xlstock on a Shopify store: Sync and Publish through the Shopify connector
against the stand-in of Shopify's Admin API (tests/support/shopify_standin.py), with
Shopify's published cost buckets, each figure next to its floor.

Run: ``python bench/bench_shopify.py`` (defaults: ``--variants 100000 --paged 5000
--changes 1000``). Needs the ``test`` extra (graphql-core, for the stand-in).

The stand-in runs in a process of its own, so that what this process spends is
xlstock's own time (CPU seconds of the command, the workbook included; the connector's
part apart). Shopify's time to answer is the stand-in's and is not counted.

Rows:

1. **Sync, bulk**: the default path for a store above 400 variants: one bulk operation,
   its JSONL parsed as it streams, written into a new workbook.
2. **Sync, paged**, on the Standard plan (100 points/s) and on Shopify Plus (1,000
   points/s): what paging costs, to show why bulk is the default above 400 variants.
   The waits are virtual, so the run stays short: the connector's sleep moves a clock
   that the stand-in shares (real time plus every second slept), as if it had slept;
   every other second is real. The floor is the points Shopify charged beyond a full
   bucket, divided by the restore rate: no client can read those variants faster by
   paging.
3. **Publish** of ``--changes`` rows (half deliveries, half counts) on the bulk-synced
   workbook: the calls (250 a call), the time waited for the bucket, xlstock's own time,
   and the floor (points needed beyond a full bucket / restore rate).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openpyxl  # noqa: E402

from tests.support.shopify_standin import PLUS, STANDARD, Plan  # noqa: E402
from xlstock import actions  # noqa: E402
from xlstock.shops.shopify import ShopifyConnector  # noqa: E402
from xlstock.workbook.template import build_workbook  # noqa: E402
from xlstock.workbook.xlsx_file import XlsxFile  # noqa: E402

SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.support.shopify_standin import ShopifyStandIn
def clock():
    with open({slept!r}) as slept:
        return time.monotonic() + float(slept.read() or 0)
store = ShopifyStandIn(bucket_size={bucket}, restore_rate={rate}, clock=clock)
for start in range(0, {variants}, 1000):
    store.add_product(f"P{{start}}", [{{"sku": f"SKU-{{n:06d}}", "title": f"V{{n}}",
                                        "qty": 10 + n % 50}}
                                       for n in range(start, min(start + 1000, {variants}))])
print(store.url, store.token, flush=True)
sys.stdin.read()
"""


class StandIn:
    """The stand-in in a process of its own."""

    def __init__(self, variants: int, bucket: float, rate: float, clock: VirtualClock) -> None:
        code = SERVER.format(root=str(ROOT), variants=variants, bucket=bucket, rate=rate,
                             slept=str(clock.path))
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url, self.token = self.process.stdout.readline().split()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


class VirtualClock:
    """Real time plus the seconds "slept", shared with the stand-in through a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.slept = 0.0
        path.write_text("0")

    def now(self) -> float:
        return time.monotonic() + self.slept

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.path.write_text(repr(self.slept))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sync(url: str, token: str, path: Path, *, bulk_above: int, clock: VirtualClock
         ) -> tuple[ShopifyConnector, float, float, float]:
    """A first sync into a new workbook: the connector, seconds (waits included, as
    Shopify's clock counts them), CPU seconds of the whole command and of the
    connector's read alone."""
    build_workbook(path, shop_url=url, service_url=url, platform="Shopify")
    connector = ShopifyConnector(url, token=token, bulk_above=bulk_above,
                                 sleep=clock.sleep, clock=clock.now)
    read = connector.read_levels
    read_cpu = 0.0

    def timed_read(*args: Any, **kwargs: Any) -> Any:
        nonlocal read_cpu
        cpu0 = cpu()
        try:
            return read(*args, **kwargs)
        finally:
            read_cpu += cpu() - cpu0

    connector.read_levels = timed_read  # type: ignore[method-assign]
    started, cpu0 = clock.now(), cpu()
    with XlsxFile.open(path) as book:
        actions.sync(book, connector, allow_mass_change=True)
    wall, spent = clock.now() - started, cpu() - cpu0
    return connector, wall, spent, read_cpu


def edit(path: Path, changes: int) -> None:
    book = openpyxl.load_workbook(path)
    sheet = book["Stock"]
    for row in range(2, changes + 2):
        column = 5 if row % 2 else 6  # Received, New level
        sheet.cell(row=row, column=column, value=3 if column == 5 else 7)
    book.save(path)


def floor(points: float, plan: Plan) -> float:
    """Seconds no client can beat: the points charged beyond a full bucket, restored."""
    return max(0.0, points - plan.bucket_size) / plan.restore_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--paged", type=int, default=5_000)
    parser.add_argument("--changes", type=int, default=1_000)
    args = parser.parse_args()
    os.environ.setdefault("XLSTOCK_CACHE_DIR", "off")
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as folder:
        clock = VirtualClock(Path(folder) / "slept")
        for plan in (STANDARD, PLUS):
            store = StandIn(args.variants, plan.bucket_size, plan.restore_rate, clock)
            try:
                path = Path(folder) / f"bulk-{plan.name}.xlsx"
                connector, wall, spent, read_cpu = sync(store.url, store.token, path,
                                                        bulk_above=400, clock=clock)
                rows.append((f"sync {args.variants:,} variants, bulk ({plan.name})",
                             f"{connector.requests}", f"{connector.points:,.0f}",
                             f"{connector.waited:.1f} s",
                             f"{spent:.2f} s (read {read_cpu:.2f} s)", f"{wall:.2f} s",
                             f"{floor(connector.points, plan):.1f} s"))
                edit(path, args.changes)
                connector.requests, connector.points, connector.waited = 0, 0.0, 0.0
                started, cpu0 = clock.now(), cpu()
                with XlsxFile.open(path) as book:
                    actions.publish(book, connector, allow_mass_change=True)
                wall, spent = clock.now() - started, cpu() - cpu0
                rows.append((f"publish {args.changes:,} changes ({plan.name})",
                             f"{connector.requests}", f"{connector.points:,.0f}",
                             f"{connector.waited:.1f} s", f"{spent:.2f} s", f"{wall:.2f} s",
                             f"{floor(connector.points, plan):.1f} s"))
            finally:
                store.close()
            store = StandIn(args.paged, plan.bucket_size, plan.restore_rate, clock)
            try:
                path = Path(folder) / f"paged-{plan.name}.xlsx"
                connector, shopify_wall, spent, read_cpu = sync(
                    store.url, store.token, path, bulk_above=10**9, clock=clock)
                rows.append((f"sync {args.paged:,} variants, paged ({plan.name})",
                             f"{connector.requests}", f"{connector.points:,.0f}",
                             f"{connector.waited:.1f} s",
                             f"{spent:.2f} s (read {read_cpu:.2f} s)",
                             f"{shopify_wall:.1f} s",
                             f"{floor(connector.points, plan):.1f} s"))
            finally:
                store.close()
    headers = ("what", "requests", "points", "waited for the bucket", "xlstock's own CPU",
               "total", "floor (points beyond a full bucket / rate)")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for line in [headers, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)))
    print(f"\nload average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; paged rows: "
          "waits are virtual (a clock shared with the stand-in), counted in the totals")


if __name__ == "__main__":
    main()
