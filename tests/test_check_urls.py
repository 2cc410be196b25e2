"""dsreg check-urls: each URL of each published file probed (alive, size, deep: hash) against loopback mirrors."""

from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner

from dsreg.cli.checkurls import check_urls_cmd
from dsreg.fetching.probe import probe_url

from toydata import make_builder


def _run(*args: str):
    return CliRunner().invoke(check_urls_cmd, list(args))


def _lines(output: str) -> dict[str, str]:
    """``{url: state}`` from the line printed per URL."""
    out = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1] in ("ok", "dead", "wrong"):
            out[words[2]] = words[1]
    return out


def test_a_dead_and_a_wrong_size_mirror_are_named_and_the_live_url_keeps_the_exit_zero(
    dsreg_cache, dsreg_file_server, dsreg_register, data
):
    good = dsreg_file_server.serve({"toy.bin": data})
    dsreg_file_server.serve({"short/toy.bin": data[:-10]})
    dead, short = good + "gone/", good + "short/"
    dsreg_register(make_builder(data, urls=(good + "toy.bin",)))
    result = _run("toy", "--mirror", dead, "--mirror", short)
    assert result.exit_code == 0, result.stderr
    assert _lines(result.stdout) == {dead + "toy.bin": "dead", short + "toy.bin": "wrong", good + "toy.bin": "ok"}
    assert "not found (HTTP 404)" in result.stdout
    assert f"size {len(data) - 10:,} bytes, expected {len(data):,}" in result.stdout
    assert "1 file(s), 3 URL(s): 1 ok, 1 dead, 1 wrong" in result.stdout


def test_a_file_with_no_live_url_exits_non_zero_with_one_line_naming_it(dsreg_cache, dsreg_file_server, dsreg_register, data):
    base = dsreg_file_server.serve({"short/toy.bin": data[:100]})
    dsreg_register(make_builder(data, urls=(base + "gone/toy.bin", base + "short/toy.bin")))
    result = _run("toy")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: toy/toy.bin has no URL that serves it as published; add a mirror to the plugin or "
        "`dsreg fetch toy --mirror URL` where a copy lives"
    ]


def test_json_lists_every_url_with_its_state_and_size(dsreg_cache, dsreg_file_server, dsreg_register, data):
    base = dsreg_file_server.serve({"toy.bin": data})
    dsreg_register(make_builder(data, urls=(base + "gone/toy.bin", base + "toy.bin")))
    result = _run("--json")  # no name: every registered dataset
    assert result.exit_code == 0
    [check] = json.loads(result.stdout)
    assert (check["dataset"], check["file"], check["alive"]) == ("toy", "toy.bin", True)
    assert [(u["state"], u["size"]) for u in check["urls"]] == [("dead", None), ("ok", len(data))]


def test_deep_compares_the_bytes_not_just_the_size(dsreg_cache, dsreg_file_server, dsreg_register, data):
    changed = data[:-1] + bytes([data[-1] ^ 1])  # same size, other bytes
    base = dsreg_file_server.serve({"toy.bin": data, "changed/toy.bin": changed})
    dsreg_register(make_builder(data, urls=(base + "changed/toy.bin", base + "toy.bin")))
    shallow = _run("toy")
    assert _lines(shallow.stdout) == {base + "changed/toy.bin": "ok", base + "toy.bin": "ok"}
    deep = _run("toy", "--deep")
    assert deep.exit_code == 0
    assert _lines(deep.stdout) == {base + "changed/toy.bin": "wrong", base + "toy.bin": "ok"}
    expected = hashlib.sha256(data).hexdigest()
    assert f"sha256 {hashlib.sha256(changed).hexdigest()}, expected {expected}" in deep.stdout


def test_head_refused_falls_back_to_a_one_byte_get(dsreg_cache, dsreg_file_server, data):
    base = dsreg_file_server.serve({"toy.bin": data}, fail=1, status=405)  # the first request (HEAD) is refused
    file = make_builder(data).files[0]
    check = probe_url(base + "toy.bin", file)
    assert (check.state, check.size) == ("ok", len(data))
    assert [(rng, status) for _, rng, status in dsreg_file_server.requests] == [(None, 405), ("bytes=0-0", 206)]


def test_local_paths_and_file_urls_are_checked_through_fsspec(dsreg_cache, tmp_path, data):
    (tmp_path / "toy.bin").write_bytes(data)
    file = make_builder(data).files[0]
    assert probe_url(str(tmp_path / "toy.bin"), file).state == "ok"
    assert probe_url((tmp_path / "toy.bin").as_uri(), file, deep=True).state == "ok"
    missing = probe_url(str(tmp_path / "nothing.bin"), file)
    assert (missing.state, missing.detail) == ("dead", "not found")
    assert probe_url(str(tmp_path), file).detail == "a folder, not a file"


def test_checking_every_dataset_skips_one_that_needs_config_with_a_line(dsreg_cache, dsreg_file_server, dsreg_register, data):
    from dsreg.errors import ConfigError

    base = dsreg_file_server.serve({"toy.bin": data})
    needy = make_builder(data, name="needy")

    def get_files(self):
        raise ConfigError("needy needs url=PATH")

    needy.get_files = get_files
    dsreg_register(make_builder(data, urls=(base + "toy.bin",)), needy)
    result = _run()
    assert result.exit_code == 0
    assert result.stderr == "needy: skipped (needy needs url=PATH)\n"
    assert _lines(result.stdout) == {base + "toy.bin": "ok"}
    named = _run("needy")
    assert named.exit_code == 1 and isinstance(named.exception, ConfigError)  # asked by name: the error stands
