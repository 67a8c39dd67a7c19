"""Named crash points for the crash-safety tests.

``reach(name)`` does nothing unless the environment variable ``XLSTOCK_FAILPOINT``
names that point; then the process kills itself at once (SIGKILL: no cleanup, no
``finally``), exactly as a power cut or a killed Excel would. The tests run a real
publish in a subprocess with each point set in turn and check that the next run
finishes the job without counting a delivery twice.
"""

from __future__ import annotations

import os
import signal

ENV = "XLSTOCK_FAILPOINT"


def reach(name: str) -> None:
    """Die here if the environment names this point."""
    if os.environ.get(ENV) != name:
        return
    kill = getattr(signal, "SIGKILL", None)
    if kill is not None:
        os.kill(os.getpid(), kill)
    os._exit(137)
