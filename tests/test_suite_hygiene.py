"""The suite's own rules (the root conftest.py): the temp dir and the cache are this run's, and no test leaves dsreg-* scratch."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]

SCRATCH_TESTS = """
import os
import tempfile


def test_leaves_its_scratch_folder():
    tempfile.mkdtemp(prefix="dsreg-demo-")


def test_removes_its_scratch_folder():
    os.rmdir(tempfile.mkdtemp(prefix="dsreg-demo-"))


def test_leaves_a_folder_of_another_name():
    tempfile.mkdtemp(prefix="other-")
"""


def test_the_system_temp_dir_is_a_folder_of_this_runs_basetemp_and_subprocesses_see_it(tmp_path_factory):
    temp = Path(tempfile.gettempdir())

    assert temp.is_relative_to(tmp_path_factory.getbasetemp())
    assert os.environ["TMPDIR"] == str(temp)
    child = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"], capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == str(temp)


def test_the_default_cache_is_in_this_runs_basetemp(tmp_path_factory):
    from dsreg.fetching.cache import default_root

    assert default_root().is_relative_to(tmp_path_factory.getbasetemp())


def test_a_test_that_leaves_dsreg_scratch_in_the_temp_dir_fails_naming_it(pytester):
    """The root conftest in a pytest run of its own (in this process: pytester puts back modules, cwd and environment)."""
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    pytester.makepyfile(test_scratch=SCRATCH_TESTS)

    run = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--basetemp", str(pytester.path / "basetemp"))
    out = "\n".join(run.outlines)

    assert "3 passed, 1 error" in out, out[-3000:]  # an error at teardown follows its test's pass
    assert "ERROR at teardown of test_leaves_its_scratch_folder" in out
    assert "the test left dsreg-demo-" in out
