"""The macro workbook: a real .xlsx turned into an .xlsm, read back by olevba,
olefile, openpyxl and an OOXML package check, then saved by openpyxl and repaired."""

from __future__ import annotations

import importlib.metadata
import io
import posixpath
import re
import warnings
import zipfile
from pathlib import Path

import olefile
import openpyxl
import pytest
from defusedxml import ElementTree

from xlstock.errors import WorkbookError
from xlstock.macros.install import macro_workbook_bytes, write_macro_workbook
from xlstock.macros.ovba import decompress
from xlstock.macros.vba_source import BUTTONS, VBA_PART, xlwings_vba_source
from xlstock.workbook.layout import STOCK_HEADERS

with warnings.catch_warnings():
    # oletools calls a pyparsing API that pyparsing 3.2 deprecates, at import time.
    warnings.simplefilter("ignore", DeprecationWarning)
    from oletools.olevba import VBA_Parser

SHEETS = ("Stock", "Settings", "Log", "How to", "_xlstock")
CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
V = "{urn:schemas-microsoft-com:vml}"
X = "{urn:schemas-microsoft-com:office:excel}"


def _template_xlsx(path: Path) -> Path:
    """The real template when it exists, else a workbook with the template's sheets."""
    try:
        from xlstock.workbook.template import build_workbook
    except ImportError:
        build_workbook = None
    if build_workbook is not None:
        build_workbook(path)
        return path
    wb = openpyxl.Workbook()
    stock = wb.active
    stock.title = "Stock"
    stock.append(list(STOCK_HEADERS))
    stock.append(["00123", "Socks", "Blue", 4, None, None, None, 2, None])
    stock.freeze_panes = "A2"
    for name in SHEETS[1:]:
        wb.create_sheet(name)
    wb["_xlstock"].sheet_state = "veryHidden"
    wb.save(path)
    return path


@pytest.fixture
def xlsx(tmp_path: Path) -> Path:
    return _template_xlsx(tmp_path / "stock.xlsx")


@pytest.fixture
def xlsm(tmp_path: Path, xlsx: Path) -> Path:
    out = tmp_path / "stock.xlsm"
    write_macro_workbook(xlsx, out)
    return out


def _modules(path: Path) -> dict[str, str]:
    parser = VBA_Parser(str(path))
    try:
        return {name.rsplit(".", 1)[0]: code for _, _, name, code in parser.extract_macros()}
    finally:
        parser.close()


def _zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def _code_names(parts: dict[str, bytes]) -> tuple[str | None, dict[str, str | None]]:
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


# --- the VBA project ----------------------------------------------------------------------


def test_olevba_finds_every_module_and_the_three_macros(xlsm: Path) -> None:
    modules = _modules(xlsm)
    book_code, sheet_codes = _code_names(_zip(xlsm))
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
    assert _modules(xlsm)["xlwings"] == installed == xlwings_vba_source()
    version = re.search(r"^'Version: (\S+)", installed, re.M)
    assert version is not None and version.group(1) == importlib.metadata.version("xlwings")


def test_project_has_no_compiled_code_and_lists_each_document_module(xlsm: Path) -> None:
    parts = _zip(xlsm)
    ole = olefile.OleFileIO(io.BytesIO(parts[VBA_PART]), raise_defects=olefile.DEFECT_UNSURE)
    assert ole.openstream("VBA/_VBA_PROJECT").read() == b"\xcc\x61\xff\xff\x00\x01\x00"
    project = ole.openstream("PROJECT").read().decode("cp1252").split("\r\n")
    book_code, sheet_codes = _code_names(parts)
    for code in (book_code, *sheet_codes.values()):
        assert f"Document={code}/&H00000000" in project
    assert {"Module=xlwings", "Module=xlstock", "Class=Dictionary"} <= set(project)
    source = decompress(ole.openstream("VBA/xlstock").read()).decode("cp1252")
    assert source.startswith('Attribute VB_Name = "xlstock"\r\n')


# --- the package --------------------------------------------------------------------------


def test_package_is_valid_ooxml_for_a_macro_workbook(xlsm: Path) -> None:
    parts = _zip(xlsm)
    types = ElementTree.fromstring(parts["[Content_Types].xml"])
    defaults = {e.attrib["Extension"].lower(): e.attrib["ContentType"]
                for e in types.iter(f"{CT}Default")}
    overrides = {e.attrib["PartName"]: e.attrib["ContentType"]
                 for e in types.iter(f"{CT}Override")}
    for name in overrides:
        assert name.lstrip("/") in parts, f"override for a missing part {name}"
    for name in parts:
        extension = name.rsplit(".", 1)[-1].lower()
        assert "/" + name in overrides or extension in defaults, f"{name} has no content type"
        if name.endswith((".xml", ".rels", ".vml")):
            ElementTree.fromstring(parts[name])
    assert overrides["/xl/workbook.xml"] == "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
    assert overrides.get("/xl/vbaProject.bin", defaults.get("bin")) == (
        "application/vnd.ms-office.vbaProject")
    assert defaults["vml"] == "application/vnd.openxmlformats-officedocument.vmlDrawing"

    for rels_name in [n for n in parts if n.endswith(".rels")]:
        folder = posixpath.dirname(posixpath.dirname(rels_name))
        for rel in ElementTree.fromstring(parts[rels_name]).iter(f"{REL}Relationship"):
            if rel.attrib.get("TargetMode") == "External":
                continue
            target = rel.attrib["Target"]
            resolved = (target[1:] if target.startswith("/")
                        else posixpath.normpath(posixpath.join(folder, target)))
            assert resolved in parts, f"{rels_name} points at missing {target}"
    workbook_rels = parts["xl/_rels/workbook.xml.rels"].decode()
    assert 'Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject"' in (
        workbook_rels)


def test_three_form_buttons_on_sheet_stock_bound_to_their_macros(xlsm: Path) -> None:
    parts = _zip(xlsm)
    vml = ElementTree.fromstring(parts["xl/drawings/vmlDrawing1.vml"])
    found = {}
    for shape in vml.iter(f"{V}shape"):
        data = shape.find(f"{X}ClientData")
        assert data is not None and data.attrib["ObjectType"] == "Button"
        label = "".join(shape.find(f"{V}textbox").itertext()).strip()
        found[label] = (data.findtext(f"{X}FmlaMacro"), shape.attrib["id"])
    assert found == {b.label: (f"[0]!{b.macro}", found[b.label][1]) for b in BUTTONS}

    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    assert re.search(r'<legacyDrawing r:id="rId\d+"/>', sheet)
    for button in BUTTONS:
        number = found[button.label][1].removeprefix("_x0000_s")
        control = re.search(rf'<control shapeId="{number}" r:id="(rId\d+)"[^>]*>'
                            rf'<controlPr [^>]*macro="\[0\]!{button.macro}"', sheet)
        assert control is not None, button.label
    assert sheet.index("<legacyDrawing") < sheet.index("<controls>")
    ctrl_props = [n for n in parts if n.startswith("xl/ctrlProps/")]
    assert len(ctrl_props) == 3
    for name in ctrl_props:
        prop = ElementTree.fromstring(parts[name])
        assert prop.attrib == {"objectType": "Button", "lockText": "1"}


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
    parts = _zip(xlsm)
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


# --- after an openpyxl save ---------------------------------------------------------------


def test_the_file_adapter_keeps_the_project_and_the_buttons(xlsm: Path) -> None:
    """Headless commands save through the file adapter; twice, to be sure nothing
    accumulates or fades."""
    from xlstock.workbook.xlsx_file import XlsxFile

    original = _zip(xlsm)
    modules = _modules(xlsm)
    for round_trip in range(2):
        with XlsxFile.open(xlsm) as book:
            book.write_block("Stock", 3, 1, [[f"SKU-{round_trip}", "Cap", "", 7]])
            book.save()
        parts = _zip(xlsm)
        assert parts[VBA_PART] == original[VBA_PART]
        assert _code_names(parts)[1]["Stock"] == _code_names(original)[1]["Stock"]
        sheet = parts["xl/worksheets/sheet1.xml"].decode()
        assert sheet.count("<control ") == 3 and "<legacyDrawing" in sheet
        assert sorted(n for n in parts if n.startswith("xl/ctrlProps/")) == sorted(
            n for n in original if n.startswith("xl/ctrlProps/"))
    assert _modules(xlsm) == modules
    with XlsxFile.open(xlsm, writable=False) as book:
        assert book.read_sheet("Stock")[2][:4] == ["SKU-1", "Cap", None, 7]
