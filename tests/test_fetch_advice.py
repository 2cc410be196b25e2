"""Pins that record only good downloads, advice that works when followed literally, read-only caches."""

from __future__ import annotations

import hashlib
import re
import shlex

import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli import cli

from toydata import blob, make_builder

MAGIC = b"TOY1"


def _generate(self, split, files, **config):
    raw = files["toy.bin"].read_bytes()
    if not raw.startswith(MAGIC):  # what a real plugin's archive reader says about an HTML page
        raise dsreg.ArchiveError(f"toy.bin is not a toy file (it starts with {raw[:9]!r})")
    for i in range(4, len(raw) - 3, 4):
        yield str(i), {"image": list(raw[i : i + 4]), "label": raw[i] % 2}


def toy_file(seed: int) -> bytes:
    return MAGIC + blob(4_000, seed=seed)


def pinned_toy(url: str | None) -> type[dsreg.Builder]:
    """A dataset whose one file has no published checksum or size, and whose prepare checks its bytes."""
    builder = make_builder(b"", urls=(url + "toy.bin",) if url else (), pin=True, size=False, generate=_generate)
    builder.features = {"image": dsreg.Tensor((4,), "uint8"), "label": dsreg.ClassLabel(("even", "odd"))}
    return builder


@pytest.fixture
def run(dsreg_cache):
    """Run ``dsreg ARGS...`` through the CLI; return (exit code, stdout, stderr)."""
    runner = CliRunner()

    def _run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cli, list(args))
        return result.exit_code, result.stdout, result.stderr

    return _run


def commands(text: str) -> list[list[str]]:
    """The `dsreg ...` commands an error advises, as argument lists."""
    return [shlex.split(cmd)[1:] for cmd in re.findall(r"`(dsreg [^`]+)`", text)]


def record(name: str = "toy") -> dict:
    return dsreg.info(name).fetched.get("toy.bin") or {}


def test_a_bad_first_download_is_not_pinned_and_the_advice_gets_a_verified_dataset(run, dsreg_file_server, dsreg_register):
    html = b"<html><body>503 Service Temporarily Unavailable</body></html>"
    url = dsreg_file_server.serve({"toy.bin": html})  # an error page served as application/octet-stream
    dsreg_register(pinned_toy(None))  # no published URL: the user's mirror is the only source
    code, _, err = run("fetch", "toy", "--mirror", url)
    assert code == 1 and err.count("\n") == 1  # the download itself went well: one line, the error
    error = err.strip()
    assert error == (
        "error: toy.bin is not a toy file (it starts with b'<html><bo'); toy.bin has no published checksum, "
        f"so it was not pinned: `dsreg fetch toy --mirror {url} --force` downloads it again"
    )
    assert record()["status"] == "candidate" and record()["sha256"] == hashlib.sha256(html).hexdigest()
    assert not dsreg.info("toy").cached

    good = toy_file(1)
    dsreg_file_server.serve({"toy.bin": good})  # the server recovers
    [advice] = commands(error)
    code, out, err = run(*advice)
    assert code == 0, err
    assert out.startswith("toy: train ") and f"pinned sha256 {hashlib.sha256(good).hexdigest()}" in err
    assert record()["status"] == "pinned" and record()["sha256"] == hashlib.sha256(good).hexdigest()
    assert dsreg.info("toy").cached
    code, _, err = run("fetch", "toy")  # and it stays done: no download, no message
    assert code == 0 and err == "" and len(dsreg_file_server.requests) == 2


def test_the_python_advice_after_a_bad_first_download_works_when_evaluated(dsreg_cache, dsreg_file_server, dsreg_register):
    url = dsreg_file_server.serve({"toy.bin": MAGIC[:2]})  # a truncated file
    dsreg_register(pinned_toy(None))
    with pytest.raises(dsreg.ArchiveError) as err:
        dsreg.fetch("toy", mirrors=[url], quiet=True)
    [call] = re.findall(r"dsreg\.fetch\([^)]*\)", str(err.value))
    assert "--" not in str(err.value)  # Python callers are told arguments, not flags
    dsreg_file_server.serve({"toy.bin": toy_file(2)})
    info = eval(call, {"dsreg": dsreg})  # the advice, followed literally
    assert info.cached and info.fetched["toy.bin"]["status"] == "pinned"


def test_a_changed_upstream_file_is_refused_against_the_pin_and_force_replaces_it_saying_so(
    run, dsreg_file_server, dsreg_register, dsreg_cache
):
    first, second = toy_file(3), toy_file(4)
    url = dsreg_file_server.serve({"toy.bin": first})
    dsreg_register(pinned_toy(url))
    assert run("fetch", "toy", "-q")[0] == 0
    old = record()["sha256"]
    (dsreg_cache / "downloads" / old).unlink()  # the download is lost; the mirror now serves other bytes
    dsreg_file_server.serve({"toy.bin": second})
    code, _, err = run("fetch", "toy")
    error = err.splitlines()[-1]
    assert code == 1 and f"expected the pinned {old} from the first download" in error
    assert error.endswith("if the file changed upstream on purpose, `dsreg fetch toy --force` replaces the pin")
    [advice] = commands(error)
    code, _, err = run(*advice)
    new = hashlib.sha256(second).hexdigest()
    assert code == 0, err
    assert f"toy: toy.bin: --force replaces the pin sha256 {old} with {new} once the dataset prepares" in err
    assert f"pinned sha256 {new} (replacing the pin {old})" in err
    assert record()["status"] == "pinned" and record()["sha256"] == new


def test_fetch_errors_advise_flags_on_the_cli_that_work(run, dsreg_file_server, dsreg_register, data, tmp_path, monkeypatch):
    url = dsreg_file_server.serve({"good/toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "missing/toy.bin",)))
    code, _, err = run("fetch", "toy")
    error = err.splitlines()[-1]
    assert code == 1 and error.endswith("add a mirror with --mirror URL, or hand over a copy with --from PATH")
    assert run("fetch", "toy", "--mirror", url + "good/", "-q")[0] == 0  # --mirror URL, with a URL

    monkeypatch.setenv("DSREG_OFFLINE", "1")
    dsreg_register(make_builder(blob(800, seed=31), name="absent", urls=(url + "missing/toy.bin",)))
    code, _, err = run("fetch", "absent")
    assert code == 1 and err.strip().endswith(
        "unset DSREG_OFFLINE and run `dsreg fetch absent`, or hand it over with `dsreg fetch absent --from PATH`"
    )
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "toy.bin").write_bytes(blob(800, seed=31))
    _, with_path = commands(err)
    assert run(*[folder.as_posix() if a == "PATH" else a for a in with_path], "-q")[0] == 0  # --from PATH, with a path


def test_a_prepared_dataset_is_served_without_the_lock(dsreg_cache, dsreg_file_server, dsreg_register, data):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    dsreg.fetch("toy", quiet=True)
    locks = dsreg_cache / "locks"
    for lock in locks.iterdir():
        lock.unlink()
    locks.rmdir()
    locks.write_text("")  # no lock can be created under the cache any more
    assert dsreg.fetch("toy", quiet=True).cached  # nothing to write, so no lock is needed
    assert len(dsreg.load("toy", split="test")) == 15_000 and dsreg.info("toy").cached
    with pytest.raises(dsreg.CacheError, match="set DSREG_CACHE to a writable folder"):
        dsreg.fetch("toy", force=True, quiet=True)


def _read_only_folders_are_enforced(tmp_path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o555)
    try:
        (probe / "x").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
    return False  # root with CAP_DAC_OVERRIDE writes anyway


def test_a_read_only_cache_serves_fetch_load_and_info(dsreg_cache, dsreg_file_server, dsreg_register, data, tmp_path):
    if not _read_only_folders_are_enforced(tmp_path):
        pytest.skip("this user writes to read-only folders (root); run under setpriv --bounding-set=-dac_override")
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(url + "toy.bin",)))
    dsreg.fetch("toy", quiet=True)
    folders = [p for p in [dsreg_cache, *dsreg_cache.rglob("*")] if p.is_dir()]
    for folder in folders:
        folder.chmod(0o555)
    try:
        assert dsreg.fetch("toy", quiet=True).cached
        assert len(dsreg.load("toy", split="train")) == 60_000 and dsreg.info("toy").cached
        with pytest.raises(dsreg.CacheError, match="set DSREG_CACHE to a writable folder"):
            dsreg.fetch("toy", force=True, quiet=True)
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_advised_commands_repeat_the_users_config_and_options():
    from dsreg.cli.app import parse_config
    from dsreg.fetching.download import Rerun

    config = {"splits": ["test"], "url": "/data/my images", "n": "3", "seed": 3}
    rerun = Rerun("notmnist-idx", config, ("http://mirror.example/",), None, False)
    words = shlex.split(rerun.cli(force=True))
    assert words[:3] == ["dsreg", "fetch", "notmnist-idx"] and words[-3:] == ["http://mirror.example/", "--no-verify", "--force"]
    assert parse_config(tuple(words[i + 1] for i, w in enumerate(words) if w == "-c")) == config  # as the CLI reads them
    assert rerun.python(force=True) == (
        "dsreg.fetch('notmnist-idx', mirrors=['http://mirror.example/'], verify=False, "
        "splits=['test'], url='/data/my images', n='3', seed=3, force=True)"
    )


def test_advice_after_a_split_fetch_repeats_the_split(dsreg_cache, dsreg_register):
    """A failed --split fetch advises the same split, as a command and as a call that work as written."""
    import dsreg
    from dsreg.fetching.download import Rerun

    rerun = Rerun("notmnist-idx", {}, (), None, True, None, ("test",))
    assert shlex.split(rerun.cli(force=True)) == ["dsreg", "fetch", "notmnist-idx", "--split", "test", "--force"]
    assert rerun.python(force=True) == "dsreg.fetch('notmnist-idx', split=['test'], force=True)"

    # And the call is a real one: split= takes that list.
    class Two(dsreg.Builder):
        name = "two-splits"
        features = {"x": dsreg.Value("int64")}
        splits = ("train", "test")

        def generate(self, split, files):
            yield split, {"x": len(split)}

    dsreg_register(Two)
    assert dsreg.fetch("two-splits", split=["test"], quiet=True).ready_splits == ("test",)
