"""``audiofolder`` and ``dtmf``: containers, decoding, resampling, corrupt files, splits, batches, a model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import dsreg
from dsreg.cli import cli
from dsreg.errors import ConfigError
from dsreg.testing import pack, write_tree
from dsreg_audio.builders import AudioFolder, Dtmf
from dsreg_audio.decode import Options, Record, decode
from dsreg_audio.dtmf import CLASSES, COLUMNS, KEYS, ROWS, frequencies

from audiodata import CLASS_HZ, class_tree, encode, sine


@pytest.fixture(autouse=True)
def audio_registry(dsreg_cache, dsreg_register):
    dsreg_register(AudioFolder, Dtmf)


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * rate / len(x))


TREE = class_tree(per_class=5, prefix="clips/")  # 15 files: wav, flac, ogg; mono and stereo; 22.05 kHz


@pytest.mark.parametrize("container", ["folder", "zip", "tar.gz", "http-zip", "http-tar.gz"])
def test_every_container_gives_the_same_examples(tmp_path, dsreg_file_server, container):
    if container == "folder":
        url = str(write_tree(tmp_path / "data", TREE))
    elif container.startswith("http-"):
        fmt = container[5:]
        url = dsreg_file_server.serve({f"clips.{fmt}": pack(TREE, fmt)}) + f"clips.{fmt}"
    else:
        url = str(tmp_path / f"clips.{container}")
        (tmp_path / f"clips.{container}").write_bytes(pack(TREE, container))
    splits = dsreg.load("audiofolder", url=url, sample_rate=16000)
    assert {s: len(ds) for s, ds in splits.items()} == {"train": 12, "test": 3}
    train = splits["train"]
    assert train.classes == ["high", "low", "mid"]
    for i in range(len(train)):
        example = train[i]
        wave = example["waveform"]
        assert wave.dtype == torch.float32 and wave.dim() == 1 and 0.2 * 16000 - 2 <= len(wave) <= 0.6 * 16000 + 2
        hz = CLASS_HZ[train.classes[int(example["label"])]]
        assert abs(dominant_hz(wave.numpy(), 16000) - hz) < 10  # resampled, not re-pitched


def test_decode_mixes_down_resamples_and_cuts():
    rate = 44100
    stereo = np.stack([sine(1000, 1.0, rate), -sine(1000, 1.0, rate) + sine(3000, 1.0, rate)], axis=1)
    out = decode(Record("a.flac", encode(stereo, rate, "flac"), 2, Options(16000, None, "waveform", 64)))
    wave = out["waveform"]
    assert out["label"] == 2 and wave.dtype == np.float32 and len(wave) == 16000
    # (L + R) / 2 cancels the 1 kHz tone and keeps half of the 3 kHz one.
    assert abs(dominant_hz(wave, 16000) - 3000) < 2
    assert abs(np.abs(wave[1000:-1000]).max() - 0.25) < 0.02
    cut = decode(Record("a.wav", encode(sine(500, 2.0, 8000), 8000), 0, Options(16000, 0.5, "waveform", 64)))
    assert len(cut["waveform"]) == 8000
    mel = decode(Record("a.wav", encode(sine(500, 1.0, 8000), 8000), 0, Options(16000, None, "log-mel", 40)))
    assert mel["log_mel"].shape == (101, 40) and mel["log_mel"].dtype == np.float32


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "not a readable audio file"),
        (b"", "not a readable audio file"),
        (b"\x00" * 1000, "not a readable audio file"),
    ],
)
def test_corrupt_bytes_raise_skip(data, reason):
    with pytest.raises(dsreg.Skip, match=reason):
        decode(Record("bad.wav", data, 0, Options(16000, None, "waveform", 64)))


def test_corrupt_and_empty_files_are_skipped_and_counted(tmp_path):
    tree = dict(TREE)
    good_flac = tree["clips/low/01.flac"]
    tree["clips/low/broken.wav"] = b"RIFF\x24\x00\x00\x00WAVEnot really"
    tree["clips/mid/cut.flac"] = good_flac[:40]
    tree["clips/high/empty.wav"] = encode(np.zeros(0, np.float32), 16000)
    tree["clips/README.md"] = b"not audio"
    url = str(write_tree(tmp_path / "data", tree))
    info = dsreg.fetch("audiofolder", url=url, holdout=0.0, quiet=True, workers=2)
    skipped = {s["key"]: s["reason"] for s in info.manifest["splits"]["train"]["skipped"]}
    assert sorted(skipped) == ["clips/high/empty.wav", "clips/low/broken.wav", "clips/mid/cut.flac"]
    assert skipped["clips/high/empty.wav"] == "the file holds no audio frames"
    assert skipped["clips/low/broken.wav"].startswith("not a readable audio file (")
    assert "BytesIO" not in skipped["clips/low/broken.wav"]
    assert info.manifest["splits"]["train"]["examples"] == 15
    assert info.manifest["notes"]["ignored_files"] == {"count": 1, "first": ["clips/README.md"]}
    assert list(info.splits) == ["train"]  # holdout=0: no empty test split
    out = CliRunner().invoke(cli, ["fetch", "audiofolder", "-c", f"url={url}", "-c", "holdout=0.0"])
    assert "train 15; 3 skipped (see `dsreg info audiofolder`)" in out.output


def test_split_folders_and_stratified_holdout(tmp_path):
    tree = {**class_tree(4, "train/", seed=1), **class_tree(2, "validation/", seed=2), **class_tree(2, "test/", seed=3)}
    url = str(write_tree(tmp_path / "split", tree))
    assert dsreg.info("audiofolder", url=url).splits == ("train", "validation", "test")
    splits = dsreg.load("audiofolder", url=url)
    assert {s: len(ds) for s, ds in splits.items()} == {"train": 12, "validation": 6, "test": 6}
    flat = str(write_tree(tmp_path / "flat", class_tree(10, seed=4)))
    test = dsreg.load("audiofolder", split="test", url=flat, holdout=0.3, seed=1)
    assert Counter(int(test[i]["label"]) for i in range(len(test))) == {0: 3, 1: 3, 2: 3}
    other = dsreg.load("audiofolder", split="test", url=flat, holdout=0.3, seed=2)
    fingerprint = lambda ds: sorted(len(ds[i]["waveform"]) for i in range(len(ds)))  # noqa: E731
    assert fingerprint(test) != fingerprint(other)
    with pytest.raises(ConfigError, match="no class folders"):
        dsreg.fetch("audiofolder", url=str(write_tree(tmp_path / "none", {"a.wav": TREE["clips/low/00.wav"]})), quiet=True)
    with pytest.raises(ConfigError, match="features 'mfcc' is not one of waveform, log-mel"):
        dsreg.info("audiofolder", url=flat, features="mfcc")


@pytest.mark.parametrize("features,column", [("waveform", "waveform"), ("log-mel", "log_mel")])
def test_collate_pads_to_the_longest_with_lengths_and_mask(tmp_path, features, column):
    url = str(write_tree(tmp_path / "data", TREE))
    ds = dsreg.load("audiofolder", split="train", url=url, features=features, sample_rate=8000)
    batch = ds.collate_fn(ds.__getitems__(list(range(6))))
    assert set(batch) == {column, "label", "lengths", "attention_mask"}
    x, lengths, mask = batch[column], batch["lengths"], batch["attention_mask"]
    assert x.dtype == torch.float32 and lengths.dtype == torch.int64 and mask.dtype == torch.bool
    assert x.shape[:2] == mask.shape and x.shape[1] == lengths.max()
    assert torch.equal(mask.sum(1), lengths)
    for i in range(6):
        n = int(lengths[i])
        assert torch.equal(x[i, :n], ds[i][column]) and not x[i, n:].any()
    if features == "log-mel":
        assert x.shape[2] == 64


def test_dtmf_keys_follow_itu_q23():
    assert ROWS == (697, 770, 852, 941) and COLUMNS == (1209, 1336, 1477, 1633)
    assert frequencies("5") == (770, 1336) and frequencies("#") == (941, 1477) and frequencies("D") == (941, 1633)
    assert sorted(CLASSES) == sorted(k for row in KEYS for k in row) and len(CLASSES) == 16


def test_dtmf_offline_end_to_end_with_workers_and_a_model(monkeypatch):
    monkeypatch.setenv("DSREG_OFFLINE", "1")
    splits = dsreg.load("dtmf", features="log-mel", per_key_train=6, per_key_test=2)
    train, test = splits["train"], splits["test"]
    assert (len(train), len(test)) == (96, 32) and train.classes == list(CLASSES)
    assert Counter(int(train[i]["label"]) for i in range(len(train))) == {i: 6 for i in range(16)}
    wave = dsreg.load("dtmf", split="test", per_key_train=6, per_key_test=2)
    example = wave[0]
    low, high = frequencies(CLASSES[int(example["label"])])
    spectrum = np.abs(np.fft.rfft(example["waveform"].numpy(), n=8000))  # 1 Hz bins at 8 kHz
    top_two = sorted(np.argsort(spectrum)[-40:])
    assert any(abs(f - low) < 20 for f in top_two) and any(abs(f - high) < 30 for f in top_two)

    class TinyConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(64, 32, 3, padding=1)
            self.out = torch.nn.Linear(32, 16)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # [B, T, 32]
            h = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)  # max over real frames only
            return self.out(h)

    model = TinyConv()
    batches = list(train.loader(batch_size=8, shuffle=True, num_workers=2))
    assert sum(len(b["label"]) for b in batches) == 96
    b = batches[0]
    assert b["log_mel"].shape[0] == 8 and b["log_mel"].shape[2] == 64
    loss = torch.nn.functional.cross_entropy(model(b["log_mel"], b["attention_mask"]), b["label"])
    loss.backward()
    assert torch.isfinite(loss) and model.conv.weight.grad is not None
