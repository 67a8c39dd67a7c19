"""The layering of docs/architecture.md, checked on the code.

The rules are import-linter contracts in pyproject.toml (``[tool.importlinter]``: the
layers, the connectors standing alone, no cycles between the modules of a package, the
pure core); grimp reads every import, those inside functions and under ``TYPE_CHECKING``
too. These tests run ``lint-imports``, show on a copy of the package that each contract
breaks on the import it is there to refuse, and check what import-linter cannot see:
imports by name (``importlib``), relative imports, the submodule of a standard package
(grimp sees ``urllib``, not ``urllib.parse``), and the who-imports-whom table.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xlstock"
SOURCES = sorted(PACKAGE.rglob("*.py"))
CORE = ("model", "planner", "stockfile", "errors", "cells", "failpoints", "i18n")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package and pyproject.toml found in ``root``."""
    command = [str(LINT_IMPORTS), "--no-cache", "--no-logo"]
    for contract in contracts:
        command += ["--contract", contract]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_import_keeps_the_contracts() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The package and its contracts, copied where one bad import can be planted."""
    shutil.copytree(PACKAGE, tmp_path / "xlstock",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


PLANTED = [
    # (the module, what is added to it, the contract that must break)
    ("model.py", "import sqlite3", "pure-core"),
    ("planner.py", "import socket", "pure-core"),
    ("stockfile.py", "import zipfile", "pure-core"),
    ("errors.py", "import defusedxml", "pure-core"),
    ("cells.py", "import keyring", "pure-core"),
    ("model.py", "import importlib", "pure-core"),
    ("planner.py", "def lazy():\n    import openpyxl", "pure-core"),
    ("workbook/base.py", "from xlstock.workbook import layout", "no-cycles"),
    ("server/storage.py", "from xlstock import actions", "layers"),
    ("workbook/layout.py", "def lazy():\n    from xlstock.server import storage", "layers"),
    ("remote/client.py", "from xlstock.shops import shopify", "layers"),
    ("actions.py", "from xlstock.macros import install", "layers"),
    ("newcomer.py", "# a module in no layer", "layers"),
    ("shops/shopify.py", "from xlstock.workbook import layout", "shops"),
    ("shops/shopify.py", "from xlstock.shops import woocommerce", "connectors"),
    ("shops/woocommerce.py", "from xlstock.remote import client", "connectors"),
]


@pytest.mark.parametrize(("module", "planted", "contract"), PLANTED,
                         ids=[f"{m}:{c}:{p.split()[-1]}" for m, p, c in PLANTED])
def test_each_contract_refuses_what_it_is_for(copy: Path, module: str, planted: str,
                                              contract: str) -> None:
    assert lint_imports(copy, contract).returncode == 0
    path = copy / "xlstock" / module
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(f"{text}\n\n{planted}\n", encoding="utf-8")
    run = lint_imports(copy, contract)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 broken" in run.stdout


# What import-linter cannot see


def imported_by_name(source: str) -> list[str]:
    """The places where ``source`` imports a module by name at run time (grimp sees
    only ``import`` statements)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            called = node.func
            name = called.id if isinstance(called, ast.Name) else getattr(called, "attr", "")
            if name in ("import_module", "__import__", "run_module", "run_path"):
                found.append(f"line {node.lineno}: {name}()")
    return found


def relative_imports(source: str) -> list[str]:
    return [f"line {node.lineno}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.level]


def urllib_beyond_parse(source: str) -> list[str]:
    """Imports of urllib's submodules other than the pure ``urllib.parse``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
            if node.module == "urllib":
                names = [f"urllib.{alias.name}" for alias in node.names]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names
                  if name.split(".")[0] == "urllib" and name != "urllib.parse"]
    return found


@pytest.mark.parametrize(("check", "bad"), [
    (imported_by_name, "import importlib\nimportlib.import_module('xlstock.server.app')"),
    (imported_by_name, "from importlib import import_module\nimport_module('flask')"),
    (imported_by_name, "__import__('sqlite3')"),
    (relative_imports, "from . import model"),
    (urllib_beyond_parse, "from urllib import request"),
    (urllib_beyond_parse, "import urllib.request"),
])
def test_the_checks_below_can_fail(check: Callable[[str], list[str]], bad: str) -> None:
    assert check(bad)


def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_is_a_statement_lint_imports_reads(path: Path) -> None:
    """An import by name (``importlib.import_module``) would pass the contracts unseen:
    a lazy import is a plain ``import`` inside the function that needs it."""
    assert not imported_by_name(_source(path))
    assert not relative_imports(_source(path)), "xlstock imports by absolute names only"


@pytest.mark.parametrize("module", CORE)
def test_the_core_reads_no_url(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    if path.exists():
        assert not urllib_beyond_parse(_source(path))


def test_the_who_imports_whom_table_is_the_codes() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "imports_table.py"),
                          "--check"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_table_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    script = (ROOT / "scripts" / "imports_table.py").read_text(encoding="utf-8")
    copy = tmp_path / "scripts" / "imports_table.py"
    copy.parent.mkdir()
    copy.write_text(script, encoding="utf-8")
    shutil.copytree(PACKAGE, tmp_path / "xlstock",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "architecture.md", tmp_path / "docs")
    check = [sys.executable, str(copy), "--check"]
    assert subprocess.run(check, capture_output=True, timeout=60).returncode == 0
    layout = tmp_path / "xlstock" / "workbook" / "layout.py"
    layout.write_text(_source(layout) + "\n\ndef lazy():\n    from xlstock import failpoints\n",
                      encoding="utf-8")
    stale = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert stale.returncode == 1
    added = [line for line in stale.stdout.splitlines() if line.startswith("+| `workbook.layout`")]
    assert len(added) == 1 and "`failpoints`" in added[0], stale.stdout
    subprocess.run([sys.executable, str(copy)], check=True, timeout=60)
    assert subprocess.run(check, capture_output=True, timeout=60).returncode == 0


GETTEXT_NAMES = ("_", "_n")


def private_names_of_others(source: str, module: str) -> list[str]:
    """The private names (``_name``) of another xlstock module that ``source`` uses:
    a helper two modules need is public, in one place. gettext's ``_`` and ``_n``
    (:mod:`xlstock.i18n`) are public by convention."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xlstock"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") \
                        and alias.name not in GETTEXT_NAMES:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("xlstock"):
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and aliases[node.value.id] != module \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_private_names_check_can_fail() -> None:
    assert private_names_of_others(
        "from xlstock.workbook import safety\nsafety._damaged('a', None)", "xlstock.x")
    assert private_names_of_others("from xlstock.model import _whole", "xlstock.x")
    assert not private_names_of_others("from xlstock.i18n import _, _n", "xlstock.x")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_another_ones_private_helpers(path: Path) -> None:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    assert not private_names_of_others(_source(path), module)


def test_every_contract_is_shown_to_break() -> None:
    from importlinter.api import read_configuration

    contracts = read_configuration(config_filename=str(ROOT / "pyproject.toml"))
    ids = {options["id"] for options in contracts["contracts_options"]}
    assert ids == {contract for _, _, contract in PLANTED}
