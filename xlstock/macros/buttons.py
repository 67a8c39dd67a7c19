"""The three buttons on sheet Stock (Sync, Preview, Publish), written as Excel writes
Form Control buttons: shapes in the sheet's legacy VML drawing (``x:ClientData
ObjectType="Button"`` with ``x:FmlaMacro``), one ``xl/ctrlProps/ctrlPropN.xml`` each,
and the sheet's ``<legacyDrawing>`` and ``<controls>`` entries.

Buttons already there are kept where the merchant put them; other shapes and controls
of the sheet are kept as they are.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET

from xlstock.errors import WorkbookError
from xlstock.i18n import _
from xlstock.macros.package import (
    WorkbookParts,
    attribute,
    declare_namespaces,
    insert_sheet_child,
    start_tag,
)
from xlstock.macros.vba_source import BUTTONS, FRENCH_LABELS, Button
from xlstock.workbook.base import STOCK_SHEET
from xlstock.workbook.layout import FRENCH_SHEETS, STOCK_HEADERS
from xlstock.workbook.package import DOC_REL_NS, resolve
from xlstock.workbook.sheetxml import column_number

MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"
X14_NS = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"
XDR_NS = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
V_NS = "urn:schemas-microsoft-com:vml"
O_NS = "urn:schemas-microsoft-com:office:office"
X_NS = "urn:schemas-microsoft-com:office:excel"

REL_VML = f"{DOC_REL_NS}/vmlDrawing"
REL_CTRL_PROP = f"{DOC_REL_NS}/ctrlProp"
CT_VML = "application/vnd.openxmlformats-officedocument.vmlDrawing"
CT_CTRL_PROP = "application/vnd.ms-excel.controlproperties+xml"

_EMU_PER_PIXEL = 9525
_BUTTON_SHAPETYPE = "_x0000_t201"


# --- shapes ------------------------------------------------------------------------------


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


def _first_free_column(sheet_xml: str) -> int:
    """The 0-based column for the first button: right of the last header cell in row 1
    (the template's columns and the merchant's own), with one empty column between."""
    row = re.search(r"<row\b[^>]*?\sr=\"1\"[^>]*?(?:/>|>(.*?)</row>)", sheet_xml, re.S)
    last = 0
    for cell in re.finditer(r"<c\b([^>]*?)(?:/>|>(.*?)</c>)", (row and row.group(1)) or "", re.S):
        reference = attribute(cell.group(1), "r")
        letters = re.match(r"[A-Za-z]{1,3}", reference or "")
        if letters and re.search(r"<(?:v|is|f)\b", cell.group(2) or ""):
            last = max(last, column_number(letters.group(0).upper()))
    return (last or len(STOCK_HEADERS)) + 1


def _macro_of(formula: str) -> str:
    return formula.strip().rsplit("!", 1)[-1].strip("'").split(".")[-1]


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


def _button_shape_xml(button: Button, number: int, anchor: _Anchor, z_index: int,
                      french: bool = False) -> str:
    label = escape(FRENCH_LABELS[button.label] if french else button.label)
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


def _parse_vml(package: WorkbookParts, part: str) -> Element:
    try:
        return SafeET.fromstring(package.parts[part])
    except (SafeET.ParseError, ValueError) as exc:
        raise WorkbookError(
            _("{label}: the drawing {part} of sheet {sheet} is not valid XML ({detail}); "
              "remove the sheet's buttons and comments in Excel, then try again",
              label=package.label, part=part, sheet=repr(STOCK_SHEET), detail=exc)
        ) from exc


# --- the buttons -------------------------------------------------------------------------


def is_french(package: WorkbookParts) -> bool:
    """Whether the workbook is a French one (xlstock's sheets under their French names):
    its buttons say Synchroniser, Aperçu, Publier, Annuler."""
    french = set(FRENCH_SHEETS.values())
    return any(name in french for name, _ in package.sheets())


def apply_buttons(package: WorkbookParts) -> None:
    """Give sheet Stock the three buttons, keeping any already there (and where they
    are)."""
    sheet = package.sheet_part(STOCK_SHEET)
    label = f"{package.label} ({sheet})"
    xml = package.text(sheet)
    xml = declare_namespaces(xml, "worksheet", {"r": DOC_REL_NS}, label)

    vml_part, xml = _vml_part(package, sheet, xml, label)

    first_column = _first_free_column(xml)
    vml_root = _parse_vml(package, vml_part)
    present = _button_shapes(vml_root)
    controls = _controls_by_macro(xml)
    numbers = {n for s in vml_root.iter(f"{{{V_NS}}}shape") if (n := _shape_number(s))}
    numbers |= set(controls.values())
    missing_xml = []
    next_number = max(numbers | {1024}) + 1
    z_index = len(numbers) + 1
    for index, button in enumerate(BUTTONS):
        if button.macro in present:
            continue
        anchor = _default_anchor(index, first_column)
        missing_xml.append(_button_shape_xml(button, next_number, anchor, z_index,
                                             is_french(package)))
        next_number += 1
        z_index += 1
    if missing_xml:
        vml_root = _add_shapes(package, vml_part, vml_root, missing_xml)
        present = _button_shapes(vml_root)

    shape_ids = _shape_ids(package, vml_part, present, controls, max(numbers | {1024}) + 1)
    xml = _apply_controls(package, sheet, xml, present, shape_ids, label, first_column)
    package.parts[sheet] = xml.encode()


def _vml_part(package: WorkbookParts, sheet: str, xml: str, label: str) -> tuple[str, str]:
    """The sheet's VML drawing part (made, with its ``<legacyDrawing>``, when it has
    none), and the sheet's XML."""
    rels = {rel["Id"]: rel for rel in package.rels(sheet)}
    legacy = start_tag(xml, "legacyDrawing")
    if legacy is not None:
        rel = rels.get(attribute(legacy.group(0), "r:id") or "")
        vml_part = None
        if rel is not None and rel.get("Type") == REL_VML:
            vml_part = resolve(sheet, rel["Target"])
        if vml_part is None or vml_part not in package.parts:
            raise WorkbookError(_("{label}: <legacyDrawing> points at no VML drawing part",
                                  label=label))
        return vml_part, xml
    vml_part = package.new_name("xl/drawings/vmlDrawing{}.vml")
    package.parts[vml_part] = _new_vml().encode()
    rel_id = package.add_rel(sheet, REL_VML, vml_part)
    return vml_part, insert_sheet_child(xml, "legacyDrawing", f'<legacyDrawing r:id="{rel_id}"/>')


def _add_shapes(package: WorkbookParts, vml_part: str, vml_root: Element,
                missing_xml: list[str]) -> Element:
    """Append the buttons' shapes (with the shape layout and shape type they need) to
    the VML part; its root read again."""
    vml_text = package.text(vml_part)
    vml_text = declare_namespaces(vml_text, "xml", _VML_NAMESPACES, f"{package.label} "
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
    return _parse_vml(package, vml_part)


def _controls_by_macro(sheet_xml: str) -> dict[str, int]:
    """The sheet's Form Control entries that run one of our macros: macro -> the
    ``shapeId`` they name (LibreOffice names its VML shapes ``shape_0``, so the
    control entry is where its buttons' numbers are)."""
    wanted = {button.macro for button in BUTTONS}
    found: dict[str, int] = {}
    for entry in re.finditer(r"(<control\b[^>]*?(?<!/)>)(.*?)</control>", sheet_xml, re.S):
        shape_id = attribute(entry.group(1), "shapeId") or ""
        options = re.search(r"<controlPr\b[^>]*>", entry.group(2))
        macro = _macro_of(attribute(options.group(0), "macro") or "") if options else ""
        if macro in wanted and macro not in found and shape_id.isdigit():
            found[macro] = int(shape_id)
    return found


def _shape_ids(package: WorkbookParts, vml_part: str, shapes: dict[str, Element],
               controls: dict[str, int], next_number: int) -> dict[str, int]:
    """Each button's shape number, the ``shapeId`` of its control entry: the number in
    the shape's id (``_x0000_s1025``, as Excel writes it), else the one its control
    entry already names (LibreOffice's files), else a new one, written into the
    shape's id so that the next run finds the same."""
    ids: dict[str, int] = {}
    renumber: dict[str, int] = {}
    for macro, shape in shapes.items():
        number = _shape_number(shape) or controls.get(macro)
        if number is None:
            number = renumber[macro] = next_number
            next_number += 1
        ids[macro] = number
    if renumber:
        package.parts[vml_part] = _renumbered(package.text(vml_part), renumber).encode()
    return ids


def _renumbered(vml: str, numbers: dict[str, int]) -> str:
    """The VML drawing with the id of each button shape for a macro in ``numbers`` set
    to ``_x0000_s<number>``."""

    def renumber(shape: re.Match[str]) -> str:
        macro = re.search(r"<x:FmlaMacro>(.*?)</x:FmlaMacro>", shape.group(0), re.S)
        number = numbers.get(_macro_of(macro.group(1))) if macro else None
        if number is None:
            return shape.group(0)
        start = shape.group(1)
        if attribute(start, "id") is not None:
            start = re.sub(r"(\sid\s*=\s*)(\"[^\"]*\"|'[^']*')", rf'\g<1>"_x0000_s{number}"',
                           start, count=1)
        else:
            start = start.replace("<v:shape", f'<v:shape id="_x0000_s{number}"', 1)
        return start + shape.group(0)[len(shape.group(1)):]

    return re.sub(r"(<v:shape\b[^>]*?(?<!/)>).*?</v:shape>", renumber, vml, flags=re.S)


def buttons_in_place(package: WorkbookParts, sheet: str) -> set[str]:
    """Labels of our buttons that have both their shape and their control entry on
    the worksheet part ``sheet``."""
    xml = package.text(sheet)
    controls = set(re.findall(r"<control\b[^>]*?\sshapeId=\"(\d+)\"", xml))
    by_macro = _controls_by_macro(xml)
    found: set[str] = set()
    for rel in package.rels(sheet):
        part = resolve(sheet, rel["Target"])
        if rel.get("Type") == REL_VML and part in package.parts:
            for macro, shape in _button_shapes(_parse_vml(package, part)).items():
                if str(_shape_number(shape) or by_macro.get(macro)) in controls:
                    found.add(macro)
    return {button.label for button in BUTTONS if button.macro in found}


# --- the sheet's controls ----------------------------------------------------------------

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
    return attribute(tag.group(0), "shapeId"), attribute(tag.group(0), "r:id")


def _remove_rel(package: WorkbookParts, part: str, rel_id: str) -> None:
    rels = package.rels(part)
    gone = [rel for rel in rels if rel["Id"] == rel_id]
    if not gone:
        return
    package.write_rels(part, [rel for rel in rels if rel["Id"] != rel_id])
    target = resolve(part, gone[0]["Target"])
    if target.startswith("xl/ctrlProps/"):
        package.parts.pop(target, None)
        package.remove_override("/" + target)


def _apply_controls(package: WorkbookParts, sheet: str, xml: str, shapes: dict[str, Element],
                    shape_ids: dict[str, int], label: str, first_column: int) -> str:
    """The sheet's ``<controls>`` with one Form Control entry (and ctrlProp part) per
    button shape (numbered by ``shape_ids``); entries of other controls are kept as
    they were, stale entries of our buttons (and their ctrlProp parts) are replaced."""
    ours = {str(number) for number in shape_ids.values()}
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
        number = shape_ids[button.macro]
        anchor = _shape_anchor(shape) or _default_anchor(index, first_column)
        ctrl_part = package.new_name("xl/ctrlProps/ctrlProp{}.xml")
        package.parts[ctrl_part] = _CTRL_PROP_XML
        rel_id = package.add_rel(sheet, REL_CTRL_PROP, ctrl_part)
        overrides["/" + ctrl_part] = CT_CTRL_PROP
        name = f"Button {number - 1024}" if number > 1024 else f"Button {index + 1}"
        new_entries.append(
            f'<mc:AlternateContent xmlns:mc="{MC_NS}"><mc:Choice Requires="x14">'
            f'<control shapeId="{number}" r:id="{rel_id}" name="{name}">'
            '<controlPr defaultSize="0" print="0" autoFill="0" autoPict="0" '
            f'macro="[0]!{button.macro}"><anchor moveWithCells="1" sizeWithCells="1">'
            f"{anchor.xdr()}</anchor></controlPr></control></mc:Choice></mc:AlternateContent>"
        )
    package.set_content_types({"vml": CT_VML}, overrides)
    if not kept and not new_entries:
        return xml
    xml = declare_namespaces(xml, "worksheet", {"mc": MC_NS, "x14": X14_NS, "xdr": XDR_NS},
                             label)
    controls = (
        f'<mc:AlternateContent xmlns:mc="{MC_NS}"><mc:Choice Requires="x14"><controls>'
        + "".join(kept + new_entries)
        + "</controls></mc:Choice></mc:AlternateContent>"
    )
    return insert_sheet_child(xml, "controls", controls)


def _drop_orphan_ctrl_props(package: WorkbookParts) -> None:
    """Remove ctrlProp parts no relationship points at (openpyxl, saving with
    ``keep_vba``, keeps the parts but not the relationships to them)."""
    referenced = set()
    for name in list(package.parts):
        if name.endswith(".rels"):
            folder = posixpath.dirname(posixpath.dirname(name))
            source = posixpath.join(folder, posixpath.basename(name)[: -len(".rels")])
            for rel in package.rels(source):
                if rel.get("TargetMode") != "External":
                    referenced.add(resolve(source, rel["Target"]))
    for name in list(package.parts):
        if name.startswith("xl/ctrlProps/") and name not in referenced:
            del package.parts[name]
            package.remove_override("/" + name)


_CTRL_PROP_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<formControlPr xmlns="{X14_NS}" objectType="Button" lockText="1"/>'
).encode()
