"""What xlstock's safe opening costs over bare openpyxl, and what defusedxml costs.

    python bench/bench_open.py [--rows 5000 50000] [--repeat 3] [--what openpyxl adapter safety]

For each size it builds a Stock sheet like the template's (SKU as text, product,
variant, levels, a merchant column) and times, each in a fresh interpreter (openpyxl
picks its XML parser when imported, from ``OPENPYXL_DEFUSEDXML``), the best of
``--repeat`` runs of:

- ``openpyxl``: ``load_workbook`` + every value of sheet Stock: the floor;
- ``adapter``: ``OpenpyxlWorkbook.open`` + ``read_sheet("Stock")``: the pre-parse
  safety checks, the lock, the lossy-part check, the sparse read;
- ``safety``: ``safety.check_file`` alone (zip directory, DTD scan of every part);

with openpyxl parsing through defusedxml (its default whenever defusedxml is installed,
as it is with xlstock) and without (``OPENPYXL_DEFUSEDXML=False``). Ratios are
against bare openpyxl with defusedxml.

Measured on the 2-core development machine (Python 3.11.7, openpyxl 3.1.5, expat 2.5.0,
other jobs running, so +-15%)::

       rows what       defusedxml  seconds  ratio
       5000 openpyxl   on            0.654   1.00
       5000 openpyxl   off           0.439   0.67
       5000 adapter    on            0.554   0.85
       5000 adapter    off           0.497   0.76
       5000 safety     on            0.000   0.00
      50000 openpyxl   on            7.078   1.00
      50000 openpyxl   off           5.852   0.83
      50000 adapter    on            5.893   0.83
      50000 adapter    off           5.308   0.75
      50000 safety     on            0.001   0.00

The safety checks cost about a millisecond; the adapter's sparse read is cheaper than
openpyxl's ``iter_rows``, which more than pays for them. defusedxml costs 10-30% of
the parse; the DTD check refuses everything it guards against, so it could be turned
off, but it stays on as a second line (xlstock.workbook.xlsm needs the package anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = r"""
import json, sys, time
mode, path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
import openpyxl
best = float("inf")
for _ in range(repeat):
    start = time.perf_counter()
    if mode == "openpyxl":
        wb = openpyxl.load_workbook(path)
        rows = [list(r) for r in wb["Stock"].iter_rows(values_only=True)]
    elif mode == "adapter":
        from xlstock.workbook.openpyxl_adapter import OpenpyxlWorkbook
        with OpenpyxlWorkbook.open(path) as book:
            rows = book.read_sheet("Stock")
    elif mode == "safety":
        from xlstock.workbook import safety
        safety.check_file(path)
        rows = []
    best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best, "defusedxml": openpyxl.DEFUSEDXML, "rows": len(rows)}))
"""


def build(path: Path, rows: int) -> None:
    """A Stock sheet of ``rows`` products, like a synced template."""
    from openpyxl import Workbook

    from xlstock.workbook import layout

    rnd = random.Random(rows)
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws.append([*layout.STOCK_HEADERS, "Supplier"])
    for i in range(rows):
        ws.append([
            f"{i:06d}", f"Product {i} {rnd.choice(['tee', 'mug', 'cap', 'sock'])}",
            rnd.choice(["Red / XL", "Blue / M", ""]), rnd.randint(0, 500),
            rnd.choice([None, None, None, 5]), None, None, rnd.choice([None, 3, 10]), "ok",
            rnd.choice(["Acme", "Globex", "Initech"]),
        ])
    wb.save(path)


def measure(mode: str, path: Path, repeat: int, defused: bool) -> dict[str, float]:
    env = dict(os.environ, OPENPYXL_DEFUSEDXML="True" if defused else "False")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(path), str(repeat)],
        env=env, capture_output=True, text=True, check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    assert bool(result["defusedxml"]) == defused
    return result


def main() -> int:
    """Run the benchmark and print a table of seconds and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--what", nargs="+", default=["openpyxl", "adapter", "safety"],
                        choices=["openpyxl", "adapter", "safety"])
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, best of {args.repeat}; ratio vs bare openpyxl"
          " (defusedxml on)")
    print(f"{'rows':>7} {'what':<10} {'defusedxml':<10} {'seconds':>8} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            path = Path(folder) / f"stock-{rows}.xlsx"
            build(path, rows)
            floor = None
            for mode in args.what:
                for defused in (True, False):
                    if mode == "safety" and not defused:
                        continue  # the safety checks never use openpyxl's parser
                    result = measure(mode, path, args.repeat, defused)
                    seconds = result["seconds"]
                    if floor is None:
                        floor = seconds
                    print(f"{rows:>7} {mode:<10} {'on' if defused else 'off':<10} "
                          f"{seconds:>8.3f} {seconds / floor:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - started:.0f} s")
    raise SystemExit(code)
