"""Issue 19, "new user" findings: what a merchant trying xlstock for the first time ran
into, each found by trial on main and checked here the way they met it (the command
line, real workbooks, the real service, real LibreOffice, real apt)."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import openpyxl
import pytest
import requests
from click.testing import CliRunner
from support.shopkit import Shop

from xlstock.cli import main
from xlstock.workbook.layout import LOG_RESULT_LIMIT, shorten_result

ROOT = Path(__file__).parents[1]


def _leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_leaf_commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


# --- every command takes -q ---------------------------------------------------------------


def test_every_command_takes_q() -> None:
    missing = [name for name, command in _leaf_commands(main).items()
               if not any("-q" in param.opts for param in command.params)]
    assert missing == []


def test_validate_q_is_accepted_and_quiet(tmp_path: Path) -> None:
    book = tmp_path / "stock.xlsx"
    runner = CliRunner()
    assert runner.invoke(main, ["new", str(book), "-q"]).output == ""
    result = runner.invoke(main, ["validate", str(book), "-q"])
    assert result.exit_code == 0, result.output
    assert "Sheet Stock is valid" in result.stdout
    assert "xlstock: Checking" not in result.stderr


# --- the Log's Result -----------------------------------------------------------------------


def test_shorten_result_cuts_at_a_word_with_an_ellipsis() -> None:
    text = " ".join(f"word{n}" for n in range(100))
    cut = shorten_result(text)
    assert len(cut) <= LOG_RESULT_LIMIT and cut.endswith("\u2026")
    assert text.startswith(cut[:-1]) and text[len(cut) - 1] == " "
    assert shorten_result("short") == "short"
    long_word = "x" * 400
    assert shorten_result(long_word) == "x" * (LOG_RESULT_LIMIT - 1) + "\u2026"


def test_a_long_failure_in_the_log_ends_at_a_word_with_an_ellipsis(tmp_path: Path) -> None:
    """A service address long enough that the failure's message passes 300 characters
    (the Log used to cut it there, mid-word and without a sign)."""
    book = tmp_path / "stock.xlsx"
    service = "http://127.0.0.1:9/" + "stock-levels/" * 13
    runner = CliRunner()
    assert runner.invoke(main, ["new", str(book), "--service", service,
                                "--shop", "https://long.shop.example"]).exit_code == 0
    result = runner.invoke(main, ["sync", str(book), "-q"], env={"XLSTOCK_TOKEN": "t"})
    assert result.exit_code == 4, result.output
    message = "failed: " + result.stderr.strip().splitlines()[-1].removeprefix("xlstock: ")
    assert len(message) > 300
    logged = list(openpyxl.load_workbook(book)["Log"].iter_rows(values_only=True))[-1][-1]
    assert logged.endswith("\u2026"), logged
    kept = logged[:-1]
    assert message.startswith(kept) and message[len(kept)] == " ", logged
    assert len(logged) <= LOG_RESULT_LIMIT


def test_a_refusal_in_the_log_keeps_what_to_do_and_cuts_the_services_words(
        stock_service, tmp_path: Path) -> None:
    """A refused token: the service's reason is long, and the Log's Result used to end
    inside it ("... Check the…"); it now cuts the reason and keeps what to do whole."""
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.env["XLSTOCK_TOKEN"] = "xls_not_a_token"
    failed = shop.run("sync", str(shop.workbook), expect=4)
    said = failed.stderr.strip().splitlines()[-1]
    assert "this API token is not known to the stock service" in said  # whole on the terminal
    logged = list(openpyxl.load_workbook(shop.workbook)["Log"].iter_rows(values_only=True))
    result = logged[-1][-1]
    assert len(result) <= LOG_RESULT_LIMIT and not result.endswith("\u2026"), result
    assert result.startswith("failed: ") and "401 unauthorized" in result
    assert "\u2026" in result  # the service's words, cut
    assert result.endswith(f"(the API tokens page {stock_service.url}/account/tokens creates "
                           "one; so does `xlstock shop add`)"), result


# --- Status after publish then sync -----------------------------------------------------------


def test_status_after_publish_then_sync_is_ok_on_the_published_rows(stock_service,
                                                                    tmp_path: Path) -> None:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 3}, "B-2": {"New level": 2}})
    shop.run("publish", str(shop.workbook), "-q")
    assert {sku: row["Status"] for sku, row in shop.sheet().items()} == {
        "A-1": "changed", "B-2": "changed", "C-3": "ok", "00123": "ok"}
    shop.run("sync", str(shop.workbook), "-q")
    assert {sku: row["Status"] for sku, row in shop.sheet().items()} == {
        "A-1": "ok", "B-2": "ok", "C-3": "ok", "00123": "ok"}


def test_a_previewed_change_still_waiting_is_not_called_ok_by_sync(stock_service,
                                                                  tmp_path: Path) -> None:
    """``changed`` from a preview, its edit not yet published: sync clears it (the edit
    waits; the new levels make the preview stale), as before."""
    shop = Shop(stock_service, tmp_path)
    shop.new()
    shop.run("sync", str(shop.workbook), "-q")
    shop.edit(**{"A-1": {"Received": 3}})
    shop.run("preview", str(shop.workbook), "-q")
    assert shop.sheet()["A-1"]["Status"] == "changed"
    shop.run("sync", str(shop.workbook), "-q")
    assert shop.sheet()["A-1"]["Status"] is None
    assert shop.sheet()["A-1"]["Received"] == 3


# --- scripts/test.sh and apt's lock ------------------------------------------------------------


APT_LOCK = Path("/var/lib/dpkg/lock-frontend")


@pytest.mark.skipif(shutil.which("apt-get") is None or os.geteuid() != 0
                    or not APT_LOCK.exists(), reason="needs apt-get, as root")
def test_the_test_script_waits_for_apts_lock() -> None:
    """Another process holds apt's lock for 2 s (as a fresh machine's own updates do):
    the apt-get of scripts/test.sh waits for it instead of failing at once. The install
    is of a package already there, so it needs nothing from the network."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "source scripts/apt.sh" in script and "apt-get " not in script.split(
        "source scripts/apt.sh", 1)[1].split("fi", 1)[0]
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Package}\\n", "bash"],
                               capture_output=True, text=True, check=True).stdout.strip()
    held = os.open(APT_LOCK, os.O_RDWR)
    fcntl.lockf(held, fcntl.LOCK_EX)
    released = threading.Timer(2.0, lambda: (fcntl.lockf(held, fcntl.LOCK_UN), os.close(held)))
    released.start()
    started = time.monotonic()
    try:
        result = subprocess.run(
            ["bash", "-c", "source scripts/apt.sh && apt_get install -y -q "
                           f"--no-install-recommends {installed}"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    finally:
        released.join()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.5


# --- xlstock buttons on an .xlsm LibreOffice saved ---------------------------------------------


def _libreoffice_saved(tmp_path: Path) -> Path:
    """``xlstock new stock.xlsm``, opened and saved as .xlsm by LibreOffice headless."""
    from support.office import SOFFICE, libreoffice_missing

    why = libreoffice_missing()
    if why:
        pytest.skip(why)
    assert SOFFICE is not None
    made = tmp_path / "stock.xlsm"
    assert CliRunner().invoke(main, ["new", str(made), "-q"]).exit_code == 0
    out = tmp_path / "saved"
    subprocess.run(
        [SOFFICE, f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}", "--headless",
         "--convert-to", "xlsm:Calc MS Excel 2007 VBA XML", "--outdir", str(out), str(made)],
        check=True, capture_output=True, timeout=180,
    )
    saved = out / "stock.xlsm"
    assert saved.exists()
    return saved


def _controls(path: Path) -> tuple[list[str], list[str]]:
    """Sheet Stock's control ``shapeId``s, and the ids of the VML button shapes."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as zf:
        sheet = zf.read("xl/worksheets/sheet1.xml").decode()
        vml = "".join(zf.read(n).decode() for n in zf.namelist() if n.endswith(".vml"))
    return (re.findall(r'<control\b[^>]*?\sshapeId="([^"]*)"', sheet),
            re.findall(r'<v:shape\b[^>]*?\sid="([^"]*)"', vml))


@pytest.mark.libreoffice
def test_buttons_on_an_xlsm_libreoffice_saved_twice_changes_nothing(tmp_path: Path) -> None:
    saved = _libreoffice_saved(tmp_path)
    assert _controls(saved)[0] == ["1001", "1002", "1003", "1004"]  # LibreOffice's numbering
    runner = CliRunner()
    first = runner.invoke(main, ["buttons", str(saved)])
    assert first.exit_code == 0, first.output
    assert "buttons added" not in first.output
    shape_ids, _ = _controls(saved)
    assert shape_ids == ["1001", "1002", "1003", "1004"], shape_ids
    once = saved.read_bytes()
    second = runner.invoke(main, ["buttons", str(saved)])
    assert second.exit_code == 0, second.output
    assert "up to date" in second.output
    assert saved.read_bytes() == once


@pytest.mark.libreoffice
def test_buttons_put_back_controls_of_numberless_shapes_once(tmp_path: Path) -> None:
    """LibreOffice's shapes (``id="shape_0"``) with their control entries lost: each
    gets a number in its id and a control naming it, and a second run changes nothing."""
    import re

    from support.workbook_corpus import read_parts, write_parts

    saved = _libreoffice_saved(tmp_path)
    parts = read_parts(saved)
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    sheet = re.sub(r"<mc:AlternateContent\b[^>]*><mc:Choice Requires=\"x14\"><controls>.*"
                   r"</controls></mc:Choice></mc:AlternateContent>", "", sheet, flags=re.S)
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    write_parts(saved, parts)
    assert _controls(saved)[0] == []
    runner = CliRunner()
    first = runner.invoke(main, ["buttons", str(saved)])
    assert first.exit_code == 0, first.output
    shape_ids, vml_ids = _controls(saved)
    assert len(shape_ids) == 4 and "None" not in shape_ids
    assert sorted(f"_x0000_s{n}" for n in shape_ids) == sorted(vml_ids)
    once = saved.read_bytes()
    assert runner.invoke(main, ["buttons", str(saved)]).exit_code == 0
    assert saved.read_bytes() == once


# --- xlstock init: the stock sheets in a workbook of one's own ---------------------------------

EXCEL_CORPUS = ROOT / "tests" / "fixtures" / "excel-corpus"
REGISTERING_PARTS = ("xl/workbook.xml", "xl/_rels/workbook.xml.rels", "[Content_Types].xml")
"""The parts that list a workbook's sheets: adding sheets has to add to them."""


def _sheet(book: Path, name: str) -> list[list[object]]:
    """A sheet's values, read by xlstock's own reader (openpyxl warns about, and would
    drop, the extensions of these Excel workbooks)."""
    from xlstock.workbook.xlsx_file import XlsxFile

    with XlsxFile.open(book, writable=False) as opened:
        return opened.read_sheet(name)


def _excel_workbooks() -> list[Path]:
    return sorted(EXCEL_CORPUS.glob("*.xlsx"))


def _assert_only_added_to(before: dict[str, bytes], after: dict[str, bytes],
                          synced: bool = False) -> list[str]:
    """Every part of ``before`` is in ``after`` with the same bytes, but the parts that
    list the sheets, which keep every entry they had, in order; returns the new parts."""
    from xml.etree import ElementTree as ET

    from support.workbook_corpus import sheet_entries

    for name, data in before.items():
        if name not in REGISTERING_PARTS:
            assert after.get(name) == data, f"{name} changed"
    for name in REGISTERING_PARTS[1:]:
        old = [ET.tostring(e) for e in ET.fromstring(before[name])]
        new = [ET.tostring(e) for e in ET.fromstring(after[name])]
        assert new[: len(old)] == old, f"{name}: an entry changed"
    old_sheets, new_sheets = sheet_entries(before), sheet_entries(after)
    assert new_sheets[: len(old_sheets)] == old_sheets
    assert [(e["name"], e["state"]) for e in new_sheets[len(old_sheets):]] == [
        ("Stock", "visible"), ("Settings", "visible"), ("Log", "visible"),
        ("_xlstock", "veryHidden")] + ([("Low stock", "visible")] if synced else [])
    workbook_old = ET.fromstring(before["xl/workbook.xml"])
    workbook_new = ET.fromstring(after["xl/workbook.xml"])
    for old_child, new_child in zip(workbook_old, workbook_new, strict=True):
        if not old_child.tag.endswith(("}sheets", "}calcPr")):  # calcPr: fullCalcOnLoad
            assert ET.tostring(old_child) == ET.tostring(new_child), old_child.tag
    return [name for name in after if name not in before]


@pytest.mark.parametrize("source", _excel_workbooks(), ids=lambda p: p.stem)
def test_init_adds_the_sheets_and_keeps_every_part_of_an_excel_workbook(
        source: Path, tmp_path: Path) -> None:
    from support.workbook_corpus import read_parts

    book = tmp_path / source.name
    shutil.copyfile(source, book)
    result = CliRunner().invoke(main, ["init", str(book), "--service", "http://127.0.0.1:9",
                                       "--shop", "https://init.shop.example"])
    assert result.exit_code == 0, result.output
    added = _assert_only_added_to(read_parts(source), read_parts(book))
    assert len(added) == 4 and all(n.startswith("xl/worksheets/sheet") for n in added)
    assert _sheet(book, "Stock") == [[
        "SKU", "Product", "Variant", "Online", "Received", "New level", "Change", "Low at",
        "Status"]]
    settings = {row[0]: row[1] if len(row) > 1 else None for row in _sheet(book, "Settings")}
    assert settings["Stock service"] == "http://127.0.0.1:9"
    assert settings["Shop URL"] == "https://init.shop.example"
    assert settings["Conflict policy"] == "rebase"
    assert _sheet(book, "Log") == [["When", "Action", "Online version", "Rows changed",
                                    "Units", "Result"]]
    again = read_parts(book)
    refused = CliRunner().invoke(main, ["init", str(book)])
    assert refused.exit_code == 2
    assert "set up for xlstock" in refused.stderr
    assert read_parts(book) == again


def test_init_refuses_a_workbook_with_a_sheet_named_log(tmp_path: Path) -> None:
    book = tmp_path / "mine.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "log"  # Excel compares sheet names ignoring case
    wb.save(book)
    before = book.read_bytes()
    result = CliRunner().invoke(main, ["init", str(book)])
    assert result.exit_code == 2
    assert "'log'" in result.stderr and "rename" in result.stderr
    assert book.read_bytes() == before
    missing = CliRunner().invoke(main, ["init", str(tmp_path / "none.xlsx")])
    assert missing.exit_code == 2 and "no such workbook" in missing.stderr


def test_sync_preview_publish_work_on_a_workbook_init_set_up(stock_service, shop_factory,
                                                            tmp_path: Path) -> None:
    from support.workbook_corpus import read_parts, set_cells

    from xlstock.model import StockItem

    source = EXCEL_CORPUS / "pivot_chart_tables.xlsx"
    book = tmp_path / "budget.xlsx"
    shutil.copyfile(source, book)
    shop, token = shop_factory([StockItem("A-1", "Hoodie", "Red", 10),
                                StockItem("B-2", "Cap", "", 5)])
    env = {"XLSTOCK_TOKEN": token}
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> None:
        result = runner.invoke(main, list(args), env=env)
        assert result.exit_code == expect, result.output

    run("init", str(book), "--service", stock_service.url, "--shop", shop)
    run("sync", str(book), "-q")
    rows = {r[0]: r for r in _sheet(book, "Stock")[1:]}
    assert {sku: r[3] for sku, r in rows.items()} == {"A-1": 10, "B-2": 5}
    row_of = {sku: n for n, sku in enumerate(rows, start=2)}
    set_cells(book, "Stock", {f"E{row_of['A-1']}": 4})  # Received, typed as Excel would
    run("preview", str(book), "-q")
    run("publish", str(book), "-q")
    after = {r[0]: r for r in _sheet(book, "Stock")[1:]}
    assert after["A-1"][3] == 14 and after["A-1"][4] is None
    assert after["A-1"][8] == "changed" and after["B-2"][8] == "ok"
    live = requests.get(f"{stock_service.url}/v1/stock", params={"shop": shop},
                        headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert {i["sku"]: i["qty"] for i in live["items"]} == {"A-1": 14, "B-2": 5}
    log = _sheet(book, "Log")
    assert [row[1] for row in log[1:]] == ["sync", "publish"]
    _assert_only_added_to(read_parts(source), read_parts(book), synced=True)  # + Low stock


# --- Ctrl-C at any moment ----------------------------------------------------------------------

INTERRUPTED_LINE = "xlstock: stopped by Ctrl-C. The workbook is as it was or completely saved"
DELAYS = (0.0, 0.0, 0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)
"""Seconds from the start to the Ctrl-C: loading click and the commands took about 50 ms,
and a Ctrl-C then ended in a traceback and death by the signal."""
READY = (
    "import os, sys\n"
    "import xlstock.__main__ as entry\n"
    "commands = entry._run_commands\n"
    "def announced():\n"
    "    os.write(int(os.environ['READY_FD']), b'.')\n"
    "    return commands()\n"
    "entry._run_commands = announced\n"
    "sys.exit(entry.run())\n"
)
"""The console script's lines (``from xlstock.__main__ import run``;
``sys.exit(run())``), saying when :func:`xlstock.__main__.run` is in charge, before it
loads click and the commands: the first moment a Ctrl-C can be xlstock's (Python's own
start, 20 ms or so, comes before it; a Ctrl-C then stops Python before it runs any of
xlstock)."""


@pytest.fixture(scope="module")
def silent_service() -> Iterator[str]:
    """A stock service that takes connections and never answers: sync waits on it, so
    that every Ctrl-C of these tests lands while the command is at work."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


@pytest.fixture(scope="module")
def long_workbook(tmp_path_factory: pytest.TempPathFactory, silent_service: str) -> Path:
    """A workbook whose sync waits on :func:`silent_service`."""
    book = tmp_path_factory.mktemp("ctrl-c") / "stock.xlsx"
    made = CliRunner().invoke(main, ["new", str(book), "-q", "--service", silent_service,
                                     "--shop", "https://ctrl-c.shop.example"])
    assert made.exit_code == 0, made.output
    return book


def _interrupt(command: list[str], delay: float, *, ready: bool) -> tuple[int, str]:
    """Run ``command``, send SIGINT ``delay`` s after it started (``ready``: after it
    said it reached the console script's lines), and return its status and stderr."""
    read_end, write_end = os.pipe()
    env = {**os.environ, "READY_FD": str(write_end), "XLSTOCK_TOKEN": "xls_test"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, pass_fds=(write_end,)) as process:
        os.close(write_end)
        if ready:
            assert os.read(read_end, 1) == b"."
        os.close(read_end)
        if delay:
            time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


@pytest.mark.parametrize("delay", DELAYS)
def test_ctrl_c_at_any_moment_is_one_line_and_status_130(long_workbook: Path,
                                                         delay: float) -> None:
    status, stderr = _interrupt([sys.executable, "-c", READY, "sync", str(long_workbook),
                                 "-q"], delay, ready=True)
    # One line: the message alone, after the empty line click writes ("closes the
    # terminal's ^C echo") when the Ctrl-C comes while click itself runs (parsing the
    # arguments, before the command's own handling): a busy machine shows it
    said = stderr.lstrip("\n")
    assert (status, said.count("\n")) == (130, 1), repr(stderr)
    assert said.startswith(INTERRUPTED_LINE), repr(stderr)


def test_the_installed_command_is_run_and_says_ctrl_c_in_one_line(long_workbook: Path) -> None:
    """The ``xlstock`` script pip installed calls :func:`xlstock.__main__.run` (what the test
    above interrupts), and a Ctrl-C once Python has started (its own start takes 20 ms
    or so, far more on a busy machine: 0.3 s leaves room) ends in the one line."""
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "xlstock"]
    assert script.value == "xlstock.__main__:run"
    status, stderr = _interrupt([str(Path(sys.executable).with_name("xlstock")), "sync",
                                 str(long_workbook), "-q"], 0.3, ready=False)
    assert "Traceback" not in stderr
    assert status == 130 and stderr.count("\n") == 1, stderr


def test_a_late_ctrl_c_leaves_the_commands_own_status(tmp_path: Path) -> None:
    """Once the command is done, a Ctrl-C (while Python shuts down) changes nothing: the
    status is the command's, never death by the signal."""
    import xlstock.__main__ as entry

    book = tmp_path / "stock.xlsx"
    assert CliRunner().invoke(main, ["new", str(book), "-q"]).exit_code == 0
    check = ("import os, signal, sys\n"
             "import xlstock.__main__ as entry\n"
             "try:\n"
             "    entry.run()\n"
             "finally:\n"
             "    os.kill(os.getpid(), signal.SIGINT)\n")
    done = subprocess.run([sys.executable, "-c", check, "validate", str(book)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Sheet Stock is valid" in done.stdout and done.stderr == ""
    assert entry.EXIT_INTERRUPTED == 130


# --- installing: from a clone or a wheel, never a package index it is not on ---------------------


def test_the_readme_installs_from_a_clone_or_a_wheel_not_from_an_index() -> None:
    """``pip install xlstock`` finds nothing: xlstock is on no package index."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    from_index = re.findall(r"pip install [\"']?xlstock(?:\[[a-z,]+\])?[\"']?(?=[\s`]|$)", readme)
    assert from_index == []
    assert "python3 -m venv" in readme and "python -m build --wheel" in readme
    assert "pip install '.[server]' && xlstock demo" in readme
    assert "bash scripts/wheel-demo.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_wheel_carries_what_xlstock_demo_needs(tmp_path: Path) -> None:
    """``python -m build`` as the README says; scripts/wheel-demo.sh (run by CI) then
    installs this wheel in a fresh venv and runs the demo from it."""
    import zipfile

    scratch = ROOT / "build"  # setuptools' scratch folder, removed if this test made it
    had_scratch = scratch.exists()
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir",
                            str(tmp_path), str(ROOT)], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    if not had_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    (wheel,) = tmp_path.glob("xlstock-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt")))
        metadata = zf.read(next(n for n in names if n.endswith("/METADATA"))).decode()
    for needed in ("xlstock/data/sample_catalogue.csv", "xlstock/workbook/template.py",
                   "xlstock/cli/demo.py", "xlstock/server/account/templates/base.html",
                   "xlstock/server/account/static/account.css", "xlstock/py.typed"):
        assert needed in names, needed
    assert b"xlstock = xlstock.__main__:run" in entry_points
    assert "Provides-Extra: server" in metadata
    assert "WARNING `project.license`" not in built.stdout + built.stderr
