"""Steps of the HTTP plumbing (xlstock.remote.transport) that the loopback tests of
test_transport.py do not reach: a deflate-encoded answer, cut at the cap like a gzipped
one, and a connect timeout told apart from the whole call's deadline."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest
import requests
import urllib3.exceptions
from support.faultserver import FaultServer, Reply

from xlstock.errors import ServiceRefused, ServiceUnreachable
from xlstock.remote.transport import Deadline, WatchedAdapter, mapped_errors, read_body


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _body(url: str, max_body: int) -> bytes:
    with requests.Session() as session:
        session.trust_env = False
        session.mount("http://", WatchedAdapter())
        watch = Deadline(10)
        with mapped_errors(f"GET {url}", watch, max_body=max_body), watch.watching(), \
                session.get(url, timeout=(5, 10), stream=True) as answer:
            return read_body(answer, watch, max_body)


def test_a_deflated_answer_is_inflated_and_cut_at_the_cap(server):
    text = b'{"items": [' + b",".join(b"%d" % n for n in range(5000)) + b"]}"
    server.on("GET", "/deflate", Reply(body=zlib.compress(text),
                                       headers={"Content-Encoding": "deflate"}))
    assert _body(server.url + "/deflate", 1 << 20) == text
    with pytest.raises(ServiceRefused, match="sent an answer larger than"):
        _body(server.url + "/deflate", len(text) - 1)


@pytest.mark.parametrize("foreign", [
    requests.exceptions.ConnectTimeout("connect timed out"),
    urllib3.exceptions.ConnectTimeoutError("connect timed out"),
])
def test_a_connect_timeout_says_whether_the_deadline_or_the_attempt_ran_out(foreign):
    with pytest.raises(ServiceUnreachable) as caught, \
            mapped_errors("GET x", Deadline(30), max_body=1024):
        raise foreign
    assert "could not connect in time" in caught.value.message
    assert caught.value.may_have_arrived is False

    spent = Deadline(30)
    spent.expired = True  # as the watchdog leaves it when the call's time is up
    with pytest.raises(ServiceUnreachable) as caught, \
            mapped_errors("GET x", spent, max_body=1024):
        raise foreign
    assert "no connection within the deadline of" in caught.value.message
    assert caught.value.may_have_arrived is False
