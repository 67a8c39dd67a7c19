"""The Excel buttons, pressed through ``xw.Book.set_mock_caller()`` on the test engine
(real xlwings objects, no Excel), against the real stock service on loopback."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlwings as xw
from conftest import Api, ShopFactory
from support.xlwings_engine import Alert, book_impl, start_excel

from xlstock import excel
from xlstock.model import StockItem
from xlstock.server.runner import RunningServer
from xlstock.workbook import layout
from xlstock.workbook.base import STATE_SHEET

EXCEL_DEFAULTS = {
    "screen_updating": True, "calculation": "automatic", "status_bar": False,
    "display_alerts": True, "enable_events": True, "interactive": True, "visible": True,
}

ITEMS = [
    StockItem("A-1", "Hoodie", "Red / XL", 5),
    StockItem("B-2", "Cap", "", 10),
    StockItem("00123", "=HYPERLINK(\"http://evil.example\")", "-", 0),
]


def new_workbook(path: Path, service_url: str, shop_url: str,
                 language: str = "en") -> xw.Book:
    """A workbook laid out as the template (Stock, Settings, Log), open in fake Excel, in
    ``language``'s words (French: Paramètres, Journal, Reçu...)."""
    book = start_excel().new(str(path))
    book.sheets[0].name = layout.sheet_text("Stock", language)
    settings = book.sheets.add(layout.sheet_text("Settings", language), after=book.sheets[0])
    log = book.sheets.add(layout.sheet_text("Log", language), after=settings)
    stock = book_impl(book).sheets(book.sheets[0].name)
    book_impl(book).active_sheet = stock
    stock.fill([[layout.header_text(h, language) for h in layout.STOCK_HEADERS]])
    label = lambda name: layout.label_text(name, language)  # noqa: E731
    book_impl(book).sheets(settings.name).fill([
        [label(layout.SETTING_SERVICE), service_url],
        [label(layout.SETTING_SHOP), shop_url],
        [label(layout.SETTING_POLICY), "rebase"],
        [label(layout.SETTING_LAST_SYNC)], [label(layout.SETTING_LAST_PUBLISH)],
        [label(layout.SETTING_VERSION)],
    ])
    book_impl(book).sheets(log.name).fill([list(layout.LOG_HEADERS_IN[language])])
    return book


class Desk:
    """A merchant at Excel: the open workbook, the buttons, the message boxes."""

    def __init__(self, book: xw.Book, api: Api) -> None:
        self.book = book
        self.impl = book_impl(book)
        self.app = self.impl.app
        self.api = api

    def press(self, button: Callable[[], None], *answers: str) -> Counter[str]:
        """Press a button, answering its questions in order; the range operations done."""
        self.app.answers.extend(answers)
        before = Counter(self.impl.ops)
        self.book.set_mock_caller()
        try:
            button()
        finally:
            del xw.Book._mock_caller
        assert not self.app.answers, f"questions not asked: {list(self.app.answers)}"
        assert self.app.settings == EXCEL_DEFAULTS, "Excel's settings were not restored"
        return Counter(self.impl.ops) - before

    @property
    def alerts(self) -> list[Alert]:
        return self.app.alerts

    def last_alert(self) -> Alert:
        assert self.alerts, "no message box was shown"
        return self.alerts[-1]

    def grid(self, sheet: str = "Stock") -> list[list[Any]]:
        data = self.impl.sheets(sheet).data
        if not data:
            return []
        rows, columns = max(r for r, _ in data), max(c for _, c in data)
        return [[data[(r, c)].value if (r, c) in data else None
                 for c in range(1, columns + 1)] for r in range(1, rows + 1)]

    def stock(self) -> dict[str, dict[str, Any]]:
        header, *rows = self.grid()
        return {row[0]: dict(zip(header, row, strict=True)) for row in rows if row[0]}

    def type_in(self, sku: str, header: str, value: Any) -> None:
        """What the merchant types into the row of ``sku``."""
        header_row, *rows = self.grid()
        row = next(i for i, r in enumerate(rows, start=2) if r[0] == sku)
        column = header_row.index(header) + 1
        self.impl.sheets("Stock").put(f"{chr(64 + column)}{row}", value)


@pytest.fixture
def desk(tmp_path: Path, stock_service: RunningServer, shop_factory: ShopFactory,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    url, token = shop_factory(ITEMS)
    monkeypatch.setenv("XLSTOCK_TOKEN", token)
    book = new_workbook(tmp_path / "stock.xlsx", stock_service.url, url)
    yield Desk(book, Api(stock_service.url, url, token))
    book.app.quit()


def test_sync_fills_the_sheet(desk: Desk) -> None:
    desk.press(excel.sync)
    stock = desk.stock()
    assert {sku: row["Online"] for sku, row in stock.items()} == {
        "A-1": 5, "B-2": 10, "00123": 0,
    }
    assert stock["00123"]["Product"] == '=HYPERLINK("http://evil.example")'
    assert stock["00123"]["Variant"] == "-"
    assert desk.impl.sheets("Stock").get("A4").formula is None
    assert desk.impl.sheets(STATE_SHEET).very_hidden
    assert desk.book.sheets.active.name == "Stock"
    assert desk.impl.saves, "Sync did not have Excel save the workbook"
    alert = desk.last_alert()
    assert (alert.title, alert.buttons, alert.mode) == ("xlstock: Sync", "ok", "info")
    assert alert.prompt.startswith("Synced 3 SKU(s)")


def test_work_runs_with_screen_updating_and_calculation_off(desk: Desk) -> None:
    desk.press(excel.sync)
    history = desk.app.history
    assert history[:3] == [("screen_updating", False), ("calculation", "manual"),
                           ("status_bar", "xlstock Sync: starting")]
    progress = [v for k, v in history if k == "status_bar" and isinstance(v, str)]
    assert any(v.startswith("xlstock Sync: Reading the live levels (") for v in progress)
    assert progress[-1] == "xlstock Sync: Sync done (100%)"
    assert history[-3:] == [("screen_updating", True), ("calculation", "automatic"),
                            ("status_bar", False)]


def test_the_saved_file_is_what_excel_saved(desk: Desk) -> None:
    desk.press(excel.sync)
    ws = openpyxl.load_workbook(desk.impl.fullname)["Stock"]
    skus = [c.value for c in ws["A"]][1:]
    assert sorted(skus) == ["00123", "A-1", "B-2"]
    product = ws.cell(skus.index("00123") + 2, 2)
    assert (product.value, product.data_type) == ('=HYPERLINK("http://evil.example")', "s")


def test_publish_asks_with_a_summary_then_publishes(desk: Desk) -> None:
    desk.press(excel.sync)
    desk.api.order({"B-2": 2})
    desk.type_in("A-1", "Received", 3)
    desk.type_in("B-2", "New level", 7)
    desk.press(excel.publish, "yes")
    question, outcome = desk.alerts[-2:]
    assert (question.title, question.buttons, question.answer) == (
        "xlstock: Publish", "yes_no", "yes")
    assert "2 row(s) change: 3 unit(s) added, 3 removed." in question.prompt
    assert "2 unit(s) sold online since your last Sync are taken into account" in \
        question.prompt
    assert outcome.mode == "info" and outcome.prompt.startswith("Published 2 change(s)")
    _, live = desk.api.levels()
    assert live == {"A-1": 8, "B-2": 5, "00123": 0}
    stock = desk.stock()
    assert (stock["A-1"]["Online"], stock["A-1"]["Received"]) == (8, None)
    assert (stock["B-2"]["Online"], stock["B-2"]["New level"]) == (5, None)


def test_every_button_has_its_name_in_every_catalogue() -> None:
    """The buttons' names are marked for the catalogue one by one (a name in a loop is
    not extracted, and would stay English: Validate must be Vérifier)."""
    from xlstock import i18n

    for language in i18n.LANGUAGES[1:]:
        untranslated = [word for word in excel.BUTTON_WORDS
                        if excel.button(word, language) == word]
        assert untranslated == [], (language, untranslated)
    assert excel.button("Validate", "fr") == "Vérifier"


def test_the_buttons_speak_the_machines_language_and_write_the_workbooks(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: on a French machine the status bar, the questions and the message boxes
    are French; the (English) workbook still gets English Status words."""
    monkeypatch.setenv("XLSTOCK_LANG", "fr")
    desk.press(excel.sync)
    progress = [v for k, v in desk.app.history if k == "status_bar" and isinstance(v, str)]
    assert progress[0] == "xlstock Synchroniser : démarrage"
    assert progress[-1] == "xlstock Synchroniser : Synchronisation terminée (100 %)"
    alert = desk.last_alert()
    assert alert.title == "xlstock : Synchroniser"
    assert alert.prompt.startswith("3 SKU synchronisé(s) depuis")
    desk.type_in("A-1", "Received", 1500)
    desk.press(excel.publish, "yes")
    question, outcome = desk.alerts[-2:]
    assert question.title == "xlstock : Publier"
    assert question.prompt.startswith("Publier les nouveaux niveaux de stocks vers")
    assert "1 ligne(s) changent : 1\u202f500 unité(s) ajoutée(s), 0 retirée(s)." in \
        question.prompt
    assert outcome.prompt.startswith("1 modification(s) publiée(s) vers")
    assert desk.stock()["A-1"]["Status"] == "changed"
    assert desk.stock()["B-2"]["Status"] == "ok"


@pytest.mark.parametrize("machine, said", [
    ({"XLSTOCK_LANG": None, "LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None,
      "LANG": None}, ("xlstock : Synchroniser", "3 SKU synchronisé(s) depuis")),
    ({"XLSTOCK_LANG": "en"}, ("xlstock: Sync", "Synced 3 SKU(s)")),
])
def test_a_french_workbooks_buttons_speak_french_when_excel_gives_python_no_language(
        tmp_path: Path, stock_service: RunningServer, shop_factory: ShopFactory,
        monkeypatch: pytest.MonkeyPatch, machine: dict[str, str | None],
        said: tuple[str, str]) -> None:
    """Excel seldom hands Python a locale (Windows sets no LANG): the buttons then speak
    the workbook's language, the one their own names are in; a language the machine
    asks for (here XLSTOCK_LANG) still wins."""
    for name, value in machine.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    url, token = shop_factory(ITEMS)
    monkeypatch.setenv("XLSTOCK_TOKEN", token)
    book = new_workbook(tmp_path / "stock.xlsx", stock_service.url, url, language="fr")
    desk = Desk(book, Api(stock_service.url, url, token))
    try:
        desk.press(excel.sync)
        alert = desk.last_alert()
        assert (alert.title, alert.prompt[:len(said[1])]) == said
        assert {row["En ligne"] for row in desk.stock().values()} == {5, 10, 0}
    finally:
        book.app.quit()


def test_a_message_for_the_command_line_says_press_the_button_in_french(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLSTOCK_LANG", "fr")
    assert excel.excel_words("la feuille est endommagée ; lancez `xlstock sync` pour la "
                             "reconstruire") == \
        "La feuille est endommagée ; appuyez sur Synchroniser pour la reconstruire"


def test_undo_asks_then_takes_back_the_publish_keeping_the_sales(desk: Desk) -> None:
    desk.press(excel.sync)
    desk.type_in("A-1", "Received", 30)  # 3 meant
    desk.press(excel.publish, "yes")
    desk.api.order({"A-1": 1})
    desk.press(excel.undo, "yes")
    question, outcome = desk.alerts[-2:]
    assert (question.title, question.answer) == ("xlstock: Undo", "yes")
    assert "undo of publish" in question.prompt
    assert outcome.mode == "info" and outcome.prompt.startswith("Sent the undo of publish")
    _, live = desk.api.levels()
    assert live["A-1"] == 5 - 1
    assert desk.stock()["A-1"]["Online"] == 4


def test_publish_answered_no_sends_nothing_and_keeps_the_edits(desk: Desk) -> None:
    desk.press(excel.sync)
    desk.type_in("A-1", "Received", 3)
    history_before = len(desk.api.history())
    desk.press(excel.publish, "no")
    assert desk.alerts[-2].answer == "no"
    assert "cancelled" in desk.last_alert().prompt
    assert len(desk.api.history()) == history_before
    _, live = desk.api.levels()
    assert live["A-1"] == 5
    assert desk.stock()["A-1"]["Received"] == 3


def test_preview_shows_what_publish_would_send(desk: Desk) -> None:
    desk.press(excel.sync)
    desk.type_in("A-1", "Received", 4)
    desk.press(excel.preview)
    assert desk.stock()["A-1"]["Change"] == 4
    alert = desk.last_alert()
    assert alert.mode == "info" and alert.prompt.startswith("Publish would change 1 row(s)")
    _, live = desk.api.levels()
    assert live["A-1"] == 5


def test_sheet_errors_show_an_alert_naming_the_rows(desk: Desk) -> None:
    desk.press(excel.sync)
    desk.type_in("A-1", "Received", "lots")
    desk.press(excel.publish)
    alert = desk.last_alert()
    assert (alert.title, alert.mode) == ("xlstock: Publish", "critical")
    assert "nothing was sent" in alert.prompt
    row = [r[0] for r in desk.grid()].index("A-1") + 1
    assert f"Stock row {row}, SKU 'A-1': Received 'lots'" in alert.prompt
    assert "Traceback" not in alert.prompt
    assert desk.stock()["A-1"]["Status"].startswith("error")
    _, live = desk.api.levels()
    assert live["A-1"] == 5


def test_unreachable_service_shows_an_alert_and_restores_excel(
    desk: Desk, tmp_path: Path
) -> None:
    desk.press(excel.sync)
    before = desk.stock()
    dead = "http://127.0.0.1:9"
    desk.impl.sheets("Settings").put("B1", dead)
    desk.press(excel.sync)
    alert = desk.last_alert()
    assert alert.mode == "critical" and "127.0.0.1:9" in alert.prompt
    assert "Traceback" not in alert.prompt
    assert ("screen_updating", False) in desk.app.history
    after = desk.stock()
    assert {s: r["Online"] for s, r in after.items()} == {s: r["Online"] for s, r in before.items()}


def test_unexpected_failure_is_a_plain_alert_and_excel_comes_back(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(excel.actions, "sync", broken)
    desk.press(excel.sync)
    alert = desk.last_alert()
    assert alert.mode == "critical"
    assert "Sync stopped on an unexpected problem (RuntimeError: disk on fire)" in alert.prompt


@pytest.mark.parametrize("answer", ["no", "yes"])
def test_mass_change_is_asked_in_excel(
    desk: Desk, answer: str, shop_factory: ShopFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk.press(excel.sync)
    empty_url, empty_token = shop_factory([])
    monkeypatch.setenv("XLSTOCK_TOKEN", empty_token)
    desk.impl.sheets("Settings").put("B2", empty_url)
    desk.press(excel.sync, answer)
    question = desk.alerts[-1] if answer == "no" else desk.alerts[-2]
    assert question.buttons == "yes_no"
    assert "--allow-mass-change" not in question.prompt
    assert "Go on anyway?" in question.prompt
    online = {s: r["Online"] for s, r in desk.stock().items()}
    assert online == {"A-1": 5, "B-2": 10, "00123": 0}
    statuses = [r["Status"] for r in desk.stock().values()]
    if answer == "no":
        assert all(not s or "not online" not in s for s in statuses)
    else:
        assert all(s and "online" in s for s in statuses)


def test_only_the_caller_workbook_is_touched(desk: Desk) -> None:
    other = start_excel().new("other.xlsx")
    desk.press(excel.sync)
    assert book_impl(other).ops == {}


@pytest.mark.slow
def test_range_operations_do_not_grow_with_the_rows(
    tmp_path: Path, stock_service: RunningServer, shop_factory: ShopFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = {}
    for rows in (10, 10_000):
        items = [StockItem(f"SKU-{n:05d}", f"Product {n}", "", 50) for n in range(rows)]
        url, token = shop_factory(items)
        monkeypatch.setenv("XLSTOCK_TOKEN", token)
        book = new_workbook(tmp_path / f"stock-{rows}.xlsx", stock_service.url, url)
        desk = Desk(book, Api(stock_service.url, url, token))
        first_sync = desk.press(excel.sync)
        desk.type_in("SKU-00001", "Received", 5)
        desk.type_in("SKU-00002", "New level", 20)
        desk.api.order({"SKU-00003": 1})
        preview = desk.press(excel.preview)
        publish = desk.press(excel.publish, "yes")
        second_sync = desk.press(excel.sync)
        assert desk.stock()["SKU-00001"]["Online"] == 55
        assert len(desk.stock()) == rows
        counts[rows] = {"sync": first_sync, "preview": preview, "publish": publish,
                        "sync again": second_sync}
        book.app.quit()
    assert counts[10] == counts[10_000]
    assert all(sum(c.values()) < 40 for c in counts[10].values()), counts[10]


def test_the_workbook_buttons_run_these_entry_points(
    tmp_path: Path, stock_service: RunningServer, shop_factory: ShopFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``xlstock new stock.xlsm``, opened in (fake) Excel: each button's RunPython
    statement, run as xlwings runs it, does its action on the workbook."""
    from xlstock.macros.install import build_macro_workbook
    from xlstock.macros.vba_source import BUTTONS

    url, token = shop_factory(ITEMS)
    monkeypatch.setenv("XLSTOCK_TOKEN", token)
    path = tmp_path / "stock.xlsm"
    build_macro_workbook(path, service_url=stock_service.url, shop_url=url)
    book = start_excel().open(path)
    desk = Desk(book, Api(stock_service.url, url, token))
    command = {button.label: button.command for button in BUTTONS}
    desk.press(lambda: exec(command["Sync"], {}))
    assert {sku: row["Online"] for sku, row in desk.stock().items()} == {
        "A-1": 5, "B-2": 10, "00123": 0,
    }
    desk.type_in("A-1", "Received", 2)
    desk.press(lambda: exec(command["Preview"], {}))
    assert desk.stock()["A-1"]["Change"] == 2
    desk.press(lambda: exec(command["Publish"], {}), "yes")
    assert desk.api.levels()[1]["A-1"] == 7
    assert [a.mode for a in desk.alerts] == ["info", "info", "info", "info"]
    book.app.quit()
    saved = openpyxl.load_workbook(path, keep_vba=True)
    assert saved["Stock"]["A1"].value == "SKU"


def test_docs_describe_every_button_and_its_macro() -> None:
    from xlstock.macros.vba_source import BUTTONS

    docs = (Path(__file__).resolve().parents[1] / "docs" / "excel.md").read_text()
    for button in BUTTONS:
        assert callable(getattr(excel, button.action)), button
        assert f"- **{button.label}**" in docs, f"docs/excel.md does not describe {button.label}"
    assert f'RunPython "{BUTTONS[0].command}"' in docs
    for command in ("xlwings addin install", "xlwings runpython install",
                    "xlwings config create --force", "keyring set xlstock"):
        assert command in docs, command
