"""Issue 19 ("Nothing lost, no one in") on the account pages, against the real service on
loopback (SQLite, then PostgreSQL): a password reset or change ends every session, those
a sign-in opens while it runs included; the sign-in limit holds under parallel tries;
numbers are ASCII digits; a full database never makes a page answer 5xx."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from support.accountkit import NEW_PASSWORD, Merchant

from xlstock.model import StockItem
from xlstock.server import accounts as accounts_module
from xlstock.server.accounts import SIGN_IN_FAILURES_ALLOWED, AccountStore
from xlstock.server.database import SQLiteDatabase
from xlstock.server.runner import RunningServer, ServerSettings, start_background_server

SHOP = "https://guarded.example"


@pytest.fixture
def running(new_db) -> Iterator[RunningServer]:
    with start_background_server(new_db("guards.db"),
                                 settings=ServerSettings(threads=16)) as server:
        yield server


@pytest.fixture
def accounts(running) -> AccountStore:
    return AccountStore(running.store)


@contextmanager
def during_password_checks(monkeypatch: pytest.MonkeyPatch, action: Any) -> Iterator[list]:
    """Run ``action`` once, in the middle of the next password check the service makes
    (the scrypt check a sign-in or a password change does between its transactions)."""
    done: list = []
    started = threading.Event()
    real = accounts_module.verify_password

    def checking(password: str, stored: str) -> bool:
        result = real(password, stored)
        if not started.is_set():
            started.set()
            done.append(action())
        return result

    monkeypatch.setattr(accounts_module, "verify_password", checking)
    yield done
    monkeypatch.setattr(accounts_module, "verify_password", real)


# --- sessions: a reset or a change ends them all ----------------------------------------


def test_a_session_opened_during_a_reset_is_refused(running, accounts, monkeypatch):
    """`xlstock account add EMAIL` (the reset) while a sign-in with the old password is
    being checked: on main the sign-in's session survived the reset (8 of 8 trials)."""
    owner = Merchant(running.url, accounts, "owner@shop.example")
    owner.start()
    thief = Merchant(running.url, accounts, "thief-probe@shop.example")
    thief.email, thief.password = owner.email, NEW_PASSWORD  # knows the old password
    thief.get("/sign-in")
    with during_password_checks(monkeypatch,
                                lambda: accounts.add_account(owner.email)) as reset:
        answer = thief.post("/sign-in", {"email": owner.email, "password": NEW_PASSWORD})
    assert reset, "the reset did not run during the sign-in"
    assert answer.status_code == 401 and "Wrong email or password." in answer.text
    for page in ("/stock", "/password", "/tokens"):
        assert thief.get(page).url.endswith("/account/sign-in"), page
    taken = thief.post("/password", {"new_password": "the thief's own password",
                                     "repeat_password": "the thief's own password"})
    assert taken.url.endswith("/account/sign-in")
    owner.password = reset[0][1]
    assert owner.sign_in().url.endswith("/account/password")  # the reset's password works
    with running.store.transaction(write=False) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM account_sessions s JOIN accounts a "
                            "ON a.id = s.account_id WHERE a.email = ?",
                            (owner.email,)).fetchone()[0]
    assert rows == 1  # the owner's new session only


def test_a_session_reset_while_it_chooses_its_password_may_not_choose_it(running, accounts,
                                                                       monkeypatch):
    """A session alive when its password change starts, reset before the change is
    written: the change is refused and the reset's one-time password stays the key."""
    merchant = Merchant(running.url, accounts, "chooser@shop.example")
    assert merchant.sign_in().url.endswith("/account/password")
    with during_password_checks(monkeypatch,
                                lambda: accounts.add_account(merchant.email)) as reset:
        answer = merchant.post("/password", {"new_password": NEW_PASSWORD,
                                             "repeat_password": NEW_PASSWORD})
    assert reset
    assert answer.url.endswith("/account/sign-in"), answer.url
    assert merchant.sign_in(NEW_PASSWORD).status_code == 401
    assert merchant.sign_in(reset[0][1]).url.endswith("/account/password")


def test_a_sign_in_with_the_old_password_during_a_change_is_refused(running, accounts,
                                                                    monkeypatch):
    """The same race as a reset's, with the merchant choosing a new password while
    someone signs in with the one-time password."""
    merchant = Merchant(running.url, accounts, "changer@shop.example")
    earlier = Merchant(running.url, accounts, "changer-probe@shop.example")
    earlier.email, earlier.password = merchant.email, merchant.password
    assert earlier.sign_in().url.endswith("/account/password")
    assert merchant.sign_in().url.endswith("/account/password")
    other = Merchant(running.url, accounts, "changer-probe2@shop.example")
    other.get("/sign-in")

    def change() -> requests.Response:
        return merchant.post("/password", {"new_password": NEW_PASSWORD,
                                           "repeat_password": NEW_PASSWORD})

    with during_password_checks(monkeypatch, change) as changed:
        answer = other.post("/sign-in", {"email": merchant.email,
                                         "password": merchant.password})
    assert changed and changed[0].url.endswith("done=password"), changed
    assert answer.status_code == 401
    for session in (earlier, other):
        assert session.get("/password").url.endswith("/account/sign-in")
    assert merchant.get("/profile").status_code == 200  # the changer's new session


# --- the sign-in limit under parallel tries --------------------------------------------


def test_forty_parallel_wrong_passwords_get_no_more_checks_than_the_limit(running, accounts):
    """On main, 40 parallel wrong passwords got 12 checks through a limit of 5 a minute."""
    victim = Merchant(running.url, accounts, "parallel@shop.example")
    guessers = []
    for _ in range(40):
        guesser = requests.Session()
        page = guesser.get(running.url + "/account/sign-in", timeout=30).text
        guessers.append((guesser, page.split('name="csrf_token" value="')[1].split('"')[0]))
    start = threading.Barrier(40)

    def guess(pair: tuple[requests.Session, str]) -> int:
        session, csrf = pair
        start.wait(30)
        return session.post(running.url + "/account/sign-in", timeout=60, data={
            "email": victim.email, "password": "wrong password", "csrf_token": csrf,
        }).status_code

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(guess, guessers))
    assert statuses.count(401) <= SIGN_IN_FAILURES_ALLOWED, statuses
    assert statuses.count(401) + statuses.count(429) == 40, statuses
    assert victim.sign_in().status_code == 429  # the right password waits too


def test_a_right_password_does_not_count_as_a_failure(running, accounts):
    merchant = Merchant(running.url, accounts, "often@shop.example")
    merchant.start()
    for _ in range(SIGN_IN_FAILURES_ALLOWED + 2):
        merchant.http.cookies.clear()
        answer = merchant.sign_in()
        assert answer.status_code == 200 and answer.url.endswith("/account/profile")
    with running.store.transaction(write=False) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sign_in_failures").fetchone()[0] == 0


# --- numbers are ASCII digits ------------------------------------------------------------


@pytest.mark.parametrize("digits", ["²", "٣", "１２", "1²", "³⁴", "৩"])
def test_digits_other_than_ascii_are_refused_kindly(running, accounts, digits):
    """`?before=²` on History and `low_stock_at=²` on Services answered an HTML 500
    (``str.isdigit`` takes ``²``, ``int`` does not)."""
    merchant = Merchant(running.url, accounts, f"digits{ord(digits[0])}@shop.example")
    merchant.start(SHOP.replace("guarded", f"digits{ord(digits[0])}"))
    history = merchant.get("/history", params={"before": digits})
    assert history.status_code == 200, history.text[:500]
    services = merchant.post("/services", {"low_stock_at": digits, "stock_updates": "on"})
    assert services.status_code == 422, services.text[:500]
    assert "Give a whole number from 0 to 1,000,000,000." in services.text


def test_the_api_takes_ascii_digits_only(running):
    token = running.store.add_shop(SHOP, [StockItem("A-1", "Hoodie", "", 3)])
    for digits in ("٣", "１", "²"):
        answer = requests.get(running.url + "/v1/history",
                              params={"shop": SHOP, "before": digits, "limit": digits},
                              headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 400, answer.text
        assert "whole number" in answer.json()["error"]["message"]


# --- a full database -------------------------------------------------------------------


def disk_full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    error.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    return error


@contextmanager
def full_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every write of every SQLite stock database fails as SQLite fails on a full disk
    (``database or disk is full``), at the storage layer; reads still work."""

    @contextmanager
    def no_room(self: SQLiteDatabase) -> Iterator[Any]:
        raise disk_full()
        yield  # pragma: no cover

    def no_write(self: SQLiteDatabase, job: Any, *, lock_key: str | None = None) -> Any:
        raise disk_full()

    with monkeypatch.context() as patch:
        patch.setattr(SQLiteDatabase, "transaction", no_room)
        patch.setattr(SQLiteDatabase, "write", no_write)
        yield


def test_a_real_full_sqlite_database_reads_as_full(tmp_path):
    """What the failpoint above raises is what SQLite raises when it has no more room
    (``PRAGMA max_page_count``)."""
    from xlstock.server.database import storage_is_full

    conn = sqlite3.connect(tmp_path / "full.db")
    conn.execute("CREATE TABLE filler (data BLOB)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(sqlite3.OperationalError) as raised:
        for _ in range(100):
            conn.execute("INSERT INTO filler VALUES (zeroblob(4000))")
    conn.close()
    assert str(raised.value) == str(disk_full())
    assert storage_is_full(raised.value) and storage_is_full(disk_full())
    assert not storage_is_full(sqlite3.OperationalError("database is locked"))
    try:
        raise RuntimeError("a write failed") from disk_full()
    except RuntimeError as wrapped:
        assert storage_is_full(wrapped)


def test_with_the_database_full_no_account_page_answers_5xx(tmp_path, monkeypatch):
    """On main, with SQLite's disk full the sign-in page answered 500. Every page still
    reads; what must write answers 429 with Retry-After, a page saying nothing changed."""
    with start_background_server(tmp_path / "full.db") as server:
        accounts = AccountStore(server.store)
        merchant = Merchant(server.url, accounts, "full@shop.example")
        merchant.start(SHOP)
        fresh = Merchant(server.url, accounts, "fresh@shop.example")
        with full_database(monkeypatch):
            fresh_server_page = requests.get(server.url + "/account/sign-in", timeout=30)
            assert fresh_server_page.status_code == 200
            for path in ("/stock", "/profile", "/services", "/tokens", "/history",
                         "/history?before=²", "/stock?search=x"):
                answer = merchant.get(path)
                assert answer.status_code == 200, (path, answer.status_code)
            for path, form in (("/services", {"low_stock_at": "4"}), ("/tokens", {}),
                               ("/profile", {"shop_url": SHOP + "/moved"})):
                answer = merchant.post(path, form)
                assert answer.status_code == 429, (path, answer.status_code)
                assert answer.headers["Retry-After"] == "60"
                assert "its storage is full" in answer.text and "Nothing was changed" in answer.text
            signing_in = fresh.sign_in()
            assert signing_in.status_code == 429 and "storage is full" in signing_in.text
        assert merchant.get("/profile").status_code == 200
        assert fresh.sign_in().url.endswith("/account/password")  # room again: all works
    with full_database(monkeypatch), start_background_server(tmp_path / "full.db") as again:
        page = requests.get(again.url + "/account/sign-in", timeout=30)  # a new process
        assert page.status_code == 200 and 'name="csrf_token"' in page.text
