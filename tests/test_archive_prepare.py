"""Preparing from archives when the machine fails: disk errors are one line naming the folder, and a
killed ``dsreg fetch`` leaves no decode worker behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli import cli
from dsreg.fetching import archive
from dsreg.store import storage
from dsreg.store.storage import disk_error

from toydata import make_builder


def leftovers(cache: Path, name: str) -> list[str]:
    """What a failed prepare left under the dataset's prepared folder (temp folders, side files)."""
    prepared = cache / "datasets" / name / "prepared"
    return sorted(str(p.relative_to(prepared)) for p in prepared.rglob("*")) if prepared.exists() else []


def test_a_full_disk_is_one_line_naming_the_folder_and_nothing_is_left(
    dsreg_cache: Path, dsreg_register, data: bytes, dsreg_file_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    real_open = open

    def full_disk(path, mode="r", *args, **kwargs):  # the side files of tensor columns go to /dev/full
        return real_open("/dev/full" if str(path).endswith(".raw") else path, mode, *args, **kwargs)

    monkeypatch.setattr(storage, "open", full_disk, raising=False)
    out = CliRunner().invoke(cli, ["fetch", "toy", "--quiet", "--workers", "1"])
    folder = dsreg_cache / "datasets" / "toy" / "prepared"
    assert out.exit_code == 1
    assert out.output == (
        f"error: preparing toy stopped: No space left on device: the disk of {folder} is full; free space there "
        "(`dsreg cache du` shows what the cache holds) or set DSREG_CACHE to a folder on a bigger disk; then fetch again\n"
    )
    assert leftovers(dsreg_cache, "toy") == []
    debug = CliRunner().invoke(cli, ["--debug", "fetch", "toy", "--quiet", "--workers", "1"])
    assert isinstance(debug.exception, dsreg.CacheError)
    assert isinstance(debug.exception.__cause__, OSError) and debug.exception.__cause__.errno == errno.ENOSPC

    monkeypatch.undo()  # space again: the advice, followed, works
    monkeypatch.setenv("DSREG_CACHE", str(dsreg_cache))
    monkeypatch.setenv("DSREG_NETWORK", "loopback")
    assert CliRunner().invoke(cli, ["fetch", "toy", "--quiet"]).exit_code == 0


def test_the_cleanup_does_not_mask_the_error_that_stopped_the_prepare(
    dsreg_cache: Path, dsreg_register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsreg.testing import hostile

    path = hostile.corrupt_deflate(tmp_path)

    class Rows(dsreg.Builder):
        name = "rows"
        features = {"x": dsreg.Tensor((4,), "uint8")}
        splits = ("train",)

        def generate(self, split, files):
            import numpy as np

            for i in range(10):  # a few rows, still in the side file's buffer
                yield str(i), {"x": np.zeros(4, dtype=np.uint8)}
            list(archive.members(path))  # then the archive turns out corrupt

    dsreg_register(Rows)
    real_open = open
    # The buffered rows can never be flushed: closing the side file in the cleanup fails too.
    monkeypatch.setattr(
        storage, "open", lambda p, m="r", *a, **k: real_open("/dev/full" if str(p).endswith(".raw") else p, m, *a, **k), raising=False
    )
    out = CliRunner().invoke(cli, ["fetch", "rows", "--quiet"])
    assert out.exit_code == 1 and out.output.startswith("error: corrupt-deflate.tar.gz holds corrupt gzip data"), out.output
    assert leftovers(dsreg_cache, "rows") == []


GENERATED = textwrap.dedent("""
    import resource, sys
    import dsreg
    from dsreg.cli import main
    from dsreg.testing import registered

    class Big(dsreg.Builder):
        name = "big"
        features = {"x": dsreg.Tensor((1024,), "uint8")}
        splits = ("train",)

        def generate(self, split, files):
            import numpy as np
            for i in range(2000):  # 2 MB of tensor data
                yield str(i), {"x": np.full(1024, i % 256, dtype=np.uint8)}

    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))  # a file may grow to 256 KiB
    with registered(Big):
        main(["fetch", "big", "--quiet", "--workers", "1"])
""")


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="file-size limits are POSIX")
def test_a_file_size_limit_is_one_line_and_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "DSREG_CACHE": str(tmp_path / "cache"), "DSREG_CONFIG": os.devnull}
    out = subprocess.run([sys.executable, "-c", GENERATED], capture_output=True, text=True, env=env, timeout=120)
    folder = tmp_path / "cache" / "datasets" / "big" / "prepared"
    assert out.returncode == 1, out.stderr
    assert out.stderr == (
        f"error: preparing big stopped: File too large: a file in {folder} grew past the largest file allowed "
        "(the shell's `ulimit -f` or the filesystem's maximum); raise the limit or set DSREG_CACHE to a folder on "
        "another filesystem; then fetch again\n"
    )
    assert leftovers(tmp_path / "cache", "big") == []


def test_disk_errors_are_told_by_errno_and_only_for_the_cache(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "prepared"
    inside = str(folder / ".x.tmp-1" / "train-00000.arrow")
    said = str(disk_error(PermissionError(errno.EACCES, "Permission denied", inside), folder, "preparing toy"))
    assert said == (
        f"preparing toy stopped: Permission denied: you may not write in {folder}; make it writable "
        "(chmod u+w) or set DSREG_CACHE to a folder you can write; then fetch again"
    )
    rofs = str(disk_error(OSError(errno.EROFS, "Read-only file system", inside), folder, "preparing toy"))
    assert rofs.endswith(
        f"Read-only file system: {folder} is on a read-only filesystem; set DSREG_CACHE to a writable folder; then fetch again"
    )
    # A builder that cannot read its own input is not a cache problem: the error goes up as it is.
    assert disk_error(PermissionError(errno.EACCES, "Permission denied", "/data/in.csv"), folder, "preparing toy") is None
    assert disk_error(FileNotFoundError(errno.ENOENT, "No such file", inside), folder, "preparing toy") is None
    # pyarrow's OSError has no errno, only the text.
    arrow = disk_error(OSError("IOError: [Errno 28] No space left on device"), folder, "preparing toy")
    assert str(arrow).startswith("preparing toy stopped: No space left on device: the disk of")


def test_other_os_errors_in_a_command_are_one_line(runner_env, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsreg import api

    lock = "/srv/shared-cache/locks/toy.lock"

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", lock)

    monkeypatch.setattr(api, "fetch", read_only)
    out = CliRunner().invoke(cli, ["fetch", "toy"])
    assert out.exit_code == 1
    assert out.output == (
        "error: dsreg fetch stopped: Permission denied: you may not write in /srv/shared-cache/locks; "
        "make it writable (chmod u+w) or set DSREG_CACHE to a folder you can write; then fetch again\n"
    )
    monkeypatch.setattr(api, "fetch", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error", "/dev/sdz")))
    out = CliRunner().invoke(cli, ["fetch", "toy"])
    assert out.output == "error: dsreg fetch stopped: Input/output error: /dev/sdz (`dsreg --debug ...` shows where)\n"
    assert isinstance(CliRunner().invoke(cli, ["--debug", "fetch", "toy"]).exception, OSError)
    monkeypatch.setattr(api, "fetch", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    out = CliRunner().invoke(cli, ["fetch", "toy"])
    assert out.output.startswith(f"error: dsreg fetch stopped: No space left on device: the disk of {runner_env} is full;")


@pytest.fixture
def runner_env(dsreg_cache: Path) -> Path:
    return dsreg_cache


# -- workers die with their parent -----------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


SLOW_FETCH = textwrap.dedent("""
    import time
    import dsreg
    from dsreg.cli import main
    from dsreg.testing import registered

    def slow(record):
        time.sleep(0.01)
        return {"x": record}

    class Slow(dsreg.Builder):
        name = "slow"
        features = {"x": dsreg.Value("int64")}
        splits = ("train",)
        decode = staticmethod(slow)

        def generate(self, split, files):
            for i in range(10**6):
                yield str(i), i

    with registered(Slow):
        main(["fetch", "slow", "--quiet", "--workers", "2"])
""")

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="processes are listed from Linux's /proc")


@needs_proc
def test_kill_9_of_dsreg_fetch_during_prepare_leaves_no_worker(tmp_path: Path) -> None:
    env = {**os.environ, "DSREG_CACHE": str(tmp_path / "cache"), "DSREG_CONFIG": os.devnull}
    fetch = subprocess.Popen([sys.executable, "-c", SLOW_FETCH], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        assert wait_for(lambda: len(children(fetch.pid)) >= 2, 60), "the decode pool never started"
        workers = children(fetch.pid)
        time.sleep(0.3)  # mid-prepare: the workers are decoding
        os.kill(fetch.pid, signal.SIGKILL)
        fetch.wait(10)
        assert wait_for(lambda: not any(alive(w) for w in workers), 5), [w for w in workers if alive(w)]
        assert list((tmp_path / "cache" / "datasets" / "slow" / "prepared").glob("*/manifest.json")) == []
    finally:
        for pid in [fetch.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        fetch.wait(10)


ORPHAN = textwrap.dedent("""
    import os, sys, time
    from dsreg.store.storage import _die_with_parent

    parent = os.getpid()
    child = os.fork()
    if child == 0:
        _die_with_parent(parent, use_prctl={use_prctl})
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    time.sleep(60)
""")


@needs_proc
@pytest.mark.parametrize("use_prctl", [True, False], ids=["prctl", "watchdog thread"])
def test_the_pool_initializer_ends_a_worker_when_its_parent_is_killed(use_prctl: bool) -> None:
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN.format(use_prctl=use_prctl)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        assert alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert wait_for(lambda: not alive(child), 3)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        parent.stdout.close()


def test_a_builders_own_archive_limits_apply_when_it_prepares(dsreg_cache: Path, dsreg_register, dsreg_file_server) -> None:
    import hashlib
    import io
    import tarfile

    from dsreg.features import ClassLabel

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        member = tarfile.TarInfo("big.bin")
        member.size = 64 << 10
        tar.addfile(member, io.BytesIO(bytes(member.size)))
    blob = raw.getvalue()
    url = dsreg_file_server.serve({"a.tar.gz": blob})

    class Limited(dsreg.Builder):
        name = "limited"
        task = "image-classification"
        features = {"label": ClassLabel(["x"])}
        splits = ("train",)
        files = (dsreg.File("a.tar.gz", urls=(url + "a.tar.gz",), size=len(blob), sha256=hashlib.sha256(blob).hexdigest()),)
        max_member = "16KiB"

        def generate(self, split, files, **config):
            for key, _ in archive.members(files["a.tar.gz"]):
                yield key, {"label": 0}

    dsreg_register(Limited)
    with pytest.raises(dsreg.ArchiveError, match=r"a\.tar\.gz: member 'big\.bin' expands to 64KiB, over the 16KiB"):
        dsreg.fetch("limited", quiet=True)
    assert leftovers(dsreg_cache, "limited") == []
