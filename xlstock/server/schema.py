"""The stock database's schema, as numbered migration steps.

Step N (1-based) brings a database from schema version N-1 to N; a database records
its version (SQLite: ``PRAGMA user_version``; PostgreSQL: the table ``schema_version``)
and gets the missing steps, in order, in one transaction. Append new steps, never edit
a released one. Both databases have the same version numbers.

The steps are written for SQLite; PostgreSQL runs them with its own types
(:func:`xlstock.server.postgres.postgres_step`: ``INTEGER`` is ``BIGINT``, a row id
``INTEGER PRIMARY KEY`` an identity column, ``TEXT`` is ``TEXT COLLATE "C"``). Write a
new step in SQL both run (``ALTER TABLE ... ADD COLUMN``, ``ON CONFLICT``, no
``PRAGMA``), and run the tests, which migrate both.
"""

from __future__ import annotations

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
        # Order ids are counted per shop (a global count told each shop the others'
        # volume). Each shop continues after the highest id it was given, so an id
        # already handed out is never handed out again.
        "ALTER TABLE shops ADD COLUMN order_count INTEGER NOT NULL DEFAULT 0",
        """UPDATE shops SET order_count =
               COALESCE((SELECT MAX(orders.id) FROM orders WHERE orders.shop_id = shops.id), 0)""",
        """CREATE TABLE shop_orders (
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            reference TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL,
            PRIMARY KEY (shop_id, id)
        )""",
        """INSERT INTO shop_orders (shop_id, id, number, reference, at)
               SELECT shop_id, id, number, reference, at FROM orders""",
        "DROP TABLE orders",
        "ALTER TABLE shop_orders RENAME TO orders",
        # What each shop stored today, for the daily quota.
        "ALTER TABLE shops ADD COLUMN usage_day TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE shops ADD COLUMN usage_bytes INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX tokens_shop ON tokens (shop_id)",
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
    (
        # Issue 19. A password reset or change ends every session, those a sign-in opens
        # while it runs included: each session carries its account's generation, which
        # a reset or change moves on, and a session of an older generation is ended.
        "ALTER TABLE accounts ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE account_sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0",
        # A sign-in counts as a failure from the moment it is checked (so that parallel
        # tries cannot all pass the limit); a right password takes its row back by this.
        "ALTER TABLE sign_in_failures ADD COLUMN attempt TEXT NOT NULL DEFAULT ''",
    ),
    (
        # Issue 21: a publish can be undone. An undo is a version of its own (source
        # 'undo'), which the CHECK of versions did not allow: versions and changes (whose
        # foreign key names versions) are copied into new tables, the old ones dropped
        # and the new ones renamed (what both databases run; SQLite cannot alter a CHECK).
        """CREATE TABLE versions_v5 (
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            number INTEGER NOT NULL,
            at TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('catalogue', 'publish', 'order', 'undo')),
            reference TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (shop_id, number)
        )""",
        """INSERT INTO versions_v5 (shop_id, number, at, source, reference)
               SELECT shop_id, number, at, source, reference FROM versions""",
        """CREATE TABLE changes_v5 (
            shop_id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            sku TEXT NOT NULL,
            before INTEGER,
            after INTEGER NOT NULL,
            PRIMARY KEY (shop_id, number, sku),
            FOREIGN KEY (shop_id, number) REFERENCES versions_v5(shop_id, number)
        )""",
        """INSERT INTO changes_v5 (shop_id, number, sku, before, after)
               SELECT shop_id, number, sku, before, after FROM changes""",
        "DROP TABLE changes",
        "DROP TABLE versions",
        "ALTER TABLE versions_v5 RENAME TO versions",
        "ALTER TABLE changes_v5 RENAME TO changes",
        # An undo names its publish by the publish's key (the version's reference).
        "CREATE INDEX versions_reference ON versions (shop_id, reference)",
        # Which publish each undo took back (one undo per publish: the primary key),
        # the undo's version and its own Idempotency-Key.
        """CREATE TABLE undos (
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            publish_number INTEGER NOT NULL,
            number INTEGER NOT NULL,
            key TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (shop_id, publish_number)
        )""",
    ),
    (
        # Issue 24, low stock by e-mail (xlstock/server/lowstock.py). Each product's
        # threshold as the workbook last published it (NULL: the shop's low_stock_at);
        # whether the shop's account gets the e-mails; the language the account last
        # chose on its pages; the crossings waiting to be mailed, recorded in the
        # transaction of the order or publish that caused them; and per shop when its
        # last digest went out and which service process is sending the next one.
        "ALTER TABLE products ADD COLUMN low_stock_at INTEGER",
        "ALTER TABLE shops ADD COLUMN low_stock_mail INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE accounts ADD COLUMN language TEXT NOT NULL DEFAULT 'en'",
        """CREATE TABLE low_stock_crossings (
            id INTEGER PRIMARY KEY,
            shop_id INTEGER NOT NULL REFERENCES shops(id),
            sku TEXT NOT NULL,
            level INTEGER NOT NULL,
            threshold INTEGER NOT NULL,
            at TEXT NOT NULL,
            sent_at TEXT
        )""",
        "CREATE INDEX low_stock_crossings_unsent ON low_stock_crossings (sent_at, shop_id)",
        """CREATE TABLE low_stock_digests (
            shop_id INTEGER NOT NULL PRIMARY KEY REFERENCES shops(id),
            last_sent_at TEXT,
            claimed_by TEXT,
            claimed_until TEXT,
            failures INTEGER NOT NULL DEFAULT 0,
            retry_at TEXT
        )""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
