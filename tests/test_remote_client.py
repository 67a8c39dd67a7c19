"""The stock service client against a real, misbehaving HTTP server on loopback."""

from __future__ import annotations

import gzip
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import keyring
import keyring.backend
import keyring.errors
import pytest
from support.faultserver import FakeStock, FaultServer, Reply, Seen, error_reply

from xlstock import __version__
from xlstock.cli.exits import EXIT_SERVICE, EXIT_USAGE, exit_status
from xlstock.errors import (
    OutcomeUnknown,
    ServiceRefused,
    ServiceUnreachable,
    StaleVersion,
    UsageError,
)
from xlstock.remote import Change, HistoryChange, HttpStockServiceClient, as_etag, check_service_url
from xlstock.remote.client import DEFAULT_MAX_BODY
from xlstock.stockfile import dumps

SHOP = "https://shop.example"
TOKEN = "tok-3f9a1c77e2b44d0a"

MakeClient = Callable[..., HttpStockServiceClient]


def stock_document(levels: dict[str, int], version: str = "v1", shop: str = SHOP) -> Any:
    return {
        "format": "xlstock.stock",
        "format_version": 2,
        "shop": shop,
        "version": version,
        "generated_at": "2026-11-27T10:00:00Z",
        "items": [
            {"sku": sku, "name": f"Product {sku}", "variant": "Red / XL", "qty": qty}
            for sku, qty in sorted(levels.items())
        ],
    }


def levels_reply(levels: dict[str, int] | None = None, etag: str = '"v1"', **kw: Any) -> Reply:
    return Reply(200, json=stock_document(levels or {"A-1": 5}), headers={"ETag": etag}, **kw)


def publish_ok(key: str, version: str = "v2", replayed: bool = False) -> Reply:
    body = {
        "key": key,
        "version": version,
        "published_at": "2026-11-27T10:05:00Z",
        "changes": [{"sku": "A-1", "before": 5, "after": 7}],
    }
    headers = {"ETag": f'"{version}"'}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Reply(200, json=body, headers=headers)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        yield fault_server


@pytest.fixture
def make_client(server: FaultServer) -> Iterator[MakeClient]:
    clients: list[HttpStockServiceClient] = []

    def make(**options: Any) -> HttpStockServiceClient:
        token = options.pop("token", TOKEN)
        settings: dict[str, Any] = {
            "timeout": (1.0, 2.0),
            "deadline": 4.0,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            "retry_after_cap": 0.2,
        }
        settings.update(options)
        client = HttpStockServiceClient(server.url, SHOP, token, **settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# ------------------------------------------------------------------ settings and secrets


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765",
        "http://127.9.8.7:1/",
        "http://localhost:8765",
        "http://[::1]:8765",
        "https://stock.example",
        "HTTPS://Stock.Example:8443/base/",
    ],
)
def test_accepted_service_urls(url: str) -> None:
    canonical = check_service_url(url)
    assert not canonical.endswith("/")
    assert canonical.split(":")[0] in ("http", "https")


def test_plain_http_to_another_computer_is_refused() -> None:
    with pytest.raises(UsageError, match="use https://") as caught:
        HttpStockServiceClient("http://stock.example:8765", SHOP, TOKEN)
    assert exit_status(caught.value) == EXIT_USAGE
    with pytest.raises(UsageError, match="use https://"):
        HttpStockServiceClient("http://10.0.0.1", SHOP, TOKEN)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1", "127.0.0.1:8765", "", "https://stock.example/?shop=x"]
)
def test_malformed_service_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError, match="Stock service"):
        HttpStockServiceClient(url, SHOP, TOKEN)


def test_password_in_service_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(UsageError) as caught:
        HttpStockServiceClient("https://merchant:hunter2@stock.example", SHOP, TOKEN)
    assert "hunter2" not in str(caught.value)
    assert "user name or password" in str(caught.value)


def test_token_is_not_in_repr_and_bad_tokens_are_not_echoed() -> None:
    client = HttpStockServiceClient("http://127.0.0.1:1", "HTTPS://Shop.Example/", TOKEN)
    try:
        assert TOKEN not in repr(client)
        assert TOKEN not in repr(vars(client).get("_session"))
        assert client.shop_url == SHOP
    finally:
        client.close()
    with pytest.raises(UsageError) as caught:
        HttpStockServiceClient("http://127.0.0.1:1", SHOP, "abc\r\nX-Injected: 1")
    assert "Injected" not in str(caught.value)


class _MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1

    def __init__(self, secrets: dict[tuple[str, str], str]) -> None:
        super().__init__()
        self.secrets = secrets

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


class _BrokenKeyring(_MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the keyring is locked")


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


def test_token_from_environment(
    monkeypatch: pytest.MonkeyPatch, server: FaultServer, restore_keyring: None
) -> None:
    monkeypatch.setenv("XLSTOCK_TOKEN", f"  {TOKEN}\n")
    keyring.set_keyring(_MemoryKeyring({("xlstock", SHOP): "from-keyring"}))
    server.on("GET", "/v1/stock", levels_reply())
    with HttpStockServiceClient.from_settings(server.url, "https://Shop.Example/",
                                              deadline=3) as client:
        client.read_levels()
    assert server.seen[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_token_from_keyring_under_the_normalised_shop_url(
    monkeypatch: pytest.MonkeyPatch, server: FaultServer, restore_keyring: None
) -> None:
    monkeypatch.delenv("XLSTOCK_TOKEN", raising=False)
    keyring.set_keyring(_MemoryKeyring({("xlstock", SHOP): "from-keyring"}))
    server.on("GET", "/v1/stock", levels_reply())
    with HttpStockServiceClient.from_settings(server.url, "HTTPS://shop.example/",
                                              deadline=3) as client:
        client.read_levels()
    assert server.seen[0].headers["authorization"] == "Bearer from-keyring"


@pytest.mark.parametrize("backend", [_MemoryKeyring({}), _BrokenKeyring({})])
def test_no_token_says_how_to_provide_one(
    monkeypatch: pytest.MonkeyPatch, restore_keyring: None, backend: _MemoryKeyring
) -> None:
    monkeypatch.delenv("XLSTOCK_TOKEN", raising=False)
    keyring.set_keyring(backend)
    with pytest.raises(UsageError) as caught:
        HttpStockServiceClient.from_settings("http://127.0.0.1:8765", "https://Shop.example")
    message = str(caught.value)
    assert "XLSTOCK_TOKEN" in message
    assert "keyring set xlstock https://shop.example" in message


def test_a_client_without_token_refuses_authenticated_calls(server: FaultServer) -> None:
    with HttpStockServiceClient(server.url, SHOP) as client, \
            pytest.raises(UsageError, match="XLSTOCK"):
        client.read_levels()
    assert server.seen == []


# ------------------------------------------------------------------ reads


def test_read_levels(server: FaultServer, make_client: MakeClient) -> None:
    server.on("GET", "/v1/stock", levels_reply({"A-1": 5, "B-2": 0}, etag='"v7"', gzip=True))
    snapshot = make_client().read_levels()
    assert snapshot is not None
    assert snapshot.version == '"v7"'
    assert snapshot.levels() == {"A-1": 5, "B-2": 0}
    assert snapshot.items["A-1"].variant == "Red / XL"
    seen = server.seen[0]
    assert seen.query == {"shop": SHOP}
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["user-agent"] == f"xlstock/{__version__}"
    assert seen.headers["accept-encoding"] == "gzip"
    assert TOKEN not in seen.path and TOKEN not in json.dumps(seen.query)


def test_read_levels_without_names_gives_the_levels_alone(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.on("GET", "/v1/stock", levels_reply({"A-1": 5, "B-2": 0}, etag='"v7"', gzip=True))
    snapshot = make_client().read_levels(names=False)
    assert snapshot.levels() == {"A-1": 5, "B-2": 0}
    assert {(item.name, item.variant) for item in snapshot.items.values()} == {("", "")}


def test_the_answer_is_let_go_once_decoded(server: FaultServer, make_client: MakeClient,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The body of the levels (60 MB at 1,000,000 SKUs) is not held while the snapshot
    is made of what it decoded to (issue 22)."""
    import gc

    from xlstock.remote import client as client_module

    server.on("GET", "/v1/stock", levels_reply({"A-1": 5, "B-2": 0}, etag='"v7"'))
    bodies: list[int] = []
    real = client_module.snapshot_from_document
    gc.collect()  # answers of earlier tests still alive are not this read's
    earlier = {id(o) for o in gc.get_objects() if type(o) is client_module._Answer}

    def spy(*args: Any, **kwargs: Any) -> Any:
        bodies.extend(len(o.body) for o in gc.get_objects()
                      if type(o) is client_module._Answer and id(o) not in earlier)
        return real(*args, **kwargs)

    monkeypatch.setattr(client_module, "snapshot_from_document", spy)
    assert make_client().read_levels().levels() == {"A-1": 5, "B-2": 0}
    assert bodies and not any(bodies), bodies


def test_not_modified_returns_none(server: FaultServer, make_client: MakeClient) -> None:
    stock = FakeStock(SHOP, {"A-1": 5}).install(server)
    client = make_client()
    first = client.read_levels()
    assert first is not None and first.version == stock.etag
    assert client.read_levels(if_none_match=first.version) is None
    assert client.read_levels(if_none_match="v1") is None  # unquoted is accepted
    assert server.seen[-1].headers["if-none-match"] == '"v1"'
    stock.levels["A-1"] = 4
    stock.number += 1
    again = client.read_levels(if_none_match=first.version)
    assert again is not None and again.levels() == {"A-1": 4}


def test_a_500_then_200_read_is_retried(server: FaultServer, make_client: MakeClient) -> None:
    server.on(
        "GET", "/v1/stock", error_reply(500, "internal_error", "database locked"), levels_reply()
    )
    snapshot = make_client().read_levels()
    assert snapshot is not None and snapshot.levels() == {"A-1": 5}
    assert len(server.requests_to("GET", "/v1/stock")) == 2


def test_reads_give_up_after_the_retries(server: FaultServer, make_client: MakeClient) -> None:
    server.on("GET", "/v1/stock", error_reply(503, "unavailable", "down for maintenance"))
    with pytest.raises(ServiceRefused, match="503") as caught:
        make_client(read_retries=2).read_levels()
    assert exit_status(caught.value) == EXIT_SERVICE
    assert "down for maintenance" in str(caught.value)
    assert f"{server.url}/v1/stock" in str(caught.value)
    assert len(server.requests_to("GET", "/v1/stock")) == 3


def test_retry_after_is_honoured_and_a_huge_value_capped(
    server: FaultServer, make_client: MakeClient
) -> None:
    busy = error_reply(429, "busy", "slow down")
    busy.headers = {"Retry-After": "86400"}
    server.on("GET", "/v1/stock", busy, levels_reply())
    started = time.monotonic()
    assert make_client(retry_after_cap=0.3).read_levels() is not None
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0


def test_retry_after_as_an_http_date(server: FaultServer, make_client: MakeClient) -> None:
    busy = error_reply(503, "busy", "slow down")
    when = int(time.time()) + 1
    if when - time.time() < 0.5:
        when += 1
    busy.headers = {"Retry-After": formatdate(when, usegmt=True)}
    server.on("GET", "/v1/stock", busy, levels_reply())
    started = time.monotonic()
    expected = when - time.time()
    assert make_client(retry_after_cap=5).read_levels() is not None
    elapsed = time.monotonic() - started
    assert expected - 0.2 <= elapsed < expected + 1.5


def test_retry_after_beyond_the_deadline_fails_at_once(
    server: FaultServer, make_client: MakeClient
) -> None:
    busy = error_reply(429, "busy", "slow down")
    busy.headers = {"Retry-After": "30"}
    server.on("GET", "/v1/stock", busy, levels_reply())
    started = time.monotonic()
    with pytest.raises(ServiceRefused, match="busy"):
        make_client(retry_after_cap=30, deadline=2).read_levels()
    assert time.monotonic() - started < 1.0
    assert len(server.requests_to("GET", "/v1/stock")) == 1


@pytest.mark.parametrize("fault", ["drop_mid_body", "truncate", "close_before_answer"])
def test_a_broken_read_is_retried(server: FaultServer, make_client: MakeClient, fault: str) -> None:
    server.on("GET", "/v1/stock", levels_reply(fault=fault), levels_reply())
    snapshot = make_client().read_levels()
    assert snapshot is not None and snapshot.levels() == {"A-1": 5}
    assert len(server.requests_to("GET", "/v1/stock")) == 2


@pytest.mark.parametrize("fault", ["drop_mid_body", "truncate", "reset_before_answer"])
def test_a_read_that_keeps_breaking_is_unreachable(
    server: FaultServer, make_client: MakeClient, fault: str
) -> None:
    server.on("GET", "/v1/stock", levels_reply(fault=fault))
    with pytest.raises(ServiceUnreachable) as caught:
        make_client(read_retries=1).read_levels()
    message = str(caught.value)
    assert f"GET {server.url}/v1/stock" in message
    assert "connection broke" in message
    assert TOKEN not in message


def test_a_truncated_gzip_body_without_length_is_refused(
    server: FaultServer, make_client: MakeClient
) -> None:
    whole = gzip.compress(json.dumps(stock_document({"A-1": 5})).encode())
    server.on(
        "GET",
        "/v1/stock",
        Reply(body=whole[:-12], framing="close", headers={"Content-Encoding": "gzip"}),
    )
    with pytest.raises(ServiceUnreachable, match="damaged compressed answer"):
        make_client(read_retries=0).read_levels()


@pytest.mark.parametrize("fault", ["drip_body", "drip_headers"])
def test_a_dripping_server_is_cut_off_by_the_deadline(
    server: FaultServer, make_client: MakeClient, fault: str
) -> None:
    server.on("GET", "/v1/stock", levels_reply(fault=fault, drip_interval=0.05))
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match=r"did not finish answering within 0\.6 s"):
        make_client(timeout=(1, 5), deadline=0.6).read_levels()
    assert time.monotonic() - started < 1.5


def test_a_silent_server_hits_the_read_timeout(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.on("GET", "/v1/stock", levels_reply(fault="stall"))
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match="stopped answering"):
        make_client(timeout=(1, 0.2), read_retries=1, deadline=5).read_levels()
    assert time.monotonic() - started < 2.0
    assert len(server.requests_to("GET", "/v1/stock")) == 2


def test_html_instead_of_json(server: FaultServer, make_client: MakeClient) -> None:
    page = b"<!doctype html><html><body>Welcome to nginx!</body></html>"
    server.on("GET", "/v1/stock", Reply(200, body=page, content_type="text/html"))
    with pytest.raises(ServiceRefused) as caught:
        make_client().read_levels()
    assert "answered a web page, not the stock service" in str(caught.value)
    assert "check the Stock service setting" in str(caught.value)


def test_html_error_page(server: FaultServer, make_client: MakeClient) -> None:
    page = b"<html><body>404 Not Found</body></html>"
    server.on("GET", "/v1/stock", Reply(404, body=page, content_type="text/html; charset=utf-8"))
    with pytest.raises(ServiceRefused, match=r"answered a web page \(404\)"):
        make_client().read_levels()


def test_json_that_is_not_a_stock_file(server: FaultServer, make_client: MakeClient) -> None:
    server.on("GET", "/v1/stock", Reply(200, json={"hello": "world"}, headers={"ETag": '"x"'}))
    with pytest.raises(Exception, match="did not answer with a stock file"):
        make_client().read_levels()


def test_levels_of_another_shop_are_refused(server: FaultServer, make_client: MakeClient) -> None:
    other = Reply(
        200, json=stock_document({"A-1": 5}, shop="https://other.example"), headers={"ETag": '"v"'}
    )
    server.on("GET", "/v1/stock", other)
    with pytest.raises(ServiceRefused, match="other.example"):
        make_client().read_levels()


def _big_chunks(total: int) -> Iterator[bytes]:
    chunk = b" " * 65536
    yield b'{"format": "xlstock.stock", "items": ['
    for _ in range(total // len(chunk)):
        yield chunk


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_a_body_past_the_cap_is_refused_while_streaming(
    server: FaultServer, make_client: MakeClient, framing: str
) -> None:
    server.on("GET", "/v1/stock", Reply(body=_big_chunks(4 << 20), framing=framing))
    with pytest.raises(ServiceRefused, match="larger than 1 MiB"):
        make_client(max_body=1 << 20, read_retries=0).read_levels()


def test_a_declared_length_past_the_cap_is_refused_unread(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.on("GET", "/v1/stock", Reply(body=b" " * (2 << 20)))
    with pytest.raises(ServiceRefused, match="larger than 1 MiB"):
        make_client(max_body=1 << 20).read_levels()


def test_a_compression_bomb_is_refused_at_the_default_cap(
    server: FaultServer, make_client: MakeClient
) -> None:
    squeezer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    mib = DEFAULT_MAX_BODY >> 20
    bomb = b"".join(squeezer.compress(zeros) for _ in range(mib + 1)) + squeezer.flush()
    assert len(bomb) < 1_000_000
    server.on("GET", "/v1/stock", Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    with pytest.raises(ServiceRefused) as caught:
        make_client(read_retries=0).read_levels()
    assert caught.value.message == (
        f"GET {server.url}/v1/stock sent an answer larger than 512 MiB, more than the "
        "1,048,575 SKUs of a whole Excel sheet take at 512 bytes each; it is not the stock "
        "service: check the Stock service setting")


def test_nothing_listening(make_client: MakeClient) -> None:
    client = HttpStockServiceClient("http://127.0.0.1:9", SHOP, TOKEN, read_retries=1,
                                    backoff_base=0.01)
    try:
        with pytest.raises(ServiceUnreachable) as caught:
            client.read_levels()
    finally:
        client.close()
    message = str(caught.value)
    assert "http://127.0.0.1:9/v1/stock" in message
    assert "xlstock serve" in message
    assert exit_status(caught.value) == EXIT_SERVICE


def test_a_redirect_is_never_followed(server: FaultServer, make_client: MakeClient) -> None:
    server.on("GET", "/v1/stock", Reply(302, headers={"Location": f"{server.url}/elsewhere"}))
    server.on("GET", "/elsewhere", levels_reply())
    with pytest.raises(ServiceRefused, match=f"redirect \\(302\\) to {server.url}/elsewhere"):
        make_client().read_levels()
    assert server.requests_to("GET", "/elsewhere") == []


def test_unauthorised_and_unregistered(server: FaultServer, make_client: MakeClient) -> None:
    server.on(
        "GET",
        "/v1/stock",
        error_reply(401, "unauthorized", f"unknown token {TOKEN}"),
        error_reply(403, "shop_not_registered", "https://shop.example is not registered"),
    )
    client = make_client()
    with pytest.raises(ServiceRefused) as unauthorised:
        client.read_levels()
    message = str(unauthorised.value)
    assert "401 unauthorized" in message and "unknown token ***" in message
    assert "XLSTOCK_TOKEN" in message and TOKEN not in message
    with pytest.raises(ServiceRefused) as forbidden:
        client.read_levels()
    assert "is not registered" in str(forbidden.value)
    assert "xlstock shop add https://shop.example" in str(forbidden.value)
    assert forbidden.value.code == "shop_not_registered"
    assert len(server.seen) == 2  # 4xx are not retried


def test_another_shops_token_is_read_from_the_errors_fields_not_its_words(
        server: FaultServer, make_client: MakeClient) -> None:
    """``shop_not_registered`` carries ``token_shop`` and ``shop``: the merchant's message
    is made from them whatever the service's wording (its message may change); a service
    from before the fields is still read from its words."""
    reworded = {"code": "shop_not_registered", "message": "wrong shop for this token",
                "token_shop": "https://own.example", "shop": "https://typo.example"}
    old_words = ("this API token is for the shop https://own.example, not "
                 "https://typo.example: check the shop's address for a typing slip")
    server.on("GET", "/v1/stock", Reply(403, json={"error": reworded}),
              error_reply(403, "shop_not_registered", old_words),
              error_reply(403, "shop_not_registered", "wrong shop for this token"))
    client = make_client()
    said = ("the API token is for the shop https://own.example, not https://typo.example. "
            "If https://typo.example has a typing slip, correct Shop URL in sheet Settings")
    for _ in range(2):
        with pytest.raises(ServiceRefused) as refused:
            client.read_levels()
        assert said in str(refused.value) and "wrong shop" not in str(refused.value)
        assert refused.value.code == "shop_not_registered"
    with pytest.raises(ServiceRefused) as unnamed:  # neither fields nor the old words
        client.read_levels()
    assert "wrong shop for this token" in str(unnamed.value) and said not in str(unnamed.value)


def test_environment_proxies_are_bypassed_for_loopback(
    server: FaultServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    server.on("GET", "/v1/stock", levels_reply())
    assert make_client().read_levels() is not None


def test_the_token_never_reaches_the_log(
    server: FaultServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.on("GET", "/v1/stock", error_reply(500, "internal_error", "boom"), levels_reply())
    make_client().read_levels()
    assert caplog.records
    assert TOKEN not in caplog.text


# ------------------------------------------------------------------ publish


BODY = dumps(SHOP, {"A-1": 7}, {"A-1": 5})


def test_publish(server: FaultServer, make_client: MakeClient) -> None:
    server.on("PUT", "/v1/stock", publish_ok("key-1"))
    result = make_client().publish(BODY, "key-1")
    assert result.key == "key-1"
    assert result.version == '"v2"'
    assert result.published_at == "2026-11-27T10:05:00Z"
    assert result.changes == (Change("A-1", 5, 7),)
    assert result.applied and not result.replayed and not result.recovered
    seen = server.seen[0]
    assert "if-match" not in seen.headers  # each item's "from" is its precondition
    assert seen.headers["idempotency-key"] == "key-1"
    assert seen.headers["content-type"] == "application/json"
    assert "content-encoding" not in seen.headers
    assert seen.body == BODY
    assert seen.query == {"shop": SHOP}


def test_publish_accepts_an_unquoted_version_and_reports_a_replay(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.on("PUT", "/v1/stock", publish_ok("key-1", replayed=True))
    result = make_client().publish(BODY, "key-1", if_match="v1")
    assert result.replayed
    assert server.seen[0].headers["if-match"] == '"v1"'


def test_a_large_stock_file_is_sent_gzipped(server: FaultServer, make_client: MakeClient) -> None:
    levels = {f"SKU-{n:05d}": n for n in range(5000)}
    body = dumps(SHOP, levels, levels)
    assert len(body) > 64 * 1024
    server.on("PUT", "/v1/stock", publish_ok("big"))
    make_client().publish(body, "big")
    seen = server.seen[0]
    assert seen.headers["content-encoding"] == "gzip"
    assert len(seen.raw_body) < len(body) / 3
    assert seen.body == body


def test_a_stale_version_is_refused(server: FaultServer, make_client: MakeClient) -> None:
    stale = error_reply(412, "stale_version", "the levels changed")
    stale.headers = {"ETag": '"v9"'}
    server.on("PUT", "/v1/stock", stale)
    with pytest.raises(StaleVersion) as caught:
        make_client().publish(BODY, "key-1")
    assert caught.value.current_version == '"v9"'
    assert caught.value.status == 412
    assert len(server.seen) == 1


def test_moved_items_come_back_with_their_current_levels(
    server: FaultServer, make_client: MakeClient
) -> None:
    stock = FakeStock(SHOP, {"A-1": 3}).install(server)
    with pytest.raises(StaleVersion) as caught:
        make_client().publish(BODY, "key-moved")
    assert caught.value.code == "levels_moved"
    assert caught.value.moved == {"A-1": 3}
    assert caught.value.current_version == stock.etag
    assert stock.applications == 0


def test_a_412_that_does_not_name_every_moved_item_asks_for_a_new_read(
    server: FaultServer, make_client: MakeClient
) -> None:
    items = [{"sku": "A-1", "problem": "moved", "planned_from": 5, "current": 3}]
    cut = Reply(412, json={"error": {"code": "levels_moved", "message": "2 moved",
                                     "items": items, "items_total": 2}})
    server.on("PUT", "/v1/stock", cut)
    with pytest.raises(StaleVersion) as caught:
        make_client().publish(BODY, "key-cut")
    assert caught.value.moved is None


def test_an_invalid_document_lists_every_item(server: FaultServer, make_client: MakeClient) -> None:
    items = [
        {"sku": "Z-9", "problem": "unknown SKU"},
        {"sku": "A-1", "problem": "level -3 is below zero"},
    ]
    server.on("PUT", "/v1/stock", error_reply(422, "invalid_document", "2 bad items", items))
    with pytest.raises(ServiceRefused) as caught:
        make_client().publish(BODY, "key-1")
    assert caught.value.code == "invalid_document"
    assert caught.value.items == items
    message = str(caught.value)
    assert "SKU 'Z-9': unknown SKU" in message
    assert "SKU 'A-1': level -3 is below zero" in message
    assert len(server.seen) == 1


def test_a_redirect_answering_a_publish_fails(server: FaultServer, make_client: MakeClient) -> None:
    target = f"{server.url}/v2/stock"
    server.on("PUT", "/v1/stock", Reply(307, headers={"Location": target}))
    server.on("PUT", "/v2/stock", publish_ok("key-1"))
    with pytest.raises(ServiceRefused, match=f"redirect \\(307\\) to {target}"):
        make_client().publish(BODY, "key-1")
    assert server.requests_to("PUT", "/v2/stock") == []
    assert len(server.requests_to("PUT", "/v1/stock")) == 1


def test_publish_applied_but_answer_lost_is_recovered_once(
    server: FaultServer, make_client: MakeClient
) -> None:
    stock = FakeStock(SHOP, {"A-1": 5}).install(server)
    stock.lose_publish_answers = 1
    result = make_client().publish(BODY, "key-lost")
    assert result.applied and result.recovered
    assert result.changes == (Change("A-1", 5, 7),)
    assert result.version == stock.etag == '"v2"'
    assert stock.applications == 1
    assert stock.levels == {"A-1": 7}
    assert len(server.requests_to("PUT", "/v1/stock")) == 1
    assert len(server.requests_to("GET", "/v1/publishes/key-lost")) == 1


def test_outcome_unknown_when_the_service_cannot_be_asked(
    server: FaultServer, make_client: MakeClient
) -> None:
    stock = FakeStock(SHOP, {"A-1": 5}).install(server)
    stock.lose_publish_answers = 1
    stock.outcome_faults = [Reply(fault="close_before_answer")] * 3
    client = make_client(read_retries=2)
    with pytest.raises(OutcomeUnknown) as caught:
        client.publish(BODY, "key-lost")
    message = str(caught.value)
    assert "the outcome is unknown" in message.lower()
    assert "the next `xlstock publish` will find out" in message
    assert "nothing will be counted twice" in message
    assert caught.value.key == "key-lost"
    assert exit_status(caught.value) == EXIT_SERVICE
    assert stock.applications == 1
    later = client.publish_outcome("key-lost")
    assert later is not None and later.applied and later.changes == (Change("A-1", 5, 7),)
    again = client.publish(BODY, "key-lost")  # same key and body: a replay
    assert again.replayed and again.changes == later.changes
    assert stock.applications == 1


def test_a_lost_answer_to_a_stale_publish_is_raised(
    server: FaultServer, make_client: MakeClient
) -> None:
    stock = FakeStock(SHOP, {"A-1": 5}).install(server)
    stock.lose_publish_answers = 1
    with pytest.raises(StaleVersion):
        make_client().publish(BODY, "key-stale", if_match='"v0"')
    assert stock.applications == 0


def test_a_publish_that_never_arrived_is_sent_again_with_its_key(
    server: FaultServer, make_client: MakeClient
) -> None:
    stock = FakeStock(SHOP, {"A-1": 5}).install(server)
    server.on("PUT", "/v1/stock", Reply(fault="reset_before_answer"), stock.publish)
    result = make_client().publish(BODY, "key-retry")
    assert result.applied and not result.recovered
    puts = server.requests_to("PUT", "/v1/stock")
    assert len(puts) == 2
    assert {p.headers["idempotency-key"] for p in puts} == {"key-retry"}
    assert puts[0].body == puts[1].body == BODY
    assert stock.applications == 1


def test_a_dripping_publish_answer_ends_with_the_recorded_outcome(
    server: FaultServer, make_client: MakeClient
) -> None:
    stock = FakeStock(SHOP, {"A-1": 5}).install(server)

    def apply_then_drip(seen: Seen) -> Reply:
        reply = stock.publish(seen)
        reply.fault, reply.drip_interval = "drip_body", 0.05
        return reply

    server.on("PUT", "/v1/stock", apply_then_drip)
    started = time.monotonic()
    result = make_client(timeout=(1, 5), deadline=0.6).publish(BODY, "key-drip")
    assert time.monotonic() - started < 2.0
    assert result.applied and result.recovered
    assert stock.applications == 1


def test_a_busy_publish_is_sent_again_with_the_same_key(
    server: FaultServer, make_client: MakeClient
) -> None:
    busy = error_reply(503, "unavailable", "busy")
    busy.headers = {"Retry-After": "1000"}
    server.on("PUT", "/v1/stock", busy, publish_ok("key-1"))
    assert make_client(retry_after_cap=0.1).publish(BODY, "key-1").applied
    puts = server.requests_to("PUT", "/v1/stock")
    assert [p.headers["idempotency-key"] for p in puts] == ["key-1", "key-1"]


def test_an_internal_error_asks_for_the_outcome(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.on("PUT", "/v1/stock", error_reply(500, "internal_error", "disk I/O error"))
    with pytest.raises(ServiceRefused, match="disk I/O error"):
        make_client().publish(BODY, "key-500")
    assert len(server.requests_to("GET", "/v1/publishes/key-500")) == 1
    assert len(server.requests_to("PUT", "/v1/stock")) == 1


def test_an_unreadable_success_answer_is_checked_with_the_outcome(
    server: FaultServer, make_client: MakeClient
) -> None:
    stock = FakeStock(SHOP, {"A-1": 5}).install(server)

    def apply_then_garble(seen: Seen) -> Reply:
        stock.publish(seen)
        return Reply(200, body=b"<html>OK</html>", content_type="text/html")

    server.on("PUT", "/v1/stock", apply_then_garble)
    result = make_client().publish(BODY, "key-garbled")
    assert result.applied and result.recovered and stock.applications == 1
    server.on("GET", "/v1/publishes/*", error_reply(404, "not_found", "never seen"))
    with pytest.raises(OutcomeUnknown):
        make_client().publish(BODY, "key-garbled-2")


def test_publish_to_nothing_listening_says_nothing_was_sent() -> None:
    client = HttpStockServiceClient("http://127.0.0.1:9", SHOP, TOKEN, backoff_base=0.01)
    try:
        with pytest.raises(ServiceUnreachable, match="could not connect") as caught:
            client.publish(BODY, "key-1")
    finally:
        client.close()
    assert not isinstance(caught.value, OutcomeUnknown)


def test_publish_rejects_a_bad_key(make_client: MakeClient) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        make_client().publish(BODY, "has space")


# ------------------------------------------------------------------ outcome endpoint


def test_outcome_of_an_unknown_key_is_none(server: FaultServer, make_client: MakeClient) -> None:
    FakeStock(SHOP, {"A-1": 5}).install(server)
    assert make_client().publish_outcome("never-sent") is None


def test_outcome_404_that_is_not_the_service_is_an_error(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.on("GET", "/v1/publishes/*", Reply(404, body=b"<h1>nope</h1>", content_type="text/html"))
    with pytest.raises(ServiceRefused, match="web page"):
        make_client().publish_outcome("k")


def test_outcome_of_a_refused_publish(server: FaultServer, make_client: MakeClient) -> None:
    record = {
        "key": "k-422",
        "status": 422,
        "applied": False,
        "received_at": "2026-11-27T10:05:00Z",
        "response": {
            "error": {
                "code": "invalid_document",
                "message": "1 bad item",
                "items": [{"sku": "Q", "problem": "unknown SKU"}],
            }
        },
    }
    server.on("GET", "/v1/publishes/*", Reply(200, json=record))
    outcome = make_client().publish_outcome("k-422")
    assert outcome is not None
    assert not outcome.applied and outcome.status == 422
    assert isinstance(outcome.refusal, ServiceRefused)
    assert outcome.refusal.items == [{"sku": "Q", "problem": "unknown SKU"}]
    assert server.seen[0].path == "/v1/publishes/k-422"


def test_as_etag() -> None:
    assert as_etag("v1") == '"v1"'
    assert as_etag('"v1"') == '"v1"'
    assert as_etag('W/"v1"') == 'W/"v1"'
    with pytest.raises(ValueError):
        as_etag('v"1')


# ------------------------------------------------------------------ orders, history, storefront


def test_place_order(server: FaultServer, make_client: MakeClient) -> None:
    answer = {"order": 41, "version": "v3", "lines": [{"sku": "A-1", "qty": 2, "level": 3}]}
    server.on("POST", "/v1/orders", Reply(201, json=answer, headers={"ETag": '"v3"'}))
    result = make_client().place_order({"A-1": 2}, reference="web-1001")
    assert result.order == "41" and result.version == '"v3"'
    assert [tuple(line) for line in result.lines] == [("A-1", 2, 3)]
    seen = server.seen[0]
    assert seen.json() == {"lines": [{"sku": "A-1", "qty": 2}], "reference": "web-1001"}
    assert seen.headers["idempotency-key"].startswith("order-")


def test_an_order_short_of_stock(server: FaultServer, make_client: MakeClient) -> None:
    items = [{"sku": "A-1", "problem": "ordered 3, 1 in stock", "requested": 3, "available": 1}]
    server.on("POST", "/v1/orders", error_reply(409, "insufficient_stock", "short", items))
    with pytest.raises(ServiceRefused) as caught:
        make_client().place_order({"A-1": 3})
    assert caught.value.code == "insufficient_stock"
    assert caught.value.items == items
    assert "SKU 'A-1': ordered 3, 1 in stock" in str(caught.value)


def test_a_lost_order_answer_is_sent_again_with_the_same_key(
    server: FaultServer, make_client: MakeClient
) -> None:
    answer = {"order": 1, "version": "v2", "lines": [{"sku": "A-1", "qty": 1, "level": 4}]}
    server.on("POST", "/v1/orders", Reply(fault="close_before_answer"), Reply(201, json=answer))
    assert make_client().place_order({"A-1": 1}).version == '"v2"'
    posts = server.requests_to("POST", "/v1/orders")
    assert len({p.headers["idempotency-key"] for p in posts}) == 1 and len(posts) == 2


def test_a_busy_order_is_sent_again_with_the_same_key(
    server: FaultServer, make_client: MakeClient
) -> None:
    answer = {"order": 2, "version": "v3", "lines": [{"sku": "A-1", "qty": 1, "level": 3}]}
    busy = error_reply(503, "unavailable", "busy")
    server.on("POST", "/v1/orders", busy, Reply(429), Reply(201, json=answer))
    assert make_client().place_order({"A-1": 1}, key="order-k").order == "2"
    posts = server.requests_to("POST", "/v1/orders")
    assert [p.headers["idempotency-key"] for p in posts] == ["order-k"] * 3


def test_an_order_whose_answers_are_all_lost_says_to_look_at_the_history(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.on("POST", "/v1/orders", *[Reply(fault="close_before_answer")] * 10)
    with pytest.raises(ServiceUnreachable) as caught:
        make_client(publish_attempts=2).place_order({"A-1": 1})
    assert "may or may not have been recorded: look at the shop's history" in str(caught.value)
    assert len(server.requests_to("POST", "/v1/orders")) == 2


def test_history_and_storefront(server: FaultServer, make_client: MakeClient) -> None:
    history = {
        "shop": SHOP,
        "versions": [
            {
                "version": "v2",
                "number": 2,
                "at": "2026-11-27T10:05:00Z",
                "source": "publish",
                "reference": "key-1",
                "changes": [{"sku": "A-1", "before": 5, "after": 7}],
            },
            {
                "version": "v1",
                "number": 1,
                "at": "2026-11-27T09:00:00Z",
                "source": "catalogue",
                "reference": "catalogue",
                "changes": [{"sku": "A-1", "before": None, "after": 5}],
            },
        ],
    }
    server.on("GET", "/v1/history", Reply(200, json=history))
    front = {"shop": SHOP, "version": "v2", "items": [{"sku": "A-1", "qty": 7}]}
    server.on("GET", "/v1/storefront", Reply(200, json=front, headers={"ETag": '"v2"'}))
    client = make_client()
    entry, first = client.history(limit=10)
    assert first.changes == (HistoryChange("A-1", None, 5),)
    assert entry.version == '"v2"' and entry.number == 2 and entry.source == "publish"
    assert entry.changes == (HistoryChange("A-1", 5, 7),)
    assert server.seen[0].query == {"shop": SHOP, "limit": "10"}
    snapshot = client.storefront()
    assert snapshot is not None and snapshot.levels() == {"A-1": 7}
    assert "authorization" not in server.seen[1].headers


def test_no_token_on_a_computer_without_a_keyring_does_not_suggest_one(
    monkeypatch: pytest.MonkeyPatch, restore_keyring: None
) -> None:
    from keyring.backends import fail

    monkeypatch.delenv("XLSTOCK_TOKEN", raising=False)
    keyring.set_keyring(fail.Keyring())
    with pytest.raises(UsageError) as caught:
        HttpStockServiceClient.from_settings("http://127.0.0.1:8765", "https://Shop.example")
    message = str(caught.value)
    assert "set the environment variable XLSTOCK_TOKEN" in message
    assert "no system keyring" in message and "keyring set" not in message


@pytest.mark.parametrize("has_keyring", [True, False])
def test_a_refused_token_suggests_the_keyring_only_where_there_is_one(
    server: FaultServer, make_client: MakeClient, restore_keyring: None, has_keyring: bool
) -> None:
    from keyring.backends import fail

    keyring.set_keyring(_MemoryKeyring({}) if has_keyring else fail.Keyring())
    server.on("GET", "/v1/stock", error_reply(401, "unauthorized", "unknown token"))
    with pytest.raises(ServiceRefused) as refused:
        make_client().read_levels()
    message = str(refused.value)
    assert "XLSTOCK_TOKEN" in message
    assert ("keyring set xlstock" in message) is has_keyring


@pytest.mark.parametrize("has_keyring", [True, False])
def test_no_token_names_the_api_tokens_page_where_a_merchant_creates_one(
    monkeypatch: pytest.MonkeyPatch, restore_keyring: None, has_keyring: bool
) -> None:
    """A merchant with an account gets the token from the API tokens page, not from
    `xlstock shop add` (a command for the service's computer): the message names it."""
    from keyring.backends import fail

    from xlstock.i18n import speaking

    monkeypatch.delenv("XLSTOCK_TOKEN", raising=False)
    keyring.set_keyring(_MemoryKeyring({}) if has_keyring else fail.Keyring())
    with pytest.raises(UsageError) as caught:
        HttpStockServiceClient.from_settings("http://127.0.0.1:8765/", "https://Shop.example")
    message = str(caught.value)
    assert "API tokens page of your account (http://127.0.0.1:8765/account/tokens)" in message
    with speaking("fr"), pytest.raises(UsageError) as in_french:
        HttpStockServiceClient.from_settings("http://127.0.0.1:8765/", "https://Shop.example")
    french = str(in_french.value)
    assert "page Jetons d'API de votre compte (http://127.0.0.1:8765/account/tokens)" in french


def test_a_refused_token_names_the_api_tokens_page_in_french_too(
    server: FaultServer, make_client: MakeClient, restore_keyring: None
) -> None:
    """The service's own words (English) name the API tokens page; a French merchant
    reads where to get a token in French all the same."""
    from keyring.backends import fail

    from xlstock.i18n import speaking

    keyring.set_keyring(fail.Keyring())
    server.on("GET", "/v1/stock", error_reply(
        401, "unauthorized", f"this API token is not known to the stock service; use a "
        f"token from the API tokens page ({server.url}/account/tokens)"))
    with speaking("fr"), pytest.raises(ServiceRefused) as refused:
        make_client().read_levels()
    with speaking("fr"):
        french = str(refused.value)
    assert f"la page Jetons d'API {server.url}/account/tokens" in french, french
    with speaking("en"), pytest.raises(ServiceRefused) as english:
        make_client().read_levels()
    assert str(english.value).count("/account/tokens") == 1  # said once, in English


def test_updates_switched_off_names_the_services_page_in_french_too(
    server: FaultServer, make_client: MakeClient
) -> None:
    """The service's (English) words name the Services page; the French fix said only
    'Rien n'a été modifié', leaving a French merchant without what to switch on, where."""
    from xlstock.i18n import speaking

    server.on("GET", "/v1/stock", error_reply(
        403, "stock_updates_off", "automatic stock level updates are off for "
        f"{SHOP}; switch on 'Automatic stock level update' on the Services page "
        f"({server.url}/account/services)"))
    with speaking("fr"), pytest.raises(ServiceRefused) as refused:
        make_client().read_levels()
    french = str(refused.value)
    assert "Activez la « Mise à jour automatique des niveaux de stocks » sur la page " \
        f"Services ({server.url}/account/services)" in french, french
    with speaking("en"), pytest.raises(ServiceRefused) as english:
        make_client().read_levels()
    assert str(english.value).count("/account/services") == 1
