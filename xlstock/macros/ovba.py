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
- :func:`build_vba_project`: the whole compound file for a list of :class:`VbaModule`;
- :func:`read_vba_project`: the modules' source (and what a rebuild must carry over)
  from a ``vbaProject.bin`` Excel wrote, read with olefile.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from xlstock.errors import MissingExtra
from xlstock.macros.cfb import write_compound_file

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


def decompress(container: bytes, max_size: int | None = None) -> bytes:
    """Decompress an MS-OVBA CompressedContainer (2.4.1.3.1). Raises ``ValueError``
    for a bad signature, a chunk that runs past the data, or (with ``max_size``)
    output longer than ``max_size`` bytes: a hostile container inflates about 700-fold."""
    if not container or container[0] != 0x01:
        raise ValueError("not an MS-OVBA compressed container (first byte must be 0x01)")
    out = bytearray()
    position = 1
    while position < len(container):
        header, chunk_end = _chunk_header(container, position)
        position += 2
        if header & _CHUNK_COMPRESSED:
            position = _decompress_chunk(container, position, chunk_end, out, max_size)
            continue
        raw = container[position : position + CHUNK]
        if len(raw) != CHUNK:
            raise ValueError(f"raw chunk at byte {position - 2} is shorter than 4096 bytes")
        out += raw
        position += CHUNK
    _refuse_longer(out, max_size)
    return bytes(out)


def _chunk_header(container: bytes, position: int) -> tuple[int, int]:
    """The CompressedChunkHeader at ``position``, and where its chunk ends."""
    if position + 2 > len(container):
        raise ValueError(f"truncated chunk header at byte {position}")
    (header,) = struct.unpack_from("<H", container, position)
    if header & 0x7000 != _CHUNK_SIGNATURE:
        raise ValueError(f"bad chunk signature at byte {position}")
    chunk_end = position + (header & 0x0FFF) + 3
    if chunk_end > len(container) and header & _CHUNK_COMPRESSED:
        raise ValueError(f"chunk at byte {position} runs past the end of the data")
    return header, chunk_end


def _refuse_longer(out: bytearray, max_size: int | None) -> None:
    if max_size is not None and len(out) > max_size:
        raise ValueError(f"decompressed data is longer than {max_size} bytes")


def _decompress_chunk(container: bytes, position: int, chunk_end: int, out: bytearray,
                      max_size: int | None) -> int:
    """Append the compressed chunk's data to ``out``; the position after it."""
    chunk_start = len(out)
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
            _copy(container, position, chunk_end, out, chunk_start)
            position += 2
            _refuse_longer(out, max_size)
    return position


def _copy(container: bytes, position: int, chunk_end: int, out: bytearray,
          chunk_start: int) -> None:
    """Apply the CopyToken at ``position``: repeat bytes already decompressed."""
    if position + 2 > chunk_end:
        raise ValueError(f"truncated copy token at byte {position}")
    (token,) = struct.unpack_from("<H", container, position)
    bit_count, _ = _copy_token_split(len(out) - chunk_start)
    length = (token & (0xFFFF >> bit_count)) + 3
    offset = (token >> (16 - bit_count)) + 1
    if offset > len(out) - chunk_start:
        raise ValueError(f"copy token at byte {position} reaches before its chunk")
    source = len(out) - offset
    for index in range(length):
        out.append(out[source + index])


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


@dataclass(frozen=True)
class ProjectInfo:
    """Project-wide settings of a project: its name, the Windows code page of its text,
    and its references as the raw ``dir`` stream records (2.3.4.2.2). A project rebuilt
    from source carries these over so that its modules still compile."""

    name: str = PROJECT_NAME
    codepage: int = CODEPAGE
    references: bytes = b""

    @property
    def encoding(self) -> str:
        """The Python codec of :attr:`codepage`."""
        return _CODECS.get(self.codepage, f"cp{self.codepage}")


_CODECS = {10000: "mac_roman", 65001: "utf-8"}
"""Code pages whose Python codec is not ``cp<number>`` (Excel for Mac's Mac Roman)."""


def _record(record_id: int, payload: bytes) -> bytes:
    return struct.pack("<HI", record_id, len(payload)) + payload


def _unicode(value: str) -> bytes:
    return value.encode("utf-16-le")


def _dir_stream(modules: Sequence[VbaModule], info: ProjectInfo) -> bytes:
    """The decompressed ``dir`` stream (2.3.4.2): project information, the references
    of ``info`` (none for a new project: Excel's host library and VBA's own are
    implicit), then one record set per module."""
    encoding = info.encoding
    out = bytearray()
    out += _record(0x0001, struct.pack("<I", 3))  # PROJECTSYSKIND: 64-bit Windows
    out += _record(0x004A, struct.pack("<I", 5))  # PROJECTCOMPATVERSION
    out += _record(0x0002, struct.pack("<I", LCID))  # PROJECTLCID
    out += _record(0x0014, struct.pack("<I", LCID))  # PROJECTLCIDINVOKE
    out += _record(0x0003, struct.pack("<H", info.codepage))  # PROJECTCODEPAGE
    out += _record(0x0004, info.name.encode(encoding))  # PROJECTNAME
    out += _record(0x0005, b"") + _record(0x0040, b"")  # PROJECTDOCSTRING
    out += _record(0x0006, b"") + _record(0x003D, b"")  # PROJECTHELPFILEPATH
    out += _record(0x0007, struct.pack("<I", 0))  # PROJECTHELPCONTEXT
    out += _record(0x0008, struct.pack("<I", 0))  # PROJECTLIBFLAGS
    out += struct.pack("<HIIH", 0x0009, 4, 1, 0)  # PROJECTVERSION (fixed-size record)
    out += _record(0x000C, b"") + _record(0x003C, b"")  # PROJECTCONSTANTS
    out += info.references
    out += _record(0x000F, struct.pack("<H", len(modules)))  # PROJECTMODULES
    out += _record(0x0013, struct.pack("<H", 0xFFFF))  # PROJECTCOOKIE
    for module in modules:
        name = module.name.encode(encoding)
        out += _record(0x0019, name) + _record(0x0047, _unicode(module.name))
        out += _record(0x001A, name) + _record(0x0032, _unicode(module.name))
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


def _project_stream(modules: Sequence[VbaModule], project_id: str, info: ProjectInfo) -> bytes:
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
        f'Name="{info.name}"',
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
    return ("\r\n".join(lines) + "\r\n").encode(info.encoding)


def _project_wm(modules: Sequence[VbaModule], info: ProjectInfo) -> bytes:
    """The PROJECTwm stream (2.3.3): each module name in MBCS and in UTF-16."""
    out = bytearray()
    for module in modules:
        out += module.name.encode(info.encoding) + b"\0" + _unicode(module.name) + b"\0\0"
    return bytes(out + b"\0\0")


def _check_modules(modules: Sequence[VbaModule], info: ProjectInfo) -> None:
    try:
        codecs.lookup(info.encoding)
    except LookupError as exc:
        raise ValueError(f"VBA project code page {info.codepage} is not one Python knows") from exc
    if not info.name or len(info.name) > 128 or not info.name.isidentifier():
        raise ValueError(f"VBA project name {info.name!r} must be an identifier of 1-128 "
                         "letters, digits or underscores")
    seen: set[str] = set()
    for module in modules:
        if not module.name or len(module.name) > 31 or not module.name.isidentifier():
            raise ValueError(f"VBA module name {module.name!r} must be an identifier of 1-31 "
                             "letters, digits or underscores")
        if module.name.upper() in seen:
            raise ValueError(f"two VBA modules are named {module.name!r}")
        seen.add(module.name.upper())
        try:
            module.name.encode(info.encoding)
            module.source.encode(info.encoding)
        except UnicodeEncodeError as exc:
            raise ValueError(f"VBA module {module.name!r} has characters outside code page "
                             f"{info.codepage}: {exc}") from exc


def build_vba_project(modules: Sequence[VbaModule], info: ProjectInfo | None = None) -> bytes:
    """The bytes of a ``vbaProject.bin`` holding ``modules`` as source only, with the
    name, code page and references of ``info`` (default: a new project).

    Deterministic: the same modules always give the same bytes (the project ID is
    derived from the modules, the CFB has no timestamps)."""
    info = info or ProjectInfo()
    _check_modules(modules, info)
    project_id = _project_id(modules)
    streams = {
        "PROJECT": _project_stream(modules, project_id, info),
        "PROJECTwm": _project_wm(modules, info),
        "VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x01\x00",
        "VBA/dir": compress(_dir_stream(modules, info)),
    }
    for module in modules:
        streams[f"VBA/{module.name}"] = compress(module.source.encode(info.encoding))
    return write_compound_file(streams)


# ------------------------------------------------------------------------ reading

MAX_MODULE_BYTES = 16 * 1024 * 1024
"""The longest module source :func:`read_vba_project` decompresses (real ones: < 1 MB)."""

_REFERENCE_RECORDS = frozenset({0x0016, 0x003E, 0x0033, 0x002F, 0x0030, 0x000D, 0x000E})
"""``dir`` record IDs of REFERENCENAME, REFERENCEORIGINAL, REFERENCECONTROL,
REFERENCEREGISTERED and REFERENCEPROJECT (2.3.4.2.2)."""


@dataclass(frozen=True)
class ProjectSource:
    """What :func:`read_vba_project` finds: the modules with their source (in the
    project's order), the settings a rebuild carries over, the UserForms (designer
    modules, whose forms live outside the source and are not read), and
    ``protection``: why the project may not be rebuilt (``None`` when it may)."""

    modules: tuple[VbaModule, ...]
    info: ProjectInfo
    designers: tuple[str, ...]
    protection: str | None


@dataclass
class _DirModule:
    name: str
    stream: str
    offset: int = 0
    procedural: bool = False


def _dir_records(data: bytes) -> Iterator[tuple[int, bytes, int, int]]:
    """``(id, payload, start, end)`` of each record of a decompressed ``dir`` stream."""
    position = 0
    while position < len(data):
        if position + 6 > len(data):
            raise ValueError(f"dir stream: truncated record at byte {position}")
        record_id, size = struct.unpack_from("<HI", data, position)
        if record_id == 0x0009:  # PROJECTVERSION: its "size" is Reserved, 6 bytes follow
            size = 6
        end = position + 6 + size
        if end > len(data):
            raise ValueError(f"dir stream: record 0x{record_id:04X} runs past the end")
        yield record_id, data[position + 6 : end], position, end
        if record_id == 0x0010:
            return
        position = end


def _parse_dir(data: bytes) -> tuple[ProjectInfo, list[_DirModule]]:
    codepage, name, references = CODEPAGE, PROJECT_NAME, bytearray()
    modules: list[_DirModule] = []
    current: _DirModule | None = None
    in_modules = False
    for record_id, payload, start, end in _dir_records(data):
        encoding = f"cp{codepage}"
        if record_id == 0x0003 and len(payload) == 2:
            (codepage,) = struct.unpack("<H", payload)
        elif record_id == 0x0004:
            name = payload.decode(encoding)
        elif record_id == 0x000F:
            in_modules = True
        elif not in_modules and record_id in _REFERENCE_RECORDS:
            references += data[start:end]
        elif record_id == 0x0019:
            text = payload.decode(encoding)
            current = _DirModule(text, text)
        elif current is not None and record_id == 0x002B:
            modules.append(current)
            current = None
        elif current is not None:
            _module_record(current, record_id, payload, encoding)
    return ProjectInfo(name, codepage, bytes(references)), modules


def _module_record(module: _DirModule, record_id: int, payload: bytes, encoding: str) -> None:
    """What one record of a MODULE's list (2.3.4.2.3.2) says of ``module``."""
    if record_id == 0x0047:
        module.name = payload.decode("utf-16-le")
    elif record_id == 0x001A:
        module.stream = payload.decode(encoding)
    elif record_id == 0x0032:
        module.stream = payload.decode("utf-16-le")
    elif record_id == 0x0031 and len(payload) == 4:
        (module.offset,) = struct.unpack("<I", payload)
    elif record_id == 0x0021:
        module.procedural = True


def _parse_project(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Module kinds by name, and the ``CMG``/``DPB``/``GC`` values, from the PROJECT stream."""
    kinds: dict[str, str] = {}
    keys: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("["):
            break
        key, _, value = line.partition("=")
        if key == "Document":
            kinds[value.split("/", 1)[0]] = "document"
        elif key == "Module":
            kinds[value] = "procedural"
        elif key == "Class":
            kinds[value] = "class"
        elif key == "BaseClass":
            kinds[value] = "designer"
        elif key in ("CMG", "DPB", "GC"):
            keys[key] = value.strip('"')
    return kinds, keys


def _protection(keys: dict[str, str]) -> str | None:
    """Why the project is protected (2.3.1.15-17), or ``None``."""
    try:
        state = decrypt_project_data(keys["CMG"]) if "CMG" in keys else bytes(4)
        password = decrypt_project_data(keys["DPB"]) if "DPB" in keys else bytes(1)
        visible = decrypt_project_data(keys["GC"]) if "GC" in keys else b"\xff"
    except ValueError:
        return "protected (its protection settings cannot be read)"
    if visible != b"\xff":
        return "locked for viewing"
    if password != bytes(1) or any(state):
        return "protected with a password"
    return None


def read_vba_project(data: bytes) -> ProjectSource:
    """Read the source of every module of ``vbaProject.bin`` bytes, with the project's
    name, code page and references. Raises ``ValueError`` for bytes that are not a
    readable VBA project. A protected project is read as far as it can be: see
    :attr:`ProjectSource.protection`."""
    try:
        import olefile
    except ImportError as exc:
        raise MissingExtra("excel", "Reading the VBA project of an .xlsm (olefile)") from exc
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception as exc:  # olefile raises OSError, or whatever its parser meets
        raise ValueError(f"not a VBA project (compound file): {exc}") from exc
    try:
        if not ole.exists("VBA/dir") or not ole.exists("PROJECT"):
            raise ValueError("the compound file has no VBA/dir or PROJECT stream")
        info, entries = _parse_dir(decompress(ole.openstream("VBA/dir").read(), 1024 * 1024))
        codecs.lookup(info.encoding)
        kinds, keys = _parse_project(ole.openstream("PROJECT").read().decode(info.encoding,
                                                                            "replace"))
        modules: list[VbaModule] = []
        designers: list[str] = []
        for entry in entries:
            kind = kinds.get(entry.name) or ("procedural" if entry.procedural else "class")
            if kind == "designer":
                designers.append(entry.name)
                continue
            path = f"VBA/{entry.stream}"
            if not ole.exists(path):
                raise ValueError(f"module {entry.name!r} has no stream {path}")
            raw = ole.openstream(path).read()
            source = decompress(raw[entry.offset :], MAX_MODULE_BYTES).decode(info.encoding)
            modules.append(VbaModule(entry.name, source,
                                     "document" if kind == "document" else
                                     "procedural" if kind == "procedural" else "class"))
    except ValueError:
        raise
    except LookupError as exc:
        raise ValueError(f"unknown code page: {exc}") from exc
    except Exception as exc:  # a damaged compound file fails inside olefile in many ways
        raise ValueError(f"damaged VBA project: {exc}") from exc
    finally:
        ole.close()
    return ProjectSource(tuple(modules), info, tuple(designers), _protection(keys))
