"""Reading a shop's product catalogue from CSV, for ``xlstock shop add --catalogue``.

Two shapes are understood, told apart by their header:

- the contract's own: columns ``sku``, ``name``, ``variant`` (optional) and ``qty``,
  case ignored, any other column ignored;
- a WooCommerce product export (columns ``Type``, ``SKU``, ``Name``, ``Parent`` and
  ``Attribute N name`` / ``Attribute N value(s)``): simple products and variations hold
  stock; variable parents, virtual or downloadable, grouped and external products do
  not and are skipped. A variation is named after its parent, its variant is its
  attribute values joined by ``" / "``, and its level comes from a ``Stock`` column.
  A product gives no quantity when the export has no ``Stock`` column, when its Stock
  is blank (WooCommerce's export of a product whose stock is not managed) or
  ``parent``, or when a ``Manage stock?`` column says no: it is then added at 0 if new,
  and an existing product keeps its level (a catalogue never zeroes stock by accident).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xlstock.errors import UsageError
from xlstock.i18n import _
from xlstock.model import (
    MAX_NAME_LENGTH,
    CatalogueItem,
    ValueProblem,
    clean_sku,
    has_control_characters,
    parse_quantity,
    too_many_skus,
)

MAX_PROBLEMS_SHOWN = 20
_ATTRIBUTE_VALUE = re.compile(r"attribute ([0-9]+) value\(s\)")


@dataclass
class Catalogue:
    """The products read from a catalogue file, and the rows skipped (with why).
    ``no_quantities`` says why the file gives no quantity at all ("" when it does)."""

    items: list[CatalogueItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kind: str = "xlstock"
    no_quantities: str = ""

    @property
    def without_quantity(self) -> int:
        return sum(1 for item in self.items if item.qty is None)


def read_catalogue_csv(path: str | Path) -> list[CatalogueItem]:
    """The products in the catalogue CSV at ``path``; :class:`UsageError` names every
    bad line and its fix."""
    return read_catalogue(path).items


def read_catalogue(path: str | Path) -> Catalogue:
    """Like :func:`read_catalogue_csv`, also telling which rows were skipped and why."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read the catalogue {path} ({exc.strerror or exc}); check the file name"
        ) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8' and try again"
        ) from exc
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        line = 1
        for row in reader:
            rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise UsageError(f"{path} line {reader.line_num}: {exc}; check the quotes") from exc
    if not rows or not any(cell.strip() for cell in rows[0][1]):
        raise UsageError(
            f"{path} has no header row; its first line must name the columns sku, name, "
            "variant, qty"
        )
    header = [cell.strip().lower() for cell in rows[0][1]]
    if {"type", "sku", "name", "parent"} <= set(header):
        catalogue = _read_woocommerce(path, header, rows[1:])
    else:
        catalogue = _read_contract(path, header, rows[1:])
    if too_many_skus(len(catalogue.items)):
        raise UsageError(_("the catalogue {path} lists {why}", path=path,
                           why=too_many_skus(len(catalogue.items))))
    return catalogue



def _column(header: list[str], name: str) -> int | None:
    return header.index(name) if name in header else None


def _cell(row: Sequence[str], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""


def _fail(path: Path, problems: list[str]) -> UsageError:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    more = len(problems) - len(shown)
    lines = [f"the catalogue {path} has {len(problems)} problem(s); nothing was loaded:"]
    lines += [f"  {p}" for p in shown]
    if more:
        lines.append(f"  ... and {more} more")
    return UsageError("\n".join(lines))


def _text(value: str, *, what: str, where: str, problems: list[str]) -> str:
    text = value.strip()
    if has_control_characters(text):
        problems.append(f"{where}: {what} holds a control character (line break, tab...); "
                        "retype it on one line")
    elif len(text) > MAX_NAME_LENGTH:
        problems.append(f"{where}: {what} is {len(text)} characters long; the limit is "
                        f"{MAX_NAME_LENGTH}")
    return text


Rows = list[tuple[int, list[str]]]
"""CSV records with the file line each starts on (a quoted cell may span lines)."""


def _read_contract(path: Path, header: list[str], rows: Rows) -> Catalogue:
    missing = [name for name in ("sku", "name", "qty") if name not in header]
    if missing:
        raise UsageError(
            f"{path} line 1: the header lacks the column(s) {', '.join(missing)}; a catalogue "
            f"needs sku, name, variant (may be empty) and qty (found: {', '.join(header)})"
        )
    sku_col, name_col, qty_col = (header.index(n) for n in ("sku", "name", "qty"))
    variant_col = _column(header, "variant")
    catalogue = Catalogue(kind="xlstock")
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {line}"
        try:
            sku = clean_sku(_cell(row, sku_col))
        except ValueProblem as exc:
            problems.append(f"{where}: {exc}")
            continue
        if sku is None:
            problems.append(f"{where}: the sku is empty; give every product its SKU")
            continue
        where = f"line {line} (SKU {sku!r})"
        if not _first_listing(sku, line, where, first_line, problems):
            continue
        name = _text(_cell(row, name_col), what="name", where=where, problems=problems)
        variant = _text(_cell(row, variant_col), what="variant", where=where, problems=problems)
        raw_qty = _cell(row, qty_col)
        if not raw_qty.strip():
            problems.append(f"{where}: qty is empty; type the level (0 for none)")
            continue
        try:
            qty = parse_quantity(raw_qty, what="qty", minimum=0)
        except ValueProblem as exc:
            problems.append(f"{where}: {exc}")
            continue
        catalogue.items.append(CatalogueItem(sku=sku, name=name, variant=variant, qty=qty or 0))
    if problems:
        raise _fail(path, problems)
    return catalogue


@dataclass
class _WooColumns:
    """Where a WooCommerce export keeps what xlstock reads, and each parent's name."""

    named: dict[str, int]
    stock: int | None
    managed: int | None
    attributes: list[int]
    parent_names: dict[str, str]

    def cell(self, row: list[str], name: str) -> str:
        return _cell(row, self.named.get(name))


def _attribute_columns(header: list[str]) -> list[int]:
    """The columns "Attribute 1 value(s)", "Attribute 2 value(s)"... in their order."""
    numbered = [(int(match.group(1)), index) for index, name in enumerate(header)
                if (match := _ATTRIBUTE_VALUE.fullmatch(name))]
    return [index for _, index in sorted(numbered)]


def _woo_columns(header: list[str], rows: Rows) -> _WooColumns:
    stock_col = _column(header, "stock")
    columns = _WooColumns(
        named={name: header.index(name) for name in ("id", "type", "sku", "name", "parent")
               if name in header},
        stock=_column(header, "qty") if stock_col is None else stock_col,
        managed=_column(header, "manage stock?"),
        attributes=_attribute_columns(header),
        parent_names={},
    )
    for _line, row in rows:
        name = columns.cell(row, "name").strip()
        for key in (columns.cell(row, "sku").strip(), "id:" + columns.cell(row, "id").strip()):
            if key and key != "id:":
                columns.parent_names.setdefault(key, name)
    return columns


def _read_woocommerce(path: Path, header: list[str], rows: Rows) -> Catalogue:
    columns = _woo_columns(header, rows)
    catalogue = Catalogue(kind="woocommerce")
    if columns.stock is None:
        catalogue.no_quantities = "the file has no Stock column"
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        kinds = {part.strip().lower() for part in columns.cell(row, "type").split(",")}
        skipped = _woo_skipped(line, row, kinds, columns)
        if skipped:
            catalogue.skipped.append(skipped)
            continue
        try:
            sku = clean_sku(columns.cell(row, "sku"))
        except ValueProblem as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if sku is None:
            label = columns.cell(row, "name").strip()
            catalogue.skipped.append(f"line {line} {label!r}: no SKU; give it one in "
                                     "WooCommerce to manage its stock with xlstock")
            continue
        where = f"line {line} (SKU {sku!r})"
        if _first_listing(sku, line, where, first_line, problems):
            item = _woo_item(sku, row, kinds, columns, where, problems)
            if item is not None:
                catalogue.items.append(item)
    if problems:
        raise _fail(path, problems)
    return catalogue


def _woo_skipped(line: int, row: list[str], kinds: set[str], columns: _WooColumns) -> str | None:
    """Why a row holds no stock of its own (a variable product, a virtual one), if so."""
    label = columns.cell(row, "sku").strip() or columns.cell(row, "name").strip()
    if not kinds & {"simple", "variation"}:
        return f"line {line} {label!r}: type {', '.join(sorted(kinds))} holds no stock of its own"
    if kinds & {"virtual", "downloadable"}:
        return f"line {line} {label!r}: virtual or downloadable, no stock to count"
    return None


def _woo_item(sku: str, row: list[str], kinds: set[str], columns: _WooColumns, where: str,
              problems: list[str]) -> CatalogueItem | None:
    """The row's product; ``None``, with the problem recorded, for a bad Stock."""
    name, variant = columns.cell(row, "name"), ""
    if "variation" in kinds:
        name = columns.parent_names.get(columns.cell(row, "parent").strip(), name)
        values = [_cell(row, index).strip() for index in columns.attributes]
        variant = " / ".join(value for value in values if value)
    name = _text(name, what="name", where=where, problems=problems)
    variant = _text(variant, what="variant", where=where, problems=problems)
    managed = _cell(row, columns.managed).strip().lower() not in ("0", "no", "false", "")
    raw_stock = _cell(row, columns.stock).strip()
    qty: int | None = None
    # WooCommerce leaves Stock blank when stock is not managed, and writes "parent"
    # for a variation whose stock its parent manages: no quantity of its own.
    if raw_stock.lower() != "parent" and (columns.managed is None or managed):
        try:
            qty = parse_quantity(raw_stock, what="Stock", minimum=0)
        except ValueProblem as exc:
            problems.append(f"{where}: {exc}")
            return None
    return CatalogueItem(sku=sku, name=name, variant=variant, qty=qty)


def _first_listing(sku: str, line: int, where: str, first_line: dict[str, int],
                   problems: list[str]) -> bool:
    """Record where ``sku`` is first listed; a second listing is a problem."""
    if sku in first_line:
        problems.append(f"{where}: SKU listed again (first on line {first_line[sku]}); "
                        "keep one line per SKU")
        return False
    first_line[sku] = line
    return True
