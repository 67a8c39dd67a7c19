"""Plan a publish from the sheet's edits, the levels seen at the last Sync and the live
levels (contract section 2b). Pure: no I/O, no Excel, no HTTP.

For each SKU, with B its level at the last Sync and R its live level now:

=================  =======================  ===========================
the row has        policy ``rebase``        policy ``strict``
=================  =======================  ===========================
nothing            R                        R
Received = d       R + d                    R + d
New level = L      L + (R - B)              L if R = B, else a conflict
=================  =======================  ===========================
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xlstock import i18n
from xlstock.errors import RowProblem
from xlstock.i18n import N_, _
from xlstock.model import MAX_LEVEL, ValueProblem, clean_sku, parse_quantity, usual_sku_cells

REBASE = "rebase"
STRICT = "strict"

STATUS_OK = N_("ok")
STATUS_CHANGED = N_("changed")
STATUS_NEW = N_("new")
STATUS_NOT_ONLINE = N_("not in the shop online")
STATUS_WORDS = (STATUS_OK, STATUS_CHANGED, STATUS_NEW, STATUS_NOT_ONLINE)
"""The Status words, by their keys (the English words); a workbook shows each in its
own language (:func:`status_text`), and reading accepts either (:func:`status_key`)."""


@functools.cache
def status_words(language: str) -> dict[str, str]:
    """Each Status key -> its word in ``language`` (``changed`` -> ``modifié``)."""
    return {key: i18n.translate(key, language) for key in STATUS_WORDS}


def status_text(key: str, language: str) -> str:
    """A Status key as a workbook of ``language`` writes it."""
    return status_words(language).get(key, key)


@functools.cache
def _status_keys() -> dict[str, str]:
    return {word.casefold(): key for language in i18n.LANGUAGES
            for key, word in status_words(language).items()}


_EXACT: dict[Any, str | None] = {}
"""The words as xlstock writes them (and a blank), for the usual cell: one lookup."""


def status_key(value: Any) -> str | None:
    """The Status key of a cell's word in any language (``modifié`` and ``changed`` ->
    ``changed``, case and spaces aside); ``None`` for anything else (an error, a note,
    a blank). Called for every row of a Sync: the usual cell costs one lookup."""
    if not _EXACT:
        _EXACT.update({None: None, "": None})
        _EXACT.update({word: key for language in i18n.LANGUAGES
                       for key, word in status_words(language).items()})
    try:
        return _EXACT[value]
    except (KeyError, TypeError):
        pass
    if not isinstance(value, str):
        return None
    return _status_keys().get(value.strip().casefold())


@dataclass(slots=True, unsafe_hash=True)  # a value, never changed; not frozen: 2x faster to make
class SheetRow:
    """One data row of sheet Stock after parsing: the SKU and the merchant's edits."""

    row: int
    sku: str | None
    received: int | None = None
    new_level: int | None = None

    @property
    def has_edit(self) -> bool:
        return self.received is not None or self.new_level is not None


@dataclass(slots=True, unsafe_hash=True)  # a value, never changed; not frozen: 2x faster to make
class RawRow:
    """One data row as the sheet holds it (cell values, not yet checked)."""

    row: int
    sku: Any
    received: Any = None
    new_level: Any = None


def parse_rows(raw_rows: Iterable[RawRow], *, duplicates: bool = True
               ) -> tuple[list[SheetRow], list[RowProblem]]:
    """Check every row's SKU and quantities; return the parsed rows and every problem.

    Row-local rules: SKU text rules (:func:`xlstock.model.clean_sku`), whole numbers,
    New level not below zero, not both Received and New level, no edit without a SKU.
    Sheet-wide: a SKU on two rows is a problem on both (``duplicates=False`` leaves
    that to the caller).
    """
    rows: list[SheetRow] = []
    problems: list[RowProblem] = []
    for raw in raw_rows:
        sku_text = raw.sku if isinstance(raw.sku, str) else None
        try:
            sku = clean_sku(raw.sku)
        except ValueProblem as exc:
            problems.append(RowProblem(raw.row, sku_text, exc.message))
            continue
        if raw.received is None and raw.new_level is None:  # most rows: no edit
            if sku is not None:
                rows.append(SheetRow(raw.row, sku))
            continue
        try:
            received = parse_quantity(raw.received, what=_("Received"))
            new_level = parse_quantity(raw.new_level, what=_("New level"), minimum=0)
        except ValueProblem as exc:
            problems.append(RowProblem(raw.row, sku, exc.message))
            continue
        if sku is None:
            if received is not None or new_level is not None:
                problems.append(RowProblem(
                    raw.row, None,
                    _("Received/New level filled but SKU is blank; type the SKU or clear the "
                      "row"),
                ))
            continue
        if received is not None and new_level is not None:
            problems.append(RowProblem(
                raw.row, sku,
                _("both Received and New level are filled; keep one (Received adds a "
                  "delivery, New level sets a counted level)"),
            ))
            continue
        rows.append(SheetRow(raw.row, sku, received, new_level))
    if duplicates:
        problems.extend(_duplicates(rows))
    return rows, problems


def parse_columns(skus: Sequence[Any], received: Sequence[Any], new_level: Sequence[Any],
                  *, first_row: int = 2) -> tuple[list[SheetRow], list[RowProblem]]:
    """:func:`parse_rows` of the rows given as columns (row ``first_row`` first), the
    same rows and problems. When every SKU is in the usual form (told by C loops,
    :func:`xlstock.model.usual_sku_cells`), only the rows with an edit go through the rules
    one by one: at 100,000 rows a fifth of the time."""
    if not len(skus) == len(received) == len(new_level):
        raise ValueError("the columns differ in length")
    if not usual_sku_cells(skus):
        return parse_rows(map(RawRow, range(first_row, first_row + len(skus)), skus,
                              received, new_level))
    edited = {i for i, value in enumerate(received) if value is not None}
    edited.update(i for i, value in enumerate(new_level) if value is not None)
    rows: list[SheetRow] = []
    problems: list[RowProblem] = []
    for index, sku in enumerate(skus):
        if index in edited:
            parsed, found = parse_rows([RawRow(index + first_row, sku, received[index],
                                               new_level[index])], duplicates=False)
            rows.extend(parsed)
            problems.extend(found)
        elif sku is not None:
            rows.append(SheetRow(index + first_row, sku))
    problems.extend(_duplicates(rows))
    return rows, problems


def rows_to_plan(skus: Sequence[Any], received: Sequence[Any], new_level: Sequence[Any],
                 base: Mapping[str, int], live: Mapping[str, int], *,
                 online: Sequence[Any], change: Iterable[Any], status: Iterable[Any],
                 resting: str) -> list[int] | None:
    """The rows (0-based, in order) whose plan can differ from "level stays, Change
    empty, Status ``resting``" (the word ``ok`` as the workbook writes it), or ``None``
    when the SKU column is not in the usual form (every row then goes through the rules).

    A row is left out only when all of this holds: it has no edit, its SKU is online, its
    live level is its Sync level and in range, its SKU is on no other row, and its Online,
    Change and Status cells already hold the live level, nothing and ``resting``. Planning
    the rest gives the plan of every row (a row left out is planned as "level stays, ok"),
    at the cost of C loops over the columns and Python work for the rows picked only.
    ``change`` and ``status`` are gone through once (a column made as it is read: at
    1,000,000 rows two lists of 8 MB less at Preview's and Publish's peak)."""
    if not usual_sku_cells(skus):
        return None
    live_levels, _ = _in_order(skus, live)
    base_levels, unique = _in_order(skus, base)
    picked = set(_where(map(operator.is_not, received, itertools.repeat(None))))
    picked.update(_where(map(operator.is_not, new_level, itertools.repeat(None))))
    picked.update(_where(map(operator.ne, live_levels, base_levels)))  # moved online
    picked.update(_where(map(operator.ne, online, live_levels)))  # and every SKU not online
    picked.update(_where(map(operator.is_not, map(type, online), itertools.repeat(int))))  # 2.0
    picked.update(_where(map(operator.is_not, change, itertools.repeat(None))))
    picked.update(_where(map(operator.ne, status, itertools.repeat(resting))))
    if live and (min(live.values()) < 0 or max(live.values()) > MAX_LEVEL):
        picked.update(i for i, level in enumerate(live_levels)
                      if level is not None and not 0 <= level <= MAX_LEVEL)
    if not unique:  # the SKUs of a mapping's keys are on one row each
        picked.update(_duplicate_rows(skus))
    return sorted(picked)


def _in_order(skus: Sequence[Any], levels: Mapping[str, int]
              ) -> tuple[list[int | None], bool]:
    """The level of each row's SKU, and whether ``levels`` lists the sheet's SKUs first,
    in the sheet's order (the levels a Sync remembers, and the live levels laid over
    them): its values are then taken in order, told by one comparison in C, and no SKU
    is on two rows; else they are looked up one by one (at 1,000,000 SKUs a fifth of a
    second)."""
    count = len(skus)
    if list(itertools.islice(levels, count)) == skus:
        return list(itertools.islice(levels.values(), count)), True
    return list(map(levels.get, skus)), False


def _where(flags: Iterable[bool]) -> Iterator[int]:
    """The positions of the true ``flags``, in a C loop."""
    return itertools.compress(itertools.count(), flags)


def _duplicate_rows(skus: Sequence[Any]) -> list[int]:
    """The rows whose SKU is on another row too (told by a set, in C, for the usual
    sheet that has none)."""
    present = list(filter(None, skus))  # the usual SKU is never "", only None is left out
    if len(set(present)) == len(present):
        return []
    twice = {sku for sku, count in Counter(present).items() if count > 1}
    return [index for index, sku in enumerate(skus) if sku in twice]


def parse_picked(skus: Sequence[Any], received: Sequence[Any], new_level: Sequence[Any],
                 picked: Sequence[int], *, first_row: int = 2
                 ) -> tuple[list[SheetRow], list[RowProblem]]:
    """:func:`parse_rows` of the rows ``picked`` (0-based) of the columns: the rows and
    problems :func:`parse_columns` gives for them when ``picked`` holds every row whose
    SKU is on another row too (:func:`rows_to_plan` picks them)."""
    return parse_rows(RawRow(index + first_row, skus[index], received[index], new_level[index])
                      for index in picked)


def _duplicates(rows: Sequence[SheetRow]) -> list[RowProblem]:
    if len({row.sku for row in rows}) == len(rows):  # the usual sheet: none
        return []
    seen: dict[str, list[int]] = {}
    for row in rows:
        assert row.sku is not None
        seen.setdefault(row.sku, []).append(row.row)
    problems = []
    for row in rows:
        assert row.sku is not None
        numbers = seen[row.sku]
        if len(numbers) > 1:
            others = ", ".join(str(n) for n in numbers if n != row.row)
            problems.append(RowProblem(
                row.row, row.sku, _("SKU is also on row {rows}; keep one row per SKU",
                                    rows=others)
            ))
    return problems


class SkuHints:
    """Near misses for SKUs the shop does not know: the same key in another case, or
    the same digits without their leading zeros (a SKU typed as a number). Built once
    per plan, so each lookup is constant time."""

    def __init__(self, online: Iterable[str], left_out: Mapping[str, str] | None = None
                 ) -> None:
        self._online = online
        self._left_out = left_out or {}
        self._by_case: dict[str, str] = {}
        self._by_digits: dict[str, str] = {}
        self._built = False

    def _build(self) -> None:
        """The lookups, made at the first SKU the shop does not know (most plans have
        none, and a shop of 100,000 SKUs costs a tenth of a second to index)."""
        for candidate in self._online:
            self._by_case.setdefault(candidate.casefold(), candidate)
            if candidate.isdigit():
                self._by_digits.setdefault(candidate.lstrip("0"), candidate)
        self._built = True

    def __call__(self, sku: str) -> str:
        return self.near_miss(sku) or (
            _("; check the spelling, or add the product to the shop first")
        )

    def near_miss(self, sku: str) -> str:
        """The hint for a near miss, or "" when the shop has nothing close."""
        reason = self._left_out.get(sku)
        if reason:
            return _("; the shop has it, but {reason}", reason=reason)
        if not self._built:
            self._build()
        candidate = self._by_case.get(sku.casefold())
        if candidate is not None and candidate != sku:
            return _("; the shop has {sku} (case differs): type it exactly so",
                     sku=repr(candidate))
        if sku.isdigit():
            candidate = self._by_digits.get(sku.lstrip("0"))
            if candidate is not None and candidate != sku:
                return _("; the shop has {sku}: format column SKU as Text and type {typed}",
                         sku=repr(candidate), typed=candidate)
        return ""


def sku_hint(sku: str, online: Iterable[str]) -> str:
    """A hint for one SKU the shop does not know (see :class:`SkuHints`)."""
    return SkuHints(online)(sku)


class RowConflict(RowProblem):
    """A row whose level moved online since Sync, under policy ``strict``."""


@dataclass(slots=True, unsafe_hash=True)  # a value, never changed; not frozen: 2x faster to make
class PlannedRow:
    """What Publish would do to one row."""

    row: int
    sku: str
    base: int | None
    live: int | None
    target: int | None
    note: str = ""
    status: str = STATUS_OK
    delivery: bool = False
    """The row's edit is a delivery (Received): published as a change in units."""

    @property
    def change(self) -> int:
        if self.target is None or self.live is None:
            return 0
        return self.target - self.live

    def line(self) -> PublishLine:
        """What a connector sends for this row (a changed row: live and target known)."""
        assert self.live is not None and self.target is not None
        return PublishLine(self.sku, self.live, self.target,
                           self.target - self.live if self.delivery else None)


@dataclass(frozen=True, slots=True)
class PublishLine:
    """One SKU of a publish, as every connector sends it.

    A delivery is a change in units (``add``): it is added to whatever the level is when
    it arrives, so it never conflicts and no sale is ever overwritten by it. A count is a
    level (``target``) checked against the level it was planned from (``planned_from``):
    the shop applies it only if the level has not moved since (a compare-and-swap).
    ``planned_from`` is kept for a delivery too, for the records."""

    sku: str
    planned_from: int
    target: int
    add: int | None = None

    @property
    def is_delta(self) -> bool:
        return self.add is not None

    def as_list(self) -> list[int | None]:
        """The line as the workbook's hidden state keeps it: ``[from, target, add]``."""
        return [self.planned_from, self.target, self.add]

    @classmethod
    def from_list(cls, sku: str, value: Sequence[Any]) -> PublishLine:
        """The inverse of :meth:`as_list` (a state written before deltas has two values:
        a checked set). Raises ``TypeError``/``ValueError`` for anything else."""
        if not isinstance(value, (list, tuple)) or len(value) not in (2, 3):
            raise ValueError(f"not a publish line: {value!r}")
        planned_from, target = (_whole(v) for v in value[:2])
        add = _whole(value[2]) if len(value) == 3 and value[2] is not None else None
        if add is not None and add != target - planned_from:
            raise ValueError(f"inconsistent publish line: {value!r}")
        return cls(sku, planned_from, target, add)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not a whole number: {value!r}")
    return value


@dataclass
class PublishPlan:
    """The publish plan: one :class:`PlannedRow` per sheet row, the problems and
    conflicts that block it, and the stock file's levels. A plan is final once
    :func:`plan_publish` returns it (``changed`` is worked out once): nothing changes
    its lists afterwards."""

    rows: list[PlannedRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    conflicts: list[RowProblem] = field(default_factory=list)
    planned: list[int] | None = None
    """The sheet rows planned, in order (:func:`rows_to_plan`); ``None``: every row.
    A row not planned keeps its level, an empty Change and Status ``ok``."""
    _changed: list[PlannedRow] | None = field(default=None, init=False, repr=False,
                                              compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.conflicts

    @property
    def levels(self) -> dict[str, int]:
        """SKU -> level to publish, for every sheet SKU the shop knows."""
        return {r.sku: r.target for r in self.rows if r.target is not None}

    @property
    def changed(self) -> list[PlannedRow]:
        """The rows whose level changes (worked out once: :func:`plan_publish` has
        finished the plan before anyone asks)."""
        if self._changed is None:
            self._changed = [r for r in self.rows if r.change]
        return self._changed

    def lines(self) -> list[PublishLine]:
        """What a connector sends: one :class:`PublishLine` per changed row, by SKU."""
        return sorted((r.line() for r in self.changed), key=_line_sku)

    @property
    def units_added(self) -> int:
        return sum(r.change for r in self.changed if r.change > 0)

    @property
    def units_removed(self) -> int:
        return -sum(r.change for r in self.changed if r.change < 0)

    @property
    def online_sales(self) -> int:
        """Units that left the shop online since Sync (on the rows of the sheet)."""
        return sum(
            r.base - r.live
            for r in self.rows
            if r.base is not None and r.live is not None and r.live < r.base
        )


def _line_sku(line: PublishLine) -> str:
    return line.sku


def plan_publish(
    rows: Sequence[SheetRow],
    base: Mapping[str, int],
    live: Mapping[str, int],
    *,
    policy: str = REBASE,
    problems: Sequence[RowProblem] = (),
    from_online: Collection[str] = (),
    planned: list[int] | None = None,
    left_out: Mapping[str, str] | None = None,
) -> PublishPlan:
    """Apply the table of contract 2b to every row.

    ``base`` holds the levels at the last Sync, ``live`` the levels now; ``problems``
    are those :func:`parse_rows` found, carried into the plan. A SKU the shop does not
    know is a problem when its row has an edit; without one it is only flagged.
    ``from_online`` names the SKUs whose base is the sheet's Online cell because the
    memory of the last Sync lost them (their note says so). A count for a SKU with no
    base at all is refused: it could only be sent as an absolute level, over any sale
    since the sheet was filled in. ``planned``: the sheet rows ``rows`` are, when they are
    only those :func:`rows_to_plan` picked.
    """
    if policy not in (REBASE, STRICT):
        raise ValueError(f"unknown conflict policy {policy!r}")
    plan = PublishPlan(problems=list(problems), planned=planned)
    blocked = {p.row for p in problems}
    hint = SkuHints(live, left_out)
    for row in rows:
        assert row.sku is not None
        if row.row in blocked:
            continue
        b = base.get(row.sku)
        r = live.get(row.sku)
        if r is None:
            if row.has_edit:
                plan.problems.append(RowProblem(
                    row.row, row.sku, _("SKU is not in the shop online{hint}",
                                        hint=hint(row.sku))
                ))
            else:
                plan.rows.append(PlannedRow(
                    row.row, row.sku, b, None, None, status=STATUS_NOT_ONLINE,
                    note=_("kept; not published"),
                ))
            continue
        if row.received is None and row.new_level is None and 0 <= r <= MAX_LEVEL:
            plan.rows.append(PlannedRow(row.row, row.sku, b, r, r))  # most rows: no edit
            continue
        outcome = _plan_row(row, b, r, policy, row.sku in from_online)
        if isinstance(outcome, RowConflict):
            plan.conflicts.append(outcome)
        elif isinstance(outcome, RowProblem):
            plan.problems.append(outcome)
        else:
            plan.rows.append(outcome)
    plan.problems.sort(key=lambda p: p.row or 0)
    return plan


def _plan_row(row: SheetRow, b: int | None, r: int, policy: str,
              b_from_online: bool = False) -> PlannedRow | RowProblem:
    """The plan of one row off the fast path (an edit, or a live level out of range):
    its target by :func:`_received_target` or :func:`_counted_target` (the live level
    without an edit), refused beyond :data:`MAX_LEVEL`."""
    assert row.sku is not None
    if row.received is not None:
        planned = _received_target(row, r)
    elif row.new_level is not None:
        planned = _counted_target(row, b, r, policy, b_from_online)
    else:
        planned = r, ""
    if isinstance(planned, RowProblem):
        return planned
    target, note = planned
    if target > MAX_LEVEL:
        return RowProblem(row.row, row.sku, _("the level would be {target}, beyond {limit:n}",
                                              target=target, limit=MAX_LEVEL))
    status = STATUS_CHANGED if target != r else STATUS_OK
    return PlannedRow(row.row, row.sku, b, r, target, note=note, status=status,
                      delivery=row.received is not None)


def _received_target(row: SheetRow, r: int) -> tuple[int, str] | RowProblem:
    """The level and note of a delivery (Received, units added to the live level ``r``;
    a negative one removes units), refused when it would leave less than nothing."""
    assert row.sku is not None and row.received is not None
    target = r + row.received
    if target < 0:
        return RowProblem(
            row.row, row.sku,
            _("Received {received} would leave {target} in stock (online now {online}); "
              "correct Received", received=row.received, target=target, online=r),
        )
    note: str = (_("+{count:n} received", count=row.received) if row.received >= 0 else
            _("{count:n} removed", count=row.received))
    return target, note


def _counted_target(row: SheetRow, b: int | None, r: int, policy: str,
                    b_from_online: bool) -> tuple[int, str] | RowProblem:
    """The level and note of a count (New level): the count moved by what changed online
    since Sync (``r - b``). Refused without a Sync level ``b``, a conflict under policy
    strict when the live level moved, refused when the move takes it below zero."""
    assert row.sku is not None and row.new_level is not None
    if b is None:
        return RowProblem(
            row.row, row.sku,
            _("New level cannot be checked against the sales since your last Sync: "
              "xlstock has no level from a Sync for this SKU and Online holds no whole "
              "number. Sync first, then type the count again"),
        )
    if policy == STRICT and r != b:
        return RowConflict(
            row.row, row.sku,
            _("conflict: online level moved from {synced} to {online} since Sync; "
              "Sync and recount, or publish with policy rebase", synced=b, online=r),
        )
    sold = "" if b == r else _online_move(b, r)
    target = row.new_level + (r - b)
    note = (_("counted {level:n}, {sold}", level=row.new_level, sold=sold) if sold
            else _("counted {level:n}", level=row.new_level))
    if b_from_online:
        note = _("{note} (planned from Online {synced}: xlstock's memory of the last "
                 "Sync is gone)", note=note, synced=b)
    if target < 0:
        return RowProblem(
            row.row, row.sku,
            _("counted level {level} {sold} gives {target}, below zero; recount",
              level=row.new_level, sold=sold, target=target),
        )
    return target, note


def _online_move(b: int, r: int) -> str:
    if r < b:
        return _("less {count:n} sold online since Sync", count=b - r)
    return _("plus {count:n} added online since Sync", count=r - b)


@dataclass(frozen=True)
class UndoRow:
    """What undoing one row of a publish does: the live level now, the change, the level
    after (``line`` is what is sent; ``None`` when the row is refused, ``problem`` says
    why)."""

    sku: str
    live: int | None
    change: int
    line: PublishLine | None
    problem: str = ""

    @property
    def target(self) -> int | None:
        return None if self.line is None else self.line.target


def plan_undo(published: Mapping[str, PublishLine], after: Mapping[str, int],
              live: Mapping[str, int], *, policy: str = REBASE) -> list[UndoRow]:
    """Reverse a publish on today's live levels, keeping every sale since.

    A delivery of d is reversed by a change of -d units. A count that moved a level from
    a to b (``after`` holds b when the shop said what it left) is reversed by moving it
    back by (a - b): under ``rebase`` a change in units, which keeps the sales since;
    under ``strict`` a level checked against b, refused when the level moved since. A
    row that would go below zero, or whose SKU is gone, is refused. Pure."""
    if policy not in (REBASE, STRICT):
        raise ValueError(f"unknown conflict policy {policy!r}")
    rows: list[UndoRow] = []
    for sku in sorted(published):
        line = published[sku]
        r = live.get(sku)
        left = after.get(sku, line.target)
        back = -line.add if line.add is not None else line.planned_from - left
        if r is None:
            rows.append(UndoRow(sku, None, back, None, _("no longer in the shop online")))
            continue
        if line.add is None and policy == STRICT:
            if r != left:
                rows.append(UndoRow(sku, r, back, None,
                                    _("conflict: online level moved from {published} to "
                                      "{online} since the publish; undo with policy rebase",
                                      published=left, online=r)))
                continue
            undo = PublishLine(sku, r, line.planned_from)
        else:
            undo = PublishLine(sku, r, r + back, back)
        if undo.target < 0:
            rows.append(UndoRow(sku, r, back, None,
                                _("undoing would leave {target}, below zero (online now "
                                  "{online})", target=undo.target, online=r)))
            continue
        if undo.target > MAX_LEVEL:
            rows.append(UndoRow(sku, r, back, None,
                                _("undoing would leave {target}, beyond {limit:n}",
                                  target=undo.target, limit=MAX_LEVEL)))
            continue
        rows.append(UndoRow(sku, r, back, undo if back else None))
    return rows
