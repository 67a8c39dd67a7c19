"""Time storefront orders through the real service while low-stock e-mails cannot go out.

Run: ``python bench/bench_low_stock_mail.py`` (``--orders 300``).

Three runs, each on a fresh SQLite database with one shop of 50 SKUs held by an account
whose threshold (999) every first sale of a SKU crosses (1000 -> 999): the service
without SMTP, with an SMTP port nothing listens on (refused at once), and with a server
that accepts the connection and never greets (the sender waits its timeout). Orders
go over HTTP to waitress in a background thread; each line prints the median, 95th
percentile and worst latency, and how many crossings are kept for later. The e-mails
are sent by a background thread after the answer, so the three should match.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xlstock.model import StockItem  # noqa: E402
from xlstock.server.accounts import AccountStore  # noqa: E402
from xlstock.server.mail import MailSettings  # noqa: E402
from xlstock.server.runner import ServerSettings, start_background_server  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(label: str, mail: MailSettings | None, orders: int) -> None:
    db = Path(tempfile.mkdtemp()) / "bench.db"
    with start_background_server(db, settings=ServerSettings(mail=mail)) as service:
        store = service.store
        accounts = AccountStore(store)
        email, password, _ = accounts.add_account(f"{uuid.uuid4().hex[:6]}@shop.example")
        account = accounts.sign_in(email, password, "127.0.0.1").account
        assert account is not None
        url = "https://bench.example"
        token = store.add_shop(url, [StockItem(f"S-{i}", "x", "", 1000) for i in range(50)])
        accounts.save_shop_url(account, url, proof=token)
        shop = accounts.shop_of(account)
        assert shop is not None
        accounts.save_services(shop, stock_updates=True, low_stock_at=999)
        http = requests.Session()
        times = []
        for index in range(orders):
            started = time.perf_counter()
            answer = http.post(f"{service.url}/v1/orders", params={"shop": url},
                               headers={"Authorization": f"Bearer {token}"},
                               json={"lines": [{"sku": f"S-{index % 50}", "qty": 1}]},
                               timeout=30)
            times.append(time.perf_counter() - started)
            assert answer.status_code == 201, answer.text
        times.sort()
        with store.transaction(write=False) as conn:
            kept = conn.execute("SELECT COUNT(*) AS n FROM low_stock_crossings "
                                "WHERE sent_at IS NULL").fetchone()["n"]
        print(f"{label:30s} orders={orders} p50={statistics.median(times) * 1000:.1f} ms "
              f"p95={times[int(len(times) * 0.95)] * 1000:.1f} ms "
              f"max={times[-1] * 1000:.1f} ms  crossings kept={kept}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    orders = parser.parse_args().orders
    quick = {"digest_seconds": 0, "poll_seconds": 0.2, "retry_seconds": 1.0}
    run("no SMTP", None, orders)
    run("SMTP down (refused)", MailSettings("127.0.0.1", free_port(), **quick), orders)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        run("SMTP silent (20 s timeout)",
            MailSettings("127.0.0.1", silent.getsockname()[1], **quick), orders)


if __name__ == "__main__":
    main()
