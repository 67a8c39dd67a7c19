"""The workbook package as the buttons builder edits it: parts held as bytes, the
relationships and content types between them, the ``codeName`` attributes the VBA
document modules match, and the VBA project part.

Edits are made on the parts' text, not through a model of the workbook, so that what
the builder does not touch stays as it was; the package is written back by
:func:`xlstock.workbook.package.write_package`, which copies every unchanged part byte
for byte.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from typing import TypeGuard
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

import defusedxml.ElementTree as SafeET

from xlstock.errors import WorkbookError
from xlstock.i18n import _
from xlstock.macros.vba_source import VBA_PART, WORKBOOK_CODE_NAME
from xlstock.workbook.package import (
    CT_NS,
    DOC_REL_NS,
    MAIN_NS,
    REL_NS,
    Package,
    rels_part,
    resolve,
    write_package,
)

REL_OFFICE_DOCUMENT = f"{DOC_REL_NS}/officeDocument"
REL_WORKSHEET = f"{DOC_REL_NS}/worksheet"
REL_VBA = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
CT_XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
CT_VBA = "application/vnd.ms-office.vbaProject"


class WorkbookParts:
    """An ``.xlsx``/``.xlsm`` package held in memory for editing: part name -> bytes,
    in the zip's order (``parts``), with the package it was read from."""

    def __init__(self, data: bytes, label: str) -> None:
        self.label = label
        try:
            self._source = Package(data)
            self.parts = {name: self._source.read(name) for name in self._source.names()}
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise WorkbookError(_("{label} is not a readable workbook (zip): {detail}",
                                  label=label, detail=exc)) from exc
        for required in ("[Content_Types].xml", "_rels/.rels"):
            if required not in self.parts:
                raise WorkbookError(_("{label} is not an Excel workbook: {required} is missing",
                                      label=label, required=required))
        self._original = dict(self.parts)

    def to_bytes(self) -> bytes:
        """The package as a zip: the parts read in, in their order, then the new ones.
        A part left as it was is copied as stored, compressed bytes included, unless it
        was stored uncompressed (as in the template ``xlstock new`` writes): that one is
        deflated, like the parts that changed."""
        replaced = {name: data for name, data in self.parts.items()
                    if name in self._original and (data != self._original[name]
                                                   or self._stored_uncompressed(name))}
        dropped = [name for name in self._original if name not in self.parts]
        added = [(name, data) for name, data in self.parts.items() if name not in self._original]
        out = io.BytesIO()
        write_package(out, self._source, replaced, dropped, added)
        return out.getvalue()

    def _stored_uncompressed(self, name: str) -> bool:
        return self._source.zip.getinfo(name).compress_type == zipfile.ZIP_STORED

    def xml(self, name: str) -> Element:
        """A part parsed (defusedxml: the bytes may not have passed the safety check)."""
        try:
            return SafeET.fromstring(self.parts[name])
        except KeyError as exc:
            raise WorkbookError(_("{label}: part {name} is missing", label=self.label,
                                  name=name)) from exc
        except (SafeET.ParseError, ValueError) as exc:
            raise WorkbookError(_("{label}: part {name} is not valid XML: {detail}",
                                  label=self.label, name=name, detail=exc)) from exc

    def text(self, name: str) -> str:
        """A part's text."""
        return self.parts[name].decode("utf-8")

    def new_name(self, pattern: str) -> str:
        """The first free part name ``pattern.format(n)``, n = 1, 2, ..."""
        number = 1
        while pattern.format(number) in self.parts:
            number += 1
        return pattern.format(number)

    # --- relationships -------------------------------------------------------------------

    def rels(self, part: str) -> list[dict[str, str]]:
        """The relationships of ``part`` as their attributes (targets as written)."""
        name = rels_part(part)
        if name not in self.parts:
            return []
        return [dict(el.attrib) for el in self.xml(name) if el.tag == f"{{{REL_NS}}}Relationship"]

    def write_rels(self, part: str, rels: list[dict[str, str]]) -> None:
        """Replace the relationships of ``part``."""
        body = "".join(
            "<Relationship" + "".join(f" {k}={quoteattr(v)}" for k, v in rel.items()) + "/>"
            for rel in rels
        )
        self.parts[rels_part(part)] = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="{REL_NS}">{body}</Relationships>'
        ).encode()

    def add_rel(self, part: str, rel_type: str, target_part: str) -> str:
        """Id of a relationship from ``part`` to ``target_part``, added if missing."""
        rels = self.rels(part)
        for rel in rels:
            if rel.get("Type") == rel_type and resolve(part, rel["Target"]) == target_part:
                return rel["Id"]
        ids = {rel["Id"] for rel in rels}
        number = len(rels) + 1
        while f"rId{number}" in ids:
            number += 1
        relative = posixpath.relpath(target_part, posixpath.dirname(part) or ".")
        rels.append({"Id": f"rId{number}", "Type": rel_type, "Target": relative})
        self.write_rels(part, rels)
        return f"rId{number}"

    # --- content types -------------------------------------------------------------------

    def remove_override(self, part_name: str) -> None:
        """Drop the content-type override of ``part_name`` (``/xl/...``)."""
        text = self.text("[Content_Types].xml")
        pattern = rf"<Override\b[^>]*PartName=\"{re.escape(part_name)}\"[^>]*/>"
        self.parts["[Content_Types].xml"] = re.sub(pattern, "", text).encode()

    def set_content_types(self, defaults: dict[str, str], overrides: dict[str, str]) -> None:
        """Add or change content types: ``defaults`` by extension, ``overrides`` by part."""
        root = self.xml("[Content_Types].xml")
        current_defaults: dict[str, str] = {}
        current_overrides: dict[str, str] = {}
        for el in root:
            if el.tag == f"{{{CT_NS}}}Default":
                current_defaults[el.attrib["Extension"].lower()] = el.attrib["ContentType"]
            elif el.tag == f"{{{CT_NS}}}Override":
                current_overrides[el.attrib["PartName"]] = el.attrib["ContentType"]
        current_defaults.update(defaults)
        current_overrides.update(overrides)
        body = "".join(
            f"<Default Extension={quoteattr(ext)} ContentType={quoteattr(ct)}/>"
            for ext, ct in current_defaults.items()
        ) + "".join(
            f"<Override PartName={quoteattr(name)} ContentType={quoteattr(ct)}/>"
            for name, ct in current_overrides.items()
        )
        self.parts["[Content_Types].xml"] = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Types xmlns="{CT_NS}">{body}</Types>'
        ).encode()

    # --- workbook ------------------------------------------------------------------------

    def workbook_part(self) -> str:
        """The workbook part, as ``_rels/.rels`` names it."""
        for rel in self.rels(""):
            if rel.get("Type") == REL_OFFICE_DOCUMENT:
                return resolve("", rel["Target"])
        raise WorkbookError(_("{label} has no workbook part (_rels/.rels names none)",
                              label=self.label))

    def sheets(self) -> list[tuple[str, str]]:
        """``(sheet name, worksheet part)`` in workbook order (chart sheets left out)."""
        workbook = self.workbook_part()
        targets = {rel["Id"]: rel for rel in self.rels(workbook)}
        result = []
        for sheet in self.xml(workbook).iter(f"{{{MAIN_NS}}}sheet"):
            rel = targets.get(sheet.attrib.get(f"{{{DOC_REL_NS}}}id", ""))
            if rel is not None and rel.get("Type") == REL_WORKSHEET:
                result.append((sheet.attrib["name"], resolve(workbook, rel["Target"])))
        return result

    def sheet_part(self, sheet_name: str) -> str:
        """The worksheet part of ``sheet_name``; refused, with the fix, if there is none."""
        for name, part in self.sheets():
            if name == sheet_name:
                return part
        raise WorkbookError(
            _("{label} has no worksheet named {sheet_name}; the buttons go on sheet {sheet_name}. "
              "Rename the sheet that holds your stock to {sheet_name}, or start from a workbook "
              "made by 'xlstock new'.", label=self.label, sheet_name=repr(sheet_name))
        )


# --- XML text edits ----------------------------------------------------------------------

_SHEET_CHILD_ORDER = (
    "sheetPr", "dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData",
    "sheetCalcPr", "sheetProtection", "protectedRanges", "scenarios", "autoFilter",
    "sortState", "dataConsolidate", "customSheetViews", "mergeCells", "phoneticPr",
    "conditionalFormatting", "dataValidations", "hyperlinks", "printOptions",
    "pageMargins", "pageSetup", "headerFooter", "rowBreaks", "colBreaks",
    "customProperties", "cellWatches", "ignoredErrors", "smartTags", "drawing",
    "legacyDrawing", "legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls",
    "webPublishItems", "tableParts", "extLst",
)


def start_tag(xml: str, local: str) -> re.Match[str] | None:
    """The first start tag of element ``local`` (default namespace) in ``xml``."""
    return re.search(rf"<{local}(?=[\s/>])[^>]*?(/?)>", xml)


def _root_tag(xml: str, local: str, label: str) -> re.Match[str]:
    match = start_tag(xml, local)
    if match is None:
        raise WorkbookError(
            _("{label}: no <{local}> element in the default namespace; xlstock only edits "
              "workbooks written by Excel, LibreOffice or openpyxl", label=label, local=local)
        )
    return match


def _set_attribute(tag: str, name: str, value: str) -> str:
    """``tag`` (a start tag's text) with attribute ``name`` set to ``value``."""
    pattern = rf"(\s{re.escape(name)}\s*=\s*)(\"[^\"]*\"|'[^']*')"
    if re.search(pattern, tag):
        return re.sub(pattern, lambda m: m.group(1) + quoteattr(value), tag, count=1)
    end = -2 if tag.endswith("/>") else -1
    return f"{tag[:end].rstrip()} {name}={quoteattr(value)}{tag[end:]}"


def attribute(tag: str, name: str) -> str | None:
    """The value of attribute ``name`` in ``tag`` (a start tag's text), if it is there."""
    match = re.search(rf"\s{re.escape(name)}\s*=\s*(\"([^\"]*)\"|'([^']*)')", tag)
    if match is None:
        return None
    return match.group(2) if match.group(2) is not None else match.group(3)


def declare_namespaces(xml: str, root: str, namespaces: dict[str, str], label: str) -> str:
    """``xml`` with the prefixes ``namespaces`` declared on its root element ``root``;
    refused if a prefix is bound to another namespace already."""
    match = _root_tag(xml, root, label)
    tag = match.group(0)
    for prefix, uri in namespaces.items():
        declared = attribute(tag, f"xmlns:{prefix}")
        if declared is None:
            tag = _set_attribute(tag, f"xmlns:{prefix}", uri)
        elif declared != uri:
            raise WorkbookError(_("{label}: prefix {prefix} is bound to {declared}, not {uri}",
                                  label=label, prefix=repr(prefix), declared=declared, uri=uri))
    return xml[: match.start()] + tag + xml[match.end() :]


def insert_sheet_child(xml: str, local: str, element: str) -> str:
    """Insert ``element`` into a worksheet where the schema's child order puts
    ``local``: before the first present child that must follow it."""
    later = _SHEET_CHILD_ORDER[_SHEET_CHILD_ORDER.index(local) + 1 :]
    positions = [m.start() for name in later if (m := start_tag(xml, name)) is not None]
    alternate = re.search(r"<mc:AlternateContent\b", xml)
    if alternate is not None and local != "controls":
        positions.append(alternate.start())
    at = min(positions) if positions else xml.rindex("</worksheet>")
    return xml[:at] + element + xml[at:]


# --- code names and the VBA part ---------------------------------------------------------


def _set_code_name(xml: str, element: str, parent: str, code_name: str, label: str) -> str:
    match = start_tag(xml, element)
    if match is not None:
        tag = match.group(0)
        return xml[: match.start()] + _set_attribute(tag, "codeName", code_name) + xml[match.end():]
    root = _root_tag(xml, parent, label)
    new = f"<{element} codeName={quoteattr(code_name)}/>"
    if parent == "worksheet":
        return xml[: root.end()] + new + xml[root.end() :]
    later = [m.start() for name in ("workbookProtection", "bookViews", "sheets")
             if (m := start_tag(xml, name)) is not None]
    at = min(later) if later else root.end()
    return xml[:at] + new + xml[at:]


def _code_name_of(xml: str, element: str) -> str | None:
    match = start_tag(xml, element)
    return None if match is None else attribute(match.group(0), "codeName")


def _valid_code_name(name: str | None) -> TypeGuard[str]:
    return name is not None and re.fullmatch(r"[A-Za-z]\w{0,30}", name) is not None


def apply_code_names(package: WorkbookParts) -> tuple[str, list[str]]:
    """Set ``codeName`` on the workbook and on every worksheet, keeping valid ones
    already there; returns the workbook's and the sheets' code names in workbook
    order."""
    workbook = package.workbook_part()
    wb_xml = package.text(workbook)
    found = _code_name_of(wb_xml, "workbookPr")
    book_name = found if _valid_code_name(found) else WORKBOOK_CODE_NAME
    package.parts[workbook] = _set_code_name(
        wb_xml, "workbookPr", "workbook", book_name, f"{package.label} ({workbook})"
    ).encode()

    sheets = package.sheets()
    current: dict[str, str | None] = {}
    for name, part in sheets:
        code = _code_name_of(package.text(part), "sheetPr")
        current[name] = code if _valid_code_name(code) else None
    used = {book_name.upper()} | {c.upper() for c in current.values() if c}
    codes: list[str] = []
    for position, (name, part) in enumerate(sheets, 1):
        code = current[name]
        if code is None or code.upper() in {c.upper() for c in codes}:
            number = position
            while f"SHEET{number}" in used:
                number += 1
            code = f"Sheet{number}"
            used.add(code.upper())
        codes.append(code)
        package.parts[part] = _set_code_name(
            package.text(part), "sheetPr", "worksheet", code, f"{package.label} ({part})"
        ).encode()
    return book_name, codes


def apply_vba(package: WorkbookParts, vba_project: bytes) -> None:
    """Put ``vba_project`` in the package as its VBA project, and make the workbook a
    macro-enabled one."""
    workbook = package.workbook_part()
    package.parts[VBA_PART] = vba_project
    package.add_rel(workbook, REL_VBA, VBA_PART)
    package.set_content_types({}, {"/" + workbook: CT_XLSM_MAIN, "/" + VBA_PART: CT_VBA})
