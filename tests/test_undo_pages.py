"""Undoing a publish on the account pages (issue 21): History's Undo button, the preview,
the confirmation (a POST form with the session's CSRF token) and the result, in English
and French, against the real service on SQLite and on PostgreSQL (conftest.py)."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from support.accountkit import Merchant

from xlstock import stockfile
from xlstock.model import StockItem
from xlstock.server.account.pages import UNDO_ROWS_SHOWN
from xlstock.server.accounts import UNDOABLE_PUBLISHES, AccountStore


def unique(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


class Seller:
    """A merchant signed in with a shop of three products, and its API token."""

    def __init__(self, stock_service) -> None:
        self.service = stock_service
        self.merchant = Merchant(stock_service.url, AccountStore(stock_service.store),
                                 f"{unique('u')}@shop.example")
        self.shop = f"https://{unique('undo')}.example"
        self.merchant.start(self.shop)
        stock_service.store.register_shop(self.shop, [
            StockItem("A-1", "Hoodie", "Red", 5), StockItem("B-2", "Cap", "", 10),
            StockItem("C-3", "Belt", "", 4)])
        self.auth = {"Authorization": f"Bearer {self.merchant.create_token()}"}

    def levels(self) -> dict[str, int]:
        answer = requests.get(self.service.url + "/v1/stock", params={"shop": self.shop},
                              headers=self.auth, timeout=30)
        return {item["sku"]: item["qty"] for item in answer.json()["items"]}

    def publish(self, counts=None, deliveries=None) -> str:
        live = self.levels()
        counts, deliveries = dict(counts or {}), dict(deliveries or {})
        levels = {**counts, **{sku: live[sku] + add for sku, add in deliveries.items()}}
        key = f"publish-{uuid.uuid4()}"
        answer = requests.put(
            self.service.url + "/v1/stock", params={"shop": self.shop}, timeout=30,
            data=stockfile.dumps(self.shop, levels, live, deliveries),
            headers={**self.auth, "Idempotency-Key": key, "Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        return key

    def order(self, sku: str, qty: int) -> None:
        answer = requests.post(self.service.url + "/v1/orders", params={"shop": self.shop},
                               headers=self.auth, timeout=30,
                               json={"lines": [{"sku": sku, "qty": qty}]})
        assert answer.status_code == 201, answer.text

    def undo_links(self) -> list[str]:
        return re.findall(r'href="/account(/history/(\d+)/undo)"',
                          self.merchant.get("/history").text)

    def undo_link_of(self, publish_key: str) -> str:
        page = self.merchant.get("/history").text
        row = next(r for r in page.split("<tr ") if publish_key in r)
        found = re.search(r'href="/account(/history/\d+/undo)"', row)
        assert found, row
        return found.group(1)


@pytest.fixture
def seller(stock_service) -> Seller:
    return Seller(stock_service)


def rows_of(page: str) -> list[tuple[str, str, str, str, str]]:
    """(class, SKU, level now, change, level after) of each row of an undo table."""
    return re.findall(r'<tr class="(\w+)"><td><code>([^<]+)</code></td><td class="number">'
                      r'([^<]+)</td><td class="number">([^<]+)</td><td[^>]*>(.*?)</td></tr>',
                      page)


def test_history_offers_undo_on_the_last_publishes_not_undone(seller):
    keys = [seller.publish(counts={"A-1": 10 + n}) for n in range(UNDOABLE_PUBLISHES + 1)]
    seller.order("B-2", 1)
    page = seller.merchant.get("/history").text
    links = seller.undo_links()
    assert len(links) == UNDOABLE_PUBLISHES
    oldest = next(r for r in page.split("<tr ") if keys[0] in r)
    assert "/undo" not in oldest
    assert re.search(r"<code>A-1</code> <span class=\"name\">Hoodie / Red</span>: 14 → "
                     r"<strong>15", page)
    too_old = seller.merchant.get(links[0][0].replace(links[0][1], str(int(links[-1][1]) - 1)))
    assert too_old.status_code == 422 and "Only the last 5 publishes" in too_old.text


def test_preview_then_confirm_undoes_the_publish_keeping_the_sales(seller):
    published = seller.publish(deliveries={"A-1": 100}, counts={"B-2": 40})
    seller.order("A-1", 3)
    link = seller.undo_link_of(published)
    preview = seller.merchant.get(link)
    assert preview.status_code == 200
    assert rows_of(preview.text) == [("applies", "A-1", "102", "-100", "<strong>2</strong>"),
                                     ("applies", "B-2", "40", "-30", "<strong>10</strong>")]
    assert 'name="confirm_partial"' not in preview.text
    assert seller.levels() == {"A-1": 102, "B-2": 40, "C-3": 4}  # a preview changes nothing
    undo_key = re.search(r'name="undo_key" value="([^"]+)"', preview.text).group(1)
    done = seller.merchant.post(link, {"undo_key": undo_key})
    assert done.status_code == 200, done.text
    assert "Publish undone" in done.text and published in done.text
    assert seller.levels() == {"A-1": 2, "B-2": 10, "C-3": 4}
    again = seller.merchant.post(link, {"undo_key": undo_key})  # a reload, a double click
    assert again.status_code == 200 and seller.levels()["A-1"] == 2
    history = seller.merchant.get("/history").text
    assert re.findall(r'<tr class="(\w+)">', history)[:3] == ["undo", "order", "publish"]
    assert f"Undo of publish <code>{published}</code>" in history
    assert "Undone on " in history and link not in history
    later = seller.merchant.get(link)
    assert later.status_code == 409 and "already undone on" in later.text
    fresh = seller.merchant.post(link, {"undo_key": "undo-" + "x" * 20})
    assert fresh.status_code == 409 and seller.levels()["A-1"] == 2


def test_rows_that_would_go_below_zero_are_marked_and_need_the_box_ticked(seller):
    published = seller.publish(deliveries={"A-1": 10, "B-2": 5})
    seller.order("A-1", 12)
    link = seller.undo_link_of(published)
    preview = seller.merchant.get(link)
    assert rows_of(preview.text) == [  # those left as they are first
        ("refused", "A-1", "3", "-10", '<span class="badge">Left as it is</span>would go '
                                       'below zero'),
        ("applies", "B-2", "15", "-5", "<strong>10</strong>")]
    assert 'name="confirm_partial" required' in preview.text
    key = re.search(r'name="undo_key" value="([^"]+)"', preview.text).group(1)
    refused = seller.merchant.post(link, {"undo_key": key})
    assert refused.status_code == 422 and "tick the box" in refused.text
    assert seller.levels() == {"A-1": 3, "B-2": 15, "C-3": 4}
    key = re.search(r'name="undo_key" value="([^"]+)"', refused.text).group(1)
    done = seller.merchant.post(link, {"undo_key": key, "confirm_partial": "on"})
    assert done.status_code == 200, done.text
    assert seller.levels() == {"A-1": 3, "B-2": 10, "C-3": 4}
    assert ("refused", "A-1", "3", "—", '<span class="badge">Left as it is</span>would go '
                                        'below zero') in rows_of(done.text)


def test_the_confirmation_needs_the_csrf_token_and_a_key_of_its_own(seller):
    published = seller.publish(counts={"C-3": 9})
    link = seller.undo_link_of(published)
    key = re.search(r'name="undo_key" value="([^"]+)"',
                    seller.merchant.get(link).text).group(1)
    forged = seller.merchant.post(link, {"undo_key": key}, csrf=False)
    assert forged.status_code == 400
    for bad in ("", "x", "undo-<script>" + "a" * 20):
        assert seller.merchant.post(link, {"undo_key": bad}).status_code == 400
    assert seller.levels()["C-3"] == 9


def test_another_accounts_publish_and_other_versions_are_404(seller, stock_service):
    seller.publish(counts={"C-3": 9})
    _, number = seller.undo_links()[0]
    other = Seller(stock_service)
    assert other.merchant.get(f"/history/{number}/undo").status_code == 404
    catalogue = int(number) - 1  # the catalogue load: not a publish
    assert seller.merchant.get(f"/history/{catalogue}/undo").status_code == 404
    assert seller.merchant.get("/history/99999999/undo").status_code == 404
    assert seller.levels()["C-3"] == 9


def test_the_undo_pages_speak_french(seller):
    published = seller.publish(deliveries={"A-1": 2, "B-2": 1})
    seller.order("A-1", 6)
    french = {"Accept-Language": "fr"}
    history = seller.merchant.get("/history", headers=french).text
    assert ">Annuler</a>" in history
    link = seller.undo_link_of(published)
    preview = seller.merchant.get(link, headers=french).text
    assert "Annuler une publication" in preview and "Niveau actuel" in preview
    assert "passerait sous zéro" in preview
    key = re.search(r'name="undo_key" value="([^"]+)"', preview).group(1)
    assert "Annuler les lignes qui peuvent l&#39;être (1)" in preview
    refused = seller.merchant.post(link, {"undo_key": key}, headers=french).text
    assert "Certaines lignes passeraient sous zéro" in refused
    key = re.search(r'name="undo_key" value="([^"]+)"', refused).group(1)
    done = seller.merchant.post(link, {"undo_key": key, "confirm_partial": "on"},
                                headers=french).text
    assert "Publication annulée" in done
    assert "Confirmer" not in done and "Laissée telle quelle" in done
    assert "Aucune ligne" not in done
    assert "Annulée le " in seller.merchant.get("/history", headers=french).text


def test_the_pages_undo_with_stock_updates_off_the_api_does_not(seller):
    published = seller.publish(counts={"B-2": 30})
    link = seller.undo_link_of(published)
    seller.merchant.switch_updates(False)
    api = requests.post(f"{seller.service.url}/v1/publishes/{published}/undo",
                        params={"shop": seller.shop}, json={}, timeout=30,
                        headers={**seller.auth, "Idempotency-Key": str(uuid.uuid4())})
    assert api.status_code == 403 and api.json()["error"]["code"] == "stock_updates_off"
    key = re.search(r'name="undo_key" value="([^"]+)"',
                    seller.merchant.get(link).text).group(1)
    assert seller.merchant.post(link, {"undo_key": key}).status_code == 200
    seller.merchant.switch_updates(True)
    assert seller.levels()["B-2"] == 10


def test_a_large_publish_lists_its_first_rows_and_counts_the_others(seller, stock_service):
    """A publish of 100,000 SKUs made preview and result pages of 15 MB (measured):
    they list UNDO_ROWS_SHOWN rows, those left as they are first."""
    skus = [f"BULK-{n:03d}" for n in range(UNDO_ROWS_SHOWN + 5)]
    stock_service.store.register_shop(seller.shop, [StockItem(sku, "Bulk", "", 1)
                                                    for sku in skus])
    published = seller.publish(deliveries={sku: 1 for sku in skus})  # each 1 -> 2
    seller.order(skus[-1], 2)  # the last one: taking back 1 would leave -1
    link = seller.undo_link_of(published)
    preview = seller.merchant.get(link).text
    rows = rows_of(preview)
    assert len(rows) == UNDO_ROWS_SHOWN
    assert rows[0][:2] == ("refused", skus[-1])
    assert "… and 5 more" in preview
    key = re.search(r'name="undo_key" value="([^"]+)"', preview).group(1)
    done = seller.merchant.post(link, {"undo_key": key, "confirm_partial": "on"})
    assert done.status_code == 200 and "… and 5 more" in done.text
    assert f"{UNDO_ROWS_SHOWN + 4} levels moved back" in done.text
    levels = seller.levels()
    assert all(levels[sku] == 1 for sku in skus[:-1]) and levels[skus[-1]] == 0
