"""Planning only the rows that matter (issue 22): :func:`rows_to_plan` picks the rows
whose plan can be anything but "level stays, Change empty, Status ok", and the plan of
those rows is the plan of every row, row for row, over sheets with edits, problems,
duplicate and blank SKUs, SKUs not online, levels moved online or out of range, and
Online, Change and Status cells a previous command left (the full planner, which a
sheet of unusual SKUs still takes, is the reference); and writing the rows planned
alone writes what writing the whole column does."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from support.memory_book import MemoryBook

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.errors import RowProblem
from xlstock.model import MAX_LEVEL
from xlstock.planner import (
    REBASE,
    STATUS_OK,
    STRICT,
    PlannedRow,
    PublishPlan,
    parse_columns,
    parse_picked,
    plan_publish,
    rows_to_plan,
)
from xlstock.workbook import layout

RESTING = "ok"
POOL = ["A-1", "B-2", "C-3", "D-4", "E-5", "F-6"]

skus = st.lists(st.one_of(st.sampled_from(POOL), st.none()), max_size=14)
edits = st.one_of(st.none(), st.none(), st.none(), st.integers(-6, 6), st.sampled_from(
    ["abc", 2.5, "3", "", " ", True, 4.0]))
levels = st.dictionaries(st.sampled_from(POOL), st.one_of(
    st.integers(0, 6), st.sampled_from([-1, MAX_LEVEL, MAX_LEVEL + 1])), max_size=len(POOL))
cells = {  # what a merchant or a previous command may have left in them
    "online": st.one_of(st.integers(-1, 6), st.sampled_from(
        [None, 2.0, "3", True, Formula("=1+1", 2), CellError("#N/A")])),
    "change": st.one_of(st.none(), st.none(), st.sampled_from(
        [3, -1, "", "x", Formula("=0", 0), Formula("=0", NO_CACHE)])),
    "status": st.one_of(st.just(RESTING), st.just(RESTING), st.sampled_from(
        [None, "changed", "new", "error: x", "not in the shop online", "OK", 1,
         Formula('="ok"', RESTING)])),
}


@st.composite
def sheets(draw: st.DrawFn) -> dict[str, Any]:
    """A sheet Stock (its columns), the Sync levels and the live levels."""
    column = draw(skus)
    base, live = draw(levels), draw(levels)
    if draw(st.booleans()):  # most rows at rest: live = base, cells as a plan leaves them
        live = {**base, **{sku: level for sku, level in live.items() if draw(st.booleans())}}
    if draw(st.booleans()):  # the levels in the sheet's order, as a Sync remembers them
        base, live = (_in_sheet_order(column, levels, draw(st.booleans()))
                      for levels in (base, live))
    sheet: dict[str, Any] = {"skus": column, "base": base, "live": live}
    for name in ("received", "new_level"):
        sheet[name] = [draw(edits) for _ in column]
    for name, strategy in cells.items():
        sheet[name] = [draw(strategy) if draw(st.booleans()) else _resting(name, sku, live)
                       for sku in column]
    return sheet


def _in_sheet_order(column: list[str | None], levels: dict[str, int],
                    all_of_them: bool) -> dict[str, int]:
    """``levels`` with the sheet's SKUs first, in its order (``all_of_them``: each sheet
    SKU given a level), then the others."""
    first = {sku: levels.get(sku, 3) for sku in column
             if sku is not None and (all_of_them or sku in levels)}
    return {**first, **levels}


def _resting(name: str, sku: str | None, live: dict[str, int]) -> Any:
    return {"online": live.get(sku or ""), "change": None, "status": RESTING}[name]


def _said(problems: list[RowProblem]) -> list[tuple[Any, ...]]:
    return [(type(p), p.row, p.sku, str(p.message)) for p in problems]


def _plans(sheet: dict[str, Any], policy: str) -> tuple[PublishPlan, PublishPlan | None]:
    """The plan of every row, and the plan of the rows picked (``None``: none picked,
    the SKUs being unusual)."""
    columns = sheet["skus"], sheet["received"], sheet["new_level"]
    rows, problems = parse_columns(*columns)
    whole = plan_publish(rows, sheet["base"], sheet["live"], policy=policy, problems=problems)
    picked = rows_to_plan(*columns, sheet["base"], sheet["live"], online=sheet["online"],
                          change=sheet["change"], status=sheet["status"], resting=RESTING)
    if picked is None:
        return whole, None
    rows, problems = parse_picked(*columns, picked)
    part = plan_publish(rows, sheet["base"], sheet["live"], policy=policy, problems=problems,
                        planned=[index + 2 for index in picked])
    return whole, part


@settings(max_examples=400, deadline=None)
@given(sheets(), st.sampled_from([REBASE, STRICT]))
@example({"skus": ["A-1", "A-1"], "received": [3, None], "new_level": [None, None],
          "base": {"A-1": 2}, "live": {"A-1": 2}, "online": [2, 2], "change": [None, None],
          "status": [RESTING, RESTING]}, REBASE)  # a duplicate of an edited SKU, at rest
@example({"skus": ["A-1", "B-2"], "received": [None, None], "new_level": [None, None],
          "base": {"A-1": 2, "B-2": MAX_LEVEL + 1}, "live": {"A-1": 2, "B-2": MAX_LEVEL + 1},
          "online": [2, MAX_LEVEL + 1], "change": [None, None],
          "status": [RESTING, RESTING]}, REBASE)  # a live level out of range, not moved
@example({"skus": ["A-1", "B-2", "C-3"], "received": [None] * 3, "new_level": [None] * 3,
          "base": {"A-1": 2, "B-2": 1, "C-3": 0}, "live": {"A-1": 2, "B-2": 1, "C-3": 0},
          "online": [2.0, True, 0], "change": [None, None, ""],
          "status": [RESTING, RESTING, RESTING]}, REBASE)  # Online 2.0, TRUE; Change ""
def test_the_rows_picked_plan_as_every_row_does(sheet: dict[str, Any], policy: str) -> None:
    whole, part = _plans(sheet, policy)
    assert part is not None  # the pool's SKUs are usual
    assert part.planned is not None
    planned = set(part.planned)
    assert _said(part.problems) == _said(whole.problems)
    assert _said(part.conflicts) == _said(whole.conflicts)
    assert part.rows == [row for row in whole.rows if row.row in planned]
    for row in whole.rows:
        if row.row in planned:
            continue
        index = row.row - 2
        # a row left out is planned "level stays, ok", and its cells already say so
        assert row == PlannedRow(row.row, row.sku, row.live, row.live, row.live)
        assert row.status == STATUS_OK and row.change == 0
        assert sheet["online"][index] == row.live and type(sheet["online"][index]) is int
        assert sheet["change"][index] is None and sheet["status"][index] == RESTING
    assert [r.row for r in whole.rows] == sorted({r.row for r in whole.rows})
    assert part.levels.items() <= whole.levels.items()
    assert part.lines() == whole.lines()
    assert (part.units_added, part.units_removed, part.online_sales) == (
        whole.units_added, whole.units_removed, whole.online_sales)


def test_a_sheet_at_rest_picks_only_the_rows_that_matter() -> None:
    """1,000 rows: one edit, one sold online, one not online, a duplicate pair, one
    Status left by a preview; nothing else is picked."""
    column = [f"S-{n:04d}" for n in range(1000)]
    column[900] = column[10]  # the same SKU on rows 12 and 902
    base = {sku: 5 for sku in column}
    live = {**base, "S-0020": 4}
    del live["S-0030"]
    received = [None] * 1000
    received[40] = 2
    status = [RESTING] * 1000
    status[50] = "changed"
    online = [live.get(sku) for sku in column]
    picked = rows_to_plan(column, received, [None] * 1000, base, live, online=online,
                          change=[None] * 1000, status=status, resting=RESTING)
    assert picked == [10, 20, 30, 40, 50, 900]


def test_a_column_of_unusual_skus_plans_every_row() -> None:
    assert rows_to_plan([" A-1", "B-2"], [None, None], [None, None], {}, {}, online=[1, 2],
                        change=[None, None], status=[RESTING] * 2, resting=RESTING) is None
    assert rows_to_plan([1234, "B-2"], [None, None], [None, None], {}, {}, online=[1, 2],
                        change=[None, None], status=[RESTING] * 2, resting=RESTING) is None


column_cells = st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["", "ok", "x", 2.0]))


@st.composite
def column_changes(draw: st.DrawFn) -> tuple[list[Any], dict[int, Any]]:
    """A Status column and some of its rows changed, near together or far apart."""
    cells = draw(st.lists(column_cells, min_size=1, max_size=120))
    rows = st.one_of(st.integers(0, len(cells) - 1), st.sampled_from([0, len(cells) - 1]))
    return cells, draw(st.dictionaries(rows, column_cells))


@settings(max_examples=300, deadline=None)
@given(column_changes(), st.booleans())
@example(([None] * 100, {0: "a", 90: "b"}), False)  # live Excel: one block, 0 to 90
@example(([None] * 100, {0: "a", 20: None, 33: "", 66: "b"}), True)  # two runs
def test_writing_the_rows_set_writes_the_blocks_a_whole_column_writes(
        column: tuple[list[Any], dict[int, Any]], scattered: bool) -> None:
    """:func:`layout.write_cells` of some rows makes the very ``write_block`` calls
    :func:`layout.write_column` makes for the column with those rows changed (runs of
    rows closer than ``WRITE_GAP`` as one, one block for live Excel), and leaves the
    table the same."""
    cells, changed = column
    books = []
    for write in ("column", "cells"):
        book = MemoryBook.stock([[f"S-{n}", None, None, None, None, None, None, None, cell]
                                 for n, cell in enumerate(cells)])
        book.scattered_writes = scattered
        table = layout.read_stock(book)
        if write == "column":
            values = table.column(layout.STATUS)
            for index, value in changed.items():
                values[index] = value
            layout.write_column(book, table, layout.STATUS, values)
        else:
            layout.write_cells(book, table, layout.STATUS, changed)
        books.append((book.writes, table.rows))
    assert books[0] == books[1]
