"""The rule of docs/architecture.md, checked on the code: imports only run downward.

Every ``import`` of an xlstock module is read from the source (those inside functions
too), each module is put in its layer, and an import may only reach a lower layer, or
stay inside the module's own package. The core imports no third-party engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xlstock"

CORE = 0
SIDES = 1
"""The workbook layer, the stock-service client and the stock service: each uses the
core, and none of them the others."""
USES = 2
"""The actions, and the buttons builder: each uses the layers below, not the other."""
EDGES = 3

EDGE_MODULES = ("xlstock.cli", "xlstock.excel", "xlstock.__main__")
"""The command line (one package, the demo and the service's commands included), the
Excel buttons, ``python -m xlstock``."""
CORE_MODULES = ("xlstock", "xlstock.model", "xlstock.planner", "xlstock.stockfile",
                "xlstock.errors", "xlstock.cells", "xlstock.failpoints", "xlstock.i18n")
ENGINES = ("openpyxl", "xlwings", "lxml", "requests", "flask", "waitress", "psycopg",
           "olefile", "click")


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer(module: str) -> tuple[int, str]:
    """A module's layer, and the group it shares that layer with."""
    if any(_within(module, edge) for edge in EDGE_MODULES):
        return EDGES, "edges"
    if module in CORE_MODULES:
        return CORE, "core"
    for group in ("xlstock.workbook", "xlstock.remote", "xlstock.server"):
        if _within(module, group):
            return SIDES, group
    if _within(module, "xlstock.shops"):  # the platforms' connectors share remote's HTTP
        return SIDES, "xlstock.remote"
    for group in ("xlstock.actions", "xlstock.macros"):
        if _within(module, group):
            return USES, group
    raise AssertionError(f"{module} is in no layer of docs/architecture.md; add it there "
                         "and here")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str) -> str:
    """The xlstock module ``name`` is, or is in (``xlstock.workbook.layout.STOCK_HEADERS``
    -> ``xlstock.workbook.layout``)."""
    parts = name.split(".")
    while parts:
        place = ROOT.joinpath(*parts)
        if place.with_suffix(".py").is_file() or (place / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    raise AssertionError(f"no module for {name}")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, xlstock's resolved to their module."""
    module = _module_name(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module}: xlstock imports by absolute names only"
            base = node.module or ""
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            found.add(_resolve(name) if _within(name, "xlstock") else name.split(".")[0])
    found.discard(module)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_run_downward(path: Path) -> None:
    module = _module_name(path)
    level, group = layer(module)
    upward = []
    for target in sorted(imports(path)):
        if not _within(target, "xlstock") or target == "xlstock":
            continue
        target_level, target_group = layer(target)
        if target_level < level or target_group == group:
            continue
        upward.append(f"{target} (layer {target_level}, {target_group})")
    assert not upward, f"{module} (layer {level}, {group}) imports " + ", ".join(upward)


@pytest.mark.parametrize("module", CORE_MODULES[1:])
def test_the_core_uses_no_engine(module: str) -> None:
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert not imports(path) & set(ENGINES)


def test_sync_and_publish_never_load_the_buttons_builder() -> None:
    """Nothing but the edges imports xlstock.macros (docs/architecture.md)."""
    for path in SOURCES:
        module = _module_name(path)
        if layer(module)[0] != EDGES and not _within(module, "xlstock.macros"):
            assert not any(_within(t, "xlstock.macros") for t in imports(path)), module
