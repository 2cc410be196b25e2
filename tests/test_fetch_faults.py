"""Fetch against a misbehaving network: every fault of the loopback server, told truly and bounded in time.

Each test sets small timeouts (DSREG_TIMEOUT=1, DSREG_BACKOFF=0.05) and asserts what a user would
see: the outcome, the one line printed per failed attempt, the cache afterwards (nothing half-made
marked complete, the .part kept where it resumes) and how long it took.
"""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest

import dsreg
from dsreg.fetching.cache import Cache

from toydata import blob, make_builder


@pytest.fixture
def fast(dsreg_cache, monkeypatch):
    """Timeouts and backoff small enough for tests; returns the cache root."""
    monkeypatch.setenv("DSREG_TIMEOUT", "1")
    monkeypatch.setenv("DSREG_BACKOFF", "0.05")
    return dsreg_cache


def lines(capsys) -> list[str]:
    """The lines the fetch printed on stderr."""
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    try:
        return fn(*args, **kwargs), time.monotonic() - start
    except BaseException as exc:
        exc.elapsed = time.monotonic() - start  # type: ignore[attr-defined]
        raise


def part_of(cache: Path, name: str = "toy") -> Path:
    return Cache(cache).part_path(name, "toy.bin")


def assert_nothing_complete(cache: Path, name: str = "toy") -> None:
    """No download installed, no record and no prepared store for ``name``: nothing half-made is served."""
    assert not [p for p in (cache / "downloads").glob("*") if p.is_file()]
    assert name not in Cache(cache).read_records(name)
    assert not (cache / "datasets" / name / "prepared").exists()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- stalls ------------------------------------------------------------------------------------


def test_mirrors_stalled_before_the_headers_cost_one_idle_timeout_each(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_file_server.serve({"a/toy.bin": data, "b/toy.bin": data}, stall_before_headers=True, stall=30)
    dsreg_register(make_builder(data, urls=(url + "a/toy.bin", url + "b/toy.bin", url + "toy.bin")))
    info, elapsed = timed(dsreg.fetch, "toy")
    assert info.fetched["toy.bin"]["source"] == url + "toy.bin" and info.cached
    assert 1.8 < elapsed < 10  # two dead mirrors at DSREG_TIMEOUT=1 each (and a prepare), not minutes
    assert lines(capsys)[:2] == [
        f"toy: {url}a/toy.bin: stalled: no response within 1 s; trying the next source",
        f"toy: {url}b/toy.bin: stalled: no response within 1 s; trying the next source",
    ]
    assert [s for n, _, s in dsreg_file_server.requests] == [0, 0, 200]  # one attempt per dead mirror


def test_a_stall_mid_body_is_a_cut_resumed_on_the_next_attempt(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data}, stall_after=100_000, stall=30)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    info, elapsed = timed(dsreg.fetch, "toy")
    assert info.fetched["toy.bin"]["sha256"] == sha(data)
    assert 0.9 < elapsed < 8
    assert lines(capsys)[0] == (
        f"toy: {url}toy.bin: stalled: no byte for 1 s after 100,000 bytes; retrying in 0.05 s from byte 100,000 (attempt 2 of 3)"
    )
    assert dsreg_file_server.requests == [("toy.bin", None, 200), ("toy.bin", "bytes=100000-", 206)]
    assert dsreg_file_server.bytes_sent == len(data)


def test_a_mirror_that_always_stalls_fails_in_bounded_time_keeping_the_part(fast, dsreg_file_server, dsreg_register, data, monkeypatch):
    monkeypatch.setenv("DSREG_RETRIES", "2")
    url = dsreg_file_server.serve({"toy.bin": data}, stall_after=50_000, stall=30, stall_times=99)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    with pytest.raises(dsreg.FetchError) as err:
        timed(dsreg.fetch, "toy", quiet=True)
    assert err.value.elapsed < 2 * 1 + 1.5  # type: ignore[attr-defined]
    message = str(err.value)
    assert message.startswith(f"toy: could not fetch toy.bin ({url}toy.bin: stalled: no byte for 1 s after 50,000 bytes)")
    assert message.endswith("try again later, pass mirrors=[URL] to add a mirror, or from_path=PATH to hand over a copy")
    assert "\n" not in message
    assert part_of(fast).read_bytes() == data[:100_000]  # both attempts' bytes, ready to resume
    assert_nothing_complete(fast)


def test_a_trickle_slower_than_nothing_but_never_idle_is_not_cut(fast, dsreg_file_server, dsreg_register, monkeypatch):
    monkeypatch.setenv("DSREG_TIMEOUT", "0.5")
    small = blob(100_000, seed=21)
    url = dsreg_file_server.serve({"toy.bin": small}, trickle=10_000, trickle_pause=0.1)
    dsreg_register(make_builder(small, urls=(url + "toy.bin",)))
    info, elapsed = timed(dsreg.fetch, "toy", quiet=True)
    assert info.fetched["toy.bin"]["sha256"] == sha(small)
    assert dsreg_file_server.requests == [("toy.bin", None, 200)] and 0.8 < elapsed < 8


# -- cuts and ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["data-and-close-together", "close-after-a-pause"])
def test_every_byte_before_a_drop_is_kept(fast, dsreg_file_server, dsreg_register, data, capsys, pause):
    url = dsreg_file_server.serve({"toy.bin": data}, cut_after=123_457, cut_pause=pause)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    dsreg.fetch("toy")
    assert dsreg_file_server.requests == [("toy.bin", None, 200), ("toy.bin", "bytes=123457-", 206)]
    assert dsreg_file_server.bytes_sent == len(data)  # nothing fetched twice
    assert lines(capsys)[0] == (
        f"toy: {url}toy.bin: connection closed after 123,457 of 300,000 bytes; retrying in 0.05 s from byte 123,457 (attempt 2 of 3)"
    )


@pytest.mark.parametrize("shift", [-100_000, 17], ids=["from-zero", "past-the-offset"])
def test_a_wrong_content_range_discards_the_part_and_restarts(fast, dsreg_file_server, dsreg_register, data, capsys, shift):
    url = dsreg_file_server.serve({"toy.bin": data}, cut_after=100_000, cut_pause=0, range_shift=shift)
    # No published checksum or size: without the Content-Range check the pin would be of a corrupt file.
    dsreg_register(make_builder(data, urls=(url + "toy.bin",), pin=True, size=False))
    info = dsreg.fetch("toy")
    assert info.fetched["toy.bin"]["sha256"] == sha(data) and info.fetched["toy.bin"]["status"] == "pinned"
    assert [s for _, _, s in dsreg_file_server.requests] == [200, 206, 200]
    start = 100_000 + shift
    assert lines(capsys)[1] == (
        f"toy: {url}toy.bin: wrong Content-Range 'bytes {start}-299999/300000' for a resume from byte 100,000; "
        "restarting from byte 0 (attempt 3 of 3)"
    )


def test_a_part_longer_than_the_file_is_restarted_on_416(fast, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",), pin=True, size=False))
    part = part_of(fast)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 400_000)  # left by an older, longer version of the file
    info = dsreg.fetch("toy", quiet=True)
    assert info.fetched["toy.bin"]["sha256"] == sha(data)
    assert [s for _, _, s in dsreg_file_server.requests] == [416, 200]


# -- statuses ----------------------------------------------------------------------------------


def test_404_and_410_go_to_the_next_mirror_at_once(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_file_server.serve({"gone/toy.bin": b""}, fail=99, status=410)
    dsreg_register(make_builder(data, urls=(url + "missing/toy.bin", url + "gone/toy.bin", url + "toy.bin")))
    _, elapsed = timed(dsreg.fetch, "toy")
    assert elapsed < 8 and [s for _, _, s in dsreg_file_server.requests] == [404, 410, 200]
    assert lines(capsys)[:2] == [
        f"toy: {url}missing/toy.bin: not found (HTTP 404); trying the next source",
        f"toy: {url}gone/toy.bin: gone (HTTP 410); trying the next source",
    ]


def test_503_with_retry_after_is_waited_for(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data}, fail=1, status=503, retry_after="1")
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    _, elapsed = timed(dsreg.fetch, "toy")
    assert 0.95 < elapsed < 8  # the server's 1 s, not the 0.05 s backoff
    assert lines(capsys)[0] == f"toy: {url}toy.bin: HTTP 503 Service Unavailable; retrying in 1 s (attempt 2 of 3)"


def test_429_is_retried_with_backoff(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data}, fail=2, status=429)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    dsreg.fetch("toy")
    assert [s for _, _, s in dsreg_file_server.requests] == [429, 429, 200]
    assert lines(capsys)[:2] == [
        f"toy: {url}toy.bin: HTTP 429 Too Many Requests; retrying in 0.05 s (attempt 2 of 3)",
        f"toy: {url}toy.bin: HTTP 429 Too Many Requests; retrying in 0.1 s (attempt 3 of 3)",
    ]


def test_a_retry_after_past_the_cap_moves_on_instead_of_waiting(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_file_server.serve({"busy/toy.bin": b""}, fail=99, status=503, retry_after="3600")
    dsreg_register(make_builder(data, urls=(url + "busy/toy.bin", url + "toy.bin")))
    _, elapsed = timed(dsreg.fetch, "toy")
    assert elapsed < 8
    assert lines(capsys)[0] == (
        f"toy: {url}busy/toy.bin: HTTP 503 Service Unavailable, asks to retry after 3600 s (more than 60 s); trying the next source"
    )


def test_500_on_a_file_with_no_published_size_is_a_server_error_not_not_found(fast, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data}, fail=2)
    dsreg_register(make_builder(data, urls=(url + "toy.bin",), pin=True, size=False))
    assert dsreg.fetch("toy", quiet=True).fetched["toy.bin"]["sha256"] == sha(data)
    assert [s for _, _, s in dsreg_file_server.requests] == [500, 500, 200]

    other = blob(1000, seed=22)
    dsreg_file_server.serve({"down.bin": other}, fail=99)
    dsreg_register(make_builder(other, name="down", urls=(url + "down.bin",), pin=True, size=False))
    with pytest.raises(dsreg.FetchError) as err:
        dsreg.fetch("down", quiet=True)
    assert f"{url}down.bin: HTTP 500 Internal Server Error)" in str(err.value)
    assert "not found" not in str(err.value) and "try again later" in str(err.value)


def test_an_html_page_instead_of_the_file_is_named_and_skipped(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_file_server.serve({"portal/toy.bin": b"<html><body>Please sign in</body></html>"}, content_type="text/html; charset=utf-8")
    dsreg_register(make_builder(data, urls=(url + "portal/toy.bin", url + "toy.bin")))
    assert dsreg.fetch("toy").fetched["toy.bin"]["source"] == url + "toy.bin"
    assert lines(capsys)[0] == (
        f"toy: {url}portal/toy.bin: served an HTML page (Content-Type text/html), not the file; trying the next source"
    )
    # The same page labelled as binary: downloaded, then rejected by its size and named for what it is.
    page = b"<!DOCTYPE html><html><body>Quota exceeded</body></html>"
    dsreg_file_server.serve({"quota/toy.bin": page})
    dsreg_register(make_builder(data, name="quota", urls=(url + "quota/toy.bin",)))
    Cache(fast).remove("toy")  # else "quota" would reuse toy's bytes from the cache
    with pytest.raises(dsreg.ChecksumError, match=r"size 55 bytes, expected 300,000 \(an HTML page, not the file\)"):
        dsreg.fetch("quota", quiet=True)
    assert_nothing_complete(fast, "quota")
    assert [p.read_bytes() for p in (fast / "downloads" / "rejected" / "quota").iterdir()] == [page]


def test_redirects_are_followed_and_a_loop_is_named(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"files/toy.bin": data})
    dsreg_file_server.serve({"old/toy.bin": b""}, redirect="/files/toy.bin")
    dsreg_file_server.serve({"loop/toy.bin": b""}, redirect="/loop/toy.bin")
    dsreg_register(make_builder(data, urls=(url + "loop/toy.bin", url + "old/toy.bin")))
    assert dsreg.fetch("toy").fetched["toy.bin"]["sha256"] == sha(data)
    assert lines(capsys)[0] == f"toy: {url}loop/toy.bin: more than 10 redirects; trying the next source"
    assert [s for _, _, s in dsreg_file_server.requests][-2:] == [302, 200]


# -- connections -------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_and_tls_errors_are_named_and_skipped(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data})
    refused = f"http://127.0.0.1:{_closed_port()}/toy.bin"
    tls = url.replace("http://", "https://") + "toy.bin"  # TLS spoken to a plain HTTP server
    dsreg_register(make_builder(data, urls=(refused, tls, url + "toy.bin")))
    _, elapsed = timed(dsreg.fetch, "toy")
    said = lines(capsys)
    assert elapsed < 8
    assert said[0] == f"toy: {refused}: connection refused; trying the next source"
    assert said[1].startswith(f"toy: {tls}: TLS error: ") and said[1].endswith("; trying the next source")


def test_a_connection_that_never_opens_costs_the_connect_timeout(fast, dsreg_file_server, dsreg_register, data, capsys, monkeypatch):
    monkeypatch.setenv("DSREG_CONNECT_TIMEOUT", "0.5")
    url = dsreg_file_server.serve({"toy.bin": data})
    # A listener whose backlog is full: the kernel drops further SYNs, as a firewalled host does.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        queued = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            queued.append(s)
        time.sleep(0.1)
        dead = f"http://127.0.0.1:{port}/toy.bin"
        dsreg_register(make_builder(data, urls=(dead, url + "toy.bin")))
        try:
            _, elapsed = timed(dsreg.fetch, "toy")
        finally:
            for s in queued:
                s.close()
    assert 0.4 < elapsed < 8
    assert lines(capsys)[0] == f"toy: {dead}: no connection within 0.5 s; trying the next source"


def test_dns_failure_is_named_and_an_unreachable_network_says_what_to_try(
    fast, dsreg_file_server, dsreg_register, data, capsys, monkeypatch, tmp_path
):
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):  # the resolver of a machine with no DNS for this name
        if host == "mirror.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.delenv("DSREG_NETWORK")
    refused = f"http://127.0.0.1:{_closed_port()}/toy.bin"
    dsreg_register(make_builder(data, urls=("http://mirror.invalid/toy.bin", refused)))
    with pytest.raises(dsreg.FetchError) as err:
        dsreg.fetch("toy")
    assert lines(capsys) == [
        "toy: http://mirror.invalid/toy.bin: cannot resolve host mirror.invalid (DNS: Name or service not known); trying the next source",
        f"toy: {refused}: connection refused; no source left",
    ]
    advice = "the network looks unreachable: connect and try again, set DSREG_OFFLINE=1 to use only the cache"
    assert str(err.value).endswith(f"{advice}, or pass from_path=PATH to hand over a copy")
    assert err.value.cli_message.endswith(f"{advice}, or hand over a copy with --from PATH")
    (tmp_path / "toy.bin").write_bytes(data)  # the advice, followed
    assert dsreg.fetch("toy", from_path=tmp_path, quiet=True).cached


def test_quiet_prints_nothing(fast, dsreg_file_server, dsreg_register, data, capsys):
    url = dsreg_file_server.serve({"toy.bin": data}, fail=1)
    dsreg_register(make_builder(data, urls=(url + "missing.bin", url + "toy.bin")))
    dsreg.fetch("toy", quiet=True)
    assert capsys.readouterr().err == ""


def test_timeout_settings_come_from_the_config_file_and_bad_values_say_how_to_fix_them(fast, monkeypatch, tmp_path):
    from dsreg.fetching import config

    monkeypatch.delenv("DSREG_TIMEOUT")
    path = tmp_path / "config.toml"
    path.write_text("[fetch]\ntimeout = 4\nretries = 5\n")
    monkeypatch.setenv("DSREG_CONFIG", str(path))
    assert (config.timeout(), config.connect_timeout(), config.retries()) == (4.0, 4.0, 5)
    monkeypatch.setenv("DSREG_TIMEOUT", "45")  # the environment wins
    assert (config.timeout(), config.connect_timeout()) == (45.0, 10.0)
    monkeypatch.setenv("DSREG_TIMEOUT", "soon")
    with pytest.raises(dsreg.ConfigError, match="DSREG_TIMEOUT='soon' is not a number of seconds above 0; set it to e.g. 30"):
        config.timeout()


_FULL_DISK = """
import resource, signal, sys
sys.path.insert(0, {tests!r})
import dsreg
from dsreg.testing import registered
from toydata import blob, make_builder
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
with registered(make_builder(blob(), urls=({url!r},))):
    try:
        dsreg.fetch("toy", quiet=True)
    except dsreg.DsregError as exc:
        print(type(exc).__name__, exc)
"""


def test_a_full_disk_while_downloading_is_one_line_not_a_retry(fast, dsreg_file_server, data):
    import subprocess
    import sys

    url = dsreg_file_server.serve({"toy.bin": data})
    script = _FULL_DISK.format(tests=str(Path(__file__).parent), url=url + "toy.bin")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    part = part_of(fast)
    assert done.stdout.strip() == f"CacheError cannot write {part} (File too large); free some space or set DSREG_CACHE to another disk"
    assert done.stderr == "" and len(dsreg_file_server.requests) == 1  # not blamed on the server, not retried
    assert part.stat().st_size == 100_000  # what fitted is kept for the next try
