"""The stock service's storage: shops, tokens, products and levels, and every version
of those levels, behind a :class:`~xlstock.server.database.Database` (SQLite by default).

Every state change is one short write transaction that reads and writes only what it
needs: an order reads and writes the rows of the SKUs it names, a publish those of the
SKUs in its stock file. Request bodies are parsed and checked for shape before the
transaction begins. Reads (sync, storefront, history, outcomes) run in read
transactions that never take the write lock.

Publishes and orders return a :class:`WriteAnswer` (an HTTP status and a JSON body):
the idempotency record must hold exactly the answer the client got, so the answer is
decided here, inside the same transaction that applies it.

What a shop can store is bounded: every request body is capped (by the web layer); a
refused request stores its key, the hash of its body, its status and its answer, whose
error listing is capped at :data:`~xlstock.server.documents.MAX_ERROR_BYTES`; and each
shop may write at most ``daily_quota`` bytes a day (counted from what each write
stores), after which writes are refused with 429 until midnight UTC. Idempotency
records older than :data:`KEY_RETENTION` are pruned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xlstock.errors import UsageError
from xlstock.i18n import _
from xlstock.model import (
    MAX_LEVEL,
    MAX_NAME_LENGTH,
    ValueProblem,
    has_control_characters,
    normalise_shop_url,
    sku_key,
    sku_problem,
    too_many_skus,
)
from xlstock.server.database import Database, in_lists, migrate, open_database
from xlstock.server.documents import (
    Checked,
    Line,
    check_order,
    check_stock_file,
    error_body,
    parse_json,
    unknown_skus,
)
from xlstock.server.lowstock import record_crossings, save_thresholds
from xlstock.server.schema import MIGRATIONS, SCHEMA_VERSION
from xlstock.stockfile import FORMAT_NAME, FORMAT_VERSION

log = logging.getLogger("xlstock.server")

__all__ = [
    "KEY_RETENTION", "MIGRATIONS", "SCHEMA_VERSION", "DEFAULT_DAILY_QUOTA", "WriteAnswer",
    "Registration", "StockStore", "UnknownShop", "LevelChangesRefused", "hash_token",
    "migrate", "UndoOptions", "undo_options", "UNDO_REFERENCE",
]

KEY_RETENTION = dt.timedelta(days=30)
"""How long idempotency keys and publish outcomes are kept (the protocol promises 7 days)."""
PRUNE_INTERVAL = dt.timedelta(seconds=60)
PRUNE_BATCH = 5000
DEFAULT_DAILY_QUOTA = 256 * 1024 * 1024
"""Bytes one shop may store in a UTC day (publishes, orders, refusals), by default."""
HISTORY_LIMIT_MAX = 500
CHANGES_WINDOW = 100_000
"""How many versions back a Sync may name (``GET /v1/stock?since=``) and get the levels
changed since; from further back, or from a version whose history is gone, it gets the
whole stock document."""
LEVEL_CHANGES_MIN = 20
"""A catalogue changing at least this many existing levels, and more than half of
them, needs ``allow_level_changes`` (the workbook's mass-change guard, for shop add)."""
UNDO_REFERENCE = "undo of publish {key}"
"""The reference of the version an undo makes (its source is ``undo``)."""
_VERSION_COST = 160
_CHANGE_COST = 64


class UnknownShop(LookupError):
    """The shop URL is not registered in this database."""


class LevelChangesRefused(UsageError):
    """A catalogue would change many existing levels; it needs ``allow_level_changes``."""


class _Item(Protocol):
    """A catalogue product: :class:`~xlstock.model.StockItem` or
    :class:`~xlstock.model.CatalogueItem` (whose ``qty`` may be ``None``)."""

    @property
    def sku(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def qty(self) -> int | None: ...


@dataclass(frozen=True)
class WriteAnswer:
    """The answer to a publish or an order: HTTP status, JSON body, the ``ETag`` to send
    (if any), extra headers, and whether it replays an earlier answer to the same key.

    Not the client's :class:`~xlstock.remote.PublishOutcome` (what became of one
    publish, read by the merchant's side): this is the service's reply on the wire, to
    any write, refusals included, kept byte for byte under the write's idempotency key
    so that a replay gets the very same answer."""

    status: int
    body: dict[str, Any]
    etag: str | None = None
    replayed: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Registration:
    """What :meth:`StockStore.register_shop` did. ``levels_left`` are the existing
    products whose level the catalogue left as it was; ``without_quantity`` counts the
    catalogue's products that gave no quantity. ``token`` is the new API token, or
    ``None`` when none was made (an existing shop, ``another_token`` false)."""

    shop: str
    token: str | None
    created: bool
    products: int
    added: list[str] = field(default_factory=list)
    levels_changed: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    levels_left: list[str] = field(default_factory=list)
    without_quantity: int = 0
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


def _tag(number: int, epoch: str) -> str:
    return f"{number}.{epoch}"


def _tag_number(tag: str) -> int | None:
    """The version number of a tag made by :func:`_tag`, or ``None``."""
    number, dot, _ = tag.partition(".")
    if not dot or not number.isascii() or not number.isdigit() or len(number) > 15:
        return None
    return int(number)


@dataclass
class _Shop:
    """A shop's row, read at the start of a transaction; a write changes ``version``,
    ``order_count`` and ``stored`` here and saves them once, at the end."""

    id: int
    url: str
    epoch: str
    version: int
    created_at: str
    order_count: int
    usage_day: str
    usage_bytes: int
    stored: int = 0

    @property
    def tag(self) -> str:
        return _tag(self.version, self.epoch)


_SHOP_COLUMNS = "id, url, epoch, version, created_at, order_count, usage_day, usage_bytes"


class StockStore:
    """The shops, their tokens, products and levels, and every version of those levels.

    ``db`` is a database file (SQLite) or a :class:`~xlstock.server.database.Database`.
    Thread-safe: each thread uses its own connection. ``daily_quota`` bounds the bytes
    one shop may store in a UTC day. ``low_stock_mail``: queue the low-stock crossings
    of orders and publishes for e-mail (:mod:`xlstock.server.lowstock`); on when the
    service has an SMTP server to send them.
    """

    def __init__(
        self, db: str | Path | Database, *, clock: Callable[[], dt.datetime] = _utc_now,
        daily_quota: int = DEFAULT_DAILY_QUOTA, low_stock_mail: bool = False,
    ) -> None:
        self._db: Database = open_database(db) if isinstance(db, (str, Path)) else db
        self.path = Path(getattr(self._db, "path", None) or "")
        self.description = self._db.description
        self.dialect = self._db.dialect
        self._clock = clock
        self.daily_quota = int(daily_quota)
        self.low_stock_mail = low_stock_mail
        self.changes_window = CHANGES_WINDOW
        self._prune_lock = threading.Lock()
        self._next_prune = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        try:
            self._db.migrate(MIGRATIONS)
            self._normalise_old_urls()
        except BaseException:
            self._db.close()
            raise

    def _normalise_old_urls(self) -> None:
        """Give the shops registered before a trailing dot after the host was dropped
        (``https://shop.example.``) their normal address, so that every lookup, which
        normalises the address it is given, finds them. A shop whose normal address
        another shop holds already keeps its row as it was (its tokens then answer 403
        naming its old address), and a warning names both."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT id, url FROM shops WHERE url LIKE '%.' OR url LIKE '%.:%' "
                "OR url LIKE '%./%'").fetchall()
        for row in rows:
            try:
                url = normalise_shop_url(row["url"])
            except ValueProblem:
                continue
            if url == row["url"]:
                continue
            with self._db.transaction() as conn:
                taken = conn.execute("SELECT id FROM shops WHERE url = ?", (url,)).fetchone()
                if taken is None:
                    conn.execute("UPDATE shops SET url = ? WHERE id = ? AND url = ?",
                                 (url, row["id"], row["url"]))
            if taken is None:
                log.info("the shop %s is now registered as %s", row["url"], url)
            else:
                log.warning(
                    "the shops %s and %s are one address now; requests go to %s, and the "
                    "stock of %s is kept but no longer reached (docs/deploy.md)",
                    row["url"], url, url, row["url"])

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        self._db.close()

    def transaction(self, *, write: bool) -> Any:
        """A transaction on this store's database, for the account pages' storage
        (:mod:`xlstock.server.accounts`), which keeps its own SQL. A write one runs on
        the calling thread, outside the group commit: account pages write rarely, and
        their code reads and writes in turn."""
        return self._db.transaction() if write else self._db.read()

    def schema_version(self) -> int:
        return self._db.schema_version()

    # -- shops and tokens ------------------------------------------------------------

    def _now(self) -> str:
        return format_time(self._clock())

    @staticmethod
    def _shop(conn: Any, shop_url: str, lock: str = "") -> _Shop:
        row = conn.execute(
            f"SELECT {_SHOP_COLUMNS} FROM shops WHERE url = ?{lock}", (shop_url,)
        ).fetchone()
        if row is None:
            raise UnknownShop(shop_url)
        return _Shop(**dict(row))

    @staticmethod
    def _save_shop(conn: Any, shop: _Shop) -> None:
        conn.execute(
            "UPDATE shops SET version = ?, order_count = ?, usage_day = ?, usage_bytes = ? "
            "WHERE id = ?",
            (shop.version, shop.order_count, shop.usage_day, shop.usage_bytes, shop.id),
        )

    def register_shop(
        self, shop_url: str, items: Iterable[_Item] | None = None, *,
        reference: str = "catalogue", allow_level_changes: bool = False,
        another_token: bool = True,
    ) -> Registration:
        """Register ``shop_url`` (or find it) and load ``items``. A new shop gets an API
        token; an existing one gets another only with ``another_token``.

        Listed products get their name and variant from ``items``, and their level when
        the item gives one (``qty`` not ``None``); a new product without a quantity
        starts at 0. Products the shop has that ``items`` lacks are kept as they are.
        Level changes and new products are recorded as one ``catalogue`` version.
        A catalogue that would change at least :data:`LEVEL_CHANGES_MIN` existing levels,
        and more than half of them, is refused (:class:`LevelChangesRefused`, nothing
        done) unless ``allow_level_changes``.
        """
        try:
            url = normalise_shop_url(shop_url)
        except ValueProblem as exc:
            raise UsageError(str(exc)) from exc
        catalogue = _check_catalogue(items or ())
        token = new_token()
        now = self._now()

        lock = self._db.lock_clause

        def register(conn: Any) -> Registration:
            # ON CONFLICT: another process may register the same URL meanwhile; then its
            # row (once committed) is the one locked below.
            created = conn.execute(
                "INSERT INTO shops (url, epoch, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (url) DO NOTHING",
                (url, secrets.token_hex(6), now),
            ).rowcount == 1
            shop = self._shop(conn, url, lock)
            issued = token if created or another_token else None
            if issued is not None:
                conn.execute(
                    "INSERT INTO tokens (hash, shop_id, created_at, prefix) "
                    "VALUES (?, ?, ?, ?)",
                    (hash_token(issued), shop.id, now, token_prefix(issued)),
                )
            current = {
                row["sku"]: row
                for row in conn.execute(
                    "SELECT sku, name, variant, qty FROM products WHERE shop_id = ?", (shop.id,)
                )
            }
            changes = _catalogue_changes(catalogue, current, shop.id)
            held = len(current) + len(changes.added)
            if too_many_skus(held):
                raise UsageError(_("with this catalogue {url} would list {why}", url=url,
                                   why=too_many_skus(held)))
            if not allow_level_changes:
                _refuse_many_level_changes(changes, len(current), url)
            conn.executemany(
                "INSERT INTO products (shop_id, sku, name, variant, qty) VALUES (?, ?, ?, ?, ?)",
                changes.inserts,
            )
            conn.executemany(
                "UPDATE products SET name = ?, variant = ?, qty = ?, active = 1 "
                "WHERE shop_id = ? AND sku = ?",
                changes.updates,
            )
            if changes.added or changes.changed or changes.renamed:
                self._new_version(conn, shop, now, "catalogue", reference,
                                  changes.level_changes)
                self._save_shop(conn, shop)
            count = conn.execute(
                "SELECT COUNT(*) FROM products WHERE shop_id = ? AND active = 1", (shop.id,)
            ).fetchone()[0]
            return Registration(
                shop=url, token=issued, created=created, products=count,
                added=changes.added, levels_changed=changes.changed, renamed=changes.renamed,
                levels_left=changes.left,
                without_quantity=sum(1 for item in catalogue if item.qty is None),
                version=shop.tag,
            )

        return self._db.write(register, lock_key=url)

    def add_shop(self, shop_url: str, items: Iterable[_Item] | None = None) -> str:
        """Register ``shop_url`` (loading ``items`` if given) and return a new API token.

        Each call issues another token; earlier tokens stay valid.
        """
        token = self.register_shop(shop_url, items, allow_level_changes=True).token
        assert token is not None
        return token

    def authenticate(self, token: str) -> str | None:
        """The normalised URL of the shop ``token`` was issued for, or ``None`` (also for a
        revoked token: :meth:`AccountStore.revocation` tells those apart)."""
        digest = hash_token(token)
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT tokens.hash, shops.url FROM tokens "
                "JOIN shops ON shops.id = tokens.shop_id "
                "WHERE tokens.hash = ? AND tokens.revoked_at IS NULL",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row["hash"], digest):
            return None
        return str(row["url"])

    def shops(self) -> list[str]:
        with self._db.read() as conn:
            return [row[0] for row in conn.execute("SELECT url FROM shops ORDER BY url")]

    # -- reading ---------------------------------------------------------------------

    def current_tag(self, shop_url: str) -> str:
        """The version tag of the shop's levels now (raises :class:`UnknownShop`)."""
        with self._db.read() as conn:
            return self._shop(conn, shop_url).tag

    @staticmethod
    def _version_time(conn: Any, shop: _Shop) -> str:
        row = conn.execute(
            "SELECT at FROM versions WHERE shop_id = ? AND number = ?", (shop.id, shop.version)
        ).fetchone()
        return row["at"] if row else shop.created_at

    def read_levels(self, shop_url: str) -> dict[str, Any]:
        """The stock document: every product with name, variant and level, sorted by SKU.

        ``generated_at`` is the time of the version, so that one version always reads
        as the same bytes (the ``ETag`` is strong).
        """
        with self._db.read() as conn:
            shop = self._shop(conn, shop_url)
            items = [
                {"sku": sku, "name": name, "variant": variant, "qty": qty}
                for sku, name, variant, qty in conn.execute(
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

    def stock_document(self, shop_url: str) -> tuple[str, bytes]:
        """The stock document of :meth:`read_levels` as JSON (UTF-8, no spaces), and its
        version tag, read in one transaction.

        SQLite builds the item list itself (``json_group_array``), three times faster
        than Python objects and ``json.dumps`` for 100,000 SKUs; PostgreSQL too
        (``string_agg`` of ``to_json`` texts: its own JSON objects are spaced out).
        """
        return self._document(shop_url, "sku, name, variant, qty", self._stock_header)

    def storefront_document(self, shop_url: str) -> tuple[str, bytes]:
        """:meth:`storefront` as JSON, with its version tag (see :meth:`stock_document`)."""
        return self._document(shop_url, "sku, qty", self._storefront_header)

    def _stock_header(self, conn: Any, shop: _Shop) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "shop": shop.url,
                "version": shop.tag, "generated_at": self._version_time(conn, shop)}

    @staticmethod
    def _storefront_header(conn: Any, shop: _Shop) -> dict[str, Any]:
        return {"shop": shop.url, "version": shop.tag}

    def _document(
        self, shop_url: str, columns: str, header: Callable[[Any, _Shop], dict[str, Any]]
    ) -> tuple[str, bytes]:
        names = [name.strip() for name in columns.split(",")]
        with self._db.read() as conn:
            shop = self._shop(conn, shop_url)
            head = header(conn, shop)
            if self._db.dialect == "sqlite":
                pairs = ", ".join(f"'{name}', {name}" for name in names)
                items = conn.execute(
                    f"SELECT json_group_array(json_object({pairs})) FROM (SELECT {columns} "
                    "FROM products WHERE shop_id = ? AND active = 1 ORDER BY sku)",
                    (shop.id,),
                ).fetchone()[0]
            elif self._db.dialect == "postgresql":
                # PostgreSQL's own JSON text spaces it out ({"sku" : ...}); this is the
                # compact form, each text escaped by to_json, as json.dumps would.
                fields = " || ',' || ".join(
                    f"'\"{name}\":' || to_json({name})::text" for name in names)
                items = conn.execute(
                    f"SELECT '[' || COALESCE(string_agg('{{' || {fields} || '}}', ',' "
                    "ORDER BY sku), '') || ']' FROM products WHERE shop_id = ? AND active = 1",
                    (shop.id,),
                ).fetchone()[0]
            else:
                items = json.dumps(
                    [dict(zip(names, row, strict=True)) for row in conn.execute(
                        f"SELECT {columns} FROM products WHERE shop_id = ? AND active = 1 "
                        "ORDER BY sku", (shop.id,))],
                    ensure_ascii=False, separators=(",", ":"),
                )
        text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
        return shop.tag, (text[:-1] + ',"items":' + items + "}").encode("utf-8")

    def stock_changes(self, shop_url: str, since: str) -> tuple[str, bytes] | None:
        """The products changed since version ``since`` (a tag of this shop), as a stock
        document with ``since`` and ``removed`` (docs/protocol.md, ``GET /v1/stock?since=``),
        and its tag, read in one transaction; ``None`` when the shop cannot answer from
        its history (a tag of another shop or database, one newer than the shop's, more
        than :attr:`changes_window` versions back, or versions missing since): the
        caller then sends the whole document.

        A product is changed when a version since recorded it in ``changes`` (a level,
        an addition, a catalogue's new name, a removal); those the shop no longer sells
        are listed in ``removed``."""
        number = _tag_number(since)
        with self._db.read() as conn:
            shop = self._shop(conn, shop_url)
            if (number is None or since != _tag(number, shop.epoch) or number > shop.version
                    or shop.version - number > self.changes_window):
                return None
            kept = conn.execute(
                "SELECT COUNT(*) FROM versions WHERE shop_id = ? AND number > ? AND number <= ?",
                (shop.id, number, shop.version),
            ).fetchone()[0]
            if kept != shop.version - number:
                return None  # part of that history is gone
            items, removed = [], []
            for sku, name, variant, qty, active in conn.execute(
                "SELECT sku, name, variant, qty, active FROM products WHERE shop_id = ? "
                "AND sku IN (SELECT sku FROM changes WHERE shop_id = ? AND number > ? "
                "AND number <= ?) ORDER BY sku",
                (shop.id, shop.id, number, shop.version),
            ):
                if active:
                    items.append({"sku": sku, "name": name, "variant": variant, "qty": qty})
                else:
                    removed.append(sku)
            document = {**self._stock_header(conn, shop), "since": since, "items": items,
                        "removed": removed}
        return shop.tag, json.dumps(document, ensure_ascii=False,
                                    separators=(",", ":")).encode("utf-8")

    def remove_products(self, shop_url: str, skus: Iterable[str], *,
                        reference: str = "removed") -> list[str]:
        """Stop selling ``skus`` (their rows are kept, inactive: a catalogue that lists
        one again brings it back); recorded as a ``catalogue`` version, so that a Sync
        that asks what changed learns of the removal. Returns the SKUs removed."""
        url = normalise_shop_url(shop_url)
        wanted = sorted({str(sku) for sku in skus})

        def remove(conn: Any) -> list[str]:
            shop = self._shop(conn, url, self._db.lock_clause)
            levels = self._levels_of(conn, shop, wanted)
            gone = sorted(levels)
            if not gone:
                return []
            conn.executemany(
                "UPDATE products SET active = 0 WHERE shop_id = ? AND sku = ?",
                [(shop.id, sku) for sku in gone],
            )
            self._new_version(conn, shop, self._now(), "catalogue", reference,
                              [(sku, levels[sku], levels[sku]) for sku in gone])
            self._save_shop(conn, shop)
            return gone

        return self._db.write(remove, lock_key=url)

    def storefront(self, shop_url: str) -> dict[str, Any]:
        """What a shop page needs: SKU and level of every product (no names, no token)."""
        with self._db.read() as conn:
            shop = self._shop(conn, shop_url)
            items = [
                {"sku": sku, "qty": qty}
                for sku, qty in conn.execute(
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
        with self._db.read() as conn:
            shop = self._shop(conn, shop_url)
            rows = conn.execute(
                "SELECT number, at, source, reference FROM versions "
                "WHERE shop_id = ? AND number < ? ORDER BY number DESC LIMIT ?",
                (shop.id, before if before is not None else shop.version + 1, limit),
            ).fetchall()
            changes: dict[int, list[dict[str, Any]]] = {row["number"]: [] for row in rows}
            if rows:
                for change in conn.execute(
                    "SELECT number, sku, before, after FROM changes "
                    "WHERE shop_id = ? AND number >= ? AND number <= ? "
                    # a rename or removal is recorded for Sync's changes, not a level's
                    "AND (before IS NULL OR before <> after) ORDER BY number, sku",
                    (shop.id, rows[-1]["number"], rows[0]["number"]),
                ):
                    changes[change["number"]].append(
                        {"sku": change["sku"], "before": change["before"],
                         "after": change["after"]}
                    )
            undone = self._undone_between(conn, shop, rows)
            versions = [
                {"version": _tag(row["number"], shop.epoch), "number": row["number"],
                 "at": row["at"], "source": row["source"], "reference": row["reference"],
                 "changes": changes[row["number"]],
                 **({"undone_at": undone.get(row["number"])} if row["source"] == "publish"
                    else {})}
                for row in rows
            ]
            return {"shop": shop.url, "versions": versions}

    @staticmethod
    def _undone_between(conn: Any, shop: _Shop, rows: Sequence[Any]) -> dict[int, str]:
        """Publish number -> when it was undone, for the versions in ``rows`` (newest
        first)."""
        if not rows:
            return {}
        return {
            row["publish_number"]: row["at"] for row in conn.execute(
                "SELECT publish_number, at FROM undos WHERE shop_id = ? "
                "AND publish_number >= ? AND publish_number <= ?",
                (shop.id, rows[-1]["number"], rows[0]["number"]))
        }

    def publish_outcome(self, shop_url: str, key: str) -> dict[str, Any] | None:
        """What the publish sent with ``key`` got, or ``None`` if the key is unknown."""
        with self._db.read() as conn:
            shop = self._shop(conn, shop_url)
            row = conn.execute(
                "SELECT status, response, received_at, applied FROM idempotency "
                "WHERE shop_id = ? AND key = ? AND action = 'publish'",
                (shop.id, key),
            ).fetchone()
            undone = self._undo_of(conn, shop, key)
        if row is None:
            return None
        return {
            "key": key, "status": row["status"], "applied": bool(row["applied"]),
            "received_at": row["received_at"], "response": json.loads(row["response"]),
            "undone_at": undone["at"] if undone else None,
            "undone_by": undone["key"] if undone else None,
        }

    @staticmethod
    def _publish_version(conn: Any, shop: _Shop, key: str) -> int | None:
        """The number of the version the publish sent with ``key`` made (the latest, should
        a key forgotten after :data:`KEY_RETENTION` have been used again), or ``None``."""
        row = conn.execute(
            "SELECT number FROM versions WHERE shop_id = ? AND reference = ? "
            "AND source = 'publish' ORDER BY number DESC LIMIT 1",
            (shop.id, key),
        ).fetchone()
        return None if row is None else int(row["number"])

    def _undo_of(self, conn: Any, shop: _Shop, key: str) -> Any:
        """The undo of the publish sent with ``key`` (``at``, ``key``, ``number``), or
        ``None`` when it was not undone."""
        number = self._publish_version(conn, shop, key)
        if number is None:
            return None
        return conn.execute(
            "SELECT at, key, number FROM undos WHERE shop_id = ? AND publish_number = ?",
            (shop.id, number),
        ).fetchone()

    # -- writing ---------------------------------------------------------------------

    def _new_version(
        self, conn: Any, shop: _Shop, now: str, source: str, reference: str,
        changes: Sequence[tuple[str, int | None, int]],
    ) -> int:
        shop.version += 1
        conn.execute(
            "INSERT INTO versions (shop_id, number, at, source, reference) VALUES (?, ?, ?, ?, ?)",
            (shop.id, shop.version, now, source, reference),
        )
        conn.executemany(
            "INSERT INTO changes (shop_id, number, sku, before, after) VALUES (?, ?, ?, ?, ?)",
            [(shop.id, shop.version, sku, before, after) for sku, before, after in changes],
        )
        shop.stored += _VERSION_COST + _CHANGE_COST * len(changes) + len(reference)
        return shop.version

    @staticmethod
    def _levels_of(conn: Any, shop: _Shop, skus: Iterable[str]) -> dict[str, int]:
        """SKU -> level of the listed SKUs the shop has (the others are absent)."""
        found: dict[str, int] = {}
        for chunk in in_lists(sorted(set(skus))):
            marks = ", ".join("?" * len(chunk))
            for sku, qty in conn.execute(
                f"SELECT sku, qty FROM products WHERE shop_id = ? AND active = 1 "
                f"AND sku IN ({marks})",
                (shop.id, *chunk),
            ):
                found[sku] = qty
        return found

    @staticmethod
    def _set_levels(conn: Any, shop: _Shop, changes: Iterable[tuple[str, Any, int]]) -> None:
        conn.executemany(
            "UPDATE products SET qty = ? WHERE shop_id = ? AND sku = ?",
            [(after, shop.id, sku) for sku, _, after in changes],
        )

    @staticmethod
    def _replay(conn: Any, shop: _Shop, key: str, action: str, digest: str) -> WriteAnswer | None:
        row = conn.execute(
            "SELECT action, body_sha256, status, response FROM idempotency "
            "WHERE shop_id = ? AND key = ?",
            (shop.id, key),
        ).fetchone()
        if row is None:
            return None
        if row["action"] != action or not hmac.compare_digest(row["body_sha256"], digest):
            return WriteAnswer(422, error_body(
                "idempotency_key_reused",
                f"the Idempotency-Key {key!r} was already used for another {row['action']} "
                f"of {shop.url} with a different body; send a new key for a new request",
            ))
        body = json.loads(row["response"])
        etag = body.get("version") if row["status"] < 300 else shop.tag
        return WriteAnswer(row["status"], body, etag=etag, replayed=True)

    def _over_quota(self, shop: _Shop) -> WriteAnswer | None:
        today = self._clock().astimezone(dt.timezone.utc).date()
        if shop.usage_day != today.isoformat():
            shop.usage_day, shop.usage_bytes = today.isoformat(), 0
        if shop.usage_bytes < self.daily_quota:
            return None
        midnight = dt.datetime.combine(
            today + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc
        )
        wait = max(1, int((midnight - self._clock()).total_seconds()))
        return WriteAnswer(429, error_body(
            "quota_exceeded",
            f"{shop.url} has stored {shop.usage_bytes:,} bytes today, its daily limit of "
            f"{self.daily_quota:,}; nothing was applied: try again after midnight UTC (in "
            f"{wait:,} s), or ask whoever runs the stock service to raise --daily-quota",
        ), headers={"Retry-After": str(wait)})

    def _write(
        self, shop_url: str, *, key: str | None, action: str, body: bytes,
        apply: Callable[[Any, _Shop, str], WriteAnswer],
    ) -> WriteAnswer:
        """One write transaction: replay a known key, refuse a shop over its quota, or
        apply, remember the answer under the key, and save the shop's row."""
        digest = hashlib.sha256(body).hexdigest()
        now = self._now()
        lock = self._db.lock_clause

        def job(conn: Any) -> WriteAnswer:
            shop = self._shop(conn, shop_url, lock)
            if key is not None:
                replay = self._replay(conn, shop, key, action, digest)
                if replay is not None:
                    return replay
            refused = self._over_quota(shop)
            if refused is not None:
                return refused
            outcome = apply(conn, shop, now)
            if key is not None:
                response = json.dumps(outcome.body, separators=(",", ":"))
                conn.execute(
                    "INSERT INTO idempotency (shop_id, key, action, body_sha256, status, "
                    "response, received_at, applied) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (shop.id, key, action, digest, outcome.status, response, now,
                     int(outcome.status < 300)),
                )
                shop.stored += len(response) + len(key) + 160
            shop.usage_bytes += shop.stored
            self._save_shop(conn, shop)
            return outcome

        outcome = self._db.write(job, lock_key=shop_url)
        self._prune()
        return outcome

    def _prune(self) -> None:
        """Forget idempotency records older than :data:`KEY_RETENTION`, at most once a
        :data:`PRUNE_INTERVAL`, in short transactions of its own."""
        now = self._clock()
        if now < self._next_prune or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = now + PRUNE_INTERVAL
            expired = format_time(now - KEY_RETENTION)

            def prune(conn: Any) -> int:
                return int(conn.execute(
                    "DELETE FROM idempotency WHERE (shop_id, key) IN (SELECT shop_id, key "
                    "FROM idempotency WHERE received_at < ? LIMIT ?)",
                    (expired, PRUNE_BATCH),
                ).rowcount)

            for _ in range(20):
                if self._db.write(prune) < PRUNE_BATCH:
                    break
        finally:
            self._prune_lock.release()

    def publish(
        self, shop_url: str, *, key: str, body: bytes, if_match: Collection[str] | None = None
    ) -> WriteAnswer:
        """Apply a published stock file (protocol 2 or 3) if every count still has the
        level it was planned against (its ``from``) and every delivery (``add``, protocol
        3) leaves a level in range, and, when ``if_match`` is given, the shop is
        still at one of those version tags.

        The file is checked whole before anything is applied; the answer is kept under
        ``key`` so that the same key with the same body replays it and applies nothing.
        """
        document, why = parse_json(body)
        checked = check_stock_file(document, shop=shop_url) if why is None else None

        def apply(conn: Any, shop: _Shop, now: str) -> WriteAnswer:
            return self._publish(conn, shop, key, now, checked, why, if_match)

        return self._write(shop_url, key=key, action="publish", body=body, apply=apply)

    def _publish(
        self, conn: Any, shop: _Shop, key: str, now: str, checked: Checked | None,
        why: str | None, if_match: Collection[str] | None,
    ) -> WriteAnswer:
        if if_match is not None and shop.tag not in if_match:
            return _stale_tag(shop, if_match)
        found = self._checked_levels(
            conn, shop, checked, why, nothing="nothing was applied",
            unknown="unknown to the shop; add the product in the shop first")
        if isinstance(found, WriteAnswer):
            return found
        checked, current = found
        undone = self._undone_target(conn, shop, checked.undoes)
        if isinstance(undone, WriteAnswer):
            return undone
        lines = sorted(checked.lines, key=lambda line: line.sku)
        moved = [_moved(line, current[line.sku]) for line in lines
                 if not _applies(line, current[line.sku])]
        if moved:
            shown = _first_problems(moved)
            return WriteAnswer(412, error_body(
                "levels_moved",
                f"{len(moved)} item(s) of the stock file moved in {shop.url} since they were "
                f"planned; nothing was applied: {shown}; "
                "re-plan those items on their current levels and publish again with a new "
                "Idempotency-Key",
                moved,
            ), etag=shop.tag)
        changes = [
            (line.sku, current[line.sku], _level_after(line, current[line.sku]))
            for line in lines if current[line.sku] != _level_after(line, current[line.sku])
        ]
        if checked.thresholds:
            shop.stored += _CHANGE_COST * save_thresholds(conn, shop.id, checked.thresholds)
        if changes:
            self._new_version(conn, shop, now, "publish", key, changes)
            self._set_levels(conn, shop, changes)
            self._note_low_stock(conn, shop, now, changes)
        if undone is not None:
            conn.execute(
                "INSERT INTO undos (shop_id, publish_number, number, key, at) "
                "VALUES (?, ?, ?, ?, ?)", (shop.id, undone, shop.version, key, now))
        return WriteAnswer(200, {
            "key": key, "version": shop.tag, "published_at": now,
            "changes": [{"sku": s, "before": b, "after": a} for s, b, a in changes],
        }, etag=shop.tag)

    def _undone_target(self, conn: Any, shop: _Shop,
                       undoes: str | None) -> int | WriteAnswer | None:
        """The version number of the publish a stock file takes back (its ``undoes``,
        sent by ``xlstock undo``), to be recorded undone with it; ``None`` when it names
        none, or one the service does not know (a key forgotten: the undo is applied all
        the same); 409 ``already_undone`` when that publish was undone already (on the
        account pages, say): it is never taken back twice."""
        if undoes is None:
            return None
        number = self._publish_version(conn, shop, undoes)
        if number is None:
            return None
        done = conn.execute(
            "SELECT at, key FROM undos WHERE shop_id = ? AND publish_number = ?",
            (shop.id, number)).fetchone()
        if done is not None:
            return WriteAnswer(409, error_body(
                "already_undone",
                f"the publish {undoes!r} of {shop.url} was already undone at {done['at']}; "
                "nothing was applied (see the History for what happened since)",
                fields={"undone_at": done["at"], "undone_by": done["key"]}))
        return number

    def _checked_levels(self, conn: Any, shop: _Shop, checked: Checked | None,
                        why: str | None, *, nothing: str, unknown: str
                        ) -> tuple[Checked, dict[str, int]] | WriteAnswer:
        """The checked document of a publish or an order and the live levels of the
        SKUs it names; or its 422 answer: a document that is not one (``why``), or items
        at fault, SKUs the shop lacks among them (``unknown`` says so, ``nothing`` says
        what was not done)."""
        if checked is None:
            return WriteAnswer(422, error_body("invalid_document", f"{why}; {nothing}"))
        current = self._levels_of(conn, shop, (line.sku for line in checked.lines))
        unknown_skus(checked, current, unknown)
        if not checked.ok:
            return WriteAnswer(422, checked.error())
        return checked, current

    def _note_low_stock(self, conn: Any, shop: _Shop, now: str,
                        changes: Sequence[tuple[str, int | None, int]]) -> None:
        """Queue the write's low-stock crossings for e-mail, in its own transaction."""
        if self.low_stock_mail:
            shop.stored += _CHANGE_COST * record_crossings(conn, shop.id, now, changes)

    def order(self, shop_url: str, *, body: bytes, key: str | None = None) -> WriteAnswer:
        """Take a storefront order: every line decremented in one transaction, or none
        if any line is short of stock (no oversell). Each order makes a new version."""
        document, why = parse_json(body)
        checked = check_order(document) if why is None else None

        def apply(conn: Any, shop: _Shop, now: str) -> WriteAnswer:
            return self._order(conn, shop, now, checked, why)

        return self._write(shop_url, key=key, action="order", body=body, apply=apply)

    def _order(
        self, conn: Any, shop: _Shop, now: str, checked: Checked | None, why: str | None
    ) -> WriteAnswer:
        found = self._checked_levels(conn, shop, checked, why, nothing="nothing was taken",
                                     unknown="unknown to the shop")
        if isinstance(found, WriteAnswer):
            return found
        checked, current = found
        short = [
            {"sku": line.sku, "problem": f"ordered {line.qty}, {current[line.sku]} in stock",
             "requested": line.qty, "available": current[line.sku]}
            for line in checked.lines if line.qty > current[line.sku]
        ]
        if short:
            shown = _first_problems(short)
            return WriteAnswer(409, error_body(
                "insufficient_stock",
                f"{len(short)} line(s) of the order are short of stock in {shop.url}; "
                f"nothing was taken: {shown}",
                short,
            ))
        shop.order_count += 1
        order_id = shop.order_count
        changes = [(line.sku, current[line.sku], current[line.sku] - line.qty)
                   for line in checked.lines]
        number = self._new_version(
            conn, shop, now, "order", checked.reference or f"order-{order_id}", changes
        )
        conn.execute(
            "INSERT INTO orders (shop_id, id, number, reference, at) VALUES (?, ?, ?, ?, ?)",
            (shop.id, order_id, number, checked.reference, now),
        )
        self._set_levels(conn, shop, changes)
        self._note_low_stock(conn, shop, now, changes)
        return WriteAnswer(201, {
            "order": order_id, "version": shop.tag,
            "lines": [{"sku": sku, "qty": before - after, "level": after}
                      for sku, before, after in changes],
        }, etag=shop.tag)

    # -- undoing a publish -------------------------------------------------------------

    def undo_publish(
        self, shop_url: str, publish_key: str, *, key: str | None, body: bytes,
    ) -> WriteAnswer:
        """Take back the publish sent with ``publish_key``, keeping what happened since:
        each level it changed moves by (before - after) from the level there is now (a
        delivery of +d becomes -d, a count a -> b becomes +(a - b)), so the units sold
        since stay sold.

        ``body`` is ``{"confirm_partial": bool, "preview": bool}`` (empty: both false).
        A preview reads and applies nothing. Otherwise one transaction applies every row
        or none: a row that would leave a level below zero (or a product gone from the
        shop) refuses the undo with 422 ``below_zero`` naming it, unless
        ``confirm_partial``, when it is skipped and named and the rest applied. The undo
        is a version of its own (source ``undo``, reference ``undo of publish KEY``); a
        second undo of the same publish is refused (409 ``already_undone``, with when).
        The answer is kept under ``key``, so that a replay applies nothing again.
        """
        options, why = undo_options(body)
        if options is not None and options.preview:
            with self._db.read() as conn:
                shop = self._shop(conn, shop_url)
                return self._undo(conn, shop, publish_key, None, "", options)
        digest_body = publish_key.encode("utf-8", "surrogatepass") + b"\0" + body

        def apply(conn: Any, shop: _Shop, now: str) -> WriteAnswer:
            if options is None:
                return WriteAnswer(422, error_body("invalid_document",
                                                   f"{why}; nothing was undone"))
            return self._undo(conn, shop, publish_key, key, now, options)

        return self._write(shop_url, key=key, action="undo", body=digest_body, apply=apply)

    def _undo(
        self, conn: Any, shop: _Shop, publish_key: str, key: str | None, now: str,
        options: UndoOptions,
    ) -> WriteAnswer:
        number = self._publish_version(conn, shop, publish_key)
        if number is None:
            return self._no_publish(conn, shop, publish_key)
        done = conn.execute(
            "SELECT at, key FROM undos WHERE shop_id = ? AND publish_number = ?",
            (shop.id, number),
        ).fetchone()
        if done is not None:
            body = error_body(
                "already_undone",
                f"the publish {publish_key!r} of {shop.url} was already undone at "
                f"{done['at']}; nothing was changed (see the History for what happened since)",
                fields={"undone_at": done["at"], "undone_by": done["key"]})
            return WriteAnswer(409, body)
        published = conn.execute(
            "SELECT sku, before, after FROM changes WHERE shop_id = ? AND number = ? "
            "ORDER BY sku", (shop.id, number)).fetchall()
        current = self._levels_of(conn, shop, (row["sku"] for row in published))
        changes, skipped = _reversal(published, current)
        base = {"key": key, "undone": publish_key, "changes": changes, "skipped": skipped}
        if options.preview:
            return WriteAnswer(200, {
                **base, "preview": True, "version": shop.tag,
                "needs_confirmation": bool(skipped)}, etag=shop.tag)
        if skipped and (not options.confirm_partial or not changes):
            return self._undo_refused(shop, publish_key, skipped, bool(changes))
        applied = [(row["sku"], row["before"], row["after"]) for row in changes]
        version = self._new_version(conn, shop, now, "undo",
                                    UNDO_REFERENCE.format(key=publish_key), applied)
        self._set_levels(conn, shop, applied)
        self._note_low_stock(conn, shop, now, applied)
        conn.execute(
            "INSERT INTO undos (shop_id, publish_number, number, key, at) "
            "VALUES (?, ?, ?, ?, ?)", (shop.id, number, version, key or "", now))
        return WriteAnswer(200, {**base, "version": shop.tag, "undone_at": now},
                           etag=shop.tag)

    @staticmethod
    def _undo_refused(shop: _Shop, publish_key: str, skipped: list[dict[str, Any]],
                      others: bool) -> WriteAnswer:
        shown = _first_problems(skipped)
        then = ("send it again with confirm_partial to undo the other rows and skip these"
                if others else "no row of it can be undone")
        return WriteAnswer(422, error_body(
            "below_zero",
            f"{len(skipped)} row(s) of the publish {publish_key!r} cannot be taken back in "
            f"{shop.url}: {shown}; nothing was undone: {then}",
            skipped,
        ))

    @staticmethod
    def _no_publish(conn: Any, shop: _Shop, publish_key: str) -> WriteAnswer:
        """The refusal of an undo whose key names no version a publish made."""
        row = conn.execute(
            "SELECT action, status FROM idempotency WHERE shop_id = ? AND key = ?",
            (shop.id, publish_key)).fetchone()
        if row is not None and row["action"] != "publish":
            return WriteAnswer(422, error_body(
                "not_a_publish",
                f"{publish_key!r} is the key of an {row['action']} of {shop.url}, not of a "
                "publish; only a publish can be undone"))
        if row is not None:
            what = "was refused" if row["status"] >= 300 else "changed no level"
            return WriteAnswer(422, error_body(
                "nothing_to_undo",
                f"the publish {publish_key!r} of {shop.url} {what}; there is nothing to "
                "undo"))
        return WriteAnswer(404, error_body(
            "not_found",
            f"the stock service has no publish with Idempotency-Key {publish_key!r} for "
            f"{shop.url}; check the key in the workbook's Log or the History"))


@dataclass(frozen=True)
class UndoOptions:
    """What an undo request asks: only what it would do (``preview``), or applying the
    rows that can be undone when others cannot (``confirm_partial``)."""

    confirm_partial: bool = False
    preview: bool = False


def undo_options(body: bytes) -> tuple[UndoOptions | None, str | None]:
    """The options of an undo request's body (empty: the defaults), or ``(None, why)``."""
    if not body.strip():
        return UndoOptions(), None
    document, why = parse_json(body)
    if why is not None:
        return None, why
    if not isinstance(document, dict):
        return None, "the body must be a JSON object such as {\"confirm_partial\": false}"
    unknown = sorted(set(document) - {"confirm_partial", "preview"})
    if unknown:
        return None, (f"the body has the unknown field {unknown[0][:40]!r}; an undo takes "
                      "confirm_partial and preview")
    for name in ("confirm_partial", "preview"):
        if not isinstance(document.get(name, False), bool):
            return None, f"{name} must be true or false"
    return UndoOptions(bool(document.get("confirm_partial", False)),
                       bool(document.get("preview", False))), None


def _reversal(
    published: Sequence[Any], current: Mapping[str, int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows an undo changes (``sku``, ``before`` = the level now, ``after``,
    ``change``) and those it cannot (``sku``, ``problem``, ``level``, ``change``): each
    published row moves by (before - after) from the level there is now."""
    changes: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for row in published:
        sku, change = row["sku"], (row["before"] or 0) - row["after"]
        level = current.get(sku)
        if level is None:
            skipped.append({"sku": sku, "problem": "no longer in the shop", "level": None,
                            "change": change})
        elif level + change < 0:
            skipped.append({"sku": sku, "problem": (
                f"would go below zero: {level} now, {change:+d} would leave "
                f"{level + change}"), "level": level, "change": change})
        elif level + change > MAX_LEVEL:
            skipped.append({"sku": sku, "problem": (
                f"{level} now, {change:+d} would pass the maximum {MAX_LEVEL:,}"),
                "level": level, "change": change})
        else:
            changes.append({"sku": sku, "before": level, "after": level + change,
                            "change": change})
    return changes, skipped


@dataclass(frozen=True)
class _CatalogueLine:
    sku: str
    name: str
    variant: str
    qty: int | None


@dataclass(frozen=True)
class _CatalogueChanges:
    """What loading a catalogue does to a shop's products: the SKUs it adds, whose level
    it changes, renames, and whose level it leaves; the level changes the version
    records (SKU, level before or ``None`` for a new product, level after); the rows of
    table products to insert and to update."""

    added: list[str]
    changed: list[str]
    renamed: list[str]
    left: list[str]
    level_changes: list[tuple[str, int | None, int]]
    inserts: list[tuple[Any, ...]]
    updates: list[tuple[Any, ...]]


def _catalogue_changes(catalogue: Iterable[_CatalogueLine], current: Mapping[str, Any],
                       shop_id: int) -> _CatalogueChanges:
    """The changes ``catalogue`` makes to the products of shop ``shop_id``, whose rows
    are ``current`` (SKU -> row): a new product starts at its quantity (0 without one);
    a listed one takes its name and variant, and its quantity when it gives one."""
    added, changed, renamed = [], [], []
    level_changes: list[tuple[str, int | None, int]] = []
    inserts, updates = [], []
    for item in catalogue:
        old = current.get(item.sku)
        if old is None:
            qty = item.qty if item.qty is not None else 0
            added.append(item.sku)
            level_changes.append((item.sku, None, qty))
            inserts.append((shop_id, item.sku, item.name, item.variant, qty))
            continue
        qty = item.qty if item.qty is not None else old["qty"]
        level_differs = old["qty"] != qty
        name_differs = (old["name"], old["variant"]) != (item.name, item.variant)
        if level_differs:
            changed.append(item.sku)
            level_changes.append((item.sku, old["qty"], qty))
        if name_differs:
            renamed.append(item.sku)
            if not level_differs:  # a Sync that asks what changed learns the name
                level_changes.append((item.sku, old["qty"], qty))
        if level_differs or name_differs:
            updates.append((item.name, item.variant, qty, shop_id, item.sku))
    changed_set = set(changed)
    left = sorted(sku for sku in current if sku not in changed_set)
    return _CatalogueChanges(added=added, changed=changed, renamed=renamed, left=left,
                             level_changes=level_changes, inserts=inserts, updates=updates)


def _refuse_many_level_changes(changes: _CatalogueChanges, existing: int, url: str) -> None:
    """Refuses (:class:`LevelChangesRefused`) a catalogue that would change at least
    :data:`LEVEL_CHANGES_MIN` of the ``existing`` levels of ``url``, and more than half
    of them: a stocktake, loaded only when allowed."""
    if len(changes.changed) >= LEVEL_CHANGES_MIN and 2 * len(changes.changed) > existing:
        zeroed = sum(1 for sku, before, after in changes.level_changes
                     if before not in (None, 0) and after == 0)
        raise LevelChangesRefused(
            f"this catalogue would change {len(changes.changed)} of the {existing} "
            f"existing levels of {url} ({zeroed} to zero); nothing was changed. If "
            "that is intended (a stocktake), run again with --allow-level-changes"
        )


def _level_after(line: Line, current: int) -> int:
    """The level a published line leaves: a delivery adds to the level there is, a count
    sets its level."""
    return current + line.add if line.add is not None else line.qty


def _applies(line: Line, current: int) -> bool:
    """Whether a line can be applied on ``current``: a count only on the level it was
    planned from, a delivery whenever the level it leaves is in range (a removal of more
    units than are left is refused, as an order would be)."""
    if line.add is None:
        return current == line.planned_from
    return 0 <= current + line.add <= MAX_LEVEL


def _moved(line: Line, current: int) -> dict[str, Any]:
    if line.add is None:
        problem = f"planned from {line.planned_from}, now {current}"
    else:
        problem = (f"adding {line.add:+d} to {current} would leave {current + line.add}, "
                   "out of range")
    return {"sku": line.sku, "problem": problem, "planned_from": line.planned_from,
            "current": current}


def _check_catalogue(items: Iterable[_Item]) -> list[_CatalogueLine]:
    """The catalogue items made canonical (NFC SKUs, trimmed text), or a
    :class:`UsageError` naming every bad one. A ``qty`` of ``None`` means "no quantity"."""
    problems: list[str] = []
    seen: set[str] = set()
    result: list[_CatalogueLine] = []
    for item in items:
        line = _catalogue_line(item, seen)
        if isinstance(line, str):
            problems.append(line)
        else:
            result.append(line)
    if problems:
        shown = "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else "")
        raise UsageError(f"the catalogue has {len(problems)} problem(s), nothing was loaded: "
                         f"{shown}")
    return result


def _catalogue_line(item: _Item, seen: set[str]) -> _CatalogueLine | str:
    """One catalogue item made canonical, or what is wrong with it, checked in this
    order: its SKU (empty, malformed, or already in ``seen``, to which a new one is
    added), its level, its name and variant."""
    sku = sku_key(str(item.sku))
    label = f"SKU {sku!r}"
    if not sku:
        return "a product has an empty SKU"
    problem = sku_problem(sku)
    if problem:
        return f"{label} {problem}"
    if sku in seen:
        return f"{label} is listed twice"
    seen.add(sku)
    qty = item.qty
    if qty is not None and (
        isinstance(qty, bool) or not isinstance(qty, int) or not 0 <= qty <= MAX_LEVEL
    ):
        return f"{label} has level {qty!r}; give a whole number 0..{MAX_LEVEL:,}"
    texts = [str(item.name or "").strip(), str(item.variant or "").strip()]
    if any(has_control_characters(t) or len(t) > MAX_NAME_LENGTH for t in texts):
        return (f"{label} has a name or variant with control characters or over "
                f"{MAX_NAME_LENGTH} characters")
    return _CatalogueLine(sku=sku, name=texts[0], variant=texts[1], qty=qty)


def _first_problems(problems: Sequence[Mapping[str, Any]], shown: int = 5) -> str:
    """``SKU: problem`` of the first ``shown`` problems, ``...`` after them when there
    are more: what a refusal's message lists (its items hold them all)."""
    text = "; ".join(f"{problem['sku']}: {problem['problem']}" for problem in problems[:shown])
    return text + (" ..." if len(problems) > shown else "")


def _stale_tag(shop: _Shop, if_match: Collection[str]) -> WriteAnswer:
    """412 ``stale_version``: a publish's ``If-Match`` does not hold the shop's tag."""
    quoted = ", ".join(sorted(str(tag) for tag in if_match)) or "no strong tag"
    return WriteAnswer(412, error_body(
        "stale_version",
        f"the levels of {shop.url} changed since version {quoted[:200]} was read (now "
        f"{shop.tag}); nothing was applied: read the levels again, or send the publish "
        "without If-Match (each item's 'from' is its precondition), with a new "
        "Idempotency-Key",
    ), etag=shop.tag)
