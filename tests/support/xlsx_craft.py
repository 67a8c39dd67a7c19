"""Making real .xlsx files for the workbook tests: a merchant's workbook with their own
columns and formatting, and surgery on a package's parts (what Excel writes that
openpyxl does not: cached formula values, DTDs, lying zip headers...)."""

from __future__ import annotations

import datetime as dt
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Font, PatternFill
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation

from xlstock.workbook import layout

SHEET1 = "xl/worksheets/sheet1.xml"
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
)
"""The billion-laughs prolog: ``&lol9;`` expands to 10**9 "lol"s."""


def merchant_workbook(path: Path, rows: int = 3) -> Path:
    """Sheet Stock in a merchant's own order, with a column of their own (Supplier,
    formatted, validated, conditionally formatted), a defined name, widths, a merged
    title on another sheet, a comment and a hyperlink."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    headers = ["Supplier", layout.SKU, layout.PRODUCT, layout.ONLINE, layout.RECEIVED,
               layout.NEW_LEVEL, "Shelf"]
    ws.append(headers)
    for i in range(rows):
        ws.append([f"Acme {i}", f"{i:05d}", f"Product {i}", 10 + i, None, None, f"B{i}"])
    ws["A1"].font = Font(bold=True, color="FFFF0000")
    ws["A2"].fill = PatternFill("solid", start_color="FFDDEEFF", end_color="FFDDEEFF")
    ws["A2"].number_format = "@"
    ws["G2"].comment = Comment("top shelf", "merchant")
    ws["G3"].hyperlink = "https://example.com/shelf"
    ws.column_dimensions["A"].width = 33
    ws.column_dimensions["C"].width = 41
    supplier = DataValidation(type="list", formula1='"Acme 0,Acme 1,Acme 2,Other"')
    supplier.add("A2:A500")
    ws.add_data_validation(supplier)
    ws.conditional_formatting.add(
        "D2:D500",
        CellIsRule(operator="lessThan", formula=["5"], fill=PatternFill(bgColor="FFFFC7CE")),
    )
    wb.defined_names["Suppliers"] = DefinedName("Suppliers", attr_text="Stock!$A$2:$A$500")
    notes = wb.create_sheet("Notes")
    notes["A1"] = "Stock notes"
    notes.merge_cells("A1:D1")
    notes["A3"] = dt.datetime(2025, 3, 1, 9, 30)
    wb.save(path)
    return path


def read_part(path: Path, part: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(part)


def rewrite(path: Path, parts: Mapping[str, bytes | None],
            compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Replace (or with ``None`` delete) parts of the package at ``path``, adding the
    ones it lacks; other parts are copied as they are."""
    with zipfile.ZipFile(path) as zf:
        existing = [(info.filename, zf.read(info)) for info in zf.infolist()]
    names = {name for name, _ in existing}
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in existing:
            new = parts.get(name, data)
            if new is not None:
                zf.writestr(name, new)
        for name, data in parts.items():
            if name not in names and data is not None:
                zf.writestr(name, data)
    return path


def edit_part(path: Path, part: str, pattern: str, replacement: str, count: int = 0) -> Path:
    """Regular-expression edit of one XML part."""
    text = read_part(path, part).decode("utf-8")
    new, done = re.subn(pattern, replacement, text, count=count)
    assert done, f"{pattern!r} not found in {part}"
    return rewrite(path, {part: new.encode("utf-8")})


def add_content_type(path: Path, *, default: tuple[str, str] | None = None,
                     override: tuple[str, str] | None = None) -> Path:
    """Declare an extension's or a part's content type in [Content_Types].xml."""
    entry = ""
    if default:
        entry += f'<Default Extension="{default[0]}" ContentType="{default[1]}"/>'
    if override:
        entry += f'<Override PartName="/{override[0]}" ContentType="{override[1]}"/>'
    return edit_part(path, "[Content_Types].xml", "</Types>", entry + "</Types>")


def set_declared_size(path: Path, part: str, size: int) -> Path:
    """Make the zip's directory (and the part's local header) declare ``size`` as the
    part's uncompressed size, whatever its data really inflates to."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(part)
    local = info.header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, local + 22, size)
    name = part.encode()
    at = data.rfind(b"PK\x01\x02", 0, len(data))
    while at >= 0:
        (name_len,) = struct.unpack_from("<H", data, at + 28)
        if bytes(data[at + 46:at + 46 + name_len]) == name:
            struct.pack_into("<I", data, at + 24, size)
            break
        at = data.rfind(b"PK\x01\x02", 0, at)
    else:
        raise AssertionError(f"{part} not in the central directory")
    path.write_bytes(bytes(data))
    return path


def excel_owner_file(name: str) -> bytes:
    """An Excel owner file (``~$NAME``) as Excel writes it: 165 bytes, the user's name
    in cp1252 at 1 and in UTF-16 at 57."""
    data = bytearray(b" " * 165)
    data[0] = len(name)
    data[1:1 + len(name)] = name.encode("cp1252")
    data[55:57] = len(name).to_bytes(2, "little")
    data[57:57 + 2 * len(name)] = name.encode("utf-16-le")
    return bytes(data)
