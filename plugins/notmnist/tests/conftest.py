"""Fixtures of the dsreg-notmnist tests: a generated archive pair, the real idx files, a shared synth cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import filelock
import pytest

from dsreg_notmnist.testing import Pair, make_pair

from notmnistdata import DATA


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """A small archive pair in the real layout: 30 + 120 images per class, one corrupt member in each."""
    return make_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture
def idx_data() -> Path:
    folder = DATA / "notmnist-idx"
    if not (folder / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"the real idx files are not at {folder} (set DSREG_NOTMNIST_DATA)")
    return folder


@pytest.fixture
def synth_cache(dsreg_cache: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> float:
    """DSREG_CACHE set to one cache holding notmnist-synth prepared at its default size; returns the prepare's seconds.

    Rendering the 12,000 default images costs seconds of CPU, and the tests using this cache only read
    it, so it is prepared once per run: in a folder every xdist worker of the run shares, under a lock,
    with the seconds the prepare took written beside it for a test that holds the whole path to a bar.
    """
    import dsreg

    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_dir = run_dir.parent  # each worker's basetemp is a folder of the run's
    root = run_dir / "notmnist-synth-default"
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("DSREG_CACHE", str(root / "cache"))
    seconds = root / "prepare-seconds"
    with filelock.FileLock(root / "lock"):
        if not seconds.exists():
            start = time.perf_counter()
            dsreg.fetch("notmnist-synth", quiet=True)
            seconds.write_text(f"{time.perf_counter() - start:.3f}")
    return float(seconds.read_text())
