"""``dsreg train dtmf`` with no options, through the installed entry points (datasets and models)."""

from __future__ import annotations

import pytest

from dsreg.cli.train import run_train


@pytest.mark.slow
def test_dsreg_train_dtmf_with_no_options_learns(dsreg_cache, tmp_path):
    """The README's figure: the builder's train_defaults, from a fresh cache (prepare included), seed 0."""
    metrics, seconds = run_train(["dtmf", "--out", str(tmp_path / "run")])
    assert metrics["settings"]["model"] == "audio-cnn" and metrics["test"]["examples"] == 400
    assert metrics["test"]["accuracy"] >= 0.95 and seconds < 90, (metrics["test"], seconds)  # measured 1.00
