"""Regressions from a merchant's QA pass over the command line: what a merchant sees
when they interrupt a run, mistype the shop or misread a message."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from support.shopkit import Shop

from xlstock.actions import units_moved
from xlstock.cli import main
from xlstock.cli.reporting import format_table


def test_ctrl_c_during_sync_says_what_state_things_are_in(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        service = f"http://127.0.0.1:{silent.getsockname()[1]}"
        workbook = tmp_path / "stock.xlsx"
        made = CliRunner().invoke(main, ["new", str(workbook), "--service", service,
                                         "--shop", "https://shop.example"])
        assert made.exit_code == 0, made.output
        before = workbook.read_bytes()
        env = {**os.environ, "XLSTOCK_TOKEN": "xls_test"}
        with subprocess.Popen([sys.executable, "-m", "xlstock", "sync", str(workbook)],
                              stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env) as run:
            assert run.stderr is not None
            for line in run.stderr:
                if "Reading the live levels" in line:
                    break
            run.send_signal(signal.SIGINT)
            _, stderr = run.communicate(timeout=30)
    assert run.returncode == 130
    assert stderr.startswith("xlstock: stopped by Ctrl-C. The workbook is as it was"), stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    assert workbook.read_bytes() == before


@pytest.mark.parametrize("language, said", [
    ("en", "the API token is for the shop {shop}, not {typo}. If {typo} has a typing slip, "
           "correct Shop URL in sheet Settings; else use a token of {typo}"),
    ("fr", "le jeton d'API est celui de la boutique {shop}, pas de {typo}. Si {typo} "
           "contient une faute de frappe, corrigez Adresse URL de la boutique dans la "
           "feuille Paramètres ; sinon, utilisez un jeton de {typo}"),
])
def test_a_typo_in_the_shop_url_is_named_and_not_registered(
        stock_service, shop_factory, tmp_path: Path, language: str, said: str) -> None:
    shop, token = shop_factory()
    typo = shop.replace("https://", "https://x")
    workbook = tmp_path / "stock.xlsx"
    runner = CliRunner()
    made = runner.invoke(main, ["new", str(workbook), "--service", stock_service.url,
                                "--shop", typo, "--lang", language])
    assert made.exit_code == 0, made.output
    result = runner.invoke(main, ["sync", str(workbook), "-q"],
                           env={"XLSTOCK_TOKEN": token, "XLSTOCK_LANG": language})
    assert result.exit_code == 4
    assert said.format(shop=shop, typo=typo) in result.stderr, result.stderr
    # the service's own words, for its administrator, are not the merchant's
    assert "this API token" not in result.stderr and "xlstock shop add" not in result.stderr
    assert "Register the shop, then try again" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_units_moved_leaves_out_a_side_that_is_zero() -> None:
    assert units_moved(12, 6) == "+12 / -6 units"
    assert units_moved(3, 0) == "+3 units"
    assert units_moved(0, 4) == "-4 units"
    assert units_moved(0, 0) == "0 units"


def test_a_delivery_alone_reports_its_units_without_a_minus_zero(stock_service,
                                                                 tmp_path: Path) -> None:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 3}})
    previewed = shop.run("preview", str(shop.workbook), "-q")
    assert "Publish would change 1 row(s): +3 units." in previewed.stdout
    published = shop.run("publish", str(shop.workbook), "-q")
    assert f"Published 1 change(s) to {shop.url}: +3 units." in published.stdout
    assert "-0" not in previewed.stdout + published.stdout


def test_demo_serve_commands_work_typed_in_another_terminal(tmp_path: Path) -> None:
    """The printed loop, pasted into another terminal, goes round once: sync, the edit
    (the command given for a machine without a spreadsheet program), a sale online,
    a preview that shows the delivery, and a publish that sends it."""
    demo_dir, elsewhere = tmp_path / "my demo", tmp_path / "elsewhere"
    elsewhere.mkdir()
    with subprocess.Popen([sys.executable, "-m", "xlstock", "demo", "--serve", "--dir",
                           str(demo_dir)], stdout=subprocess.PIPE, text=True) as demo:
        try:
            assert demo.stdout is not None
            commands = []
            for line in demo.stdout:
                if line.startswith("  export XLSTOCK_TOKEN="):
                    commands.append(line.strip())
                elif commands:
                    commands.append(line.strip())
                    if line.strip().startswith("xlstock publish"):
                        break
            assert commands[1] == f"cd '{demo_dir.resolve()}'"
            assert [c.split()[1] for c in commands if c.startswith("xlstock ")] == [
                "sync", "order", "preview", "publish"]
            edit = commands.index(next(c for c in commands if c.startswith("# Edit:")))
            assert commands[edit + 2].startswith(f"{sys.executable} -c ")
            assert "type 5 into Received on the row of woo-cap" in commands[edit]
            script = "set -e\n" + "\n".join(
                c.replace("xlstock ", f"{sys.executable} -m xlstock ", 1)
                if c.startswith("xlstock ") else c for c in commands)
            typed = subprocess.run(["bash", "-c", script], cwd=elsewhere, capture_output=True,
                                   text=True, timeout=120)
        finally:
            demo.send_signal(signal.SIGINT)
            rest, _ = demo.communicate(timeout=30)
    assert typed.returncode == 0, typed.stderr
    assert "Synced 19 SKU(s)" in typed.stdout and "Order placed" in typed.stdout
    assert "Publish would change 1 row(s): +5 units, after 1 unit(s) sold online since " \
           "Sync." in typed.stdout
    assert "Published 1 change(s) to https://demo-shop.example: +5 units." in typed.stdout
    assert "Stopped the stock service." in rest
    assert sorted(p.name for p in demo_dir.iterdir()) == ["xlstock-demo.xlsx"]


def test_a_missing_workbook_names_the_folder_looked_in(tmp_path: Path,
                                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sync", "stock.xlsx"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"xlstock: stock.xlsx: no such workbook in {tmp_path}; check the folder and the file "
        "name, or create one with `xlstock new stock.xlsx`\n")


def test_an_order_short_of_stock_is_one_line_naming_the_sku(stock_service,
                                                             shop_factory) -> None:
    shop, token = shop_factory()
    result = CliRunner().invoke(
        main, ["order", "--service", stock_service.url, "--shop", shop, "A-1=500"],
        env={"XLSTOCK_TOKEN": token})
    assert result.exit_code == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "A-1: ordered 500, " in lines[0] and "Nothing was sold" in lines[0]


def test_an_ods_given_as_the_workbook_says_how_to_save_it_as_xlsx(tmp_path: Path) -> None:
    ods = tmp_path / "stock.ods"
    with zipfile.ZipFile(ods, "w") as package:
        package.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        package.writestr("content.xml", "<office:document-content/>")
        package.writestr("META-INF/manifest.xml", "<manifest:manifest/>")
    result = CliRunner().invoke(main, ["validate", str(ods)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"xlstock: {ods.name} is an OpenDocument spreadsheet (.ods), not an .xlsx workbook; "
        "in LibreOffice use File > Save As > Excel 2007-365 (.xlsx), then try again with the "
        ".xlsx\n")


def test_sync_does_not_call_a_typed_sku_that_never_was_online_gone(stock_service,
                                                                     tmp_path: Path) -> None:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    wb = openpyxl.load_workbook(shop.workbook)
    wb["Stock"].append(["NEW-ONE", None, None, None, 4])
    wb.save(shop.workbook)
    synced = shop.run("sync", str(shop.workbook), "-q")
    assert "0 new, 1 not in the shop online." in synced.stdout
    assert "no longer" not in synced.stdout


def test_preview_notes_are_never_cut_and_a_long_sku_is_cut_visibly() -> None:
    note = "counted 120, less 12 sold online since Sync"
    long_sku = "S" * 60
    lines = format_table([("A-1", "132", "-12", "120", note),
                          (long_sku, "5", "+1", "6", "+1 received")])
    assert lines[0].split() == ["SKU", "Online", "Change", "Publish", "Note"]
    assert lines[1].endswith(note)
    assert lines[2].startswith("S" * 37 + "...  ") and lines[2].endswith("+1 received")
    assert lines[1].index("-12") + 3 == lines[2].index("+1") + 2  # numbers right-aligned


def test_rows_at_fault_go_to_stderr_in_every_command(stock_service, tmp_path: Path) -> None:
    """docs/cli.md: the rows at fault are named on stderr. Preview and validate printed
    them on stdout, publish on stderr; now every command prints them alike, under the
    one-line summary, and stdout keeps only the report (a preview's table)."""
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": "12 boxes"}, "B-2": {"Received": 1, "New level": 4},
                 "C-3": {"Received": 2}})
    env = {**os.environ, **shop.env}
    streams = {}
    for command in ("validate", "preview", "publish"):
        done = subprocess.run([sys.executable, "-m", "xlstock", command, str(shop.workbook),
                               *([] if command == "validate" else ["-q"])],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 1, done
        streams[command] = done.stdout, done.stderr
    rows = [
        "  Stock row 3, SKU 'A-1': Received '12 boxes' is not a whole number; type one",
        "  Stock row 4, SKU 'B-2': both Received and New level are filled; keep one "
        "(Received adds a delivery, New level sets a counted level)",
    ]
    for command, (stdout, stderr) in streams.items():
        first, *rest = stderr.splitlines()
        assert first.startswith("xlstock: 2 row(s) of sheet Stock need fixing"), stderr
        assert rest == rows, (command, stderr)
        assert "Stock row" not in stdout and "need fixing" not in stdout, (command, stdout)
    preview_table = streams["preview"][0]
    assert preview_table.splitlines()[0].split() == ["SKU", "Online", "Change", "Publish",
                                                     "Note"]
    assert "C-3" in preview_table  # the good row's change is still shown
    assert streams["publish"][0] == "" and streams["validate"][0] == ""
