"""Reports as plain text, for the terminal (CLI, demo), and progress on stderr."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from xlstock.cli.exits import said
from xlstock.i18n import N_, _

if TYPE_CHECKING:
    from xlstock.actions import Report

quiet_option = click.option(
    "-q", "--quiet", is_flag=True,
    help="Quiet: no progress on stderr, and no chatter on stdout (errors are still said).",
)
"""The ``-q`` every command takes (docs/cli.md says what each one leaves out)."""

TABLE_HEADERS = ("SKU", N_("Online"), N_("Change"), N_("Publish"), N_("Note"))
"""The table's column names, in English: :func:`format_table` shows them translated
(SKU is SKU in every language, as on sheet Stock)."""
MAX_TABLE_ROWS = 500


def format_table(rows: list[tuple[str, str, str, str, str]], indent: str = "") -> list[str]:
    """Aligned columns: SKU and note left, numbers right. A SKU over 40 characters is
    cut with "..."; the note, last on the line, is never cut."""
    headers = [TABLE_HEADERS[0], *(_(header) for header in TABLE_HEADERS[1:])]
    shown = [(_cut(row[0]), *row[1:]) for row in rows[:MAX_TABLE_ROWS]]
    widths = [max(len(headers[c]), *(len(row[c]) for row in shown)) for c in range(4)]
    fmt = "  ".join(
        f"{{:<{w}}}" if c == 0 else f"{{:>{w}}}" for c, w in enumerate(widths)
    ) + "  {}"
    lines = [indent + fmt.format(*headers).rstrip()]
    lines += [indent + fmt.format(*row).rstrip() for row in shown]
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(indent + _("... and {count:n} more rows (see the workbook)",
                                count=len(rows) - MAX_TABLE_ROWS))
    return lines


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_report(report: Report, indent: str = "") -> str:
    """The table (if any), the detail lines, then the summary; for a report with rows
    at fault (``report.error``), the rows and their summary follow the lines."""
    lines = format_table(report.table, indent) if report.table else []
    lines += [indent + line for line in report.lines]
    if report.error is not None:
        lines += [indent + line for line in str(report.error).splitlines()]
    else:
        lines.append(indent + report.summary)
    return "\n".join(lines)


def format_output(report: Report) -> str:
    """What the command line prints on stdout: the table and the detail lines, and
    the summary unless rows are at fault (those go to stderr, as every error does)."""
    if report.error is None:
        return format_report(report)
    lines = format_table(report.table) if report.table else []
    return "\n".join(lines + report.lines)


class Progress:
    """Progress on stderr: a bar on a terminal, one line per stage otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._last = ""

    def __call__(self, message: str, fraction: float | None) -> None:
        if self.quiet:
            return
        if self.tty:
            width = 24
            done = int(width * (fraction or 0))
            bar = "#" * done + "-" * (width - done)
            pct = f"{int(100 * fraction):3d}%" if fraction is not None else "    "
            line = f"\r[{bar}] {pct} {message}"[:100]
            click.echo(line.ljust(len(self._last)), err=True, nl=False)
            self._last = line
            if fraction is not None and fraction >= 1.0:
                click.echo(err=True)
                self._last = ""
        elif message != self._last:
            click.echo(said(message), err=True)
            self._last = message

    def close(self) -> None:
        if self.tty and self._last:
            click.echo(err=True)
            self._last = ""
