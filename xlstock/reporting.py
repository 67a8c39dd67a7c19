"""Reports as plain text, for the terminal (CLI, demo)."""

from __future__ import annotations

from xlstock.actions import Report

TABLE_HEADERS = ("SKU", "Online", "Change", "Publish", "Note")
MAX_TABLE_ROWS = 500


def format_table(rows: list[tuple[str, str, str, str, str]], indent: str = "") -> list[str]:
    """Aligned columns: SKU and note left, numbers right; long cells cut at 40."""
    widths = [
        min(40, max(len(TABLE_HEADERS[c]), *(len(row[c]) for row in rows))) for c in range(5)
    ]
    fmt = "  ".join(
        f"{{:<{w}}}" if c in (0, 4) else f"{{:>{w}}}" for c, w in enumerate(widths)
    )
    lines = [indent + fmt.format(*TABLE_HEADERS).rstrip()]
    lines += [indent + fmt.format(*(cell[:40] for cell in row)).rstrip()
              for row in rows[:MAX_TABLE_ROWS]]
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(f"{indent}... and {len(rows) - MAX_TABLE_ROWS} more rows (see the workbook)")
    return lines


def format_report(report: Report, indent: str = "") -> str:
    """The table (if any), the detail lines, then the summary."""
    lines = format_table(report.table, indent) if report.table else []
    lines += [indent + line for line in report.lines]
    lines.append(indent + report.summary)
    return "\n".join(lines)
