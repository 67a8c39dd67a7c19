"""The VBA of a macro workbook (:mod:`xlstock.macros.vba_source`): the modules of a
generated project as olevba and olefile read them back, and a project already in a
workbook merged with xlstock's modules."""

from __future__ import annotations

import importlib.metadata
import io
import re
from pathlib import Path

import olefile
import pytest
from support.vba_craft import MODULE1, code_names, macro_workbook, macros_of, parts_of

from xlstock.errors import WorkbookError
from xlstock.macros.ovba import ProjectInfo, ProjectSource, VbaModule, decompress, document_module
from xlstock.macros.vba_source import (
    BUTTONS,
    VBA_PART,
    existing_project,
    merged_modules,
    own_modules,
    refreshed_project,
    xlwings_vba_source,
)


@pytest.fixture
def xlsm(tmp_path: Path) -> Path:
    return macro_workbook(tmp_path)


# --- a generated project ------------------------------------------------------------------


def test_olevba_finds_every_module_and_the_three_macros(xlsm: Path) -> None:
    modules = macros_of(xlsm)
    book_code, sheet_codes = code_names(parts_of(xlsm))
    expected = {book_code, *sheet_codes.values(), "xlwings", "Dictionary", "xlstock"}
    assert set(modules) == expected
    assert book_code == "ThisWorkbook" and None not in sheet_codes.values()
    source = modules["xlstock"]
    for button in BUTTONS:
        body = re.search(rf"Public Sub {button.macro}\(\)\r\n(.*?)\r\nEnd Sub", source, re.S)
        assert body is not None, button.macro
        assert body.group(1).strip() == (
            f'RunPython "import xlstock.excel; xlstock.excel.{button.action}()"'
        )


def test_xlwings_module_is_the_installed_one(xlsm: Path) -> None:
    import xlwings

    installed = (Path(xlwings.__file__).parent / "xlwings.bas").read_bytes().decode("cp1252")
    assert macros_of(xlsm)["xlwings"] == installed == xlwings_vba_source()
    version = re.search(r"^'Version: (\S+)", installed, re.M)
    assert version is not None and version.group(1) == importlib.metadata.version("xlwings")


def test_project_has_no_compiled_code_and_lists_each_document_module(xlsm: Path) -> None:
    parts = parts_of(xlsm)
    ole = olefile.OleFileIO(io.BytesIO(parts[VBA_PART]), raise_defects=olefile.DEFECT_UNSURE)
    assert ole.openstream("VBA/_VBA_PROJECT").read() == b"\xcc\x61\xff\xff\x00\x01\x00"
    project = ole.openstream("PROJECT").read().decode("cp1252").split("\r\n")
    book_code, sheet_codes = code_names(parts)
    for code in (book_code, *sheet_codes.values()):
        assert f"Document={code}/&H00000000" in project
    assert {"Module=xlwings", "Module=xlstock", "Class=Dictionary"} <= set(project)
    source = decompress(ole.openstream("VBA/xlstock").read()).decode("cp1252")
    assert source.startswith('Attribute VB_Name = "xlstock"\r\n')


# --- a project already in the workbook ----------------------------------------------------

SHEETS = [("Stock", "Sheet1"), ("Settings", "Sheet2")]


def _project(*modules: VbaModule) -> ProjectSource:
    return ProjectSource(modules=modules, info=ProjectInfo(), protection=None, designers=())


def test_no_project_gets_every_module_and_reports_only_ours() -> None:
    modules, changes, kept = merged_modules(None, "ThisWorkbook", SHEETS, "stock.xlsx")
    assert [m.name for m in modules] == ["ThisWorkbook", "Sheet1", "Sheet2", "xlwings",
                                         "Dictionary", "xlstock"]
    assert kept == []
    assert changes[1:] == ["Dictionary class (xlwings) added", "xlstock module added"]
    assert changes[0].startswith("xlwings module ") and changes[0].endswith(" added")


def test_the_merchants_modules_are_kept_in_place_and_ours_replaced() -> None:
    own = {m.name: m for m in own_modules()}
    old_xlstock = VbaModule("xlstock", 'Attribute VB_Name = "xlstock"\r\n\' old\r\n')
    sheet1 = VbaModule("Sheet1", document_module("Sheet1", "worksheet").source
                       + "Private Sub Worksheet_Activate()\r\nEnd Sub\r\n", "document")
    existing = _project(document_module("ThisWorkbook", "workbook"), sheet1,
                        VbaModule("Module1", MODULE1), old_xlstock, own["xlwings"])
    modules, changes, kept = merged_modules(existing, "ThisWorkbook", SHEETS, "stock.xlsm")
    assert [m.name for m in modules] == ["ThisWorkbook", "Sheet1", "Sheet2", "Module1",
                                         "xlstock", "xlwings", "Dictionary"]
    assert modules[1] is sheet1 and modules[4] == own["xlstock"]
    assert kept == ["Sheet1", "Module1"]
    assert changes == ["module Sheet2 added for sheet 'Settings'", "xlstock module updated",
                       "Dictionary class (xlwings) added"]


def test_code_in_the_module_of_a_sheet_gone_is_refused() -> None:
    gone = VbaModule("Sheet9", document_module("Sheet9", "worksheet").source
                     + "Sub Hello()\r\nEnd Sub\r\n", "document")
    with pytest.raises(WorkbookError, match="code in Sheet9, the module of a sheet that is "
                                            "no longer in the workbook"):
        merged_modules(_project(gone), "ThisWorkbook", SHEETS, "stock.xlsm")


def test_a_rebuilt_project_that_cannot_be_written_says_which_module() -> None:
    bad = VbaModule("Module1", "' \u2603\r\n")
    with pytest.raises(WorkbookError, match="the VBA project cannot be rebuilt .*code page"):
        refreshed_project(_project(bad), "ThisWorkbook", SHEETS, "stock.xlsm")


def test_no_project_part_means_no_existing_project() -> None:
    assert existing_project(None, "stock.xlsx") is None
    with pytest.raises(WorkbookError, match=r"its VBA project \(xl/vbaProject.bin\) cannot "
                                            "be read"):
        existing_project(b"not a compound file", "stock.xlsm")
