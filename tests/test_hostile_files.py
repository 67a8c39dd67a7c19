"""Hostile workbooks (issue 5, point 2), generated here into a corpus. Each must be
refused with a one-line WorkbookError naming the file and the problem, within seconds,
without exhausting the process, leaving the file as it was and no temporary files."""

from __future__ import annotations

import base64
import io
import os
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import msoffcrypto
import olefile
import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from openpyxl import Workbook
from support.xlsx_craft import LAUGHS, SHEET1, edit_part, read_part, rewrite, set_declared_size

from xlstock.errors import SheetError, WorkbookError, XlstockError
from xlstock.macros.cfb import write_compound_file
from xlstock.workbook import layout, safety
from xlstock.workbook.template import workbook_bytes
from xlstock.workbook.xlsx_file import XlsxFile

SECONDS = 5.0
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _template(folder: Path, name: str = "stock.xlsx") -> Path:
    path = folder / name
    path.write_bytes(workbook_bytes())
    return path


def _sheet_with(body: str, prolog: str = "") -> bytes:
    return (
        f'{prolog}<worksheet xmlns="{MAIN_NS}"><sheetData><row r="1">{body}</row></sheetData>'
        "</worksheet>"
    ).encode()


def billion_laughs_in_a_sheet(folder: Path) -> Path:
    path = _template(folder)
    sheet = _sheet_with('<c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c>', LAUGHS)
    return rewrite(path, {SHEET1: sheet})


def billion_laughs_in_content_types(folder: Path) -> Path:
    path = _template(folder)
    types = read_part(path, "[Content_Types].xml").decode()
    return rewrite(path, {"[Content_Types].xml": (LAUGHS + types).encode()})


def external_entity(folder: Path) -> Path:
    path = _template(folder)
    sheet = _sheet_with('<c r="A1" t="inlineStr"><is><t>&xxe;</t></is></c>',
                        '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY xxe SYSTEM '
                        '"file:///etc/passwd">]>')
    return rewrite(path, {SHEET1: sheet})


def external_dtd(folder: Path) -> Path:
    path = _template(folder)
    workbook = read_part(path, "xl/workbook.xml").decode()
    return rewrite(path, {"xl/workbook.xml": (
        '<!DOCTYPE workbook SYSTEM "http://127.0.0.1:9/evil.dtd">' + workbook).encode()})


def doctype_in_utf16(folder: Path) -> Path:
    path = _template(folder)
    sheet = _sheet_with('<c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c>',
                        LAUGHS.replace('version="1.0"', 'version="1.0" encoding="UTF-16"'))
    return rewrite(path, {SHEET1: sheet.decode().encode("utf-16")})


def doctype_behind_a_long_comment(folder: Path) -> Path:
    path = _template(folder)
    sheet = _sheet_with('<c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c>',
                        "<!--" + base64.b64encode(os.urandom(2 * safety.MiB)).decode() + "-->"
                        + LAUGHS.split("\n", 1)[1])
    return rewrite(path, {SHEET1: sheet})


def zip_bomb_ratio(folder: Path) -> Path:
    path = _template(folder)
    sheet = read_part(path, SHEET1) + b"<!--" + b" " * (64 * safety.MiB) + b"-->"
    return rewrite(path, {SHEET1: sheet})


def zip_bomb_declared_size(folder: Path) -> Path:
    return set_declared_size(_template(folder), SHEET1, 600 * safety.MiB)


def part_longer_than_declared(folder: Path) -> Path:
    path = _template(folder)
    rewrite(path, {SHEET1: read_part(path, SHEET1) + b"<!--" + b"x" * 100_000 + b"-->"})
    return set_declared_size(path, SHEET1, 200)


def too_many_parts(folder: Path) -> Path:
    path = _template(folder)
    with zipfile.ZipFile(path, "a") as zf:
        for i in range(safety.LIMITS.max_parts + 1):
            zf.writestr(f"customXml/junk{i}.xml", b"<a/>")
    return path


def far_cell(folder: Path) -> Path:
    path = _template(folder)
    sheet = (
        f'<worksheet xmlns="{MAIN_NS}"><dimension ref="A1:XFD1048576"/><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>SKU</t></is></c></row>'
        '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData></worksheet>'
    ).encode()
    return rewrite(path, {SHEET1: sheet})


def far_column(folder: Path) -> Path:
    path = _template(folder)
    sheet = _sheet_with('<c r="A1" t="inlineStr"><is><t>SKU</t></is></c><c r="XFD1"><v>1</v></c>')
    return rewrite(path, {SHEET1: sheet})


def not_a_zip(folder: Path) -> Path:
    path = folder / "stock.xlsx"
    path.write_text("SKU,Online\nA-1,5\n")
    return path


def empty_file(folder: Path) -> Path:
    path = folder / "stock.xlsx"
    path.write_bytes(b"")
    return path


def truncated(folder: Path) -> Path:
    path = _template(folder)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def truncated_by_a_few_bytes(folder: Path) -> Path:
    path = _template(folder)
    path.write_bytes(path.read_bytes()[:-5])
    return path


def password_protected(folder: Path) -> Path:
    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(workbook_bytes())).encrypt(
        "secret", encrypted)
    path = folder / "stock.xlsx"
    path.write_bytes(encrypted.getvalue())
    return path


def old_xls_renamed(folder: Path) -> Path:
    path = folder / "stock.xlsx"
    path.write_bytes(write_compound_file({"Workbook": b"\x09\x08" + b"\0" * 5000,
                                          "\x05SummaryInformation": b"\0" * 200}))
    return path


def word_97_renamed(folder: Path) -> Path:
    path = folder / "stock.xlsx"
    path.write_bytes(write_compound_file({"WordDocument": b"\0" * 5000}))
    return path


def xlsb_renamed(folder: Path) -> Path:
    path = folder / "stock.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("[Content_Types].xml", (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/xl/workbook.bin" ContentType="application/'
            'vnd.ms-excel.sheet.binary.macroEnabled.main"/></Types>'))
        zf.writestr("xl/workbook.bin", b"\x83\x01\x00")
    return path



def plain_zip(folder: Path) -> Path:
    path = folder / "stock.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "photos of the shop")
    return path

def ods_renamed(folder: Path) -> Path:
    path = folder / "stock.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", "<office:document-content/>")
    return path


def docx_renamed(folder: Path) -> Path:
    path = folder / "stock.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("[Content_Types].xml", (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'))
        zf.writestr("word/document.xml", "<w:document/>")
    return path


def strict_open_xml(folder: Path) -> Path:
    return edit_part(_template(folder), "xl/workbook.xml",
                     r"http://schemas\.openxmlformats\.org/spreadsheetml/2006/main",
                     "http://purl.oclc.org/ooxml/spreadsheetml/main")


def malformed_xml_prolog(folder: Path) -> Path:
    return rewrite(_template(folder), {"xl/styles.xml": b"<?xml version='1.0'?>\n<<styles/>"})


def malformed_xml_body(folder: Path) -> Path:
    return rewrite(_template(folder), {"xl/styles.xml": b"<styleSheet><fonts></styleSheet>"})


def duplicate_part(folder: Path) -> Path:
    path = _template(folder)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it writes
        zf.writestr(SHEET1, _sheet_with('<c r="A1"><v>1</v></c>'))
    return path


def unusual_compression(folder: Path) -> Path:
    return rewrite(_template(folder), {}, compression=zipfile.ZIP_BZIP2)


def encrypted_zip_entry(folder: Path) -> Path:
    path = _template(folder)
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    data[at + 8] |= 0x01  # general purpose flag: encrypted
    path.write_bytes(bytes(data))
    return path


def stock_without_header(folder: Path) -> Path:
    wb = Workbook()
    wb.active.title = "Stock"
    wb.active.append(["A-1", "Hoodie", "", 5])
    path = folder / "stock.xlsx"
    wb.save(path)
    return path


def duplicate_headers(folder: Path) -> Path:
    wb = Workbook()
    wb.active.title = "Stock"
    wb.active.append([*layout.STOCK_HEADERS, " online "])
    path = folder / "stock.xlsx"
    wb.save(path)
    return path


CORPUS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "billion laughs in a sheet": (billion_laughs_in_a_sheet, "declares a DTD"),
    "billion laughs in [Content_Types].xml": (billion_laughs_in_content_types,
                                              "declares a DTD"),
    "external entity (XXE)": (external_entity, "declares a DTD"),
    "external DTD": (external_dtd, "declares a DTD"),
    "DTD in a UTF-16 part": (doctype_in_utf16, "declares a DTD"),
    "DTD behind a 2 MiB comment": (doctype_behind_a_long_comment, "no XML element"),
    "zip bomb: compression ratio": (zip_bomb_ratio, "may be a zip bomb"),
    "zip bomb: total size": (zip_bomb_declared_size, "may be a zip bomb"),
    "part inflating past its declared size": (part_longer_than_declared, "is damaged"),
    "too many parts": (too_many_parts, "may be a zip bomb"),
    "a value at XFD1048576": (far_cell, "has a value at XFD1048576"),
    "a value at XFD1": (far_column, "has a value at XFD1,"),
    "not a zip": (not_a_zip, "is not an .xlsx workbook"),
    "empty file": (empty_file, "is empty"),
    "truncated": (truncated, "incomplete or damaged"),
    "truncated by a few bytes": (truncated_by_a_few_bytes, "incomplete or damaged"),
    "password-protected": (password_protected, "is password-protected: remove the password"),
    "old .xls renamed .xlsx": (old_xls_renamed, "is an old .xls file"),
    "Word 97 file renamed .xlsx": (word_97_renamed, "old-format Office file"),
    ".xlsb renamed .xlsx": (xlsb_renamed, "binary workbook (.xlsb)"),
    ".ods renamed .xlsx": (ods_renamed, "OpenDocument spreadsheet (.ods), not an .xlsx"),
    "a zip of something else": (plain_zip, "is a zip file but not an .xlsx workbook (it has "
                                           "no [Content_Types].xml)"),
    ".docx renamed .xlsx": (docx_renamed, "not an Excel workbook"),
    "Strict Open XML": (strict_open_xml, "Strict Open XML"),
    "malformed XML before the root element": (malformed_xml_prolog, "not well-formed XML"),
    "malformed XML in the body": (malformed_xml_body, "could not read the workbook"),
    "duplicate part name": (duplicate_part, "appears twice"),
    "bzip2-compressed part": (unusual_compression, "compression Excel never writes"),
    "encrypted zip entry": (encrypted_zip_entry, "encrypted zip"),
    "Stock sheet without its header": (stock_without_header, "has no column headed"),
    "duplicate headers": (duplicate_headers, "are both headed 'Online'"),
}


def _use(path: Path) -> None:
    """What a sync does first: open, read every sheet, find the Stock columns."""
    with XlsxFile.open(path) as book:
        for name in book.sheet_names():
            book.read_sheet(name)
        layout.read_stock(book)


@pytest.mark.parametrize("case", list(CORPUS))
def test_hostile_workbook_is_refused_safely(case: str, tmp_path: Path) -> None:
    make, expected = CORPUS[case]
    path = make(tmp_path)
    before = path.read_bytes()
    started = time.perf_counter()
    with pytest.raises(XlstockError) as caught:
        _use(path)
    elapsed = time.perf_counter() - started
    error = caught.value
    expected_type = SheetError if "header" in case else WorkbookError
    assert isinstance(error, expected_type), repr(error)
    message = str(error)
    assert expected in message
    assert "\n" not in message and "Traceback" not in message
    assert "stock.xlsx" in message or "sheet Stock" in message
    assert elapsed < SECONDS, f"{case} took {elapsed:.1f} s"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stock.xlsx"]


def test_the_corpus_is_what_it_claims(tmp_path: Path) -> None:
    """The generated files really are the hostile things named (checked with tools
    other than xlstock's own)."""
    encrypted = password_protected(tmp_path)
    with encrypted.open("rb") as fh:
        assert msoffcrypto.OfficeFile(fh).is_encrypted()
    xls = old_xls_renamed(tmp_path)
    assert olefile.isOleFile(str(xls))
    with olefile.OleFileIO(str(xls)) as ole:
        assert ole.exists("Workbook")
    bomb = zip_bomb_ratio(tmp_path)
    with zipfile.ZipFile(bomb) as zf:
        info = zf.getinfo(SHEET1)
    assert info.file_size > 500 * info.compress_size
    laughs = read_part(billion_laughs_in_a_sheet(tmp_path), SHEET1)
    assert b"<!ENTITY lol9" in laughs


def test_caps_are_configurable_and_apply_to_the_total(tmp_path: Path) -> None:
    path = _template(tmp_path)
    with zipfile.ZipFile(path) as zf:
        total = sum(i.file_size for i in zf.infolist())
    safety.check_file(path, limits=safety.Limits(max_total_uncompressed=total))
    with pytest.raises(WorkbookError, match="would inflate to more than"):
        safety.check_file(path, limits=safety.Limits(max_total_uncompressed=total - 1))
    with pytest.raises(WorkbookError, match="over xlstock's limit"):
        safety.check_file(path, limits=safety.Limits(max_file_bytes=1000))


def test_a_genuine_workbook_passes_every_check(tmp_path: Path) -> None:
    package = safety.check_file(_template(tmp_path))
    assert package.workbook_part == "xl/workbook.xml"
    assert not package.macro_enabled
    assert package.content_types[SHEET1].endswith("worksheet+xml")
