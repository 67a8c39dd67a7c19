"""Issue 20: a French workbook, and any workbook read in either language.

A French workbook that LibreOffice saved goes through the loop in the English tests,
parametrized on the language: tests/test_office_roundtrip.py, and the corpus of
tests/test_workbook_whole.py (libreoffice-chart-comment-fr.xlsx: formulas typed in
LibreOffice in Reçu and Nouveau niveau, a chart, every part xlstock does not own kept
byte for byte)."""

from __future__ import annotations

import openpyxl
import pytest
from support.shopkit import Shop

from xlstock.errors import SheetError
from xlstock.workbook import layout
from xlstock.workbook.xlsx_file import XlsxFile


class FrenchShop(Shop):
    """The session's stock service and a French workbook for it."""

    def new(self) -> None:
        self.run("new", str(self.workbook), "--service", self.server.url, "--shop", self.url,
                 "--lang", "fr")

    def edit(self, **cells_by_sku) -> None:
        wb = openpyxl.load_workbook(self.workbook)
        ws = wb["Stock"]
        headers = {c.value: c.column for c in ws[1] if c.value}
        for row in range(2, ws.max_row + 1):
            sku = ws.cell(row, headers["SKU"]).value
            for header, value in cells_by_sku.get(sku, {}).items():
                ws.cell(row, headers[layout.FRENCH_HEADERS.get(header, header)]).value = value
        wb.save(self.workbook)


@pytest.fixture
def french(stock_service, tmp_path):
    shop = FrenchShop(stock_service, tmp_path)
    shop.new()
    return shop


def test_the_loop_on_a_french_workbook(french):
    french.run("sync", str(french.workbook))
    french.edit(**{"A-1": {"Received": 5}, "B-2": {"New level": 2}})
    french.sell(B_2=1)
    french.run("preview", str(french.workbook))
    french.run("publish", str(french.workbook))
    assert french.live()["A-1"] == 15 and french.live()["B-2"] == 1
    wb = openpyxl.load_workbook(french.workbook)
    assert wb.sheetnames[:4] == ["Stock", "Paramètres", "Journal", "Stock bas"]
    stock = {r[0]: r for r in wb["Stock"].iter_rows(min_row=2, values_only=True)}
    assert stock["A-1"][3] == 15 and stock["A-1"][4] is None  # En ligne, Reçu
    settings = {r[0]: r[1] for r in wb["Paramètres"].iter_rows(values_only=True) if r[0]}
    assert settings["Dernière publication"] and settings["Version en ligne"]
    journal = list(wb["Journal"].iter_rows(values_only=True))
    assert journal[0][0] == "Quand" and [r[1] for r in journal[1:]][-1] == "publication"


@pytest.mark.parametrize("typed", ["Nouveau niveau", "nouveau  niveau", "NOUVEAU NIVEAU",
                                   " Nouveau Niveau "])
def test_french_headers_typed_in_an_english_workbook_are_read(stock_service, tmp_path, typed):
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))
    wb = openpyxl.load_workbook(shop.workbook)
    ws = wb["Stock"]
    for cell in ws[1]:
        if cell.value == "New level":
            cell.value = typed
        elif cell.value == "Received":
            cell.value = "Reçu"
    wb.save(shop.workbook)
    shop.edit(**{"A-1": {typed: 7}, "B-2": {"Reçu": 1}})
    shop.run("publish", str(shop.workbook))
    assert shop.live()["A-1"] == 7 and shop.live()["B-2"] == 6


def test_two_columns_meaning_the_same_in_two_languages_are_named(tmp_path):
    path = tmp_path / "mixed.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "Stock"
    wb.active.append(["SKU", "Online", "Received", "New level", "En ligne"])
    wb.save(path)
    with XlsxFile.open(path) as book, pytest.raises(SheetError) as caught:
        layout.read_stock(book)
    assert "columns B and E are both headed 'Online' ('Online' and 'En ligne')" in \
        caught.value.message


def test_a_french_xlsm_has_french_buttons(tmp_path):
    import zipfile

    from click.testing import CliRunner

    from xlstock.cli import main

    book = tmp_path / "stock.xlsm"
    result = CliRunner().invoke(main, ["new", str(book), "--lang", "fr"])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(book) as package:
        drawings = "".join(package.read(n).decode("utf-8") for n in package.namelist()
                           if n.endswith(".vml"))
    for word in ("Synchroniser", "Aperçu", "Publier", "Annuler"):
        assert word in drawings


def test_init_adds_french_sheets_to_a_workbook_of_ones_own(stock_service, tmp_path):
    from click.testing import CliRunner

    from xlstock.cli import main

    book = tmp_path / "mine.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "Mes prix"
    wb.save(book)
    shop = Shop(stock_service, tmp_path)
    result = CliRunner().invoke(main, ["init", str(book), "--service", stock_service.url,
                                       "--shop", shop.url, "--lang", "fr"])
    assert result.exit_code == 0, result.output
    assert openpyxl.load_workbook(book).sheetnames == [
        "Mes prix", "Stock", "Paramètres", "Journal", "_xlstock"]
    shop.workbook = book
    shop.run("sync", str(book))
    assert {r[0]: r[3] for r in openpyxl.load_workbook(book)["Stock"].iter_rows(
        min_row=2, values_only=True)}["A-1"] == 10
    again = CliRunner().invoke(main, ["init", str(book), "--lang", "en"])
    assert again.exit_code == 2 and "set up for xlstock" in again.output


def test_a_first_sync_of_a_shop_without_products_says_how_to_load_them(stock_service,
                                                                       tmp_path):
    """A new merchant's own stock service lists nothing until its catalogue is loaded: the
    first Sync says so, and how, instead of a bare '0 SKU synchronisé(s)'."""
    shop = FrenchShop(stock_service, tmp_path, items=())
    shop.new()
    shop.env = {**shop.env, "XLSTOCK_LANG": "fr"}
    synced = shop.run("sync", str(shop.workbook))
    assert "0 SKU synchronisé(s)" in synced.stdout
    assert (f"Le service de stock ne liste encore aucun produit pour {shop.url} : chargez "
            f"les produits de la boutique sur l'ordinateur du service avec `xlstock shop add "
            f"{shop.url} --db FICHIER --catalogue CSV`") in synced.stdout, synced.stdout


def test_a_low_at_that_is_no_whole_number_is_named_not_silently_left_out(french):
    """'cinq' typed in Stock bas à was ignored without a word (the row never showed on
    sheet Stock bas); a threshold never stops a publish, but the merchant is told."""
    french.env = {**french.env, "XLSTOCK_LANG": "fr"}
    french.run("sync", str(french.workbook), "-q")
    french.edit(**{"A-1": {"Low at": "cinq"}, "B-2": {"Low at": -1}, "C-3": {"Low at": 3},
                   "00123": {"Low at": " "}})
    expected = ("SKU 'A-1' : Stock bas à 'cinq' n'est pas un nombre entier 0 "
                "ou plus, il est donc ignoré (le Stock bas à de Paramètres s'applique) ; "
                "tapez-en un, ou videz la cellule")
    for command in ("validate", "preview", "sync"):
        if command == "sync":
            french.sell(B_2=1)  # a Sync that finds the levels moved reads the sheet
        result = french.run(command, str(french.workbook))
        assert expected in result.output, (command, result.output)
        assert "SKU 'B-2' : Stock bas à -1 n'est pas" in result.output
        assert "'C-3'" not in result.output and "'00123'" not in result.output


def test_a_boolean_typed_in_a_number_column_is_named_as_a_french_spreadsheet_shows_it(
        french):
    """A French LibreOffice or Excel shows VRAI and FAUX: the French message said TRUE."""
    french.env = {**french.env, "XLSTOCK_LANG": "fr"}
    french.run("sync", str(french.workbook), "-q")
    french.edit(**{"A-1": {"Received": True}, "B-2": {"New level": False}})
    result = french.run("validate", str(french.workbook), expect=1)
    assert "SKU 'A-1' : Reçu vaut VRAI ; tapez un nombre entier" in result.output, result.output
    assert "SKU 'B-2' : Nouveau niveau vaut FAUX ; tapez un nombre entier" in result.output
    assert "TRUE" not in result.output and "FALSE" not in result.output


def test_an_order_says_its_lines_with_the_french_colon(french):
    french.env = {**french.env, "XLSTOCK_LANG": "fr"}
    placed = french.run("order", "--service", french.server.url, "--shop", french.url,
                        "A-1=2", "B-2=1")
    assert placed.stdout.startswith("A-1 : -2\nB-2 : -1\nCommande passée"), placed.stdout
