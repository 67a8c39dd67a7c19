"""The Excel buttons: Sync, Preview and Publish, called from the workbook's macros.

Each button's macro runs ``RunPython "import xlstock.excel; xlstock.excel.sync()"``
(or ``preview()``, ``publish()``); xlwings starts Python and these functions find the
workbook with ``xw.Book.caller()``. They run the same actions as the command line,
on the live workbook through :class:`~xlstock.workbook.xlwings_adapter.XlwingsWorkbook`,
with what a desktop user expects around them:

- Excel's screen updating and automatic calculation are off while the action runs,
  and come back afterwards even after an error (``App.properties``);
- the status bar says what is happening and how far along it is;
- Publish shows what it is about to send and waits for Yes;
- a change to most of the shop at once asks before going on;
- every outcome, good or bad, ends in a message box in plain words, never a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xlstock import actions, i18n
from xlstock.errors import MassChangeError, SheetError, UsageError, XlstockError
from xlstock.i18n import NC_, _
from xlstock.workbook import layout
from xlstock.workbook.xlwings_adapter import XlwingsWorkbook

if TYPE_CHECKING:
    import xlwings as xw

log = logging.getLogger(__name__)

TITLE = "xlstock"
MAX_ALERT_LINES = 12
"""Detail lines a message box shows before pointing at column Status for the rest."""
BUTTON_WORDS = (NC_("button", "Sync"), NC_("button", "Preview"), NC_("button", "Publish"),
                NC_("button", "Undo"), NC_("button", "Validate"))
"""The buttons' names, translated in the catalogue under ``button`` (French:
Synchroniser, Aperçu, Publier, Annuler, as :data:`xlstock.macros.vba_source.BUTTONS`)."""


def button(action: str, language: str | None = None) -> str:
    """A button's name (``Sync``...) in ``language`` (the current one by default)."""
    return i18n.translate_in("button", action, language or i18n.current())


def sync() -> None:
    """Button Sync: pull the live online levels into sheet Stock."""
    _run("Sync", lambda click: actions.sync(
        click.book, click.service, allow_mass_change=click.allow_mass_change,
        progress=click.progress, settings=click.settings))


def preview() -> None:
    """Button Preview: show in Change and Status what Publish would send; sends nothing."""
    _run("Preview", lambda click: actions.preview(
        click.book, click.service, progress=click.progress, settings=click.settings))


def publish() -> None:
    """Button Publish: after a Yes to its summary, upload the stock file."""
    _run("Publish", lambda click: actions.publish(
        click.book, click.service, allow_mass_change=click.allow_mass_change,
        confirm=click.confirm_publish, progress=click.progress, settings=click.settings))


def undo() -> None:
    """Button Undo: after a Yes to what it would send, take back the last publish made
    from this workbook, keeping the sales made since."""
    _run("Undo", lambda click: actions.undo(
        click.book, click.service, confirm=click.confirm_undo, progress=click.progress,
        settings=click.settings))


@dataclass
class _Click:
    """One button press: the workbook and its Settings, the stock service, and the ways
    to talk back."""

    book: XlwingsWorkbook
    settings: layout.Settings
    service: actions.StockServiceClient
    app: xw.App
    progress: actions.Progress
    allow_mass_change: bool = False

    def confirm_publish(self, summary: actions.PublishSummary) -> bool:
        return _ask(self.app, "Publish", summary.text())

    def confirm_undo(self, question: str) -> bool:
        return _ask(self.app, "Undo", question)


class _StatusBar:
    """Progress on Excel's status bar; unchanged text is not sent again."""

    def __init__(self, app: xw.App, action: str) -> None:
        self.app = app
        self.action = action
        self.last = ""

    def __call__(self, message: str, fraction: float | None) -> None:
        if fraction is None:
            text = _("xlstock {button}: {message}", button=button(self.action),
                     message=message)
        else:
            text = _("xlstock {button}: {message} ({percent}%)", button=button(self.action),
                     message=message, percent=round(100 * min(max(fraction, 0.0), 1.0)))
        if text != self.last:
            self.app.status_bar = text
            self.last = text


def _run(action: str, run: Callable[[_Click], actions.Report]) -> None:
    """What every button does around its action: Excel's settings off and back on,
    progress, the mass-change question, and one message box with the outcome; all said
    in the machine's language, or the workbook's when the machine asks for none (Excel
    seldom gives Python a locale: :func:`xlstock.i18n.about_workbook`)."""
    import_xlwings()
    import xlwings as xw

    book = xw.Book.caller()
    adapter = XlwingsWorkbook(book)
    with i18n.speaking(i18n.about_workbook(_language_of(adapter))):
        _run_in(action, run, adapter, book.app)


def _language_of(adapter: XlwingsWorkbook) -> str | None:
    try:
        return layout.language_of(adapter)
    except Exception:  # the action's own reading says what is wrong with the workbook
        log.debug("the workbook's language could not be read", exc_info=True)
        return None


def _run_in(action: str, run: Callable[[_Click], actions.Report], adapter: XlwingsWorkbook,
            app: xw.App) -> None:
    try:
        with app.properties(screen_updating=False, calculation="manual",
                            status_bar=_("xlstock {button}: starting", button=button(action))):
            report = _press(action, run, adapter, app)
    except XlstockError as exc:
        _tell(app, action, _error_text(exc), critical=True)
        return
    except Exception as exc:
        log.exception("xlstock %s stopped on an unexpected error", action)
        _tell(app, action, _(
            "{button} stopped on an unexpected problem ({kind}: {problem}).\n\n"
            "If the sheet looks wrong, close the workbook without saving. Please report "
            "this problem to whoever set up xlstock for you.", button=button(action),
            kind=type(exc).__name__, problem=exc
        ), critical=True, original=exc)
        return
    if report is not None:
        _tell(app, action, _report_text(report), critical=report.error is not None)


def _press(action: str, run: Callable[[_Click], actions.Report], adapter: XlwingsWorkbook,
           app: xw.App) -> actions.Report | None:
    progress = _StatusBar(app, action)
    progress(_("connecting to the stock service"), None)
    settings = layout.read_settings(adapter)
    with actions.service_for(settings) as service:
        click = _Click(adapter, settings, service, app, progress)
        try:
            return run(click)
        except MassChangeError as exc:
            if not _ask(app, action, _mass_change_question(exc)):
                return None
            click.allow_mass_change = True
            return run(click)


def _ask(app: xw.App, action: str, question: str) -> bool:
    answer = app.alert(question, title=_title(action), buttons="yes_no", mode="info")
    return str(answer).lower() == "yes"


def _tell(app: xw.App, action: str, text: str, *, critical: bool,
          original: BaseException | None = None) -> None:
    try:
        app.alert(text, title=_title(action), mode="critical" if critical else "info")
    except Exception:
        log.exception("could not show the message box: %s", text)
        if original is not None:
            raise original from None
        raise


def _title(action: str) -> str:
    return _("{title}: {button}", title=TITLE, button=button(action))


_CLI_COMMAND = re.compile(r"`xlstock (sync|preview|publish|validate)\b[^`]*`"
                          r"|\bxlstock (sync|preview|publish|validate)\b")
_RUN = {i18n.FRENCH: (r"\blancez (?=`?xlstock )", "appuyez sur ")}


def excel_words(message: str) -> str:
    """A message written for the command line, as said to someone in Excel:
    ``run `xlstock sync` `` becomes ``press Sync`` (in French, ``lancez `xlstock sync` ``
    becomes ``appuyez sur Synchroniser``)."""
    message = re.sub(r"\brun (?=`?xlstock )", "press ", message)
    if i18n.current() in _RUN:
        message = re.sub(*_RUN[i18n.current()], message)
    message = _CLI_COMMAND.sub(
        lambda m: button((m.group(1) or m.group(2)).capitalize()), message)
    if re.match(r"[a-z]+ ", message):  # a sentence, not a file or cell name
        message = message[:1].upper() + message[1:]
    return message


def _mass_change_question(exc: MassChangeError) -> str:
    return _("{situation}.\n\nGo on anyway? Yes goes on; No leaves the shop and the sheet "
             "as they are.", situation=excel_words(exc.situation))


def _error_text(exc: XlstockError) -> str:
    lines = [excel_words(exc.message)]
    problems = exc.problems if isinstance(exc, SheetError) else []
    lines += [f"  {p}" for p in problems[:MAX_ALERT_LINES]]
    if len(problems) > MAX_ALERT_LINES:
        lines.append("  " + _more(len(problems) - MAX_ALERT_LINES))
    return "\n".join(lines)


def _more(count: int) -> str:
    return _("... and {count:n} more: see column Status", count=count)


def _report_text(report: actions.Report) -> str:
    lines = [excel_words(report.summary)]
    problems = report.error.problems if report.error is not None else []
    details = [excel_words(line) for line in [*report.lines, *map(str, problems)]]
    lines += details[:MAX_ALERT_LINES]
    if len(details) > MAX_ALERT_LINES:
        lines.append(_more(len(details) - MAX_ALERT_LINES))
    return "\n".join(lines)


def import_xlwings() -> None:
    """Raise :class:`UsageError` saying how to install xlwings if it is missing."""
    try:
        import xlwings  # noqa: F401
    except ImportError as exc:
        raise UsageError(_(
            "the Excel buttons need xlwings: run  pip install 'xlstock[excel]'  and then "
            "xlwings addin install (see docs/excel.md)"
        )) from exc
