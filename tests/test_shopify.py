"""The merchant's loop on a Shopify store: xlstock's Shopify connector against the
stand-in of Shopify's Admin API (tests/support/shopify_standin.py), over real HTTP, each
request checked against Shopify's published schema and run-time rules."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from support import shopkit
from support.shopify_standin import PLUS, ShopifyStandIn

from xlstock import actions
from xlstock.errors import UsageError
from xlstock.planner import PublishLine
from xlstock.shops.shopify import ShopifyConnector, store_address
from xlstock.workbook.xlsx_file import XlsxFile

CATALOGUE = [("Hoodie", [("A-1", "Red / L", 10), ("A-2", "Blue / M", 4)]),
             ("Cap", [("B-2", "Default Title", 5)]),
             ("Socks", [("00123", "Blue", 3)])]


def _stock(store: ShopifyStandIn, extra: bool = True) -> None:
    for title, variants in CATALOGUE:
        store.add_product(title, [{"sku": sku, "title": name, "qty": qty}
                                  for sku, name, qty in variants])
    if extra:
        store.add_product("Gift card", [{"sku": None, "title": "Default Title", "qty": 0}])
        store.add_product("Mug", [{"sku": "DUP", "title": "White", "qty": 1},
                                  {"sku": "DUP", "title": "Black", "qty": 2}])
        store.add_product("Poster", [{"sku": "P-9", "title": "A2", "qty": 0,
                                      "tracked": False}])


@pytest.fixture
def store():
    with ShopifyStandIn() as standin:
        _stock(standin)
        yield standin


class Merchant(shopkit.Merchant):
    """A workbook for the stand-in store, driven through the CLI as a merchant would."""

    def __init__(self, store: ShopifyStandIn, tmp_path: Path, name: str = "stock.xlsx",
                 token: str | None = None) -> None:
        self.store = store
        self.workbook = tmp_path / name
        self.env = {"XLSTOCK_TOKEN": token or store.token, "XLSTOCK_CACHE_DIR": "off"}

    def new(self, *extra: str) -> None:
        self.run("new", str(self.workbook), "--shopify", self.store.url, *extra)

    def settings(self) -> dict[str, object]:
        ws = openpyxl.load_workbook(self.workbook)["Settings"]
        return {r[0]: r[1] for r in ws.iter_rows(values_only=True) if r[0]}


@pytest.fixture
def merchant(store, tmp_path):
    person = Merchant(store, tmp_path)
    person.new()
    return person


def test_store_addresses_are_read_as_a_merchant_types_them():
    assert store_address("mystore") == "https://mystore.myshopify.com"
    assert store_address("MyStore.myshopify.com/") == "https://mystore.myshopify.com"
    assert store_address("https://mystore.myshopify.com/admin") == (
        "https://mystore.myshopify.com")
    assert store_address("http://127.0.0.1:8123") == "http://127.0.0.1:8123"
    for wrong, fix in (("http://mystore.myshopify.com", "https only"),
                       ("https://shop.example.com", "myshopify.com address"),
                       ("", "give its address")):
        with pytest.raises(UsageError, match=fix):
            store_address(wrong)


def test_new_makes_a_shopify_workbook(merchant):
    settings = merchant.settings()
    assert settings["Shop platform"] == "Shopify"
    assert settings["Shop URL"] == merchant.store.url


def test_sync_reads_every_variant_and_names_what_it_left_out(merchant):
    result = merchant.run("sync", str(merchant.workbook))
    sheet = merchant.sheet()
    assert {sku: row["Online"] for sku, row in sheet.items()} == {
        "A-1": 10, "A-2": 4, "B-2": 5, "00123": 3}
    assert sheet["A-1"]["Product"] == "Hoodie" and sheet["A-1"]["Variant"] == "Red / L"
    assert sheet["B-2"]["Variant"] is None  # Shopify's "Default Title" is no variant
    assert "1 variant(s) in Shopify have no SKU" in result.output
    assert "on more than one variant in Shopify" in result.output and "DUP" in result.output
    assert "not tracked by Shopify" in result.output and "P-9" in result.output


def test_a_row_on_a_sku_shopify_has_twice_says_how_to_fix_it(merchant):
    """DUP is on two variants (left out at Sync): a row typed for it is told that, not
    to check the SKU's spelling."""
    merchant.run("sync", str(merchant.workbook))
    wb = openpyxl.load_workbook(merchant.workbook)
    ws = wb["Stock"]
    ws.append(["DUP", None, None, None, 2])
    wb.save(merchant.workbook)
    result = merchant.run("publish", str(merchant.workbook), expect=1)
    assert "the shop has it, but on more than one variant: give each variant its own SKU" \
        in result.output
    assert "check the spelling" not in result.output


def test_the_daily_loop_keeps_the_sales_made_since_sync(merchant):
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    store.sell("A-1", 1)
    store.sell("B-2", 1)
    merchant.edit(**{"A-1": {"Received": 5}, "B-2": {"New level": 2}})
    preview = merchant.run("preview", str(merchant.workbook))
    assert "Publish would change 2 row(s)" in preview.output
    merchant.run("publish", str(merchant.workbook))
    # a delivery lands on the level there is; the count is moved by the sale since Sync
    assert store.level("A-1") == 10 - 1 + 5 and store.level("B-2") == 2 - 1
    sheet = merchant.sheet()
    assert sheet["A-1"]["Online"] == 14 and sheet["A-1"]["Received"] is None
    assert sheet["B-2"]["Online"] == 1 and sheet["B-2"]["New level"] is None
    (delivery,) = [h for h in store.history("A-1") if h["kind"] == "adjust"]
    assert delivery["reason"] == "received" and delivery["delta"] == 5
    assert delivery["reference_document_uri"].startswith("gid://xlstock/Publish/")
    (count,) = [h for h in store.history("B-2") if h["kind"] == "set"]
    assert count["reason"] == "cycle_count_available"
    again = merchant.run("publish", str(merchant.workbook))
    assert "Nothing to publish" in again.output


def test_a_sale_at_the_worst_moment_is_replanned_not_overwritten(merchant):
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"B-2": {"New level": 9}})
    sales = iter([2])

    def sale_inside_the_call(standin, name, _input):
        if name == "inventorySetQuantities":
            for qty in sales:
                standin.sell("B-2", qty)

    store.before_mutation(sale_inside_the_call)
    result = merchant.run("publish", str(merchant.workbook))
    assert "moved during publish" in result.output
    assert store.level("B-2") == 9 - 2
    assert merchant.sheet()["B-2"]["Online"] == 7


def test_a_delivery_applied_before_a_stale_count_is_reported_with_the_rest(merchant):
    """Shopify applies the delivery's call, refuses the count's (a sale came in between)
    and the count is re-planned: the delivery is in Change, Status and the Log, as
    much as the count is; neither is sent twice."""
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"A-1": {"Received": 3}, "B-2": {"New level": 9}})
    sales = iter([2])
    store.before_mutation(lambda s, name, _i: [s.sell("B-2", q) for q in sales]
                          if name == "inventorySetQuantities" else None)
    result = merchant.run("publish", str(merchant.workbook))
    assert store.level("A-1") == 13 and store.level("B-2") == 7
    sheet = merchant.sheet()
    assert (sheet["A-1"]["Online"], sheet["A-1"]["Change"], sheet["A-1"]["Status"]) == (
        13, 3, "changed")
    assert (sheet["B-2"]["Online"], sheet["B-2"]["Change"], sheet["B-2"]["Status"]) == (
        7, 4, "changed")
    assert "Published 2 change(s)" in result.output and "+7 units" in result.output
    log = list(openpyxl.load_workbook(merchant.workbook)["Log"].iter_rows(values_only=True))
    assert log[-1][1:2] + log[-1][3:5] == ("publish", 2, 7)
    assert len([h for h in store.history("A-1") if h["kind"] == "adjust"]) == 1


def test_under_strict_a_sale_inside_the_count_s_call_leaves_the_delivery_unsent(merchant):
    """Shopify refuses the count as stale (a sale landed as the call came in): under
    strict nothing is published, the delivery of the same publish included; the counts
    go first, so no delivery has been applied when a count is refused."""
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.set_setting("Conflict policy", "strict")
    merchant.edit(**{"A-1": {"Received": 5}, "B-2": {"New level": 9}})
    sales = iter([1])
    store.before_mutation(lambda s, name, _i: [s.sell("B-2", q) for q in sales]
                          if name == "inventorySetQuantities" else None)
    result = merchant.run("publish", str(merchant.workbook), expect=3)
    assert "nothing was sent" in result.output
    assert store.level("A-1") == 10 and store.level("B-2") == 4
    assert not [h for h in store.history("A-1") if h["kind"] == "adjust"]
    assert merchant.sheet()["A-1"]["Received"] == 5


def test_under_strict_a_count_overtaken_by_a_sale_is_a_conflict(merchant):
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.set_setting("Conflict policy", "strict")
    merchant.edit(**{"B-2": {"New level": 9}, "A-1": {"Received": 2}})
    store.sell("B-2", 1)
    result = merchant.run("publish", str(merchant.workbook), expect=3)
    assert "conflict" in result.output
    assert store.level("B-2") == 4 and store.level("A-1") == 10  # nothing was sent


@pytest.mark.parametrize("applies_others", [False, True])
def test_a_stale_call_is_safe_whether_shopify_applies_its_other_lines_or_not(
        tmp_path, applies_others):
    """Shopify does not document whether a call with one stale count applies the others:
    either way every count lands once, moved by the sales since Sync."""
    with ShopifyStandIn(stale_applies_others=applies_others) as store:
        _stock(store, extra=False)
        person = Merchant(store, tmp_path)
        person.new()
        person.run("sync", str(person.workbook))
        person.edit(**{"A-1": {"New level": 20}, "A-2": {"New level": 7},
                       "B-2": {"New level": 1}})
        sold = iter([1])
        store.before_mutation(lambda s, name, _i: [s.sell("A-2", q) for q in sold])
        person.run("publish", str(person.workbook))
        assert store.levels() == {"A-1": 20, "A-2": 6, "B-2": 1, "00123": 3}
        sets = [h for sku in ("A-1", "B-2") for h in store.history(sku) if h["kind"] == "set"]
        assert len(sets) == 2  # each count applied once
        assert {s: r["Online"] for s, r in person.sheet().items()}["A-2"] == 6


def test_several_locations_need_one_named(tmp_path):
    with ShopifyStandIn() as store:
        shop = store.add_location("Shop")
        warehouse = store.add_location("Warehouse")
        store.add_product("Hoodie", [{"sku": "A-1", "locations": {shop: 3, warehouse: 40}}])
        person = Merchant(store, tmp_path)
        person.new()
        result = person.run("sync", str(person.workbook), expect=2)
        assert "2 locations (Shop, Warehouse)" in result.output
        named = Merchant(store, tmp_path, "warehouse.xlsx")
        named.new("--location", "warehouse")
        named.run("sync", str(named.workbook))
        named.edit(**{"A-1": {"Received": 2}})
        named.run("publish", str(named.workbook))
        assert store.level("A-1", warehouse) == 42 and store.level("A-1", shop) == 3
        typed = Merchant(store, tmp_path, "typed.xlsx")
        typed.new("--location", "  warehouse ")
        typed.run("sync", str(typed.workbook))
        assert typed.sheet()["A-1"]["Online"] == 42


def test_a_location_typed_without_its_accents_is_found(tmp_path):
    """A French merchant types "entrepot principal" for "Entrepôt principal"."""
    with ShopifyStandIn() as store:
        shop = store.add_location("Boutique")
        warehouse = store.add_location("Entrepôt principal")
        store.add_product("Sweat", [{"sku": "S-1", "locations": {shop: 3, warehouse: 40}}])
        person = Merchant(store, tmp_path)
        person.new("--location", "entrepot  PRINCIPAL")
        person.run("sync", str(person.workbook))
        assert person.sheet()["S-1"]["Online"] == 40


def test_an_app_s_client_id_and_secret_are_exchanged_for_a_token(store, tmp_path):
    person = Merchant(store, tmp_path, token=f"{store.client_id}:{store.client_secret}")
    person.new()
    person.run("sync", str(person.workbook))
    assert person.sheet()["A-1"]["Online"] == 10
    wrong = Merchant(store, tmp_path, "wrong.xlsx", token=f"{store.client_id}:nope")
    wrong.new()
    result = wrong.run("sync", str(wrong.workbook), expect=4)
    assert "client id and secret" in result.output


def test_a_missing_scope_is_named_with_the_page_that_grants_it(merchant):
    merchant.store.scopes = {"read_products", "read_locations"}
    result = merchant.run("sync", str(merchant.workbook), expect=4)
    assert "read_inventory" in result.output and "Access scopes" in result.output


def test_a_missing_scope_is_named_by_its_name_alone(merchant):
    """Shopify writes "Required access: `write_inventory` access scope.": the message
    names the scope to grant, not Shopify's English words around it."""
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"A-1": {"Received": 1}})
    merchant.env["XLSTOCK_LANG"] = "fr"
    store.scopes = {"read_products", "read_inventory", "read_locations"}
    result = merchant.run("publish", str(merchant.workbook), expect=4)
    assert "la portée write_inventory : accordez-la" in result.output
    store.scopes = {"read_products", "read_inventory", "write_inventory"}
    result = merchant.run("sync", str(merchant.workbook), expect=4)
    assert "la portée read_locations : accordez-la" in result.output
    assert store.level("A-1") == 10


def test_a_wrong_token_says_so(store, tmp_path):
    person = Merchant(store, tmp_path, token="shpat_" + "0" * 32)
    person.new()
    result = person.run("sync", str(person.workbook), expect=4)
    assert "refused the access token" in result.output


def test_a_lost_answer_is_resent_under_its_key_and_applied_once(merchant):
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"A-1": {"Received": 5}})
    dropped = iter([True])
    store.before_mutation(lambda s, *_: [s.drop_next_answer() for _ in dropped])
    merchant.run("publish", str(merchant.workbook))
    assert store.level("A-1") == 15
    assert len([h for h in store.history("A-1") if h["kind"] == "adjust"]) == 1


def test_429_and_5xx_are_waited_out(merchant):
    store = merchant.store
    store.fail_next(429, retry_after=0.01)
    store.fail_next(503)
    merchant.run("sync", str(merchant.workbook))
    assert merchant.sheet()["A-1"]["Online"] == 10


def test_a_wait_asked_for_is_said_while_it_lasts(merchant):
    """Shopify's Retry-After can be a minute: the merchant is told xlstock waits, and
    why, in the workbook's language, not left before a still screen."""
    merchant.env["XLSTOCK_LANG"] = "fr"
    merchant.store.fail_next(429, retry_after=1)
    result = merchant.run("sync", str(merchant.workbook))
    assert "a répondu 429 (boutique occupée) ; nouvel essai dans 1 s" in result.output


def _three_call_store(store: ShopifyStandIn) -> list[str]:
    skus = [f"S-{n:04d}" for n in range(600)]
    store.add_product("Screws", [{"sku": sku, "title": sku, "qty": 50} for sku in skus])
    return skus


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", [
    "before_upload", "shopify_before_call_1", "shopify_after_call_1",
    "shopify_after_call_2", "shopify_after_call_3", "after_upload",
])
def test_a_three_call_publish_killed_at_any_step_is_finished_once(store, tmp_path, failpoint):
    """600 counts are three calls of 250, 250 and 100; killed at each step, the next
    publish finishes it: every count applied exactly once, a sale in between kept."""
    skus = _three_call_store(store)
    person = Merchant(store, tmp_path)
    person.new()
    person.run("sync", str(person.workbook))
    person.edit(**{sku: {"New level": 40} for sku in skus})
    person.publish_killed_at(failpoint, "--allow-mass-change")  # SIGKILL at the point
    store.sell(skus[-1], 1)  # the last call's SKU sells before the rerun
    rerun = person.run("publish", str(person.workbook), "--allow-mass-change")
    if failpoint in ("shopify_after_call_1", "shopify_after_call_2"):
        assert "partly applied" in rerun.output
    levels = store.levels()
    assert all(levels[sku] == 40 for sku in skus[:-1])
    assert levels[skus[-1]] == 39
    sets = [h for h in store.history(skus[0]) if h["kind"] == "set"]
    assert len(sets) == 1
    sheet = person.sheet()
    assert all(sheet[sku]["New level"] is None for sku in skus)


@pytest.mark.parametrize("failpoint", ["shopify_after_call_1", "shopify_after_call_2"])
def test_a_killed_publish_finished_by_the_next_shows_what_it_sent(merchant, failpoint):
    """Killed after the count's call (the delivery's still to send) or after both calls,
    a sale of the counted SKU in between: the next publish finishes it, and Change and
    Status show every row it sent, not only those of its own new plan."""
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"A-1": {"Received": 3}, "B-2": {"New level": 9}})
    merchant.publish_killed_at(failpoint)
    store.sell("B-2", 1)
    merchant.run("publish", str(merchant.workbook))
    # counted 9, applied before the sale: 8 left
    assert store.level("A-1") == 13 and store.level("B-2") == 8
    sheet = merchant.sheet()
    assert (sheet["A-1"]["Change"], sheet["A-1"]["Status"]) == (3, "changed")
    assert (sheet["B-2"]["Change"], sheet["B-2"]["Status"]) == (4, "changed")
    assert sheet["A-1"]["Received"] is None and sheet["B-2"]["New level"] is None
    log = list(openpyxl.load_workbook(merchant.workbook)["Log"].iter_rows(values_only=True))
    assert sum(row[3] or 0 for row in log if str(row[1]).startswith("publish")) == 2


def test_a_preview_after_a_killed_publish_does_not_plan_its_rows_again(merchant):
    """Killed after its calls: whether they arrived, Shopify cannot be asked, so a
    preview shows the interrupted publish's rows as Publish's to finish, not the
    delivery added a second time on a level that holds it already."""
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"A-1": {"Received": 3}, "B-2": {"New level": 9}})
    merchant.publish_killed_at("shopify_after_call_2")
    assert store.level("A-1") == 13
    merchant.edit(**{"00123": {"Received": 1}})
    preview = merchant.run("preview", str(merchant.workbook))
    assert "Publish would change 1 row(s): +1 units." in preview.output
    (a1,) = [line for line in preview.output.splitlines() if line.startswith("A-1 ")]
    assert "+3" not in a1 and "16" not in a1  # not 13 + 3: the delivery twice
    sheet = merchant.sheet()
    assert sheet["A-1"]["Change"] is None and sheet["00123"]["Change"] == 1
    assert str(sheet["A-1"]["Status"]).startswith("in the interrupted publish")
    merchant.run("publish", str(merchant.workbook))
    assert store.level("A-1") == 13 and store.level("B-2") == 9 and store.level("00123") == 4


def test_calls_are_worked_out_from_the_lines_and_the_key_alone():
    lines = [PublishLine(f"S-{n:03d}", 5, 7, 2 if n % 2 else None) for n in range(600)]
    calls = ShopifyConnector.calls_for(list(reversed(lines)), "k")
    assert [(key, len(chunk)) for _, key, chunk in calls] == [
        ("k-s1", 250), ("k-s2", 50), ("k-a1", 250), ("k-a2", 50)]
    assert calls == ShopifyConnector.calls_for(lines, "k")


def test_a_throttled_sync_of_30000_variants_is_paced_by_the_bucket(tmp_path):
    """Paged on purpose (no bulk operation), on Shopify Plus's bucket with a clock the
    test drives: every page waits for the points it needs, none is refused twice."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with ShopifyStandIn(plan=PLUS, clock=lambda: now[0]) as store:
        for start in range(0, 30_000, 1000):
            store.add_product(f"P{start}", [{"sku": f"V-{n:05d}", "title": f"V{n}", "qty": n % 7}
                                             for n in range(start, start + 1000)])
        path = tmp_path / "big.xlsx"
        Merchant(store, tmp_path, "big.xlsx").new()
        connector = ShopifyConnector(store.url, token=store.token, sleep=sleep,
                                     clock=lambda: now[0], bulk_above=10**9)
        with XlsxFile.open(path) as book:
            report = actions.sync(book, connector)
        assert "Synced 30,000 SKU(s)" in report.summary
        throttled = [c for c in store.calls if c.throttled]
        assert connector.waited > 0 and len(throttled) <= 1
        assert store.levels()["V-29999"] == 29999 % 7


def test_a_large_store_is_read_in_one_bulk_operation(tmp_path):
    with ShopifyStandIn() as store:
        store.add_product("Many", [{"sku": f"M-{n:04d}", "title": f"M{n}", "qty": 1}
                                   for n in range(300)])
        store.add_product("Gift", [{"sku": None, "title": "Default Title", "qty": 0}])
        person = Merchant(store, tmp_path)
        person.new()
        connector = ShopifyConnector(store.url, token=store.token, bulk_above=100)
        with XlsxFile.open(person.workbook) as book:
            report = actions.sync(book, connector)
        assert "Synced 300 SKU(s)" in report.summary
        assert any("no SKU" in line for line in report.lines)
        assert any(c.operation == "Bulk" for c in store.calls)


def test_actions_take_the_connector_from_settings(merchant):
    from xlstock.workbook import layout

    with XlsxFile.open(merchant.workbook) as book:
        settings = layout.read_settings(book)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XLSTOCK_TOKEN", merchant.store.token)
        with actions.service_for(settings) as connector:
            assert isinstance(connector, ShopifyConnector)
            assert connector.store == merchant.store.url


def test_a_line_shopify_refuses_is_named_with_what_to_do_and_the_rest_recorded(merchant):
    store = merchant.store
    merchant.run("sync", str(merchant.workbook))
    merchant.edit(**{"A-1": {"Received": 2}, "B-2": {"New level": 9}})
    item = store.item_id("B-2")
    unstocked = iter([item])

    def unstock(standin, name, _input):
        if name == "inventorySetQuantities":
            for gone in unstocked:
                standin._items[gone].level_by_location.clear()

    store.before_mutation(unstock)
    result = merchant.run("publish", str(merchant.workbook), expect=4)
    assert "SKU B-2: not stocked at this location in Shopify" in result.output
    sheet = merchant.sheet()
    assert store.level("A-1") == 12 and sheet["A-1"]["Online"] == 12
    assert sheet["A-1"]["Received"] is None and sheet["B-2"]["New level"] == 9
