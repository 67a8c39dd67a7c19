"""Sync, Preview and Publish of the daily loop, this checkout against another one, on one
service and one database restored before each round (issue 22, point 2).

    python bench/bench_sync_changes.py [--skus 100000] [--rounds 3] [--before DIR]

``--before DIR``: a copy of another version's source tree to compare with (for example
``git archive <commit> | tar -x -C DIR``); its commands run with ``PYTHONPATH=DIR``. Both
run against this checkout's ``xlstock serve``, whose whole stock document is the one an
older service sends, on a copy of one database (a catalogue of N products, one Sync,
then 300 storefront orders), restored before each round; the rounds alternate which
version goes first. Per round and version, on a copy of the workbook that first Sync
made: ``validate`` (the sheet cache warm, as after the command before), then timed:
``sync`` (the Sync after the orders), ``preview`` after 1% of the rows were edited (the
edits of ``bench_workbook.py``, patched into the XML: the sheet is read from the file)
and ``publish``.

For each command: the best wall time, the best CPU time (user + system, from
``/usr/bin/time``: on a machine shared with other work the wall time says more about the
others than about the command) and the largest peak memory, each beside the floor of the
zip copy (``bench_workbook.zip_copy`` of the final workbook, wall and CPU).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import bench_workbook as bench

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("sync", "preview", "publish")
ORDERS = 300


def timed(env: dict[str, str], folder: Path, *args: str) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak MiB of ``python -m xlstock ARGS``."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %U %S %M", sys.executable, "-m", "xlstock", *args],
        env=env, cwd=folder, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"xlstock {' '.join(args)}: exit {done.returncode}\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    line = [text for text in done.stderr.splitlines() if text.startswith("TIME ")][-1].split()
    return float(line[1]), float(line[2]) + float(line[3]), int(line[4]) / 1024


def point_at(workbook: Path, url: str) -> None:
    """The workbook's Settings name this run's service (its port changes per start)."""
    staging = workbook.with_suffix(".staging")
    with zipfile.ZipFile(workbook) as source, \
            zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = re.sub(rb"http://127\.0\.0\.1:\d+", url.encode(), source.read(info))
            target.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    os.replace(staging, workbook)


def restore(saved: Path, db: Path) -> None:
    for extra in ("", "-wal", "-shm"):
        source, target = Path(f"{saved}{extra}"), Path(f"{db}{extra}")
        if source.exists():
            shutil.copy(source, target)
        elif target.exists():
            target.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another version's source tree")
    options = parser.parse_args(argv)
    trees = {"this": REPO, **({"before": options.before.resolve()} if options.before else {})}
    with tempfile.TemporaryDirectory(prefix="xlstock-bench-changes-") as temporary:
        folder = Path(temporary)
        cache = folder / "cache"
        cache.mkdir(mode=0o700)
        base_env = bench.child_env()
        base_env["XLSTOCK_CACHE_DIR"] = str(cache)
        bench.write_catalogue(folder / "catalogue.csv", options.skus)
        db, shop = folder / "shop.db", "https://changes.example"
        token = bench.checked("shop add", bench.run_measured(
            bench.xlstock("shop", "add", shop, "--db", str(db), "--catalogue",
                          str(folder / "catalogue.csv")),
            env=base_env, cwd=folder, timeout=1800)).output.strip().splitlines()[-1]

        def env(tree: str) -> dict[str, str]:
            return {**base_env, "XLSTOCK_TOKEN": token, "PYTHONPATH": str(trees[tree])}

        first = folder / "synced.xlsx"
        with bench.stock_service(folder, db) as url:
            bench.checked("new", bench.run_measured(
                bench.xlstock("new", str(first), "--service", url, "--shop", shop),
                env=env("this"), cwd=folder, timeout=1800))
            timed(env("this"), folder, "sync", str(first))
            client = bench.ShopClient(url, shop, token)
            client.place_orders(client.levels(), ORDERS, random.Random(7))
        saved = folder / "after-orders.db"
        restore(db, saved)
        edits = bench.choose_edits(options.skus, random.Random(11))
        runs: dict[str, dict[str, list[tuple[float, float, float]]]] = {
            tree: {command: [] for command in COMMANDS} for tree in trees}
        floors: list[tuple[float, float]] = []
        for number in range(options.rounds):
            order = list(trees) if number % 2 == 0 else list(reversed(trees))
            for tree in order:
                restore(saved, db)
                with bench.stock_service(folder, db) as url:
                    workbook = folder / f"{tree}-{number}.xlsx"
                    shutil.copy(first, workbook)
                    point_at(workbook, url)
                    timed(env(tree), folder, "validate", str(workbook))
                    runs[tree]["sync"].append(timed(env(tree), folder, "sync", str(workbook)))
                    bench.edit_stock(workbook, edits)
                    for command in ("preview", "publish"):
                        runs[tree][command].append(
                            timed(env(tree), folder, command, str(workbook)))
                wall, cpu = time.perf_counter(), time.process_time()
                bench.zip_copy(workbook, folder / "copy.xlsx")
                floors.append((time.perf_counter() - wall, time.process_time() - cpu))
                print(f"round {number + 1} {tree}: " + ", ".join(
                    f"{c} {runs[tree][c][-1][0]:.2f} s ({runs[tree][c][-1][1]:.2f} s CPU)"
                    for c in COMMANDS), file=sys.stderr, flush=True)
    zip_wall, zip_cpu = min(f[0] for f in floors), min(f[1] for f in floors)
    print(f"{options.skus:,} SKUs, {options.rounds} round(s), {ORDERS} orders, 1% edited; "
          f"zip copy {zip_wall:.3f} s ({zip_cpu:.3f} s CPU); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'command':<8} {'tree':<7} {'wall s':>7} {'x zip':>6} {'CPU s':>6} {'x zip':>6} "
          f"{'peak MB':>7}")
    for command in COMMANDS:
        for tree in trees:
            found = runs[tree][command]
            wall = min(run[0] for run in found)
            cpu = min(run[1] for run in found)
            print(f"{command:<8} {tree:<7} {wall:7.2f} {wall / zip_wall:6.1f} {cpu:6.2f} "
                  f"{cpu / zip_cpu:6.1f} {max(run[2] for run in found):7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
