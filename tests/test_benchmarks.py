"""The benchmark suite's --quick mode runs end to end (a smoke test: it checks that it runs, never a speed)."""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest


@pytest.mark.slow
def test_quick_benchmark_run_writes_every_section(tmp_path):
    """``python -m benchmarks run --quick``, called in this process: its own child processes are the ones it measures."""
    pytest.importorskip("dsreg_notmnist", reason="the benchmarks generate data with the notMNIST plugin")
    pytest.importorskip("matplotlib", reason="the benchmarks draw a chart")
    import torch

    from benchmarks.__main__ import main

    threads = torch.get_num_threads()
    try:
        with mock.patch.dict(os.environ):  # the run points DSREG_CACHE at its prepared copy and sets DSREG_BACKOFF
            main(["run", "--quick", "--out", str(tmp_path / "results"), "--work", str(tmp_path / "not" / "yet")])
    finally:
        torch.set_num_threads(threads)  # the trainer section times one thread
    results = list((tmp_path / "results").glob("*-quick.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert {r["section"] for r in result["rows"]} == {"prepare", "epoch", "startup", "trainer", "memory"}
    assert all(r["value"] > 0 for r in result["rows"])
    assert {t["target"].split(" ")[0] for t in result["targets"]} >= {"prepare", "epoch:", "`dsreg", "Trainer", "peak"}
    assert results[0].with_suffix(".png").stat().st_size > 10_000
    assert "| target | this run | goal | met |" in results[0].with_suffix(".md").read_text()


def test_hf_baseline_subset_leaves_out_files_pillow_cannot_decode(tmp_path):
    """The real notMNIST has truncated PNGs; HF imagefolder raises on them mid-epoch, so the subset skips them."""
    Image = pytest.importorskip("PIL.Image")
    from benchmarks import baselines

    root = tmp_path / "root"
    for letter in baselines.LETTERS:
        (root / letter).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (28, 28), 40 * i).save(root / letter / f"ok{i}.png")
    whole = (root / "A" / "ok0.png").read_bytes()
    (root / "A" / "bad-truncated.png").write_bytes(whole[: len(whole) - 20])  # sorts first in A
    (root / "B" / "bad-empty.png").write_bytes(b"")

    left_out = baselines.readable_subset(root, tmp_path / "subset", per_class=2)

    assert left_out == 2
    for letter in baselines.LETTERS:
        linked = sorted(p.name for p in (tmp_path / "subset" / letter).iterdir())
        assert linked == ["ok0.png", "ok1.png"]


def test_report_of_a_run_without_throughput_sections_has_no_chart(tmp_path):
    from benchmarks import report

    rows = [{"section": "startup", "name": "dsreg list", "value": 0.2, "unit": "s", "runs": 3, "note": ""}]
    result = {
        "date": "2026-12-02",
        "command": "python -m benchmarks run --sections startup",
        "machine": {"description": "test"},
        "rows": rows,
        "targets": report.targets(rows),
    }

    paths = report.write(result, tmp_path / "out", "run")

    assert set(paths) == {"json", "md"}
    assert not (tmp_path / "out" / "run.png").exists()
    assert "| startup | dsreg list |" in paths["md"].read_text()
