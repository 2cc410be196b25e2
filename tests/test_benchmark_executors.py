"""benchmarks/executors.py runs end to end and writes its table (a smoke test: never a speed)."""

from __future__ import annotations

import pytest

from benchmarks import executors


@pytest.mark.slow
def test_quick_executors_benchmark_writes_every_row(tmp_path) -> None:
    pytest.importorskip("distributed", reason="Dask's distributed is not installed (pip install 'dsreg[dask]')")
    out = tmp_path / "executors.md"
    executors.main(["--quick", "--work", str(tmp_path / "work"), "--out", str(out)])
    text = out.read_text()
    for row in (
        "| today's path (pool decodes, written here by size) |",
        "| local pool, planned shards |",
        "| Dask LocalCluster, one task per shard |",
        "| train-00000.arrow | 1,000 |",
        "| 64 | ",
    ):
        assert row in text, text
    assert "Pillow decodes a generated 256x256 RGB JPEG" in text and "nan" not in text
    assert list((tmp_path / "work").iterdir()) == []  # its caches are removed
