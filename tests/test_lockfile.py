"""dsreg lock and dsreg fetch --locked: what a lock records, that it fetches exactly that, and every drift refused."""

from __future__ import annotations

import hashlib
from importlib import metadata

import pytest
from click.testing import CliRunner

from dsreg.cli.app import cli
from dsreg.fetching.cache import Cache
from dsreg.fetching.lockfile import Lock
from dsreg.plugins import use_registry
from dsreg.registry import Registry

from toydata import blob, make_builder

VERSION = metadata.version("dsreg")


@pytest.fixture
def installed():
    """Register builders as a plugin installed from the ``dsreg`` distribution, so the lock records a version."""
    with use_registry(Registry()) as registry:
        record = registry.plugin("toys", "dsreg", VERSION)

        def _install(*builders):
            for builder in builders:
                registry.add_dataset(record, builder)

        yield _install


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def served(dsreg_cache, dsreg_file_server, installed):
    """Two datasets on the loopback server: ``toy`` publishes its sha256, ``pinny`` none (pinned on first fetch)."""
    data, other = blob(4000), blob(4000, seed=1)
    base = dsreg_file_server.serve({"toy.bin": data, "pinny/toy.bin": other})
    installed(make_builder(data, urls=(base + "toy.bin",)), make_builder(other, name="pinny", pin=True, urls=(base + "pinny/toy.bin",)))
    return {"base": base, "toy": data, "pinny": other}


def test_lock_records_plugins_configs_and_every_sha256_as_stable_toml(served, dsreg_cache, tmp_path):
    lockfile = tmp_path / "dsreg.lock"
    before = _invoke("lock", "toy", "pinny", "-o", str(lockfile))
    assert before.exit_code == 0, before.output
    assert "pinny: toy.bin has no published checksum and is not pinned in the cache" in before.stderr
    assert 'sha256_from = "unpinned"' in lockfile.read_text()

    assert _invoke("fetch", "pinny", "-q").exit_code == 0  # pins its file
    assert _invoke("lock", "pinny", "toy", "-o", str(lockfile)).exit_code == 0
    text = lockfile.read_text()
    toy_sha, pin_sha = (hashlib.sha256(served[name]).hexdigest() for name in ("toy", "pinny"))
    assert f'[[plugin]]\nname = "toys"\ndist = "dsreg"\nversion = "{VERSION}"\n' in text
    assert text.index('name = "pinny"') < text.index('name = "toy"')  # datasets by name, whatever the order asked
    assert f'sha256 = "{pin_sha}"\nsha256_from = "pinned"' in text
    assert f'sha256 = "{toy_sha}"\nsha256_from = "published"' in text
    assert f'urls = [\n  "{served["base"]}toy.bin",\n]' in text
    assert text.startswith(f"# Written by `dsreg lock pinny toy -o {lockfile}`")

    again = tmp_path / "again.lock"
    assert _invoke("lock", "toy", "pinny", "-o", str(again)).exit_code == 0
    assert again.read_text().splitlines()[1:] == text.splitlines()[1:]  # the same lock, the same text
    lock = Lock.read(lockfile)
    assert [d.name for d in lock.datasets] == ["pinny", "toy"]
    assert [(f.size, f.sha256) for f in lock.dataset("toy").files] == [(len(served["toy"]), toy_sha)]


def test_lock_writes_the_config_and_fetch_locked_prepares_that_configuration(dsreg_cache, dsreg_file_server, installed, tmp_path):
    data = blob(4000)
    base = dsreg_file_server.serve({"toy.bin": data})
    installed(make_builder(data, name="conf", urls=(base + "toy.bin",), config={"note": "", "n": 1}))
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("lock", "conf", "-c", "note=hello world", "-c", "n=3", "-o", str(lockfile)).exit_code == 0
    text = lockfile.read_text()
    assert 'config = {n = 3, note = "hello world"}' in text
    assert text.startswith(f"# Written by `dsreg lock conf -c 'note=hello world' -c n=3 -o {lockfile}`")
    locked = Lock.read(lockfile).dataset("conf")
    assert locked.config == {"note": "hello world", "n": 3}
    out = _invoke("fetch", "--locked", str(lockfile), "-q")
    assert out.exit_code == 0, out.output
    assert out.stdout.strip().endswith(str(Cache(dsreg_cache).prepared_dir("conf", locked.config_id)))


def test_fetch_locked_fetches_exactly_the_lock_into_a_fresh_cache(served, dsreg_cache, tmp_path, monkeypatch):
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("fetch", "pinny", "-q").exit_code == 0
    assert _invoke("lock", "toy", "pinny", "-o", str(lockfile)).exit_code == 0
    fresh = tmp_path / "elsewhere"
    monkeypatch.setenv("DSREG_CACHE", str(fresh))
    out = _invoke("fetch", "--locked", str(lockfile), "-q")
    assert out.exit_code == 0, out.output
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == ["pinny", "toy"]
    records = Cache(fresh).read_records("pinny")
    # The lock's pin is this cache's pin now: a plain fetch requires the same bytes from then on.
    assert (records["toy.bin"].status.value, records["toy.bin"].sha256) == ("pinned", hashlib.sha256(served["pinny"]).hexdigest())


def test_fetch_locked_refuses_bytes_that_differ_from_the_locked_sha256(served, dsreg_cache, dsreg_file_server, tmp_path, monkeypatch):
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("fetch", "pinny", "-q").exit_code == 0
    assert _invoke("lock", "pinny", "-o", str(lockfile)).exit_code == 0
    changed = served["pinny"][:-1] + b"\x00"  # upstream changed the file, same size, no checksum published
    dsreg_file_server.serve({"pinny/toy.bin": changed})
    monkeypatch.setenv("DSREG_CACHE", str(tmp_path / "elsewhere"))
    out = _invoke("fetch", "--locked", str(lockfile), "-q")
    assert out.exit_code == 1
    [line] = out.stderr.splitlines()
    old, new = hashlib.sha256(served["pinny"]).hexdigest(), hashlib.sha256(changed).hexdigest()
    assert line.startswith("error: pinny: toy.bin failed verification") and f"sha256 {new}, expected {old}" in line
    assert (
        f"{lockfile} requires the sha256 it locks; if it changed upstream on purpose, run `dsreg fetch pinny --force` (which pins the new bytes), then `dsreg lock pinny -o {lockfile}`"
        in line
    )
    assert "--no-verify" not in line  # --locked refuses it: the advice must not offer it
    assert not Cache(tmp_path / "elsewhere").prepared_dir("pinny", "x").parent.exists()  # nothing prepared


def test_fetch_locked_names_every_drift_one_line_each_before_downloading(served, dsreg_cache, dsreg_file_server, tmp_path):
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("lock", "toy", "-o", str(lockfile)).exit_code == 0
    text = lockfile.read_text()
    config_id = Lock.read(lockfile).dataset("toy").config_id
    text = text.replace(f'version = "{VERSION}"', 'version = "0.0.1"').replace(config_id, "1.0.0-000000000000")
    text = text.replace(f"size = {len(served['toy'])}", "size = 12")
    lockfile.write_text(text)
    out = _invoke("fetch", "--locked", str(lockfile))
    assert out.exit_code == 1
    lines = out.stderr.splitlines()
    assert lines[0].startswith(
        f"error: {lockfile} does not match what is installed (3 difference(s)); install what it was "
        f"written with, or write it again with `dsreg lock toy -o {lockfile}`:"
    )
    assert [line.strip() for line in lines[1:]] == [
        f"toy: plugin toys is dsreg {VERSION} now, dsreg 0.0.1 in the lock",
        f"toy: config id {config_id} now, 1.0.0-000000000000 in the lock (the plugin's version, the config or the data it "
        "fingerprints changed)",
        f"toy: toy.bin has size {len(served['toy'])} now, 12 in the lock",
    ]
    assert dsreg_file_server.requests == []  # refused before any download


def test_a_file_the_plugin_publishes_differently_is_drift(served, dsreg_cache, installed, tmp_path):
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("lock", "toy", "-o", str(lockfile)).exit_code == 0
    newer = blob(4000, seed=9)
    installed(make_builder(newer, name="toy2"))  # a second dataset, not locked: ignored
    text = lockfile.read_text().replace(hashlib.sha256(served["toy"]).hexdigest(), hashlib.sha256(newer).hexdigest())
    lockfile.write_text(text)
    out = _invoke("fetch", "--locked", str(lockfile))
    assert out.exit_code == 1
    assert (
        f"toy: toy.bin publishes sha256 {hashlib.sha256(served['toy']).hexdigest()} now, {hashlib.sha256(newer).hexdigest()} in the lock"
    ) in out.stderr


def test_offline_fetch_locked_says_each_missing_file_its_sha256_and_url(served, dsreg_cache, tmp_path, monkeypatch):
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("fetch", "pinny", "toy", "-q").exit_code == 0
    assert _invoke("lock", "toy", "pinny", "-o", str(lockfile)).exit_code == 0
    monkeypatch.setenv("DSREG_OFFLINE", "1")
    assert _invoke("fetch", "--locked", str(lockfile), "-q").exit_code == 0  # all in the cache: nothing missing
    monkeypatch.setenv("DSREG_CACHE", str(tmp_path / "empty"))
    out = _invoke("fetch", "--locked", str(lockfile), "-q")
    assert out.exit_code == 1
    lines = out.stderr.splitlines()
    assert lines[0].startswith(f"error: DSREG_OFFLINE=1 is set and the cache at {tmp_path / 'empty'} lacks 2 file(s) {lockfile} needs")
    base = served["base"]
    assert [line.split() for line in lines[1:]] == [
        ["pinny:", "toy.bin", "sha256", hashlib.sha256(served["pinny"]).hexdigest(), "3.9", "KiB", "from", base + "pinny/toy.bin"],
        ["toy:", "toy.bin", "sha256", hashlib.sha256(served["toy"]).hexdigest(), "3.9", "KiB", "from", base + "toy.bin"],
    ]


def test_locked_takes_no_config_split_or_force(served, tmp_path):
    out = _invoke("fetch", "--locked", str(tmp_path / "dsreg.lock"), "--split", "train", "--force")
    assert (out.exit_code, out.output) == (
        2,
        "error: --locked fetches what the lockfile says, so it takes no --split, --force (`dsreg fetch -h` lists the options)\n",
    )
    missing = _invoke("fetch", "--locked", str(tmp_path / "dsreg.lock"))
    assert missing.exit_code == 1
    assert f"no lockfile at {tmp_path / 'dsreg.lock'}; write one with `dsreg lock NAME... -o" in missing.stderr


def test_a_file_published_by_md5_is_locked_by_the_sha256_of_its_verified_download(dsreg_cache, dsreg_file_server, installed, tmp_path):
    data = blob(4000)
    base = dsreg_file_server.serve({"toy.bin": data})
    installed(make_builder(data, name="old", checksum="md5", urls=(base + "toy.bin",)))
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("lock", "old", "-o", str(lockfile)).exit_code == 0
    assert 'sha256_from = "unpinned"' in lockfile.read_text()
    assert _invoke("fetch", "old", "-q").exit_code == 0
    assert _invoke("lock", "old", "-o", str(lockfile)).exit_code == 0
    [file] = Lock.read(lockfile).dataset("old").files
    assert (file.sha256, file.sha256_from, file.md5) == (hashlib.sha256(data).hexdigest(), "downloaded", hashlib.md5(data).hexdigest())


def test_bytes_kept_with_no_verify_are_not_taken_for_the_locked_ones(served, dsreg_cache, dsreg_file_server, tmp_path):
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("fetch", "pinny", "-q").exit_code == 0
    assert _invoke("lock", "pinny", "-o", str(lockfile)).exit_code == 0
    changed = served["pinny"][:-1] + b"\x00"
    dsreg_file_server.serve({"pinny/toy.bin": changed})
    assert _invoke("fetch", "pinny", "-q", "--force", "--no-verify").exit_code == 0
    out = _invoke("fetch", "--locked", str(lockfile), "-q")
    assert out.exit_code == 1
    old, new = hashlib.sha256(served["pinny"]).hexdigest(), hashlib.sha256(changed).hexdigest()
    assert out.stderr.startswith(
        f"error: pinny: toy.bin in the cache has sha256 {new}, {lockfile} locks sha256 {old}; "
        "run `dsreg fetch pinny --force` to download it again"
    )


def test_fetch_locked_prepares_on_the_executor_given(served, dsreg_cache, tmp_path, monkeypatch):
    lockfile = tmp_path / "dsreg.lock"
    assert _invoke("lock", "toy", "-o", str(lockfile)).exit_code == 0
    monkeypatch.setenv("DSREG_CACHE", str(tmp_path / "elsewhere"))
    out = _invoke("fetch", "--locked", str(lockfile), "-q", "--executor", "spark://x")
    assert out.exit_code == 1 and out.output.startswith("error: executor 'spark://x' is not one dsreg knows"), out.output
    assert _invoke("fetch", "--locked", str(lockfile), "-q", "--executor", "local").exit_code == 0
