"""The offline ``shapes`` sample, through the real entry point; plugin import stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dsreg
from dsreg.cli.train import run_train
from dsreg_image.shapes import CLASSES, draw


def test_entry_point_registers_both_datasets() -> None:
    assert {"imagefolder", "shapes"} <= set(dsreg.names())


def test_importing_the_plugin_loads_no_heavy_module() -> None:
    code = "import sys, dsreg_image.plugin; print(sorted(m for m in ('PIL', 'numpy', 'torch', 'datasets') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_draw_is_deterministic_and_classes_differ() -> None:
    assert np.array_equal(draw(2, 0, "train", 7), draw(2, 0, "train", 7))
    assert not np.array_equal(draw(2, 0, "train", 7), draw(2, 1, "train", 7))
    assert draw(0, 0, "train", 0, size=20).shape == (3, 20, 20)


def test_sample_end_to_end_offline(dsreg_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("DSREG_OFFLINE", "1")  # nothing to download: drawn at prepare time
    train = dsreg.load("shapes", split="train", train_per_class=10, test_per_class=3, size=24)
    test = dsreg.load("shapes", split="test", train_per_class=10, test_per_class=3, size=24)
    assert (len(train), len(test)) == (60, 18)
    assert train.classes == list(CLASSES)
    batch = next(iter(train.loader(batch_size=8, shuffle=True, num_workers=2)))
    assert batch["image"].shape == (8, 3, 24, 24) and batch["image"].dtype == torch.uint8
    assert batch["label"].dtype == torch.int64
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 24 * 24, len(CLASSES)))
    loss = torch.nn.functional.cross_entropy(model(batch["image"].float() / 255), batch["label"])
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.slow
def test_dsreg_train_shapes_with_no_options_learns(dsreg_cache: Path, tmp_path: Path) -> None:
    """The README's figure: the builder's train_defaults, from a fresh cache (prepare included), seed 0."""
    metrics, seconds = run_train(["shapes", "--out", str(tmp_path / "run")])
    assert metrics["settings"]["model"] == "image-cnn" and metrics["test"]["examples"] == 1200
    assert metrics["test"]["accuracy"] >= 0.90 and seconds < 90, (metrics["test"], seconds)  # measured 0.95
