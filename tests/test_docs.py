"""Every hook is documented under its exact signature (as datasette does), and doc links resolve."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from dsreg import hookspecs

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "plugin-guide.md").read_text()


@pytest.mark.parametrize("name", sorted(hookspecs.HOOKS))
def test_hook_is_documented_with_its_signature(name):
    params = ", ".join(inspect.signature(hookspecs.HOOKS[name]).parameters)
    assert f"### `{name}({params})`" in GUIDE, f"docs/plugin-guide.md lacks a section for {name}({params})"
    first_line = inspect.getdoc(hookspecs.HOOKS[name]).splitlines()[0].replace("``", "`")
    assert first_line in GUIDE


def test_documented_hooks_exist():
    documented = set(re.findall(r"^### `(\w+)\(", GUIDE, flags=re.M))
    assert documented == set(hookspecs.HOOKS)


def test_relative_links_in_docs_resolve():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
