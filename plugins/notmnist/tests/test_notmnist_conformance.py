"""The core's conformance suite (dsreg.testing.check_builder) on each notMNIST dataset."""

from __future__ import annotations

from pathlib import Path

from dsreg.testing import check_builder
from dsreg_notmnist import NotMNIST, NotMNISTIdx, NotMNISTSmall, NotMNISTSynth
from dsreg_notmnist.testing import Pair


def test_notmnist_conforms(pair: Pair) -> None:
    report = check_builder(NotMNIST, files=pair.paths, config={"validation_size": 50})
    assert report.splits["validation"] <= 50 and report.splits["test"] == 300


def test_notmnist_small_conforms(pair: Pair) -> None:
    report = check_builder(NotMNISTSmall, files={"notMNIST_small.tar.gz": pair.paths["notMNIST_small.tar.gz"]})
    assert report.splits == {"test": 60, "train": 240}


def test_notmnist_idx_conforms_on_the_real_t10k_files(idx_data: Path) -> None:
    report = check_builder(NotMNISTIdx, from_path=idx_data, config={"splits": ["test"]})
    assert report.splits == {"test": 10_000}


def test_notmnist_synth_conforms() -> None:
    report = check_builder(NotMNISTSynth, config={"train_size": 200, "test_size": 50})
    assert report.splits == {"train": 200, "test": 50}
