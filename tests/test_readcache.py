"""The cache of sheet values (xlstock.workbook.readcache): a read from the cache gives
exactly what a read of the file gives, whatever was written and saved before, and a
workbook changed by anything else is read from the file."""

from __future__ import annotations

import datetime as dt
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from support.xlsx_craft import SHEET1, add_content_type, edit_part, read_part, rewrite

from xlstock.cells import CellError, Formula
from xlstock.workbook import readcache
from xlstock.workbook.xlsx_file import XlsxFile


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own, keeping sheets of any size."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(folder))
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    monkeypatch.setattr(readcache, "_BLOCK", 2)  # rows written in several blocks
    return folder


def workbook(path: Path, rows: list[list[Any]], *, date_column: int | None = None) -> Path:
    """Sheet Stock holding ``rows`` from row 1 (openpyxl writes shared strings), with
    column ``date_column`` formatted as a date."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    for row in rows:
        ws.append(row)
    if date_column is not None:
        for number in range(1, len(rows) + 3):
            ws.cell(number, date_column).number_format = "yyyy-mm-dd"
    wb.save(path)
    return path


def fresh_read(path: Path, monkeypatch: pytest.MonkeyPatch, sheet: str = "Stock") -> Any:
    """The values as the file gives them, the cache off."""
    with monkeypatch.context() as off:
        off.setenv("XLSTOCK_CACHE_DIR", "off")
        with XlsxFile.open(path, writable=False) as book:
            return book.read_sheet(sheet)


def cached_read(path: Path, sheet: str = "Stock") -> tuple[Any, bool]:
    """The values with the cache on, and whether they came from it."""
    with XlsxFile.open(path, writable=False) as book:
        grid = book.read_sheet(sheet)
        return grid, book._entry(sheet).kept


CORPUS = Path(__file__).parent / "fixtures" / "excel-corpus"
ROWS = [["SKU", "Online", "Note"], ["A-1", 5, "  spaced  "], ["0012", 0, "x_x000D_y & <z>"],
        [None, 3.5, True], ["B", None, "Café\r\nline"]]


def test_a_read_keeps_the_values_and_the_next_read_takes_them(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    first, kept = cached_read(path)
    assert not kept and len(list(cache.glob("*.json"))) == 1
    again, kept = cached_read(path)
    assert kept and again == first == fresh_read(path, monkeypatch)


def test_values_saved_by_a_command_are_read_back_from_the_cache_as_the_file_gives_them(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock")
        book.write_block("Stock", 2, 2, [[7], [None], ["ok"], [True]])
        book.write_block("Stock", 9, 1, [["new row", 4, "  "]])
        book.save()
    grid, kept = cached_read(path)
    assert kept
    assert grid == fresh_read(path, monkeypatch)
    assert grid[8] == ["new row", 4, "  "]


def test_a_workbook_changed_by_another_program_is_read_from_the_file(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    cached_read(path)
    edit_part(path, SHEET1, r"<v>5</v>", "<v>6</v>")
    grid, kept = cached_read(path)
    assert not kept and grid[1][1] == 6


def test_a_change_to_the_shared_strings_alone_is_a_change(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "excel.xlsx"
    path.write_bytes((CORPUS / "table_comments_dv.xlsx").read_bytes())  # saved by Excel
    sheet_before = read_part(path, SHEET1)
    first, _ = cached_read(path, "Sheet1")
    assert "Data Validation Tests" in str(first)
    edit_part(path, "xl/sharedStrings.xml", "Data Validation Tests", "Stock Tests")
    assert read_part(path, SHEET1) == sheet_before
    grid, kept = cached_read(path, "Sheet1")
    assert not kept and "Stock Tests" in str(grid) and grid == fresh_read(
        path, monkeypatch, "Sheet1")


def test_a_number_written_into_a_date_cell_is_not_kept_as_a_number(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", [["SKU", "When"], ["A", dt.datetime(2025, 1, 2)]],
                    date_column=2)
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock")
        book.write_block("Stock", 2, 2, [[45000]])
        book.save()
    grid, kept = cached_read(path)
    assert not kept
    assert grid[1][1] == dt.datetime(2023, 3, 15) == fresh_read(path, monkeypatch)[1][1]


def test_an_overwritten_formula_leaves_nothing_kept_for_the_saved_part(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", [["SKU", "Received"], ["A", "=1+2"], ["B", "=A2"]])
    with XlsxFile.open(path) as book:
        assert isinstance(book.read_sheet("Stock")[1][1], Formula)
        book.write_block("Stock", 2, 2, [[None]])
        book.save()
    grid, kept = cached_read(path)
    assert not kept and grid == fresh_read(path, monkeypatch)


@pytest.mark.parametrize("damage", [
    b"not json", b'{"format": 99}', b"[]",
    "a column past the reader's columns", "a column's file gone", "a column's file damaged",
    "a column longer than its head says", "a table's code past the table",
])
def test_a_damaged_cache_file_costs_a_read_never_a_value(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes | str
) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    cached_read(path)
    (kept_file,) = cache.glob("*.json")
    key = kept_file.name[:64]
    if isinstance(damage, bytes):
        kept_file.write_bytes(damage)
    elif damage == "a column past the reader's columns":
        document = json.loads(kept_file.read_bytes())
        document["lasts"].append([16_385, 2])
        document["files"].append(16_385)
        kept_file.write_text(json.dumps(document))
    elif damage == "a column's file gone":
        column_file(cache, key, 2).unlink()
    elif damage == "a column's file damaged":
        column_file(cache, key, 2).write_text('{"format": 4, "values": [')
    elif damage == "a column longer than its head says":
        values = column_file(cache, key, 2)
        document = json.loads(values.read_bytes())
        document["values"].append(99)
        values.write_text(json.dumps(document))
    else:
        skus = column_file(cache, key, 1)  # few texts: kept as a table
        document = json.loads(skus.read_bytes())
        document["codes"][0] = len(document["table"])
        skus.write_text(json.dumps(document))
    grid, kept = cached_read(path)
    assert not kept and grid == fresh_read(path, monkeypatch)


def column_file(cache: Path, key: str, column: int) -> Path:
    """The file of a column of the entry under ``key``."""
    return cache / f"{key}.c{column}.values"


def test_special_values_are_kept_as_they_were_read(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", [["SKU", "Received", "When"],
                                          ["A", "=10+2", dt.datetime(2025, 5, 6, 7, 8)]],
                    date_column=3)
    edit_part(path, SHEET1, r"<f>10\+2</f><v>(</v>)?", "<f>10+2</f><v>12</v>")
    rewrite(path, {})
    first, _ = cached_read(path)
    grid, kept = cached_read(path)
    assert kept and grid == first == fresh_read(path, monkeypatch)
    assert grid[1][1] == Formula("=10+2", 12)
    values = [{"e": "#N/A"}, {"f": "=1/0", "c": {"e": "#DIV/0!"}}, {"n": 1}]
    assert readcache._checked_values(values)[:2] == [
        CellError("#N/A"), Formula("=1/0", CellError("#DIV/0!"))]


def test_the_cache_off_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", "off")
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    path = workbook(tmp_path / "w.xlsx", ROWS)
    assert cached_read(path) == (fresh_read(path, monkeypatch), False)
    assert readcache.folder() is None


def test_at_most_keep_files_are_kept(tmp_path: Path, cache: Path) -> None:
    for number in range(readcache.KEEP + 3):
        readcache.store(f"{number:064x}", [["v", number]], [])
    assert len(list(cache.glob("*.json"))) == readcache.KEEP


_TEXT = st.text(alphabet=st.sampled_from(list("aZ0 _x\r\n&<é")), max_size=6)
_VALUE = st.one_of(st.none(), _TEXT, st.integers(-3, 10**12), st.booleans(),
                   st.floats(-1e6, 1e6, allow_nan=False), st.just("=1+2"))
_WRITTEN = st.one_of(st.none(), _TEXT, st.integers(-3, 10**9), st.booleans(),
                     st.floats(0, 10, allow_nan=False), st.just(dt.datetime(2024, 2, 3)))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(rows=st.lists(st.lists(_VALUE, min_size=1, max_size=4), min_size=1, max_size=6),
       writes=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 5),
                                 st.lists(_WRITTEN, min_size=1, max_size=3)), max_size=5),
       date_column=st.one_of(st.none(), st.integers(1, 4)))
def test_whatever_is_written_the_cache_gives_what_the_file_gives(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        rows: list[list[Any]], writes: list[tuple[int, int, list[Any]]],
        date_column: int | None) -> None:
    folder = tmp_path_factory.mktemp("prop")
    monkeypatch.setenv("XLSTOCK_CACHE_DIR", str(folder / "cache"))
    monkeypatch.setattr(readcache, "MIN_PART_BYTES", 0)
    monkeypatch.setattr(readcache, "_BLOCK", 2)
    path = workbook(folder / "w.xlsx", rows, date_column=date_column)
    with XlsxFile.open(path) as book:
        book.read_sheet("Stock")
        for top, left, values in writes:
            book.write_block("Stock", top, left, [[v] for v in values])
        book.save()
    grid, kept = cached_read(path)
    assert grid == fresh_read(path, monkeypatch)
    if kept:  # and a second read takes the same from the cache
        assert cached_read(path) == (grid, True)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX file modes")
def test_kept_values_are_readable_by_their_owner_only(tmp_path: Path, cache: Path) -> None:
    readcache.store("0" * 64, [["SKU"], ["A-1"]], [])
    (kept,) = cache.glob("*.json")
    assert kept.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700


def test_an_interrupted_write_leaves_no_file_and_old_leftovers_are_pruned(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(rows: Any) -> str:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(readcache, "_block_text", interrupted)
        with pytest.raises(KeyboardInterrupt):
            readcache.store("1" * 64, [["SKU"], ["A-1"]], [])
    assert list(cache.iterdir()) == []
    leftover = cache / ".killed.tmp"
    leftover.write_text("{")
    os.utime(leftover, (0, 0))  # from a run killed long ago
    fresh = cache / ".running.tmp"
    fresh.write_text("{")  # another run's, under way
    readcache.store("2" * 64, [["SKU"]], [])
    assert sorted(p.name for p in cache.iterdir()) == [".running.tmp", "2" * 64 + ".json"]


# --- issue 19: the cache trusts only the user's own files ----------------------------------

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
needs_posix = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
OTHER_USER = 65534  # nobody


def _planted(path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache file a read of ``path`` keeps, its values replaced by +999,999 on rows
    the workbook does not have (as another user would plant it)."""
    cached_read(path)
    (kept,) = cache.glob("*.json")
    document = json.loads(kept.read_bytes())
    online = column_file(cache, kept.name[:64], 2)
    values = json.loads(online.read_bytes())
    values["values"] += [999_999] * 3
    online.write_text(json.dumps(values))
    document["lasts"] = [[c, r + 3 if c == 2 else r] for c, r in document["lasts"]]
    kept.write_text(json.dumps(document))
    grid, used = cached_read(path)
    assert used and grid[-1][1] == 999_999  # the plant works on a trusted folder
    return kept


@needs_posix
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_a_folder_others_can_write_is_not_trusted(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, mode: int) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    _planted(path, cache, monkeypatch)
    os.chmod(cache, mode)
    grid, used = cached_read(path)
    assert not used and grid == fresh_read(path, monkeypatch)
    before = sorted(cache.iterdir())
    other = workbook(tmp_path / "other.xlsx", ROWS[:2])
    cached_read(other)
    assert sorted(cache.iterdir()) == before, "values kept in a folder others can write"


@needs_posix
def test_a_file_or_folder_of_another_user_is_not_trusted(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = workbook(tmp_path / "w.xlsx", ROWS)
    kept = _planted(path, cache, monkeypatch)
    os.chown(kept, OTHER_USER, -1)
    grid, used = cached_read(path)
    assert not used and grid == fresh_read(path, monkeypatch)
    os.chown(kept, os.getuid(), -1)
    os.chown(cache, OTHER_USER, -1)
    grid, used = cached_read(path)
    assert not used and grid == fresh_read(path, monkeypatch)


def test_a_symbolic_link_in_the_cache_is_not_followed(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "w.xlsx", ROWS)
    kept = _planted(path, cache, monkeypatch)
    elsewhere = tmp_path / "elsewhere.json"
    kept.rename(elsewhere)
    kept.symlink_to(elsewhere)
    grid, used = cached_read(path)
    assert not used and grid == fresh_read(path, monkeypatch)


def test_the_default_folder_is_the_users_cache_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv("XLSTOCK_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert readcache.folder() == platformdirs.user_cache_path("xlstock", appauthor=False) / \
        "sheets"
    if os.name == "posix" and not os.uname().sysname == "Darwin":
        assert readcache.folder() == tmp_path / "xdg" / "xlstock" / "sheets"


def _method_of(path: Path, part: str, method: int) -> None:
    """Set ``part``'s compression method in its local header and the central directory,
    its bytes unchanged."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(part).header_offset
    data[offset + 8:offset + 10] = method.to_bytes(2, "little")
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + name_length] == part.encode():
            data[at + 10:at + 12] = method.to_bytes(2, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def test_the_key_covers_each_parts_compression_method(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same stored bytes under another method are other values: never the same key."""
    path = workbook(tmp_path / "w.xlsx", [[1, 2]])  # Stock never reads the strings
    strings = "xl/sharedStrings.bin"  # not .xml: opening checks no prolog of it
    notes = "".join(f"<si><t>{os.urandom(48).hex()}</t></si>" for _ in range(2_000))
    rewrite(path, {strings: f'<sst xmlns="{MAIN_NS}">{notes}</sst>'.encode()})  # over 64 kB
    # deflated: a check of the bytes as stored stops at the first chunk, not at its CRC
    edit_part(path, "xl/_rels/workbook.xml.rels", "</Relationships>",
              '<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/'
              '2006/relationships/sharedStrings" Target="sharedStrings.bin"/></Relationships>')
    add_content_type(path, override=(strings, "application/vnd.openxmlformats-officedocument."
                                              "spreadsheetml.sharedStrings+xml"))
    _, used = cached_read(path)
    assert not used
    _method_of(path, strings, zipfile.ZIP_STORED)  # its deflated bytes, now as stored
    _, used = cached_read(path)
    assert not used, "a part's method changed, and the kept values were used"


def test_a_kept_sheet_is_decoded_without_its_bytes_held_beside_its_text(cache: Path) -> None:
    """Issue 22: a column's file is let go before its values are made from its text
    (json.loads of bytes holds both: at 1,000,000 rows, 76 MB more at Publish's peak)."""
    import tracemalloc

    rows: list[list[Any]] = [["SKU", "Product", "Online"]] + [
        [f"{n:07d}", f"Product {n} in a long enough name", n % 500] for n in range(40_000)]
    readcache.store("k" * 64, rows, set())
    size = column_file(cache, "k" * 64, 2).stat().st_size
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = readcache.load("k" * 64, lambda _header: [2])
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept is not None and [row[1] for row in kept.grid] == [row[1] for row in rows]
    # The rows, and at most the text once beside them (never the bytes too).
    assert peak - held < 1.3 * size, (peak - before, held - before, size)


def test_a_column_of_few_texts_loads_as_one_str_a_text(cache: Path) -> None:
    """Issue 22: Status and Variant hold a handful of texts over a million rows; loaded
    from a table, the rows share one ``str`` a text (50 MB less a column at 1,000,000
    rows), and a command that does not ask for a column does not decode it."""
    rows: list[list[Any]] = [["SKU", "Variant", "Status"]] + [
        [f"{n:07d}", None if n % 4 == 0 else f"Size {n % 3}", "ok"] for n in range(5_000)]
    readcache.store("t" * 64, rows, set())
    assert "table" in json.loads(column_file(cache, "t" * 64, 3).read_bytes())
    assert "table" not in json.loads(column_file(cache, "t" * 64, 1).read_bytes())
    kept = readcache.load("t" * 64)
    assert kept is not None and kept.grid == rows and kept.columns is None
    assert len({id(row[2]) for row in kept.grid[1:]}) == 1
    assert len({id(row[1]) for row in kept.grid[1:] if row[1]}) == 3
    some = readcache.load("t" * 64, lambda header: [header.index("Status") + 1])
    assert some is not None and some.more == {1, 2} and some.unread_last == 5_001
    assert [row[2] for row in some.grid] == [row[2] for row in rows]
    assert all(row[0] is None and row[1] is None for row in some.grid[1:])
    assert readcache.load_columns(some.chain, [2, 1]) == {
        2: [row[1] for row in rows[1:]], 1: [row[0] for row in rows[1:]]}


def test_a_read_from_the_file_gives_one_str_a_short_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: xlstock writes Status and Variant as inline strings, one a cell; read
    back, the rows share one ``str`` a short text (50 MB less a column at 1,000,000
    rows), and each text is still the one written."""
    path = workbook(tmp_path / "w.xlsx", [["SKU", "Variant", "Status"]])
    rows = [[f"SKU-{n}", ("Red / XL", "Blue & <M>", "x" * 40)[n % 3], "ok"]
            for n in range(300)]
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 1, rows)
        book.save()
    grid = fresh_read(path, monkeypatch)
    assert grid[1:] == rows
    assert len({id(row[2]) for row in grid[1:]}) == 1
    assert len({id(row[1]) for row in grid[1:] if row[1] != "x" * 40}) == 2
    assert len({id(row[0]) for row in grid[1:]}) == 300
