"""Every script in examples/ runs to the end (each in its own process, with a throwaway cache).

The scripts run with DSREG_EXAMPLE_QUICK=1: those that train use a small dataset (see each
docstring), so this checks that they run and print what they promise, not the figures they reach.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
#: Lines a script must print: the result it exists to show, so a run that ends without showing it fails.
PROMISED = {
    "torchrun_check.py": ("last epoch's shards disjoint: True", "final parameters identical on every rank: True"),
    "hand_written_loop.py": ("epoch 1: loss ", "epoch 2: loss ", "test accuracy: "),
}


def _missing_plugins(script: Path) -> list[str]:
    """Return the plugin packages (``dsreg_*``) the script imports that are not installed here."""
    names = set(re.findall(r"^\s*(?:import|from)\s+(dsreg_\w+)", script.read_text(), flags=re.M))
    return sorted(name for name in names if importlib.util.find_spec(name) is None)


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_example_runs(script, tmp_path):
    missing = _missing_plugins(script)
    if missing:
        pytest.skip(f"{script.name} needs {', '.join(missing)}, which is not installed (see examples/README.md)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSREG_")}
    env.update(DSREG_CACHE=str(tmp_path / "cache"), DSREG_CONFIG=str(tmp_path / "none.toml"), DSREG_EXAMPLE_QUICK="1")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{script.name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    assert run.stdout.strip(), f"{script.name} printed nothing"
    for line in PROMISED.get(script.name, ()):
        assert line in run.stdout, f"{script.name} did not print {line!r}:\n{run.stdout[-2000:]}"


def test_the_examples_readme_lists_every_script():
    readme = (EXAMPLES / "README.md").read_text()
    for script in SCRIPTS:
        assert f"]({script.name})" in readme, f"examples/README.md does not list {script.name}"
