"""Issue 19 on the shop's side: addresses that differ only by a trailing dot, case or a
default port are one shop (old databases included), and `shop add --catalogue` on a
registered shop makes no new token unless asked."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from xlstock.cli import main
from xlstock.model import StockItem, normalise_shop_url
from xlstock.server.runner import start_background_server
from xlstock.server.storage import StockStore, hash_token

SAME_SHOP = ["https://shop.example", "https://shop.example.", "HTTPS://Shop.Example.:443/",
             "https://SHOP.EXAMPLE:443", "https://shop.example./"]


def catalogue(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "products.csv"
    path.write_text("sku,name,variant,qty\n" + rows, encoding="utf-8")
    return path


def sync(base: str, shop: str, token: str) -> requests.Response:
    return requests.get(base + "/v1/stock", params={"shop": shop},
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.mark.parametrize("written", SAME_SHOP)
def test_addresses_differing_by_a_dot_case_or_default_port_are_one_shop(written):
    assert normalise_shop_url(written) == "https://shop.example"


def test_shop_add_with_and_without_the_trailing_dot_registers_one_shop(tmp_path):
    """On main `https://shop.example.` and `https://shop.example` were two shops."""
    db = tmp_path / "shop.db"
    for written in SAME_SHOP:
        result = CliRunner().invoke(main, ["shop", "add", written, "--db", str(db)])
        assert result.exit_code == 0, result.output
    store = StockStore(db)
    try:
        assert store.shops() == ["https://shop.example"]
    finally:
        store.close()


def test_the_api_answers_every_form_of_the_address_for_the_one_shop(tmp_path):
    with start_background_server(tmp_path / "api.db") as running:
        token = running.store.add_shop("https://shop.example.", [StockItem("A-1", "Hoodie",
                                                                           "", 4)])
        for written in SAME_SHOP:
            answer = sync(running.url, written, token)
            assert answer.status_code == 200, (written, answer.text)
            assert answer.json()["shop"] == "https://shop.example"


def old_database(path: Path, urls: list[str]) -> dict[str, str]:
    """A database as an earlier xlstock left it: its shops' rows under ``urls`` as they
    were stored then (a trailing dot kept); returns each one's token."""
    StockStore(path).close()
    tokens = {}
    conn = sqlite3.connect(path)
    with conn:
        for number, url in enumerate(urls, start=1):
            conn.execute("INSERT INTO shops (url, epoch, created_at) VALUES (?, ?, ?)",
                         (url, f"e{number}", "2026-01-01T00:00:00Z"))
            shop_id = conn.execute("SELECT id FROM shops WHERE url = ?", (url,)).fetchone()[0]
            token = f"xls_{'ab' * 20}{number}"
            conn.execute("INSERT INTO tokens (hash, shop_id, created_at, prefix) "
                         "VALUES (?, ?, ?, ?)",
                         (hash_token(token), shop_id, "2026-01-01T00:00:00Z", token[:8]))
            conn.execute("INSERT INTO products (shop_id, sku, name, qty) VALUES (?, ?, ?, ?)",
                         (shop_id, f"SKU-{number}", "Hoodie", number))
            tokens[url] = token
    conn.close()
    return tokens


def test_an_old_row_with_a_trailing_dot_takes_its_normal_address(tmp_path):
    db = tmp_path / "old.db"
    tokens = old_database(db, ["https://dotted.example.", "https://ported.example.:8443/x"])
    with start_background_server(db) as running:
        assert running.store.shops() == ["https://dotted.example",
                                         "https://ported.example:8443/x"]
        for written in ("https://dotted.example", "https://dotted.example."):
            answer = sync(running.url, written, tokens["https://dotted.example."])
            assert answer.status_code == 200, answer.text
            assert [item["sku"] for item in answer.json()["items"]] == ["SKU-1"]
        ported = sync(running.url, "https://ported.example.:8443/x/",
                      tokens["https://ported.example.:8443/x"])
        assert ported.status_code == 200, ported.text


def test_two_old_rows_of_one_address_keep_their_stock_and_are_named(tmp_path, caplog):
    db = tmp_path / "both.db"
    tokens = old_database(db, ["https://twice.example.", "https://twice.example"])
    with caplog.at_level(logging.WARNING, logger="xlstock.server"):
        store = StockStore(db)
    try:
        assert store.shops() == ["https://twice.example", "https://twice.example."]
        assert store.authenticate(tokens["https://twice.example"]) == "https://twice.example"
    finally:
        store.close()
    assert any("https://twice.example. and https://twice.example are one address"
               in record.getMessage() for record in caplog.records)


# --- shop add --catalogue keeps the tokens -----------------------------------------------


def tokens_of(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]
    finally:
        conn.close()


def test_shop_add_catalogue_on_a_registered_shop_makes_no_new_token(tmp_path):
    """On main every `shop add --catalogue` run made a new token."""
    db = tmp_path / "shop.db"
    products = catalogue(tmp_path, "A-1,Hoodie,,4\n")
    first = CliRunner().invoke(main, ["shop", "add", "https://cat.example", "--db", str(db),
                                      "--catalogue", str(products)])
    assert first.exit_code == 0, first.output
    token = first.output.rstrip("\n").split("\n")[-1]
    assert re.fullmatch(r"xls_[A-Za-z0-9_-]{40,}", token)
    products.write_text("sku,name,variant,qty\nA-1,Hoodie,,4\nB-2,Cap,,9\n", encoding="utf-8")
    again = CliRunner().invoke(main, ["shop", "add", "https://cat.example", "--db", str(db),
                                      "--catalogue", str(products)])
    assert again.exit_code == 0, again.output
    assert "Levels: 1 added (new products), 0 changed, 1 left as they were" in again.output
    assert again.output.rstrip("\n").split("\n")[-1] == (
        "No new API token: the shop's tokens keep working (add --new-token for another).")
    assert "xls_" not in again.output
    assert tokens_of(db) == 1
    asked = CliRunner().invoke(main, ["shop", "add", "https://cat.example", "--db", str(db),
                                      "--catalogue", str(products), "--new-token"])
    assert asked.exit_code == 0, asked.output
    new = asked.output.rstrip("\n").split("\n")[-1]
    assert re.fullmatch(r"xls_[A-Za-z0-9_-]{40,}", new) and new != token
    plain = CliRunner().invoke(main, ["shop", "add", "https://cat.example", "--db", str(db)])
    assert re.fullmatch(r"xls_[A-Za-z0-9_-]{40,}", plain.output.rstrip("\n").split("\n")[-1])
    assert tokens_of(db) == 3
    store = StockStore(db)
    try:
        assert store.authenticate(token) == "https://cat.example"  # the first still works
    finally:
        store.close()


def test_an_order_line_with_other_digits_is_a_usage_error():
    result = CliRunner().invoke(main, ["order", "--service", "http://127.0.0.1:9", "--shop",
                                       "https://shop.example", "A-1=²"])
    assert result.exit_code == 2, result.output
    assert "write SKU=QTY with a whole QTY of 1 or more" in result.output
