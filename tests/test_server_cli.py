"""``xlstock serve`` and ``xlstock shop add``, and how the server part is packaged."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from xlstock.cli.server_commands import serve_command, shop_group
from xlstock.model import StockItem
from xlstock.server.storage import StockStore

WOOCOMMERCE = Path(__file__).parent / "fixtures" / "woocommerce_sample_catalogue.csv"
SERVE = "from xlstock.cli.server_commands import serve_command; serve_command()"


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60)


def test_shop_add_prints_the_token_alone_on_the_last_line(tmp_path):
    db = tmp_path / "shop.db"
    result = CliRunner().invoke(
        shop_group, ["add", "https://Shop.Example/", "--db", str(db), "--catalogue",
                     str(WOOCOMMERCE)],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.rstrip("\n").split("\n")
    token = lines[-1]
    assert re.fullmatch(r"xls_[A-Za-z0-9_-]{40,}", token)
    assert "Registered shop https://shop.example" in result.output
    assert ("19 product(s) read, 19 without a quantity (the file has no Stock column)"
            in result.output)
    assert "Levels: 19 added (new products), 0 changed, 0 left as they were" in result.output
    assert "Skipped 6 row(s)" in result.output
    store = StockStore(db)
    assert store.authenticate(token) == "https://shop.example"
    assert len(store.read_levels("https://shop.example")["items"]) == 19
    store.close()


def test_shop_add_again_gives_another_token_and_updates_the_levels(tmp_path):
    db = tmp_path / "shop.db"
    first_csv = tmp_path / "first.csv"
    first_csv.write_text("sku,name,variant,qty\nA,Hat,,3\nB,Cap,,1\n")
    second_csv = tmp_path / "second.csv"
    second_csv.write_text("sku,name,variant,qty\nA,Hat,,8\n")
    runner = CliRunner()
    first = runner.invoke(shop_group, ["add", "https://s.example", "--db", str(db),
                                       "--catalogue", str(first_csv)])
    second = runner.invoke(shop_group, ["add", "https://s.example", "--db", str(db),
                                        "--catalogue", str(second_csv)])
    assert first.exit_code == second.exit_code == 0
    assert "Updated shop" in second.output
    assert "Levels: 0 added (new products), 1 changed, 1 left as they were" in second.output
    tokens = [first.output.split()[-1], second.output.split()[-1]]
    assert tokens[0] != tokens[1]
    store = StockStore(db)
    assert {i["sku"]: i["qty"] for i in store.read_levels("https://s.example")["items"]} == {
        "A": 8, "B": 1}
    assert store.history("https://s.example")["versions"][0]["reference"] == (
        "catalogue second.csv")
    store.close()


def test_a_catalogue_without_quantities_never_zeroes_existing_levels(tmp_path):
    """The WooCommerce sample has no Stock column: loaded again on a shop whose levels
    moved, it adds nothing, changes no level, and says so."""
    db = tmp_path / "shop.db"
    runner = CliRunner()
    first = runner.invoke(shop_group, ["add", "https://s.example", "--db", str(db),
                                       "--catalogue", str(WOOCOMMERCE)])
    assert first.exit_code == 0, first.output
    store = StockStore(db)
    token = first.output.split()[-1]
    assert store.authenticate(token) == "https://s.example"
    for sku in ("woo-belt", "woo-cap", "woo-hoodie-red"):
        store.register_shop("https://s.example", [StockItem(sku, qty=7)])
    store.close()
    again = runner.invoke(shop_group, ["add", "https://s.example", "--db", str(db),
                                       "--catalogue", str(WOOCOMMERCE)])
    assert again.exit_code == 0, again.output
    assert "Levels: 0 added (new products), 0 changed, 19 left as they were" in again.output
    assert "existing ones keep their level" in again.output
    store = StockStore(db)
    levels = {i["sku"]: i["qty"] for i in store.read_levels("https://s.example")["items"]}
    store.close()
    assert levels["woo-belt"] == levels["woo-cap"] == levels["woo-hoodie-red"] == 7


def test_a_catalogue_changing_most_levels_needs_allow_level_changes(tmp_path):
    db = tmp_path / "shop.db"
    rows = "\n".join(f"S{n},Product {n},,{n}" for n in range(30))
    first = tmp_path / "first.csv"
    first.write_text("sku,name,variant,qty\n" + rows + "\n")
    zeroes = tmp_path / "zeroes.csv"
    zeroes.write_text("sku,name,variant,qty\n"
                      + "\n".join(f"S{n},Product {n},,0" for n in range(30)) + "\n")
    runner = CliRunner()
    assert runner.invoke(shop_group, ["add", "https://s.example", "--db", str(db),
                                      "--catalogue", str(first)]).exit_code == 0
    refused = runner.invoke(shop_group, ["add", "https://s.example", "--db", str(db),
                                         "--catalogue", str(zeroes)])
    assert refused.exit_code == 2
    assert ("this catalogue would change 29 of the 30 existing levels of https://s.example "
            "(29 to zero); nothing was changed") in refused.output
    assert "--allow-level-changes" in refused.output
    store = StockStore(db)
    levels = {i["sku"]: i["qty"] for i in store.read_levels("https://s.example")["items"]}
    assert levels["S5"] == 5
    assert len(store.history("https://s.example")["versions"]) == 1
    store.close()
    allowed = runner.invoke(shop_group, ["add", "https://s.example", "--db", str(db),
                                         "--catalogue", str(zeroes), "--allow-level-changes"])
    assert allowed.exit_code == 0, allowed.output
    assert "Levels: 0 added (new products), 29 changed, 1 left as they were" in allowed.output


def test_shop_add_with_a_bad_catalogue_exits_2_naming_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,qty\nA,Hat,three\n")
    result = CliRunner().invoke(shop_group, ["add", "https://s.example", "--db",
                                             str(tmp_path / "shop.db"), "--catalogue", str(bad)])
    assert result.exit_code == 2
    assert "line 2 (SKU 'A'): qty 'three' is not a whole number" in result.output
    assert not (tmp_path / "shop.db").exists()


def test_shop_add_with_a_bad_url_exits_2(tmp_path):
    result = CliRunner().invoke(shop_group, ["add", "shop.example", "--db",
                                             str(tmp_path / "shop.db")])
    assert result.exit_code == 2
    assert "write it like https://shop.example" in result.output


def test_shop_add_errors_read_like_every_other_command(tmp_path):
    result = CliRunner().invoke(shop_group, ["add", "https://s.example", "--db",
                                             str(tmp_path / "shop.db"), "--catalogue",
                                             str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert result.stderr.startswith("xlstock: cannot read the catalogue "), result.stderr
    assert "Error:" not in result.output


@pytest.mark.parametrize("command", [serve_command, shop_group.commands["add"]])
def test_commands_have_help_with_an_example(command):
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "--db" in result.output


def test_serve_answers_logs_each_request_and_stops_cleanly_on_sigterm(tmp_path):
    db = tmp_path / "shop.db"
    store = StockStore(db)
    token = store.add_shop("https://s.example")
    store.close()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--db", str(db), "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "serve ended before listening"
            if found := re.search(r"on (http://127\.0\.0\.1:\d+)", line):
                url = found.group(1)
        assert url is not None
        health = requests.get(url + "/v1/health", timeout=10)
        assert health.status_code == 200
        levels = requests.get(url + "/v1/stock", params={"shop": "https://s.example"},
                              headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert levels.status_code == 200
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "GET /v1/stock shop=https://s.example 200" in err
    assert token not in err
    assert "stopping on SIGTERM" in err and "stock service stopped" in err
    assert "Traceback" not in err
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/v1/health", timeout=5)


def test_serve_stops_cleanly_on_ctrl_c(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--db", str(tmp_path / "s.db"), "--port", "0"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        while "stock service on" not in (process.stderr.readline() or "stock service on"):
            pass
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_serve_on_a_busy_port_says_so(stock_service, tmp_path):
    result = run_python(SERVE, "--db", str(tmp_path / "s.db"), "--port",
                        str(stock_service.port))
    assert result.returncode == 2
    assert result.stderr.startswith(f"xlstock: cannot listen on 127.0.0.1:{stock_service.port}")


BLOCK_WEB = (
    "import sys; sys.modules['flask'] = None; sys.modules['waitress'] = None; "
    "sys.modules['waitress.server'] = None; "
)


def test_without_the_server_extra_the_error_says_what_to_install():
    result = run_python(
        BLOCK_WEB
        + "from xlstock.errors import UsageError\n"
        + "try:\n    import xlstock.server.app\nexcept UsageError as e:\n    print(e)\n"
    )
    assert "pip install 'xlstock[server]'" in result.stdout, result.stderr


def test_storage_catalogue_and_shop_add_work_without_the_server_extra(tmp_path):
    result = run_python(
        BLOCK_WEB
        + "import xlstock.server.storage, xlstock.server.catalogue\n"
        + "from xlstock.server import StockStore, read_catalogue_csv\n"
        + "from xlstock.cli.server_commands import shop_group\n"
        + "shop_group(['add', 'https://s.example', '--db', sys.argv[1]])",
        str(tmp_path / "s.db"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1].startswith("xls_")


def test_the_server_does_not_import_the_excel_side():
    result = run_python(
        "import sys\n"
        "import xlstock.server.runner, xlstock.cli.server_commands, xlstock.server.catalogue\n"
        "bad = [m for m in sys.modules if m == 'openpyxl' or m.startswith('xlwings')\n"
        "       or m.startswith('xlstock.workbook') or m.startswith('xlstock.remote')]\n"
        "print(bad)"
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_serve_warns_off_loopback_and_names_a_database_it_cannot_open():
    # The database is opened before anything listens, so nothing binds 0.0.0.0 here.
    result = run_python(SERVE, "--db", "/nonexistent-dir/x.db", "--host", "0.0.0.0")
    assert "unencrypted" in result.stderr
    assert result.returncode == 2
    assert "/nonexistent-dir/x.db" in result.stderr


def test_serve_run_from_a_thread_stops_through_its_server(tmp_path):
    import queue
    import threading

    from xlstock.server.runner import serve

    started: queue.Queue = queue.Queue()
    thread = threading.Thread(target=serve, args=(tmp_path / "s.db",),
                              kwargs={"port": 0, "ready": started.put}, daemon=True)
    thread.start()
    running = started.get(timeout=30)
    assert requests.get(running.url + "/v1/health", timeout=10).status_code == 200
    running.request_stop()
    thread.join(30)
    assert not thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(running.url + "/v1/health", timeout=5)
