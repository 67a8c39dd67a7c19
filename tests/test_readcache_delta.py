"""Issue 22: a save over values that came from the sheet cache keeps only the cells it
wrote (a delta over the entry it patched), so that a command touching k rows writes
O(k) to the cache; a load applies the chain, and gives exactly what a read of the file
gives. A damaged or broken chain costs a read, never a value."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_readcache import cached_read, column_file, fresh_read, workbook

from xlstock.workbook import readcache
from xlstock.workbook.xlsx_file import XlsxFile

ROWS: list[list[Any]] = [["SKU", "Online", "Status"]] + [
    [f"{n:04d}", n, "ok"] for n in range(40)]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own, keeping sheets of any size."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(folder))
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    monkeypatch.setattr(readcache, "_BLOCK", 1)  # a column added in blocks of 10 values
    return folder


def wholes(cache: Path) -> list[Path]:
    return [p for p in cache.glob("*.json") if not p.name.endswith(".delta.json")]


def deltas(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.delta.json"), key=lambda p: p.stat().st_mtime_ns)


def session(path: Path, writes: list[tuple[int, int, list[Any]]]) -> None:
    """One command: read sheet Stock, write columns of cells, save."""
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock")
        for top, left, values in writes:
            book.write_block("Stock", top, left, [[v] for v in values])
        book.save()


def test_a_save_over_kept_values_keeps_only_the_cells_it_wrote(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    _, kept = cached_read(path)  # read from the file: kept whole
    assert not kept and len(wholes(cache)) == 1
    session(path, [(3, 2, [99]), (5, 3, ["changed", None])])
    assert len(wholes(cache)) == 1, "the whole grid was written again"
    (delta,) = deltas(cache)
    document = json.loads(delta.read_text())
    assert sorted(map(tuple, document["cells"])) == [(3, 2, 99), (5, 3, "changed"),
                                                      (6, 3, None)]
    grid, kept = cached_read(path)
    assert kept and grid == fresh_read(path, monkeypatch)
    assert grid[2][1] == 99 and grid[4][2] == "changed" and grid[5] == ["0004", 4, None]


def test_rows_added_and_cleared_at_the_end_read_back_as_from_the_file(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    cached_read(path)
    session(path, [(42, 1, ["NEW-1", "NEW-2"]), (42, 2, [5, 6]), (20, 3, [True])])
    assert deltas(cache)
    grid, kept = cached_read(path)
    assert kept and grid == fresh_read(path, monkeypatch) and grid[-1][:2] == ["NEW-2", 6]
    session(path, [(42, 1, [None, None]), (42, 2, [None, None]), (41, 3, [None])])
    assert len(deltas(cache)) == 2
    grid, kept = cached_read(path)
    assert kept and grid == fresh_read(path, monkeypatch) and grid[-1][:2] == ["0039", 39]


def test_after_max_chain_deltas_the_grid_is_kept_whole_again(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    cached_read(path)
    for number in range(readcache.MAX_CHAIN):
        session(path, [(2 + number, 2, [1000 + number])])
        assert len(deltas(cache)) == number + 1 and len(wholes(cache)) == 1
    session(path, [(30, 2, [7])])
    assert len(deltas(cache)) == readcache.MAX_CHAIN and len(wholes(cache)) == 2
    grid, kept = cached_read(path)
    assert kept and grid == fresh_read(path, monkeypatch)
    assert [row[1] for row in grid[1:5]] == [1000, 1001, 1002, 1003]


def test_a_save_writing_many_cells_keeps_the_grid_whole(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    cached_read(path)
    session(path, [(2, 3, ["new"] * 40)])  # every row's Status: no smaller as a delta
    assert not deltas(cache) and len(wholes(cache)) == 2
    grid, kept = cached_read(path)
    assert kept and grid == fresh_read(path, monkeypatch)


def test_columns_read_since_the_load_are_kept_with_the_cells_as_columns(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sync reads the product names a publish did not keep: the delta keeps them as
    columns (no other cell of the grid is written again)."""
    rows = [row + [f"name {n}", None if n % 3 else "opt"] for n, row in enumerate(ROWS)]
    path = workbook(tmp_path / "w.xlsx", rows)
    with XlsxFile.open(path, writable=False) as book:
        book.read_sheet("Stock", columns=lambda _header: (1, 2))
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock", columns=lambda _header: (1, 2))
        assert book._entry("Stock").kept
        book.read_sheet("Stock", columns=lambda _header: (4, 5))  # read late
        book.write_block("Stock", 4, 3, [["written"]])  # column 3: read as it is written
        book.save()
    (delta,) = deltas(cache)
    document = json.loads(delta.read_text())
    assert document["files"] == [3, 4, 5]  # each added column in a file of its own
    added = json.loads(column_file(cache, delta.name[:64], 5).read_text())
    table = added["table"]  # few texts: a table
    assert [table[code] for code in added["codes"][:4]] == [None, None, "opt", None]
    assert document["cells"] == [[4, 3, "written"]] and document["columns"] == [1, 2, 3, 4, 5]
    with XlsxFile.open(path, writable=False) as book:
        grid = book.read_sheet("Stock", columns=lambda _header: (1, 2, 3, 4, 5))
        assert book._entry("Stock").kept
    assert grid == fresh_read(path, monkeypatch) and grid[3][2] == "written"


def test_every_column_read_since_the_load_keeps_the_grid_whole(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    with XlsxFile.open(path, writable=False) as book:
        book.read_sheet("Stock", columns=lambda _header: (1, 2))
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock", columns=lambda _header: (1, 2))
        book.read_sheet("Stock")  # every column: more than a delta lists
        book.write_block("Stock", 4, 3, [["written"]])
        book.save()
    assert not deltas(cache)
    grid, kept = cached_read(path)
    assert kept and grid == fresh_read(path, monkeypatch)


def _chain_of_two(path: Path, cache: Path) -> tuple[Path, Path]:
    cached_read(path)
    session(path, [(3, 2, [99])])
    session(path, [(4, 2, [98])])
    first, second = deltas(cache)
    return first, second


@pytest.mark.parametrize("damage", [
    "not json", "base gone", "first delta gone", "a cell past the limits",
    "a value of another kind", "a base naming itself", "another key", "another format",
    "columns unlike its base", "an added column of another shape",
    "a column's file of another entry",
])
def test_a_damaged_or_broken_chain_costs_a_read_never_a_value(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    first, second = _chain_of_two(path, cache)
    document = json.loads(second.read_text())
    if damage == "not json":
        second.write_text('{"format": 3, "cells": [')
    elif damage == "base gone":
        (whole,) = wholes(cache)
        whole.unlink()
    elif damage == "first delta gone":
        first.unlink()
    else:
        if damage == "a cell past the limits":
            document["cells"] = [[4, 2, 98], [1_048_577, 1, "far"]]
        elif damage == "a value of another kind":
            document["cells"] = [[4, 2, [98]]]
        elif damage == "a base naming itself":
            document["base"] = document["key"]
        elif damage == "another key":
            document["key"] = "0" * 64
        elif damage == "another format":
            document["format"] = 2
        elif damage == "columns unlike its base":
            document["columns"] = [1, 2]
        elif damage == "an added column of another shape":
            document["files"] = [2]
            document["columns"] = None
            column_file(cache, document["key"], 2).write_text(json.dumps(
                {"format": readcache.FORMAT, "key": document["key"], "column": 2,
                 "values": {"rows": 1}}))
        elif damage == "a column's file of another entry":
            (whole,) = wholes(cache)
            values = column_file(cache, whole.name[:64], 2)
            theirs = json.loads(values.read_text())
            theirs["key"] = "0" * 64
            values.write_text(json.dumps(theirs))
        second.write_text(json.dumps(document))
    grid, kept = cached_read(path)
    assert not kept and grid == fresh_read(path, monkeypatch)


def test_a_chain_longer_than_max_chain_is_not_followed(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delta's base is looked up as a delta at most MAX_CHAIN times: no loop, however
    the files name each other."""
    readcache.store("b" * 64, [["SKU"], ["A"]], [])
    assert not readcache.store_delta("b" * 64, ["b" * 64], [], [])  # over itself: refused
    assert not readcache.store_delta("a" * 64, ["c" * 64], [], [])  # over nothing: refused
    assert readcache.store_delta("a" * 64, ["b" * 64], [], [])
    (cache / f"{'b' * 64}.json").unlink()
    document = json.loads((cache / f"{'a' * 64}.delta.json").read_text())
    document.update(key="b" * 64, base="a" * 64)  # a loop, written by hand
    (cache / f"{'b' * 64}.delta.json").write_text(json.dumps(document))
    started = time.perf_counter()
    assert readcache.load("a" * 64) is None
    assert time.perf_counter() - started < 1


def test_a_delta_keeps_the_entries_it_is_made_from_while_others_are_pruned(
        tmp_path: Path, cache: Path) -> None:
    base = "b" * 64
    readcache.store(base, [["SKU", "Online"], ["A", 1]], [])
    long_ago = time.time() - 3600
    os.utime(cache / f"{base}.json", (long_ago, long_ago))
    for number in range(readcache.KEEP - 1):
        readcache.store(f"{number:064x}", [["v", number]], [])
    assert readcache.store_delta("d" * 64, [base], [(2, 2, 5)], [])
    readcache.store("e" * 64, [["v"]], [])  # one whole entry too many: the oldest goes
    assert (cache / f"{base}.json").exists()
    kept = readcache.load("d" * 64)
    assert kept is not None and kept.grid == [["SKU", "Online"], ["A", 5]]
    assert kept.chain == (base, "d" * 64)


_VALUE = st.one_of(st.none(), st.text(alphabet=st.sampled_from(list("aZ0 _x&<é")),
                                      max_size=5),
                   st.integers(-3, 10**9), st.booleans(), st.floats(0, 10, allow_nan=False))
_WRITES = st.lists(st.tuples(st.integers(1, 48), st.integers(1, 5),
                             st.lists(_VALUE, min_size=1, max_size=3)), max_size=3)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(rows=st.lists(st.lists(_VALUE, min_size=1, max_size=4), max_size=6),
       sessions=st.lists(_WRITES, min_size=1, max_size=6))
def test_whatever_sessions_save_in_turn_the_cache_gives_what_the_file_gives(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        rows: list[list[Any]], sessions: list[list[tuple[int, int, list[Any]]]]) -> None:
    folder = tmp_path_factory.mktemp("chain")
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(folder / "cache"))
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    path = workbook(folder / "w.xlsx", ROWS + rows)  # rows enough for a delta
    cached_read(path)
    for writes in sessions:
        session(path, writes)
        grid, kept = cached_read(path)
        assert grid == fresh_read(path, monkeypatch)


_COLUMNS = st.sets(st.integers(1, 5), max_size=5)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(rows=st.lists(st.lists(_VALUE, min_size=1, max_size=5), max_size=6),
       sessions=st.lists(st.tuples(_COLUMNS, _COLUMNS, _WRITES), min_size=1, max_size=5))
def test_whatever_columns_sessions_read_and_write_the_cache_gives_what_the_file_gives(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        rows: list[list[Any]],
        sessions: list[tuple[set[int], set[int], list[tuple[int, int, list[Any]]]]]) -> None:
    """Each session reads some columns, some more later, writes, saves (as Preview,
    Publish and Sync do); every read, from the cache or the file, agrees."""
    folder = tmp_path_factory.mktemp("columns")
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(folder / "cache"))
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    monkeypatch.setattr(readcache, "_BLOCK", 1)
    path = workbook(folder / "w.xlsx", [row + ["x"] * 2 for row in ROWS] + rows)
    with XlsxFile.open(path, writable=False) as book:
        book.read_sheet("Stock", columns=lambda _header: (1, 2))
    for first, later, writes in sessions:
        with XlsxFile.open(path) as book:
            book.read_sheet("Stock", columns=lambda _header, c=first: c)
            book.read_sheet("Stock", columns=lambda _header, c=later: c)
            for top, left, values in writes:
                book.write_block("Stock", top, left, [[v] for v in values])
            book.save()
        wanted = first | later | {left for _top, left, _values in writes}
        with XlsxFile.open(path, writable=False) as book:
            grid = book.read_sheet("Stock", columns=lambda _header, c=wanted: c)
        fresh = fresh_read(path, monkeypatch)
        for row, fresh_row in zip(grid, fresh, strict=True):
            for column in wanted:
                assert (row + [None] * 5)[column - 1] == (fresh_row + [None] * 5)[column - 1]


def test_deltas_older_than_every_whole_entry_kept_are_pruned(tmp_path: Path,
                                                             cache: Path) -> None:
    """A delta is never kept longer than the whole entries (a sync's delta of product
    names is megabytes at 1,000,000 rows): once its chain's whole entry is pruned, it
    goes too."""
    base = "b" * 64
    readcache.store(base, [["SKU", "Online"], ["A", 1]], [])
    assert readcache.store_delta("d" * 64, [base], [(2, 2, 5)], [])
    long_ago = time.time() - 3600
    for name in (f"{base}.json", f"{'d' * 64}.delta.json"):
        os.utime(cache / name, (long_ago, long_ago))
    for number in range(readcache.KEEP):
        readcache.store(f"{number:064x}", [["v", number]], [])
    assert len(wholes(cache)) == readcache.KEEP and not deltas(cache)


def test_the_daily_loop_through_the_cache_leaves_what_it_leaves_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stock_service: Any) -> None:
    """Sync, edits, Preview, Publish, sales, Sync, as the merchant runs them (the CLI,
    on the real service), every sheet kept in the cache: the saves keep deltas, and
    every command reads from the cache what a read of the file gives. A twin shop with
    the cache off takes the same steps and ends with the same sheet."""
    from support.shopkit import Shop

    from xlstock.model import StockItem

    items = [StockItem(f"S-{n:03d}", f"Item {n}", "Red" if n % 2 else "", 20 + n)
             for n in range(60)]
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    sheets: dict[str, Any] = {}
    for cache in ("on", "off"):
        folder = tmp_path / cache
        folder.mkdir()
        monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(folder / "cache") if cache == "on"
                           else "off")
        shop = Shop(stock_service, folder, items)
        shop.new()
        shop.run("sync", str(shop.workbook))
        shop.sell(S_001=3, S_040=20)
        shop.run("sync", str(shop.workbook))
        for day in range(3):
            shop.edit(**{"S-002": {"Received": 4 + day}, "S-050": {"New level": 7 + day}})
            shop.run("preview", str(shop.workbook))
            shop.run("publish", str(shop.workbook))
            shop.sell(S_003=1 + day, S_050=2)
            shop.run("sync", str(shop.workbook))
            if cache == "on":  # Sync's nine columns, from the cache as from the file
                with XlsxFile.open(shop.workbook, writable=False) as book:
                    grid = book.read_sheet("Stock", columns=lambda _header: range(1, 10))
                    assert book._entry("Stock").kept
                assert grid == [row[:9] for row in fresh_read(shop.workbook, monkeypatch)]
        if cache == "on":
            assert deltas(folder / "cache"), "no save kept a delta"
        sheets[cache] = [[v for v in row.values()] for sku, row in sorted(shop.sheet().items())]
    assert sheets["on"] == sheets["off"]
    assert len(sheets["on"]) == 60


@pytest.mark.parametrize("linked", ["the last delta", "the whole entry"])
def test_a_delta_or_its_base_through_a_symbolic_link_is_not_followed(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, linked: str) -> None:
    """The trust rules of the whole entries hold for every file of a chain: a file put
    there as a link to one elsewhere (as another user would plant it) is never read."""
    path = workbook(tmp_path / "w.xlsx", ROWS)
    first, second = _chain_of_two(path, cache)
    target = second if linked == "the last delta" else \
        cache / f"{json.loads(first.read_text())['base']}.json"
    elsewhere = tmp_path / "elsewhere.json"
    target.rename(elsewhere)
    target.symlink_to(elsewhere)
    grid, kept = cached_read(path)
    assert not kept and grid == fresh_read(path, monkeypatch) and grid[3][1] == 98


def test_columns_read_of_a_sheet_the_save_left_as_it_was_are_kept(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync that finds nothing changed online reads the product names and saves only
    Settings and Log: Stock's part, and so its key, is the same; its values, the names
    with them, are kept under that key (never a delta over itself)."""
    path = tmp_path / "w.xlsx"
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    for row in ROWS:
        ws.append(row)
    wb.create_sheet("Log").append(["when"])
    wb.save(path)
    with XlsxFile.open(path, writable=False) as book:
        book.read_sheet("Stock", columns=lambda _header: (1, 2))
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock", columns=lambda _header: (1, 2))
        book.read_sheet("Stock", columns=lambda _header: (3,))  # read late
        book.write_block("Log", 2, 1, [["today"]])
        book.save()
    for _ in range(2):
        with XlsxFile.open(path, writable=False) as book:
            grid = book.read_sheet("Stock", columns=lambda _header: (1, 2, 3))
            assert book._entry("Stock").kept
        assert grid == fresh_read(path, monkeypatch)


def test_columns_not_asked_for_stay_in_the_cache_until_asked(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: Preview and Publish do not ask for the product names; loaded from the
    cache, the rows lack them (at 1,000,000 rows 120 MB less), and a command that asks
    later takes them from the cache, not the workbook, through deltas and the whole
    entry written after MAX_CHAIN of them."""
    from xlstock.workbook import sheetxml

    rows = [row[:2] + [f"name {n}", row[2]] for n, row in enumerate(ROWS)]
    path = workbook(tmp_path / "w.xlsx", rows)
    cached_read(path)

    def unread(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("read from the workbook, not the cache")

    for number in range(readcache.MAX_CHAIN + 2):
        with XlsxFile.open(path) as book:
            grid = book.read_sheet("Stock", shared=True, columns=lambda _h: (1, 2, 4))
            entry = book._entry("Stock")
            assert entry.kept and entry.cache_more == {3}
            assert all(row[2] is None for row in grid[1:])
            book.write_block("Stock", 3 + number, 4, [[f"changed {number}"]])
            book.save()
            if number % 2:  # a later step asks for the names: from the cache
                with monkeypatch.context() as m:
                    for name in ("read_columns", "read_some_cells", "read_columns_streamed"):
                        m.setattr(sheetxml, name, unread)
                    names = book.read_sheet("Stock", columns=lambda _h: (3,))
                assert [row[2] for row in names] == [row[2] for row in rows]
        grid, kept = cached_read(path)
        assert kept and grid == fresh_read(path, monkeypatch), number
    assert len(wholes(cache)) >= 2  # a whole entry again, the names copied into it
