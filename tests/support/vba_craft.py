"""Macro workbooks as a merchant may have them: made by an older xlstock with an older
xlwings, with their own macros and the references Excel writes. Built with xlstock's own
project writer from source text, never read back with the code under test: the readers
here are other people's (zipfile, olevba, defusedxml)."""

from __future__ import annotations

import importlib.metadata
import posixpath
import re
import warnings
import zipfile
from pathlib import Path

from defusedxml import ElementTree

from xlstock.macros.install import write_macro_workbook
from xlstock.macros.ovba import ProjectInfo, VbaModule, build_vba_project, document_module
from xlstock.macros.vba_source import VBA_PART, vba_modules
from xlstock.workbook.template import build_workbook

with warnings.catch_warnings():
    # oletools calls a pyparsing API that pyparsing 3.2 deprecates, at import time.
    warnings.simplefilter("ignore", DeprecationWarning)
    from oletools.olevba import VBA_Parser

OLD_XLWINGS = "0.30.0"

MODULE1 = (
    'Attribute VB_Name = "Module1"\r\n'
    "Option Explicit\r\n"
    "\r\n"
    "' Prix r\xe9duit \xe0 5 % \u2013 the merchant's own report   \r\n"
    "Public Sub Report()\r\n"
    '    MsgBox "Lagerbestand: " & Sheets("Stock").Range("D2").Value\r\n'
    "End Sub\r\n"
)
"""A merchant module, in code page 1252 (accents, an en dash, trailing spaces)."""

WORKBOOK_OPEN = (
    "Private Sub Workbook_Open()\r\n"
    '    Application.StatusBar = "Stock ready"\r\n'
    "End Sub\r\n"
)


def parts_of(path: Path) -> dict[str, bytes]:
    """Every part of a package, by name (each part's CRC checked)."""
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def macro_workbook(folder: Path) -> Path:
    """``folder/stock.xlsm``: the template (``folder/stock.xlsx``) with the buttons."""
    xlsx = folder / "stock.xlsx"
    build_workbook(xlsx)
    out = folder / "stock.xlsm"
    write_macro_workbook(xlsx, out)
    return out


def macros_of(path: Path) -> dict[str, str]:
    """Each VBA module's source, by module name, as olevba reads it."""
    parser = VBA_Parser(str(path))
    try:
        return {name.rsplit(".", 1)[0]: code for _, _, name, code in parser.extract_macros()}
    finally:
        parser.close()


def code_names(parts: dict[str, bytes]) -> tuple[str | None, dict[str, str | None]]:
    """The workbook's ``codeName`` and each sheet's, by sheet name."""
    workbook = ElementTree.fromstring(parts["xl/workbook.xml"])
    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    rid = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    book = workbook.find(f"{main}workbookPr")
    rels = {r.attrib["Id"]: r.attrib["Target"]
            for r in ElementTree.fromstring(parts["xl/_rels/workbook.xml.rels"])}
    sheets = {}
    for sheet in workbook.iter(f"{main}sheet"):
        target = rels[sheet.attrib[rid]].lstrip("/")
        part = target if target.startswith("xl/") else posixpath.join("xl", target)
        pr = ElementTree.fromstring(parts[part]).find(f"{main}sheetPr")
        sheets[sheet.attrib["name"]] = None if pr is None else pr.attrib.get("codeName")
    return (None if book is None else book.attrib.get("codeName")), sheets


def write_parts(path: Path, parts: dict[str, bytes]) -> None:
    """A package from its parts."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def sheet_code_names(parts: dict[str, bytes]) -> list[str]:
    """The ``codeName`` of each worksheet part, in part-name order (sheet1, sheet2...),
    which is workbook order for a workbook made by ``xlstock new``."""
    names = sorted((n for n in parts if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)),
                   key=lambda n: int(re.findall(r"\d+", n)[-1]))
    codes = []
    for name in names:
        match = re.search(rb'<sheetPr\b[^>]*\bcodeName="([^"]+)"', parts[name])
        assert match is not None, name
        codes.append(match.group(1).decode())
    return codes


def old_xlwings_source(version: str = OLD_XLWINGS) -> str:
    """The installed xlwings.bas as an older xlwings would have shipped it: its version
    line and DLL names say ``version``."""
    from xlstock.macros.vba_source import xlwings_vba_source

    installed = importlib.metadata.version("xlwings")
    text = xlwings_vba_source()
    assert f"'Version: {installed}" in text
    return text.replace(installed, version)


def old_macro_workbook(xlsx: Path, out: Path, *, references: bytes = b"",
                       own: tuple[VbaModule, ...] = (VbaModule("Module1", MODULE1),)) -> Path:
    """``out``: the macro workbook of ``xlsx`` as an older xlstock made it, with the
    xlwings module of xlwings :data:`OLD_XLWINGS`, code in ThisWorkbook, the merchant's
    modules ``own`` and the project references ``references`` (raw ``dir`` records)."""
    write_macro_workbook(xlsx, out)
    parts = parts_of(out)
    modules = []
    for module in vba_modules(sheet_code_names(parts)):
        if module.name == "ThisWorkbook":
            module = VbaModule("ThisWorkbook",
                               document_module("ThisWorkbook", "workbook").source + WORKBOOK_OPEN,
                               "document")
        elif module.name == "xlwings":
            module = VbaModule("xlwings", old_xlwings_source())
        modules.append(module)
        if module.name == "Dictionary":
            modules += own
    parts[VBA_PART] = build_vba_project(modules, ProjectInfo(references=references))
    write_parts(out, parts)
    return out
