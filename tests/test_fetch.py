"""Fetch: verified, resumed, retried, mirrored, locked, offline, handed over, pinned."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

import dsreg
from dsreg.fetching.cache import Cache

from toydata import blob, make_builder


def test_verified_fetch_over_http_lands_content_addressed(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    info = dsreg.fetch("toy", quiet=True)
    sha = hashlib.sha256(data).hexdigest()
    assert (dsreg_cache / "downloads" / sha).read_bytes() == data
    assert info.fetched["toy.bin"]["status"] == "verified"
    assert info.manifest["splits"]["train"]["examples"] + info.manifest["splits"]["test"]["examples"] == len(data) // 4
    assert not list((dsreg_cache / "downloads" / "partial").rglob("*.part"))


def test_download_resumes_after_a_cut_with_range(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data}, cut_after=100_000)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    dsreg.fetch("toy", quiet=True)
    log = dsreg_file_server.requests
    assert [status for _, _, status in log] == [200, 206]
    assert log[1][1] == "bytes=100000-"
    assert dsreg_file_server.bytes_sent == len(data)  # nothing fetched twice
    assert (dsreg_cache / "downloads" / hashlib.sha256(data).hexdigest()).read_bytes() == data


def test_server_ignoring_range_restarts_from_zero(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data}, cut_after=50_000, ignore_range=True)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    info = dsreg.fetch("toy", quiet=True)
    assert info.fetched["toy.bin"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert [status for _, _, status in dsreg_file_server.requests] == [200, 200]


def test_part_file_left_by_a_dead_process_is_resumed(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    part = Cache(dsreg_cache).part_path("toy", "toy.bin")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:123_456])
    dsreg.fetch("toy", quiet=True)
    assert dsreg_file_server.requests == [("toy.bin", "bytes=123456-", 206)]


def test_transient_errors_are_retried(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data}, fail=2)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    dsreg.fetch("toy", quiet=True)
    assert [s for _, _, s in dsreg_file_server.requests] == [500, 500, 200]


def test_mirrors_are_tried_in_order_and_every_failure_is_named(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "missing/toy.bin", url + "toy.bin")))
    info = dsreg.fetch("toy", quiet=True)
    assert info.fetched["toy.bin"]["source"] == url + "toy.bin"

    dsreg_register(make_builder(blob(1000, seed=5), name="gone", urls=(url + "a/toy.bin", url + "b/toy.bin")))
    with pytest.raises(dsreg.FetchError) as err:
        dsreg.fetch("gone", quiet=True)
    assert "a/toy.bin: not found" in str(err.value) and "b/toy.bin: not found" in str(err.value)
    assert "mirrors=[URL]" in str(err.value) and "--mirror" not in str(err.value)  # Python callers get arguments
    assert "--mirror URL" in err.value.cli_message and "mirrors=" not in err.value.cli_message  # the CLI, flags


def test_checksum_mismatch_keeps_the_bytes_aside_and_caches_nothing(dsreg_cache, dsreg_file_server, dsreg_register, data):
    bad = bytearray(data)
    bad[1000] ^= 0xFF
    url = dsreg_file_server.serve({"toy.bin": bytes(bad)})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    with pytest.raises(dsreg.ChecksumError) as err:
        dsreg.fetch("toy", quiet=True)
    message = str(err.value)
    actual = hashlib.sha256(bad).hexdigest()
    assert f"sha256 {actual}, expected {hashlib.sha256(data).hexdigest()}" in message
    kept = list((dsreg_cache / "downloads" / "rejected" / "toy").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(bad) and str(kept[0]) in message
    assert not (dsreg_cache / "downloads" / actual).exists()
    assert not (dsreg_cache / "datasets" / "toy" / "prepared").exists()


def test_user_mirror_comes_first_and_a_bad_one_falls_back(dsreg_cache, dsreg_file_server, dsreg_register, data, tmp_path):
    url = dsreg_file_server.serve({"toy.bin": data})
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "toy.bin").write_bytes(data)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    info = dsreg.fetch("toy", mirrors=[str(folder)], quiet=True)
    assert info.fetched["toy.bin"]["source"] == str(folder / "toy.bin")
    assert dsreg_file_server.requests == []


def test_mirrors_from_env_and_config_file(dsreg_cache, dsreg_file_server, dsreg_register, data, monkeypatch, tmp_path):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=("http://127.0.0.1:9/never/toy.bin",)), make_builder(data, name="other", urls=()))
    monkeypatch.setenv("DSREG_MIRRORS", f"toy={url}")
    assert dsreg.fetch("toy", quiet=True).fetched["toy.bin"]["source"] == url + "toy.bin"
    monkeypatch.delenv("DSREG_MIRRORS")
    Cache(dsreg_cache).remove("toy")  # else "other" would reuse the same bytes from the cache
    config = tmp_path / "config.toml"
    config.write_text(f'[mirrors]\n"*" = ["{url}"]\n')
    monkeypatch.setenv("DSREG_CONFIG", str(config))
    assert dsreg.fetch("other", quiet=True).fetched["toy.bin"]["source"] == url + "toy.bin"


def test_from_path_takes_a_folder_or_a_file_and_verifies(dsreg_cache, dsreg_register, data, tmp_path):
    dsreg_register(make_builder(data), make_builder(data, name="second"))
    (tmp_path / "toy.bin").write_bytes(data)
    assert dsreg.fetch("toy", from_path=tmp_path, quiet=True).cached
    assert dsreg.fetch("second", from_path=tmp_path / "toy.bin", quiet=True).cached
    other = blob(300_000, seed=9)  # bytes not in the cache yet
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "toy.bin").write_bytes(other[:-1])
    dsreg_register(make_builder(other, name="third"))
    with pytest.raises(dsreg.ChecksumError, match="size 299,999 bytes, expected 300,000"):
        dsreg.fetch("third", from_path=wrong, quiet=True)
    with pytest.raises(dsreg.FetchError, match="is not at"):
        dsreg.fetch("third", from_path=tmp_path / "nowhere", quiet=True)


def test_no_verify_is_recorded_and_kept(dsreg_cache, dsreg_register, data, tmp_path):
    mine = blob(300_000, seed=7)
    (tmp_path / "toy.bin").write_bytes(mine)
    dsreg_register(make_builder(data))
    info = dsreg.fetch("toy", from_path=tmp_path, verify=False, quiet=True)
    record = info.fetched["toy.bin"]
    assert record["status"] == "unverified" and record["sha256"] == hashlib.sha256(mine).hexdigest()
    assert dsreg.info("toy").fetched["toy.bin"]["status"] == "unverified"
    assert len(dsreg.load("toy", split="train")) == 60_000  # still served, no re-download


def test_md5_only_file_is_verified_and_indexed(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",), checksum="md5"))
    dsreg.fetch("toy", quiet=True)
    md5 = hashlib.md5(data).hexdigest()
    assert (dsreg_cache / "downloads" / "md5" / md5).read_text().strip() == hashlib.sha256(data).hexdigest()


def test_unpublished_checksum_is_pinned_then_enforced(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",), pin=True, size=False))
    info = dsreg.fetch("toy", quiet=True)
    assert info.fetched["toy.bin"]["status"] == "pinned"
    pinned = info.fetched["toy.bin"]["sha256"]
    # A later copy with other bytes (the download lost, the mirror changed) is refused against the pin.
    dsreg_file_server.serve({"toy.bin": blob(300_000, seed=3)})
    (dsreg_cache / "downloads" / pinned).unlink()
    with pytest.raises(dsreg.ChecksumError, match=f"expected the pinned {pinned}.*force=True\\) replaces the pin"):
        dsreg.fetch("toy", quiet=True)
    assert dsreg.info("toy").fetched["toy.bin"]["sha256"] == pinned


def test_offline_uses_the_cache_or_names_what_is_missing(dsreg_cache, dsreg_file_server, dsreg_register, data, monkeypatch):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)), make_builder(blob(400, seed=2), name="absent", urls=(url + "toy2.bin",)))
    dsreg.fetch("toy", quiet=True)
    monkeypatch.setenv("DSREG_OFFLINE", "1")
    before = len(dsreg_file_server.requests)
    assert len(dsreg.load("toy", split="test")) == 15_000
    with pytest.raises(dsreg.OfflineError, match="absent needs toy.bin.*DSREG_OFFLINE=1"):
        dsreg.load("absent", split="test")
    assert len(dsreg_file_server.requests) == before


def test_content_shared_between_datasets_is_downloaded_once(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)), make_builder(data, name="twin", urls=(url + "toy.bin",)))
    dsreg.fetch("toy", quiet=True)
    dsreg.fetch("twin", quiet=True)
    assert len(dsreg_file_server.requests) == 1


def _fetch_in_child(cache: str, url: str, data_len: int, queue) -> None:
    # Runs in a fresh process: registers the same builder and fetches.
    os.environ["DSREG_CACHE"] = cache
    sys.path.insert(0, str(Path(__file__).parent))
    from dsreg.testing import registered

    from toydata import blob as _blob
    from toydata import make_builder as _make

    with registered(_make(_blob(data_len), urls=(url + "toy.bin",))):
        info = dsreg.fetch("toy", quiet=True)
    queue.put(info.manifest["prepared"])


def test_two_processes_fetch_once(dsreg_cache, dsreg_file_server, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fetch_in_child, args=(str(dsreg_cache), url, len(data), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    stamps = {queue.get(timeout=5), queue.get(timeout=5)}
    assert [r for r in dsreg_file_server.requests if r[2] in (200, 206)] == [("toy.bin", None, 200)]
    assert len(stamps) == 1  # the second process found the first one's prepared store


def test_files_record_is_valid_json_after_fetch(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    dsreg.fetch("toy", quiet=True)
    record = json.loads((dsreg_cache / "datasets" / "toy" / "files.json").read_text())
    assert set(record["toy.bin"]) >= {"sha256", "md5", "size", "status", "source"}


def test_loopback_only_network_refuses_other_hosts(dsreg_cache, dsreg_file_server, dsreg_register, monkeypatch):
    other = blob(500, seed=12)
    url = dsreg_file_server.serve({"toy.bin": other})
    dsreg_register(make_builder(other, urls=("https://example.invalid/toy.bin", url + "toy.bin")))
    monkeypatch.setenv("DSREG_NETWORK", "loopback")
    info = dsreg.fetch("toy", quiet=True)
    assert info.fetched["toy.bin"]["source"] == url + "toy.bin"
    dsreg_register(make_builder(blob(600, seed=13), name="far", urls=("https://example.invalid/toy.bin",)))
    with pytest.raises(dsreg.FetchError, match="example.invalid/toy.bin: refused: not on this machine and DSREG_NETWORK=loopback is set"):
        dsreg.fetch("far", quiet=True)


def test_a_mirror_serving_a_shorter_file_is_a_verification_failure_not_a_retry(dsreg_cache, dsreg_file_server, dsreg_register):
    real = blob(50_000, seed=14)
    url = dsreg_file_server.serve({"toy.bin": real[:40_000]})
    dsreg_register(make_builder(real, urls=(url + "toy.bin",)))
    with pytest.raises(dsreg.ChecksumError, match="size 40,000 bytes, expected 50,000"):
        dsreg.fetch("toy", quiet=True)
    assert len(dsreg_file_server.requests) == 1
    info = dsreg.fetch("toy", quiet=True, verify=False)  # a private, shorter copy is accepted on request
    assert info.fetched["toy.bin"]["status"] == "unverified" and info.fetched["toy.bin"]["size"] == 40_000


def test_records_get_the_usual_file_permissions(dsreg_cache, tmp_path):
    from dsreg.fetching.cache import write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
