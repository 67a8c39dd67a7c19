"""The workbook file adapter on real .xlsx files: what it reads, what it writes, what a
save keeps (every part it does not own, byte for byte), atomic saves under injected
faults, and the per-workbook lock."""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart, Reference
from support.xlsx_craft import (
    SHEET1,
    add_content_type,
    edit_part,
    excel_owner_file,
    merchant_workbook,
    read_part,
    rewrite,
)

import xlstock.workbook.xlsx_file as adapter_module
from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.errors import WorkbookError
from xlstock.workbook import layout, locking
from xlstock.workbook.base import MAX_ROWS, WorkbookAdapter
from xlstock.workbook.locking import excel_lock_owner
from xlstock.workbook.template import workbook_bytes
from xlstock.workbook.xlsx_file import XlsxFile


def leftovers(folder: Path, *keep: str) -> list[str]:
    """Files in ``folder`` other than ``keep`` (the run's lock file included: it goes
    when the run ends)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_is_a_workbook_adapter(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        assert isinstance(book, XlsxFile)
        adapter: WorkbookAdapter = book
        assert adapter.label == str(path)
        assert adapter.sheet_names() == ["Stock", "Notes"]


# --- reading ------------------------------------------------------------------------


def test_read_values_text_skus_dates_errors(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws.append(["SKU", "Online", "When", "Flag", "Err", "Price"])
    ws.append(["00123", 7, dt.datetime(2025, 3, 1, 9, 30), True, "#N/A", 2.5])
    ws.append([123, 8.0, dt.date(2025, 3, 2), False, "#DIV/0!", 3.0])
    ws["C4"] = dt.time(12, 30)
    ws["H1"] = None
    path = tmp_path / "stock.xlsx"
    wb.save(path)
    with XlsxFile.open(path) as book:
        grid = book.read_sheet("Stock")
    assert grid[1] == ["00123", 7, dt.datetime(2025, 3, 1, 9, 30), True, CellError("#N/A"), 2.5]
    assert grid[2] == [123, 8, dt.datetime(2025, 3, 2), False, CellError("#DIV/0!"), 3]
    assert isinstance(grid[2][1], int)
    assert grid[3] == [None, None, dt.datetime(1899, 12, 30, 12, 30), None, None, None]
    assert all(len(row) == 6 for row in grid)


def test_read_trims_and_empty_sheet(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws["B2"] = "x"
    ws["D9"].number_format = "0.00"  # formatted but empty: not part of the table
    wb.create_sheet("Empty")
    path = tmp_path / "stock.xlsx"
    wb.save(path)
    edit_part(path, SHEET1, "</sheetData>",  # empty text far out: blank, not the table's
              '<row r="12"><c r="K12" t="inlineStr"><is><t></t></is></c></row></sheetData>')
    with XlsxFile.open(path) as book:
        assert book.read_sheet("Stock") == [[None, None], [None, "x"]]
        assert book.read_sheet("Empty") == []
        with pytest.raises(WorkbookError, match="has no sheet named 'Nope'"):
            book.read_sheet("Nope")


def test_rich_text_reads_as_plain_text_and_survives_a_save(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    edit_part(path, SHEET1, r'<c r="C2" t="inlineStr"><is><t>Product 0</t></is></c>',
              '<c r="C2" t="inlineStr"><is><r><rPr><b/></rPr><t>Bold</t></r>'
              '<r><t> tea</t></r></is></c>')
    with XlsxFile.open(path) as book:
        assert book.read_sheet("Stock")[1][2] == "Bold tea"
        book.write_block("Stock", 2, 4, [[99]])
        book.save()
    assert b"<b" in read_part(path, SHEET1) and b"Bold" in read_part(path, SHEET1)


def _with_cached_formulas(path: Path) -> Path:
    """Formulas as Excel saves them: D2 with a cached number, D3 a cached error, D4 a
    cached text, D5 none (as openpyxl or another non-calculating tool writes)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws.append(["SKU", "Base", "Extra", "Online"])
    ws.append(["A", 4, 3, "=B2+C2"])
    ws.append(["B", 4, 0, "=B3/C3"])
    ws.append(["C", 4, 0, '="n/a"'])
    ws.append(["D", 4, 1, "=B5+C5"])
    wb.create_sheet("Plain")["A1"] = 1
    wb.save(path)
    edit_part(path, SHEET1, r'(<c r="D2"[^>]*>)<f>(.*?)</f>(?:<v\s*/>|<v></v>)',
              r"\1<f>\2</f><v>7</v>")
    edit_part(path, SHEET1, r'<c r="D3"([^>]*)><f>(.*?)</f>(?:<v\s*/>|<v></v>)',
              r'<c r="D3" t="e"\1><f>\2</f><v>#DIV/0!</v>')
    edit_part(path, SHEET1, r'<c r="D4"([^>]*)><f>(.*?)</f>(?:<v\s*/>|<v></v>)',
              r'<c r="D4" t="str"\1><f>\2</f><v>n/a</v>')
    return path


def test_formulas_come_with_their_cached_values(tmp_path: Path) -> None:
    path = _with_cached_formulas(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        assert book.read_sheet("Plain") == [[1]]
        column = [row[3] for row in book.read_sheet("Stock")[1:]]
    assert column == [
        Formula("=B2+C2", 7),
        Formula("=B3/C3", CellError("#DIV/0!")),
        Formula('="n/a"', "n/a"),
        Formula("=B5+C5", NO_CACHE),
    ]


def test_far_away_cell_is_refused_quickly(tmp_path: Path) -> None:
    wb = Workbook()
    wb.active.title = "Stock"
    wb.active["A1"] = "SKU"
    wb.active.cell(row=MAX_ROWS, column=2, value=1)
    made = tmp_path / "made.xlsx"
    wb.save(made)
    path = tmp_path / "stock.xlsx"  # moved one row down, past Excel's last, by hand
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b'"B1048576"', b'"B1048577"').replace(
                    b'r="1048576"', b'r="1048577"').replace(b"B1048576", b"B1048577")
            target.writestr(info, data)
    with XlsxFile.open(path) as book, pytest.raises(WorkbookError) as caught:
        book.read_sheet("Stock")
    assert str(caught.value) == (
        f"{path}: could not read sheet Stock (row number '1048577' is not one from 1 to "
        "1,048,576); if Excel opens the workbook, save a fresh copy with File > Save As and "
        "try again")


# --- writing ------------------------------------------------------------------------


def test_text_is_never_a_formula(tmp_path: Path) -> None:
    path = tmp_path / "stock.xlsx"
    path.write_bytes(workbook_bytes())
    hostile = '=HYPERLINK("http://evil.example","click")'
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 1, [["00123", hostile, "+1", "-2"], ["@SUM(1)", "0042"]])
        book.save()
    xml = read_part(path, SHEET1).decode()
    assert "<f>" not in xml
    assert "HYPERLINK" in xml and 't="inlineStr"' in xml
    with XlsxFile.open(path) as book:
        grid = book.read_sheet("Stock")
    assert grid[1][:4] == ["00123", hostile, "+1", "-2"]
    assert grid[2][:2] == ["@SUM(1)", "0042"]
    reopened = load_workbook(path)
    assert reopened["Stock"]["B2"].data_type == "s"


def test_none_clears_a_value_keeps_format_and_creates_no_cells(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 1, [[None]])
        book.write_block("Stock", 40, 20, [[None, None], [None, ""]])
        book.save()
    wb = load_workbook(path)
    cell = wb["Stock"]["A2"]
    assert cell.value is None
    assert cell.fill.start_color.rgb == "FFDDEEFF" and cell.number_format == "@"
    assert wb["Stock"].max_row == 4 and wb["Stock"].max_column == 7


def test_writes_numbers_dates_formulas_errors_and_new_cells_take_column_style(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stock.xlsx"
    path.write_bytes(workbook_bytes())
    when = dt.datetime(2026, 2, 3, 4, 5, 6)
    aware = dt.datetime(2026, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 1, [[123, "Tea", None, 5, -3, 0, 2.5, True]])
        book.write_block("Log", 2, 1, [[when, aware, Formula("=1+2", NO_CACHE),
                                        CellError("#N/A")]])
        book.save()
    wb = load_workbook(path)
    stock, log = wb["Stock"], wb["Log"]
    assert stock["A2"].number_format == "@"  # the SKU column's text format, as in Excel
    assert stock["D2"].number_format == "0"
    assert [stock.cell(2, c).value for c in range(1, 9)] == [123, "Tea", None, 5, -3, 0, 2.5,
                                                             True]
    assert log["A2"].value == when and log["A2"].is_date
    assert log["B2"].value == aware.astimezone().replace(tzinfo=None)
    assert log["C2"].data_type == "f" and log["C2"].value == "=1+2"
    assert log["D2"].data_type == "e" and log["D2"].value == "#N/A"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bad\x01text", "U+0001"),
        ("x" * 32_768, "32,767"),
        (float("nan"), "not a number"),
        (float("inf"), "not a number"),
    ],
)
def test_values_excel_cannot_hold_are_refused_with_the_cell(tmp_path: Path, value: object,
                                                            message: str) -> None:
    path = tmp_path / "stock.xlsx"
    path.write_bytes(workbook_bytes())
    with XlsxFile.open(path) as book, pytest.raises(WorkbookError) as caught:
        book.write_block("Stock", 5, 2, [[value]])
    assert "cell B5" in str(caught.value) and message in str(caught.value)


def test_merged_cells_and_odd_values(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        with pytest.raises(WorkbookError, match="B1 is inside merged cells"):
            book.write_block("Notes", 1, 2, [["x"]])
        with pytest.raises(TypeError):
            book.write_block("Stock", 2, 1, [[object()]])
        with pytest.raises(WorkbookError, match="last row"):
            book.write_block("Stock", 1_048_576, 1, [[1], [2]])


def test_add_sheet_hidden_and_duplicates(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:
        book.add_sheet("_xlstock", hidden=True)
        book.add_sheet("Log")
        with pytest.raises(WorkbookError, match="already has a sheet"):
            book.add_sheet("LOG")
        with pytest.raises(WorkbookError, match="cannot name a sheet"):
            book.add_sheet("a/b")
        book.write_block("_xlstock", 1, 1, [["{}"]])
        book.save()
    wb = load_workbook(path)
    assert wb.sheetnames == ["Stock", "Notes", "_xlstock", "Log"]
    assert wb["_xlstock"].sheet_state == "veryHidden"
    assert wb["Log"].sheet_state == "visible"


# --- what a save keeps -----------------------------------------------------------------


def test_round_trip_keeps_the_merchants_workbook(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    before = load_workbook(path)
    with XlsxFile.open(path) as book:
        grid = book.read_sheet("Stock")
        online = grid[0].index("Online") + 1
        book.write_block("Stock", 2, online, [[1], [2], [3]])
        book.write_block("Stock", 5, 1, [["Acme 9", "99999", "New product", 4]])
        book.save()
        book.write_block("Stock", 2, online, [[11]])
        book.save()  # a second save in one session
    after = load_workbook(path)
    old, new = before["Stock"], after["Stock"]
    assert [c.value for c in new["D"]][1:5] == [11, 2, 3, 4]
    for ref in ("A1", "A2", "B2", "C3", "G2", "G3"):
        assert new[ref].value == old[ref].value
        assert repr(new[ref].font) == repr(old[ref].font)
        assert repr(new[ref].fill) == repr(old[ref].fill)
        assert new[ref].number_format == old[ref].number_format
    assert new["B5"].value == "99999" and new["B5"].data_type == "s"
    assert new.column_dimensions["A"].width == 33 and new.column_dimensions["C"].width == 41
    assert [str(dv.sqref) for dv in new.data_validations.dataValidation] == ["A2:A500"]
    assert new.data_validations.dataValidation[0].formula1 == '"Acme 0,Acme 1,Acme 2,Other"'
    assert [str(cf.sqref) for cf in new.conditional_formatting] == ["D2:D500"]
    assert after.defined_names["Suppliers"].attr_text == "Stock!$A$2:$A$500"
    assert new["G2"].comment.text == "top shelf"
    assert new["G3"].hyperlink.target == "https://example.com/shelf"
    assert {r.coord for r in after["Notes"].merged_cells.ranges} == {"A1:D1"}
    assert after["Notes"]["A3"].value == dt.datetime(2025, 3, 1, 9, 30)
    assert after.calculation.fullCalcOnLoad  # Excel recomputes what openpyxl cannot
    assert leftovers(tmp_path, "stock.xlsx") == []


def test_macro_workbook_keeps_its_vba_project(tmp_path: Path) -> None:
    path = tmp_path / "stock.xlsm"
    path.write_bytes(workbook_bytes())
    vba = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 8
    edit_part(path, "[Content_Types].xml",
              r"application/vnd\.openxmlformats-officedocument\.spreadsheetml\.sheet\.main\+xml",
              "application/vnd.ms-excel.sheet.macroEnabled.main+xml")
    add_content_type(path, default=("bin", "application/vnd.ms-office.vbaProject"))
    edit_part(path, "xl/_rels/workbook.xml.rels", "</Relationships>",
              '<Relationship Id="rIdVba" Type="http://schemas.microsoft.com/office/2006/'
              'relationships/vbaProject" Target="vbaProject.bin"/></Relationships>')
    rewrite(path, {"xl/vbaProject.bin": vba})
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 1, [["A1"]])
        book.save()
    assert read_part(path, "xl/vbaProject.bin") == vba
    assert b"macroEnabled" in read_part(path, "[Content_Types].xml")
    # The same package named .xlsx keeps them too: no part is dropped, whatever the name.
    renamed = tmp_path / "stock.xlsx"
    renamed.write_bytes(path.read_bytes())
    with XlsxFile.open(renamed) as book:
        book.write_block("Stock", 2, 1, [["A2"]])
        book.save()
    assert read_part(renamed, "xl/vbaProject.bin") == vba


def test_save_keeps_file_mode_and_replaces_the_target_of_a_link(tmp_path: Path) -> None:
    real = merchant_workbook(tmp_path / "real.xlsx")
    os.chmod(real, 0o640)
    link = tmp_path / "link.xlsx"
    link.symlink_to(real)
    with XlsxFile.open(link) as book:
        assert book.path == real
        book.write_block("Stock", 2, 4, [[77]])
        book.save()
    assert link.is_symlink()
    assert (real.stat().st_mode & 0o777) == 0o640
    assert load_workbook(real)["Stock"]["D2"].value == 77


def test_unwritable_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")

    def refuse(path: Path) -> int:  # the suite runs as root, which chmod cannot stop
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(locking, "_open", refuse)
    with pytest.raises(WorkbookError, match="cannot write in the workbook's folder"):
        XlsxFile.open(path)
    assert leftovers(tmp_path, "stock.xlsx") == []


def test_read_only_opening_takes_no_lock_and_cannot_save(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as writer, \
            XlsxFile.open(path, writable=False) as reader:
        assert reader.read_sheet("Stock")[0][0] == "Supplier"
        with pytest.raises(WorkbookError, match="reading only"):
            reader.save()
        writer.save()
    book = XlsxFile.open(path)
    book.close()
    book.close()
    with pytest.raises(WorkbookError, match="was closed"):
        book.read_sheet("Stock")


# --- atomic saves under faults -----------------------------------------------------------


def _failing_after(calls: int, error: BaseException):
    state = {"left": calls}

    def fail(*args: object, **kwargs: object) -> None:
        if state["left"] == 0:
            raise error
        state["left"] -= 1

    return fail


SAVE_STEPS = ("temp file write", "temp file fsync", "check of the saved copy",
              "rename over the original")


def _half_written(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """The temporary file gets written, then the write fails (a full disk, a bad sector)."""
    real_write = adapter_module._write_temp

    def half_written(temp: Path, data: bytes) -> None:
        real_write(temp, data[: len(data) // 2])
        raise error

    monkeypatch.setattr(adapter_module, "_write_temp", half_written)


@pytest.mark.parametrize("step", SAVE_STEPS)
def test_a_failure_at_any_save_step_leaves_the_original_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    original = path.read_bytes()
    error = OSError(errno.EIO, "Input/output error")
    if step == "temp file write":
        _half_written(monkeypatch, error)
    elif step == "temp file fsync":
        monkeypatch.setattr(os, "fsync", _failing_after(0, error))
    elif step == "check of the saved copy":
        def truncate_then_check(temp: Path, label: str, written: set[str]) -> None:
            temp.write_bytes(temp.read_bytes()[:100])
            adapter_module.zipfile.ZipFile(temp)

        monkeypatch.setattr(adapter_module, "_check_saved", truncate_then_check)
    elif step == "rename over the original":
        monkeypatch.setattr(os, "replace", _failing_after(0, error))
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 4, [[123]])
        with pytest.raises(WorkbookError) as caught:
            book.save()
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == original
    assert leftovers(tmp_path, "stock.xlsx") == []


def test_interrupt_during_save_removes_the_temp_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    original = path.read_bytes()
    monkeypatch.setattr(os, "replace", _failing_after(0, KeyboardInterrupt()))
    with XlsxFile.open(path) as book, pytest.raises(KeyboardInterrupt):
        book.write_block("Stock", 2, 4, [[8]])
        book.save()
    assert path.read_bytes() == original
    assert leftovers(tmp_path, "stock.xlsx") == []


def test_directory_fsync_failure_does_not_fail_a_done_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    monkeypatch.setattr(os, "fsync", _failing_after(1, OSError(errno.EINVAL, "Invalid")))
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 4, [[55]])
        book.save()
    assert load_workbook(path)["Stock"]["D2"].value == 55


@pytest.mark.parametrize("code", [errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)])
def test_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    original = path.read_bytes()
    _half_written(monkeypatch, OSError(code, os.strerror(code)))
    with XlsxFile.open(path) as book, pytest.raises(WorkbookError) as caught:
        book.write_block("Stock", 2, 4, [[8]])
        book.save()
    assert "disk is full" in str(caught.value) and "unchanged" in str(caught.value)
    assert path.read_bytes() == original
    assert leftovers(tmp_path, "stock.xlsx") == []


def test_workbook_open_in_excel_names_the_owner(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    original = path.read_bytes()
    monkeypatch.setattr(os, "replace", _failing_after(0, PermissionError(13, "Access denied")))
    with XlsxFile.open(path) as book, pytest.raises(WorkbookError) as caught:
        # Excel opened the workbook while xlstock was working on it
        (tmp_path / "~$stock.xlsx").write_bytes(excel_owner_file("Zoë Ünal"))
        book.write_block("Stock", 2, 4, [[8]])
        book.save()
    message = str(caught.value)
    assert "open in another program (Excel?)" in message
    assert "Zoë Ünal" in message and "close it and try again" in message
    assert path.read_bytes() == original
    assert leftovers(tmp_path, "stock.xlsx", "~$stock.xlsx") == []


def test_excel_owner_file_formats(tmp_path: Path) -> None:
    book = tmp_path / "b.xlsx"
    assert excel_lock_owner(book) is None
    owner = tmp_path / "~$b.xlsx"
    owner.write_bytes(excel_owner_file("Jane Doe"))
    assert excel_lock_owner(book) == "Jane Doe"
    word = bytearray(162)
    word[0] = 3
    word[1:4] = b"Bob"
    word[54:56] = (3).to_bytes(2, "little")
    word[56:62] = "Bob".encode("utf-16-le")
    owner.write_bytes(bytes(word))
    assert excel_lock_owner(book) == "Bob"
    owner.write_bytes(b"\x04Anna")  # cut short: the code-page copy still names her
    assert excel_lock_owner(book) == "Anna"
    owner.write_bytes(b"\x00garbage")
    assert excel_lock_owner(book) is None


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    (tmp_path / ".stock.xlsx.deadbeef.xlstock-tmp").write_bytes(b"half a save")
    (tmp_path / ".other.xlsx.deadbeef.xlstock-tmp").write_bytes(b"not ours")
    with XlsxFile.open(path):
        pass
    assert leftovers(tmp_path, "stock.xlsx") == [".other.xlsx.deadbeef.xlstock-tmp"]


# --- the per-workbook lock --------------------------------------------------------------


def test_second_run_on_the_same_workbook_is_refused(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path):
        with pytest.raises(WorkbookError) as caught:
            XlsxFile.open(path)
        message = str(caught.value)
        assert message.startswith(f"another xlstock run is working on {path} (since ")
        assert f"pid {os.getpid()}" in message and "wait for it to finish" in message
    with XlsxFile.open(path):  # released on leaving the first
        pass
    with pytest.raises(RuntimeError), XlsxFile.open(path):
        raise RuntimeError("boom")
    with XlsxFile.open(path):  # released even when the work failed
        pass


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    holder = textwrap.dedent(
        f"""
        import sys
        from xlstock.workbook.xlsx_file import XlsxFile
        with XlsxFile.open({str(path)!r}):
            print("locked", flush=True)
            sys.stdin.read()
        """
    )
    with subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        try:
            assert proc.stdout.readline().strip() == "locked"
            with pytest.raises(WorkbookError, match=f"pid {proc.pid}"):
                XlsxFile.open(path)
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
    with XlsxFile.open(path):
        pass


def test_lock_dies_with_its_process(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    holder = (
        "import os\nfrom xlstock.workbook.xlsx_file import XlsxFile\n"
        f"book = XlsxFile.open({str(path)!r})\nos._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", holder], check=False, timeout=60)
    with XlsxFile.open(path):  # killed holders leave no lock behind
        pass


# --- content only Excel and LibreOffice understand is kept, byte for byte --------------


def _chart_workbook(path: Path) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws.append(["SKU", "Online"])
    ws.append(["A", 3])
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=2), titles_from_data=True)
    ws.add_chart(chart, "D2")
    wb.save(path)
    return path


def _parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_a_chart_is_kept_byte_for_byte(tmp_path: Path) -> None:
    path = _chart_workbook(tmp_path / "stock.xlsx")
    before = _parts(path)
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 2, [[4]])
        book.save()
    after = _parts(path)
    for name in ("xl/charts/chart1.xml", "xl/drawings/drawing1.xml",
                 "xl/drawings/_rels/drawing1.xml.rels", "xl/worksheets/_rels/sheet1.xml.rels"):
        assert after[name] == before[name], name
    with XlsxFile.open(path, writable=False) as book:
        assert book.read_sheet("Stock")[1] == ["A", 4]
    assert leftovers(tmp_path, "stock.xlsx") == []


def test_pictures_pivots_slicers_form_controls_and_extensions_are_kept(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    rewrite(path, {"xl/media/image1.png": png,
                   "xl/pivotTables/pivotTable1.xml": b"<pivotTableDefinition/>",
                   "xl/slicers/slicer1.xml": b"<slicers/>"})
    add_content_type(path, default=("png", "image/png"), override=(
        "xl/pivotTables/pivotTable1.xml",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.pivotTable+xml"))
    add_content_type(path, override=("xl/slicers/slicer1.xml",
                                     "application/vnd.ms-excel.slicer+xml"))
    with zipfile.ZipFile(path) as zf:
        vml_name = next(n for n in zf.namelist() if n.endswith(".vml"))
    vml = read_part(path, vml_name).replace(b'ObjectType="Note"', b'ObjectType="Button"')
    rewrite(path, {vml_name: vml})
    extension = ('<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
                 'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
                 '<x14:dataValidations count="0"/></ext></extLst></worksheet>')
    edit_part(path, SHEET1, "</worksheet>", extension)
    before = _parts(path)
    with XlsxFile.open(path) as book:
        grid = book.read_sheet("Stock")
        book.write_block("Stock", 2, grid[0].index("Online") + 1, [[77]])
        book.save()
    after = _parts(path)
    changed = {name for name in before if after.get(name) != before[name]}
    assert SHEET1 in changed and changed <= {SHEET1, "xl/workbook.xml"}  # + fullCalcOnLoad
    assert extension.encode() in after[SHEET1]


def test_only_the_written_cells_change(tmp_path: Path) -> None:
    path = merchant_workbook(tmp_path / "stock.xlsx")
    with XlsxFile.open(path) as book:  # a first save sets fullCalcOnLoad once
        book.write_block("Stock", 2, 4, [[1]])
        book.save()
    before = read_part(path, SHEET1)
    with XlsxFile.open(path) as book:
        book.write_block("Stock", 2, 4, [[2]])
        book.save()
    after = read_part(path, SHEET1)
    assert len(after) == len(before)
    difference = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(difference) == 1  # the one digit of D2
    with XlsxFile.open(path) as book:  # writing what is there already changes nothing
        book.write_block("Stock", 2, 4, [[2]])
        book.save()
    assert read_part(path, SHEET1) == after


def test_a_workbook_open_in_excel_is_not_written_behind_its_back(tmp_path):
    from xlstock.workbook.template import build_workbook

    path = tmp_path / "stock.xlsx"
    build_workbook(path)
    name = "Marie"
    owner = bytes([len(name)]) + name.encode("cp1252")
    owner = owner.ljust(55, b" ") + len(name).to_bytes(2, "little") + name.encode("utf-16-le")
    (tmp_path / "~$stock.xlsx").write_bytes(owner)
    before = path.read_bytes()
    with pytest.raises(WorkbookError, match=r"open in Excel by Marie.*delete ~\$stock\.xlsx"):
        XlsxFile.open(path)
    with XlsxFile.open(path, writable=False) as book:  # reading is fine
        assert "Stock" in book.sheet_names()
    assert path.read_bytes() == before


@pytest.mark.parametrize(("code", "is_date"), [
    ("yyyy-mm-dd", True), ("d-mmm", True), ("[h]:mm:ss", True), ("[$-409]d/m/yy h:mm", True),
    ("0.00", False), ('"days" 0', False), ("[Red]#,##0", False), ("General", False),
    ("0%", False), ('0 "m"', False),
])
def test_date_formats_are_told_apart(code: str, is_date: bool) -> None:
    assert adapter_module.is_date_format(code) is is_date


@pytest.mark.parametrize(("serial", "when"), [
    (0.25, dt.datetime(1899, 12, 30, 6)),  # a time alone
    (1, dt.datetime(1900, 1, 1)),
    (59, dt.datetime(1900, 2, 28)),  # before Excel's 29 February 1900 that never was
    (61, dt.datetime(1900, 3, 1)),
    (45000.5, dt.datetime(2023, 3, 15, 12)),
])
def test_serial_dates_both_ways(serial: float, when: dt.datetime) -> None:
    epoch = adapter_module._WINDOWS_EPOCH
    assert adapter_module.serial_to_datetime(serial, epoch) == when
    assert adapter_module.datetime_to_serial(when, epoch) == serial


def _unusual_forms() -> dict[str, object]:
    """Forms of a sheet's XML that Excel, LibreOffice and openpyxl do not write but other
    programs may: each edits the sheet text as a regular expression would."""
    def prefixed(xml: str) -> str:
        xml = xml.replace('xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"',
                          'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"')
        return re.sub(r"<(/?)([a-zA-Z]+)([\s>/])", r"<\1x:\2\3", xml)

    def without_references(xml: str) -> str:
        return re.sub(r'<(row|c) r="[A-Z]*[0-9]+"', r"<\1", xml)

    def single_quotes(xml: str) -> str:
        return re.sub(r'(<(?:row|c)\b[^>]*)', lambda m: m.group(1).replace('"', "'"), xml)

    def with_a_comment(xml: str) -> str:
        return xml.replace("<sheetData>", "<sheetData><!-- made by hand -->")

    return {"prefixed": prefixed, "without references": without_references,
            "single quotes": single_quotes, "a comment": with_a_comment}


@pytest.mark.parametrize("form", sorted(_unusual_forms()))
def test_sheets_in_unusual_forms_are_read_and_patched(tmp_path: Path, form: str) -> None:
    path = tmp_path / "stock.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    for row in (["SKU", "Online", "Note"], ["A-1", 5, "x"], ["B-2", 7, None]):
        ws.append(row)
    wb.save(path)
    edit = _unusual_forms()[form]
    rewrite(path, {SHEET1: edit(read_part(path, SHEET1).decode()).encode()})  # type: ignore[operator]
    with XlsxFile.open(path) as book:
        assert book.read_sheet("Stock") == [["SKU", "Online", "Note"], ["A-1", 5, "x"],
                                            ["B-2", 7, None]]
        book.write_block("Stock", 2, 2, [[9], [10]])
        book.write_block("Stock", 4, 1, [["C-3", 4, "new"]])
        book.write_block("Stock", 2, 4, [["ok"]])
        book.save()
    expected = [["SKU", "Online", "Note", None], ["A-1", 9, "x", "ok"],
                ["B-2", 10, None, None], ["C-3", 4, "new", None]]
    with XlsxFile.open(path, writable=False) as book:
        assert book.read_sheet("Stock") == expected
    loaded = load_workbook(path)["Stock"]
    assert [[c.value for c in row] for row in loaded.iter_rows()] == expected



def test_rows_a_first_sync_appends_are_the_files_own_not_a_second_copy(tmp_path: Path) -> None:
    """A first Sync appends every row of the shop: the table held a list per row beside
    the file's own (130 MB at 1,000,000 SKUs: issue 22); it takes the file's rows, as it
    does for the rows it read, and the values read back are the ones written."""
    path = tmp_path / "stock.xlsx"
    path.write_bytes(workbook_bytes())
    with XlsxFile.open(path) as book:
        table = layout.read_stock(book, [layout.SKU, layout.ONLINE])
        layout.write_column(book, table, layout.SKU, ["A-1", "A-2", "A-3"])
        own = book.read_sheet(layout.STOCK_SHEET, shared=True)
        assert table.shared == 3
        assert all(mine is theirs for mine, theirs in zip(table.rows, own[1:], strict=True))
        layout.write_column(book, table, layout.ONLINE, [5, None, 7])
        layout.write_column(book, table, layout.CHANGE, [None] * 5)  # two blank rows more
        assert len(table.rows) == 5 and table.shared == 3
        assert all(len(row) >= table.width for row in table.rows)
        assert table.column(layout.SKU) == ["A-1", "A-2", "A-3", None, None]
        assert table.column(layout.ONLINE) == [5, None, 7, None, None]
        book.save()
    with XlsxFile.open(path) as book:
        again = layout.read_stock(book)
        assert again.column(layout.SKU) == ["A-1", "A-2", "A-3"]
        assert again.column(layout.ONLINE) == [5, None, 7]


def test_rows_written_below_the_last_are_as_wide_as_row_1_at_once(tmp_path: Path) -> None:
    """A row grown cell by cell to 9 cells held room for 16: 56 MB over a first Sync's
    1,000,000 rows (issue 22). A new row is made as wide as the header row."""
    import sys

    path = tmp_path / "stock.xlsx"
    path.write_bytes(workbook_bytes())
    with XlsxFile.open(path) as book:
        width = len(book.read_sheet(layout.STOCK_SHEET)[0])
        book.write_block(layout.STOCK_SHEET, 2, 1, [["A-1"], ["A-2"]])
        book.write_block(layout.STOCK_SHEET, 2, width, [["new"], ["new"]])
        rows = book.read_sheet(layout.STOCK_SHEET, shared=True)[1:]
        assert [row[0] for row in rows] == ["A-1", "A-2"]
        assert [row[width - 1] for row in rows] == ["new", "new"]
        assert all(sys.getsizeof(row) == sys.getsizeof([None] * width) for row in rows)
        assert book.read_sheet(layout.STOCK_SHEET)[1][1:width - 1] == [None] * (width - 2)


def test_a_column_written_down_new_rows_notes_no_list_of_every_row(tmp_path: Path) -> None:
    """Writing 100,000 new rows' SKUs made a list of every row's offset twice (70 MB at
    a first Sync of 1,000,000 SKUs: issue 22): what the write holds for a moment beyond
    what it keeps is now the column's current values, a few bytes a row."""
    import tracemalloc

    path = tmp_path / "stock.xlsx"
    path.write_bytes(workbook_bytes())
    count = 100_000
    skus = [f"SKU-{i:07d}" for i in range(count)]
    with XlsxFile.open(path) as book:
        table = layout.read_stock(book, [layout.SKU])
        tracemalloc.start()
        try:
            layout.write_column(book, table, layout.SKU, skus)
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert table.column(layout.SKU) == skus
    assert peak - kept < 32 * count, (peak - kept)  # it was 68 bytes a row
