"""benchmarks/remote.py --quick runs end to end and writes its table (a smoke test: never a speed)."""

from __future__ import annotations

import os

import pytest

from benchmarks import remote
from dsreg.testing.s3 import missing


def test_quick_remote_benchmark_writes_both_sides_of_push_and_pull(tmp_path) -> None:
    if missing():
        pytest.skip(missing())
    before = dict(os.environ)
    out = tmp_path / "remote.md"
    remote.main(["--quick", "--examples", "200", "--out", str(out)])
    text = out.read_text()
    for row in ("push: s3fs `fs.put`", "push: `dsreg.push(...)`", "pull: s3fs `fs.get`", "pull: `dsreg.fetch(..., remote=URL)"):
        assert row in text
    assert dict(os.environ) == before  # the benchmark's AWS_* and DSREG_* settings do not leak into other tests
    if "| nan" in text:
        pytest.fail(text)
