"""Every CLI command through click's runner: output a user reads, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli.app import LAZY_COMMANDS, cli, human_bytes, parse_config

from toydata import blob, make_builder


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def toy(dsreg_cache, dsreg_register, data, dsreg_file_server):
    url = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(
        make_builder(data, urls=("http://127.0.0.1:9/dead/toy.bin", url + "toy.bin")),
        make_builder(blob(400, seed=4), name="other", urls=(url + "published/toy.bin",)),
    )
    return url


def test_list_table_and_json(runner, toy):
    out = runner.invoke(cli, ["list"])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].split() == ["NAME", "PLUGIN", "TASK", "SIZE", "READY"]
    assert lines[2].split() == ["toy", "tests", "image-classification", "293.0", "KiB", "no"]
    rows = json.loads(runner.invoke(cli, ["list", "--json"]).output)
    assert rows[1] == {
        "name": "toy",
        "plugin": "tests",
        "task": "image-classification",
        "size": 300_000,
        "cached": False,
        "ready_splits": [],
    }


def test_fetch_then_info_then_cache_commands(runner, toy, dsreg_cache):
    out = runner.invoke(cli, ["fetch", "toy", "--quiet"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("toy: train 60,000, test 15,000 -> ")
    assert json.loads(runner.invoke(cli, ["list", "--json"]).output)[1]["cached"] is True

    info = runner.invoke(cli, ["info", "toy"]).output
    assert "train: 60,000 examples" in info and "license:   CC0-1.0" in info
    assert f"sha256 {hashlib.sha256(blob()).hexdigest()}" in info and "verified" in info
    assert "image: uint8[1, 2, 2]" in info and "label: class label (2: even, odd)" in info
    as_json = json.loads(runner.invoke(cli, ["info", "toy", "--json"]).output)
    assert as_json["manifest"]["splits"]["test"]["examples"] == 15_000

    assert runner.invoke(cli, ["cache", "path"]).output.strip() == str(dsreg_cache)
    ls = runner.invoke(cli, ["cache", "ls"]).output
    assert ls.startswith("toy  downloads 293.0 KiB  prepared")
    assert runner.invoke(cli, ["cache", "du"]).output.endswith(f"\t{dsreg_cache}\n")
    rm = runner.invoke(cli, ["cache", "rm", "toy"])
    assert rm.exit_code == 0 and rm.output.startswith("removed toy (")
    assert runner.invoke(cli, ["cache", "ls"]).output.strip() == "the cache is empty"


def test_fetch_with_mirror_from_and_no_verify(runner, toy, tmp_path, dsreg_file_server):
    dsreg_file_server.serve({"mirror/toy.bin": blob(400, seed=4)})
    out = runner.invoke(cli, ["fetch", "other", "--mirror", dsreg_file_server.url + "mirror/", "-q"])
    assert out.exit_code == 0, out.output
    assert dsreg_file_server.requests == [("mirror/toy.bin", None, 200)]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "toy.bin").write_bytes(b"\x01\x02\x03\x04" * 10)
    runner.invoke(cli, ["cache", "rm", "toy"])
    bad = runner.invoke(cli, ["fetch", "toy", "--from", str(mine), "-q"])
    assert bad.exit_code == 1
    assert bad.output.startswith("error: toy: toy.bin failed verification") and bad.output.count("\n") == 1
    ok = runner.invoke(cli, ["fetch", "toy", "--from", str(mine), "--no-verify", "-q"])
    assert ok.exit_code == 0 and "train 8, test 2" in ok.output
    assert "NOT VERIFIED (fetched with --no-verify)" in runner.invoke(cli, ["info", "toy"]).output


def test_errors_are_one_line_unless_debug(runner, toy):
    out = runner.invoke(cli, ["info", "toi"])
    assert out.exit_code == 1
    assert out.output == (
        "error: no dataset named 'toi'; did you mean toy? `dsreg list` shows the registered ones, "
        "and a plugin package (e.g. pip install dsreg-<name>) adds more\n"
    )
    debug = runner.invoke(cli, ["--debug", "info", "toi"])
    assert isinstance(debug.exception, dsreg.UnknownDatasetError)
    bad_config = runner.invoke(cli, ["info", "toy", "-c", "novalue"])
    assert bad_config.output.startswith("error: config 'novalue' must look like KEY=VALUE")


def test_plugins_and_version(runner, toy):
    assert runner.invoke(cli, ["--version"]).output.startswith("dsreg, version ")
    out = runner.invoke(cli, ["plugins"])
    assert out.output.startswith("ok      tests (-): toy, other")


def test_helpers():
    assert human_bytes(8_458_043) == "8.1 MiB" and human_bytes(None) == "?" and human_bytes(5) == "5 B"
    assert parse_config(("size=28", "url=/data", "flag=true")) == {"size": 28, "url": "/data", "flag": True}


def test_info_cuts_long_notes_to_one_line(runner, dsreg_cache, dsreg_register):
    class Noted(dsreg.Builder):
        name = "noted"
        description, license, homepage, citation, task = "Notes.", "CC0-1.0", "https://example.invalid", "none", "x"
        features = {"n": dsreg.Value("int64")}
        splits = ("train",)

        def generate(self, split, files, **config):
            self.note("short", {"a": 1})
            self.note("vocab", [f"word{i}" for i in range(5000)])
            yield "0", {"n": 0}

    dsreg_register(Noted)
    assert runner.invoke(cli, ["fetch", "noted"]).exit_code == 0
    out = runner.invoke(cli, ["info", "noted"]).output
    assert '  short: {"a": 1}\n' in out
    (line,) = [row for row in out.splitlines() if row.startswith("  vocab: ")]
    assert line.startswith('  vocab: ["word0", "word1"') and line.endswith("characters; `dsreg info NAME --json` shows all)")
    assert len(line) < 260
    full = json.loads(runner.invoke(cli, ["info", "noted", "--json"]).output)
    assert len(full["manifest"]["notes"]["vocab"]) == 5000


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["fetch"], "error: Missing argument 'NAMES...'. (`dsreg fetch -h` lists the options)"),
        (
            ["fetch", "toy", "--workers", "x"],
            "error: Invalid value for '--workers': 'x' is not a valid integer range. (`dsreg fetch -h` lists the options)",
        ),
        (
            ["fetch", "toy", "--workers", "0"],
            "error: Invalid value for '--workers': 0 is not in the range x>=1. (`dsreg fetch -h` lists the options)",
        ),
        (["cache", "rm"], "error: Missing argument 'NAMES...'. (`dsreg cache rm -h` lists the options)"),
    ],
)
def test_bad_option_values_are_one_line_before_any_work(runner, toy, dsreg_cache, args, says):
    out = runner.invoke(cli, args)
    assert (out.exit_code, out.output) == (2, says + "\n")
    assert not (dsreg_cache / "datasets").exists()  # nothing was fetched


def test_an_unknown_command_is_one_line(runner):
    out = runner.invoke(cli, ["fetchh"])
    assert out.exit_code == 2 and out.output.count("\n") == 1
    assert out.output.startswith("error: No such command 'fetchh'.")  # click >= 8.2 adds "Did you mean 'fetch'?"


def test_debug_shows_click_usage_for_a_bad_option(runner, toy):
    out = runner.invoke(cli, ["--debug", "fetch", "toy", "--workers", "x"])
    assert out.exit_code == 2 and "Usage: " in out.output and "Error: Invalid value for '--workers'" in out.output


def test_output_piped_into_head_ends_quietly(tmp_path):
    import subprocess
    import sys

    code = "from dsreg.cli import main; main(['list'])"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        proc.stdout.close()  # as `| head -0` does: every write hits a closed pipe
        err = proc.stderr.read().decode()
    assert "error:" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_dash_h_works_for_every_lazy_command_after_the_cli_reference_is_rendered(name: str) -> None:
    # click caches a command's help option the first time a context asks for it; the docs' CLI
    # reference used to ask through a context without dsreg's settings, so `dsreg push -h` was then
    # refused in that process (a test-order failure).
    spec = importlib.util.spec_from_file_location("dsreg_docs_hook", Path(__file__).parent.parent / "docs" / "_hooks" / "dsreg_docs.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    reference = hook.render_cli()
    assert f"## `dsreg {name}`" in reference and "-h, --help" in reference
    result = CliRunner().invoke(cli, [name, "-h"], prog_name="dsreg")
    assert result.exit_code == 0 and result.output.startswith(f"Usage: dsreg {name} "), result.output
