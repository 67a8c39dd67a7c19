"""The stock service's storage: one SQLite file in WAL mode.

Every state change is one ``BEGIN IMMEDIATE`` transaction, so writers queue behind
each other (``busy_timeout``) while readers keep reading the last committed state.
Each thread gets its own connection. The schema carries its version in
``PRAGMA user_version`` and is brought up to date by :data:`MIGRATIONS`, applied in
order, on first use.

Publishes and orders return an :class:`Outcome` (an HTTP status and a JSON body):
the idempotency record must hold exactly the answer the client got, so the answer is
decided here, inside the same transaction that applies it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlstock.errors import UsageError
from xlstock.model import (
    MAX_LEVEL,
    MAX_NAME_LENGTH,
    MAX_SKU_LENGTH,
    StockItem,
    ValueProblem,
    has_control_characters,
    normalise_shop_url,
)
from xlstock.server.documents import check_order, check_stock_file, error_body, parse_json
from xlstock.stockfile import FORMAT_NAME, FORMAT_VERSION

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE shops (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            epoch TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE tokens (
            hash TEXT PRIMARY KEY,
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE products (
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            sku TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            variant TEXT NOT NULL DEFAULT '',
            qty INTEGER NOT NULL CHECK (qty >= 0),
            active INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (shop_id, sku)
        )""",
        """CREATE TABLE versions (
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            number INTEGER NOT NULL,
            at TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('catalogue', 'publish', 'order')),
            reference TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (shop_id, number)
        )""",
        """CREATE TABLE changes (
            shop_id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            sku TEXT NOT NULL,
            before INTEGER,
            after INTEGER NOT NULL,
            PRIMARY KEY (shop_id, number, sku),
            FOREIGN KEY (shop_id, number) REFERENCES versions(shop_id, number)
        )""",
        """CREATE TABLE orders (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            number INTEGER NOT NULL,
            reference TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL
        )""",
        """CREATE TABLE idempotency (
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            key TEXT NOT NULL,
            action TEXT NOT NULL,
            body_sha256 TEXT NOT NULL,
            status INTEGER NOT NULL,
            response TEXT NOT NULL,
            received_at TEXT NOT NULL,
            applied INTEGER NOT NULL,
            PRIMARY KEY (shop_id, key)
        )""",
        "CREATE INDEX idempotency_received_at ON idempotency (received_at)",
    ),
    (
        # The online account (xlstock/server/accounts.py, issue 10): merchants, their
        # sign-in sessions and failed sign-ins; which account holds a shop and whether
        # its automatic stock updates are on (a shop from `shop add` stays on); what the
        # API tokens page shows of a token, and its revocation. SQL both SQLite and
        # PostgreSQL run; ids of new accounts are given by the writer, not the database.
        """CREATE TABLE accounts (
            id INTEGER NOT NULL PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            must_change_password INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            password_changed_at TEXT NOT NULL
        )""",
        """CREATE TABLE account_sessions (
            id_hash TEXT NOT NULL PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            csrf TEXT NOT NULL,
            created_at TEXT NOT NULL,
            seen_at TEXT NOT NULL
        )""",
        "CREATE INDEX account_sessions_account ON account_sessions (account_id)",
        "CREATE INDEX account_sessions_seen ON account_sessions (seen_at)",
        """CREATE TABLE sign_in_failures (
            at TEXT NOT NULL,
            email TEXT NOT NULL,
            address TEXT NOT NULL
        )""",
        "CREATE INDEX sign_in_failures_email ON sign_in_failures (email, at)",
        "CREATE INDEX sign_in_failures_address ON sign_in_failures (address, at)",
        "CREATE INDEX sign_in_failures_at ON sign_in_failures (at)",
        """CREATE TABLE service_keys (
            name TEXT NOT NULL PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        "ALTER TABLE shops ADD COLUMN account_id INTEGER REFERENCES accounts(id)",
        "ALTER TABLE shops ADD COLUMN stock_updates INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE shops ADD COLUMN low_stock_at INTEGER NOT NULL DEFAULT 5",
        "CREATE UNIQUE INDEX shops_account ON shops (account_id)",
        # The Stock levels page counts, pages and searches a shop's products in SKU order
        # from this index alone (levels are not in it: a publish never writes it).
        "CREATE INDEX products_listing ON products (shop_id, active, sku, name, variant)",
        "ALTER TABLE tokens ADD COLUMN prefix TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tokens ADD COLUMN last_used_at TEXT",
        "ALTER TABLE tokens ADD COLUMN revoked_at TEXT",
    ),
)
"""Schema steps; step N (1-based) brings a database from ``user_version`` N-1 to N.
Append new steps, never edit a released one."""

SCHEMA_VERSION = len(MIGRATIONS)
KEY_RETENTION = dt.timedelta(days=30)
"""How long idempotency keys and publish outcomes are kept (the protocol promises 7 days)."""
BUSY_TIMEOUT_MS = 30_000
HISTORY_LIMIT_MAX = 500


class UnknownShop(LookupError):
    """The shop URL is not registered in this database."""


@dataclass(frozen=True)
class Outcome:
    """The answer to a publish or an order: HTTP status, JSON body, the ``ETag`` to send
    (if any), and whether it is a replay of an earlier answer to the same key."""

    status: int
    body: dict[str, Any]
    etag: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Registration:
    """What :meth:`StockStore.register_shop` did."""

    shop: str
    token: str
    created: bool
    products: int
    added: list[str] = field(default_factory=list)
    levels_changed: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    version: str = ""


def format_time(moment: dt.datetime) -> str:
    """``2026-11-27T10:00:00Z``: UTC, whole seconds, as every document carries it."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def new_token() -> str:
    """A new API token: ``xls_`` and 256 random bits."""
    return "xls_" + secrets.token_urlsafe(32)


def token_prefix(token: str) -> str:
    """What the API tokens page shows of a token: its first 10 characters (6 random ones,
    enough to tell tokens apart, far too few to guess the rest)."""
    return token[:10]


def migrate(conn: sqlite3.Connection, steps: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring the database behind ``conn`` up to ``len(steps)``, one transaction for all
    missing steps; returns the schema version. Refuses a database newer than ``steps``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(steps):
            raise UsageError(
                f"the stock database has schema version {current}, newer than this xlstock "
                f"understands ({len(steps)}); upgrade xlstock"
            )
        for number in range(current + 1, len(steps) + 1):
            for statement in steps[number - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number:d}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return len(steps)


def _tag(number: int, epoch: str) -> str:
    return f"{number}.{epoch}"


@dataclass(frozen=True)
class _Shop:
    id: int
    url: str
    epoch: str
    version: int
    created_at: str

    @property
    def tag(self) -> str:
        return _tag(self.version, self.epoch)


class StockStore:
    """The shops, their tokens, products and levels, and every version of those levels.

    Thread-safe: each thread uses its own connection to the one database file.
    """

    def __init__(
        self, db_path: str | Path, *, clock: Callable[[], dt.datetime] = _utc_now
    ) -> None:
        self.path = Path(db_path)
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            conn = self._conn()
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise UsageError(
                    f"the stock database {self.path} cannot use WAL mode (it is in {mode} "
                    "mode); put it on a local disk"
                )
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise UsageError(
                f"{self.path} is not a stock database xlstock can open ({exc}); "
                "pass --db with another file name"
            ) from exc

    # -- connections and transactions ---------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise RuntimeError("the stock store is closed")
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise UsageError(
                f"cannot open the stock database {self.path} ({exc}); check that its folder "
                "exists and is writable"
            ) from exc
        with self._lock:
            self._connections.append(conn)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def transaction(self, *, write: bool) -> Any:
        """A transaction on this store's database, for the account pages' storage
        (:mod:`xlstock.server.accounts`), which keeps its own SQL."""
        return self._transaction(write=write)

    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    # -- shops and tokens ------------------------------------------------------------

    def _now(self) -> str:
        return format_time(self._clock())

    @staticmethod
    def _shop(conn: sqlite3.Connection, shop_url: str) -> _Shop:
        row = conn.execute(
            "SELECT id, url, epoch, version, created_at FROM shops WHERE url = ?", (shop_url,)
        ).fetchone()
        if row is None:
            raise UnknownShop(shop_url)
        return _Shop(**dict(row))

    def register_shop(
        self, shop_url: str, items: Iterable[StockItem] | None = None, *,
        reference: str = "catalogue",
    ) -> Registration:
        """Register ``shop_url`` (or find it) with a new API token, and load ``items``.

        Listed products get their name, variant and level from ``items``; products the
        shop has that ``items`` lacks are kept as they are. Level changes and new
        products are recorded as one ``catalogue`` version in the history.
        """
        try:
            url = normalise_shop_url(shop_url)
        except ValueProblem as exc:
            raise UsageError(str(exc)) from exc
        catalogue = _check_catalogue(items or ())
        token = new_token()
        now = self._now()
        with self._transaction(write=True) as conn:
            try:
                shop = self._shop(conn, url)
                created = False
            except UnknownShop:
                conn.execute(
                    "INSERT INTO shops (url, epoch, created_at) VALUES (?, ?, ?)",
                    (url, secrets.token_hex(6), now),
                )
                shop = self._shop(conn, url)
                created = True
            conn.execute(
                "INSERT INTO tokens (hash, shop_id, created_at, prefix) VALUES (?, ?, ?, ?)",
                (hash_token(token), shop.id, now, token_prefix(token)),
            )
            current = {
                row["sku"]: row
                for row in conn.execute(
                    "SELECT sku, name, variant, qty FROM products WHERE shop_id = ?", (shop.id,)
                )
            }
            added, changed, renamed = [], [], []
            level_changes: list[tuple[str, int | None, int]] = []
            for item in catalogue:
                old = current.get(item.sku)
                if old is None:
                    added.append(item.sku)
                    level_changes.append((item.sku, None, item.qty))
                    conn.execute(
                        "INSERT INTO products (shop_id, sku, name, variant, qty) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (shop.id, item.sku, item.name, item.variant, item.qty),
                    )
                    continue
                level_differs = old["qty"] != item.qty
                name_differs = (old["name"], old["variant"]) != (item.name, item.variant)
                if level_differs:
                    changed.append(item.sku)
                    level_changes.append((item.sku, old["qty"], item.qty))
                if name_differs:
                    renamed.append(item.sku)
                if level_differs or name_differs:
                    conn.execute(
                        "UPDATE products SET name = ?, variant = ?, qty = ?, active = 1 "
                        "WHERE shop_id = ? AND sku = ?",
                        (item.name, item.variant, item.qty, shop.id, item.sku),
                    )
            number = shop.version
            if added or changed or renamed:
                number = self._new_version(conn, shop, now, "catalogue", reference, level_changes)
            count = conn.execute(
                "SELECT COUNT(*) FROM products WHERE shop_id = ? AND active = 1", (shop.id,)
            ).fetchone()[0]
        return Registration(
            shop=url, token=token, created=created, products=count, added=added,
            levels_changed=changed, renamed=renamed, version=_tag(number, shop.epoch),
        )

    def add_shop(self, shop_url: str, items: Iterable[StockItem] | None = None) -> str:
        """Register ``shop_url`` (loading ``items`` if given) and return a new API token.

        Each call issues another token; earlier tokens stay valid.
        """
        return self.register_shop(shop_url, items).token

    def authenticate(self, token: str) -> str | None:
        """The normalised URL of the shop ``token`` was issued for, or ``None`` (also for a
        revoked token: :meth:`AccountStore.revocation` tells those apart)."""
        digest = hash_token(token)
        row = self._conn().execute(
            "SELECT tokens.hash, shops.url FROM tokens JOIN shops ON shops.id = tokens.shop_id "
            "WHERE tokens.hash = ? AND tokens.revoked_at IS NULL",
            (digest,),
        ).fetchone()
        if row is None or not hmac.compare_digest(row["hash"], digest):
            return None
        return str(row["url"])

    def shops(self) -> list[str]:
        return [row[0] for row in self._conn().execute("SELECT url FROM shops ORDER BY url")]

    # -- reading ---------------------------------------------------------------------

    def current_tag(self, shop_url: str) -> str:
        """The version tag of the shop's levels now (raises :class:`UnknownShop`)."""
        return self._shop(self._conn(), shop_url).tag

    def _version_time(self, conn: sqlite3.Connection, shop: _Shop) -> str:
        row = conn.execute(
            "SELECT at FROM versions WHERE shop_id = ? AND number = ?", (shop.id, shop.version)
        ).fetchone()
        return row["at"] if row else shop.created_at

    def read_levels(self, shop_url: str) -> dict[str, Any]:
        """The stock document: every product with name, variant and level, sorted by SKU.

        ``generated_at`` is the time of the version, so that one version always reads
        as the same bytes (the ``ETag`` is strong).
        """
        with self._transaction(write=False) as conn:
            shop = self._shop(conn, shop_url)
            items = [
                {"sku": row["sku"], "name": row["name"], "variant": row["variant"],
                 "qty": row["qty"]}
                for row in conn.execute(
                    "SELECT sku, name, variant, qty FROM products "
                    "WHERE shop_id = ? AND active = 1 ORDER BY sku",
                    (shop.id,),
                )
            ]
            return {
                "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "shop": shop.url,
                "version": shop.tag, "generated_at": self._version_time(conn, shop),
                "items": items,
            }

    def storefront(self, shop_url: str) -> dict[str, Any]:
        """What a shop page needs: SKU and level of every product (no names, no token)."""
        with self._transaction(write=False) as conn:
            shop = self._shop(conn, shop_url)
            items = [
                {"sku": row["sku"], "qty": row["qty"]}
                for row in conn.execute(
                    "SELECT sku, qty FROM products WHERE shop_id = ? AND active = 1 "
                    "ORDER BY sku",
                    (shop.id,),
                )
            ]
            return {"shop": shop.url, "version": shop.tag, "items": items}

    def history(
        self, shop_url: str, *, limit: int = 50, before: int | None = None
    ) -> dict[str, Any]:
        """The shop's versions, newest first, each with the changes it made."""
        limit = max(1, min(limit, HISTORY_LIMIT_MAX))
        with self._transaction(write=False) as conn:
            shop = self._shop(conn, shop_url)
            rows = conn.execute(
                "SELECT number, at, source, reference FROM versions "
                "WHERE shop_id = ? AND number < ? ORDER BY number DESC LIMIT ?",
                (shop.id, before if before is not None else shop.version + 1, limit),
            ).fetchall()
            versions = []
            for row in rows:
                changes = [
                    {"sku": change["sku"], "before": change["before"], "after": change["after"]}
                    for change in conn.execute(
                        "SELECT sku, before, after FROM changes "
                        "WHERE shop_id = ? AND number = ? ORDER BY sku",
                        (shop.id, row["number"]),
                    )
                ]
                versions.append({
                    "version": _tag(row["number"], shop.epoch), "number": row["number"],
                    "at": row["at"], "source": row["source"], "reference": row["reference"],
                    "changes": changes,
                })
            return {"shop": shop.url, "versions": versions}

    def publish_outcome(self, shop_url: str, key: str) -> dict[str, Any] | None:
        """What the publish sent with ``key`` got, or ``None`` if the key is unknown."""
        with self._transaction(write=False) as conn:
            shop = self._shop(conn, shop_url)
            row = conn.execute(
                "SELECT status, response, received_at, applied FROM idempotency "
                "WHERE shop_id = ? AND key = ? AND action = 'publish'",
                (shop.id, key),
            ).fetchone()
        if row is None:
            return None
        return {
            "key": key, "status": row["status"], "applied": bool(row["applied"]),
            "received_at": row["received_at"], "response": json.loads(row["response"]),
        }

    # -- writing ---------------------------------------------------------------------

    def _new_version(
        self, conn: sqlite3.Connection, shop: _Shop, now: str, source: str, reference: str,
        changes: Iterable[tuple[str, int | None, int]],
    ) -> int:
        number = shop.version + 1
        conn.execute("UPDATE shops SET version = ? WHERE id = ?", (number, shop.id))
        conn.execute(
            "INSERT INTO versions (shop_id, number, at, source, reference) VALUES (?, ?, ?, ?, ?)",
            (shop.id, number, now, source, reference),
        )
        conn.executemany(
            "INSERT INTO changes (shop_id, number, sku, before, after) VALUES (?, ?, ?, ?, ?)",
            [(shop.id, number, sku, before, after) for sku, before, after in changes],
        )
        return number

    def _levels(self, conn: sqlite3.Connection, shop: _Shop) -> dict[str, int]:
        return {
            row["sku"]: row["qty"]
            for row in conn.execute(
                "SELECT sku, qty FROM products WHERE shop_id = ? AND active = 1", (shop.id,)
            )
        }

    def _replay(
        self, conn: sqlite3.Connection, shop: _Shop, key: str, action: str, digest: str
    ) -> Outcome | None:
        row = conn.execute(
            "SELECT action, body_sha256, status, response FROM idempotency "
            "WHERE shop_id = ? AND key = ?",
            (shop.id, key),
        ).fetchone()
        if row is None:
            return None
        if row["action"] != action or not hmac.compare_digest(row["body_sha256"], digest):
            return Outcome(422, error_body(
                "idempotency_key_reused",
                f"the Idempotency-Key {key!r} was already used for another {row['action']} "
                f"of {shop.url} with a different body; send a new key for a new request",
            ))
        body = json.loads(row["response"])
        etag = body.get("version") if row["status"] < 300 else shop.tag
        return Outcome(row["status"], body, etag=etag, replayed=True)

    def _remember(
        self, conn: sqlite3.Connection, shop: _Shop, key: str, action: str, digest: str,
        outcome: Outcome, now: str,
    ) -> None:
        expired = format_time(self._clock() - KEY_RETENTION)
        conn.execute("DELETE FROM idempotency WHERE received_at < ?", (expired,))
        conn.execute(
            "INSERT INTO idempotency (shop_id, key, action, body_sha256, status, response, "
            "received_at, applied) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (shop.id, key, action, digest, outcome.status,
             json.dumps(outcome.body, ensure_ascii=False), now, int(outcome.status < 300)),
        )

    def publish(
        self, shop_url: str, *, key: str, body: bytes, if_match: Collection[str]
    ) -> Outcome:
        """Apply a published stock file if ``if_match`` holds the current tag.

        The whole file is checked before anything is applied; the answer is kept under
        ``key`` so that the same key with the same body replays it and applies nothing.
        """
        digest = hashlib.sha256(body).hexdigest()
        now = self._now()
        with self._transaction(write=True) as conn:
            shop = self._shop(conn, shop_url)
            replay = self._replay(conn, shop, key, "publish", digest)
            if replay is not None:
                return replay
            outcome = self._publish(conn, shop, key, body, if_match, now)
            self._remember(conn, shop, key, "publish", digest, outcome, now)
            return outcome

    def _publish(
        self, conn: sqlite3.Connection, shop: _Shop, key: str, body: bytes,
        if_match: Collection[str], now: str,
    ) -> Outcome:
        if shop.tag not in if_match:
            quoted = ", ".join(sorted(if_match)) or "no strong tag"
            return Outcome(412, error_body(
                "stale_version",
                f"the levels of {shop.url} changed since version {quoted} was read (now "
                f"{shop.tag}); nothing was applied: read the levels again, re-plan and publish "
                "with the new tag and a new Idempotency-Key",
            ), etag=shop.tag)
        document, why = parse_json(body)
        if why:
            return Outcome(422, error_body("invalid_document", why + "; nothing was applied"))
        levels = self._levels(conn, shop)
        checked = check_stock_file(document, shop=shop.url, known_skus=levels)
        if not checked.ok:
            return Outcome(422, checked.error("stock file"))
        changes = [
            (sku, levels[sku], qty) for sku, qty in sorted(checked.levels.items())
            if levels[sku] != qty
        ]
        number = shop.version
        if changes:
            number = self._new_version(conn, shop, now, "publish", key, changes)
            conn.executemany(
                "UPDATE products SET qty = ? WHERE shop_id = ? AND sku = ?",
                [(after, shop.id, sku) for sku, _, after in changes],
            )
        tag = _tag(number, shop.epoch)
        return Outcome(200, {
            "key": key, "version": tag, "published_at": now,
            "changes": [{"sku": s, "before": b, "after": a} for s, b, a in changes],
        }, etag=tag)

    def order(self, shop_url: str, *, body: bytes, key: str | None = None) -> Outcome:
        """Take a storefront order: every line decremented in one transaction, or none
        if any line is short of stock (no oversell). Each order makes a new version."""
        digest = hashlib.sha256(body).hexdigest()
        now = self._now()
        with self._transaction(write=True) as conn:
            shop = self._shop(conn, shop_url)
            if key is not None:
                replay = self._replay(conn, shop, key, "order", digest)
                if replay is not None:
                    return replay
            outcome = self._order(conn, shop, body, now)
            if key is not None:
                self._remember(conn, shop, key, "order", digest, outcome, now)
            return outcome

    def _order(self, conn: sqlite3.Connection, shop: _Shop, body: bytes, now: str) -> Outcome:
        document, why = parse_json(body)
        if why:
            return Outcome(422, error_body("invalid_document", why + "; nothing was taken"))
        levels = self._levels(conn, shop)
        checked = check_order(document, known_skus=levels)
        if not checked.ok:
            return Outcome(422, checked.error("order"))
        short = [
            {"sku": sku, "problem": f"ordered {qty}, {levels[sku]} in stock",
             "requested": qty, "available": levels[sku]}
            for sku, qty in checked.levels.items() if qty > levels[sku]
        ]
        if short:
            return Outcome(409, error_body(
                "insufficient_stock",
                f"{len(short)} line(s) of the order are short of stock in {shop.url}; "
                "nothing was taken: " + "; ".join(f"{s['sku']}: {s['problem']}" for s in short),
                short,
            ))
        cursor = conn.execute(
            "INSERT INTO orders (shop_id, number, reference, at) VALUES (?, ?, ?, ?)",
            (shop.id, shop.version + 1, checked.reference, now),
        )
        order_id = int(cursor.lastrowid or 0)
        changes = [(sku, levels[sku], levels[sku] - qty) for sku, qty in checked.levels.items()]
        number = self._new_version(
            conn, shop, now, "order", checked.reference or f"order-{order_id}", changes
        )
        conn.executemany(
            "UPDATE products SET qty = ? WHERE shop_id = ? AND sku = ?",
            [(after, shop.id, sku) for sku, _, after in changes],
        )
        tag = _tag(number, shop.epoch)
        return Outcome(201, {
            "order": order_id, "version": tag,
            "lines": [{"sku": sku, "qty": checked.levels[sku], "level": after}
                      for sku, _, after in changes],
        }, etag=tag)


def _check_catalogue(items: Iterable[StockItem]) -> list[StockItem]:
    """The catalogue items made canonical (NFC SKUs, trimmed text), or a
    :class:`UsageError` naming every bad one."""
    problems: list[str] = []
    seen: set[str] = set()
    result: list[StockItem] = []
    for item in items:
        sku = unicodedata.normalize("NFC", str(item.sku).strip())
        label = f"SKU {sku!r}"
        if not sku:
            problems.append("a product has an empty SKU")
            continue
        if has_control_characters(sku) or len(sku) > MAX_SKU_LENGTH:
            problems.append(f"{label} has a control character or is over {MAX_SKU_LENGTH} long")
            continue
        if sku in seen:
            problems.append(f"{label} is listed twice")
            continue
        seen.add(sku)
        qty = item.qty
        if isinstance(qty, bool) or not isinstance(qty, int) or not 0 <= qty <= MAX_LEVEL:
            problems.append(f"{label} has level {qty!r}; give a whole number 0..{MAX_LEVEL:,}")
            continue
        texts = [str(item.name or "").strip(), str(item.variant or "").strip()]
        if any(has_control_characters(t) or len(t) > MAX_NAME_LENGTH for t in texts):
            problems.append(f"{label} has a name or variant with control characters or over "
                            f"{MAX_NAME_LENGTH} characters")
            continue
        result.append(StockItem(sku=sku, name=texts[0], variant=texts[1], qty=qty))
    if problems:
        shown = "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else "")
        raise UsageError(f"the catalogue has {len(problems)} problem(s), nothing was loaded: "
                         f"{shown}")
    return result
