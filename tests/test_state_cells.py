"""The levels of the last Sync stored so that a save touching k SKUs does O(k) work
(issue 22 point 2): the cells of the hidden state whose SKUs did not change are kept as
the text that was read, and written to no cell; every state reads back as the whole
text would, whatever the SKUs, from this layout or from the previous release's."""

from __future__ import annotations

import json
import re
import zipfile
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.memory_book import MemoryBook
from support.shopkit import Shop

from xlstock import actions
from xlstock.errors import WorkbookError
from xlstock.model import StockItem
from xlstock.workbook import layout, statecells
from xlstock.workbook.xlsx_file import XlsxFile

STATE = layout.STATE_SHEET


def _column(book: MemoryBook) -> list[Any]:
    return [row[0] if row else None for row in book.read_sheet(STATE)]


def _previous_release(book: MemoryBook, state: dict[str, Any], chunk: int) -> None:
    """The state as the previous release wrote it: state_text, cut every ``chunk``
    characters."""
    text = layout.state_text({**state, "format": layout.STATE_FORMAT})
    book.sheets[STATE] = {}
    book.hidden.add(STATE)
    book.write_block(STATE, 1, 1, [[text[i:i + chunk]] for i in range(0, len(text), chunk)])


def _small_cells(patch_most: int) -> Any:
    """Cells of a few pairs, so that a few SKUs make many cells, split and empty ones."""
    return mock.patch.multiple(statecells, SLICED_FROM=3, FILL=40, CELL_LIMIT=90,
                               PATCH_MOST=patch_most, WHOLE_FROM=1)


# SKUs of every kind: the usual, and those holding what JSON escapes or what separates
# the pairs of a cell (quote, backslash, comma, colon, brace, non-ASCII).
_SKU = st.one_of(st.from_regex(r"[A-C]-[0-9]{1,3}", fullmatch=True),
                 st.text(alphabet='AB,:"\\{}é ', min_size=1, max_size=4))
_LEVEL = st.integers(-5, 10**6)
_CHANGE = st.tuples(_SKU, st.one_of(st.none(), _LEVEL),
                    st.sampled_from(["set", "update", "pop", "del", "setdefault"]))


def _change(levels: dict[str, int], expected: dict[str, int], sku: str, level: int | None,
            how: str) -> None:
    """One change as the actions make them (``None``: the SKU is removed)."""
    if level is None:
        if how == "del" and sku in levels:
            del levels[sku]
        else:
            levels.pop(sku, None)
        expected.pop(sku, None)
        return
    if how == "update":
        levels.update({sku: level})
    elif how == "setdefault" and sku not in levels:
        levels.setdefault(sku, level)
    else:
        levels[sku] = level
    expected[sku] = level


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_SKU, _LEVEL, max_size=30),
       st.lists(st.lists(_CHANGE, max_size=8), min_size=1, max_size=4),
       st.sampled_from([None, 7, 30_000]), st.sampled_from([2, 8]))
def test_levels_changed_then_saved_read_back_as_the_whole_text(
        base: dict[str, int], rounds: list, previous_chunk: int | None,
        patch_most: int) -> None:
    """Read -> change k SKUs -> write -> read gives the levels changed, over random
    changes, additions and removals, several saves in a row; from a state the previous
    release wrote (``previous_chunk``: its cells) or a first save. The column joined is
    the JSON an older release reads."""
    with _small_cells(patch_most):
        _round_trips(base, rounds, previous_chunk)


def _round_trips(base: dict[str, int], rounds: list, previous_chunk: int | None) -> None:
    book = MemoryBook({"Stock": []})
    rest = {"version": '"3"', "pending": None, "publishes": [{"key": "k", "items": {"A": 1}}]}
    if previous_chunk is None:
        layout.write_state(book, {**rest, "base": dict(base)})
    else:
        _previous_release(book, {**rest, "base": base}, previous_chunk)
    expected = dict(base)
    for changes in rounds:
        state = layout.read_state(book)
        assert state == {**rest, "base": expected, "format": 1}
        for sku, level, how in changes:
            _change(state["base"], expected, sku, level, how)
        layout.write_state(book, state)
        layout.write_state(book, state)  # a second save of the same command
        column = _column(book)
        limit = (statecells.CELL_LIMIT if column[0] == statecells.HEAD
                 else layout._STATE_CHUNK)  # the levels in cells of their own, or one text
        assert all(len(text) <= limit for text in column if text)
        joined = json.loads("".join(text for text in column if isinstance(text, str)))
        assert joined == {**rest, "base": expected, "format": 1}
    assert layout.read_state(book) == {**rest, "base": expected, "format": 1}


def _laid_out(count: int) -> tuple[MemoryBook, dict[str, Any]]:
    book = MemoryBook({"Stock": []})
    layout.write_state(book, {"base": {f"TEE-{n:06d}-RD": n % 500 for n in range(count)},
                              "version": "v1", "publishes": []})
    return book, layout.read_state(book)


def test_a_save_writes_only_the_cells_holding_a_changed_sku() -> None:
    """Three SKUs changed among 20,000: their cells alone (and the row after the levels,
    which holds the version) are encoded and written; every other cell is the very text
    read."""
    book, state = _laid_out(20_000)
    before = _column(book)
    assert before[0] == statecells.HEAD and len(before) > 10
    book.writes.clear()
    state["base"].update({"TEE-000007-RD": 1, "TEE-012345-RD": 2})
    state["base"].pop("TEE-019999-RD")
    state["version"] = "v2"
    layout.write_state(book, state)
    rows = [top + i for _, top, _, block in book.writes for i in range(len(block))]
    after = _column(book)
    changed = [row for row in range(1, len(after) + 1)
               if after[row - 1] != before[row - 1]]
    assert sorted(rows) == changed and len(changed) == 4, (rows, changed)
    assert all(after[row - 1] is before[row - 1]
               for row in range(1, len(after) + 1) if row not in changed)
    assert layout.read_state(book)["base"] == {
        **{f"TEE-{n:06d}-RD": n % 500 for n in range(19_999)},
        "TEE-000007-RD": 1, "TEE-012345-RD": 2}
    book.writes.clear()
    layout.write_state(book, state)  # nothing changed since: nothing written
    assert book.writes == []


def test_a_quarter_of_the_levels_changed_are_encoded_whole_without_noting_them() -> None:
    book, state = _laid_out(20_000)
    levels = state["base"]
    levels.update({f"TEE-{n:06d}-RD": 1 for n in range(100)})
    assert len(levels.touched) == 100 and levels.cells is not None
    levels.update({f"TEE-{n:06d}-RD": 2 for n in range(0, 20_000, 4)})  # 5,000 more
    assert levels.cells is None and not levels.touched  # no set of them kept
    levels["TEE-000001-RD"] = 3
    assert not levels.touched
    layout.write_state(book, state)
    assert levels.cells is not None  # the next save patches again
    assert layout.read_state(book)["base"] == dict(levels)


def test_a_cell_whose_skus_are_all_gone_is_dropped_and_the_others_kept() -> None:
    book, state = _laid_out(20_000)
    before = _column(book)
    first = json.loads("{" + before[1] + "}")
    for sku in first:  # the first cell's, one at a time: each patch cuts a pair
        state["base"].pop(sku)
        layout.write_state(book, state)
    after = _column(book)
    assert after[0] == statecells.HEAD and after[1] == before[2][1:]  # its comma gone
    assert after[2:-1] == before[3:-1] and all(map(str.__eq__, after[2:-1], before[3:-1]))
    again = layout.read_state(book)
    assert again["base"].cells is not None and again["base"] == state["base"]
    assert not set(first) & again["base"].keys()


def test_a_save_encodes_again_only_the_changed_cells(monkeypatch) -> None:
    """No level is encoded but those of the cell patched (json.dumps of the levels is
    called for no cell)."""
    book, state = _laid_out(20_000)
    encoded: list[int] = []
    real = statecells._encoded

    def counted(ordered, levels):
        encoded.append(len(ordered))
        return real(ordered, levels)

    monkeypatch.setattr(statecells, "_encoded", counted)
    state["base"]["TEE-000100-RD"] = 7
    layout.write_state(book, state)
    assert encoded == []
    state["base"].update({f"TEE-{n:06d}-RD": 1 for n in range(200, 300)})  # many in a cell
    layout.write_state(book, state)
    assert len(encoded) == 1 and encoded[0] < 2_000


def test_a_damaged_laid_out_state_gives_the_message_and_an_odd_one_reads_whole() -> None:
    book = MemoryBook({STATE: [[statecells.HEAD], ['"A":1'], [',"B":'], ['},"format":1}']]})
    with pytest.raises(WorkbookError, match="run `xlstock sync` to rebuild it"):
        layout.read_state(book)
    # cells of levels whose ranges overlap: read whole, saved encoded whole
    odd = [[statecells.HEAD], ['"B":1'], [',"A":2'], ['},"format":1}']]
    book = MemoryBook({STATE: odd})
    state = layout.read_state(book)
    assert state == {"base": {"A": 2, "B": 1}, "format": 1}
    assert state["base"].cells is None


def test_history_reads_the_state_without_decoding_the_levels() -> None:
    """``xlstock history`` asks for the publishes alone: the cells of the levels are not
    decoded (one that would not decode is not even looked at), as a whole text is."""
    book, state = _laid_out(5_000)
    publishes = [{"key": "k1", "at": "2026-12-01 10:00:00", "items": {"TEE-000001-RD": [1, 3]}}]
    state["publishes"] = publishes
    layout.write_state(book, state)
    book.set(STATE, 3, 1, ',"TEE-' + "9" * 10)  # a cell of levels that no longer decodes
    assert layout.read_state(book, levels=False) == {"version": "v1", "publishes": publishes,
                                                     "format": 1}
    assert [r.key for r in actions.history(book)] == ["k1"]
    with pytest.raises(WorkbookError, match="is damaged"):
        layout.read_state(book)
    _previous_release(book, {"base": {"A": 1}, "version": "v1"}, 7)
    assert layout.read_state(book, levels=False) == {"version": "v1", "format": 1}


def test_the_state_of_an_earlier_release_reads_and_is_laid_out_on_save() -> None:
    book = MemoryBook({"Stock": []})
    base = {f"SKU-{n:05d}": n for n in range(3_000)}
    _previous_release(book, {"base": base, "version": "v1"}, layout._STATE_CHUNK)
    assert _column(book)[0] != statecells.HEAD
    state = layout.read_state(book)
    assert state == {"base": base, "version": "v1", "format": 1}
    layout.write_state(book, state)
    assert _column(book)[0] == statecells.HEAD
    assert layout.read_state(book) == {"base": base, "version": "v1", "format": 1}


# --- through the commands, on a real file ---------------------------------------------------

CATALOGUE = [StockItem(f"S-{n:05d}", f"Product {n}", "", 100 + n % 7) for n in range(3_000)]


def _state_rows(path) -> dict[str, bytes]:
    """The rows of the state sheet's XML, by row number, as saved."""
    with XlsxFile.open(path, writable=False) as book:
        part = book._entry(STATE).part
    with zipfile.ZipFile(path) as package:
        xml = package.read(part)
    return {m.group(1).decode(): m.group(0) for m in re.finditer(rb'<row r="(\d+)".*?</row>', xml)}


def _row_of(rows: dict[str, bytes], sku: str) -> str:
    return next(number for number, xml in rows.items() if f'"{sku}"'.encode() in xml)


def test_sync_and_publish_rewrite_only_the_state_cells_of_the_skus_they_move(
        stock_service, tmp_path) -> None:
    """After orders, Sync rewrites in the saved sheet XML the state cells of the SKUs
    sold and the row after the levels (the version), the others byte for byte, though a
    level got shorter; a Publish of one row the same."""
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    shop.run("sync", str(shop.workbook))
    before = _state_rows(shop.workbook)
    assert len(before) > 3
    tail = max(before, key=int)
    shop.sell(S_00010=95, S_02500=1)  # 103 -> 8: the text after it moves
    shop.run("sync", str(shop.workbook))
    after = _state_rows(shop.workbook)
    moved = {_row_of(after, "S-00010"), _row_of(after, "S-02500"), tail}
    assert {row for row in after if after[row] != before.get(row)} <= moved
    assert {row for row in before if after.get(row) != before[row]} == moved
    assert layout.read_state(XlsxFile.open(shop.workbook, writable=False))["base"] == shop.live()
    shop.edit(**{"S-01000": {"Received": 5}})
    shop.run("publish", str(shop.workbook))
    published = _state_rows(shop.workbook)
    assert {row for row in published if published[row] != after.get(row)} == \
        {_row_of(published, "S-01000"), tail}
    assert shop.live()["S-01000"] == 100 + 1000 % 7 + 5


@pytest.mark.libreoffice
def test_the_laid_out_state_survives_a_save_in_libreoffice(stock_service, tmp_path) -> None:
    """A merchant saves the workbook in LibreOffice: the state reads as it was, laid
    out still (patched by the next save), and a Sync after orders patches it."""

    from support.office import SOFFICE, resave

    if SOFFICE is None:
        pytest.skip("LibreOffice is not installed (soffice not on PATH)")
    shop = Shop(stock_service, tmp_path, items=CATALOGUE)
    shop.new()
    shop.run("sync", str(shop.workbook))
    resave(shop.workbook, tmp_path)
    with zipfile.ZipFile(shop.workbook) as package:  # LibreOffice's own file
        assert b'name="_xlstock" sheetId' in package.read("xl/workbook.xml")
        assert b">{&quot;base&quot;:{</t>" in package.read("xl/sharedStrings.xml")
    with XlsxFile.open(shop.workbook, writable=False) as book:
        levels = layout.read_state(book)["base"]
        assert levels == shop.live() and levels.cells is not None
    shop.sell(S_00010=95)
    shop.run("sync", str(shop.workbook))
    with XlsxFile.open(shop.workbook, writable=False) as book:
        levels = layout.read_state(book)["base"]
        assert levels == shop.live() and levels["S-00010"] == 8 and levels.cells is not None
