"""``GET /v1/stock?since=<version>`` (issue 22, point 2): the levels changed since a
version, or the whole document when the service no longer has that history; on SQLite
and PostgreSQL."""

from __future__ import annotations

import pytest

from xlstock.model import StockItem
from xlstock.remote.client import HttpStockServiceClient


def _changes(api, since, **headers):
    return api.get("/v1/stock", params={"since": since.strip('"')}, headers=headers)


def test_since_a_version_the_service_answers_only_what_changed(api, stock_service):
    tag, levels = api.levels()
    assert api.order({"A-1": 2}).status_code == 201
    answer = _changes(api, tag)
    assert answer.status_code == 200
    document = answer.json()
    assert document["since"] == tag.strip('"')
    assert document["version"] == answer.headers["ETag"].strip('"') != tag.strip('"')
    assert [item["sku"] for item in document["items"]] == ["A-1"]
    assert document["items"][0]["qty"] == levels["A-1"] - 2
    assert document["removed"] == []
    assert document["format"] == "xlstock.stock" and "name" in document["items"][0]


def test_changes_name_additions_renames_and_removals(api, stock_service):
    tag, levels = api.levels()
    store = stock_service.store
    store.register_shop(api.shop, [StockItem("NEW-1", "Brand new", "", 4)],
                        another_token=False)
    renamed = next(iter(levels))
    store.register_shop(api.shop, [StockItem(renamed, "Renamed", "v2", None)],
                        another_token=False)
    gone = sorted(levels)[-1]
    assert store.remove_products(api.shop, [gone]) == [gone]
    document = _changes(api, tag).json()
    items = {item["sku"]: item for item in document["items"]}
    assert items["NEW-1"]["qty"] == 4
    assert (items[renamed]["name"], items[renamed]["qty"]) == ("Renamed", levels[renamed])
    assert document["removed"] == [gone]
    assert gone not in api.levels()[1]
    # listed again by a catalogue: back, and a change again
    tag2 = api.levels()[0]
    store.register_shop(api.shop, [StockItem(gone, "Back", "", 1)], another_token=False)
    document = _changes(api, tag2).json()
    assert [item["sku"] for item in document["items"]] == [gone] and not document["removed"]


def test_current_version_is_304_with_if_none_match_and_empty_changes_without(api):
    tag, _ = api.levels()
    assert _changes(api, tag, **{"If-None-Match": tag}).status_code == 304
    document = _changes(api, tag).json()
    assert document["items"] == [] and document["removed"] == []


@pytest.mark.parametrize("since", [
    "nonsense", "", "9999999.abc", "1.not-this-shop", "0", "-1.x", "1" * 40 + ".x",
    "١.x",  # a digit that is not ASCII
])
def test_a_version_without_history_gets_the_whole_document(api, since):
    tag, levels = api.levels()
    if since == "1.not-this-shop":
        since = "1." + "f" * 12
    answer = api.get("/v1/stock", params={"since": since})
    assert answer.status_code == 200
    document = answer.json()
    assert "since" not in document
    assert {item["sku"]: item["qty"] for item in document["items"]} == levels


def test_history_pruned_or_out_of_the_window_gets_the_whole_document(api, stock_service):
    tag, _ = api.levels()
    assert api.order({"A-1": 1}).status_code == 201
    store = stock_service.store
    store.changes_window = 0
    try:
        assert "since" not in _changes(api, tag).json()
    finally:
        store.changes_window = 100_000
    assert "since" in _changes(api, tag).json()
    number = int(api.levels()[0].strip('"').split(".")[0])
    with store.transaction(write=True) as conn:  # the newest version's history is lost
        shop_id = conn.execute("SELECT id FROM shops WHERE url = ?", (api.shop,)).fetchone()[0]
        conn.execute("DELETE FROM changes WHERE shop_id = ? AND number = ?", (shop_id, number))
        conn.execute("DELETE FROM versions WHERE shop_id = ? AND number = ?", (shop_id, number))
    document = _changes(api, tag).json()
    assert "since" not in document and document["items"]


def test_head_with_since_answers_the_tag_alone(api):
    tag, _ = api.levels()
    answer = api.request("HEAD", "/v1/stock", params={"since": tag.strip('"')})
    assert answer.status_code == 200 and answer.headers["ETag"] == tag and not answer.content


def test_client_reads_changes_and_says_so(api):
    tag, _ = api.levels()
    api.order({"B-2": 1})
    with HttpStockServiceClient(api.base_url, api.shop, api.token) as client:
        changes = client.read_levels(tag, since=tag)
        whole = client.read_levels()
    assert changes is not None and not changes.whole and changes.since == tag.strip('"')
    assert set(changes.items) == {"B-2"} and changes.removed == ()
    assert whole.whole and len(whole.items) > 1
    assert changes.version == whole.version


# --- the client, against a service that answers changes wrongly --------------------------


def _changes_reply(since, items=(), removed=()):
    from support.faultserver import Reply

    document = {"format": "xlstock.stock", "format_version": 3, "shop": "https://shop.example",
                "version": "9.x", "since": since,
                "items": [{"sku": s, "name": "", "variant": "", "qty": 1} for s in items],
                "removed": removed if isinstance(removed, str) else list(removed)}
    return Reply(200, json=document, headers={"ETag": '"9.x"'})


@pytest.mark.parametrize(("reply", "words"), [
    (lambda: _changes_reply("7.x"), "not since '5.x'"),
    (lambda: _changes_reply("5.x", items=["A"], removed=["A"]), "is also listed"),
    (lambda: _changes_reply("5.x", removed=["B", "B"]), "removed twice"),
    (lambda: _changes_reply("5.x", removed="B"), "not a list of SKUs"),
    (lambda: _changes_reply("5.x", removed=[" "]), "not a usable SKU"),
    (lambda: _changes_reply(5), "not a version tag"),
])
def test_changes_the_client_cannot_trust_are_refused(reply, words):
    from support.faultserver import FaultServer

    from xlstock.errors import ServiceError

    with FaultServer() as server:
        server.on("GET", "/v1/stock", reply())
        with HttpStockServiceClient(server.url, "https://shop.example", "tok-1") as client:
            with pytest.raises(ServiceError, match=words):
                client.read_levels('"5.x"', since='"5.x"')
            assert server.seen[-1].query["since"] == "5.x"


def test_a_weak_or_broken_tag_is_sent_as_since_or_not_at_all():
    from support.faultserver import FaultServer, Reply

    whole = {"format": "xlstock.stock", "format_version": 3, "shop": "https://shop.example",
             "version": "9.x", "items": []}
    with FaultServer() as server:
        server.on("GET", "/v1/stock", Reply(200, json=whole, headers={"ETag": '"9.x"'}),
                  Reply(200, json=whole, headers={"ETag": '"9.x"'}))
        with HttpStockServiceClient(server.url, "https://shop.example", "tok-1") as client:
            assert client.read_levels(None, since='W/"5.x"').whole
            assert client.read_levels(None, since='bad "tag').whole
        assert server.seen[0].query["since"] == "5.x"
        assert "since" not in server.seen[1].query


def test_history_lists_levels_only_not_renames_or_removals(api, stock_service):
    _, levels = api.levels()
    renamed, gone = sorted(levels)[:2]
    stock_service.store.register_shop(api.shop, [StockItem(renamed, "New name", "", None)],
                                      another_token=False)
    stock_service.store.remove_products(api.shop, [gone])
    versions = api.history(limit=2)
    assert [v["source"] for v in versions] == ["catalogue", "catalogue"]
    assert versions[0]["changes"] == [] and versions[1]["changes"] == []


def test_removing_unknown_or_removed_products_records_nothing(api, stock_service):
    store = stock_service.store
    tag, levels = api.levels()
    assert store.remove_products(api.shop, ["NOT-THERE"]) == []
    assert api.levels()[0] == tag  # no version for nothing
    gone = sorted(levels)[0]
    assert store.remove_products(api.shop, [gone, gone, "NOT-THERE"]) == [gone]
    tag2 = api.levels()[0]
    assert store.remove_products(api.shop, [gone]) == []
    assert api.levels()[0] == tag2
    document = _changes(api, tag).json()
    assert document["removed"] == [gone] and document["items"] == []
