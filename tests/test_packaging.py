"""The files dsreg needs at run time that are not Python modules are declared as package data, so a wheel carries them."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_non_python_file_of_the_package_is_package_data() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    covered: set[Path] = set()
    for package, patterns in declared.items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            covered |= {p for p in folder.glob(pattern) if p.is_file()}
    needed = {p for p in (ROOT / "dsreg").rglob("*") if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts}
    assert needed, "expected templates and page assets under dsreg/"
    assert sorted(map(str, needed - covered)) == []
