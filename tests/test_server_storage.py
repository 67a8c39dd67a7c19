"""The stock service's SQLite storage: schema and migrations, tokens, catalogue loads."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from xlstock import stockfile
from xlstock.errors import UsageError
from xlstock.model import StockItem
from xlstock.server.storage import (
    KEY_RETENTION,
    MIGRATIONS,
    SCHEMA_VERSION,
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


def test_reopening_keeps_the_data_and_applies_nothing_twice(tmp_path):
    path = tmp_path / "shop.db"
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


def test_tokens_are_new_each_time_stored_hashed_and_all_stay_valid(tmp_path):
    path = tmp_path / "shop.db"
    store = StockStore(path)
    first = store.add_shop("HTTPS://Shop.Example/")
    second = store.add_shop(SHOP)
    assert first != second
    assert store.authenticate(first) == store.authenticate(second) == SHOP
    assert store.authenticate(first + "x") is None
    assert store.authenticate("") is None
    assert store.shops() == [SHOP]
    store.close()
    with sqlite3.connect(path) as conn:
        stored = {row[0] for row in conn.execute("SELECT hash FROM tokens")}
    assert stored == {hash_token(first), hash_token(second)}
    assert first.encode() not in path.read_bytes()


def test_bad_shop_url_is_a_usage_error(tmp_path):
    store = StockStore(tmp_path / "shop.db")
    with pytest.raises(UsageError, match="not a web address"):
        store.add_shop("ftp://shop.example")
    store.close()


def test_reloading_a_catalogue_updates_products_keeps_missing_ones_and_history(tmp_path):
    store = StockStore(tmp_path / "shop.db")
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
def test_bad_catalogue_items_are_refused_and_nothing_is_loaded(tmp_path, items, fragment):
    store = StockStore(tmp_path / "shop.db")
    with pytest.raises(UsageError, match=fragment):
        store.add_shop(SHOP, items)
    assert store.shops() == []
    store.close()


def test_idempotency_keys_are_kept_a_while_then_forgotten(tmp_path):
    now = [dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)]
    store = StockStore(tmp_path / "shop.db", clock=lambda: now[0])
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


def test_version_tags_differ_between_databases(tmp_path):
    one, two = StockStore(tmp_path / "one.db"), StockStore(tmp_path / "two.db")
    one.add_shop(SHOP, [StockItem("A", qty=1)])
    two.add_shop(SHOP, [StockItem("A", qty=1)])
    assert one.current_tag(SHOP) != two.current_tag(SHOP)
    one.close()
    two.close()


def test_the_json_documents_say_what_the_python_ones_say_sorted_and_escaped(tmp_path):
    """GET /v1/stock and /v1/storefront are built by SQLite's JSON functions: the same
    content as the Python documents, items in SKU order whatever the load order."""
    import json
    import random

    items = [StockItem(f"SKU-{n:04d}", f'Caf\u00e9 "{n}" \\ / \U0001f600', "Red / L", n)
             for n in range(300)]
    items += [StockItem("00123", "", "", 0), StockItem("a", "\u2028", "", 1)]
    random.Random(3).shuffle(items)
    store = StockStore(tmp_path / "shop.db")
    try:
        store.add_shop(SHOP, items)
        tag, data = store.stock_document(SHOP)
        assert tag == store.current_tag(SHOP)
        assert json.loads(data) == store.read_levels(SHOP)
        skus = [item["sku"] for item in json.loads(data)["items"]]
        assert skus == sorted(skus) and len(skus) == 302
        assert store.stock_document(SHOP) == (tag, data)  # one version, the same bytes
        front_tag, front = store.storefront_document(SHOP)
        assert (front_tag, json.loads(front)) == (tag, store.storefront(SHOP))
    finally:
        store.close()
