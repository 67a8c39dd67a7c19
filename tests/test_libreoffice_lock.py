"""A workbook open in LibreOffice, for real: LibreOffice (headless, driven through UNO)
opens the merchant's workbook and keeps it open; its lock file stops every writing
command, naming the user, while validate still reads; once LibreOffice has closed the
workbook, publish goes through.

Debian's python3-uno works with the system interpreter only, so LibreOffice is driven
from ``/usr/bin/python3`` in a subprocess, as in tests/test_libreoffice.py.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from office import SOFFICE, SYSTEM_PYTHON, libreoffice_missing
from shopkit import Shop

from xlstock.cli import main

pytestmark = pytest.mark.libreoffice

_MISSING = libreoffice_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

HOLD = r'''
import os, signal, subprocess, sys, time
import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException

soffice, profile_url, pipe, document, given, surname = sys.argv[1:7]
proc = subprocess.Popen(
    [soffice, "--headless", "--invisible", "--nologo", "--norestore", "--nodefault",
     "-env:UserInstallation=" + profile_url,
     "--accept=pipe,name=%s;urp;StarOffice.ComponentContext" % pipe],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


try:
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + 60
    while True:
        try:
            ctx = resolver.resolve("uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe)
            break
        except NoConnectException:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("soffice did not accept a connection within 60 s")
            time.sleep(0.2)
    # The user's name, as typed under Tools > Options > LibreOffice > User Data.
    provider = ctx.ServiceManager.createInstanceWithContext(
        "com.sun.star.configuration.ConfigurationProvider", ctx)
    user_data = provider.createInstanceWithArguments(
        "com.sun.star.configuration.ConfigurationUpdateAccess",
        (prop("nodepath", "/org.openoffice.UserProfile/Data"),))
    user_data.setPropertyValue("givenname", given)
    user_data.setPropertyValue("sn", surname)
    user_data.commitChanges()
    desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    doc = desktop.loadComponentFromURL(document, "_blank", 0, (prop("Hidden", True),))
    print("open", flush=True)
    sys.stdin.read()
    doc.close(True)
    print("closed", flush=True)
    try:
        desktop.terminate()
    except Exception:
        pass  # the bridge drops as soffice exits
finally:
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


def test_a_workbook_open_in_libreoffice_is_left_alone_until_it_is_closed(
    stock_service, tmp_path: Path
) -> None:
    desk, office = tmp_path / "desk", tmp_path / "office"
    desk.mkdir()
    office.mkdir()
    shop = Shop(stock_service, desk)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 3}})
    script = office / "hold.py"
    script.write_text(HOLD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    with subprocess.Popen(
        [SYSTEM_PYTHON, str(script), SOFFICE or "soffice", (office / "profile").as_uri(),
         f"xlstock-test-{uuid.uuid4().hex}", shop.workbook.resolve().as_uri(), "Zoë", "Ünal"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=office,
    ) as libreoffice:
        assert libreoffice.stdout is not None and libreoffice.stdin is not None
        try:
            assert libreoffice.stdout.readline().strip() == "open"
            assert sorted(p.name for p in desk.iterdir()) == [".~lock.stock.xlsx#",
                                                              "stock.xlsx"]
            before, live = shop.workbook.read_bytes(), shop.live()
            for command in ("publish", "sync", "preview"):
                refused = CliRunner().invoke(main, [command, str(shop.workbook), "-q"],
                                             env=shop.env)
                assert refused.exit_code == 1, refused.output
                assert refused.stderr.startswith(
                    f"xlstock: {shop.workbook} is open in LibreOffice by Zoë Ünal (since "
                ), refused.stderr
                assert "close it there first" in refused.stderr
            assert shop.workbook.read_bytes() == before and shop.live() == live
            assert shop.run("validate", str(shop.workbook)).exit_code == 0
        finally:
            libreoffice.stdin.close()
            closed = libreoffice.stdout.readline().strip()
            libreoffice.wait(timeout=60)
    assert closed == "closed", libreoffice.stderr.read() if libreoffice.stderr else ""
    assert sorted(p.name for p in desk.iterdir()) == ["stock.xlsx"]
    published = shop.run("publish", str(shop.workbook), "-q")
    assert "Published 1 change(s)" in published.stdout
    assert shop.live()["A-1"] == live["A-1"] + 3
    assert sorted(p.name for p in desk.iterdir()) == ["stock.xlsx"]
