"""Programs that drive LibreOffice through UNO, run by :data:`SYSTEM_PYTHON` (Debian's
python3-uno works with the system interpreter only).

Every program starts with one :data:`PRELUDE`: it reads ``soffice``, the profile URL and
the pipe name from its first three arguments (the rest are the program's own, in
``ARGS``), and gives it ``prop()`` and ``libreoffice()``, which starts a headless
``soffice`` with a private profile, connects over the named pipe, yields
``(ctx, desktop)`` and always ends the whole ``soffice`` process group.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import Any

from support.office import SOFFICE, SYSTEM_PYTHON

PRELUDE = r'''
import contextlib, json, os, signal, subprocess, sys, time
import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException

SOFFICE, PROFILE_URL, PIPE = sys.argv[1:4]
ARGS = sys.argv[4:]


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


@contextlib.contextmanager
def libreoffice(*, wait=60, lock_check=False):
    """(ctx, desktop) of a fresh headless soffice; it is ended, group and all, after."""
    options = [] if lock_check else ["--nolockcheck"]
    proc = subprocess.Popen(
        [SOFFICE, "--headless", "--invisible", "--nologo", "--norestore", "--nodefault",
         *options, "-env:UserInstallation=" + PROFILE_URL,
         "--accept=pipe,name=%s;urp;StarOffice.ComponentContext" % PIPE],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext(
            "com.sun.star.bridge.UnoUrlResolver", local)
        deadline = time.monotonic() + wait
        while True:
            try:
                ctx = resolver.resolve(
                    "uno:pipe,name=%s;urp;StarOffice.ComponentContext" % PIPE)
                break
            except NoConnectException:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("soffice did not accept a connection within %d s" % wait)
                time.sleep(0.2)
        desktop = ctx.ServiceManager.createInstanceWithContext(
            "com.sun.star.frame.Desktop", ctx)
        try:
            yield ctx, desktop
        finally:
            try:
                desktop.terminate()
            except Exception:
                pass  # the bridge drops as soffice exits
    finally:
        # soffice forks soffice.bin into the session started above: end the whole group.
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
'''


def uno_script(body: str) -> str:
    """A whole program for LibreOffice's python: :data:`PRELUDE`, then ``body``."""
    return PRELUDE + "\n\n" + textwrap.dedent(body).lstrip("\n")


def uno_command(script: str, folder: Path, profile: Path, *args: str,
                name: str = "uno.py") -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``script`` (written into ``folder``)
    with a private LibreOffice profile at ``profile`` and a fresh pipe name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(script, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    command = [SYSTEM_PYTHON, str(path), SOFFICE or "soffice", profile.resolve().as_uri(),
               f"xlstock-test-{uuid.uuid4().hex}", *args]
    return command, env


def run_uno_script(script: str, folder: Path, profile: Path, *args: str, timeout: float,
                   name: str = "uno.py") -> Any:
    """Run ``script`` to its end and return the JSON it printed on its last line."""
    command, env = uno_command(script, folder, profile, *args, name=name)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env=env, cwd=folder)
    assert result.returncode == 0, f"LibreOffice (UNO) failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])
