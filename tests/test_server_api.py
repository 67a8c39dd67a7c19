"""The stock service's HTTP API (docs/protocol.md), against the real service on loopback."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib

import pytest
import requests
from conftest import Api

from xlstock import __version__, stockfile
from xlstock.model import MAX_LEVEL, MAX_SKUS, StockItem
from xlstock.server.app import DEFAULT_MAX_BODY
from xlstock.server.runner import start_background_server
from xlstock.server.storage import _first_problems


def new_key() -> str:
    return str(uuid.uuid4())


def error_of(answer: requests.Response) -> dict:
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text
    return answer.json()["error"]


# --- health, errors that are not the API's ---------------------------------------------


def test_health_needs_no_token(stock_service):
    answer = requests.get(stock_service.url + "/v1/health", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "version": __version__, "protocol": 3}


def test_unknown_path_is_a_json_404(stock_service):
    answer = requests.get(stock_service.url + "/v2/stock?<script>", timeout=10)
    assert answer.status_code == 404
    assert error_of(answer)["code"] == "not_found"
    assert "<" not in answer.headers["Content-Type"]


def test_wrong_method_is_a_json_405_naming_the_allowed_ones(stock_service):
    answer = requests.delete(stock_service.url + "/v1/stock", timeout=10)
    assert answer.status_code == 405
    assert error_of(answer)["code"] == "method_not_allowed"
    assert "PUT" in answer.headers["Allow"] and "GET" in answer.headers["Allow"]


def test_internal_failure_is_a_json_500(tmp_path):
    with start_background_server(tmp_path / "broken.db") as running:
        token = running.store.add_shop("https://broken.example", [StockItem("A", qty=1)])
        running.store.close()
        answer = requests.get(
            running.url + "/v1/stock", params={"shop": "https://broken.example"},
            headers={"Authorization": f"Bearer {token}"}, timeout=10,
        )
    assert answer.status_code == 500
    assert error_of(answer)["code"] == "internal_error"
    assert "Traceback" not in answer.text


# --- auth ----------------------------------------------------------------------------


def test_missing_token_is_401(api):
    api.token = None
    answer = api.get("/v1/stock")
    assert answer.status_code == 401
    assert error_of(answer)["code"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_401_on_every_private_endpoint(api):
    api.token = "xls_not-a-real-token"
    for method, path in [("GET", "/v1/stock"), ("PUT", "/v1/stock"),
                         ("GET", "/v1/history"), ("POST", "/v1/orders"),
                         ("GET", "/v1/publishes/some-key")]:
        answer = api.request(method, path)
        assert answer.status_code == 401, (method, path)
        assert error_of(answer)["code"] == "unauthorized"


def test_shop_not_registered_for_the_token_is_403_saying_how_to_register(api):
    own_shop = api.shop
    api.shop = "https://never-registered.example/"
    answer = api.get("/v1/stock")
    assert answer.status_code == 403
    error = error_of(answer)
    assert error["code"] == "shop_not_registered"
    assert "xlstock shop add https://never-registered.example" in error["message"]
    assert error["message"].startswith(
        f"this API token is for the shop {own_shop}, not https://never-registered.example")
    # the two shops for programs, so that no client reads them out of the message
    assert error["token_shop"] == own_shop
    assert error["shop"] == "https://never-registered.example"


def test_another_shops_token_is_403(api, shop_factory):
    _, other_token = shop_factory()
    api.token = other_token
    assert api.get("/v1/stock").status_code == 403


def test_missing_shop_parameter_is_400(stock_service, api):
    answer = requests.get(stock_service.url + "/v1/stock", timeout=10,
                          headers={"Authorization": f"Bearer {api.token}"})
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "bad_request"


def test_shop_url_is_normalised(api):
    api.shop = api.shop.upper().replace("HTTPS://", "HTTPS://") + "/"
    assert api.get("/v1/stock").status_code == 200


# --- reading levels --------------------------------------------------------------------


def test_read_levels_returns_the_stock_document(api):
    answer = api.get("/v1/stock")
    assert answer.status_code == 200
    document = answer.json()
    assert document["format"] == stockfile.FORMAT_NAME
    assert document["format_version"] == stockfile.FORMAT_VERSION
    assert document["shop"] == api.shop
    assert answer.headers["ETag"] == f'"{document["version"]}"'
    assert document["generated_at"].endswith("Z")
    assert document["items"] == [
        {"sku": "00123", "name": "Socks", "variant": "Blue", "qty": 0},
        {"sku": "A-1", "name": "Hoodie", "variant": "Red / XL", "qty": 5},
        {"sku": "B-2", "name": "Cap", "variant": "", "qty": 10},
    ]
    snapshot = stockfile.snapshot_from_document(document, etag=document["version"], source="t")
    assert snapshot.levels() == {"00123": 0, "A-1": 5, "B-2": 10}


def test_if_none_match_with_the_current_tag_is_304_until_the_levels_change(api):
    etag, _ = api.levels()
    again = api.get("/v1/stock", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    assert api.order({"A-1": 1}).status_code == 201
    changed = api.get("/v1/stock", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_same_version_reads_as_the_same_bytes(api):
    assert api.get("/v1/stock").content == api.get("/v1/stock").content


def test_a_version_is_made_once_and_then_served_from_the_document_cache(
        make_api, stock_service, monkeypatch):
    items = [StockItem(f"SKU-{n:04d}", f"Product {n}", "", n) for n in range(300)]
    api = make_api(items)
    made = []
    real = stock_service.store.stock_document
    monkeypatch.setattr(stock_service.store, "stock_document",
                        lambda shop: made.append(shop) or real(shop))
    first = api.get("/v1/stock", headers={"Accept-Encoding": "gzip"})
    plain = api.get("/v1/stock", headers={"Accept-Encoding": "identity"})
    again = api.get("/v1/stock", headers={"Accept-Encoding": "gzip"})
    assert made == [api.shop]  # three reads of one version, one document made
    assert first.content == plain.content == again.content
    assert first.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert first.headers["ETag"] == plain.headers["ETag"] == again.headers["ETag"]
    assert api.order({"SKU-0005": 2}).status_code == 201
    after = api.get("/v1/stock")
    assert made == [api.shop, api.shop]
    assert after.headers["ETag"] != first.headers["ETag"]
    assert {i["sku"]: i["qty"] for i in after.json()["items"]}["SKU-0005"] == 3


def test_a_renamed_product_is_never_served_from_an_older_cached_document(api, stock_service):
    assert api.get("/v1/stock").json()["items"][1]["name"] == "Hoodie"
    storefront_before = api.get("/v1/storefront").headers["ETag"]
    stock_service.store.add_shop(api.shop, [StockItem("A-1", "Zip hoodie", "Red / XL", 5)])
    document = api.get("/v1/stock").json()
    assert [i["name"] for i in document["items"] if i["sku"] == "A-1"] == ["Zip hoodie"]
    assert api.get("/v1/storefront").headers["ETag"] != storefront_before


def test_the_document_cache_keeps_at_most_its_entries_and_bytes():
    from xlstock.server.app import DocumentCache, _Cached

    cache = DocumentCache(entries=2, max_bytes=100)
    cache.put("stock", "https://a.example", _Cached("1.a", b"x" * 10))
    cache.put("stock", "https://b.example", _Cached("1.b", b"x" * 10))
    assert cache.get("stock", "https://a.example", "1.a") is not None  # a is now the newest
    cache.put("stock", "https://c.example", _Cached("1.c", b"x" * 10))
    assert cache.get("stock", "https://b.example", "1.b") is None  # least recently used
    assert cache.get("stock", "https://a.example", "1.a") is not None
    assert cache.get("stock", "https://a.example", "2.a") is None  # another version
    assert cache.get("storefront", "https://a.example", "1.a") is None  # another kind
    cache.put("stock", "https://d.example", _Cached("1.d", b"x" * 45))  # 90 of 100 bytes
    assert cache.get("stock", "https://a.example", "1.a") is None
    assert cache.get("stock", "https://c.example", "1.c") is None
    cache.put("stock", "https://e.example", _Cached("1.e", b"x" * 60))  # over the cap: not kept
    assert cache.get("stock", "https://e.example", "1.e") is None
    assert cache.get("stock", "https://d.example", "1.d") is not None


def test_large_answers_are_gzipped_when_accepted_small_ones_are_not(make_api):
    items = [StockItem(f"SKU-{n:04d}", f"Product {n}", "", n) for n in range(300)]
    big = make_api(items)
    zipped = big.get("/v1/stock", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert zipped.headers["Content-Encoding"] == "gzip"
    raw = zipped.raw.read(decode_content=False)
    assert len(raw) < len(gzip.decompress(raw))
    assert len(json.loads(gzip.decompress(raw))["items"]) == 300
    plain = big.get("/v1/stock", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    small = make_api([StockItem("A", qty=1)])
    assert "Content-Encoding" not in small.get(
        "/v1/stock", headers={"Accept-Encoding": "gzip"}).headers


# --- publishing --------------------------------------------------------------------------


def test_publish_sets_listed_levels_and_keeps_the_others(api):
    key = new_key()
    answer = api.publish(api.stock_file({"A-1": 7, "B-2": 10}), key=key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["key"] == key
    assert body["changes"] == [{"sku": "A-1", "before": 5, "after": 7}]
    new_etag, levels = api.levels()
    assert new_etag == answer.headers["ETag"] == f'"{body["version"]}"'
    assert levels == {"A-1": 7, "B-2": 10, "00123": 0}


def test_publish_ignores_names_on_items(api):
    body = json.dumps({"format": "xlstock.stock", "format_version": 2, "shop": api.shop,
                       "items": [{"sku": "A-1", "from": 5, "qty": 1, "name": "Renamed",
                                  "variant": "x"}]})
    assert api.publish(body.encode(), key=new_key()).status_code == 200
    item = next(i for i in api.get("/v1/stock").json()["items"] if i["sku"] == "A-1")
    assert item == {"sku": "A-1", "name": "Hoodie", "variant": "Red / XL", "qty": 1}


def test_publish_that_changes_nothing_succeeds_and_keeps_the_version(api):
    etag, levels = api.levels()
    answer = api.publish(api.stock_file(levels), key=new_key())
    assert answer.status_code == 200
    assert answer.json()["changes"] == []
    assert answer.headers["ETag"] == etag
    assert api.levels()[0] == etag


def test_a_sale_of_another_sku_never_makes_a_publish_stale(api):
    _, planned = api.levels()
    etag_before_sale = api.levels()[0]
    assert api.order({"B-2": 3}).status_code == 201
    answer = api.publish(api.stock_file({"A-1": 9}, planned), key=new_key())
    assert answer.status_code == 200, answer.text
    assert api.levels()[1] == {"A-1": 9, "B-2": 7, "00123": 0}
    assert answer.headers["ETag"] != etag_before_sale


def test_a_moved_item_is_412_naming_it_with_its_level_and_changes_nothing(api):
    _, planned = api.levels()
    assert api.order({"A-1": 2}).status_code == 201
    current, before = api.levels()
    answer = api.publish(api.stock_file({"A-1": 50, "B-2": 50}, planned), key=new_key())
    assert answer.status_code == 412
    error = error_of(answer)
    assert error["code"] == "levels_moved"
    assert error["items"] == [{"sku": "A-1", "problem": "planned from 5, now 3",
                               "planned_from": 5, "current": 3}]
    assert "A-1: planned from 5, now 3" in error["message"]
    assert answer.headers["ETag"] == current
    assert api.levels() == (current, before)


def test_a_delivery_is_added_to_the_level_there_is_whatever_sold_since(api):
    """Protocol 3: a delivery ('add') never conflicts: it lands on the level the SKU has
    when the publish arrives, beside a count that is still checked, all in one version."""
    _, planned = api.levels()  # A-1 5, B-2 10
    assert api.order({"A-1": 2}).status_code == 201
    body = stockfile.dumps(api.shop, {"A-1": 9, "B-2": 3}, planned, {"A-1": 4})
    answer = api.publish(body, key=new_key())
    assert answer.status_code == 200, answer.text
    assert answer.json()["changes"] == [{"sku": "A-1", "before": 3, "after": 7},
                                        {"sku": "B-2", "before": 10, "after": 3}]
    assert api.levels()[1]["A-1"] == 7


def test_a_removal_of_more_units_than_are_left_is_412_and_changes_nothing(api):
    _, planned = api.levels()  # A-1 5
    assert api.order({"A-1": 4}).status_code == 201
    current, before = api.levels()
    body = stockfile.dumps(api.shop, {"A-1": 2, "B-2": 0}, planned, {"A-1": -3})
    answer = api.publish(body, key=new_key())
    assert answer.status_code == 412
    assert error_of(answer)["items"] == [{
        "sku": "A-1", "problem": "adding -3 to 1 would leave -2, out of range",
        "planned_from": 5, "current": 1}]
    assert api.levels() == (current, before)


@pytest.mark.parametrize("item, problem", [
    ({"sku": "A-1", "from": 5, "qty": 9, "add": 3}, "add 3 from 5 gives 8, not qty 9"),
    ({"sku": "A-1", "from": 5, "qty": 9, "add": "4"}, "is not a whole number"),
])
def test_a_delivery_that_does_not_add_up_is_422(api, item, problem):
    document = {"format": "xlstock.stock", "format_version": 3, "shop": api.shop,
                "items": [item]}
    answer = api.publish(json.dumps(document).encode(), key=new_key())
    assert answer.status_code == 422 and problem in answer.text


def test_a_version_2_stock_file_cannot_carry_a_delivery(api):
    document = {"format": "xlstock.stock", "format_version": 2, "shop": api.shop,
                "items": [{"sku": "A-1", "from": 5, "qty": 9, "add": 4}]}
    answer = api.publish(json.dumps(document).encode(), key=new_key())
    assert answer.status_code == 422 and "send version 3" in answer.text


def test_if_match_is_optional_and_honoured_when_sent(api):
    etag, _ = api.levels()
    assert api.order({"B-2": 1}).status_code == 201
    stale = api.publish(api.stock_file({"A-1": 1}), etag=etag, key=new_key())
    assert stale.status_code == 412
    assert error_of(stale)["code"] == "stale_version"
    current, _ = api.levels()
    weak = api.publish(api.stock_file({"A-1": 1}), etag="W/" + current, key=new_key())
    assert weak.status_code == 412
    empty = api.publish(api.stock_file({"A-1": 1}), etag='""', key=new_key())
    assert empty.status_code == 412 and error_of(empty)["code"] == "stale_version"
    assert api.levels()[1]["A-1"] == 5
    assert api.publish(api.stock_file({"A-1": 1}), etag="*", key=new_key()).status_code == 200
    now, _ = api.levels()
    assert api.publish(api.stock_file({"A-1": 2}), etag=now, key=new_key()).status_code == 200


@pytest.mark.parametrize("key", [None, "", "x" * 201, "caf\u00e9", "tab\there"])
def test_publish_without_a_valid_idempotency_key_is_400(api, key):
    headers = {"Idempotency-Key": key.encode("utf-8").decode("latin-1")} if key else {}
    answer = api.publish(api.stock_file({"A-1": 1}), key=None, headers=headers)
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "idempotency_key_required"


def test_replayed_publish_returns_the_first_answer_and_applies_once(api):
    body = api.stock_file({"B-2": 4})
    key = new_key()
    first = api.publish(body, key=key)
    assert api.order({"B-2": 1}).status_code == 201
    second = api.publish(body, key=key)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert api.levels()[1]["B-2"] == 3
    sources = [v["source"] for v in api.history()]
    assert sources == ["order", "publish", "catalogue"]


def test_replay_of_a_gzipped_body_matches_the_plain_one(api):
    body = api.stock_file({"B-2": 4})
    key = new_key()
    assert api.publish(body, key=key).status_code == 200
    again = api.publish(gzip.compress(body), key=key, headers={"Content-Encoding": "gzip"})
    assert again.headers["Idempotent-Replayed"] == "true"


def test_replay_holds_for_a_first_answer_that_was_412_or_422(api):
    stale_key, bad_key = new_key(), new_key()
    _, planned = api.levels()
    api.order({"A-1": 1})
    body = api.stock_file({"A-1": 9}, planned)
    first = api.publish(body, key=stale_key)
    assert first.status_code == 412
    api.order({"A-1": 1})
    replay = api.publish(body, key=stale_key)
    assert replay.status_code == 412
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    bad = api.stock_file({"NOPE": 1})
    assert api.publish(bad, key=bad_key).status_code == 422
    assert api.publish(bad, key=bad_key).headers["Idempotent-Replayed"] == "true"
    assert api.levels()[1]["A-1"] == 3


def test_same_key_with_another_body_is_422_key_reused(api):
    key = new_key()
    assert api.publish(api.stock_file({"A-1": 1}), key=key).ok
    answer = api.publish(api.stock_file({"A-1": 2}), key=key)
    assert answer.status_code == 422
    assert error_of(answer)["code"] == "idempotency_key_reused"
    assert api.levels()[1]["A-1"] == 1


def test_publish_outcome_can_be_asked_for_later(api):
    _, planned = api.levels()
    key = "publish/2026-11-27 #1"
    answer = api.publish(api.stock_file({"A-1": 3}, planned), key=key)
    outcome = api.get("/v1/publishes/" + requests.utils.quote(key, safe=""))
    assert outcome.status_code == 200, outcome.text
    record = outcome.json()
    assert record["key"] == key
    assert record["status"] == 200
    assert record["applied"] is True
    assert record["response"] == answer.json()
    assert record["received_at"].endswith("Z")
    stale_key = new_key()
    api.publish(api.stock_file({"A-1": 4}, planned), key=stale_key)
    stale = api.get(f"/v1/publishes/{stale_key}").json()
    assert (stale["status"], stale["applied"]) == (412, False)
    assert stale["response"]["error"]["code"] == "levels_moved"


def test_a_key_with_slashes_is_asked_for_without_a_redirect(api):
    key = "/publish//2026/11/27"
    answer = api.publish(api.stock_file({"A-1": 3}), key=key)
    outcome = api.get("/v1/publishes/" + requests.utils.quote(key, safe=""),
                      allow_redirects=False)
    assert outcome.status_code == 200, outcome.text
    assert outcome.json()["response"] == answer.json()


def test_publish_outcome_of_an_unknown_key_is_404(api, shop_factory):
    key = new_key()
    api.publish(api.stock_file({"A-1": 3}), key=key)
    missing = api.get(f"/v1/publishes/{new_key()}")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    other_url, other_token = shop_factory()
    other = Api(api.base_url, other_url, other_token)
    assert other.get(f"/v1/publishes/{key}").status_code == 404
    nul = api.get("/v1/publishes/k%00y")  # PostgreSQL's text cannot hold NUL: still a 404
    assert nul.status_code == 404 and error_of(nul)["code"] == "not_found"


def test_invalid_stock_file_is_422_listing_every_bad_item_and_applies_nothing(api):
    etag, before = api.levels()
    document = {
        "format": "xlstock.stock", "format_version": 2, "shop": api.shop,
        "items": [
            {"sku": "A-1", "from": 5, "qty": 8},
            {"sku": "UNKNOWN", "from": 0, "qty": 1},
            {"sku": "B-2", "from": 10, "qty": -1},
            {"sku": "00123", "from": 0, "qty": 1.5},
            {"sku": "A-1", "from": 5, "qty": 2},
            {"sku": "", "from": 0, "qty": 1},
            {"sku": "bad\nsku", "from": 0, "qty": 1},
            {"sku": "B-2", "from": 10, "qty": True},
            {"from": 0, "qty": 3},
            "not an object",
            {"sku": "C-3", "qty": 3},
        ],
    }
    answer = api.publish(json.dumps(document).encode(), key=new_key())
    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "invalid_document"
    problems = [(item["sku"], item["problem"]) for item in error["items"]]
    skus = [sku for sku, _ in problems]
    assert "B-2" in skus and "00123" in skus and "A-1" in skus
    assert any("below 0" in p for s, p in problems if s == "B-2")
    assert any("not a whole number" in p for s, p in problems if s == "00123")
    assert any("more than once" in p for s, p in problems if s == "A-1")
    assert any("true is not a whole number" in p for s, p in problems if s == "B-2")
    assert any("item 6" in p and "empty" in p for s, p in problems)
    assert any("item 7" in p and "control" in p for s, p in problems)
    assert any("item 9" in p for s, p in problems)
    assert any("item 10" in p for s, p in problems)
    assert any("from is missing" in p for s, p in problems if s == "C-3")
    assert api.levels() == (etag, before)
    unknown = api.publish(api.stock_file({"UNKNOWN": 1, "A-1": 2}), key=new_key())
    assert unknown.status_code == 422
    assert [i["sku"] for i in error_of(unknown)["items"]] == ["UNKNOWN"]
    assert api.levels() == (etag, before)


def test_level_over_the_limit_is_422(api):
    answer = api.publish(api.stock_file({"A-1": MAX_LEVEL + 1}), key=new_key())
    assert answer.status_code == 422
    assert error_of(answer)["items"][0]["sku"] == "A-1"


@pytest.mark.parametrize("change, fragment", [
    ({"format": "other.thing"}, "format is"),
    ({"format_version": 4}, "format_version is 4; this service reads versions 2 and 3"),
    ({"shop": "https://elsewhere.example"}, "does not match"),
    ({"items": {"A-1": 1}}, "items"),
])
def test_wrong_document_header_is_422(api, change, fragment):
    document = {"format": "xlstock.stock", "format_version": 2, "shop": api.shop,
                "items": [{"sku": "A-1", "from": 5, "qty": 1}], **change}
    answer = api.publish(json.dumps(document).encode(), key=new_key())
    assert answer.status_code == 422
    assert fragment in error_of(answer)["message"]


def test_an_old_client_is_told_to_upgrade(api):
    """What xlstock 0.1 (protocol 1) sends: the whole-shop If-Match and items without
    'from'. It is refused with the fix, and nothing is applied."""
    etag, before = api.levels()
    body = (json.dumps({"format": "xlstock.stock", "format_version": 1, "items": [
        {"qty": 7, "sku": "A-1"}], "shop": api.shop}, sort_keys=True,
        separators=(",", ":")) + "\n").encode()
    answer = api.publish(body, etag=etag, key=new_key())
    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "unsupported_format_version"
    assert "upgrade xlstock (pip install --upgrade xlstock)" in error["message"]
    assert api.levels() == (etag, before)
    # ... and its Sync says the same: the stock document is version 3
    assert api.get("/v1/stock").json()["format_version"] == 3


def test_body_that_is_not_json_is_422(api):
    answer = api.publish(b"{not json", key=new_key())
    assert answer.status_code == 422
    assert "not JSON" in error_of(answer)["message"]


def test_publish_body_must_be_json_media_type(api):
    answer = api.publish(api.stock_file({"A-1": 1}), key=new_key(),
                         headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert error_of(answer)["code"] == "unsupported_media_type"
    brotli = api.publish(api.stock_file({"A-1": 1}), key=new_key(),
                         headers={"Content-Encoding": "br"})
    assert brotli.status_code == 415


def test_gzip_request_body_is_accepted(api):
    answer = api.publish(gzip.compress(api.stock_file({"A-1": 2})),
                         key=new_key(), headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    assert api.levels()[1]["A-1"] == 2


def test_corrupt_gzip_body_is_400(api):
    data = gzip.compress(api.stock_file({"A-1": 2}))
    answer = api.publish(data[: len(data) // 2], key=new_key(),
                         headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert api.levels()[1]["A-1"] == 5


def test_body_over_the_cap_is_413(api):
    """The cap holds a publish of every SKU a whole Excel sheet holds, and no more."""
    assert DEFAULT_MAX_BODY == 256 * 1024 * 1024 >= MAX_SKUS * 256
    answer = api.publish(b" " * (DEFAULT_MAX_BODY + 1), key=new_key())
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "payload_too_large"


def test_gzip_body_inflating_past_the_cap_is_413(api):
    squeezer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    spaces = b" " * (1 << 20)
    bomb = b"".join(squeezer.compress(spaces) for _ in range((DEFAULT_MAX_BODY >> 20) + 1))
    bomb += squeezer.flush()
    assert len(bomb) < 1_000_000
    answer = api.publish(bomb, key=new_key(), headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "payload_too_large"


# --- orders ------------------------------------------------------------------------------


def test_order_decrements_every_line_and_makes_a_new_version(api):
    etag, planned = api.levels()
    answer = api.order({"A-1": 2, "B-2": 3}, reference="web-1001")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert isinstance(body["order"], int)
    assert body["lines"] == [{"sku": "A-1", "qty": 2, "level": 3},
                             {"sku": "B-2", "qty": 3, "level": 7}]
    assert answer.headers["ETag"] == f'"{body["version"]}"' != etag
    assert api.levels()[1] == {"A-1": 3, "B-2": 7, "00123": 0}
    stale = api.publish(api.stock_file({"A-1": 9}, planned), key=new_key())
    assert stale.status_code == 412


def test_order_short_of_stock_is_409_and_decrements_nothing(api):
    etag, before = api.levels()
    answer = api.order({"B-2": 1, "A-1": 6})
    assert answer.status_code == 409
    error = error_of(answer)
    assert error["code"] == "insufficient_stock"
    assert error["items"] == [{"sku": "A-1", "problem": "ordered 6, 5 in stock",
                               "requested": 6, "available": 5}]
    assert api.levels() == (etag, before)


def test_bad_order_is_422_listing_every_line(api):
    answer = api.order({"A-1": 0, "NOPE": 1, "B-2": 2})
    assert answer.status_code == 422
    skus = sorted(item["sku"] for item in error_of(answer)["items"])
    assert skus == ["A-1", "NOPE"]
    assert api.levels()[1]["B-2"] == 10
    empty = api.request("POST", "/v1/orders", json={"lines": []})
    assert empty.status_code == 422


def test_a_publish_and_an_order_refuse_a_bad_document_alike_saying_what_was_not_done(api):
    """The one validation of a write (storage._checked_levels): not JSON, then SKUs
    the shop lacks, each a 422 naming the problem and what was not done."""
    etag, before = api.levels()
    headers = {"Content-Type": "application/json"}
    for method, path, done in (("PUT", "/v1/stock", "nothing was applied"),
                               ("POST", "/v1/orders", "nothing was taken")):
        answer = api.request(method, path, data=b"{not json", headers={
            **headers, "Idempotency-Key": new_key()})
        assert answer.status_code == 422, answer.text
        error = error_of(answer)
        assert error["code"] == "invalid_document" and error["message"].endswith(done)
    unknown_order = error_of(api.order({"NOPE": 1}))
    assert unknown_order["items"] == [{"sku": "NOPE", "problem": "unknown to the shop"}]
    published = api.publish(api.stock_file({"NOPE": 1}), key=new_key())
    assert error_of(published)["items"][0]["problem"] == (
        "unknown to the shop; add the product in the shop first")
    assert api.levels() == (etag, before)


def test_a_refusal_lists_five_problems_then_an_ellipsis(api):
    etag, planned = api.levels()
    assert api.order({"A-1": 1}).status_code == 201
    moved = error_of(api.publish(api.stock_file({"A-1": 9}, planned), key=new_key()))
    assert moved["code"] == "levels_moved" and "; re-plan" in moved["message"]
    assert " ..." not in moved["message"]
    short = error_of(api.order({"A-1": 50, "B-2": 50, "00123": 50}))
    assert short["message"].endswith("00123: ordered 50, 0 in stock")
    six = [{"sku": f"S-{n}", "problem": "short"} for n in range(6)]
    assert _first_problems(six) == "; ".join(f"S-{n}: short" for n in range(5)) + " ..."
    assert _first_problems(six[:5]) == "; ".join(f"S-{n}: short" for n in range(5))


def test_order_with_an_idempotency_key_is_taken_once(api):
    key = new_key()
    first = api.order({"A-1": 1}, key=key)
    second = api.order({"A-1": 1}, key=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert api.levels()[1]["A-1"] == 4
    assert api.order({"A-1": 2}, key=key).status_code == 422


# --- storefront and history -----------------------------------------------------------------


def test_storefront_needs_no_token_and_shows_only_sku_and_level(stock_service, api):
    answer = requests.get(stock_service.url + "/v1/storefront", params={"shop": api.shop},
                          timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["shop"] == api.shop
    assert body["items"] == [{"sku": "00123", "qty": 0}, {"sku": "A-1", "qty": 5},
                             {"sku": "B-2", "qty": 10}]
    assert answer.headers["ETag"] == f'"{body["version"]}"'
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    again = requests.get(stock_service.url + "/v1/storefront", params={"shop": api.shop},
                         headers={"If-None-Match": answer.headers["ETag"]}, timeout=10)
    assert again.status_code == 304
    api.order({"A-1": 5})
    after = requests.get(stock_service.url + "/v1/storefront", params={"shop": api.shop},
                         timeout=10).json()
    assert after["items"][1] == {"sku": "A-1", "qty": 0}


def test_storefront_of_an_unknown_shop_is_404(stock_service):
    answer = requests.get(stock_service.url + "/v1/storefront",
                          params={"shop": "https://nobody.example"}, timeout=10)
    assert answer.status_code == 404
    assert error_of(answer)["code"] == "not_found"


def test_history_lists_versions_newest_first_with_their_changes(api):
    key = new_key()
    api.publish(api.stock_file({"A-1": 8}), key=key)
    order = api.order({"B-2": 4}, reference="web-7").json()
    versions = api.history()
    assert [v["source"] for v in versions] == ["order", "publish", "catalogue"]
    assert [v["number"] for v in versions] == [3, 2, 1]
    assert versions[0]["version"] == order["version"]
    assert versions[0]["reference"] == "web-7"
    assert versions[0]["changes"] == [{"sku": "B-2", "before": 10, "after": 6}]
    assert versions[1]["reference"] == key
    assert versions[1]["changes"] == [{"sku": "A-1", "before": 5, "after": 8}]
    assert {"sku": "A-1", "before": None, "after": 5} in versions[2]["changes"]
    assert all(v["at"].endswith("Z") for v in versions)
    assert [v["number"] for v in api.history(limit=1)] == [3]
    assert [v["number"] for v in api.history(before=3, limit=1)] == [2]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"limit": "ten"},
                                    {"before": "-1"}])
def test_history_rejects_bad_parameters(api, params):
    answer = api.get("/v1/history", params=params)
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "bad_request"


def test_text_from_the_shop_comes_back_as_json_never_markup(make_api):
    hostile = make_api([StockItem("<b>X</b>", '<script>alert("x")</script>', "a&b", 1)])
    answer = hostile.get("/v1/stock")
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.json()["items"][0]["name"] == '<script>alert("x")</script>'


def test_a_gzip_bomb_is_refused_without_being_inflated_whole():
    import tracemalloc
    import zlib

    from xlstock.server.app import ApiError, inflate

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1024 * 1024)
    bomb = b"".join(packer.compress(block) for _ in range(256)) + packer.flush()
    assert len(bomb) < 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(ApiError) as refused:
            inflate(bomb, 4 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413
    assert peak < 32 * 1024 * 1024
    assert inflate(gzip.compress(b"{}"), 10) == b"{}"
