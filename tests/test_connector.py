"""What every connector shares (xlstock.remote.connector): the session and the notices."""

from __future__ import annotations

import requests

from xlstock.remote.connector import SessionOwner, named_skus
from xlstock.remote.transport import WatchedAdapter


def test_a_notice_names_ten_skus_at_most() -> None:
    assert named_skus("left out", ["A", "B"]) == "2 SKU(s) left out: A, B"
    twelve = [f"S{n}" for n in range(12)]
    assert named_skus("left out", twelve) == (
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
