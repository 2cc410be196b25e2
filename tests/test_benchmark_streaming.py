"""benchmarks/streaming.py --quick runs end to end and writes its table (a smoke test: never a speed)."""

from __future__ import annotations

import os

import pytest

from benchmarks import streaming
from dsreg.testing.s3 import missing


@pytest.mark.slow
def test_quick_streaming_benchmark_writes_every_row(tmp_path) -> None:
    if missing():
        pytest.skip(missing())
    before = dict(os.environ)
    out = tmp_path / "streaming.md"
    streaming.main(["--quick", "--examples", "600", "--out", str(out)])
    text = out.read_text()
    for row in (
        "| map-style:",
        "| streaming, local shards",
        "| streaming from the local S3 server",
        "| the same, workers 2",
        "| workers 0 (most",
    ):
        assert row in text
    assert dict(os.environ) == before  # the benchmark's AWS_* and DSREG_* settings do not leak into other tests
    limit_ratio = [line for line in text.splitlines() if line.startswith("| workers 0 (most")][0].split("|")[3]
    assert 0 < float(limit_ratio) <= 1.0  # the cache stayed under its limit
