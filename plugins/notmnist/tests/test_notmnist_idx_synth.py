"""notmnist-idx on the real t10k files (and a pinned train-images file), and notmnist-synth end to end."""

from __future__ import annotations

import dataclasses
import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import dsreg
from dsreg_notmnist import NotMNISTIdx

from notmnistdata import column


def offline_idx() -> type[dsreg.Builder]:
    """notmnist-idx with its real checksums but no URLs, so a test can never reach the network."""
    files = tuple(dataclasses.replace(f, urls=()) for f in NotMNISTIdx.files)
    return type("NotMNISTIdx", (NotMNISTIdx,), {"files": files, "__module__": NotMNISTIdx.__module__})


def fake_train_images(fill: int) -> bytes:
    """A train-images idx file of 60,000 28x28 images (the real train-labels file has 60,000 labels)."""
    images = np.zeros((60_000, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = fill
    images[:, 1, :] = (np.arange(60_000) % 251)[:, None]
    header = (0x803).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (60_000, 28, 28))
    return gzip.compress(header + images.tobytes(), compresslevel=1)


def test_real_t10k_files_load_with_their_published_facts(dsreg_cache: Path, idx_data: Path) -> None:
    inf = dsreg.fetch("notmnist-idx", from_path=idx_data, splits="test", quiet=True)
    assert inf.manifest["splits"]["test"]["examples"] == 10_000 and list(inf.manifest["splits"]) == ["test"]
    assert {r["status"] for r in inf.fetched.values()} == {"verified"}
    assert inf.manifest["notes"]["duplicates_within_split"] == {"test": 10_000 - 9_804}
    test = dsreg.load("notmnist-idx", split="test", splits=["test"], normalize=False)
    images, labels = column(test, "image"), column(test, "label")
    assert Counter(labels.tolist()) == {i: 1_000 for i in range(10)}
    assert len({img.tobytes() for img in images}) == 9_804
    all_white = (images.reshape(len(images), -1) == 255).all(axis=1)
    assert all_white.sum() == 141 and set(labels[all_white].tolist()) == {8} and test.classes[8] == "I"


def test_the_test_split_alone_from_a_folder_holding_only_its_files(dsreg_cache: Path, idx_data: Path, tmp_path: Path, monkeypatch) -> None:
    import socket

    from click.testing import CliRunner

    from dsreg.cli import cli

    only_test = tmp_path / "t10k"
    only_test.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (only_test / name).write_bytes((idx_data / name).read_bytes())
    fetched = CliRunner().invoke(cli, ["fetch", "notmnist-idx", "--split", "test", "--from", str(only_test), "-q"])
    assert fetched.exit_code == 0, fetched.output
    assert "notmnist-idx: test 10,000 ->" in fetched.output

    def refuse(*args, **kwargs):
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert len(dsreg.load("notmnist-idx", split="test")) == 10_000  # the default config: the same store
    listed = CliRunner().invoke(cli, ["list"])
    row = next(line.split() for line in listed.output.splitlines() if line.startswith("notmnist-idx "))
    assert row[-1] == "test"
    with pytest.raises(dsreg.FetchError):  # train was never fetched, and the network is refused
        dsreg.load("notmnist-idx", split="train")
    assert dsreg.info("notmnist-idx").ready_splits == ("test",)


def test_the_full_configuration_names_the_missing_train_images(dsreg_cache: Path, idx_data: Path) -> None:
    with pytest.raises(dsreg.FetchError, match="train-images-idx3-ubyte.gz is not at"):
        dsreg.fetch("notmnist-idx", from_path=idx_data, quiet=True)
    with pytest.raises(dsreg.ConfigError, match="splits must name some of train, test"):
        dsreg.info("notmnist-idx", splits="validation")


def test_train_images_are_pinned_on_first_download_and_checked_after(
    dsreg_cache: Path, dsreg_register, dsreg_file_server, idx_data: Path
) -> None:
    dsreg_register(offline_idx())
    real = {p.name: p.read_bytes() for p in idx_data.glob("*.gz")}
    url = dsreg_file_server.serve({**real, "train-images-idx3-ubyte.gz": fake_train_images(1)})
    info = dsreg.info("notmnist-idx")
    assert [f.name for f in info.files if f.pin_on_first_download and f.checksum is None] == ["train-images-idx3-ubyte.gz"]
    inf = dsreg.fetch("notmnist-idx", mirrors=[url], quiet=True)
    assert {s: meta["examples"] for s, meta in inf.manifest["splits"].items()} == {"train": 60_000, "test": 10_000}
    record = inf.fetched["train-images-idx3-ubyte.gz"]
    assert record["status"] == "pinned" and inf.fetched["t10k-images-idx3-ubyte.gz"]["status"] == "verified"
    train = dsreg.load("notmnist-idx", split="train[:3]", normalize=False)
    assert column(train, "image")[:, 0, 1, :3].tolist() == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    dsreg_file_server.serve({"train-images-idx3-ubyte.gz": fake_train_images(2)})  # a mirror now serves other bytes
    (dsreg_cache / "downloads" / record["sha256"]).unlink()  # so the next fetch downloads it again
    with pytest.raises(dsreg.ChecksumError, match="pinned"):  # (--force would replace the pin, saying so)
        dsreg.fetch("notmnist-idx", mirrors=[url], quiet=True)


def test_synth_end_to_end_with_the_default_size(synth_cache: float) -> None:
    train = dsreg.load("notmnist-synth", split="train")
    assert len(train) == 10_000 and len(dsreg.load("notmnist-synth", split="test")) == 2_000
    assert train.classes == list("ABCDEFGHIJ")
    batch = next(iter(train.loader(batch_size=64, shuffle=True)))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (64, 1, 28, 28)
    assert -0.5 <= float(batch["image"].min()) < float(batch["image"].max()) <= 0.5
    assert batch["label"].dtype == torch.int64 and set(batch["label"].tolist()) <= set(range(10))
    assert Counter(column(train, "label").tolist()) == {i: 1_000 for i in range(10)}
    images = column(dsreg.load("notmnist-synth", split="train", normalize=False), "image").reshape(-1, 28, 28)
    # Near the real set (t10k: mean 108.8, 42.8 % of pixels > 127, 39 % anti-aliased; this recipe
    # measures 95.2, 37.7 % and 50.7 %): white glyphs on black that fill the box, soft edges.
    assert 85 < images.mean() < 120 and 0.33 < (images > 127).mean() < 0.46
    assert 0.35 < ((images > 0) & (images < 255)).mean() < 0.6
    assert (images[:, 0, :].max(axis=1) > 32).mean() > 0.95 and (images[:, :, 0].max(axis=1) > 32).mean() > 0.9
    notes = dsreg.info("notmnist-synth").manifest["notes"]
    assert notes["fonts"] and len({f["sha256"] for f in notes["fonts"]}) == len(notes["fonts"])


def test_synth_is_seeded_and_can_use_pillows_font_alone(tmp_path: Path, dsreg_cache: Path) -> None:
    def images(cache: str, **config) -> np.ndarray:
        ds = dsreg.load("notmnist-synth", split="train", cache_dir=tmp_path / cache, train_size=60, test_size=10, **config)
        return column(ds, "image")

    first = images("a", seed=3)
    assert np.array_equal(first, images("b", seed=3))
    assert not np.array_equal(first, images("c", seed=4))
    builtin = images("d", seed=3, fonts=["pillow:default"])
    assert builtin.shape == (60, 1, 28, 28) and builtin.max() == 255
    inf = dsreg.info("notmnist-synth", cache_dir=tmp_path / "d", train_size=60, test_size=10, seed=3, fonts=["pillow:default"])
    assert [f["name"] for f in inf.manifest["notes"]["fonts"]] == ["Aileron Regular"]
    with pytest.raises(dsreg.ConfigError, match="train_size must be a whole number"):
        dsreg.load("notmnist-synth", train_size=-1)
