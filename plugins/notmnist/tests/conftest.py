"""Fixtures of the dsreg-notmnist tests: a generated archive pair and the real idx files."""

from __future__ import annotations

from pathlib import Path

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
