"""benchmarks/shards.py runs end to end and writes its table (a smoke test: never a speed)."""

from __future__ import annotations

import os

import pytest

from benchmarks import shards


@pytest.mark.slow
def test_quick_shards_benchmark_writes_every_row(tmp_path) -> None:
    before = dict(os.environ)
    out = tmp_path / "shards.md"
    args = ["--quick", "--reps", "1", "--n", "3000", "--size", "8MiB", "--work", str(tmp_path / "work"), "--out", str(out)]
    shards.main(args)  # one shard size: the other runs the same code
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "shard" in line]
    assert len(rows) == 7 and all("of 8 MiB" in row for row in rows), text
    for row in (
        "limit: uint8 tensor in RAM",
        "warm epoch, by CPU time",
        "cold first epoch, fresh process, with the prefetch",
        "DSREG_PREFETCH=0",
        "after prepare, pages in the page cache",
    ):
        assert row in text
    assert "nan" not in text and dict(os.environ) == before  # DSREG_SHARD_BYTES does not leak into other tests
    assert list((tmp_path / "work").iterdir()) == []  # its caches are removed
