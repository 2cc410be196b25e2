"""dsreg doctor: versions, plugins, misspelt hooks, the cache's health and the settings, as text and JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_plugins import MODELS_TOO, install_fake_dist

import dsreg
from dsreg import plugins
from dsreg.cli.doctor import diagnose, doctor_cmd
from dsreg.fetching.cache import Cache


@pytest.fixture
def use_plugins(site, monkeypatch):
    """Return a function that loads only the named plugins (of the fake ones installed in ``site``)."""

    def use(*names: str) -> None:
        monkeypatch.setenv("DSREG_LOAD_PLUGINS", ",".join(names))

    return use


@pytest.fixture
def site(tmp_path, monkeypatch):
    from test_plugins import BROKEN_IMPORT, CLASH, GOOD

    site = tmp_path / "site"
    site.mkdir()
    install_fake_dist(site, "dsreg-goodplugin", "goodplugin", GOOD)
    install_fake_dist(site, "dsreg-broken", "brokenplugin", BROKEN_IMPORT, "0.3")
    install_fake_dist(site, "dsreg-later", "laterplugin", CLASH, "0.1")
    install_fake_dist(site, "dsreg-modelstoo", "modelstoo", MODELS_TOO)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("DSREG_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("DSREG_LOAD_PLUGINS", raising=False)
    return site


@pytest.fixture
def prepared(dsreg_cache, use_plugins):
    """A healthy cache: goodplugin's 'letters' fetched and prepared."""
    use_plugins("goodplugin")
    with plugins.use_registry(plugins.load_registry()):
        dsreg.fetch("letters")
        return dsreg.info("letters").prepared_path


def doctor(*args: str):
    return CliRunner().invoke(doctor_cmd, list(args))


def doctor_settings() -> dict[str, tuple]:
    """``dsreg doctor --json``'s settings as {name: (value, source)}."""
    return {s["name"]: (s["value"], s["source"]) for s in json.loads(doctor("--json").output)["settings"]}


def test_a_healthy_cache_is_ok(prepared, dsreg_cache):
    out = doctor()
    assert out.exit_code == 0, out.output
    assert "ok      goodplugin (dsreg-goodplugin 1.0): letters, digits" in out.output
    assert "hooks     every hook implementation matches a hookspec" in out.output
    assert f"cache     {dsreg_cache}:" in out.output
    assert "1 prepared store (0 failing), 0 partial downloads, 0 rejected file(s), 1 lock file(s)" in out.output
    assert "0 errors, 0 warnings, 1 note: nothing is wrong" in out.output
    assert "note     1 lock file no process holds (letters): harmless" in out.output
    report = json.loads(doctor("--json").output)
    assert report["ok"] and report["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["versions"]["dsreg"] == metadata.version("dsreg")
    assert report["cache"]["stores"] == [
        {"dataset": "letters", "path": str(prepared), "splits": ["train"], "ready": ["train"], "failing": []}
    ]


def test_a_broken_plugin_a_clash_and_an_orphaned_part_are_reported(prepared, dsreg_cache, use_plugins):
    use_plugins("brokenplugin", "goodplugin", "laterplugin")
    part = Cache().part_path("letters", "letters.bin")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)
    out = doctor()
    assert out.exit_code == 1
    text = out.output
    assert ("FAILED  brokenplugin (dsreg-broken 0.3): import: ModuleNotFoundError: No module named 'this_module_does_not_exist'") in text
    assert "CLASH   laterplugin (dsreg-later 0.1): fine; lost 'letters' to goodplugin" in text
    assert "2 errors, 1 warning, 1 note: something is wrong" in text
    assert (
        "error    plugin failed: brokenplugin (dsreg-broken 0.3): import: ModuleNotFoundError: No module named 'this_module_does_not_exist'"
    ) in text
    assert (
        "error    name clash: dataset name 'letters' from plugin 'laterplugin' is already registered by plugin "
        "'goodplugin'; uninstall one of the two or leave one out with DSREG_LOAD_PLUGINS"
    ) in text
    assert (
        f"warning  orphaned partial download {part} (1000 B, last written 0 s ago): no fetch is writing it; "
        f"`dsreg fetch letters` resumes it, or delete it: rm {part}"
    ) in text
    report = json.loads(doctor("--json").output)
    assert not report["ok"]
    assert {p["name"]: p["state"] for p in report["plugins"]} == {
        "dsreg.train.models": "ok",
        "brokenplugin": "failed",
        "goodplugin": "ok",
        "laterplugin": "clash",
    }
    assert report["cache"]["partials"] == [{"path": str(part), "dataset": "letters", "bytes": 1000, "orphaned": True}]
    assert [f["level"] for f in report["findings"]] == ["error", "error", "warning", "note"]


def test_a_part_being_written_is_not_orphaned(prepared, dsreg_cache):
    part = Cache().part_path("letters", "letters.bin")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x")
    with Cache().lock("letters", timeout=0):  # a fetch running now
        report = diagnose()
    assert report.ok and report.cache["partials"][0]["orphaned"] is False
    assert [f.message for f in report.findings] == ["letters is being fetched or prepared now: its store is not checked"]


def test_a_store_failing_its_manifest_check_is_an_error(prepared):
    (prepared / "train-00000.arrow").write_bytes(b"truncated")
    out = doctor()
    assert out.exit_code == 1
    assert (
        f"error    prepared store {prepared}: split 'train' fails its manifest check (shard train-00000.arrow is missing or not the size recorded)"
    ) in out.output
    assert "`dsreg fetch letters` (with the store's -c config) prepares it again" in out.output
    assert json.loads(doctor("--json").output)["cache"]["stores"][0]["failing"] == ["train"]


def test_rejected_bytes_are_a_warning(prepared):
    rejected = Cache().rejected_path("letters", "letters.bin", "0" * 64)
    rejected.parent.mkdir(parents=True)
    rejected.write_bytes(b"bad bytes")
    out = doctor()
    assert out.exit_code == 0
    assert (
        f"warning  rejected bytes of letters: 1 file (9 B) kept aside in {rejected.parent} after failing "
        f"verification; look at them, then delete them: rm -r {rejected.parent}"
    ) in out.output


def test_a_hook_matching_no_hookspec_is_an_error(dsreg_cache, use_plugins):
    use_plugins("goodplugin", "modelstoo")
    out = doctor()
    assert out.exit_code == 1
    assert "hooks     modelstoo: register_dataset (no such hook)" in out.output
    assert (
        "error    plugin 'modelstoo' implements 'register_dataset', which is no dsreg hook, so it is never called; "
        "the hooks are register_datasets"
    ) in out.output


def test_settings_say_where_each_came_from(dsreg_cache, use_plugins, tmp_path, monkeypatch):
    use_plugins("goodplugin")
    config = tmp_path / "config.toml"
    config.write_text('[fetch]\nretries = 5\n[mirrors]\nletters = ["/data/letters/"]\n')
    monkeypatch.setenv("DSREG_CONFIG", str(config))
    monkeypatch.setenv("DSREG_TIMEOUT", "7")
    monkeypatch.setenv("DSREG_LOAD_PLUGINS", "")
    monkeypatch.setenv("DSREG_TYPO_TIMEOUT", "3")
    settings = doctor_settings()
    assert settings["DSREG_CACHE"] == (str(dsreg_cache), "environment")
    assert settings["DSREG_TIMEOUT"] == (7.0, "environment")
    assert settings["DSREG_RETRIES"] == (5, f"[fetch] retries in {config}")
    assert settings["DSREG_MIRRORS"] == ("letters=['/data/letters/']", f"[mirrors] in {config}")
    assert settings["DSREG_OFFLINE"] == ("off", "default")
    assert settings["DSREG_LOAD_PLUGINS"] == ("none", "environment")
    out = doctor()
    assert out.exit_code == 0
    assert "note     DSREG_TYPO_TIMEOUT is set but the core does not read it (a plugin's own, or a typo?)" in out.output


def test_a_setting_that_cannot_be_read_is_an_error(dsreg_cache, use_plugins, monkeypatch):
    use_plugins("goodplugin")
    monkeypatch.setenv("DSREG_RETRIES", "three")
    out = doctor()
    assert out.exit_code == 1
    assert "error    DSREG_RETRIES='three' is not a whole number above 0; set it to e.g. 3" in out.output


def test_store_and_streaming_settings_are_shown(dsreg_cache, use_plugins, monkeypatch):
    use_plugins("goodplugin")
    monkeypatch.setenv("DSREG_SHARD_BYTES", "8MiB")
    monkeypatch.setenv("DSREG_PREFETCH", "0")
    settings = doctor_settings()
    assert settings["DSREG_SHARD_BYTES"] == (8 << 20, "environment")
    assert settings["DSREG_PREFETCH"] == ("off", "environment")
    assert settings["DSREG_REMOTE"] == ("none", "default")
    assert settings["DSREG_STREAM_CACHE_BYTES"] == ("4GiB", "default")
    monkeypatch.setenv("DSREG_STREAM_CACHE_BYTES", "lots")
    out = doctor()
    assert out.exit_code == 1
    assert "error    DSREG_STREAM_CACHE_BYTES='lots' is not a size; write bytes or e.g. 512MiB, 2GiB" in out.output


def test_executor_settings_are_shown_and_checked(dsreg_cache, use_plugins, monkeypatch):
    use_plugins("goodplugin")
    settings = doctor_settings()
    assert settings["DSREG_EXECUTOR"] == ("local", "default")
    assert settings["DSREG_EXECUTOR_SCRATCH"] == ("the store's own folder", "default")
    monkeypatch.setenv("DSREG_EXECUTOR", "dask://10.0.0.5:8786")
    monkeypatch.setenv("DSREG_EXECUTOR_SCRATCH", "s3://team/scratch")
    settings = doctor_settings()
    assert settings["DSREG_EXECUTOR"] == ("dask://10.0.0.5:8786", "environment")
    assert settings["DSREG_EXECUTOR_SCRATCH"] == ("s3://team/scratch", "environment")
    monkeypatch.setenv("DSREG_EXECUTOR", "dask:/10.0.0.5")
    out = doctor()
    assert out.exit_code == 1 and "error    executor 'dask:/10.0.0.5' is not one dsreg knows: use 'local'" in out.output


def test_every_variable_the_core_reads_is_in_the_settings_table():
    # Every quoted "DSREG_NAME" in the core is a variable it reads (or names in advice): doctor must show it.
    from dsreg.cli.doctor import KNOWN_VARIABLES

    named = set()
    for source in Path(dsreg.__file__).parent.rglob("*.py"):
        named |= set(re.findall(r'"(DSREG_[A-Z_]+)"', source.read_text()))
    assert len(named) > 15
    assert named <= set(KNOWN_VARIABLES), sorted(named - set(KNOWN_VARIABLES))


def test_doctor_never_imports_torch(dsreg_cache):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom dsreg.cli.doctor import doctor_cmd\n"
        "out = CliRunner().invoke(doctor_cmd, ['--json'])\n"
        "print(out.exit_code in (0, 1), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120)
    assert out.stdout.split() == ["True", "False"], out.stderr
