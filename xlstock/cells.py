"""Cell values as the workbook adapters hand them to the pure core.

Adapters return plain Python values (``str``, ``int``, ``float``, ``bool``,
``datetime``, ``None``) and two markers defined here, so that the core can tell a
formula or an Excel error from a typed value without importing any Excel library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Formula:
    """A cell holding a formula. ``cached`` is the value Excel last computed and saved,
    or ``NO_CACHE`` when the file carries none (written by a tool that does not
    calculate)."""

    text: str
    cached: Any


class _NoCache:
    def __repr__(self) -> str:
        return "NO_CACHE"


NO_CACHE: Any = _NoCache()


@dataclass(frozen=True)
class CellError:
    """An Excel error value such as ``#N/A`` or ``#REF!``."""

    code: str

    def __str__(self) -> str:
        return self.code


EXCEL_ERRORS = frozenset(
    {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
     "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!"}
)


def unchanged(current: Any, value: Any) -> bool:
    """Whether writing ``value`` over a cell holding ``current`` would change nothing
    (the same value of the same type; empty text is no value). Writes that change
    nothing are skipped, so that an unchanged sheet is saved as it was."""
    if current is value or (type(current) is type(value) and current == value):
        return True
    return (current is None or current == "") and (value is None or value == "")
