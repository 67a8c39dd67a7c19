"""``python -m xlstock``, and the ``xlstock`` console script (:func:`run`).

Python has to load click and the commands before any of them can catch a Ctrl-C (about
50 ms), so :func:`run`, in this module that imports nothing, loads them inside its own
handling. A Ctrl-C at any moment of a run, loading included, ends it the same way: one
line on stderr and status 130, never a traceback and never death by the signal; once
the command is done, a Ctrl-C leaves its status as it is. A Ctrl-C that Python drops
(raised inside a ``__del__`` or a weakref callback) is raised again
(:mod:`xlstock.interrupts`).
"""

from __future__ import annotations

import sys  # loaded by Python itself: nothing is imported before run() is in charge

from xlstock import interrupts  # builtin modules only

EXIT_INTERRUPTED = 130
"""Ctrl-C, as a shell reports a process stopped by SIGINT (``cli.exits`` says the same)."""


def run() -> None:
    """The ``xlstock`` command: the click group (:data:`xlstock.cli.main`), Ctrl-C said
    in one line with status 130 wherever it comes."""
    status: int | str | None
    interrupts.watch()
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
    except Exception as error:
        if not _caused_by_ctrl_c(error):
            raise
        status = _interrupted()
    sys.exit(status)


def _caused_by_ctrl_c(error: BaseException) -> bool:
    """Whether ``error`` stands for a Ctrl-C: Python 3.11 turns a KeyboardInterrupt
    raised while a class is made (in a ``__set_name__``, as an import runs
    ``@dataclass`` or ``functools.cached_property``) into a RuntimeError."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _run_commands() -> int | None:
    _give_back_large_blocks()
    import click

    from xlstock.cli import main
    from xlstock.cli.click_texts import translate_help

    translate_help(main)  # --help in the merchant's language
    try:
        return main.main(prog_name="xlstock", standalone_mode=False)
    except click.exceptions.Abort:  # click's word for a Ctrl-C in its own code
        raise KeyboardInterrupt from None
    except click.ClickException as error:  # a usage error: click's message, status 2
        error.show()
        return error.exit_code


MMAP_THRESHOLD = 4 * 1024 * 1024
"""Blocks of this size or more are mapped apart by glibc's malloc, and given back to the
system as soon as they are freed (:func:`_give_back_large_blocks`)."""


def _give_back_large_blocks() -> None:
    """glibc's ``malloc`` raises its threshold for mapping a block apart up to 32 MB
    once a large block is freed: the lists, sets and dicts of a million rows (8 to 33
    MB each), freed, then stay in the heap as holes that a later block of another size
    does not fill, and the peak memory of a command grows by their sum (at 1,000,000
    SKUs Sync and Publish peaked 60 to 110 MB higher, issue 22). The threshold set
    once keeps it where it is. Nothing elsewhere (another C library, or
    ``MALLOC_MMAP_THRESHOLD_`` set by the user)."""
    import os

    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter uses
    except (OSError, AttributeError):
        return
    mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD


def _ignore_ctrl_c() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupts.handled()  # one still pending is the outcome's already


def _interrupted() -> int:
    """Say that Ctrl-C stopped the run, in the commands' words, in one line (on a line
    of its own after the ``^C`` a terminal echoes)."""
    try:
        from xlstock.cli.exits import interrupted, said  # loaded again if Ctrl-C cut it short

        line = said(interrupted())
    except Exception:  # never a traceback instead of the line
        line = "xlstock: stopped by Ctrl-C"
    try:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr closed: the status still says it
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    run()
