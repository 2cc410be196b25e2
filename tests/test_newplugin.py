"""`dsreg new-plugin`: the package it writes passes its own tests, installs, lists and trains."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsreg.cli import cli
from dsreg.cli.newplugin import sample_csv, write_plugin
from dsreg.testing import check_builder

ENV = {k: v for k, v in os.environ.items() if not k.startswith("DSREG_")}


def _import_generated(target: Path, package: str):
    """Import a generated package from its folder (no install), forgetting it afterwards."""
    sys.path.insert(0, str(target))
    try:
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(target))


def test_the_command_writes_a_complete_package(tmp_path):
    result = CliRunner().invoke(cli, ["new-plugin", "my-data", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    target = tmp_path / "my-data"
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == ["README.md", "dsreg_my_data/__init__.py", "dsreg_my_data/data/my-data.csv", "pyproject.toml", "tests/test_my_data.py"]
    pyproject = (target / "pyproject.toml").read_text()
    assert '[project.entry-points.dsreg]\nmy-data = "dsreg_my_data"' in pyproject
    assert f'pip install -e "{target}[test]"' in result.output


def test_the_generated_builder_passes_check_builder_without_installing(tmp_path, monkeypatch):
    target = write_plugin("sampledata", tmp_path)
    module = _import_generated(target, "dsreg_sampledata")
    try:
        report = check_builder(module.Sampledata)
    finally:
        sys.modules.pop("dsreg_sampledata", None)
    assert report.splits == {"train": 120, "test": 40}
    assert report.results["train"].startswith("ok (text-bag")
    # The module dsreg list imports stays light.
    assert "import torch" not in (target / "dsreg_sampledata" / "__init__.py").read_text()


def test_existing_folders_and_bad_names_are_refused(tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["new-plugin", "taken", "--dir", str(tmp_path)]).exit_code == 0
    again = runner.invoke(cli, ["new-plugin", "taken", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "already exists and is not empty; pick another --dir or name" in again.output
    bad = runner.invoke(cli, ["new-plugin", "My Data", "--dir", str(tmp_path)])
    assert bad.exit_code == 1 and "plugin name 'My Data' is invalid; use lowercase letters" in bad.output


def test_the_data_has_no_sentence_twice():
    rows = sample_csv().decode().splitlines()[1:]
    assert len(rows) == 160 and len({row.split(",", 1)[1].rsplit(",", 1)[0] for row in rows}) == 160
    assert sample_csv() == sample_csv()


def test_install_list_test_and_train_in_a_new_environment(tmp_path):
    """The whole user path in a throwaway venv layered over this one (about 30 s: install, pytest, train)."""
    target = write_plugin("layered", tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # See this environment's packages (dsreg, torch, pytest) without copying them: a .pth line runs addsitedir.
    (site / "layer.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    run_env = {**ENV, "PATH": f"{env_dir / 'bin'}{os.pathsep}{ENV.get('PATH', '')}", "DSREG_CACHE": str(tmp_path / "cache")}

    def run(*args: str) -> str:
        done = subprocess.run(args, env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(target))
    listing = run(str(python), "-m", "dsreg", "list")
    assert any(line.split()[:3] == ["layered", "layered", "text-classification"] for line in listing.splitlines()), listing
    tests = run(str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target))
    assert "4 passed" in tests  # untouched, and the entry-point test runs now that it is installed
    trained = run(str(python), "-m", "dsreg", "train", "layered", "--epochs", "1", "--device", "cpu")
    assert "epoch 1/1" in trained, trained
