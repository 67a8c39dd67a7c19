"""The JSON documents the stock service accepts and answers: parsing and checking a
published stock file or an order, and the shape of every error body.

Pure: no SQL and no HTTP. The storage layer calls these inside its transaction, with
the SKUs the shop knows at that moment, so that a document is judged against exactly
the state it would be applied to.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from xlstock.model import (
    MAX_LEVEL,
    MAX_SKU_LENGTH,
    ValueProblem,
    has_control_characters,
    normalise_shop_url,
)
from xlstock.stockfile import FORMAT_NAME, FORMAT_VERSION

MAX_REFERENCE_LENGTH = 200


def error_body(code: str, message: str, items: list[dict[str, Any]] | None = None) -> dict:
    """The body of every error answer: ``{"error": {"code", "message", "items"?}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if items is not None:
        error["items"] = items
    return {"error": error}


@dataclass
class Checked:
    """The result of checking a document: what to apply, or every problem found."""

    levels: dict[str, int] = field(default_factory=dict)
    reference: str = ""
    document_problems: list[str] = field(default_factory=list)
    item_problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.document_problems and not self.item_problems

    def error(self, what: str) -> dict:
        """The 422 ``invalid_document`` body naming every problem."""
        count = len(self.document_problems) + len(self.item_problems)
        parts = list(self.document_problems)
        if self.item_problems:
            parts.append(
                f"{len(self.item_problems)} bad item(s): "
                + "; ".join(_describe(p) for p in self.item_problems[:5])
                + (" ..." if len(self.item_problems) > 5 else "")
            )
        message = (
            f"the {what} has {count} problem(s) and nothing was applied: "
            + "; ".join(parts)
            + "; fix them and send it again with a new Idempotency-Key"
        )
        return error_body("invalid_document", message, self.item_problems)


def _describe(problem: dict[str, Any]) -> str:
    sku = problem.get("sku")
    return f"SKU {sku!r}: {problem['problem']}" if sku is not None else problem["problem"]


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """The JSON value in ``body``, or ``(None, why)`` when it is not UTF-8 JSON."""
    try:
        return json.loads(body.decode("utf-8")), None
    except UnicodeDecodeError as exc:
        return None, f"the body is not UTF-8 (byte {exc.start}); send UTF-8 JSON"
    except json.JSONDecodeError as exc:
        return None, f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except (ValueError, RecursionError):
        return None, "the body is not JSON this service can read (too deep or too large numbers)"


def _check_sku(raw: Any) -> tuple[str | None, str | None]:
    """The SKU as the service keys it (NFC), or ``(None, problem)``."""
    if not isinstance(raw, str):
        return None, "sku is missing or not text"
    sku = unicodedata.normalize("NFC", raw)
    if not sku.strip():
        return None, "sku is empty"
    if has_control_characters(sku):
        return None, "sku holds a control character (line break, tab...)"
    if len(sku) > MAX_SKU_LENGTH:
        return None, f"sku is {len(sku)} characters long; the limit is {MAX_SKU_LENGTH}"
    return sku, None


def _check_count(raw: Any, *, what: str, minimum: int) -> str | None:
    """The problem with a level or quantity, or ``None`` when it is a whole number in range."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        return f"{what} {json.dumps(raw)[:40]} is not a whole number"
    if raw < minimum:
        return f"{what} {raw} is below {minimum}"
    if raw > MAX_LEVEL:
        return f"{what} {raw} is beyond {MAX_LEVEL:,}"
    return None


def _item_problem(index: int, sku: Any, problem: str) -> dict[str, Any]:
    """A problem with an item whose SKU cannot be used; it is named by its position."""
    return {"sku": sku if isinstance(sku, str) else None, "problem": f"item {index + 1}: {problem}"}


def check_stock_file(document: Any, *, shop: str, known_skus: Collection[str]) -> Checked:
    """Check a published stock file whole: every bad item is listed, nothing is half-read.

    ``shop`` is the normalised URL the request named; ``known_skus`` the shop's products.
    """
    result = Checked()
    if not isinstance(document, dict):
        result.document_problems.append("the stock file is not a JSON object")
        return result
    if document.get("format") != FORMAT_NAME:
        result.document_problems.append(
            f"format is {json.dumps(document.get('format'))[:60]}, expected {FORMAT_NAME!r}"
        )
    version = document.get("format_version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        result.document_problems.append(
            f"format_version is {json.dumps(version)[:20]}; this service reads version "
            f"{FORMAT_VERSION}"
        )
    declared = document.get("shop")
    try:
        declared_shop = normalise_shop_url(declared) if isinstance(declared, str) else None
    except ValueProblem:
        declared_shop = None
    if declared_shop != shop:
        result.document_problems.append(
            f"shop {json.dumps(declared)[:120]} does not match the shop parameter {shop!r}"
        )
    items = document.get("items")
    if not isinstance(items, list):
        result.document_problems.append("items is missing or not a list")
        return result
    _check_lines(
        result, items, known_skus, what="level", minimum=0,
        repeated="listed more than once; keep one line per SKU",
        unknown="unknown to the shop; add the product in the shop first",
    )
    return result


def check_order(document: Any, *, known_skus: Collection[str]) -> Checked:
    """Check a storefront order: lines of known SKUs with whole quantities of at least 1."""
    result = Checked()
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
    _check_lines(
        result, lines, known_skus, what="quantity", minimum=1,
        repeated="ordered on more than one line; put the total on one line",
        unknown="unknown to the shop",
    )
    return result


def _check_lines(
    result: Checked, lines: list[Any], known_skus: Collection[str], *, what: str,
    minimum: int, repeated: str, unknown: str,
) -> None:
    """Check each ``{"sku", "qty"}`` line, recording every problem and, for good lines,
    SKU -> quantity in ``result.levels``."""
    seen: set[str] = set()
    for index, line in enumerate(lines):
        if not isinstance(line, dict):
            result.item_problems.append(_item_problem(index, None, "is not a JSON object"))
            continue
        sku, problem = _check_sku(line.get("sku"))
        if sku is None:
            result.item_problems.append(_item_problem(index, line.get("sku"), problem or ""))
            continue
        problems = []
        if sku in seen:
            problems.append(repeated)
        elif sku not in known_skus:
            problems.append(unknown)
        seen.add(sku)
        qty_problem = _check_count(line.get("qty"), what=what, minimum=minimum)
        if qty_problem:
            problems.append(qty_problem)
        for text in problems:
            result.item_problems.append({"sku": sku, "problem": text})
        if not problems:
            result.levels[sku] = line["qty"]
