"""Time the pure core on large sheets: parse_rows + plan_publish, and the stock file.

Run: ``python bench/bench_planner.py`` (``--sizes 5000 50000 --repeat 5`` are the defaults).

For each size it prints rows per second and the ratio to a bare floor: a dict
comprehension doing the same arithmetic on already-clean tuples, i.e. the cost of
Python touching every row once. The ratio is what the core's checks and bookkeeping
cost on top of that. A last block times the worst case for the unknown-SKU hint
(every row edited, none known online): the hints come from lookups built once per plan,
so it stays linear (it was quadratic before those lookups).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xlstock.planner import RawRow, parse_rows, plan_publish  # noqa: E402
from xlstock.stockfile import dumps  # noqa: E402

SHOP = "https://shop.example"


def make_sheet(size: int, seed: int = 1) -> tuple[list[RawRow], dict[str, int], dict[str, int]]:
    """A realistic sheet: 80% untouched rows, 10% deliveries, 10% counts; 5% of the SKUs
    sold online since Sync; cells as openpyxl hands them (ints, some floats and text)."""
    rng = random.Random(seed)
    raw: list[RawRow] = []
    base: dict[str, int] = {}
    live: dict[str, int] = {}
    for i in range(size):
        sku = f"SKU-{i:06d}" if i % 3 else f"{i:08d}"
        b = rng.randint(0, 500)
        base[sku] = b
        live[sku] = b - rng.randint(0, min(b, 5)) if rng.random() < 0.05 else b
        kind = rng.random()
        received: Any = None
        new_level: Any = None
        if kind < 0.10:
            received = rng.choice([rng.randint(1, 50), float(rng.randint(1, 50)), " 12 "])
        elif kind < 0.20:
            new_level = rng.randint(5, 500)
        raw.append(RawRow(i + 2, sku, received, new_level))
    return raw, base, live


def core(raw: list[RawRow], base: dict[str, int], live: dict[str, int]) -> dict[str, int]:
    rows, problems = parse_rows(raw)
    plan = plan_publish(rows, base, live, problems=problems)
    if not plan.ok:
        raise SystemExit(f"benchmark sheet has problems: {plan.problems[:3]}")
    return plan.levels


def floor(
    clean: list[tuple[str, int | None, int | None]], base: dict[str, int], live: dict[str, int]
) -> dict[str, int]:
    return {
        sku: live[sku] + d if d is not None
        else n + live[sku] - base[sku] if n is not None
        else live[sku]
        for sku, d, n in clean
    }


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_size(size: int, repeat: int) -> None:
    raw, base, live = make_sheet(size)
    clean = [
        (
            str(r.sku),
            None if r.received is None else int(str(r.received).strip().split(".")[0]),
            r.new_level,
        )
        for r in raw
    ]
    levels = core(raw, base, live)
    if levels != floor(clean, base, live):
        raise SystemExit("the floor and the core disagree; the benchmark is wrong")
    t_core = best(lambda: core(raw, base, live), repeat)
    t_floor = best(lambda: floor(clean, base, live), repeat)
    planned_from = {sku: live[sku] for sku in levels}  # what a publish plans against
    t_dumps = best(lambda: dumps(SHOP, levels, planned_from), repeat)
    print(
        f"{size:>8,}  {t_core * 1000:>9.1f}  {size / t_core:>12,.0f}  "
        f"{t_floor * 1000:>9.2f}  {t_core / t_floor:>7.0f}x  {t_dumps * 1000:>9.1f}"
    )


def bench_unknown(size: int) -> None:
    raw = [RawRow(i + 2, f"NEW-{i:06d}", 1) for i in range(size)]
    live = {f"SKU-{i:06d}": 5 for i in range(size)}
    rows, problems = parse_rows(raw)
    start = time.perf_counter()
    plan = plan_publish(rows, {}, live, problems=problems)
    elapsed = time.perf_counter() - start
    assert len(plan.problems) == size
    print(f"{size:>8,}  {elapsed * 1000:>9.1f}  {size / elapsed:>12,.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs (default 5)")
    parser.add_argument("--unknown-sizes", type=int, nargs="*", default=[1_000, 2_000, 5_000],
                        help="sizes for the unknown-SKU worst case")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}; best of {args.repeat}")
    print("    rows  core (ms)        rows/s  floor (ms)  vs floor  dumps (ms)")
    for size in args.sizes:
        bench_size(size, args.repeat)
    if args.unknown_sizes:
        print("\nEvery row edited, no SKU known online (hint lookups built once per plan):")
        print("    rows  plan (ms)        rows/s")
        for size in args.unknown_sizes:
            bench_unknown(size)


if __name__ == "__main__":
    main()
