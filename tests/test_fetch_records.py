"""FileRecord and Status: the typed records of files.json, the format of dsreg 0.1 kept key for key, and the old names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import dsreg
from dsreg.errors import CacheError
from dsreg.fetching.cache import Cache
from dsreg.fetching.download import Downloader, Fetcher
from dsreg.fetching.records import FileRecord, Status

from toydata import make_builder


def files_json_of_0_1(sha: str, md5: str, size: int) -> str:
    """files.json as dsreg 0.1 wrote it (json.dump, indent 2, sorted keys): one record of each kind."""
    return (
        "{\n"
        '  "cached.bin": {\n'
        f'    "md5": "{md5}",\n'
        '    "sha256": "' + sha + '",\n'
        f'    "size": {size},\n'
        '    "source": "cache",\n'
        '    "status": "verified"\n'
        "  },\n"
        '  "pinned.bin": {\n'
        '    "fetched": "2026-01-02T03:04:05Z",\n'
        f'    "md5": "{md5}",\n'
        '    "pinned": "2026-01-02T03:04:05Z",\n'
        '    "sha256": "' + sha + '",\n'
        f'    "size": {size},\n'
        '    "source": "https://example.invalid/pinned.bin",\n'
        '    "status": "pinned"\n'
        "  },\n"
        '  "toy.bin": {\n'
        '    "fetched": "2026-01-02T03:04:05Z",\n'
        f'    "md5": "{md5}",\n'
        '    "replaces": "' + "0" * 64 + '",\n'
        '    "sha256": "' + sha + '",\n'
        f'    "size": {size},\n'
        '    "source": "https://example.invalid/toy.bin",\n'
        '    "status": "candidate"\n'
        "  }\n"
        "}\n"
    )


def test_status_values_are_the_words_files_json_has_always_stored() -> None:
    assert [s.value for s in Status] == ["verified", "candidate", "pinned", "unverified"]
    assert str(Status.PINNED) == "pinned" and f"{Status.CANDIDATE}" == "candidate"


def test_a_cache_written_by_dsreg_0_1_is_read_as_records_and_written_back_unchanged(dsreg_cache: Path, data: bytes) -> None:
    sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    cache = Cache(dsreg_cache)
    text = files_json_of_0_1(sha, md5, len(data))
    cache.records_path("toy").parent.mkdir(parents=True)
    cache.records_path("toy").write_text(text)

    records = cache.read_records("toy")
    assert records["cached.bin"] == FileRecord(sha, len(data), Status.VERIFIED, source="cache", md5=md5)
    assert records["pinned.bin"].status is Status.PINNED and records["pinned.bin"].pinned == "2026-01-02T03:04:05Z"
    assert records["toy.bin"].status is Status.CANDIDATE and records["toy.bin"].replaces == "0" * 64
    cache.write_records("toy", records)
    assert cache.records_path("toy").read_text() == text  # byte for byte: an older dsreg reads it back


def test_a_dataset_recorded_by_dsreg_0_1_is_served_from_the_cache_without_a_download(
    dsreg_cache: Path, dsreg_register, data: bytes
) -> None:
    sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    cache = Cache(dsreg_cache)
    cache.downloads.mkdir(parents=True)
    cache.blob_path(sha).write_bytes(data)
    cache.records_path("toy").parent.mkdir(parents=True)
    cache.records_path("toy").write_text(files_json_of_0_1(sha, md5, len(data)))
    dsreg_register(make_builder(data, urls=()))  # no URL at all: only the recorded blob can serve it
    info = dsreg.fetch("toy", quiet=True)
    assert info.manifest["splits"]["train"]["examples"] > 0
    assert cache.read_records("toy")["toy.bin"].sha256 == sha


def test_a_pinned_candidate_keeps_its_bytes_and_dates_the_pin_when_they_arrived() -> None:
    candidate = FileRecord("a" * 64, 3, Status.CANDIDATE, source="https://x.invalid/f", fetched="2026-05-06T07:08:09Z", replaces="b" * 64)
    pinned = candidate.as_pinned()
    assert pinned.to_json() == {
        "sha256": "a" * 64,
        "size": 3,
        "status": "pinned",
        "source": "https://x.invalid/f",
        "fetched": "2026-05-06T07:08:09Z",
        "pinned": "2026-05-06T07:08:09Z",
    }
    assert FileRecord.from_json(pinned.to_json() | {"added_by_a_later_dsreg": 1}) == pinned
    assert pinned.describe_status() == f"pinned sha256 {'a' * 64} on 2026-05-06T07:08:09Z"
    assert candidate.describe_status() == "not pinned yet (pinned once the dataset prepares from it)"


def test_every_status_is_described_as_dsreg_info_prints_it() -> None:
    words = {s: FileRecord("c" * 64, 1, s, source="u").describe_status() for s in Status}
    assert words == {
        Status.VERIFIED: "verified",
        Status.PINNED: f"pinned sha256 {'c' * 64} on ?",
        Status.UNVERIFIED: "NOT VERIFIED (fetched with --no-verify)",
        Status.CANDIDATE: "not pinned yet (pinned once the dataset prepares from it)",
    }


def test_a_damaged_record_is_a_cache_error_naming_the_file(dsreg_cache: Path) -> None:
    cache = Cache(dsreg_cache)
    cache.records_path("toy").parent.mkdir(parents=True)
    cache.records_path("toy").write_text(json.dumps({"toy.bin": {"sha256": "a" * 64, "size": 1, "status": "maybe", "source": "x"}}))
    with pytest.raises(CacheError, match=r"files\.json holds a record dsreg cannot read .*'maybe'.*dsreg cache rm toy"):
        cache.read_records("toy")


def test_the_cache_names_of_0_1_still_work_and_say_what_replaces_them(dsreg_cache: Path, data: bytes) -> None:
    cache, sha = Cache(dsreg_cache), hashlib.sha256(data).hexdigest()
    renamed = {
        ("download", (sha,)): cache.blob_path(sha),
        ("md5_index", ("m",)): cache.md5_index_path("m"),
        ("partial", ("toy", "toy.bin")): cache.part_path("toy", "toy.bin"),
        ("rejected", ("toy", "toy.bin", sha)): cache.rejected_path("toy", "toy.bin", sha),
        ("files_record", ("toy",)): cache.records_path("toy"),
    }
    for (old, args), path in renamed.items():
        with pytest.warns(DeprecationWarning, match=f"Cache.{old} is deprecated; use Cache."):
            assert getattr(cache, old)(*args) == path

    # What api.py does with them today: read dicts, change a status string, write the dicts back.
    cache.write_records("toy", {"toy.bin": FileRecord(sha, len(data), Status.CANDIDATE, source="u", fetched="t")})
    with pytest.warns(DeprecationWarning, match="use Cache.read_records"):
        files = cache.read_files("toy")
    assert files == {"toy.bin": {"sha256": sha, "size": len(data), "status": "candidate", "source": "u", "fetched": "t"}}
    files["toy.bin"]["status"] = "pinned"
    with pytest.warns(DeprecationWarning, match="use Cache.write_records"):
        cache.write_files("toy", files)
    assert cache.read_records("toy")["toy.bin"].status is Status.PINNED


def test_fetcher_is_the_downloader_under_its_old_name(dsreg_cache: Path, dsreg_file_server, data: bytes) -> None:
    url = dsreg_file_server.serve({"toy.bin": data})
    file = make_builder(data, urls=(url + "toy.bin",)).files[0]
    assert Fetcher is Downloader
    with pytest.warns(DeprecationWarning, match="use Downloader.download"):
        paths = Fetcher(Cache(dsreg_cache), "toy", quiet=True).fetch([file])
    assert paths["toy.bin"].read_bytes() == data
    assert Downloader(Cache(dsreg_cache), "toy").cached([file]) == paths
