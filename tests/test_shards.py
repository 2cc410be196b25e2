"""The sharded prepared store: shard files and manifest entries, reading across shards, damage, leftovers."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

import dsreg
from dsreg.store.storage import (
    DEFAULT_SHARD_BYTES,
    FORMAT,
    MANIFEST,
    read_manifest,
    ready_splits,
    shard_bytes,
    split_shards,
    verify_split,
)

N_TRAIN, N_TEST = 300, 100


class Mixed(dsreg.Builder):
    """Fixed-shape images, a label, variable-length ids and text: every kind of column the store reads."""

    name = "mixed"
    features = {
        "image": dsreg.Tensor((4, 4), "uint8"),
        "label": dsreg.ClassLabel(("even", "odd")),
        "ids": dsreg.Tensor((None,), "int64"),
        "text": dsreg.Text(),
    }
    splits = ("train", "test")
    collate_fn = "pad"

    def generate(self, split, files, **config):
        lo, hi = (0, N_TRAIN) if split == "train" else (N_TRAIN, N_TRAIN + N_TEST)
        for i in range(lo, hi):
            yield str(i), example(i)


def example(i: int) -> dict:
    return {
        "image": np.full((4, 4), i % 251, dtype=np.uint8) + np.arange(16, dtype=np.uint8).reshape(4, 4),
        "label": i % 2,
        "ids": list(range(i, i + i % 5 + 1)),
        "text": f"row {i}",
    }


def expected(rows: list[int]) -> dict:
    examples = [example(i) for i in rows]
    return {
        "image": torch.from_numpy(np.stack([e["image"] for e in examples]).reshape(len(rows), 4, 4)),
        "label": [e["label"] for e in examples],
        "ids": [e["ids"] for e in examples],
        "text": [e["text"] for e in examples],
    }


def same(batch: dict, rows: list[int]) -> bool:
    want = expected(rows)
    return (
        torch.equal(batch["image"], want["image"])
        and batch["label"].tolist() == want["label"]
        and [t.tolist() for t in batch["ids"]] == want["ids"]
        and list(batch["text"]) == want["text"]
    )


@pytest.fixture
def sharded(dsreg_cache, dsreg_register, monkeypatch):
    """Mixed prepared with 1,000-byte shards (each about 40 examples); returns the store folder."""
    monkeypatch.setenv("DSREG_SHARD_BYTES", "1000")
    dsreg_register(Mixed)
    return dsreg.fetch("mixed", quiet=True).prepared_path


def test_shard_files_and_manifest_entries_match(sharded):
    manifest = read_manifest(sharded)
    assert manifest["format"] == FORMAT == 3
    for split, total in (("train", N_TRAIN), ("test", N_TEST)):
        shards = split_shards(manifest, split)
        assert [s["file"] for s in shards] == [f"{split}-{i:05d}.arrow" for i in range(len(shards))]
        assert len(shards) > 2 and sum(s["rows"] for s in shards) == manifest["splits"][split]["examples"] == total
        assert manifest["splits"][split]["bytes"] == sum(s["bytes"] for s in shards)
        for shard in shards:
            data = (sharded / shard["file"]).read_bytes()
            assert shard["bytes"] == len(data) and shard["sha256"] == hashlib.sha256(data).hexdigest()
        # A shard closes at the first example at or past the target: all but the last hold at least 1,000 bytes.
        assert all(s["bytes"] >= 1000 for s in shards[:-1])
        assert verify_split(sharded, manifest, split) == {}
    assert sorted(p.name for p in sharded.iterdir() if not p.name.endswith(".arrow")) == [MANIFEST]
    # Hugging Face datasets reads any shard on its own.
    import datasets

    first = datasets.Dataset.from_file(str(sharded / "train-00001.arrow"))
    assert first[0]["text"] == f"row {split_shards(manifest, 'train')[0]['rows']}"


def test_many_shards_read_the_same_as_one(sharded, dsreg_cache, monkeypatch, tmp_path):
    many = dsreg.load("mixed", split="train")
    assert len(many.parts) == len(split_shards(many.info.manifest, "train")) > 2
    monkeypatch.delenv("DSREG_SHARD_BYTES")
    one = dsreg.load("mixed", split="train", cache_dir=tmp_path / "one")
    assert len(one.parts) == 1
    everything = list(range(N_TRAIN))
    assert same(many.__getitems__(everything), everything) and same(one.__getitems__(everything), everything)
    # A shuffled batch spanning every shard, with negative indices, keeps its order.
    order = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(0)).tolist()
    assert same(many.__getitems__(order), order)
    assert same(many.__getitems__([-1, 0, -300]), [N_TRAIN - 1, 0, 0])
    assert all(int(many[i]["label"]) == i % 2 and many[i]["text"] == f"row {i}" for i in (0, 41, 299))
    # A batch inside one shard, and an empty one.
    assert same(many.__getitems__([3, 1]), [3, 1])
    assert len(many.__getitems__([])["image"]) == 0
    with pytest.raises(IndexError):
        many.__getitems__([N_TRAIN])
    seen = [row for batch in many.loader(batch_size=64, shuffle=True) for row in batch["text"]]
    assert sorted(seen) == sorted(f"row {i}" for i in everything)
    hf = many.to_hf()
    assert len(hf) == N_TRAIN and hf["text"] == [f"row {i}" for i in everything] and hf[123]["ids"] == example(123)["ids"]


@pytest.mark.parametrize(
    "expr, rows",
    [
        ("train[30:170]", list(range(30, 170))),
        ("train[-50:]+test[:10]", list(range(250, 300)) + list(range(300, 310))),
        ("train[:10%]+train[90%:]", list(range(0, 30)) + list(range(270, 300))),
        ("test[41:42]", [341]),
        ("train[5:5]+test[-1:]", [399]),
    ],
)
def test_slices_across_shard_boundaries(sharded, expr, rows):
    ds = dsreg.load("mixed", split=expr)
    assert len(ds) == len(rows) and same(ds.__getitems__(list(range(len(rows)))), rows)
    assert [ds[i]["text"] for i in range(len(ds))] == [f"row {i}" for i in rows]
    assert ds.to_hf()["text"] == [f"row {i}" for i in rows]


def test_an_empty_slice_still_knows_its_columns(sharded):
    ds = dsreg.load("mixed", split="train[10:5]")
    assert len(ds) == 0 and list(ds.loader(batch_size=4)) == [] and len(ds.to_hf()) == 0


def test_a_shard_of_another_size_is_not_ready_and_is_prepared_again(sharded):
    shard = sharded / "train-00002.arrow"
    with open(shard, "r+b") as fh:
        fh.truncate(100)
    assert dsreg.info("mixed").ready_splits == ("test",)
    ds = dsreg.load("mixed", split="train")
    assert same(ds.__getitems__(list(range(N_TRAIN))), list(range(N_TRAIN)))
    assert verify_split(sharded, read_manifest(sharded), "train") == {}


def test_verify_split_names_the_damaged_shard(sharded):
    manifest = read_manifest(sharded)
    shard = sharded / "test-00001.arrow"
    data = bytearray(shard.read_bytes())
    data[-20] ^= 0xFF  # same size: only the sha256 tells
    shard.write_bytes(bytes(data))
    assert dsreg.info("mixed").cached  # readiness checks sizes only
    problems = verify_split(sharded, manifest, "test")
    assert list(problems) == ["test-00001.arrow"] and problems["test-00001.arrow"].startswith("sha256 ")
    from dsreg.cli.doctor import diagnose

    (said,) = [f.message for f in diagnose().findings if f.level == "error"]
    assert f"split 'test' fails its manifest check (shard test-00001.arrow has {problems['test-00001.arrow']}); " in said
    assert said.endswith(
        "`dsreg fetch mixed --split test --force` (with the store's -c config) prepares it again, or `dsreg cache rm mixed` removes it"
    )
    (sharded / "test-00002.arrow").unlink()
    assert verify_split(sharded, manifest, "test") == {
        "test-00001.arrow": problems["test-00001.arrow"],
        "test-00002.arrow": "missing",
    }
    findings = [f.message for f in diagnose().findings if f.level == "error"]
    assert any("split 'test' fails its manifest check (shard test-00002.arrow is missing" in m for m in findings), findings


def test_a_pulled_split_does_not_need_the_raw_files(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "train-00000.arrow").write_bytes(b"x" * 10)
    (folder / "train-00001.arrow").write_bytes(b"y" * 4)
    shards = [
        {"file": "train-00000.arrow", "rows": 3, "bytes": 10, "sha256": "a"},
        {"file": "train-00001.arrow", "rows": 1, "bytes": 4, "sha256": "b"},
    ]
    entry = {"examples": 4, "bytes": 14, "skipped": [], "files": {"raw.zip": {"sha256": "f" * 64, "status": "verified"}}, "shards": shards}
    manifest = {"format": FORMAT, "split_order": ["train", "test"], "splits": {"train": entry, "test": dict(entry)}}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    manifest = read_manifest(folder)
    assert ready_splits(folder, manifest, {}) == []  # prepared here: needs its raw files
    assert ready_splits(folder, manifest, {"raw.zip": "f" * 64}) == ["train", "test"]
    manifest["splits"]["train"]["pulled"] = "s3://bucket/dsreg/x"
    assert ready_splits(folder, manifest, {}) == ["train"]  # pulled: shard sizes only
    (folder / "train-00001.arrow").write_bytes(b"y")
    assert ready_splits(folder, manifest, {}) == []
    manifest["splits"]["train"]["shards"] = []
    assert ready_splits(folder, manifest, {"raw.zip": "f" * 64}) == []  # no shards, yet examples


def test_stores_of_the_previous_format_are_prepared_again(sharded):
    path = sharded / MANIFEST
    old = json.loads(path.read_text())
    path.write_text(json.dumps(old | {"format": 2}))
    (sharded / "train.arrow").write_bytes(b"old layout")
    assert read_manifest(sharded) is None and not dsreg.info("mixed").ready_splits
    assert len(dsreg.load("mixed", split="test")) == N_TEST
    assert not (sharded / "train.arrow").exists() and read_manifest(sharded)["format"] == 3


def test_preparing_again_with_fewer_shards_removes_the_extra_ones(sharded, monkeypatch):
    before = sorted(p.name for p in sharded.glob("train-*.arrow"))
    assert len(before) > 2
    monkeypatch.setenv("DSREG_SHARD_BYTES", "64MiB")
    dsreg.fetch("mixed", split="train", force=True, quiet=True)
    assert sorted(p.name for p in sharded.glob("train-*.arrow")) == ["train-00000.arrow"]
    assert len(list(sharded.glob("test-*.arrow"))) > 2  # the other split is untouched
    assert same(dsreg.load("mixed", split="train").__getitems__([0, 299]), [0, 299])


class Failing(Mixed):
    """Fails after writing several shards of its second split."""

    name = "failing"

    def generate(self, split, files, **config):
        for key, ex in super().generate(split, files):
            if split == "test" and int(key) == N_TRAIN + 90:
                raise RuntimeError("disk on fire")
            yield key, ex


def test_a_failure_mid_split_leaves_no_shard_of_it(dsreg_cache, dsreg_register, monkeypatch):
    monkeypatch.setenv("DSREG_SHARD_BYTES", "1000")
    dsreg_register(Failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        dsreg.fetch("failing", quiet=True)
    (store,) = (dsreg_cache / "datasets" / "failing" / "prepared").iterdir()
    names = sorted(p.name for p in store.iterdir())
    assert names == [MANIFEST, *sorted(s["file"] for s in split_shards(read_manifest(store), "train"))], names
    assert dsreg.info("failing").ready_splits == ("train",)


def test_orphan_shards_are_removed_by_the_next_prepare(sharded):
    (sharded / "extra-00000.arrow").write_bytes(b"renamed, never recorded")
    (sharded / ".test-00003.arrow.tmp-deadbeef").write_bytes(b"half")
    (sharded / "..test-00003.arrow.tmp-deadbeef.image.raw").write_bytes(b"side")
    (sharded / "test-00001.arrow").unlink()  # test must be prepared again
    dsreg.load("mixed", split="test")
    assert not [p.name for p in sharded.iterdir() if p.name.startswith(".") or p.name.startswith("extra")]


def test_shard_bytes_reads_sizes(monkeypatch):
    monkeypatch.delenv("DSREG_SHARD_BYTES", raising=False)
    assert shard_bytes() == DEFAULT_SHARD_BYTES == 64 << 20
    monkeypatch.setenv("DSREG_SHARD_BYTES", "8MiB")
    assert shard_bytes() == 8 << 20
    monkeypatch.setenv("DSREG_SHARD_BYTES", "4096")
    assert shard_bytes() == 4096
    monkeypatch.setenv("DSREG_SHARD_BYTES", "lots")
    with pytest.raises(dsreg.ConfigError, match="DSREG_SHARD_BYTES='lots' is not a size"):
        shard_bytes()


def test_review_split_sees_every_shard_of_an_earlier_split(dsreg_cache, dsreg_register, monkeypatch):
    monkeypatch.setenv("DSREG_SHARD_BYTES", "1000")
    seen = {}

    class Reviewed(Mixed):
        name = "reviewed"

        def plan(self):
            return (dsreg.Split("train"), dsreg.Split("test", after=("train",)))

        def review_split(self, split, examples, earlier):
            if split == "test":
                seen["n"] = len(earlier["train"])
                seen["labels"] = earlier["train"].column("label")
                seen["image"] = earlier["train"].column("image")
            return examples

    dsreg_register(Reviewed)
    dsreg.fetch("reviewed", quiet=True)
    assert seen["n"] == N_TRAIN and seen["labels"] == [i % 2 for i in range(N_TRAIN)]
    assert seen["image"].shape == (N_TRAIN, 4, 4) and (seen["image"][299] == example(299)["image"]).all()


class Aligned(dsreg.Builder):
    """40,000 small rows: with 192 KiB shards, each holds a multiple of 4,096 rows and its columns start page-aligned."""

    name = "aligned"
    features = {"image": dsreg.Tensor((2, 2), "uint8"), "label": dsreg.ClassLabel(tuple("abcdefg"))}
    splits = ("train",)

    def generate(self, split, files, **config):
        images = (np.arange(40_000 * 4, dtype=np.int64) % 251).astype(np.uint8).reshape(-1, 2, 2)
        for i in range(40_000):
            yield str(i), {"image": images[i], "label": i % 7}


def test_aligned_shards_are_mapped_back_to_back_as_one_tensor(dsreg_cache, dsreg_register, monkeypatch):
    monkeypatch.setenv("DSREG_SHARD_BYTES", str(192 << 10))
    dsreg_register(Aligned)
    ds = dsreg.load("aligned", split="train")
    rows = [s["rows"] for s in split_shards(ds.info.manifest, "train")]
    assert len(rows) == 3 and all(r % 4096 == 0 for r in rows[:-1]) and sum(rows) == 40_000
    images = torch.from_numpy((np.arange(40_000 * 4, dtype=np.int64) % 251).astype(np.uint8).reshape(-1, 2, 2))
    order = torch.randperm(40_000, generator=torch.Generator().manual_seed(1)).numpy()
    batch = ds.__getitems__(order)
    assert set(ds._joined) == {"image", "label"}  # one gather per column, whatever the shard count
    assert torch.equal(batch["image"], images[order]) and batch["label"].tolist() == (order % 7).tolist()
    sliced = dsreg.load("aligned", split="train[100:-100]")
    got = sliced.__getitems__([0, 39_799, 20_000])
    assert set(sliced._joined) == {"image", "label"} and got["label"].tolist() == [100 % 7, 39_899 % 7, 20_100 % 7]
    assert torch.equal(got["image"], images[[100, 39_899, 20_100]])
    clone = pickle.loads(pickle.dumps(sliced))
    assert clone._joined == {} and torch.equal(clone.__getitems__([5])["image"], images[[105]])
    # Shards HF reads: the padding that aligns the columns is schema metadata it ignores.
    assert ds.to_hf()[16_384]["label"] == 16_384 % 7


def test_the_prefetch_thread_runs_unless_turned_off(sharded, monkeypatch):
    import threading

    started = []
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self.name))
    dsreg.load("mixed", split="train")[0]
    assert started == ["dsreg-prefetch"]
    monkeypatch.setenv("DSREG_PREFETCH", "0")
    dsreg.load("mixed", split="train")[0]
    assert started == ["dsreg-prefetch"]


def test_populate_maps_a_shard_in(sharded):
    from dsreg.store.dataset import _populate
    from dsreg.store.storage import map_split

    table, base = map_split(sharded / "train-00000.arrow")
    _populate([(base, (sharded / "train-00000.arrow").stat().st_size)])  # no error, nothing changed
    assert table.column("text")[0].as_py() == "row 0"
