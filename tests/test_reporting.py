"""xlstock.cli.reporting: the report as the terminal shows it, and progress on stderr."""

from __future__ import annotations

import pytest

from xlstock.actions import Report
from xlstock.cli import reporting
from xlstock.cli.reporting import Progress, format_output, format_report, format_table
from xlstock.errors import RowProblem, SheetError


def test_the_table_puts_skus_left_numbers_right_and_cuts_only_a_long_sku() -> None:
    long_sku = "S" * 50
    lines = format_table([("A-1", "5", "+3", "8", "+3 received"),
                          (long_sku, "120", "-20", "100", "counted 100, a long note " * 3)])
    assert lines[0].split() == ["SKU", "Online", "Change", "Publish", "Note"]
    assert lines[1].startswith("A-1 ") and "    5" in lines[1]
    assert "S" * 37 + "..." in lines[2] and "S" * 38 not in lines[2]
    assert lines[2].endswith("counted 100, a long note counted 100, a long note counted 100, "
                             "a long note")
    assert lines[1].index("+3") + 2 == lines[2].index("-20") + 3  # right-aligned


def test_a_long_table_says_how_many_rows_it_leaves_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporting, "MAX_TABLE_ROWS", 2)
    lines = format_table([(f"S{n}", "1", "+1", "2", "") for n in range(5)], indent="  ")
    assert len(lines) == 4
    assert lines[-1] == "  ... and 3 more rows (see the workbook)"


def test_stdout_has_the_summary_unless_rows_are_at_fault() -> None:
    fine = Report("preview", "Publish would change 1 row(s).", ["a detail"],
                  [("A", "1", "+1", "2", "")])
    assert format_output(fine).splitlines()[-2:] == ["a detail", "Publish would change 1 row(s)."]
    error = SheetError("1 row(s) of sheet Stock need fixing",
                       [RowProblem(3, "B", "Received is not a whole number")])
    blocked = Report("validate", error.message, ["a detail"], error=error)
    assert format_output(blocked) == "a detail"  # the rows and summary go to stderr
    assert format_report(blocked).splitlines() == [
        "a detail", "1 row(s) of sheet Stock need fixing",
        "  Stock row 3, SKU 'B': Received is not a whole number"]


def test_progress_off_a_terminal_is_one_line_a_stage(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress()
    progress.tty = False
    for message, fraction in [("Reading", 0.1), ("Reading", 0.2), ("Saving", 0.9)]:
        progress(message, fraction)
    progress.close()
    assert capsys.readouterr().err.splitlines() == ["xlstock: Reading", "xlstock: Saving"]
    Progress(quiet=True)("Reading", 0.1)
    assert capsys.readouterr().err == ""


def test_progress_on_a_terminal_draws_a_bar_and_ends_its_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress()
    progress.tty = True
    progress("Reading the live levels", 0.5)
    progress("Sync done", 1.0)
    err = capsys.readouterr().err
    assert "\r[############------------]  50% Reading the live levels" in err
    assert err.endswith("\n") and err.rstrip().endswith("] 100% Sync done")
