"""The pure core's vocabulary: stock items, snapshots, and the rules for SKUs,
quantities and shop URLs. No I/O, no Excel library, no HTTP.
"""

from __future__ import annotations

import datetime as _dt
import functools
import ipaddress
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.i18n import _

MAX_SKU_LENGTH = 100
MAX_NAME_LENGTH = 500
MAX_URL_LENGTH = 2000
_SPACE = re.compile(r"\s")
MAX_LEVEL = 1_000_000_000
"""The largest level or change xlstock accepts; anything larger is a typing slip."""
MAX_SKUS = 1_048_575
"""The most SKUs a shop may list: the rows of one Excel sheet below its header (Excel's
last row is 1,048,576). The one limit of the sheet reader and writer
(:data:`xlstock.workbook.base.MAX_ROWS`), the stock service's answers and the catalogue
loader, so that whatever one side accepts the other can hold."""


def too_many_skus(skus: int) -> str:
    """Why a shop cannot hold ``skus`` products (one Excel sheet keeps their levels), to
    follow "... lists"; ``""`` when it can."""
    if skus <= MAX_SKUS:
        return ""
    return _("{skus:n} SKUs, more than the {most:n} an Excel sheet holds below its header "
             "(row {last:n} is Excel's last), so no workbook could keep their levels; nothing "
             "was loaded. Split the products into shops of at most {most:n} SKUs", skus=skus,
             most=MAX_SKUS, last=MAX_SKUS + 1)


MAX_VERSION_LENGTH = 200
"""The longest version tag (ETag) xlstock takes from a stock service; the reference
service's are a dozen characters."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
"""Characters refused in SKUs and replaced in names: C0/C1 controls, line separators,
and what XML cannot hold (lone surrogates, U+FFFE, U+FFFF): such a cell would make
the saved workbook unreadable."""


@dataclass(slots=True, unsafe_hash=True)  # a value, never changed; not frozen: 2x faster to make
class StockItem:
    """One product or option as the shop knows it: its key, names and live level."""

    sku: str
    name: str = ""
    variant: str = ""
    qty: int = 0


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """A product as a catalogue file lists it. ``qty`` is ``None`` when the file gives no
    quantity (a WooCommerce export without stock, or with stock not managed): a new
    product then starts at 0 and an existing one keeps its level."""

    sku: str
    name: str = ""
    variant: str = ""
    qty: int | None = None


class LevelItems(Mapping[str, StockItem]):
    """The items of a shop known by their levels alone (Preview and Publish need no
    names): a :class:`StockItem` is made on each look-up instead of held for every SKU.
    At 1,000,000 SKUs the items are then one dict of levels (about 40 MB) instead of
    that dict, a million items and another dict (about 160 MB). ``named`` holds the
    items whose names are known (each also in ``levels``, at the same level)."""

    __slots__ = ("levels", "named")

    def __init__(self, levels: Mapping[str, int],
                 named: Mapping[str, StockItem] | None = None) -> None:
        self.levels = levels
        self.named: Mapping[str, StockItem] = named or {}

    def __getitem__(self, sku: str) -> StockItem:
        item = self.named.get(sku)
        if item is not None:
            return item
        return StockItem(sku, qty=self.levels[sku])

    def __contains__(self, sku: object) -> bool:
        return sku in self.levels

    def __iter__(self) -> Iterator[str]:
        return iter(self.levels)

    def __len__(self) -> int:
        return len(self.levels)

    def __repr__(self) -> str:
        return f"LevelItems({len(self.levels)} levels, {len(self.named)} named)"


@dataclass(frozen=True)
class Snapshot:
    """The live levels of one shop at one moment, with the service's version tag
    (an opaque ``ETag``) that a conditional publish must quote."""

    shop: str
    version: str
    items: Mapping[str, StockItem] = field(default_factory=dict)
    generated_at: str = ""
    notices: tuple[str, ...] = ()
    """What the shop holds that could not be read as a level (a platform's variants
    without a SKU, SKUs on two variants...): said to the merchant, never guessed."""
    low_at: Mapping[str, int] = field(default_factory=dict)
    """The low-stock thresholds the platform keeps (WooCommerce's ``low_stock_amount``):
    Sync fills an empty Low at with them, never over the merchant's own."""
    left_out: Mapping[str, str] = field(default_factory=dict)
    """SKU -> why the shop has it but its level cannot be kept (a platform's item whose
    stock is not tracked, a SKU on two variants...): the fix, told on a sheet row that
    names it instead of "not in the shop"."""
    since: str | None = None
    """``None``: ``items`` is the whole shop (the general case, every connector's). A
    version tag: ``items`` holds only the products changed (added, renamed, moved)
    since that version, and ``removed`` those the shop stopped selling since; every
    other product is as it was at that version (``GET /v1/stock?since=``)."""
    removed: tuple[str, ...] = ()

    @property
    def whole(self) -> bool:
        """Whether ``items`` lists every product of the shop."""
        return self.since is None

    def levels(self) -> dict[str, int]:
        if isinstance(self.items, LevelItems):
            return dict(self.items.levels)
        return {sku: item.qty for sku, item in self.items.items()}

    def level_map(self) -> Mapping[str, int]:
        """SKU -> live level, to read only: the levels themselves when the items are
        :class:`LevelItems` (no copy of a million entries, and a dict's own look-up: a
        read-only proxy costs 0.3 s a million), else :meth:`levels`."""
        if isinstance(self.items, LevelItems):
            return self.items.levels
        return self.levels()

    def with_levels(self, levels: Mapping[str, int], version: str | None = None) -> Snapshot:
        """This snapshot with the levels of some SKUs replaced (the items a publish found
        moved), and the version tag they were seen at."""
        if isinstance(self.items, LevelItems):
            known_levels = {**self.items.levels, **levels}
            named = {sku: item for sku, item in self.items.named.items() if sku not in levels}
            named.update((sku, replace(self.items.named[sku], qty=qty))
                         for sku, qty in levels.items() if sku in self.items.named)
            return replace(self, items=LevelItems(known_levels, named),
                           version=version or self.version)
        items = dict(self.items)
        for sku, qty in levels.items():
            known = items.get(sku)
            items[sku] = replace(known, qty=qty) if known is not None else StockItem(sku, qty=qty)
        return replace(self, items=items, version=version or self.version)


class ValueProblem(ValueError):
    """A cell value broke a rule; the message says what is wrong and the fix."""

    @property
    def message(self) -> str:
        """The message as raised (an :class:`xlstock.i18n.Message`, which a workbook
        writes in its own language; ``str(exc)`` is plain text)."""
        return self.args[0] if self.args else ""


def has_control_characters(text: str) -> bool:
    return bool(_CONTROL.search(text))


def loose_key(text: str) -> str:
    """How names a merchant types are compared: case, accents and the spaces around and
    between words ignored ("Nouveau  niveau", "NOUVEAU NIVEAU", "Recu"; a location
    "entrepot principal" for "Entrepôt principal")."""
    text = " ".join(text.split()).casefold()
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))


def sku_as_sent(text: str) -> str:
    """A SKU as the stock service keys what it is sent: Unicode NFC, compared exactly
    (surrounding spaces are part of it). ``"Cafe\u0301"`` (NFD, as a Mac may type it)
    and ``"Caf\u00e9"`` are one SKU."""
    if text.isascii():  # most SKUs: NFC already
        return text
    return unicodedata.normalize("NFC", text)


def sku_key(text: str) -> str:
    """The form in which SKUs typed by people (a cell, a catalogue line) are compared:
    :func:`sku_as_sent` without surrounding spaces. What it returns, the stock service
    keys as it is."""
    return sku_as_sent(text).strip()


_HOLDS_CONTROL = "holds a control character (line break, tab...)"


def usual_skus(skus: Sequence[str]) -> bool:
    """Whether every SKU of a column is in the usual form, which :func:`sku_key` leaves
    as it is and :func:`sku_problem` accepts: printable ASCII, 1 to
    :data:`MAX_SKU_LENGTH` characters, no surrounding spaces. Checked a column at a
    time, in C loops (100,000 SKUs in a few milliseconds); ``False`` sends the caller
    to the SKU-by-SKU rule, which names what is wrong."""
    if not skus:
        return True
    joined = "".join(skus)
    if not (joined.isascii() and joined.isprintable()):
        return False
    if min(map(len, skus)) == 0 or max(map(len, skus)) > MAX_SKU_LENGTH:
        return False
    return " " not in joined or not any(sku[0] == " " or sku[-1] == " " for sku in skus)


def usual_sku_cells(cells: Sequence[Any]) -> bool:
    """Whether every non-blank cell of a column holds a SKU in the usual form
    (:func:`usual_skus`), which is then its own clean form: the column needs no
    cell-by-cell rule."""
    present = [value for value in cells if value is not None]
    return {type(value) for value in present} <= {str} and usual_skus(present)


def sku_problem(sku: str) -> str | None:
    """What makes a SKU (in :func:`sku_as_sent` or :func:`sku_key` form) unusable, or
    ``None``: a control character, nothing but spaces, longer than
    :data:`MAX_SKU_LENGTH`. The one SKU rule of the workbook, the stock file and the
    stock service."""
    if sku and len(sku) <= MAX_SKU_LENGTH and sku.isascii() and sku.isprintable() \
            and not sku.isspace():
        return None
    if has_control_characters(sku):
        return _HOLDS_CONTROL
    if not sku.strip():
        return "is empty"
    if len(sku) > MAX_SKU_LENGTH:
        return f"is {len(sku):,} characters long; the limit is {MAX_SKU_LENGTH}"
    return None


def version_problem(version: str) -> str | None:
    """What makes a version tag from a stock service unusable, or ``None``: empty,
    longer than :data:`MAX_VERSION_LENGTH`, or holding anything but the printable ASCII
    an HTTP entity tag is made of."""
    if not version:
        return "is empty"
    if len(version) > MAX_VERSION_LENGTH:
        return f"is {len(version):,} characters long; the limit is {MAX_VERSION_LENGTH}"
    if not all("\x20" < char < "\x7f" for char in version):
        return "holds characters an HTTP version tag (ETag) cannot"
    return None


def clean_sku(value: Any) -> str | None:
    """The SKU a cell holds, as text, or ``None`` for a blank cell.

    Rules (documented in docs/reliability.md): surrounding spaces are dropped; a
    number typed without text format becomes its digits (``123.0`` -> ``"123"``);
    case is kept and matters; control characters, formulas without a cached value,
    errors and over-long SKUs are refused.
    """
    if type(value) is str and value.isascii() and value.isprintable():
        # The usual SKU: printable ASCII holds no control character and is NFC already.
        text = value.strip()
        if len(text) <= MAX_SKU_LENGTH:
            return text or None
    value = _sku_value(value)
    if value is None:
        return None
    text = sku_key(str(value))
    if not text:
        return None
    problem = sku_problem(text)
    if problem is _HOLDS_CONTROL:
        raise ValueProblem(_("SKU holds a control character (line break, tab...); retype it"))
    if problem and len(text) > MAX_SKU_LENGTH:
        raise ValueProblem(_("SKU is {length:n} characters long; the limit is {limit}",
                             length=len(text), limit=MAX_SKU_LENGTH))
    return text


def _sku_value(value: Any) -> Any:
    """A SKU cell's value as text or a whole number: a formula's saved result, a
    float's digits; refused for what cannot be a product key (an error, TRUE, a date)."""
    if isinstance(value, Formula):
        if value.cached is NO_CACHE:
            raise ValueProblem(_(
                "SKU is a formula with no saved result; open and save the file in Excel or "
                "LibreOffice, or type the SKU as text"
            ))
        value = value.cached
    if isinstance(value, CellError):
        raise ValueProblem(_("SKU is the error {code}; type the SKU as text", code=value.code))
    if isinstance(value, bool):
        raise ValueProblem(_("SKU is TRUE; type the SKU as text") if value else
                           _("SKU is FALSE; type the SKU as text"))
    if isinstance(value, (_dt.date, _dt.time, _dt.timedelta)):
        raise ValueProblem(_("SKU is a date; format column SKU as Text and type it again"))
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueProblem(_("SKU {value} is not a product key; type the SKU as text",
                                 value=repr(value)))
        value = int(value)
    return value


def parse_quantity(value: Any, *, what: str, minimum: int | None = None) -> int | None:
    """A whole number from a cell, or ``None`` for a blank one.

    Accepted: integers, floats with no fractional part (``12.0``), text holding a whole
    number (``" 12 "``, as CSV imports leave it), and a formula's cached result.
    Refused with a message naming the fix: fractions, booleans, dates, error values,
    formulas without a cached result, numbers beyond one billion, and values below
    ``minimum``.
    """
    if value is None:  # most rows have no edit
        return None
    number = _number_of(_quantity_value(value, what), what)
    if number is None:
        return None
    if abs(number) > MAX_LEVEL:
        if abs(number) < 10**20:
            raise ValueProblem(_("{what} {value} is beyond {limit:n}; check for a typing slip",
                                 what=what, value=number, limit=MAX_LEVEL))
        raise ValueProblem(_("{what} is beyond {limit:n}; check for a typing slip",
                             what=what, limit=MAX_LEVEL))
    if minimum is not None and number < minimum:
        raise ValueProblem(_("{what} {value} is below {minimum}; type {minimum} or more",
                             what=what, value=number, minimum=minimum))
    return int(number)


def _quantity_value(value: Any, what: str) -> Any:
    """A quantity cell's value, a formula's saved result for a formula; refused for what
    cannot be a number (an error, TRUE, a date)."""
    if isinstance(value, Formula):
        if value.cached is NO_CACHE:
            raise ValueProblem(_(
                "{what} is a formula with no saved result; open and save the file in Excel or "
                "LibreOffice so that its value is stored, or type the number", what=what
            ))
        value = value.cached
    if isinstance(value, CellError):
        raise ValueProblem(_("{what} is the error {code}; type a whole number", what=what,
                             code=value.code))
    if isinstance(value, bool):  # named as the merchant's spreadsheet shows it (VRAI)
        raise ValueProblem(_("{what} is TRUE; type a whole number", what=what) if value else
                           _("{what} is FALSE; type a whole number", what=what))
    if isinstance(value, (_dt.date, _dt.time, _dt.timedelta)):
        raise ValueProblem(_("{what} is a date; format the cell as Number and type a whole "
                             "number", what=what))
    return value


def _number_of(value: Any, what: str) -> int | None:
    """The whole number ``value`` holds (text, an int, a float without a fraction), or
    ``None`` for blank text."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().replace("\u00a0", "")
        if not text:
            return None
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueProblem(_("{what} {value} is not a whole number; type one", what=what,
                                 value=repr(value.strip()[:40])))
        if len(text.lstrip("+-").lstrip("0")) > 10:
            raise ValueProblem(_("{what} is beyond {limit:n}; check for a typing slip",
                                 what=what, limit=MAX_LEVEL))
        return int(text)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueProblem(_("{what} is not a number; type a whole number", what=what))
        if value != int(value):
            raise ValueProblem(_("{what} {value} is not a whole number; type one", what=what,
                                 value=format(value, "g")))
        return int(value)
    raise ValueProblem(_("{what} {value} is not a whole number; type one", what=what,
                         value=repr(str(value)[:40])))


def clean_text(value: Any, *, limit: int = MAX_NAME_LENGTH) -> str:
    """Shop-supplied text made safe to show: control characters become spaces, the
    length is capped. It is written to cells as literal text, never as a formula."""
    if value is None:
        return ""
    text = str(value)
    if not text.isprintable():  # printable text holds none of _CONTROL: most names
        text = _CONTROL.sub(" ", text)
    return text.strip()[:limit]


def clean_texts(values: Sequence[Any], *, limit: int = MAX_NAME_LENGTH) -> list[str]:
    """:func:`clean_text` of each value; a column of printable text (most names) is
    told so in one C loop and only stripped and cut."""
    if {type(value) for value in values} <= {str} and "".join(values).isprintable():
        return [value.strip()[:limit] for value in values]
    return [clean_text(value, limit=limit) for value in values]


def normalise_shop_url(url: str) -> str:
    """The canonical form of a shop's address: ``https://shop.example/path``.

    Scheme and host lower-cased; default port, a trailing dot after the host (the
    DNS root: ``shop.example.`` is ``shop.example``) and trailing slash dropped; no
    query or fragment. Addresses that differ only in those are one shop. Raises
    :class:`ValueProblem` when it is not an http(s) URL.
    """
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return _normalise_shop_url(url)
    return _normalised(url)


@functools.lru_cache(maxsize=4096)
def _normalised(url: str) -> str:
    """:func:`normalise_shop_url` remembered: the service normalises the shop of every
    request (a bad address raises, and is not remembered)."""
    return _normalise_shop_url(url)


def _normalise_shop_url(url: str) -> str:
    text = (url or "").strip()
    shown = text[:200].encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_URL_LENGTH:
        raise ValueProblem(_(
            "shop URL {url}... is {length:n} characters long; the limit is {limit:n}",
            url=repr(shown), length=len(text), limit=MAX_URL_LENGTH
        ))
    try:
        parts, port = split_web_address(text)
    except ValueError as exc:  # a port out of range, a broken [IPv6] host
        raise ValueProblem(_(
            "shop URL {url} is not a valid web address ({problem}); write it like "
            "https://shop.example", url=repr(shown), problem=str(exc)
        )) from exc
    if not is_web_address(parts):
        raise ValueProblem(_(
            "shop URL {url} is not a web address; write it like https://shop.example",
            url=repr(shown)
        ))
    if has_control_characters(text) or _SPACE.search(text):
        raise ValueProblem(_(
            "shop URL {url} holds spaces or control characters; write it like "
            "https://shop.example", url=repr(shown)
        ))
    return join_web_address(parts, port, keep_default_port=False)


def split_web_address(text: str) -> tuple[SplitResult, int | None]:
    """``text`` split as a URL, with its port; :class:`ValueError` for a port out of
    range or a broken ``[IPv6]`` host (which ``urlsplit`` leaves to ``.port`` to find)."""
    parts = urlsplit(text)
    return parts, parts.port


def is_web_address(parts: SplitResult) -> bool:
    """True for an ``http`` or ``https`` URL that names a host."""
    return parts.scheme.lower() in ("http", "https") and bool(
        (parts.hostname or "").rstrip("."))


def join_web_address(parts: SplitResult, port: int | None, *, keep_default_port: bool) -> str:
    """The canonical form of a web address: scheme and host lower-cased, an IPv6 host
    in brackets, no user name, query, fragment, trailing dot after the host or trailing
    slash; the port kept unless it is the scheme's default (or 0) and
    ``keep_default_port`` is false."""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    default = not port or (scheme, port) in (("http", 80), ("https", 443))
    if port is not None and (keep_default_port or not default):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), "", ""))


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1, also written ``[::1]``,
    ``localhost.`` or IPv4-mapped (``::ffff:127.0.0.1``): this computer, where plain
    http is allowed and a listening service warns of nothing."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
