"""`dsreg new-plugin`: the package each kind writes passes its own tests, installs, lists and trains."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import sysconfig
import venv
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsreg.cli import cli
from dsreg.cli.newplugin import KINDS, sample_csv, write_plugin
from dsreg.errors import ConfigError
from dsreg.testing import check_builder

ENV = {k: v for k, v in os.environ.items() if not k.startswith("DSREG_")}


def _import_generated(target: Path, package: str):
    """Import a generated package from its folder (no install), forgetting it afterwards."""
    sys.path.insert(0, str(target))
    try:
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(target))


def _files(target: Path) -> list[str]:
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())


def test_the_command_writes_a_complete_package_into_dir(tmp_path):
    target = tmp_path / "plugins" / "mine"
    result = CliRunner().invoke(cli, ["new-plugin", "my-data", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert _files(target) == [
        "README.md",
        "dsreg_my_data/__init__.py",
        "dsreg_my_data/data/my-data.csv",
        "pyproject.toml",
        "tests/test_my_data.py",
    ]
    pyproject = (target / "pyproject.toml").read_text()
    assert '[project.entry-points.dsreg]\nmy-data = "dsreg_my_data"' in pyproject
    assert f'pip install -e "{target}[test]"' in result.output


def test_without_dir_the_package_is_written_to_dot_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["new-plugin", "here", "--kind", "files"])
    assert result.exit_code == 0, result.output
    assert "wrote dsreg-here (files) to here" in result.output
    assert _files(tmp_path / "here") == [
        "README.md",
        "dsreg_here/__init__.py",
        "dsreg_here/data/test.bin",
        "dsreg_here/data/train.bin",
        "pyproject.toml",
        "tests/test_here.py",
    ]


@pytest.mark.parametrize(
    "kind, data", [("image", ["k.tar.gz"]), ("audio", ["k.tar.gz"]), ("text", ["k.csv"]), ("files", ["test.bin", "train.bin"])]
)
def test_every_kind_renders_its_templates_completely(tmp_path, kind, data):
    target = write_plugin("k", kind=kind, dest=tmp_path / "k")
    assert _files(target) == [
        "README.md",
        "dsreg_k/__init__.py",
        *(f"dsreg_k/data/{name}" for name in data),
        "pyproject.toml",
        "tests/test_k.py",
    ]
    for path in ("README.md", "pyproject.toml", "dsreg_k/__init__.py", "tests/test_k.py"):
        assert "${" not in (target / path).read_text(), path  # every placeholder was filled
    module = (target / "dsreg_k" / "__init__.py").read_text()
    # The author's part named first in the class, the config read from self.params, training defaults set.
    top = module[module.index("(dsreg.Builder):") : module.index("    name = ")]  # the class docstring
    assert "What you write: the attributes below and ``generate(split, files)``" in top
    assert 'self.params["' in module and "train_defaults = {" in module
    assert ('"Pillow>=10"' in (target / "pyproject.toml").read_text()) == (kind == "image")


def test_the_templates_are_files_of_the_package():
    templates = resources.files("dsreg.cli").joinpath("templates")
    assert sorted(entry.name for entry in templates.iterdir()) == sorted(["common", *KINDS])
    for kind in KINDS:
        assert sorted(entry.name for entry in templates.joinpath(kind).iterdir()) == ["README.md.tmpl", "__init__.py.tmpl", "test.py.tmpl"]


def test_unknown_kinds_are_refused(tmp_path):
    result = CliRunner().invoke(cli, ["new-plugin", "x", "--kind", "video", "--dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and "'video' is not one of 'text', 'image', 'audio', 'files'" in result.output
    with pytest.raises(ConfigError, match="unknown plugin kind 'video'; choose one of text, image, audio, files"):
        write_plugin("x", kind="video", dest=tmp_path / "x")


def test_the_generated_builder_passes_check_builder_without_installing(tmp_path, monkeypatch):
    target = write_plugin("sampledata", tmp_path)
    module = _import_generated(target, "dsreg_sampledata")
    try:
        report = check_builder(module.Sampledata, model="text-gru")
    finally:
        sys.modules.pop("dsreg_sampledata", None)
    assert report.splits == {"train": 120, "test": 40}
    assert report.results["train"].startswith("ok (text-gru")  # the model its train_defaults name
    # The module dsreg list imports stays light.
    assert "import torch" not in (target / "dsreg_sampledata" / "__init__.py").read_text()


def test_an_empty_dir_is_used_and_a_full_one_refused(tmp_path):
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    assert runner.invoke(cli, ["new-plugin", "taken", "--dir", str(tmp_path / "empty")]).exit_code == 0
    again = runner.invoke(cli, ["new-plugin", "taken", "--dir", str(tmp_path / "empty")])
    assert again.exit_code == 1 and "already exists and is not empty; pick another --dir or name" in again.output
    bad = runner.invoke(cli, ["new-plugin", "My Data", "--dir", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "plugin name 'My Data' is invalid; use lowercase letters" in bad.output


def test_the_data_has_no_sentence_twice():
    rows = sample_csv().decode().splitlines()[1:]
    assert len(rows) == 160 and len({row.split(",", 1)[1].rsplit(",", 1)[0] for row in rows}) == 160
    assert sample_csv() == sample_csv()


#: A test the generated packages' pytest run collects too: `dsreg train` on the installed text kind, in that run's process.
TRAIN_TEST = """
from click.testing import CliRunner

from dsreg.cli import cli


def test_dsreg_train_the_installed_plugin():
    result = CliRunner().invoke(cli, ["train", "kind-text", "--epochs", "1", "--device", "cpu", "--out", "run"])
    assert result.exit_code == 0 and "epoch 1/1" in result.output, result.output
"""


@pytest.mark.slow
def test_every_kind_passes_its_own_tests_and_the_text_one_installs_lists_and_trains_in_a_new_environment(tmp_path):
    """The whole user path in a throwaway venv layered over this one (about 25 s: install, list, pytest, train).

    The text kind is pip-installed there, so its entry-point test runs; the other three are imported
    from their folders, not installed, so theirs skips. All four must import without torch & co.
    """
    targets = {kind: write_plugin(f"kind-{kind}", kind=kind, dest=tmp_path / kind) for kind in KINDS}
    installed = targets["text"]
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # See this environment's packages (dsreg, torch, pytest) without copying them: a .pth line runs addsitedir.
    (site / "layer.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    uninstalled = [str(t) for t in targets.values() if t != installed]
    run_env = {
        **ENV,
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{ENV.get('PATH', '')}",
        "DSREG_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([*uninstalled, ENV.get("PYTHONPATH", "")]),
    }

    def run(*args: str) -> str:
        done = subprocess.run(args, env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(installed))
    light = run(
        str(python),
        "-c",
        "import sys, dsreg_kind_text, dsreg_kind_image, dsreg_kind_audio, dsreg_kind_files; "
        "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'datasets') if m in sys.modules))",
    )
    assert light.strip() == "[]", light  # dsreg list imports these modules
    listing = run(str(python), "-m", "dsreg", "list")
    assert any(line.split()[:3] == ["kind-text", "kind-text", "text-classification"] for line in listing.splitlines()), listing
    (tmp_path / "test_train_installed.py").write_text(TRAIN_TEST)
    tests = run(
        str(python),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::DeprecationWarning",
        *map(str, targets.values()),
        "test_train_installed.py",
    )
    # Each kind's own tests, untouched (the text kind's entry-point test runs now that it is installed), and the training.
    assert "15 passed, 3 skipped" in tests, tests
    assert (tmp_path / "run" / "checkpoint.pt").exists()
