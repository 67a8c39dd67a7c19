"""A VBA project (``vbaProject.bin``) written from source, per [MS-OVBA].

No Excel is needed: the project carries source code only. Its ``_VBA_PROJECT``
stream is the seven bytes the specification prescribes for writers (version
``0xFFFF``, no performance cache), and each module stream holds the compressed
source at offset 0, so Office compiles the modules from source when it opens the
file. Pieces:

- :func:`compress` / :func:`decompress`: the MS-OVBA 2.4.1 run-length/LZ77 scheme used
  by the ``dir`` stream and every module stream;
- :func:`encrypt_project_data` / :func:`decrypt_project_data`: the 2.4.3 data
  "encryption" that hides the ``CMG``, ``DPB`` and ``GC`` values of the PROJECT stream;
- :func:`build_vba_project`: the whole compound file for a list of :class:`VbaModule`.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from xlstock.workbook.vba.cfb import write_compound_file

CHUNK = 4096
_CHUNK_SIGNATURE = 0b011 << 12
_CHUNK_COMPRESSED = 0x8000


def _copy_token_split(position_in_chunk: int) -> tuple[int, int]:
    """Bit count of the offset field, and the largest length, for a copy token written
    when ``position_in_chunk`` bytes of the chunk have been decompressed (2.4.1.3.19.1)."""
    bit_count = max((position_in_chunk - 1).bit_length(), 4)
    return bit_count, (0xFFFF >> bit_count) + 3


def _compress_chunk(data: bytes, start: int, end: int) -> bytes:
    """One CompressedChunk (header included) for ``data[start:end]`` (2.4.1.3.7)."""
    out = bytearray()
    candidates: dict[bytes, list[int]] = {}
    indexed = start
    current = start
    while current < end:
        flag_index = len(out)
        out.append(0)
        flags = 0
        for bit in range(8):
            if current >= end:
                break
            while indexed < current:
                if indexed + 3 <= end:
                    candidates.setdefault(data[indexed : indexed + 3], []).append(indexed)
                indexed += 1
            _, max_length = _copy_token_split(current - start)
            best_length, best_position = 0, 0
            if current + 3 <= end:
                for position in reversed(candidates.get(data[current : current + 3], ())):
                    length = 3
                    limit = min(max_length, end - current)
                    while length < limit and data[position + length] == data[current + length]:
                        length += 1
                    if length > best_length:
                        best_length, best_position = length, position
                        if length == limit:
                            break
            if best_length >= 3:
                bit_count, _ = _copy_token_split(current - start)
                offset = current - best_position
                token = ((offset - 1) << (16 - bit_count)) | (best_length - 3)
                out += struct.pack("<H", token)
                flags |= 1 << bit
                current += best_length
            else:
                out.append(data[current])
                current += 1
        out[flag_index] = flags
    if len(out) > CHUNK:
        raw = data[start:end] + b"\0" * (CHUNK - (end - start))
        return struct.pack("<H", (CHUNK - 1) | _CHUNK_SIGNATURE) + raw
    header = (len(out) + 2 - 3) | _CHUNK_SIGNATURE | _CHUNK_COMPRESSED
    return struct.pack("<H", header) + bytes(out)


def compress(data: bytes) -> bytes:
    """Compress ``data`` into an MS-OVBA CompressedContainer (2.4.1.3.6).

    Follows the specification's matching rule (the longest match; of equal ones,
    the nearest), so its output for the specification's own examples is byte-equal
    to theirs. A chunk that would not shrink is stored raw, as the specification
    says, padded to 4,096 bytes; VBA source text never comes near that."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), CHUNK):
        out += _compress_chunk(data, start, min(start + CHUNK, len(data)))
    return bytes(out)


def decompress(container: bytes) -> bytes:
    """Decompress an MS-OVBA CompressedContainer (2.4.1.3.1). Raises ``ValueError``
    for a bad signature or a chunk that runs past the data."""
    if not container or container[0] != 0x01:
        raise ValueError("not an MS-OVBA compressed container (first byte must be 0x01)")
    out = bytearray()
    position = 1
    while position < len(container):
        if position + 2 > len(container):
            raise ValueError(f"truncated chunk header at byte {position}")
        (header,) = struct.unpack_from("<H", container, position)
        if header & 0x7000 != _CHUNK_SIGNATURE:
            raise ValueError(f"bad chunk signature at byte {position}")
        chunk_end = position + (header & 0x0FFF) + 3
        if chunk_end > len(container) and header & _CHUNK_COMPRESSED:
            raise ValueError(f"chunk at byte {position} runs past the end of the data")
        position += 2
        chunk_start = len(out)
        if not header & _CHUNK_COMPRESSED:
            raw = container[position : position + CHUNK]
            if len(raw) != CHUNK:
                raise ValueError(f"raw chunk at byte {position - 2} is shorter than 4096 bytes")
            out += raw
            position += CHUNK
            continue
        while position < chunk_end:
            flags = container[position]
            position += 1
            for bit in range(8):
                if position >= chunk_end:
                    break
                if not flags & (1 << bit):
                    out.append(container[position])
                    position += 1
                    continue
                if position + 2 > chunk_end:
                    raise ValueError(f"truncated copy token at byte {position}")
                (token,) = struct.unpack_from("<H", container, position)
                position += 2
                bit_count, _ = _copy_token_split(len(out) - chunk_start)
                length = (token & (0xFFFF >> bit_count)) + 3
                offset = (token >> (16 - bit_count)) + 1
                if offset > len(out) - chunk_start:
                    raise ValueError(f"copy token at byte {position - 2} reaches before its chunk")
                source = len(out) - offset
                for index in range(length):
                    out.append(out[source + index])
    return bytes(out)


def _project_key(project_id: str) -> int:
    return sum(project_id.encode("ascii")) & 0xFF


def encrypt_project_data(data: bytes, project_id: str, seed: int) -> str:
    """Hex text of ``data`` encrypted per 2.4.3.2 for the PROJECT stream's ``CMG``,
    ``DPB`` and ``GC`` keys. ``seed`` (0-255) replaces the random seed so that the
    same project always gives the same bytes."""
    version = 2
    key = _project_key(project_id)
    out = bytearray([seed & 0xFF, (seed ^ version) & 0xFF, (seed ^ key) & 0xFF])
    unencrypted_1, encrypted_1, encrypted_2 = key, out[2], out[1]
    ignored = (seed & 6) // 2
    for value in b"\x00" * ignored + struct.pack("<I", len(data)) + data:
        encrypted = value ^ ((encrypted_2 + unencrypted_1) & 0xFF)
        out.append(encrypted)
        encrypted_2, encrypted_1, unencrypted_1 = encrypted_1, encrypted, value
    return out.hex().upper()


def decrypt_project_data(text: str, project_id: str | None = None) -> bytes:
    """Inverse of :func:`encrypt_project_data` (2.4.3.3). Raises ``ValueError`` when
    the version byte or the length is wrong, or the key does not match ``project_id``."""
    raw = bytes.fromhex(text)
    if len(raw) < 7:
        raise ValueError("encrypted project data is too short")
    seed, version_enc, key_enc = raw[0], raw[1], raw[2]
    if seed ^ version_enc != 2:
        raise ValueError("encrypted project data has a wrong version byte")
    key = seed ^ key_enc
    if project_id is not None and key != _project_key(project_id):
        raise ValueError("encrypted project data was made for another project ID")
    unencrypted_1, encrypted_1, encrypted_2 = key, key_enc, version_enc
    plain = bytearray()
    for value in raw[3:]:
        byte = value ^ ((encrypted_2 + unencrypted_1) & 0xFF)
        plain.append(byte)
        encrypted_2, encrypted_1, unencrypted_1 = encrypted_1, value, byte
    ignored = (seed & 6) // 2
    (length,) = struct.unpack_from("<I", plain, ignored)
    data = bytes(plain[ignored + 4 :])
    if len(data) != length:
        raise ValueError("encrypted project data has a wrong length")
    return data


@dataclass(frozen=True)
class VbaModule:
    """One module of the project. ``source`` is the module's text as VBA stores it,
    ``Attribute VB_Name`` line first, lines ending in CRLF. ``kind`` is ``"document"``
    for ThisWorkbook and the sheet modules, ``"class"`` for class modules and
    ``"procedural"`` for standard modules."""

    name: str
    source: str
    kind: Literal["document", "class", "procedural"] = "procedural"


CLASS_BASE = "0{FCFB3D2A-A0FA-1068-A738-08002B3371B5}"
"""``VB_Base`` that the VBA editor gives a class module when it imports a ``.cls`` file."""

DOCUMENT_BASES = {
    "workbook": "0{00020819-0000-0000-C000-000000000046}",
    "worksheet": "0{00020820-0000-0000-C000-000000000046}",
}
"""``VB_Base`` class IDs of Excel's Workbook and Worksheet document modules."""


def class_module_from_export(text: str) -> VbaModule:
    """A class module from the text of an exported ``.cls`` file, stored the way the
    VBA editor stores an imported one: the ``VERSION``/``BEGIN``...``END`` header
    dropped, ``VB_Base``, ``VB_TemplateDerived`` and ``VB_Customizable`` added."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].startswith("VERSION "):
        try:
            lines = lines[lines.index("END") + 1 :]
        except ValueError as exc:
            raise ValueError("exported class has a VERSION header without END") from exc
    if not lines or not lines[0].startswith('Attribute VB_Name = "'):
        raise ValueError("exported class does not start with its Attribute VB_Name line")
    name = lines[0].split('"')[1]
    body = [lines[0], f'Attribute VB_Base = "{CLASS_BASE}"']
    for line in lines[1:]:
        body.append(line)
        if line.startswith("Attribute VB_Exposed = "):
            body += ["Attribute VB_TemplateDerived = False", "Attribute VB_Customizable = False"]
    return VbaModule(name, "\r\n".join(body), "class")


def document_module(name: str, base: Literal["workbook", "worksheet"]) -> VbaModule:
    """An empty document module (``ThisWorkbook`` or a sheet's code name), with the
    attribute lines Excel writes for one."""
    lines = [
        f'Attribute VB_Name = "{name}"',
        f'Attribute VB_Base = "{DOCUMENT_BASES[base]}"',
        "Attribute VB_GlobalNameSpace = False",
        "Attribute VB_Creatable = False",
        "Attribute VB_PredeclaredId = True",
        "Attribute VB_Exposed = True",
        "Attribute VB_TemplateDerived = False",
        "Attribute VB_Customizable = True",
    ]
    return VbaModule(name, "\r\n".join(lines) + "\r\n", "document")


CODEPAGE = 1252
LCID = 0x0409
PROJECT_NAME = "VBAProject"


def _record(record_id: int, payload: bytes) -> bytes:
    return struct.pack("<HI", record_id, len(payload)) + payload


def _text(value: str) -> bytes:
    return value.encode(f"cp{CODEPAGE}")


def _unicode(value: str) -> bytes:
    return value.encode("utf-16-le")


def _dir_stream(modules: Sequence[VbaModule]) -> bytes:
    """The decompressed ``dir`` stream (2.3.4.2): project information, no references
    (Excel's host library and VBA's own are implicit), then one record set per module."""
    out = bytearray()
    out += _record(0x0001, struct.pack("<I", 3))  # PROJECTSYSKIND: 64-bit Windows
    out += _record(0x004A, struct.pack("<I", 5))  # PROJECTCOMPATVERSION
    out += _record(0x0002, struct.pack("<I", LCID))  # PROJECTLCID
    out += _record(0x0014, struct.pack("<I", LCID))  # PROJECTLCIDINVOKE
    out += _record(0x0003, struct.pack("<H", CODEPAGE))  # PROJECTCODEPAGE
    out += _record(0x0004, _text(PROJECT_NAME))  # PROJECTNAME
    out += _record(0x0005, b"") + _record(0x0040, b"")  # PROJECTDOCSTRING
    out += _record(0x0006, b"") + _record(0x003D, b"")  # PROJECTHELPFILEPATH
    out += _record(0x0007, struct.pack("<I", 0))  # PROJECTHELPCONTEXT
    out += _record(0x0008, struct.pack("<I", 0))  # PROJECTLIBFLAGS
    out += struct.pack("<HIIH", 0x0009, 4, 1, 0)  # PROJECTVERSION (fixed-size record)
    out += _record(0x000C, b"") + _record(0x003C, b"")  # PROJECTCONSTANTS
    out += _record(0x000F, struct.pack("<H", len(modules)))  # PROJECTMODULES
    out += _record(0x0013, struct.pack("<H", 0xFFFF))  # PROJECTCOOKIE
    for module in modules:
        out += _record(0x0019, _text(module.name)) + _record(0x0047, _unicode(module.name))
        out += _record(0x001A, _text(module.name)) + _record(0x0032, _unicode(module.name))
        out += _record(0x001C, b"") + _record(0x0048, b"")  # MODULEDOCSTRING
        out += _record(0x0031, struct.pack("<I", 0))  # MODULEOFFSET: source at offset 0
        out += _record(0x001E, struct.pack("<I", 0))  # MODULEHELPCONTEXT
        out += _record(0x002C, struct.pack("<H", 0xFFFF))  # MODULECOOKIE
        out += _record(0x0021 if module.kind == "procedural" else 0x0022, b"")  # MODULETYPE
        out += _record(0x002B, b"")  # module terminator
    out += _record(0x0010, b"")  # dir terminator (its 4 "size" bytes are the Reserved field)
    return bytes(out)


def _project_id(modules: Sequence[VbaModule]) -> str:
    digest = hashlib.sha256()
    for module in modules:
        digest.update(f"{module.kind}\0{module.name}\0{module.source}\0".encode())
    return "{" + str(uuid.UUID(bytes=digest.digest()[:16], version=4)).upper() + "}"


def _project_stream(modules: Sequence[VbaModule], project_id: str) -> bytes:
    """The PROJECT stream (2.3.1): module list, name, unprotected and visible."""
    seed = int(project_id[1:3], 16)
    lines = [f'ID="{project_id}"']
    for module in modules:
        if module.kind == "document":
            lines.append(f"Document={module.name}/&H00000000")
        elif module.kind == "class":
            lines.append(f"Class={module.name}")
        else:
            lines.append(f"Module={module.name}")
    lines += [
        f'Name="{PROJECT_NAME}"',
        'HelpContextID="0"',
        'VersionCompatible32="393222000"',
        f'CMG="{encrypt_project_data(bytes(4), project_id, seed)}"',
        f'DPB="{encrypt_project_data(bytes(1), project_id, seed ^ 0x55)}"',
        f'GC="{encrypt_project_data(bytes([0xFF]), project_id, seed ^ 0xAA)}"',
        "",
        "[Host Extender Info]",
        "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000",
        "",
        "[Workspace]",
    ]
    lines += [f"{module.name}=0, 0, 0, 0, C" for module in modules]
    return _text("\r\n".join(lines) + "\r\n")


def _project_wm(modules: Sequence[VbaModule]) -> bytes:
    """The PROJECTwm stream (2.3.3): each module name in MBCS and in UTF-16."""
    out = bytearray()
    for module in modules:
        out += _text(module.name) + b"\0" + _unicode(module.name) + b"\0\0"
    return bytes(out + b"\0\0")


def _check_modules(modules: Sequence[VbaModule]) -> None:
    seen: set[str] = set()
    for module in modules:
        if not module.name or len(module.name) > 31 or not module.name.isidentifier():
            raise ValueError(f"VBA module name {module.name!r} must be an identifier of 1-31 "
                             "letters, digits or underscores")
        if module.name.upper() in seen:
            raise ValueError(f"two VBA modules are named {module.name!r}")
        seen.add(module.name.upper())
        try:
            _text(module.source)
        except UnicodeEncodeError as exc:
            raise ValueError(f"VBA module {module.name!r} has characters outside code page "
                             f"{CODEPAGE}: {exc}") from exc


def build_vba_project(modules: Sequence[VbaModule]) -> bytes:
    """The bytes of a ``vbaProject.bin`` holding ``modules`` as source only.

    Deterministic: the same modules always give the same bytes (the project ID is
    derived from the modules, the CFB has no timestamps)."""
    _check_modules(modules)
    project_id = _project_id(modules)
    streams = {
        "PROJECT": _project_stream(modules, project_id),
        "PROJECTwm": _project_wm(modules),
        "VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x01\x00",
        "VBA/dir": compress(_dir_stream(modules)),
    }
    for module in modules:
        streams[f"VBA/{module.name}"] = compress(_text(module.source))
    return write_compound_file(streams)
