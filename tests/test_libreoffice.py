"""LibreOffice, an office suite that is not ours, opens the macro workbook headless and
must find the VBA modules' source and the three buttons bound to the three macros.

Debian's python3-uno works with the system interpreter only, so the inspection runs
in ``/usr/bin/python3`` in a subprocess; it starts its own ``soffice`` with a private
profile, connects over a named pipe, reads what LibreOffice imported and prints JSON.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from support.office import libreoffice_missing
from support.uno_scripts import run_uno_script, uno_script
from support.vba_craft import old_macro_workbook

from xlstock.macros.install import install_buttons, write_macro_workbook
from xlstock.macros.vba_source import BUTTONS
from xlstock.workbook.layout import STOCK_HEADERS
from xlstock.workbook.xlsx_file import XlsxFile

pytestmark = pytest.mark.libreoffice

_MISSING = libreoffice_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

INSPECT = uno_script(r'''
def inspect(desktop, url):
    # MacroExecutionMode 4 (ALWAYS_EXECUTE_NO_WARN): nothing runs on load (the project
    # has no Workbook_Open), but the VBA project and the macro bindings are imported.
    doc = desktop.loadComponentFromURL(
        url, "_blank", 0, (prop("Hidden", True), prop("MacroExecutionMode", 4)))
    try:
        found = {"libraries": list(doc.BasicLibraries.getElementNames()), "modules": {}}
        libs = doc.BasicLibraries
        if libs.hasByName("VBAProject"):
            libs.loadLibrary("VBAProject")
            lib = libs.getByName("VBAProject")
            found["modules"] = {n: lib.getByName(n) for n in lib.getElementNames()}
        found["code_names"] = {n: doc.Sheets.getByName(n).CodeName
                               for n in doc.Sheets.getElementNames()}
        page = doc.Sheets.getByName("Stock").DrawPage
        labels = []
        for i in range(page.Count):
            shape = page.getByIndex(i)
            if shape.supportsService("com.sun.star.drawing.ControlShape"):
                model = shape.Control
                labels.append(None if model is None else model.Label)
        found["control_shapes"] = labels
        controls = []
        for f in range(page.Forms.Count):
            form = page.Forms.getByIndex(f)
            for j in range(form.Count):
                events = [{"listener": e.ListenerType, "method": e.EventMethod,
                           "type": e.ScriptType, "code": e.ScriptCode}
                          for e in form.getScriptEvents(j)]
                controls.append({"label": getattr(form.getByIndex(j), "Label", None),
                                 "events": events})
        found["controls"] = controls
        return found
    finally:
        doc.close(True)


with libreoffice(wait=40) as (ctx, desktop):
    results = [inspect(desktop, url) for url in ARGS]
print(json.dumps(results))
''')


def _workbook(path: Path) -> Path:
    try:
        from xlstock.workbook.template import build_workbook
    except ImportError:
        build_workbook = None
    if build_workbook is not None:
        build_workbook(path)
        return path
    wb = openpyxl.Workbook()
    wb.active.title = "Stock"
    wb.active.append(list(STOCK_HEADERS))
    for name in ("Settings", "Log", "How to", "_xlstock"):
        wb.create_sheet(name)
    wb.save(path)
    return path


def _open_in_libreoffice(tmp_path: Path, *documents: Path) -> list[dict[str, Any]]:
    return run_uno_script(INSPECT, tmp_path, tmp_path / "lo-profile",
                          *(d.resolve().as_uri() for d in documents), timeout=90,
                          name="inspect.py")


def _check(found: dict[str, Any], *, own: tuple[str, ...] = ()) -> None:
    assert "VBAProject" in found["libraries"]
    modules = found["modules"]
    code_names = found["code_names"]
    assert set(modules) == {"ThisWorkbook", *code_names.values(), "xlwings", "Dictionary",
                            "xlstock", *own}
    for name, source in modules.items():
        assert "Option VBASupport 1" in source, name
    version = importlib.metadata.version("xlwings")
    assert f"'Version: {version}" in modules["xlwings"]
    assert "Public Function RunPython(PythonCommand As String)" in modules["xlwings"]
    for button in BUTTONS:
        assert f'RunPython "{button.command}"' in modules["xlstock"]

    assert sorted(found["control_shapes"]) == sorted(b.label for b in BUTTONS)
    bound = {}
    for control in found["controls"]:
        (event,) = control["events"]
        assert (event["listener"], event["method"], event["type"]) == (
            "XActionListener", "actionPerformed", "Script")
        bound[control["label"]] = event["code"]
    assert bound == {
        b.label: f"vnd.sun.star.script:VBAProject.xlstock.{b.macro}"
                 "?language=Basic&location=document"
        for b in BUTTONS
    }


def test_libreoffice_finds_the_modules_and_the_bound_buttons(tmp_path: Path) -> None:
    """A fresh workbook, the same after an xlstock save, and one made with an older
    xlwings and refreshed by ``xlstock buttons``, in one LibreOffice session."""
    fresh = tmp_path / "stock.xlsm"
    write_macro_workbook(_workbook(tmp_path / "stock.xlsx"), fresh)

    saved = tmp_path / "saved.xlsm"
    shutil.copyfile(fresh, saved)
    with XlsxFile.open(saved) as book:
        book.write_block("Stock", 2, 1, [["A-1", "Cap", "", 7]])
        book.save()

    refreshed = old_macro_workbook(tmp_path / "stock.xlsx", tmp_path / "old.xlsm")
    assert install_buttons(refreshed).written

    first, after_save, after_refresh = _open_in_libreoffice(tmp_path, fresh, saved, refreshed)
    _check(first)
    _check(after_save)
    assert after_save["code_names"] == first["code_names"]
    _check(after_refresh, own=("Module1",))
    assert "Public Sub Report()" in after_refresh["modules"]["Module1"]
    assert "Private Sub Workbook_Open()" in after_refresh["modules"]["ThisWorkbook"]
