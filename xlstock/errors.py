"""One error tree for xlstock.

Every error carries a message that names the sheet, cell, SKU or URL at fault and says
what to do; its class says what kind of failure it is, and the command line alone
turns that into an exit status (:mod:`xlstock.cli.exits`). Adapters translate foreign
exceptions (openpyxl, zipfile, requests, urllib3, sqlite3) into this tree at one
place each, ``raise ... from exc``, so that the CLI and the Excel buttons only ever
show these messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xlstock.i18n import _


@dataclass(frozen=True)
class RowProblem:
    """One problem with one row of sheet Stock (``row`` is the sheet row number)."""

    row: int | None
    sku: str | None
    message: str

    def __str__(self) -> str:
        return self.text()

    def text(self) -> str:
        """``Stock row 7, SKU 'A-1': ...`` in the current language (a
        :class:`~xlstock.i18n.Message`)."""
        problem = self.message
        if not self.sku:
            if self.row is None:
                return _("Stock: {problem}", problem=problem)
            return _("Stock row {row}: {problem}", row=self.row, problem=problem)
        shown = repr(self.sku if len(self.sku) <= 60 else self.sku[:57] + "...")
        if self.row is None:
            return _("Stock SKU {sku}: {problem}", sku=shown, problem=problem)
        return _("Stock row {row}, SKU {sku}: {problem}", row=self.row, sku=shown,
                 problem=problem)


class XlstockError(Exception):
    """Base of every error xlstock reports to a merchant."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.brief: str | None = None
        """The message as the Log's Result keeps it, when it is long and another's words
        in it (a service's quoted reason) may be cut so that what to do is kept whole;
        ``None``: the message itself."""

    def __str__(self) -> str:
        return self.message


class UsageError(XlstockError):
    """The command was called wrongly (a missing file, a bad option, a bad setting)."""


class MissingExtra(UsageError):
    """An optional part of xlstock is used without its extra installed."""

    def __init__(self, extra: str, purpose: str) -> None:
        super().__init__(_(
            "{purpose} needs the {extra} extra, which is not installed: "
            "pip install 'xlstock[{name}]'", purpose=purpose, extra=repr(extra), name=extra
        ))
        self.extra = extra


class WorkbookError(XlstockError):
    """The workbook file cannot be read or written safely (corrupt, hostile, locked)."""


class WorkbookChangedError(WorkbookError):
    """Another program saved the workbook while xlstock had it open: xlstock kept that
    program's file and saved nothing over it."""


class ReadOnlyWorkbookError(WorkbookError):
    """The workbook file is read-only: xlstock does not replace it (Excel and
    LibreOffice refuse to save it too)."""


class SheetError(XlstockError):
    """Rows of sheet Stock are wrong; nothing was sent. ``problems`` names each row;
    ``in_status`` says whether they are also written in column Status (not by
    ``validate``, which writes nothing)."""

    def __init__(self, message: str, problems: Sequence[RowProblem] = (), *,
                 in_status: bool = True) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.in_status = in_status

    def __str__(self) -> str:
        lines = [str(self.message)]
        lines.extend(f"  {p}" for p in self.problems[:50])
        if len(self.problems) > 50:
            more = len(self.problems) - 50
            lines.append("  " + (_("... and {count:n} more (see column Status)", count=more)
                                 if self.in_status else
                                 _("... and {count:n} more", count=more)))
        return "\n".join(lines)


class ConflictError(SheetError):
    """Strict policy found rows changed online since Sync, or a race retries could not
    resolve; nothing was sent."""


class MassChangeError(XlstockError):
    """An action would blank or rewrite most of the shop at once; it needs an explicit
    ``--allow-mass-change`` (in Excel, a confirmation).

    ``situation`` says what would happen, without the command-line way out, so that
    the Excel buttons can ask it as a question."""

    def __init__(self, situation: str) -> None:
        super().__init__(_(
            "{situation}; nothing was changed. If that is intended, run again with "
            "--allow-mass-change", situation=situation
        ))
        self.situation = situation


class ServiceError(XlstockError):
    """The stock service could not be reached, or refused the request; nothing was sent
    (or, for :class:`OutcomeUnknown`, the outcome is recoverable by the next publish).

    ``status`` and ``code`` are the HTTP status and the service's error code, when it
    answered; ``items`` are the items its answer named (dicts with ``sku`` and
    ``problem``, and ``current`` for a moved level). ``may_have_arrived`` is set when
    the request failed on the way: ``False`` when it certainly never reached the
    service, ``True`` when it may have (then a publish is never called failed without
    asking the service for its outcome); ``None`` when the service answered.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        items: Sequence[Mapping[str, Any]] = (),
        may_have_arrived: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.items: list[dict[str, Any]] = [dict(item) for item in items]
        self.may_have_arrived = may_have_arrived
        self.applied: dict[str, int] = {}
        """SKU -> level left, for the lines of a publish a platform applied before it
        refused the rest (one that publishes in several calls); empty for the xlstock
        service, which applies a publish whole or not at all."""


class ServiceUnreachable(ServiceError):
    """No answer: connection refused, DNS, TLS, timeout, or a broken response."""


class ServiceRefused(ServiceError):
    """The service answered with an error (401, 403, 404, 413, 422, 5xx ...)."""


class StaleVersion(ServiceError):
    """412: the live levels changed since they were read; re-read and re-plan.

    ``moved`` maps each moved SKU to its current level when the service named them all
    (``None``: read the levels again); ``current_version`` is the live version tag, when
    the answer gave it; ``applied`` is what was applied all the same (see below)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 412,
        code: str | None = None,
        items: Sequence[Mapping[str, Any]] = (),
        current_version: str | None = None,
        moved: Mapping[str, int] | None = None,
        applied: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, items=items)
        self.current_version = current_version
        self.moved: dict[str, int] | None = dict(moved) if moved is not None else None
        self.applied = dict(applied or {})


class OutcomeUnknown(ServiceError):
    """A publish was sent but its answer never arrived. The workbook keeps the pending
    key (``key``); the next ``xlstock publish`` asks the service what happened and
    finishes."""

    def __init__(self, message: str, *, key: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code, may_have_arrived=True)
        self.key = key
