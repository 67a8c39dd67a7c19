"""Laws of the pure core, checked with Hypothesis.

- no edits: the plan publishes the live levels unchanged;
- publish then sync: the sheet gets the service's levels, and a second publish sends nothing;
- units are conserved under rebase: published minus live = Received + (New level - B);
- strict equals rebase when nothing moved online, and otherwise only adds conflicts;
- a plan never holds a level below zero or beyond the limit;
- no cell value, however hostile, makes parsing or planning crash, and every row is
  accounted for once;
- the stock file is deterministic, injective, valid UTF-8 JSON and round-trips.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlstock.cells import EXCEL_ERRORS, NO_CACHE, CellError, Formula
from xlstock.model import (
    MAX_LEVEL,
    MAX_SKU_LENGTH,
    ValueProblem,
    clean_sku,
    has_control_characters,
    parse_quantity,
)
from xlstock.planner import REBASE, STRICT, PublishPlan, RawRow, parse_rows, plan_publish
from xlstock.stockfile import dumps, loads_levels

SHOP = "https://shop.example"
LAWS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

skus = st.text(alphabet="ABab0123-/\u00e9", min_size=1, max_size=6)
levels = st.integers(min_value=0, max_value=5_000)
policies = st.sampled_from([REBASE, STRICT])


@dataclass(frozen=True)
class Case:
    """A sheet with its levels at the last Sync (base) and the live levels now."""

    raw: list[RawRow]
    base: dict[str, int]
    live: dict[str, int]

    def plan(self, policy: str) -> PublishPlan:
        rows, problems = parse_rows(self.raw)
        return plan_publish(rows, self.base, self.live, policy=policy, problems=problems)


@st.composite
def cases(draw: st.DrawFn, *, edits: bool = True, valid: bool = False, moved: bool = True,
          all_known: bool = False) -> Case:
    """Sheets of distinct SKUs. ``valid`` keeps every edit's result at or above zero and
    every SKU synced and live; ``moved=False`` keeps the live levels equal to the base."""
    sheet_skus = draw(st.lists(skus, unique=True, max_size=25))
    extra_online = draw(st.lists(skus, unique=True, max_size=5))
    base: dict[str, int] = {}
    live: dict[str, int] = {}
    raw: list[RawRow] = []
    for index, sku in enumerate(sheet_skus):
        synced = valid or all_known or draw(st.integers(0, 9)) > 0
        online = valid or all_known or draw(st.integers(0, 9)) > 0
        b = draw(levels)
        r = draw(levels) if moved else b
        if synced:
            base[sku] = b
        if online:
            live[sku] = r
        received = new_level = None
        kind = draw(st.sampled_from(["none", "received", "new_level"])) if edits else "none"
        if kind == "received":
            received = draw(st.integers(-r if valid else -6_000, 6_000))
        elif kind == "new_level":
            new_level = draw(st.integers(max(0, b - r) if valid else 0, 6_000))
        raw.append(RawRow(index + 2, sku, received, new_level))
    for sku in extra_online:
        if sku not in sheet_skus:
            live[sku] = draw(levels)
            if draw(st.booleans()):
                base[sku] = draw(levels)
    return Case(raw, base, live)


@LAWS
@given(cases(edits=False), policies)
def test_no_edits_publishes_the_live_levels_unchanged(case: Case, policy: str) -> None:
    plan = case.plan(policy)
    assert plan.ok
    on_sheet = {raw.sku for raw in case.raw}
    assert plan.levels == {sku: level for sku, level in case.live.items() if sku in on_sheet}
    assert plan.changed == []
    assert plan.units_added == plan.units_removed == 0


@LAWS
@given(cases(), policies)
def test_publish_then_sync_gives_the_sheet_the_service_levels(case: Case, policy: str) -> None:
    plan = case.plan(policy)
    if not plan.ok:
        return
    changed = {row.sku: row.target for row in plan.changed}
    published = loads_levels(dumps(SHOP, changed, case.live))
    after = {**case.live, **published}
    for sku, level in plan.levels.items():
        assert after[sku] == level
    for sku, level in case.live.items():
        if sku not in plan.levels:
            assert after[sku] == level
    # The sheet after Publish: Online = the published level, edits cleared; a second
    # publish, against the service's levels, sends nothing.
    synced = Case([RawRow(r.row, r.sku) for r in case.raw], dict(after), dict(after))
    again = synced.plan(policy)
    assert again.ok
    assert again.changed == []
    assert again.levels == {sku: after[sku] for sku in plan.levels}


@LAWS
@given(cases(valid=True))
def test_units_are_conserved_under_rebase(case: Case) -> None:
    plan = case.plan(REBASE)
    assert plan.ok, plan.problems
    received = sum(r.received or 0 for r in case.raw)
    counted = sum(r.new_level - case.base[r.sku] for r in case.raw if r.new_level is not None)
    sheet = {r.sku for r in case.raw}
    assert sum(plan.levels[s] - case.live[s] for s in sheet) == received + counted
    assert plan.units_added - plan.units_removed == received + counted


@LAWS
@given(cases(all_known=True))
def test_units_are_conserved_row_by_row_whatever_is_refused(case: Case) -> None:
    plan = case.plan(REBASE)
    raw = {r.row: r for r in case.raw}
    for row in plan.rows:
        edit = raw[row.row]
        assert row.target is not None and row.live is not None and row.base is not None
        expected = (edit.received or 0) + (
            edit.new_level - row.base if edit.new_level is not None else 0
        )
        assert row.target - row.live == expected


@LAWS
@given(cases(moved=False))
def test_strict_equals_rebase_when_nothing_moved_online(case: Case) -> None:
    assert case.plan(STRICT) == case.plan(REBASE)


@LAWS
@given(cases())
def test_strict_only_turns_moved_counts_into_conflicts(case: Case) -> None:
    rebase, strict = case.plan(REBASE), case.plan(STRICT)
    assert set(strict.rows) <= set(rebase.rows)
    assert {p.row for p in strict.problems} <= {p.row for p in rebase.problems}
    raw = {r.row: r for r in case.raw}
    for conflict in strict.conflicts:
        assert conflict.row is not None
        edit = raw[conflict.row]
        assert edit.new_level is not None
        assert case.base[edit.sku] != case.live[edit.sku]
    accounted = {r.row for r in strict.rows} | {p.row for p in strict.problems + strict.conflicts}
    assert accounted == {r.row for r in rebase.rows} | {p.row for p in rebase.problems}


@LAWS
@given(cases(), policies)
def test_a_plan_never_holds_a_level_below_zero_or_beyond_the_limit(
    case: Case, policy: str
) -> None:
    plan = case.plan(policy)
    for row in plan.rows:
        assert row.target is None or 0 <= row.target <= MAX_LEVEL
    assert all(0 <= level <= MAX_LEVEL for level in plan.levels.values())


# --- hostile cells never crash the core -------------------------------------------------

plain_cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.from_regex(r"\s*[+-]?\d{1,12}(\.\d{0,3})?\s*", fullmatch=True),
    st.dates(),
    st.datetimes(),
    st.times(),
    st.timedeltas(),
    st.sampled_from(sorted(EXCEL_ERRORS)).map(CellError),
)
cells = st.one_of(
    plain_cells,
    plain_cells.map(lambda v: Formula("=X1", v)),
    st.just(Formula("=X1", NO_CACHE)),
)


@LAWS
@given(
    st.lists(st.tuples(st.one_of(cells, st.sampled_from(["A", " A", "a", "B"])), cells, cells),
             max_size=15),
    st.dictionaries(st.sampled_from(["A", "a", "B", "123", "00123"]), levels),
    st.dictionaries(st.sampled_from(["A", "a", "B", "123", "00123"]), levels),
    policies,
)
def test_hostile_cells_never_crash_and_every_row_is_accounted_once(
    rows: list[tuple[Any, Any, Any]], base: dict[str, int], live: dict[str, int], policy: str
) -> None:
    raw = [RawRow(i + 2, sku, received, new_level)
           for i, (sku, received, new_level) in enumerate(rows)]
    parsed, problems = parse_rows(raw)
    plan = plan_publish(parsed, base, live, policy=policy, problems=problems)
    numbers = [r.row for r in plan.rows] + [p.row for p in plan.problems + plan.conflicts]
    assert len(numbers) == len(set(numbers))
    for row in raw:
        try:
            sku = clean_sku(row.sku)
        except ValueProblem:
            assert row.row in numbers
            continue
        if sku is not None:
            assert row.row in numbers
    for problem in plan.problems + plan.conflicts:
        assert str(problem).startswith(f"Stock row {problem.row}")
    for level in plan.levels.values():
        assert 0 <= level <= MAX_LEVEL


@LAWS
@given(st.integers(min_value=-MAX_LEVEL, max_value=MAX_LEVEL))
def test_every_whole_number_in_range_reads_back_whatever_its_form(n: int) -> None:
    for form in (n, float(n), str(n), f"  {n}\u00a0", Formula("=X1", n), Formula("=X1", str(n))):
        assert parse_quantity(form, what="Received") == n


@LAWS
@given(st.one_of(st.integers(min_value=MAX_LEVEL + 1, max_value=10**30),
                 st.integers(max_value=-MAX_LEVEL - 1, min_value=-(10**30))))
def test_every_number_beyond_the_limit_is_refused_whatever_its_form(n: int) -> None:
    for form in (n, float(n), str(n)):
        try:
            parse_quantity(form, what="Received")
        except ValueProblem as exc:
            assert "beyond 1,000,000,000" in str(exc)
        else:
            raise AssertionError(f"{form!r} was accepted")


@LAWS
@given(st.text(max_size=60))
def test_clean_sku_gives_clean_keys(text: str) -> None:
    try:
        sku = clean_sku(text)
    except ValueProblem:
        return
    if sku is None:
        assert not text.strip()
        return
    assert sku == sku.strip() and sku
    assert not has_control_characters(sku)
    assert unicodedata.is_normalized("NFC", sku)
    assert len(sku) <= MAX_SKU_LENGTH
    assert clean_sku(sku) == sku


# --- the stock file ---------------------------------------------------------------------

stock_levels = st.dictionaries(st.text(min_size=1, max_size=20),
                               st.integers(0, MAX_LEVEL), max_size=30)


@LAWS
@given(stock_levels, st.randoms(use_true_random=False))
def test_dumps_is_deterministic_whatever_the_insertion_order(
    mapping: dict[str, int], random: Any
) -> None:
    items = list(mapping.items())
    random.shuffle(items)
    assert dumps(SHOP, dict(items), mapping) == dumps(SHOP, mapping, dict(items))


@LAWS
@given(stock_levels)
def test_dumps_round_trips_as_utf8_json(mapping: dict[str, int]) -> None:
    data = dumps(SHOP, mapping, mapping)
    document = json.loads(data.decode("utf-8", errors="strict"))
    assert document["shop"] == SHOP
    assert [item["sku"] for item in document["items"]] == sorted(mapping)
    assert loads_levels(data) == mapping
    assert data.endswith(b"\n") and data.count(b"\n") == 1


@LAWS
@given(stock_levels, stock_levels)
def test_dumps_gives_equal_bytes_exactly_for_equal_levels(
    a: dict[str, int], b: dict[str, int]
) -> None:
    assert (dumps(SHOP, a, a) == dumps(SHOP, b, b)) == (a == b)

