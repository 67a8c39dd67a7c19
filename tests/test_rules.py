"""One rule, one place: the SKU rule, the shop-URL form and the loopback test that the
workbook, the stock file, the catalogue and the stock service all use (xlstock.model).

The properties pin that the workbook and the service give the same answer for one SKU;
the tables pin the differences that are meant: people's input (a cell, a catalogue line)
loses its surrounding spaces, the service's API compares what it is sent exactly."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlstock.errors import ServiceError, UsageError
from xlstock.model import (
    MAX_SKU_LENGTH,
    StockItem,
    ValueProblem,
    clean_sku,
    clean_text,
    clean_texts,
    is_loopback_host,
    normalise_shop_url,
    sku_key,
    sku_problem,
)
from xlstock.remote.client import check_service_url
from xlstock.server.documents import check_order
from xlstock.server.storage import _check_catalogue
from xlstock.stockfile import FORMAT_NAME, FORMAT_VERSION, snapshot_from_document

SHOP = "https://shop.example"
sku_texts = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from(" \t\u00a0\u0301e\u00e9"),
    max_size=MAX_SKU_LENGTH + 5,
)


def service_key(raw: str) -> tuple[str | None, str | None]:
    """The SKU the service keys for an order line ``raw``, or its problem."""
    checked = check_order({"lines": [{"sku": raw, "qty": 1}]})
    if checked.lines:
        return checked.lines[0].sku, None
    return None, checked.item_problems[0][1]["problem"]


def workbook_key(raw: str) -> tuple[str | None, str | None]:
    try:
        return clean_sku(raw), None
    except ValueProblem as exc:
        return None, str(exc)


def synced_key(raw: str) -> str:
    document = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "shop": SHOP,
                "items": [{"sku": raw, "qty": 1}]}
    return next(iter(snapshot_from_document(document, etag='"1"', source="the test").items))


@given(sku_texts)
def test_the_service_keys_what_the_workbook_keeps_as_it_is(raw):
    kept, _ = workbook_key(raw)
    if kept:
        assert service_key(kept) == (kept, None)
        assert synced_key(kept) == kept
        assert _check_catalogue([StockItem(raw)])[0].sku == kept


@given(sku_texts)
def test_for_a_sku_without_surrounding_spaces_workbook_and_service_agree(raw):
    text = unicodedata.normalize("NFC", raw).strip()
    in_workbook, workbook_problem = workbook_key(text)
    in_service, service_problem = service_key(text)
    assert in_workbook == (in_service if text else None)
    if workbook_problem:
        assert service_problem is not None
        assert workbook_problem.removeprefix("SKU ").removesuffix("; retype it") == \
            service_problem.removeprefix("item 1: sku ")


@given(sku_texts)
def test_the_key_is_the_same_whether_spaces_go_before_or_after_nfc(raw):
    assert sku_key(raw) == unicodedata.normalize("NFC", raw.strip())


@pytest.mark.parametrize(("raw", "in_workbook", "in_service"), [
    ("A-1", ("A-1", None), ("A-1", None)),
    ("Cafe\u0301", ("Caf\u00e9", None), ("Caf\u00e9", None)),
    (" A-1 ", ("A-1", None), (" A-1 ", None)),  # the API compares exactly: another SKU
    ("   ", (None, None), (None, "item 1: sku is empty")),
    ("\t", (None, None), (None, "item 1: sku holds a control character (line break, tab...)")),
    ("A\tB", (None, "SKU holds a control character (line break, tab...); retype it"),
     (None, "item 1: sku holds a control character (line break, tab...)")),
    ("x" * 1000, (None, "SKU is 1,000 characters long; the limit is 100"),
     (None, "item 1: sku is 1,000 characters long; the limit is 100")),
])
def test_where_workbook_and_service_differ_on_purpose(raw, in_workbook, in_service):
    assert workbook_key(raw) == in_workbook
    assert service_key(raw) == in_service


def test_a_catalogue_names_the_sku_problem():
    with pytest.raises(UsageError) as caught:
        _check_catalogue([StockItem("A\tB"), StockItem("x" * 101), StockItem(" ")])
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert "SKU 'A\\tB' holds a control character (line break, tab...)" in message
    assert f"SKU {'x' * 101!r} is 101 characters long; the limit is 100" in message
    assert "a product has an empty SKU" in message


def test_sync_refuses_a_sku_the_service_should_never_send():
    with pytest.raises(ServiceError, match="that holds a control character"):
        synced_key("A\nB")
    assert sku_problem("A\nB") == "holds a control character (line break, tab...)"


def test_the_api_refuses_bad_skus_with_4xx_json_naming_each(api):
    answer = api.order({"A-1\t": 1, " A-1": 1, "": 1})
    assert answer.status_code == 422
    assert answer.headers["Content-Type"].startswith("application/json")
    items = answer.json()["error"]["items"]
    assert {"sku": "A-1\t", "problem": "item 1: sku holds a control character (line break, "
            "tab...)"} in items
    assert {"sku": "", "problem": "item 3: sku is empty"} in items
    assert {"sku": " A-1", "problem": "unknown to the shop"} in items  # not A-1: exact


# --- shop URLs and the loopback host ----------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST", True), ("localhost.", True), ("127.0.0.1", True),
    ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
    (" 127.0.0.1 ", True), ("0.0.0.0", False), ("10.0.0.1", False), ("::", False),
    ("::ffff:10.0.0.1", False), ("example.com", False), ("localhost.example", False),
    ("", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(("url", "as_shop", "as_service"), [
    ("HTTPS://Shop.Example/", "https://shop.example", "https://shop.example"),
    ("https://shop.example:443/a/", "https://shop.example/a", "https://shop.example:443/a"),
    ("http://127.0.0.1:80", "http://127.0.0.1", "http://127.0.0.1:80"),
    ("http://[::1]:8765/x", "http://[::1]:8765/x", "http://[::1]:8765/x"),
    ("http://LocalHost:8765", "http://localhost:8765", "http://localhost:8765"),
    ("https://shop.example:0", "https://shop.example", "https://shop.example:0"),
])
def test_shop_and_service_addresses_share_one_canonical_form(url, as_shop, as_service):
    assert normalise_shop_url(url) == as_shop
    assert check_service_url(url) == as_service


@pytest.mark.parametrize("url", ["http://stock.example", "http://10.0.0.1:8765",
                                 "http://[::ffff:10.0.0.1]"])
def test_plain_http_to_another_computer_is_refused(url):
    with pytest.raises(UsageError, match="plain http:// to another computer"):
        check_service_url(url)


@pytest.mark.parametrize("url", ["http://localhost.:8765", "http://[::ffff:127.0.0.1]:8765",
                                 "http://127.0.0.2"])
def test_plain_http_to_this_computer_is_accepted(url):
    assert check_service_url(url).startswith("http://")


@pytest.mark.parametrize("url", ["https://shop.example:99999", "ftp://shop.example",
                                 "https://shop example", "x" * 2001])
def test_a_shop_url_that_is_not_a_web_address_is_refused_by_the_account_page_too(url):
    with pytest.raises(ValueProblem):
        normalise_shop_url(url)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=5), st.sampled_from(
    [" Hoodie ", "a\tb", "x\u0085y", "\u2028", "Caf\u00e9", "n" * 300]), st.none(),
    st.integers(0, 9)), max_size=6))
def test_a_column_of_names_is_cleaned_as_name_by_name(values: list[object]) -> None:
    assert clean_texts(values) == [clean_text(v) for v in values]
