"""dsreg.testing: its data helpers (a folder tree, zip/tar/tar.gz archives, PNGs a plugin's tests read
back) and its pytest plugin (the dsreg_* fixtures, their deprecated old names, a cheap start-up)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.request

import pytest

import dsreg.plugins
from dsreg.builder import Builder
from dsreg.fetching import archive
from dsreg.testing import pack, write_tree
from dsreg.testing.media import png

pytest_plugins = ["pytester"]

TREE = {"b/one.txt": b"1", "a/two.txt": b"22", "three.bin": bytes(range(256))}


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz"])
def test_pack_round_trips_through_the_core_reader(tmp_path, fmt):
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(pack(TREE, fmt))
    assert list(archive.members(path)) == list(TREE.items())  # the given order is kept
    assert archive.detect(path) == {"zip": "zip", "tar": "tar", "tar.gz": "gzip"}[fmt]


def test_pack_rejects_unknown_format():
    with pytest.raises(ValueError, match="not zip, tar or tar.gz"):
        pack(TREE, "rar")


def test_write_tree_makes_folders(tmp_path):
    root = write_tree(tmp_path / "data", TREE)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == sorted(TREE)
    assert (root / "three.bin").read_bytes() == bytes(range(256))


def test_png_encodes_the_given_pixels():
    image_module = pytest.importorskip("PIL.Image")
    pixels = bytes(range(0, 120, 10))  # 4 x 3 grey, row by row
    with image_module.open(io.BytesIO(png(pixels, 4, 3))) as image:
        assert image.size == (4, 3) and image.mode == "L" and image.tobytes() == pixels
    with pytest.raises(ValueError, match="12 bytes of pixels for a 5x3 L PNG; expected 15"):
        png(pixels, 5, 3)


# -- the pytest plugin ----------------------------------------------------------------------------


def test_the_fixtures_serve_a_cache_a_server_and_a_registry(dsreg_cache, dsreg_file_server, dsreg_register):
    assert os.environ["DSREG_CACHE"] == str(dsreg_cache) and os.environ["DSREG_NETWORK"] == "loopback"
    url = dsreg_file_server.serve({"a.bin": b"abc"})
    with urllib.request.urlopen(f"{url}a.bin") as response:
        assert response.read() == b"abc"

    class Tiny(Builder):
        name = "tiny"

        def generate(self, split, files, **config):
            yield from ()

    registry = dsreg_register(Tiny)
    assert dsreg.plugins.get_registry() is registry and registry.get("tiny").builder is Tiny


OLD_NAMES = """
import urllib.request

def test_one(register, file_server):
    url = file_server.serve({"a.bin": b"abc"})
    assert urllib.request.urlopen(url + "a.bin").read() == b"abc"
    assert register() is not None

def test_two(register, file_server):
    assert register() is not None
"""


def test_the_old_names_work_and_warn_once_per_run(pytester):
    pytester.makepyfile(test_old=OLD_NAMES)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, warnings=2)  # one per old name, not one per test
    result.stdout.fnmatch_lines(
        [
            "*test_old.py:3: DeprecationWarning: the dsreg fixture 'register' is deprecated; request 'dsreg_register' instead*",
            "*test_old.py:3: DeprecationWarning: the dsreg fixture 'file_server' is deprecated; request 'dsreg_file_server' instead*",
        ]
    )
    # A suite that turns warnings into errors hears each old name as an error, once: test_one stops at
    # 'register', so test_two is where 'file_server' is first set up.
    strict = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error::DeprecationWarning")
    strict.assert_outcomes(errors=2)
    strict.stdout.fnmatch_lines(
        [
            "ERROR test_old.py::test_one - DeprecationWarning: the dsreg fixture 'register*",
            "ERROR test_old.py::test_two - DeprecationWarning: the dsreg fixture 'file_ser*",
        ]
    )


def test_loading_the_pytest_plugin_imports_no_heavy_module():
    code = (
        "import sys; from importlib.metadata import entry_points; "
        "[ep.load() for ep in entry_points(group='pytest11') if ep.name == 'dsreg']; "
        "print(sorted(m for m in ('torch', 'numpy', 'datasets', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
