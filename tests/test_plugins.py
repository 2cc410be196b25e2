"""Plugin discovery and isolation: entry points, broken plugins, clashes, strict mode, filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

import dsreg
from dsreg import plugins

GOOD = '''
import dsreg

class Letters(dsreg.Builder):
    name = "letters"
    description = "Three letters."
    features = {"x": dsreg.Value("int64")}
    splits = ("train",)

    def generate(self, split, files, **config):
        for i in range(3):
            yield str(i), {"x": i}

class Digits(Letters):
    name = "digits"

@dsreg.hookimpl
def register_datasets(register):
    register(Letters, aliases=("abc",))
    register(Digits)

@dsreg.hookimpl
def register_commands(cli):
    import click

    @cli.command("hello")
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from goodplugin")
'''

BROKEN_IMPORT = "import this_module_does_not_exist\n"

RAISES = """
import dsreg
from goodplugin import Letters

class Half(Letters):
    name = "half"

@dsreg.hookimpl
def register_datasets(register):
    register(Half)
    raise RuntimeError("boom in the hook")
"""

CLASH = """
import dsreg
from goodplugin import Letters

class Other(Letters):
    name = "letters"   # taken by goodplugin, whose entry point name sorts first

class Fine(Letters):
    name = "fine"

@dsreg.hookimpl
def register_datasets(register):
    register(Other)
    register(Fine)
"""


def install_fake_dist(site: Path, dist: str, module: str, source: str, version: str = "1.0", names: tuple[str, ...] = ()) -> None:
    """Lay out a module and its .dist-info with an entry point, as pip install would.

    ``names``: the dataset names the package advertises in the entry point group ``dsreg.names``.
    """
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    advertised = "".join(f"{name} = {module}\n" for name in names)
    (info / "entry_points.txt").write_text(f"[dsreg]\n{module} = {module}\n" + (f"[dsreg.names]\n{advertised}" if names else ""))


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install_fake_dist(site, "dsreg-goodplugin", "goodplugin", GOOD)
    install_fake_dist(site, "dsreg-broken", "brokenplugin", BROKEN_IMPORT, "0.3")
    install_fake_dist(site, "dsreg-raises", "raisesplugin", RAISES, "2.0")
    install_fake_dist(site, "dsreg-later", "laterplugin", CLASH, "0.1")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("DSREG_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("DSREG_LOAD_PLUGINS", raising=False)
    return site


def run_cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(site), **env}
    environ.pop("DSREG_STRICT_PLUGINS", None) if "DSREG_STRICT_PLUGINS" not in env else None
    return subprocess.run([sys.executable, "-m", "dsreg", *args], capture_output=True, text=True, env=environ, timeout=120)


def test_installed_plugins_are_discovered_and_broken_ones_reported(site, dsreg_cache):
    listed = run_cli(site, "list", "--json", DSREG_LOAD_PLUGINS="goodplugin,brokenplugin,raisesplugin,laterplugin")
    assert listed.returncode == 0, listed.stderr
    names = {row["name"]: row["plugin"] for row in json.loads(listed.stdout)}
    assert names["letters"] == "goodplugin" and names["digits"] == "goodplugin"
    assert names["fine"] == "laterplugin"
    assert "half" not in names  # the hook raised: what it registered is rolled back

    report = {p["name"]: p for p in json.loads(run_cli(site, "plugins", "--json").stdout)}
    assert report["goodplugin"]["ok"] and report["goodplugin"]["dist"] == "dsreg-goodplugin"
    broken = report["brokenplugin"]
    assert not broken["ok"] and broken["version"] == "0.3"
    assert "ModuleNotFoundError" in broken["errors"][0] and "this_module_does_not_exist" in broken["errors"][0]
    assert "boom in the hook" in report["raisesplugin"]["errors"][0]
    assert "already registered by plugin 'goodplugin'" in report["laterplugin"]["errors"][0]
    text = run_cli(site, "plugins").stdout
    assert "FAILED  brokenplugin (dsreg-broken 0.3)" in text


def test_plugin_commands_are_added_to_the_cli(site, dsreg_cache):
    out = run_cli(site, "hello")
    assert out.returncode == 0 and out.stdout.strip() == "hello from goodplugin"


def test_strict_mode_turns_a_failure_into_an_error(site, dsreg_cache):
    out = run_cli(site, "list", DSREG_STRICT_PLUGINS="1")
    assert out.returncode == 1
    assert out.stderr.startswith("error: plugin 'brokenplugin' (dsreg-broken 0.3) failed")
    assert "Traceback" not in out.stderr


def test_load_plugins_limits_the_entry_points(site, dsreg_cache):
    out = run_cli(site, "list", "--json", DSREG_LOAD_PLUGINS="goodplugin")
    assert sorted(r["name"] for r in json.loads(out.stdout)) == ["digits", "letters"]
    # An empty list loads no entry points; the core's own default plugins (built-in models) stay.
    loaded = json.loads(run_cli(site, "plugins", "--json", DSREG_LOAD_PLUGINS="").stdout)
    assert [r["name"] for r in loaded] == list(plugins.DEFAULT_PLUGINS)
    assert all(r["dist"] == "dsreg" and not r["datasets"] for r in loaded)


def test_discovery_through_patched_entry_points(site, dsreg_cache, monkeypatch):
    eps = [metadata.EntryPoint(name="goodplugin", value="goodplugin", group="dsreg")]
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps)
    registry = plugins.load_registry()
    assert registry.names() == ["digits", "letters"]
    assert registry.get("abc").name == "letters"  # alias
    with plugins.use_registry(registry):
        assert dsreg.names() == ["digits", "letters"]
        assert len(dsreg.load("abc", split="train")) == 3


def test_in_process_isolation_and_strict(site, monkeypatch):
    eps = [metadata.EntryPoint(name=n, value=n, group="dsreg") for n in ("brokenplugin", "goodplugin", "laterplugin")]
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps)
    registry = plugins.load_registry()
    assert registry.names() == ["digits", "fine", "letters"]
    assert [p.name for p in registry.failures()] == ["brokenplugin", "laterplugin"]
    monkeypatch.setenv("DSREG_STRICT_PLUGINS", "1")
    with pytest.raises(dsreg.PluginError, match="brokenplugin"):
        plugins.load_registry()


def test_names_are_validated():
    from dsreg.registry import Registry

    class Bad(dsreg.Builder):
        name = "Bad Name"
        features = {"x": dsreg.Value("int64")}

        def generate(self, split, files, **config):
            yield from ()

    registry = Registry()
    with pytest.raises(dsreg.PluginError, match="dataset name 'Bad Name' is invalid; use lowercase"):
        registry.add_dataset(registry.plugin("t"), Bad)
    with pytest.raises(dsreg.PluginError, match="expects a dsreg.Builder subclass"):
        registry.add_dataset(registry.plugin("t"), object)


def test_file_without_checksum_must_say_so():
    with pytest.raises(ValueError, match="has no checksum: give sha256="):
        dsreg.File("a.bin", urls=("https://example.invalid/a.bin",))
    assert dsreg.File("a.bin", pin_on_first_download=True).checksum is None
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        dsreg.File("a.bin", sha256="abc")


def test_importing_dsreg_and_listing_stays_light(site):
    code = (
        "import sys, dsreg\n"
        "class B(dsreg.Builder):\n    name='b'\n"
        "dsreg.names()\n"
        "print(sorted(m for m in ('torch', 'numpy', 'datasets', 'pyarrow', 's3fs', 'dask', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(site)}, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr


MODELS_TOO = """
import dsreg
from goodplugin import Letters

class Other(Letters):
    name = "letters"   # taken by goodplugin

@dsreg.hookimpl
def register_datasets(register):
    register(Other)

@dsreg.hookimpl
def register_models(register):
    register("later-net", lambda info: None, tasks=("image-classification",))

@dsreg.hookimpl
def register_dataset(register):   # misspelt: matches no hookspec, so it would never be called
    pass
"""


def test_problems_line_counts_failed_plugins_and_clashes(site, monkeypatch):
    names = ("brokenplugin", "goodplugin", "laterplugin", "raisesplugin")
    eps = [metadata.EntryPoint(name=n, value=n, group="dsreg") for n in names]
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps)
    registry = plugins.load_registry()
    assert [p.name for p in registry.failed()] == ["brokenplugin", "raisesplugin"]
    assert [str(c) for c in registry.clashes()] == [
        "dataset name 'letters' from plugin 'laterplugin' is already registered by plugin 'goodplugin'"
    ]
    assert plugins.problems_line(registry) == "2 plugins failed to load, 1 name clash: see `dsreg plugins`"
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps[1:2])
    assert plugins.problems_line(plugins.load_registry()) is None
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps[:1])
    assert plugins.problems_line(plugins.load_registry()) == "1 plugin failed to load: see `dsreg plugins`"


def test_a_clash_costs_only_the_name_and_misspelt_hooks_are_found(site, monkeypatch):
    install_fake_dist(site, "dsreg-modelstoo", "modelstoo", MODELS_TOO)
    eps = [metadata.EntryPoint(name=n, value=n, group="dsreg") for n in ("goodplugin", "modelstoo")]
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps)
    registry = plugins.load_registry()
    assert registry.plugin("modelstoo").models == ["later-net"]  # its models still register
    assert not registry.plugin("modelstoo").failed and not registry.plugin("modelstoo").ok
    assert plugins.problems_line(registry) == "1 name clash: see `dsreg plugins`"
    assert plugins.unknown_hooks(registry.manager) == [("modelstoo", "register_dataset")]


def test_dsreg_list_says_on_stderr_when_plugins_failed_or_clashed(site, dsreg_cache):
    out = run_cli(site, "list", "--json", DSREG_LOAD_PLUGINS="goodplugin,brokenplugin,raisesplugin,laterplugin")
    assert out.returncode == 0
    assert json.loads(out.stdout)  # stdout stays the listing alone
    assert out.stderr == "warning: 2 plugins failed to load, 1 name clash: see `dsreg plugins`\n"
    quiet = run_cli(site, "list", DSREG_LOAD_PLUGINS="goodplugin")
    assert quiet.returncode == 0 and quiet.stderr == ""
