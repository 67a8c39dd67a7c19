"""bench/bench_planner.py still runs against the core it times (it once called
``stockfile.dumps`` without the planned-from levels, and failed on its first size)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_planner.py"


def test_the_planner_bench_runs_on_a_small_sheet(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_planner", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--sizes", "300", "--repeat", "1", "--unknown-sizes", "50"])
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:1] == ["300"] for line in lines), lines
    assert any(line.split()[:1] == ["50"] for line in lines), lines
