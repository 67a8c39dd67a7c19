"""End to end: the CLI on real .xlsx files against the real stock service on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import openpyxl
import pytest
from click.testing import CliRunner
from support.shopkit import Shop

from xlstock.cli import main
from xlstock.model import StockItem


@pytest.fixture
def shop(stock_service, tmp_path):
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))
    return shop


def test_sync_fills_the_sheet_keeping_text_skus(shop):
    rows = shop.sheet()
    assert set(rows) == {"A-1", "B-2", "C-3", "00123"}
    assert rows["A-1"]["Online"] == 10
    assert rows["A-1"]["Variant"] == "Red / L"
    assert rows["00123"]["Product"] == "Socks"


def _settings(shop) -> dict:
    wb = openpyxl.load_workbook(shop.workbook)
    return {row[0].value: row[1].value for row in wb["Settings"].iter_rows()}


def test_a_sync_with_nothing_changed_online_writes_only_its_time(shop, monkeypatch):
    from xlstock.remote.client import HttpStockServiceClient

    sent = []
    real = HttpStockServiceClient.read_levels

    def recording(self, if_none_match=None, **kwargs):
        sent.append(if_none_match)
        return real(self, if_none_match, **kwargs)

    monkeypatch.setattr(HttpStockServiceClient, "read_levels", recording)
    shop.edit(**{"A-1": {"Received": 3}})
    before = shop.sheet()
    first_sync = _settings(shop)["Last sync"]
    result = shop.run("sync", str(shop.workbook))
    assert "Nothing changed in" in result.output
    assert sent and sent[-1] == '"' + _settings(shop)["Online version"] + '"'
    assert shop.sheet() == before  # Status, Online, the edit: all as they were
    assert _settings(shop)["Last sync"] >= first_sync
    log = list(openpyxl.load_workbook(shop.workbook)["Log"].iter_rows(values_only=True))
    assert log[-1][1] == "sync" and log[-1][3:5] == (0, 0)
    shop.sell(B_2=1)  # the shop moves on: the next Sync reads the levels again
    shop.run("sync", str(shop.workbook))
    assert shop.sheet()["B-2"]["Online"] == 4


def test_a_sheet_that_no_longer_shows_the_last_sync_is_synced_in_full(shop):
    wb = openpyxl.load_workbook(shop.workbook)
    ws = wb["Stock"]
    headers = {c.value: c.column for c in ws[1] if c.value}
    ws.cell(2, headers["Online"]).value = 999  # typed over
    wb.save(shop.workbook)
    result = shop.run("sync", str(shop.workbook))
    assert "Nothing changed" not in result.output
    assert 999 not in [row["Online"] for row in shop.sheet().values()]


# contract 2b, one row per case: (edit, sale between Sync and Publish, policy, expected)
CASES = [
    ({}, 0, "rebase", 10),
    ({}, 3, "rebase", 7),
    ({"Received": 4}, 0, "rebase", 14),
    ({"Received": 4}, 3, "rebase", 11),
    ({"New level": 6}, 0, "rebase", 6),
    ({"New level": 6}, 3, "rebase", 3),
    ({}, 3, "strict", 7),
    ({"Received": 4}, 3, "strict", 11),
    ({"New level": 6}, 0, "strict", 6),
]


@pytest.mark.parametrize(("edit", "sold", "policy", "expected"), CASES)
def test_contract_2b_rows(shop, edit, sold, policy, expected):
    shop.edit(**{"A-1": edit})
    if sold:
        shop.sell(A_1=sold)
    args = ["publish", str(shop.workbook)] + (["--strict"] if policy == "strict" else [])
    shop.run(*args)
    assert shop.live()["A-1"] == expected
    row = shop.sheet()["A-1"]
    assert row["Online"] == expected
    assert row["Received"] is None and row["New level"] is None


def test_strict_conflict_exits_3_and_sends_nothing(shop):
    shop.edit(**{"A-1": {"New level": 6}, "B-2": {"Received": 1}})
    shop.sell(A_1=2)
    versions = shop.history_count()
    result = shop.run("publish", str(shop.workbook), "--strict", expect=3)
    assert "A-1" in result.output
    assert shop.live() == {"A-1": 8, "B-2": 5, "C-3": 8, "00123": 3}
    assert shop.history_count() == versions
    rows = shop.sheet()
    assert rows["A-1"]["New level"] == 6 and rows["B-2"]["Received"] == 1
    assert "conflict" in rows["A-1"]["Status"]


def test_sheet_errors_exit_1_name_rows_and_send_nothing(shop):
    shop.edit(**{"A-1": {"Received": 2, "New level": 4}, "B-2": {"Received": -9}})
    before = shop.live()
    result = shop.run("publish", str(shop.workbook), expect=1)
    assert "row 3, SKU 'A-1'" in result.output and "row 4, SKU 'B-2'" in result.output
    assert shop.live() == before
    rows = shop.sheet()
    assert rows["A-1"]["Received"] == 2 and rows["A-1"]["New level"] == 4
    assert rows["B-2"]["Status"].startswith("error")


def test_second_publish_sends_nothing(shop):
    shop.edit(**{"C-3": {"Received": 2}})
    shop.run("publish", str(shop.workbook))
    versions = shop.history_count()
    result = shop.run("publish", str(shop.workbook))
    assert "Nothing to publish" in result.output
    assert shop.history_count() == versions


def test_preview_shows_the_plan_and_uploads_nothing(shop):
    shop.edit(**{"A-1": {"New level": 6}, "B-2": {"Received": 3}})
    shop.sell(A_1=1)
    versions = shop.history_count()
    result = shop.run("preview", str(shop.workbook))
    # counted 6 at Sync (10), 1 sold since: publish 6 + (9 - 10) = 5, a change of -4
    assert "A-1" in result.output and "-4" in result.output and "+3" in result.output
    assert shop.history_count() == versions
    rows = shop.sheet()
    assert rows["A-1"]["Change"] == -4 and rows["B-2"]["Change"] == 3


def test_offline_editing_then_publish_when_the_service_is_back(tmp_path, stock_service):
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"B-2": {"Received": 7}})
    shop.run("validate", str(shop.workbook))
    wb = openpyxl.load_workbook(shop.workbook)
    settings = wb["Settings"]
    for row in settings.iter_rows():
        if row[0].value == "Stock service":
            row[1].value = "http://127.0.0.1:9"  # nothing listens there
    wb.save(shop.workbook)
    result = shop.run("publish", str(shop.workbook), expect=4)
    assert "127.0.0.1:9" in result.output
    assert shop.sheet()["B-2"]["Received"] == 7
    wb = openpyxl.load_workbook(shop.workbook)
    for row in wb["Settings"].iter_rows():
        if row[0].value == "Stock service":
            row[1].value = stock_service.url
    wb.save(shop.workbook)
    shop.run("publish", str(shop.workbook))
    assert shop.live()["B-2"] == 12


def test_new_skus_are_appended_and_vanished_ones_flagged(stock_service, tmp_path):
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook))
    stock_service.store.add_shop(shop.url, [StockItem("D-4", "Scarf", "", 2)])
    wb = openpyxl.load_workbook(shop.workbook)
    ws = wb["Stock"]
    ws.append(["GONE-1", "Old thing", None, 1])
    wb.save(shop.workbook)
    shop.run("sync", str(shop.workbook))
    rows = shop.sheet()
    assert rows["D-4"]["Online"] == 2 and rows["D-4"]["Status"] == "new"
    assert "not in the shop online" in rows["GONE-1"]["Status"]


def test_missing_token_is_a_usage_error(shop):
    result = CliRunner().invoke(main, ["sync", str(shop.workbook)],
                                env={"XLSTOCK_TOKEN": ""}, catch_exceptions=False)
    assert result.exit_code in (2, 4)
    assert "XLSTOCK_TOKEN" in result.output


def test_workbook_never_holds_the_token(shop):
    shop.edit(**{"A-1": {"Received": 1}})
    shop.run("publish", str(shop.workbook))
    with zipfile.ZipFile(shop.workbook) as archive:
        for name in archive.namelist():
            assert shop.token.encode() not in archive.read(name)


def test_order_command(shop):
    result = shop.run("order", "--service", shop.server.url, "--shop", shop.url, "B-2=2")
    assert "version" in result.output
    assert shop.live()["B-2"] == 3
    result = shop.run("order", "--service", shop.server.url, "--shop", shop.url, "B-2=9",
                      expect=4)
    assert "B-2" in result.output
    assert shop.live()["B-2"] == 3


@pytest.mark.slow
def test_five_thousand_skus_sync_and_publish(stock_service, tmp_path):
    items = [StockItem(f"SKU-{n:05d}", f"Product {n}", "", n % 50) for n in range(5000)]
    shop = Shop(stock_service, tmp_path, items)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    assert len(shop.sheet()) == 5000
    shop.edit(**{f"SKU-{n:05d}": {"Received": 5} for n in range(0, 5000, 500)})
    shop.run("publish", str(shop.workbook), "-q")
    live = shop.live()
    assert live["SKU-00500"] == 500 % 50 + 5
    assert sum(live.values()) == sum(item.qty for item in items) + 10 * 5


# --- crash safety: a real publish process killed at each moment -------------------------

FAILPOINTS = ["before_upload", "after_upload", "after_bookkeeping"]


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_killed_publish_never_counts_a_delivery_twice(shop, failpoint):
    shop.edit(**{"A-1": {"Received": 5}})
    env = {**os.environ, **shop.env, "XLSTOCK_FAILPOINT": failpoint}
    killed = subprocess.run(
        [sys.executable, "-m", "xlstock.cli", "publish", str(shop.workbook), "-q"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode != 0, killed.stdout + killed.stderr
    for _ in range(2):
        shop.run("publish", str(shop.workbook))
    assert shop.live()["A-1"] == 15
    row = shop.sheet()["A-1"]
    assert row["Online"] == 15 and row["Received"] is None
    assert not list(shop.workbook.parent.glob("*.tmp*"))


class RacingService:
    """The real client, with a storefront sale of one unit of ``sku`` landing between
    the plan and each of the first ``races`` uploads: a publish changing that SKU finds
    it moved (412)."""

    def __init__(self, shop, races: int, sku: str = "A-1") -> None:
        from xlstock.remote.client import HttpStockServiceClient

        self.client = HttpStockServiceClient(shop.server.url, shop.url, shop.token)
        self.shop = shop
        self.races = races
        self.sku = sku
        self.reads = 0

    def read_levels(self, *args, **kwargs):
        self.reads += 1
        return self.client.read_levels(*args, **kwargs)

    def publish_lines(self, lines, key):
        if self.races:
            self.races -= 1
            self.shop.sell(**{self.sku.replace("-", "_"): 1})
        return self.client.publish_lines(lines, key)

    def publish_outcome(self, key):
        return self.client.publish_outcome(key)


def test_a_sale_during_publish_is_replanned_not_overwritten(shop):
    from xlstock import actions
    from xlstock.workbook.xlsx_file import XlsxFile

    shop.edit(**{"A-1": {"New level": 6}, "B-2": {"Received": 2}})
    racing = RacingService(shop, races=2)
    with XlsxFile.open(shop.workbook) as book:
        report = actions.publish(book, racing)
    assert "1 SKU(s) moved during publish (try 1): A-1" in "\n".join(report.lines)
    assert racing.reads == 1  # only the moved SKU is re-planned, on the level the 412 gave
    # counted 6 at Sync (10); two sales of 1 raced the publish: 6 + (8 - 10) = 4
    assert shop.live()["A-1"] == 4 and shop.live()["B-2"] == 7
    assert shop.sheet()["A-1"]["Online"] == 4


def test_a_sale_of_another_sku_during_publish_does_not_stop_it(shop):
    from xlstock import actions
    from xlstock.workbook.xlsx_file import XlsxFile

    shop.edit(**{"B-2": {"Received": 2}})
    racing = RacingService(shop, races=1, sku="C-3")
    with XlsxFile.open(shop.workbook) as book:
        report = actions.publish(book, racing)
    assert not any("moved" in line for line in report.lines)
    assert shop.live() == {"A-1": 10, "B-2": 7, "C-3": 7, "00123": 3}


def test_a_publish_that_keeps_losing_the_race_is_a_conflict(shop):
    from xlstock import actions
    from xlstock.errors import ConflictError
    from xlstock.workbook.xlsx_file import XlsxFile

    shop.edit(**{"B-2": {"New level": 4}})
    versions = shop.history_count()
    racing = RacingService(shop, races=actions.MAX_PUBLISH_ATTEMPTS, sku="B-2")
    with XlsxFile.open(shop.workbook) as book, pytest.raises(ConflictError) as caught:
        actions.publish(book, racing)
    assert type(caught.value) is ConflictError  # exit status 3
    assert shop.history_count() == versions + actions.MAX_PUBLISH_ATTEMPTS  # the sales only
    assert shop.live()["B-2"] == 2 and shop.sheet()["B-2"]["New level"] == 4


def test_a_delivery_of_a_sku_selling_fast_is_never_starved(shop):
    """Every try of the count above loses to a sale; a delivery is a change in units,
    which no sale makes stale: it is published at the first try, the sales kept."""
    from xlstock import actions
    from xlstock.workbook.xlsx_file import XlsxFile

    shop.edit(**{"B-2": {"Received": 2}})
    racing = RacingService(shop, races=actions.MAX_PUBLISH_ATTEMPTS, sku="B-2")
    with XlsxFile.open(shop.workbook) as book:
        report = actions.publish(book, racing)
    assert report.lines == [] and racing.races == actions.MAX_PUBLISH_ATTEMPTS - 1
    assert shop.live()["B-2"] == 5 - 1 + 2
    assert shop.sheet()["B-2"]["Online"] == 6 and shop.sheet()["B-2"]["Received"] is None


def test_new_refuses_plain_http_to_another_computer(tmp_path):
    result = CliRunner().invoke(
        main, ["new", str(tmp_path / "s.xlsx"), "--service", "http://stock.example"]
    )
    assert result.exit_code == 2 and "https" in result.output
    assert not (tmp_path / "s.xlsx").exists()


def _kill_publish_at(shop, failpoint: str) -> None:
    env = {**os.environ, **shop.env, "XLSTOCK_FAILPOINT": failpoint}
    killed = subprocess.run(
        [sys.executable, "-m", "xlstock", "publish", str(shop.workbook), "-q"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode != 0, killed.stdout + killed.stderr


def test_sync_and_preview_leave_an_unsent_publish_for_publish_to_finish(shop):
    shop.edit(**{"A-1": {"Received": 5}})
    _kill_publish_at(shop, "before_upload")  # the key is saved, nothing was sent
    for command in ("sync", "preview"):
        result = shop.run(command, str(shop.workbook))
        assert "Publish will finish it" in result.output
        assert shop.live()["A-1"] == 10
    result = shop.run("publish", str(shop.workbook))
    assert "interrupted publish was finished" in result.output
    assert shop.live()["A-1"] == 15 and shop.sheet()["A-1"]["Received"] is None


def test_an_unsent_publish_overtaken_by_a_sale_is_spent_and_planned_afresh(shop):
    shop.edit(**{"A-1": {"New level": 15}})
    _kill_publish_at(shop, "before_upload")
    shop.sell(A_1=2)  # the level moves: the saved count can never apply now
    result = shop.run("publish", str(shop.workbook))
    assert "dropped, and the sheet is planned afresh" in result.output
    assert shop.live()["A-1"] == 15 - 2
    # its key is spent: the service answers a late copy of it with the refusal
    history = shop.history_count()
    shop.run("publish", str(shop.workbook))
    assert shop.history_count() == history


def test_an_unsent_delivery_overtaken_by_a_sale_is_finished_once(shop):
    shop.edit(**{"A-1": {"Received": 5}})
    _kill_publish_at(shop, "before_upload")
    shop.sell(A_1=2)  # a delivery is a change in units: the sale does not stop it
    result = shop.run("publish", str(shop.workbook))
    assert "interrupted publish was finished" in result.output
    assert shop.live()["A-1"] == 8 + 5
    assert shop.sheet()["A-1"]["Online"] == 13 and shop.sheet()["A-1"]["Received"] is None
    shop.run("publish", str(shop.workbook))
    assert shop.live()["A-1"] == 13


def test_a_publish_left_pending_by_xlstock_0_1_is_dropped_not_resent(shop):
    """A workbook saved by xlstock 0.1 in the middle of a publish keeps a protocol 1
    pending publish (whole-shop If-Match, every level). Its bytes cannot be rebuilt as
    they were, so they are never sent; the service never saw the key, and refuses a
    late copy of those bytes anyway (format 1): the sheet is planned afresh."""
    import hashlib

    from xlstock.workbook import layout
    from xlstock.workbook.xlsx_file import XlsxFile

    shop.edit(**{"A-1": {"Received": 5}})
    old_body = (b'{"format":"xlstock.stock","format_version":1,"items":[{"qty":15,'
                b'"sku":"A-1"}],"shop":"' + shop.url.encode() + b'"}\n')
    with XlsxFile.open(shop.workbook) as book:
        state = layout.read_state(book)
        state["pending"] = {
            "key": "0f" * 16, "at": "2026-11-27 10:00:00", "if_match": state["version"],
            "sha256": hashlib.sha256(old_body).hexdigest(), "levels": {"A-1": 15},
            "changes": {"A-1": 5}, "edits": {"A-1": [5, None]},
        }
        layout.write_state(book, state)
        book.save()
    versions = shop.history_count()
    result = shop.run("publish", str(shop.workbook))
    assert ("An interrupted publish saved by an older xlstock never reached the shop; it "
            "was dropped, and the sheet is planned afresh") in result.output
    assert shop.live()["A-1"] == 15 and shop.history_count() == versions + 1


def test_versions_show_without_etag_quotes(shop):
    wb = openpyxl.load_workbook(shop.workbook)
    settings = {row[0].value: row[1].value for row in wb["Settings"].iter_rows()}
    shown = settings["Online version"]
    assert shown and '"' not in shown
    log = list(wb["Log"].iter_rows(values_only=True))
    assert log[-1][2] == shown


def test_validate_points_at_near_miss_skus_offline(shop):
    wb = openpyxl.load_workbook(shop.workbook)
    ws = wb["Stock"]
    ws.append(["a-1", None, None, None, 2])
    ws.append([123, None, None, None, 1])
    wb.save(shop.workbook)
    result = shop.run("validate", str(shop.workbook))
    assert "the shop has 'A-1' (case differs)" in result.output
    assert "the shop has '00123'" in result.output


def test_the_log_counts_what_each_action_moved(shop):
    shop.sell(A_1=3)
    shop.run("sync", str(shop.workbook))
    shop.edit(**{"B-2": {"Received": 4}})
    shop.run("publish", str(shop.workbook))
    rows = list(openpyxl.load_workbook(shop.workbook)["Log"].iter_rows(values_only=True))
    header, first_sync, second_sync, published = rows[0], rows[1], rows[-2], rows[-1]
    assert header[:6] == ("When", "Action", "Online version", "Rows changed", "Units", "Result")
    assert first_sync[1:2] + first_sync[3:5] == ("sync", 4, 10 + 5 + 8 + 3)  # all new rows
    assert second_sync[1:2] + second_sync[3:5] == ("sync", 1, 3)  # A-1 sold 3 online
    assert published[1:2] + published[3:5] == ("publish", 1, 4)
