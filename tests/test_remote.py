"""Push and pull of prepared stores: `dsreg push`, remote= / --remote / DSREG_REMOTE, against the local S3 server and a folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli.app import cli
from dsreg.errors import ChecksumError, ConfigError, FetchError
from dsreg.fetching.cache import Cache
from dsreg.store import remote as remotes

from toydata import blob, make_builder

DATA = blob(40_000)


@pytest.fixture
def toy(dsreg_cache: Path, dsreg_register, monkeypatch: pytest.MonkeyPatch):
    """The toy dataset registered, its shards small (several per split), its raw file on the loopback HTTP server."""
    monkeypatch.setenv("DSREG_SHARD_BYTES", "16KiB")
    return dsreg_register(make_builder(DATA, config={"flavour": "a"}))


@pytest.fixture
def served(toy, dsreg_file_server):
    """The toy's raw file served, passed as a mirror when preparing."""
    return [dsreg_file_server.serve({"toy.bin": DATA})]


def digest(ds) -> str:
    """A content hash of a split: every example's bytes, in order."""
    h = hashlib.sha256()
    for i in range(len(ds)):
        ex = ds[i]
        h.update(ex["image"].numpy().tobytes() + int(ex["label"]).to_bytes(2, "little"))
    return h.hexdigest()


def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "other-machine") -> Path:
    root = tmp_path / name
    monkeypatch.setenv("DSREG_CACHE", str(root))
    return root


def no_prepare(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any prepare fail loudly: a pull must never run the builder."""

    def refuse(*args, **kwargs):
        raise AssertionError("a prepare ran")

    monkeypatch.setattr("dsreg.store.storage.prepare", refuse)


def test_push_to_s3_then_load_elsewhere_pulls_the_same_examples_without_preparing(
    toy, served, dsreg_s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = dsreg_s3.bucket("team-datasets") + "stores"
    dsreg.fetch("toy", mirrors=served, quiet=True)
    before = {s: digest(dsreg.load("toy", s)) for s in ("train", "test")}
    done = dsreg.push("toy", bucket)
    assert done.splits == ["train", "test"] and done.shards >= 4 and done.skipped == 0
    info = dsreg.info("toy")
    assert done.location == f"{bucket}/toy/{info.manifest['config_id']}"
    assert done.bytes == sum(sh["bytes"] for s in info.manifest["splits"].values() for sh in s["shards"])

    fresh = fresh_cache(tmp_path, monkeypatch)
    no_prepare(monkeypatch)
    pulled = dsreg.load("toy", "train", remote=bucket)
    assert digest(pulled) == before["train"]
    info = dsreg.info("toy")
    assert info.ready_splits == ("train",) and info.manifest["splits"]["train"]["pulled"] == done.location
    assert not Cache(fresh).read_records("toy")  # no raw file was downloaded
    # fetch --remote pulls the rest; the CLI says where it went.
    result = CliRunner().invoke(cli, ["fetch", "toy", "--remote", bucket])
    assert result.exit_code == 0, result.output
    assert digest(dsreg.load("toy", "test")) == before["test"]
    assert not list(Path(info.prepared_path).glob(".*.part"))


def test_push_merges_splits_and_skips_shards_already_there(toy, served, tmp_path: Path) -> None:
    remote = str(tmp_path / "share")  # a plain (mounted) folder is a remote too
    dsreg.fetch("toy", mirrors=served, quiet=True)
    first = dsreg.push("toy", remote, split="train")
    second = dsreg.push("toy", remote, split="test")
    manifest = json.loads((Path(first.location) / "manifest.json").read_text())
    assert sorted(manifest["splits"]) == ["test", "train"] and manifest["split_order"] == ["train", "test"]
    assert not list(Path(first.location).glob("*.tmp"))
    again = dsreg.push("toy", remote)
    assert (again.shards, again.skipped) == (0, first.shards + second.shards)


def test_a_remote_of_another_config_or_version_is_refused(toy, served, dsreg_s3, tmp_path: Path, monkeypatch) -> None:
    bucket = dsreg_s3.bucket("refusals")
    dsreg.fetch("toy", mirrors=served, quiet=True)
    done = dsreg.push("toy", bucket, split="train")
    fresh_cache(tmp_path, monkeypatch)
    no_prepare(monkeypatch)
    with pytest.raises(FetchError, match=r"has no store for this configuration \(it holds toy only as 1\.0\.0-\w+\); push it first"):
        dsreg.load("toy", "train", remote=bucket, flavour="b")
    with pytest.raises(FetchError, match=r"has no split test of this configuration \(it has train\); push it first .*--split test"):
        dsreg.load("toy", "test", remote=bucket)
    fs = dsreg_s3.filesystem()
    key = done.location.split("://", 1)[1] + "/manifest.json"
    manifest = json.loads(fs.cat_file(key))
    for field, value, words in (
        ("version", "0.9.0", "dataset version '0.9.0', not '1.0.0'"),
        ("format", 2, "dsreg store format 2"),
        ("builder", "elsewhere:Toy", "builder 'elsewhere:Toy'"),
    ):
        fs.pipe_file(key, json.dumps(manifest | {field: value}).encode())
        with pytest.raises(ConfigError, match=f"refusing {done.location}: it was written for {words}"):
            dsreg.load("toy", "train", remote=bucket)
    assert dsreg.info("toy").ready_splits == ()


def test_a_corrupted_remote_shard_is_refused(toy, served, dsreg_s3, tmp_path: Path, monkeypatch) -> None:
    bucket = dsreg_s3.bucket("corrupt")
    dsreg.fetch("toy", mirrors=served, quiet=True)
    done = dsreg.push("toy", bucket, split="train")
    shard = dsreg.info("toy").manifest["splits"]["train"]["shards"][1]["file"]
    fs = dsreg_s3.filesystem()
    key = f"{done.location.split('://', 1)[1]}/{shard}"
    data = bytearray(fs.cat_file(key))
    data[-100] ^= 0xFF  # same size, one byte flipped
    fs.pipe_file(key, bytes(data))
    fresh_cache(tmp_path, monkeypatch)
    no_prepare(monkeypatch)
    with pytest.raises(
        ChecksumError, match=rf"toy: train shard {shard} at .* is damaged \(sha256 \w+, the manifest says \w+\); push train"
    ):
        dsreg.load("toy", "train", remote=bucket)
    info = dsreg.info("toy")
    assert info.ready_splits == ()
    assert not list(Cache().prepared_dir("toy", dsreg.get_builder("toy", flavour="a").config_id).glob(".*.part"))


def test_an_interrupted_pull_resumes_from_its_part_file(toy, served, dsreg_s3, tmp_path: Path, monkeypatch) -> None:
    bucket = dsreg_s3.bucket("resume-pull")
    dsreg.fetch("toy", mirrors=served, quiet=True)
    dsreg.push("toy", bucket, split="train")
    local = dsreg.info("toy")
    shards = local.manifest["splits"]["train"]["shards"]
    fresh_cache(tmp_path, monkeypatch)
    builder = dsreg.get_builder("toy", flavour="a")
    folder = Cache().prepared_dir("toy", builder.config_id)
    folder.mkdir(parents=True)
    # What a cut pull leaves: the first shard whole, half of the second in its .part.
    first, second = (Path(local.prepared_path) / s["file"] for s in shards[:2])
    (folder / first.name).write_bytes(first.read_bytes())
    (folder / f".{second.name}.part").write_bytes(second.read_bytes()[: shards[1]["bytes"] // 2])
    from dsreg.api import _identity

    done = remotes.pull_store(bucket, folder, _identity(builder), ["train"], quiet=True)
    total = sum(s["bytes"] for s in shards)
    assert done.bytes == total - shards[0]["bytes"] - shards[1]["bytes"] // 2  # only what was missing travelled
    assert done.skipped == 1 and done.shards == len(shards) - 1
    no_prepare(monkeypatch)
    assert digest(dsreg.load("toy", "train", download=False)) == digest(dsreg.load("toy", "train", remote=bucket))


def test_dsreg_remote_falls_back_to_preparing_when_it_lacks_the_dataset(toy, served, tmp_path: Path, monkeypatch, capsys) -> None:
    empty = tmp_path / "empty-remote"
    empty.mkdir()
    monkeypatch.setenv("DSREG_REMOTE", str(empty))
    dsreg.fetch("toy", mirrors=served)
    assert "has no store for this configuration; preparing it here from the raw files" in capsys.readouterr().err
    assert dsreg.info("toy").ready_splits == ("train", "test")
    with pytest.raises(FetchError, match="has no store for this configuration"):  # an explicit remote does not fall back
        dsreg.fetch("toy", remote=str(empty), split="train", force=False, cache_dir=str(tmp_path / "c2"))


def test_push_and_fetch_remote_on_the_command_line(toy, served, tmp_path: Path, monkeypatch) -> None:
    share = tmp_path / "share"
    runner = CliRunner()
    dsreg.fetch("toy", mirrors=served, quiet=True)
    result = runner.invoke(cli, ["push", "toy", str(share), "--split", "test", "-c", "flavour=a"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"toy: test -> {share}/toy/1.0.0-") and "shard(s)" in result.output
    fresh_cache(tmp_path, monkeypatch)
    result = runner.invoke(cli, ["fetch", "toy", "--split", "train", "--remote", str(share)])
    assert result.exit_code == 1
    assert result.output.startswith("error: toy: the remote") and "has no split train" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, ["fetch", "toy", "--split", "test", "--remote", str(share)])
    assert result.exit_code == 0 and "toy: test 2,000" in result.output, result.output
    result = runner.invoke(cli, ["push", "-h"])
    assert "dsreg fetch NAME --remote URL" in result.output


def test_a_damaged_local_shard_is_not_pushed(toy, served, tmp_path: Path) -> None:
    dsreg.fetch("toy", mirrors=served, quiet=True)
    info = dsreg.info("toy")
    shard = Path(info.prepared_path) / info.manifest["splits"]["test"]["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[-50] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(
        dsreg.CacheError,
        match=rf"toy: test shard {shard.name} here is damaged \(sha256 .*\); run `dsreg fetch toy --split test --force`, then push",
    ):
        dsreg.push("toy", str(tmp_path / "share"))
    assert not (tmp_path / "share").exists() or not list((tmp_path / "share").rglob("manifest.json"))


def test_offline_refuses_a_remote_url_but_not_a_folder(toy, served, dsreg_s3, tmp_path: Path, monkeypatch) -> None:
    dsreg.fetch("toy", mirrors=served, quiet=True)
    dsreg.push("toy", str(tmp_path / "share"), split="train")
    fresh_cache(tmp_path, monkeypatch)
    monkeypatch.setenv("DSREG_OFFLINE", "1")
    with pytest.raises(dsreg.OfflineError, match=r"s3://nowhere/x/toy/1\.0\.0-\w+ is remote and DSREG_OFFLINE=1 is set"):
        dsreg.load("toy", "train", remote="s3://nowhere/x")
    assert len(dsreg.load("toy", "train", remote=str(tmp_path / "share"))) == 8_000


def test_a_pull_cut_mid_transfer_says_run_again_and_the_rerun_resumes(toy, served, dsreg_s3, tmp_path: Path, monkeypatch) -> None:
    bucket = dsreg_s3.bucket("cut-pull")
    dsreg.fetch("toy", mirrors=served, quiet=True)
    dsreg.push("toy", bucket, split="train")
    fresh_cache(tmp_path, monkeypatch)
    from dsreg.fetching import objectstore

    fs = objectstore.url_to_fs(bucket)[0]  # the filesystem the pull uses (s3fs caches one per settings)

    def cut(rpaths, lpaths, **kwargs):  # the connection drops once half of each shard arrived
        for path, local in zip(rpaths, lpaths):
            data = fs.cat_file(path)
            Path(local).write_bytes(data[: len(data) // 2])
        raise OSError("connection reset by peer")

    real = fs.get
    monkeypatch.setattr(fs, "get", cut)
    with pytest.raises(
        FetchError,
        match=r"toy: pulling from s3://cut-pull/toy/1\.0\.0-\w+ stopped \(OSError: connection reset by peer\); run it again: it resumes",
    ):
        dsreg.load("toy", "train", remote=bucket)
    folder = Cache().prepared_dir("toy", dsreg.get_builder("toy", flavour="a").config_id)
    halves = {part.name: part.stat().st_size for part in folder.glob(".*.part")}
    assert len(halves) >= 3 and all(size > 0 for size in halves.values())  # what arrived before the cut is kept
    monkeypatch.setattr(fs, "get", real)  # the connection is back
    no_prepare(monkeypatch)
    assert len(dsreg.load("toy", "train", remote=bucket)) == 8_000
    assert not list(folder.glob(".*.part"))


def test_force_with_a_remote_pulls_again_only_the_shards_that_differ(toy, served, tmp_path: Path, monkeypatch) -> None:
    share = str(tmp_path / "share")
    dsreg.fetch("toy", mirrors=served, quiet=True)
    dsreg.push("toy", share, split="train")
    fresh_cache(tmp_path, monkeypatch)
    no_prepare(monkeypatch)
    dsreg.fetch("toy", split="train", remote=share, quiet=True)
    info = dsreg.info("toy")
    folder, shards = Path(info.prepared_path), info.manifest["splits"]["train"]["shards"]
    damaged = folder / shards[1]["file"]
    data = bytearray(damaged.read_bytes())
    data[-10] ^= 0xFF  # same size: still "ready", but not the pushed bytes
    damaged.write_bytes(bytes(data))
    from dsreg.store.storage import verify_split

    assert list(verify_split(folder, info.manifest, "train")) == [damaged.name]
    untouched = (folder / shards[0]["file"]).stat().st_mtime_ns
    dsreg.fetch("toy", split="train", remote=share, force=True, quiet=True)
    assert verify_split(folder, dsreg.info("toy").manifest, "train") == {}
    assert (folder / shards[0]["file"]).stat().st_mtime_ns == untouched  # intact shards are kept, not downloaded again
