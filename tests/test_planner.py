"""Contract 2b, row by row: parsing the sheet's rows and planning a publish under both
conflict policies, every error a row can have, and the hostile cells of issue 5 seen
through parse_rows (each refused with its row named, or accepted by a rule)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.errors import RowProblem
from xlstock.model import MAX_LEVEL
from xlstock.planner import (
    REBASE,
    STATUS_CHANGED,
    STATUS_NOT_ONLINE,
    STATUS_OK,
    STRICT,
    PlannedRow,
    PublishPlan,
    RawRow,
    RowConflict,
    SheetRow,
    parse_columns,
    parse_rows,
    plan_publish,
    sku_hint,
)

SKU = "A-1"
ROW = 7
PREFIX = f"Stock row {ROW}, SKU '{SKU}': "
POLICIES = [REBASE, STRICT]
CONFLICT = "conflict"


def plan_rows(
    raw_rows: Sequence[RawRow],
    base: dict[str, int],
    live: dict[str, int],
    policy: str = REBASE,
) -> PublishPlan:
    rows, problems = parse_rows(raw_rows)
    return plan_publish(rows, base, live, policy=policy, problems=problems)


def plan_one(
    policy: str,
    *,
    received: Any = None,
    new_level: Any = None,
    base: int | None = 10,
    live: int = 10,
    sku: Any = SKU,
) -> PublishPlan:
    bases = {} if base is None else {SKU: base}
    return plan_rows([RawRow(ROW, sku, received, new_level)], bases, {SKU: live}, policy)


def only_problem(plan: PublishPlan) -> RowProblem:
    assert not plan.ok
    assert len(plan.problems) == 1, plan.problems
    assert plan.conflicts == []
    assert plan.rows == []
    assert plan.levels == {}
    return plan.problems[0]


# --- the table of contract 2b -----------------------------------------------------------

# (what the row has, B, R, level under rebase, level under strict); B = the level at the
# last Sync, R = the live level at publish time.
TABLE_2B = [
    pytest.param({}, 10, 10, 10, 10, id="nothing, R=B"),
    pytest.param({}, 10, 7, 7, 7, id="nothing, sold online since Sync"),
    pytest.param({}, 10, 13, 13, 13, id="nothing, added online since Sync"),
    pytest.param({}, 10, 0, 0, 0, id="nothing, sold out online"),
    pytest.param({"received": 5}, 10, 10, 15, 15, id="Received, R=B"),
    pytest.param({"received": 5}, 10, 7, 12, 12, id="Received, sold online"),
    pytest.param({"received": 5}, 10, 13, 18, 18, id="Received, added online"),
    pytest.param({"received": 0}, 10, 7, 7, 7, id="Received 0"),
    pytest.param({"received": -4}, 10, 10, 6, 6, id="Received negative is a removal, R=B"),
    pytest.param({"received": -4}, 10, 7, 3, 3, id="Received negative, sold online"),
    pytest.param({"received": -7}, 10, 7, 0, 0, id="Received removes all that is left"),
    pytest.param({"new_level": 4}, 10, 10, 4, 4, id="New level, R=B"),
    pytest.param({"new_level": 4}, 10, 7, 1, CONFLICT, id="New level, sold online"),
    pytest.param({"new_level": 4}, 10, 13, 7, CONFLICT, id="New level, added online"),
    pytest.param({"new_level": 0}, 10, 10, 0, 0, id="New level 0, R=B"),
    pytest.param({"new_level": 0}, 10, 12, 2, CONFLICT, id="New level 0, added online"),
    pytest.param({"new_level": 10}, 10, 10, 10, 10, id="New level equal to B"),
    pytest.param({"new_level": 3}, 10, 7, 0, CONFLICT, id="New level, sales take it to 0"),
    pytest.param({"new_level": 25}, 0, 0, 25, 25, id="New level from nothing"),
]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("edit", "b", "r", "rebase_level", "strict_level"), TABLE_2B)
def test_contract_2b(
    policy: str, edit: dict[str, int], b: int, r: int, rebase_level: int, strict_level: Any
) -> None:
    expected = rebase_level if policy == REBASE else strict_level
    plan = plan_one(policy, base=b, live=r, **edit)
    if expected == CONFLICT:
        assert plan.problems == []
        assert plan.rows == []
        assert plan.levels == {}
        assert not plan.ok
        [conflict] = plan.conflicts
        assert isinstance(conflict, RowConflict)
        assert (conflict.row, conflict.sku) == (ROW, SKU)
        assert str(conflict) == (
            PREFIX + f"conflict: online level moved from {b} to {r} since Sync; "
            "Sync and recount, or publish with policy rebase"
        )
        return
    assert plan.ok, plan.problems + plan.conflicts
    assert plan.levels == {SKU: expected}
    [row] = plan.rows
    assert (row.row, row.sku, row.base, row.live, row.target) == (ROW, SKU, b, r, expected)
    assert row.change == expected - r
    assert row.status == (STATUS_CHANGED if expected != r else STATUS_OK)
    assert plan.changed == ([row] if expected != r else [])


@pytest.mark.parametrize(
    ("edit", "b", "r", "note"),
    [
        ({}, 10, 7, ""),
        ({"received": 5}, 10, 7, "+5 received"),
        ({"received": 0}, 10, 7, "+0 received"),
        ({"received": -4}, 10, 10, "-4 removed"),
        ({"new_level": 4}, 10, 10, "counted 4"),
        ({"new_level": 4}, 10, 7, "counted 4, less 3 sold online since Sync"),
        ({"new_level": 4}, 10, 13, "counted 4, plus 3 added online since Sync"),
    ],
)
def test_notes_explain_the_level(edit: dict[str, int], b: int, r: int, note: str) -> None:
    [row] = plan_one(REBASE, base=b, live=r, **edit).rows
    assert row.note == note


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("live", [0, 4, 10, 30])
def test_new_level_without_any_baseline_is_refused_never_set_over_a_sale(
        policy: str, live: int) -> None:
    """Issue 19: a count with no level from a Sync (nor an Online cell) could only be
    sent as an absolute level, over whatever sold since: refused, "Sync first"."""
    plan = plan_one(policy, new_level=6, base=None, live=live)
    assert not plan.ok and plan.rows == []
    assert "Sync first" in plan.problems[0].message


@pytest.mark.parametrize("live", [6, 8, 10])
def test_new_level_planned_from_the_online_cell_says_so_and_keeps_the_sales(live) -> None:
    row = SheetRow(7, SKU, new_level=10)
    plan = plan_publish([row], {SKU: 8}, {SKU: live}, from_online={SKU})
    [planned] = plan.rows
    assert planned.target == 10 + live - 8
    assert "planned from Online 8" in planned.note


@pytest.mark.parametrize("policy", POLICIES)
def test_received_without_an_earlier_sync_adds_to_live(policy: str) -> None:
    plan = plan_one(policy, received=3, base=None, live=8)
    assert plan.levels == {SKU: 11}


@pytest.mark.parametrize("policy", POLICIES)
def test_skus_online_that_the_sheet_lacks_are_not_in_the_plan(policy: str) -> None:
    plan = plan_rows(
        [RawRow(2, "A", 1)], {"A": 5, "B": 9}, {"A": 5, "B": 8, "C": 1}, policy
    )
    assert plan.levels == {"A": 6}


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown conflict policy 'merge'"):
        plan_publish([], {}, {}, policy="merge")


def test_a_sheet_of_many_rows() -> None:
    raw = [
        RawRow(2, "A", None, None),
        RawRow(3, "B", 5, None),
        RawRow(4, "C", None, 2),
        RawRow(5, "D", -1, None),
        RawRow(6, None, None, None),
        RawRow(7, "E", None, 20),
    ]
    base = {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5}
    live = {"A": 0, "B": 2, "C": 1, "D": 4, "E": 9, "F": 100}
    plan = plan_rows(raw, base, live)
    assert plan.ok
    assert plan.levels == {"A": 0, "B": 7, "C": 0, "D": 3, "E": 24}
    assert [r.row for r in plan.rows] == [2, 3, 4, 5, 7]
    assert [r.sku for r in plan.changed] == ["B", "C", "D", "E"]
    assert plan.units_added == 5 + 15
    assert plan.units_removed == 1 + 1
    assert plan.online_sales == 1 + 2


# --- errors of a row --------------------------------------------------------------------

@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("r", [10, 3])
def test_received_and_new_level_on_one_row(policy: str, r: int) -> None:
    problem = only_problem(plan_one(policy, received=2, new_level=5, live=r))
    assert str(problem) == PREFIX + (
        "both Received and New level are filled; keep one (Received adds a delivery, "
        "New level sets a counted level)"
    )


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("b", "r", "received"), [(10, 10, -11), (10, 3, -5), (0, 0, -1)])
def test_received_below_zero(policy: str, b: int, r: int, received: int) -> None:
    problem = only_problem(plan_one(policy, received=received, base=b, live=r))
    assert str(problem) == PREFIX + (
        f"Received {received} would leave {r + received} in stock (online now {r}); "
        "correct Received"
    )


def test_received_below_zero_only_because_of_online_sales() -> None:
    assert plan_one(REBASE, received=-5, base=10, live=10).levels == {SKU: 5}
    problem = only_problem(plan_one(REBASE, received=-5, base=10, live=4))
    assert "would leave -1 in stock (online now 4)" in str(problem)


def test_new_level_below_zero_after_rebase() -> None:
    problem = only_problem(plan_one(REBASE, new_level=2, base=10, live=4))
    assert str(problem) == PREFIX + (
        "counted level 2 less 6 sold online since Sync gives -4, below zero; recount"
    )


def test_new_level_below_zero_after_rebase_is_a_conflict_under_strict() -> None:
    plan = plan_one(STRICT, new_level=2, base=10, live=4)
    assert plan.problems == []
    assert [c.row for c in plan.conflicts] == [ROW]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("value", [-1, "-3", -1.0])
def test_new_level_negative(policy: str, value: Any) -> None:
    problem = only_problem(plan_one(policy, new_level=value))
    assert str(problem).startswith(PREFIX + "New level -")
    assert str(problem).endswith("is below 0; type 0 or more")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("received", 2.5, "Received 2.5 is not a whole number; type one"),
        ("received", "2.5", "Received '2.5' is not a whole number; type one"),
        ("new_level", 0.5, "New level 0.5 is not a whole number; type one"),
        ("new_level", "3,5", "New level '3,5' is not a whole number; type one"),
    ],
)
def test_quantity_not_a_whole_number(policy: str, column: str, value: Any, message: str) -> None:
    problem = only_problem(plan_one(policy, **{column: value}))
    assert str(problem) == PREFIX + message


@pytest.mark.parametrize("policy", POLICIES)
def test_level_beyond_the_limit(policy: str) -> None:
    problem = only_problem(plan_one(policy, received=MAX_LEVEL, live=1))
    assert str(problem) == PREFIX + f"the level would be {MAX_LEVEL + 1}, beyond 1,000,000,000"
    assert plan_one(policy, received=MAX_LEVEL - 1, live=1).levels == {SKU: MAX_LEVEL}


@pytest.mark.parametrize("policy", POLICIES)
def test_duplicate_sku_names_both_rows(policy: str) -> None:
    raw = [RawRow(2, "A", 1), RawRow(3, "B", None), RawRow(9, "A", None)]
    plan = plan_rows(raw, {"A": 1, "B": 1}, {"A": 1, "B": 1}, policy)
    assert [str(p) for p in plan.problems] == [
        "Stock row 2, SKU 'A': SKU is also on row 9; keep one row per SKU",
        "Stock row 9, SKU 'A': SKU is also on row 2; keep one row per SKU",
    ]
    assert not plan.ok
    assert plan.levels == {"B": 1}


def test_a_sku_on_three_rows_names_the_others() -> None:
    _, problems = parse_rows([RawRow(2, "A"), RawRow(4, "A"), RawRow(6, "A")])
    assert [p.message for p in problems] == [
        "SKU is also on row 4, 6; keep one row per SKU",
        "SKU is also on row 2, 6; keep one row per SKU",
        "SKU is also on row 2, 4; keep one row per SKU",
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [(" A-1", "A-1 "), (123, "123"), (123.0, " 123"), ("Caf\u00e9", "Cafe\u0301"),
     (Formula('="A-1"', "A-1"), "A-1")],
    ids=["stray spaces", "number and text", "float and text", "NFC and NFD", "formula"],
)
def test_duplicates_are_found_after_cleaning(first: Any, second: Any) -> None:
    _, problems = parse_rows([RawRow(2, first), RawRow(3, second)])
    assert [p.row for p in problems] == [2, 3]


def test_skus_differing_in_case_are_different_skus() -> None:
    rows, problems = parse_rows([RawRow(2, "a-1"), RawRow(3, "A-1")])
    assert problems == []
    assert [r.sku for r in rows] == ["a-1", "A-1"]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("sku", [None, "", "   "])
@pytest.mark.parametrize("edit", [{"received": 3}, {"new_level": 3}])
def test_blank_sku_with_an_edit(policy: str, sku: Any, edit: dict[str, int]) -> None:
    problem = only_problem(plan_one(policy, sku=sku, **edit))
    assert str(problem) == (
        f"Stock row {ROW}: Received/New level filled but SKU is blank; "
        "type the SKU or clear the row"
    )


def test_blank_rows_without_edits_are_skipped() -> None:
    rows, problems = parse_rows([RawRow(2, None), RawRow(3, "  ", None, ""), RawRow(4, "A")])
    assert problems == []
    assert [r.row for r in rows] == [4]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("edit", [{"received": 3}, {"new_level": 3}, {"received": 0}])
def test_sku_unknown_online_with_an_edit_is_a_problem(policy: str, edit: dict[str, int]) -> None:
    plan = plan_rows([RawRow(ROW, "Z-9", **edit)], {}, {SKU: 4}, policy)
    problem = only_problem(plan)
    assert str(problem) == (
        f"Stock row {ROW}, SKU 'Z-9': SKU is not in the shop online; check the spelling, "
        "or add the product to the shop first"
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_sku_unknown_online_without_an_edit_is_flagged_not_published(policy: str) -> None:
    plan = plan_rows([RawRow(ROW, "Z-9"), RawRow(ROW + 1, SKU, 1)], {"Z-9": 4}, {SKU: 4}, policy)
    assert plan.ok
    assert plan.levels == {SKU: 5}
    flagged = plan.rows[0]
    assert flagged == PlannedRow(
        ROW, "Z-9", 4, None, None, note="kept; not published", status=STATUS_NOT_ONLINE
    )
    assert flagged.change == 0
    assert plan.changed == [plan.rows[1]]


@pytest.mark.parametrize(
    ("cell", "online", "hint"),
    [
        (123, "00123", "; the shop has '00123': format column SKU as Text and type 00123"),
        (123.0, "00123", "; the shop has '00123': format column SKU as Text and type 00123"),
        ("123", "0123", "; the shop has '0123': format column SKU as Text and type 0123"),
        ("a-1", "A-1", "; the shop has 'A-1' (case differs): type it exactly so"),
        ("TSHIRT-xl", "tshirt-XL", "; the shop has 'tshirt-XL' (case differs): type it exactly so"),
        ("Stra\u00dfe", "STRASSE", "; the shop has 'STRASSE' (case differs): type it exactly so"),
        ("B-2", "A-1", "; check the spelling, or add the product to the shop first"),
    ],
)
def test_unknown_sku_hints_at_near_misses(cell: Any, online: str, hint: str) -> None:
    plan = plan_rows([RawRow(ROW, cell, 1)], {}, {online: 5, "OTHER": 1})
    problem = only_problem(plan)
    assert problem.message == "SKU is not in the shop online" + hint
    assert f"Stock row {ROW}, SKU " in str(problem)


def test_sku_hint_without_candidates() -> None:
    assert sku_hint("A", []) == "; check the spelling, or add the product to the shop first"


@pytest.mark.parametrize("r", [9, 11])
def test_strict_conflict_goes_to_conflicts_not_problems(r: int) -> None:
    plan = plan_rows(
        [RawRow(2, "A", None, 4), RawRow(3, "B", 2), RawRow(4, "C", None, 1)],
        {"A": 10, "B": 10, "C": 10},
        {"A": r, "B": r, "C": 10},
        STRICT,
    )
    assert plan.problems == []
    assert [(c.row, c.sku) for c in plan.conflicts] == [(2, "A")]
    assert all(isinstance(c, RowConflict) for c in plan.conflicts)
    assert not plan.ok
    assert plan.levels == {"B": r + 2, "C": 1}


def test_rebase_never_has_conflicts() -> None:
    plan = plan_rows([RawRow(2, "A", None, 4)], {"A": 10}, {"A": 1})
    assert plan.conflicts == []


def test_problems_block_the_plan_but_every_row_is_reported() -> None:
    raw = [
        RawRow(9, "A", 1, 1),
        RawRow(3, "B", "x"),
        RawRow(5, "C", 2),
        RawRow(4, None, 1),
        RawRow(2, "Z", 1),
    ]
    plan = plan_rows(raw, {"A": 1, "B": 1, "C": 1}, {"A": 1, "B": 1, "C": 1})
    assert not plan.ok
    assert [p.row for p in plan.problems] == [2, 3, 4, 9]
    assert plan.levels == {"C": 3}


def test_problems_passed_in_are_carried_and_block_their_rows() -> None:
    rows = [SheetRow(2, "A", 1), SheetRow(3, "B", 1)]
    outside = RowProblem(3, "B", "Online was typed over; Sync first")
    plan = plan_publish(rows, {"A": 1, "B": 1}, {"A": 1, "B": 1}, problems=[outside])
    assert plan.problems == [outside]
    assert plan.levels == {"A": 2}


# --- hostile cells through parse_rows ---------------------------------------------------

# (column, cell value, parsed value or the message of the problem)
HOSTILE_QUANTITIES = [
    ("received", " 12 ", 12),
    ("received", "\u00a012", 12),
    ("received", 12.0, 12),
    ("received", -3, -3),
    ("received", "-3", -3),
    ("new_level", "0", 0),
    ("new_level", Formula("=2*6", 12), 12),
    ("new_level", Formula("=2*6", 12.0), 12),
    ("received", Formula('=""', ""), None),
    ("new_level", -3, "New level -3 is below 0; type 0 or more"),
    ("received", 12.5, "Received 12.5 is not a whole number; type one"),
    ("new_level", "12.5", "New level '12.5' is not a whole number; type one"),
    ("received", True, "Received is TRUE; type a whole number"),
    ("new_level", False, "New level is FALSE; type a whole number"),
    ("received", dt.datetime(2024, 5, 1), "Received is a date; format the cell as Number"),
    ("new_level", dt.time(8, 0), "New level is a date; format the cell as Number"),
    ("received", MAX_LEVEL + 1, "Received 1000000001 is beyond 1,000,000,000"),
    ("new_level", 1e15, "New level 1000000000000000 is beyond 1,000,000,000"),
    ("received", CellError("#N/A"), "Received is the error #N/A; type a whole number"),
    ("new_level", CellError("#REF!"), "New level is the error #REF!; type a whole number"),
    ("received", Formula("=A1", NO_CACHE), "Received is a formula with no saved result"),
    ("new_level", Formula("=NA()", CellError("#N/A")), "New level is the error #N/A"),
    ("received", "abc", "Received 'abc' is not a whole number; type one"),
]


@pytest.mark.parametrize(("column", "value", "outcome"), HOSTILE_QUANTITIES)
def test_hostile_quantity_cells(column: str, value: Any, outcome: Any) -> None:
    rows, problems = parse_rows([RawRow(ROW, SKU, **{column: value})])
    if isinstance(outcome, str):
        assert rows == []
        [problem] = problems
        assert str(problem).startswith(PREFIX + outcome), str(problem)
    else:
        assert problems == []
        [row] = rows
        assert getattr(row, column) == outcome


# (cell value, SKU it is read as, or the message of the problem)
HOSTILE_SKUS = [
    (123, "123"),
    (123.0, "123"),
    ("  A-1  ", "A-1"),
    ("a-1", "a-1"),
    ("Cafe\u0301", "Caf\u00e9"),
    (Formula('="A-"&1', "A-1"), "A-1"),
    ("A\x07-1", "SKU holds a control character (line break, tab...); retype it"),
    ("A-1\nB-2", "SKU holds a control character"),
    ("x" * 101, "SKU is 101 characters long; the limit is 100"),
    (12.5, "SKU 12.5 is not a product key; type the SKU as text"),
    (True, "SKU is TRUE; type the SKU as text"),
    (dt.date(2024, 1, 2), "SKU is a date; format column SKU as Text and type it again"),
    (CellError("#N/A"), "SKU is the error #N/A; type the SKU as text"),
    (Formula("=B2", NO_CACHE), "SKU is a formula with no saved result"),
]


@pytest.mark.parametrize(("value", "outcome"), HOSTILE_SKUS)
def test_hostile_sku_cells(value: Any, outcome: str) -> None:
    rows, problems = parse_rows([RawRow(ROW, value, 1)])
    if outcome.startswith("SKU "):
        assert rows == []
        [problem] = problems
        assert problem.row == ROW
        assert str(problem).startswith(f"Stock row {ROW}")
        assert outcome in str(problem)
    else:
        assert problems == []
        assert [r.sku for r in rows] == [outcome]


def test_hostile_sku_problem_quotes_the_sku_typed() -> None:
    _, [problem] = parse_rows([RawRow(ROW, "A\tB", 1)])
    assert str(problem).startswith(f"Stock row {ROW}, SKU 'A\\tB': ")


@pytest.mark.parametrize(
    ("value", "online"), [(123, "00123"), ("a-1", "A-1"), ("  A-1 ", "A-1")]
)
def test_sku_stored_as_number_or_other_case_publishes_only_when_it_matches(
    value: Any, online: str
) -> None:
    plan = plan_rows([RawRow(ROW, value, 1)], {}, {online: 1})
    if str(value).strip() == online:
        assert plan.levels == {online: 2}
    else:
        assert not plan.ok
        assert online in plan.problems[0].message


def test_enormous_number_text_is_a_row_problem() -> None:
    rows, problems = parse_rows([RawRow(ROW, SKU, "9" * 5000)])
    assert rows == []
    assert [p.row for p in problems] == [ROW]


_CELL = st.one_of(st.none(), st.none(), st.sampled_from(
    ["A-1", "B-2", " A-1", "a\tb", "", "  ", "Caf\u00e9", "x" * 101, "=1+2"]),
    st.integers(-3, 3), st.floats(-2, 2), st.booleans(),
    st.just(Formula("=1+1", 2)), st.just(Formula("=X", NO_CACHE)), st.just(CellError("#N/A")))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["A-1", "B-2", "C-3", "D"]),
                                    _CELL), _CELL, _CELL), max_size=8))
def test_rows_parsed_as_columns_are_the_rows_parsed_one_by_one(
        rows: list[tuple[Any, Any, Any]]) -> None:
    skus = [row[0] for row in rows]
    received = [row[1] for row in rows]
    new_level = [row[2] for row in rows]
    assert parse_columns(skus, received, new_level) == parse_rows(
        RawRow(number, *row) for number, row in enumerate(rows, start=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["A-1", "B-2", "C-3", "D"])),
                          _CELL, _CELL), max_size=8))
def test_usual_skus_parsed_as_columns_are_the_rows_parsed_one_by_one(
        rows: list[tuple[Any, Any, Any]]) -> None:
    """Every SKU usual (or blank): the column way's own path, edits of every kind."""
    test_rows_parsed_as_columns_are_the_rows_parsed_one_by_one.hypothesis.inner_test(rows)
