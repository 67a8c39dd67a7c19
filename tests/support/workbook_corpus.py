"""The corpus of merchant workbooks that tests/test_workbook_whole.py runs through the
daily loop: real workbooks carrying what xlstock must keep whole (pivot tables, slicers,
charts, pictures, sparklines, extLst content, tables, comments, defined names,
calculation chains, printer settings, custom XML, VBA and buttons), each with sheets
Stock, Settings and Log.

Three origins:

- **Excel** (``excel-*``): the ten Excel-saved workbooks of ``fixtures/excel-corpus``
  with xlstock's sheets added *at the package level* (worksheet parts, relationships,
  content types, ``<sheet>`` entries): re-saving them through openpyxl would destroy what
  they are here for. The sheets' XML is the one ``xlstock new`` writes, without style
  indexes (they would not exist in the target's styles.xml) and without conditional
  formats (their ``dxfId`` would not either); the merchant's rows use style 1, which
  every target has.
- **LibreOffice** (``libreoffice-*``, made headless through UNO from a fresh ``xlstock
  new`` workbook): an autofilter over Stock (LibreOffice then writes an empty drawing
  part), ``=10+2`` typed in Received and ``=D2*2`` in a column of the merchant's, a
  chart, a comment and a conditional format; LibreOffice stores every formula's result.
  One of them (``-fr``) is a French workbook (``xlstock new --lang fr``: sheets Stock,
  Paramètres, Journal; headers Reçu, Nouveau niveau...) with ``=3+4`` typed in Nouveau
  niveau too, so that the same checks hold for a French merchant's file.
- **By construction** (``constructed-*``): an Excel table laid over Stock, an
  autofilter over Stock (both from openpyxl, formulas' saved results put into the XML),
  and the macro workbook ``xlstock new stock.xlsm`` makes (VBA project, three buttons).

Every workbook points at a placeholder service and shop: :func:`point_at` patches sheet
Settings (and nothing else) for a test's own shop. :func:`set_cells` is the merchant's
edit at the package level: it rewrites only the one worksheet part it edits.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.dom import minidom
from xml.etree import ElementTree as ET

from click.testing import CliRunner

from support.office import libreoffice_missing
from support.uno_scripts import run_uno_script, uno_script
from xlstock.cli import main
from xlstock.model import StockItem
from xlstock.workbook import layout
from xlstock.workbook.base import column_letter
from xlstock.workbook.package import rels_part

FIXTURES = Path(__file__).parents[1] / "fixtures" / "excel-corpus"

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
OFFICE_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
WORKSHEET_REL = OFFICE_REL + "/worksheet"
WORKSHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"

XLSTOCK_SHEETS = ("Stock", "Settings", "Log", "Low stock", "_xlstock",
                  *(layout.sheet_text(name, layout.FRENCH) for name in ("Settings", "Log",
                                                                        "Low stock")))
"""The sheets xlstock owns (``_xlstock`` is the hidden state it adds at the first sync),
in English and French. How to (Mode d'emploi) is not among them: no command writes it."""

PLACEHOLDER_SERVICE = "http://127.0.0.1:9"
PLACEHOLDER_SHOP = "https://corpus.shop.example"

CATALOGUE = (
    StockItem("A-1", "Hoodie", "Red / L", 10),
    StockItem("B-2", "Cap", "", 5),
    StockItem("00123", "Socks", "Blue", 3),
    StockItem("N-9", '=HYPERLINK("x")', "<script>&", 4),
)
"""The shop every corpus workbook is synced with. N-9 is new online (on no sheet): the
first sync appends its row, and its name and variant must land as text."""
NEW_ONLINE = "N-9"

MERCHANT_ROWS = (
    ("A-1", "Hoodie", "Red / L", "top shelf"),
    ("B-2", "Cap", None, "back room"),
    ("00123", "Socks", "Blue", "=not a formula"),
)
"""Stock's rows before the first sync (SKU, Product, Variant, Note); Online is 1 in each,
and the merchant's column Double holds ``=D<row>*2`` with its saved result 2."""
STALE_ONLINE = 1
NOTE_COLUMN, DOUBLE_COLUMN = "J", "K"
MERCHANT_STYLE = "1"
"""The style index of the merchant's rows in the Excel workbooks (every one has it)."""


@dataclass(frozen=True)
class FormulaCell:
    """A formula with the result a spreadsheet program saved for it, as a merchant's
    program writes it (``text`` without the leading ``=``)."""

    text: str
    result: int | float | str


@dataclass(frozen=True)
class CorpusWorkbook:
    """One workbook of the corpus: its file name and what it carries."""

    name: str
    origin: str
    carries: str
    rows_before_sync: bool = True
    """Stock holds the merchant's rows (and column Double) before the first sync."""
    received_formula_typed: bool = False
    """Received of A-1 already holds ``=10+2`` with its saved result 12."""
    new_level_formula_typed: bool = False
    """New level of B-2 already holds ``=3+4`` with its saved result 7."""
    language: str = layout.ENGLISH
    """The workbook's language (``xlstock new --lang``): its sheet names and headers."""

    def sheet(self, english: str) -> str:
        """The name this workbook gives the sheet called ``english`` in English."""
        return layout.sheet_text(english, self.language)

    def header(self, english: str) -> str:
        """The text this workbook heads the Stock column ``english`` with."""
        return layout.header_text(english, self.language)

    @property
    def needs_libreoffice(self) -> bool:
        return self.origin == "libreoffice"


_EXCEL_CARRIES = {
    "comments_picture_x14dv": "legacy comments, picture, x14 data validation, printer settings",
    "formulas_names": "six sheets, formulas, defined names (one #REF!), calcChain",
    "monthly_budget": "x14 conditional formats, tables, chart, names, customXml",
    "names_x14dv": "25 defined names, x14 data validation, calcChain",
    "pivot_chart_tables": "pivot table and cache, chart, two tables, calcChain",
    "pivot_slicer": "slicer on a pivot table, workbook extLst",
    "sparklines_charts_pictures": "sparklines, two charts, two pictures, calcChain",
    "table_comments_dv": "table, legacy comments, data validations, manual calculation",
    "table_slicer_chart": "table slicer, chart, workbook extLst",
    "threaded_comments": "threaded comments and persons, calcChain",
}

CORPUS: tuple[CorpusWorkbook, ...] = (
    *(CorpusWorkbook(f"excel-{stem}.xlsx", "excel", carries)
      for stem, carries in sorted(_EXCEL_CARRIES.items())),
    CorpusWorkbook("libreoffice-autofilter.xlsx", "libreoffice",
                   "autofilter over Stock (an empty drawing part), formulas",
                   received_formula_typed=True),
    CorpusWorkbook("libreoffice-chart-comment.xlsx", "libreoffice",
                   "autofilter, formulas, chart on Stock, comment, conditional format",
                   received_formula_typed=True),
    CorpusWorkbook("libreoffice-chart-comment-fr.xlsx", "libreoffice",
                   "French workbook: formulas typed in Reçu and Nouveau niveau, chart on "
                   "Stock, comment, conditional format", received_formula_typed=True,
                   new_level_formula_typed=True, language=layout.FRENCH),
    CorpusWorkbook("constructed-table.xlsx", "openpyxl",
                   "Excel table laid over Stock, formulas with saved results"),
    CorpusWorkbook("constructed-autofilter.xlsx", "openpyxl",
                   "autofilter over Stock, formulas with saved results"),
    CorpusWorkbook("constructed-macros.xlsm", "xlstock new",
                   "VBA project and three buttons, Stock empty before the first sync",
                   rows_before_sync=False),
)
CORPUS_BY_NAME = {entry.name: entry for entry in CORPUS}


# --- the package: parts, relationships, sheets ---------------------------------------------


def q(local: str, ns: str = MAIN) -> str:
    """A Clark-notation name for ElementTree: ``{ns}local``."""
    return f"{{{ns}}}{local}"


def read_parts(path: Path) -> dict[str, bytes]:
    """Every part of the package, in the zip's order."""
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_parts(path: Path, parts: Mapping[str, bytes], *, like: Path | None = None) -> None:
    """Write ``parts`` as the package at ``path``; a part that ``like`` (default: ``path``
    itself, if it exists) holds keeps its zip entry's date and compression."""
    source = like if like is not None else path
    infos: dict[str, zipfile.ZipInfo] = {}
    if source.exists():
        with zipfile.ZipFile(source) as zf:
            infos = {info.filename: info for info in zf.infolist()}
    temporary = path.with_name(path.name + ".writing")
    with zipfile.ZipFile(temporary, "w") as zf:
        for name, data in parts.items():
            old = infos.get(name)
            info = zipfile.ZipInfo(name, date_time=old.date_time if old else (1980, 1, 1, 0, 0, 0))
            info.compress_type = old.compress_type if old else zipfile.ZIP_DEFLATED
            info.external_attr = old.external_attr if old else 0o600 << 16
            zf.writestr(info, data)
    os.replace(temporary, path)


def resolve(source_part: str, target: str) -> str:
    """The part a relationship of ``source_part`` points at."""
    if target.startswith("/"):
        return target[1:]
    return posixpath.normpath(posixpath.join(posixpath.dirname(source_part), target))


@dataclass(frozen=True)
class Relationship:
    id: str
    type: str
    target: str
    """The part it points at (resolved), or the raw target of an external one."""
    external: bool


def relationships(parts: Mapping[str, bytes], part: str) -> list[Relationship]:
    """The relationships of ``part`` (none if it has no relationships part)."""
    data = parts.get(rels_part(part))
    if data is None:
        return []
    found = []
    for rel in ET.fromstring(data).iter(q("Relationship", PACKAGE_REL)):
        external = rel.get("TargetMode") == "External"
        target = rel.get("Target", "")
        found.append(Relationship(rel.get("Id", ""), rel.get("Type", ""),
                                  target if external else resolve(part, target), external))
    return found


def workbook_part(parts: Mapping[str, bytes]) -> str:
    """The workbook part, as the package's root relationships name it."""
    for rel in relationships(parts, ""):
        if rel.type.endswith("/officeDocument"):
            return rel.target
    raise AssertionError("the package has no officeDocument relationship")


def sheet_entries(parts: Mapping[str, bytes]) -> list[dict[str, str]]:
    """The ``<sheet>`` entries of the workbook, in order: name, sheetId, state, part."""
    book = workbook_part(parts)
    by_id = {rel.id: rel.target for rel in relationships(parts, book)}
    entries = []
    for sheet in ET.fromstring(parts[book]).iter(q("sheet")):
        entries.append({
            "name": sheet.get("name", ""), "sheetId": sheet.get("sheetId", ""),
            "state": sheet.get("state", "visible"),
            "part": by_id.get(sheet.get(q("id", OFFICE_REL), ""), ""),
        })
    return entries


def sheet_parts(parts: Mapping[str, bytes]) -> dict[str, str]:
    """Sheet name -> its worksheet part."""
    return {entry["name"]: entry["part"] for entry in sheet_entries(parts)}


def split_ref(ref: str) -> tuple[int, int]:
    """``"K12"`` -> (row 12, column 11)."""
    match = re.fullmatch(r"\$?([A-Z]{1,3})\$?(\d+)", ref)
    assert match, f"not a cell reference: {ref!r}"
    column = 0
    for letter in match.group(1):
        column = column * 26 + ord(letter) - 64
    return int(match.group(2)), column


def split_range(ref: str) -> tuple[int, int, int, int]:
    """``"A1:K5"`` -> (top, left, bottom, right); a single cell is a 1x1 range."""
    first, _, last = ref.replace("$", "").partition(":")
    top, left = split_ref(first)
    bottom, right = split_ref(last or first)
    return top, left, bottom, right


# --- the merchant's edits, at the package level ---------------------------------------------


def set_cells(path: Path, sheet: str, cells: Mapping[str, Any]) -> None:
    """Write ``cells`` (A1 reference -> value) into ``sheet`` as a spreadsheet program
    would: only that worksheet part is rewritten, every other part keeps its bytes.

    A value is ``None`` (the cell is cleared, its style kept), a number, a ``str`` (an
    inline string, always text) or a :class:`FormulaCell`. A cell created here takes
    its column's style; the sheet's dimension grows to cover it."""
    parts = read_parts(path)
    part = sheet_parts(parts)[sheet]
    parts[part] = _patched_sheet(parts[part], cells)
    write_parts(path, parts)


def _patched_sheet(xml: bytes, cells: Mapping[str, Any]) -> bytes:
    document = minidom.parseString(xml)
    root = document.documentElement
    prefix = root.prefix

    def make(local: str) -> minidom.Element:
        return document.createElementNS(MAIN, f"{prefix}:{local}" if prefix else local)

    sheet_data = root.getElementsByTagNameNS(MAIN, "sheetData")[0]
    column_styles = _column_styles(root)
    for ref, value in cells.items():
        row_number, column = split_ref(ref)
        row = _child_in_order(sheet_data, "row", row_number,
                              lambda el: int(el.getAttribute("r")), make)
        if row.hasAttribute("spans"):
            row.removeAttribute("spans")
        cell = _child_in_order(row, "c", column,
                               lambda el: split_ref(el.getAttribute("r"))[1], make)
        if not cell.hasAttribute("r"):
            cell.setAttribute("r", ref)
            if column in column_styles:
                cell.setAttribute("s", column_styles[column])
        _fill(document, cell, value, make)
    for dimension in root.getElementsByTagNameNS(MAIN, "dimension"):
        refs = [c.getAttribute("r") for c in sheet_data.getElementsByTagNameNS(MAIN, "c")]
        if refs:
            rows = [split_ref(r)[0] for r in refs]
            columns = [split_ref(r)[1] for r in refs]
            dimension.setAttribute("ref", f"{column_letter(min(columns))}{min(rows)}:"
                                          f"{column_letter(max(columns))}{max(rows)}")
    return to_bytes(document)


def to_bytes(document: minidom.Document) -> bytes:
    """A minidom document as a part's bytes (prefixes and declarations as they were)."""
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            + document.documentElement.toxml().encode("utf-8"))


def _column_styles(root: minidom.Element) -> dict[int, str]:
    styles = {}
    for col in root.getElementsByTagNameNS(MAIN, "col"):
        if col.getAttribute("style") not in ("", "0"):
            for column in range(int(col.getAttribute("min")), int(col.getAttribute("max")) + 1):
                styles[column] = col.getAttribute("style")
    return styles


def _child_in_order(parent, local, number, number_of, make):
    """The child ``local`` numbered ``number`` (a row, a cell), created in order."""
    after = None
    for child in parent.childNodes:
        if child.nodeType != child.ELEMENT_NODE or child.localName != local:
            continue
        found = number_of(child)
        if found == number:
            return child
        if found > number:
            after = child
            break
    element = make(local)
    if local == "row":
        element.setAttribute("r", str(number))
    parent.insertBefore(element, after)
    return element


def _fill(document, cell, value, make) -> None:
    while cell.firstChild is not None:
        cell.removeChild(cell.firstChild)
    if cell.hasAttribute("t"):
        cell.removeAttribute("t")

    def add(parent, local, text=None):
        child = make(local)
        if text is not None:
            child.appendChild(document.createTextNode(text))
        parent.appendChild(child)
        return child

    if value is None:
        return
    if isinstance(value, FormulaCell):
        add(cell, "f", value.text)
        if isinstance(value.result, str):
            cell.setAttribute("t", "str")
        add(cell, "v", str(value.result))
    elif isinstance(value, str):
        cell.setAttribute("t", "inlineStr")
        text = add(add(cell, "is"), "t", value)
        if value != value.strip():
            text.setAttribute("xml:space", "preserve")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        add(cell, "v", repr(value))
    else:
        raise TypeError(f"cannot write {value!r}")


def point_at(path: Path, service_url: str, shop_url: str) -> None:
    """Sheet Settings (Paramètres in a French workbook) names ``service_url`` and
    ``shop_url`` (B1 and B2)."""
    names = {entry["name"] for entry in sheet_entries(read_parts(path))}
    settings = layout.sheet_text(layout.SETTINGS_SHEET, layout.FRENCH)
    set_cells(path, settings if settings in names else layout.SETTINGS_SHEET,
              {"B1": service_url, "B2": shop_url})


# --- building the corpus --------------------------------------------------------------------


def _xlstock_new(path: Path, language: str = layout.ENGLISH) -> Path:
    result = CliRunner().invoke(
        main, ["new", str(path), "--service", PLACEHOLDER_SERVICE, "--shop", PLACEHOLDER_SHOP,
               "--lang", language],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return path


def _merchant_rows_xml(styled: bool) -> str:
    """Rows 2-4 of Stock: the merchant's products, note and formula, as cell XML."""
    style = f' s="{MERCHANT_STYLE}"' if styled else ""
    rows = []
    for number, (sku, product, variant, note) in enumerate(MERCHANT_ROWS, start=2):
        cells = [f'<c r="A{number}"{style} t="inlineStr"><is><t>{sku}</t></is></c>',
                 f'<c r="B{number}"{style} t="inlineStr"><is><t>{product}</t></is></c>']
        if variant is not None:
            cells.append(f'<c r="C{number}"{style} t="inlineStr"><is><t>{variant}</t></is></c>')
        cells.append(f'<c r="D{number}"{style}><v>{STALE_ONLINE}</v></c>')
        cells.append(f'<c r="{NOTE_COLUMN}{number}"{style} t="inlineStr"><is><t>{note}</t></is>'
                     "</c>")
        cells.append(f'<c r="{DOUBLE_COLUMN}{number}"{style}><f>D{number}*2</f>'
                     f"<v>{STALE_ONLINE * 2}</v></c>")
        rows.append(f'<row r="{number}">{"".join(cells)}</row>')
    return "".join(rows)


def _unstyled(xml: str) -> str:
    """A worksheet of ``xlstock new`` made fit for another workbook's styles.xml: no
    style index, no conditional format (its dxfId), no row format."""
    xml = re.sub(r'(<c\b[^>]*?) s="\d+"', r"\1", xml)
    xml = re.sub(r'(<col\b[^>]*?) style="\d+"', r"\1", xml)
    xml = re.sub(r'(<row\b[^>]*?) (?:s="\d+"|customFormat="\w+")', r"\1", xml)
    return re.sub(r"<conditionalFormatting\b.*?</conditionalFormatting>", "", xml, flags=re.S)


def _stock_for_excel(template_xml: str) -> str:
    """The template's Stock with the merchant's columns Note and Double and rows 2-4."""
    xml = _unstyled(template_xml)
    headers = (f'<c r="{NOTE_COLUMN}1" t="inlineStr"><is><t>Note</t></is></c>'
               f'<c r="{DOUBLE_COLUMN}1" t="inlineStr"><is><t>Double</t></is></c>')
    xml, found = re.subn(r"(<row r=\"1\"[^>]*>.*?)(</row>)", lambda m: m.group(1) + headers
                         + m.group(2), xml, count=1, flags=re.S)
    assert found == 1
    xml = xml.replace("</sheetData>", _merchant_rows_xml(styled=True) + "</sheetData>", 1)
    last = 1 + len(MERCHANT_ROWS)
    return re.sub(r'<dimension ref="[^"]*"', f'<dimension ref="A1:{DOUBLE_COLUMN}{last}"', xml)


def add_xlstock_sheets(source: Path, target: Path, template: Path) -> Path:
    """``source`` (an Excel workbook) with sheets Stock, Settings and Log of ``template``
    (an ``xlstock new`` workbook) added at the end, at the package level: new worksheet
    parts, a relationship and a content-type override for each, a ``<sheet>`` entry in
    the workbook part. Every other part keeps its bytes."""
    parts = read_parts(source)
    template_parts = read_parts(template)
    template_sheets = sheet_parts(template_parts)
    styles = [r.target for r in relationships(parts, workbook_part(parts))
              if r.type.endswith("/styles")]
    xfs = ET.fromstring(parts[styles[0]]).find(q("cellXfs"))
    assert xfs is not None and len(xfs) > int(MERCHANT_STYLE), f"{source.name}: too few styles"

    book = workbook_part(parts)
    book_rels = rels_part(book)
    taken_ids = {r.id for r in relationships(parts, book)}
    taken_sheet_ids = [int(e["sheetId"]) for e in sheet_entries(parts)]
    number = 1
    sheets_xml, rels_xml, types_xml = [], [], []
    for offset, name in enumerate(("Stock", "Settings", "Log")):
        while f"xl/worksheets/sheet{number}.xml" in parts:
            number += 1
        part = f"xl/worksheets/sheet{number}.xml"
        xml = template_parts[template_sheets[name]].decode("utf-8")
        xml = _stock_for_excel(xml) if name == "Stock" else _unstyled(xml)
        parts[part] = xml.encode("utf-8")
        rel_number = 1
        while f"rId{rel_number}" in taken_ids:
            rel_number += 1
        rel_id = f"rId{rel_number}"
        taken_ids.add(rel_id)
        target_ref = posixpath.relpath(part, posixpath.dirname(book))
        rels_xml.append(f'<Relationship Id="{rel_id}" Type="{WORKSHEET_REL}" '
                        f'Target="{target_ref}"/>')
        types_xml.append(f'<Override PartName="/{part}" ContentType="{WORKSHEET_TYPE}"/>')
        sheets_xml.append(f'<sheet name="{name}" sheetId="{max(taken_sheet_ids) + 1 + offset}" '
                          f'r:id="{rel_id}"/>')

    workbook_xml = parts[book].decode("utf-8")
    assert 'xmlns:r="' + OFFICE_REL + '"' in workbook_xml
    workbook_xml, found = re.subn(r"</sheets>", "".join(sheets_xml) + "</sheets>", workbook_xml)
    assert found == 1
    parts[book] = workbook_xml.encode("utf-8")
    parts[book_rels] = parts[book_rels].replace(
        b"</Relationships>", "".join(rels_xml).encode() + b"</Relationships>")
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>", "".join(types_xml).encode() + b"</Types>")
    write_parts(target, parts, like=source)
    return target


def _constructed(folder: Path, template: Path) -> dict[str, Path]:
    """The openpyxl-made workbooks (a table, an autofilter over Stock) and the macro
    workbook of ``xlstock new``."""
    import openpyxl
    from openpyxl.worksheet.table import Table, TableStyleInfo

    made = {}
    last = 1 + len(MERCHANT_ROWS)
    for name in ("constructed-table.xlsx", "constructed-autofilter.xlsx"):
        path = folder / name
        shutil.copyfile(template, path)
        wb = openpyxl.load_workbook(path)
        ws = wb["Stock"]
        ws[f"{NOTE_COLUMN}1"], ws[f"{DOUBLE_COLUMN}1"] = "Note", "Double"
        if name == "constructed-table.xlsx":
            table = Table(displayName="StockTable", ref=f"A1:{DOUBLE_COLUMN}{last}")
            table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
            ws.add_table(table)
        else:
            ws.auto_filter.ref = f"A1:{DOUBLE_COLUMN}{last}"
        wb.save(path)
        set_cells(path, "Stock", _merchant_cells())  # typed as in Excel: the column's style
        made[name] = path
    macros = folder / "constructed-macros.xlsm"
    _xlstock_new(macros)
    made[macros.name] = macros
    return made


def _merchant_cells() -> dict[str, Any]:
    """The merchant's rows 2-4 as cells for :func:`set_cells`."""
    cells: dict[str, Any] = {}
    for number, (sku, product, variant, note) in enumerate(MERCHANT_ROWS, start=2):
        cells.update({f"A{number}": sku, f"B{number}": product, f"C{number}": variant,
                      f"D{number}": STALE_ONLINE, f"{NOTE_COLUMN}{number}": note,
                      f"{DOUBLE_COLUMN}{number}": FormulaCell(f"D{number}*2", STALE_ONLINE * 2)})
    return {ref: value for ref, value in cells.items() if value is not None}


def _libreoffice_base(folder: Path, template: Path, language: str) -> Path:
    """``template`` (an ``xlstock new`` workbook) with the merchant's rows, as openpyxl
    writes it: the file LibreOffice opens."""
    import openpyxl

    base = folder / f"libreoffice-base-{language}.xlsx"
    shutil.copyfile(template, base)
    wb = openpyxl.load_workbook(base)
    ws = wb["Stock"]
    ws[f"{NOTE_COLUMN}1"], ws[f"{DOUBLE_COLUMN}1"] = "Note", "Double"
    for number, (sku, product, variant, note) in enumerate(MERCHANT_ROWS, start=2):
        ws.cell(number, 1).value, ws.cell(number, 2).value = sku, product
        ws.cell(number, 3).value, ws.cell(number, 4).value = variant, STALE_ONLINE
        ws[f"{NOTE_COLUMN}{number}"] = note
        ws[f"{NOTE_COLUMN}{number}"].data_type = "s"
    wb.save(base)
    return base


def _libreoffice(folder: Path, templates: Mapping[str, Path], profile: Path) -> dict[str, Path]:
    """The workbooks LibreOffice makes from ``templates`` (language -> an ``xlstock new``
    workbook) with the merchant's rows; what it types and adds per workbook is ``add``."""
    bases = {language: _libreoffice_base(folder, template, language)
             for language, template in templates.items()}
    jobs = {
        "libreoffice-autofilter.xlsx": [],
        "libreoffice-chart-comment.xlsx": ["chart", "comment", "conditional format"],
        "libreoffice-chart-comment-fr.xlsx": ["new level formula", "chart", "comment",
                                              "conditional format"],
    }
    answers = run_uno(profile, folder, [
        {"build": bases[CORPUS_BY_NAME[name].language].resolve().as_uri(),
         "store": (folder / name).resolve().as_uri(), "add": add}
        for name, add in jobs.items()
    ])
    for base in bases.values():
        base.unlink()
    failed = [answer["error"] for answer in answers if "error" in answer]
    assert not failed, f"LibreOffice could not build the corpus: {failed}"
    return {name: folder / name for name in jobs}


def build_corpus(folder: Path, *, profile: Path | None = None) -> dict[str, Path]:
    """Make every workbook of :data:`CORPUS` in ``folder``; name -> path. The
    LibreOffice-made ones are left out when LibreOffice (or its UNO bridge) is missing;
    ``profile`` is the LibreOffice user profile to use (and reuse)."""
    folder.mkdir(parents=True, exist_ok=True)
    template = _xlstock_new(folder / "template.xlsx")
    made: dict[str, Path] = {}
    for entry in CORPUS:
        if entry.origin == "excel":
            source = FIXTURES / (entry.name.removeprefix("excel-"))
            made[entry.name] = add_xlstock_sheets(source, folder / entry.name, template)
    made.update(_constructed(folder, template))
    if libreoffice_missing() is None:
        templates = {layout.ENGLISH: template,
                     layout.FRENCH: _xlstock_new(folder / "template-fr.xlsx", layout.FRENCH)}
        made.update(_libreoffice(folder, templates, profile or folder / "lo-profile"))
    return made


# --- LibreOffice through UNO ----------------------------------------------------------------


UNO_SCRIPT = uno_script(r'''
from com.sun.star.awt import Rectangle
from com.sun.star.table import CellAddress, CellRangeAddress

jobs = json.load(open(ARGS[0]))
FORMULA = 16  # com.sun.star.sheet.CellFlags.FORMULA


def area(sheet, left, top, right, bottom):
    a = CellRangeAddress()
    a.Sheet, a.StartColumn, a.StartRow, a.EndColumn, a.EndRow = sheet, left, top, right, bottom
    return a


def build(desktop, job):
    """The merchant's work in LibreOffice: formulas, an autofilter and more, saved as xlsx."""
    doc = desktop.loadComponentFromURL(job["build"], "_blank", 0, (prop("Hidden", True),))
    try:
        index = list(doc.Sheets.getElementNames()).index("Stock")
        sheet = doc.Sheets.getByName("Stock")
        sheet.getCellRangeByName("E2").setFormula("=10+2")
        if "new level formula" in job["add"]:
            sheet.getCellRangeByName("F3").setFormula("=3+4")
        for row in (2, 3, 4):
            sheet.getCellRangeByName("K%d" % row).setFormula("=D%d*2" % row)
        unnamed = doc.getPropertyValue("UnnamedDatabaseRanges")
        unnamed.setByTable(area(index, 0, 0, 10, 3))
        unnamed.getByTable(index).AutoFilter = True
        if "chart" in job["add"]:
            frame = Rectangle()
            frame.X, frame.Y, frame.Width, frame.Height = 2000, 3000, 8000, 5000
            sheet.Charts.addNewByName("Levels", frame, (area(index, 3, 0, 3, 3),), True, False)
        if "comment" in job["add"]:
            at = CellAddress()
            at.Sheet, at.Column, at.Row = index, 1, 1
            sheet.Annotations.insertNew(at, "best seller")
        if "conditional format" in job["add"]:
            from com.sun.star.sheet.ConditionOperator import LESS_EQUAL
            target = sheet.getCellRangeByName("D2:D4")
            formats = target.ConditionalFormat
            formats.addNew((prop("Operator", LESS_EQUAL), prop("Formula1", "2"),
                            prop("StyleName", "Bad")))
            target.ConditionalFormat = formats
        doc.calculateAll()
        doc.storeToURL(job["store"], (prop("FilterName", "Calc MS Excel 2007 XML"),))
        return {"stored": job["store"]}
    finally:
        doc.close(True)


def inspect(desktop, job):
    """What LibreOffice shows of a workbook: per sheet the charts, shapes, pivot tables
    and comments; sheet Stock's values, and its formulas with the values shown."""
    doc = desktop.loadComponentFromURL(job["inspect"], "_blank", 0, (prop("Hidden", True),))
    try:
        found = {"sheets": {}, "stock": None, "stock_formulas": {}, "stock_text": {}}
        for name in doc.Sheets.getElementNames():
            sheet = doc.Sheets.getByName(name)
            found["sheets"][name] = {
                "charts": sheet.Charts.getCount(),
                "shapes": sheet.DrawPage.getCount(),
                "pivot tables": sheet.DataPilotTables.getCount(),
                "comments": sheet.Annotations.getCount(),
            }
        if doc.Sheets.hasByName("Stock"):
            sheet = doc.Sheets.getByName("Stock")
            cursor = sheet.createCursor()
            cursor.gotoEndOfUsedArea(False)
            end = cursor.getRangeAddress()
            grid = sheet.getCellRangeByPosition(0, 0, end.EndColumn, end.EndRow).getDataArray()
            found["stock"] = [list(row) for row in grid]
            cells = sheet.queryContentCells(FORMULA).getCells().createEnumeration()
            while cells.hasMoreElements():
                cell = cells.nextElement()
                a = cell.CellAddress
                ref = "%s%d" % (chr(65 + a.Column), a.Row + 1)
                found["stock_formulas"][ref] = [cell.getFormula(), cell.getValue(),
                                                cell.getString()]
        return found
    finally:
        doc.close(True)



results = []
with libreoffice() as (ctx, desktop):
    for job in jobs:
        try:
            results.append(build(desktop, job) if "build" in job else inspect(desktop, job))
        except Exception as exc:
            results.append({"error": "%s: %s" % (type(exc).__name__, exc)})
print(json.dumps(results))
''')


def run_uno(profile: Path, workdir: Path, jobs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``jobs`` (``{"build": url, "store": url, "add": [...]}`` or ``{"inspect":
    url}``) in one headless LibreOffice session with the user profile ``profile``; one
    result per job (``{"error": ...}`` for a job that failed)."""
    jobs = list(jobs)
    workdir.mkdir(parents=True, exist_ok=True)
    jobs_file = workdir / f"jobs-{uuid.uuid4().hex[:8]}.json"
    jobs_file.write_text(json.dumps(jobs), encoding="utf-8")
    answers = run_uno_script(UNO_SCRIPT, workdir, profile, str(jobs_file), timeout=240,
                             name="xlstock_uno.py")
    assert len(answers) == len(jobs)
    return answers
