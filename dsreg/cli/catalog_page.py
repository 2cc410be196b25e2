"""The static site ``dsreg catalog --html DIR`` writes: a card per installed dataset, a search box, plugin failures.

The page is ``catalog_assets/index.html`` and one ``card.html`` per dataset, filled with
``string.Template``; every value is escaped here (``html.escape``) before it goes in, so a
description or citation holding markup shows as text. ``style.css`` and ``search.js`` are copied
next to ``index.html`` and each picture is a PNG under ``previews/``: the page loads nothing from the
network. Pictures come from ``dsreg preview`` and need a prepared split; nothing is downloaded unless
``fetch=True``, and a dataset that is not prepared says how to fetch it instead.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlparse

from .. import api
from ..errors import DsregError
from ..plugins import format_failure, get_registry

__all__ = ["Card", "Catalog", "build_catalog", "render_page"]

ASSETS = Path(__file__).with_name("catalog_assets")
COPIED = ("style.css", "search.js")  # served next to index.html as they are


@dataclass
class Card:
    """What one dataset's card shows; ``picture`` is relative to the site, ``error`` says what went wrong."""

    name: str
    plugin: str
    version: str = ""
    task: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""
    license: str = ""
    homepage: str = ""
    citation: str = ""
    features: dict[str, str] = field(default_factory=dict)  # column -> description
    splits: dict[str, int | None] = field(default_factory=dict)  # split -> examples (None: not prepared)
    training: dict[str, Any] = field(default_factory=dict)  # the builder's train_defaults
    model: str | None = None  # the model `dsreg train NAME` picks
    picture: str | None = None
    error: str | None = None  # why the card is incomplete (a broken builder, a picture that failed)
    fetch_error: str | None = None  # why ``fetch=True`` could not prepare it

    @property
    def prepared(self) -> bool:
        return any(count is not None for count in self.splits.values())


@dataclass
class Catalog:
    """The site written into ``folder``: its cards and the plugins that failed to load."""

    folder: Path
    cards: list[Card]
    failures: list[str]

    @property
    def index(self) -> Path:
        return self.folder / "index.html"


def _problem(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DsregError) else f"{type(exc).__name__}: {exc}"


def _card(name: str, folder: Path, *, fetch: bool, per_class: int) -> Card:
    """Gather one dataset's card, drawing its picture into ``folder/previews`` when a split is prepared."""
    registry = get_registry()
    entry = registry.get(name)
    card = Card(name, entry.plugin.name, aliases=entry.aliases)
    # A plugin's bug in one dataset must cost that card only, not the whole catalog: any exception is told on it.
    try:
        builder = entry.builder()
        inf = api.info(name)
        if fetch and not inf.cached:
            try:
                inf = api.fetch(name, quiet=True)
            except Exception as exc:  # shown on the card; the command exits non-zero
                card.fetch_error = f"fetch failed: {_problem(exc)}"
                inf = api.info(name)
        card.training = builder.get_train_defaults()
    except Exception as exc:  # see above
        card.error = _problem(exc)
        return card
    card.version, card.task, card.description = inf.version, inf.task, inf.description.strip()
    card.license, card.homepage, card.citation = inf.license, inf.homepage, inf.citation.strip()
    card.features = {column: feature.describe() for column, feature in inf.features.items()}
    counts = (inf.manifest or {}).get("splits", {})
    card.splits = {s: counts[s]["examples"] if s in inf.ready_splits else None for s in inf.splits}
    models = registry.models_for(inf.task)
    card.model = card.training.get("model") or (models[0].name if models else None)
    if inf.ready_splits:
        card.picture = _draw(card, inf.ready_splits[0], folder, per_class)
    return card


def _draw(card: Card, split: str, folder: Path, per_class: int) -> str | None:
    """Draw ``split`` of the card's dataset into ``previews/NAME.png``; return that path, or None (error on the card)."""
    from .preview import preview

    relative = f"previews/{card.name}.png"
    try:
        preview(card.name, split, n=per_class, output=folder / relative)
    except Exception as exc:  # a picture that cannot be drawn is told on the card
        card.error = f"no picture: {_problem(exc)}"
        return None
    return relative


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _homepage(url: str) -> str:
    """A link for an http(s) homepage; any other value (a ``javascript:`` URL included) is shown as text."""
    if not url:
        return "-"
    if urlparse(url).scheme in ("http", "https"):
        return f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(url)}</a>'
    return _e(url)


def _splits(card: Card) -> str:
    rows = []
    for split, count in card.splits.items():
        if count is None:
            cell = f'<td class="todo">not prepared (<code>dsreg fetch {_e(card.name)} --split {_e(split)}</code>)</td>'
        else:
            cell = f'<td class="count">{count:,} examples</td>'
        rows.append(f"<tr><td>{_e(split)}</td>{cell}</tr>")
    return "".join(rows) or "<tr><td>-</td></tr>"


def _training(card: Card) -> str:
    model = f'model <code class="model">{_e(card.model)}</code>' if card.model else "no model registered for this task"
    settings = "".join(f" · {_e(key)} <code>{_e(json.dumps(value))}</code>" for key, value in card.training.items() if key != "model")
    return model + settings


def _picture(card: Card) -> str:
    if card.picture is not None:
        return (
            f'<img src="{_e(card.picture)}" alt="examples of {_e(card.name)} drawn by dsreg preview" loading="lazy">'
            f"<figcaption>dsreg preview {_e(card.name)}</figcaption>"
        )
    error = "".join(f'<p class="error">{_e(e)}</p>' for e in (card.fetch_error, card.error) if e)
    if card.prepared or not card.splits:  # prepared but not drawn, or its builder failed before saying its splits
        return f'<div class="missing">{error or "no picture"}</div>'
    return f'<div class="missing">not prepared — <code>dsreg fetch {_e(card.name)}</code>{error}</div>'


def _card_html(card: Card, template: Template) -> str:
    search = " ".join([card.name, *card.aliases, card.task, card.description]).lower()
    aliases = f" · also {', '.join(card.aliases)}" if card.aliases else ""
    return template.substitute(
        anchor=_e(card.name),
        search=_e(search),
        name=_e(card.name),
        version=_e(card.version),
        task=_e(card.task or "no task"),
        plugin=_e(card.plugin),
        aliases=_e(aliases),
        description=_e(card.description or "(no description)"),
        license=_e(card.license or "-"),
        homepage=_homepage(card.homepage),
        features="".join(f"<li><code>{_e(k)}</code>: {_e(v)}</li>" for k, v in card.features.items()) or "<li>-</li>",
        splits=_splits(card),
        training=_training(card),
        citation=_e(card.citation or "-"),
        picture=_picture(card),
    )


def render_page(cards: list[Card], failures: list[str], written: datetime | None = None) -> str:
    """Return ``index.html`` for ``cards`` and the plugin ``failures`` (one line each)."""
    page = Template((ASSETS / "index.html").read_text(encoding="utf-8"))
    card = Template((ASSETS / "card.html").read_text(encoding="utf-8"))
    prepared = sum(c.prepared for c in cards)
    summary = f"{len(cards)} dataset{'s' * (len(cards) != 1)}, {prepared} prepared"
    block = ""
    if failures:
        summary += f", {len(failures)} plugin{'s' * (len(failures) != 1)} failed to load"
        items = "".join(f"<li>{_e(line)}</li>" for line in failures)
        block = (
            f'<section class="failures"><h2>{len(failures)} plugin{"s" * (len(failures) != 1)} failed to load '
            f"(<code>dsreg plugins</code>)</h2><ul>{items}</ul></section>"
        )
    written = written or datetime.now(timezone.utc)
    return page.substitute(
        summary=_e(summary),
        written=_e(written.strftime("%Y-%m-%d %H:%M UTC")),
        total=len(cards),
        failures=block,
        cards="\n".join(_card_html(c, card) for c in cards),
    )


def build_catalog(folder: str | Path, names: list[str] | None = None, *, fetch: bool = False, per_class: int = 3) -> Catalog:
    """Write the catalog site of ``names`` (default: every registered dataset) into ``folder``; return it.

    Nothing is downloaded unless ``fetch``: then datasets not yet prepared are fetched first.
    """
    registry = get_registry()
    wanted = [registry.get(n).name for n in names] if names else registry.names()  # unknown names fail first
    folder = Path(folder).expanduser()
    (folder / "previews").mkdir(parents=True, exist_ok=True)
    cards = [_card(name, folder, fetch=fetch, per_class=per_class) for name in wanted]
    failures = [format_failure(record) for record in registry.failures()]
    for asset in COPIED:
        shutil.copyfile(ASSETS / asset, folder / asset)
    catalog = Catalog(folder, cards, failures)
    catalog.index.write_text(render_page(cards, failures), encoding="utf-8")
    return catalog
