"""The benchmark suite's --quick mode runs end to end (a smoke test: it checks that it runs, never a speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_run_writes_every_section(tmp_path):
    pytest.importorskip("dsreg_notmnist", reason="the benchmarks generate data with the notMNIST plugin")
    pytest.importorskip("matplotlib", reason="the benchmarks draw a chart")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--quick", "--out", str(tmp_path / "results"), "--work", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = list((tmp_path / "results").glob("*-quick.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert {r["section"] for r in result["rows"]} == {"prepare", "epoch", "startup", "trainer", "memory"}
    assert all(r["value"] > 0 for r in result["rows"])
    assert {t["target"].split(" ")[0] for t in result["targets"]} >= {"prepare", "epoch:", "`dsreg", "Trainer", "peak"}
    assert results[0].with_suffix(".png").stat().st_size > 10_000
    assert "| target | this run | goal | met |" in results[0].with_suffix(".md").read_text()
