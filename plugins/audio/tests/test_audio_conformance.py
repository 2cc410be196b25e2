"""The core's conformance suite on both audio builders."""

from __future__ import annotations

import pytest

from dsreg.testing import check_builder, fake_flac, fake_tree, fake_wav, pack
from dsreg_audio.builders import AudioFolder, Dtmf


@pytest.mark.parametrize("features", ["waveform", "log-mel"])
def test_dtmf_conforms(features):
    check_builder(Dtmf, config={"features": features, "per_key_train": 3, "per_key_test": 1})


def test_audiofolder_conforms(tmp_path):
    tree = {**fake_tree(("dog", "cat"), 3, make=fake_wav, ext="wav"), **fake_tree(("dog", "cat"), 2, make=fake_flac, ext="flac", seed=1)}
    (tmp_path / "clips.zip").write_bytes(pack(tree, "zip"))
    check_builder(AudioFolder, config={"url": str(tmp_path / "clips.zip"), "features": "log-mel", "sample_rate": 16000})
