"""How every ``xlstock`` command ends on an error: the message on stderr as
``xlstock: <message>`` (no traceback) and the contract's exit status."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from xlstock.errors import XlstockError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130
"""Ctrl-C, as a shell reports a process stopped by SIGINT."""


def reports_errors(func: F) -> F:
    """Turn an :class:`XlstockError` into its one-line message and exit status."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except XlstockError as error:
            click.echo(f"xlstock: {error}", err=True)
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]
