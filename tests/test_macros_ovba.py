"""MS-OVBA compression, project-data encryption, the generated VBA project and reading
one back (:mod:`xlstock.macros.ovba`), checked against the specification's own examples and
against readers that are not ours (oletools' decompressor, olefile, olevba, Excel's own
bytes)."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zipfile
from pathlib import Path

import olefile
import pytest
import xlwings
from hypothesis import given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    # oletools calls a pyparsing API that pyparsing 3.2 deprecates, at import time.
    warnings.simplefilter("ignore", DeprecationWarning)
    from oletools.olevba import VBA_Parser, decompress_stream

from support.vba_craft import MODULE1, macros_of, parts_of

from xlstock.macros.ovba import (
    ProjectInfo,
    VbaModule,
    build_vba_project,
    class_module_from_export,
    compress,
    decompress,
    decrypt_project_data,
    document_module,
    encrypt_project_data,
    read_vba_project,
)
from xlstock.macros.vba_source import VBA_PART

QUICKSTART = Path(xlwings.__file__).parent / "quickstart_standalone.xlsm"

# [MS-OVBA] 3.2.1, 3.2.2 and 3.2.3: text and the compressed bytes the spec gives.
SPEC_EXAMPLES = {
    "no compression": (
        b"abcdefghijklmnopqrstuv.",
        "01 19 B0 00 61 62 63 64 65 66 67 68 00 69 6A 6B 6C 6D 6E 6F 70 00 71 72 73 74 75 "
        "76 2E",
    ),
    "normal compression": (
        b"#aaabcdefaaaaghijaaaaaklaaamnopqaaaaaaaaaaaarstuvwxyzaaa",
        "01 2F B0 00 23 61 61 61 62 63 64 65 82 66 00 70 61 67 68 69 6A 01 38 08 61 6B 6C "
        "00 20 6D 6E 6F 70 06 71 02 70 04 00 72 73 74 75 76 10 77 78 79 7A 00 2C",
    ),
    "maximum compression": (b"a" * 73, "01 03 B0 02 61 45 00"),
}


def olevba_decompress(data: bytes) -> bytes:
    return bytes(decompress_stream(bytearray(data)))


@pytest.mark.parametrize("name", SPEC_EXAMPLES)
def test_spec_examples_decompress(name: str) -> None:
    text, compressed = SPEC_EXAMPLES[name]
    assert decompress(bytes.fromhex(compressed)) == text


@pytest.mark.parametrize("name", SPEC_EXAMPLES)
def test_spec_examples_compress_to_the_published_bytes(name: str) -> None:
    text, compressed = SPEC_EXAMPLES[name]
    assert compress(text) == bytes.fromhex(compressed)


def _samples() -> dict[str, bytes]:
    rng = random.Random(20240601)
    words = [b"Dim ", b"As String", b"End Sub\r\n", b"RunPython ", b"'", b"    ", b"x", b"\r\n"]
    return {
        "empty": b"",
        "one byte": b"q",
        "random 10k": bytes(rng.getrandbits(8) for _ in range(10_000)),
        "random one chunk": bytes(rng.getrandbits(8) for _ in range(4096)),
        "zeros 20k": bytes(20_000),
        "repeating 3 bytes": b"abc" * 7000,
        "vba-like": b"".join(rng.choice(words) for _ in range(9000)),
        "chunk boundary 4095": b"xy" * 2047 + b"z",
        "chunk boundary 4096": bytes(range(256)) * 16,
        "chunk boundary 4097": bytes(range(256)) * 16 + b"!",
        "long runs then noise": b"A" * 5000 + bytes(rng.getrandbits(8) for _ in range(3000)),
    }


@pytest.mark.parametrize("name", list(_samples()))
def test_round_trip_through_ours_and_olevba(name: str) -> None:
    data = _samples()[name]
    packed = compress(data)
    assert decompress(packed) == data
    assert olevba_decompress(packed) == data


def test_incompressible_chunk_is_stored_raw_as_the_spec_says() -> None:
    data = _samples()["random one chunk"]
    packed = compress(data)
    (header,) = struct.unpack_from("<H", packed, 1)
    assert header & 0x8000 == 0, "flag bit must say 'raw'"
    assert header & 0x0FFF == 4095 and (header >> 12) & 0b111 == 0b011
    assert packed[3:] == data
    assert decompress(packed) == data


def test_real_vba_source_compresses_well_and_round_trips() -> None:
    import xlwings

    source = (Path(xlwings.__file__).parent / "xlwings.bas").read_bytes()
    packed = compress(source)
    assert len(packed) < len(source) * 0.6
    assert olevba_decompress(packed) == source


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=9000))
def test_round_trip_any_bytes(data: bytes) -> None:
    packed = compress(data)
    assert decompress(packed) == data
    assert olevba_decompress(packed) == data


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"ab", b"abc", b"\r\n", b"Sub ", b"\x00"]),
                max_size=3000).map(b"".join))
def test_round_trip_repetitive_bytes(data: bytes) -> None:
    assert olevba_decompress(compress(data)) == data
    assert decompress(compress(data)) == data


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"", "not an MS-OVBA"),
        (b"\x02\x19\xb0", "not an MS-OVBA"),
        (b"\x01\x19\x00abc", "bad chunk signature"),
        (b"\x01\x19\xb0\x00abc", "runs past the end"),
        (b"\x01\x03\xb0\x02\x61\xff\xff", "reaches before its chunk"),
    ],
)
def test_decompress_refuses_damaged_data(bad: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decompress(bad)


# --- PROJECT stream data encryption (2.4.3) ----------------------------------------------


def _xlwings_quickstart_project() -> str:
    with zipfile.ZipFile(QUICKSTART) as archive:
        ole = olefile.OleFileIO(io.BytesIO(archive.read("xl/vbaProject.bin")))
        return ole.openstream("PROJECT").read().decode("cp1252")


def test_decrypts_what_excel_wrote() -> None:
    """Excel wrote these CMG/DPB/GC values (xlwings ships the file): an unprotected,
    visible project, so they must decrypt to 0, no password and 0xFF."""
    values = dict(
        line.split("=", 1) for line in _xlwings_quickstart_project().splitlines() if "=" in line
    )
    project_id = values["ID"].strip('"')
    assert decrypt_project_data(values["CMG"].strip('"'), project_id) == bytes(4)
    assert decrypt_project_data(values["DPB"].strip('"'), project_id) == b"\x00"
    assert decrypt_project_data(values["GC"].strip('"'), project_id) == b"\xff"


@pytest.mark.parametrize("seed", range(0, 256, 7))
def test_encryption_round_trips_for_every_kind_of_seed(seed: int) -> None:
    project_id = "{917DED54-440B-4FD1-A5C1-74ACF261E600}"
    for data in (bytes(4), b"\x00", b"\xff", b"password bytes"):
        text = encrypt_project_data(data, project_id, seed)
        assert text == text.upper() and len(text) == 2 * (3 + (seed & 6) // 2 + 4 + len(data))
        assert decrypt_project_data(text, project_id) == data


def test_decryption_checks_the_project_key() -> None:
    text = encrypt_project_data(bytes(4), "{917DED54-440B-4FD1-A5C1-74ACF261E600}", 9)
    with pytest.raises(ValueError, match="another project"):
        decrypt_project_data(text, "{00000000-0000-0000-0000-000000000000}")


def _open_strict(data: bytes) -> olefile.OleFileIO:
    return olefile.OleFileIO(io.BytesIO(data), raise_defects=olefile.DEFECT_UNSURE)


# --- the VBA project --------------------------------------------------------------------


def _project() -> tuple[list[VbaModule], bytes]:
    modules = [
        document_module("ThisWorkbook", "workbook"),
        document_module("Sheet1", "worksheet"),
        VbaModule("Tools", 'Attribute VB_Name = "Tools"\r\nSub Hello()\r\n'
                           '    MsgBox "Hi"\r\nEnd Sub\r\n'),
        class_module_from_export(
            'VERSION 1.0 CLASS\r\nBEGIN\r\n  MultiUse = -1  \'True\r\nEND\r\n'
            'Attribute VB_Name = "Thing"\r\nAttribute VB_GlobalNameSpace = False\r\n'
            "Attribute VB_Creatable = False\r\nAttribute VB_PredeclaredId = False\r\n"
            "Attribute VB_Exposed = False\r\nPublic Value As Long\r\n"
        ),
    ]
    return modules, build_vba_project(modules)


def test_project_streams_follow_the_spec_for_writers() -> None:
    modules, data = _project()
    ole = _open_strict(data)
    assert ole.openstream("VBA/_VBA_PROJECT").read() == b"\xcc\x61\xff\xff\x00\x01\x00"
    project = ole.openstream("PROJECT").read().decode("cp1252")
    lines = project.split("\r\n")
    assert "Document=ThisWorkbook/&H00000000" in lines and "Document=Sheet1/&H00000000" in lines
    assert "Module=Tools" in lines and "Class=Thing" in lines and 'Name="VBAProject"' in lines
    values = dict(line.split("=", 1) for line in lines if "=" in line and "[" not in line)
    project_id = values["ID"].strip('"')
    assert decrypt_project_data(values["CMG"].strip('"'), project_id) == bytes(4)
    assert decrypt_project_data(values["DPB"].strip('"'), project_id) == b"\x00"
    assert decrypt_project_data(values["GC"].strip('"'), project_id) == b"\xff"
    wm = ole.openstream("PROJECTwm").read()
    assert wm.startswith(b"ThisWorkbook\x00" + "ThisWorkbook".encode("utf-16-le") + b"\x00\x00")
    assert wm.endswith(b"\x00\x00")
    for module in modules:
        assert decompress(ole.openstream(f"VBA/{module.name}").read()) == module.source.encode()


def test_olevba_reads_every_module_of_the_project() -> None:
    modules, data = _project()
    parser = VBA_Parser("vbaProject.bin", data=data)
    found = {name.rsplit(".", 1)[0]: code for _, _, name, code in parser.extract_macros()}
    assert found == {m.name: m.source for m in modules}


def test_class_module_is_stored_as_the_vba_editor_stores_an_import() -> None:
    thing = _project()[0][3]
    assert thing.kind == "class"
    assert thing.source.split("\r\n")[:3] == [
        'Attribute VB_Name = "Thing"',
        'Attribute VB_Base = "0{FCFB3D2A-A0FA-1068-A738-08002B3371B5}"',
        "Attribute VB_GlobalNameSpace = False",
    ]
    assert "VERSION" not in thing.source and "Attribute VB_Customizable = False" in thing.source


def test_project_is_deterministic_and_checks_module_names() -> None:
    modules, data = _project()
    assert build_vba_project(modules) == data
    with pytest.raises(ValueError, match="two VBA modules"):
        build_vba_project([modules[0], document_module("thisworkbook", "workbook")])
    with pytest.raises(ValueError, match="must be an identifier"):
        build_vba_project([VbaModule("My Module", 'Attribute VB_Name = "x"\r\n')])
    with pytest.raises(ValueError, match="code page 1252"):
        build_vba_project([VbaModule("M", "' \u2603\r\n")])


# --- reading a project --------------------------------------------------------------------


def _without_attributes(source: str) -> str:
    lines = source.replace("\r\n", "\n").split("\n")
    return "\n".join(line for line in lines if not line.startswith("Attribute VB_")).strip()


def test_reads_a_project_excel_wrote_as_olevba_does() -> None:
    """xlwings' quickstart_standalone.xlsm was saved by Excel: compiled code before each
    module's source, references, an xlwings module with LF line ends."""
    project = read_vba_project(parts_of(QUICKSTART)[VBA_PART])
    assert project.protection is None and project.designers == ()
    assert project.info.codepage == 1252 and project.info.name == "VBAProject"
    assert b"MSForms" in project.info.references
    assert b"Microsoft Office 16.0 Object Library" in project.info.references
    expected = {name: _without_attributes(code) for name, code in macros_of(QUICKSTART).items()}
    assert {m.name: _without_attributes(m.source) for m in project.modules} == expected
    rebuilt = read_vba_project(build_vba_project(project.modules, project.info))
    assert rebuilt == project


def test_a_rebuilt_project_keeps_its_name_and_code_page() -> None:
    source = 'Attribute VB_Name = "Lager"\r\n\' \u0421\u043a\u043b\u0430\u0434\r\n'
    module = VbaModule("Lager", source)
    data = build_vba_project([module], ProjectInfo(name="Shop", codepage=1251))
    project = read_vba_project(data)
    assert project.info == ProjectInfo(name="Shop", codepage=1251)
    assert project.modules == (module,)
    assert build_vba_project(project.modules, project.info) == data


def test_a_damaged_project_is_refused_as_such() -> None:
    """Truncated or scribbled-on projects (Excel's and ours) raise ValueError, which the
    command turns into 'cannot be read', never another exception."""
    rng = random.Random(20261127)
    originals = [parts_of(QUICKSTART)[VBA_PART],
                 build_vba_project([VbaModule("Module1", MODULE1)])]
    for original in originals:
        for case in range(80):
            data = bytearray(original)
            if case % 4 == 0:
                del data[rng.randrange(len(data)):]
            else:
                for _ in range(rng.randrange(1, 20)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                read_vba_project(bytes(data))
            except ValueError:
                pass
