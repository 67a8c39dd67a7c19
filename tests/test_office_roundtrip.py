"""A workbook that another office suite has saved: LibreOffice (real, headless) opens
and re-saves the merchant's workbook, and the daily loop goes on with it.

This is what happens on a real desk: the merchant types into the file in an office
suite, which rewrites every part its own way and stores computed formula results."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.office import SOFFICE
from support.shopkit import Shop

from xlstock.workbook import layout

pytestmark = [
    pytest.mark.libreoffice,
    pytest.mark.skipif(
        SOFFICE is None,
        reason="LibreOffice is not installed (soffice not on PATH); install it with "
        "apt-get install libreoffice-calc-nogui",
    ),
]


def resave_in_libreoffice(workbook: Path, tmp_path: Path, fmt: str = "xlsx") -> Path:
    """LibreOffice opens ``workbook`` and saves it as ``fmt`` into a new folder."""
    out = tmp_path / f"resaved-{fmt}"
    subprocess.run(
        [str(SOFFICE), "--headless", "--norestore",
         f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}",
         "--convert-to", fmt, "--outdir", str(out), str(workbook)],
        check=True, capture_output=True, timeout=120,
    )
    return out / f"{workbook.stem}.{fmt}"


@pytest.mark.parametrize("language", layout.LANGUAGES)
def test_the_loop_goes_on_in_a_workbook_libreoffice_saved(stock_service, tmp_path, language):
    """In an English workbook and in a French one (Reçu, Nouveau niveau, Paramètres)."""
    shop = Shop(stock_service, tmp_path, language=language)
    shop.new()
    shop.run("sync", str(shop.workbook))
    # The merchant types a formula for a delivery of two boxes; openpyxl stores no result.
    # A count of 2 on B-2 (5 at Sync) needs the levels xlstock remembered in its hidden
    # sheet to survive the other suite.
    shop.edit(**{"A-1": {"Received": "=2*3"}, "B-2": {"New level": 2}})
    resaved = resave_in_libreoffice(shop.workbook, tmp_path)
    shutil.copyfile(resaved, shop.workbook)  # LibreOffice computed and stored 6
    shop.sell(B_2=1)
    versions = shop.history_count()

    result = shop.run("publish", str(shop.workbook))
    if language == layout.ENGLISH:
        assert "Published 2 change(s)" in result.output
    assert shop.history_count() == versions + 1
    assert shop.live()["A-1"] == 10 + 6
    assert shop.live()["B-2"] == 2 + (4 - 5)
    row = shop.sheet()["A-1"]
    assert row["Online"] == 16 and row["Received"] is None
    assert shop.sheet()["00123"]["SKU"] == "00123"  # leading zeros survived both suites

    # ... and LibreOffice reads what xlstock wrote.
    # LibreOffice writes CSV in the system's 8-bit charset unless told otherwise ("Reçu"
    # is not UTF-8 then); the row checked is ASCII, and latin-1 decodes any byte.
    csv = resave_in_libreoffice(shop.workbook, tmp_path, "csv").read_bytes().decode("latin-1")
    assert any(line.startswith("A-1,") and ",16," in line for line in csv.splitlines()), csv
