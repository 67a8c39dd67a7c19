"""The commands that give a workbook the Excel buttons (:mod:`xlstock.macros.install`).

``xlstock new stock.xlsm`` makes a macro workbook that olevba, openpyxl and the file
adapter read, deterministically. ``xlstock buttons``: an .xlsx gets the Excel buttons
without losing anything, and an .xlsm made with an older xlwings gets the installed
xlwings module while the merchant's own macros are kept byte for byte. Real files, the
real CLI, read back by olevba, olefile and openpyxl."""

from __future__ import annotations

import errno
import importlib.metadata
import io
import os
import re
import zipfile
from pathlib import Path

import olefile
import openpyxl
import pytest
import xlwings
from click.testing import CliRunner
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from support.vba_craft import (
    MODULE1,
    OLD_XLWINGS,
    WORKBOOK_OPEN,
    code_names,
    macros_of,
    old_macro_workbook,
    parts_of,
    write_parts,
)

from xlstock.cli import main
from xlstock.errors import WorkbookError
from xlstock.macros.cfb import write_compound_file
from xlstock.macros.install import (
    install_buttons,
    macro_workbook_bytes,
    refreshed_macro_workbook,
    write_macro_workbook,
)
from xlstock.macros.ovba import (
    VbaModule,
    decompress,
    encrypt_project_data,
    read_vba_project,
)
from xlstock.macros.vba_source import BUTTONS, VBA_PART, xlwings_vba_source
from xlstock.workbook.template import build_workbook

XLWINGS = importlib.metadata.version("xlwings")
QUICKSTART = Path(xlwings.__file__).parent / "quickstart_standalone.xlsm"


def _module_bytes(path: Path, name: str) -> bytes:
    """A module's source as stored in the file: decompressed, not decoded."""
    ole = olefile.OleFileIO(io.BytesIO(parts_of(path)[VBA_PART]))
    try:
        return decompress(ole.openstream(f"VBA/{name}").read())
    finally:
        ole.close()


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["buttons", *args])
    return result.exit_code, result.output


def _check_buttons(path: Path) -> None:
    source = macros_of(path)["xlstock"]
    for button in BUTTONS:
        assert f'Public Sub {button.macro}()\r\n    RunPython "{button.command}"' in source
    sheet = parts_of(path)["xl/worksheets/sheet1.xml"].decode()
    for button in BUTTONS:
        assert re.search(rf'<control shapeId="\d+" r:id="rId\d+"[^>]*>'
                         rf'<controlPr [^>]*macro="\[0\]!{button.macro}"', sheet), button.label


@pytest.fixture
def merchant_xlsx(tmp_path: Path) -> Path:
    """A workbook from ``xlstock new`` the merchant has kept stock in: rows, a column
    Supplier of their own (formatted), a sheet Suppliers, a validation, a defined name."""
    path = tmp_path / "stock.xlsx"
    build_workbook(path)
    wb = openpyxl.load_workbook(path)
    stock = wb["Stock"]
    stock["J1"] = "Supplier"
    stock.append(["00123", "Socks", "Blue", 4, None, None, None, 2, None, "Woolly Ltd"])
    stock.append(["B-7", "Cap", "", 12, 3, None, None, None, None, "Hats & Co"])
    stock["J2"].number_format = "@"
    stock["J3"].font = openpyxl.styles.Font(bold=True)
    rule = DataValidation(type="list", formula1="Suppliers!$A$2:$A$3", sqref="J2:J500")
    stock.add_data_validation(rule)
    suppliers = wb.create_sheet("Suppliers")
    suppliers.append(["Name", "Lead days"])
    suppliers.append(["Woolly Ltd", 5])
    suppliers.append(["Hats & Co", 12.5])
    suppliers["B3"].number_format = "0.0"
    wb.defined_names["SupplierNames"] = DefinedName("SupplierNames",
                                                    attr_text="Suppliers!$A$2:$A$3")
    wb.save(path)
    return path


def _everything(path: Path) -> dict[str, object]:
    wb = openpyxl.load_workbook(path, keep_vba=path.suffix == ".xlsm")
    found: dict[str, object] = {"sheets": wb.sheetnames,
                                "names": {n: d.attr_text for n, d in wb.defined_names.items()}}
    for sheet in wb.worksheets:
        found[sheet.title] = (
            [[(c.value, c.number_format, c.font.b) for c in row] for row in sheet.iter_rows()],
            [(v.type, v.formula1, str(v.sqref)) for v in sheet.data_validations.dataValidation],
            sheet.sheet_state, sheet.freeze_panes,
        )
    return found


# --- xlstock new stock.xlsm ---------------------------------------------------------------


@pytest.fixture
def xlsx(xlsm: Path) -> Path:
    return xlsm.with_suffix(".xlsx")


def test_openpyxl_loads_it_with_keep_vba(xlsm: Path, xlsx: Path) -> None:
    before = openpyxl.load_workbook(xlsx)
    after = openpyxl.load_workbook(xlsm, keep_vba=True)
    assert after.sheetnames == before.sheetnames
    assert [[c.value for c in row] for row in after["Stock"].iter_rows()] == (
        [[c.value for c in row] for row in before["Stock"].iter_rows()])
    assert after.vba_archive is not None and after.code_name == "ThisWorkbook"


def test_bytes_are_deterministic_and_reapplying_changes_nothing(xlsx: Path, tmp_path: Path) -> None:
    first = macro_workbook_bytes(xlsx)
    assert macro_workbook_bytes(xlsx.read_bytes()) == first
    assert macro_workbook_bytes(first) == first
    again = tmp_path / "again.xlsm"
    write_macro_workbook(xlsx, again)
    assert again.read_bytes() == first


def test_an_existing_vba_project_is_kept(xlsm: Path) -> None:
    parts = parts_of(xlsm)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, b"merchant's own project" if name == VBA_PART else data)
    again = macro_workbook_bytes(out.getvalue())
    with zipfile.ZipFile(io.BytesIO(again)) as archive:
        assert archive.read(VBA_PART) == b"merchant's own project"


def test_refuses_a_workbook_without_sheet_stock_or_not_a_workbook(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.title = "Inventory"
    wb.save(tmp_path / "other.xlsx")
    with pytest.raises(WorkbookError, match="no worksheet named 'Stock'"):
        write_macro_workbook(tmp_path / "other.xlsx", tmp_path / "other.xlsm")
    (tmp_path / "notes.xlsx").write_text("not a zip")
    with pytest.raises(WorkbookError, match="not a readable workbook"):
        write_macro_workbook(tmp_path / "notes.xlsx", tmp_path / "notes.xlsm")
    assert not (tmp_path / "other.xlsm").exists() and not (tmp_path / "notes.xlsm").exists()


def test_the_file_adapter_keeps_the_project_and_the_buttons(xlsm: Path) -> None:
    """Headless commands save through the file adapter; twice, to be sure nothing
    accumulates or fades."""
    from xlstock.workbook.xlsx_file import XlsxFile

    original = parts_of(xlsm)
    modules = macros_of(xlsm)
    for round_trip in range(2):
        with XlsxFile.open(xlsm) as book:
            book.write_block("Stock", 3, 1, [[f"SKU-{round_trip}", "Cap", "", 7]])
            book.save()
        parts = parts_of(xlsm)
        assert parts[VBA_PART] == original[VBA_PART]
        assert code_names(parts)[1]["Stock"] == code_names(original)[1]["Stock"]
        sheet = parts["xl/worksheets/sheet1.xml"].decode()
        assert sheet.count("<control ") == len(BUTTONS) and "<legacyDrawing" in sheet
        assert sorted(n for n in parts if n.startswith("xl/ctrlProps/")) == sorted(
            n for n in original if n.startswith("xl/ctrlProps/"))
    assert macros_of(xlsm) == modules
    with XlsxFile.open(xlsm, writable=False) as book:
        assert book.read_sheet("Stock")[2][:4] == ["SKU-1", "Cap", None, 7]


# --- .xlsx -> .xlsm -----------------------------------------------------------------------


def test_xlsx_becomes_an_xlsm_with_the_buttons_keeping_the_merchants_data(
    merchant_xlsx: Path,
) -> None:
    before = merchant_xlsx.read_bytes()
    code, output = _run(str(merchant_xlsx))
    assert code == 0, output
    out = merchant_xlsx.with_suffix(".xlsm")
    assert f"xlwings module {XLWINGS} added" in output
    assert "buttons added: Sync, Preview, Publish, Undo" in output
    assert merchant_xlsx.read_bytes() == before
    assert _everything(out) == _everything(merchant_xlsx)
    assert set(macros_of(out)) >= {"xlwings", "Dictionary", "xlstock"}
    _check_buttons(out)

    original, converted = parts_of(merchant_xlsx), parts_of(out)
    edited = {"[Content_Types].xml", "xl/workbook.xml", "xl/_rels/workbook.xml.rels"}
    edited |= {n for n in original if n.startswith("xl/worksheets/")}
    for name, data in original.items():
        assert name in converted, name
        if name not in edited:
            assert converted[name] == data, name
    vml = converted["xl/drawings/vmlDrawing1.vml"].decode()
    anchors = re.findall(r"<x:Anchor>(\d+),", vml)
    assert anchors == ["11", "12", "13", "14"], "buttons start right of column J, one column free"


def test_xlsx_gives_the_same_bytes_as_new_does(tmp_path: Path) -> None:
    xlsx = tmp_path / "fresh.xlsx"
    build_workbook(xlsx)
    data, changes, kept = refreshed_macro_workbook(xlsx.read_bytes(), "fresh.xlsx")
    assert data == macro_workbook_bytes(xlsx)
    assert kept == [] and changes[-1] == "buttons added: Sync, Preview, Publish, Undo"


def test_out_and_force(merchant_xlsx: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken.xlsm"
    taken.write_bytes(b"someone else's")
    code, output = _run(str(merchant_xlsx), "--out", str(taken))
    assert code == 2 and "exists already" in output and "--force" in output
    assert taken.read_bytes() == b"someone else's"
    code, output = _run(str(merchant_xlsx), "--out", str(taken), "--force")
    assert code == 0, output
    _check_buttons(taken)
    code, output = _run(str(merchant_xlsx), "--out", str(tmp_path / "copy.xlsx"))
    assert code == 2 and "must be named .xlsm" in output


# --- refreshing an .xlsm ------------------------------------------------------------------


@pytest.fixture
def old_xlsm(tmp_path: Path) -> Path:
    xlsx = tmp_path / "base.xlsx"
    build_workbook(xlsx)
    return old_macro_workbook(xlsx, tmp_path / "stock.xlsm")


def test_refresh_replaces_the_old_xlwings_module_and_keeps_the_merchants(old_xlsm: Path) -> None:
    module1_before = _module_bytes(old_xlsm, "Module1")
    assert module1_before == MODULE1.encode("cp1252")
    assert f"'Version: {OLD_XLWINGS}" in macros_of(old_xlsm)["xlwings"]

    code, output = _run(str(old_xlsm))
    assert code == 0, output
    assert f"xlwings module {OLD_XLWINGS} -> {XLWINGS}" in output
    assert "kept your modules: ThisWorkbook, Module1" in output
    assert "buttons added" not in output and "xlstock module" not in output

    assert _module_bytes(old_xlsm, "Module1") == module1_before
    assert _module_bytes(old_xlsm, "ThisWorkbook").endswith(WORKBOOK_OPEN.encode())
    assert _module_bytes(old_xlsm, "xlwings").decode("cp1252") == xlwings_vba_source()
    macros = macros_of(old_xlsm)
    assert set(macros) == {"ThisWorkbook", "Sheet1", "Sheet2", "Sheet3", "Sheet4", "Sheet5",
                           "Sheet6", "xlwings", "Dictionary", "Module1", "xlstock"}
    _check_buttons(old_xlsm)
    ole = olefile.OleFileIO(io.BytesIO(parts_of(old_xlsm)[VBA_PART]))
    assert ole.openstream("VBA/_VBA_PROJECT").read() == b"\xcc\x61\xff\xff\x00\x01\x00"
    ole.close()


def test_a_second_refresh_changes_nothing(old_xlsm: Path) -> None:
    install_buttons(old_xlsm)
    refreshed = old_xlsm.read_bytes()
    report = install_buttons(old_xlsm)
    assert not report.written and report.changes == ()
    assert "is up to date" in report.lines()[-1]
    assert old_xlsm.read_bytes() == refreshed
    again, changes, kept = refreshed_macro_workbook(refreshed, "stock.xlsm")
    assert again == refreshed and changes == [] and kept == ["ThisWorkbook", "Module1"]


def test_refresh_puts_back_buttons_another_program_dropped(old_xlsm: Path) -> None:
    wb = openpyxl.load_workbook(old_xlsm, keep_vba=True)
    wb.save(old_xlsm)
    assert "<controls>" not in parts_of(old_xlsm)["xl/worksheets/sheet1.xml"].decode()
    code, output = _run(str(old_xlsm))
    assert code == 0, output
    assert "buttons added: Sync, Preview, Publish, Undo" in output
    _check_buttons(old_xlsm)
    assert len([n for n in parts_of(old_xlsm) if n.startswith("xl/ctrlProps/")]) == len(BUTTONS)


def test_a_failure_while_writing_leaves_the_workbook_as_it_was(
    old_xlsm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = old_xlsm.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(WorkbookError, match="the disk is full"):
        install_buttons(old_xlsm)
    assert old_xlsm.read_bytes() == before
    assert not list(old_xlsm.parent.glob("*.xlstock-tmp"))
    monkeypatch.undo()
    assert install_buttons(old_xlsm).written


def test_refuses_a_workbook_excel_has_open(old_xlsm: Path) -> None:
    (old_xlsm.parent / f"~${old_xlsm.name}").write_bytes(b"\x05Maria" + b" " * 60)
    before = old_xlsm.read_bytes()
    code, output = _run(str(old_xlsm))
    assert code == 1 and "is open in Excel by Maria" in output
    assert old_xlsm.read_bytes() == before


# --- what it refuses ----------------------------------------------------------------------


def _with_project_line(path: Path, old: str, new: str) -> None:
    """Rewrite one line of the PROJECT stream of ``path``'s VBA project."""
    parts = parts_of(path)
    ole = olefile.OleFileIO(io.BytesIO(parts[VBA_PART]))
    streams = {"/".join(entry): ole.openstream(entry).read() for entry in ole.listdir()}
    ole.close()
    text = streams["PROJECT"].decode("cp1252")
    assert re.search(old, text, re.M), old
    streams["PROJECT"] = re.sub(old, new, text, count=1, flags=re.M).encode("cp1252")
    parts[VBA_PART] = write_compound_file(streams)
    write_parts(path, parts)


@pytest.mark.parametrize(("key", "value", "why"), [
    ("GC", bytes([0x00]), "locked for viewing"),
    ("DPB", bytes(range(1, 30)), "protected with a password"),
])
def test_refuses_a_protected_project(old_xlsm: Path, key: str, value: bytes, why: str) -> None:
    project_id = "{00000000-0000-0000-0000-000000000000}"
    _with_project_line(old_xlsm, rf'^{key}=".*"\r$',
                       f'{key}="{encrypt_project_data(value, project_id, 7)}"\r')
    before = old_xlsm.read_bytes()
    code, output = _run(str(old_xlsm))
    assert code == 1
    assert f"its VBA project is {why}" in output
    assert "untick 'Lock project for viewing', clear both password boxes" in output
    assert old_xlsm.read_bytes() == before


def test_refuses_a_project_with_a_userform(tmp_path: Path) -> None:
    xlsx = tmp_path / "base.xlsx"
    build_workbook(xlsx)
    form = VbaModule("OrderForm", 'Attribute VB_Name = "OrderForm"\r\n', "class")
    path = old_macro_workbook(xlsx, tmp_path / "stock.xlsm", own=(form,))
    _with_project_line(path, r"^Class=OrderForm\r$", "BaseClass=OrderForm\r")
    code, output = _run(str(path))
    assert code == 1 and "UserForms (OrderForm)" in output and "Export File" in output


def test_refuses_binary_missing_and_stockless_workbooks(tmp_path: Path) -> None:
    (tmp_path / "stock.xlsb").write_bytes(b"PK\x03\x04binary")
    code, output = _run(str(tmp_path / "stock.xlsb"))
    assert code == 2 and "Excel Macro-Enabled Workbook (*.xlsm)" in output
    assert "xlstock buttons" in output and str(tmp_path / "stock.xlsm") in output
    code, output = _run(str(tmp_path / "nothing.xlsx"))
    assert code == 2 and "no such workbook" in output
    wb = openpyxl.Workbook()
    wb.active.title = "Inventory"
    wb.save(tmp_path / "other.xlsx")
    code, output = _run(str(tmp_path / "other.xlsx"))
    assert code == 1 and "no worksheet named 'Stock'" in output
    assert not (tmp_path / "other.xlsm").exists()


# --- a project Excel wrote ----------------------------------------------------------------


def test_refreshes_a_workbook_excel_saved(tmp_path: Path) -> None:
    parts = parts_of(QUICKSTART)
    parts["xl/workbook.xml"] = parts["xl/workbook.xml"].replace(b'name="Sheet1"', b'name="Stock"')
    path = tmp_path / "quickstart.xlsm"
    write_parts(path, parts)
    before = read_vba_project(parts[VBA_PART])
    (module1,) = (m.source.encode("cp1252") for m in before.modules if m.name == "Module1")

    report = install_buttons(path)
    assert report.kept == ("Module1",)
    assert "buttons added: Sync, Preview, Publish, Undo" in report.changes
    after = read_vba_project(parts_of(path)[VBA_PART])
    assert after.info == before.info
    assert _module_bytes(path, "Module1") == module1
    _check_buttons(path)
    assert openpyxl.load_workbook(path, keep_vba=True).sheetnames == ["Stock", "_xlwings.conf"]
    assert not install_buttons(path).written


def test_cli_help_names_the_upgrade() -> None:
    result = CliRunner().invoke(main, ["buttons", "--help"])
    assert result.exit_code == 0
    assert "xlstock buttons stock.xlsm" in result.output and "Example" in result.output


def test_a_workbook_with_a_damaged_project_is_left_alone(old_xlsm: Path) -> None:
    parts = parts_of(old_xlsm)
    parts[VBA_PART] = parts[VBA_PART][:1500]
    write_parts(old_xlsm, parts)
    before = old_xlsm.read_bytes()
    code, output = _run(str(old_xlsm))
    assert code == 1 and "its VBA project (xl/vbaProject.bin) cannot be read" in output
    assert old_xlsm.read_bytes() == before
