"""What the Shopify connector does with each kind of answer that is not a plain success,
against the stand-in of Shopify's Admin API over real HTTP: which it refuses at once,
which it sends again and how often, and when a publish's outcome is unknown."""

from __future__ import annotations

import pytest
from support.shopify_standin import ShopifyStandIn

from xlstock.errors import OutcomeUnknown, ServiceRefused
from xlstock.planner import PublishLine
from xlstock.shops.shopify import ShopifyConnector


def _no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def store():
    with ShopifyStandIn() as standin:
        standin.add_product("Hoodie", [{"sku": "A-1", "title": "Red / L", "qty": 10},
                                       {"sku": "A-2", "title": "Blue / M", "qty": 4}])
        yield standin


def _connector(store: ShopifyStandIn, **options) -> ShopifyConnector:
    return ShopifyConnector(store.url, token=store.token, sleep=_no_sleep, **options)


def _ready(store: ShopifyStandIn, **options) -> ShopifyConnector:
    """A connector that has read the variants and the location: its next request is the
    publish's first call."""
    connector = _connector(store, **options)
    connector.read_levels(names=False)
    connector.location()
    return connector


@pytest.mark.parametrize(("status", "words"), [
    (404, "answered 404: is"),
    (403, "lacks the scope"),
])
def test_an_answer_no_resend_can_mend_is_refused_at_once(store, status, words):
    connector = _connector(store)
    store.fail_next(status, times=3)
    with pytest.raises(ServiceRefused, match=words) as caught:
        connector.read_levels(names=False)
    assert caught.value.status == status
    assert connector.requests == 1  # not sent again


def test_429_on_every_try_is_refused_after_the_last(store):
    connector = _connector(store, attempts=3)
    store.fail_next(429, times=3)
    with pytest.raises(ServiceRefused, match="answered 429 3 times") as caught:
        connector.read_levels(names=False)
    assert not isinstance(caught.value, OutcomeUnknown)  # a read: nothing to be unsure of
    assert connector.requests == 3


def test_a_publish_call_answered_503_on_every_try_has_an_unknown_outcome(store):
    connector = _ready(store, attempts=3)
    before = connector.requests
    store.fail_next(503, times=3)
    with pytest.raises(OutcomeUnknown, match="run publish again"):
        connector.publish_lines([PublishLine("A-1", 10, 15, 5)], "key-503")
    assert connector.requests - before == 3
    assert store.level("A-1") == 10  # the stand-in executed none of them


def test_a_call_still_running_under_its_key_is_asked_again_then_left_unknown(store):
    """While one publish call is inside Shopify, the same call (same key) sent by a
    second run is answered IDEMPOTENCY_CONCURRENT_REQUEST: asked again on every try,
    then reported as an unknown outcome, never applied twice."""
    first, second = _ready(store), _ready(store, attempts=2)
    line = PublishLine("A-1", 10, 15, 5)
    caught: list[BaseException] = []

    def meanwhile(standin, name, data) -> None:
        if caught:
            return
        try:
            second.publish_lines([line], "same-key")
        except OutcomeUnknown as exc:
            caught.append(exc)

    store.before_mutation(meanwhile)
    outcome = first.publish_lines([line], "same-key")
    assert outcome.levels_after == {"A-1": 15}
    assert len(caught) == 1 and "still applying a publish call after 2 tries" in str(caught[0])
    assert store.level("A-1") == 15
    assert len([h for h in store.history("A-1") if h["kind"] == "adjust"]) == 1


def test_a_throttled_request_waits_for_the_bucket_and_is_sent_again():
    """A second client starts with a full bucket in mind while the first has emptied
    Shopify's: its first page is answered THROTTLED; it waits the points it lacks at the
    restore rate and the same request then succeeds."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with ShopifyStandIn(clock=lambda: now[0]) as store:
        store.add_product("Screws", [{"sku": f"S-{n:04d}", "title": f"S{n}", "qty": n % 9}
                                     for n in range(2000)])

        def paged() -> ShopifyConnector:
            return ShopifyConnector(store.url, token=store.token, sleep=sleep,
                                    clock=lambda: now[0], bulk_above=10**9)

        paged().read_levels(names=False)
        late = paged()
        snapshot = late.read_levels(names=False)
        assert [c for c in store.calls if c.throttled]
        assert late.waited > 0
        assert snapshot is not None and snapshot.items["S-1999"].qty == 1999 % 9
