"""The merchant's loop on a WooCommerce shop: xlstock's WooCommerce connector against the
stand-in of WooCommerce's REST API (tests/support/woocommerce_standin.py), over real
HTTP, with a sale placed between xlstock's re-read and its write."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from support import shopkit
from support.woocommerce_standin import WooCommerceStandIn

from xlstock.errors import UsageError
from xlstock.shops.woocommerce import WooCommerceConnector, key_time, publish_key, shop_address


def _stock(shop: WooCommerceStandIn) -> None:
    shop.add_simple("Cap", "B-2", 5)
    shop.add_simple("Belt", "C-3", 8)
    shop.add_variable("Hoodie", [
        {"sku": "A-1", "qty": 10, "attributes": {"Colour": "Red", "Size": "L"}},
        {"sku": "A-2", "qty": 4, "attributes": {"Colour": "Blue", "Size": "M"}},
    ])
    shop.add_simple("Poster", "P-9", 0, manage_stock=False)
    shop.add_simple("Gift card", "", 3)


@pytest.fixture
def shop():
    with WooCommerceStandIn() as standin:
        _stock(standin)
        yield standin


class Merchant(shopkit.Merchant):
    def __init__(self, shop: WooCommerceStandIn, tmp_path: Path, name: str = "stock.xlsx",
                 credential: str | None = None) -> None:
        self.shop = shop
        self.workbook = tmp_path / name
        self.env = {"XLSTOCK_TOKEN": credential or f"{shop.key}:{shop.secret}",
                    "XLSTOCK_CACHE_DIR": "off"}

    def new(self) -> None:
        self.run("new", str(self.workbook), "--woocommerce", self.shop.url)


@pytest.fixture
def merchant(shop, tmp_path):
    person = Merchant(shop, tmp_path)
    person.new()
    return person


def test_shop_addresses_and_keys_that_carry_their_time():
    assert shop_address("shop.example/") == "https://shop.example"
    assert shop_address("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    with pytest.raises(UsageError, match="https only"):
        shop_address("http://shop.example")
    key = publish_key()
    assert key_time(key) is not None and key_time("0123abc") is None


def test_sync_reads_products_and_variations_and_names_what_it_left_out(merchant):
    result = merchant.run("sync", str(merchant.workbook))
    sheet = merchant.sheet()
    assert {sku: row["Online"] for sku, row in sheet.items()} == {
        "A-1": 10, "A-2": 4, "B-2": 5, "C-3": 8}
    assert sheet["A-1"]["Product"] == "Hoodie" and sheet["A-1"]["Variant"] == "Red / L"
    assert "without managed stock" in result.output and "P-9" in result.output
    assert "have no SKU" in result.output


def test_the_daily_loop_keeps_the_sales_made_since_sync(merchant):
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    shop.sell({"A-1": 1, "B-2": 1})
    merchant.edit(**{"A-1": {"Received": 5}, "B-2": {"New level": 2}})
    merchant.run("preview", str(merchant.workbook))
    merchant.run("publish", str(merchant.workbook))
    assert shop.level("A-1") == 10 - 1 + 5 and shop.level("B-2") == 2 - 1
    sheet = merchant.sheet()
    assert sheet["A-1"]["Online"] == 14 and sheet["B-2"]["Online"] == 1
    assert sheet["A-1"]["Received"] is None and sheet["B-2"]["New level"] is None
    again = merchant.run("publish", str(merchant.workbook))
    assert "Nothing to publish" in again.output


def test_a_sale_between_the_reread_and_the_write_is_found_and_taken_off_again(merchant):
    """The slip no read-back can show: the count is written over a sale made after
    xlstock's re-read; the orders since give it away, and it is taken off again."""
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"C-3": {"New level": 20}})
    sales = iter([2])
    shop.before_write(lambda standin, route, body: [standin.sell({"C-3": q}) for q in sales])
    result = merchant.run("publish", str(merchant.workbook))
    assert "Repaired: C-3: 2 unit(s) sold while the count was written" in result.output
    assert shop.level("C-3") == 20 - 2
    assert merchant.sheet()["C-3"]["Online"] == 18


def test_a_delivery_written_before_a_count_is_replanned_is_reported_with_it(merchant):
    """The delivery's batch is written, a sale moves the counted SKU before its own
    batch, and the count is re-planned: the delivery stays in Change, Status and the
    Log next to the count."""
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"A-2": {"Received": 2}, "C-3": {"New level": 20}})
    sales = iter([2])
    shop.before_write(lambda standin, route, body: [standin.sell({"C-3": q}) for q in sales])
    result = merchant.run("publish", str(merchant.workbook))
    assert shop.level("A-2") == 6 and shop.level("C-3") == 18
    sheet = merchant.sheet()
    assert (sheet["A-2"]["Change"], sheet["A-2"]["Status"]) == (2, "changed")
    assert (sheet["C-3"]["Change"], sheet["C-3"]["Status"]) == (12, "changed")
    assert "Published 2 change(s)" in result.output and "+14 units" in result.output
    log = list(openpyxl.load_workbook(merchant.workbook)["Log"].iter_rows(values_only=True))
    assert (log[-1][1], log[-1][3], log[-1][4]) == ("publish", 2, 14)


def test_a_sale_inside_a_delivery_s_write_is_found_and_taken_off_again(merchant):
    """WooCommerce adds a delivery to the level it loads and saves the sum: a sale
    between that load and save is overwritten. The orders since the re-read give it
    away, and it is taken off again; a sale after the write is left alone."""
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"A-2": {"Received": 3}, "B-2": {"Received": 1}})
    inside = iter([1])
    shop.between_load_and_save(
        lambda standin, sku, _level: [standin.sell({"A-2": q}) for q in inside]
        if sku == "A-2" else None)
    after = iter([2])
    shop.after_write(lambda standin, *_: [standin.sell({"B-2": q}) for q in after])
    result = merchant.run("publish", str(merchant.workbook))
    assert "Repaired: A-2: 1 unit(s) sold while the delivery was added" in result.output
    assert shop.level("A-2") == 4 + 3 - 1 and shop.level("B-2") == 5 + 1 - 2
    assert merchant.sheet()["A-2"]["Online"] == 6


def test_a_sale_that_cannot_be_explained_is_reported_with_exit_3(merchant):
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"C-3": {"New level": 20}})
    once = iter([1])

    def sale_and_admin_edit(standin, route, body):
        for _ in once:
            standin.sell({"C-3": 2})

    def admin_edit_after(standin, route, body, *_answer):
        if any("stock_quantity" in item for item in body.get("update", [])):
            standin.set_level("C-3", 17)

    shop.before_write(sale_and_admin_edit)
    shop.after_write(admin_edit_after)
    result = merchant.run("publish", str(merchant.workbook), expect=3)
    assert "may have been overwritten" in result.output
    assert "a sale may have been overwritten" in str(merchant.sheet()["C-3"]["Status"])


def test_a_count_overtaken_before_the_reread_is_replanned(merchant):
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"B-2": {"New level": 9}})
    shop.sell({"B-2": 3})
    merchant.run("publish", str(merchant.workbook))
    assert shop.level("B-2") == 9 - 3


def test_under_strict_a_count_moved_before_its_batch_leaves_the_deliveries_unsent(
        merchant, monkeypatch):
    """A sale lands between the plan's read and the count's batch re-read: under strict
    nothing is published, the delivery (another batch: the variations') included. The
    counts' batches go first, and a moved count ends the publish before any write."""
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.set_setting("Conflict policy", "strict")
    merchant.edit(**{"A-2": {"Received": 3}, "C-3": {"New level": 20}})
    reread = WooCommerceConnector._live_levels
    sales = iter([2])

    def sale_before_the_reread(connector, batch, items):
        for qty in sales:
            shop.sell({"C-3": qty})
        return reread(connector, batch, items)

    monkeypatch.setattr(WooCommerceConnector, "_live_levels", sale_before_the_reread)
    result = merchant.run("publish", str(merchant.workbook), expect=3)
    assert "nothing was sent" in result.output
    assert shop.level("A-2") == 4 and shop.level("C-3") == 6
    assert not shop.writes
    assert merchant.sheet()["A-2"]["Received"] == 3


def test_a_read_only_key_is_told_where_to_give_it_write_rights(shop, tmp_path):
    shop.permissions = "read"
    person = Merchant(shop, tmp_path)
    person.new()
    person.run("sync", str(person.workbook))
    person.edit(**{"B-2": {"Received": 1}})
    result = person.run("publish", str(person.workbook), expect=4)
    assert "no write permissions" in result.output and "Read/Write" in result.output
    assert shop.level("B-2") == 5


def test_a_busy_shop_s_html_pages_are_waited_out_and_the_wait_is_said(merchant):
    """nginx's 429 and WordPress's maintenance 503 are HTML pages, not JSON: they are
    waited out (and the merchant told so), not taken for a shop that is not WooCommerce."""
    shop = merchant.shop
    shop.fail_next(429, retry_after=1)
    shop.fail_next(503, times=2)
    result = merchant.run("sync", str(merchant.workbook))
    assert "answered 429 (busy); trying again in 1 s" in result.output
    assert merchant.sheet()["C-3"]["Online"] == 8
    merchant.edit(**{"C-3": {"Received": 2}})
    shop.fail_next(429, retry_after=0)
    merchant.run("publish", str(merchant.workbook))  # a 429 ran nothing: the write is resent
    assert shop.level("C-3") == 10


def test_a_write_answered_5xx_is_an_unknown_outcome_settled_by_the_next_publish(merchant):
    """A proxy's 502 (an HTML page) on a batch write says nothing of whether WordPress
    applied it: the outcome is unknown (exit 4, said so), and the next publish settles it,
    adding the delivery once."""
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"C-3": {"Received": 2}})
    shop.fail_next(502, method="POST")
    result = merchant.run("publish", str(merchant.workbook), expect=4)
    assert "The write may have reached WooCommerce: run publish again" in result.output
    assert shop.level("C-3") == 8
    merchant.run("publish", str(merchant.workbook))
    assert shop.level("C-3") == 10
    assert merchant.sheet()["C-3"]["Received"] is None
    merchant.run("publish", str(merchant.workbook))
    assert shop.level("C-3") == 10


def test_a_location_named_on_a_woocommerce_workbook_is_said_to_be_left_aside(merchant):
    """WooCommerce has no locations: a Location typed in Settings (as on Shopify) would
    make the merchant think the sheet is that warehouse's stock; Sync says it is not."""
    merchant.set_setting("Location", "Warehouse")
    result = merchant.run("sync", str(merchant.workbook))
    assert "Location 'Warehouse' is left aside" in result.output
    assert merchant.sheet()["C-3"]["Online"] == 8


def test_a_row_whose_product_stopped_managing_stock_says_how_to_fix_it(merchant):
    """The product is still in the shop: its row says to tick 'Manage stock?', not to
    check the SKU's spelling or add the product."""
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    shop.set_manage_stock("B-2", False)
    merchant.edit(**{"B-2": {"Received": 1}})
    result = merchant.run("publish", str(merchant.workbook), expect=1)
    assert "the shop has it, but WooCommerce does not manage its stock: tick 'Manage " \
        "stock?'" in result.output
    assert "check the spelling" not in result.output
    merchant.run("sync", str(merchant.workbook))
    assert "tick 'Manage stock?'" in str(merchant.sheet()["B-2"]["Status"])


def test_stock_management_switched_off_is_named(shop, tmp_path):
    shop.manage_stock = "no"
    person = Merchant(shop, tmp_path)
    person.new()
    result = person.run("sync", str(person.workbook), expect=2)
    assert "Manage stock" in result.output


def _many(shop: WooCommerceStandIn, count: int) -> list[str]:
    skus = [f"W-{n:04d}" for n in range(count)]
    for sku in skus:
        shop.add_simple(f"Item {sku}", sku, 50)
    return skus


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", [
    "before_upload", "woocommerce_before_batch_1", "woocommerce_after_batch_1",
    "woocommerce_after_batch_2", "after_upload",
])
def test_a_multi_batch_publish_killed_at_any_step_is_finished_once(shop, tmp_path, failpoint):
    """250 lines (deliveries and counts) are three batches; killed at each step, the
    next publish applies every delivery once and never writes a count over a sale."""
    skus = _many(shop, 250)
    person = Merchant(shop, tmp_path)
    person.new()
    person.run("sync", str(person.workbook))
    person.edit(**{sku: ({"Received": 5} if n % 2 else {"New level": 40})
                   for n, sku in enumerate(skus)})
    person.publish_killed_at(failpoint, "--allow-mass-change")
    shop.sell({skus[1]: 1, skus[2]: 1})  # a delivery's SKU and a count's SKU sell meanwhile
    person.run("publish", str(person.workbook), "--allow-mass-change")
    levels = shop.levels()
    expected = {sku: (55 if n % 2 else 40) for n, sku in enumerate(skus)}
    expected[skus[1]] -= 1
    expected[skus[2]] -= 1
    assert {sku: levels[sku] for sku in skus} == expected
    sheet = person.sheet()
    assert all(sheet[sku]["Received"] is None and sheet[sku]["New level"] is None
               for sku in skus)


def test_a_preview_after_a_killed_publish_does_not_take_its_count_for_a_delivery(
        merchant):
    """Killed after the count's batch was written: the count is online, and a preview
    that planned it again would read the count as units added online since Sync and
    show it moved by them (8 counted 20: 20 + 12 = 32). Its rows are Publish's to
    finish, and a Sync in between says so on them (Online already holds the count that
    New level still shows)."""
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"C-3": {"New level": 20}})
    merchant.publish_killed_at("woocommerce_after_batch_1")
    assert shop.level("C-3") == 20
    merchant.run("sync", str(merchant.workbook))
    synced = merchant.sheet()["C-3"]
    assert synced["Online"] == 20 and synced["New level"] == 20
    assert str(synced["Status"]).startswith("in the interrupted publish")
    preview = merchant.run("preview", str(merchant.workbook))
    assert "Publish would only finish the interrupted publish." in preview.output
    assert "32" not in [part for line in preview.output.splitlines()
                        if line.startswith("C-3 ") for part in line.split()]
    merchant.run("publish", str(merchant.workbook))
    assert shop.level("C-3") == 20 and merchant.sheet()["C-3"]["New level"] is None


def test_batches_are_100_items_at_most_one_endpoint_each(shop):
    _many(shop, 250)
    with WooCommerceConnector(shop.url, credential=f"{shop.key}:{shop.secret}") as connector:
        snapshot = connector.read_levels()
        from xlstock.planner import PublishLine

        lines = [PublishLine(sku, item.qty, item.qty + 1, 1)
                 for sku, item in snapshot.items.items()]
        assert connector._items is not None
        batches = connector.batches_for(lines, connector._items)
    assert sorted(len(b) for b in batches) == [2, 52, 100, 100]
    assert all(len({connector._items[line.sku].endpoint for line in b}) == 1 for b in batches)


def test_a_line_refused_inside_a_200_answer_is_named_and_the_rest_recorded(merchant):
    """WooCommerce answers a batch 200 with an error per refused item: that row keeps its
    edit and is named; the lines it applied are recorded, never sent twice."""
    shop = merchant.shop
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"B-2": {"New level": 6}, "C-3": {"New level": 20}})
    gone = iter([shop.id_of("C-3")])
    shop.before_write(lambda standin, route, body: [standin._forget(i) for i in gone])
    result = merchant.run("publish", str(merchant.workbook), expect=4)
    assert "SKU C-3: no longer in WooCommerce" in result.output
    sheet = merchant.sheet()
    assert shop.level("B-2") == 6 and sheet["B-2"]["Online"] == 6
    assert sheet["B-2"]["New level"] is None and sheet["C-3"]["New level"] == 20
    merchant.run("sync", str(merchant.workbook))
    preview = merchant.run("preview", str(merchant.workbook), expect=1)
    assert "C-3" in preview.output and "not in the shop online" in preview.output


def test_a_site_without_the_rest_api_says_what_to_switch_on(shop, tmp_path):
    shop.rest_api_enabled = False
    person = Merchant(shop, tmp_path)
    person.new()
    result = person.run("sync", str(person.workbook), expect=4)
    assert "rest_no_route" in result.output and "Permalinks" in result.output


def test_sync_fills_an_empty_low_at_from_woocommerce_never_over_the_merchants(tmp_path):
    with WooCommerceStandIn() as shop:
        shop.add_simple("Cap", "B-2", 5, low_stock_amount=6)
        shop.add_simple("Belt", "C-3", 8, low_stock_amount=2)
        person = Merchant(shop, tmp_path)
        person.new()
        person.run("sync", str(person.workbook))
        assert {s: r["Low at"] for s, r in person.sheet().items()} == {"B-2": 6, "C-3": 2}
        person.edit(**{"C-3": {"Low at": 9}})
        synced = person.run("sync", str(person.workbook))
        assert person.sheet()["C-3"]["Low at"] == 9  # the merchant's value stays
        assert "2 product(s) at or below their Low at" in synced.output


def test_a_slip_is_written_on_its_row_whatever_the_sku_holds(tmp_path):
    """A SKU may hold a colon: the slip still lands on that row's Status."""
    with WooCommerceStandIn() as shop:
        shop.add_simple("Belt", "BELT:42", 8)
        person = Merchant(shop, tmp_path)
        person.new()
        person.run("sync", str(person.workbook))
        person.edit(**{"BELT:42": {"New level": 20}})
        once = iter([1])
        shop.before_write(lambda s, route, body: [s.sell({"BELT:42": 2}) for _ in once])
        shop.after_write(lambda s, route, body, *_: s.set_level("BELT:42", 17))
        person.run("publish", str(person.workbook), expect=3)
        assert "a sale may have been overwritten" in str(person.sheet()["BELT:42"]["Status"])
