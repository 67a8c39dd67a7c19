"""Checks on a workbook file before any of its XML is parsed.

:func:`check_file` refuses, with a one-line message naming the file and the fix:

- anything that is not an Office Open XML zip: an empty file, an old ``.xls`` renamed
  ``.xlsx`` and a password-protected workbook (both OLE2 compound files, told apart by
  their stream names), a binary ``.xlsb``, a Strict Open XML workbook (openpyxl would
  read it as empty and a save would wipe it), any other file;
- a truncated or damaged zip;
- a zip bomb, judged from the zip's own directory before anything is inflated: too many
  parts, a total uncompressed size over a cap, a part that inflates more than a ratio
  cap, a compression method Office never writes, zip-level encryption, duplicate part
  names. The declared sizes cannot lie past these caps: Python's ``zipfile`` stops every
  read at the size the directory declares and fails the CRC check if the data goes on;
- any XML part with a document type declaration (``<!DOCTYPE``). Entities can only be
  declared inside one, so this refuses billion-laughs and external-entity (XXE) parts
  outright. Office Open XML forbids DTDs in a package (ECMA-376 Part 2, OPC), so no
  genuine workbook is refused. Each part's prolog is read by expat, the parser openpyxl
  itself uses, so the check sees the encoding (UTF-8, UTF-16, BOM or none) exactly as
  the later parse will; it stops at the root element, which keeps it cheap.

Behind these checks, the small parts xlstock edits are parsed by lxml with entities
unresolved and no network (:data:`xlstock.workbook.package.XML_PARSER`), and sheets are
read as bytes (:mod:`xlstock.workbook.sheetxml`), so no DTD or entity can act even if
one got past. The checks cost about a millisecond.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import xml.parsers.expat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn
from xml.etree import ElementTree

from xlstock.errors import WorkbookError
from xlstock.i18n import _

MiB = 1024 * 1024

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CD_ENTRY_MIN = 46
"""Bytes of a central-directory entry without its name, extra field and comment."""

CONTENT_TYPES_PART = "[Content_Types].xml"
_STRICT_NS = b"http://purl.oclc.org/ooxml/spreadsheetml/main"
_WORKBOOK_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
    "application/vnd.ms-excel.sheet.macroenabled.main+xml",
    "application/vnd.ms-excel.template.macroenabled.main+xml",
}
_CT_NS = "{http://schemas.openxmlformats.org/package/2006/content-types}"


@dataclass(frozen=True)
class Limits:
    """Caps a workbook file must stay within to be parsed at all."""

    max_file_bytes: int = 256 * MiB
    max_parts: int = 10_000
    max_total_uncompressed: int = 512 * MiB
    max_ratio: float = 200.0
    """Uncompressed over compressed size, for parts of at least ``ratio_min_size``.
    Real sheets stay under 20:1 (a sheet of 2 million zeros: 17:1); zlib's most is
    about 1,030:1."""
    ratio_min_size: int = 1 * MiB
    max_prolog_bytes: int = 1 * MiB
    """Bytes of an XML part read to reach its root element."""


LIMITS = Limits()


@dataclass(frozen=True)
class Package:
    """What :func:`check_file` learned about a workbook package."""

    parts: tuple[str, ...]
    content_types: dict[str, str]
    """Each part's content type (lower case), from ``[Content_Types].xml``."""
    workbook_part: str
    macro_enabled: bool


def check_file(path: str | os.PathLike[str], *, limits: Limits = LIMITS) -> Package:
    """Refuse a file openpyxl must not parse (see the module's docstring); raises
    :class:`WorkbookError` naming the file and the fix. Reads the zip's directory and
    the first bytes of each part, never a whole part."""
    path = Path(path)
    with _reading(path.name):
        size = _checked_size(path, limits)
        with open(path, "rb") as fh:
            return _check_stream(fh, size, path.name, limits)


def read_checked(path: str | os.PathLike[str], *,
                 limits: Limits = LIMITS) -> tuple[bytes, Package]:
    """The file's bytes, read once, and what :func:`check_file` finds in them. Parsing
    these same bytes afterwards leaves no gap between the check and the parse in which
    the file could change."""
    path = Path(path)
    with _reading(path.name):
        _checked_size(path, limits)
        data = path.read_bytes()
        return data, _check_stream(io.BytesIO(data), len(data), path.name, limits)


@contextlib.contextmanager
def _reading(label: str) -> Iterator[None]:
    try:
        yield
    except WorkbookError:
        raise
    except FileNotFoundError as exc:
        raise WorkbookError(_("{label}: no such file", label=label)) from exc
    except PermissionError as exc:
        raise WorkbookError(_("{label} cannot be read: permission denied", label=label)) from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise WorkbookError(damaged_message(label, exc)) from exc
    except OSError as exc:
        raise WorkbookError(_("{label} cannot be read: {detail}", label=label,
                              detail=exc.strerror or exc)) from exc


def _checked_size(path: Path, limits: Limits) -> int:
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        raise WorkbookError(_("{name} is not a file; give the path of an .xlsx workbook",
                              name=path.name))
    if status.st_size > limits.max_file_bytes:
        raise WorkbookError(
            _("{name} is {size} MiB, over xlstock's limit of {limit} MiB for a workbook",
              name=path.name, size=status.st_size // MiB, limit=limits.max_file_bytes // MiB)
        )
    return status.st_size


def _check_stream(fh: IO[bytes], size: int, label: str, limits: Limits) -> Package:
    head = fh.read(8)
    if size == 0:
        raise WorkbookError(_("{label} is empty (0 bytes): it is not a workbook", label=label))
    if head.startswith(OLE2_MAGIC):
        raise WorkbookError(_describe_ole2(fh, label, limits.max_file_bytes))
    if not head.startswith((ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        raise WorkbookError(
            _("{label} is not an .xlsx workbook; if Excel opens it, save it with File > Save As > "
              "Excel Workbook (.xlsx) and try again", label=label)
        )
    _check_directory_size(fh, size, label, limits)
    fh.seek(0)
    with zipfile.ZipFile(fh) as zf:
        return _check_zip(zf, label, limits)


def _is_opendocument(zf: zipfile.ZipFile, names: set[str]) -> bool:
    """An OpenDocument package (LibreOffice's .ods): its ``mimetype`` part says so."""
    if "mimetype" not in names or zf.getinfo("mimetype").file_size > 200:
        return False
    return zf.read("mimetype").startswith(b"application/vnd.oasis.opendocument.")


def damaged_message(label: str, exc: BaseException) -> str:
    """What to say of a package that cannot be read (here, or in ``xlsx_file``)."""
    return _("{label} is damaged ({detail}); if Excel can still open it, save a fresh copy "
             "with File > Save As, or restore it from a backup", label=label, detail=exc)


def _describe_ole2(fh: IO[bytes], label: str, max_bytes: int) -> str:
    """An OLE2 compound file: an encrypted OOXML package or an old binary workbook.
    Stream names are stored in UTF-16LE in the directory; a byte search finds them."""
    names = {
        "encrypted": ("EncryptionInfo".encode("utf-16-le"),
                      "EncryptedPackage".encode("utf-16-le")),
        "xls": ("Workbook\0".encode("utf-16-le"), "Book\0".encode("utf-16-le")),
    }
    overlap = 64
    tail = b""
    found: set[str] = set()
    fh.seek(0)
    while fh.tell() < max_bytes:
        chunk = fh.read(4 * MiB)
        if not chunk:
            break
        data = tail + chunk
        for kind, needles in names.items():
            if any(n in data for n in needles):
                found.add(kind)
        tail = data[-overlap:]
    if "encrypted" in found:
        return _("{label} is password-protected: remove the password in Excel (File > Info > "
                 "Protect Workbook > Encrypt with Password, clear it, save) and try again",
                 label=label)
    if "xls" in found:
        return _("{label} is an old .xls file: open it in Excel and use File > Save As > Excel "
                 "Workbook (.xlsx), then try again with the .xlsx", label=label)
    return _("{label} is an old-format Office file, not an .xlsx workbook; open it in Excel "
             "and save it as Excel Workbook (.xlsx)", label=label)


def _check_directory_size(fh: IO[bytes], size: int, label: str, limits: Limits) -> None:
    """Read the zip's end record ourselves, so that a directory of millions of entries
    is refused before ``zipfile`` builds an object for each."""
    tail_len = min(size, 22 + 65_535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise WorkbookError(
            _("{label} is incomplete or damaged (the end of the file is missing, as after an "
              "interrupted copy or download); restore it from a backup", label=label)
        )
    entries, cd_size = struct.unpack_from("<HI", tail, at + 10)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        locator = at - 20
        if locator >= 0 and tail[locator:locator + 4] == _ZIP64_LOCATOR:
            (eocd64_offset,) = struct.unpack_from("<Q", tail, locator + 8)
            if eocd64_offset + 56 <= size:
                fh.seek(eocd64_offset)
                record = fh.read(56)
                if record[:4] == _ZIP64_EOCD:
                    entries, cd_size = struct.unpack_from("<QQ", record, 32)
    if entries > limits.max_parts or cd_size > limits.max_parts * (_CD_ENTRY_MIN + 1024):
        raise WorkbookError(
            _("{label} holds {entries} parts, more than any workbook xlstock accepts ({limit}); "
              "it may be a zip bomb", label=label, entries=entries, limit=limits.max_parts)
        )


def _check_zip(zf: zipfile.ZipFile, label: str, limits: Limits) -> Package:
    """The package of a zip that is a plain .xlsx workbook, checked in this order: its
    directory (:func:`_check_entries`), an .xlsx at all (:func:`_refuse_other_zip`),
    each part's prolog, its content types, its workbook part, not Strict Open XML."""
    infos = zf.infolist()
    seen = _check_entries(infos, label, limits)
    if CONTENT_TYPES_PART not in seen:
        _refuse_other_zip(zf, seen, label)
    for info in infos:
        if not info.is_dir():
            _check_prolog(zf, info, label, limits)
    content_types = _content_types(zf, infos, label)
    workbook_part = _workbook_part(content_types, seen, label)
    _check_not_strict(zf, workbook_part, label)
    return Package(
        parts=tuple(i.filename for i in infos if not i.is_dir()),
        content_types=content_types,
        workbook_part=workbook_part,
        macro_enabled="macroenabled" in content_types[workbook_part],
    )


def _check_entries(infos: list[zipfile.ZipInfo], label: str, limits: Limits) -> set[str]:
    """The names of the parts, once the zip's directory passed: not too many parts,
    each part once, none encrypted or compressed as Excel never does, no zip bomb (in
    total or part by part), checked part by part in the directory's order."""
    if len(infos) > limits.max_parts:
        raise WorkbookError(
            _("{label} holds {count} parts, more than any workbook xlstock accepts ({limit}); it "
              "may be a zip bomb", label=label, count=len(infos), limit=limits.max_parts)
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        _check_entry(info, seen, label)
        seen.add(info.filename)
        total += info.file_size
        _check_inflation(info, total, label, limits)
    return seen


def _check_entry(info: zipfile.ZipInfo, seen: set[str], label: str) -> None:
    """Refuses a part already ``seen``, an encrypted one, and one stored with a
    compression other than stored or deflated (the two Excel writes)."""
    name = info.filename
    if name in seen:
        raise WorkbookError(_("{label} is damaged: part {part} appears twice", label=label,
                              part=name))
    if info.flag_bits & 0x1:
        raise WorkbookError(
            _("{label} is an encrypted zip, not an Excel workbook; save it from Excel as "
              "Excel Workbook (.xlsx)", label=label)
        )
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise WorkbookError(
            _("{label}: part {part} uses a compression Excel never writes; open the file in "
              "Excel and save it again", label=label, part=name)
        )


def _check_inflation(info: zipfile.ZipInfo, total: int, label: str, limits: Limits) -> None:
    """Refuses a zip bomb: the parts so far inflating to more than the limit in
    ``total``, or this part inflating more times its stored size than a workbook's."""
    if total > limits.max_total_uncompressed:
        raise WorkbookError(
            _("{label} would inflate to more than {limit} MiB, far more than a stock "
              "workbook; it may be a zip bomb", label=label,
              limit=limits.max_total_uncompressed // MiB)
        )
    if (
        info.file_size >= limits.ratio_min_size
        and info.file_size > limits.max_ratio * max(info.compress_size, 1)
    ):
        ratio = info.file_size / max(info.compress_size, 1)
        raise WorkbookError(
            _("{label}: part {part} inflates {ratio:n} times its stored size (a workbook's "
              "parts stay under {limit:n}); it may be a zip bomb", label=label,
              part=info.filename, ratio=round(ratio), limit=round(limits.max_ratio))
        )


def _refuse_other_zip(zf: zipfile.ZipFile, seen: set[str], label: str) -> NoReturn:
    """Refuses a zip without content types, naming what it is when it can tell: a
    binary workbook (.xlsb), an OpenDocument spreadsheet, or some other zip."""
    if "xl/workbook.bin" in seen:
        raise WorkbookError(
            _("{label} is a binary workbook (.xlsb); open it in Excel and save it as Excel "
              "Workbook (.xlsx)", label=label)
        )
    if _is_opendocument(zf, seen):
        raise WorkbookError(
            _("{label} is an OpenDocument spreadsheet (.ods), not an .xlsx workbook; in "
              "LibreOffice use File > Save As > Excel 2007-365 (.xlsx), then try again with "
              "the .xlsx", label=label)
        )
    raise WorkbookError(
        _("{label} is a zip file but not an .xlsx workbook (it has no {part}); "
          "save the workbook from Excel as Excel Workbook (.xlsx)", label=label,
          part=CONTENT_TYPES_PART)
    )


def _workbook_part(content_types: dict[str, str], seen: set[str], label: str) -> str:
    """The part the content types name as the workbook; refused when none is (a binary
    workbook, or an Office file of another kind)."""
    workbook_part = next(
        (p for p, ct in content_types.items() if ct in _WORKBOOK_TYPES), None
    )
    if workbook_part is None:
        if "xl/workbook.bin" in seen:
            raise WorkbookError(
                _("{label} is a binary workbook (.xlsb); open it in Excel and save it as Excel "
                  "Workbook (.xlsx)", label=label)
            )
        raise WorkbookError(
            _("{label} is an Office file but not an Excel workbook; open it in Excel and save it "
              "as Excel Workbook (.xlsx)", label=label)
        )
    return workbook_part


def _check_not_strict(zf: zipfile.ZipFile, workbook_part: str, label: str) -> None:
    """Refuses a workbook saved as Strict Open XML (its workbook part opens in the strict
    namespace), which xlstock cannot keep intact."""
    with zf.open(workbook_part) as src:
        start = src.read(4096)
    if _STRICT_NS in start:
        raise WorkbookError(
            _("{label} is saved as Strict Open XML Spreadsheet, which xlstock cannot keep intact; "
              "in Excel use File > Save As > Excel Workbook (.xlsx)", label=label)
        )


class _Doctype(Exception):
    pass


class _RootReached(Exception):
    pass


def _refuse_doctype(*_args: object) -> None:
    raise _Doctype


def _root_reached(*_args: object) -> None:
    raise _RootReached


def _looks_xml(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels", ".vml"))


def _check_prolog(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str,
                  limits: Limits) -> None:
    """Feed the part to expat up to its root element: refuse a DTD, and an XML-named
    part expat cannot read. A part expat rejects at once is binary (an image, VBA):
    openpyxl's parser would reject it the same way, so no DTD in it can ever act."""
    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.StartElementHandler = _root_reached
    read = 0
    with zf.open(info) as src:
        try:
            while read < limits.max_prolog_bytes:
                chunk = src.read(min(64 * 1024, limits.max_prolog_bytes - read))
                if not chunk:
                    if read:
                        parser.Parse(b"", True)
                    return
                read += len(chunk)
                parser.Parse(chunk, False)
        except _RootReached:
            return
        except _Doctype:
            raise WorkbookError(
                _("{label}: part {part} declares a DTD (<!DOCTYPE>), which no Excel workbook "
                  "contains and which can hide an XML attack; xlstock will not read this file",
                  label=label, part=info.filename)
            ) from None
        except xml.parsers.expat.ExpatError as exc:
            if _looks_xml(info.filename):
                raise WorkbookError(
                    _("{label}: part {part} is not well-formed XML ({detail}); if Excel opens the "
                      "file, save a fresh copy with File > Save As", label=label,
                      part=info.filename, detail=exc)
                ) from None
            return
    raise WorkbookError(
        _("{label}: part {part} has no XML element in its first {size} KiB; xlstock will not read "
          "this file", label=label, part=info.filename, size=limits.max_prolog_bytes // 1024)
    )


def _content_types(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo],
                   label: str) -> dict[str, str]:
    """Part name -> content type (lower case). Runs after the DTD check, on a part
    capped by the zip checks."""
    try:
        root = ElementTree.fromstring(zf.read(CONTENT_TYPES_PART))
    except ElementTree.ParseError as exc:
        raise WorkbookError(
            _("{label}: {part} is damaged ({detail}); save a fresh copy from Excel",
              label=label, part=CONTENT_TYPES_PART, detail=exc)
        ) from None
    defaults: dict[str, str] = {}
    overrides: dict[str, str] = {}
    for node in root:
        content_type = (node.get("ContentType") or "").lower()
        if node.tag == f"{_CT_NS}Default" and node.get("Extension"):
            defaults[node.get("Extension", "").lower()] = content_type
        elif node.tag == f"{_CT_NS}Override" and node.get("PartName"):
            overrides[node.get("PartName", "").lstrip("/").lower()] = content_type
    result: dict[str, str] = {}
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename
        extension = name.rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else ""
        result[name] = overrides.get(name.lower(), defaults.get(extension, ""))
    return result
