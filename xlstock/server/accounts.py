"""The online account's storage: merchants and their passwords, sign-in sessions, failed
sign-ins, which shop an account holds and its switches, API tokens as the account pages
see them, and the reads behind the Stock levels and History pages.

Every SQL statement of the account feature is here, run through the transactions of the
:class:`~xlstock.server.storage.StockStore` it is given (one database, one schema: the
tables come from the store's migrations). The web pages (:mod:`xlstock.server.account`)
and the API's hooks call these methods and never write SQL.

Passwords are hashed by :func:`werkzeug.security.generate_password_hash` (scrypt, its
default); a hash of the older format verifies and is replaced at the next sign-in.
Session ids and tokens are random (:mod:`secrets`) and stored as their SHA-256 hash only.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from xlstock.errors import MissingExtra, UsageError
from xlstock.model import ValueProblem, has_control_characters, normalise_shop_url
from xlstock.server.database import storage_is_full
from xlstock.server.storage import (
    StockStore,
    WriteAnswer,
    format_time,
    hash_token,
    new_token,
    token_prefix,
)

try:
    from werkzeug.security import check_password_hash, generate_password_hash
except ImportError as exc:  # pragma: no cover - Werkzeug comes with Flask
    raise MissingExtra("server", "the online accounts (Werkzeug)") from exc

log = logging.getLogger("xlstock.server")

API_CODES = ("token_revoked", "stock_updates_off")
"""The API's error codes that come from the account: a revoked token (401) and a shop
whose automatic stock updates are off (403)."""

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 254
SIGN_IN_WINDOW = dt.timedelta(minutes=1)
SIGN_IN_FAILURES_ALLOWED = 5
SESSION_IDLE = dt.timedelta(hours=12)
SESSION_LIFETIME = dt.timedelta(days=7)
SESSION_TOUCH = dt.timedelta(minutes=5)
TOKEN_USE_RECORD_SECONDS = 60.0
"""A token's "last used" is written at most once a minute per token (a write per API
call would queue every sync behind the database's write lock)."""
PUBLIC_ID_LENGTH = 16
DEFAULT_LOW_STOCK_AT = 5
MAX_LOW_STOCK_AT = 1_000_000_000
STOCK_PAGE_SIZE = 100
HISTORY_PAGE_SIZE = 20
CHANGES_SHOWN = 50
UNDOABLE_PUBLISHES = 5
"""The History page offers Undo on the shop's last this-many publishes not undone yet
(older ones: ``xlstock undo`` or the API)."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def revoked_message(revoked_at: str, service_url: str) -> str:
    """The 401 ``token_revoked`` message: revoked, when, and where to get a new token."""
    return (f"this API token was revoked on {revoked_at[:10]} at {revoked_at[11:16]} UTC; "
            f"create a new one on the API tokens page ({service_url.rstrip('/')}/account/tokens)")


def updates_off_message(shop_url: str, service_url: str) -> str:
    """The 403 ``stock_updates_off`` message, naming the page that switches them on."""
    return (f"automatic stock level updates are off for {shop_url}, so the stock service "
            "refuses sync, publish and orders; switch on 'Automatic stock level update' on "
            f"the Services page ({service_url.rstrip('/')}/account/services)")


# -- passwords ----------------------------------------------------------------------


def hash_password(password: str) -> str:
    """The stored form of ``password``: Werkzeug's default (scrypt, ``scrypt:n:r:p$salt$
    hash``), checked by :func:`verify_password`."""
    return generate_password_hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant-time compare);
    ``stored`` in Werkzeug's format, or the older ``scrypt$n$r$p$salt$hash``."""
    try:
        if stored.startswith(_LEGACY_PREFIX):
            return _verify_legacy(password, stored)
        return check_password_hash(stored, password)
    except (ValueError, TypeError):  # a malformed hash, or a password UTF-8 cannot hold
        return False


def password_hash_outdated(stored: str) -> bool:
    """Whether ``stored`` was made another way than :func:`hash_password` makes hashes now
    (the older format, or Werkzeug's older parameters): the next sign-in replaces it."""
    return stored.split("$", 1)[0] != _CURRENT_METHOD


_LEGACY_PREFIX = "scrypt$"
_LEGACY_MAXMEM = 64 * 1024 * 1024


def _verify_legacy(password: str, stored: str) -> bool:
    """The check of hashes xlstock made before it used Werkzeug's (scrypt at n = 2**14,
    the salt and the digest in base64)."""
    _, n, r, p, salt, digest = stored.split("$")
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        password.encode("utf-8", "replace"), salt=base64.b64decode(salt), n=int(n),
        r=int(r), p=int(p), maxmem=_LEGACY_MAXMEM, dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
"""Checked against when the email is unknown, so that an unknown email takes as long to
refuse as a wrong password."""
_CURRENT_METHOD = _DUMMY_HASH.split("$", 1)[0]
"""The method and parameters :func:`hash_password` writes (``scrypt:32768:8:1``)."""


def normalise_email(email: str) -> str:
    """The email as accounts are keyed: trimmed, lower-cased. Raises :class:`UsageError`
    when it does not look like an address."""
    text = (email or "").strip().lower()
    local, at, domain = text.partition("@")
    if (
        not at or not local or "." not in domain or "@" in domain or len(text) > MAX_EMAIL_LENGTH
        or has_control_characters(text) or any(ch.isspace() for ch in text)
    ):
        raise UsageError(f"{email!r} is not an email address; write it like name@shop.example")
    return text


def password_problem(password: str, repeated: str) -> str | None:
    """The message key of what is wrong with a new password, or ``None``."""
    if password != repeated:
        return "passwords_differ"
    if len(password) < MIN_PASSWORD_LENGTH:
        return "password_short"
    if len(password) > MAX_PASSWORD_LENGTH:
        return "password_long"
    return None


# -- what the pages get --------------------------------------------------------------


class Refused(Exception):
    """A form's value is refused: ``key`` names the message (in the pages' strings),
    ``params`` fill it in."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    must_change_password: bool


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its account and the CSRF token its forms carry."""

    account: Account
    csrf: str
    id_hash: str


@dataclass(frozen=True)
class SignIn:
    """What a sign-in attempt got: a new session id (signed in), or how many seconds to
    wait (``blocked``), or neither (wrong email or password)."""

    session_id: str | None = None
    account: Account | None = None
    blocked: int = 0


@dataclass(frozen=True)
class Shop:
    id: int
    url: str
    stock_updates: bool
    low_stock_at: int
    low_stock_mail: bool = True


@dataclass(frozen=True)
class TokenRow:
    public_id: str
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


@dataclass(frozen=True)
class StockRow:
    sku: str
    name: str
    variant: str
    qty: int
    low: bool


@dataclass(frozen=True)
class StockPage:
    rows: list[StockRow]
    total: int
    first_number: int
    has_previous: bool
    has_next: bool


@dataclass(frozen=True)
class Change:
    sku: str
    name: str
    before: int | None
    after: int


@dataclass(frozen=True)
class HistoryEntry:
    number: int
    at: str
    source: str
    reference: str
    changes: list[Change]
    more: int
    undone_at: str | None = None
    undoable: bool = False


@dataclass(frozen=True)
class UndoTarget:
    """A publish the account pages may undo: its version number, key and time, when it
    was undone (if it was), and whether it is one of the last publishes offered."""

    number: int
    key: str
    at: str
    undone_at: str | None
    offered: bool


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry] = field(default_factory=list)
    older: int | None = None


CASELESS_LIKE = {"sqlite": "LIKE", "postgresql": "ILIKE"}
"""The operator matching ignoring ASCII case, by dialect: SQLite's LIKE ignores ASCII
case; PostgreSQL's does not, its ILIKE does (ASCII only in the "C" collation of the
stock database's text columns)."""


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class AccountStore:
    """The account feature's storage, on the database of ``store``."""

    def __init__(
        self, store: StockStore, *, clock: Callable[[], dt.datetime] = _utc_now
    ) -> None:
        self.store = store
        self._clock = clock
        self._token_uses: dict[str, float] = {}
        self._uses_lock = threading.Lock()
        self._form_key: bytes | None = None

    def _now(self) -> str:
        return format_time(self._clock())

    def _tx(self, *, write: bool) -> Any:
        return self.store.transaction(write=write)

    # -- accounts (xlstock account add) ------------------------------------------------

    def add_account(self, email: str) -> tuple[str, str, bool]:
        """Create the account ``email`` (or reset its password if it exists) with a new
        one-time password; returns ``(email, password, created)``. A reset signs the
        account out everywhere."""
        address = normalise_email(email)
        password = secrets.token_urlsafe(12)
        hashed = hash_password(password)
        now = self._now()
        with self._tx(write=True) as conn:
            row = conn.execute("SELECT id FROM accounts WHERE email = ?", (address,)).fetchone()
            if row is None:
                next_id = conn.execute(
                    "SELECT COALESCE(MAX(id), 0) + 1 FROM accounts").fetchone()[0]
                conn.execute(
                    "INSERT INTO accounts (id, email, password_hash, must_change_password, "
                    "created_at, password_changed_at) VALUES (?, ?, ?, 1, ?, ?)",
                    (next_id, address, hashed, now, now),
                )
                return address, password, True
            self._set_password(conn, row["id"], hashed, now, one_time=True)
            return address, password, False

    @staticmethod
    def _set_password(conn: Any, account_id: int, hashed: str, now: str, *,
                      one_time: bool) -> int:
        """Store a new password and end every session of the account: those open now are
        deleted, and the generation moves on, so that a session a sign-in opens with the
        old password meanwhile is refused too. Returns the new generation."""
        conn.execute(
            "UPDATE accounts SET password_hash = ?, must_change_password = ?, "
            "password_changed_at = ?, session_generation = session_generation + 1 "
            "WHERE id = ?",
            (hashed, int(one_time), now, account_id),
        )
        conn.execute("DELETE FROM account_sessions WHERE account_id = ?", (account_id,))
        return int(conn.execute("SELECT session_generation FROM accounts WHERE id = ?",
                                (account_id,)).fetchone()[0])

    # -- signing in and out ----------------------------------------------------------

    def sign_in(self, email: str, password: str, address: str) -> SignIn:
        """Check ``email`` and ``password``; on success open a new session.

        Refused (``blocked`` seconds) after :data:`SIGN_IN_FAILURES_ALLOWED` failures in
        :data:`SIGN_IN_WINDOW` for this email or this network address, whatever the
        password. The limit is counted and the try recorded as a failure in one write
        transaction (writes of the accounts run one at a time), so parallel tries cannot
        pass it together; a right password takes its record back. The password is
        checked outside any transaction (scrypt is slow on purpose; the database's write
        lock is not held meanwhile). A password reset or change between the check and
        the new session refuses the sign-in (the password checked is no longer the
        account's). A hash of an older format is replaced by today's on success."""
        key = (email or "").strip().lower()[:MAX_EMAIL_LENGTH]
        now = self._clock()
        attempt = secrets.token_hex(16)
        with self._tx(write=True) as conn:
            blocked = self._blocked(conn, now, key, address)
            if blocked:
                return SignIn(blocked=blocked)
            conn.execute("DELETE FROM sign_in_failures WHERE at < ?",
                         (format_time(now - SIGN_IN_WINDOW),))
            conn.execute(
                "INSERT INTO sign_in_failures (at, email, address, attempt) "
                "VALUES (?, ?, ?, ?)",
                (format_time(now), key, address, attempt),
            )
            account_row = conn.execute(
                "SELECT id, email, password_hash, must_change_password, session_generation "
                "FROM accounts WHERE email = ?",
                (key,),
            ).fetchone()
        stored = account_row["password_hash"] if account_row is not None else _DUMMY_HASH
        password = password[:MAX_PASSWORD_LENGTH]
        good = verify_password(password, stored) and account_row is not None
        if not good:
            return SignIn()
        assert account_row is not None
        upgraded = hash_password(password) if password_hash_outdated(stored) else None
        account = Account(account_row["id"], account_row["email"],
                          bool(account_row["must_change_password"]))
        with self._tx(write=True) as conn:
            current = conn.execute("SELECT session_generation FROM accounts WHERE id = ?",
                                   (account.id,)).fetchone()
            if current is None or current[0] != account_row["session_generation"]:
                return SignIn()  # reset meanwhile: the attempt stays a failure
            conn.execute("DELETE FROM sign_in_failures WHERE attempt = ?", (attempt,))
            if upgraded is not None:  # the same password, in today's format
                conn.execute("UPDATE accounts SET password_hash = ? "
                             "WHERE id = ? AND password_hash = ?",
                             (upgraded, account.id, stored))
            session_id = self._open_session(conn, account.id, current[0])
        return SignIn(session_id=session_id, account=account)

    @staticmethod
    def _blocked(conn: Any, now: dt.datetime, email: str, address: str) -> int:
        """Seconds to wait before the next try of ``email`` from ``address`` (0: none)."""
        since = format_time(now - SIGN_IN_WINDOW)
        oldest = []
        for column, value in (("email", email), ("address", address)):
            row = conn.execute(
                f"SELECT COUNT(*) AS n, MIN(at) AS oldest FROM sign_in_failures "
                f"WHERE {column} = ? AND at >= ?",
                (value, since),
            ).fetchone()
            if row["n"] >= SIGN_IN_FAILURES_ALLOWED:
                oldest.append(row["oldest"])
        if not oldest:
            return 0
        first = dt.datetime.strptime(min(oldest), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc)
        return max(1, int((first + SIGN_IN_WINDOW - now).total_seconds()) + 1)

    def _open_session(self, conn: Any, account_id: int, generation: int) -> str:
        now = self._clock()
        conn.execute(
            "DELETE FROM account_sessions WHERE seen_at < ? OR created_at < ?",
            (format_time(now - SESSION_IDLE), format_time(now - SESSION_LIFETIME)),
        )
        session_id = secrets.token_urlsafe(32)
        conn.execute(
            "INSERT INTO account_sessions (id_hash, account_id, csrf, created_at, seen_at, "
            "generation) VALUES (?, ?, ?, ?, ?, ?)",
            (hash_token(session_id), account_id, secrets.token_urlsafe(32), format_time(now),
             format_time(now), generation),
        )
        return session_id

    def session(self, session_id: str) -> Session | None:
        """The signed-in session ``session_id`` names, or ``None`` (unknown, expired after
        :data:`SESSION_IDLE` unused or :data:`SESSION_LIFETIME`, or ended by a password
        reset or change: of an older generation than its account's)."""
        if not session_id or len(session_id) > 100:
            return None
        digest = hash_token(session_id)
        now = self._clock()
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT s.id_hash, s.csrf, s.created_at, s.seen_at, a.id, a.email, "
                "a.must_change_password FROM account_sessions s "
                "JOIN accounts a ON a.id = s.account_id "
                "WHERE s.id_hash = ? AND s.generation = a.session_generation",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row["id_hash"], digest):
            return None
        if (row["seen_at"] < format_time(now - SESSION_IDLE)
                or row["created_at"] < format_time(now - SESSION_LIFETIME)):
            return None
        if row["seen_at"] < format_time(now - SESSION_TOUCH):
            self._touch(digest, now)
        account = Account(row["id"], row["email"], bool(row["must_change_password"]))
        return Session(account=account, csrf=row["csrf"], id_hash=digest)

    def _touch(self, digest: str, now: dt.datetime) -> None:
        """Note that the session was just used; a database that cannot write (its disk
        full) leaves it as it was, and the page is served all the same."""
        try:
            with self._tx(write=True) as conn:
                conn.execute("UPDATE account_sessions SET seen_at = ? WHERE id_hash = ?",
                             (format_time(now), digest))
        except Exception as exc:
            if not storage_is_full(exc):
                raise
            log.warning("could not note a session's use: the stock database is full")

    def end_session(self, session: Session) -> None:
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM account_sessions WHERE id_hash = ?", (session.id_hash,))

    def change_password(self, session: Session, password: str) -> str | None:
        """Set the account's password (no longer one-time), end all its sessions, and
        open a new one; returns the new session id, or ``None`` when ``session`` was
        ended meanwhile (a reset: it may not choose the password). Raises
        :class:`Refused` ``same_password`` when it is the current password."""
        account = session.account
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT password_hash FROM accounts WHERE id = ?",
                               (account.id,)).fetchone()
        if row is not None and verify_password(password, row["password_hash"]):
            raise Refused("same_password")
        hashed = hash_password(password)
        with self._tx(write=True) as conn:
            alive = conn.execute(
                "SELECT 1 FROM account_sessions s JOIN accounts a ON a.id = s.account_id "
                "WHERE s.id_hash = ? AND s.generation = a.session_generation",
                (session.id_hash,),
            ).fetchone()
            if alive is None:
                return None
            generation = self._set_password(conn, account.id, hashed, self._now(),
                                            one_time=False)
            return self._open_session(conn, account.id, generation)

    def form_key(self) -> bytes:
        """The service's key for signing the sign-in form's CSRF token (made once, kept in
        the database so that every service process shares it)."""
        if self._form_key is None:
            with self._tx(write=False) as conn:
                row = conn.execute("SELECT value FROM service_keys WHERE name = 'form'"
                                   ).fetchone()
            if row is not None:
                self._form_key = bytes.fromhex(row[0])
                return self._form_key
            with self._tx(write=True) as conn:
                conn.execute(
                    "INSERT INTO service_keys (name, value) VALUES ('form', ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (secrets.token_hex(32),),
                )
                value = conn.execute(
                    "SELECT value FROM service_keys WHERE name = 'form'").fetchone()[0]
            self._form_key = bytes.fromhex(value)
        return self._form_key

    # -- the shop: profile and services ----------------------------------------------

    def shop_of(self, account: Account) -> Shop | None:
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT id, url, stock_updates, low_stock_at, low_stock_mail FROM shops "
                "WHERE account_id = ?", (account.id,),
            ).fetchone()
        if row is None:
            return None
        return Shop(row["id"], row["url"], bool(row["stock_updates"]), row["low_stock_at"],
                    bool(row["low_stock_mail"]))

    def save_shop_url(self, account: Account, raw_url: str, proof: str = "") -> tuple[str, str]:
        """Register, claim or move the account's shop to ``raw_url``; returns
        ``(what, url)`` with ``what`` one of ``registered`` (a new shop, updates off),
        ``claimed`` (a shop ``xlstock shop add`` registered, updates as they were),
        ``moved`` (the account's stock now under the new URL) or ``unchanged``.

        Claiming takes proof that the account may hold the shop: ``proof`` must be an
        API token of that shop, not revoked (the one ``xlstock shop add`` printed, which
        only its operator has). Raises :class:`Refused` ``not_web_address``,
        ``held_by_another``, ``claim_needs_token`` (no such token given) or
        ``registered_apart`` (the URL holds another shop's stock and the account already
        has stock of its own: they cannot be merged)."""
        text = (raw_url or "").strip()
        try:
            url = normalise_shop_url(text)
        except ValueProblem as exc:
            raise Refused("not_web_address", url=text[:200]) from exc
        now = self._now()
        with self._tx(write=True) as conn:
            mine = conn.execute("SELECT id, url FROM shops WHERE account_id = ?",
                                (account.id,)).fetchone()
            there = conn.execute("SELECT id, account_id FROM shops WHERE url = ?",
                                 (url,)).fetchone()
            if there is not None:
                if there["account_id"] == account.id:
                    return "unchanged", url
                if there["account_id"] is not None:
                    raise Refused("held_by_another", url=url)
                if mine is not None:
                    raise Refused("registered_apart", url=url)
                if not self._proves(conn, there["id"], proof):
                    raise Refused("claim_needs_token", url=url)
                conn.execute("UPDATE shops SET account_id = ? WHERE id = ?",
                             (account.id, there["id"]))
                return "claimed", url
            if mine is None:
                conn.execute(
                    "INSERT INTO shops (url, epoch, created_at, account_id, stock_updates) "
                    "VALUES (?, ?, ?, ?, 0)",
                    (url, secrets.token_hex(6), now, account.id),
                )
                return "registered", url
            conn.execute("UPDATE shops SET url = ? WHERE id = ?", (url, mine["id"]))
            return "moved", url

    @staticmethod
    def _proves(conn: Any, shop_id: int, proof: str) -> bool:
        """Whether ``proof`` is an API token of the shop ``shop_id``, not revoked."""
        proof = (proof or "").strip()
        if not proof or len(proof) > 200:
            return False
        digest = hash_token(proof)
        row = conn.execute(
            "SELECT hash FROM tokens WHERE hash = ? AND shop_id = ? AND revoked_at IS NULL",
            (digest, shop_id),
        ).fetchone()
        return row is not None and hmac.compare_digest(row["hash"], digest)

    def save_services(self, shop: Shop, *, stock_updates: bool, low_stock_at: int,
                      low_stock_mail: bool | None = None) -> None:
        """Save the Services page's switches (``low_stock_mail`` ``None``: as it was)."""
        mail = shop.low_stock_mail if low_stock_mail is None else low_stock_mail
        with self._tx(write=True) as conn:
            conn.execute(
                "UPDATE shops SET stock_updates = ?, low_stock_at = ?, low_stock_mail = ? "
                "WHERE id = ?",
                (int(stock_updates), low_stock_at, int(mail), shop.id),
            )

    def save_language(self, account: Account, language: str) -> None:
        """Remember the language the account chose on its pages: its e-mails are in it."""
        with self._tx(write=True) as conn:
            conn.execute("UPDATE accounts SET language = ? WHERE id = ? AND language <> ?",
                         (language, account.id, language))

    def language_of(self, account: Account) -> str:
        """The language the account last chose on its pages (``en`` until it chose)."""
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT language FROM accounts WHERE id = ?",
                               (account.id,)).fetchone()
        return str(row["language"]) if row else "en"

    # -- API tokens ------------------------------------------------------------------

    def create_token(self, shop: Shop) -> str:
        """A new API token for the shop (shown once: only its hash is kept)."""
        token = new_token()
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT INTO tokens (hash, shop_id, created_at, prefix) VALUES (?, ?, ?, ?)",
                (hash_token(token), shop.id, self._now(), token_prefix(token)),
            )
        return token

    def tokens(self, shop: Shop, *, revoked: bool, limit: int = 200) -> list[TokenRow]:
        """The shop's tokens in use (or revoked ones), newest first."""
        condition = "revoked_at IS NOT NULL" if revoked else "revoked_at IS NULL"
        order = "revoked_at DESC" if revoked else "created_at DESC"
        with self._tx(write=False) as conn:
            rows = conn.execute(
                f"SELECT hash, prefix, created_at, last_used_at, revoked_at FROM tokens "
                f"WHERE shop_id = ? AND {condition} ORDER BY {order}, hash LIMIT ?",
                (shop.id, limit),
            ).fetchall()
        return [TokenRow(row["hash"][:PUBLIC_ID_LENGTH], row["prefix"], row["created_at"],
                         row["last_used_at"], row["revoked_at"]) for row in rows]

    def revoke_token(self, shop: Shop, public_id: str) -> TokenRow | None:
        """Revoke the shop's token ``public_id`` (refused by the API from now on); ``None``
        when the shop has no such token. Revoking a revoked token changes nothing."""
        if len(public_id) != PUBLIC_ID_LENGTH or not all(c in "0123456789abcdef"
                                                          for c in public_id):
            return None
        with self._tx(write=True) as conn:
            row = conn.execute(
                "SELECT hash, prefix, created_at, last_used_at, revoked_at FROM tokens "
                "WHERE shop_id = ? AND SUBSTR(hash, 1, ?) = ?",
                (shop.id, PUBLIC_ID_LENGTH, public_id),
            ).fetchone()
            if row is None:
                return None
            revoked_at = row["revoked_at"] or self._now()
            if row["revoked_at"] is None:
                conn.execute("UPDATE tokens SET revoked_at = ? WHERE hash = ?",
                             (revoked_at, row["hash"]))
        return TokenRow(public_id, row["prefix"], row["created_at"], row["last_used_at"],
                        revoked_at)

    # -- hooks for the API -----------------------------------------------------------

    def revocation(self, token: str) -> str | None:
        """When ``token`` was revoked, or ``None`` if it never was (or is unknown)."""
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT revoked_at FROM tokens WHERE hash = ?",
                               (hash_token(token),)).fetchone()
        return None if row is None else row["revoked_at"]

    def note_token_used(self, token: str) -> None:
        """Record that ``token`` was just used (at most once a minute per token; a failure
        to record it never fails the request)."""
        digest = hash_token(token)
        moment = time.monotonic()
        with self._uses_lock:
            last = self._token_uses.get(digest)
            if last is not None and moment - last < TOKEN_USE_RECORD_SECONDS:
                return
            self._token_uses[digest] = moment
        try:
            with self._tx(write=True) as conn:
                conn.execute("UPDATE tokens SET last_used_at = ? WHERE hash = ?",
                             (self._now(), digest))
        except Exception:  # noqa: BLE001 - bookkeeping only: the request goes on
            log.warning("could not record a token's last use", exc_info=True)

    def stock_updates_on(self, shop_url: str) -> bool:
        """Whether the shop takes sync, publish and orders (an unknown shop: ``True``,
        the API refuses it on its own terms)."""
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT stock_updates FROM shops WHERE url = ?",
                               (shop_url,)).fetchone()
        return row is None or bool(row["stock_updates"])

    # -- pages: stock levels and history ---------------------------------------------

    def stock_page(
        self, shop: Shop, *, search: str = "", after: str | None = None,
        before: str | None = None, last: bool = False, size: int = STOCK_PAGE_SIZE,
    ) -> StockPage:
        """One page of the shop's products in SKU order: the first, the one after SKU
        ``after``, the one before SKU ``before``, or the ``last``. ``search`` keeps the
        products whose SKU, name or variant holds it (ASCII case ignored).

        Without a search a page is an index range (keyset, ``LIMIT``) and two counts on
        the ``products_listing`` index. A search reads that index once, in SKU order,
        keeping the matching SKUs (the count needs them all); the page is cut from those
        in Python and its rows read by key."""
        with self._tx(write=False) as conn:
            if search:
                page = self._searched_page(conn, shop, search, after, before, last, size,
                                           CASELESS_LIKE[self.store.dialect])
            else:
                page = self._listed_page(conn, shop, after, before, last, size)
        total, first_number, rows, has_previous, has_next = page
        return StockPage(
            rows=[StockRow(r["sku"], r["name"], r["variant"], r["qty"],
                           r["qty"] <= shop.low_stock_at) for r in rows],
            total=total, first_number=first_number, has_previous=has_previous,
            has_next=has_next,
        )

    @staticmethod
    def _listed_page(
        conn: Any, shop: Shop, after: str | None, before: str | None, last: bool, size: int,
    ) -> tuple[int, int, list[Any], bool, bool]:
        where = "shop_id = ? AND active = 1"
        columns = "sku, name, variant, qty"
        total = conn.execute(f"SELECT COUNT(*) FROM products WHERE {where}",
                             (shop.id,)).fetchone()[0]
        if before is not None or last:
            bound, params = ((" AND sku < ?", (shop.id, before)) if before is not None
                             else ("", (shop.id,)))
            rows = conn.execute(
                f"SELECT {columns} FROM products WHERE {where}{bound} ORDER BY sku DESC "
                "LIMIT ?", (*params, size + 1)).fetchall()
            has_previous = len(rows) > size
            rows = list(reversed(rows[:size]))
            has_next = bool(rows) and not last
        else:
            bound, params = ((" AND sku > ?", (shop.id, after)) if after is not None
                             else ("", (shop.id,)))
            rows = conn.execute(
                f"SELECT {columns} FROM products WHERE {where}{bound} ORDER BY sku LIMIT ?",
                (*params, size + 1)).fetchall()
            has_next = len(rows) > size
            rows = rows[:size]
            has_previous = after is not None and total > 0
        first_number = 1
        if rows and has_previous:
            first_number = conn.execute(
                f"SELECT COUNT(*) FROM products WHERE {where} AND sku < ?",
                (shop.id, rows[0]["sku"])).fetchone()[0] + 1
        return total, first_number, rows, has_previous, has_next

    @staticmethod
    def _searched_page(
        conn: Any, shop: Shop, search: str, after: str | None, before: str | None,
        last: bool, size: int, like: str,
    ) -> tuple[int, int, list[Any], bool, bool]:
        pattern = _like_pattern(search)
        matches = [row[0] for row in conn.execute(
            f"SELECT sku FROM products WHERE shop_id = ? AND active = 1 AND "
            f"(sku {like} ? ESCAPE '\\' OR name {like} ? ESCAPE '\\' "
            f"OR variant {like} ? ESCAPE '\\') ORDER BY sku",
            (shop.id, pattern, pattern, pattern),
        )]
        total = len(matches)
        if last:
            start = max(0, total - size)
        elif before is not None:
            start = max(0, bisect.bisect_left(matches, before) - size)
        elif after is not None:
            start = bisect.bisect_right(matches, after)
        else:
            start = 0
        chosen = matches[start:start + size]
        rows: list[Any] = []
        if chosen:
            marks = ", ".join("?" * len(chosen))
            rows = conn.execute(
                f"SELECT sku, name, variant, qty FROM products WHERE shop_id = ? "
                f"AND sku IN ({marks}) ORDER BY sku", (shop.id, *chosen)).fetchall()
        return total, start + 1, rows, start > 0, start + size < total

    def history_page(
        self, shop: Shop, *, before: int | None = None, size: int = HISTORY_PAGE_SIZE,
        changes_shown: int = CHANGES_SHOWN,
    ) -> HistoryPage:
        """The shop's versions (publishes, orders, catalogue loads), newest first, each
        with up to ``changes_shown`` of the levels it changed."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT number, at, source, reference FROM versions WHERE shop_id = ? "
                + ("AND number < ? " if before is not None else "")
                + "ORDER BY number DESC LIMIT ?",
                [shop.id, *([before] if before is not None else []), size + 1],
            ).fetchall()
            entries = []
            for row in rows[:size]:
                changes = conn.execute(
                    "SELECT c.sku, c.before, c.after, p.name, p.variant FROM changes c "
                    "LEFT JOIN products p ON p.shop_id = c.shop_id AND p.sku = c.sku "
                    "WHERE c.shop_id = ? AND c.number = ? ORDER BY c.sku LIMIT ?",
                    (shop.id, row["number"], changes_shown + 1),
                ).fetchall()
                more = 0
                if len(changes) > changes_shown:
                    more = conn.execute(
                        "SELECT COUNT(*) FROM changes WHERE shop_id = ? AND number = ?",
                        (shop.id, row["number"]),
                    ).fetchone()[0] - changes_shown
                entries.append(HistoryEntry(
                    number=row["number"], at=row["at"], source=row["source"],
                    reference=row["reference"],
                    changes=[Change(c["sku"], " / ".join(t for t in (c["name"], c["variant"])
                                                        if t), c["before"], c["after"])
                             for c in changes[:changes_shown]],
                    more=more,
                ))
            undone, offered = self._undo_state(conn, shop)
        entries = [replace(entry, undone_at=undone.get(entry.number),
                           undoable=entry.number in offered) for entry in entries]
        older = rows[size - 1]["number"] if len(rows) > size else None
        return HistoryPage(entries=entries, older=older)

    @staticmethod
    def _undo_state(conn: Any, shop: Shop) -> tuple[dict[int, str], set[int]]:
        """Publish number -> when it was undone, for the shop's last
        :data:`UNDOABLE_PUBLISHES` publishes; and those of them not undone."""
        last = [row["number"] for row in conn.execute(
            "SELECT number FROM versions WHERE shop_id = ? AND source = 'publish' "
            "ORDER BY number DESC LIMIT ?", (shop.id, UNDOABLE_PUBLISHES))]
        if not last:
            return {}, set()
        undone = {row["publish_number"]: row["at"] for row in conn.execute(
            "SELECT publish_number, at FROM undos WHERE shop_id = ? AND publish_number >= ?",
            (shop.id, min(last)))}
        return undone, {number for number in last if number not in undone}

    def undo_target(self, shop: Shop, number: int) -> UndoTarget | None:
        """The shop's publish of version ``number``, or ``None`` when that version is not
        one of its publishes."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT number, at, reference FROM versions WHERE shop_id = ? AND number = ? "
                "AND source = 'publish'", (shop.id, number)).fetchone()
            if row is None:
                return None
            undone = conn.execute(
                "SELECT at FROM undos WHERE shop_id = ? AND publish_number = ?",
                (shop.id, number)).fetchone()
            _, offered = self._undo_state(conn, shop)
        return UndoTarget(number=row["number"], key=row["reference"], at=row["at"],
                          undone_at=undone["at"] if undone else None,
                          offered=number in offered)

    def undo_publish(self, shop: Shop, target: UndoTarget, *, key: str | None,
                     preview: bool, confirm_partial: bool = False) -> WriteAnswer:
        """What undoing ``target`` would do (``preview``), or the undo done under
        ``key`` (see :meth:`StockStore.undo_publish`, which decides both)."""
        body = json.dumps({"confirm_partial": confirm_partial, "preview": preview},
                          separators=(",", ":")).encode()
        return self.store.undo_publish(shop.url, target.key, key=key, body=body)
