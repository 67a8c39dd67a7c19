"""The merchant's four actions, written once: sync, preview, publish and validate.

Each takes an open workbook adapter (the file, or live Excel) and, for the online
actions, a stock-service client; it reads the sheet once, asks the pure core what to
do, and writes back only the cells that change, a column at a time. The CLI and the
Excel buttons are thin skins over these functions.

Failure rule: when an action fails, only column Status, the Log and the hidden state
change (to say why and to remember an interrupted publish); levels, edits and the
merchant's columns stay as they were.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, overload

from xlstock import failpoints, i18n
from xlstock.cells import Formula
from xlstock.errors import (
    ConflictError,
    MassChangeError,
    OutcomeUnknown,
    RowProblem,
    ServiceError,
    SheetError,
    StaleVersion,
    UsageError,
    WorkbookError,
    XlstockError,
)
from xlstock.i18n import N_, _
from xlstock.model import (
    LevelItems,
    Snapshot,
    StockItem,
    ValueProblem,
    clean_sku,
    clean_texts,
    parse_quantity,
    usual_sku_cells,
)
from xlstock.planner import (
    STATUS_CHANGED,
    STATUS_NEW,
    STATUS_NOT_ONLINE,
    STATUS_OK,
    STRICT,
    PublishLine,
    PublishPlan,
    SheetRow,
    SkuHints,
    parse_columns,
    parse_picked,
    plan_publish,
    plan_undo,
    rows_to_plan,
    status_key,
    status_text,
    status_words,
)
from xlstock.stockfile import dumps
from xlstock.workbook import journal, layout
from xlstock.workbook.base import MAX_ROWS, WorkbookAdapter

if TYPE_CHECKING:
    from xlstock.remote.client import HttpStockServiceClient

Progress = Callable[[str, "float | None"], None]

MAX_PUBLISH_ATTEMPTS = 3
"""How many times a publish is planned and sent; after a 412 only the items the service
named as moved are re-planned, on the levels it gave."""
MASS_CHANGE_MIN_ROWS = 20
"""A publish or sync touching at least this many rows *and* most of the shop needs
``allow_mass_change``."""


class PublishOutcome(Protocol):
    """What became of a publish, as far as the actions read it: the fields of
    :class:`xlstock.remote.PublishOutcome` they need."""

    @property
    def version(self) -> str: ...

    @property
    def applied(self) -> bool: ...

    @property
    def levels_after(self) -> Mapping[str, int]:
        """SKU -> the level the publish left, for each SKU it changed (a delivery lands
        on whatever the level was when it arrived)."""
        ...


class StockServiceClient(Protocol):
    """What the actions need of a shop's connector: the xlstock stock service's client
    (:class:`xlstock.remote.HttpStockServiceClient`), a platform's
    (:mod:`xlstock.shops`), or a test's fake.

    ``publish_lines`` sends the plan's lines under one idempotency key: a delivery as a
    change in units, a count checked against the level it was planned from. A refusal
    because levels moved is :class:`StaleVersion`, whose ``moved`` gives the moved SKUs'
    levels and whose ``applied`` the levels left by the lines the shop did apply before
    it refused (a platform that publishes in several calls); the same lines under the
    same key are applied at most once. ``publish_outcome`` says what became of a key,
    ``None`` when the shop never saw it; a connector whose platform cannot be asked sets
    ``outcome_known = False`` and always answers ``None``: the actions then send the
    same lines under the same key again, which the platform applies once.

    ``read_levels`` gives the whole shop (``Snapshot.since`` is ``None``); a connector
    that sets ``reads_changes = True`` also takes ``since=<version>`` and may then give
    only the products changed since that version (the stock service's client does). A
    connector that sets ``marks_undos = True`` takes ``publish_lines(undoes=KEY)`` for
    an undo, and its shop then records publish KEY undone (the stock service's account
    pages offer no second undo of it).
    """

    @overload
    def read_levels(self, *, names: bool = True) -> Snapshot: ...

    @overload
    def read_levels(self, if_none_match: str | None, *,
                    names: bool = True) -> Snapshot | None: ...

    def publish_lines(self, lines: Sequence[PublishLine], key: str) -> PublishOutcome: ...

    def publish_outcome(self, key: str) -> PublishOutcome | None: ...


@dataclass
class Report:
    """What an action did, for the CLI to print and the buttons to show."""

    action: str
    summary: str
    lines: list[str] = field(default_factory=list)
    table: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    """Preview/publish rows: SKU, online, change, level to publish, note."""
    error: SheetError | None = None
    """The rows at fault, when preview or validate found some (a :class:`ConflictError`
    when strict policy found rows changed online): reported as a failed publish reports
    them, on the same stream, with the same exit status."""


@dataclass(frozen=True)
class PublishSummary:
    """What a publish is about to send, for a confirmation."""

    shop: str
    rows: int
    units_added: int
    units_removed: int
    online_sales: int

    def text(self) -> str:
        """The question, in the current language (a :class:`~xlstock.i18n.Message`)."""
        if self.online_sales:
            return _("Publish new stock levels to {shop}?\n"
                     "{rows:n} row(s) change: {added:n} unit(s) added, {removed:n} removed.\n"
                     "{sold:n} unit(s) sold online since your last Sync are taken into "
                     "account.", shop=self.shop, rows=self.rows, added=self.units_added,
                     removed=self.units_removed, sold=self.online_sales)
        return _("Publish new stock levels to {shop}?\n"
                 "{rows:n} row(s) change: {added:n} unit(s) added, {removed:n} removed.",
                 shop=self.shop, rows=self.rows, added=self.units_added,
                 removed=self.units_removed)


def units_moved(added: int, removed: int) -> str:
    """``+12 / -6 units``; a side that is zero is left out (``+3 units``, not ``+3 / -0``)."""
    if added and removed:
        return _("+{added:n} / -{removed:n} units", added=added, removed=removed)
    if added:
        return _("+{added:n} units", added=added)
    if removed:
        return _("-{removed:n} units", removed=removed)
    return _("0 units")


def shown_version(version: Any) -> str:
    """A version tag as a merchant reads it: ``"6.0c50"`` (an ETag) shows as ``6.0c50``."""
    text = "" if version is None else str(version)
    if text.startswith("W/"):
        text = text[2:]
    return text.strip('"')


def _noop(message: str, fraction: float | None) -> None:
    return None


def _now() -> str:
    """Now, as the hidden state keeps it (and ``xlstock history`` shows it)."""
    return _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _stamp(language: str) -> str:
    """Now, as a workbook of ``language`` shows it in the Log and Settings:
    ``2026-12-06 10:05:00``; ``06/12/2026 10:05:00`` in French."""
    return i18n.stamp(_dt.datetime.now().astimezone(), language)


class _Unreadable:
    """A stamp that is no date (a damaged state, an odd service): shown as it is."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __format__(self, spec: str) -> str:
        return self.text


def _stamp_of(value: Any) -> Any:
    """A stored stamp (``2026-12-06 10:05:00``, ``2026-12-06T10:05:00Z``) as a date and
    time, which a message shows the language's way (``{when:dt}``)."""
    try:
        return _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return _Unreadable(str(value))


_LOG_ACTIONS = (N_("sync"), N_("preview"), N_("publish"), N_("undo"), N_("validate"),
                N_("publish (recovered)"), N_("undo (recovered)"), N_("undo (online)"))
"""The Log's Action words (by their English keys), written in the workbook's language."""


def service_for(settings: layout.Settings) -> HttpStockServiceClient:
    """The connector for the workbook's Settings: the xlstock stock service's client,
    or the shop platform's (``Shop platform``, chosen in :func:`xlstock.shops.connector_for`);
    the token comes from the environment or the keyring, never from the workbook. The
    caller closes it: use it in a ``with`` block, and hand the same ``settings`` to the
    action, which then neither reads nor checks them again."""
    _require_shop(settings)
    from xlstock.shops import connector_for

    connector: HttpStockServiceClient = connector_for(settings)
    return connector


def _require_shop(settings: layout.Settings) -> None:
    if not settings.shop_url:
        row = settings.rows.get(layout.SETTING_SHOP)
        where = f"{settings.sheet}!B{row}" if row else _("sheet {sheet}", sheet=settings.sheet)
        raise UsageError(_(
            "{where}: Shop URL is empty; write your shop's address as registered with the "
            "stock service (e.g. https://shop.example)", where=where
        ))


# --- reading the sheet -------------------------------------------------------------


def _clean_skus(column: list[Any]) -> list[str | None]:
    """:func:`_sku_or_none` of each cell; a column of usual SKUs (and blanks), which
    are their own clean form, is told so by C loops (:func:`usual_sku_cells`)."""
    if usual_sku_cells(column):
        return column
    return [_sku_or_none(value) for value in column]


def _sku_or_none(value: Any) -> str | None:
    try:
        return clean_sku(value)
    except ValueProblem:
        return None


@dataclass
class _WorkbookSession:
    """One action's view of the workbook: sheet Stock, Settings and the hidden state,
    each read once; writes go through it so that it stays in step with the file."""

    book: WorkbookAdapter
    table: layout.StockTable
    settings: layout.Settings
    state: dict[str, Any]
    language: str = i18n.ENGLISH
    """The workbook's language: what xlstock writes in it (Status, Log, Settings) is in
    it, whatever the machine's."""
    _skus: list[str | None] | None = field(default=None, repr=False)
    _log: layout.Log | None = field(default=None, repr=False)
    recorded_part: int = 0
    """Rows of a publish a platform applied before refusing the rest, recorded so far."""
    part_changes: dict[str, int] = field(default_factory=dict)
    """SKU -> change of those rows: what this command published before its last plan,
    which the rest of the publish reports (Change, Status, Log) with its own."""
    finished_changes: dict[str, int] = field(default_factory=dict)
    """SKU -> change of an interrupted publish this command finished (logged on its own
    Log row): kept in Change and Status by the plan that follows."""
    sent: dict[str, Any] | None = None
    """The pending publish this command sent (kept outside the workbook if the workbook
    cannot record it)."""
    live_levels: _LaidChanges | None = None
    """The changes Sync read since the last one, to lay over the levels it left."""
    journaled: bool = False
    """The pending publish is kept in the journal, not yet in the saved workbook."""
    levels_let_go: bool = False
    """The levels of the last Sync were let go before the last save (:meth:`save`)."""

    @property
    def path(self) -> Any:
        """The workbook file's path (``None`` for live Excel)."""
        return getattr(self.book, "path", None)

    @classmethod
    def read(
        cls, book: WorkbookAdapter, settings: layout.Settings | None = None, *,
        names: bool = True,
    ) -> _WorkbookSession:
        """The session over ``book``; ``settings`` when the caller has read them;
        ``names=False``: Product and Variant are read only if asked for."""
        table = layout.read_stock(book, layout.STOCK_HEADERS if names else layout.WITHOUT_NAMES)
        settings = settings if settings is not None else layout.read_settings(book)
        state = layout.read_state(book)
        if state.get("shop") not in (None, settings.shop_url):
            state = {}  # the workbook now points at another shop: its memory is void
        return cls(book, table, settings, state, layout.language_of(book))

    def parsed_rows(self) -> tuple[list[SheetRow], list[RowProblem]]:
        """Every data row's SKU and edits, checked (:func:`parse_columns`)."""
        t = self.table
        return parse_columns(t.column(layout.SKU), t.column(layout.RECEIVED),
                             t.column(layout.NEW_LEVEL))

    def skus(self) -> list[str | None]:
        """Every data row's SKU, cleaned (``None`` where blank or unusable), worked out
        once per version of the SKU column."""
        if self._skus is None or len(self._skus) != len(self.table.rows):
            self._skus = _clean_skus(self.table.column(layout.SKU))
        return self._skus

    def sku_of(self, index: int) -> str | None:
        return self.skus()[index]

    @property
    def base(self) -> dict[str, int]:
        return dict(self.state.get("base") or {})

    def column(self, header: str) -> list[Any]:
        return self.table.column(header)

    def write(self, header: str, values: Sequence[Any], first: int = 0) -> None:
        if header == layout.STATUS:
            values = self.in_language(values)
        layout.ensure_columns(self.book, self.table, [header])
        layout.write_column(self.book, self.table, header, values, first=first)
        if header == layout.SKU:
            self._skus = None

    def in_language(self, statuses: Sequence[Any]) -> Sequence[Any]:
        """Status values as the workbook writes them: a Status key (``changed``) and a
        message in the workbook's language; any other value as it is. ``statuses``
        itself when that changes nothing (no copy of 100,000 rows)."""
        words, language = status_words(self.language), self.language
        written: list[Any] | None = None
        for index in _rows_to_word(statuses, words):
            value = statuses[index]
            if type(value) is str:
                word = words.get(value, value)
                if word == value:
                    continue
            elif isinstance(value, i18n.Message):
                word = value.render(language)
            else:
                continue
            if written is None:
                written = list(statuses)
            written[index] = word
        return statuses if written is None else written

    def stamp(self) -> str:
        """Now, as this workbook's Log and Settings show it."""
        return _stamp(self.language)

    def write_rows(self, header: str, values: Mapping[int, Any]) -> None:
        """Write ``values`` (data row, 0-based -> value) into column ``header``, those
        rows alone (Status in the workbook's language, as :meth:`write`)."""
        if header == layout.STATUS:
            values = dict(zip(values, self.in_language(list(values.values())), strict=True))
        layout.ensure_columns(self.book, self.table, [header])
        layout.write_cells(self.book, self.table, header, values)

    def write_statuses(self, by_row: Mapping[int, Any],
                       planned: Sequence[int] | None = None) -> None:
        """Status of each row from ``by_row`` (cleared where it has none); with
        ``planned`` (sheet rows), of those rows only, the others kept."""
        self.write_planned(layout.STATUS, by_row, planned)

    def write_planned(self, header: str, by_row: Mapping[int, Any],
                      planned: Sequence[int] | None) -> None:
        """Column ``header`` as a plan leaves it: each row's value from ``by_row``
        (``None`` where it has none, or a blank); with ``planned`` (sheet rows, the rows
        a plan looked at), those rows alone."""
        first = self.table.sheet_row(0)
        if planned is None:
            self.write(header, [by_row.get(row) or None
                                for row in range(first, first + len(self.table.rows))])
        else:
            self.write_rows(header, {row - first: by_row.get(row) or None for row in planned})

    def log(self, action: str, rows: int | str, units: int | str, result: str) -> None:
        """A Log row, in the workbook's language (``action`` is a key of
        :data:`_LOG_ACTIONS`, ``result`` a message)."""
        version = self.state.get("version") or self.settings.values.get(layout.SETTING_VERSION)
        if self._log is None:
            self._log = layout.read_log(self.book)
        language = self.language
        layout.append_log(self.book, self._log,
                          [_stamp(language), i18n.translate(action, language),
                           shown_version(version), rows, units, i18n.render(result, language)])

    def save_state(self) -> None:
        if self.levels_let_go:
            raise RuntimeError("the levels of the last Sync were let go before the last save")
        self.state["shop"] = self.settings.shop_url
        layout.write_state(self.book, self.state)

    def save(self, *, last: bool = False) -> None:
        """Save the workbook; a pending publish kept in the journal for the upload is
        then in the workbook (or settled), so its journal entry goes. ``last``: the
        action's last save, which the levels of the last Sync are let go before (they
        are in the state sheet as written: at 1,000,000 SKUs 31 MB less at the save's
        peak, issue 22)."""
        if last:
            self.state.pop("base", None)
            self.live_levels, self._skus, self.levels_let_go = None, None, True
        self.book.save()
        if self.journaled:
            journal.drop(self.path, self.settings.shop_url)
            self.journaled = False


def _rows_to_word(statuses: Sequence[Any], words: Mapping[str, str]) -> Iterable[int]:
    """The rows whose Status may need writing as a word (a key, a message), found by C
    loops over the distinct values (of each kind: a message equals its text): a Sync
    of changes keeps most rows' words as they are."""
    try:
        kinds = set(zip(map(type, statuses), statuses, strict=True))
    except TypeError:  # an unhashable value: every row
        return range(len(statuses))
    wanted = {value for kind, value in kinds
              if (kind is str and words.get(value, value) != value)
              or issubclass(kind, i18n.Message)}
    return itertools.compress(itertools.count(), map(wanted.__contains__, statuses))


def _fail(
    session: _WorkbookSession, action: str, error: XlstockError, statuses: Mapping[int, str],
    planned: Sequence[int] | None = None,
) -> None:
    """Say why an action failed in Status and the Log, and save; levels untouched.
    ``planned``: the sheet rows ``statuses`` covers (``None``: every row)."""
    try:
        if statuses:
            session.write_statuses(statuses, planned)
        said = i18n.render(error.brief or error.message,
                           session.language).splitlines()[0][:300]
        session.log(action, "", "", _("failed: {error}", error=said))
        session.save()
    except XlstockError:
        pass  # the original error is what the merchant needs to see


def _problem_statuses(problems: Sequence[RowProblem]) -> dict[int, str]:
    statuses: dict[int, str] = {}
    for problem in problems:
        if problem.row is not None:
            statuses[problem.row] = _("error: {problem}", problem=problem.message)
    return statuses


# --- pending publish (crash safety) ---------------------------------------------------


def _settle_pending(
    session: _WorkbookSession, service: StockServiceClient, progress: Progress, *, may_send: bool
) -> str:
    """Settle a publish that was interrupted after its key was saved. Returns a line
    for the report ("" when there was none).

    The service is asked what it recorded under the key. Applied: the bookkeeping is
    finished (nothing is sent). Refused: the publish is forgotten. Never seen: the
    request may still be on its way, so the key is never dropped on that answer;
    Publish (``may_send``) sends the very same body with the same key once more: the
    service applies it once, or refuses it for good if its items have moved (then it
    is planned afresh). Sync and Preview leave it for Publish.
    """
    kept = _unrecorded(session)
    pending = session.state.get("pending")
    if not pending:
        return ""
    progress(_("Checking an interrupted publish with the shop"), None)
    outcome = service.publish_outcome(pending["key"])
    resent = outcome is None
    if outcome is None:
        if not may_send:
            if not getattr(service, "outcome_known", True):
                return _("A publish was interrupted and the shop cannot say whether it "
                         "arrived; Publish will finish it first, sending nothing twice.")
            return _("An interrupted publish has not reached the shop yet; Publish will "
                     "finish it (nothing is counted twice).")
        outcome = _resend_pending(session, service, pending, progress)
    if kept:  # dropped once the workbook that records the outcome is saved
        session.journaled = True
    if outcome is None or not outcome.applied:
        return _dropped_pending(session, pending, resent)
    _finish_pending(session, pending, outcome)
    if resent:
        return _("An interrupted publish was finished: the shop has it once, and the workbook "
                 "now records it.")
    return _("An interrupted publish had reached the shop; its bookkeeping is now done "
             "(nothing was sent twice).")


def _dropped_pending(session: _WorkbookSession, pending: Mapping[str, Any],
                     resent: bool) -> str:
    """An interrupted publish the shop did not apply is forgotten; what the report says."""
    session.state["pending"] = None
    session.save_state()
    if resent and _pending_lines(session.settings.shop_url, pending) is None:
        return _("An interrupted publish saved by an older xlstock never reached the "
                 "shop; it was dropped, and the sheet is planned afresh.")
    if session.recorded_part:
        return _("An interrupted publish was partly applied: {count:n} change(s) reached "
                 "the shop once and are now recorded; the levels of the others moved "
                 "since, so they are planned afresh.", count=session.recorded_part)
    return _("An interrupted publish never reached the shop and the levels have moved "
             "since; it was dropped, and the sheet is planned afresh.")


def _finish_pending(session: _WorkbookSession, pending: Mapping[str, Any],
                    outcome: PublishOutcome) -> None:
    """The bookkeeping of an interrupted publish the shop applied: recorded as its own
    publish would have recorded it."""
    # Only the rows the publish changed: the others' levels in it are as old as its plan,
    # and a Sync since may have brought newer ones.
    changed = {sku: pending["levels"][sku] for sku in pending["changes"]
               if sku in pending["levels"]}
    session.finished_changes.update({sku: c for sku, c in pending["changes"].items() if c})
    _record_publish(
        session,
        levels={**changed, **outcome.levels_after},
        changes=pending["changes"],
        edits=None if pending.get("undo_of") else pending["edits"],
        version=outcome.version,
    )
    _remember_publish(session, pending, {**changed, **outcome.levels_after})
    if pending.get("thresholds"):
        _thresholds_sent(session, pending["thresholds"])
    session.log("undo (recovered)" if pending.get("undo_of") else "publish (recovered)",
                len(pending["changes"]),
                sum(abs(c) for c in pending["changes"].values()),
                _("finished an interrupted publish (applied once)"))


def _unrecorded(session: _WorkbookSession) -> bool:
    """Take back a publish that this workbook has not recorded (kept by
    :mod:`xlstock.workbook.journal`: before its upload, or after a save that failed),
    as its pending publish, unless the workbook has one of its own; whether one was
    taken. One the workbook did record (a stop between its save and the entry's
    removal) is dropped."""
    if session.path is None:
        return False
    kept = journal.take(session.path, session.settings.shop_url)
    if kept is None:
        return False
    if any(p.get("key") == kept.get("key") for p in session.state.get("publishes") or ()):
        journal.drop(session.path, session.settings.shop_url)
        return False
    pending = session.state.get("pending")
    if pending and pending.get("key") != kept.get("key"):
        return False
    session.state["pending"] = kept
    return True


def _keep_unrecorded(session: _WorkbookSession) -> None:
    """The shop applied this command's publish and the workbook cannot record it: keep
    it outside the workbook, for the next command to record (never to send again)."""
    if session.sent is None or session.path is None:
        return
    try:
        journal.keep(session.path, session.settings.shop_url, session.sent)
    except OSError:
        pass  # the message already says the levels were published


def _resend_pending(
    session: _WorkbookSession,
    service: StockServiceClient,
    pending: Mapping[str, Any],
    progress: Progress,
) -> PublishOutcome | None:
    """Send an interrupted publish again, line for line, under its own key. ``None``
    when the shop refuses it for good (the levels moved, or the stock file is no
    longer valid): its key is then spent, so a late copy can never apply either. Lines
    the shop did apply before refusing the rest are recorded."""
    lines = _pending_lines(session.settings.shop_url, pending)
    if lines is None:
        return None  # not the lines that may be on their way: never send them
    progress(_("Finishing an interrupted publish"), 0.1)
    try:
        resend = getattr(service, "resend", None)
        if resend is not None:
            result: PublishOutcome = resend(lines, pending["key"])
            return result
        return _send(service, lines, pending["key"], pending.get("thresholds"),
                     pending.get("undo_of"))
    except StaleVersion as stale:
        if stale.applied:
            _record_part(session, pending, stale.applied, stale.current_version)
        return None
    except ServiceError as error:
        if error.status in (409, 422):
            return None
        raise


def _pending_lines(shop: str, pending: Mapping[str, Any]) -> list[PublishLine] | None:
    """The lines a saved publish sent, rebuilt from what the state keeps of them and
    checked against the hash of their stock file saved with them (``None`` for a
    publish saved by an xlstock older than protocol 2, or damaged state)."""
    items = pending.get("items")
    if not isinstance(items, dict):
        return None
    try:
        lines = [PublishLine.from_list(sku, value) for sku, value in sorted(items.items())]
    except (TypeError, ValueError):
        return None
    thresholds = pending.get("thresholds")
    if hashlib.sha256(_stock_file(shop, lines, thresholds)).hexdigest() != \
            pending.get("sha256"):
        return None
    return lines


def _stock_file(shop: str, lines: Sequence[PublishLine],
                thresholds: Mapping[str, int | None] | None = None) -> bytes:
    """The lines as the stock file's deterministic bytes (what a pending publish's hash
    is taken of, whatever the connector)."""
    return dumps(shop, {line.sku: line.target for line in lines},
                 {line.sku: line.planned_from for line in lines},
                 {line.sku: line.add for line in lines if line.add is not None}, thresholds)


def _low_at_notes(session: _WorkbookSession, most: int = 20) -> list[str]:
    """A line for each Low at that is not a whole number 0 or more ('cinq', 2.5, -1):
    it is left out (Settings' Low stock at applies), which the merchant would not see,
    since a threshold never stops a publish."""
    low_at = session.column(layout.LOW_AT)
    if low_at.count(None) == len(low_at):  # no Low at typed (the usual sheet)
        return []
    # a plain int 0 or more (nearly every typed or filled Low at) is one: not parsed
    maybe = [i for i, value in enumerate(low_at)
             if value is not None and (type(value) is not int or value < 0)]
    bad = [(i, low_at[i]) for i in maybe if _not_a_threshold(low_at[i])]
    skus = session.skus()
    lines: list[str] = [
        _("Stock row {row}, SKU {sku}: Low at {value} is not a whole number 0 or more, so it "
          "is left out (Settings' Low stock at applies); type one, or clear the cell",
          row=session.table.sheet_row(i), sku=repr(skus[i] or ""), value=repr(value))
        for i, value in bad[:most]]
    if len(bad) > most:
        lines.append(_("... and {count:n} more", count=len(bad) - most))
    return lines


def _not_a_threshold(value: Any) -> bool:
    """Whether a Low at cell holds something (not blank) that is no threshold."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return False
    return _own_threshold(value) is None


def _own_threshold(value: Any) -> int | None:
    """A Low at cell's threshold: a whole number 0 or more; ``None`` for a blank cell or
    anything else (Settings' Low stock at then applies)."""
    whole = layout.whole_or_none(value)
    return None if whole is None or whole < 0 else whole


def _thresholds(session: _WorkbookSession) -> dict[str, int]:
    """Each SKU's low-stock threshold as the workbook says it now: its Low at, else
    Settings' Low stock at."""
    default = session.settings.low_stock_at
    low_at = session.column(layout.LOW_AT)
    if low_at.count(None) == len(low_at):  # no Low at typed (the usual sheet): C loops
        return {} if default is None else dict.fromkeys(filter(None, session.skus()), default)
    found = {}
    for sku, value in zip(session.skus(), low_at, strict=True):
        if sku is None:
            continue
        threshold = _own_threshold(value)
        if threshold is None:
            threshold = default
        if threshold is not None:
            found[sku] = threshold
    return found


def _thresholds_to_send(session: _WorkbookSession) -> dict[str, int | None]:
    """The thresholds that changed since the workbook last sent them (``None``: the SKU
    has none of its own any more), for the service's low-stock e-mails."""
    now = _thresholds(session)
    sent = session.state.get("thresholds") or {}
    if now == sent:  # the usual publish: one comparison in C
        return {}
    changed: dict[str, int | None] = {sku: level for sku, level in now.items()
                                      if sent.get(sku) != level}
    changed.update({sku: None for sku in sent if sku not in now})
    return changed


def _thresholds_sent(session: _WorkbookSession, sent: Mapping[str, int | None]) -> None:
    known = dict(session.state.get("thresholds") or {})
    for sku, level in sent.items():
        if level is None:
            known.pop(sku, None)
        else:
            known[sku] = level
    session.state["thresholds"] = known
    session.save_state()


def _send(service: StockServiceClient, lines: Sequence[PublishLine], key: str,
          thresholds: Mapping[str, int | None] | None,
          undoes: str | None = None) -> PublishOutcome:
    extra: dict[str, Any] = {}
    if thresholds:
        extra["thresholds"] = thresholds
    if undoes and getattr(service, "marks_undos", False):
        extra["undoes"] = undoes  # the same on a resend: the replay's body is the same
    if extra:
        send: Any = service.publish_lines
        result: PublishOutcome = send(lines, key, **extra)
        return result
    return service.publish_lines(lines, key)


def _record_part(
    session: _WorkbookSession, pending: Mapping[str, Any], applied: Mapping[str, int],
    version: str | None,
) -> None:
    """Record the lines of a publish that the shop applied before it refused the rest
    (a platform that publishes in several calls): their rows are published, the others
    keep their edits for the next plan."""
    session.recorded_part += len(applied)
    session.part_changes.update({sku: c for sku, c in pending["changes"].items()
                                 if sku in applied and c})
    _record_publish(
        session,
        levels=dict(applied),
        changes={sku: c for sku, c in pending["changes"].items() if sku in applied},
        edits=None if pending.get("undo_of") else
        {sku: e for sku, e in pending["edits"].items() if sku in applied},
        version=version or session.state.get("version") or "",
        keep_pending=True,
    )
    _remember_publish(session, pending, applied, only=applied)


REMEMBERED_PUBLISHES = 20
"""Publishes the workbook remembers (what each sent and left), for ``xlstock undo``."""


def _remember_publish(session: _WorkbookSession, pending: Mapping[str, Any],
                      after: Mapping[str, int], *, only: Any = None) -> None:
    """Remember what a publish sent (its lines, the levels it left) in the workbook's
    state, newest last, so that ``xlstock undo`` can reverse exactly that; an undo marks
    the publish it undid."""
    items = {sku: value for sku, value in (pending.get("items") or {}).items()
             if only is None or sku in only}
    if not items:
        return
    publishes = [dict(p) for p in session.state.get("publishes") or []]
    entry = _publish_entry(publishes, pending)
    entry["items"] = {**entry["items"], **items}
    entry["after"] = {**entry["after"], **{sku: after[sku] for sku in items if sku in after}}
    undone = pending.get("undo_of")
    for publish in publishes if undone else ():
        if publish.get("key") == undone and not publish.get("undone_at"):
            publish["undone_at"], publish["undone_by"] = _now(), pending["key"]
    session.state["publishes"] = publishes[-REMEMBERED_PUBLISHES:]
    session.save_state()


def _publish_entry(publishes: list[dict[str, Any]],
                   pending: Mapping[str, Any]) -> dict[str, Any]:
    """The entry of ``publishes`` for the pending publish's key, added when missing."""
    entry = next((p for p in publishes if p.get("key") == pending["key"]), None)
    if entry is None:
        entry = {"key": pending["key"], "at": _now(), "items": {}, "after": {},
                 "undo_of": pending.get("undo_of"), "undone_at": None}
        publishes.append(entry)
    return entry


def _record_publish(
    session: _WorkbookSession,
    *,
    levels: Mapping[str, int],
    changes: Mapping[str, int],
    edits: Mapping[str, Sequence[Any]] | None,
    version: str,
    sent: bool = True,
    keep_pending: bool = False,
    sheet_rows: Sequence[int] | None = None,
) -> None:
    """Write what a publish sent: Online, cleared edits, Change, Status, state.
    With ``sent=False`` (nothing to send) only Online and the memory of the levels
    catch up with the live levels of the rows given. ``keep_pending`` leaves the
    pending publish to its caller (part of it was applied). ``edits=None`` (an undo)
    leaves Received and New level as they are. ``sheet_rows``: the rows to look at
    (those of a plan, every SKU of ``levels`` among them), written alone; ``None``:
    every row."""
    headers = (layout.ONLINE, layout.RECEIVED, layout.NEW_LEVEL, layout.CHANGE, layout.STATUS)
    changes = {**_published_before(session), **changes}
    columns: list[Any]
    if sheet_rows is None:
        columns = [session.column(header) for header in headers]
        indices: Iterable[int] = range(len(session.table.rows))
        skus: Mapping[int, str | None] | list[str | None] = session.skus()
    else:
        columns = [_RowsSet(session.table, header) for header in headers]
        indices = [row - session.table.sheet_row(0) for row in sheet_rows]
        skus = {i: _sku_or_none(session.table.value(i, layout.SKU)) for i in indices}
    for i in indices:
        sku = skus[i]
        level = None if sku is None else levels.get(sku)
        if sku is not None and level is not None:
            _record_row(columns, i, sku, level, changes, edits)
    for header, column in zip(headers, columns, strict=True):
        if isinstance(column, _RowsSet):
            session.write_rows(header, column.values)
        else:
            session.write(header, column)
    base = _sync_memory(session)
    base.update(levels)
    session.state.update(base=base, version=version)
    if not keep_pending:
        session.state["pending"] = None
    session.save_state()
    updates: dict[str, Any] = {layout.SETTING_VERSION: shown_version(version)}
    if sent:
        updates[layout.SETTING_LAST_PUBLISH] = session.stamp()
    layout.write_settings(session.book, session.settings, updates)


def _record_row(columns: Sequence[Any], i: int, sku: str, level: int,
                changes: Mapping[str, int], edits: Mapping[str, Sequence[Any]] | None) -> None:
    """One published row of :func:`_record_publish`: its Online, Change and Status, and
    its edit cleared (or flagged, when it changed while the publish was on its way)."""
    online, received, new_level, change_col, status_col = columns
    online[i] = level
    change = changes.get(sku, 0)
    change_col[i] = change or None
    status_col[i] = STATUS_CHANGED if change else STATUS_OK
    if edits is None or (received[i] is None and new_level[i] is None):
        return  # most rows: no edit to clear or to flag
    published_edit = list(edits.get(sku, (None, None)))
    now = [_edit_value(received[i]), _edit_value(new_level[i])]
    if now == published_edit:
        received[i] = new_level[i] = None
    elif any(v is not None for v in now):
        status_col[i] = _describe_edit(published_edit)


class _RowsSet:
    """A column of sheet Stock as a publish records it row by row: each row reads as
    the sheet holds it, and the rows set are kept apart (``values``), to be written
    alone."""

    __slots__ = ("table", "header", "values")

    def __init__(self, table: layout.StockTable, header: str) -> None:
        self.table, self.header = table, header
        self.values: dict[int, Any] = {}

    def __getitem__(self, index: int) -> Any:
        if index in self.values:
            return self.values[index]
        return self.table.value(index, self.header)

    def __setitem__(self, index: int, value: Any) -> None:
        self.values[index] = value


class _Column(Sequence[Any]):
    """A column of sheet Stock as a plan reads it: gone through in a C loop, or looked up
    by row, never held as a list (at 1,000,000 rows 8 MB less at Preview's and
    Publish's peak for each: Received and New level are blank on most rows)."""

    __slots__ = ("table", "header")

    def __init__(self, table: layout.StockTable, header: str) -> None:
        self.table, self.header = table, header

    def __len__(self) -> int:
        return len(self.table.rows)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self.table.column(self.header)[index]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.table.value(index, self.header)

    def __iter__(self) -> Iterator[Any]:
        return self.table.values(self.header)


def _sync_memory(session: _WorkbookSession) -> dict[str, int]:
    """The levels of the last Sync, the state's own dict (not a copy: a million SKUs
    are 40 MB); a copy of what can be read of a damaged one."""
    remembered = session.state.get("base")
    return remembered if isinstance(remembered, dict) else session.base


def _edit_value(value: Any) -> Any:
    if isinstance(value, Formula):
        value = value.cached
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.lstrip("+-").isdigit() else (value or None)
    return value


def _describe_edit(edit: Sequence[Any]) -> str:
    """The Status of a row whose edit changed while its publish was on its way."""
    received, new_level = (list(edit) + [None, None])[:2]
    if received is not None:
        return _("check: published Received {value} before this edit changed; the edit "
                 "shown was NOT sent", value=received)
    if new_level is not None:
        return _("check: published New level {value} before this edit changed; the edit "
                 "shown was NOT sent", value=new_level)
    return _("check: published nothing before this edit changed; the edit shown was NOT "
             "sent")


def _online_session(
    book: WorkbookAdapter, settings: layout.Settings | None, *, names: bool = True
) -> _WorkbookSession:
    """The session of an online action. ``settings`` are those the caller opened the
    client with (:func:`service_for` checked the shop URL in them); without them,
    Settings are read and checked here."""
    session = _WorkbookSession.read(book, settings, names=names)
    if settings is None:
        _require_shop(session.settings)
    return session


def _begin_online(
    book: WorkbookAdapter, service: StockServiceClient, action: str, progress: Progress,
    *, settings: layout.Settings | None, conditional: bool = False, names: bool = True,
) -> tuple[_WorkbookSession, str, Snapshot | None]:
    """Read the sheet, settle an interrupted publish, read the live levels; a failure
    is recorded in the Log before it is raised. With ``conditional``, the levels are
    asked for only if they changed since the last Sync (``None``: they did not);
    ``names=False`` for an action that needs no product names."""
    session = _online_session(book, settings, names=names)
    try:
        recovered = _settle_pending(session, service, progress, may_send=False)
        progress(_("Reading the live levels"), 0.2)
        # Asked for only if they changed since the last Sync; whether the sheet still
        # shows that Sync (a hash of three columns) is worked out only on a 304: after
        # sales online, the usual case, the answer is the levels and it is not needed.
        synced = session.state.get("synced") if conditional else None
        if synced and getattr(service, "reads_changes", False):
            snapshot = _changes_for_sync(session, service, str(synced), names=names,
                                         if_none_match=True)
            if snapshot is None and _synced_version(session) is None:
                # nothing changed online, but the sheet changed since (a preview's Status)
                snapshot = _changes_for_sync(session, service, str(synced), names=names)
        elif synced:
            snapshot = service.read_levels(str(synced), names=names)
        else:
            snapshot = _read_live(session, service, names=names)
        if snapshot is None and _synced_version(session) is None:
            snapshot = service.read_levels(names=names)  # the sheet changed since
    except XlstockError as error:
        _fail(session, action, error, {})
        raise
    return session, recovered, snapshot


def _changes_for_sync(session: _WorkbookSession, service: StockServiceClient, synced: str,
                      *, names: bool, if_none_match: bool = False) -> Snapshot | None:
    """Sync's read: only what changed since the last Sync (``synced``) when the service
    still has that history (else it answers the whole shop), kept to be laid over the
    levels that Sync left (``session.live_levels``) if the sheet still holds every row
    they name, else the whole shop read again. ``None`` (``if_none_match``): nothing
    changed since."""
    read: Any = service.read_levels
    snapshot: Snapshot | None = read(synced if if_none_match else None, names=names,
                                     since=synced)
    if snapshot is not None and not snapshot.whole:
        session.live_levels = _laid_changes(session, snapshot)
        if session.live_levels is None:
            snapshot = service.read_levels(names=names)
    return snapshot


def _read_live(session: _WorkbookSession, service: StockServiceClient, *,
               names: bool) -> Snapshot:
    """The whole shop's live levels, for a plan: from the changes since the last Sync
    laid over the levels it left, when the service has that history (at 100,000 SKUs
    a few hundred items instead of all), else read whole. Never less safe than a whole
    read: each count a publish sends is checked online against the level it was
    planned from, and refused (412) if it moved."""
    synced = session.state.get("synced")
    if not synced or not getattr(service, "reads_changes", False):
        return service.read_levels(names=names)
    read: Any = service.read_levels
    snapshot: Snapshot = read(None, names=names, since=str(synced))
    if snapshot.whole:
        return snapshot
    levels = _levels_after_changes(session, snapshot)
    if levels is None:
        return service.read_levels(names=names)
    named = snapshot.items.named if isinstance(snapshot.items, LevelItems) else snapshot.items
    return replace(snapshot, items=LevelItems(levels, named), since=None, removed=())


# --- sync -----------------------------------------------------------------------------


def _sheet_fingerprint(skus: Sequence[Any], online: Sequence[Any], status: Sequence[Any]) -> str:
    """What Sync writes (SKU, Online and Status of each row), as one hash: of the
    ``repr`` of the three columns as a tuple, made a column at a time (the text of a
    whole 100,000-row tuple at once is 10 MB more at Sync's peak)."""
    if not len(skus) == len(online) == len(status):
        raise ValueError("the columns of a fingerprint differ in length")
    digest = hashlib.sha256(b"(")
    _hash_repr(digest, skus)
    digest.update(b", ")
    _hash_repr(digest, [value if type(value) is int else _edit_value(value)
                        for value in online])
    digest.update(b", ")
    _hash_repr(digest, [value or None for value in status])
    digest.update(b")")
    return digest.hexdigest()


_REPR_SLICE = 4096


def _hash_repr(digest: Any, values: Sequence[Any]) -> None:
    """``digest`` updated with ``repr(list(values))`` a slice at a time: the text of a
    first Sync's 1,000,000 SKUs at once was 30 MB at its peak (issue 22)."""
    digest.update(b"[")
    for start in range(0, len(values), _REPR_SLICE):
        text = ", ".join(map(repr, values[start:start + _REPR_SLICE]))
        digest.update((", " + text if start else text).encode("utf-8", "surrogatepass"))
    digest.update(b"]")


def _synced_version(session: _WorkbookSession) -> str | None:
    """The version of the last Sync, if the sheet still shows exactly what that Sync
    wrote (no row added, deleted or moved, no Online or Status typed over): then a Sync
    at that version would write nothing new."""
    synced, written = session.state.get("synced"), session.state.get("synced_sheet")
    if not synced or not written:
        return None
    n = len(session.table.rows)
    now = _sheet_fingerprint(session.skus()[:n],
                             session.column(layout.ONLINE), session.column(layout.STATUS))
    return str(synced) if now == written else None


def _levels_after_changes(session: _WorkbookSession, snapshot: Snapshot) -> dict[str, int] | None:
    """Every live level, from the changes since the last Sync (``snapshot.since``) laid
    over a copy of the levels the workbook remembers of it (a plan's: the memory stays
    as it is); ``None`` when they cannot stand for the whole shop (:func:`_laid_changes`)."""
    laid = _laid_changes(session, snapshot, rows=False)
    if laid is None:
        return None
    return _LaidChanges(dict(laid.base), laid.changed, laid.gone).lay()


def _laid_changes(session: _WorkbookSession, snapshot: Snapshot, *,
                  rows: bool = True) -> _LaidChanges | None:
    """The changes since the last Sync (``snapshot.since``), to lay over the levels the
    workbook remembers of it; ``None`` when they cannot stand for the whole shop: the
    changes are not since that Sync, its memory is missing or damaged, or (``rows``, for
    Sync) a product it listed is no longer on sheet Stock (a row deleted by hand: only
    the whole shop has its name again)."""
    base = session.state.get("base")
    if snapshot.since is None or not isinstance(base, dict) \
            or shown_version(session.state.get("synced")) != snapshot.since:
        return None
    if set(map(type, base.values())) - {int}:  # C loops, as below
        return None
    changed = snapshot.levels()
    laid = _LaidChanges(base, changed, set(snapshot.removed) - changed.keys())
    if rows and laid.off_sheet(session):
        return None
    return laid


class _LaidChanges:
    """The changes since the last Sync laid over the levels it left (``base``, the
    state's own dict) without a copy of them (at 1,000,000 SKUs 40 MB at Sync's peak,
    issue 22): asked about as the live levels, then laid into ``base`` itself
    (:meth:`lay`) once Sync goes ahead."""

    __slots__ = ("base", "changed", "gone")

    def __init__(self, base: dict[str, int], changed: dict[str, int], gone: set[str]) -> None:
        self.base, self.changed, self.gone = base, changed, gone

    @classmethod
    def whole(cls, levels: dict[str, int]) -> _LaidChanges:
        """Every live level, read whole: nothing to lay."""
        return cls(levels, {}, set())

    def __len__(self) -> int:
        """How many products the shop lists."""
        base = self.base
        return (len(base) - sum(map(base.__contains__, self.gone))
                + sum(1 for sku in self.changed if sku not in base))

    def vanished(self, skus: Sequence[str | None]) -> list[str]:
        """The SKUs of the rows (``skus``) that the shop does not list, in their order."""
        base, changed, gone = self.base, self.changed, self.gone
        return [sku for sku in skus if sku is not None
                and ((sku not in base and sku not in changed) or sku in gone)]

    def off_sheet(self, session: _WorkbookSession) -> bool:
        """Whether a product the shop lists, unchanged, is on no row of sheet Stock (a
        set of the sheet's SKUs, the levels' keys gone through in C: not a set of them
        too, nor a copy of the levels)."""
        on_sheet = set(session.skus())
        off = list(itertools.filterfalse(on_sheet.__contains__, self.base))
        del on_sheet
        changed, gone = self.changed, self.gone
        return any(sku not in changed and sku not in gone for sku in off)

    def lay(self) -> dict[str, int]:
        """The live levels: ``base`` itself, the changes laid into it."""
        base = self.base
        for sku in self.gone:
            base.pop(sku, None)
        base.update(self.changed)
        self.changed, self.gone = {}, set()
        return base


def sync(
    book: WorkbookAdapter,
    service: StockServiceClient,
    *,
    allow_mass_change: bool = False,
    progress: Progress | None = None,
    settings: layout.Settings | None = None,
) -> Report:
    """Pull the live levels into sheet Stock (contract 2b, Sync). ``settings``: the
    workbook's Settings, when the caller read them to open ``service``."""
    progress = progress or _noop
    session, recovered, snapshot = _begin_online(book, service, "sync", progress,
                                                 settings=settings, conditional=True)
    try:
        if snapshot is None:
            report = _unchanged_sync(session)
        else:
            report = _apply_sync(session, snapshot, allow_mass_change, progress)
            report.lines.extend(snapshot.notices)
            _learn_undos(session, service)
        report.summary += _list_low_stock(session)
    except XlstockError as error:
        _fail(session, "sync", error, {})
        raise
    if recovered:
        report.lines.insert(0, recovered)
    del snapshot  # at 100,000 SKUs tens of MB: gone before the save
    progress(_("Saving the workbook"), 0.9)
    session.save(last=True)
    progress(_("Sync done"), 1.0)
    return report


def _unchanged_sync(session: _WorkbookSession) -> Report:
    """The shop is still at the version of the last Sync (304): only the time of this
    Sync is recorded."""
    layout.write_settings(session.book, session.settings,
                          {layout.SETTING_LAST_SYNC: session.stamp()})
    version = shown_version(session.state.get("synced"))
    summary = _("Nothing changed in {shop} since the last Sync (version {version}); the "
                "sheet already has the live levels.", shop=session.settings.shop_url,
                version=version)
    session.log("sync", 0, 0, summary)
    return Report("sync", summary)


def _apply_sync(
    session: _WorkbookSession, snapshot: Snapshot, allow_mass_change: bool, progress: Progress
) -> Report:
    live = snapshot.items  # every product, or (changes since the last Sync) those changed
    laid = (_LaidChanges.whole({sku: item.qty for sku, item in live.items()})
            if snapshot.whole else session.live_levels)
    assert laid is not None, "changes that do not fit are read whole (_changes_for_sync)"
    table = session.table
    n = len(table.rows)
    skus = session.skus()  # not changed below: the new rows' SKUs are added apart
    vanished = laid.vanished(skus)
    listed = len(laid)
    _refuse_mass_change(session, listed, len(skus) - skus.count(None), vanished,
                        allow_mass_change)
    levels = laid.lay()  # the state's own levels from here on
    new_skus = _not_on_sheet(live, skus)
    _refuse_more_rows_than_a_sheet_holds(session, listed, len(new_skus))
    progress(_("Writing the live levels into sheet Stock"), 0.6)
    layout.ensure_columns(session.book, table, [layout.PRODUCT, layout.VARIANT, layout.CHANGE,
                                                layout.STATUS])
    rows = _SyncedRows(session, levels, live, snapshot.left_out)
    rows.lay(skus)
    added = [live[sku] for sku in new_skus]
    # A sync that fills a sheet without SKUs writes "ok": every row would be new, which
    # says nothing, and the first preview would then rewrite every Status to "ok".
    rows.add(added, STATUS_NEW if n else STATUS_OK)
    held = _held_by_interrupted(session)
    if held:  # their Online may hold what Received or New level still shows
        for i, sku in enumerate(skus):
            if sku in held:
                rows.status[i] = _(HELD_NOTE)
    rows.write(new_skus, first=n)
    if snapshot.low_at:
        _fill_low_at(session, snapshot.low_at)
    session.state.update(
        base=levels, version=snapshot.version, synced=snapshot.version,
        synced_sheet=_sheet_fingerprint(skus + new_skus, rows.online, rows.shown),
    )
    session.save_state()
    layout.write_settings(session.book, session.settings, {
        layout.SETTING_LAST_SYNC: session.stamp(),
        layout.SETTING_VERSION: shown_version(snapshot.version),
    })
    summary = _("Synced {count:n} SKU(s) from {shop}: {new:n} new, {gone:n} not in the shop "
                "online.", count=len(levels), shop=session.settings.shop_url,
                new=len(new_skus), gone=len(vanished))
    session.log("sync", rows.moved_rows + len(added),
                rows.moved_units + sum(item.qty for item in added), summary)
    lines = _sync_lines(new_skus, vanished) + _low_at_notes(session)
    if not listed and snapshot.whole:
        lines.append(_empty_shop_hint(session.settings))
    return Report("sync", summary, lines)


def _empty_shop_hint(settings: layout.Settings) -> str:
    """What to do about a shop that lists no product (a sheet with SKUs is refused
    before: :func:`_refuse_mass_change`): a new stock service has none until its
    catalogue is loaded."""
    if settings.platform == layout.XLSTOCK_SERVICE:
        return _("The stock service lists no product for {shop} yet: load the shop's "
                 "products on the service's computer with `xlstock shop add {shop} --db FILE "
                 "--catalogue CSV` (a CSV with sku, name, variant, qty), then sync again; or "
                 "check the Shop URL setting", shop=settings.shop_url)
    return _("The shop {shop} lists no product: check the Shop URL setting, and that the "
             "shop's products have SKUs", shop=settings.shop_url)


def _sync_lines(new_skus: Sequence[str], vanished: Sequence[str]) -> list[str]:
    """The report's lines naming the new rows and the SKUs gone from the shop."""
    lines: list[str] = [_("New rows: {skus}", skus=_some(new_skus))] if new_skus else []
    if vanished:
        lines.append(_("Not in the shop online (rows kept, flagged in Status): {skus}",
                       skus=_some(vanished)))
    return lines


def _not_on_sheet(live: Mapping[str, StockItem], skus: Sequence[str | None]) -> list[str]:
    """The SKUs of ``live`` on no row (``skus``), in ``live``'s order. A few (the changes
    after orders): a set of them looked for in one C loop over the rows, not a set of
    the million on the sheet (33 MB at Sync's peak)."""
    if 8 * len(live) > len(skus):
        on_sheet = set(skus)
        return [sku for sku in live if sku not in on_sheet]
    wanted = set(live)
    found = set(filter(wanted.__contains__, skus))
    return [sku for sku in live if sku not in found]


def _refuse_mass_change(session: _WorkbookSession, listed: int, on_sheet: int,
                        vanished: Sequence[str], allowed: bool) -> None:
    """A Sync that would flag most of the sheet as gone (or that finds the shop empty:
    ``listed`` products online, ``on_sheet`` rows with a SKU) is refused unless
    ``allowed`` (``--allow-mass-change``): a wrong Shop URL, most likely."""
    if not allowed and on_sheet and (
        not listed
        or (len(vanished) >= MASS_CHANGE_MIN_ROWS and 2 * len(vanished) > on_sheet)
    ):
        raise MassChangeError(_(
            "the stock service lists {listed:n} product(s) for {shop}; {gone:n} of the "
            "{count:n} SKUs on sheet Stock would be flagged as gone (check the Shop URL "
            "setting)", listed=listed, shop=session.settings.shop_url, gone=len(vanished),
            count=on_sheet))


class _SyncedRows:
    """Sheet Stock's Online, Product, Variant and Status columns as a Sync rewrites them,
    and how many rows and units moved."""

    def __init__(self, session: _WorkbookSession, levels: Mapping[str, int],
                 live: Mapping[str, StockItem], left_out: Mapping[str, str] | None = None
                 ) -> None:
        self.session, self.levels, self.live = session, levels, live
        self.left_out = left_out
        self.online = session.column(layout.ONLINE)
        self.product = session.column(layout.PRODUCT)
        self.variant = session.column(layout.VARIANT)
        self.status: list[Any] = []
        self.shown: Sequence[Any] = []
        self.moved_rows = self.moved_units = 0

    def lay(self, skus: Sequence[str | None]) -> None:
        """The live levels onto the sheet's rows, by SKU. "ok" and "new" stay: the row
        still has nothing to publish, or has not been previewed since a sync added it.
        "changed" on a row with no edit left is a row a publish sent: in step with the
        shop now, "ok" like the others. Any other word described the last preview or
        publish, which the new levels make stale.

        Only the rows this can change are looked at one by one (:meth:`_to_lay`): after
        300 orders, a few hundred of 100,000 (issue 22: the loop over every row was
        0.16 s of a Sync); the others keep their values, as the loop would leave them."""
        self.status = self.session.column(layout.STATUS)  # a list of its own
        hint = SkuHints(self.levels, self.left_out)
        listed: list[int] = []  # the rows whose SKU the shop lists, and their items
        items: list[StockItem] = []
        for i in self._to_lay(skus):
            sku = skus[i]
            level = None if sku is None else self.levels.get(sku)
            if sku is None or level is None:
                self.status[i] = self._unlisted(i, sku, hint)
                continue
            self._move(i, level)
            item = self.live.get(sku)
            if item is not None:  # every row, but for changes only those changed
                listed.append(i)
                items.append(item)
            was = self._synced_status(i)
            self.status[i] = was if status_key(was) in (STATUS_OK, STATUS_NEW) else None
        for i, name, option in zip(listed, clean_texts([item.name for item in items]),
                                   clean_texts([item.variant for item in items]), strict=True):
            self.product[i], self.variant[i] = name, option

    def _to_lay(self, skus: Sequence[str | None]) -> Iterable[int]:
        """The rows :meth:`lay` may change, in order, found by C loops: a SKU the shop
        lists in ``live`` (a change), a blank SKU or one the shop does not list, an
        Online that is not its level as a whole number, a Status other than "ok" or
        "new"."""
        n = len(skus)
        if len(self.live) * 4 > n:  # read whole, or most rows changed: every row
            return range(n)
        try:
            kept = {value for value in set(self.status)
                    if status_key(value) in (STATUS_OK, STATUS_NEW)}
        except TypeError:  # an unhashable value in Status: every row
            return range(n)
        get: Callable[[Any], int | None] = self.levels.get
        levels = list(map(get, skus))
        online = self.online
        rows = set(itertools.compress(range(n), map(
            operator.not_, map(kept.__contains__, self.status))))
        rows.update(itertools.compress(range(n), map(operator.is_, levels,
                                                     itertools.repeat(None))))
        rows.update(itertools.compress(range(n), map(operator.ne, online, levels)))
        rows.update(itertools.compress(range(n), map(
            operator.is_not, map(type, online), itertools.repeat(int))))
        live = self.live
        rows.update(itertools.compress(range(n), map(live.__contains__, skus)))
        return sorted(rows)

    def _synced_status(self, i: int) -> Any:
        """Row ``i``'s Status as Sync reads it: ``changed`` (in any language) on a row
        whose Received and New level are blank (a publish sent it and cleared them)
        reads as ``ok``."""
        status, value = self.status[i], self.session.table.value
        if status_key(status) == STATUS_CHANGED and value(i, layout.RECEIVED) in (None, "") \
                and value(i, layout.NEW_LEVEL) in (None, ""):
            return STATUS_OK
        return status

    def _unlisted(self, i: int, sku: str | None, hint: SkuHints) -> Any:
        """The Status of a row whose SKU is blank or bad, or not in the shop."""
        if sku is None:
            return _sku_status(self.session.table.value(i, layout.SKU))
        return _("not in the shop online (row kept){hint}", hint=hint(sku))

    def _move(self, i: int, level: int) -> None:
        before = self.online[i]
        if type(before) is not int:
            before = _edit_value(before)
        if before != level:
            self.moved_rows += 1
            self.moved_units += abs(level - before) if isinstance(before, int) else level
        self.online[i] = level

    def add(self, added: Sequence[StockItem], status: str) -> None:
        """New rows below the sheet's for the shop's new products, with ``status``."""
        self.online.extend(item.qty for item in added)
        self.product.extend(clean_texts([item.name for item in added]))
        self.variant.extend(clean_texts([item.variant for item in added]))
        self.status.extend([status] * len(added))

    def write(self, new_skus: Sequence[str], first: int) -> None:
        """The columns into the sheet (the new rows' SKUs below row ``first``), Status in
        the workbook's language (:attr:`shown`: the fingerprint is of the words written)."""
        session = self.session
        self.shown = session.in_language(self.status)
        session.write(layout.SKU, new_skus, first=first)
        session.write(layout.PRODUCT, self.product)
        session.write(layout.VARIANT, self.variant)
        session.write(layout.ONLINE, self.online)
        session.write(layout.CHANGE, [None] * len(self.online))
        session.write(layout.STATUS, self.shown)


def _some(skus: Sequence[str], shown: int = 20) -> str:
    """The first ``shown`` SKUs, joined, and `` ...`` when there are more."""
    return ", ".join(skus[:shown]) + (" ..." if len(skus) > shown else "")


def _fill_low_at(session: _WorkbookSession, thresholds: Mapping[str, int]) -> None:
    """An empty Low at takes the platform's threshold for its SKU; a merchant's value is
    never overwritten."""
    low_at = session.column(layout.LOW_AT)
    filled = False
    for i, sku in enumerate(session.skus()):
        if sku is not None and sku in thresholds and low_at[i] is None:
            low_at[i] = thresholds[sku]
            filled = True
    if filled:
        session.write(layout.LOW_AT, low_at)


def _list_low_stock(session: _WorkbookSession) -> str:
    """Rewrite sheet Low stock from the levels on sheet Stock now; the words for the
    summary line."""
    rows = layout.low_stock(session.table, session.settings.low_stock_at)
    layout.write_low_stock(session.book, rows)
    return _(" {count:n} product(s) at or below their Low at (sheet Low stock).",
             count=len(rows)) if rows else ""


def _refuse_more_rows_than_a_sheet_holds(session: _WorkbookSession, listed: int, new: int) -> None:
    """Sync never writes a sheet that no command could read back (its last row is
    :data:`~xlstock.workbook.base.MAX_ROWS`, for reading and writing alike): refused
    before anything is written."""
    room = MAX_ROWS - 1  # the rows below the header
    if listed > room:
        raise ServiceError(_(
            "the stock service lists {listed:n} SKUs for {shop}, more than sheet Stock can "
            "hold: an Excel sheet has {room:n} rows below the header (row {last:n} is "
            "Excel's last); nothing was changed", listed=listed,
            shop=session.settings.shop_url, room=room, last=MAX_ROWS))
    rows = len(session.table.rows)
    if rows + new > room:
        raise SheetError(_(
            "sheet Stock uses {rows:n} rows below the header and the stock service lists "
            "{new:n} SKUs new to it: {total:n} rows, more than the {room:n} an Excel sheet "
            "has (row {last:n} is Excel's last); nothing was changed. Delete rows you no "
            "longer need (those flagged 'not in the shop online', or stray cells far below "
            "the table) and sync again", rows=rows, new=new, total=rows + new, room=room,
            last=MAX_ROWS))


def _sku_status(raw: Any) -> str | None:
    try:
        clean_sku(raw)
    except ValueProblem as exc:
        return _("error: {problem}", problem=exc.message)
    return None


# --- preview and publish -------------------------------------------------------------------


def _plan(
    session: _WorkbookSession, snapshot: Snapshot, strict: bool | None
) -> tuple[PublishPlan, list[SheetRow]]:
    """The plan of the rows that matter (:func:`~xlstock.planner.rows_to_plan`: those
    with an edit, moved online, not online, on a duplicate SKU, or whose Online, Change
    or Status cell the plan would change), the same as the plan of every row; and the
    rows parsed."""
    policy = STRICT if strict else (session.settings.policy if strict is None else "rebase")
    base: Mapping[str, int] = _sync_memory(session)  # the state's own: not copied
    live, t = snapshot.level_map(), session.table
    skus = t.column(layout.SKU)
    received, new_level = _Column(t, layout.RECEIVED), _Column(t, layout.NEW_LEVEL)
    picked = rows_to_plan(skus, received, new_level, base, live,
                          online=t.column(layout.ONLINE), change=t.values(layout.CHANGE),
                          status=t.values(layout.STATUS),
                          resting=status_text(STATUS_OK, session.language))
    # the language looked up once, not in the environment for each note of each row
    with i18n.speaking(i18n.current()):
        if picked is None:  # SKUs not in the usual form: every row through the rules
            rows, problems = parse_columns(skus, received, new_level,
                                           first_row=t.sheet_row(0))
        else:
            rows, problems = parse_picked(skus, received, new_level, picked,
                                          first_row=t.sheet_row(0))
        del skus, received, new_level
        from_online = _online_baselines(session, rows, base)
        if from_online:
            base = {**base, **from_online}
        planned = None if picked is None else [t.sheet_row(i) for i in picked]
        plan = plan_publish(rows, base, live, policy=policy, problems=problems,
                            from_online=from_online, planned=planned,
                            left_out=snapshot.left_out)
    return plan, rows


def _online_baselines(session: _WorkbookSession, rows: Sequence[SheetRow],
                      base: Mapping[str, int]) -> dict[str, int]:
    """For each counted row whose SKU the memory of the last Sync lacks (the hidden
    state was deleted, or the sheet was copied into another workbook), the whole number
    its Online cell holds: the level the merchant counted against, the best baseline
    left. Rows without one get none (the planner refuses them)."""
    found: dict[str, int] = {}
    online: list[Any] | None = None
    for row in rows:
        if row.new_level is None or row.sku is None or row.sku in base:
            continue
        if online is None:
            online = session.column(layout.ONLINE)
        index = row.row - session.table.sheet_row(0)
        try:
            level = parse_quantity(online[index] if 0 <= index < len(online) else None,
                                   what="Online", minimum=0)
        except ValueProblem:
            level = None
        if level is not None:
            found[row.sku] = level
    return found


def _plan_table(plan: PublishPlan) -> list[tuple[str, str, str, str, str]]:
    table = []
    for row in plan.rows:
        if row.change or row.status == STATUS_NOT_ONLINE:
            table.append((
                row.sku,
                "" if row.live is None else str(row.live),
                f"{row.change:+d}" if row.change else "",
                "" if row.target is None else str(row.target),
                row.note or _(row.status),
            ))
    return table


def _plan_statuses(plan: PublishPlan, published: Mapping[str, int] | None = None
                   ) -> dict[int, str]:
    """Each planned row's Status; ``published``: SKUs this command already published
    (part of a publish, or an interrupted one it finished), whose rows say so."""
    statuses = {r.row: STATUS_CHANGED if published and r.sku in published
                and r.status == STATUS_OK else r.status for r in plan.rows}
    statuses.update(_problem_statuses(plan.problems))
    statuses.update(_problem_statuses(plan.conflicts))
    return statuses


def _plan_error(plan: PublishPlan, published_part: int = 0) -> SheetError:
    """The error of a plan with rows at fault; ``published_part``: rows a platform
    applied before it refused the rest (the message says they are recorded)."""
    if plan.problems:
        if published_part:
            return SheetError(_(
                "{count:n} row(s) of sheet Stock need fixing; the other rows were not sent; "
                "{part:n} row(s) had been published before the shop refused the rest (the "
                "shop takes a large publish in several calls) and are recorded",
                count=len(plan.problems), part=published_part), plan.problems + plan.conflicts)
        return SheetError(
            _("{count:n} row(s) of sheet Stock need fixing; nothing was sent",
              count=len(plan.problems)),
            plan.problems + plan.conflicts,
        )
    if published_part:
        return ConflictError(_(
            "{count:n} row(s) changed online since Sync (policy strict); the other rows were "
            "not sent; {part:n} row(s) had been published before the shop refused the rest "
            "(the shop takes a large publish in several calls) and are recorded. Sync and "
            "recount, or publish with policy rebase", count=len(plan.conflicts),
            part=published_part), plan.conflicts)
    return ConflictError(
        _("{count:n} row(s) changed online since Sync (policy strict); nothing was sent. "
          "Sync and recount, or publish with policy rebase", count=len(plan.conflicts)),
        plan.conflicts,
    )


def preview(
    book: WorkbookAdapter,
    service: StockServiceClient,
    *,
    strict: bool | None = None,
    progress: Progress | None = None,
    settings: layout.Settings | None = None,
) -> Report:
    """What Publish would send, checked against the live levels; uploads nothing.
    Writes Change and Status. Rows at fault are in ``Report.error``: a
    :class:`SheetError`, or a :class:`ConflictError` when only conflicts block it.
    ``settings`` as for :func:`sync`."""
    progress = progress or _noop
    session, recovered, snapshot = _begin_online(book, service, "preview", progress,
                                                 settings=settings, names=False)
    assert snapshot is not None
    plan, _rows = _plan(session, snapshot, strict)
    del snapshot, _rows  # at 100,000 SKUs tens of MB: let them go before the writes and the save
    held = _held_by_interrupted(session)
    changes = {r.row: (r.change or None) for r in plan.rows if r.sku not in held}
    session.write_planned(layout.CHANGE, changes, plan.planned)
    del changes
    statuses = _plan_statuses(plan)
    statuses.update({r.row: _(HELD_NOTE) for r in plan.rows if r.sku in held})
    session.write_statuses(statuses, plan.planned)
    report = _preview_report(plan, [recovered] if recovered else [], held)
    report.lines.extend(_low_at_notes(session))
    report.summary += _list_low_stock(session)
    del plan
    progress(_("Saving the workbook"), 0.9)
    session.save()
    progress(_("Preview done"), 1.0)
    return report


HELD_NOTE = N_("in the interrupted publish: Publish finishes it first, then plans this "
               "row again on the level it leaves")
"""A row of an interrupted publish whose outcome the shop cannot tell: what it would send
is not known until Publish finishes that publish (it may have been applied already)."""


def _held_by_interrupted(session: _WorkbookSession) -> set[str]:
    """SKUs of an interrupted publish still unsettled (the shop cannot say whether it was
    applied): a preview cannot tell what Publish will send for them."""
    pending = session.state.get("pending")
    return set(pending.get("items") or ()) if pending else set()


def _preview_report(plan: PublishPlan, lines: list[str], held: set[str] | frozenset[str]
                    = frozenset()) -> Report:
    """The preview's summary and table; ``held``: SKUs of an interrupted publish, shown
    without a change (Publish finishes that publish first) and left out of the counts."""
    table = [(sku, live, "", "", _(HELD_NOTE)) if sku in held else (sku, live, c, t, note)
             for sku, live, c, t, note in _plan_table(plan)]
    if plan.ok:
        changed = [r for r in plan.changed if r.sku not in held]
        units = units_moved(*_units_of([r.change for r in changed]))
        if plan.online_sales:
            summary = _("Publish would change {count:n} row(s): {units}, after {sold:n} "
                        "unit(s) sold online since Sync.", count=len(changed),
                        units=units, sold=plan.online_sales)
        else:
            summary = _("Publish would change {count:n} row(s): {units}.",
                        count=len(changed), units=units)
        if not changed:
            summary = _("Nothing to publish: the sheet has no edits that change a level.") \
                if not held else _("Publish would only finish the interrupted publish.")
        return Report("preview", summary, lines, table)
    blocked = _plan_error(plan)
    return Report("preview", blocked.message, lines, table, error=blocked)


def publish(
    book: WorkbookAdapter,
    service: StockServiceClient,
    *,
    strict: bool | None = None,
    allow_mass_change: bool = False,
    confirm: Callable[[PublishSummary], bool] | None = None,
    progress: Progress | None = None,
    settings: layout.Settings | None = None,
) -> Report:
    """Upload the stock file: the levels the plan gives the SKUs that change, each with
    the live level it was planned against, under a fresh idempotency key saved in the
    workbook before the upload (contract 2b, Publish). A 412 naming moved SKUs re-plans
    them on the levels it gives, at most :data:`MAX_PUBLISH_ATTEMPTS` tries in all.
    ``settings`` as for :func:`sync`."""
    progress = progress or _noop
    session = _online_session(book, settings, names=False)
    lines: list[str] = []
    try:
        recovered = _settle_pending(session, service, progress, may_send=True)
        if recovered:  # the sheet, settings and state objects were kept in step
            lines.append(recovered)
            session.save()
        snapshot: Snapshot | None = None
        published_part = 0  # rows a platform applied before it refused the rest
        for attempt in range(1, MAX_PUBLISH_ATTEMPTS + 1):
            if snapshot is None:
                progress(_("Reading the live levels"), 0.1)
                snapshot = _read_live(session, service, names=False)
            plan, rows = _plan(session, snapshot, strict)
            if not plan.ok:
                error = _plan_error(plan, published_part)
                statuses = _plan_statuses(plan, _published_before(session))
                planned = plan.planned
                del plan, rows, snapshot  # tens of MB at 100,000 SKUs: gone before the save
                _fail(session, "publish", error, statuses, planned)
                raise error
            if not plan.changed:
                return _nothing_to_publish(session, plan, rows, snapshot, lines, progress)
            _guard_mass_publish(plan, snapshot, allow_mass_change)
            summary = PublishSummary(session.settings.shop_url, len(plan.changed),
                                     plan.units_added, plan.units_removed, plan.online_sales)
            if confirm is not None and attempt == 1 and not confirm(summary):
                return Report("publish", _("Publish cancelled; nothing was sent."), lines)
            try:
                outcome = _upload(session, service, plan, rows, progress)
            except StaleVersion as stale:
                published_part += len(stale.applied or {})
                snapshot = _replanned(stale, snapshot, attempt, lines)
                continue
            report, slipped = _published(session, plan, outcome, lines)
            del plan, rows, snapshot  # tens of MB at 100,000 SKUs: gone before the save
            progress(_("Saving the workbook"), 0.9)
            try:
                session.save(last=True)
            except WorkbookError as not_saved:
                raise _published_not_recorded(session, not_saved) from not_saved
            failpoints.reach("after_bookkeeping")
            progress(_("Publish done"), 1.0)
            if slipped is not None:
                raise slipped
            return report
        error = ConflictError(_(
            "the shop's levels kept changing during {tries} tries; nothing was sent. "
            "Publish again in a moment", tries=MAX_PUBLISH_ATTEMPTS
        ))
        _fail(session, "publish", error, {})
        raise error
    except (MassChangeError, ServiceError) as error:
        _fail(session, "publish", error, {})
        raise


def _nothing_to_publish(session: _WorkbookSession, plan: PublishPlan, rows: Sequence[SheetRow],
                        snapshot: Snapshot, lines: list[str], progress: Progress) -> Report:
    """No edit changes a level: the edited rows' Status and the levels recorded, nothing
    sent."""
    edited = {r.sku for r in rows if r.has_edit}
    _record_publish(
        session,
        levels={s: q for s, q in plan.levels.items() if s not in edited},
        changes={}, edits={}, version=snapshot.version, sent=False,
        sheet_rows=plan.planned,
    )
    session.write_statuses(_plan_statuses(plan, _published_before(session)), plan.planned)
    part = session.part_changes
    if part:
        session.log("publish", len(part), sum(abs(c) for c in part.values()),
                    _("published {count:n} change(s)", count=len(part)))
    else:
        session.log("publish", 0, 0, _("nothing to send"))
    session.save()
    progress(_("Nothing to publish"), 1.0)
    return Report("publish", _("Nothing to publish: no edit changes a level; "
                               "nothing was sent."), lines)


def _published_before(session: _WorkbookSession) -> dict[str, int]:
    """SKU -> change this command published before its current plan."""
    return {**session.finished_changes, **session.part_changes}


def _replanned(stale: StaleVersion, snapshot: Snapshot, attempt: int,
               lines: list[str]) -> Snapshot | None:
    """The live levels to plan the next try on, after the shop refused a publish whose
    levels moved (``None``: read them again); the report's lines say what happened."""
    moved = stale.moved
    if stale.applied:
        lines.append(_("{count:n} change(s) were published before levels that moved "
                       "online stopped the others; they are recorded.",
                       count=len(stale.applied)))
    if not moved:
        lines.append(_("The live levels moved during publish (try {attempt}); "
                       "re-planned on the new levels.", attempt=attempt))
        return None
    lines.append(_("The live levels of {count:n} SKU(s) moved during publish "
                   "(try {attempt}): {skus}; re-planned them on their new "
                   "levels.", count=len(moved), attempt=attempt,
                   skus=_some(sorted(moved), 10)))
    return snapshot.with_levels({**stale.applied, **moved}, stale.current_version)


def _published(session: _WorkbookSession, plan: PublishPlan, outcome: Any,
               lines: list[str]) -> tuple[Report, ConflictError | None]:
    """A publish the shop applied, in the Log and the report; and, for a platform with no
    conditional write, the error naming the sales it may have overwritten."""
    slipped = _told_slips(session, outcome, lines)
    planned = {row.sku for row in plan.changed}
    part = [c for sku, c in session.part_changes.items() if sku not in planned]
    added, removed = _units_of([row.change for row in plan.changed] + part)
    count, units = len(plan.changed) + len(part), units_moved(added, removed)
    session.log("publish", count, added + removed,
                _("published {count:n} change(s); {slips:n} sale(s) may have been "
                  "overwritten: {what}", count=count, slips=len(slipped),
                  what="; ".join(i18n.render(p.message, session.language)
                                 for p in slipped))
                if slipped else _("published {count:n} change(s)", count=count))
    report = Report(
        "publish",
        _("Published {count:n} change(s) to {shop}: {units}.", count=count,
          shop=session.settings.shop_url, units=units),
        lines, _plan_table(plan),
    )
    if not slipped:
        return report, None
    return report, ConflictError(_(
        "published {count:n} change(s) to {shop}: {units}, but {slips:n} sale(s) "
        "may have been overwritten (the shop has no conditional write); each row "
        "says so in Status. Count them again", count=count,
        shop=session.settings.shop_url, units=units, slips=len(slipped)), slipped)


def _told_slips(session: _WorkbookSession, outcome: Any, lines: list[str]
                ) -> list[RowProblem]:
    """What a platform without a conditional write (WooCommerce) said of the publish:
    sales it overwrote and took off again (report lines), and sales that may have been
    overwritten (SKU and text each, a row problem written in Status)."""
    lines.extend(_("Repaired: {what}", what=text) for text in getattr(outcome, "repaired", ()))
    slips = list(getattr(outcome, "slips", ()))
    if not slips:
        return []
    rows = _sheet_rows(session)
    problems = [RowProblem(rows.get(sku), sku, text) for sku, text in slips]
    statuses = {p.row: _("check: {problem}", problem=p.message) for p in problems
                if p.row is not None}
    status = session.column(layout.STATUS)
    for row, text in statuses.items():
        status[row - session.table.sheet_row(0)] = text
    session.write(layout.STATUS, status)
    return problems


def _guard_mass_publish(plan: PublishPlan, snapshot: Snapshot, allow: bool) -> None:
    changed = len(plan.changed)
    if allow or changed < MASS_CHANGE_MIN_ROWS or 2 * changed <= len(snapshot.items):
        return
    zeroed = sum(1 for r in plan.changed if r.target == 0)
    raise MassChangeError(_(
        "this publish would change {changed:n} of the shop's {count:n} levels ({zeroed:n} to "
        "zero)", changed=changed, count=len(snapshot.items), zeroed=zeroed
    ))


def _upload(
    session: _WorkbookSession,
    service: StockServiceClient,
    plan: PublishPlan,
    rows: Sequence[SheetRow],
    progress: Progress,
) -> PublishOutcome:
    """Send the plan (:func:`_send_recorded`): the stock file lists only the SKUs that
    change, each with the live level it was planned against; a 412 (one of them moved)
    is raised as :class:`StaleVersion` with nothing pending."""
    thresholds = _thresholds_to_send(session) \
        if getattr(service, "accepts_thresholds", False) else {}
    return _send_recorded(
        session, service, plan.lines(), progress,
        levels=plan.levels, changes={r.sku: r.change for r in plan.rows if r.change},
        edits={r.sku: [r.received, r.new_level] for r in rows if r.has_edit and r.sku},
        thresholds=thresholds, saying="Publishing", sheet_rows=plan.planned)


def _send_recorded(
    session: _WorkbookSession,
    service: StockServiceClient,
    lines: Sequence[PublishLine],
    progress: Progress,
    *,
    levels: Mapping[str, int],
    changes: Mapping[str, int],
    edits: Mapping[str, Sequence[Any]] | None,
    thresholds: Mapping[str, int | None],
    saying: str,
    undo_of: str | None = None,
    sheet_rows: Sequence[int] | None = None,
) -> PublishOutcome:
    """A publish (or an undo, ``undo_of``) as the workbook makes it safe: its key and
    lines saved in the workbook before anything is sent, then sent, then recorded
    (``edits=None``: Received and New level left as they are). A refusal drops the key,
    recording what a multi-call platform applied all the same."""
    pending = _pending_record(session, service, lines, levels=levels, changes=changes,
                              edits=edits, thresholds=thresholds, undo_of=undo_of)
    key = pending["key"]
    session.state["pending"] = pending
    session.sent = pending
    progress(_("Saving the publish key"), 0.3)
    _keep_pending(session, pending)
    failpoints.reach("before_upload")
    progress(_("Undoing {count:n} change(s)", count=len(changes)) if saying == "Undoing" else
             _("Publishing {count:n} change(s)", count=len(changes)), 0.5)
    try:
        result = _send(service, lines, key, thresholds, undo_of)
    except OutcomeUnknown:
        raise
    except ServiceError as refused:  # StaleVersion too: the shop answered
        _refused(session, pending, refused)
        raise
    failpoints.reach("after_upload")
    after = {**levels, **result.levels_after}
    if not result.levels_after.keys() <= levels.keys():
        sheet_rows = None  # a level the plan's rows do not hold: every row is looked at
    try:
        _record_publish(session, levels=after, changes=changes, edits=edits,
                        version=result.version, sheet_rows=sheet_rows)
        _remember_publish(session, pending, after)
        if thresholds:
            _thresholds_sent(session, thresholds)
    except WorkbookError as error:
        raise _published_not_recorded(session, error) from error
    return result


def _pending_record(session: _WorkbookSession, service: StockServiceClient,
                    lines: Sequence[PublishLine], *, levels: Mapping[str, int],
                    changes: Mapping[str, int], edits: Mapping[str, Sequence[Any]] | None,
                    thresholds: Mapping[str, int | None],
                    undo_of: str | None) -> dict[str, Any]:
    """What a publish keeps before it is sent: its key, lines, the stock file's hash,
    and the levels, changes and edits a recovery needs (:func:`_settle_pending`)."""
    new_key = getattr(service, "new_key", None)  # a platform whose keys carry their time
    pending: dict[str, Any] = {
        "key": new_key() if new_key is not None else uuid.uuid4().hex, "at": _now(),
        "items": {line.sku: line.as_list() for line in lines},
        "sha256": hashlib.sha256(_stock_file(session.settings.shop_url, lines,
                                             thresholds)).hexdigest(),
        # the levels of the rows it changes only: all a recovery reads (_settle_pending),
        # and not the whole shop's written into the workbook before every upload
        "levels": {sku: levels[sku] for sku in changes if sku in levels},
        "changes": dict(changes), "edits": dict(edits or {}),
    }
    if thresholds:
        pending["thresholds"] = dict(thresholds)
    if undo_of:
        pending["undo_of"] = undo_of
    return pending


def _refused(session: _WorkbookSession, pending: dict[str, Any],
             refused: ServiceError) -> None:
    """The shop refused the publish: what a multi-call platform applied all the same is
    recorded, and the key dropped (the rest of it was not applied)."""
    if refused.applied:  # a platform publishing in several calls applied some
        version = refused.current_version if isinstance(refused, StaleVersion) else None
        _record_part(session, pending, refused.applied, version)
    session.state["pending"] = None
    session.save_state()
    if session.journaled and not refused.applied:  # refused whole: nothing to settle
        journal.drop(session.path, session.settings.shop_url)
        session.journaled = False


def _keep_pending(session: _WorkbookSession, pending: dict[str, Any]) -> None:
    """Make the key and lines of a publish durable before they are sent, so that a
    crash after the send is settled by the next command, sending nothing twice. Kept in
    the journal (one small file, flushed to disk) rather than by a save of the whole
    workbook, which is then saved once, with the result (:meth:`_WorkbookSession.save`
    drops the entry). Live Excel (no file), or a journal folder that cannot be written:
    the workbook is saved with the key, as it was before."""
    session.save_state()
    check_unchanged = getattr(session.book, "check_unchanged", None)
    if session.path is not None and check_unchanged is not None:
        check_unchanged()  # another program's save is found before anything is sent
        try:
            journal.keep(session.path, session.settings.shop_url, pending)
        except OSError:
            pass
        else:
            session.journaled = True
            return
    session.book.save()


def _published_not_recorded(session: _WorkbookSession, error: WorkbookError) -> WorkbookError:
    """The upload was applied but the workbook cannot record it: say that the levels
    did reach the shop, so that the merchant does not publish them again by hand (the
    pending key saved before the upload lets the next publish record it, sending
    nothing twice)."""
    _keep_unrecorded(session)
    return WorkbookError(_(
        "{error}. The levels WERE published to {shop}: once that is fixed, run publish "
        "again; it records this publish in the workbook and sends nothing twice",
        error=error.message, shop=session.settings.shop_url
    ))


# --- undo -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishRecord:
    """A publish the workbook remembers, for ``xlstock history`` and ``xlstock undo``."""

    key: str
    at: str
    rows: int
    units: int
    undo_of: str | None
    undone_at: str | None
    undone_by: str | None


def history(book: WorkbookAdapter) -> list[PublishRecord]:
    """The publishes made from this workbook that it remembers, newest first (the last
    :data:`REMEMBERED_PUBLISHES`). Offline; the levels of the last Sync not decoded."""
    state = layout.read_state(book, levels=False)
    records = []
    for entry in reversed(state.get("publishes") or []):
        items = entry.get("items") or {}
        units = sum(abs(int(v[1]) - int(v[0])) for v in items.values())
        records.append(PublishRecord(str(entry.get("key")), str(entry.get("at") or ""),
                                     len(items), units, entry.get("undo_of"),
                                     entry.get("undone_at"), entry.get("undone_by")))
    return records


def _refuse_undone_online(session: _WorkbookSession, service: StockServiceClient,
                          target: dict[str, Any]) -> None:
    """A publish undone on the service (its account pages) is never undone twice: the
    service that can say so is asked, and the workbook remembers it."""
    if not getattr(service, "outcome_known", True):
        return
    outcome = service.publish_outcome(str(target["key"]))
    undone_at = getattr(outcome, "undone_at", None)
    if not undone_at:
        return
    _mark_undone(session, str(target["key"]), str(undone_at),
                 str(getattr(outcome, "undone_by", None) or "the account pages"))
    session.book.save()
    raise UsageError(_("publish {key} was undone already, at {when:dt}, on the stock "
                       "service's account pages; nothing was sent", key=target["key"],
                       when=_stamp_of(undone_at)))


def _mark_undone(session: _WorkbookSession, key: str, at: str, by: str) -> bool:
    """Mark a remembered publish undone; whether it was not already."""
    publishes = [dict(p) for p in session.state.get("publishes") or []]
    for publish in publishes:
        if publish.get("key") == key and not publish.get("undone_at"):
            publish["undone_at"], publish["undone_by"] = at, by
            session.state["publishes"] = publishes
            session.save_state()
            session.log("undo (online)", len(publish.get("items") or {}), "",
                        _("publish {key} was undone on the stock service at {when:dt}", key=key,
                          when=_stamp_of(at)))
            return True
    return False


def _learn_undos(session: _WorkbookSession, service: StockServiceClient) -> None:
    """Sync learns of the publishes undone on the stock service's account pages since
    (a Log row each), so that ``xlstock undo`` never undoes them again. Best effort: a
    service that cannot tell leaves the workbook as it is."""
    waiting = {p.get("key") for p in session.state.get("publishes") or []
               if not p.get("undone_at") and not p.get("undo_of")}
    history = getattr(service, "history", None)
    if not waiting or history is None:
        return
    try:
        entries = history(limit=50)
    except XlstockError:
        return
    for entry in entries:
        reference = str(getattr(entry, "reference", ""))
        if getattr(entry, "source", "") == "undo" and reference.startswith("undo of publish "):
            key = reference[len("undo of publish "):].strip()
            if key in waiting:
                _mark_undone(session, key, str(getattr(entry, "at", "")), "the account pages")


def _publish_to_undo(session: _WorkbookSession, key: str | None) -> dict[str, Any]:
    publishes = list(session.state.get("publishes") or [])
    if not publishes:
        raise UsageError(_("this workbook remembers no publish to undo (xlstock history "
                           "lists what it remembers)"))
    if key is None:
        entry = publishes[-1]
        if entry.get("undo_of"):
            raise UsageError(_(
                "the last publish from this workbook was itself an undo (of publish "
                "{undone}, at {when:dt}); to undo that undo, name it: xlstock undo BOOK "
                "--publish {key}", undone=entry["undo_of"], when=_stamp_of(entry.get("at")),
                key=entry["key"]))
    else:
        matches = [p for p in publishes if str(p.get("key", "")).startswith(key)]
        if len(matches) != 1:
            raise UsageError(
                _("--publish {key}: no publish this workbook remembers has that key; "
                  "xlstock history lists them", key=key) if not matches else
                _("--publish {key}: more than one publish this workbook remembers has that "
                  "key; xlstock history lists them", key=key))
        entry = matches[0]
    if entry.get("undone_at"):
        raise UsageError(_("publish {key} was undone already, at {when:dt}; nothing was sent",
                           key=entry["key"], when=_stamp_of(entry["undone_at"])))
    return entry


def undo(
    book: WorkbookAdapter,
    service: StockServiceClient,
    *,
    publish_key: str | None = None,
    preview: bool = False,
    partial: bool = False,
    strict: bool | None = None,
    confirm: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
    settings: layout.Settings | None = None,
) -> Report:
    """Take back a publish made from this workbook (the last one, or ``publish_key``),
    keeping the sales made since (:func:`xlstock.planner.plan_undo`), checked against
    the live levels. An undo is a publish: a key saved before it is sent, each row's
    Online, Change and Status, a Log row; the publish undone is marked so (a second undo
    of it is refused). Rows that cannot be undone (below zero, gone) stop it unless
    ``partial``; ``preview`` sends nothing; ``confirm`` is asked before sending."""
    progress = progress or _noop
    session = _online_session(book, settings)
    begun = _begin_undo(session, service, publish_key, preview, progress)
    if isinstance(begun, Report):
        return begun
    recovered, target, live = begun
    plan = _UndoPlan(session, target, live, STRICT if strict else session.settings.policy)
    lines = [recovered] if recovered else []
    if preview:
        return Report("undo", _("Preview of the undo of publish {key} (made {when:dt}): "
                                "{count:n} row(s), {units}; nothing was sent.", **plan.what),
                      lines, plan.table, error=plan.blocked() if plan.refused else None)
    if plan.refused and not partial:
        stopped = SheetError(_("{count:n} row(s) of publish {key} cannot be undone; nothing "
                               "was sent. Undo the other rows with --partial",
                               count=len(plan.refused), key=target["key"]), plan.problems)
        _fail(session, "undo", stopped, _problem_statuses(plan.problems))
        raise stopped
    if not plan.sending:
        return Report("undo", _("Nothing to undo in publish {key}: its rows are back where "
                                "they were.", key=target["key"]), lines, plan.table)
    if confirm is not None and not confirm(_("Send the undo of publish {key} (made {when:dt}): "
                                             "{count:n} row(s), {units}?", **plan.what)):
        return Report("undo", _("Undo cancelled; nothing was sent."), lines, plan.table)
    _send_undo(session, service, plan, target, progress)
    progress(_("Saving the workbook"), 0.9)
    try:
        session.save()
    except WorkbookError as not_saved:
        raise _published_not_recorded(session, not_saved) from not_saved
    return Report("undo", _("Sent the undo of publish {key} (made {when:dt}): {count:n} row(s), "
                            "{units}.", **plan.what), lines, plan.table)


def _begin_undo(session: _WorkbookSession, service: StockServiceClient,
                publish_key: str | None, preview: bool,
                progress: Progress) -> Report | tuple[str | None, dict[str, Any], dict[str, int]]:
    """A pending publish settled first, then the publish to undo and the live levels; or
    the Report of an interrupted undo this command was run again for, now done."""
    try:
        recovered = _settle_pending(session, service, progress, may_send=not preview)
        last = (session.state.get("publishes") or [{}])[-1]
        if recovered and publish_key is None and last.get("undo_of") and \
                not session.state.get("pending"):
            session.save()  # the interrupted undo this command was run again for is done
            return Report("undo", recovered)
        target = _publish_to_undo(session, publish_key)
        _refuse_undone_online(session, service, target)
        progress(_("Reading the live levels"), 0.2)
        live = service.read_levels(names=False).levels()
    except XlstockError as failed:
        _fail(session, "undo", failed, {})
        raise
    return recovered, target, live


class _UndoPlan:
    """What undoing ``target`` sends, row by row (:func:`xlstock.planner.plan_undo`),
    what it refuses, and the words the messages use."""

    def __init__(self, session: _WorkbookSession, target: Mapping[str, Any],
                 live: Mapping[str, int], policy: str) -> None:
        published = {sku: PublishLine.from_list(sku, value)
                     for sku, value in (target.get("items") or {}).items()}
        rows = plan_undo(published, target.get("after") or {}, live, policy=policy)
        self.table = [_undo_row(r) for r in rows if r.change or r.problem]
        self.refused = [r for r in rows if r.problem]
        self.sending = [r for r in rows if r.line is not None]
        self.added, self.removed = _units_of([r.change for r in self.sending])
        self.what = dict(key=target["key"], when=_stamp_of(target.get("at")),
                         count=len(self.sending), units=units_moved(self.added, self.removed))
        self.row_of = _sheet_rows(session)
        self.problems = [RowProblem(self.row_of.get(r.sku), r.sku, r.problem)
                         for r in self.refused]

    def blocked(self) -> SheetError:
        return SheetError(_("{count:n} row(s) cannot be undone; undo sends the others "
                            "only with --partial", count=len(self.refused)), self.problems,
                          in_status=False)


def _units_of(changes: Sequence[int]) -> tuple[int, int]:
    """The units added and the units removed by ``changes``."""
    return (sum(change for change in changes if change > 0),
            -sum(change for change in changes if change < 0))


def _sheet_rows(session: _WorkbookSession) -> dict[str, int]:
    """Each SKU's row number on sheet Stock."""
    return {sku: session.table.sheet_row(i) for i, sku in enumerate(session.skus()) if sku}


def _undo_row(row: Any) -> tuple[str, str, str, str, str]:
    """A row of the undo's table: SKU, live level, change, target, what happens."""
    return (row.sku, "" if row.live is None else str(row.live), f"{row.change:+d}",
            "" if row.target is None else str(row.target), row.problem or _("undo"))


def _send_undo(session: _WorkbookSession, service: StockServiceClient, plan: _UndoPlan,
               target: Mapping[str, Any], progress: Progress) -> None:
    """Send the undo's lines as a publish, recorded as :func:`publish` records one."""
    try:
        undo_lines = [r.line for r in plan.sending if r.line]
        _send_recorded(session, service, undo_lines, progress,
                       levels={line.sku: line.target for line in undo_lines},
                       changes={line.sku: line.target - line.planned_from
                                for line in undo_lines},
                       edits=None, thresholds={}, saying="Undoing", undo_of=target["key"])
    except StaleVersion as stale:
        conflict = ConflictError(_(
            "the levels of {count:n} row(s) moved since they were read "
            "(policy strict); nothing more was sent. Undo again, or with policy rebase",
            count=len(stale.moved or {})),
            [RowProblem(plan.row_of.get(sku), sku, _("online now {level}", level=level))
             for sku, level in (stale.moved or {}).items()])
        _fail(session, "undo", conflict, {})
        raise conflict from stale
    except ServiceError as refused_by_shop:
        _fail(session, "undo", refused_by_shop, {})
        raise
    session.log("undo", len(plan.sending), plan.added + plan.removed,
                _("undo of publish {key}", key=target["key"]))


# --- validate ---------------------------------------------------------------------------


def validate(book: WorkbookAdapter, *, progress: Progress | None = None) -> Report:
    """Check sheet Stock offline (no service): every rule that does not need the live
    levels, and the results against the levels of the last Sync. Writes nothing."""
    progress = progress or _noop
    session = _WorkbookSession.read(book, names=False)
    progress(_("Checking sheet Stock"), 0.5)
    rows, problems = session.parsed_rows()
    base = _sync_memory(session)  # read, never changed: not a copy of a million levels
    lines: list[str] = []
    if base:
        known = {r.sku for r in rows if r.sku in base}
        plan = plan_publish([r for r in rows if r.sku in known], base, base, problems=problems)
        problems = plan.problems
        unsynced = [r for r in rows if r.sku not in base and r.has_edit]
        hint = SkuHints(base)
        for row in unsynced[:20]:
            assert row.sku is not None
            lines.append(_("Stock row {row}, SKU {sku}: not seen at the last Sync (checked at "
                           "publish){hint}", row=row.row, sku=repr(row.sku),
                           hint=hint.near_miss(row.sku)))
    else:
        lines.append(_("No Sync yet: levels are checked against the shop at publish."))
    lines.extend(_low_at_notes(session))
    edits = sum(1 for r in rows if r.has_edit)
    if problems:
        error = SheetError(_("{count:n} row(s) of sheet Stock need fixing",
                             count=len(problems)), problems, in_status=False)
        return Report("validate", error.message, lines, error=error)
    return Report("validate", _("Sheet Stock is valid: {count:n} SKU(s), {edits:n} edit(s).",
                                count=len(rows), edits=edits), lines)
