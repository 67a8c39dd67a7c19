"""Issue 20, points 2 and 3: xlstock writes its own words (Status, Log, Settings' stamps)
in the workbook's language, whatever the machine's, and says what it did (the command
line's report) in the machine's language. It reads its Status words back in either."""

from __future__ import annotations

import re

import openpyxl
import pytest
from click.testing import CliRunner
from support.shopkit import Shop

from xlstock import i18n
from xlstock.cli import main
from xlstock.model import StockItem
from xlstock.planner import STATUS_CHANGED, STATUS_NEW, STATUS_OK, status_key, status_text

ENGLISH_WORDS = {"the", "is", "not", "row", "rows", "shop", "online", "sent", "nothing",
                 "error", "check", "changed", "new", "published", "sync", "publish",
                 "failed", "units", "and", "of", "kept", "level", "type", "need", "fixing"}
"""Words of xlstock's English messages that no French one has."""


def english_in(text: object) -> set[str]:
    """The English words of ``text`` (SKUs, numbers and addresses aside)."""
    words = re.sub(r"https?://\S+", "", str(text or "")).lower()
    return set(re.findall(r"[a-z]+", words)) & ENGLISH_WORDS


FRENCH_STAMP = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d$")
ENGLISH_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


class MachineShop(Shop):
    """A shop whose commands run on a machine speaking ``machine``, with a workbook in
    ``workbook_language``."""

    def __init__(self, server, tmp_path, *, machine: str, workbook_language: str) -> None:
        super().__init__(server, tmp_path)
        self.env["XLSTOCK_LANG"] = machine
        self.workbook_language = workbook_language

    def new(self) -> None:
        self.run("new", str(self.workbook), "--service", self.server.url, "--shop", self.url,
                 "--lang", self.workbook_language)

    def add_product(self, sku: str, qty: int) -> None:
        """A product new to the shop online (the others kept as they are)."""
        self.server.store.register_shop(self.url, [StockItem(sku, "New", "", qty)],
                                        another_token=False)

    def type_in(self, sku: str, header: str, value: object) -> None:
        """Type ``value`` under the column headed ``header`` (as the workbook heads it)."""
        wb = openpyxl.load_workbook(self.workbook)
        ws = wb["Stock"]
        column = {c.value: c.column for c in ws[1] if c.value}[header]
        for row in range(2, ws.max_row + 1):
            if ws.cell(row, 1).value == sku:
                ws.cell(row, column).value = value
        wb.save(self.workbook)

    def add_row(self, sku: str, header: str, value: object) -> None:
        """A row the merchant adds at the bottom: ``sku`` and one value."""
        wb = openpyxl.load_workbook(self.workbook)
        ws = wb["Stock"]
        column = {c.value: c.column for c in ws[1] if c.value}[header]
        row = ws.max_row + 1
        ws.cell(row, 1).value = sku
        ws.cell(row, column).value = value
        wb.save(self.workbook)

    def column(self, header: str) -> dict[str, object]:
        ws = openpyxl.load_workbook(self.workbook)["Stock"]
        headers = [c.value for c in ws[1]]
        return {r[0]: r[headers.index(header)] for r in ws.iter_rows(min_row=2, values_only=True)
                if r[0] is not None}

    def sheet_rows(self, sheet: str) -> list[tuple]:
        return list(openpyxl.load_workbook(self.workbook)[sheet].iter_rows(values_only=True))


def test_a_french_workbook_on_an_english_machine_gets_french_status_and_log(
        stock_service, tmp_path):
    shop = MachineShop(stock_service, tmp_path, machine="en", workbook_language="fr")
    shop.new()
    said = shop.run("sync", str(shop.workbook)).output
    assert "Synced 4 SKU(s)" in said  # the command line speaks the machine's language
    assert set(shop.column("Statut").values()) == {"ok"}  # a first sync: nothing is new
    settings = {r[0]: r[1] for r in shop.sheet_rows("Paramètres") if r[0]}
    assert FRENCH_STAMP.match(settings["Dernière synchronisation"])
    shop.add_product("N-9", 4)
    shop.run("sync", str(shop.workbook))
    assert shop.column("Statut")["N-9"] == "nouveau"
    shop.sell(C_3=1)
    shop.run("sync", str(shop.workbook))  # reads "nouveau" back: a row not previewed yet
    assert shop.column("Statut")["N-9"] == "nouveau"
    assert set(shop.column("Statut").values()) == {"ok", "nouveau"}

    shop.type_in("A-1", "Reçu", "beaucoup")
    failed = shop.run("publish", str(shop.workbook), expect=None)
    assert failed.exit_code != 0 and "is not a whole number" in failed.output
    assert shop.column("Statut")["A-1"] == \
        "erreur : Reçu 'beaucoup' n'est pas un nombre entier ; tapez-en un"

    shop.type_in("A-1", "Reçu", 5)
    shop.type_in("B-2", "Nouveau niveau", 2)
    shop.sell(B_2=1)
    shop.run("preview", str(shop.workbook))
    status = shop.column("Statut")
    assert status["A-1"] == status["B-2"] == "modifié" and status["C-3"] == "ok"
    shop.run("publish", str(shop.workbook))
    assert shop.live()["A-1"] == 15 and shop.live()["B-2"] == 1

    shop.add_row("ZZ-9", "Reçu", 1)  # a SKU the shop does not have, with an edit
    shop.run("publish", str(shop.workbook), expect=None)
    assert shop.column("Statut")["ZZ-9"] == (
        "erreur : SKU absent de la boutique en ligne ; vérifiez l'orthographe, ou ajoutez "
        "d'abord le produit à la boutique")
    shop.type_in("ZZ-9", "Reçu", None)
    shop.sell(A_1=1)
    shop.run("sync", str(shop.workbook))
    assert shop.column("Statut")["ZZ-9"].startswith(
        "absent de la boutique en ligne (ligne gardée) ; vérifiez l'orthographe")
    shown = [*shop.column("Statut").values(),
             *(cell for row in shop.sheet_rows("Journal") for cell in row[1:2] + row[5:])]
    assert not set().union(*map(english_in, shown)), shown

    log = shop.sheet_rows("Journal")[:6]
    assert log[0][0] == "Quand"
    assert [r[1] for r in log[1:]] == ["synchronisation", "synchronisation", "synchronisation",
                                       "publication", "publication"]
    assert all(FRENCH_STAMP.match(r[0]) for r in log[1:])
    assert log[4][5].startswith("échec : 1 ligne(s) de la feuille Stock à corriger")
    assert log[-1][5] == "2 modification(s) publiée(s)"
    settings = {r[0]: r[1] for r in shop.sheet_rows("Paramètres") if r[0]}
    assert FRENCH_STAMP.match(settings["Dernière publication"])

    # The Sync after the publish read the French words back: "modifié" on a row with no
    # edit left reads as "ok".
    status = shop.column("Statut")
    assert status["A-1"] == status["B-2"] == status["C-3"] == "ok"


def test_an_english_workbook_on_a_french_machine_gets_english_status_and_log(
        stock_service, tmp_path):
    shop = MachineShop(stock_service, tmp_path, machine="fr", workbook_language="en")
    shop.new()
    said = shop.run("sync", str(shop.workbook)).output
    assert "4 SKU synchronisé(s) depuis" in said
    assert set(shop.column("Status").values()) == {"ok"}  # a first sync: nothing is new
    shop.type_in("A-1", "Received", "lots")
    failed = shop.run("publish", str(shop.workbook), expect=None)
    assert failed.exit_code != 0 and "Reçu 'lots' n'est pas un nombre entier" in failed.output
    assert shop.column("Status")["A-1"] == "error: Received 'lots' is not a whole number; type one"
    assert shop.sheet_rows("Log")[-1][5].startswith("failed: 1 row(s) of sheet Stock need fixing")
    shop.type_in("A-1", "Received", 1200)
    said = shop.run("publish", str(shop.workbook)).output
    assert "1 modification(s) publiée(s) vers" in said and "+1\u202f200 unités" in said
    status = shop.column("Status")
    assert status["A-1"] == "changed" and status["B-2"] == "ok"
    log = shop.sheet_rows("Log")
    assert [r[1] for r in log[1:]] == ["sync", "publish", "publish"]
    assert all(ENGLISH_STAMP.match(r[0]) for r in log[1:])
    assert log[-1][5] == "published 1 change(s)"
    settings = {r[0]: r[1] for r in shop.sheet_rows("Settings") if r[0]}
    assert ENGLISH_STAMP.match(settings["Last publish"])


NO_LANGUAGE = {"XLSTOCK_LANG": None, "LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None,
               "LANG": "C.UTF-8"}
"""A machine that asks for no language: a scheduled job, a container, a Windows terminal
(``None`` removes the variable for :class:`click.testing.CliRunner`)."""


@pytest.mark.parametrize("workbook_language, said", [
    ("fr", "4 SKU synchronisé(s) depuis"), ("en", "Synced 4 SKU(s) from"),
])
def test_on_a_machine_asking_for_no_language_a_command_speaks_the_workbooks(
        stock_service, tmp_path, workbook_language, said):
    shop = MachineShop(stock_service, tmp_path, machine=workbook_language,
                       workbook_language=workbook_language)
    shop.new()
    shop.env.update(NO_LANGUAGE)
    assert said in shop.run("sync", str(shop.workbook)).output
    typed = "Reçu" if workbook_language == "fr" else "Received"
    shop.type_in("A-1", typed, "lots")
    failed = shop.run("validate", str(shop.workbook), expect=None)
    wrong = {"fr": "xlstock : 1 ligne(s) de la feuille Stock à corriger",
             "en": "xlstock: 1 row(s) of sheet Stock need fixing"}[workbook_language]
    assert failed.exit_code == 1 and wrong in failed.output, failed.output
    # a locale set (or XLSTOCK_LANG) is the machine's choice: it wins over the workbook
    shop.env["LANG"] = "en_US.UTF-8" if workbook_language == "fr" else "fr_FR.UTF-8"
    other = shop.run("validate", str(shop.workbook), expect=None).output
    assert ("row(s) of sheet Stock need fixing" in other) == (workbook_language == "fr")


def test_a_file_that_is_no_workbook_is_said_as_before_on_a_machine_with_no_language(
        tmp_path):
    bad = tmp_path / "notes.xlsx"
    bad.write_text("not a workbook")
    result = CliRunner().invoke(main, ["validate", str(bad)], env=NO_LANGUAGE)
    assert result.exit_code != 0 and result.output.startswith("xlstock: "), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("word, key", [
    ("ok", STATUS_OK), ("changed", STATUS_CHANGED), ("modifié", STATUS_CHANGED),
    (" MODIFIÉ ", STATUS_CHANGED), ("new", STATUS_NEW), ("nouveau", STATUS_NEW),
    ("absent de la boutique en ligne", "not in the shop online"),
    ("error: Received is empty", None), ("", None), (None, None), (12, None),
])
def test_a_status_word_reads_in_either_language(word, key):
    assert status_key(word) == key


def test_every_status_word_is_french_in_a_french_workbook():
    for key in (STATUS_OK, STATUS_CHANGED, STATUS_NEW, "not in the shop online"):
        assert status_text(key, i18n.ENGLISH) == key
        assert status_key(status_text(key, i18n.FRENCH)) == key
    assert status_text(STATUS_CHANGED, i18n.FRENCH) == "modifié"


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_templates_do_not_flag_a_fine_status_in_either_language(language):
    import io

    from openpyxl import load_workbook

    from xlstock.workbook.template import workbook_bytes
    stock = load_workbook(io.BytesIO(workbook_bytes(language=language)))["Stock"]
    formulas = [f for rules in stock.conditional_formatting for rule in rules.rules
                for f in rule.formula if "<>\"ok\"" in f]
    assert len(formulas) == 1
    for word in ("ok", "changed", "new", "modifié", "nouveau"):
        assert f'<>"{word}"' in formulas[0]


@pytest.mark.parametrize("stored, english, french", [
    ("2026-12-06T10:05:00Z", "2026-12-06 10:05", "06/12/2026 10:05"),  # the service's
    ("2026-12-06 10:05:00", "2026-12-06 10:05", "06/12/2026 10:05"),  # the workbook's state
    ("not a date", "not a date", "not a date"),  # a damaged state: shown, never a crash
])
def test_a_stored_stamp_in_a_message_is_written_the_languages_way(stored, english, french):
    from xlstock.actions import _stamp_of

    said = i18n._("publish {key} was undone already, at {when:dt}; nothing was sent",
                  key="k1", when=_stamp_of(stored))
    assert said.render("en") == f"publish k1 was undone already, at {english}; nothing was sent"
    assert said.render("fr") == \
        f"la publication k1 a déjà été annulée, le {french} ; rien n'a été envoyé"


def test_the_how_to_sheet_comes_from_the_catalogue_line_for_line():
    from xlstock.workbook.template import HOWTO_LINES, howto_lines

    french = howto_lines("fr")
    assert [kind for _, kind in french] == [kind for _, kind in HOWTO_LINES]
    assert french[0][0] == "Tenir le stock de votre boutique dans ce classeur"
    assert all(bool(fr) == bool(en) and (not en or fr != en)
               for (fr, _), (en, _) in zip(french, HOWTO_LINES, strict=True))
    assert howto_lines("en") == HOWTO_LINES


@pytest.mark.parametrize("count", [0, 7, -5, 999, 1000, -1234, 100_000, 1_000_000_000, -10**15])
def test_an_english_whole_number_is_babels_without_loading_babel(count):
    from babel.numbers import format_decimal

    assert i18n.number(count, "en") == format_decimal(count, locale="en")


def test_a_second_sync_of_a_french_workbook_knows_nothing_changed(stock_service, tmp_path):
    """Sync remembers a hash of what it wrote (Status included, in French) and asks the
    shop for the levels only if they changed: the words it wrote must be the ones it
    hashed, or every Sync reads the whole shop again."""
    shop = MachineShop(stock_service, tmp_path, machine="en", workbook_language="fr")
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.add_product("N-9", 4)
    shop.run("sync", str(shop.workbook))
    said = shop.run("sync", str(shop.workbook)).output
    assert "Nothing changed in" in said and "the sheet already has the live levels" in said
    assert shop.column("Statut")["N-9"] == "nouveau"


def test_on_a_french_machine_what_the_actions_say_has_no_english_word(monkeypatch):
    """Issue 20, point 3, the actions' half: with LANG=fr_FR.UTF-8 (and no XLSTOCK_LANG)
    every summary, line, table note and error of sync, preview, publish, validate and
    undo is French (the command line prints these as they are)."""
    from support.memory_book import FakeStockService, MemoryBook

    from xlstock import actions
    from xlstock.errors import XlstockError
    from xlstock.workbook.layout import NEW_LEVEL, RECEIVED, SKU, STOCK_HEADERS

    monkeypatch.delenv("XLSTOCK_LANG", raising=False)
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    said: list[object] = []

    def heard(report: actions.Report) -> None:
        said.extend([report.summary, *report.lines, *(row[4] for row in report.table)])
        if report.error is not None:
            said.append(str(report.error))

    column = {header: number for number, header in enumerate(STOCK_HEADERS, start=1)}
    book = MemoryBook.stock([["GONE-1"]])
    service = FakeStockService({"A-1": 5, "B-2": 1, "C-3": 1200})

    def type_in(sku: str, header: str, value: object) -> None:
        book.set("Stock", book.column(SKU).index(sku) + 2, column[header], value)

    heard(actions.sync(book, service))
    type_in("A-1", RECEIVED, "beaucoup")
    type_in("B-2", RECEIVED, 1)
    type_in("B-2", NEW_LEVEL, 2)
    type_in("GONE-1", RECEIVED, 3)
    heard(actions.validate(book))
    heard(actions.preview(book, service))
    try:
        actions.publish(book, service)
    except XlstockError as refused:
        said.append(str(refused))
    type_in("A-1", RECEIVED, 1500)
    type_in("B-2", RECEIVED, None)
    type_in("C-3", NEW_LEVEL, 1000)
    type_in("GONE-1", RECEIVED, None)
    heard(actions.preview(book, service))
    heard(actions.publish(book, service))
    heard(actions.validate(book))
    heard(actions.undo(book, service, preview=True))
    heard(actions.undo(book, service))
    assert len(said) > 15
    english = {str(text): english_in(text) for text in said if english_in(text)}
    assert not english, english
    assert "+1\u202f500 reçu(s)" in said and "compté 1\u202f000" in said  # numbers the French way
    assert any("+1\u202f501 / -200 unités" in str(text) for text in said)
