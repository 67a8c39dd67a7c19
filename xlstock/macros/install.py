"""The commands that give a workbook the Excel buttons: ``xlstock new PATH.xlsm``
(:func:`build_macro_workbook`) and ``xlstock buttons`` (:func:`install_buttons`).

An ``.xlsx`` becomes an ``.xlsm``: the same sheets, plus the VBA project
(:mod:`~xlstock.macros.vba_source`), ``codeName`` attributes matching its document
modules, and the three buttons on sheet Stock (:mod:`~xlstock.macros.buttons`). An
``.xlsm`` is brought up to date the same way, keeping the merchant's own macros. Every
other part of the package is copied as it was. Both are idempotent.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from xlstock.errors import UsageError, WorkbookError
from xlstock.i18n import _
from xlstock.macros.buttons import apply_buttons, buttons_in_place, is_french
from xlstock.macros.package import WorkbookParts, apply_code_names, apply_vba
from xlstock.macros.vba_source import (
    BUTTONS,
    FRENCH_LABELS,
    VBA_PART,
    existing_project,
    module_version,
    refreshed_project,
    vba_project_for,
    xlwings_vba_source,
)
from xlstock.workbook import safety
from xlstock.workbook.base import STOCK_SHEET
from xlstock.workbook.files import write_atomic
from xlstock.workbook.locking import RunLock, refuse_if_open_in_a_spreadsheet
from xlstock.workbook.template import workbook_bytes


def _read(source: str | os.PathLike[str] | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise WorkbookError(_("Cannot read {source}: {detail}", source=source,
                              detail=exc.strerror)) from exc


def macro_workbook_bytes(source: str | os.PathLike[str] | bytes, *,
                         label: str = "workbook") -> bytes:
    """The ``.xlsm`` bytes for the ``.xlsx`` (path or bytes) ``source``: same sheets,
    plus the VBA project, code names and the three buttons on sheet Stock.

    A VBA project already in ``source`` is kept (it may hold the merchant's own
    macros); otherwise one is generated from the installed xlwings. Deterministic:
    the same input and the same xlwings give the same bytes."""
    package = WorkbookParts(_read(source), label)
    package.sheet_part(STOCK_SHEET)
    book_code, sheet_codes = apply_code_names(package)
    vba = package.parts.get(VBA_PART) or vba_project_for(book_code, sheet_codes)
    apply_vba(package, vba)
    apply_buttons(package)
    return _checked(package.to_bytes(), label)


def _checked(data: bytes, label: str) -> bytes:
    """``data`` once it reads back as a whole package (every part's CRC checked), so
    that nothing incomplete is ever written over a workbook."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        bad = str(exc)
    if bad is not None:
        raise WorkbookError(_("{label}: the workbook with buttons came out incomplete ({bad}); "
                              "nothing was written", label=label, bad=bad))
    return data


def write_macro_workbook(source: str | os.PathLike[str] | bytes,
                         out_path: str | os.PathLike[str]) -> None:
    """Write the macro-enabled version of ``source`` (an ``.xlsx`` path or its bytes)
    to ``out_path`` atomically. See :func:`macro_workbook_bytes`."""
    out = Path(out_path)
    label = str(source) if not isinstance(source, bytes) else str(out)
    write_atomic(out, macro_workbook_bytes(source, label=label))


def build_macro_workbook(path: str | os.PathLike[str], service_url: str | None = None,
                         shop_url: str | None = None, platform: str | None = None,
                         location: str | None = None, language: str = "en") -> None:
    """``xlstock new PATH.xlsm``: the template workbook with the Excel buttons."""
    out = Path(path)
    data = workbook_bytes(service_url=service_url, shop_url=shop_url, platform=platform,
                          location=location, language=language)
    write_atomic(out, macro_workbook_bytes(data, label=str(out)))


def refreshed_macro_workbook(data: bytes, label: str) -> tuple[bytes, list[str], list[str]]:
    """The ``.xlsm`` bytes for the workbook ``data`` (an ``.xlsx`` or an ``.xlsm``),
    with the changes made and the merchant's modules kept.

    The VBA project is rebuilt from source: the installed xlwings' module and
    ``Dictionary`` class and xlstock's module replace the ones there (or are added);
    every other module, the project's name, code page and references are kept. The
    three buttons are added to sheet Stock where missing. Every other part of the
    package is kept as it is. Deterministic, and a second pass changes nothing."""
    package = WorkbookParts(data, label)
    stock = package.sheet_part(STOCK_SHEET)
    buttons_before = buttons_in_place(package, stock)
    existing = existing_project(package.parts.get(VBA_PART), label)
    book_code, sheet_codes = apply_code_names(package)
    sheets = list(zip((name for name, _ in package.sheets()), sheet_codes, strict=True))
    project, changes, kept = refreshed_project(existing, book_code, sheets, label)
    apply_vba(package, project)
    apply_buttons(package)
    french = is_french(package)  # the buttons as the workbook names them
    missing = [FRENCH_LABELS[button.label] if french else button.label for button in BUTTONS
               if button.label not in buttons_before]
    if missing:
        changes.append(_("buttons added: {buttons}", buttons=", ".join(missing)))
    return package.to_bytes(), changes, kept


@dataclass(frozen=True)
class ButtonsReport:
    """What :func:`install_buttons` did to ``path``: one line per change (empty when
    the workbook was up to date and left as it was), and the merchant's own modules
    that were kept."""

    path: Path
    changes: tuple[str, ...]
    kept: tuple[str, ...]

    @property
    def written(self) -> bool:
        """Whether ``path`` was written."""
        return bool(self.changes)

    def lines(self) -> list[str]:
        """The report for the merchant."""
        lines = list(self.changes)
        if self.kept:
            lines.append(_("kept your modules: {modules}", modules=", ".join(self.kept)))
        if self.written:
            lines.append(_("Wrote {path}. Open it in Excel and enable macros (Enable Content) to "
                           "use the Sync, Preview and Publish buttons.", path=self.path))
        else:
            version = module_version(xlwings_vba_source()) or _("installed")
            lines.append(_("{path} is up to date (xlwings module {version}, buttons in place); "
                           "nothing to change.", path=self.path, version=version))
        return lines


def install_buttons(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                    *, force: bool = False) -> ButtonsReport:
    """``xlstock buttons PATH [--out OUT]``: give an ``.xlsx`` the Excel buttons (written
    as ``OUT``, by default ``PATH`` with ``.xlsm``), or bring an ``.xlsm``'s xlwings and
    xlstock modules up to date and put back missing buttons (in place, or as ``OUT``).
    See :func:`refreshed_macro_workbook`. An up-to-date ``.xlsm`` is left untouched.

    The target is locked against other xlstock runs and refused while Excel has it
    open; it is replaced atomically, so that a failure leaves it as it was."""
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix in (".xlsb", ".xls"):
        raise UsageError(
            _("{path} is a binary Excel workbook ({suffix}), which xlstock cannot edit: open it "
              "in Excel, File > Save As > Excel Macro-Enabled Workbook (*.xlsm), then run: "
              "xlstock buttons {xlsm}", path=path, suffix=suffix,
              xlsm=source.with_suffix(".xlsm"))
        )
    if suffix not in (".xlsx", ".xlsm"):
        raise UsageError(_("{path}: name an .xlsx workbook (to get a copy with the buttons) or an "
                           ".xlsm (to bring its buttons and xlwings module up to date)",
                           path=path))
    if not source.is_file():
        raise UsageError(_("{path}: no such workbook; create one with `xlstock new {xlsm}`",
                           path=path, xlsm=source.with_suffix(".xlsm")))
    target = Path(out) if out is not None else (
        source if suffix == ".xlsm" else source.with_suffix(".xlsm"))
    if target.suffix.lower() != ".xlsm":
        raise UsageError(_("--out {target}: a workbook with macros must be named .xlsm",
                           target=target))
    in_place = target.exists() and os.path.samefile(source, target)
    if target.exists() and not in_place and not force:
        raise UsageError(_("{target} exists already; pick another name with --out, or add --force "
                           "to replace it", target=target))
    real = Path(os.path.realpath(target))
    refuse_if_open_in_a_spreadsheet(real, str(target))
    with RunLock(real, str(target)):
        data, _package = safety.read_checked(source)
        result, changes, kept = refreshed_macro_workbook(data, str(path))
        if not in_place and not changes:
            changes = [_("copied {path} with its buttons and modules up to date", path=path)]
        if changes:
            write_atomic(real, _checked(result, str(target)),
                         expected=data if in_place else None)
    return ButtonsReport(target, tuple(changes), tuple(kept))
