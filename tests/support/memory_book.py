"""Doubles for the actions' two edges, without a file and without a network:
:class:`MemoryBook`, a workbook adapter (the ``WorkbookAdapter`` Protocol of
``xlstock.workbook.base``) holding its sheets in dicts, and :class:`FakeStockService`, a
client (the ``StockServiceClient`` Protocol of ``xlstock.actions``) holding the shop's
live levels and applying a stock file the way the service does: all of it, or nothing
when an item's ``from`` is not its live level any more."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xlstock.errors import StaleVersion, WorkbookError
from xlstock.model import Snapshot, StockItem
from xlstock.planner import PublishLine
from xlstock.stockfile import dumps
from xlstock.workbook.base import STOCK_SHEET, Grid
from xlstock.workbook.layout import (
    SETTING_POLICY,
    SETTING_SERVICE,
    SETTING_SHOP,
    STOCK_HEADERS,
)

SHOP = "https://shop.example"
Cells = dict[tuple[int, int], Any]


class MemoryBook:
    """A workbook as a dict of sheets, each a dict of ``(row, column) -> value``.

    ``writes`` records every ``write_block`` as ``(sheet, top, left, rows)``; ``saved``
    is what the last ``save()`` made durable (``None`` before the first)."""

    def __init__(self, sheets: Mapping[str, Sequence[Sequence[Any]]] | None = None) -> None:
        self.sheets: dict[str, Cells] = {}
        self.hidden: set[str] = set()
        self.writes: list[tuple[str, int, int, list[list[Any]]]] = []
        self.saves = 0
        self.saved: dict[str, Cells] | None = None
        for name, rows in (sheets or {}).items():
            self.sheets[name] = {}
            self._put(name, 1, 1, rows)

    @classmethod
    def stock(cls, rows: Sequence[Sequence[Any]] = (), *, shop: str = SHOP,
              policy: str = "rebase") -> MemoryBook:
        """A workbook as ``xlstock new`` makes it: sheet Stock with the template's
        headers and ``rows``, Settings naming ``shop`` and ``policy``, an empty Log."""
        return cls({
            STOCK_SHEET: [list(STOCK_HEADERS), *rows],
            "Settings": [[SETTING_SERVICE, "http://127.0.0.1:8765"], [SETTING_SHOP, shop],
                         [SETTING_POLICY, policy]],
            "Log": [],
        })

    # --- the adapter ---------------------------------------------------------------------

    scattered_writes = True
    shares_rows = False

    @property
    def label(self) -> str:
        return "memory.xlsx"

    def sheet_names(self) -> list[str]:
        return list(self.sheets)

    def read_sheet(self, name: str, *, shared: bool = False) -> Grid:
        cells = self._sheet(name)
        used = [key for key, value in cells.items() if value is not None]
        if not used:
            return []
        height = max(row for row, _ in used)
        width = max(column for _, column in used)
        return [[cells.get((row, column)) for column in range(1, width + 1)]
                for row in range(1, height + 1)]

    def write_block(self, name: str, top: int, left: int, rows: Sequence[Sequence[Any]]) -> None:
        self._sheet(name)
        self.writes.append((name, top, left, [list(row) for row in rows]))
        self._put(name, top, left, rows)

    def add_sheet(self, name: str, *, hidden: bool = False) -> None:
        assert name not in self.sheets, name
        self.sheets[name] = {}
        if hidden:
            self.hidden.add(name)

    def save(self) -> None:
        self.saves += 1
        self.saved = copy.deepcopy(self.sheets)

    # --- for the tests ------------------------------------------------------------------

    def column(self, header: str, sheet: str = STOCK_SHEET) -> list[Any]:
        """The values under ``header`` (row 1), from row 2 down to the last used row."""
        grid = self.read_sheet(sheet)
        index = grid[0].index(header)
        return [row[index] for row in grid[1:]]

    def set(self, sheet: str, row: int, column: int, value: Any) -> None:
        """Type a value, as a merchant does (not recorded in ``writes``)."""
        self.sheets[sheet][row, column] = value

    def _sheet(self, name: str) -> Cells:
        if name not in self.sheets:
            raise WorkbookError(f"{self.label} has no sheet {name!r}")
        return self.sheets[name]

    def _put(self, name: str, top: int, left: int, rows: Sequence[Sequence[Any]]) -> None:
        cells = self.sheets[name]
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    cells.pop((top + r, left + c), None)
                else:
                    cells[top + r, left + c] = value


@dataclass(frozen=True)
class Published:
    """What the fake service answers a publish with."""

    version: str
    applied: bool = True
    levels_after: dict[str, int] = field(default_factory=dict)


@dataclass
class FakeStockService:
    """The shop's live levels, served and published as the stock service does.

    ``before_publish`` runs just before a publish is checked (a storefront sale landing
    between the read and the publish); ``bodies`` holds every stock file applied."""

    levels: dict[str, int]
    names: dict[str, str] = field(default_factory=dict)
    shop: str = SHOP
    number: int = 1
    bodies: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, Published] = field(default_factory=dict)
    before_publish: Callable[[FakeStockService], None] | None = None

    @property
    def etag(self) -> str:
        return f'"{self.number}"'

    def sell(self, sku: str, qty: int) -> None:
        """A storefront order: the level drops, the version moves on."""
        self.levels[sku] -= qty
        self.number += 1

    def read_levels(self, if_none_match: str | None = None, *,
                    names: bool = True) -> Snapshot | None:
        if if_none_match == self.etag:
            return None
        items = {sku: StockItem(sku, self.names.get(sku, f"Product {sku}") if names else "",
                                "", qty)
                 for sku, qty in sorted(self.levels.items())}
        return Snapshot(self.shop, self.etag, items)

    def publish_lines(self, lines: Sequence[PublishLine], key: str) -> Published:
        """A count applies only on the level it was planned from; a delivery adds to
        whatever the level is; all or nothing, as the stock service does."""
        if key in self.outcomes:
            return self.outcomes[key]
        if self.before_publish is not None:
            self.before_publish(self)
        document = json.loads(dumps(self.shop, {line.sku: line.target for line in lines},
                                    {line.sku: line.planned_from for line in lines},
                                    {line.sku: line.add for line in lines
                                     if line.add is not None}))
        moved = [line.sku for line in lines
                 if line.add is None and self.levels.get(line.sku) != line.planned_from]
        if moved:
            self.refused.append(document)
            raise StaleVersion(f"the levels of {', '.join(moved)} moved", status=412)
        after = {}
        for line in lines:
            level = self.levels[line.sku]
            after[line.sku] = level + line.add if line.add is not None else line.target
        self.levels.update(after)
        self.number += 1
        self.bodies.append(document)
        self.outcomes[key] = Published(self.etag, levels_after=after)
        return self.outcomes[key]

    def publish_outcome(self, key: str) -> Published | None:
        return self.outcomes.get(key)
