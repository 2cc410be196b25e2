"""The docs site: `mkdocs build --strict` passes, every page is in the nav, the CLI reference is complete."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from dsreg.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)


def _hook():
    spec = importlib.util.spec_from_file_location("dsreg_docs_hook", DOCS / "_hooks" / "dsreg_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [p for value in node.values() for p in _nav_pages(value)]
    return [p for item in node for p in _nav_pages(item)]


def test_every_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml", reason="PyYAML reads mkdocs.yml (it comes with mkdocs and datasets)")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = _nav_pages(config["nav"])
    assert sorted(listed) == PAGES, (
        f"add to the nav in mkdocs.yml: {sorted(set(PAGES) - set(listed))}; missing files: {sorted(set(listed) - set(PAGES))}"
    )


def test_the_cli_reference_has_every_builtin_command():
    text = _hook().render_cli()
    ctx = click.Context(cli, info_name="dsreg")
    for name in cli.list_commands(ctx):
        assert f"## `dsreg {name}`" in text
        assert f"Usage: dsreg {name}" in text
    assert "## `dsreg cache rm`" in text and "Remove datasets from the cache" in text
    assert "<!-- cli-reference -->" in (DOCS / "cli.md").read_text()


def test_links_out_of_docs_point_at_the_repository():
    fix = _hook().repo_links
    text = "see [the loop](../examples/custom_module.py#L1) and [gone](../examples/nope.py) and [in](cache.md)"
    out = fix(text, "train.md", DOCS, "https://example.invalid/repo")
    assert "[the loop](https://example.invalid/repo/blob/main/examples/custom_module.py#L1)" in out
    assert "[gone](../examples/nope.py)" in out and "[in](cache.md)" in out  # strict still fails on the broken one


def test_mkdocs_build_strict(tmp_path):
    for module, package in (
        ("mkdocs", "mkdocs"),
        ("material", "mkdocs-material"),
        ("mkdocstrings_handlers.python", "mkdocstrings[python]"),
    ):
        if importlib.util.find_spec(module.split(".")[0]) is None or ("." in module and importlib.util.find_spec(module) is None):
            pytest.skip(f"{package} is not installed (pip install -r requirements-dev.txt installs the docs tools)")
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for page in PAGES:
        html = site / ("index.html" if page == "index.md" else page[: -len(".md")] + "/index.html")
        assert html.exists(), f"{page} was not built"
    assert 'id="dsreg.testing.check_builder"' in (site / "api" / "index.html").read_text()
    assert "Usage: dsreg fetch" in (site / "cli" / "index.html").read_text()
