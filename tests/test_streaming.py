"""StreamingDataset: exactly once per epoch across ranks and workers, shuffle, resume, the bounded shard cache."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dsreg
from dsreg.store.collate import Batch
from dsreg.store.dataset import Dataset
from dsreg.store.storage import SplitWriter
from dsreg.store.streaming import ShardCache, StreamingDataset

from toydata import blob, make_builder

#: Rows per shard: uneven on purpose, so parts cut shards in odd places.
SHARD_ROWS = (100, 80, 120, 50, 90, 100, 60)
N = sum(SHARD_ROWS)


def write_store(folder: Path, builder: Any, rows: tuple[int, ...] = SHARD_ROWS, split: str = "train") -> dict[str, Any]:
    """Write a sharded store by hand: one Arrow stream file per shard and a format-3 manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.frombuffer(blob(4 * sum(rows)), dtype=np.uint8).reshape(-1, 1, 2, 2)
    features = dict(builder.features)
    shards, at = [], 0
    for index, count in enumerate(rows):
        path = folder / f"{split}-{index:05d}.arrow"
        writer = SplitWriter(path, features)
        for i in range(at, at + count):
            writer.write({"image": images[i], "label": i % 2})
        writer.close()
        at += count
        data = path.read_bytes()
        shards.append({"file": path.name, "rows": count, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {
        "format": 3,
        "dataset": builder.name,
        "version": builder.version,
        "config_id": builder.config_id,
        "schema": {name: feat.to_json() for name, feat in features.items()},
        "split_order": [split],
        "splits": {split: {"examples": sum(rows), "bytes": sum(s["bytes"] for s in shards), "shards": shards}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


@pytest.fixture
def store(tmp_path):
    builder = make_builder(blob())()
    folder = tmp_path / "store" / builder.name / builder.config_id
    manifest = write_store(folder, builder)
    return builder, folder, manifest


def key(image: torch.Tensor, label: Any) -> str:
    """A content hash of one example."""
    return hashlib.sha256(image.numpy().tobytes() + str(int(label)).encode()).hexdigest()[:16]


def batch_keys(batch: dict[str, Any]) -> list[str]:
    return [key(im, lab) for im, lab in zip(batch["image"], batch["label"])]


def plain_keys(builder, folder, manifest) -> list[str]:
    """The content of the plain map-style dataset over the same shards, in order."""
    plain = Dataset(builder, folder, [("train", 0, N)], _Info(builder, manifest), "train")
    return batch_keys(plain.__getitems__(list(range(len(plain)))))


class _Info:
    """What ``Dataset`` reads of a ``DatasetInfo``."""

    def __init__(self, builder, manifest):
        self.name, self.features, self.manifest = builder.name, dict(builder.features), manifest


def stream(builder, location, manifest, **kw) -> StreamingDataset:
    return StreamingDataset(builder, location, manifest, "train", builder.features, **kw)


def epoch_keys(ds: StreamingDataset, batch_size: int = 32, num_workers: int = 0) -> list[list[str]]:
    return [batch_keys(b) for b in ds.loader(batch_size=batch_size, num_workers=num_workers)]


@pytest.mark.parametrize("world, workers", [(1, 1), (1, 2), (2, 2), (3, 1)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_example_exactly_once_per_epoch(store, world, workers, shuffle):
    builder, folder, manifest = store
    expected = plain_keys(builder, folder, manifest)
    seen: list[str] = []
    for rank in range(world):
        ds = stream(builder, folder, manifest, rank=rank, world_size=world, shuffle=shuffle, buffer_size=64)
        got = [k for batch in epoch_keys(ds, 32, 0 if workers == 1 else workers) for k in batch]
        assert len(got) == len(ds) == N // world + (rank < N % world)
        seen += got
    assert Counter(seen) == Counter(expected) and len(seen) == N
    if not shuffle and world == 1 and workers == 1:
        assert seen == expected  # no shuffle, one reader: the plain dataset's order


def test_iterating_the_dataset_yields_examples_in_a_users_dataloader(store):
    builder, folder, manifest = store
    ds = stream(builder, folder, manifest, shuffle=True, seed=3)
    first = next(iter(ds))
    assert first["image"].shape == (1, 2, 2) and first["image"].dtype == torch.uint8
    loader = torch.utils.data.DataLoader(ds, batch_size=50, num_workers=2)
    keys = [key(im, lab) for b in loader for im, lab in zip(b["image"], b["label"])]
    assert Counter(keys) == Counter(plain_keys(builder, folder, manifest))


@pytest.mark.parametrize("balance, share", [("pad", 200), ("drop", 199)])
def test_balance_gives_every_rank_the_same_number_of_steps(store, balance, share):
    builder, folder, manifest = store
    assert N == 600 and 600 % 3 == 0
    rows = (*SHARD_ROWS[:-1], 59)  # 599 examples: 3 ranks cannot split them evenly
    manifest = write_store(folder, builder, rows)
    keys, lengths, steps = [], [], []
    for rank in range(3):
        ds = stream(builder, folder, manifest, rank=rank, world_size=3, balance=balance, shuffle=True)
        batches = epoch_keys(ds, 16, 2)
        lengths.append(len(ds))
        steps.append(len(batches))
        assert len(batches) == len(ds.loader(batch_size=16, num_workers=2))
        keys += [k for b in batches for k in b]
    assert lengths == [share] * 3 and len(set(steps)) == 1
    counts = Counter(keys)
    if balance == "pad":  # every example, one read twice (like DistributedSampler)
        assert len(counts) == 599 and sum(counts.values()) == 600 and max(counts.values()) == 2
    else:  # two left out
        assert len(counts) == 597 and max(counts.values()) == 1


def test_shuffle_is_reproducible_and_differs_between_epochs(store):
    builder, folder, manifest = store
    ds = stream(builder, folder, manifest, shuffle=True, seed=7, buffer_size=100)
    first = epoch_keys(ds)
    again = epoch_keys(stream(builder, folder, manifest, shuffle=True, seed=7, buffer_size=100))
    assert first == again
    ds.set_epoch(1)
    second = epoch_keys(ds)
    assert second != first and Counter(map(tuple, second)) != Counter(map(tuple, first))
    assert sorted(k for b in second for k in b) == sorted(k for b in first for k in b)
    other_seed = epoch_keys(stream(builder, folder, manifest, shuffle=True, seed=8, buffer_size=100))
    assert other_seed != first
    flat = [k for b in first for k in b]
    assert flat != plain_keys(builder, folder, manifest)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_gives_the_remaining_examples(store, workers):
    builder, folder, manifest = store
    kw = dict(shuffle=True, seed=1, buffer_size=128)
    whole = stream(builder, folder, manifest, **kw)
    whole.set_epoch(2)
    uninterrupted = epoch_keys(whole, 25, workers)

    ds = stream(builder, folder, manifest, **kw)
    ds.set_epoch(2)
    taken, k = [], 7
    for batch in ds.loader(batch_size=25, num_workers=workers):
        taken.append(batch_keys(batch))
        if len(taken) == k:
            break
    state = json.loads(json.dumps(ds.state_dict()))  # plain values, as a checkpoint holds them
    assert state["epoch"] == 2 and sum(state["consumed"]) == 7 * 25

    fresh = stream(builder, folder, manifest, **kw)
    fresh.load_state_dict(state)
    fresh.set_epoch(2)  # the trainer calls it at the start of the epoch: the state of that epoch is kept
    rest = epoch_keys(fresh, 25, workers)
    assert taken == uninterrupted[:k]
    if workers == 0:
        assert rest == uninterrupted[k:]
    else:  # the same batches; workers take turns again from the first one
        assert Counter(map(tuple, rest)) == Counter(map(tuple, uninterrupted[k:]))
    # the epoch is done: the next one starts from its beginning
    fresh.set_epoch(3)
    assert sum(len(b) for b in epoch_keys(fresh, 25, workers)) == N


def test_resume_counts_direct_iteration_and_refuses_other_settings(store):
    builder, folder, manifest = store
    ds = stream(builder, folder, manifest, shuffle=True)
    it = iter(ds)
    head = [key(ex["image"], ex["label"]) for ex in itertools.islice(it, 123)]
    state = ds.state_dict()
    assert state["consumed"] == [123]
    fresh = stream(builder, folder, manifest, shuffle=True)
    fresh.load_state_dict(state)
    tail = [key(ex["image"], ex["label"]) for ex in fresh]
    assert Counter(head + tail) == Counter(plain_keys(builder, folder, manifest))
    assert [key(ex["image"], ex["label"]) for ex in fresh][:5] != tail[:5] or len(tail) == N  # a finished epoch starts over
    with pytest.raises(dsreg.ConfigError, match="saved with seed=0, this dataset has seed=5"):
        stream(builder, folder, manifest, shuffle=True, seed=5).load_state_dict(state)
    other = stream(builder, folder, manifest, shuffle=True)
    other.load_state_dict(state)
    with pytest.raises(dsreg.ConfigError, match="resume with num_workers=0"):
        list(other.loader(batch_size=10, num_workers=2))


def _disk_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*") if folder.exists() else ():
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:  # evicted or renamed while we looked
            pass
    return total


def test_remote_shards_stream_through_a_bounded_lru_cache(store, tmp_path):
    builder, folder, manifest = store
    sizes = [s["bytes"] for s in manifest["splits"]["train"]["shards"]]
    limit = 2 * max(sizes) + max(sizes) // 2  # under half the split
    assert limit < sum(sizes) / 2
    cache = tmp_path / "shard-cache"
    ds = stream(builder, folder.as_uri(), manifest, shuffle=True, buffer_size=48, cache_dir=cache, cache_limit_bytes=limit)
    assert ds.remote and ds.cache_folder == cache
    peak, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _disk_bytes(cache))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        keys = [k for b in epoch_keys(ds, 16, 2) for k in b]
        keys += [k for b in epoch_keys(ds, 16, 0) for k in b]
    finally:
        stop.set()
        watcher.join()
    assert Counter(keys) == Counter(plain_keys(builder, folder, manifest) * 2)
    assert 0 < peak[0] <= limit and _disk_bytes(cache) <= limit
    assert not list(cache.glob(".pin.*")) and not list(cache.glob("*.part"))  # nothing pinned or half-written left


def test_a_changed_remote_shard_is_refused(store, tmp_path):
    builder, folder, manifest = store
    remote = tmp_path / "remote"
    shutil.copytree(folder, remote)
    shard = remote / "train-00002.arrow"
    data = bytearray(shard.read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    ds = stream(builder, remote.as_uri(), manifest, cache_dir=tmp_path / "c")
    with pytest.raises(dsreg.ChecksumError) as err:
        list(ds.loader(batch_size=50))
    message = str(err.value)
    assert "\n" not in message and "shard train-00002.arrow" in message and "push the dataset again" in message
    assert not (tmp_path / "c" / "train-00002.arrow").exists() and not list((tmp_path / "c").glob("*.part"))


def test_a_cache_limit_under_two_shards_is_refused(store, tmp_path):
    builder, folder, manifest = store
    with pytest.raises(dsreg.ConfigError, match="under two shards.*DSREG_STREAM_CACHE_BYTES"):
        stream(builder, folder.as_uri(), manifest, cache_dir=tmp_path / "c", cache_limit_bytes=1000)


def test_cache_limit_from_the_environment(store, tmp_path, monkeypatch):
    builder, folder, manifest = store
    monkeypatch.setenv("DSREG_STREAM_CACHE_BYTES", "1MiB")
    ds = stream(builder, folder.as_uri(), manifest, cache_dir=tmp_path / "c")
    cache = ds._shard_cache()
    assert isinstance(cache, ShardCache) and cache.limit == 1 << 20
    monkeypatch.setenv("DSREG_STREAM_CACHE_BYTES", "lots")
    with pytest.raises(dsreg.ConfigError, match="DSREG_STREAM_CACHE_BYTES='lots' is not a size"):
        stream(builder, folder.as_uri(), manifest, cache_dir=tmp_path / "d")


def test_an_fsspec_memory_location_streams(store, tmp_path):
    import fsspec

    builder, folder, manifest = store
    fs = fsspec.filesystem("memory")
    base = f"memory://dsreg-stream-{id(store):x}/{builder.name}/{builder.config_id}"
    try:
        for path in folder.iterdir():
            fs.pipe(f"{base}/{path.name}", path.read_bytes())
        ds = stream(builder, base, manifest, cache_dir=tmp_path / "c")
        assert [k for b in epoch_keys(ds) for k in b] == plain_keys(builder, folder, manifest)
    finally:
        fs.rm(f"memory://dsreg-stream-{id(store):x}", recursive=True)


def test_collate_fn_len_and_repr(store):
    builder, folder, manifest = store
    ds = stream(builder, folder, manifest)
    assert ds.collate_fn is not None and ds.classes == ["even", "odd"]
    batch = next(iter(ds.loader(batch_size=8)))
    assert batch["image"].shape == (8, 1, 2, 2) and batch["label"].dtype == torch.int64
    assert len(ds) == N and len(ds.loader(batch_size=8)) == -(-N // 8)
    assert "7 shards" in repr(ds)
    assert ds.buffer_size == 16384  # the default, for small examples
    big = {"image": dsreg.Tensor((3, 224, 224), "uint8"), "label": builder.features["label"]}
    assert StreamingDataset(builder, folder, manifest, "train", big).buffer_size == (256 << 20) // (3 * 224 * 224 + 8)
    with pytest.raises(dsreg.ConfigError, match="orders itself"):
        ds.loader(batch_size=8, shuffle=True)
    assert isinstance(Batch(), dict)


# -- dsreg.load(..., streaming=True) ----------------------------------------------------------------
@pytest.fixture
def toy(dsreg_cache, dsreg_register, tmp_path, monkeypatch):
    """The toy dataset (75,000 four-byte images) prepared in small shards."""
    data = blob(12_000)
    (tmp_path / "toy.bin").write_bytes(data)
    dsreg_register(make_builder(data))
    monkeypatch.setenv("DSREG_SHARD_BYTES", "2KiB")
    info = dsreg.fetch("toy", from_path=tmp_path, quiet=True)
    return info


def test_load_streaming_reads_the_local_store_in_place(toy):
    plain = dsreg.load("toy", split="train")
    ds = dsreg.load("toy", split="train", streaming=True)
    assert isinstance(ds, dsreg.StreamingDataset) and isinstance(ds, torch.utils.data.IterableDataset)
    assert len(ds.shards) > 1 and not ds.remote and ds.info.name == "toy" and ds.classes == ["even", "odd"]
    assert len(ds) == len(plain)
    assert [k for b in epoch_keys(ds, 100) for k in b] == batch_keys(plain.__getitems__(list(range(len(plain)))))
    shuffled = ds.shuffle(seed=1, buffer_size=500)
    assert Counter(k for b in epoch_keys(shuffled, 100, 2) for k in b) == Counter(batch_keys(plain.__getitems__(list(range(len(plain))))))
    both = dsreg.load("toy", streaming=True)
    assert set(both) == {"train", "test"} and len(both["test"]) == len(dsreg.load("toy", split="test"))
    with pytest.raises(dsreg.ConfigError, match="streaming reads whole splits"):
        dsreg.load("toy", split="train[:10]", streaming=True)


def test_load_streaming_from_a_remote_prepares_nothing_here(toy, tmp_path, monkeypatch):
    plain = dsreg.load("toy", split="test")
    expected = batch_keys(plain.__getitems__(list(range(len(plain)))))
    remote = tmp_path / "remote"
    shutil.copytree(toy.prepared_path, remote / "toy" / toy.prepared_path.name)  # the layout dsreg push writes
    fresh = tmp_path / "fresh-cache"
    monkeypatch.setenv("DSREG_CACHE", str(fresh))
    ds = dsreg.load("toy", split="test", streaming=True, remote=remote.as_uri())
    assert ds.remote and ds.cache_folder == fresh / "streaming" / "toy" / toy.prepared_path.name
    assert [k for b in epoch_keys(ds, 64) for k in b] == expected
    assert not (fresh / "datasets").exists() or not any((fresh / "datasets").rglob("*.arrow"))  # nothing prepared or pulled
    with pytest.raises(dsreg.FetchError, match="has no store for this configuration"):
        dsreg.load("toy", split="test", streaming=True, remote=(tmp_path / "empty").as_uri())


def test_load_streaming_from_the_local_s3_server(toy, dsreg_s3, monkeypatch, tmp_path):
    plain = dsreg.load("toy", split="train")
    expected = Counter(batch_keys(plain.__getitems__(list(range(len(plain))))))
    bucket = dsreg_s3.bucket("stream")
    dsreg_s3.upload(toy.prepared_path, f"{bucket}toy/{toy.prepared_path.name}")
    monkeypatch.setenv("DSREG_CACHE", str(tmp_path / "fresh"))
    sizes = [s["bytes"] for s in toy.manifest["splits"]["train"]["shards"]]
    monkeypatch.setenv("DSREG_STREAM_CACHE_BYTES", str(3 * max(sizes)))  # well under the split
    ds = dsreg.load("toy", split="train", streaming=True, remote=bucket).shuffle(seed=2, buffer_size=100)
    assert Counter(k for b in epoch_keys(ds, 64, 2) for k in b) == expected
    assert _disk_bytes(ds.cache_folder) <= 3 * max(sizes) < sum(sizes)


# -- the trainer and `dsreg train --streaming` ------------------------------------------------------
@pytest.fixture
def registry(dsreg_register, dsreg_cache, monkeypatch):
    import trainsets

    monkeypatch.setenv("DSREG_SHARD_BYTES", "16KiB")  # stripes' 512 examples in several shards
    torch.set_num_threads(1)
    return trainsets.add_default_models(dsreg_register(*trainsets.ALL))


def test_the_trainer_streams_sets_the_epoch_and_checkpoints_the_stream(registry, tmp_path):
    from dsreg.train import CHECKPOINT, Trainer, load_checkpoint

    train = dsreg.load("stripes", split="train", streaming=True, n=512).shuffle(seed=0, buffer_size=128)
    assert len(train.shards) > 1
    test = dsreg.load("stripes", split="test", streaming=True, n=512)
    out = tmp_path / "run"
    trainer = Trainer("image-mlp", train, test, config={"n": 512}, epochs=2, lr=3e-3, batch_size=32, quiet=True, out_dir=out)
    assert trainer.streaming and trainer.sampler is None and not trainer.preloaded
    assert trainer.steps_per_epoch == train.num_batches(32) == 16
    history = trainer.fit()
    assert [row["examples"] for row in history] == [512, 512]
    assert history[-1]["eval_accuracy"] > 0.9 and trainer.evaluate()["examples"] == 128
    assert trainer.train_data.epoch == 1  # set_epoch was called for each epoch
    state = load_checkpoint(out / CHECKPOINT)["data_state"]
    assert state["epoch"] == 1 and state["done"] and sum(state["consumed"]) == 512
    more = Trainer("image-mlp", train, test, config={"n": 512}, epochs=3, lr=3e-3, batch_size=32, quiet=True, out_dir=out, resume=True)
    assert more.epoch == 2 and more.train_data.state_dict()["done"]
    assert [row["epoch"] for row in more.fit()] == [1, 2, 3]
    with pytest.raises(dsreg.ConfigError, match="is streamed; it cannot be preloaded"):
        Trainer("image-mlp", train, preload=True, quiet=True)


def test_under_a_world_the_trainer_reads_its_ranks_part_with_equal_steps(registry):
    from dsreg.train.distributed import World
    from dsreg.train.trainer import _on_world

    train = dsreg.load("stripes", split="train", streaming=True, n=510)
    parts = [_on_world(train, World(rank=r, size=4), "pad") for r in range(4)]
    assert [p.rank for p in parts] == [0, 1, 2, 3] and {p.balance for p in parts} == {"pad"}
    assert {len(p) for p in parts} == {128} and {p.num_batches(32, 2) for p in parts} == {4}
    assert _on_world(train, World(), "pad") is train


def test_dsreg_train_streaming(registry, tmp_path):
    from click.testing import CliRunner

    from dsreg.cli import cli

    out = tmp_path / "run"
    args = ["train", "stripes", "--streaming", "--epochs", "1", "--batch-size", "32", "--out", str(out), "--json", "-c", "n=256"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["history"][0]["examples"] == 256 and data["test"]["examples"] == 64
    again = CliRunner().invoke(cli, [*args[:4], "2", *args[5:], "--resume"])
    assert again.exit_code == 0, again.output
    assert [row["epoch"] for row in json.loads(again.stdout)["history"]] == [1, 2]


def test_a_buffer_whose_blocks_outgrow_the_cache_is_refused_before_reading(store, tmp_path):
    builder, folder, manifest = store
    biggest = max(s["bytes"] for s in manifest["splits"]["train"]["shards"])
    ds = stream(builder, folder.as_uri(), manifest, shuffle=True, buffer_size=400, cache_dir=tmp_path / "c", cache_limit_bytes=3 * biggest)
    with pytest.raises(dsreg.ConfigError, match=r"buffer_size=400 examples can span \d shards .* or read with buffer_size=\d+ or less"):
        ds.loader(batch_size=10)
    fits = int(str(pytest.raises(dsreg.ConfigError, iter, ds).value).split("buffer_size=")[2].split(" ")[0].replace(",", ""))
    assert Counter(k for b in epoch_keys(ds.shuffle(seed=0, buffer_size=fits), 10) for k in b) == Counter(
        plain_keys(builder, folder, manifest)
    )
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").glob("*.arrow.*.part"))


def test_a_streamed_run_stopped_mid_epoch_resumes_to_the_same_weights(registry, tmp_path):
    import os
    import signal

    from dsreg.train import CHECKPOINT, Trainer, load_checkpoint

    from trainsets import state_equal

    train = dsreg.load("stripes", split="train", streaming=True, n=256).shuffle(seed=0, buffer_size=64)
    kw: dict[str, Any] = dict(config={"n": 256}, epochs=2, lr=3e-3, batch_size=32, quiet=True)
    whole = Trainer("image-mlp", train, **kw)
    history = whole.fit()
    calls = [0]

    def interrupting(logits, target):
        calls[0] += 1
        if calls[0] == 11:  # epoch 2 (8 steps each), third step: Ctrl-C arrives mid-step
            os.kill(os.getpid(), signal.SIGINT)
        return torch.nn.functional.cross_entropy(logits, target)

    out = tmp_path / "run"
    stopped = Trainer("image-mlp", train, loss=interrupting, out_dir=out, **kw)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    ckpt = load_checkpoint(out / CHECKPOINT)
    assert ckpt["epoch"] == 1 and ckpt["partial"]["seen"] == 3 * 32
    assert ckpt["data_state"]["epoch"] == 1 and ckpt["data_state"]["consumed"] == [96] and not ckpt["data_state"]["done"]
    lines: list[str] = []
    again = Trainer("image-mlp", train, out_dir=out, resume=True, log=lines.append, **{**kw, "quiet": False})
    assert any("in epoch 2 after 96 examples" in line for line in lines)
    resumed = again.fit()
    assert state_equal(again.module.state_dict(), whole.module.state_dict())  # as if never stopped
    assert [r["examples"] for r in resumed] == [256, 256] and resumed[1]["loss"] == pytest.approx(history[1]["loss"])
    assert load_checkpoint(out / CHECKPOINT)["partial"] is None


def test_dsreg_cache_rm_removes_the_streamed_shards_too(toy, tmp_path, monkeypatch):
    from dsreg.fetching.cache import Cache

    remote = tmp_path / "remote"
    shutil.copytree(toy.prepared_path, remote / "toy" / toy.prepared_path.name)
    fresh = tmp_path / "fresh-cache"
    monkeypatch.setenv("DSREG_CACHE", str(fresh))
    ds = dsreg.load("toy", split="test", streaming=True, remote=remote.as_uri())
    list(ds.loader(batch_size=500))
    assert ds.cache_folder is not None and any(ds.cache_folder.glob("*.arrow"))
    assert Cache().remove("toy") > 0 and not (fresh / "streaming" / "toy").exists()


def test_dsreg_train_streaming_from_dsreg_remote_prepares_nothing_here(registry, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dsreg.cli import cli

    info = dsreg.fetch("stripes", n=256, quiet=True)
    remote = tmp_path / "remote"
    shutil.copytree(info.prepared_path, remote / "stripes" / info.prepared_path.name)
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("DSREG_CACHE", str(fresh))
    monkeypatch.setenv("DSREG_REMOTE", remote.as_uri())
    args = ["train", "stripes", "--streaming", "--epochs", "1", "--out", str(tmp_path / "run"), "--json", "-c", "n=256"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["history"][0]["examples"] == 256
    assert any((fresh / "streaming" / "stripes").rglob("*.arrow"))  # streamed through the shard cache
    assert not (fresh / "datasets" / "stripes" / "prepared").exists()  # neither prepared nor pulled here
