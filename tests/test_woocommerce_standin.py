"""The WooCommerce stand-in (``tests/support/woocommerce_standin.py``) answers as WooCommerce's
PHP source does.

Raw HTTP through requests, the way the connector will talk to it; time is injected so that
order dates and the ``after=`` window need no sleeping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.woocommerce_standin import WooCommerceStandIn


class Clock:
    """Injected wall clock: ``clock.now += 5`` moves the shop five seconds on."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0  # 2023-11-14T22:13:20 UTC

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(clock: Clock) -> Iterator[WooCommerceStandIn]:
    with WooCommerceStandIn(clock=clock) as standin:
        standin.add_simple("Mug", "MUG", 5, low_stock_amount=2)
        standin.add_variable("Shirt", [
            {"sku": "RED", "qty": 3, "attributes": {"Colour": "Red"}},
            {"sku": "BLUE", "qty": None, "attributes": {"Colour": "Blue"},
             "manage_stock": "parent"},
        ], manage_stock=True, qty=9)
        yield standin


def get(shop: WooCommerceStandIn, route: str, **params: Any) -> requests.Response:
    return requests.get(shop.api_url + route, auth=shop.auth, params=params, timeout=5)


def put(shop: WooCommerceStandIn, route: str, body: Any) -> requests.Response:
    return requests.put(shop.api_url + route, auth=shop.auth, json=body, timeout=5)


def post(shop: WooCommerceStandIn, route: str, body: Any) -> requests.Response:
    return requests.post(shop.api_url + route, auth=shop.auth, json=body, timeout=5)


# --- reading products: paging, _fields, filters ---------------------------------------------


def test_paging_headers_and_link_are_built_as_wordpress_builds_them(
        shop: WooCommerceStandIn) -> None:
    for n in range(23):
        shop.add_simple(f"Item {n}", f"SKU-{n:02}", n)
    base = shop.api_url + "/products"
    first = get(shop, "/products", per_page=10, _fields="id,sku")
    assert first.status_code == 200
    assert (first.headers["X-WP-Total"], first.headers["X-WP-TotalPages"]) == ("25", "3")
    assert first.headers["Link"] == f'<{base}?per_page=10&_fields=id%2Csku&page=2>; rel="next"'
    middle = get(shop, "/products", page=2, per_page=10)
    assert middle.headers["Link"] == (f'<{base}?page=1&per_page=10>; rel="prev", '
                                      f'<{base}?page=3&per_page=10>; rel="next"')
    last = get(shop, "/products", per_page=10, page=3)
    assert last.headers["Link"] == f'<{base}?per_page=10&page=2>; rel="prev"'
    assert len(last.json()) == 5
    beyond = get(shop, "/products", per_page=10, page=7)
    assert beyond.json() == [] and beyond.headers["X-WP-Total"] == "25"
    assert beyond.headers["Link"] == f'<{base}?per_page=10&page=3>; rel="prev"'
    seen = [p["id"] for page in (1, 2, 3)
            for p in get(shop, "/products", per_page=10, page=page).json()]
    assert len(seen) == len(set(seen)) == 25
    assert seen == sorted(seen, reverse=True)  # date desc, then ID desc: same second here


def test_default_page_is_ten_and_a_variable_product_lists_its_variation_ids(
        shop: WooCommerceStandIn) -> None:
    products = get(shop, "/products").json()
    assert [p["type"] for p in products] == ["variable", "simple"]
    shirt = products[0]
    assert shirt["variations"] == [shop.id_of("RED"), shop.id_of("BLUE")]
    assert shirt["manage_stock"] is True and shirt["stock_quantity"] == 9
    assert "X-WP-Total" in get(shop, "/products").headers
    assert "Link" not in get(shop, "/products").headers


@pytest.mark.parametrize(("params", "invalid", "code", "message"), [
    ({"per_page": 101}, "per_page", "rest_out_of_bounds",
     "per_page must be between 1 (inclusive) and 100 (inclusive)"),
    ({"per_page": 0}, "per_page", "rest_out_of_bounds",
     "per_page must be between 1 (inclusive) and 100 (inclusive)"),
    ({"per_page": "ten"}, "per_page", "rest_invalid_type", "per_page is not of type integer."),
    ({"page": 0}, "page", "rest_out_of_bounds", "page must be greater than or equal to 1"),
    ({"order": "up"}, "order", "rest_not_in_enum", "order is not one of asc, desc."),
])
def test_bad_collection_arguments_get_wordpress_400(shop: WooCommerceStandIn,
                                                    params: dict[str, Any], invalid: str,
                                                    code: str, message: str) -> None:
    answer = get(shop, "/products", **params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "rest_invalid_param"
    assert body["message"] == f"Invalid parameter(s): {invalid}"
    assert body["data"]["status"] == 400
    assert body["data"]["params"] == {invalid: message}
    assert body["data"]["details"][invalid]["code"] == code


def test_two_bad_arguments_are_named_together(shop: WooCommerceStandIn) -> None:
    body = get(shop, "/products", per_page=500, page=-1).json()
    assert body["message"] == "Invalid parameter(s): per_page, page"


def test_fields_trims_each_item_to_the_requested_keys(shop: WooCommerceStandIn) -> None:
    items = get(shop, "/products", _fields="sku,stock_quantity").json()
    assert items == [{"sku": "", "stock_quantity": 9}, {"sku": "MUG", "stock_quantity": 5}]
    variations = get(shop, f"/products/{shop.parent_of('RED')}/variations",
                     _fields="id,attributes.option,manage_stock").json()
    # _rest_array_intersect_key_recursive: a list's keys are 0, 1..., so "attributes.option"
    # keeps none of its entries
    assert variations == [
        {"id": shop.id_of("BLUE"), "manage_stock": "parent", "attributes": []},
        {"id": shop.id_of("RED"), "manage_stock": True, "attributes": []},
    ]
    nested = get(shop, f"/products/{shop.id_of('MUG')}", _fields="_links.self").json()
    assert set(nested) == {"_links"} and set(nested["_links"]) == {"self"}
    assert set(variations[0]) == {"id", "attributes", "manage_stock"}


def test_sku_filter_reaches_variations_case_insensitively(shop: WooCommerceStandIn) -> None:
    found = get(shop, "/products", sku="red,mug").json()
    assert sorted((p["sku"], p["type"]) for p in found) == [("MUG", "simple"),
                                                              ("RED", "variation")]
    red = next(p for p in found if p["sku"] == "RED")
    assert red["parent_id"] == shop.parent_of("RED") and red["stock_quantity"] == 3
    assert get(shop, "/products", sku="RED ").json()[0]["sku"] == "RED"
    assert get(shop, "/products", sku="nope").json() == []


def test_include_type_and_orderby_filters(shop: WooCommerceStandIn) -> None:
    mug, shirt = shop.id_of("MUG"), shop.parent_of("RED")
    assert [p["id"] for p in get(shop, "/products", type="simple").json()] == [mug]
    assert [p["id"] for p in get(shop, "/products", include=f"{mug},{shirt}",
                                 orderby="include").json()] == [mug, shirt]
    assert [p["id"] for p in get(shop, "/products", order="asc", orderby="id").json()] == [
        mug, shirt]
    assert get(shop, "/products", type="bundle").status_code == 400


def test_json_is_encoded_as_wp_json_encode_does(shop: WooCommerceStandIn) -> None:
    shop.add_simple("Café/Thé", "CAFE", 1)
    raw = get(shop, "/products", sku="CAFE").text
    assert '"name":"Caf\\u00e9\\/Th\\u00e9"' in raw
    assert json.loads(raw)[0]["name"] == "Café/Thé"


def test_dates_have_second_precision_and_no_zone_suffix(shop: WooCommerceStandIn,
                                                       clock: Clock) -> None:
    clock.now += 0.75
    product = get(shop, f"/products/{shop.id_of('MUG')}").json()
    assert product["date_created_gmt"] == "2023-11-14T22:13:20"
    assert product["date_modified_gmt"] == "2023-11-14T22:13:20"


# --- writing stock ------------------------------------------------------------------------


def test_inventory_delta_adds_to_the_level_loaded_at_write_time(
        shop: WooCommerceStandIn) -> None:
    mug = shop.id_of("MUG")
    shop.sell({"MUG": 1})  # 5 -> 4 between the connector's read and its write
    answer = put(shop, f"/products/{mug}", {"inventory_delta": 3})
    assert answer.status_code == 200 and answer.json()["stock_quantity"] == 7
    assert shop.level("MUG") == 7
    write = shop.writes[-1]
    assert (write.sku, write.before, write.after, write.kind) == ("MUG", 4, 7, "delta")


def test_stock_quantity_overwrites_whatever_the_level_is(shop: WooCommerceStandIn) -> None:
    mug = shop.id_of("MUG")
    shop.sell({"MUG": 2})  # 5 -> 3: the absolute write does not know
    answer = put(shop, f"/products/{mug}", {"stock_quantity": 8})
    assert answer.json()["stock_quantity"] == 8 and shop.level("MUG") == 8
    assert shop.writes[-1].kind == "absolute" and shop.writes[-1].before == 3


def test_stock_quantity_wins_over_inventory_delta(shop: WooCommerceStandIn) -> None:
    answer = put(shop, f"/products/{shop.id_of('MUG')}",
                 {"stock_quantity": 1, "inventory_delta": 100})
    assert answer.json()["stock_quantity"] == 1


def test_a_null_quantity_is_not_validated_and_changes_nothing(shop: WooCommerceStandIn) -> None:
    answer = put(shop, f"/products/{shop.id_of('MUG')}", {"stock_quantity": None})
    assert answer.status_code == 200 and shop.level("MUG") == 5
    assert shop.writes == []


def test_a_bad_value_on_the_single_route_is_refused_whole(shop: WooCommerceStandIn) -> None:
    answer = put(shop, f"/products/{shop.id_of('MUG')}",
                 {"stock_quantity": "lots", "manage_stock": "maybe"})
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "rest_invalid_param"
    assert body["data"]["params"] == {
        "stock_quantity": "stock_quantity is not of type integer.",
        "manage_stock": "manage_stock is not of type boolean."}
    assert body["data"]["details"]["stock_quantity"]["data"] == {"param": "stock_quantity"}
    assert shop.level("MUG") == 5


def test_unknown_or_variation_ids_on_the_products_route(shop: WooCommerceStandIn) -> None:
    unknown = put(shop, "/products/99999", {"stock_quantity": 1})
    assert unknown.status_code == 400
    assert unknown.json() == {"code": "woocommerce_rest_product_invalid_id",
                              "message": "Invalid ID.", "data": {"status": 400}}
    assert get(shop, "/products/99999").status_code == 404
    variation = put(shop, f"/products/{shop.id_of('RED')}", {"stock_quantity": 1})
    assert variation.status_code == 404
    assert variation.json()["code"] == "woocommerce_rest_invalid_product_id"
    assert variation.json()["message"].startswith("To manipulate product variations")
    assert shop.level("RED") == 3


def test_manage_stock_false_empties_the_level(shop: WooCommerceStandIn) -> None:
    answer = put(shop, f"/products/{shop.id_of('MUG')}", {"manage_stock": False,
                                                          "stock_quantity": 4})
    assert answer.json()["manage_stock"] is False
    assert answer.json()["stock_quantity"] is None and answer.json()["low_stock_amount"] is None
    assert shop.level("MUG") is None


def test_store_option_no_ignores_product_stock_but_not_variation_stock(
        shop: WooCommerceStandIn) -> None:
    shop.manage_stock = "no"
    setting = get(shop, "/settings/products/woocommerce_manage_stock").json()
    assert (setting["id"], setting["value"], setting["type"]) == (
        "woocommerce_manage_stock", "no", "checkbox")
    product = put(shop, f"/products/{shop.id_of('MUG')}", {"stock_quantity": 50})
    assert product.status_code == 200 and product.json()["manage_stock"] is False
    assert shop.level("MUG") == 5  # prepare_object_for_database skipped the stock block
    parent = shop.parent_of("RED")
    variation = put(shop, f"/products/{parent}/variations/{shop.id_of('RED')}",
                    {"stock_quantity": 50})
    assert variation.json()["manage_stock"] is False
    assert shop.level("RED") == 50  # the variations controller does not read the option


def test_variation_write_and_its_parent_check(shop: WooCommerceStandIn) -> None:
    parent, red = shop.parent_of("RED"), shop.id_of("RED")
    answer = put(shop, f"/products/{parent}/variations/{red}", {"inventory_delta": -1})
    assert answer.status_code == 200
    assert (answer.json()["stock_quantity"], answer.json()["parent_id"]) == (2, parent)
    mug = shop.id_of("MUG")
    wrong = put(shop, f"/products/{mug}/variations/{red}", {"stock_quantity": 40})
    assert wrong.status_code == 403
    assert wrong.json() == {"code": "woocommerce_rest_cannot_edit",
                            "message": "Parent product does not match current variation.",
                            "data": {"status": 403}}
    assert shop.level("RED") == 2


def test_a_parent_managed_variation_shows_and_sells_from_the_parent(
        shop: WooCommerceStandIn) -> None:
    parent, blue = shop.parent_of("BLUE"), shop.id_of("BLUE")
    shown = get(shop, f"/products/{parent}/variations/{blue}").json()
    assert (shown["manage_stock"], shown["stock_quantity"]) == ("parent", 9)
    shop.sell({"BLUE": 2})
    assert get(shop, f"/products/{parent}").json()["stock_quantity"] == 7
    assert shop.level("BLUE") == 7


def test_a_write_to_a_parent_managed_variation_is_accepted_and_changes_nothing_seen(
        shop: WooCommerceStandIn) -> None:
    parent, blue = shop.parent_of("BLUE"), shop.id_of("BLUE")
    answer = put(shop, f"/products/{parent}/variations/{blue}", {"stock_quantity": 20})
    assert answer.status_code == 200
    assert (answer.json()["manage_stock"], answer.json()["stock_quantity"]) == ("parent", 9)
    assert shop.level("BLUE") == 9 and get(shop, f"/products/{parent}").json()[
        "stock_quantity"] == 9
    write = shop.writes[-1]
    assert (write.sku, write.after, write.effective) == ("BLUE", 20, False)
    single_route = put(shop, f"/products/{parent}/variations/{blue}", {"manage_stock": "parent"})
    assert single_route.status_code == 400  # the v3 variation schema types it boolean


def test_a_duplicate_sku_is_a_data_error(shop: WooCommerceStandIn) -> None:
    answer = put(shop, f"/products/{shop.id_of('MUG')}", {"sku": "red"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "product_invalid_sku"
    assert answer.json()["data"]["resource_id"] == shop.id_of("RED")


# --- batches ---------------------------------------------------------------------------------


def test_more_than_100_batch_items_is_413_and_applies_nothing(shop: WooCommerceStandIn) -> None:
    mug = shop.id_of("MUG")
    body = {"update": [{"id": mug, "stock_quantity": 1}] * 60, "delete": [99999] * 41}
    answer = post(shop, "/products/batch", body)
    assert answer.status_code == 413
    assert answer.json() == {"code": "woocommerce_rest_request_entity_too_large",
                             "message": "Unable to accept more than 100 items for this "
                                        "request.", "data": {"status": 413}}
    assert shop.level("MUG") == 5
    assert post(shop, "/products/batch", {"update": [{"id": mug, "inventory_delta": 1}] * 100}
                ).status_code == 200
    assert shop.level("MUG") == 105


def test_per_item_errors_come_back_inside_a_200(shop: WooCommerceStandIn) -> None:
    mug, red = shop.id_of("MUG"), shop.id_of("RED")
    answer = post(shop, "/products/batch", {"update": [
        {"id": 99999, "stock_quantity": 1},
        {"id": mug, "stock_quantity": 12},
        {"id": red, "stock_quantity": 1},
        {"stock_quantity": 1},
    ]})
    assert answer.status_code == 200
    unknown, applied, variation, no_id = answer.json()["update"]
    assert unknown == {"id": 99999, "error": {"code": "woocommerce_rest_product_invalid_id",
                                              "message": "Invalid ID.",
                                              "data": {"status": 400}}}
    assert applied["id"] == mug and applied["stock_quantity"] == 12
    assert variation["error"]["code"] == "woocommerce_rest_invalid_product_id"
    assert variation["error"]["data"] == {"status": 404}
    assert no_id["id"] is None and no_id["error"]["code"] == "woocommerce_rest_product_invalid_id"
    assert shop.levels()["MUG"] == 12 and shop.levels()["RED"] == 3


def test_batch_items_are_not_validated_so_php_intval_applies(shop: WooCommerceStandIn) -> None:
    mug = shop.id_of("MUG")
    answer = post(shop, "/products/batch", {"update": [{"id": str(mug),
                                                        "stock_quantity": "7 boxes"}]})
    assert answer.json()["update"][0]["stock_quantity"] == 7
    post(shop, "/products/batch", {"update": [{"id": mug, "stock_quantity": "lots"}]})
    assert shop.level("MUG") == 0  # intval("lots"): WooCommerce writes 0


def test_variation_batch_updates_and_reparents_a_foreign_variation(
        shop: WooCommerceStandIn) -> None:
    shirt, red = shop.parent_of("RED"), shop.id_of("RED")
    other = shop.add_variable("Cap", [{"sku": "CAP-S", "qty": 4, "attributes": {"Size": "S"}}])
    cap_s = shop.id_of("CAP-S")
    answer = post(shop, f"/products/{shirt}/variations/batch", {"update": [
        {"id": red, "inventory_delta": 2},
        {"id": cap_s, "stock_quantity": 6},
        {"id": 99999, "stock_quantity": 1},
    ]})
    assert answer.status_code == 200
    ok, moved, unknown = answer.json()["update"]
    assert ok["stock_quantity"] == 5
    assert (moved["stock_quantity"], moved["parent_id"]) == (6, shirt)  # no parent check
    assert shop.parent_of("CAP-S") == shirt
    assert get(shop, f"/products/{other}").json()["variations"] == []
    assert unknown["error"]["code"] == "woocommerce_rest_product_variation_invalid_id"
    kept_home = post(shop, f"/products/{shirt}/variations/batch", {"update": [
        {"id": cap_s, "product_id": other, "stock_quantity": 1}]})
    assert kept_home.json()["update"][0]["parent_id"] == other  # the item's own product_id


def test_an_empty_batch_answers_an_empty_json_array(shop: WooCommerceStandIn) -> None:
    answer = post(shop, "/products/batch", {"update": []})
    assert answer.status_code == 200 and answer.text == "[]"


def test_batch_create_and_delete_are_minimal(shop: WooCommerceStandIn) -> None:
    answer = post(shop, "/products/batch", {
        "create": [{"name": "Bowl", "sku": "BOWL", "manage_stock": True, "stock_quantity": 4}],
        "delete": [shop.id_of("MUG")]})
    created, deleted = answer.json()["create"][0], answer.json()["delete"][0]
    assert (created["sku"], created["stock_quantity"]) == ("BOWL", 4)
    assert deleted["sku"] == "MUG"
    assert "MUG" not in shop.levels() and shop.level("BOWL") == 4


# --- orders ----------------------------------------------------------------------------------


def test_orders_after_is_exclusive_to_the_second(shop: WooCommerceStandIn, clock: Clock) -> None:
    first = shop.sell({"MUG": 1})
    clock.now += 1.4
    second = shop.sell({"RED": 1, "BLUE": 1})
    assert shop.levels() == {"MUG": 4, "RED": 2, "BLUE": 8}
    listed = get(shop, "/orders", after="2023-11-14T22:13:20", dates_are_gmt="true").json()
    assert [o["id"] for o in listed] == [second]
    both = get(shop, "/orders", after="2023-11-14T22:13:19Z", dates_are_gmt="true",
               order="asc").json()
    assert [o["id"] for o in both] == [first, second]
    assert both[1]["date_created_gmt"] == "2023-11-14T22:13:21"
    assert both[1]["status"] == "processing"
    assert [(line["sku"], line["quantity"], line["variation_id"] > 0, line["product_id"])
            for line in both[1]["line_items"]] == [
        ("RED", 1, True, shop.parent_of("RED")), ("BLUE", 1, True, shop.parent_of("RED"))]
    assert get(shop, "/orders", before="2023-11-14T22:13:21", dates_are_gmt="true").json()[
        0]["id"] == first


def test_orders_dates_follow_the_site_timezone(clock: Clock) -> None:
    with WooCommerceStandIn(clock=clock, utc_offset=2) as shop:
        shop.add_simple("Mug", "MUG", 5)
        order = shop.sell({"MUG": 1})  # 22:13:20 UTC, 00:13:20 local
        shown = get(shop, f"/orders/{order}").json()
        assert (shown["date_created"], shown["date_created_gmt"]) == (
            "2023-11-15T00:13:20", "2023-11-14T22:13:20")
        local = get(shop, "/orders", after="2023-11-15T00:13:19").json()
        assert [o["id"] for o in local] == [order]
        naive_gmt = get(shop, "/orders", after="2023-11-14T22:13:19", dates_are_gmt="1").json()
        assert [o["id"] for o in naive_gmt] == [order]
        # an offset date is re-expressed in the site's zone, then compared with the GMT
        # column (WP_Date_Query): 22:13:19Z reads as 00:13:19 and excludes the order
        zoned = get(shop, "/orders", after="2023-11-14T22:13:19Z", dates_are_gmt="1").json()
        assert zoned == []


def test_orders_paging_status_and_bad_dates(shop: WooCommerceStandIn, clock: Clock) -> None:
    for _ in range(3):
        shop.sell({"MUG": 1})
        clock.now += 1
    shop.sell({"MUG": 1}, status="completed")
    page = get(shop, "/orders", per_page=2, status="processing")
    assert (page.headers["X-WP-Total"], page.headers["X-WP-TotalPages"]) == ("3", "2")
    assert page.headers["Link"].endswith('&status=processing&page=2>; rel="next"')
    assert len(get(shop, "/orders").json()) == 4
    bad = get(shop, "/orders", after="yesterday")
    assert bad.status_code == 400 and bad.json()["data"]["params"] == {"after": "Invalid date."}
    wrong_status = get(shop, "/orders", status="sold")
    assert wrong_status.json()["data"]["params"]["status"].startswith("status[0] is not one of")


def test_set_level_is_an_admin_edit_of_the_level_that_shows(shop: WooCommerceStandIn) -> None:
    shop.set_level("BLUE", 4)  # a parent-managed variation: the parent's level is edited
    assert shop.level("RED") == 3 and shop.level("BLUE") == 4
    assert get(shop, f"/products/{shop.parent_of('BLUE')}").json()["stock_quantity"] == 4
    shop.set_manage_stock("MUG", False)
    with pytest.raises(ValueError, match="does not manage stock"):
        shop.set_level("MUG", 1)
    assert shop.writes == []  # admin edits are not API writes


def test_a_sale_short_of_stock_is_refused_unless_forced(shop: WooCommerceStandIn) -> None:
    with pytest.raises(ValueError, match="not enough stock"):
        shop.sell({"MUG": 6})
    shop.sell({"MUG": 6}, force=True)
    assert shop.level("MUG") == -1


# --- authentication and routes ----------------------------------------------------------------


def test_no_key_or_an_unknown_key_is_refused_by_the_route(shop: WooCommerceStandIn) -> None:
    anonymous = requests.get(shop.api_url + "/products", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"code": "woocommerce_rest_cannot_view",
                                "message": "Sorry, you cannot list resources.",
                                "data": {"status": 401}}
    unknown = requests.put(shop.api_url + f"/products/{shop.id_of('MUG')}",
                           auth=("ck_unknown", "cs_unknown"), json={"stock_quantity": 1},
                           timeout=5)
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "woocommerce_rest_cannot_edit"
    batch = requests.post(shop.api_url + "/products/batch", json={"update": []}, timeout=5)
    assert batch.json()["code"] == "woocommerce_rest_cannot_batch"
    assert shop.level("MUG") == 5


def test_a_wrong_secret_is_an_authentication_error(shop: WooCommerceStandIn) -> None:
    answer = requests.get(shop.api_url + "/products", auth=(shop.key, "cs_wrong"), timeout=5)
    assert answer.status_code == 401
    assert answer.json() == {"code": "woocommerce_rest_authentication_error",
                             "message": "Consumer secret is invalid.",
                             "data": {"status": 401}}
    assert answer.headers["WWW-Authenticate"].startswith('Basic realm="WooCommerce API.')


def test_keys_in_the_query_string_authenticate_too(shop: WooCommerceStandIn) -> None:
    answer = requests.get(shop.api_url + "/products", timeout=5, params={
        "consumer_key": shop.key, "consumer_secret": shop.secret})
    assert answer.status_code == 200 and len(answer.json()) == 2


def test_a_read_key_cannot_write_and_a_write_key_cannot_read(shop: WooCommerceStandIn) -> None:
    shop.permissions = "read"
    assert get(shop, "/products").status_code == 200
    refused = put(shop, f"/products/{shop.id_of('MUG')}", {"stock_quantity": 1})
    assert refused.status_code == 401
    assert refused.json() == {"code": "woocommerce_rest_authentication_error",
                              "message": "The API key provided does not have write "
                                         "permissions.", "data": {"status": 401}}
    assert post(shop, "/products/batch", {"update": []}).status_code == 401
    assert shop.level("MUG") == 5
    shop.permissions = "write"
    assert get(shop, "/products").json()["message"] == (
        "The API key provided does not have read permissions.")
    assert put(shop, f"/products/{shop.id_of('MUG')}", {"stock_quantity": 1}).status_code == 200


def test_rest_disabled_and_unknown_routes_answer_rest_no_route(
        shop: WooCommerceStandIn) -> None:
    no_route = {"code": "rest_no_route",
                "message": "No route was found matching the URL and request method.",
                "data": {"status": 404}}
    assert get(shop, "/coupons-of-nothing").json() == no_route
    assert requests.delete(shop.api_url + "/orders", auth=shop.auth, timeout=5).json() == (
        no_route)
    shop.rest_api_enabled = False
    for answer in (get(shop, "/products"), put(shop, "/products/1", {}),
                   requests.get(shop.api_url + "/orders", auth=("x", "y"), timeout=5)):
        assert answer.status_code == 404 and answer.json() == no_route


def test_a_broken_json_body_is_a_400(shop: WooCommerceStandIn) -> None:
    answer = requests.put(shop.api_url + f"/products/{shop.id_of('MUG')}", auth=shop.auth,
                          data=b"{not json", headers={"Content-Type": "application/json"},
                          timeout=5)
    assert answer.status_code == 400 and answer.json()["code"] == "rest_invalid_json"


# --- hooks, faults, logs ------------------------------------------------------------------------


def test_before_write_lets_a_sale_land_between_read_and_write(shop: WooCommerceStandIn) -> None:
    seen: list[tuple[str, Any]] = []
    shop.before_write(lambda s, route, body: s.sell({"MUG": 2}))
    shop.after_write(lambda s, route, body, status, answer: seen.append((route, status)))
    mug = shop.id_of("MUG")
    read = get(shop, f"/products/{mug}").json()["stock_quantity"]
    assert read == 5
    put(shop, f"/products/{mug}", {"stock_quantity": read + 1})  # the slip: the sale is lost
    assert shop.level("MUG") == 6
    post(shop, "/products/batch", {"update": [{"id": mug, "inventory_delta": 1}]})
    assert shop.level("MUG") == 5  # 6 - 2 (second hooked sale) + 1: a delta keeps the sale
    assert seen == [(f"/wp-json/wc/v3/products/{mug}", 200), ("/wp-json/wc/v3/products/batch",
                                                              200)]
    assert len(shop.orders) == 2


def test_a_sale_between_load_and_save_is_lost_even_by_a_delta(
        shop: WooCommerceStandIn) -> None:
    loaded: list[tuple[str, int | None]] = []

    def sale_mid_write(s: WooCommerceStandIn, sku: str, level: int | None) -> None:
        loaded.append((sku, level))
        s.sell({"MUG": 2})

    shop.between_load_and_save(sale_mid_write)
    answer = put(shop, f"/products/{shop.id_of('MUG')}", {"inventory_delta": 1})
    assert answer.json()["stock_quantity"] == 6  # 5 loaded + 1; the sale of 2 is gone
    assert shop.level("MUG") == 6 and loaded == [("MUG", 5)] and len(shop.orders) == 1


def test_fail_next_answers_faults_and_executes_nothing(shop: WooCommerceStandIn) -> None:
    shop.fail_next(503, times=2, retry_after=30)
    mug = shop.id_of("MUG")
    for _ in range(2):
        answer = put(shop, f"/products/{mug}", {"stock_quantity": 1})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
        assert "text/html" in answer.headers["Content-Type"]
    assert shop.level("MUG") == 5
    shop.fail_next(500)
    fatal = get(shop, "/products")
    assert fatal.status_code == 500 and fatal.json()["code"] == "internal_server_error"
    assert get(shop, "/products").status_code == 200
    assert [c.status for c in shop.requests] == [503, 503, 500, 200]


def test_drop_next_answer_applies_the_write_and_loses_the_answer(
        shop: WooCommerceStandIn) -> None:
    shop.drop_next_answer()
    with pytest.raises(requests.ConnectionError):
        put(shop, f"/products/{shop.id_of('MUG')}", {"inventory_delta": -2})
    assert shop.level("MUG") == 3
    assert put(shop, f"/products/{shop.id_of('MUG')}", {"inventory_delta": -1}).json()[
        "stock_quantity"] == 2


def test_the_request_log_records_method_path_query_status_and_sizes(
        shop: WooCommerceStandIn, clock: Clock) -> None:
    get(shop, "/products", per_page=5)
    put(shop, f"/products/{shop.id_of('MUG')}", {"stock_quantity": 1})
    listing, write = shop.requests
    assert (listing.method, listing.path, listing.query, listing.status) == (
        "GET", "/wp-json/wc/v3/products", "per_page=5", 200)
    assert listing.body_size == 0 and listing.answer_size > 100
    assert (write.method, write.status, write.body_size) == ("PUT", 200,
                                                              len(b'{"stock_quantity": 1}'))
    assert write.time == clock.now


def test_a_large_catalogue_pages_quickly(clock: Clock) -> None:
    with WooCommerceStandIn(clock=clock) as shop:
        for n in range(20_000):
            shop.add_simple(f"P{n}", f"P{n:05}", n)
        session = requests.Session()
        session.auth = shop.auth
        pages = []
        for page in (1, 2, 100, 200):
            answer = session.get(shop.api_url + "/products", timeout=5,
                                 params={"per_page": 100, "page": page, "_fields": "id,sku"})
            pages.append(answer.json())
            assert answer.headers["X-WP-TotalPages"] == "200"
        assert pages[0][0]["sku"] == "P19999" and pages[-1][-1]["sku"] == "P00000"
