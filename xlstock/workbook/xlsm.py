"""The macro-enabled workbook: the template plus a VBA project and three buttons.

:func:`write_macro_workbook` turns an ``.xlsx`` package into an ``.xlsm``:

- ``xl/vbaProject.bin``, generated from source (:mod:`xlstock.macros.ovba`): the
  ``ThisWorkbook`` and sheet document modules, the xlwings VBA module and its
  ``Dictionary`` class exactly as the installed xlwings ships them, and xlstock's
  own module with one macro per button;
- ``codeName`` attributes on ``workbookPr`` and every sheet's ``sheetPr``, matching
  the document modules;
- on sheet Stock, three Form Control buttons (Sync, Preview, Publish), written as
  Excel writes them: shapes in a legacy VML drawing (``x:ClientData
  ObjectType="Button"`` with ``x:FmlaMacro``), one ``xl/ctrlProps/ctrlPropN.xml``
  each, and the sheet's ``<legacyDrawing>`` and ``<controls>`` entries;
- the content types and relationships for all of the above.

openpyxl (``keep_vba=True``) keeps ``vbaProject.bin`` and the VML part but drops
``<controls>`` and the ctrlProp relationships when it saves; without ``keep_vba``
it drops everything. :func:`carry_over_xlsm_parts` puts back what a save lost,
taking the VBA project and the buttons' shapes (where the merchant may have moved
them) from the file as it was before the save. Both functions are idempotent.
"""

from __future__ import annotations

import importlib.util
import io
import os
import posixpath
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as SafeET

from xlstock.errors import MissingExtra, UsageError, WorkbookError
from xlstock.macros.ovba import (
    ProjectSource,
    VbaModule,
    build_vba_project,
    class_module_from_export,
    document_module,
    read_vba_project,
)
from xlstock.workbook.base import STOCK_SHEET
from xlstock.workbook.files import write_atomic
from xlstock.workbook.layout import STOCK_HEADERS


@dataclass(frozen=True)
class Button:
    """One button on sheet Stock: its label, its macro, and the ``xlstock.excel``
    function the macro runs."""

    label: str
    macro: str
    action: str

    @property
    def command(self) -> str:
        """The Python statement the macro hands to xlwings' ``RunPython``."""
        return f"import xlstock.excel; xlstock.excel.{self.action}()"


BUTTONS = (
    Button("Sync", "XlstockSync", "sync"),
    Button("Preview", "XlstockPreview", "preview"),
    Button("Publish", "XlstockPublish", "publish"),
)
XLSTOCK_MODULE = "xlstock"
WORKBOOK_CODE_NAME = "ThisWorkbook"

CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"
X14_NS = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"
XDR_NS = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
V_NS = "urn:schemas-microsoft-com:vml"
O_NS = "urn:schemas-microsoft-com:office:office"
X_NS = "urn:schemas-microsoft-com:office:excel"

REL_OFFICE_DOCUMENT = f"{R_NS}/officeDocument"
REL_WORKSHEET = f"{R_NS}/worksheet"
REL_VML = f"{R_NS}/vmlDrawing"
REL_CTRL_PROP = f"{R_NS}/ctrlProp"
REL_VBA = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"

CT_XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
CT_XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
CT_VBA = "application/vnd.ms-office.vbaProject"
CT_VML = "application/vnd.openxmlformats-officedocument.vmlDrawing"
CT_CTRL_PROP = "application/vnd.ms-excel.controlproperties+xml"

VBA_PART = "xl/vbaProject.bin"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_EMU_PER_PIXEL = 9525
_BUTTON_SHAPETYPE = "_x0000_t201"


# --------------------------------------------------------------------------- VBA


def _xlwings_dir() -> Path:
    spec = importlib.util.find_spec("xlwings")
    if spec is None or spec.origin is None:
        raise MissingExtra("excel", "a workbook with Excel buttons (xlwings)")
    return Path(spec.origin).parent


def _read_vba_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("cp1252")
    except OSError as exc:
        raise UsageError(
            f"The installed xlwings has no readable {path.name} ({path}): {exc.strerror}. "
            "Reinstall it with: pip install --force-reinstall xlwings"
        ) from exc


def xlwings_vba_source() -> str:
    """The text of the xlwings VBA module (``xlwings.bas``) of the installed xlwings,
    unchanged: its ``'Version:`` line is that xlwings' version."""
    return _read_vba_text(_xlwings_dir() / "xlwings.bas")


def xlwings_dictionary_source() -> str:
    """The exported ``Dictionary`` class the xlwings module uses on macOS, from the
    installed xlwings (``addin/Dictionary.cls``)."""
    return _read_vba_text(_xlwings_dir() / "addin" / "Dictionary.cls")


def xlstock_vba_source() -> str:
    """xlstock's own module: one macro per button, each a single ``RunPython`` call."""
    lines = [
        f'Attribute VB_Name = "{XLSTOCK_MODULE}"',
        "' The xlstock buttons on sheet Stock run these macros. Each one hands its work",
        "' to the Python package xlstock through xlwings (module xlwings, next to this one).",
        "Option Explicit",
    ]
    for button in BUTTONS:
        lines += [
            "",
            f"Public Sub {button.macro}()",
            f'    RunPython "{button.command}"',
            "End Sub",
        ]
    return "\r\n".join(lines) + "\r\n"


def own_modules() -> list[VbaModule]:
    """The modules xlstock puts in (and replaces in) a project: xlwings' module and its
    ``Dictionary`` class from the installed xlwings, and xlstock's own module."""
    xlwings_text = xlwings_vba_source()
    first = xlwings_text.split("\r\n", 1)[0]
    if first != 'Attribute VB_Name = "xlwings"':
        raise UsageError(
            "The installed xlwings.bas does not start with Attribute VB_Name = \"xlwings\"; "
            "this xlwings version is not supported. Reinstall xlwings."
        )
    return [
        VbaModule("xlwings", xlwings_text, "procedural"),
        class_module_from_export(xlwings_dictionary_source()),
        VbaModule(XLSTOCK_MODULE, xlstock_vba_source(), "procedural"),
    ]


def vba_modules(sheet_code_names: Sequence[str]) -> list[VbaModule]:
    """Every module of the generated project: ``ThisWorkbook``, one document module
    per sheet code name, xlwings (module and ``Dictionary`` class) and xlstock."""
    return [
        document_module(WORKBOOK_CODE_NAME, "workbook"),
        *(document_module(name, "worksheet") for name in sheet_code_names),
        *own_modules(),
    ]


# ----------------------------------------------------------------------- package


class _Package:
    """An OOXML zip held in memory as an ordered mapping of part name to bytes."""

    def __init__(self, data: bytes, label: str) -> None:
        self.label = label
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                self.parts = {info.filename: archive.read(info) for info in archive.infolist()
                              if not info.is_dir()}
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise WorkbookError(f"{label} is not a readable workbook (zip): {exc}") from exc
        for required in ("[Content_Types].xml", "_rels/.rels"):
            if required not in self.parts:
                raise WorkbookError(f"{label} is not an Excel workbook: {required} is missing")

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        names = ["[Content_Types].xml"] + [n for n in self.parts if n != "[Content_Types].xml"]
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in names:
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o600 << 16
                archive.writestr(info, self.parts[name])
        return out.getvalue()

    def xml(self, name: str) -> Element:
        try:
            return SafeET.fromstring(self.parts[name])
        except KeyError as exc:
            raise WorkbookError(f"{self.label}: part {name} is missing") from exc
        except (SafeET.ParseError, ValueError) as exc:
            raise WorkbookError(f"{self.label}: part {name} is not valid XML: {exc}") from exc

    def text(self, name: str) -> str:
        return self.parts[name].decode("utf-8")

    def new_name(self, pattern: str) -> str:
        number = 1
        while pattern.format(number) in self.parts:
            number += 1
        return pattern.format(number)

    # relationships ------------------------------------------------------------

    @staticmethod
    def rels_name(part: str) -> str:
        folder, base = posixpath.split(part)
        return posixpath.join(folder, "_rels", base + ".rels")

    def rels(self, part: str) -> list[dict[str, str]]:
        name = self.rels_name(part)
        if name not in self.parts:
            return []
        return [dict(el.attrib) for el in self.xml(name) if el.tag == f"{{{REL_NS}}}Relationship"]

    def write_rels(self, part: str, rels: list[dict[str, str]]) -> None:
        body = "".join(
            "<Relationship" + "".join(f" {k}={quoteattr(v)}" for k, v in rel.items()) + "/>"
            for rel in rels
        )
        self.parts[self.rels_name(part)] = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="{REL_NS}">{body}</Relationships>'
        ).encode()

    @staticmethod
    def resolve(part: str, target: str) -> str:
        if target.startswith("/"):
            return target[1:]
        return posixpath.normpath(posixpath.join(posixpath.dirname(part), target))

    def add_rel(self, part: str, rel_type: str, target_part: str) -> str:
        """Id of a relationship from ``part`` to ``target_part``, added if missing."""
        rels = self.rels(part)
        for rel in rels:
            if rel.get("Type") == rel_type and self.resolve(part, rel["Target"]) == target_part:
                return rel["Id"]
        ids = {rel["Id"] for rel in rels}
        number = len(rels) + 1
        while f"rId{number}" in ids:
            number += 1
        relative = posixpath.relpath(target_part, posixpath.dirname(part) or ".")
        rels.append({"Id": f"rId{number}", "Type": rel_type, "Target": relative})
        self.write_rels(part, rels)
        return f"rId{number}"

    # content types ------------------------------------------------------------

    def remove_override(self, part_name: str) -> None:
        text = self.text("[Content_Types].xml")
        pattern = rf"<Override\b[^>]*PartName=\"{re.escape(part_name)}\"[^>]*/>"
        self.parts["[Content_Types].xml"] = re.sub(pattern, "", text).encode()

    def set_content_types(self, defaults: dict[str, str], overrides: dict[str, str]) -> None:
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

    # workbook -------------------------------------------------------------------

    def workbook_part(self) -> str:
        for rel in self.rels(""):
            if rel.get("Type") == REL_OFFICE_DOCUMENT:
                return self.resolve("", rel["Target"])
        raise WorkbookError(f"{self.label} has no workbook part (_rels/.rels names none)")

    def sheets(self) -> list[tuple[str, str]]:
        """``(sheet name, worksheet part)`` in workbook order (chart sheets left out)."""
        workbook = self.workbook_part()
        targets = {rel["Id"]: rel for rel in self.rels(workbook)}
        result = []
        for sheet in self.xml(workbook).iter(f"{{{MAIN_NS}}}sheet"):
            rel = targets.get(sheet.attrib.get(f"{{{R_NS}}}id", ""))
            if rel is not None and rel.get("Type") == REL_WORKSHEET:
                result.append((sheet.attrib["name"], self.resolve(workbook, rel["Target"])))
        return result

    def sheet_part(self, sheet_name: str) -> str:
        for name, part in self.sheets():
            if name == sheet_name:
                return part
        raise WorkbookError(
            f"{self.label} has no worksheet named {sheet_name!r}; the buttons go on sheet "
            f"{sheet_name!r}. Rename the sheet that holds your stock to {sheet_name!r}, or "
            "start from a workbook made by 'xlstock new'."
        )


# ---------------------------------------------------------------- XML text edits

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


def _start_tag(xml: str, local: str) -> re.Match[str] | None:
    return re.search(rf"<{local}(?=[\s/>])[^>]*?(/?)>", xml)


def _root_tag(xml: str, local: str, label: str) -> re.Match[str]:
    match = _start_tag(xml, local)
    if match is None:
        raise WorkbookError(
            f"{label}: no <{local}> element in the default namespace; xlstock only edits "
            "workbooks written by Excel, LibreOffice or openpyxl"
        )
    return match


def _set_attribute(tag: str, name: str, value: str) -> str:
    """``tag`` (a start tag's text) with attribute ``name`` set to ``value``."""
    pattern = rf"(\s{re.escape(name)}\s*=\s*)(\"[^\"]*\"|'[^']*')"
    if re.search(pattern, tag):
        return re.sub(pattern, lambda m: m.group(1) + quoteattr(value), tag, count=1)
    end = -2 if tag.endswith("/>") else -1
    return f"{tag[:end].rstrip()} {name}={quoteattr(value)}{tag[end:]}"


def _attribute(tag: str, name: str) -> str | None:
    match = re.search(rf"\s{re.escape(name)}\s*=\s*(\"([^\"]*)\"|'([^']*)')", tag)
    if match is None:
        return None
    return match.group(2) if match.group(2) is not None else match.group(3)


def _declare_namespaces(xml: str, root: str, namespaces: dict[str, str], label: str) -> str:
    match = _root_tag(xml, root, label)
    tag = match.group(0)
    for prefix, uri in namespaces.items():
        declared = _attribute(tag, f"xmlns:{prefix}")
        if declared is None:
            tag = _set_attribute(tag, f"xmlns:{prefix}", uri)
        elif declared != uri:
            raise WorkbookError(f"{label}: prefix {prefix!r} is bound to {declared}, not {uri}")
    return xml[: match.start()] + tag + xml[match.end() :]


def _insert_sheet_child(xml: str, local: str, element: str) -> str:
    """Insert ``element`` into a worksheet where the schema's child order puts
    ``local``: before the first present child that must follow it."""
    later = _SHEET_CHILD_ORDER[_SHEET_CHILD_ORDER.index(local) + 1 :]
    positions = [m.start() for name in later if (m := _start_tag(xml, name)) is not None]
    alternate = re.search(r"<mc:AlternateContent\b", xml)
    if alternate is not None and local != "controls":
        positions.append(alternate.start())
    at = min(positions) if positions else xml.rindex("</worksheet>")
    return xml[:at] + element + xml[at:]


def _set_code_name(xml: str, element: str, parent: str, code_name: str, label: str) -> str:
    match = _start_tag(xml, element)
    if match is not None:
        tag = match.group(0)
        return xml[: match.start()] + _set_attribute(tag, "codeName", code_name) + xml[match.end():]
    root = _root_tag(xml, parent, label)
    new = f"<{element} codeName={quoteattr(code_name)}/>"
    if parent == "worksheet":
        return xml[: root.end()] + new + xml[root.end() :]
    later = [m.start() for name in ("workbookProtection", "bookViews", "sheets")
             if (m := _start_tag(xml, name)) is not None]
    at = min(later) if later else root.end()
    return xml[:at] + new + xml[at:]


def _code_name_of(xml: str, element: str) -> str | None:
    match = _start_tag(xml, element)
    return None if match is None else _attribute(match.group(0), "codeName")


# ------------------------------------------------------------------- VML shapes


@dataclass(frozen=True)
class _Anchor:
    """A cell anchor as VML's ``x:Anchor`` gives it: 0-based column and row, offsets in
    pixels, for the top-left and the bottom-right corner."""

    values: tuple[int, int, int, int, int, int, int, int]

    @classmethod
    def parse(cls, text: str) -> _Anchor:
        numbers = tuple(int(part) for part in text.replace(" ", "").split(","))
        if len(numbers) != 8:
            raise ValueError(text)
        return cls(numbers)

    def vml(self) -> str:
        return ", ".join(str(v) for v in self.values)

    def xdr(self) -> str:
        c1, dx1, r1, dy1, c2, dx2, r2, dy2 = self.values

        def corner(tag: str, col: int, dx: int, row: int, dy: int) -> str:
            return (f"<{tag}><xdr:col>{col}</xdr:col><xdr:colOff>{dx * _EMU_PER_PIXEL}"
                    f"</xdr:colOff><xdr:row>{row}</xdr:row><xdr:rowOff>{dy * _EMU_PER_PIXEL}"
                    f"</xdr:rowOff></{tag}>")

        return corner("from", c1, dx1, r1, dy1) + corner("to", c2, dx2, r2, dy2)


def _default_anchor(index: int, first_column: int) -> _Anchor:
    """Buttons sit in row 1 (the frozen header row stays in view), one column each,
    from the 0-based ``first_column`` on."""
    column = first_column + index
    return _Anchor((column, 4, 0, 2, column + 1, 0, 1, 0))


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def _first_free_column(sheet_xml: str) -> int:
    """The 0-based column for the first button: right of the last header cell in row 1
    (the template's columns and the merchant's own), with one empty column between."""
    row = re.search(r"<row\b[^>]*?\sr=\"1\"[^>]*?(?:/>|>(.*?)</row>)", sheet_xml, re.S)
    last = 0
    for cell in re.finditer(r"<c\b([^>]*?)(?:/>|>(.*?)</c>)", (row and row.group(1)) or "", re.S):
        reference = _attribute(cell.group(1), "r")
        letters = re.match(r"[A-Za-z]{1,3}", reference or "")
        if letters and re.search(r"<(?:v|is|f)\b", cell.group(2) or ""):
            last = max(last, _column_number(letters.group(0)))
    return (last or len(STOCK_HEADERS)) + 1


def _macro_of(formula: str) -> str:
    return formula.strip().rsplit("!", 1)[-1].strip("'").split(".")[-1]


def _serialize(element: Element) -> str:
    """An element of a VML drawing, written with Excel's own prefixes (v, o, x)."""
    prefixes = {V_NS: "v", O_NS: "o", X_NS: "x"}

    def name(qualified: str) -> str:
        if qualified.startswith("{"):
            uri, local = qualified[1:].split("}", 1)
            return f"{prefixes[uri]}:{local}" if uri in prefixes else local
        return qualified

    attributes = "".join(f" {name(k)}={quoteattr(v)}" for k, v in element.attrib.items())
    inner = escape(element.text or "") + "".join(
        _serialize(child) + escape(child.tail or "") for child in element
    )
    return f"<{name(element.tag)}{attributes}>{inner}</{name(element.tag)}>"


def _button_shapes(vml: Element) -> dict[str, Element]:
    """Our buttons among a VML drawing's shapes, by macro name."""
    found: dict[str, Element] = {}
    wanted = {button.macro for button in BUTTONS}
    for shape in vml.iter(f"{{{V_NS}}}shape"):
        data = shape.find(f"{{{X_NS}}}ClientData")
        if data is None or data.attrib.get("ObjectType") != "Button":
            continue
        formula = data.findtext(f"{{{X_NS}}}FmlaMacro") or ""
        macro = _macro_of(formula)
        if macro in wanted and macro not in found:
            found[macro] = shape
    return found


def _shape_anchor(shape: Element) -> _Anchor | None:
    text = shape.findtext(f"{{{X_NS}}}ClientData/{{{X_NS}}}Anchor")
    try:
        return None if text is None else _Anchor.parse(text)
    except ValueError:
        return None


def _shape_number(shape: Element) -> int | None:
    match = re.fullmatch(r"_x0000_s(\d+)", shape.attrib.get("id", ""))
    return int(match.group(1)) if match else None


def _button_shape_xml(button: Button, number: int, anchor: _Anchor, z_index: int) -> str:
    label = escape(button.label)
    return (
        f'<v:shape id="_x0000_s{number}" type="#{_BUTTON_SHAPETYPE}" style="position:absolute;'
        f'margin-left:0;margin-top:0;width:48pt;height:15pt;z-index:{z_index};'
        'mso-wrap-style:tight" o:button="t" fillcolor="buttonFace [67]" '
        'strokecolor="windowText [64]" o:insetmode="auto">'
        '<v:fill color2="buttonFace [67]" o:detectmouseclick="t"/>'
        '<o:lock v:ext="edit" rotation="t"/>'
        '<v:textbox style="mso-direction-alt:auto" o:singleclick="f">'
        '<div style="text-align:center"><font face="Calibri" size="220" color="#000000">'
        f"{label}</font></div></v:textbox>"
        '<x:ClientData ObjectType="Button">'
        f"<x:Anchor>{anchor.vml()}</x:Anchor>"
        "<x:PrintObject>False</x:PrintObject><x:AutoFill>False</x:AutoFill>"
        f"<x:FmlaMacro>[0]!{button.macro}</x:FmlaMacro>"
        "<x:TextHAlign>Center</x:TextHAlign><x:TextVAlign>Center</x:TextVAlign>"
        "</x:ClientData></v:shape>"
    )


_SHAPETYPE_XML = (
    f'<v:shapetype id="{_BUTTON_SHAPETYPE}" coordsize="21600,21600" o:spt="201" '
    'path="m,l,21600r21600,l21600,xe"><v:stroke joinstyle="miter"/>'
    '<v:path shadowok="f" o:extrusionok="f" strokeok="f" fillok="f" o:connecttype="rect"/>'
    '<o:lock v:ext="edit" shapetype="t"/></v:shapetype>'
)
_VML_NAMESPACES = {"v": V_NS, "o": O_NS, "x": X_NS}


def _new_vml() -> str:
    return (
        f'<xml xmlns:v="{V_NS}" xmlns:o="{O_NS}" xmlns:x="{X_NS}">'
        '<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="1"/></o:shapelayout>'
        "</xml>"
    )


# ------------------------------------------------------------------ the buttons


def _parse_vml(package: _Package, part: str) -> Element:
    try:
        return SafeET.fromstring(package.parts[part])
    except (SafeET.ParseError, ValueError) as exc:
        raise WorkbookError(
            f"{package.label}: the drawing {part} of sheet {STOCK_SHEET!r} is not valid XML "
            f"({exc}); remove the sheet's buttons and comments in Excel, then try again"
        ) from exc


def _apply_buttons(package: _Package, donor_shapes: dict[str, Element] | None = None) -> None:
    """Give sheet Stock the three buttons, keeping any already there (and where they
    are). ``donor_shapes`` are button shapes from an earlier version of the file, used
    for a button the package lacks so that its position survives."""
    sheet = package.sheet_part(STOCK_SHEET)
    label = f"{package.label} ({sheet})"
    xml = package.text(sheet)
    xml = _declare_namespaces(xml, "worksheet", {"r": R_NS}, label)

    rels = {rel["Id"]: rel for rel in package.rels(sheet)}
    legacy = _start_tag(xml, "legacyDrawing")
    vml_part = None
    if legacy is not None:
        rel = rels.get(_attribute(legacy.group(0), "r:id") or "")
        if rel is not None and rel.get("Type") == REL_VML:
            vml_part = package.resolve(sheet, rel["Target"])
            if vml_part not in package.parts:
                vml_part = None
        if vml_part is None:
            raise WorkbookError(f"{label}: <legacyDrawing> points at no VML drawing part")
    if vml_part is None:
        vml_part = package.new_name("xl/drawings/vmlDrawing{}.vml")
        package.parts[vml_part] = _new_vml().encode()
        rel_id = package.add_rel(sheet, REL_VML, vml_part)
        xml = _insert_sheet_child(xml, "legacyDrawing", f'<legacyDrawing r:id="{rel_id}"/>')

    first_column = _first_free_column(xml)
    vml_root = _parse_vml(package, vml_part)
    present = _button_shapes(vml_root)
    numbers = {n for s in vml_root.iter(f"{{{V_NS}}}shape") if (n := _shape_number(s))}
    missing_xml = []
    next_number = max(numbers | {1024}) + 1
    z_index = len(numbers) + 1
    for index, button in enumerate(BUTTONS):
        if button.macro in present:
            continue
        donor = (donor_shapes or {}).get(button.macro)
        anchor = ((_shape_anchor(donor) if donor is not None else None)
                  or _default_anchor(index, first_column))
        missing_xml.append(_button_shape_xml(button, next_number, anchor, z_index))
        next_number += 1
        z_index += 1
    if missing_xml:
        vml_text = package.text(vml_part)
        vml_text = _declare_namespaces(vml_text, "xml", _VML_NAMESPACES, f"{package.label} "
                                       f"({vml_part})")
        has_type = any(t.attrib.get("id") == _BUTTON_SHAPETYPE
                       for t in vml_root.iter(f"{{{V_NS}}}shapetype"))
        if "<o:shapelayout" not in vml_text and vml_root.find(f"{{{O_NS}}}shapelayout") is None:
            missing_xml.insert(0, '<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" '
                                  'data="1"/></o:shapelayout>')
        if not has_type:
            missing_xml.insert(0 if not missing_xml[0].startswith("<o:shapelayout") else 1,
                               _SHAPETYPE_XML)
        at = vml_text.rindex("</xml>")
        vml_text = vml_text[:at] + "".join(missing_xml) + vml_text[at:]
        package.parts[vml_part] = vml_text.encode()
        vml_root = _parse_vml(package, vml_part)
        present = _button_shapes(vml_root)

    xml = _apply_controls(package, sheet, xml, present, label, first_column)
    package.parts[sheet] = xml.encode()


_CONTROLS_BLOCK = re.compile(
    r"<mc:AlternateContent\b[^>]*>\s*<mc:Choice Requires=\"x14\">\s*<controls>.*?</controls>"
    r"\s*</mc:Choice>\s*</mc:AlternateContent>|<controls>.*?</controls>",
    re.S,
)
_CONTROL_ENTRY = re.compile(
    r"<mc:AlternateContent\b[^>]*>\s*<mc:Choice\b.*?</mc:AlternateContent>"
    r"|<control\b[^>]*?/>|<control\b.*?</control>",
    re.S,
)


def _control_attributes(entry: str) -> tuple[str | None, str | None]:
    tag = re.search(r"<control\b[^>]*>", entry)
    if tag is None:
        return None, None
    return _attribute(tag.group(0), "shapeId"), _attribute(tag.group(0), "r:id")


def _remove_rel(package: _Package, part: str, rel_id: str) -> None:
    rels = package.rels(part)
    gone = [rel for rel in rels if rel["Id"] == rel_id]
    if not gone:
        return
    package.write_rels(part, [rel for rel in rels if rel["Id"] != rel_id])
    target = package.resolve(part, gone[0]["Target"])
    if target.startswith("xl/ctrlProps/"):
        package.parts.pop(target, None)
        package.remove_override("/" + target)


def _apply_controls(package: _Package, sheet: str, xml: str, shapes: dict[str, Element],
                    label: str, first_column: int) -> str:
    """The sheet's ``<controls>`` with one Form Control entry (and ctrlProp part) per
    button shape; entries of other controls are kept as they were, stale entries of
    our buttons (and their ctrlProp parts) are replaced."""
    ours = {str(_shape_number(shape)) for shape in shapes.values()}
    kept: list[str] = []
    block = _CONTROLS_BLOCK.search(xml)
    if block is not None:
        inner = block.group(0)
        inner = inner[inner.index("<controls>") + len("<controls>") : inner.rindex("</controls>")]
        for entry in _CONTROL_ENTRY.findall(inner):
            shape_id, rel_id = _control_attributes(entry)
            if shape_id in ours:
                if rel_id:
                    _remove_rel(package, sheet, rel_id)
            else:
                kept.append(entry)
        xml = xml[: block.start()] + xml[block.end() :]

    _drop_orphan_ctrl_props(package)
    new_entries = []
    overrides = {}
    for index, button in enumerate(BUTTONS):
        shape = shapes.get(button.macro)
        if shape is None:
            continue
        number = _shape_number(shape)
        anchor = _shape_anchor(shape) or _default_anchor(index, first_column)
        ctrl_part = package.new_name("xl/ctrlProps/ctrlProp{}.xml")
        package.parts[ctrl_part] = _CTRL_PROP_XML
        rel_id = package.add_rel(sheet, REL_CTRL_PROP, ctrl_part)
        overrides["/" + ctrl_part] = CT_CTRL_PROP
        name = f"Button {number - 1024}" if number else f"Button {index + 1}"
        new_entries.append(
            f'<mc:AlternateContent xmlns:mc="{MC_NS}"><mc:Choice Requires="x14">'
            f'<control shapeId="{number}" r:id="{rel_id}" name="{name}">'
            '<controlPr defaultSize="0" print="0" autoFill="0" autoPict="0" '
            f'macro="[0]!{button.macro}"><anchor moveWithCells="1" sizeWithCells="1">'
            f"{anchor.xdr()}</anchor></controlPr></control></mc:Choice></mc:AlternateContent>"
        )
    package.set_content_types({}, overrides)
    if not kept and not new_entries:
        return xml
    xml = _declare_namespaces(xml, "worksheet", {"mc": MC_NS, "x14": X14_NS, "xdr": XDR_NS},
                              label)
    controls = (
        f'<mc:AlternateContent xmlns:mc="{MC_NS}"><mc:Choice Requires="x14"><controls>'
        + "".join(kept + new_entries)
        + "</controls></mc:Choice></mc:AlternateContent>"
    )
    return _insert_sheet_child(xml, "controls", controls)


def _drop_orphan_ctrl_props(package: _Package) -> None:
    """Remove ctrlProp parts no relationship points at (openpyxl keeps the parts of a
    file it loaded with ``keep_vba`` but not the relationships to them)."""
    referenced = set()
    for name in list(package.parts):
        if name.endswith(".rels"):
            folder = posixpath.dirname(posixpath.dirname(name))
            source = posixpath.join(folder, posixpath.basename(name)[: -len(".rels")])
            for rel in package.rels(source):
                if rel.get("TargetMode") != "External":
                    referenced.add(package.resolve(source, rel["Target"]))
    for name in list(package.parts):
        if name.startswith("xl/ctrlProps/") and name not in referenced:
            del package.parts[name]
            package.remove_override("/" + name)


_CTRL_PROP_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<formControlPr xmlns="{X14_NS}" objectType="Button" lockText="1"/>'
).encode()


# ------------------------------------------------------------ code names, VBA


def _valid_code_name(name: str | None) -> TypeGuard[str]:
    return name is not None and re.fullmatch(r"[A-Za-z]\w{0,30}", name) is not None


def _apply_code_names(package: _Package,
                      preferred: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Set ``codeName`` on the workbook and on every worksheet, keeping valid ones
    already there (or ``preferred``, by sheet name); returns the workbook's and the
    sheets' code names in workbook order."""
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
        code = (preferred or {}).get(name) or _code_name_of(package.text(part), "sheetPr")
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


def _apply_vba(package: _Package, vba_project: bytes) -> None:
    workbook = package.workbook_part()
    package.parts[VBA_PART] = vba_project
    package.add_rel(workbook, REL_VBA, VBA_PART)
    package.set_content_types(
        {"vml": CT_VML},
        {"/" + workbook: CT_XLSM_MAIN, "/" + VBA_PART: CT_VBA},
    )


def vba_project_for(workbook_code_name: str, sheet_code_names: Sequence[str]) -> bytes:
    """The generated ``vbaProject.bin`` for a workbook with these code names."""
    modules = vba_modules(sheet_code_names)
    if workbook_code_name != WORKBOOK_CODE_NAME:
        modules[0] = document_module(workbook_code_name, "workbook")
    return build_vba_project(modules)


# ---------------------------------------------------------------------- public


def _read(source: str | os.PathLike[str] | bytes, label: str) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise WorkbookError(f"Cannot read {source}: {exc.strerror}") from exc


def macro_workbook_bytes(source: str | os.PathLike[str] | bytes, *,
                         label: str = "workbook") -> bytes:
    """The ``.xlsm`` bytes for the ``.xlsx`` (path or bytes) ``source``: same sheets,
    plus the VBA project, code names and the three buttons on sheet Stock.

    A VBA project already in ``source`` is kept (it may hold the merchant's own
    macros); otherwise one is generated from the installed xlwings. Deterministic:
    the same input and the same xlwings give the same bytes."""
    package = _Package(_read(source, label), label)
    package.sheet_part(STOCK_SHEET)
    book_code, sheet_codes = _apply_code_names(package)
    vba = package.parts.get(VBA_PART) or vba_project_for(book_code, sheet_codes)
    _apply_vba(package, vba)
    _apply_buttons(package)
    return package.to_bytes()


def write_macro_workbook(source: str | os.PathLike[str] | bytes,
                         out_path: str | os.PathLike[str]) -> None:
    """Write the macro-enabled version of ``source`` (an ``.xlsx`` path or its bytes)
    to ``out_path`` atomically. See :func:`macro_workbook_bytes`."""
    out = Path(out_path)
    label = str(source) if not isinstance(source, bytes) else str(out)
    write_atomic(out, macro_workbook_bytes(source, label=label))


def build_macro_workbook(path: str | os.PathLike[str], service_url: str | None = None,
                         shop_url: str | None = None) -> None:
    """``xlstock new PATH.xlsm``: the template workbook with the Excel buttons."""
    from xlstock.workbook.template import workbook_bytes

    out = Path(path)
    data = workbook_bytes(service_url=service_url, shop_url=shop_url)
    write_atomic(out, macro_workbook_bytes(data, label=str(out)))


def has_macro_parts(source: str | os.PathLike[str] | bytes) -> bool:
    """Whether ``source`` holds a VBA project (so that a save must carry it over)."""
    data = _read(source, str(source)[:200])
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return VBA_PART in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _carry_code_names(package: _Package, preferred: dict[str, str]) -> None:
    """Give the sheets the original's code names; a sheet that is new keeps none
    (Excel makes its module when it opens the file)."""
    for name, part in package.sheets():
        code = preferred.get(name)
        if code and _code_name_of(package.text(part), "sheetPr") != code:
            package.parts[part] = _set_code_name(
                package.text(part), "sheetPr", "worksheet", code, f"{package.label} ({part})"
            ).encode()



def _foreign_controls(package: _Package) -> list[str]:
    """Sheets whose VML drawings hold anything but notes and xlstock's own buttons."""
    sheets = []
    for name, part in package.sheets():
        for rel in package.rels(part):
            if rel.get("Type") != REL_VML:
                continue
            target = package.resolve(part, rel["Target"])
            if target not in package.parts:
                continue
            root = _parse_vml(package, target)
            ours = set(map(id, _button_shapes(root).values())) if name == STOCK_SHEET else set()
            for shape in root.iter(f"{{{V_NS}}}shape"):
                data = shape.find(f"{{{X_NS}}}ClientData")
                kind = None if data is None else data.attrib.get("ObjectType")
                if kind != "Note" and id(shape) not in ours and name not in sheets:
                    sheets.append(name)
    return sheets


# ------------------------------------------------------------- xlstock buttons


@dataclass(frozen=True)
class ButtonsReport:
    """What :func:`install_buttons` did to ``path``: one line per change (empty when
    the workbook was up to date and left as it was), and the merchant's own modules
    that were kept."""

    path: Path
    changes: tuple[str, ...]
    kept: tuple[str, ...]

    @property
    def written(self) -> bool:
        """Whether ``path`` was written."""
        return bool(self.changes)

    def lines(self) -> list[str]:
        """The report for the merchant."""
        lines = list(self.changes)
        if self.kept:
            lines.append("kept your modules: " + ", ".join(self.kept))
        if self.written:
            lines.append(f"Wrote {self.path}. Open it in Excel and enable macros (Enable "
                         "Content) to use the Sync, Preview and Publish buttons.")
        else:
            version = _module_version(xlwings_vba_source()) or "installed"
            lines.append(f"{self.path} is up to date (xlwings module {version}, buttons in "
                         "place); nothing to change.")
        return lines


def _module_version(source: str) -> str | None:
    match = re.search(r"^'Version: *(\S+)", source, re.M)
    return match.group(1) if match else None


def _has_code(module: VbaModule) -> bool:
    return any(line.strip() and not line.startswith("Attribute ")
               for line in module.source.splitlines())


def _describe(old: VbaModule | None, new: VbaModule) -> list[str]:
    if old is not None and old.source == new.source:
        return []
    if new.name == "xlwings":
        version = _module_version(new.source)
        if old is None:
            return [f"xlwings module {version} added"]
        before = _module_version(old.source) or "(no version line)"
        if before == version:
            return [f"xlwings module {version} replaced by the installed copy"]
        return [f"xlwings module {before} -> {version}"]
    what = "xlstock module" if new.name == XLSTOCK_MODULE else f"{new.name} class (xlwings)"
    return [f"{what} {'added' if old is None else 'updated'}"]


def _existing_project(package: _Package) -> ProjectSource | None:
    data = package.parts.get(VBA_PART)
    if data is None:
        return None
    label = package.label
    try:
        project = read_vba_project(data)
    except ValueError as exc:
        raise WorkbookError(
            f"{label}: its VBA project ({VBA_PART}) cannot be read ({exc}); open the workbook "
            "in Excel, save it, and try again"
        ) from exc
    if project.protection:
        raise WorkbookError(
            f"{label}: its VBA project is {project.protection}, so xlstock cannot read your "
            "macros to keep them. In Excel, open the VBA editor (Alt+F11; on a Mac, Tools > "
            "Macro > Visual Basic Editor), Tools > VBAProject Properties > Protection: untick "
            "'Lock project for viewing', clear both password boxes, OK; save and close the "
            "workbook, run xlstock buttons again, then protect the project again if you wish"
        )
    if project.designers:
        raise WorkbookError(
            f"{label}: its VBA project has UserForms ({', '.join(project.designers)}), which "
            "xlstock cannot rebuild. In the VBA editor, right-click each form > Export File, "
            "then Remove it; save, run xlstock buttons again, and import the forms back "
            "(File > Import File)"
        )
    return project


def _merged_modules(package: _Package, existing: ProjectSource | None, book_code: str,
                    sheet_codes: Sequence[str]) -> tuple[list[VbaModule], list[str], list[str]]:
    """The refreshed project's modules, the changes, and the merchant's modules kept:
    document modules kept (code included) or added for sheets that have none, xlwings'
    and xlstock's modules replaced by the current ones (or added), every other module
    kept as it is, all in the project's order."""
    old = list(existing.modules) if existing is not None else []
    documents = {m.name.casefold(): m for m in old if m.kind == "document"}
    modules: list[VbaModule] = []
    changes: list[str] = []
    kept: list[str] = []
    sheet_names = [name for name, _ in package.sheets()]
    places = [(book_code, "workbook", None), *((code, "worksheet", name) for code, name
                                              in zip(sheet_codes, sheet_names, strict=True))]
    for code, base, sheet_name in places:
        found = documents.pop(code.casefold(), None)
        if found is None:
            found = document_module(code, "workbook" if base == "workbook" else "worksheet")
            if existing is not None:
                changes.append(f"module {code} added for "
                               + (f"sheet {sheet_name!r}" if sheet_name else "the workbook"))
        elif _has_code(found):
            kept.append(found.name)
        modules.append(found)
    orphans = [m.name for m in documents.values() if _has_code(m)]
    if orphans:
        raise WorkbookError(
            f"{package.label}: the VBA project has code in {', '.join(orphans)}, the module of "
            "a sheet that is no longer in the workbook; in the VBA editor, move that code into "
            "a standard module (Insert > Module), save, and try again"
        )
    own = {m.name.casefold(): m for m in own_modules()}
    for module in old:
        if module.kind == "document":
            continue
        replacement = own.pop(module.name.casefold(), None)
        if replacement is None:
            modules.append(module)
            kept.append(module.name)
        else:
            modules.append(replacement)
            changes += _describe(module, replacement)
    for module in own.values():
        modules.append(module)
        changes += _describe(None, module)
    return modules, changes, kept


def _buttons_in_place(package: _Package, sheet: str) -> set[str]:
    """Labels of our buttons that have both their shape and their control entry."""
    controls = set(re.findall(r"<control\b[^>]*?\sshapeId=\"(\d+)\"", package.text(sheet)))
    found: set[str] = set()
    for rel in package.rels(sheet):
        part = package.resolve(sheet, rel["Target"])
        if rel.get("Type") == REL_VML and part in package.parts:
            for macro, shape in _button_shapes(_parse_vml(package, part)).items():
                if str(_shape_number(shape)) in controls:
                    found.add(macro)
    return {button.label for button in BUTTONS if button.macro in found}


def refreshed_macro_workbook(data: bytes, label: str) -> tuple[bytes, list[str], list[str]]:
    """The ``.xlsm`` bytes for the workbook ``data`` (an ``.xlsx`` or an ``.xlsm``),
    with the changes made and the merchant's modules kept.

    The VBA project is rebuilt from source: the installed xlwings' module and
    ``Dictionary`` class and xlstock's module replace the ones there (or are added);
    every other module, the project's name, code page and references are kept. The
    three buttons are added to sheet Stock where missing. Every other part of the
    package is kept as it is. Deterministic, and a second pass changes nothing."""
    package = _Package(data, label)
    stock = package.sheet_part(STOCK_SHEET)
    buttons_before = _buttons_in_place(package, stock)
    existing = _existing_project(package)
    book_code, sheet_codes = _apply_code_names(package)
    modules, changes, kept = _merged_modules(package, existing, book_code, sheet_codes)
    try:
        project = build_vba_project(modules, existing.info if existing else None)
    except ValueError as exc:
        raise WorkbookError(
            f"{label}: the VBA project cannot be rebuilt ({exc}); fix that module in Excel's "
            "VBA editor, save, and try again"
        ) from exc
    _apply_vba(package, project)
    _apply_buttons(package)
    missing = [button.label for button in BUTTONS if button.label not in buttons_before]
    if missing:
        changes.append("buttons added: " + ", ".join(missing))
    return package.to_bytes(), changes, kept


def install_buttons(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                    *, force: bool = False) -> ButtonsReport:
    """``xlstock buttons PATH [--out OUT]``: give an ``.xlsx`` the Excel buttons (written
    as ``OUT``, by default ``PATH`` with ``.xlsm``), or bring an ``.xlsm``'s xlwings and
    xlstock modules up to date and put back missing buttons (in place, or as ``OUT``).
    See :func:`refreshed_macro_workbook`. An up-to-date ``.xlsm`` is left untouched.

    The target is locked against other xlstock runs and refused while Excel has it
    open; it is replaced atomically, so that a failure leaves it as it was."""
    from xlstock.workbook import safety
    from xlstock.workbook.locking import RunLock, refuse_if_open_in_a_spreadsheet

    source = Path(path)
    suffix = source.suffix.lower()
    if suffix in (".xlsb", ".xls"):
        raise UsageError(
            f"{path} is a binary Excel workbook ({suffix}), which xlstock cannot edit: open it "
            "in Excel, File > Save As > Excel Macro-Enabled Workbook (*.xlsm), then run: "
            f"xlstock buttons {source.with_suffix('.xlsm')}"
        )
    if suffix not in (".xlsx", ".xlsm"):
        raise UsageError(f"{path}: name an .xlsx workbook (to get a copy with the buttons) or "
                         "an .xlsm (to bring its buttons and xlwings module up to date)")
    if not source.is_file():
        raise UsageError(f"{path}: no such workbook; create one with "
                         f"`xlstock new {source.with_suffix('.xlsm')}`")
    target = Path(out) if out is not None else (
        source if suffix == ".xlsm" else source.with_suffix(".xlsm"))
    if target.suffix.lower() != ".xlsm":
        raise UsageError(f"--out {target}: a workbook with macros must be named .xlsm")
    in_place = target.exists() and os.path.samefile(source, target)
    if target.exists() and not in_place and not force:
        raise UsageError(f"{target} exists already; pick another name with --out, or add "
                         "--force to replace it")
    real = Path(os.path.realpath(target))
    refuse_if_open_in_a_spreadsheet(real, str(target))
    lock = RunLock(real, str(target))
    lock.acquire()
    try:
        data, _ = safety.read_checked(source)
        result, changes, kept = refreshed_macro_workbook(data, str(path))
        if not in_place and not changes:
            changes = [f"copied {path} with its buttons and modules up to date"]
        if changes:
            write_atomic(real, result)
    finally:
        lock.release()
    return ButtonsReport(target, tuple(changes), tuple(kept))
