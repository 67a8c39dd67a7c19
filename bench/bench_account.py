"""Time the account's Stock levels page on a shop of 100,000 SKUs (server time).

Run: ``python bench/bench_account.py`` (``--skus 100000 --repeat 20`` are the defaults).

It builds a fresh SQLite stock database in a temporary folder with one shop of
``--skus`` products, an account holding it, and a signed-in session, then asks the
Flask application (no network: the time is what the service spends on the request,
from the WSGI call to the last byte of the page) for pages across the catalogue:
the first, one in the middle (keyset ``after=``), the one before it (``before=``),
the last, and two searches (one matching 1 product in 10, one matching a single
product). Each line prints the median and the worst time next to a floor: the same
page's bare SQL query (the rows of one page, in SKU order, with ``LIMIT``) on the same
database. The target is 200 ms per page at 100,000 SKUs.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xlstock.model import StockItem  # noqa: E402
from xlstock.server.accounts import AccountStore  # noqa: E402
from xlstock.server.app import create_app  # noqa: E402
from xlstock.server.storage import StockStore  # noqa: E402

SHOP = "https://big-shop.example"
TARGET_MS = 200.0


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and worst of ``repeat`` runs, in milliseconds (after one warm-up run)."""
    action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    size = options.skus

    with tempfile.TemporaryDirectory() as folder:
        store = StockStore(Path(folder) / "bench.db")
        started = time.perf_counter()
        registration = store.register_shop(SHOP, [
            StockItem(f"SKU-{n:06d}", f"{'Hoodie' if n % 10 == 0 else 'Product'} {n}",
                      "Red" if n % 2 else "", n % 40)
            for n in range(size)
        ])
        accounts = AccountStore(store)
        email, password, _ = accounts.add_account("bench@big-shop.example")
        outcome = accounts.sign_in(email, password, "127.0.0.1")
        assert outcome.account is not None and outcome.session_id is not None
        session = accounts.session(outcome.session_id)
        assert session is not None
        accounts.change_password(session, "bench password, long")
        session_id = accounts.sign_in(email, "bench password, long", "127.0.0.1").session_id
        assert session_id is not None
        accounts.save_shop_url(outcome.account, SHOP, registration.token or "")
        print(f"database: {size:,} SKUs loaded in {time.perf_counter() - started:.1f} s "
              f"(SQLite {__import__('sqlite3').sqlite_version})")

        client = create_app(store).test_client()
        client.set_cookie("xlstock_session", session_id, path="/account/")
        middle = f"SKU-{size // 2:06d}"

        def page(query: str, rows: int) -> Callable[[], object]:
            def ask() -> object:
                answer = client.get("/account/stock" + query)
                assert answer.status_code == 200, answer.status_code
                body = answer.get_data(as_text=True)
                found = len(re.findall(r"<tr(?: class=\"low\")?><td><code>", body))
                assert found == rows, (query, found)
                return body
            return ask

        def floor(where: str, params: tuple, order: str = "sku") -> Callable[[], object]:
            """The page's rows in bare SQL (a search: every matching SKU, as the count of
            matches needs them all)."""
            limit = "" if "LIKE" in where else " LIMIT 101"
            columns = "sku" if "LIKE" in where else "sku, name, variant, qty"

            def ask() -> object:
                with store.transaction(write=False) as db:
                    return db.execute(
                        f"SELECT {columns} FROM products WHERE shop_id = 1 AND "
                        f"active = 1{where} ORDER BY {order}{limit}", params).fetchall()
            return ask

        like = (" AND (sku LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' "
                "OR variant LIKE ? ESCAPE '\\')")
        cases = [
            ("first page", "", 100, floor("", ())),
            ("middle page (after=)", f"?after={middle}", 100, floor(" AND sku > ?", (middle,))),
            ("page before it (before=)", f"?before={middle}", 100,
             floor(" AND sku < ?", (middle,), "sku DESC")),
            ("last page", "?last=1", 100, floor("", (), "sku DESC")),
            ("search 'hoodie' (1 in 10)", "?search=hoodie", 100,
             floor(like, ("%hoodie%",) * 3)),
            ("search one SKU", f"?search=sku-{size - 7:06d}", 1,
             floor(like, (f"%sku-{size - 7:06d}%",) * 3)),
        ]
        print(f"{'page':<28} {'median':>9} {'worst':>9}   {'floor (bare SQL)':>16}")
        worst_of_all = 0.0
        for label, query, rows, bare in cases:
            median, worst = timed(page(query, rows), options.repeat)
            floor_median, _ = timed(bare, options.repeat)
            worst_of_all = max(worst_of_all, worst)
            print(f"{label:<28} {median:7.1f}ms {worst:7.1f}ms   {floor_median:14.1f}ms")
        store.close()
    verdict = "within" if worst_of_all <= TARGET_MS else "OVER"
    print(f"worst page {worst_of_all:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    return 0 if worst_of_all <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
