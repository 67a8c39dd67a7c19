"""Low stock by e-mail (issue 24), its storage: the thresholds a workbook publishes,
the crossings an order or a publish causes, and the queue of digests they wait in.

A crossing is a level going from above its threshold to at or below it: a second sale
under the threshold is none, and a restock above it re-arms the next. No state is kept
per product for that: the level before and after each change says it. A crossing is
recorded in the transaction of the order or publish that caused it (so that none is
lost, and none is recorded for a write that was rolled back), and only for a shop an
account holds with its low-stock e-mails on (a shop from ``xlstock shop add`` that no
account claimed sends nothing).

The sender (:mod:`xlstock.server.mail`) drains the queue shop by shop: it claims a shop's
next digest (:func:`claim_digest`, one short write that two service processes on one
PostgreSQL cannot both win), reads it, sends it outside any transaction, and marks its
crossings sent (:func:`finish_digest`) or hands the claim back with a time to retry
(:func:`release_digest`). A claim that is never finished (the process died) lapses after
its lease, and the digest is sent again: a crossing is mailed at most once unless the
process dies between the SMTP server's acceptance and the mark.

Every function takes a connection of a transaction the caller opened; times are the
stored ``2026-11-27T10:00:00Z`` texts, which compare in time order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xlstock.server.database import in_lists

MAX_LISTED = 500
"""A digest lists at most this many SKUs (it says how many more there are)."""


def save_thresholds(conn: Any, shop_id: int, thresholds: Mapping[str, int | None]) -> int:
    """Store the published thresholds of the SKUs the shop has (the others are skipped:
    a workbook may list a product the shop no longer sells); returns how many changed."""
    skus = sorted(thresholds)
    current: dict[str, int | None] = {}
    for chunk in in_lists(skus):
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT sku, low_stock_at FROM products WHERE shop_id = ? AND sku IN ({marks})",
            (shop_id, *chunk),
        ):
            current[row["sku"]] = row["low_stock_at"]
    updates = [(thresholds[sku], shop_id, sku) for sku in skus
               if sku in current and current[sku] != thresholds[sku]]
    conn.executemany("UPDATE products SET low_stock_at = ? WHERE shop_id = ? AND sku = ?",
                     updates)
    return len(updates)


def record_crossings(
    conn: Any, shop_id: int, now: str, changes: Sequence[tuple[str, int | None, int]],
) -> int:
    """Queue a crossing for each ``(sku, before, after)`` that takes a level from above
    its threshold to at or below it, when the shop's account gets low-stock e-mails;
    returns how many were queued."""
    dropped = [(sku, before, after) for sku, before, after in changes
               if before is not None and after < before]
    if not dropped:
        return 0
    shop = conn.execute("SELECT account_id, low_stock_at, low_stock_mail FROM shops "
                        "WHERE id = ?", (shop_id,)).fetchone()
    if shop is None or shop["account_id"] is None or not shop["low_stock_mail"]:
        return 0
    own: dict[str, int | None] = {}
    for chunk in in_lists(sorted(sku for sku, _, _ in dropped)):
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT sku, low_stock_at FROM products WHERE shop_id = ? AND sku IN ({marks})",
            (shop_id, *chunk),
        ):
            own[row["sku"]] = row["low_stock_at"]
    crossings = []
    for sku, before, after in dropped:
        threshold = own.get(sku)
        if threshold is None:
            threshold = shop["low_stock_at"]
        if before is not None and before > threshold >= after:
            crossings.append((shop_id, sku, after, threshold, now))
    conn.executemany(
        "INSERT INTO low_stock_crossings (shop_id, sku, level, threshold, at) "
        "VALUES (?, ?, ?, ?, ?)", crossings)
    return len(crossings)


# -- the sender's side ---------------------------------------------------------------


@dataclass(frozen=True)
class LowItem:
    """One SKU of a digest: its level and threshold at its latest crossing."""

    sku: str
    name: str
    variant: str
    level: int
    threshold: int


@dataclass(frozen=True)
class Digest:
    """A shop's crossings waiting to be mailed, up to crossing id ``last_id``; ``email``
    is ``None`` when nobody is to get them (the shop left its account, or its e-mails
    were switched off since), and ``more`` counts the SKUs not listed."""

    shop_id: int
    shop_url: str
    email: str | None
    language: str
    items: list[LowItem]
    more: int
    last_id: int


def shops_waiting(conn: Any, now: str, sent_before: str) -> list[int]:
    """The shops with crossings not yet mailed whose next digest is due (see
    :func:`claim_digest`)."""
    return [row["shop_id"] for row in conn.execute(
        "SELECT DISTINCT c.shop_id FROM low_stock_crossings c "
        "LEFT JOIN low_stock_digests d ON d.shop_id = c.shop_id "
        "WHERE c.sent_at IS NULL AND (d.shop_id IS NULL OR ("
        "(d.claimed_until IS NULL OR d.claimed_until < ?) "
        "AND (d.last_sent_at IS NULL OR d.last_sent_at <= ?) "
        "AND (d.retry_at IS NULL OR d.retry_at <= ?))) ORDER BY c.shop_id",
        (now, sent_before, now))]


def claim_digest(conn: Any, shop_id: int, sender: str, now: str, lease_until: str,
                 sent_before: str) -> bool:
    """Claim the shop's next digest for ``sender`` until ``lease_until``: only when no
    live claim holds it, its last digest went out at or before ``sent_before``, and the
    time to retry a failed one has come."""
    conn.execute("INSERT INTO low_stock_digests (shop_id) VALUES (?) "
                 "ON CONFLICT (shop_id) DO NOTHING", (shop_id,))
    return int(conn.execute(
        "UPDATE low_stock_digests SET claimed_by = ?, claimed_until = ? WHERE shop_id = ? "
        "AND (claimed_until IS NULL OR claimed_until < ?) "
        "AND (last_sent_at IS NULL OR last_sent_at <= ?) "
        "AND (retry_at IS NULL OR retry_at <= ?)",
        (sender, lease_until, shop_id, now, sent_before, now),
    ).rowcount) == 1


def read_digest(conn: Any, shop_id: int) -> Digest | None:
    """What the shop's next digest says, or ``None`` when nothing waits."""
    rows = conn.execute(
        "SELECT c.id, c.sku, c.level, c.threshold, p.name, p.variant "
        "FROM low_stock_crossings c LEFT JOIN products p "
        "ON p.shop_id = c.shop_id AND p.sku = c.sku "
        "WHERE c.shop_id = ? AND c.sent_at IS NULL ORDER BY c.id", (shop_id,)).fetchall()
    if not rows:
        return None
    latest: dict[str, LowItem] = {}
    for row in rows:
        latest.pop(row["sku"], None)
        latest[row["sku"]] = LowItem(row["sku"], row["name"] or "", row["variant"] or "",
                                     row["level"], row["threshold"])
    shop = conn.execute(
        "SELECT s.url, s.low_stock_mail, a.email, a.language FROM shops s "
        "LEFT JOIN accounts a ON a.id = s.account_id WHERE s.id = ?", (shop_id,)).fetchone()
    email = shop["email"] if shop["low_stock_mail"] else None
    items = sorted(latest.values(), key=lambda item: item.sku)
    return Digest(shop_id, shop["url"], email, shop["language"] or "en",
                  items[:MAX_LISTED], max(0, len(items) - MAX_LISTED),
                  max(row["id"] for row in rows))


def finish_digest(conn: Any, digest: Digest, sender: str, now: str) -> bool:
    """Mark the digest's crossings sent and the shop's digest gone out at ``now``, if
    ``sender`` still holds the claim; returns whether it did."""
    held = conn.execute(
        "UPDATE low_stock_digests SET last_sent_at = ?, claimed_by = NULL, "
        "claimed_until = NULL, failures = 0, retry_at = NULL "
        "WHERE shop_id = ? AND claimed_by = ?", (now, digest.shop_id, sender)).rowcount
    conn.execute("UPDATE low_stock_crossings SET sent_at = ? WHERE shop_id = ? AND id <= ? "
                 "AND sent_at IS NULL", (now, digest.shop_id, digest.last_id))
    return bool(held)


def release_digest(conn: Any, shop_id: int, sender: str, retry_at: str) -> int:
    """Hand back a claim whose digest could not be sent, to be tried again at
    ``retry_at``; returns how many times in a row it failed."""
    conn.execute(
        "UPDATE low_stock_digests SET claimed_by = NULL, claimed_until = NULL, "
        "failures = failures + 1, retry_at = ? WHERE shop_id = ? AND claimed_by = ?",
        (retry_at, shop_id, sender))
    row = conn.execute("SELECT failures FROM low_stock_digests WHERE shop_id = ?",
                       (shop_id,)).fetchone()
    return int(row["failures"]) if row else 0
