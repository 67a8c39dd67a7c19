"""The cell rules of the pure core: SKUs, quantities, shop text and shop URLs.

Each hostile cell of issue 5 point 3 is either accepted by a rule of docs/rules.md
(the expected value is checked) or refused with a message that says what to do.
"""

from __future__ import annotations

import datetime as dt
import decimal
import unicodedata

import pytest

from xlstock.cells import NO_CACHE, CellError, Formula
from xlstock.model import (
    MAX_LEVEL,
    MAX_NAME_LENGTH,
    MAX_SKU_LENGTH,
    Snapshot,
    StockItem,
    ValueProblem,
    clean_sku,
    clean_text,
    has_control_characters,
    normalise_shop_url,
    parse_quantity,
)

# --- SKUs -------------------------------------------------------------------------------

SKU_ACCEPTED = [
    pytest.param("A-1", "A-1", id="plain text"),
    pytest.param("  A-1  ", "A-1", id="stray spaces stripped"),
    pytest.param("\tA-1\n", "A-1", id="stray tab and line break at the ends stripped"),
    pytest.param("\u00a0A-1\u00a0", "A-1", id="non-breaking spaces at the ends stripped"),
    pytest.param("a-1", "a-1", id="case kept"),
    pytest.param("Red shirt / XL", "Red shirt / XL", id="inner spaces kept"),
    pytest.param("00123", "00123", id="text with leading zeros kept"),
    pytest.param(123, "123", id="integer becomes its digits"),
    pytest.param(123.0, "123", id="whole float becomes its digits"),
    pytest.param(0, "0", id="zero"),
    pytest.param(-5, "-5", id="negative integer kept as typed"),
    pytest.param(1e15, "1000000000000000", id="big whole float as digits, no exponent"),
    pytest.param("Cafe\u0301", "Caf\u00e9", id="decomposed accent normalised to NFC"),
    pytest.param("x" * MAX_SKU_LENGTH, "x" * MAX_SKU_LENGTH, id="exactly the length limit"),
    pytest.param(Formula('="A-"&1', "A-1"), "A-1", id="formula read through its cached value"),
    pytest.param(Formula("=123", 123.0), "123", id="formula with a cached number"),
    pytest.param("=HYPERLINK(\"x\")", '=HYPERLINK("x")', id="text that looks like a formula"),
]


@pytest.mark.parametrize(("value", "expected"), SKU_ACCEPTED)
def test_clean_sku_accepts(value: object, expected: str) -> None:
    assert clean_sku(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "\u00a0", Formula('=""', None), Formula('=""', "")],
    ids=["None", "empty", "spaces", "nbsp", "formula cached None", "formula cached empty"],
)
def test_clean_sku_blank_is_none(value: object) -> None:
    assert clean_sku(value) is None


SKU_REFUSED = [
    pytest.param(Formula("=A1", NO_CACHE), "formula with no saved result", id="formula no cache"),
    pytest.param(CellError("#N/A"), "SKU is the error #N/A", id="error value"),
    pytest.param(Formula("=NA()", CellError("#N/A")), "the error #N/A", id="formula cached error"),
    pytest.param(True, "SKU is TRUE", id="boolean true"),
    pytest.param(False, "SKU is FALSE", id="boolean false"),
    pytest.param(dt.date(2024, 3, 1), "SKU is a date", id="date"),
    pytest.param(dt.datetime(2024, 3, 1, 12, 0), "SKU is a date", id="datetime"),
    pytest.param(dt.time(12, 30), "SKU is a date", id="time"),
    pytest.param(dt.timedelta(hours=1), "SKU is a date", id="duration"),
    pytest.param(12.5, "SKU 12.5 is not a product key", id="fractional number"),
    pytest.param(float("nan"), "is not a product key", id="nan"),
    pytest.param(float("inf"), "is not a product key", id="infinity"),
    pytest.param("A\tB", "control character", id="inner tab"),
    pytest.param("A\nB", "control character", id="inner line break"),
    pytest.param("A\x00B", "control character", id="NUL"),
    pytest.param("A\x1bB", "control character", id="escape"),
    pytest.param("A\x7fB", "control character", id="DEL"),
    pytest.param("A\x85B", "control character", id="C1 next line"),
    pytest.param("A\u2028B", "control character", id="line separator"),
    pytest.param(
        "x" * (MAX_SKU_LENGTH + 1),
        f"SKU is {MAX_SKU_LENGTH + 1} characters long; the limit is {MAX_SKU_LENGTH}",
        id="one over the length limit",
    ),
    pytest.param("x" * 100_000, "characters long", id="far over the length limit"),
]


@pytest.mark.parametrize(("value", "message"), SKU_REFUSED)
def test_clean_sku_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueProblem, match=None) as caught:
        clean_sku(value)
    assert message in str(caught.value)


def test_clean_sku_messages_say_what_to_do() -> None:
    for value in [Formula("=A1", NO_CACHE), CellError("#REF!"), True, dt.date(2024, 1, 1),
                  12.5, "A\tB"]:
        with pytest.raises(ValueProblem) as caught:
            clean_sku(value)
        text = str(caught.value)
        assert any(word in text for word in ("type", "retype", "save")), text


def test_clean_sku_is_idempotent_on_its_own_output() -> None:
    for value, _ in [(p.values[0], p.values[1]) for p in SKU_ACCEPTED]:
        once = clean_sku(value)
        assert clean_sku(once) == once


def test_clean_sku_length_limit_holds_after_normalisation() -> None:
    text = "\u0958" * MAX_SKU_LENGTH
    assert len(unicodedata.normalize("NFC", text)) > MAX_SKU_LENGTH
    with pytest.raises(ValueProblem, match="characters long"):
        clean_sku(text)


@pytest.mark.parametrize("bad", ["\ud800", "\udfff", "\ufffe", "\uffff"], ids=ascii)
def test_clean_sku_refuses_characters_xml_forbids(bad: str) -> None:
    with pytest.raises(ValueProblem):
        clean_sku(f"A{bad}")
    assert has_control_characters(f"A{bad}")


# --- quantities -------------------------------------------------------------------------

QUANTITY_ACCEPTED = [
    pytest.param(12, 12, id="integer"),
    pytest.param(0, 0, id="zero"),
    pytest.param(12.0, 12, id="whole float"),
    pytest.param(-0.0, 0, id="negative zero float"),
    pytest.param(-3, -3, id="negative integer"),
    pytest.param("12", 12, id="text"),
    pytest.param(" 12 ", 12, id="text with stray spaces"),
    pytest.param("+12", 12, id="text with plus sign"),
    pytest.param("-3", -3, id="negative text"),
    pytest.param("\u00a012\u00a0", 12, id="text with non-breaking spaces"),
    pytest.param("1\u00a0000", 1000, id="non-breaking space as thousands separator"),
    pytest.param("007", 7, id="text with leading zeros"),
    pytest.param("\uff11\uff12", 12, id="full-width digits"),
    pytest.param(MAX_LEVEL, MAX_LEVEL, id="the largest level"),
    pytest.param(-MAX_LEVEL, -MAX_LEVEL, id="the largest removal"),
    pytest.param(float(MAX_LEVEL), MAX_LEVEL, id="the largest level as float"),
    pytest.param(Formula("=5+7", 12), 12, id="formula with cached integer"),
    pytest.param(Formula("=5+7", 12.0), 12, id="formula with cached float"),
    pytest.param(Formula('="12"', " 12 "), 12, id="formula with cached text"),
]


@pytest.mark.parametrize(("value", "expected"), QUANTITY_ACCEPTED)
def test_parse_quantity_accepts(value: object, expected: int) -> None:
    result = parse_quantity(value, what="Received")
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "\u00a0", Formula('=""', None), Formula('=IF(A1,"","")', "")],
    ids=["None", "empty", "spaces", "nbsp", "formula cached None", "formula cached empty"],
)
def test_parse_quantity_blank_is_none(value: object) -> None:
    assert parse_quantity(value, what="Received") is None
    assert parse_quantity(value, what="New level", minimum=0) is None


QUANTITY_REFUSED = [
    pytest.param(12.5, "Received 12.5 is not a whole number", id="fraction"),
    pytest.param(0.1, "is not a whole number", id="small fraction"),
    pytest.param(-2.5, "Received -2.5 is not a whole number", id="negative fraction"),
    pytest.param("12.5", "Received '12.5' is not a whole number", id="fraction as text"),
    pytest.param("12.0", "'12.0' is not a whole number", id="whole float as text"),
    pytest.param("1,000", "'1,000' is not a whole number", id="comma thousands"),
    pytest.param("1 000", "'1 000' is not a whole number", id="space thousands"),
    pytest.param("1\u202f000", "is not a whole number", id="narrow no-break space thousands"),
    pytest.param("1e3", "'1e3' is not a whole number", id="exponent text"),
    pytest.param("twelve", "'twelve' is not a whole number", id="words"),
    pytest.param("12 boxes", "'12 boxes' is not a whole number", id="number and unit"),
    pytest.param("\u221212", "is not a whole number", id="unicode minus sign"),
    pytest.param("--3", "is not a whole number", id="double minus"),
    pytest.param(float("nan"), "Received is not a number", id="nan"),
    pytest.param(float("inf"), "Received is not a number", id="infinity"),
    pytest.param(float("-inf"), "Received is not a number", id="minus infinity"),
    pytest.param(True, "Received is TRUE", id="boolean true"),
    pytest.param(False, "Received is FALSE", id="boolean false"),
    pytest.param(dt.date(2024, 3, 1), "Received is a date", id="date"),
    pytest.param(dt.datetime(2024, 3, 1, 9, 30), "Received is a date", id="datetime"),
    pytest.param(dt.time(9, 30), "Received is a date", id="time"),
    pytest.param(dt.timedelta(days=2), "Received is a date", id="duration"),
    pytest.param(CellError("#N/A"), "Received is the error #N/A", id="#N/A"),
    pytest.param(CellError("#DIV/0!"), "Received is the error #DIV/0!", id="#DIV/0!"),
    pytest.param(Formula("=1/0", CellError("#DIV/0!")), "the error #DIV/0!",
                 id="formula cached error"),
    pytest.param(Formula("=A1*2", NO_CACHE), "Received is a formula with no saved result",
                 id="formula without cache"),
    pytest.param(Formula("=A1*2", 2.5), "2.5 is not a whole number", id="formula cached fraction"),
    pytest.param(MAX_LEVEL + 1, f"Received {MAX_LEVEL + 1} is beyond 1,000,000,000",
                 id="one beyond the largest level"),
    pytest.param(-MAX_LEVEL - 1, "is beyond 1,000,000,000", id="one beyond the largest removal"),
    pytest.param(1e12, "is beyond 1,000,000,000", id="huge float"),
    pytest.param(1e300, "is beyond 1,000,000,000", id="enormous float"),
    pytest.param("99999999999", "is beyond 1,000,000,000", id="huge number as text"),
    pytest.param(decimal.Decimal("12"), "is not a whole number", id="unexpected type"),
    pytest.param(b"12", "is not a whole number", id="bytes"),
]


@pytest.mark.parametrize(("value", "message"), QUANTITY_REFUSED)
def test_parse_quantity_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueProblem) as caught:
        parse_quantity(value, what="Received")
    assert message in str(caught.value)


def test_parse_quantity_names_the_column() -> None:
    with pytest.raises(ValueProblem, match="^New level "):
        parse_quantity("x", what="New level", minimum=0)


@pytest.mark.parametrize("value", [-1, "-1", -1.0, -MAX_LEVEL], ids=str)
def test_parse_quantity_minimum(value: object) -> None:
    with pytest.raises(ValueProblem, match=r"New level -\d+ is below 0; type 0 or more"):
        parse_quantity(value, what="New level", minimum=0)
    assert parse_quantity(value, what="Received") == int(value)  # type: ignore[call-overload]


def test_parse_quantity_long_text_is_quoted_short() -> None:
    with pytest.raises(ValueProblem) as caught:
        parse_quantity("y" * 10_000, what="Received")
    assert len(str(caught.value)) < 120


@pytest.mark.parametrize(
    "value", ["9" * 5000, 10**5000], ids=["5000 digits as text", "5000-digit integer"]
)
def test_parse_quantity_enormous_numbers_are_refused_not_crash(value: object) -> None:
    with pytest.raises(ValueProblem, match="beyond"):
        parse_quantity(value, what="Received")


# --- shop text --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("T-shirt", "T-shirt"),
        ("  T-shirt  ", "T-shirt"),
        ("Red\nXL", "Red XL"),
        ("Red\r\nXL", "Red  XL"),
        ("a\x00b\x07c\x1bd\x7fe\x9ff", "a b c d e f"),
        ("a\u2028b\u2029c", "a b c"),
        ("\x00\x01", ""),
        ('=HYPERLINK("http://evil","x")', '=HYPERLINK("http://evil","x")'),
        ("Caf\u00e9 \u2615 \U0001f600", "Caf\u00e9 \u2615 \U0001f600"),
        (42, "42"),
    ],
    ids=["None", "plain", "spaces", "line break", "CRLF", "C0 and C1 controls",
         "unicode line separators", "only controls", "formula-looking text is kept as text",
         "unicode", "number"],
)
def test_clean_text(value: object, expected: str) -> None:
    result = clean_text(value)
    assert result == expected
    assert not has_control_characters(result)


def test_clean_text_caps_length() -> None:
    assert clean_text("n" * 10 * MAX_NAME_LENGTH) == "n" * MAX_NAME_LENGTH
    assert clean_text("abcdef", limit=3) == "abc"
    assert clean_text("n" * MAX_NAME_LENGTH) == "n" * MAX_NAME_LENGTH


@pytest.mark.parametrize("bad", ["\ud800", "\udfff", "\ufffe", "\uffff"], ids=ascii)
def test_clean_text_output_is_valid_xml_text(bad: str) -> None:
    result = clean_text(f"Shirt{bad}XL")
    assert all(_xml_char(c) for c in result), ascii(result)


def _xml_char(c: str) -> bool:
    """The Char production of XML 1.0."""
    n = ord(c)
    return (
        n in (0x9, 0xA, 0xD)
        or 0x20 <= n <= 0xD7FF
        or 0xE000 <= n <= 0xFFFD
        or 0x10000 <= n <= 0x10FFFF
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("plain", False), ("tab\there", True), ("\x85", True), ("\u2029", True),
     ("caf\u00e9", False), ("\u00a0", False)],
)
def test_has_control_characters(text: str, expected: bool) -> None:
    assert has_control_characters(text) is expected


# --- shop URLs --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example", "https://shop.example"),
        ("https://shop.example/", "https://shop.example"),
        ("  HTTPS://Shop.Example/  ", "https://shop.example"),
        ("https://shop.example:443/", "https://shop.example"),
        ("http://shop.example:80", "http://shop.example"),
        ("https://shop.example:8443/", "https://shop.example:8443"),
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
        ("https://shop.example/Boutique/", "https://shop.example/Boutique"),
        ("https://shop.example/?utm=1#top", "https://shop.example"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("https://user@shop.example", "https://shop.example"),
    ],
)
def test_normalise_shop_url(url: str, expected: str) -> None:
    assert normalise_shop_url(url) == expected
    assert normalise_shop_url(expected) == expected


@pytest.mark.parametrize(
    "url", ["", "   ", "shop.example", "ftp://shop.example", "https://", "mailto:a@b.c",
            "javascript:alert(1)"]
)
def test_normalise_shop_url_refuses(url: str) -> None:
    with pytest.raises(ValueProblem, match="is not a web address; write it like https://"):
        normalise_shop_url(url)


# --- snapshot ---------------------------------------------------------------------------

def test_snapshot_levels() -> None:
    snap = Snapshot(
        shop="https://shop.example", version='"v1"',
        items={"A": StockItem("A", "Shirt", "Red", 3), "B": StockItem("B", qty=0)},
    )
    assert snap.levels() == {"A": 3, "B": 0}
    assert Snapshot(shop="s", version="v").levels() == {}
