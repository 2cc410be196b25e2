"""Every script in examples/ runs to the end, as ``__main__`` in the test's process, with a throwaway cache.

The scripts run with DSREG_EXAMPLE_QUICK=1: those that train use a small dataset (see each
docstring), so this checks that they run and print what they promise, not the figures they reach.
They run in this process (runpy, as ``python SCRIPT`` would: ``__name__ == "__main__"``, their own
argv, cwd and environment), because a fresh interpreter per script costs seconds of imports
(torch, and torch._dynamo with the first optimizer) and tells nothing more; the state a script may
change (environment, cwd, random generators, torch's thread count) is put back afterwards.
torchrun_check.py still starts its ranks as processes: that is what it shows.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import re
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
#: Lines a script must print: the result it exists to show, so a run that ends without showing it fails.
PROMISED = {
    "torchrun_check.py": ("last epoch's shards disjoint: True", "final parameters identical on every rank: True"),
    "hand_written_loop.py": ("epoch 1: loss ", "epoch 2: loss ", "test accuracy: "),
    "text_from_lists.py": ("batch 0:", "batch 2:", "attention_mask", "'Glum'"),
}
#: Text a script must print exactly so many times (text_from_lists: five sentences in batches of two).
COUNTED = {"text_from_lists.py": {"batch ": 3}}


def _missing_plugins(script: Path) -> list[str]:
    """Return the plugin packages (``dsreg_*``) the script imports that are not installed here."""
    names = set(re.findall(r"^\s*(?:import|from)\s+(dsreg_\w+)", script.read_text(), flags=re.M))
    return sorted(name for name in names if importlib.util.find_spec(name) is None)


@contextlib.contextmanager
def _state_put_back() -> Iterator[None]:
    """Restore what a script may change in the process: environment, random generators, torch's threads."""
    threads, py_state, np_state, torch_state = torch.get_num_threads(), random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        with mock.patch.dict(os.environ):
            yield
    finally:
        torch.set_num_threads(threads)
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


#: The script that trains two ranks under torchrun takes seconds: started first with the suite's other slow tests.
SLOW = {"torchrun_check.py"}


@pytest.mark.parametrize("script", [pytest.param(s, id=s.name, marks=[pytest.mark.slow] if s.name in SLOW else []) for s in SCRIPTS])
def test_example_runs(script, tmp_path, monkeypatch, capfd):
    missing = _missing_plugins(script)
    if missing:
        pytest.skip(f"{script.name} needs {', '.join(missing)}, which is not installed (see examples/README.md)")
    for name in [k for k in os.environ if k.startswith("DSREG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DSREG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DSREG_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DSREG_EXAMPLE_QUICK", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script)])
    with _state_put_back():
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit:  # argparse and sys.exit: only a zero status is a success
            assert exit.code in (0, None), f"{script.name} exited {exit.code}:\n{capfd.readouterr()}"
    out = capfd.readouterr().out
    assert out.strip(), f"{script.name} printed nothing"
    for line in PROMISED.get(script.name, ()):
        assert line in out, f"{script.name} did not print {line!r}:\n{out[-2000:]}"
    for text, times in COUNTED.get(script.name, {}).items():
        assert out.count(text) == times, f"{script.name} printed {text!r} {out.count(text)} times, not {times}:\n{out[-2000:]}"


def test_the_examples_readme_lists_every_script():
    readme = (EXAMPLES / "README.md").read_text()
    for script in SCRIPTS:
        assert f"]({script.name})" in readme, f"examples/README.md does not list {script.name}"
