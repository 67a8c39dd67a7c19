"""The HTTP plumbing (xlstock.remote.transport) against a real server on loopback that
misbehaves on purpose (support/faultserver.py): the overall deadline, the body cap, and
how every requests/urllib3/socket/zlib failure becomes one error of the XlstockError
tree saying whether the request may have arrived. No mock of requests."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.faultserver import FaultServer, Reply

from xlstock.errors import ServiceError, ServiceRefused, ServiceUnreachable
from xlstock.remote.transport import (
    Deadline,
    WatchedAdapter,
    decode_json,
    mapped_errors,
    read_body,
)

MiB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def fetch(url: str, *, deadline: float = 10.0, read_timeout: float = 10.0,
          max_body: int = MiB) -> Any:
    """One GET as the client makes it: watched sockets, a deadline, a capped body."""
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", WatchedAdapter())
    session.mount("https://", WatchedAdapter())
    watch = Deadline(deadline)
    try:
        with mapped_errors(f"GET {url}", watch, max_body=max_body, secret="s3cret-token"):
            with watch.watching(), session.get(url, timeout=(5.0, read_timeout), stream=True,
                                               allow_redirects=False) as answer:
                body = read_body(answer, watch, max_body)
                return decode_json(body, answer.headers.get("Content-Type", ""))
    finally:
        session.close()


def failure(url: str, **options: Any) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        fetch(url, **options)
    return caught.value


def test_a_good_answer_is_read_plain_or_gzipped(server):
    server.on("GET", "/plain", Reply(json={"a": 1}))
    server.on("GET", "/gzip", Reply(json={"b": [1, 2]}, gzip=True))
    server.on("GET", "/chunked", Reply(body=[b'{"c"', b": 3}"], framing="chunked"))
    assert fetch(server.url + "/plain") == {"a": 1}
    assert fetch(server.url + "/gzip") == {"b": [1, 2]}
    assert fetch(server.url + "/chunked") == {"c": 3}


@pytest.mark.parametrize("compressed", [False, True])
def test_a_large_answer_is_held_about_once_while_it_is_read(server, compressed):
    """The body is grown in one buffer and handed over whole: a join of its pieces held
    it twice (120 MB for the levels of 1,000,000 SKUs: issue 22)."""
    import tracemalloc

    items = [{"sku": f"TEE-{n:06d}-RD", "qty": n % 500} for n in range(250_000)]
    server.on("GET", "/big", Reply(json={"items": items}, gzip=compressed))
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", WatchedAdapter())
    watch = Deadline(30.0)
    with watch.watching(), session.get(server.url + "/big", timeout=(5.0, 30.0),
                                       stream=True) as answer:
        tracemalloc.start()
        try:
            body = read_body(answer, watch, 64 * MiB)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    session.close()
    assert json.loads(body)["items"] == items and len(body) > 8 * MiB
    assert peak < 1.5 * len(body), (peak, len(body))


# --- the deadline -------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["drip_body", "drip_headers"])
def test_a_server_dripping_bytes_is_cut_off_at_the_deadline(server, fault):
    server.on("GET", "/slow", Reply(json={"items": list(range(200))}, fault=fault,
                                    drip_interval=0.02))
    started = time.monotonic()
    error = failure(server.url + "/slow", deadline=0.6, read_timeout=5.0)
    assert time.monotonic() - started < 3.0  # each byte resets the read timeout; not this
    assert isinstance(error, ServiceUnreachable)
    assert error.message == (
        f"GET {server.url}/slow did not finish answering within 0.6 s; the stock service is "
        "too slow or stuck: try again later, and check the Stock service setting")
    assert error.may_have_arrived is True


def test_a_stalled_answer_is_a_read_timeout_before_the_deadline(server):
    server.on("GET", "/stall", Reply(json={}, fault="stall"))
    error = failure(server.url + "/stall", deadline=10.0, read_timeout=0.3)
    assert isinstance(error, ServiceUnreachable)
    assert "the stock service stopped answering (read timeout)" in error.message
    assert error.may_have_arrived is True


def test_a_deadline_already_passed_sends_nothing(server):
    server.on("GET", "/x", Reply(json={}))
    error = failure(server.url + "/x", deadline=0.0)
    assert "did not finish answering within 0 s" in error.message
    assert server.seen == []


# --- broken connections -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nothing_listening_is_could_not_connect_and_never_arrived():
    url = f"http://127.0.0.1:{free_port()}/v1/stock"
    error = failure(url)
    assert isinstance(error, ServiceUnreachable)
    assert error.message == (
        f"GET {url}: could not connect; is the stock service running (`xlstock serve`)? "
        "check the Stock service setting")
    assert error.may_have_arrived is False


@pytest.mark.parametrize("fault", ["close_before_answer", "reset_before_answer",
                                   "drop_mid_body", "truncate"])
def test_a_connection_that_breaks_after_the_request_may_have_arrived(server, fault):
    server.on("GET", "/broken", Reply(json={"items": list(range(100))}, fault=fault))
    error = failure(server.url + "/broken")
    assert isinstance(error, ServiceUnreachable)
    assert error.message.startswith(
        f"GET {server.url}/broken: the connection broke before the whole answer arrived (")
    assert error.may_have_arrived is True
    assert len(server.seen) == 1  # urllib3 never retries on its own


def test_plain_http_spoken_to_as_tls_is_a_certificate_error(server):
    url = server.url.replace("http://", "https://") + "/v1/stock"
    error = failure(url)
    assert isinstance(error, ServiceUnreachable)
    assert "the TLS certificate could not be verified" in error.message
    assert "xlstock always verifies TLS" in error.message
    assert error.may_have_arrived is False


# --- answers that are not the stock service's ----------------------------------------------


def test_an_answer_past_the_cap_is_refused_before_it_is_read(server):
    server.on("GET", "/big", Reply(body=b"[" + b"0," * MiB + b"0]"))
    error = failure(server.url + "/big", max_body=MiB)
    assert isinstance(error, ServiceRefused)
    assert error.message == (
        f"GET {server.url}/big sent an answer larger than 1 MiB, far larger than any "
        "catalogue; it is not the stock service: check the Stock service setting")
    assert error.may_have_arrived is True


@pytest.mark.parametrize("framing", ["close", "chunked"])
def test_a_small_body_that_inflates_past_the_cap_is_cut_off(server, framing):
    bomb = gzip.compress(b" " * (8 * MiB), mtime=0)
    assert len(bomb) < 50_000
    server.on("GET", "/bomb", Reply(body=bomb, headers={"Content-Encoding": "gzip"},
                                    framing=framing))
    error = failure(server.url + "/bomb", max_body=MiB)
    assert isinstance(error, ServiceRefused) and "larger than 1 MiB" in error.message


def test_a_damaged_compressed_answer_may_have_arrived(server):
    server.on("GET", "/damaged", Reply(body=b"this is not gzip at all",
                                       headers={"Content-Encoding": "gzip"}))
    error = failure(server.url + "/damaged")
    assert isinstance(error, ServiceUnreachable)
    assert f"GET {server.url}/damaged sent a damaged compressed answer (" in error.message
    assert error.may_have_arrived is True


@pytest.mark.parametrize(("reply", "detail"), [
    (Reply(body=b"<html>Sign in</html>", content_type="text/html; charset=utf-8"),
     "answered a web page, not the stock service"),
    (Reply(body=b"a,b\n1,2\n", content_type="text/csv"),
     "answered text/csv, not the stock service's JSON"),
    (Reply(body=b"{not json", content_type="application/json"),
     "answered application/json, not the stock service's JSON"),
    (Reply(body=b"{}", headers={"Content-Encoding": "br"}),
     "answered content encoded as 'br', not the stock service's JSON"),
])
def test_an_answer_that_is_not_json_names_what_it_was(server, reply, detail):
    server.on("GET", "/odd", reply)
    error = failure(server.url + "/odd")
    assert isinstance(error, ServiceRefused)
    assert error.message == f"GET {server.url}/odd {detail}; check the Stock service setting"


def test_errors_of_the_tree_pass_through_unchanged():
    refused = ServiceRefused("already mapped")
    with pytest.raises(ServiceRefused) as caught, mapped_errors("GET x", Deadline(5),
                                                                max_body=MiB):
        raise refused
    assert caught.value is refused


def test_a_deadline_that_passes_shuts_the_sockets_it_watches():
    watch = Deadline(0.2)
    left, right = socket.socketpair()
    with left, right, watch.watching():
        watch.register(left)
        left.settimeout(5)
        started = time.monotonic()
        assert left.recv(10) == b""  # woken by the shutdown, not by the 5 s timeout
        assert time.monotonic() - started < 2
    assert watch.expired
