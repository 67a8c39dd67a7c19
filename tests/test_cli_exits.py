"""The exit statuses: decided by the command line from error classes, nowhere else."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path
from typing import NoReturn

import pytest
from click.testing import CliRunner

import xlstock
from xlstock.actions import Report
from xlstock.cli.exits import EXIT_STATUSES, exit_status
from xlstock.errors import (
    ConflictError,
    MassChangeError,
    MissingExtra,
    OutcomeUnknown,
    ReadOnlyWorkbookError,
    ServiceError,
    ServiceRefused,
    ServiceUnreachable,
    SheetError,
    StaleVersion,
    UsageError,
    WorkbookChangedError,
    WorkbookError,
    XlstockError,
)
from xlstock.server.storage import LevelChangesRefused

EXPECTED: dict[type[XlstockError], int] = {
    XlstockError: 1,
    WorkbookError: 1,
    WorkbookChangedError: 1,
    ReadOnlyWorkbookError: 1,
    SheetError: 1,
    MassChangeError: 1,
    ConflictError: 3,
    UsageError: 2,
    MissingExtra: 2,
    LevelChangesRefused: 2,
    ServiceError: 4,
    ServiceUnreachable: 4,
    ServiceRefused: 4,
    StaleVersion: 4,
    OutcomeUnknown: 4,
}
"""Every error class and the status docs/cli.md and CONTRACT.md give it."""

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _every_error_class() -> set[type[XlstockError]]:
    for module in pkgutil.walk_packages(xlstock.__path__, "xlstock."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    found: set[type[XlstockError]] = set()
    todo: list[type[XlstockError]] = [XlstockError]
    while todo:
        kind = todo.pop()
        found.add(kind)
        todo.extend(kind.__subclasses__())
    return found


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda kind: kind.__name__)
def test_each_error_class_has_its_exit_status(kind: type[XlstockError]) -> None:
    error = kind.__new__(kind)  # the status depends on the class alone
    assert exit_status(error) == EXPECTED[kind]


def test_every_error_class_in_xlstock_is_pinned() -> None:
    assert _every_error_class() == set(EXPECTED), "pin the new class's exit status above"


def test_the_table_puts_the_most_specific_class_first() -> None:
    classes = [kind for kind, _ in EXIT_STATUSES]
    for position, kind in enumerate(classes):
        assert not any(issubclass(later, kind) for later in classes[position + 1:]), kind
    assert classes[-1] is XlstockError


def test_the_core_does_not_know_exit_statuses() -> None:
    assert not any(hasattr(kind, "exit_code") for kind in EXPECTED)
    assert "exit_code" not in {field.name for field in dataclasses.fields(Report)}


def test_the_documented_statuses_are_those_the_table_gives() -> None:
    documented = {int(status) for status in re.findall(r"^\| (\d+) \|", DOCS.read_text(),
                                                        re.MULTILINE)}
    assert documented == {0, 130} | {status for _, status in EXIT_STATUSES}


def _interrupted(*args: object, **kwargs: object) -> NoReturn:
    raise KeyboardInterrupt


@pytest.mark.parametrize("args", [
    ["validate", "stock.xlsx"],
    ["sync", "stock.xlsx"],
    ["order", "--service", "http://127.0.0.1:9", "--shop", "https://shop.example", "A-1=1"],
], ids=lambda args: args[0])
def test_ctrl_c_ends_a_merchant_command_with_130(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from xlstock.cli import main, workbook_commands
    from xlstock.remote.client import HttpStockServiceClient

    monkeypatch.setattr(workbook_commands, "open_workbook", _interrupted)
    monkeypatch.setattr(HttpStockServiceClient, "from_settings", _interrupted)
    result = CliRunner().invoke(main, args, env={"XLSTOCK_TOKEN": "t"})
    assert result.exit_code == 130, result.output
    assert "stopped by Ctrl-C" in result.output
