"""notmnist-synth pushed to the local S3 server, then pulled by a machine with an empty cache: the same examples, no prepare."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli.app import cli
from dsreg_notmnist.builders import NotMNISTSynth

SMALL = {"train_size": 300, "test_size": 100}


def content_hash(ds) -> str:
    h = hashlib.sha256()
    for batch in ds.loader(batch_size=128, shuffle=False):
        h.update(batch["image"].numpy().tobytes() + batch["label"].numpy().tobytes())
    return h.hexdigest()


def test_push_then_load_with_remote_on_an_empty_cache(dsreg_cache: Path, dsreg_s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = dsreg_s3.bucket("notmnist-share") + "datasets"
    options = [word for key, value in SMALL.items() for word in ("-c", f"{key}={value}")]
    result = CliRunner().invoke(cli, ["push", "notmnist-synth", url, *options])  # prepares here first, then pushes
    assert result.exit_code == 0, result.output
    assert "notmnist-synth: train, test -> s3://notmnist-share/datasets/notmnist-synth/2.0.0-" in result.output
    here = {split: content_hash(dsreg.load("notmnist-synth", split, **SMALL)) for split in ("train", "test")}

    monkeypatch.setenv("DSREG_CACHE", str(tmp_path / "empty-cache"))

    def no_generate(self, split, files, **config):
        raise AssertionError("notmnist-synth prepared instead of pulling")

    monkeypatch.setattr(NotMNISTSynth, "generate", no_generate)
    there = {split: content_hash(dsreg.load("notmnist-synth", split, remote=url, **SMALL)) for split in ("train", "test")}
    assert there == here
    info = dsreg.info("notmnist-synth", **SMALL)
    assert info.ready_splits == ("train", "test")
    assert all(meta["pulled"].startswith(url) for meta in info.manifest["splits"].values())
    assert info.manifest["notes"]["fonts"]  # the remote's notes (fonts used) travel with the store
