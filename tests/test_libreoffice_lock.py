"""A workbook open in LibreOffice, for real: LibreOffice (headless, driven through UNO)
opens the merchant's workbook and keeps it open; its lock file stops every writing
command, naming the user, while validate still reads; once LibreOffice has closed the
workbook, publish goes through.

Debian's python3-uno works with the system interpreter only, so LibreOffice is driven
from ``/usr/bin/python3`` in a subprocess, as in tests/test_libreoffice.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.office import libreoffice_missing
from support.shopkit import Shop
from support.uno_scripts import uno_command, uno_script

from xlstock.cli import main

pytestmark = pytest.mark.libreoffice

_MISSING = libreoffice_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

HOLD = uno_script(r'''
document, given, surname = ARGS
# The lock check stays on: the test is about the lock file the open workbook gets.
with libreoffice(lock_check=True) as (ctx, desktop):
    # The user's name, as typed under Tools > Options > LibreOffice > User Data.
    provider = ctx.ServiceManager.createInstanceWithContext(
        "com.sun.star.configuration.ConfigurationProvider", ctx)
    user_data = provider.createInstanceWithArguments(
        "com.sun.star.configuration.ConfigurationUpdateAccess",
        (prop("nodepath", "/org.openoffice.UserProfile/Data"),))
    user_data.setPropertyValue("givenname", given)
    user_data.setPropertyValue("sn", surname)
    user_data.commitChanges()
    doc = desktop.loadComponentFromURL(document, "_blank", 0, (prop("Hidden", True),))
    print("open", flush=True)
    sys.stdin.read()
    doc.close(True)
    print("closed", flush=True)
''')


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
    command, env = uno_command(HOLD, office, office / "profile",
                               shop.workbook.resolve().as_uri(), "Zoë", "Ünal", name="hold.py")
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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
