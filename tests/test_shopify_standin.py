"""The Shopify stand-in (``tests/support/shopify_standin.py``) refuses what Shopify refuses.

Raw HTTP through requests, as the connector will talk to it; time is injected so that
throttling, bulk delays and the idempotency window need no sleeping."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.shopify_standin import (
    API_VERSION,
    INVALID_TOKEN_BODY,
    PLUS,
    STANDARD,
    ShopifyStandIn,
)

SET = """mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id reason referenceDocumentUri createdAt
      changes { name delta quantityAfterChange item { id sku } location { id } } }
    userErrors { field message code }
  }
}"""

ADJUST = """mutation Adjust($input: InventoryAdjustQuantitiesInput!, $key: String!) {
  inventoryAdjustQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange item { sku } } }
    userErrors { field message code }
  }
}"""


class Clock:
    """Injected time: ``clock.now += 5`` moves the stand-in five seconds on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(clock: Clock) -> Iterator[ShopifyStandIn]:
    with ShopifyStandIn(clock=clock) as standin:
        standin.main = standin.add_location("Main")  # type: ignore[attr-defined]
        standin.add_product("Shirt", [{"sku": "RED", "title": "Red", "qty": 5},
                                      {"sku": "BLUE", "title": "Blue", "qty": 3}])
        yield standin


def gql(shop: ShopifyStandIn, query: str, variables: dict[str, Any] | None = None,
        token: str | None = None) -> requests.Response:
    return requests.post(shop.graphql_url, json={"query": query, "variables": variables or {}},
                         headers={"X-Shopify-Access-Token": token or shop.token}, timeout=10)


def set_input(shop: ShopifyStandIn, *rows: tuple[str, int, int | None],
              **extra: Any) -> dict[str, Any]:
    """An InventorySetQuantitiesInput of ``(sku, quantity, changeFromQuantity)`` rows."""
    main = shop.main  # type: ignore[attr-defined]
    return {"name": "available", "reason": "correction",
            "referenceDocumentUri": "gid://xlstock/Publish/1", **extra,
            "quantities": [{"inventoryItemId": shop.item_id(sku), "locationId": main,
                            "quantity": quantity, "changeFromQuantity": change_from}
                           for sku, quantity, change_from in rows]}


def payload(response: requests.Response, field: str = "inventorySetQuantities") -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"][field]


# --- authentication and addresses -----------------------------------------------------------


def test_a_wrong_or_missing_token_is_answered_401_as_shopify_does(
        shop: ShopifyStandIn) -> None:
    wrong = gql(shop, "{ shop { name } }", token="shpat_wrong")
    assert wrong.status_code == 401
    assert wrong.json() == INVALID_TOKEN_BODY
    missing = requests.post(shop.graphql_url, json={"query": "{ shop { name } }"}, timeout=10)
    assert missing.status_code == 401
    assert gql(shop, "{ shop { name } }").json()["data"]["shop"]["name"] == shop.shop_name


def test_another_api_version_is_not_found(shop: ShopifyStandIn) -> None:
    other = shop.graphql_url.replace(API_VERSION, "2025-01")
    response = requests.post(other, json={"query": "{ shop { name } }"},
                             headers={"X-Shopify-Access-Token": shop.token}, timeout=10)
    assert response.status_code == 404


def test_client_credentials_give_a_token_that_works_and_a_wrong_secret_is_refused(
        shop: ShopifyStandIn) -> None:
    url = f"{shop.url}/admin/oauth/access_token"
    refused = requests.post(url, data={"grant_type": "client_credentials",
                                       "client_id": shop.client_id,
                                       "client_secret": "wrong"}, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client"
    granted = requests.post(url, data={"grant_type": "client_credentials",
                                       "client_id": shop.client_id,
                                       "client_secret": shop.client_secret}, timeout=10)
    assert granted.status_code == 200
    body = granted.json()
    assert body["expires_in"] == 86399
    assert set(body["scope"].split(",")) == shop.scopes
    assert body["access_token"] != shop.token
    assert gql(shop, "{ shop { name } }", token=body["access_token"]).status_code == 200


# --- the schema ------------------------------------------------------------------------------


def test_a_misspelt_field_is_refused_by_the_real_schema(shop: ShopifyStandIn) -> None:
    response = gql(shop, "{ shop { nme } }")
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"] == "Field 'nme' doesn't exist on type 'Shop'"
    assert error["extensions"]["code"] == "undefinedField"
    assert error["locations"] == [{"line": 1, "column": 10}]
    assert error["path"] == ["query", "shop", "nme"]
    assert "data" not in response.json()


def test_an_argument_of_the_wrong_type_is_refused(shop: ShopifyStandIn) -> None:
    literal = gql(shop, 'query Places { locations(first: "ten") { nodes { id } } }').json()
    [error] = literal["errors"]
    assert error["message"] == ("Argument 'first' on Field 'locations' has an invalid value "
                                '("ten"). Expected type \'Int\'.')
    assert error["extensions"]["code"] == "argumentLiteralsIncompatible"
    assert error["path"] == ["query Places", "locations", "first"]
    variable = gql(shop, "query($n: Int) { locations(first: $n) { nodes { id } } }",
                   {"n": "ten"}).json()
    assert "ten" in variable["errors"][0]["message"]
    assert variable.get("data") is None


def test_a_mutation_input_missing_a_non_null_field_is_refused_before_running(
        shop: ShopifyStandIn) -> None:
    broken = set_input(shop, ("RED", 9, 5))
    del broken["quantities"][0]["quantity"]
    response = gql(shop, SET, {"input": broken, "key": "k"}).json()
    assert response["errors"] and response.get("data") is None
    assert shop.level("RED") == 5


# --- reading ---------------------------------------------------------------------------------


def test_variants_page_through_cursors_with_any_valid_selection(shop: ShopifyStandIn) -> None:
    shop.add_product("Hat", [{"sku": f"HAT-{n}", "qty": n} for n in range(5)])
    query = """query Page($after: String) {
      productVariants(first: 3, after: $after) {
        edges { cursor node { sku displayName product { title }
          inventoryItem { tracked inventoryLevel(locationId: "LOCATION") {
            quantities(names: ["available", "on_hand"]) { name quantity } } } } }
        pageInfo { hasNextPage endCursor }
      }
    }""".replace("LOCATION", shop.main)  # type: ignore[attr-defined]
    seen: list[tuple[str, int]] = []
    after = None
    for _page in range(5):
        page = gql(shop, query, {"after": after}).json()["data"]["productVariants"]
        for edge in page["edges"]:
            node = edge["node"]
            quantity = node["inventoryItem"]["inventoryLevel"]["quantities"][0]["quantity"]
            seen.append((node["sku"], quantity))
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [("RED", 5), ("BLUE", 3)] + [(f"HAT-{n}", n) for n in range(5)]
    nodes = gql(shop, "{ locations(first: 5) { nodes { id name isActive } } }").json()
    assert nodes["data"]["locations"]["nodes"] == [
        {"id": shop.main, "name": "Main", "isActive": True}]  # type: ignore[attr-defined]


def test_items_are_re_read_by_id_and_by_search(shop: ShopifyStandIn) -> None:
    red, blue = shop.item_id("RED"), shop.item_id("BLUE")
    query = """query($ids: [ID!]!) { nodes(ids: $ids) { ... on InventoryItem { id sku } } }"""
    nodes = gql(shop, query, {"ids": [red, "gid://shopify/InventoryItem/1", blue]}).json()
    assert nodes["data"]["nodes"] == [{"id": red, "sku": "RED"}, None,
                                      {"id": blue, "sku": "BLUE"}]
    number = red.rsplit("/", 1)[1]
    search = gql(shop, '{ inventoryItems(first: 5, query: "id:NUMBER") { nodes { sku } } }'
                 .replace("NUMBER", number)).json()
    assert search["data"]["inventoryItems"]["nodes"] == [{"sku": "RED"}]
    by_sku = gql(shop, '{ productVariants(first: 5, query: "sku:BLUE") { nodes { sku } } }')
    assert by_sku.json()["data"]["productVariants"]["nodes"] == [{"sku": "BLUE"}]


def test_odd_variants_are_representable(shop: ShopifyStandIn) -> None:
    second = shop.add_location("Depot")
    shop.add_product("Odd", [{"sku": None, "qty": 1}, {"sku": "RED", "qty": 2},
                             {"sku": "LOOSE", "tracked": False, "qty": 0},
                             {"sku": "DEPOT", "locations": {second: 4}}])
    query = """{ productVariants(first: 10) { nodes { sku inventoryItem { tracked
      inventoryLevel(locationId: "LOCATION") { id } } } } }""".replace(
        "LOCATION", shop.main)  # type: ignore[attr-defined]
    nodes = gql(shop, query).json()["data"]["productVariants"]["nodes"]
    assert [node["sku"] for node in nodes].count("RED") == 2
    assert None in [node["sku"] for node in nodes]
    assert {"sku": "LOOSE", "inventoryItem": {"tracked": False, "inventoryLevel": {
        "id": nodes[4]["inventoryItem"]["inventoryLevel"]["id"]}}} in nodes
    assert nodes[-1] == {"sku": "DEPOT", "inventoryItem": {"tracked": True,
                                                           "inventoryLevel": None}}


def test_a_page_over_250_or_without_a_size_is_refused(shop: ShopifyStandIn) -> None:
    over = gql(shop, "{ productVariants(first: 251) { nodes { id } } }").json()
    assert over["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "250" in over["errors"][0]["message"]
    assert over["data"] is None
    unsized = gql(shop, "{ productVariants { nodes { id } } }").json()
    assert unsized["errors"][0]["message"] == "you must provide one of first or last"
    assert gql(shop, "{ productVariants(first: 250) { nodes { id } } }").json()["data"]


# --- cost and throttling ---------------------------------------------------------------------


def test_every_answer_carries_the_cost_computed_by_shopify_rules(shop: ShopifyStandIn) -> None:
    # connection: 2 + first x (node object 1 + inventoryItem object 1); scalars are free
    answer = gql(shop, "{ productVariants(first: 10) { nodes { id sku inventoryItem { id } } } }")
    cost = answer.json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 22
    assert cost["actualQueryCost"] == 2 + 2 * 2  # two variants came back
    assert cost["throttleStatus"] == {"maximumAvailable": STANDARD.bucket_size,
                                      "currentlyAvailable": STANDARD.bucket_size - 6,
                                      "restoreRate": STANDARD.restore_rate}
    assert gql(shop, "{ shop { name } }").json()["extensions"]["cost"]["requestedQueryCost"] == 1
    mutation = gql(shop, SET, {"input": set_input(shop, ("RED", 6, 5)), "key": "c1"})
    assert mutation.json()["extensions"]["cost"]["requestedQueryCost"] == 10
    invalid = gql(shop, "{ shop { nme } }").json()
    assert "cost" in invalid["extensions"]
    assert PLUS.restore_rate == 10 * STANDARD.restore_rate


def test_a_query_over_1000_points_is_refused_unexecuted(shop: ShopifyStandIn) -> None:
    heavy = """{ productVariants(first: 250) { nodes { inventoryItem {
      inventoryLevels(first: 10) { nodes { id } } } } } }"""
    answer = gql(shop, heavy).json()
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["message"].startswith("Query cost is 3502, which exceeds the single query "
                                       "max cost limit (1000).")
    assert "data" not in answer
    assert shop.bucket_level() == STANDARD.bucket_size


def test_throttled_calls_answer_200_throttled_and_run_nothing(clock: Clock) -> None:
    with ShopifyStandIn(clock=clock, bucket_size=30, restore_rate=10) as shop:
        shop.main = shop.add_location("Main")  # type: ignore[attr-defined]
        shop.add_product("Many", [{"sku": f"S{n}", "qty": 5} for n in range(10)])
        costly = "{ productVariants(first: 10) { nodes { id inventoryItem { id } } } }"
        assert gql(shop, costly).json()["extensions"]["cost"]["actualQueryCost"] == 22
        throttled = gql(shop, costly)
        assert throttled.status_code == 200
        body = throttled.json()
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert "data" not in body
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 8
        mutation = gql(shop, SET, {"input": set_input(shop, ("S1", 9, 5)), "key": "t1"})
        assert mutation.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert shop.level("S1") == 5 and shop.history("S1") == []
        clock.now += 1.4  # 8 + 14 = 22 points
        assert gql(shop, costly).json()["data"]["productVariants"]["nodes"]
        clock.now += 100
        assert shop.bucket_level() == 30
        assert [call.throttled for call in shop.calls] == [False, True, True, False]


# --- changeFromQuantity ----------------------------------------------------------------------


def test_change_from_quantity_absent_is_an_error_and_nothing_is_applied(
        shop: ShopifyStandIn) -> None:
    data = set_input(shop, ("RED", 9, 5), ("BLUE", 1, 3))
    del data["quantities"][1]["changeFromQuantity"]
    answer = gql(shop, SET, {"input": data, "key": "a1"}).json()
    [error] = answer["errors"]
    assert error["message"] == ("InventoryQuantityInput must include the following argument: "
                                "changeFromQuantity.")
    assert error["extensions"]["code"] == "INVALID_FIELD_ARGUMENTS"
    assert answer["data"] == {"inventorySetQuantities": None}
    assert shop.levels() == {"RED": 5, "BLUE": 3}
    adjust = {"name": "available", "reason": "received", "changes": [
        {"inventoryItemId": shop.item_id("RED"), "locationId": shop.main,  # type: ignore
         "delta": 2}]}
    refused = gql(shop, ADJUST, {"input": adjust, "key": "a2"}).json()
    assert refused["errors"][0]["message"].startswith("InventoryChangeInput must include")


def test_change_from_quantity_null_skips_the_check(shop: ShopifyStandIn) -> None:
    shop.sell("RED", 2)
    group = payload(gql(shop, SET, {"input": set_input(shop, ("RED", 9, None)), "key": "n1"}))
    assert group["userErrors"] == []
    assert shop.level("RED") == 9


def test_each_stale_entry_is_reported_with_its_path_and_nothing_is_applied(
        shop: ShopifyStandIn) -> None:
    shop.add_product("More", [{"sku": "GREEN", "qty": 7}])
    shop.sell("BLUE", 1)
    shop.sell("GREEN", 2)
    data = set_input(shop, ("RED", 9, 5), ("BLUE", 9, 3), ("GREEN", 9, 7))
    result = payload(gql(shop, SET, {"input": data, "key": "s1"}))
    assert result["inventoryAdjustmentGroup"] is None
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("CHANGE_FROM_QUANTITY_STALE", ["input", "quantities", "1", "changeFromQuantity"]),
        ("CHANGE_FROM_QUANTITY_STALE", ["input", "quantities", "2", "changeFromQuantity"])]
    assert shop.levels() == {"RED": 5, "BLUE": 2, "GREEN": 5}


def test_stale_applies_others_applies_only_the_fresh_entries(clock: Clock) -> None:
    with ShopifyStandIn(clock=clock, stale_applies_others=True) as shop:
        shop.main = shop.add_location("Main")  # type: ignore[attr-defined]
        shop.add_product("Shirt", [{"sku": "RED", "qty": 5}, {"sku": "BLUE", "qty": 3}])
        shop.sell("BLUE", 1)
        data = set_input(shop, ("RED", 9, 5), ("BLUE", 9, 3))
        result = payload(gql(shop, SET, {"input": data, "key": "s2"}))
        assert [e["field"] for e in result["userErrors"]] == [
            ["input", "quantities", "1", "changeFromQuantity"]]
        changes = result["inventoryAdjustmentGroup"]["changes"]
        assert {change["item"]["sku"] for change in changes} == {"RED"}
        assert shop.levels() == {"RED": 9, "BLUE": 2}


def test_a_sale_placed_inside_the_mutation_makes_it_stale(shop: ShopifyStandIn) -> None:
    shop.before_mutation(lambda standin, name, data: standin.sell("RED", 1))
    data = {"name": "available", "reason": "received", "changes": [
        {"inventoryItemId": shop.item_id("RED"), "locationId": shop.main,  # type: ignore
         "delta": 4, "changeFromQuantity": 5}]}
    result = payload(gql(shop, ADJUST, {"input": data, "key": "w1"}),
                     "inventoryAdjustQuantities")
    assert result["userErrors"][0]["field"] == ["input", "changes", "0", "changeFromQuantity"]
    assert result["inventoryAdjustmentGroup"] is None
    assert shop.level("RED") == 4
    assert [entry["kind"] for entry in shop.history("RED")] == ["sale"]


def test_an_adjustment_applies_its_delta_and_records_it(shop: ShopifyStandIn) -> None:
    after: list[Any] = []
    shop.after_mutation(lambda standin, name, data, result: after.append(name))
    data = {"name": "available", "reason": "received", "referenceDocumentUri":
            "gid://xlstock/Delivery/7", "changes": [
                {"inventoryItemId": shop.item_id("BLUE"), "locationId": shop.main,  # type: ignore
                 "delta": 4, "changeFromQuantity": 3}]}
    result = payload(gql(shop, ADJUST, {"input": data, "key": "d1"}),
                     "inventoryAdjustQuantities")
    assert result["inventoryAdjustmentGroup"]["changes"][0] == {
        "name": "available", "delta": 4, "quantityAfterChange": 7, "item": {"sku": "BLUE"}}
    assert shop.level("BLUE") == 7 and shop.level("BLUE", name="on_hand") == 7
    [entry] = shop.history("BLUE")
    assert (entry["reason"], entry["delta"], entry["quantity_after"], entry["key"],
            entry["reference_document_uri"]) == ("received", 4, 7, "d1",
                                                 "gid://xlstock/Delivery/7")
    assert after == ["inventoryAdjustQuantities"]


# --- idempotency -----------------------------------------------------------------------------


def test_the_idempotent_directive_is_mandatory_and_its_key_not_blank(
        shop: ShopifyStandIn) -> None:
    bare = SET.replace(" @idempotent(key: $key)", "").replace(", $key: String!", "")
    answer = gql(shop, bare, {"input": set_input(shop, ("RED", 9, 5))}).json()
    assert answer["errors"][0]["message"] == ("The @idempotent directive is required for "
                                              "this mutation but was not provided.")
    assert answer["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    blank = gql(shop, SET, {"input": set_input(shop, ("RED", 9, 5)), "key": "  "}).json()
    assert blank["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert shop.level("RED") == 5


def test_a_replay_returns_the_first_answer_and_applies_nothing_again(
        shop: ShopifyStandIn) -> None:
    variables = {"input": set_input(shop, ("RED", 9, 5)), "key": "r1"}
    first = payload(gql(shop, SET, variables))
    shop.sell("RED", 1)
    again = payload(gql(shop, SET, variables))
    assert again == first
    assert shop.level("RED") == 8
    assert [entry["kind"] for entry in shop.history("RED")] == ["set", "sale"]


def test_a_key_reused_with_other_input_is_a_mismatch(shop: ShopifyStandIn) -> None:
    payload(gql(shop, SET, {"input": set_input(shop, ("RED", 9, 5)), "key": "m1"}))
    other = payload(gql(shop, SET, {"input": set_input(shop, ("RED", 10, 9)), "key": "m1"}))
    assert other["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    assert other["inventoryAdjustmentGroup"] is None
    assert shop.level("RED") == 9


def test_a_key_still_running_is_a_concurrent_request(shop: ShopifyStandIn) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold(standin: ShopifyStandIn, name: str, data: Any) -> None:
        entered.set()
        release.wait(10)

    shop.before_mutation(hold)
    variables = {"input": set_input(shop, ("RED", 9, 5)), "key": "c1"}
    answers: list[Any] = []
    first = threading.Thread(target=lambda: answers.append(gql(shop, SET, variables)))
    first.start()
    assert entered.wait(10)
    second = payload(gql(shop, SET, variables))
    release.set()
    first.join(10)
    assert second["userErrors"][0]["code"] == "IDEMPOTENCY_CONCURRENT_REQUEST"
    assert payload(answers[0])["userErrors"] == []
    assert shop.level("RED") == 9


def test_a_key_whose_first_attempt_failed_must_not_be_reused(shop: ShopifyStandIn) -> None:
    shop.sell("RED", 1)
    variables = {"input": set_input(shop, ("RED", 9, 5)), "key": "f1"}
    assert payload(gql(shop, SET, variables))["userErrors"][0]["code"] == (
        "CHANGE_FROM_QUANTITY_STALE")
    retry = payload(gql(shop, SET, variables))
    assert retry["userErrors"][0]["code"] == "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"
    assert shop.level("RED") == 4


def test_failed_keys_rerun_lets_the_same_key_try_again(clock: Clock) -> None:
    with ShopifyStandIn(clock=clock, failed_keys_rerun=True) as shop:
        shop.main = shop.add_location("Main")  # type: ignore[attr-defined]
        shop.add_product("Shirt", [{"sku": "RED", "qty": 5}])
        shop.sell("RED", 1)
        variables = {"input": set_input(shop, ("RED", 9, 5)), "key": "f2"}
        assert payload(gql(shop, SET, variables))["userErrors"][0]["code"] == (
            "CHANGE_FROM_QUANTITY_STALE")
        shop.set_level("RED", 5)
        assert payload(gql(shop, SET, variables))["userErrors"] == []
        assert shop.level("RED") == 9


def test_keys_are_forgotten_after_the_retention_window(
        shop: ShopifyStandIn, clock: Clock) -> None:
    delta = {"name": "available", "reason": "received", "changes": [
        {"inventoryItemId": shop.item_id("RED"), "locationId": shop.main,  # type: ignore
         "delta": 1, "changeFromQuantity": None}]}
    payload(gql(shop, ADJUST, {"input": delta, "key": "old"}), "inventoryAdjustQuantities")
    clock.now += 23 * 3600
    payload(gql(shop, ADJUST, {"input": delta, "key": "old"}), "inventoryAdjustQuantities")
    assert shop.level("RED") == 6
    clock.now += 2 * 3600
    payload(gql(shop, ADJUST, {"input": delta, "key": "old"}), "inventoryAdjustQuantities")
    assert shop.level("RED") == 7


# --- input rules -----------------------------------------------------------------------------


def test_at_most_250_entries_a_call(shop: ShopifyStandIn) -> None:
    shop.add_product("Bulk", [{"sku": f"B{n}", "qty": 0} for n in range(251)])
    rows = [(f"B{n}", 1, 0) for n in range(251)]
    over = gql(shop, SET, {"input": set_input(shop, *rows), "key": "l1"}).json()
    assert over["errors"][0]["message"] == ("The input array size of 251 is greater than the "
                                            "maximum allowed of 250.")
    assert over["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    assert shop.level("B0") == 0
    fits = payload(gql(shop, SET, {"input": set_input(shop, *rows[:250]), "key": "l2"}))
    assert fits["userErrors"] == []
    assert shop.level("B249") == 1 and shop.level("B250") == 0


@pytest.mark.parametrize(("change", "code", "field"), [
    ({"name": "committed"}, "INVALID_NAME", ["input", "name"]),
    ({"reason": "because"}, "INVALID_REASON", ["input", "reason"]),
    ({"referenceDocumentUri": "gid://xlstock/Publish"}, "INVALID_REFERENCE_DOCUMENT",
     ["input", "referenceDocumentUri"]),
    ({"referenceDocumentUri": "no scheme"}, "INVALID_REFERENCE_DOCUMENT",
     ["input", "referenceDocumentUri"]),
])
def test_names_reasons_and_reference_documents_are_checked(
        shop: ShopifyStandIn, change: dict[str, Any], code: str, field: list[str]) -> None:
    result = payload(gql(shop, SET, {"input": set_input(shop, ("RED", 9, 5), **change),
                                     "key": code + field[-1]}))
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [(code, field)]
    assert shop.level("RED") == 5


def test_items_locations_stocking_duplicates_and_negatives_are_checked(
        shop: ShopifyStandIn) -> None:
    depot = shop.add_location("Depot")
    data = set_input(shop, ("RED", 9, 5), ("RED", 8, 5), ("BLUE", -1, 3))
    data["quantities"] += [
        {"inventoryItemId": "gid://shopify/InventoryItem/1", "locationId": shop.main,
         "quantity": 1, "changeFromQuantity": None},
        {"inventoryItemId": shop.item_id("RED"), "locationId": "gid://shopify/Location/1",
         "quantity": 1, "changeFromQuantity": None},
        {"inventoryItemId": shop.item_id("BLUE"), "locationId": depot, "quantity": 1,
         "changeFromQuantity": None}]
    result = payload(gql(shop, SET, {"input": data, "key": "v1"}))
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", ["input", "quantities", "1"]),
        ("INVALID_QUANTITY_NEGATIVE", ["input", "quantities", "2", "quantity"]),
        ("INVALID_INVENTORY_ITEM", ["input", "quantities", "3", "inventoryItemId"]),
        ("INVALID_LOCATION", ["input", "quantities", "4", "locationId"]),
        ("ITEM_NOT_STOCKED_AT_LOCATION", ["input", "quantities", "5", "locationId"])]
    assert result["inventoryAdjustmentGroup"] is None
    assert shop.levels() == {"RED": 5, "BLUE": 3}


def test_available_may_be_adjusted_below_zero_but_not_past_the_limits(
        shop: ShopifyStandIn) -> None:
    def adjust(delta: int, key: str) -> Any:
        data = {"name": "available", "reason": "correction", "changes": [
            {"inventoryItemId": shop.item_id("RED"), "locationId": shop.main,  # type: ignore
             "delta": delta, "changeFromQuantity": None}]}
        return payload(gql(shop, ADJUST, {"input": data, "key": key}),
                       "inventoryAdjustQuantities")

    assert adjust(-8, "n1")["userErrors"] == []
    assert shop.level("RED") == -3
    assert adjust(2_000_000_004, "n2")["userErrors"][0]["code"] == "INVALID_QUANTITY_TOO_HIGH"
    assert shop.level("RED") == -3


# --- scopes ----------------------------------------------------------------------------------


def test_fields_outside_the_token_scopes_are_access_denied(shop: ShopifyStandIn) -> None:
    shop.scopes = {"read_products"}
    query = """{ productVariants(first: 1) { nodes { sku inventoryItem {
      inventoryLevel(locationId: "LOCATION") { id } } } } }""".replace(
        "LOCATION", shop.main)  # type: ignore[attr-defined]
    answer = gql(shop, query).json()
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED"
    assert error["message"] == ("Access denied for inventoryLevel field. Required access: "
                                "`read_inventory` access scope.")
    assert error["path"] == ["productVariants", "nodes", "inventoryItem", "inventoryLevel"]
    refused = gql(shop, SET, {"input": set_input(shop, ("RED", 9, 5)), "key": "x1"}).json()
    assert refused["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    assert "write_inventory" in refused["errors"][0]["message"]
    assert shop.level("RED") == 5
    shop.scopes = {"read_products", "write_inventory", "read_locations"}  # write implies read
    assert "errors" not in gql(shop, query).json()


# --- bulk operations -------------------------------------------------------------------------


BULK = """mutation Bulk($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}"""


def test_a_bulk_query_completes_later_into_jsonl_with_parent_ids(clock: Clock) -> None:
    with ShopifyStandIn(clock=clock, bulk_delay=5) as shop:
        main = shop.add_location("Main")
        depot = shop.add_location("Depot")
        shop.add_product("Shirt", [{"sku": "RED", "locations": {main: 5, depot: 2}},
                                   {"sku": "BLUE", "qty": 3}])
        inner = """{ productVariants { edges { node { id sku inventoryItem { id
          inventoryLevels { edges { node { location { id }
            quantities(names: ["available"]) { name quantity } } } } } } } } }"""
        started = payload(gql(shop, BULK, {"query": inner}), "bulkOperationRunQuery")
        assert started["userErrors"] == []
        operation = started["bulkOperation"]
        assert operation["status"] == "RUNNING"
        poll = """query($id: ID!) { bulkOperation(id: $id) { id status errorCode objectCount
          url partialDataUrl } currentBulkOperation { id } }"""
        running = gql(shop, poll, {"id": operation["id"]}).json()["data"]
        assert running["bulkOperation"]["url"] is None
        assert running["currentBulkOperation"]["id"] == operation["id"]
        clock.now += 5
        done = gql(shop, poll, {"id": operation["id"]}).json()["data"]["bulkOperation"]
        assert done["status"] == "COMPLETED" and done["errorCode"] is None
        lines = [json.loads(line) for line in
                 requests.get(done["url"], timeout=10).text.splitlines()]
        assert done["objectCount"] == str(len(lines)) == "5"
        red, red_main, red_depot, blue, blue_main = lines
        assert red["sku"] == "RED" and "__parentId" not in red
        assert red["inventoryItem"] == {"id": shop.item_id("RED")}
        assert red_main == {"location": {"id": main},
                            "quantities": [{"name": "available", "quantity": 5}],
                            "__parentId": red["id"]}
        assert red_depot["location"] == {"id": depot} and red_depot["__parentId"] == red["id"]
        assert blue_main["__parentId"] == blue["id"]


@pytest.mark.parametrize(("query", "words"), [
    ("{ shop { name } }", "at least one connection"),
    ("{ nodes(ids: []) { id } }", "node"),
    ("""{ locations { edges { node { inventoryLevels { edges { node { item {
       variant { product { variants { edges { node { id } } } } } } } } } } } } }""",
     "nesting depth"),
    ("{ productVariants { edges { node { nme } } } }", "doesn't exist"),
])
def test_bulk_queries_outside_the_documented_limits_are_refused(
        shop: ShopifyStandIn, query: str, words: str) -> None:
    result = payload(gql(shop, BULK, {"query": query}), "bulkOperationRunQuery")
    assert result["bulkOperation"] is None
    assert words in result["userErrors"][0]["message"]
    assert result["userErrors"][0]["code"] == "INVALID"


def test_at_most_five_bulk_queries_run_at_once(clock: Clock) -> None:
    with ShopifyStandIn(clock=clock, bulk_delay=60) as shop:
        shop.add_product("Shirt", [{"sku": "RED", "qty": 1}])
        inner = "{ productVariants { edges { node { id } } } }"
        codes = [payload(gql(shop, BULK, {"query": inner}), "bulkOperationRunQuery")
                 ["userErrors"] for _ in range(6)]
        assert codes[:5] == [[]] * 5
        assert codes[5][0]["code"] == "LIMIT_REACHED"


# --- faults ----------------------------------------------------------------------------------


def test_fail_next_answers_shopify_error_statuses_then_recovers(shop: ShopifyStandIn) -> None:
    shop.fail_next(429, retry_after=2.0)
    shop.fail_next(503)
    limited = gql(shop, "{ shop { name } }")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert "Exceeded" in limited.json()["errors"]
    assert gql(shop, "{ shop { name } }").status_code == 503
    assert gql(shop, "{ shop { name } }").status_code == 200


def test_a_dropped_answer_still_applies_the_mutation(shop: ShopifyStandIn) -> None:
    shop.drop_next_answer()
    variables = {"input": set_input(shop, ("RED", 9, 5)), "key": "lost"}
    with pytest.raises(requests.ConnectionError):
        gql(shop, SET, variables)
    assert shop.level("RED") == 9
    replay = payload(gql(shop, SET, variables))
    assert replay["userErrors"] == [] and replay["inventoryAdjustmentGroup"]
    assert shop.level("RED") == 9
    assert [call.key for call in shop.calls] == ["lost", "lost"]


def test_reads_are_answered_while_a_mutation_is_held(shop: ShopifyStandIn) -> None:
    entered, release = threading.Event(), threading.Event()
    shop.before_mutation(lambda standin, name, data: (entered.set(), release.wait(10)))
    variables = {"input": set_input(shop, ("RED", 9, 5)), "key": "h1"}
    writer = threading.Thread(target=lambda: gql(shop, SET, variables))
    writer.start()
    assert entered.wait(10)
    try:
        read = requests.post(shop.graphql_url, headers={"X-Shopify-Access-Token": shop.token},
                             json={"query": "{ locations(first: 1) { nodes { id } } "
                                   "productVariants(first: 5) { nodes { sku product { "
                                   "variants(first: 5) { nodes { sku } } } } } }"},
                             timeout=3).json()
    finally:
        release.set()
        writer.join(10)
    assert [node["sku"] for node in read["data"]["productVariants"]["nodes"]] == ["RED", "BLUE"]
    assert shop.level("RED") == 9
