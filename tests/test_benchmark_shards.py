"""benchmarks/shards.py runs end to end and writes its table (a smoke test: never a speed)."""

from __future__ import annotations

import os

import pytest

from benchmarks import shards


@pytest.mark.slow
def test_quick_shards_benchmark_writes_every_row(tmp_path) -> None:
    before = dict(os.environ)
    out = tmp_path / "shards.md"
    shards.main(["--quick", "--reps", "1", "--n", "3000", "--work", str(tmp_path / "work"), "--out", str(out)])
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "shard" in line]
    assert len(rows) == 12, text
    for row in (
        "limit: uint8 tensor in RAM",
        "warm epoch, by CPU time",
        "cold first epoch, fresh process, with the prefetch",
        "DSREG_PREFETCH=0",
    ):
        assert row in text
    assert "nan" not in text and dict(os.environ) == before  # DSREG_SHARD_BYTES does not leak into other tests
    assert list((tmp_path / "work").iterdir()) == []  # its caches are removed
