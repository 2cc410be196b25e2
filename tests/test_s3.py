"""s3:// end to end against the local S3 server (the dsreg_s3 fixture): mirrors, resume, checksums, user data, loopback."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import pytest

import dsreg
from dsreg.errors import ChecksumError, ConfigError, FetchError
from dsreg.fetching import config, objectstore
from dsreg.fetching.cache import Cache
from dsreg.fetching.download import Downloader

from toydata import blob, make_builder


def test_the_fixture_serves_buckets_on_this_machine(dsreg_s3) -> None:
    import fsspec

    assert dsreg_s3.endpoint.startswith("http://127.0.0.1:")
    base = dsreg_s3.bucket("fixture-check")
    dsreg_s3.upload(b"hello", base + "a/one.txt")
    dsreg_s3.upload({"b/two.txt": b"two"}, base)
    dsreg_s3.clear_clients()
    fs, path = fsspec.core.url_to_fs(base)  # found through AWS_ENDPOINT_URL, as a user's client would
    assert sorted(fs.find(path)) == ["fixture-check/a/one.txt", "fixture-check/b/two.txt"]
    assert fs.cat_file("fixture-check/a/one.txt") == b"hello"


def test_a_changed_endpoint_is_reached_instead_of_the_cached_client(dsreg_s3, monkeypatch) -> None:
    """fsspec caches the s3:// filesystem by its arguments (none): pointing AWS_ENDPOINT_URL elsewhere must still be seen."""
    base = dsreg_s3.bucket("endpoint-moves")
    dsreg_s3.upload(b"x", base + "one.txt")
    first, path = objectstore.url_to_fs(base)
    assert first.ls(path) == ["endpoint-moves/one.txt"]
    assert objectstore.url_to_fs(base)[0] is first  # the same environment: the cached client, no new connection

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    moved = objectstore.url_to_fs(base)[0]
    assert moved is not first
    monkeypatch.setenv("AWS_ENDPOINT_URL", dsreg_s3.endpoint)
    back = objectstore.url_to_fs(base)[0]
    assert back is not moved and back.ls(path) == ["endpoint-moves/one.txt"]


def test_an_s3_mirror_is_fetched_and_verified(dsreg_cache: Path, dsreg_register, dsreg_s3) -> None:
    data = blob(200_000)
    base = dsreg_s3.bucket("mirror-ok")
    dsreg_s3.upload(data, base + "toy/toy.bin")
    dsreg_register(make_builder(data, urls=("https://example.invalid/toy.bin",)))
    info = dsreg.fetch("toy", mirrors=[base + "toy/"], quiet=True)
    record = info.fetched["toy.bin"]
    assert record["status"] == "verified" and record["source"] == base + "toy/toy.bin"
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(dsreg.load("toy", "train")) == 40_000


def test_an_s3_download_resumes_from_its_part_file(dsreg_cache: Path, dsreg_s3) -> None:
    data = blob(300_000)
    url = dsreg_s3.upload(data, dsreg_s3.bucket("resume-me") + "toy.bin")
    file = dsreg.File("toy.bin", urls=(url,), sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    cache = Cache()
    part = cache.part_path("toy", "toy.bin")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:123_456])  # what an interrupted download left
    downloader = Downloader(cache, "toy", quiet=True)
    path = downloader.download([file])["toy.bin"]
    assert path.read_bytes() == data
    assert downloader.bytes_transferred == len(data) - 123_456  # only the rest was read from S3
    assert not part.exists()


def test_a_wrong_sha256_from_s3_is_refused_and_kept_aside(dsreg_cache: Path, dsreg_register, dsreg_s3) -> None:
    data = blob(50_000)
    base = dsreg_s3.bucket("bad-bytes")
    dsreg_s3.upload(blob(50_000, seed=1), base + "toy.bin")  # same size, other bytes
    dsreg_register(make_builder(data, urls=(base + "toy.bin",)))
    with pytest.raises(ChecksumError, match=r"toy.bin failed verification from every source .*sha256 .* expected"):
        dsreg.fetch("toy", quiet=True)
    assert list((dsreg_cache / "downloads" / "rejected" / "toy").iterdir())


def test_loopback_lets_a_local_endpoint_through_and_refuses_aws(dsreg_cache: Path, dsreg_s3, monkeypatch) -> None:
    config.check_network("s3://any-bucket/key")  # the endpoint is the local server
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    with pytest.raises(FetchError, match=r"s3:// reaches .* not this machine, and DSREG_NETWORK=loopback"):
        config.check_network("s3://any-bucket/key")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.org")
    with pytest.raises(FetchError, match=r"its endpoint https://s3.example.org"):
        config.check_network("s3://any-bucket/key")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://localhost:9000")  # the S3-specific variable wins
    config.check_network("s3://any-bucket/key")


def test_a_missing_s3fs_is_one_line_saying_what_to_install(dsreg_cache: Path, dsreg_register, monkeypatch) -> None:
    registry = importlib.import_module("fsspec.registry")  # the module (``fsspec.registry`` is its mapping)
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if not installed
    for protocol in ("s3", "s3a"):
        monkeypatch.delitem(registry._registry, protocol, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(ConfigError) as caught:
        objectstore.url_to_fs("s3://bucket/data.zip")
    assert str(caught.value) == "s3://bucket/data.zip: reading s3:// needs s3fs, which is not installed; pip install 'dsreg[s3]'"
    data = blob(1_000)
    dsreg_register(make_builder(data, urls=("s3://bucket/toy.bin",)))
    with pytest.raises(ConfigError, match=r"pip install 'dsreg\[s3\]'$"):  # at once, not after every mirror
        dsreg.fetch("toy", quiet=True)
