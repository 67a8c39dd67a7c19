"""The JSON documents the stock service accepts and answers: parsing and checking a
published stock file or an order, and the shape of every error body.

Pure: no SQL and no HTTP. A document is checked in two steps: its shape here, before
any transaction (so that the write lock is never held while a large body is parsed),
then against the shop inside the transaction that applies it, with
:func:`unknown_skus` naming SKUs the shop does not have.

Every text that came from the request and is echoed in an answer (a SKU, a value) is
cut short and made encodable (:func:`echo`): an answer, and the record of it kept
for an idempotent replay, never grows with the request.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xlstock.model import (
    MAX_LEVEL,
    MAX_SKU_LENGTH,
    ValueProblem,
    has_control_characters,
    normalise_shop_url,
    sku_as_sent,
    sku_problem,
)
from xlstock.stockfile import FORMAT_NAME, FORMAT_VERSION

PUBLISHABLE_VERSIONS = (2, 3)
"""Stock files a publish may send: version 2 (every item a checked set), and version 3,
where a delivery is a change in units."""

MAX_REFERENCE_LENGTH = 200
MAX_ITEMS_LISTED = 100
"""An error answer lists at most this many items (``items_total`` gives the count)."""
MAX_ERROR_BYTES = 16 * 1024
"""An error answer's ``items`` are cut to keep the answer under this size, so that a
refused document stores a small, fixed amount however large it was."""
_MAX_MESSAGE = 2000


class DuplicateKey(ValueError):
    """A JSON object names the same key twice (the last one would silently win)."""


def echo(value: Any, limit: int = MAX_SKU_LENGTH + 1) -> str:
    """Request text as it may appear in an answer: at most ``limit`` characters, and
    encodable as UTF-8 (a lone surrogate becomes ``\\ud800`` written out)."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(code: str, message: str, items: Sequence[dict[str, Any]] | None = None,
               fields: Mapping[str, Any] | None = None) -> dict:
    """The body of every error answer: ``{"error": {"code", "message", "items"?,
    "items_total"?, ...}}``. ``items`` is cut to :data:`MAX_ITEMS_LISTED` entries and
    :data:`MAX_ERROR_BYTES`; ``items_total`` then says how many there were. ``fields``
    are a code's own facts for programs (``shop_not_registered``: ``token_shop`` and
    ``shop``), so that no client has to read them out of ``message``."""
    error: dict[str, Any] = {"code": code, "message": echo(message, _MAX_MESSAGE)}
    error.update(fields or {})
    if items is not None:
        listed: list[dict[str, Any]] = []
        size = len(json.dumps(error, ensure_ascii=False).encode("utf-8"))
        for item in items[:MAX_ITEMS_LISTED]:
            size += len(json.dumps(item, ensure_ascii=False).encode("utf-8")) + 1
            if size > MAX_ERROR_BYTES:
                break
            listed.append(item)
        error["items"] = listed
        if len(listed) < len(items):
            error["items_total"] = len(items)
    return {"error": error}


@dataclass(frozen=True)
class Line:
    """One good line of a document: its position, SKU (NFC), quantity or level, and for
    a stock file the level it was planned against."""

    index: int
    sku: str
    qty: int
    planned_from: int | None = None
    add: int | None = None
    """A delivery's change in units (stock file version 3): added to the level the SKU
    has, never checked against ``planned_from``."""


@dataclass
class Checked:
    """A document checked for shape: its good lines, or every problem found."""

    kind: str
    lines: list[Line] = field(default_factory=list)
    reference: str = ""
    code: str = "invalid_document"
    document_problems: list[str] = field(default_factory=list)
    item_problems: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    thresholds: dict[str, int | None] = field(default_factory=dict)
    """A stock file's ``thresholds`` (version 3): SKU -> low-stock threshold, ``None``
    for the shop's default."""
    undoes: str | None = None
    """A stock file's ``undoes``: the key of the publish it takes back (``xlstock undo``),
    which the service then records undone."""

    @property
    def ok(self) -> bool:
        return not self.document_problems and not self.item_problems

    def add(self, index: int, sku: str | None, problem: str) -> None:
        self.item_problems.append((index, {"sku": sku, "problem": problem}))

    def error(self) -> dict:
        """The 422 body naming every problem (items in the order of the document)."""
        items = [item for _, item in sorted(self.item_problems, key=lambda p: p[0])]
        count = len(self.document_problems) + len(items)
        parts = list(self.document_problems)
        if items:
            parts.append(
                f"{len(items)} bad item(s): "
                + "; ".join(_describe(p) for p in items[:5])
                + (" ..." if len(items) > 5 else "")
            )
        message = (
            f"the {self.kind} has {count} problem(s) and nothing was applied: "
            + "; ".join(parts)
            + "; fix them and send it again with a new Idempotency-Key"
        )
        return error_body(self.code, message, items)

    def levels(self) -> dict[str, int]:
        return {line.sku: line.qty for line in self.lines}


def _describe(problem: dict[str, Any]) -> str:
    sku = problem.get("sku")
    return f"SKU {sku!r}: {problem['problem']}" if sku is not None else problem["problem"]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """The JSON value in ``body``, or ``(None, why)`` when it is not UTF-8 JSON, or an
    object in it repeats a key."""
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates), None
    except UnicodeDecodeError as exc:
        return None, f"the body is not UTF-8 (byte {exc.start}); send UTF-8 JSON"
    except DuplicateKey as exc:
        return None, (f"the body names the key {echo(exc.args[0], 40)!r} twice in one object; "
                      "send each key once")
    except json.JSONDecodeError as exc:
        return None, f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except (ValueError, RecursionError):
        return None, "the body is not JSON this service can read (too deep or too large numbers)"


def _check_sku(raw: Any) -> tuple[str | None, str | None]:
    """The SKU as the service keys it (NFC), or ``(None, problem)``."""
    if not isinstance(raw, str):
        return None, "sku is missing or not text"
    sku = sku_as_sent(raw)
    problem = sku_problem(sku)
    return (None, f"sku {problem}") if problem else (sku, None)


def _check_count(raw: Any, *, what: str, minimum: int) -> str | None:
    """The problem with a level or quantity, or ``None`` when it is a whole number in range."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        shown = echo(json.dumps(raw, ensure_ascii=False) if raw is not None else "missing", 40)
        return f"{what} {shown} is not a whole number"
    if raw < minimum:
        return f"{what} {raw} is below {minimum}"
    if raw > MAX_LEVEL:
        return f"{what} {echo(raw, 20)} is beyond {MAX_LEVEL:,}"
    return None


def _shown(value: Any, limit: int) -> str:
    try:
        return echo(json.dumps(value, ensure_ascii=False), limit)
    except (TypeError, ValueError):  # pragma: no cover - parsed JSON always dumps
        return "?"


def check_stock_file(document: Any, *, shop: str) -> Checked:
    """Check the shape of a published stock file (protocol 2 or 3) whole: every bad item is
    listed, nothing is half-read. ``shop`` is the normalised URL the request named."""
    result = Checked("stock file")
    if not isinstance(document, dict):
        result.document_problems.append("the stock file is not a JSON object")
        return result
    if document.get("format") != FORMAT_NAME:
        result.document_problems.append(
            f"format is {_shown(document.get('format'), 60)}, expected {FORMAT_NAME!r}"
        )
    version = document.get("format_version")
    if isinstance(version, bool) or version not in PUBLISHABLE_VERSIONS:
        result.code = "unsupported_format_version"
        if version == 1 and not isinstance(version, bool):
            result.document_problems.append(
                "this is a version 1 stock file, planned against the whole shop's version; "
                f"this service speaks protocol {FORMAT_VERSION}, where each item carries the "
                "level it was planned against ('from'): upgrade xlstock "
                "(pip install --upgrade xlstock) and publish again"
            )
        else:
            result.document_problems.append(
                f"format_version is {_shown(version, 20)}; this service reads versions "
                f"2 and {FORMAT_VERSION}"
            )
        return result
    declared = document.get("shop")
    try:
        declared_shop = normalise_shop_url(declared) if isinstance(declared, str) else None
    except ValueProblem:
        declared_shop = None
    if declared_shop != shop:
        result.document_problems.append(
            f"shop {_shown(declared, 120)} does not match the shop parameter {shop!r}"
        )
    items = document.get("items")
    if not isinstance(items, list):
        result.document_problems.append("items is missing or not a list")
        return result
    _check_lines(result, items, what="level", minimum=0, planned=True,
                 repeated="listed more than once; keep one line per SKU",
                 deltas=version >= 3)
    if "thresholds" in document:
        _check_thresholds(result, document["thresholds"], first=len(items), version=version)
    undoes = document.get("undoes")
    if isinstance(undoes, str) and 0 < len(undoes) <= 200:
        result.undoes = undoes
    elif undoes is not None:
        result.document_problems.append(
            f"undoes is {_shown(undoes, 40)}, not the key of a publish (1 to 200 characters)")
    return result


def _check_thresholds(result: Checked, thresholds: Any, *, first: int, version: int) -> None:
    """Check a stock file's ``{"SKU": n | null}`` low-stock thresholds; a problem is
    listed after the items (its position counted from ``first``)."""
    if version < 3:
        result.document_problems.append(
            "thresholds is not part of stock file version 2: send version 3")
        return
    if not isinstance(thresholds, dict):
        result.document_problems.append(
            f"thresholds is {_shown(thresholds, 40)}, not an object of SKU -> whole "
            "number or null")
        return
    for offset, (raw_sku, value) in enumerate(thresholds.items()):
        sku, problem = _check_sku(raw_sku)
        if sku is None:
            result.add(first + offset, echo(raw_sku), f"thresholds: {problem}")
            continue
        if value is not None:
            problem = _check_count(value, what="threshold", minimum=0)
            if problem:
                result.add(first + offset, sku, f"thresholds: {problem}; give a whole "
                           "number from 0, or null for the shop's default")
                continue
        if sku in result.thresholds:
            result.add(first + offset, sku, "thresholds: the SKU is given twice")
            continue
        result.thresholds[sku] = value


def check_order(document: Any) -> Checked:
    """Check the shape of a storefront order: lines of SKUs with whole quantities of at
    least 1, an optional text reference."""
    result = Checked("order")
    if not isinstance(document, dict):
        result.document_problems.append("the order is not a JSON object")
        return result
    reference = document.get("reference", "")
    if reference is None:
        reference = ""
    if not isinstance(reference, str):
        result.document_problems.append("reference is not text")
    elif has_control_characters(reference) or len(reference) > MAX_REFERENCE_LENGTH:
        result.document_problems.append(
            f"reference must be at most {MAX_REFERENCE_LENGTH} characters without control "
            "characters"
        )
    else:
        result.reference = reference
    lines = document.get("lines")
    if not isinstance(lines, list) or not lines:
        result.document_problems.append("lines is missing, empty or not a list")
        return result
    _check_lines(result, lines, what="quantity", minimum=1, planned=False,
                 repeated="ordered on more than one line; put the total on one line")
    return result


def _check_lines(
    result: Checked, lines: list[Any], *, what: str, minimum: int, planned: bool,
    repeated: str, deltas: bool = False,
) -> None:
    """Check each ``{"sku", "qty"}`` line (and its ``from`` when ``planned``), recording
    every problem and the good lines in ``result``."""
    seen: set[str] = set()
    for index, line in enumerate(lines):
        sku = _line_sku(result, index, line)
        if sku is None:
            continue
        problems = [repeated] if sku in seen else []
        seen.add(sku)
        problems += _level_problems(line, what=what, minimum=minimum, planned=planned)
        problems += _add_problems(line, deltas=deltas, checked=not problems)
        for text in problems:
            result.add(index, sku, text)
        if not problems:
            result.lines.append(Line(index, sku, line.get("qty"),
                                     line.get("from") if planned else None,
                                     line.get("add") if deltas else None))


def _line_sku(result: Checked, index: int, line: Any) -> str | None:
    """The line's SKU; ``None``, with the problem recorded, for a line that is not an
    object or whose SKU is bad."""
    if not isinstance(line, dict):
        result.add(index, None, f"item {index + 1}: is not a JSON object")
        return None
    raw_sku = line.get("sku")
    sku, problem = _check_sku(raw_sku)
    if sku is None:
        shown = echo(raw_sku) if isinstance(raw_sku, str) else None
        result.add(index, shown, f"item {index + 1}: {problem}")
    return sku


def _level_problems(line: dict[str, Any], *, what: str, minimum: int,
                    planned: bool) -> list[str]:
    """What is wrong with the line's ``qty``, and with its ``from`` when ``planned``."""
    problems = []
    qty_problem = _check_count(line.get("qty"), what=what, minimum=minimum)
    if qty_problem:
        problems.append(qty_problem)
    if planned and "from" not in line:
        problems.append("from is missing: give the level this item was planned "
                        "against (what the last read of the levels showed)")
    elif planned:
        from_problem = _check_count(line.get("from"), what="from", minimum=0)
        if from_problem:
            problems.append(from_problem)
    return problems


def _add_problems(line: dict[str, Any], *, deltas: bool, checked: bool) -> list[str]:
    """What is wrong with the line's ``add`` (version 3: the units a delivery adds),
    once its ``qty`` and ``from`` are ``checked`` good."""
    if "add" in line and not deltas:
        return ["add is not part of stock file version 2: send version 3"]
    add, planned_from, qty = line.get("add"), line.get("from"), line.get("qty")
    if not deltas or add is None or not checked or not isinstance(planned_from, int):
        return []
    if isinstance(add, bool) or not isinstance(add, int):
        return [f"add {_shown(add, 40)} is not a whole number"]
    if planned_from + add != qty:
        return [f"add {add} from {planned_from} gives {planned_from + add}, not qty {qty}"]
    return []


def unknown_skus(result: Checked, known: Collection[str], problem: str) -> None:
    """Move the good lines whose SKU is not in ``known`` to the problems."""
    kept = []
    for line in result.lines:
        if line.sku in known:
            kept.append(line)
        else:
            result.add(line.index, line.sku, problem)
    result.lines = kept
