"""``dsreg catalog --html DIR``: a static site with a card per installed dataset (see catalog_page)."""

from __future__ import annotations

from pathlib import Path

import click

from .app import CONTEXT

__all__ = ["catalog_cmd"]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


@click.command("catalog", context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option(
    "--html",
    "folder",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the site into DIR: index.html, style.css, search.js and previews/.",
)
@click.option("--fetch", is_flag=True, help="Fetch and prepare the datasets not prepared yet (downloads), so every card gets its picture.")
@click.option("-n", "per_class", type=click.IntRange(min=1), default=3, show_default=True, help="Examples per class in each picture.")
def catalog_cmd(names: tuple[str, ...], folder: Path, fetch: bool, per_class: int) -> None:
    """Write a static HTML catalog of the installed datasets (default: all), searchable, offline.

    \b
    Each card shows the description, license, citation, homepage, features, splits and their
    counts, the default model and training settings, and a `dsreg preview` picture. Nothing is
    downloaded unless --fetch is given: a dataset not prepared says `dsreg fetch NAME` instead of
    a picture. Plugins that failed to load are listed at the top. Open DIR/index.html in a browser;
    DIR/index.html?q=WORDS opens it filtered.
    """
    from .catalog_page import build_catalog

    catalog = build_catalog(folder, list(names) or None, fetch=fetch, per_class=per_class)
    pictures = sum(card.picture is not None for card in catalog.cards)
    counts = [_count(len(catalog.cards), "dataset"), _count(pictures, "picture")]
    if catalog.failures:
        counts.append(_count(len(catalog.failures), "plugin failure") + " listed")
    click.echo(f"wrote {catalog.index} ({', '.join(counts)})")
    for card in catalog.cards:
        for problem in (card.fetch_error, card.error):
            if problem:
                click.echo(f"{card.name}: {problem}", err=True)
    if any(card.fetch_error for card in catalog.cards):
        raise click.exceptions.Exit(1)
