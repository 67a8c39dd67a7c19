"""The merchant's workbook, built by code: ``workbook_template.xlsx`` and ``xlstock new``.

The bytes are deterministic: fixed document dates, fixed zip entry dates and
attributes, and parts stored uncompressed (so that the bytes do not depend on the zlib
build either). ``xlstock new workbook_template.xlsx`` (the old one deleted first)
regenerates the committed template; ``tests/test_template.py`` checks it matches.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from xlstock import i18n
from xlstock.errors import UsageError
from xlstock.i18n import N_, _
from xlstock.planner import STATUS_CHANGED, STATUS_NEW, STATUS_OK, status_text
from xlstock.workbook import layout
from xlstock.workbook.base import (
    HOWTO_SHEET,
    LOG_SHEET,
    LOW_STOCK_SHEET,
    SETTINGS_SHEET,
    STATE_SHEET,
    STOCK_SHEET,
    WorkbookAdapter,
)
from xlstock.workbook.files import write_atomic

FIXED_TIME = dt.datetime(2026, 1, 1)
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)
_LAST_ROW = 1_048_576

# Header fills say who writes a column: the shop (blue), the merchant (green), xlstock
# (grey). Conditional-format fills match the "How to" legend.
_SHOP_FILL = PatternFill("solid", start_color="FF1F4E78", end_color="FF1F4E78")
_MERCHANT_FILL = PatternFill("solid", start_color="FF548235", end_color="FF548235")
_TOOL_FILL = PatternFill("solid", start_color="FF595959", end_color="FF595959")
# Every font names Calibri 11 (the workbook's body font): a font with no name falls back
# to the application's default (a serif in LibreOffice), so headers looked foreign.
_FONT = "Calibri"
_HEADER_FONT = Font(name=_FONT, sz=11, bold=True, color="FFFFFFFF")
_PENDING_COLOUR = "FFFFF2CC"
_LOW_COLOUR = "FFFFEB9C"
"""Amber: at or below the row's threshold."""
_OUT_COLOUR = "FFFF9B9B"
"""Red: at or below zero."""
_PROBLEM_COLOUR = "FFFFC7CE"
_FINE_STATUSES = tuple(dict.fromkeys(
    status_text(key, language) for language in layout.LANGUAGES
    for key in (STATUS_OK, STATUS_CHANGED, STATUS_NEW)))
"""Statuses that are not a problem, in either language (xlstock writes a workbook's own);
any other Status text is highlighted."""

_WHO_WRITES = {
    layout.SKU: _SHOP_FILL, layout.PRODUCT: _SHOP_FILL, layout.VARIANT: _SHOP_FILL,
    layout.ONLINE: _SHOP_FILL, layout.RECEIVED: _MERCHANT_FILL,
    layout.NEW_LEVEL: _MERCHANT_FILL, layout.LOW_AT: _MERCHANT_FILL,
    layout.CHANGE: _TOOL_FILL, layout.STATUS: _TOOL_FILL,
}
_WIDTHS = {
    layout.SKU: 24, layout.PRODUCT: 36, layout.VARIANT: 18, layout.ONLINE: 10,
    layout.RECEIVED: 11, layout.NEW_LEVEL: 11, layout.CHANGE: 10, layout.LOW_AT: 9,
    layout.STATUS: 44,
}
_NUMBER_FORMATS = {
    layout.SKU: "@", layout.ONLINE: "0", layout.RECEIVED: "0", layout.NEW_LEVEL: "0",
    layout.CHANGE: "+0;-0;0", layout.LOW_AT: "0",
}


# Sheet How to fits a portrait A4 or Letter page; each row carries the height of its
# wrapped text (LibreOffice does not grow a row to fit when it opens the file).
_HOWTO_WIDTH = 75
_HOWTO_CHARS_PER_LINE = 80
_HOWTO_SIZES = {"title": 14, "heading": 12}

HOWTO_LINES: tuple[tuple[str, str | None], ...] = (
    (N_("How to keep your shop's stock in this workbook"), "title"),
    ("", None),
    (N_("The daily loop"), "heading"),
    (N_("1. Sync: pull today's live stock levels into sheet Stock (column Online). "
        "Run: xlstock sync <this file>  (or the Sync button in the .xlsm workbook)."), None),
    (N_("2. Edit: type a delivery into Received (units added; negative to take some away), "
        "or a counted level into New level. Never both on one row."), None),
    (N_("3. Preview: see exactly what Publish would change, checked against the live levels. "
        "Run: xlstock preview <this file>. Change and Status show the result per row."), None),
    (N_("4. Publish: upload the stock levels (never the whole shop). "
        "Run: xlstock publish <this file>. Received and New level are then cleared."), None),
    ("", None),
    (N_("Online sales are never overwritten"), "heading"),
    (N_("Sales made online between Sync and Publish are kept: a delivery is added to the "
        "live level, and a counted New level is moved by what sold online since your Sync "
        "(Settings > Conflict policy: rebase). With 'strict', Publish stops instead and asks "
        "you to sync again."), None),
    ("", None),
    (N_("What the colours mean"), "heading"),
    (N_("A pale yellow row has an edit waiting to be published (Received or New level)."),
        "pending"),
    (N_("An amber Online cell is at or below its Low at level (or, where Low at is blank, "
        "Settings > Low stock at); a red one is at or below zero. Change is coloured the "
        "same way for the level Publish would leave. Sheet Low stock lists those rows, the "
        "largest shortfall first, after every Sync and Preview."), "low"),
    (N_("A pink Status cell names a problem with that row; nothing is published until it "
        "is fixed."), "problem"),
    (N_("Header colours: blue columns come from the shop, green ones are yours to type in, "
        "grey ones are written by xlstock. Add your own columns anywhere: they are kept."),
     None),
    ("", None),
    (N_("Your access token"), "heading"),
    (N_("The token is never stored in this workbook. Give it in the environment variable "
        "XLSTOCK_TOKEN, or keep it in the system keyring (service 'xlstock', user = your "
        "shop's URL). The shop and service addresses are on sheet Settings."), None),
)


_NOTES = (  # two lines that fit columns A and B, on screen and paper
    N_("No token or password is stored in this workbook:"),
    N_("xlstock reads the token from XLSTOCK_TOKEN or the system keyring."),
)
_PLATFORM_CHOICE = N_("Choose where your shop's live levels are: {platforms}.")
_SHOP_PLATFORM = N_("Shop platform")


def howto_lines(language: str) -> tuple[tuple[str, str | None], ...]:
    """Sheet How to in ``language`` (the catalogue's), line for line as
    :data:`HOWTO_LINES`."""
    return tuple((i18n.translate(text, language) if text else text, kind)
                 for text, kind in HOWTO_LINES)


def language_from_environment() -> str:
    """The language of a new workbook when none is asked for: the one xlstock speaks,
    ``XLSTOCK_LANG``, else the locale's (:func:`xlstock.i18n.system_language`)."""
    return i18n.system_language()


def build_workbook(path: str | os.PathLike[str], *, service_url: str | None = None,
                   shop_url: str | None = None, platform: str | None = None,
                   location: str | None = None, language: str = layout.ENGLISH) -> None:
    """Write a fresh merchant workbook at ``path`` (replacing it atomically if it
    exists). The same arguments always give the same bytes."""
    write_atomic(path, workbook_bytes(service_url=service_url, shop_url=shop_url,
                                      platform=platform, location=location,
                                      language=language))


INIT_SHEETS = (STOCK_SHEET, SETTINGS_SHEET, LOG_SHEET, STATE_SHEET)
"""The sheets ``xlstock init`` adds to a workbook (``_xlstock`` very hidden)."""


def add_stock_sheets(book: WorkbookAdapter, *, service_url: str | None = None,
                     shop_url: str | None = None, language: str = layout.ENGLISH) -> None:
    """``xlstock init``: give an existing workbook sheets Stock (the headers in row 1),
    Settings (the labels in column A, the addresses and policy ``rebase`` in B), Log
    (its headers) and the very hidden ``_xlstock``, after its own sheets, and save.
    Nothing else of the workbook is touched (the file adapter copies every other part
    as it was). Refuses a workbook that has any of them already, naming it."""
    have = {name.casefold(): name for name in book.sheet_names()}
    names = [layout.sheet_text(name, language) for name in INIT_SHEETS]
    clash = [have[name.casefold()] for name in names if name.casefold() in have]
    if STOCK_SHEET.casefold() in have and layout.sheet_in(book, SETTINGS_SHEET):
        raise UsageError(_(
            "{book} has sheets {stock} and {settings} already: it is set up for xlstock; run "
            "`xlstock sync {book}`", book=book.label, stock=STOCK_SHEET,
            settings=layout.sheet_text(SETTINGS_SHEET, language)
        ))
    if clash:
        raise UsageError(_(
            "{book} has a sheet named {names} already, a name xlstock needs for its own "
            "sheets ({needed}); rename yours (right-click its tab > Rename) and run `xlstock "
            "init` again", book=book.label, names=", ".join(repr(n) for n in clash),
            needed=", ".join(names[:3])
        ))
    values = {
        layout.SETTING_SERVICE: service_url or layout.DEFAULT_SERVICE,
        layout.SETTING_SHOP: shop_url or None,
        layout.SETTING_POLICY: "rebase",
    }
    stock, settings, log, state = names
    book.add_sheet(stock)
    book.write_block(stock, 1, 1, [[layout.header_text(h, language)
                                    for h in layout.STOCK_HEADERS]])
    book.add_sheet(settings)
    book.write_block(settings, 1, 1, [[layout.label_text(label, language), values.get(label)]
                                      for label in layout.SETTING_LABELS])
    book.add_sheet(log)
    book.write_block(log, 1, 1, [list(layout.LOG_HEADERS_IN.get(language,
                                                                layout.LOG_HEADERS))])
    book.add_sheet(state, hidden=True)
    book.save()


def workbook_bytes(*, service_url: str | None = None, shop_url: str | None = None,
                   platform: str | None = None, location: str | None = None,
                   language: str = layout.ENGLISH) -> bytes:
    """The workbook file's bytes (see :func:`build_workbook`); ``platform`` one of
    :data:`~xlstock.workbook.layout.PLATFORMS` (default: the xlstock service)."""
    wb = Workbook()
    stock = wb.active
    assert isinstance(stock, Worksheet)
    stock.title = STOCK_SHEET
    _stock_sheet(stock)
    _settings_sheet(wb.create_sheet(SETTINGS_SHEET), service_url, shop_url, platform, location)
    _log_sheet(wb.create_sheet(LOG_SHEET))
    _low_stock_sheet(wb.create_sheet(LOW_STOCK_SHEET))
    _howto_sheet(wb.create_sheet(HOWTO_SHEET), howto_lines(language))
    if language != layout.ENGLISH:
        _in_language(wb, language)
    low_row = layout.SETTING_LABELS.index(layout.SETTING_LOW_STOCK) + 1
    settings_name = layout.sheet_text(SETTINGS_SHEET, language)
    wb.defined_names[layout.LOW_STOCK_NAME] = DefinedName(
        layout.LOW_STOCK_NAME, attr_text=f"'{settings_name}'!$B${low_row}")
    wb.create_sheet(STATE_SHEET).sheet_state = "veryHidden"
    wb.active = 0
    wb.properties.creator = "xlstock"
    wb.properties.lastModifiedBy = None
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    return _deterministic_zip(wb)


def _widen_to_fit(wb: Workbook) -> None:
    """French words are longer than the English widths were made for ("Nouveau niveau"
    in a column for "New level"): the columns of the headers of Stock, Log and Low stock,
    and Settings' labels, are widened to them."""
    settings = wb[SETTINGS_SHEET]
    labels = [row[0] for row in settings.iter_rows(max_row=len(layout.SETTING_LABELS))]
    for name in (STOCK_SHEET, LOG_SHEET, LOW_STOCK_SHEET):
        _widen_columns(wb[name], wb[name][1])
    _widen_columns(settings, labels)


def _widen_columns(sheet: Worksheet, cells: Iterable[Any]) -> None:
    for cell in cells:
        if isinstance(cell.value, str):
            dimensions = sheet.column_dimensions[cell.column_letter]
            dimensions.width = max(dimensions.width or 0, len(cell.value) + 2)


def _in_language(wb: Workbook, language: str) -> None:
    """The template's words in ``language`` (French...): sheet names, headers, labels,
    notes, the validations' messages and sheet How to, on the English workbook just
    built (the same cells, styles and rules)."""

    def _in(text: str, **params: str) -> str:
        return i18n.translate(text, language, **params)

    stock = wb[STOCK_SHEET]
    for cell in stock[1]:
        if cell.value in layout.STOCK_HEADERS:
            cell.value = layout.header_text(cell.value, language)
    for sheet in (stock, wb[SETTINGS_SHEET]):
        for validation in sheet.data_validations.dataValidation:
            title = validation.errorTitle or ""
            validation.error = (_in(_PLATFORM_CHOICE, platforms=", ".join(layout.PLATFORMS))
                                if title == _SHOP_PLATFORM else _in(validation.error))
            validation.errorTitle = _in(title)
            if validation.promptTitle:
                validation.promptTitle = _in(validation.promptTitle)
                validation.prompt = _in(validation.prompt)
    settings = wb[SETTINGS_SHEET]
    for label, value in settings.iter_rows(min_col=1, max_col=2):
        if label.value in layout.SETTING_LABELS:
            label.value = layout.label_text(label.value, language)
        if value.value == layout.XLSTOCK_SERVICE:
            value.value = layout.platform_text(layout.XLSTOCK_SERVICE, language)
    note_row = len(layout.SETTING_LABELS) + 2
    for offset, line in enumerate(_NOTES):
        settings.cell(row=note_row + offset, column=1).value = _in(line)
    for column, text in enumerate(layout.LOG_HEADERS_IN[language], start=1):
        wb[LOG_SHEET].cell(row=1, column=column).value = text
    for column, text in enumerate(layout.LOW_STOCK_HEADERS_IN[language], start=1):
        wb[LOW_STOCK_SHEET].cell(row=1, column=column).value = text
    _widen_to_fit(wb)
    for name in (SETTINGS_SHEET, LOG_SHEET, LOW_STOCK_SHEET, HOWTO_SHEET):
        wb[name].title = layout.sheet_text(name, language)


def _header_row(sheet: Worksheet, headers: Sequence[str],
                fills: dict[str, PatternFill] | None = None) -> None:
    thin = Side(style="thin", color="FFBFBFBF")
    for column, header in enumerate(headers, start=1):
        cell = sheet.cell(row=1, column=column, value=header)
        cell.font = _HEADER_FONT
        cell.fill = (fills or {}).get(header, _SHOP_FILL)
        cell.alignment = Alignment(horizontal="center", vertical="center")
        cell.border = Border(bottom=thin)
    sheet.row_dimensions[1].height = 20


def _stock_sheet(sheet: Worksheet) -> None:
    headers = layout.STOCK_HEADERS
    _header_row(sheet, headers, _WHO_WRITES)
    letter = {h: chr(ord("A") + i) for i, h in enumerate(headers)}
    for header, width in _WIDTHS.items():
        sheet.column_dimensions[letter[header]].width = width
    for header, number_format in _NUMBER_FORMATS.items():
        sheet.column_dimensions[letter[header]].number_format = number_format
    sheet.freeze_panes = "B2"
    _print_setup(sheet, landscape=True, title_row=True)

    def whole_column(header: str) -> str:
        return f"{letter[header]}2:{letter[header]}{_LAST_ROW}"

    received = DataValidation(
        type="whole", operator="between", formula1="-1000000000", formula2="1000000000",
        allow_blank=True, showErrorMessage=True, showInputMessage=True,
        errorTitle=N_("Received: a whole number"),
        error=N_("Type the units received as a whole number (negative to take units away), "
                 "or leave it blank."),
        promptTitle=N_("Received"),
        prompt=N_("Units added by a delivery. Whole number; leave blank for none."),
    )
    received.add(whole_column(layout.RECEIVED))
    new_level = DataValidation(
        type="whole", operator="greaterThanOrEqual", formula1="0",
        allow_blank=True, showErrorMessage=True, showInputMessage=True,
        errorTitle=N_("New level: whole number >= 0"),
        error=N_("Type the counted stock level as a whole number, 0 or more, or leave it "
                 "blank."),
        promptTitle=N_("New level"),
        prompt=N_("The level you counted. Whole number, 0 or more; blank for no change."),
    )
    new_level.add(whole_column(layout.NEW_LEVEL))
    low_at = DataValidation(
        type="whole", operator="greaterThanOrEqual", formula1="0",
        allow_blank=True, showErrorMessage=True,
        errorTitle=N_("Low at: whole number >= 0"),
        error=N_("Type the low-stock threshold as a whole number, 0 or more, or leave it "
                 "blank."),
    )
    low_at.add(whole_column(layout.LOW_AT))
    for validation in (received, new_level, low_at):
        sheet.add_data_validation(validation)

    col = {h: f"${letter[h]}2" for h in headers}
    every_row = f"A2:{letter[headers[-1]]}{_LAST_ROW}"
    # The traffic light (Excel and LibreOffice evaluate it themselves): red at or below
    # 0, amber at or below the row's Low at (else Settings' Low stock at, the name
    # LowStockAt), on Online and on the level a publish would leave (Online + Change).
    threshold = (f"IF(ISNUMBER({col[layout.LOW_AT]}),{col[layout.LOW_AT]},"
                 f"IF(ISNUMBER({layout.LOW_STOCK_NAME}),{layout.LOW_STOCK_NAME},-1))")
    online, change = col[layout.ONLINE], col[layout.CHANGE]
    for cells, level, known in (
        (whole_column(layout.ONLINE), online, f"ISNUMBER({online})"),
        (whole_column(layout.CHANGE), f"{online}+{change}",
         f"ISNUMBER({change}),ISNUMBER({online})"),
    ):
        sheet.conditional_formatting.add(cells, FormulaRule(
            formula=[f"AND({known},{level}<=0)"], stopIfTrue=True,
            fill=PatternFill(bgColor=_OUT_COLOUR), font=Font(bold=True, color="FF9C0006")))
        sheet.conditional_formatting.add(cells, FormulaRule(
            formula=[f"AND({known},{level}<={threshold})"],
            fill=PatternFill(bgColor=_LOW_COLOUR), font=Font(bold=True, color="FF9C5700")))
    sheet.conditional_formatting.add(
        whole_column(layout.STATUS),
        FormulaRule(
            formula=[f'AND({col[layout.STATUS]}<>"",' + ",".join(
                f'{col[layout.STATUS]}<>"{fine}"' for fine in _FINE_STATUSES) + ")"],
            fill=PatternFill(bgColor=_PROBLEM_COLOUR), font=Font(color="FF9C0006"),
        ),
    )
    sheet.conditional_formatting.add(
        every_row,
        FormulaRule(
            formula=[f'OR({col[layout.RECEIVED]}<>"",{col[layout.NEW_LEVEL]}<>"")'],
            fill=PatternFill(bgColor=_PENDING_COLOUR),
        ),
    )


def _settings_sheet(sheet: Worksheet, service_url: str | None, shop_url: str | None,
                    platform: str | None, location: str | None) -> None:
    values = {
        layout.SETTING_SERVICE: service_url or layout.DEFAULT_SERVICE,
        layout.SETTING_SHOP: shop_url or None,
        layout.SETTING_POLICY: "rebase",
        layout.SETTING_PLATFORM: platform or layout.XLSTOCK_SERVICE,
        layout.SETTING_LOCATION: location or None,
    }
    for row, label in enumerate(layout.SETTING_LABELS, start=1):
        label_cell = sheet.cell(row=row, column=1, value=label)
        label_cell.font = Font(name=_FONT, sz=11, bold=True)
        value = values.get(label)
        if value is not None:
            cell = sheet.cell(row=row, column=2)
            cell._value = value  # literal text, even if a URL ever began with "="
            cell.data_type = "s"
    policy_row = layout.SETTING_LABELS.index(layout.SETTING_POLICY) + 1
    policy = DataValidation(
        type="list", formula1='"' + ",".join(layout.POLICIES) + '"', allow_blank=True,
        showErrorMessage=True, errorTitle=N_("Conflict policy"),
        error=N_("Choose rebase (keep online sales, the default) or strict (stop on any "
                 "online change since Sync)."),
    )
    policy.add(f"B{policy_row}")
    sheet.add_data_validation(policy)
    platform_row = layout.SETTING_LABELS.index(layout.SETTING_PLATFORM) + 1
    platforms = DataValidation(
        type="list", formula1='"' + ",".join(layout.PLATFORMS) + '"', allow_blank=True,
        showErrorMessage=True, errorTitle=_SHOP_PLATFORM,
        error=_PLATFORM_CHOICE.format(platforms=", ".join(layout.PLATFORMS)),
    )
    platforms.add(f"B{platform_row}")
    sheet.add_data_validation(platforms)
    note_row = len(layout.SETTING_LABELS) + 2
    for offset, line in enumerate(_NOTES):
        note = sheet.cell(row=note_row + offset, column=1, value=line)
        note.font = Font(name=_FONT, sz=11, italic=True, color="FF595959")
    sheet.column_dimensions["A"].width = 18
    sheet.column_dimensions["B"].width = 44
    _print_setup(sheet)


def _log_sheet(sheet: Worksheet) -> None:
    _header_row(sheet, layout.LOG_HEADERS)
    for index, width in enumerate((20, 10, 16, 13, 10, 60)):
        sheet.column_dimensions[chr(ord("A") + index)].width = width
    sheet.freeze_panes = "A2"
    _print_setup(sheet, landscape=True, title_row=True)


def _low_stock_sheet(sheet: Worksheet) -> None:
    _header_row(sheet, layout.LOW_STOCK_HEADERS)
    for index, width in enumerate((16, 28, 16, 9, 9, 10)):
        sheet.column_dimensions[chr(ord("A") + index)].width = width
    sheet.freeze_panes = "A2"
    _print_setup(sheet, title_row=True)


def _howto_sheet(sheet: Worksheet,
                 lines: Sequence[tuple[str, str | None]] = HOWTO_LINES) -> None:
    fills = {
        "pending": PatternFill("solid", start_color=_PENDING_COLOUR, end_color=_PENDING_COLOUR),
        "low": PatternFill("solid", start_color=_LOW_COLOUR, end_color=_LOW_COLOUR),
        "problem": PatternFill("solid", start_color=_PROBLEM_COLOUR, end_color=_PROBLEM_COLOUR),
    }
    for row, (text, kind) in enumerate(lines, start=1):
        if not text:
            continue
        cell = sheet.cell(row=row, column=1, value=text)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        size = _HOWTO_SIZES.get(kind or "", 11)
        cell.font = Font(name=_FONT, sz=size, bold=size > 11)
        if kind in fills:
            cell.fill = fills[kind]
        wrapped = -(-len(text) // _HOWTO_CHARS_PER_LINE)
        sheet.row_dimensions[row].height = wrapped * round(size * 1.35) + 2
    sheet.column_dimensions["A"].width = _HOWTO_WIDTH
    _print_setup(sheet)



def _print_setup(sheet: Worksheet, *, landscape: bool = False, title_row: bool = False) -> None:
    """Print the sheet one page wide (as many pages down as it takes), with row 1
    repeated on every page when ``title_row``."""
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    if landscape:
        sheet.page_setup.orientation = "landscape"
    if title_row:
        sheet.print_title_rows = "1:1"


def _deterministic_zip(wb: Workbook) -> bytes:
    """Save through openpyxl's writer (so the modified date is not set to now), then
    repack every part with a fixed date and attributes, uncompressed."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).save()
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_STORED
            entry.create_system = 0
            entry.external_attr = 0
            target.writestr(entry, source.read(info))
    return out.getvalue()

