"""No input makes the stock service fail: random requests to every endpoint, against the
real service on loopback, each answered with a 2xx/3xx or a JSON 4xx carrying a code.

Hypothesis builds the requests: the method and path of every endpoint (and a few that do
not exist), shop URLs valid and broken, tokens good and bad, every header the protocol
reads with arbitrary values, and bodies from random bytes to nearly-right stock files
and orders (wrong types, lone surrogates, keys named twice, huge numbers). A second
test sends random bytes as the request itself.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xlstock.model import StockItem

ITEMS = [StockItem("A-1", "Hoodie", "Red", 50), StockItem("B-2", "Cap", "", 50),
         StockItem("00123", "Socks", "", 50)]
ENDPOINTS = [
    ("GET", "/v1/health"), ("GET", "/v1/stock"), ("HEAD", "/v1/stock"), ("PUT", "/v1/stock"),
    ("GET", "/v1/publishes/{key}"), ("POST", "/v1/orders"), ("GET", "/v1/storefront"),
    ("HEAD", "/v1/storefront"), ("GET", "/v1/history"), ("DELETE", "/v1/stock"),
    ("PATCH", "/v1/orders"), ("GET", "/v2/stock"), ("OPTIONS", "/v1/stock"), ("GET", "/"),
    ("POST", "/v1/publishes/{key}/undo"), ("GET", "/v1/publishes/{key}/undo"),
]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

text = st.text(max_size=40)
latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                               blacklist_characters="\x7f"), max_size=60)
numbers = st.one_of(st.sampled_from([50, 49, 1, 0]), st.integers(-3, 60), st.integers(),
                    st.floats(allow_nan=True),
                    st.sampled_from([10**30, -(10**30), 1e308, True, False, None, "5", [],
                                     {}]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)
skus = st.one_of(st.sampled_from(["A-1", "B-2", "00123", "NOPE", "", " ", "a\tb", "\ud800",
                                  "x" * 101, "A-1\u0301"]), text, json_values)


def _lines(shop_fields: bool) -> Any:
    line = st.fixed_dictionaries(
        {"sku": skus, "qty": numbers},
        optional={"from": numbers} if shop_fields else {"note": json_values},
    )
    return st.lists(st.one_of(line, json_values), max_size=5)


def _bodies(shop: str) -> Any:
    stock_file = st.fixed_dictionaries({
        "format": st.sampled_from(["xlstock.stock", "other", None]),
        "format_version": st.sampled_from([2, 2, 1, 3, "2", True, None]),
        "shop": st.sampled_from([shop, shop.upper() + "/", "https://else.example", "", 7]),
        "items": st.one_of(_lines(True), json_values),
    })
    order = st.fixed_dictionaries(
        {"lines": st.one_of(_lines(False), json_values)},
        optional={"reference": st.one_of(text, json_values)},
    )
    undo = st.fixed_dictionaries({}, optional={
        "confirm_partial": st.one_of(st.booleans(), json_values),
        "preview": st.one_of(st.booleans(), json_values)})
    as_json = st.one_of(stock_file, order, undo, json_values).map(
        lambda value: json.dumps(value).encode("utf-8")
    )
    tricky = st.sampled_from([
        b'{"lines":[{"sku":"\\ud800","qty":1}]}',
        b'{"lines":[{"sku":"A-1","qty":1}],"lines":[]}',
        b'{"format":"xlstock.stock","format_version":2,"shop":"' + shop.encode()
        + b'","items":[{"sku":"A-1","from":50,"qty":1,"qty":2}]}',
        b'[' * 100_000,
        b'{"lines":[{"sku":"A-1","qty":1' + b"0" * 5000 + b'}]}',
        b"\xff\xfe{}",
        b"",
    ])
    return st.one_of(as_json, st.binary(max_size=300), tricky)


def _mostly(valid: Any, other: Any) -> Any:
    """``valid`` about four times in five, else ``other`` or nothing (``None``): deep
    enough into each endpoint to reach its checks, wide enough to hit every refusal."""
    return st.sampled_from(["valid"] * 8 + ["other", "none"]).flatmap(
        lambda pick: valid if pick == "valid" else other if pick == "other" else st.none()
    )


def _requests(shop: str, token: str) -> Any:
    shops = st.one_of(
        st.sampled_from(["https://x.example:99999", "https://[::1", "http://[::1]:80/x",
                         "ftp://x.example", "https://", "", "https://x.example/\x00",
                         shop.upper(), "https://a b.example", "h" * 3000]),
        text,
    )
    headers = st.fixed_dictionaries({
        "Authorization": _mostly(st.just(f"Bearer {token}"), st.one_of(
            st.just("Bearer"), latin1.map(lambda value: "Bearer " + value), latin1)),
        "Content-Type": _mostly(st.just("application/json"), st.one_of(st.sampled_from([
            "application/json; charset=latin-1", "text/plain", "application/json; charset=",
            "application/json; charset=UTF-8", "multipart/form-data; boundary=x"]), latin1)),
        "Content-Encoding": _mostly(st.just("identity"), st.one_of(
            st.sampled_from(["gzip", "br", ""]), latin1)),
        "If-Match": st.one_of(st.none(), st.none(), st.sampled_from(
            ['""', "*", 'W/"x"', '"1.x"', '"', ","]), latin1),
        "If-None-Match": st.one_of(st.none(), st.sampled_from(['""', "*", '"1.x"', "W/"]),
                                   latin1),
        "Idempotency-Key": _mostly(st.uuids().map(str), latin1),
        "Accept-Encoding": _mostly(st.just("gzip"), st.one_of(
            st.sampled_from(["gzip;q=0", "*", "br"]), latin1)),
    }).map(lambda found: {name: value for name, value in found.items() if value is not None})
    params = st.fixed_dictionaries({
        "shop": _mostly(st.just(shop), shops),
        "limit": st.one_of(st.none(), st.integers(-5, 600).map(str), text),
        "before": st.one_of(st.none(), st.integers(-5, 10**15).map(str), text),
        "since": st.one_of(st.none(), st.sampled_from(["1.x", "0.", ".", "9" * 20 + ".x"]),
                           text),
    }).map(lambda found: {name: value for name, value in found.items() if value is not None})
    return st.tuples(st.sampled_from(ENDPOINTS), st.one_of(text, st.just("k")), params,
                     headers, _bodies(shop))


def _send(port: int, method: str, path: str, headers: dict[str, str],
          body: bytes) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1"))
        if method in ("PUT", "POST", "PATCH", "DELETE") or body:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def _check(method: str, status: int, headers: dict[str, str], body: bytes) -> None:
    assert status < 500, (status, body[:300])
    if status >= 400 and method != "HEAD":
        assert headers.get("content-type", "").startswith("application/json"), headers
        if headers.get("content-encoding", "").lower() == "gzip":  # the request took gzip
            body = gzip.decompress(body)
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str) and error["code"], error
        assert isinstance(error["message"], str) and error["message"], error


def test_no_request_to_any_endpoint_gets_a_5xx(stock_service, shop_factory):
    shop, token = shop_factory(ITEMS)
    published = requests.put(  # "k": a publish an undo can find (then, one undone)
        stock_service.url + "/v1/stock", params={"shop": shop}, timeout=30,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k",
                 "Content-Type": "application/json"},
        data=json.dumps({"format": "xlstock.stock", "format_version": 2, "shop": shop,
                         "items": [{"sku": "A-1", "from": 50, "qty": 60}]}))
    assert published.status_code == 200, published.text

    @FUZZ
    @given(_requests(shop, token))
    def check(request: tuple[Any, ...]) -> None:
        (method, template), key, params, headers, body = request
        path = template.replace("{key}", quote(key, safe=""))
        query = urlencode({name: value.encode("utf-8", "surrogatepass")
                           for name, value in params.items()})
        status, answer_headers, answer = _send(
            stock_service.port, method, path + ("?" + query if query else ""), headers,
            body if method not in ("GET", "HEAD") or len(body) < 50 else b"",
        )
        _check(method, status, answer_headers, answer)

    check()


def test_random_bytes_as_a_request_never_get_a_5xx(stock_service):
    heads = st.one_of(
        st.binary(min_size=1, max_size=200),
        st.tuples(st.sampled_from([b"GET", b"PUT", b"POST", b"HEAD", b"G\x00T", b""]),
                  st.binary(max_size=40),
                  st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b""]),
                  st.lists(st.binary(max_size=40), max_size=4))
        .map(lambda t: t[0] + b" /v1/stock?" + t[1] + b" " + t[2] + b"\r\n"
             + b"".join(line + b"\r\n" for line in t[3]) + b"\r\n"),
    )

    @FUZZ
    @given(heads)
    def check(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", stock_service.port), timeout=30) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                received += chunk
        if not received:
            return  # nothing that reads as a request: the connection is closed
        head, _, rest = received.partition(b"\r\n\r\n")  # the first answer
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
        method = "HEAD" if data.lstrip().startswith(b"HEAD ") else "GET"
        _check(method, status, headers, rest[:int(headers.get("content-length", "0"))])
        if status >= 400:
            assert headers.get("content-type", "").startswith("application/json"), head

    check()


# --- the account pages ----------------------------------------------------------------

ACCOUNT_PAGES = ["/account/", "/account/sign-in", "/account/sign-out", "/account/password",
                 "/account/stock", "/account/profile", "/account/services",
                 "/account/tokens", "/account/tokens/{token}", "/account/tokens/{token}/revoke",
                 "/account/history", "/account/static/account.css", "/account/{text}"]
ACCOUNT_FIELDS = ["csrf_token", "email", "password", "new_password", "repeat_password",
                  "shop_url", "shop_token", "low_stock_at", "stock_updates"]
ACCOUNT_PARAMS = ["lang", "search", "after", "before", "last", "done"]
PAGE_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
odd_values = st.one_of(
    st.sampled_from(["²", "٣", "１２", "-1", "0", "1" * 30, "999999999999", "1e3", " 7 ",
                     "on", "fr", "en", "https://x.example.", "https://[::1", "\x00", "\ud800",
                     "%", "_", "\\", "<script>", "saved", "claimed", "1"]),
    st.text(max_size=30),
)


def _account_requests() -> Any:
    return st.tuples(
        st.sampled_from(["GET", "POST", "POST", "HEAD", "PUT"]),
        st.sampled_from(ACCOUNT_PAGES),
        st.dictionaries(st.sampled_from(ACCOUNT_PARAMS), odd_values, max_size=3),
        st.dictionaries(st.sampled_from(ACCOUNT_FIELDS), odd_values, max_size=5),
        st.sampled_from(["session", "session", "random", "none"]),
        st.sampled_from(["right", "right", "random", "none"]),
        odd_values,
    )


def _check_page(status: int, body: bytes) -> None:
    assert status < 500, (status, body[:500])


def _fuzz_account_pages(stock_service: Any, full: bool, monkeypatch: Any) -> None:
    from support.accountkit import Merchant

    from xlstock.server.accounts import AccountStore

    accounts = AccountStore(stock_service.store)
    forget_failed_sign_ins(stock_service)  # those of other tests from this address
    merchant = Merchant(stock_service.url, accounts,
                        f"fuzz-{uuid.uuid4().hex[:8]}@shop.example")
    merchant.start(f"https://fuzz-{uuid.uuid4().hex[:8]}.example")
    merchant.create_token()
    token_id = merchant.token_ids()[0]
    password = merchant.password
    form_page = requests.get(stock_service.url + "/account/sign-in", timeout=30)
    form_cookie = form_page.cookies.get("xlstock_form")
    form_csrf = form_page.text.split('name="csrf_token" value="')[1].split('"')[0]
    addresses = iter(range(10**6))

    def new_session() -> tuple[str, str]:
        outcome = accounts.sign_in(merchant.email, password, f"fuzz-{next(addresses)}")
        assert outcome.session_id is not None, "the fuzz left the merchant signed out"
        found = accounts.session(outcome.session_id)
        assert found is not None
        return outcome.session_id, found.csrf

    session_id, csrf = new_session()

    @PAGE_FUZZ
    @given(_account_requests())
    @example(("GET", "/account/history", {"before": "²"}, {}, "session", "right", ""))
    @example(("POST", "/account/services", {}, {"low_stock_at": "²"}, "session", "right", ""))
    @example(("POST", "/account/sign-in", {}, {"email": "a@b.example", "password": "x"},
              "none", "right", ""))
    @example(("POST", "/account/tokens", {}, {}, "session", "right", ""))
    def check(request: tuple[Any, ...]) -> None:
        nonlocal session_id, csrf
        method, page, params, form, who, proof, text = request
        if accounts.session(session_id) is None:
            session_id, csrf = new_session()
        path = page.replace("{token}", token_id).replace(
            "{text}", quote(text.encode("utf-8", "surrogatepass"), safe=""))
        cookies = {"xlstock_form": form_cookie or ""}
        if who == "session":
            cookies["xlstock_session"] = session_id
        elif who == "random":
            cookies["xlstock_session"] = "".join(
                ch for ch in text if ch.isascii() and (ch.isalnum() or ch in "-_")) or "x"
        data = dict(form)
        if proof == "right":
            data["csrf_token"] = form_csrf if page == "/account/sign-in" else csrf
        elif proof == "none":
            data.pop("csrf_token", None)
        body = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in data.items()})
        query = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in params.items()})
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
                   "Content-Type": "application/x-www-form-urlencoded"}
        status, _, answer = _send(stock_service.port, method,
                                  path + ("?" + query if query else ""), headers,
                                  body.encode("ascii") if method in ("POST", "PUT") else b"")
        _check_page(status, answer)

    try:
        if full:
            from test_account_guards import full_database

            with full_database(monkeypatch):
                check()
        else:
            check()
    finally:
        forget_failed_sign_ins(stock_service)  # the fuzz's own: later tests sign in


def forget_failed_sign_ins(stock_service: Any) -> None:
    """The sign-in limit counts failures per address: every test signs in from
    127.0.0.1 to the session's one service."""
    with stock_service.store.transaction(write=True) as conn:
        conn.execute("DELETE FROM sign_in_failures")


def test_no_request_to_any_account_page_gets_a_5xx(stock_service, monkeypatch):
    """Random forms, links and cookies on every account page, signed in or not, with the
    right CSRF token or not: never a 5xx (on main `?before=²` on History and
    `low_stock_at=²` on Services answered an HTML 500)."""
    _fuzz_account_pages(stock_service, False, monkeypatch)


def test_no_account_page_gets_a_5xx_with_the_database_full(stock_service, backend,
                                                            monkeypatch):
    """The same requests while every write fails as on a full disk (SQLite's
    ``database or disk is full``, at the storage layer): on main the sign-in page
    answered 500."""
    if backend != "sqlite":
        pytest.skip("the full-disk failpoint is SQLite's")
    _fuzz_account_pages(stock_service, True, monkeypatch)
