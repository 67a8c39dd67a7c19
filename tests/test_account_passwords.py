"""Passwords through Werkzeug (issue 23, point 5): new hashes are
:func:`werkzeug.security.generate_password_hash`'s (scrypt, its default); a hash of the
format xlstock wrote before still signs in, and that sign-in replaces it with
Werkzeug's; against the real service on loopback (SQLite, then PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Iterator

import pytest
from support.accountkit import NEW_PASSWORD, Merchant
from werkzeug.security import check_password_hash

from xlstock.server import accounts as accounts_module
from xlstock.server.accounts import (
    SIGN_IN_FAILURES_ALLOWED,
    AccountStore,
    hash_password,
    password_hash_outdated,
    verify_password,
)
from xlstock.server.runner import RunningServer, start_background_server

WERKZEUG_SCRYPT = "scrypt:32768:8:1$"


def legacy_hash(password: str) -> str:
    """A hash as xlstock wrote them before Werkzeug's: ``scrypt$16384$8$1$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1,
                            maxmem=64 * 1024 * 1024, dklen=32)
    return "$".join(["scrypt", "16384", "8", "1", base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


@pytest.fixture
def stock_service(new_db) -> Iterator[RunningServer]:
    """A service of the test's own: the failed sign-ins here count against 127.0.0.1."""
    with start_background_server(new_db("passwords.db")) as running:
        yield running


@pytest.fixture
def accounts(stock_service) -> AccountStore:
    return AccountStore(stock_service.store)


def account_row(accounts: AccountStore, email: str) -> dict:
    with accounts.store.transaction(write=False) as conn:
        row = conn.execute(
            "SELECT password_hash, password_changed_at, session_generation, "
            "must_change_password FROM accounts WHERE email = ?", (email,)).fetchone()
    return dict(zip(("hash", "changed_at", "generation", "one_time"), tuple(row), strict=True))


def with_legacy_password(stock_service, accounts: AccountStore) -> Merchant:
    """A merchant who chose :data:`NEW_PASSWORD` before the move to Werkzeug: its stored
    hash is of the older format."""
    merchant = Merchant(stock_service.url, accounts, f"old-{uuid.uuid4().hex[:10]}@shop.example")
    merchant.start()
    merchant.http.cookies.clear()
    with accounts.store.transaction(write=True) as conn:
        conn.execute("UPDATE accounts SET password_hash = ? WHERE email = ?",
                     (legacy_hash(NEW_PASSWORD), merchant.email))
    return merchant


def test_new_hashes_are_werkzeugs_default_scrypt():
    stored = hash_password(NEW_PASSWORD)
    assert stored.startswith(WERKZEUG_SCRYPT) and NEW_PASSWORD not in stored
    assert check_password_hash(stored, NEW_PASSWORD)
    assert verify_password(NEW_PASSWORD, stored) and not verify_password("other", stored)
    assert not password_hash_outdated(stored)
    # an unknown email is checked against a hash as slow as an account's
    assert accounts_module._DUMMY_HASH.startswith(WERKZEUG_SCRYPT)


def test_older_hashes_verify_and_are_outdated():
    old = legacy_hash(NEW_PASSWORD)
    assert verify_password(NEW_PASSWORD, old) and not verify_password("other", old)
    assert password_hash_outdated(old)
    assert password_hash_outdated("scrypt:16384:8:1$salt$00")  # Werkzeug's, weaker
    for broken in ("", "scrypt$1$2", "scrypt$x$8$1$AA==$AA==", "md5$a$b", "plain"):
        assert not verify_password(NEW_PASSWORD, broken), broken
    assert not verify_password("\ud800 lone surrogate", hash_password(NEW_PASSWORD))


def test_an_older_hash_signs_in_and_is_replaced_by_werkzeugs(stock_service, accounts):
    merchant = with_legacy_password(stock_service, accounts)
    before = account_row(accounts, merchant.email)
    assert before["hash"].startswith("scrypt$16384$8$1$")
    elsewhere = Merchant.__new__(Merchant)  # a session opened before the upgrade
    elsewhere.base, elsewhere.email, elsewhere.password = merchant.base, merchant.email, \
        NEW_PASSWORD
    elsewhere.http, elsewhere.csrf = type(merchant.http)(), ""
    assert elsewhere.sign_in().url.endswith("/account/profile")

    after = account_row(accounts, elsewhere.email)
    assert after["hash"].startswith(WERKZEUG_SCRYPT), after["hash"]
    assert check_password_hash(after["hash"], NEW_PASSWORD)
    # the same password in a new format: not a password change
    assert (after["changed_at"], after["generation"], after["one_time"]) == (
        before["changed_at"], before["generation"], before["one_time"])
    assert merchant.sign_in().url.endswith("/account/profile")
    assert elsewhere.get("/stock").url.endswith("/account/stock")  # still signed in
    assert account_row(accounts, merchant.email)["hash"] == after["hash"]  # upgraded once


def test_a_wrong_password_on_an_older_hash_fails_and_keeps_it(stock_service, accounts):
    merchant = with_legacy_password(stock_service, accounts)
    old = account_row(accounts, merchant.email)["hash"]
    answer = merchant.sign_in("not the password at all")
    assert answer.status_code == 401 and "Wrong email or password." in answer.text
    assert account_row(accounts, merchant.email)["hash"] == old
    assert merchant.sign_in(NEW_PASSWORD).url.endswith("/account/profile")


def test_the_sign_in_limit_holds_for_an_older_hash(stock_service, accounts):
    merchant = with_legacy_password(stock_service, accounts)
    old = account_row(accounts, merchant.email)["hash"]
    for _ in range(SIGN_IN_FAILURES_ALLOWED):
        assert merchant.sign_in("wrong password, long").status_code == 401
    blocked = merchant.sign_in(NEW_PASSWORD)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert account_row(accounts, merchant.email)["hash"] == old  # not checked, not replaced


def test_a_reset_during_the_upgrade_keeps_the_resets_password(stock_service, accounts,
                                                              monkeypatch):
    """The upgrade writes only over the hash it checked: a reset (``xlstock account add``)
    landing between the check and the write wins."""
    merchant = with_legacy_password(stock_service, accounts)
    real = accounts_module.verify_password
    reset: list = []

    def checking(password: str, stored: str) -> bool:
        result = real(password, stored)
        if not reset:
            reset.append(accounts.add_account(merchant.email))
        return result

    monkeypatch.setattr(accounts_module, "verify_password", checking)
    answer = merchant.sign_in(NEW_PASSWORD)
    monkeypatch.setattr(accounts_module, "verify_password", real)
    assert answer.status_code == 401
    stored = account_row(accounts, merchant.email)["hash"]
    assert verify_password(reset[0][1], stored) and not verify_password(NEW_PASSWORD, stored)
