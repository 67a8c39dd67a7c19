"""What every connector shares (xlstock.remote.connector): the session and the notices."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
import requests

from xlstock.remote.connector import SessionOwner, named_skus, retry_after
from xlstock.remote.transport import WatchedAdapter


def test_a_notice_names_ten_skus_at_most() -> None:
    label = "{count:n} SKU(s) left out: {skus}"
    assert named_skus(label, ["A", "B"]) == "2 SKU(s) left out: A, B"
    twelve = [f"S{n}" for n in range(12)]
    assert named_skus(label, twelve) == (
        "12 SKU(s) left out: " + ", ".join(twelve[:10]) + " ...")


class _Connector(SessionOwner):
    def __init__(self, session: requests.Session | None) -> None:
        self._use_session(session)


class _Session(requests.Session):
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_a_connector_watches_and_closes_the_session_it_makes_and_no_other() -> None:
    with _Connector(None) as own:
        assert isinstance(own._session.get_adapter("https://shop.example"), WatchedAdapter)
        assert isinstance(own._session.get_adapter("http://127.0.0.1"), WatchedAdapter)
        made = own._session
    assert own._owns_session and made is own._session
    given = _Session()
    with _Connector(given) as borrowed:
        assert borrowed._session is given
        assert not isinstance(given.get_adapter("https://shop.example"), WatchedAdapter)
    assert not given.closed
    given.close()


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("nan", None), ("inf", None), ("soon", None),
    ("", None), (None, None),
    ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # in the past: no wait
])
def test_retry_after_reads_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    assert retry_after(headers) == seconds


def test_retry_after_as_a_date_to_come_counts_the_seconds_to_it() -> None:
    """Shopify and WooCommerce read a date too, as the stock service's client did alone."""
    wait = retry_after({"Retry-After": formatdate(time.time() + 120, usegmt=True)})
    assert wait is not None and 110 < wait <= 120
