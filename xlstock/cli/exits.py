"""How every ``xlstock`` command ends: the one place that decides the exit status.

The contract's statuses (docs/cli.md): ``0`` done; ``1`` the sheet has errors (rows
named, nothing sent); ``2`` usage error; ``3`` conflict (nothing sent); ``4`` the stock
service could not be reached or refused. The core raises errors of the
:mod:`xlstock.errors` tree and actions return reports; neither knows these numbers.
An error ends a command as ``xlstock: <message>`` on stderr (no traceback) and the
status :data:`EXIT_STATUSES` gives its class; a report that names rows at fault
(preview, validate) carries them as such an error (``Report.error``), and ends the
same way.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from xlstock import interrupts
from xlstock.errors import (
    ConflictError,
    MassChangeError,
    ServiceError,
    SheetError,
    UsageError,
    WorkbookError,
    XlstockError,
)
from xlstock.i18n import _

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_SHEET = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_SERVICE = 4
EXIT_INTERRUPTED = 130
"""Ctrl-C, as a shell reports a process stopped by SIGINT."""

EXIT_STATUSES: tuple[tuple[type[XlstockError], int], ...] = (
    (ConflictError, EXIT_CONFLICT),  # a SheetError: before it
    (SheetError, EXIT_SHEET),
    (MassChangeError, EXIT_SHEET),
    (WorkbookError, EXIT_SHEET),
    (UsageError, EXIT_USAGE),  # MissingExtra, a refused catalogue ...
    (ServiceError, EXIT_SERVICE),  # unreachable, refused, stale, outcome unknown
    (XlstockError, EXIT_SHEET),
)
"""Error class -> exit status, most specific class first: the first class the error
is an instance of decides."""


def exit_status(error: XlstockError) -> int:
    """The exit status for ``error``: that of the first class in :data:`EXIT_STATUSES`
    it is an instance of."""
    for kind, status in EXIT_STATUSES:
        if isinstance(error, kind):
            return status
    raise AssertionError("EXIT_STATUSES ends with XlstockError")  # pragma: no cover


def reports_errors(func: F) -> F:
    """Turn an :class:`XlstockError` into its one-line message and exit status."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except XlstockError as error:
            click.echo(said(error), err=True)
            sys.exit(exit_status(error))

    return wrapper  # type: ignore[return-value]


def reports_errors_and_ctrl_c(func: F) -> F:
    """Errors as every command reports them (:func:`reports_errors`), and Ctrl-C said
    in the merchant's words with :data:`EXIT_INTERRUPTED` (the workbook and order
    commands; ``serve`` stops on Ctrl-C by itself)."""
    reporting = reports_errors(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return reporting(*args, **kwargs)
        except KeyboardInterrupt:
            interrupts.handled()
            if sys.stderr.isatty():
                click.echo(err=True)
            click.echo(said(interrupted()), err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def said(message: object) -> str:
    """A line xlstock says on stderr: ``xlstock: <message>`` (``xlstock : `` in French,
    whose colon takes a space before it)."""
    return _("xlstock: {message}", message=message)


def interrupted() -> str:
    """What Ctrl-C says, in the merchant's language."""
    return _("stopped by Ctrl-C. The workbook is as it was or completely saved; a publish "
             "that was under way is finished by the next `xlstock publish`, which sends "
             "nothing twice")
