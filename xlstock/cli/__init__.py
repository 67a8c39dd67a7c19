"""The ``xlstock`` command line (the commands: :mod:`xlstock.cli.commands`).

The console script is :func:`run`, which this module keeps cheap to import: Python has
to load click and the commands before any of them can catch a Ctrl-C, so :func:`run`
loads them inside its own handler. A Ctrl-C at any moment of a run, loading included
and after the command is done, ends it the same way: one line on stderr and status
130 (or, once the command has finished, its own status), never a traceback and never
death by the signal. ``from xlstock.cli import main`` gives the click group itself
(for ``CliRunner`` and for the docs' checks).
"""

from __future__ import annotations

import sys  # loaded by Python itself: nothing is imported before run() is in charge

INTERRUPTED = (
    "stopped by Ctrl-C. The workbook is as it was or completely saved; a publish that "
    "was under way is finished by the next `xlstock publish`, which sends nothing twice"
)
EXIT_INTERRUPTED = 130
"""Ctrl-C, as a shell reports a process stopped by SIGINT."""


def run() -> None:
    """The ``xlstock`` command: the click group, Ctrl-C said in one line and status
    130 wherever it comes (see the module's docstring)."""
    status: int | str | None
    try:
        try:
            status = _run_commands()
        finally:
            _ignore_ctrl_c()  # the outcome is decided: a late Ctrl-C cannot change it
    except KeyboardInterrupt:
        _ignore_ctrl_c()
        status = _interrupted()
    except SystemExit as done:  # the commands end with sys.exit(status)
        status = done.code
    sys.exit(status)


def _run_commands() -> int | None:
    import click

    from xlstock.cli.commands import main

    try:
        return main.main(prog_name="xlstock", standalone_mode=False)
    except click.exceptions.Abort:  # click's word for a Ctrl-C in its own code
        raise KeyboardInterrupt from None
    except click.ClickException as error:  # a usage error: click's message, status 2
        error.show()
        return error.exit_code


def _ignore_ctrl_c() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupted() -> int:
    """Say that Ctrl-C stopped the run, in one line (on a line of its own after the
    ``^C`` a terminal echoes)."""
    try:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        sys.stderr.write(f"xlstock: {INTERRUPTED}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr closed: the status still says it
    return EXIT_INTERRUPTED


def __getattr__(name: str) -> object:
    """``main``, the click group, loaded on first use."""
    if name == "main":
        from xlstock.cli.commands import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EXIT_INTERRUPTED", "INTERRUPTED", "main", "run"]
