"""The three buttons on sheet Stock (:mod:`xlstock.macros.buttons`): Form Control
shapes bound to their macros, as Excel writes them, placed right of the headers, and
kept where the merchant moved them."""

from __future__ import annotations

import re
from pathlib import Path

from defusedxml import ElementTree
from support.vba_craft import parts_of

from xlstock.macros.buttons import apply_buttons, buttons_in_place
from xlstock.macros.package import WorkbookParts
from xlstock.macros.vba_source import BUTTONS

V = "{urn:schemas-microsoft-com:vml}"
X = "{urn:schemas-microsoft-com:office:excel}"
VML = "xl/drawings/vmlDrawing1.vml"
STOCK = "xl/worksheets/sheet1.xml"


def test_three_form_buttons_on_sheet_stock_bound_to_their_macros(xlsm: Path) -> None:
    parts = parts_of(xlsm)
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
    assert len(ctrl_props) == len(BUTTONS)
    for name in ctrl_props:
        prop = ElementTree.fromstring(parts[name])
        assert prop.attrib == {"objectType": "Button", "lockText": "1"}


def test_buttons_moved_by_the_merchant_stay_where_they_are(xlsm: Path) -> None:
    package = WorkbookParts(xlsm.read_bytes(), "stock.xlsm")
    assert buttons_in_place(package, STOCK) == {b.label for b in BUTTONS}
    vml = package.text(VML)
    first = re.search(r"<x:Anchor>([^<]*)</x:Anchor>", vml)
    assert first is not None
    moved = "<x:Anchor>2, 4, 20, 2, 3, 0, 21, 0</x:Anchor>"
    package.parts[VML] = vml.replace(first.group(0), moved, 1).encode()
    apply_buttons(package)
    sheet = package.text(STOCK)
    assert sheet.count("<control ") == len(BUTTONS)
    assert "<xdr:col>2</xdr:col>" in sheet and "<xdr:row>20</xdr:row>" in sheet
    assert buttons_in_place(package, STOCK) == {b.label for b in BUTTONS}


def test_a_control_that_is_not_ours_is_kept(xlsm: Path) -> None:
    package = WorkbookParts(xlsm.read_bytes(), "stock.xlsm")
    theirs = '<control shapeId="2000" r:id="rId99" name="Their box"/>'
    package.parts[STOCK] = package.text(STOCK).replace("<controls>", "<controls>" + theirs,
                                                       1).encode()
    apply_buttons(package)
    sheet = package.text(STOCK)
    assert theirs in sheet and sheet.count("<control ") == len(BUTTONS) + 1


def test_a_sheet_without_buttons_gets_all_three(xlsm: Path) -> None:
    package = WorkbookParts(xlsm.read_bytes(), "stock.xlsm")
    package.parts[STOCK] = re.sub(r"<mc:AlternateContent\b.*</mc:AlternateContent>", "",
                                  package.text(STOCK), flags=re.S).encode()
    assert buttons_in_place(package, STOCK) == set()
    apply_buttons(package)
    assert buttons_in_place(package, STOCK) == {b.label for b in BUTTONS}
    assert package.text(STOCK).count("<control ") == len(BUTTONS)
