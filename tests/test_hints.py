"""'Not installed' hints: an unknown name that a known plugin package provides says what to do to get it."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner
from test_plugins import BROKEN_IMPORT, GOOD, install_fake_dist

import dsreg
from dsreg import plugins
from dsreg.cli.app import cli
from dsreg.registry import KNOWN_PACKAGES, NAMES_GROUP, Registry

ROOT = Path(__file__).resolve().parents[1]


def test_known_packages_are_the_names_each_bundled_plugin_advertises():
    advertised = {}
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        advertised[project["name"]] = tuple(project["entry-points"][NAMES_GROUP])
    assert advertised == KNOWN_PACKAGES


def test_bundled_plugins_register_exactly_the_names_they_advertise(monkeypatch):
    monkeypatch.delenv("DSREG_LOAD_PLUGINS", raising=False)
    registry = plugins.load_registry(strict=False)
    by_dist = {}
    for record in registry.plugins.values():
        by_dist.setdefault(record.dist, []).extend(record.datasets)
    installed = [package for package in KNOWN_PACKAGES if package in by_dist]
    if not installed:
        pytest.skip("no bundled plugin is installed here")
    for package in installed:  # what an installed bundled plugin registers is what it advertises
        assert sorted(by_dist[package]) == sorted(KNOWN_PACKAGES[package]), package


def test_a_name_of_a_package_not_installed_says_what_to_pip_install(monkeypatch):
    monkeypatch.setitem(KNOWN_PACKAGES, "dsreg-ghosts", ("ghost",))
    with pytest.raises(dsreg.UnknownDatasetError) as caught:
        Registry().get("ghost")
    assert str(caught.value) == (
        "no dataset named 'ghost'; the plugin package dsreg-ghosts provides it and is not installed: pip install dsreg-ghosts"
    )
    with plugins.use_registry(Registry()):
        out = CliRunner().invoke(cli, ["info", "ghost"])
    assert out.exit_code == 1
    assert out.output == (
        "error: no dataset named 'ghost'; the plugin package dsreg-ghosts provides it and is not installed: pip install dsreg-ghosts\n"
    )


def test_a_name_left_out_by_load_plugins_says_which_plugin_to_add(monkeypatch):
    if "dsreg-notmnist" not in {d.metadata["Name"] for d in metadata.distributions()}:
        pytest.skip("dsreg-notmnist is not installed here")
    monkeypatch.setenv("DSREG_LOAD_PLUGINS", "image")
    with pytest.raises(dsreg.UnknownDatasetError) as caught:
        plugins.load_registry().get("notmnist-synth")
    assert str(caught.value) == (
        "no dataset named 'notmnist-synth'; dsreg-notmnist provides it, but DSREG_LOAD_PLUGINS leaves out its plugin "
        "'notmnist': add notmnist to DSREG_LOAD_PLUGINS or unset it"
    )
    monkeypatch.setenv("DSREG_LOAD_PLUGINS", "image,notmnist")  # the advice, followed literally
    assert plugins.load_registry().get("notmnist-synth").name == "notmnist-synth"


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install_fake_dist(site, "dsreg-goodplugin", "goodplugin", GOOD, names=("letters", "digits", "extra"))
    install_fake_dist(site, "dsreg-broken", "brokenplugin", BROKEN_IMPORT, "0.3", names=("wrecked",))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("DSREG_LOAD_PLUGINS", "goodplugin,brokenplugin")
    monkeypatch.delenv("DSREG_STRICT_PLUGINS", raising=False)
    return site


def test_an_installed_package_advertises_names_without_being_imported(site, monkeypatch):
    monkeypatch.setenv("DSREG_LOAD_PLUGINS", "")
    monkeypatch.delitem(sys.modules, "goodplugin", raising=False)
    with pytest.raises(
        dsreg.UnknownDatasetError,
        match="dsreg-goodplugin provides it, but DSREG_LOAD_PLUGINS leaves "
        "out its plugin 'goodplugin': add goodplugin to DSREG_LOAD_PLUGINS or unset it",
    ):
        plugins.load_registry().get("letters")
    assert "goodplugin" not in sys.modules  # read from its metadata only


def test_a_name_of_a_plugin_that_failed_says_where_to_see_why(site):
    registry = plugins.load_registry()
    with pytest.raises(dsreg.UnknownDatasetError) as caught:
        registry.get("wrecked")
    assert str(caught.value) == (
        "no dataset named 'wrecked'; dsreg-broken provides it, but its plugin 'brokenplugin' failed to load: `dsreg plugins` shows why"
    )


def test_a_name_advertised_but_not_registered_says_to_upgrade(site):
    with pytest.raises(
        dsreg.UnknownDatasetError,
        match="dsreg-goodplugin 1.0 is installed and advertises it but does "
        r"not register it: pip install --upgrade dsreg-goodplugin",
    ):
        plugins.load_registry().get("extra")


def test_an_unknown_name_nobody_provides_keeps_the_general_advice():
    with pytest.raises(dsreg.UnknownDatasetError, match=r"no dataset named 'zzz-nothing'; `dsreg list` shows"):
        Registry().get("zzz-nothing")
