"""xlstock.workbook.sheetxml: reading a sheet's cells from its bytes, and patching them."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given as hypothesis_given
from hypothesis import strategies as st

from xlstock.cells import Formula
from xlstock.workbook import sheetxml
from xlstock.workbook.sheetxml import Context, PatchContext, Sheet, read_cells

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
CONTEXT = Context(lambda: ["shared"], frozenset({"9"}), lambda serial: dt.datetime(1899, 12, 30)
                  + dt.timedelta(days=serial))
PATCH = PatchContext({}, lambda style: "9")


def sheet(rows: str, *, prefix: str = "") -> bytes:
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{NS}"' if prefix else f'xmlns="{NS}"'
    return (f'<{p}worksheet {xmlns}><{p}dimension ref="A1:C3"/><{p}sheetData>{rows}'
            f"</{p}sheetData></{p}worksheet>").encode()


USUAL = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>SKU</t></is></c><c r="B1" s="1"><v>7</v></c>'
    '</row>'
    '<row r="2"><c r="A2" t="inlineStr"><is><t>A&amp;B_x0009_</t></is></c>'
    '<c r="B2"><v> </v></c><c r="C2" s="9"><v>2</v></c></row>'
    '<row r="3"><c r="A3" t="s"><v>0</v></c><c r="B3"><f>1+1</f><v>2</v></c>'
    '<c r="C3" t="str"><f>"x"</f><v>x</v></c></row>'
)
EXPECTED = [
    ["SKU", 7],
    ["A&B\t", None, dt.datetime(1900, 1, 1)],
    ["shared", Formula("=1+1", 2), Formula('="x"', "x")],
]


def test_the_usual_form_and_a_prefixed_one_read_the_same() -> None:
    usual = read_cells(Sheet.scan(sheet(USUAL)), CONTEXT, 100, 100)
    prefixed_rows = (USUAL.replace("<row", "<x:row").replace("</row", "</x:row")
                     .replace("<c ", "<x:c ").replace("</c>", "</x:c>")
                     .replace("<v>", "<x:v>").replace("</v>", "</x:v>")
                     .replace("<f>", "<x:f>").replace("</f>", "</x:f>")
                     .replace("<is>", "<x:is>").replace("</is>", "</x:is>")
                     .replace("<t>", "<x:t>").replace("</t>", "</x:t>"))
    prefixed = read_cells(Sheet.scan(sheet(prefixed_rows, prefix="x")), CONTEXT, 100, 100)
    assert usual == prefixed == EXPECTED


@pytest.mark.parametrize("cell", ['<c r="D2"><v>5</v></c>', '<c r="A4"><v>5</v></c>'])
def test_a_value_beyond_the_limits_is_refused_at_once(cell: str) -> None:
    rows = '<row r="2"><c r="A2"><v>1</v></c>' + (cell if "D2" in cell else "") + "</row>"
    if "A4" in cell:
        rows += f'<row r="4">{cell}</row>'
    with pytest.raises(sheetxml.FarCell):
        read_cells(Sheet.scan(sheet(rows)), CONTEXT, 3, 3)


def test_an_empty_value_past_the_limits_is_no_value() -> None:
    rows = '<row r="2"><c r="A2"><v>1</v></c><c r="Z2"><v> </v></c></row>'
    assert read_cells(Sheet.scan(sheet(rows)), CONTEXT, 3, 3) == [[], [1]]


def test_rows_out_of_order_are_refused() -> None:
    rows = '<row r="3"><c r="A3"><v>1</v></c></row><row r="2"><c r="A2"><v>2</v></c></row>'
    with pytest.raises(sheetxml.SheetXmlError, match="out of order"):
        read_cells(Sheet.scan(sheet(rows)), CONTEXT, 100, 100)


def test_a_patch_changes_the_cells_written_and_no_other_byte() -> None:
    data = sheet(USUAL)
    scanned = Sheet.scan(data)
    patched = b"".join(sheetxml.patch_pieces(scanned, {2: {2: 40}, 5: {1: "new"}}, PATCH))
    row1 = data[data.index(b'<row r="1"'):data.index(b'<row r="2"')]
    row3 = data[data.index(b'<row r="3"'):data.index(b"</sheetData>")]
    assert row1 in patched and row3 in patched
    assert b'<c r="B2"><v>40</v></c>' in patched
    assert patched.index(b'<row r="3"') < patched.index(b'<row r="5"')
    assert b'<dimension ref="A1:C5"/>' in patched
    again = read_cells(Sheet.scan(patched), CONTEXT, 100, 100)
    assert again[1][1] == 40 and again[4] == ["new"]
    assert again[:1] + again[2:3] == EXPECTED[:1] + EXPECTED[2:3]


def test_cell_writes_are_a_mapping_of_rows_to_their_cells() -> None:
    writes = sheetxml.CellWrites()
    assert not writes and len(writes) == 0 and writes.last_row_with_value() == 0
    writes.set(5, 1, "new")
    writes.set(2, 2, 40)
    writes.set(2, 16_384, None)  # the last column Excel has, cleared
    writes.set(9, 3, None)
    assert list(writes) == [2, 5, 9] and len(writes) == 3
    assert writes[2] == {2: 40, 16_384: None} and writes[5] == {1: "new"}
    with pytest.raises(KeyError):
        writes[3]
    assert writes.last_row_with_value() == 5
    assert sorted(writes.cells()) == [(2, 2, 40), (2, 16_384, None), (5, 1, "new"),
                                      (9, 3, None)]
    writes.set(2, 2, 41)  # written again: the last value counts
    assert writes[2][2] == 41


@hypothesis_given(st.lists(st.tuples(st.integers(1, 40), st.sampled_from([1, 2, 3, 9, 16_384]),
                          st.sampled_from([None, 0, "x", 2.5])), max_size=60))
def test_cell_writes_give_what_nested_dicts_of_the_same_writes_give(cells: list) -> None:
    """Written in any order, over and beside each other: the runs of each column give
    the rows, cells, area and patch that a plain row -> column -> value mapping does."""
    writes = sheetxml.CellWrites()
    nested: dict[int, dict[int, object]] = {}
    for row, column, value in cells:
        writes.set(row, column, value)
        nested.setdefault(row, {})[column] = value
    expected = [(row, dict(sorted(nested[row].items()))) for row in sorted(nested)]
    assert list(writes.by_row()) == expected
    assert list(writes) == sorted(nested) and len(writes) == len(nested)
    assert bool(writes) == bool(nested)
    for row in range(1, 42):
        if row in nested:
            assert writes[row] == nested[row]
        else:
            with pytest.raises(KeyError):
                writes[row]
    flat = [(r, c, v) for r, row_cells in nested.items() for c, v in row_cells.items()]
    assert sorted(writes.cells(), key=repr) == sorted(flat, key=repr)
    assert sorted(map(repr, writes.values_written())) == sorted(repr(v) for _r, _c, v in flat)
    area = _naive_area(flat)
    assert writes.area() == area
    assert writes.last_row_with_value() == (0 if area is None else area[2])
    assert sheetxml.new_sheet_xml(writes, PATCH) == sheetxml.new_sheet_xml(nested, PATCH)


def test_a_column_written_down_is_held_as_a_list_not_a_cell_a_key() -> None:
    """A first Sync of 1,000,000 SKUs writes 5,000,000 cells: keyed one integer a cell
    they were 330 MB; a column written down is one list of its values (issue 22)."""
    import tracemalloc

    values = ["x", 7, None]
    tracemalloc.start()
    try:
        writes = sheetxml.CellWrites()
        for column in (1, 2, 4):
            for row in range(2, 100_002):
                writes.set(row, column, values[row % 3])
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert size < 3_000_000, size  # 300,000 cells: 2.4 MB of pointers; keyed, 19 MB
    assert writes.area() == (3, 1, 100_000, 4)  # rows 2 and 100,001 cleared
    assert next(writes.by_row()) == (2, {1: None, 2: None, 4: None})


def test_a_patch_from_cell_writes_is_the_patch_from_nested_dicts() -> None:
    scanned = Sheet.scan(sheet(USUAL))
    writes = sheetxml.CellWrites()
    writes.set(5, 1, "new")
    writes.set(2, 2, 40)
    writes.set(3, 3, None)
    nested = {2: {2: 40}, 3: {3: None}, 5: {1: "new"}}
    assert b"".join(sheetxml.patch_pieces(scanned, writes, PATCH)) == \
        b"".join(sheetxml.patch_pieces(scanned, nested, PATCH))
    assert sheetxml.new_sheet_xml(writes, PATCH) == sheetxml.new_sheet_xml(nested, PATCH)


def test_a_date_cell_past_the_last_date_excel_has_reads_as_a_date_not_a_number() -> None:
    """Issue 19: it was read as its number, and published as +2,958,466 units."""
    rows = '<row r="1"><c r="A1" s="9"><v>2958466</v></c><c r="B1" s="9"><v>1e300</v></c></row>'
    [[first, second]] = read_cells(Sheet.scan(sheet(rows)), CONTEXT, 3, 3)
    assert isinstance(first, dt.datetime) and isinstance(second, dt.datetime)
    assert (first.serial, second.serial) == (2958466, 1e300)


@pytest.mark.parametrize(("rows", "writes", "expected"), [
    # cells replaced where they stand, a self-closing one included, the style kept
    ('<row r="2"><c r="A2" s="3"/><c r="B2"><v>1</v></c><c r="C2" t="inlineStr"><is><t>x'
     '</t></is></c></row>', {2: {1: "a", 3: 7}},
     '<row r="2"><c r="A2" s="3" t="inlineStr"><is><t>a</t></is></c><c r="B2"><v>1</v></c>'
     '<c r="C2"><v>7</v></c></row>'),
    # a clear: the styled cell keeps its style, the plain one goes
    ('<row r="2"><c r="A2" s="3"><v>4</v></c><c r="B2"><v>1</v></c></row>',
     {2: {1: None, 2: None}}, '<row r="2"><c r="A2" s="3"/></row>'),
    # cells out of column order (no program writes them so, a hand might): each
    # replaced by the row's own patch, where it stands
    ('<row r="2"><c r="B2"><v>1</v></c><c r="A2"><v>2</v></c></row>', {2: {1: 5, 2: 6}},
     '<row r="2"><c r="B2"><v>6</v></c><c r="A2"><v>5</v></c></row>'),
    # a cell the row lacks: rebuilt, the new cell in column order
    ('<row r="2"><c r="C2"><v>1</v></c></row>', {2: {1: 5}},
     '<row r="2"><c r="A2"><v>5</v></c><c r="C2"><v>1</v></c></row>'),
])
def test_written_cells_are_spliced_in_where_they_stand(
        rows: str, writes: dict[int, dict[int, object]], expected: str) -> None:
    data = sheet('<row r="1"><c r="A1"><v>0</v></c></row>' + rows)
    flat = sheetxml.CellWrites()
    for number, cells in writes.items():
        for column, value in cells.items():
            flat.set(number, column, value)
    for given in (writes, flat):
        patched = b"".join(sheetxml.patch_pieces(Sheet.scan(data), given, PATCH))
        assert expected.encode() in patched, patched


def _naive_area(cells: list[tuple[int, int, object]]) -> tuple[int, int, int, int] | None:
    given = [(r, c) for r, c, v in cells if v is not None]
    if not given:
        return None
    return (min(r for r, _ in given), min(c for _, c in given), max(r for r, _ in given),
            max(c for _, c in given))


@hypothesis_given(st.lists(st.tuples(st.integers(1, 1_048_576), st.integers(1, 16_384),
                          st.sampled_from([None, 0, "x"])), max_size=30))
def test_the_area_of_the_cells_written_is_that_of_those_given_a_value(cells: list) -> None:
    writes = sheetxml.CellWrites()
    for row, column, value in cells:
        writes.set(row, column, value)
    last = {(r, c): v for r, c, v in cells}
    expected = _naive_area([(r, c, v) for (r, c), v in last.items()])
    assert writes.area() == expected
    assert sheetxml._area((r, c) for (r, c), v in last.items() if v is not None) == expected


def test_the_area_of_many_cells_is_found_without_a_list_of_them() -> None:
    """A first Sync of 1,000,000 SKUs writes 6,000,000 cells: their area was a list of
    pairs (400 MB at the save), it is four passes over the keys (issue 22)."""
    import tracemalloc

    writes = sheetxml.CellWrites()
    for row in range(2, 100_002):
        for column in (1, 2, 4):
            writes.set(row, column, row)
    writes.set(100_005, 9, None)
    tracemalloc.start()
    try:
        area = writes.area()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert area == (2, 1, 100_001, 4)
    assert peak < 100_000, peak


def test_the_rows_written_are_gathered_one_at_a_time() -> None:
    """The patch takes the written rows in order, each made when it is asked for (a first
    Sync's 1,000,000 rows gathered at once were 220 MB at the save: issue 22)."""
    writes = sheetxml.CellWrites()
    for row, column, value in [(5, 2, "b"), (2, 1, 1), (5, 1, None), (3, 4, 2.5), (2, 3, "c")]:
        writes.set(row, column, value)
    rows = writes.by_row()
    assert next(rows) == (2, {1: 1, 3: "c"})  # one row made, not the list of all
    assert list(rows) == [(3, {4: 2.5}), (5, {1: None, 2: "b"})]
