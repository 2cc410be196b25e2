"""Preparing through any concurrent.futures executor: the local pool, in-process, a thread pool, a Dask LocalCluster.

The shards must be byte-identical whichever executor ran them; a bad record gives the same one-line
error everywhere; Dask reruns the task of a worker that died. One LocalCluster (2 process workers,
127.0.0.1, no dashboard) serves the whole module; its tests skip, saying why, without distributed.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli.app import cli as cli_main
from dsreg.store.storage import read_manifest, split_shards

N = 600
BAD = 437  # the record `decode_bad` cannot read


def decode(record):
    """A record (index, payload bytes) -> an 8x8 image, a label and variable-length ids; every 41st is unusable."""
    i, payload = record
    if i % 41 == 5:
        raise dsreg.Skip("unreadable on purpose")
    image = np.frombuffer(payload, dtype=np.uint8).reshape(8, 8)
    return {"image": image, "label": i % 3, "ids": list(range(i % 7 + 1))}


def decode_bad(record):
    if record[0] == BAD:
        raise ValueError("truncated PNG stream")
    return decode(record)


def decode_dies_once(record):
    """Kills its worker process the first time it sees record 300 (a marker file remembers)."""
    i, payload, marker = record
    if i == 300 and not os.path.exists(marker):
        Path(marker).write_text("died")
        os._exit(1)
    return decode((i, payload))


def payload(i: int) -> bytes:
    return ((np.arange(64, dtype=np.int64) * (i + 1)) % 251).astype(np.uint8).tobytes()


class Records(dsreg.Builder):
    """Raw records decoded by the core (a plain ``decode``, no review): prepared as planned shards."""

    name = "records"
    features = {
        "image": dsreg.Tensor((8, 8), "uint8"),
        "label": dsreg.ClassLabel(("a", "b", "c")),
        "ids": dsreg.Tensor((None,), "int64"),
    }
    splits = ("train", "test")
    decode = staticmethod(decode)

    def generate(self, split, files, **config):
        lo, hi = (0, N) if split == "train" else (N, N + 100)
        for i in range(lo, hi):
            yield f"r{i}", (i, payload(i))


class BadRecords(Records):
    name = "bad-records"
    decode = staticmethod(decode_bad)


class Dying(Records):
    name = "dying"
    decode = staticmethod(decode_dies_once)
    splits = ("train",)
    marker = ""

    def generate(self, split, files, **config):
        for i in range(N):
            yield f"r{i}", (i, payload(i), self.marker)


@pytest.fixture(scope="module")
def dask_address(tmp_path_factory):
    """The scheduler address of a LocalCluster of 2 process workers for this module."""
    distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed (pip install 'dsreg[dask]')")
    folder = tmp_path_factory.mktemp("dask")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # its HTTP server on a free port (no dashboard without bokeh)
        local_directory=str(folder),
        silence_logs=40,
    ) as cluster:
        yield cluster.scheduler_address.replace("tcp://", "dask://")


def store_of(info) -> tuple[dict[str, str], dict]:
    """Each shard file's sha256, and the manifest less its timings."""
    folder = info.prepared_path
    manifest = read_manifest(folder)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.arrow"))}
    manifest.pop("prepared")
    for meta in manifest["splits"].values():
        meta.pop("seconds")
        meta.pop("task_seconds", None)
    return digests, manifest


@pytest.fixture
def small_shards(dsreg_cache, dsreg_register, monkeypatch):
    monkeypatch.setenv("DSREG_SHARD_BYTES", "6000")  # about 70 examples a shard
    dsreg_register(Records, BadRecords, Dying)
    return dsreg_cache


def test_the_same_bytes_from_every_executor(small_shards, dask_address, tmp_path):
    inline = store_of(dsreg.fetch("records", quiet=True, workers=1, cache_dir=tmp_path / "inline"))
    digests, manifest = inline
    shards = split_shards(manifest, "train")
    assert len(shards) >= 5 and sum(s["rows"] for s in shards) == manifest["splits"]["train"]["examples"] == N - 15
    assert len(manifest["splits"]["train"]["skipped"]) == 15
    assert set(digests) == {s["file"] for split in manifest["splits"] for s in split_shards(manifest, split)}
    assert store_of(dsreg.fetch("records", quiet=True, workers=2, cache_dir=tmp_path / "pool")) == inline
    with cf.ThreadPoolExecutor(2) as threads:  # any Executor: one task per shard, through a scratch folder
        scratch = tmp_path / "scratch"
        info = dsreg.fetch("records", quiet=True, executor=threads, scratch=str(scratch), cache_dir=tmp_path / "threads")
    assert store_of(info) == inline and list(scratch.iterdir()) == []
    assert len(info.manifest["splits"]["train"]["task_seconds"]) == len(shards)
    # The CLI on the Dask cluster, writing to the store's own folder (a one-machine cluster).
    result = CliRunner().invoke(
        cli_main, ["fetch", "records", "-q", "--executor", dask_address, "--workers", "2"], env={"DSREG_CACHE": str(tmp_path / "dask")}
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("records: train 585, test 98; 17 skipped")
    on_dask = dsreg.info("records", cache_dir=tmp_path / "dask")
    assert store_of(on_dask) == inline
    assert sorted(p.name for p in on_dask.prepared_path.iterdir() if not p.name.endswith(".arrow")) == ["manifest.json"]
    ds = dsreg.load("records", split="train", cache_dir=tmp_path / "dask")
    kept = [i for i in range(N) if i % 41 != 5]
    assert ds[100]["label"] == kept[100] % 3 and bytes(ds[100]["image"].numpy().tobytes()) == payload(kept[100])


def test_planned_shards_match_the_byte_rule_for_fixed_size_examples(dsreg_cache, dsreg_register, monkeypatch, tmp_path):
    """Without skips and with fixed-size examples, the plan closes shards where writing by bytes would."""

    class Fixed(Records):
        name = "fixed"
        features = {"image": dsreg.Tensor((8, 8), "uint8"), "label": dsreg.ClassLabel(("a", "b", "c"))}
        decode = None

        def generate(self, split, files, **config):
            for i in range(N, N + 100) if split == "test" else range(N):
                yield f"r{i}", {"image": np.frombuffer(payload(i), dtype=np.uint8).reshape(8, 8), "label": i % 3}

    class FixedDecoded(Fixed):
        name = "fixed-decoded"
        decode = staticmethod(lambda example: example)

        def generate(self, split, files, **config):
            yield from Fixed.generate(self, split, files)

    monkeypatch.setenv("DSREG_SHARD_BYTES", "5000")
    dsreg_register(Fixed, FixedDecoded)
    by_bytes = dsreg.fetch("fixed", quiet=True, workers=1).manifest
    planned = dsreg.fetch("fixed-decoded", quiet=True, workers=1).manifest
    assert [s["rows"] for s in split_shards(planned, "train")] == [s["rows"] for s in split_shards(by_bytes, "train")]
    assert len(split_shards(planned, "train")) > 3


def bad_record_error(**kwargs) -> str:
    with pytest.raises(dsreg.PluginError) as caught:
        dsreg.fetch("bad-records", quiet=True, split="train", **kwargs)
    return str(caught.value)


def test_a_bad_record_gives_the_same_one_line_error_everywhere(small_shards, dask_address, tmp_path):
    message = bad_record_error(workers=1, cache_dir=tmp_path / "a")
    assert message == (
        "bad-records: decoding example 'r437' of split 'train' failed (ValueError: truncated PNG stream); "
        "the plugin's decode should raise dsreg.Skip for a record it cannot use"
    )
    assert bad_record_error(workers=2, cache_dir=tmp_path / "b") == message
    assert bad_record_error(executor=dask_address, cache_dir=tmp_path / "c") == message
    for root in ("a", "b", "c"):  # nothing half-written is left: not a shard, not a temporary file
        assert [p for p in (tmp_path / root).rglob("*") if p.is_file() and "prepared" in p.parts] == []
    result = CliRunner().invoke(
        cli_main, ["fetch", "bad-records", "-q", "--executor", dask_address], env={"DSREG_CACHE": str(tmp_path / "d")}
    )
    assert result.exit_code != 0 and result.output == f"error: {message}\n"


def test_dask_reruns_the_task_of_a_worker_that_died(small_shards, dask_address, tmp_path):
    Dying.marker = str(tmp_path / "died-once")
    try:
        info = dsreg.fetch("dying", quiet=True, executor=dask_address, cache_dir=tmp_path / "dask")
    finally:
        Dying.marker = ""
    assert Path(tmp_path / "died-once").read_text() == "died"  # the worker did die mid-task
    assert info.manifest["splits"]["train"]["examples"] == N - 15


def test_a_missing_distributed_says_what_to_install(small_shards, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(dsreg.ConfigError, match=r"needs Dask's distributed, which is not installed: pip install 'dsreg\[dask\]'"):
        dsreg.fetch("records", quiet=True, executor="dask://127.0.0.1:8786")


def test_an_unknown_executor_is_refused(small_shards, monkeypatch):
    monkeypatch.setenv("DSREG_EXECUTOR", "spark://cluster")
    with pytest.raises(dsreg.ConfigError, match="executor 'spark://cluster' is not one dsreg knows"):
        dsreg.fetch("records", quiet=True)
    assert dsreg.info("records").ready_splits == ()


def test_shards_through_an_s3_scratch_arrive_checked_and_leave_nothing(small_shards, dsreg_s3, tmp_path):
    inline = store_of(dsreg.fetch("records", quiet=True, workers=1, split="test", cache_dir=tmp_path / "inline"))
    scratch = dsreg_s3.bucket("scratch") + "prep"
    with cf.ThreadPoolExecutor(2) as threads:
        info = dsreg.fetch("records", quiet=True, split="test", executor=threads, scratch=scratch, cache_dir=tmp_path / "s3")
    assert store_of(info) == inline
    assert dsreg_s3.filesystem().find(scratch.removeprefix("s3://")) == []


class Reviewed(Records):
    """A builder that reviews: decoded on the executor in chunks, reviewed and written by the client."""

    name = "reviewed-records"

    def review(self, split, key, example):
        return None if isinstance(example, dict) and example["label"] == 2 and int(key[1:]) % 2 else example


def test_a_reviewed_split_is_decoded_on_dask_and_written_here_the_same(small_shards, dsreg_register, dask_address, tmp_path):
    dsreg_register(Reviewed)
    local = store_of(dsreg.fetch("reviewed-records", quiet=True, workers=2, cache_dir=tmp_path / "local"))
    on_dask = dsreg.fetch("reviewed-records", quiet=True, executor=dask_address, cache_dir=tmp_path / "dask")
    assert store_of(on_dask) == local and "task_seconds" not in on_dask.manifest["splits"]["train"]
    assert on_dask.manifest["splits"]["train"]["examples"] < N - 15


def skip_all(record):
    raise dsreg.Skip("nothing usable")


class Unusable(Records):
    """train: every record decodes to Skip; test: no records at all."""

    name = "unusable"
    decode = staticmethod(skip_all)

    def generate(self, split, files, **config):
        for i in range(300 if split == "train" else 0):
            yield f"r{i}", (i, payload(i))


def test_splits_with_nothing_usable_are_the_same_empty_shards_everywhere(small_shards, dsreg_register, tmp_path):
    dsreg_register(Unusable)
    inline = store_of(dsreg.fetch("unusable", quiet=True, workers=1, cache_dir=tmp_path / "inline"))
    with cf.ThreadPoolExecutor(2) as threads:
        assert store_of(dsreg.fetch("unusable", quiet=True, executor=threads, cache_dir=tmp_path / "threads")) == inline
    manifest = inline[1]
    assert manifest["splits"]["train"]["examples"] == 0 and len(manifest["splits"]["train"]["skipped"]) == 300
    assert [s["rows"] for s in split_shards(manifest, "test")] == [0]
    assert all(s["rows"] == 0 for s in split_shards(manifest, "train"))
    assert len(dsreg.load("unusable", split="train", cache_dir=tmp_path / "threads")) == 0
