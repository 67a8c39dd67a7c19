"""The levels of the last Sync in the cells of the hidden state (issue 22): laid out so
that a save encodes again only the cells whose SKUs changed, the others kept as the
text that was read.

Column A of ``_xlstock`` holds one JSON text cut into cells, which every release reads
by joining the cells. When the levels are many (:data:`SLICED_FROM`), the text is cut
where the levels' cells begin and end: row 1 is :data:`HEAD` (``{"base":{``), each
following row holds whole ``"SKU":level`` pairs (from the second on with their leading
comma), and the rows from the first one starting ``}`` hold the rest of the state, in
cells of at most :data:`CELL_LIMIT` characters. The cells of the levels cover ranges of
SKUs that do not overlap (in order, not sorted inside once a cell is patched); a cell
whose SKUs changed is patched in its text (a level replaced, a pair cut or added at its
end) or, when many of its SKUs changed or a SKU is not plain, decoded and encoded again.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from xlstock.cells import unchanged

HEAD = '{"base":{'
"""Row 1 of the laid-out state: no text cut every :data:`CELL_LIMIT` characters is it."""
CELL_LIMIT = 30_000
"""Characters per state cell: under Excel's 32,767-character cell limit."""
FILL = 20_000
"""What a cell of levels is filled to when encoded whole: room for SKUs added later, so
that a few added SKUs split no cell (the rows below would move)."""
PATCH_MOST = 48
"""Changed SKUs of one cell patched in its text; more, and the cell is encoded again."""
SLICED_FROM = 1_000
"""Levels from which they are laid in cells of their own (below, the state is one
text, as the previous releases wrote it)."""
WHOLE_FROM = 4
"""A save that changed more than one SKU in :data:`WHOLE_FROM` encodes the levels whole."""

_COMPACT = (",", ":")


class SyncLevels(dict[str, int]):
    """The levels of the last Sync as the state keeps them: a dict that notes the SKUs
    set or removed (``touched``) since the cells of its text (``cells``) were read or
    written, so that a save encodes those alone. Reads are the dict's own (C speed);
    with no cells known, or once more than one SKU in :data:`WHOLE_FROM` changed, it
    notes nothing (the next save encodes the levels whole)."""

    __slots__ = ("touched", "cells")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.touched: set[str] = set()
        self.cells: LevelCells | None = None

    def _note(self, skus: Iterable[str], count: int = 1) -> None:
        if self.cells is None:
            return
        if WHOLE_FROM * (len(self.touched) + count) > len(self):
            self.cells, self.touched = None, set()  # encoded whole: nothing to note
            return
        self.touched.update(skus)

    def __setitem__(self, sku: str, level: int) -> None:
        self._note((sku,))
        super().__setitem__(sku, level)

    def __delitem__(self, sku: str) -> None:
        self._note((sku,))
        super().__delitem__(sku)

    def pop(self, sku: str, *default: Any) -> Any:
        self._note((sku,))
        return super().pop(sku, *default)

    def popitem(self) -> tuple[str, int]:
        item = super().popitem()
        self._note((item[0],))
        return item

    def setdefault(self, sku: str, level: Any = None) -> Any:
        self._note((sku,))
        return super().setdefault(sku, level)

    def update(self, other: Any = (), /, **more: Any) -> None:
        if self.cells is not None:
            if not isinstance(other, Mapping) or more:
                other = dict(other, **more)
                more = {}
            self._note(other, len(other))
        super().update(other, **more)

    def __ior__(self, other: Any) -> SyncLevels:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        self.cells, self.touched = None, set()  # nothing of the text read stays
        super().clear()


class LevelCells:
    """The cells of the levels as stored: each cell's text, the lowest and highest SKU
    it holds (the cells' ranges do not overlap), and whether it is plain (:func:`_plain`:
    its pairs found by their text)."""

    __slots__ = ("texts", "lows", "highs", "plain")

    def __init__(self, texts: list[str], lows: list[str], highs: list[str],
                 plain: list[bool]) -> None:
        self.texts, self.lows, self.highs, self.plain = texts, lows, highs, plain


def _plain(text: str, pairs: int) -> bool:
    """Whether ``text`` (``pairs`` pairs, maybe with a leading comma) holds no comma,
    colon or quote but those between its pairs: no backslash (so no quote is escaped),
    two quotes a pair, one colon a pair, one comma between pairs. A pair is then found
    by ``,"SKU":`` alone, and its level runs to the next comma."""
    lead = text.startswith(",")
    return ("\\" not in text and text.count('"') == 2 * pairs and text.count(":") == pairs
            and text.count(",") == pairs - 1 + lead)


def read(column: Sequence[Any], *, levels: bool = True) -> dict[str, Any] | None:
    """The state from column A laid out as :func:`lay_out` lays it (its ``base`` a
    :class:`SyncLevels` knowing its cells; ``levels=False``: without ``base``, its cells
    not decoded); ``None`` when the column is not laid out so (a state an earlier
    release wrote, or a small one): it is then read whole. Raises ``ValueError`` for
    cells that do not decode."""
    if not column or column[0] != HEAD:
        return None
    if not levels:
        row = next((row for row, value in enumerate(column)
                    if type(value) is str and value[:1] == "}"), len(column))
        state = json.loads(HEAD + "".join(v for v in column[row:] if type(v) is str))
        if not isinstance(state, dict):
            raise ValueError("not an object")
        del state["base"]
        return state
    return _read_levels(column)


def _read_levels(column: Sequence[Any]) -> dict[str, Any]:
    levels = SyncLevels()
    texts: list[str] = []
    lows: list[str] = []
    highs: list[str] = []
    plain: list[bool] = []
    count, row = 0, 1
    while row < len(column) and type(column[row]) is str and column[row][:1] != "}":
        text = column[row]
        lead = text.startswith(",")
        if lead != bool(texts):
            raise ValueError("a cell of levels without its comma, or with one too many")
        part = json.loads("{" + text[lead:] + "}")
        if not isinstance(part, dict) or not part:
            raise ValueError("an empty cell of levels")
        dict.update(levels, part)
        texts.append(text)
        lows.append(min(part))
        highs.append(max(part))
        plain.append(_plain(text, len(part)))
        count += len(part)
        row += 1
    rest = "".join(value for value in column[row:] if type(value) is str)
    state = json.loads(HEAD + rest)
    if not isinstance(state, dict):
        raise ValueError("not an object")
    apart = all(map(str.__lt__, highs, lows[1:]))  # the cells' ranges in order, apart
    if count == len(levels) and apart:  # else: a save encodes them whole
        levels.cells = LevelCells(texts, lows, highs, plain)
    state["base"] = levels
    return state


def lay_out(state: Mapping[str, Any]) -> tuple[list[str], LevelCells | None] | None:
    """Column A for ``state`` (the key ``base`` first, its levels in cells of their own)
    and the cells of its levels, to keep on them once written (:func:`written`);
    ``None`` when the state is to be one text (few or no levels, or a pair longer than
    a cell: :func:`~xlstock.workbook.layout.state_text`)."""
    levels = state.get("base")
    if not isinstance(levels, dict) or len(levels) < SLICED_FROM:
        return None
    cells = _patched(levels) if isinstance(levels, SyncLevels) else None
    if cells is None:
        cells = _encoded(sorted(levels), levels)
    if cells is None:
        return None
    rest = json.dumps({key: value for key, value in state.items() if key != "base"},
                      sort_keys=True, separators=_COMPACT)
    tail = "}" + ("," + rest[1:] if rest != "{}" else "}")
    column = [HEAD, *cells.texts]
    column.extend(tail[i:i + CELL_LIMIT] for i in range(0, len(tail), CELL_LIMIT))
    return column, cells


def written(state: Mapping[str, Any], cells: LevelCells | None) -> None:
    """The levels' cells are in the sheet now: the next save patches them."""
    levels = state.get("base")
    if isinstance(levels, SyncLevels):
        levels.cells, levels.touched = cells, set()


def _encoded(ordered: Sequence[str], levels: Mapping[str, Any]) -> LevelCells | None:
    """The cells of the SKUs ``ordered`` (sorted) with their ``levels``, each filled to
    about :data:`FILL` characters, from the second on with its leading comma; ``None``
    when one pair alone would pass a cell (a level that is no number)."""
    texts: list[str] = []
    lows: list[str] = []
    highs: list[str] = []
    plain: list[bool] = []
    start, size = 0, 500
    while start < len(ordered):
        skus = ordered[start:start + size]
        body = json.dumps(dict(zip(skus, map(levels.__getitem__, skus), strict=True)),
                          separators=_COMPACT)[1:-1]
        if len(body) >= CELL_LIMIT:
            if len(skus) == 1:
                return None
            size = len(skus) // 2
            continue
        text = "," + body if texts else body
        texts.append(text)
        lows.append(skus[0])
        highs.append(skus[-1])
        plain.append(_plain(text, len(skus)))
        start += len(skus)
        size = max(1, len(skus) * FILL // max(len(body), 1))
    return LevelCells(texts, lows, highs, plain)


def _patched(levels: SyncLevels) -> LevelCells | None:
    """The cells of ``levels`` from those read or last written, the cells holding a
    changed SKU alone encoded again; ``None`` when they are to be encoded whole (none
    known, or more than one SKU in :data:`WHOLE_FROM` changed)."""
    known, touched = levels.cells, levels.touched
    if known is None or not known.texts or WHOLE_FROM * len(touched) > len(levels):
        return None
    lows = known.lows
    by_cell: dict[int, list[str]] = {}
    for sku in touched:
        by_cell.setdefault(max(0, bisect.bisect_right(lows, sku) - 1), []).append(sku)
    texts, new_lows, highs, plain = (list(known.texts), list(lows), list(known.highs),
                                     list(known.plain))
    for index in sorted(by_cell, reverse=True):  # a cell split or dropped moves those below
        skus = sorted(by_cell[index])
        patch = (_patch(texts[index], skus, levels)
                 if plain[index] and len(skus) <= PATCH_MOST else None)
        if patch == "":  # every SKU of the cell gone: so is the cell
            del texts[index], new_lows[index], highs[index], plain[index]
            continue
        if patch is not None:  # a plain cell patched with whole levels stays plain
            texts[index] = patch
            added = [sku for sku in skus if sku in levels]
            if added:
                new_lows[index] = min(new_lows[index], added[0])
                highs[index] = max(highs[index], added[-1])
            continue
        again = _encoded_again(texts[index], skus, levels)
        if again is None:
            return None
        texts[index:index + 1] = again.texts
        new_lows[index:index + 1] = again.lows
        highs[index:index + 1] = again.highs
        plain[index:index + 1] = again.plain
    return _commas(LevelCells(texts, new_lows, highs, plain))


def _patch(text: str, skus: Iterable[str], levels: Mapping[str, Any]) -> str | None:
    """``text`` (a plain cell) with each of ``skus`` set to its level, cut (gone from
    ``levels``) or added at its end; ``None`` when a level is not a whole number, a SKU
    added is not plain, or the cell would pass :data:`CELL_LIMIT`."""
    work = text if text.startswith(",") else "," + text
    for sku in skus:
        key = "," + json.dumps(sku) + ":"
        at = work.find(key)
        gone = sku not in levels
        level = None if gone else levels[sku]
        if not gone and type(level) is not int:
            return None
        if at < 0:
            if gone:
                continue  # neither here nor in the levels
            if not _plain(key[1:-1] + ":0", 1):
                return None
            work += key + str(level)
            continue
        end = work.find(",", at + len(key))
        end = len(work) if end < 0 else end
        work = (work[:at] + work[end:] if gone
                else work[:at + len(key)] + str(level) + work[end:])
    return work if len(work) < CELL_LIMIT else None


def _encoded_again(text: str, skus: Iterable[str],
                   levels: Mapping[str, Any]) -> LevelCells | None:
    """The cell ``text`` decoded, ``skus`` laid into it from ``levels``, and encoded
    sorted: one cell, none (every SKU gone) or several (grown past a cell)."""
    part = json.loads("{" + text.removeprefix(",") + "}")
    for sku in skus:
        if sku in levels:
            part[sku] = levels[sku]
        else:
            part.pop(sku, None)
    return _encoded(sorted(part), part)


def _commas(cells: LevelCells) -> LevelCells:
    """``cells`` with a leading comma on each but the first."""
    texts = cells.texts
    for index, text in enumerate(texts):
        lead = text.startswith(",")
        if lead and not index:
            texts[index] = text[1:]  # _plain counts the leading comma: still as plain
        elif not lead and index:
            texts[index] = "," + text
    return cells


def runs(before: Sequence[Any], after: Sequence[Any]) -> Iterator[tuple[int, list[Any]]]:
    """The runs of rows (0-based first row, values) where ``after`` differs from
    ``before`` (as :func:`~xlstock.cells.unchanged` tells, the write check of every
    sheet); ``after`` shorter clears the rows below it."""
    height = max(len(before), len(after))
    run: list[Any] = []
    top = 0
    for row in range(height):
        old = before[row] if row < len(before) else None
        new = after[row] if row < len(after) else None
        if unchanged(old, new):
            if run:
                yield top, run
                run = []
            continue
        if not run:
            top = row
        run.append(new)
    if run:
        yield top, run
