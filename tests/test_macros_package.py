"""The package as the buttons builder edits it (:mod:`xlstock.macros.package`): a valid
OOXML macro workbook comes out, the parts it leaves alone are copied as they were
stored, and code names are given as Excel expects them."""

from __future__ import annotations

import io
import posixpath
import zipfile
from pathlib import Path

import pytest
from defusedxml import ElementTree
from support.vba_craft import parts_of

from xlstock.errors import WorkbookError
from xlstock.macros.package import WorkbookParts, apply_code_names
from xlstock.workbook.template import workbook_bytes

CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def test_package_is_valid_ooxml_for_a_macro_workbook(xlsm: Path) -> None:
    parts = parts_of(xlsm)
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


def _deflated_copy(data: bytes) -> bytes:
    """``data`` repacked as Excel packs a workbook: every part deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info), zipfile.ZIP_DEFLATED, 9)
    return out.getvalue()


def _stored(data: bytes) -> dict[str, tuple[int, int, int]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: (i.compress_type, i.compress_size, i.CRC) for i in archive.infolist()}


def test_parts_left_alone_are_copied_as_stored_and_changed_ones_rewritten() -> None:
    original = _deflated_copy(workbook_bytes())
    package = WorkbookParts(original, "stock.xlsx")
    package.parts["xl/styles.xml"] += b" "
    package.parts["xl/new.xml"] = b"<new/>"
    del package.parts["docProps/app.xml"]
    written = package.to_bytes()
    before, after = _stored(original), _stored(written)
    assert list(after) == [n for n in before if n != "docProps/app.xml"] + ["xl/new.xml"]
    for name in before:
        if name not in ("xl/styles.xml", "docProps/app.xml"):
            assert after[name] == before[name], name
    with zipfile.ZipFile(io.BytesIO(written)) as archive:
        assert archive.testzip() is None
        assert archive.read("xl/styles.xml").endswith(b" ")


def test_parts_stored_uncompressed_are_deflated() -> None:
    original = workbook_bytes()
    assert {kind for kind, _, _ in _stored(original).values()} == {zipfile.ZIP_STORED}
    written = WorkbookParts(original, "stock.xlsx").to_bytes()
    assert {kind for kind, _, _ in _stored(written).values()} == {zipfile.ZIP_DEFLATED}
    assert len(written) < len(original) / 2


def test_refuses_what_is_not_a_workbook_package() -> None:
    with pytest.raises(WorkbookError, match="not a readable workbook"):
        WorkbookParts(b"not a zip", "notes.xlsx")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    with pytest.raises(WorkbookError, match="_rels/.rels is missing"):
        WorkbookParts(out.getvalue(), "bare.xlsx")


def test_code_names_keep_valid_ones_and_replace_clashes() -> None:
    package = WorkbookParts(workbook_bytes(), "stock.xlsx")
    sheets = package.sheets()
    for (_, part), code in zip(sheets, ("Lager", "LAGER"), strict=False):
        assert b"<sheetPr" in package.parts[part], part
        package.parts[part] = package.parts[part].replace(
            b"<sheetPr", f'<sheetPr codeName="{code}"'.encode(), 1)
    book, codes = apply_code_names(package)
    assert book == "ThisWorkbook"
    assert codes[0] == "Lager" and codes[1] == "Sheet2" and len(set(codes)) == len(sheets)
    assert apply_code_names(package) == (book, codes)
