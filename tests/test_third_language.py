"""A third language is a catalogue, not code (issue 20, "not in this issue", and what the
closing note says adding German takes): a copy of xlstock given a German catalogue, and
nothing else, makes and reads a German workbook and speaks German."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

ROOT = Path(__file__).resolve().parents[1]

GERMAN_WORDS = {
    "SKU": "Artikelnummer", "Product": "Produkt", "Variant": "Variante", "Online": "Online-Bestand",
    "Received": "Eingang", "New level": "Neuer Bestand", "Change": "Änderung",
    "Low at": "Mindestbestand", "Status": "Zustand", "Settings": "Einstellungen",
    "Log": "Protokoll", "Low stock": "Niedriger Bestand", "How to": "Anleitung",
    "Stock service": "Bestandsdienst", "Shop URL": "Shop-Adresse",
}


def german_copy(tmp_path: Path) -> Path:
    """xlstock copied, with a German catalogue beside the French one (no code changed)."""
    shutil.copytree(ROOT / "xlstock", tmp_path / "xlstock",
                    ignore=shutil.ignore_patterns("__pycache__"))
    catalog = Catalog(locale="de", domain="xlstock")
    for english, german in GERMAN_WORDS.items():
        catalog.add(english, german, context="workbook")
    catalog.add("Sync", "Synchronisieren", context="button")
    catalog.add("yyyy-MM-dd", "dd.MM.yyyy", context="date pattern")
    catalog.add("Nothing changed.", "Nichts geändert.")
    folder = tmp_path / "xlstock" / "locale" / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "xlstock.mo").open("wb") as file:
        write_mo(file, catalog)
    return tmp_path


def run_in(copy: Path, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(copy), "XLSTOCK_LANG": "de"}
    done = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_german_catalogue_alone_makes_and_reads_a_german_workbook(tmp_path):
    copy = german_copy(tmp_path)
    out = run_in(copy, """
import datetime, openpyxl
from xlstock import i18n
from xlstock.workbook import layout, template
from xlstock.workbook.xlsx_file import XlsxFile
from xlstock.excel import button
assert i18n.LANGUAGES == ("de", "en", "fr") or "de" in i18n.LANGUAGES, i18n.LANGUAGES
template.build_workbook("w.xlsx", shop_url="https://shop.example", language="de")
wb = openpyxl.load_workbook("w.xlsx")
print(wb.sheetnames)
print([c.value for c in wb["Stock"][1]])
with XlsxFile.open("w.xlsx", writable=False) as book:
    print(layout.language_of(book), sorted(layout.read_stock(book).columns))
print(i18n.translate("Nothing changed.", "de"), button("Sync", "de"),
      i18n.date(datetime.date(2026, 12, 6), "de"))
""")
    assert "'Einstellungen'" in out and "'Protokoll'" in out
    assert "'Artikelnummer'" in out and "'Eingang'" in out and "'Neuer Bestand'" in out
    assert "de ['Change', 'Low at', 'New level', 'Online', 'Product', 'Received', 'SKU'" in out
    assert "Nichts geändert. Synchronisieren 06.12.2026" in out
