"""No function of xlstock above cyclomatic complexity 15 (issue 23, point 2), counted as
``radon cc`` counts it: each function on its own, nested functions and methods apart.
ruff's C901 gate (pyproject.toml) holds the same line at lint time."""

from __future__ import annotations

from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Class, Function

LIMIT = 15
PACKAGE = Path(__file__).resolve().parents[1] / "xlstock"


def _functions(blocks: list[Function | Class]) -> dict[tuple[int, str], int]:
    found: dict[tuple[int, str], int] = {}
    for block in blocks:
        if isinstance(block, Class):
            found |= _functions(list(block.methods) + list(block.inner_classes))
        else:
            found[block.lineno, block.fullname] = block.complexity
            found |= _functions(list(block.closures))
    return found


def over_the_limit(path: Path, root: Path) -> dict[str, int]:
    """``file:function`` -> complexity, for the functions of ``path`` above the limit."""
    functions = _functions(cc_visit(path.read_text(encoding="utf-8")))
    return {f"{path.relative_to(root)}:{name}": complexity
            for (_, name), complexity in functions.items() if complexity > LIMIT}


def test_no_function_is_above_the_limit():
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found |= over_the_limit(path, PACKAGE.parent)
    above = [f"{name} ({complexity})" for name, complexity in sorted(found.items())]
    assert above == [], (f"above complexity {LIMIT}: split into named steps:\n"
                         + "\n".join(above))


def test_the_count_sees_nested_functions_and_methods(tmp_path):
    branches = "\n".join(f"        if x == {i}:\n            return {i}" for i in range(LIMIT))
    (tmp_path / "nested.py").write_text(
        f"def outer():\n    def inner(x):\n{branches}\n    return inner\n\n\n"
        f"class Kind:\n    def method(self, x):\n{branches}\n\n\n"
        f"def flat(x):\n{branches.replace('        ', '    ')}\n")
    found = over_the_limit(tmp_path / "nested.py", tmp_path)
    assert found == {"nested.py:inner": LIMIT + 1, "nested.py:Kind.method": LIMIT + 1,
                     "nested.py:flat": LIMIT + 1}
