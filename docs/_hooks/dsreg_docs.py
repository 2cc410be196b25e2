"""MkDocs hook for the dsreg site.

- docs/cli.md holds prose and a ``<!-- cli-reference -->`` marker, replaced at build time by the
  ``--help`` of every built-in ``dsreg`` command, so the reference never falls behind the click code.
- Links from a page to repository files outside docs/ (``../examples/x.py``, ``../README.md``)
  become links to the file in the repository; a link to a file that does not exist is left alone,
  so ``mkdocs build --strict`` still fails on it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

MARKER = "<!-- cli-reference -->"
_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)#\s]+)(#[^)\s]*)?\)")


def _context(command: Any, name: str, parent: Any = None) -> Any:
    """A context for ``command`` with its own settings applied, as click's ``make_context`` does.

    A bare ``click.Context`` would leave out dsreg's ``-h`` (CONTEXT's help_option_names), and click
    caches a command's help option the first time it is asked for: ``dsreg push -h`` was then refused
    for the rest of the process.
    """
    import click

    settings = {"max_content_width": 100, **command.context_settings}
    return click.Context(command, info_name=name, parent=parent, terminal_width=100, **settings)


def _walk(command: Any, ctx: Any) -> list[tuple[str, str]]:
    import click

    out = [(ctx.command_path, command.get_help(ctx))]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                out += _walk(sub, _context(sub, name, ctx))
    return out


def render_cli() -> str:
    """Return the Markdown reference of ``dsreg`` and every built-in subcommand (plugin commands excluded)."""
    from dsreg.cli import cli

    root = _context(cli, "dsreg")
    return "\n".join(f"## `{path}`\n\n```text\n{text.rstrip()}\n```\n" for path, text in _walk(cli, root))


def repo_links(markdown: str, page_path: str, docs_dir: Path, repo_url: str) -> str:
    """Point links that leave docs/ at the repository file (page_path: the page relative to docs/)."""
    root = docs_dir.parent

    def fix(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(page_path), target))
        if not joined.startswith("../") or not (docs_dir / joined).resolve().exists():
            return match.group(0)
        rel = (docs_dir / joined).resolve().relative_to(root.resolve()).as_posix()
        return f"]({repo_url.rstrip('/')}/blob/main/{rel}{anchor})"

    return _LINK.sub(fix, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "cli.md":
        if MARKER not in markdown:
            raise ValueError(f"docs/cli.md lost its {MARKER} marker; put it back where the reference goes")
        markdown = markdown.replace(MARKER, render_cli())
    return repo_links(markdown, page.file.src_uri, Path(config["docs_dir"]), config["repo_url"])
