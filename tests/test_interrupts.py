"""A Ctrl-C that Python drops (raised inside a ``__del__`` or a weakref callback) is
raised again (:mod:`xlstock.interrupts`): CI once saw ``xlstock sync`` wait out its
deadline on a silent service after a Ctrl-C that landed in the import system's
module-lock callback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a thread")

DROPPED = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, not ignored
{watch}
class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # the Ctrl-C lands while Python runs a __del__
        for _ in range(1000):
            pass  # ... and is raised here, where Python drops it
Finalized()
try:
    time.sleep({wait})  # a blocking wait, as on a silent stock service
except KeyboardInterrupt:
    {handled}
    print("stopped", flush=True)
    sys.exit(130)
print("not stopped", flush=True)
"""


def _run(watch: bool, wait: float) -> tuple[subprocess.CompletedProcess[str], float]:
    code = DROPPED.format(wait=wait,
        watch="from xlstock import interrupts; interrupts.watch()" if watch else "",
        handled="interrupts.handled()" if watch else "pass")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=90)
    return done, time.monotonic() - start


def test_python_drops_a_ctrl_c_raised_inside_a_finalizer() -> None:
    """What the module is for: without it, the Ctrl-C is reported as ignored and the
    wait goes on to its end."""
    done, took = _run(watch=False, wait=3)
    assert done.stdout == "not stopped\n" and took >= 3
    assert "Exception ignored" in done.stderr and "KeyboardInterrupt" in done.stderr


def test_a_dropped_ctrl_c_is_raised_again_at_once_and_unsaid() -> None:
    done, took = _run(watch=True, wait=60)
    assert (done.returncode, done.stdout, done.stderr) == (130, "stopped\n", "")
    assert took < 30


def test_a_handled_ctrl_c_is_not_raised_again() -> None:
    """Once the code that says the Ctrl-C has it, the watcher stays quiet: the process
    goes on (as ``demo --serve`` does after stopping its service)."""
    code = (
        "import os, signal, time\n"
        "from xlstock import interrupts\n"
        "interrupts.watch()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    interrupts.handled()\n"
        "time.sleep(4 * interrupts.CHECK_EVERY)\n"
        "print('went on', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "went on\n", "")


def test_a_ctrl_c_python_turns_into_another_error_is_said_as_a_ctrl_c() -> None:
    """Python 3.11 turns a KeyboardInterrupt raised in a ``__set_name__`` (a class made
    as a module loads: ``@dataclass``, ``cached_property``) into a RuntimeError; the
    command says the Ctrl-C, not a traceback (seen with a Ctrl-C during ``import click``)."""
    code = (
        "import os, signal, sys\n"
        "import xlstock.__main__ as entry\n"
        "class Named:\n"
        "    def __set_name__(self, owner, name):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        for _ in range(1000):\n"
        "            pass\n"
        "def commands():\n"
        "    class Made:\n"
        "        field = Named()\n"
        "    return 0\n"
        "entry._run_commands = commands\n"
        "entry.run()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.startswith("xlstock: stopped by Ctrl-C") and done.stderr.count("\n") == 1
