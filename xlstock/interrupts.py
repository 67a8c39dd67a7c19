"""A Ctrl-C that Python cannot lose.

Python turns a Ctrl-C into a ``KeyboardInterrupt`` raised in the main thread, in whatever
code the main thread runs at that moment. When that code is a ``__del__`` or a weakref
callback (the import system's module-lock callback is one, and a garbage collection can
run others anywhere), Python prints "Exception ignored in ..." and goes on as if nothing
had been pressed: ``xlstock sync`` then waited out its two-minute deadline on a silent
service (CI saw it once; here about one run in 150 with the machine busy).

:func:`watch` makes the Ctrl-C stick. Its handler raises ``KeyboardInterrupt`` as Python's
own does, and remembers it until :func:`handled` is called. A watcher thread raises it
again while the main thread is not busy with it, that is, while the main thread is
not inside an ``except`` or ``finally`` block. It sends a real SIGINT to the main
thread, which also wakes a blocked read. The lost one's "Exception ignored" report is
left unsaid. The code that says the Ctrl-C (``xlstock.__main__``, ``cli.exits``) calls
:func:`handled`.

Only builtin modules here: :mod:`xlstock.__main__` calls :func:`watch` before it loads
anything else. Written by hand: no library re-raises a KeyboardInterrupt that Python dropped.
"""

from __future__ import annotations

import _signal
import _thread
import sys
import time
from typing import Any

CHECK_EVERY = 0.2
"""Seconds between the watcher's looks at the main thread: a lost Ctrl-C is raised again
within this time, once the main thread is not busy with an exception."""

_pending = False
_main: int | None = None
_watcher_started = False


def watch() -> None:
    """From now on a Ctrl-C in this process is raised again until :func:`handled`
    (call it in the main thread)."""
    global _main
    _main = _thread.get_ident()
    _signal.signal(_signal.SIGINT, _on_ctrl_c)
    sys.unraisablehook = _unraisable


def handled() -> None:
    """The Ctrl-C has reached the code that says it: raise it no more."""
    global _pending
    _pending = False


def _on_ctrl_c(signum: int, frame: Any) -> None:
    global _pending, _watcher_started
    _pending = True
    if not _watcher_started and _main is not None:
        _watcher_started = True
        _thread.start_new_thread(_raise_again_while_lost, (_main,))
    raise KeyboardInterrupt


def _raise_again_while_lost(main: int) -> None:
    """The watcher: it runs as long as the process does (a look every
    :data:`CHECK_EVERY` s costs nothing) and raises a pending Ctrl-C again while the main
    thread is not busy with an exception (that is when it was lost)."""
    while True:
        time.sleep(CHECK_EVERY)
        if _pending and not _handling_an_exception(main):
            _raise_in(main)


def _handling_an_exception(thread: int) -> bool:
    """Whether ``thread`` is within an ``except`` or ``finally`` block of an exception
    (the Ctrl-C on its way up, or its clean-up under way)."""
    current: Any = sys._current_exceptions().get(thread)  # 3.10, 3.11: (type, value, tb)
    if isinstance(current, tuple):
        current = current[1]
    return current is not None


def _raise_in(thread: int) -> None:
    if hasattr(_signal, "pthread_kill"):
        _signal.pthread_kill(thread, _signal.SIGINT)  # wakes a blocked read with EINTR
    else:  # Windows: without a signal to a thread, the next bytecode is as good
        _thread.interrupt_main()


def _unraisable(unraisable: Any) -> None:
    """Python's report of an exception it dropped, but not a Ctrl-C's: that one is
    raised again, and the merchant sees the one line that says it."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _pending:
        return
    sys.__unraisablehook__(unraisable)
