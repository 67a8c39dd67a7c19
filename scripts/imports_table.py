"""Write the who-imports-whom table of docs/architecture.md from the code.

Usage: python scripts/imports_table.py          # rewrite the table in place
       python scripts/imports_table.py --check  # exit 1 when the doc says otherwise

Each module of xlstock/ gets a row naming the xlstock modules it imports: at the top of
the module, ``lazily`` (inside the function that needs it, so that a command loads only
what it uses) and ``for type hints`` (under ``if TYPE_CHECKING:``, never at run time).
``xlstock`` itself, imported for its version, is left out. tests/test_architecture.py
runs the check, so a change of imports must come with its table.
"""

from __future__ import annotations

import ast
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xlstock"
DOC = ROOT / "docs" / "architecture.md"
BEGIN = ("<!-- who-imports-whom: written by scripts/imports_table.py from the code; "
         "edit the code, then run it -->")
END = "<!-- end of who-imports-whom -->"


def module_name(path: Path) -> str:
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
    raise ValueError(f"no module for {name}")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        return []  # tests/test_architecture.py refuses relative imports
    base = node.module or ""
    return [f"{base}.{alias.name}" for alias in node.names]  # resolved to base or submodule


def imports(path: Path) -> dict[str, set[str]]:
    """The xlstock modules ``path`` imports, by when: ``top``, ``lazily``, ``types``."""
    found: dict[str, set[str]] = {"top": set(), "lazily": set(), "types": set()}

    def visit(node: ast.AST, when: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in _imported(child):
                    if name == "xlstock" or name.startswith("xlstock."):
                        found[when].add(_resolve(name))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, "lazily" if when == "top" else when)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for part in child.body:
                    visit(ast.Module(body=[part], type_ignores=[]), "types")
                for part in child.orelse:
                    visit(ast.Module(body=[part], type_ignores=[]), when)
            else:
                visit(child, when)

    visit(ast.parse(path.read_text(encoding="utf-8")), "top")
    me = module_name(path)
    for names in found.values():
        names -= {me, "xlstock"}
    found["lazily"] -= found["top"]
    found["types"] -= found["top"] | found["lazily"]
    return found


def _short(name: str) -> str:
    return f"`{name.removeprefix('xlstock.')}`"


def rows() -> list[str]:
    lines = ["| module | imports of xlstock |", "|---|---|"]
    for path in sorted(PACKAGE.rglob("*.py"), key=module_name):
        module = module_name(path)
        if module == "xlstock":
            continue
        found = imports(path)
        said = [", ".join(_short(n) for n in sorted(found["top"]))] if found["top"] else []
        for when, words in (("lazily", "lazily"), ("types", "for type hints")):
            if found[when]:
                said.append(f"{words} " + ", ".join(_short(n) for n in sorted(found[when])))
        lines.append(f"| {_short(module)} | {'; '.join(said) or 'nothing'} |")
    return lines


def rewritten(doc: str) -> str:
    """``doc`` with the text between the markers replaced by the table of the code."""
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC}: the markers of the table are missing:\n{BEGIN}\n{END}")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + "\n".join(rows()) + "\n" + END + tail


def main(argv: list[str]) -> int:
    doc = DOC.read_text(encoding="utf-8")
    new = rewritten(doc)
    if "--check" in argv:
        if new == doc:
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            doc.splitlines(keepends=True), new.splitlines(keepends=True),
            "docs/architecture.md", "the code's imports"))
        print("\nThe who-imports-whom table of docs/architecture.md is not the code's: "
              "run `python scripts/imports_table.py` and commit the result.")
        return 1
    if new != doc:
        DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
