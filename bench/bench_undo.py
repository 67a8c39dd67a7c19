"""Time an undo of a large publish (issue 21): the storage's preview and undo, and the
account pages' preview and confirmation, with the size of each page.

Run: ``python bench/bench_undo.py [--skus 100000]``. Needs the ``server`` extra; the
database is a temporary SQLite file; the pages run in Flask's test client (no network).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xlstock import stockfile
from xlstock.model import StockItem
from xlstock.server.accounts import AccountStore
from xlstock.server.app import create_app
from xlstock.server.storage import StockStore

SHOP = "https://big.example"


def timed(label: str, run: Callable[[], Any], size: Callable[[Any], str]) -> Any:
    started = time.perf_counter()
    result = run()
    print(f"{label:<24} {time.perf_counter() - started:7.2f} s   {size(result)}")
    return result


def form_value(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skus", type=int, default=100_000)
    count = parser.parse_args().skus
    with tempfile.TemporaryDirectory() as folder:
        store = StockStore(Path(folder) / "bench.db")
        skus = [f"S{n:06d}" for n in range(count)]
        store.add_shop(SHOP, [StockItem(sku, "Bulk", "", 5) for sku in skus])
        body = stockfile.dumps(SHOP, dict.fromkeys(skus, 6), dict.fromkeys(skus, 5))
        timed("publish", lambda: store.publish(SHOP, key="p1", body=body),
              lambda a: f"status {a.status}")
        timed("storage preview", lambda: store.undo_publish(
            SHOP, "p1", key=None, body=b'{"preview":true}'),
            lambda a: f"status {a.status}, {len(a.body['changes']):,} rows")
        accounts = AccountStore(store)
        email, password, _ = accounts.add_account("bench@big.example")
        with store.transaction(write=True) as conn:
            conn.execute("UPDATE accounts SET must_change_password = 0")
            conn.execute("UPDATE shops SET account_id = (SELECT MIN(id) FROM accounts)")
        client = create_app(store).test_client()
        sign_in = client.get("/account/sign-in").get_data(as_text=True)
        client.post("/account/sign-in", data={"email": email, "password": password,
                                              "csrf_token": form_value(sign_in, "csrf_token")})
        history = client.get("/account/history").get_data(as_text=True)
        link = re.search(r'href="(/account/history/\d+/undo)"', history)
        assert link, history[:500]

        def page_size(answer: Any) -> str:
            return f"status {answer.status_code}, {len(answer.data):,} bytes"

        preview = timed("preview page", lambda: client.get(link.group(1)), page_size)
        text = preview.get_data(as_text=True)
        timed("confirmation page", lambda: client.post(link.group(1), data={
            "undo_key": form_value(text, "undo_key"),
            "csrf_token": form_value(text, "csrf_token")}), page_size)
        store.close()


if __name__ == "__main__":
    main()
