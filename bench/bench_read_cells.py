"""CPU seconds of ``sheetxml.read_cells`` (the fast read of sheet Stock) on a sheet
made in memory, best of ``--repeat`` (issue 23 point 2: a split of the reader into
steps must keep it as fast; compare a run before and after, in the same hour).

    python bench/bench_read_cells.py [--rows 100000] [--repeat 7] [--form stock|plain|rare]
                                     [--columns 1,4,5,6,7,8,9]

Forms of a row: ``stock`` as xlstock's Stock sheet (SKU, product and variant inline
strings, a level, Received and New level empty but styled, a Change formula, Low at,
Status); ``plain`` inline strings and whole numbers only; ``rare`` two empty styled
cells, a shared string and a date-formatted number in each row. ``--columns``: only
those columns read (``sheetxml.read_some_cells``, as Preview and Publish read sheet
Stock: ``1,4,5,6,7,8,9`` leaves out the product names).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from xlstock.workbook import sheetxml

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def row_xml(form: str, r: int) -> str:
    if form == "stock":
        return (f'<row r="{r}" spans="1:9"><c r="A{r}" s="3" t="inlineStr"><is><t>TEE-{r:06d}-RD'
                f'</t></is></c><c r="B{r}" t="inlineStr"><is><t>T-shirt {r}</t></is></c>'
                f'<c r="C{r}" t="inlineStr"><is><t>Red / M</t></is></c><c r="D{r}"><v>{r % 500}'
                f'</v></c><c r="E{r}" s="2"/><c r="F{r}" s="2"/><c r="G{r}" s="4"><f>IF(F{r}="",'
                f'E{r},F{r}-D{r})</f><v>0</v></c><c r="H{r}"><v>5</v></c><c r="I{r}" '
                f't="inlineStr"><is><t>ok</t></is></c></row>')
    if form == "plain":
        return (f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{r:07d}</t></is></c>'
                f'<c r="B{r}" t="inlineStr"><is><t>T-shirt &amp; co {r}</t></is></c>'
                f'<c r="C{r}"><v>{r % 3}</v></c><c r="D{r}"><v>{r % 500}</v></c></row>')
    return (f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{r:07d}</t></is></c>'
            f'<c r="B{r}" t="s"><v>{r % 3}</v></c><c r="C{r}"><v>{r % 500}</v></c>'
            f'<c r="D{r}" s="2"/><c r="E{r}" s="2"/><c r="F{r}" s="5"><v>46000.5</v></c></row>')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--form", choices=("stock", "plain", "rare"), default="stock")
    parser.add_argument("--columns", default="", help="read only these columns (1-based)")
    args = parser.parse_args()
    columns = [int(c) for c in args.columns.split(",")] if args.columns else None
    body = "".join(row_xml(args.form, r) for r in range(2, args.rows + 2))
    data = (f'<worksheet xmlns="{NS}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>SKU'
            f"</t></is></c></row>{body}</sheetData></worksheet>").encode()
    sheet = sheetxml.Sheet.scan(data)
    start = dt.datetime(1899, 12, 30)
    context = sheetxml.Context(lambda: ["a", "b", "c"], frozenset({"5"}),
                               lambda serial: start + dt.timedelta(days=serial))
    times = []
    for _ in range(args.repeat):
        began = time.process_time()
        if columns is None:
            grid = sheetxml.read_cells(sheet, context, 1_048_576, 16_384)
        else:
            grid = sheetxml.read_some_cells(sheet, context, 1_048_576, 16_384, columns).grid
        times.append(time.process_time() - began)
    assert len(grid) == args.rows + 1
    which = "read_cells" if columns is None else f"read_some_cells {args.columns}"
    print(f"{which}, {args.rows:,} rows ({args.form}, {len(data) / 1e6:.1f} MB): "
          f"best {min(times):.3f} s CPU, median {sorted(times)[len(times) // 2]:.3f} s "
          f"of {args.repeat}")


if __name__ == "__main__":
    main()
