"""Low stock by e-mail (issue 24): thresholds published with the stock file, crossings
queued with the order or publish that caused them, and digests sent to a real SMTP
server (aiosmtpd, in this process, on 127.0.0.1) in the account's language.

Storage and sending run on SQLite and PostgreSQL (``BOTH_BACKENDS``); time is injected
into the sender so that no test waits an hour.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import json
import re
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from support.accountkit import Merchant

from xlstock.cli.server_commands import serve_command
from xlstock.model import StockItem
from xlstock.server.account.strings import french
from xlstock.server.accounts import AccountStore
from xlstock.server.mail import POLL_SECONDS, RETRY_SECONDS, LowStockMailer, MailSettings
from xlstock.server.runner import ServerSettings, start_background_server
from xlstock.server.storage import StockStore

ITEMS = (
    StockItem("A-1", "Hoodie", "Red / XL", 8),
    StockItem("B-2", "Cap", "", 10),
    StockItem("C-3", "Socks", "Blue", 30),
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.to(address)) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"no e-mail to {address} within {timeout} s"
                self.arrived.wait(left)
        return self.to(address)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class MerchantShop:
    url: str
    email: str
    store: StockStore
    accounts: AccountStore
    account: Any

    def order(self, **lines: int) -> dict:
        body = json.dumps({"lines": [{"sku": sku.replace("_", "-"), "qty": qty}
                                     for sku, qty in lines.items()]}).encode()
        answer = self.store.order(self.url, body=body)
        assert answer.status == 201, answer.body
        return answer.body

    def publish(self, lines: dict[str, tuple[int, int]],
                thresholds: dict[str, int | None] | None = None) -> Any:
        document: dict[str, Any] = {
            "format": "xlstock.stock", "format_version": 3, "shop": self.url,
            "items": [{"sku": sku, "from": old, "qty": new} for sku, (old, new) in lines.items()]}
        if thresholds is not None:
            document["thresholds"] = thresholds
        return self.store.publish(self.url, key=uuid.uuid4().hex,
                                  body=json.dumps(document).encode())


def merchant_shop(store: StockStore, *, language: str = "en",
                  low_stock_at: int = 5) -> MerchantShop:
    """A shop from ``shop add``, claimed by a new account, stock updates on."""
    accounts = AccountStore(store)
    address, password, _ = accounts.add_account(f"m-{uuid.uuid4().hex[:8]}@shop.example")
    account = accounts.sign_in(address, password, "127.0.0.1").account
    url = f"https://shop-{uuid.uuid4().hex[:12]}.example"
    token = store.add_shop(url, ITEMS)
    assert accounts.save_shop_url(account, url, proof=token)[0] == "claimed"
    shop = accounts.shop_of(account)
    accounts.save_services(shop, stock_updates=True, low_stock_at=low_stock_at)
    if language != "en":
        accounts.save_language(account, language)
    return MerchantShop(url, address, store, accounts, account)


@pytest.fixture
def database(new_db) -> Any:
    return new_db()


@pytest.fixture
def store(database) -> Iterator[StockStore]:
    opened = StockStore(database, low_stock_mail=True)
    yield opened
    opened.close()


def mailer_for(store: StockStore, port: int, clock: Clock, digest: int = 0) -> LowStockMailer:
    return LowStockMailer(store, MailSettings(
        smtp_host="127.0.0.1", smtp_port=port, mail_from="stock@service.example",
        digest_seconds=digest, service_url="https://stock.example/", timeout=5,
        retry_seconds=10), clock=clock)


def listed(message: Any) -> str:
    return str(message.get_content())


# -- storage and sending, on both backends --------------------------------------------


def test_a_sale_crossing_the_threshold_sends_one_message_a_second_does_not(store, smtp):
    inbox, port = smtp
    clock = Clock()
    shop = merchant_shop(store)
    mailer = mailer_for(store, port, clock)
    shop.order(A_1=2)  # 8 -> 6: above 5
    assert mailer.drain() == 0
    shop.order(A_1=2)  # 6 -> 4: crosses
    assert mailer.drain() == 1
    [message] = inbox.to(shop.email)
    assert message["Subject"] == f"Low stock at {shop.url}: 1 product(s)"
    assert message["From"] == "stock@service.example"
    body = listed(message)
    assert "A-1 (Hoodie / Red / XL): 4 left (threshold 5)" in body
    assert "https://stock.example/account/stock?lang=en" in body
    clock.advance(10)
    shop.order(A_1=1)  # 4 -> 3: still below, no new crossing
    assert mailer.drain() == 0
    assert len(inbox.to(shop.email)) == 1


def test_a_restock_above_the_threshold_re_arms_it(store, smtp):
    inbox, port = smtp
    clock = Clock()
    shop = merchant_shop(store)
    mailer = mailer_for(store, port, clock)
    shop.order(A_1=4)  # 8 -> 4
    assert mailer.drain() == 1
    assert shop.publish({"A-1": (4, 5)}).status == 200  # to 5: still at the threshold
    shop.order(A_1=1)
    assert mailer.drain() == 0
    assert shop.publish({"A-1": (4, 12)}).status == 200  # above: re-armed
    shop.order(A_1=7)  # 12 -> 5
    assert mailer.drain() == 1
    second = inbox.to(shop.email)[1]
    assert "A-1 (Hoodie / Red / XL): 5 left (threshold 5)" in listed(second)


def test_a_publish_that_counts_a_level_down_is_a_crossing_too(store, smtp):
    inbox, port = smtp
    shop = merchant_shop(store)
    assert shop.publish({"B-2": (10, 2)}).status == 200
    assert mailer_for(store, port, Clock()).drain() == 1
    assert "B-2 (Cap): 2 left (threshold 5)" in listed(inbox.to(shop.email)[0])


def test_the_digest_gathers_the_crossings_of_its_hour(store, smtp):
    inbox, port = smtp
    clock = Clock()
    shop = merchant_shop(store)
    mailer = mailer_for(store, port, clock, digest=3600)
    shop.order(A_1=4)
    assert mailer.drain() == 1  # the first goes at once
    clock.advance(60)
    shop.order(B_2=6)
    clock.advance(600)
    shop.order(C_3=29)
    assert mailer.drain() == 0  # within the hour: held
    clock.advance(3600 - 660 - 1)
    assert mailer.drain() == 0
    clock.advance(1)
    assert mailer.drain() == 1
    first, second = inbox.to(shop.email)
    assert second["Subject"] == f"Low stock at {shop.url}: 2 product(s)"
    body = listed(second)
    assert "B-2 (Cap): 4 left (threshold 5)" in body
    assert "C-3 (Socks / Blue): 1 left (threshold 5)" in body
    assert "A-1" not in body
    clock.advance(7200)
    assert mailer.drain() == 0  # nothing is mailed twice


def test_a_french_account_gets_its_e_mail_in_french(store, smtp):
    inbox, port = smtp
    shop = merchant_shop(store, language="fr")
    store.register_shop(shop.url, [StockItem("D-4", "Bonnet", "", 12_000)],
                        allow_level_changes=True, another_token=False)
    shop.order(A_1=8)
    assert shop.publish({"D-4": (12_000, 1_500)}, {"D-4": 2_000}).status == 200
    assert mailer_for(store, port, Clock()).drain() == 1
    [message] = inbox.to(shop.email)
    assert message["Subject"] == f"Stock bas sur {shop.url} : 2 produit(s)"
    assert message["Content-Language"] == "fr"
    body = listed(message)
    assert "Ces produits de" in body
    assert "A-1 (Hoodie / Red / XL): 0 en stock (seuil 5)" in body
    assert "D-4 (Bonnet): 1\u202f500 en stock (seuil 2\u202f000)" in body
    assert "https://stock.example/account/stock?lang=fr" in body
    assert "Niveaux de stock : " in body


def test_published_thresholds_are_each_skus_own_and_null_is_the_shops(store, smtp):
    inbox, port = smtp
    shop = merchant_shop(store, low_stock_at=5)
    answer = shop.publish({}, {"A-1": 7, "B-2": 1, "C-3": None, "ZZ-unknown": 3})
    assert answer.status == 200, answer.body
    mailer = mailer_for(store, port, Clock())
    shop.order(A_1=1)  # 8 -> 7: its own threshold 7
    shop.order(B_2=8)  # 10 -> 2: its own threshold 1, not crossed
    shop.order(C_3=25)  # 30 -> 5: the shop's 5
    assert mailer.drain() == 1
    body = listed(inbox.to(shop.email)[0])
    assert "A-1 (Hoodie / Red / XL): 7 left (threshold 7)" in body
    assert "C-3 (Socks / Blue): 5 left (threshold 5)" in body
    assert "B-2" not in body
    assert shop.publish({}, {"B-2": None}).status == 200  # back to the shop's 5
    shop.order(B_2=1)  # 2 -> 1: below 5 already, no crossing
    assert shop.publish({"B-2": (1, 9)}).status == 200
    shop.order(B_2=5)  # 9 -> 4
    assert mailer.drain() == 1
    assert "B-2 (Cap): 4 left (threshold 5)" in listed(inbox.to(shop.email)[1])


def test_a_shop_no_account_holds_sends_nothing(store, smtp):
    inbox, port = smtp
    url = f"https://shop-{uuid.uuid4().hex[:12]}.example"
    store.add_shop(url, ITEMS)
    assert store.order(url, body=b'{"lines": [{"sku": "A-1", "qty": 8}]}').status == 201
    assert mailer_for(store, port, Clock()).drain() == 0
    assert not inbox.messages
    with store.transaction(write=False) as conn:
        assert conn.execute("SELECT COUNT(*) AS n FROM low_stock_crossings").fetchone()["n"] == 0


def test_a_service_without_smtp_queues_nothing(new_db):
    plain = StockStore(new_db())
    try:
        shop = merchant_shop(plain)
        shop.order(A_1=8)
        with plain.transaction(write=False) as conn:
            count = conn.execute("SELECT COUNT(*) AS n FROM low_stock_crossings").fetchone()
        assert count["n"] == 0
    finally:
        plain.close()


def test_switched_off_e_mails_are_not_sent(store, smtp):
    inbox, port = smtp
    shop = merchant_shop(store)
    mailer = mailer_for(store, port, Clock())
    shop.order(A_1=4)  # queued while on ...
    shop.accounts.save_services(shop.accounts.shop_of(shop.account), stock_updates=True,
                                low_stock_at=5, low_stock_mail=False)
    assert mailer.drain() == 0  # ... and dropped once switched off
    shop.order(B_2=8)
    assert mailer.drain() == 0
    assert not inbox.messages
    with store.transaction(write=False) as conn:
        waiting = conn.execute("SELECT COUNT(*) AS n FROM low_stock_crossings "
                               "WHERE sent_at IS NULL").fetchone()["n"]
    assert waiting == 0


def test_a_failed_send_is_kept_and_retried_once_the_server_is_back(store, smtp):
    inbox, port = smtp
    clock = Clock()
    shop = merchant_shop(store)
    down = mailer_for(store, free_port(), clock)  # nothing listens there
    shop.order(A_1=4)
    assert down.drain() == 0
    back = LowStockMailer(store, MailSettings(
        smtp_host="127.0.0.1", smtp_port=port, digest_seconds=0, retry_seconds=10),
        clock=clock)
    assert back.drain() == 0  # the retry waits its time
    clock.advance(10)
    assert back.drain() == 1
    assert len(inbox.to(shop.email)) == 1
    clock.advance(3600)
    assert back.drain() == 0


def test_two_service_processes_on_one_database_send_a_digest_once(store, database, smtp):
    inbox, port = smtp
    clock = Clock()
    shops = [merchant_shop(store) for _ in range(6)]
    for shop in shops:
        shop.order(A_1=4, B_2=9)
    other = StockStore(database, low_stock_mail=True)  # its own connections
    try:
        senders = [mailer_for(s, port, clock) for s in (store, other, store, other)]
        sent: list[int] = []
        threads = [threading.Thread(target=lambda s=s: sent.append(s.drain()))
                   for s in senders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        other.close()
    assert sum(sent) == len(shops)
    for shop in shops:
        assert len(inbox.to(shop.email)) == 1


def test_bad_thresholds_are_refused_with_422_naming_the_sku(store):
    shop = merchant_shop(store)
    for thresholds, problem in [
        ({"A-1": -1}, "SKU 'A-1': thresholds: threshold -1 is below 0"),
        ({"A-1": 2.5}, "SKU 'A-1': thresholds: threshold 2.5 is not a whole number"),
        ({"A-1": "3"}, "threshold \"3\" is not a whole number"),
        ({"A-1": True}, "threshold true is not a whole number"),
        ({" ": 3}, "thresholds: sku"),
        ([1, 2], "thresholds is [1, 2], not an object"),
    ]:
        answer = shop.publish({"A-1": (8, 9)}, thresholds)  # type: ignore[arg-type]
        assert answer.status == 422, (thresholds, answer.body)
        assert problem in answer.body["error"]["message"], answer.body
    version2 = {"format": "xlstock.stock", "format_version": 2, "shop": shop.url,
                "items": [], "thresholds": {"A-1": 3}}
    answer = store.publish(shop.url, key="k2", body=json.dumps(version2).encode())
    assert answer.status == 422 and "send version 3" in answer.body["error"]["message"]
    assert store.read_levels(shop.url)["items"][0]["qty"] == 8  # nothing applied


# -- the service: sending after the answer, the Services page ------------------------


def mail_service(db: Any, port: int) -> Any:
    return start_background_server(db, settings=ServerSettings(mail=MailSettings(
        smtp_host="127.0.0.1", smtp_port=port, digest_seconds=0, poll_seconds=0.2,
        retry_seconds=1, timeout=2)))


def api_order(service: Any, shop: str, token: str, sku: str, qty: int) -> float:
    started = time.perf_counter()
    answer = requests.post(f"{service.url}/v1/orders", params={"shop": shop},
                           headers={"Authorization": f"Bearer {token}"},
                           json={"lines": [{"sku": sku, "qty": qty}]}, timeout=30)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 201, answer.text
    return elapsed


def test_a_down_smtp_server_delays_no_order_and_loses_nothing(new_db):
    port = free_port()
    with mail_service(new_db(), port) as service:
        shop = merchant_shop(service.store)
        token = service.store.add_shop(shop.url)
        latencies = [api_order(service, shop.url, token, "C-3", 1) for _ in range(20)]
        api_order(service, shop.url, token, "A-1", 4)  # crosses while SMTP is down
        time.sleep(1.0)  # the sender tries and fails meanwhile
        latencies += [api_order(service, shop.url, token, "C-3", 1) for _ in range(5)]
        assert statistics.median(latencies) < 0.25, latencies
        assert max(latencies) < 2.0, latencies
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            [message] = inbox.wait_for(shop.email, timeout=20)
            assert "A-1 (Hoodie / Red / XL): 4 left (threshold 5)" in listed(message)
            assert service.url + "/account/stock?lang=en" in listed(message)
        finally:
            controller.stop()


def test_a_slow_smtp_server_delays_no_order(new_db):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never greets
    try:
        with mail_service(new_db(), silent.getsockname()[1]) as service:
            shop = merchant_shop(service.store)
            token = service.store.add_shop(shop.url)
            api_order(service, shop.url, token, "A-1", 4)
            time.sleep(0.5)  # the sender is now waiting on the silent server
            latencies = [api_order(service, shop.url, token, "C-3", 1) for _ in range(10)]
            assert max(latencies) < 1.0, latencies
    finally:
        silent.close()


def test_the_services_page_switch_and_language_drive_the_e_mails(new_db, smtp):
    inbox, port = smtp
    with mail_service(new_db(), port) as service:
        merchant = Merchant(service.url, AccountStore(service.store),
                            f"p-{uuid.uuid4().hex[:8]}@shop.example")
        url = f"https://shop-{uuid.uuid4().hex[:12]}.example"
        merchant.start(url)
        page = merchant.get("/services")
        assert 'name="low_stock_mail" type="checkbox" value="on" checked' in page.text
        assert "sends no e-mail" not in page.text
        assert merchant.email in page.text
        token = merchant.create_token()
        service.store.register_shop(url, ITEMS, another_token=False)
        merchant.get("/stock", params={"lang": "fr"})  # the merchant chooses French
        api_order(service, url, token, "A-1", 4)
        [message] = inbox.wait_for(merchant.email)
        assert message["Subject"].startswith("Stock bas sur")
        # switched off on the page: no more e-mail
        answer = merchant.post("/services", {"stock_updates": "on", "low_stock_at": "5"})
        assert answer.status_code == 200 and answer.url.endswith("done=saved")
        assert 'value="on" checked' not in merchant.get("/services").text.split(
            'id="low_stock_mail"')[1][:40]
        api_order(service, url, token, "B-2", 8)
        time.sleep(1.0)
        assert len(inbox.to(merchant.email)) == 1
        answer = merchant.post("/services", {"stock_updates": "on", "low_stock_at": "5",
                                             "low_stock_mail": "on"})
        assert answer.status_code == 200
        merchant.get("/stock", params={"lang": "en"})
        api_order(service, url, token, "C-3", 26)
        second = inbox.wait_for(merchant.email, 2)[1]
        assert second["Subject"] == f"Low stock at {url}: 1 product(s)"


def test_the_services_page_says_why_no_e_mail_is_sent_without_smtp(stock_service):
    merchant = Merchant(stock_service.url, AccountStore(stock_service.store),
                        f"n-{uuid.uuid4().hex[:8]}@shop.example")
    merchant.start(f"https://shop-{uuid.uuid4().hex[:12]}.example")
    page = merchant.get("/services").text
    assert "This stock service sends no e-mail" in page
    assert "xlstock serve --smtp-host" in page
    french = html.unescape(merchant.get("/services", params={"lang": "fr"}).text)
    assert "Ce service de stock n'envoie aucun e-mail" in french


# -- the command line ----------------------------------------------------------------


def test_serve_refuses_smtp_options_without_a_host_and_a_user_without_password(
        tmp_path, monkeypatch):
    monkeypatch.delenv("XLSTOCK_SMTP_PASSWORD", raising=False)
    db = str(tmp_path / "shop.db")
    result = CliRunner().invoke(serve_command, ["--db", db, "--smtp-port", "2525"])
    assert result.exit_code != 0 and "need --smtp-host" in result.output
    result = CliRunner().invoke(serve_command, ["--db", db, "--smtp-host", "127.0.0.1",
                                                "--smtp-user", "shop"])
    assert result.exit_code != 0 and "XLSTOCK_SMTP_PASSWORD" in result.output
    result = CliRunner().invoke(serve_command, ["--db", db, "--smtp-host", "127.0.0.1",
                                                "--mail-from", "stock\n@shop.example"])
    assert result.exit_code != 0 and "--mail-from" in result.output
    assert "is not an e-mail address" in result.output
    result = CliRunner().invoke(serve_command, ["--db", db, "--smtp-host", "127.0.0.1",
                                                "--public-url", "stock.example"])
    assert result.exit_code != 0 and "is not a web address" in result.output
    result = CliRunner().invoke(serve_command, ["--help"])
    for option in ("--smtp-host", "--smtp-port", "--smtp-starttls", "--smtp-user",
                   "--mail-from", "--low-stock-digest"):
        assert option in result.output


def test_a_failed_send_is_retried_within_a_minute():
    assert RETRY_SECONDS + POLL_SECONDS < 60


def unsent(store: StockStore) -> int:
    with store.transaction(write=False) as conn:
        return int(conn.execute("SELECT COUNT(*) AS n FROM low_stock_crossings "
                                "WHERE sent_at IS NULL").fetchone()["n"])


def test_a_refused_or_replayed_write_records_no_crossing_and_no_threshold(store, smtp):
    inbox, port = smtp
    shop = merchant_shop(store)
    short = store.order(shop.url, body=b'{"lines": [{"sku": "A-1", "qty": 4},'
                                        b' {"sku": "B-2", "qty": 99}]}')
    assert short.status == 409
    moved = shop.publish({"A-1": (7, 1)}, {"B-2": 20})  # planned from 7, the level is 8
    assert moved.status == 412
    assert unsent(store) == 0
    shop.order(B_2=9)  # 10 -> 1: its threshold is still the shop's 5
    assert unsent(store) == 1
    document = {"format": "xlstock.stock", "format_version": 3, "shop": shop.url,
                "items": [{"sku": "A-1", "from": 8, "qty": 2}]}
    body = json.dumps(document).encode()
    assert store.publish(shop.url, key="once", body=body).status == 200
    replay = store.publish(shop.url, key="once", body=body)
    assert replay.status == 200 and replay.replayed
    assert unsent(store) == 2
    assert mailer_for(store, port, Clock()).drain() == 1
    assert "2 product(s)" in inbox.to(shop.email)[0]["Subject"]


def test_every_text_of_the_e_mail_has_its_french():
    source = (Path(__file__).resolve().parents[1] / "xlstock" / "server" / "mail.py"
              ).read_text("utf-8")
    used = {"".join(re.findall(r'"([^"]*)"', block))
            for block in re.findall(r'\bt\(((?:\s*"[^"]*"\s*)+)', source)}
    assert len(used) >= 5
    assert sorted(text for text in used if text not in french()) == []


def test_a_silent_smtp_server_does_not_hold_the_services_shutdown(new_db):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        service = start_background_server(new_db(), settings=ServerSettings(
            mail=MailSettings(smtp_host="127.0.0.1", smtp_port=silent.getsockname()[1],
                              digest_seconds=0, poll_seconds=0.2, timeout=30)))
        shop = merchant_shop(service.store)
        token = service.store.add_shop(shop.url)
        api_order(service, shop.url, token, "A-1", 4)
        time.sleep(1.0)  # the sender now waits for the silent server's greeting
        started = time.monotonic()
        service.stop()
        assert time.monotonic() - started < 10
    finally:
        silent.close()


def test_undoing_a_restock_that_takes_a_level_back_down_is_a_crossing(store, smtp):
    inbox, port = smtp
    shop = merchant_shop(store)
    mailer = mailer_for(store, port, Clock())
    shop.order(A_1=4)  # 8 -> 4
    assert mailer.drain() == 1
    document = {"format": "xlstock.stock", "format_version": 3, "shop": shop.url,
                "items": [{"sku": "A-1", "from": 4, "qty": 16, "add": 12}]}
    assert store.publish(shop.url, key="restock", body=json.dumps(document).encode()
                         ).status == 200
    assert mailer.drain() == 0
    undone = store.undo_publish(shop.url, "restock", key="undo-1", body=b"")
    assert undone.status == 200, undone.body
    assert mailer.drain() == 1
    assert "A-1 (Hoodie / Red / XL): 4 left (threshold 5)" in listed(inbox.to(shop.email)[1])


def test_a_workbooks_low_at_reaches_the_e_mail_end_to_end(new_db, smtp, tmp_path):
    """The real `xlstock` commands: a Low at typed in the workbook is published and is
    the threshold the service's e-mail names when a sale crosses it."""
    from support.shopkit import Shop

    inbox, port = smtp
    with mail_service(new_db(), port) as service:
        shop = Shop(service, tmp_path)  # A-1 10, B-2 5, C-3 8, 00123 3
        accounts = AccountStore(service.store)
        address, password, _ = accounts.add_account(f"w-{uuid.uuid4().hex[:8]}@shop.example")
        account = accounts.sign_in(address, password, "127.0.0.1").account
        assert accounts.save_shop_url(account, shop.url, proof=shop.token)[0] == "claimed"
        shop.new()
        shop.run("sync", str(shop.workbook))
        shop.edit(**{"A-1": {"Low at": 9, "Received": 1}})  # 10 + 1 = 11, Low at 9
        shop.run("publish", str(shop.workbook))
        assert shop.live()["A-1"] == 11
        shop.sell(**{"A-1": 2})  # 11 -> 9: its own threshold (the shop's is 5)
        [message] = inbox.wait_for(address)
        assert "A-1 (Hoodie / Red / L): 9 left (threshold 9)" in listed(message)
