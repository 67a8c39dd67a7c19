"""Issue 22 point 2: a Sync of changes looks at the rows they can change, not at every
row (the loop over 100,000 rows was 0.16 s of a Sync after 300 orders). What it leaves
in Online, Product, Variant and Status, and the rows and units it counts as moved, are
what the loop over every row left, whatever the sheet holds: a property test against
that loop, on real workbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlstock import actions
from xlstock.cells import Formula
from xlstock.model import StockItem
from xlstock.planner import STATUS_CHANGED, STATUS_NEW, STATUS_OK, status_key
from xlstock.workbook import layout, template
from xlstock.workbook.xlsx_file import XlsxFile

SKUS = [f"S-{n}" for n in range(12)]
_SKU = st.one_of(st.sampled_from(SKUS), st.just(None), st.just(" "), st.just("bad sku\n"))
_ONLINE = st.one_of(st.integers(0, 4), st.just(2.0), st.just("3"), st.just(None),
                    st.just(True), st.just("n/a"), st.just(Formula("=1+2", 3)))
_STATUS = st.sampled_from(["ok", "new", "changed", "modifié", "OK ", "nouveau", None,
                           "error: Received is not a number", "a note", "to publish"])
_EDIT = st.sampled_from([None, None, 3, "", "x"])
_ROW = st.tuples(_SKU, _ONLINE, _STATUS, _EDIT, _EDIT)


def every_row(rows: Any, skus: list[str | None]) -> None:
    """The loop :meth:`_SyncedRows.lay` ran before issue 22, over every row."""
    session = rows.session
    statuses = session.column(layout.STATUS)
    value = session.table.value
    for i, status in enumerate(statuses):
        if status_key(status) == STATUS_CHANGED and value(i, layout.RECEIVED) in (None, "") \
                and value(i, layout.NEW_LEVEL) in (None, ""):
            statuses[i] = STATUS_OK
    hint = actions.SkuHints(rows.levels)
    listed, items = [], []
    rows.status = []
    for i, sku in enumerate(skus):
        level = None if sku is None else rows.levels.get(sku)
        if sku is None or level is None:
            rows.status.append(rows._unlisted(i, sku, hint))
            continue
        rows._move(i, level)
        item = rows.live.get(sku)
        if item is not None:
            listed.append(i)
            items.append(item)
        rows.status.append(statuses[i] if status_key(statuses[i]) in (STATUS_OK, STATUS_NEW)
                           else None)
    for i, name, option in zip(listed, actions.clean_texts([it.name for it in items]),
                               actions.clean_texts([it.variant for it in items]), strict=True):
        rows.product[i], rows.variant[i] = name, option


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sheet=st.lists(_ROW, min_size=16, max_size=48),  # 4 changes at most: a few rows
       levels=st.dictionaries(st.sampled_from(SKUS), st.integers(0, 4)),
       changed=st.lists(st.sampled_from(SKUS), max_size=4, unique=True))
def test_the_rows_a_sync_of_changes_lays_are_those_the_loop_over_every_row_laid(
        tmp_path_factory: Any, sheet: list[tuple[Any, ...]], levels: dict[str, int],
        changed: list[str]) -> None:
    laid, reference = lay_both(Path(tmp_path_factory.mktemp("rows")), sheet, levels, changed)
    for name in ("online", "product", "variant", "status", "moved_rows", "moved_units"):
        assert getattr(laid, name) == getattr(reference, name), name
        if name in ("online", "status"):  # the same kinds too (1 == 1.0 == True)
            assert list(map(type, getattr(laid, name))) == \
                list(map(type, getattr(reference, name))), name


def test_a_row_whose_online_is_true_is_laid_as_its_level(tmp_path: Path) -> None:
    """``True == 1``: an Online cell holding TRUE on a row at level 1 is still written
    as the number (the loop over every row wrote it)."""
    sheet = [(f"S-{n % 12}", True if n == 5 else 1, "ok", None, None) for n in range(20)]
    laid, reference = lay_both(tmp_path, sheet, dict.fromkeys(SKUS, 1), [])
    assert laid.online == reference.online and type(laid.online[5]) is int


def lay_both(folder: Path, sheet: list[tuple[Any, ...]], levels: dict[str, int],
             changed: list[str]) -> tuple[Any, Any]:
    """Sheet Stock holding ``sheet`` (SKU, Online, Status, Received, New level), laid
    by :meth:`_SyncedRows.lay` and by the loop over every row."""
    path = folder / "stock.xlsx"
    template.build_workbook(path)
    with XlsxFile.open(path) as book:
        book.write_block(layout.STOCK_SHEET, 2, 1, [
            [sku, "Old name", None, online, received, new_level, None, None, status]
            for sku, online, status, received, new_level in sheet])
        book.save()
    live = {sku: StockItem(sku, f"Name of {sku}", "Blue", levels[sku])
            for sku in changed if sku in levels}
    with XlsxFile.open(path, writable=False) as book:
        session = actions._WorkbookSession.read(book, layout.read_settings(book))
        skus = session.skus()
        laid = actions._SyncedRows(session, levels, live)
        laid.lay(skus)
        assert isinstance(laid._to_lay(skus), list) or len(live) * 4 > len(skus)  # few
        reference = actions._SyncedRows(session, levels, live)
        every_row(reference, skus)
    return laid, reference


_WORDS = st.one_of(st.sampled_from(["ok", "changed", "new", "modifié", "nouveau", "a note",
                                    "", "OK "]),
                   st.none(), st.integers(0, 3), st.just(Formula("=1", 1)))


@settings(max_examples=200, deadline=None)
@given(statuses=st.lists(st.one_of(_WORDS, st.sampled_from(["message", "ok"]).map(
           lambda text: _message(text))), max_size=30),
       language=st.sampled_from(["en", "fr"]))
def test_statuses_are_worded_as_the_loop_over_every_row_worded_them(
        statuses: list[Any], language: str) -> None:
    """Status in the workbook's language looks at the rows whose value is a key or a
    message (found over the distinct values; a message equals its text)."""
    from types import SimpleNamespace

    from xlstock import i18n
    from xlstock.planner import status_words

    words = status_words(language)
    expected = [words.get(v, v) if type(v) is str else
                v.render(language) if isinstance(v, i18n.Message) else v for v in statuses]
    worded = actions._WorkbookSession.in_language(
        SimpleNamespace(language=language), statuses)  # type: ignore[arg-type]
    assert list(worded) == expected
    assert list(map(type, worded)) == list(map(type, expected))
    if expected == statuses and list(map(type, expected)) == list(map(type, statuses)):
        assert worded is statuses  # nothing to word: no copy


def _message(text: str) -> Any:
    from xlstock.i18n import _

    return _("not in the shop online (row kept){hint}", hint="") if text == "message" \
        else _("ok")
