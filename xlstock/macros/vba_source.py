"""The VBA of a workbook with xlstock's buttons: which modules its project holds, their
source text, and how a project already in a workbook is brought up to date.

The project has the ``ThisWorkbook`` and sheet document modules, the xlwings VBA
module and its ``Dictionary`` class exactly as the installed xlwings ships them, and
xlstock's own module with one macro per button. A project already in the workbook
keeps every module of the merchant's; only xlwings' and xlstock's are replaced.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xlstock.errors import MissingExtra, UsageError, WorkbookError
from xlstock.i18n import FRENCH, LANGUAGES, NC_, _, translate_in
from xlstock.macros.ovba import (
    ProjectSource,
    VbaModule,
    build_vba_project,
    class_module_from_export,
    document_module,
    read_vba_project,
)


@dataclass(frozen=True)
class Button:
    """One button on sheet Stock: its label, its macro, and the ``xlstock.excel``
    function the macro runs."""

    label: str
    macro: str
    action: str

    @property
    def command(self) -> str:
        """The Python statement the macro hands to xlwings' ``RunPython``."""
        return f"import xlstock.excel; xlstock.excel.{self.action}()"


BUTTONS = (
    Button(NC_("button", "Sync"), "XlstockSync", "sync"),
    Button(NC_("button", "Preview"), "XlstockPreview", "preview"),
    Button(NC_("button", "Publish"), "XlstockPublish", "publish"),
    Button(NC_("button", "Undo"), "XlstockUndo", "undo"),
)
LABELS_IN = {language: {b.label: translate_in("button", b.label, language) for b in BUTTONS}
             for language in LANGUAGES}
"""The buttons' words in each language, from the catalogue (French, the help text's:
Synchroniser, Aperçu, Publier, Annuler)."""
FRENCH_LABELS = LABELS_IN[FRENCH]
XLSTOCK_MODULE = "xlstock"
WORKBOOK_CODE_NAME = "ThisWorkbook"
VBA_PART = "xl/vbaProject.bin"
"""Where a workbook package keeps its VBA project."""


# --- the modules' source -----------------------------------------------------------------


def _xlwings_dir() -> Path:
    # Only finds where xlwings is installed, to read its .bas files; nothing is imported.
    spec = importlib.util.find_spec("xlwings")
    if spec is None or spec.origin is None:
        raise MissingExtra("excel", "a workbook with Excel buttons (xlwings)")
    return Path(spec.origin).parent


def _read_vba_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("cp1252")
    except OSError as exc:
        raise UsageError(
            _("The installed xlwings has no readable {name} ({path}): {detail}. Reinstall it "
              "with: pip install --force-reinstall xlwings", name=path.name, path=path,
              detail=exc.strerror)
        ) from exc


def xlwings_vba_source() -> str:
    """The text of the xlwings VBA module (``xlwings.bas``) of the installed xlwings,
    unchanged: its ``'Version:`` line is that xlwings' version."""
    return _read_vba_text(_xlwings_dir() / "xlwings.bas")


def xlwings_dictionary_source() -> str:
    """The exported ``Dictionary`` class the xlwings module uses on macOS, from the
    installed xlwings (``addin/Dictionary.cls``)."""
    return _read_vba_text(_xlwings_dir() / "addin" / "Dictionary.cls")


def xlstock_vba_source() -> str:
    """xlstock's own module: one macro per button, each a single ``RunPython`` call."""
    lines = [
        f'Attribute VB_Name = "{XLSTOCK_MODULE}"',
        "' The xlstock buttons on sheet Stock run these macros. Each one hands its work",
        "' to the Python package xlstock through xlwings (module xlwings, next to this one).",
        "Option Explicit",
    ]
    for button in BUTTONS:
        lines += [
            "",
            f"Public Sub {button.macro}()",
            f'    RunPython "{button.command}"',
            "End Sub",
        ]
    return "\r\n".join(lines) + "\r\n"


def own_modules() -> list[VbaModule]:
    """The modules xlstock puts in (and replaces in) a project: xlwings' module and its
    ``Dictionary`` class from the installed xlwings, and xlstock's own module."""
    xlwings_text = xlwings_vba_source()
    first = xlwings_text.split("\r\n", 1)[0]
    if first != 'Attribute VB_Name = "xlwings"':
        raise UsageError(
            _("The installed xlwings.bas does not start with Attribute VB_Name = \"xlwings\"; "
              "this xlwings version is not supported. Reinstall xlwings.")
        )
    return [
        VbaModule("xlwings", xlwings_text, "procedural"),
        class_module_from_export(xlwings_dictionary_source()),
        VbaModule(XLSTOCK_MODULE, xlstock_vba_source(), "procedural"),
    ]


def vba_modules(sheet_code_names: Sequence[str]) -> list[VbaModule]:
    """Every module of the generated project: ``ThisWorkbook``, one document module
    per sheet code name, xlwings (module and ``Dictionary`` class) and xlstock."""
    return [
        document_module(WORKBOOK_CODE_NAME, "workbook"),
        *(document_module(name, "worksheet") for name in sheet_code_names),
        *own_modules(),
    ]


def vba_project_for(workbook_code_name: str, sheet_code_names: Sequence[str]) -> bytes:
    """The generated ``vbaProject.bin`` for a workbook with these code names."""
    modules = vba_modules(sheet_code_names)
    if workbook_code_name != WORKBOOK_CODE_NAME:
        modules[0] = document_module(workbook_code_name, "workbook")
    return build_vba_project(modules)


def module_version(source: str) -> str | None:
    """The version an xlwings module's ``'Version:`` line names, if it has one."""
    match = re.search(r"^'Version: *(\S+)", source, re.M)
    return match.group(1) if match else None


# --- a project already in the workbook ---------------------------------------------------


def existing_project(data: bytes | None, label: str) -> ProjectSource | None:
    """The project ``data`` (a workbook's ``vbaProject.bin``, ``None`` when it has
    none) as xlstock can rebuild it; refused, with the way out, when it is damaged,
    protected or holds UserForms."""
    if data is None:
        return None
    try:
        project = read_vba_project(data)
    except ValueError as exc:
        raise WorkbookError(
            _("{label}: its VBA project ({part}) cannot be read ({detail}); open the workbook "
              "in Excel, save it, and try again", label=label, part=VBA_PART, detail=exc)
        ) from exc
    if project.protection:
        raise WorkbookError(
            _("{label}: its VBA project is {protection}, so xlstock cannot read your macros to "
              "keep them. In Excel, open the VBA editor (Alt+F11; on a Mac, Tools > Macro > "
              "Visual Basic Editor), Tools > VBAProject Properties > Protection: untick 'Lock "
              "project for viewing', clear both password boxes, OK; save and close the workbook, "
              "run xlstock buttons again, then protect the project again if you wish",
              label=label, protection=project.protection)
        )
    if project.designers:
        raise WorkbookError(
            _("{label}: its VBA project has UserForms ({forms}), which xlstock cannot rebuild. In "
              "the VBA editor, right-click each form > Export File, then Remove it; save, run "
              "xlstock buttons again, and import the forms back (File > Import File)",
              label=label, forms=", ".join(project.designers))
        )
    return project


def _has_code(module: VbaModule) -> bool:
    return any(line.strip() and not line.startswith("Attribute ")
               for line in module.source.splitlines())


def _describe(old: VbaModule | None, new: VbaModule) -> list[str]:
    if old is not None and old.source == new.source:
        return []
    if new.name == "xlwings":
        version = module_version(new.source)
        if old is None:
            return [_("xlwings module {version} added", version=version)]
        before = module_version(old.source) or _("(no version line)")
        if before == version:
            return [_("xlwings module {version} replaced by the installed copy",
                      version=version)]
        return [_("xlwings module {before} -> {version}", before=before, version=version)]
    if new.name == XLSTOCK_MODULE:
        return [_("xlstock module added") if old is None else _("xlstock module updated")]
    if old is None:
        return [_("{name} class (xlwings) added", name=new.name)]
    return [_("{name} class (xlwings) updated", name=new.name)]


def merged_modules(existing: ProjectSource | None, book_code: str,
                   sheets: Sequence[tuple[str, str]],
                   label: str) -> tuple[list[VbaModule], list[str], list[str]]:
    """The refreshed project's modules, the changes, and the merchant's modules kept,
    for a workbook with code name ``book_code`` and ``sheets`` as (sheet name, code
    name) in workbook order: document modules kept (code included) or added for
    sheets that have none, xlwings' and xlstock's modules replaced by the current ones
    (or added), every other module kept as it is, all in the project's order."""
    old = list(existing.modules) if existing is not None else []
    modules: list[VbaModule] = []
    changes: list[str] = []
    kept: list[str] = []
    _document_modules(old, existing is not None, book_code, sheets, label,
                      modules, changes, kept)
    own = {m.name.casefold(): m for m in own_modules()}
    for module in old:
        if module.kind == "document":
            continue
        replacement = own.pop(module.name.casefold(), None)
        if replacement is None:
            modules.append(module)
            kept.append(module.name)
        else:
            modules.append(replacement)
            changes += _describe(module, replacement)
    for module in own.values():
        modules.append(module)
        changes += _describe(None, module)
    return modules, changes, kept


def _document_modules(old: list[VbaModule], had_project: bool, book_code: str,
                      sheets: Sequence[tuple[str, str]], label: str, modules: list[VbaModule],
                      changes: list[str], kept: list[str]) -> None:
    """The workbook's and each sheet's document module, kept or added, into
    ``modules``; the module of a sheet gone from the workbook refused when it holds
    code."""
    documents = {m.name.casefold(): m for m in old if m.kind == "document"}
    places = [(book_code, "workbook", None), *((code, "worksheet", name) for name, code
                                              in sheets)]
    for code, base, sheet_name in places:
        found = documents.pop(code.casefold(), None)
        if found is None:
            found = document_module(code, "workbook" if base == "workbook" else "worksheet")
            if had_project:
                changes.append(_("module {code} added for sheet {sheet}", code=code,
                                 sheet=repr(sheet_name)) if sheet_name else
                               _("module {code} added for the workbook", code=code))
        elif _has_code(found):
            kept.append(found.name)
        modules.append(found)
    orphans = [m.name for m in documents.values() if _has_code(m)]
    if orphans:
        raise WorkbookError(
            _("{label}: the VBA project has code in {modules}, the module of a sheet that is no "
              "longer in the workbook; in the VBA editor, move that code into a standard module "
              "(Insert > Module), save, and try again", label=label, modules=", ".join(orphans))
        )


def refreshed_project(existing: ProjectSource | None, book_code: str,
                      sheets: Sequence[tuple[str, str]],
                      label: str) -> tuple[bytes, list[str], list[str]]:
    """The ``vbaProject.bin`` for :func:`merged_modules`, with the existing project's
    name, code page and references; the changes and the merchant's modules kept."""
    modules, changes, kept = merged_modules(existing, book_code, sheets, label)
    try:
        project = build_vba_project(modules, existing.info if existing else None)
    except ValueError as exc:
        raise WorkbookError(
            _("{label}: the VBA project cannot be rebuilt ({detail}); fix that module in Excel's "
              "VBA editor, save, and try again", label=label, detail=exc)
        ) from exc
    return project, changes, kept
