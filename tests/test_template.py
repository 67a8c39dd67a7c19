"""The merchant's workbook template: built by code, deterministic, and what it holds."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from xlstock.workbook import layout
from xlstock.workbook.base import (
    HOWTO_SHEET,
    LOG_SHEET,
    LOW_STOCK_SHEET,
    SETTINGS_SHEET,
    STATE_SHEET,
    STOCK_SHEET,
)
from xlstock.workbook.template import build_workbook, workbook_bytes
from xlstock.workbook.xlsx_file import XlsxFile

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "workbook_template.xlsx"


def test_committed_template_is_exactly_what_the_code_builds() -> None:
    assert COMMITTED.read_bytes() == workbook_bytes(), (
        "workbook_template.xlsx is out of date: regenerate it with "
        "`xlstock new workbook_template.xlsx --lang en --force` and commit it"
    )


def test_committed_french_template_is_exactly_what_the_code_builds() -> None:
    """Issue 20: the French template beside the English one, made the same way."""
    assert (REPO / "workbook_template_fr.xlsx").read_bytes() == workbook_bytes(
        language="fr"), ("workbook_template_fr.xlsx is out of date: regenerate it with "
                         "`xlstock new workbook_template_fr.xlsx --lang fr --force`")


def test_the_french_template_speaks_french(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.load_workbook(REPO / "workbook_template_fr.xlsx")
    assert wb.sheetnames == ["Stock", "Paramètres", "Journal", "Stock bas", "Mode d'emploi",
                             "_xlstock"]
    assert [c.value for c in wb["Stock"][1]] == [
        "SKU", "Produit", "Variante", "En ligne", "Reçu", "Nouveau niveau", "Variation",
        "Stock bas à", "Statut"]
    assert wb["Paramètres"]["A2"].value == "Adresse URL de la boutique"
    assert wb.defined_names["LowStockAt"].attr_text == "'Paramètres'!$B$9"
    assert "Synchroniser" in wb["Mode d'emploi"]["A4"].value


@pytest.mark.parametrize("language", layout.LANGUAGES)
def test_every_header_and_label_fits_its_column(language: str) -> None:
    """A French merchant saw "ouveau nivea" over Nouveau niveau: the widths were the
    English words'. Every header of Stock, Log and Low stock, and every label of
    Settings, gets a column at least one character wider than itself (LibreOffice then
    shows "Variation", bold, whole in a width of 10)."""
    wb = load_workbook(REPO / ("workbook_template_fr.xlsx" if language == "fr"
                               else "workbook_template.xlsx"))
    cells = [cell for name in (STOCK_SHEET, LOG_SHEET, LOW_STOCK_SHEET)
             for cell in wb[layout.sheet_text(name, language)][1]]
    settings = wb[layout.sheet_text(SETTINGS_SHEET, language)]
    cells += [settings.cell(row, 1) for row in range(1, len(layout.SETTING_LABELS) + 1)]
    cut = [f"{cell.parent.title}!{cell.coordinate} {cell.value!r}: width "
           f"{cell.parent.column_dimensions[cell.column_letter].width}" for cell in cells
           if cell.value and (cell.parent.column_dimensions[cell.column_letter].width or 0)
           < len(str(cell.value)) + 1]
    assert cut == []


def test_builds_are_byte_identical_with_fixed_dates(tmp_path: Path) -> None:
    first, second = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    build_workbook(first, service_url="https://stock.example", shop_url="https://shop.example")
    build_workbook(second, service_url="https://stock.example", shop_url="https://shop.example")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        assert {info.date_time for info in zf.infolist()} == {(2026, 1, 1, 0, 0, 0)}
        assert {info.create_system for info in zf.infolist()} == {0}
        core = zf.read("docProps/core.xml").decode()
    assert "2026-01-01T00:00:00Z" in core
    assert core.count("2026-01-01T00:00:00Z") == 2  # created and modified


def test_new_workbook_carries_the_given_addresses(tmp_path: Path) -> None:
    path = tmp_path / "stock.xlsx"
    build_workbook(path, service_url="https://stock.example", shop_url="https://shop.example")
    with XlsxFile.open(path) as book:
        settings = layout.read_settings(book)
    assert settings.service_url == "https://stock.example"
    assert settings.shop_url == "https://shop.example"
    assert settings.policy == "rebase"
    assert workbook_bytes(service_url="https://stock.example") != workbook_bytes()


def test_template_opens_through_the_adapter_without_losses(tmp_path: Path) -> None:
    path = tmp_path / "stock.xlsx"
    path.write_bytes(workbook_bytes())
    with XlsxFile.open(path) as book:
        assert book.sheet_names() == [STOCK_SHEET, SETTINGS_SHEET, LOG_SHEET, LOW_STOCK_SHEET,
                                      HOWTO_SHEET,
                                      STATE_SHEET]
        assert book.read_sheet(STOCK_SHEET) == [list(layout.STOCK_HEADERS)]
        assert book.read_sheet(LOG_SHEET) == [list(layout.LOG_HEADERS)]
        assert book.read_sheet(STATE_SHEET) == []
        assert layout.read_state(book) == {}
        settings = layout.read_settings(book)
    assert settings.service_url == layout.DEFAULT_SERVICE
    assert settings.shop_url == ""
    assert set(settings.rows) == set(layout.SETTING_LABELS)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("template") / "stock.xlsx"
    path.write_bytes(workbook_bytes())
    return load_workbook(path)


def test_stock_sheet_layout(template) -> None:
    stock = template[STOCK_SHEET]
    headers = [c.value for c in stock[1]]
    assert headers == list(layout.STOCK_HEADERS)
    assert all(c.font.bold and c.fill.fill_type == "solid" for c in stock[1])
    assert stock.freeze_panes == "B2"
    column = {h: chr(ord("A") + i) for i, h in enumerate(layout.STOCK_HEADERS)}
    assert stock.column_dimensions[column[layout.SKU]].number_format == "@"
    for header in layout.STOCK_HEADERS:
        assert stock.column_dimensions[column[header]].width >= 9


def test_stock_validations_refuse_bad_quantities(template) -> None:
    stock = template[STOCK_SHEET]
    column = {h: chr(ord("A") + i) for i, h in enumerate(layout.STOCK_HEADERS)}
    by_range = {str(dv.sqref): dv for dv in stock.data_validations.dataValidation}
    received = by_range[f"{column[layout.RECEIVED]}2:{column[layout.RECEIVED]}1048576"]
    assert (received.type, received.operator) == ("whole", "between")
    assert (float(received.formula1), float(received.formula2)) == (-1e9, 1e9)
    new_level = by_range[f"{column[layout.NEW_LEVEL]}2:{column[layout.NEW_LEVEL]}1048576"]
    assert (new_level.type, new_level.operator, new_level.formula1) == (
        "whole", "greaterThanOrEqual", "0")
    for dv in by_range.values():
        assert dv.showErrorMessage and dv.allow_blank
        assert dv.error and dv.errorTitle
        # Excel's own limits; past them Excel reports the file as damaged.
        assert len(dv.errorTitle) <= 32 and len(dv.error) <= 225
        assert len(dv.promptTitle or "") <= 32 and len(dv.prompt or "") <= 255


def test_stock_conditional_formats(template) -> None:
    stock = template[STOCK_SHEET]
    rules = {
        str(cf.sqref): [r.formula[0] for r in cf.rules]
        for cf in stock.conditional_formatting
    }
    assert rules["A2:I1048576"] == ['OR($E2<>"",$F2<>"")']
    threshold = "IF(ISNUMBER($H2),$H2,IF(ISNUMBER(LowStockAt),LowStockAt,-1))"
    assert rules["D2:D1048576"] == ["AND(ISNUMBER($D2),$D2<=0)",
                                    f"AND(ISNUMBER($D2),$D2<={threshold})"]
    assert rules["G2:G1048576"] == ["AND(ISNUMBER($G2),ISNUMBER($D2),$D2+$G2<=0)",
                                    f"AND(ISNUMBER($G2),ISNUMBER($D2),$D2+$G2<={threshold})"]
    assert template.defined_names["LowStockAt"].attr_text == "'Settings'!$B$9"
    assert "I2:I1048576" in rules
    priority = {str(cf.sqref): cf.rules[0].priority for cf in stock.conditional_formatting}
    assert priority["D2:D1048576"] < priority["A2:I1048576"]  # low stock shows on edited rows


def test_settings_log_howto_and_state(template) -> None:
    settings = template[SETTINGS_SHEET]
    labels = [settings.cell(row=r, column=1).value for r in range(1, 10)]
    assert labels == list(layout.SETTING_LABELS)
    assert settings["B7"].value == "xlstock service" and settings["B8"].value is None
    platform = [dv for dv in settings.data_validations.dataValidation if str(dv.sqref) == "B7"]
    assert platform[0].formula1 == '"xlstock service,Shopify,WooCommerce"'
    assert settings["B1"].value == layout.DEFAULT_SERVICE
    assert settings["B3"].value == "rebase"
    assert settings["B4"].value is None and settings["B6"].value is None
    policy = [dv for dv in settings.data_validations.dataValidation if str(dv.sqref) == "B3"]
    assert policy and policy[0].type == "list" and policy[0].formula1 == '"rebase,strict"'
    text = " ".join(str(c.value) for row in settings.iter_rows() for c in row if c.value)
    assert "No token" in text
    assert [c.value for c in template[LOG_SHEET][1]] == list(layout.LOG_HEADERS)
    howto = " ".join(str(c.value) for row in template[HOWTO_SHEET].iter_rows() for c in row
                     if c.value)
    for words in ("Sync", "Received", "New level", "Preview", "Publish", "never overwritten",
                  "XLSTOCK_TOKEN", "keyring", "yellow"):
        assert words in howto
    assert template[STATE_SHEET].sheet_state == "veryHidden"
    assert template[HOWTO_SHEET].sheet_state == "visible"


def test_xlstock_new_regenerates_the_committed_template(tmp_path: Path) -> None:
    """`xlstock new workbook_template.xlsx` is how the committed template is made."""
    from click.testing import CliRunner

    from xlstock.cli import main

    target = tmp_path / "workbook_template.xlsx"
    result = CliRunner().invoke(main, ["new", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == workbook_bytes()
    french = tmp_path / "fr.xlsx"
    result = CliRunner().invoke(main, ["new", str(french)], env={"XLSTOCK_LANG": "fr_FR"})
    assert result.exit_code == 0 and french.read_bytes() == workbook_bytes(language="fr")
    french.unlink()
    assert not [p for p in tmp_path.iterdir() if p.name != target.name]


@pytest.mark.parametrize(("options", "message"), [
    (["--shopify", "s.myshopify.com", "--woocommerce", "https://shop.example"],
     "a workbook keeps one shop: give --shopify or --woocommerce"),
    (["--woocommerce", "https://shop.example", "--location", "Main"],
     "--woocommerce names the shop: leave out --service, --shop and --location"),
    (["--shopify", "s.myshopify.com", "--shop", "https://shop.example"],
     "--shopify names the store: leave out --service and --shop"),
    (["--location", "Main"], "--location is for a Shopify store (--shopify STORE)"),
    (["--shop", "not a shop"], "--shop: "),
])
def test_xlstock_new_refuses_options_that_do_not_go_together(
    tmp_path: Path, options: list[str], message: str
) -> None:
    """Each contradiction among the options naming the shop is named, and no workbook
    is made (checked before anything is written)."""
    from click.testing import CliRunner

    from xlstock.cli import main

    target = tmp_path / "stock.xlsx"
    result = CliRunner().invoke(main, ["new", str(target), *options],
                                env={"XLSTOCK_LANG": "en"})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not target.exists()


def test_xlstock_new_checks_the_name_before_the_options(tmp_path: Path) -> None:
    """A bad name is reported first, whatever the options say; an existing workbook is
    kept unless --force."""
    from click.testing import CliRunner

    from xlstock.cli import main

    result = CliRunner().invoke(main, ["new", str(tmp_path / "stock.csv"), "--location", "M"],
                                env={"XLSTOCK_LANG": "en"})
    assert result.exit_code == 2 and "name the workbook .xlsx" in result.output
    existing = tmp_path / "stock.xlsx"
    existing.write_bytes(b"mine")
    result = CliRunner().invoke(main, ["new", str(existing), "--location", "M"],
                                env={"XLSTOCK_LANG": "en"})
    assert result.exit_code == 2 and "exists already" in result.output
    assert existing.read_bytes() == b"mine"
