"""The stock service's storage: schema and migrations, tokens, catalogue loads. The tests
taking ``new_db`` run on SQLite and on PostgreSQL (conftest.py)."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from xlstock import stockfile
from xlstock.errors import UsageError
from xlstock.model import CatalogueItem, StockItem
from xlstock.server.storage import (
    KEY_RETENTION,
    LEVEL_CHANGES_MIN,
    MIGRATIONS,
    SCHEMA_VERSION,
    LevelChangesRefused,
    StockStore,
    hash_token,
    migrate,
)

SHOP = "https://shop.example"


def tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_an_empty_file_is_migrated_to_the_current_schema_in_wal_mode(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    store = StockStore(path)
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    store.close()
    assert {"shops", "tokens", "products", "versions", "changes", "idempotency"} <= tables(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_keeps_the_data_and_applies_nothing_twice(new_db):
    path = new_db()
    store = StockStore(path)
    token = store.add_shop(SHOP, [StockItem("A", "Hat", "", 3)])
    store.close()
    again = StockStore(path)
    assert again.authenticate(token) == SHOP
    assert again.read_levels(SHOP)["items"][0]["qty"] == 3
    again.close()


def test_migrations_apply_in_order_from_any_older_version(tmp_path):
    steps = [
        ["CREATE TABLE one (x INTEGER)"],
        ["ALTER TABLE one ADD COLUMN y TEXT", "CREATE TABLE two (z INTEGER)"],
        ["INSERT INTO two VALUES (42)"],
    ]
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert migrate(conn, steps[:1]) == 1
    conn.execute("INSERT INTO one (x) VALUES (1)")
    assert migrate(conn, steps) == 3
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    assert conn.execute("SELECT x, y FROM one").fetchall() == [(1, None)]
    assert conn.execute("SELECT z FROM two").fetchall() == [(42,)]
    assert migrate(conn, steps) == 3
    assert conn.execute("SELECT COUNT(*) FROM two").fetchone()[0] == 1
    conn.close()


def test_a_failing_migration_step_leaves_the_database_as_it_was(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    migrate(conn, [["CREATE TABLE one (x INTEGER)"]])
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, [["CREATE TABLE one (x INTEGER)"], ["CREATE TABLE two (y)", "BROKEN SQL"]])
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'two'").fetchone() is None
    conn.close()


def test_a_database_from_a_newer_xlstock_is_refused(tmp_path):
    path = tmp_path / "newer.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UsageError, match="upgrade xlstock"):
        StockStore(path)


def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database " * 100)
    with pytest.raises(UsageError, match="notes.db"):
        StockStore(path)


def test_tokens_are_new_each_time_stored_hashed_and_all_stay_valid(new_db):
    path = new_db()
    store = StockStore(path)
    first = store.add_shop("HTTPS://Shop.Example/")
    second = store.add_shop(SHOP)
    assert first != second
    assert store.authenticate(first) == store.authenticate(second) == SHOP
    assert store.authenticate(first + "x") is None
    assert store.authenticate("") is None
    assert store.shops() == [SHOP]
    with store.transaction(write=False) as conn:
        stored = {row[0] for row in conn.execute("SELECT hash FROM tokens")}
        assert not conn.execute("SELECT hash FROM tokens WHERE hash = ?", (first,)).fetchall()
    store.close()
    assert stored == {hash_token(first), hash_token(second)}
    if store.dialect == "sqlite":
        assert first.encode() not in path.read_bytes()


def test_bad_shop_url_is_a_usage_error(new_db):
    store = StockStore(new_db())
    with pytest.raises(UsageError, match="not a web address"):
        store.add_shop("ftp://shop.example")
    store.close()


def test_reloading_a_catalogue_updates_products_keeps_missing_ones_and_history(new_db):
    store = StockStore(new_db())
    store.add_shop(SHOP, [StockItem("A", "Hat", "Red", 3), StockItem("B", "Cap", "", 4)])
    before = store.current_tag(SHOP)
    result = store.register_shop(
        SHOP, [StockItem("A", "Hat", "Crimson", 3), StockItem("C", "Belt", "", 1),
               StockItem("B", "Cap", "", 9)],
        reference="catalogue new.csv",
    )
    assert (result.created, result.added, result.levels_changed, result.renamed) == (
        False, ["C"], ["B"], ["A"])
    assert result.products == 3
    assert result.version == store.current_tag(SHOP) != before
    items = {i["sku"]: i for i in store.read_levels(SHOP)["items"]}
    assert items["A"] == {"sku": "A", "name": "Hat", "variant": "Crimson", "qty": 3}
    assert items["B"]["qty"] == 9 and items["C"]["qty"] == 1
    versions = store.history(SHOP)["versions"]
    assert [(v["source"], v["reference"]) for v in versions] == [
        ("catalogue", "catalogue new.csv"), ("catalogue", "catalogue")]
    assert versions[0]["changes"] == [{"sku": "B", "before": 4, "after": 9},
                                      {"sku": "C", "before": None, "after": 1}]
    unchanged = store.register_shop(SHOP, [StockItem("A", "Hat", "Crimson", 3)])
    assert unchanged.version == result.version
    assert len(store.history(SHOP)["versions"]) == 2
    assert {i["sku"] for i in store.read_levels(SHOP)["items"]} == {"A", "B", "C"}
    store.close()


@pytest.mark.parametrize("items, fragment", [
    ([StockItem("A", qty=1), StockItem("A", qty=2)], "listed twice"),
    ([StockItem("", qty=1)], "empty SKU"),
    ([StockItem("A\tB", qty=1)], "control character"),
    ([StockItem("A", qty=-1)], "whole number"),
    ([StockItem("A", "line\nbreak", "", 1)], "control characters"),
])
def test_bad_catalogue_items_are_refused_and_nothing_is_loaded(new_db, items, fragment):
    store = StockStore(new_db())
    with pytest.raises(UsageError, match=fragment):
        store.add_shop(SHOP, items)
    assert store.shops() == []
    store.close()



def test_a_duplicate_is_named_even_when_its_first_listing_was_refused(new_db):
    """The SKU counts as listed once its SKU passed, before its level is checked."""
    store = StockStore(new_db())
    with pytest.raises(UsageError) as refused:
        store.add_shop(SHOP, [StockItem("A", qty=-1), StockItem("A", qty=1)])
    assert str(refused.value).endswith(
        "2 problem(s), nothing was loaded: SKU 'A' has level -1; give a whole number "
        "0..1,000,000,000; SKU 'A' is listed twice")
    store.close()


def test_a_catalogue_reports_the_levels_it_left_and_the_products_without_quantity(new_db):
    store = StockStore(new_db())
    store.add_shop(SHOP, [StockItem("A", qty=1), StockItem("B", qty=2), StockItem("C", qty=3)])
    result = store.register_shop(SHOP, [CatalogueItem("C", qty=4), CatalogueItem("B"),
                                        CatalogueItem("D")])
    assert (result.added, result.levels_changed, result.levels_left) == (
        ["D"], ["C"], ["A", "B"])
    assert result.without_quantity == 2 and result.token is not None
    levels = {i["sku"]: i["qty"] for i in store.read_levels(SHOP)["items"]}
    assert levels == {"A": 1, "B": 2, "C": 4, "D": 0}
    store.close()


@pytest.mark.parametrize("existing, changed, refused", [
    (2 * LEVEL_CHANGES_MIN, LEVEL_CHANGES_MIN, False),  # half: a restock, loaded
    (2 * LEVEL_CHANGES_MIN, LEVEL_CHANGES_MIN + 1, True),
    (LEVEL_CHANGES_MIN, LEVEL_CHANGES_MIN - 1, False),  # too few to be a stocktake
    (LEVEL_CHANGES_MIN, LEVEL_CHANGES_MIN, True),
])
def test_a_catalogue_changing_more_than_half_of_enough_levels_is_refused(
    new_db, existing, changed, refused
):
    store = StockStore(new_db())
    store.add_shop(SHOP, [StockItem(f"S{n}", qty=5) for n in range(existing)])
    before = store.current_tag(SHOP)
    catalogue = [StockItem(f"S{n}", qty=0 if n < changed else 5) for n in range(existing)]
    if refused:
        with pytest.raises(LevelChangesRefused, match=(
                f"would change {changed} of the {existing} existing levels of {SHOP} "
                f"\\({changed} to zero\\); nothing was changed")):
            store.register_shop(SHOP, catalogue)
        assert store.current_tag(SHOP) == before
        assert store.register_shop(SHOP, catalogue, allow_level_changes=True).levels_changed
    else:
        assert len(store.register_shop(SHOP, catalogue).levels_changed) == changed
    store.close()

def test_idempotency_keys_are_kept_a_while_then_forgotten(new_db):
    now = [dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)]
    store = StockStore(new_db(), clock=lambda: now[0])
    store.add_shop(SHOP, [StockItem("A", qty=1)])
    body = stockfile.dumps(SHOP, {"A": 2}, {"A": 1})
    first = store.publish(SHOP, key="k", body=body)
    assert first.status == 200
    now[0] += dt.timedelta(days=7)
    assert store.publish_outcome(SHOP, "k") is not None
    now[0] += KEY_RETENTION
    store.publish(SHOP, key="later", body=stockfile.dumps(SHOP, {"A": 2}, {"A": 2}))
    assert store.publish_outcome(SHOP, "k") is None
    assert store.publish_outcome(SHOP, "later") is not None
    store.close()


def test_version_tags_differ_between_databases(new_db):
    one, two = StockStore(new_db("one.db")), StockStore(new_db("two.db"))
    one.add_shop(SHOP, [StockItem("A", qty=1)])
    two.add_shop(SHOP, [StockItem("A", qty=1)])
    assert one.current_tag(SHOP) != two.current_tag(SHOP)
    one.close()
    two.close()


def test_the_json_documents_say_what_the_python_ones_say_sorted_and_escaped(new_db):
    """GET /v1/stock and /v1/storefront are built by SQLite's JSON functions (PostgreSQL:
    json.dumps): the same content as the Python documents, items in SKU order (code
    points, whatever the database's locale) whatever the load order."""
    import json
    import random

    items = [StockItem(f"SKU-{n:04d}", f'Caf\u00e9 "{n}" \\ / \U0001f600', "Red / L", n)
             for n in range(300)]
    items += [StockItem("00123", "", "", 0), StockItem("a", "\u2028", "", 1),
              StockItem("\u00c9t\u00e9", "", "", 2), StockItem("Z", "", "", 3),
              StockItem("\U0001f600", "", "", 4), StockItem("\uff21", "", "", 5)]
    random.Random(3).shuffle(items)
    store = StockStore(new_db())
    try:
        store.add_shop(SHOP, items)
        tag, data = store.stock_document(SHOP)
        assert tag == store.current_tag(SHOP)
        assert json.loads(data) == store.read_levels(SHOP)
        skus = [item["sku"] for item in json.loads(data)["items"]]
        assert skus == sorted(skus) and len(skus) == 306  # code-point order
        assert store.stock_document(SHOP) == (tag, data)  # one version, the same bytes
        compact = json.dumps(store.read_levels(SHOP), ensure_ascii=False,
                             separators=(",", ":")).encode("utf-8")
        assert data == compact  # the bytes json.dumps would write, on either database
        front_tag, front = store.storefront_document(SHOP)
        assert (front_tag, json.loads(front)) == (tag, store.storefront(SHOP))
    finally:
        store.close()


def test_a_postgresql_database_from_a_newer_xlstock_is_refused(pg_cluster):
    import psycopg

    url = pg_cluster.new_database()
    StockStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(UsageError, match="upgrade xlstock"):
        StockStore(url)


def test_stores_opening_an_empty_postgresql_database_together_migrate_it_once(pg_cluster):
    from concurrent.futures import ThreadPoolExecutor

    url = pg_cluster.new_database()
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: StockStore(url), range(4)))
    try:
        assert {store.schema_version() for store in stores} == {SCHEMA_VERSION}
        stores[0].add_shop(SHOP, [StockItem("A", qty=1)])
        assert stores[3].read_levels(SHOP)["items"][0]["qty"] == 1
    finally:
        for store in stores:
            store.close()


def test_a_postgresql_url_that_cannot_be_reached_is_a_usage_error_without_password(
        pg_cluster):
    url = f"postgresql://xlstock:secret-pw@127.0.0.1:{pg_cluster.port}/no_such_database"
    with pytest.raises(UsageError, match="cannot connect") as raised:
        StockStore(url)
    assert "secret-pw" not in str(raised.value)


def test_connections_postgresql_dropped_while_idle_are_replaced_unnoticed(pg_cluster):
    import psycopg

    url = pg_cluster.new_database()
    store = StockStore(url)
    try:
        store.add_shop(SHOP, [StockItem("A", qty=5)])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert store.order(SHOP, body=b'{"lines": [{"sku": "A", "qty": 2}]}').status == 201
        assert store.read_levels(SHOP)["items"][0]["qty"] == 3
        with store.transaction(write=False) as conn:  # a vanished writer frees its lock
            assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] \
                == "30s"
    finally:
        store.close()


def test_postgresql_group_commit_a_failing_write_fails_alone(pg_cluster):
    """Writes waiting together are committed together; one that raises is undone and
    reported alone, the others are applied."""
    import threading

    from xlstock.server.postgres import PostgresDatabase

    db = PostgresDatabase(pg_cluster.new_database())
    try:
        db.write(lambda conn: conn.execute("CREATE TABLE t (n BIGINT PRIMARY KEY)"))
        start = threading.Barrier(12)
        answers: dict[int, object] = {}

        def insert(n: int) -> None:
            def job(conn):
                conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
                if n == 5:
                    raise ValueError("five")
                return n

            start.wait()
            try:
                answers[n] = db.write(job, lock_key=f"shop-{n % 3}")
            except ValueError as exc:
                answers[n] = exc

        threads = [threading.Thread(target=insert, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert isinstance(answers.pop(5), ValueError)
        assert answers == {n: n for n in range(12) if n != 5}
        with db.read() as conn:
            stored = [row[0] for row in conn.execute("SELECT n FROM t ORDER BY n")]
        assert stored == [n for n in range(12) if n != 5]
    finally:
        db.close()


def test_a_postgresql_database_of_schema_1_is_migrated_keeping_shops_and_order_ids(
        pg_cluster):
    """The steps after the first run on PostgreSQL too (step 2 rebuilds the orders table
    and counts order ids per shop)."""
    from xlstock.server.postgres import PostgresDatabase

    url = pg_cluster.new_database()
    old = PostgresDatabase(url)
    try:
        assert old.migrate(MIGRATIONS[:1]) == 1

        def fill(conn):
            conn.execute("INSERT INTO shops (url, epoch, version, created_at) VALUES "
                         "(?, 'e1', 2, '2026-01-01T00:00:00Z')", (SHOP,))
            shop_id = conn.execute("SELECT id FROM shops").fetchone()[0]
            conn.execute("INSERT INTO tokens (hash, shop_id, created_at) VALUES (?, ?, ?)",
                         (hash_token("xls_old"), shop_id, "2026-01-01T00:00:00Z"))
            conn.execute("INSERT INTO products (shop_id, sku, qty) VALUES (?, 'A', 4)",
                         (shop_id,))
            for number in (1, 2):
                conn.execute("INSERT INTO versions (shop_id, number, at, source) VALUES "
                             "(?, ?, '2026-01-01T00:00:00Z', 'order')", (shop_id, number))
                conn.execute("INSERT INTO orders (shop_id, number, at) VALUES "
                             "(?, ?, '2026-01-01T00:00:00Z')", (shop_id, number))

        old.write(fill)
    finally:
        old.close()
    store = StockStore(url)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.authenticate("xls_old") == SHOP
        answer = store.order(SHOP, body=b'{"lines": [{"sku": "A", "qty": 1}]}')
        assert (answer.status, answer.body["order"]) == (201, 3)
        assert store.read_levels(SHOP)["items"][0]["qty"] == 3
    finally:
        store.close()


def test_a_postgresql_url_without_psycopg_says_which_extra_to_install():
    import subprocess
    import sys

    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from xlstock.errors import UsageError\n"
            "from xlstock.server.storage import StockStore\n"
            "try:\n    StockStore('postgresql://x@127.0.0.1:1/none')\n"
            "except UsageError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert "pip install 'xlstock[postgres]'" in done.stdout, done.stderr


@pytest.mark.parametrize("url", [
    "postgresql://xlstock:s3cret@db.example:5432/shop",
    "postgres://xlstock@db.example/shop?sslmode=require&password=s3cret",
    "postgresql://xlstock@db.example/shop?PASSWORD=s3cret&sslmode=require",
])
def test_postgresql_urls_are_shown_without_their_password(url):
    from xlstock.server.postgres import redact

    shown = redact(url)
    assert "s3cret" not in shown and "xlstock" in shown and "db.example" in shown


def test_in_lists_cut_a_query_into_lists_every_backend_accepts():
    from xlstock.server.database import IN_LIST_MAX, in_lists

    assert list(in_lists([])) == []
    assert [len(part) for part in in_lists(list(range(IN_LIST_MAX)))] == [IN_LIST_MAX]
    parts = list(in_lists([str(n) for n in range(2 * IN_LIST_MAX + 1)]))
    assert [len(part) for part in parts] == [IN_LIST_MAX, IN_LIST_MAX, 1]
    assert [v for part in parts for v in part] == [str(n) for n in range(2 * IN_LIST_MAX + 1)]
