"""``dsreg new-plugin NAME [--kind text|image|audio|files] [--dir PATH]``: a working plugin package to start from.

The package it writes installs with ``pip install -e``, passes its own tests untouched (they run
``dsreg.testing.check_builder``), shows up in ``dsreg list`` and trains with ``dsreg train``. Its
data ships inside the package, so everything works offline; replace it (or point ``urls`` at where
your data is published) and edit ``generate``. One kind per way data is usually published:

    text   a CSV of labelled sentences (the default)
    image  a tar.gz of PNGs in ``split/class/`` folders, decoded in the core's process pool (Pillow)
    audio  a tar.gz of WAV clips in ``split/class/`` folders, of varying length (padded per batch)
    files  one binary file per split of fixed-size records, each split fetching only its own file

The files written are the templates in ``dsreg/cli/templates/`` (``common/`` and one folder per
kind), rendered with ``string.Template``: ``${name}``, ``${dist}``, ``${package}``, ``${cls}``,
``${files}`` (the ``dsreg.File`` lines with the sample data's sizes and sha256) and ``${dependencies}``.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template

import click

from ..builder import NAME_PATTERN
from ..errors import ConfigError
from ..testing.media import fake_wav, png
from ..testing.trees import pack
from .app import CONTEXT

__all__ = ["new_plugin_cmd", "write_plugin", "sample_csv", "sample_images", "sample_clips", "sample_records", "KINDS"]

_SUBJECTS = ("the film", "this café", "the hotel", "our trip", "the concert", "that book", "the garden", "the service")
_FILLERS = ("truly", "rather", "quite", "simply", "honestly", "mostly")
_WORDS = {
    "positive": ("wonderful", "bright", "delightful", "charming", "superb", "gentle", "lovely", "brilliant"),
    "negative": ("dreadful", "gloomy", "tedious", "clumsy", "awful", "bitter", "dull", "broken"),
}


def sample_csv(train: int = 120, test: int = 40, seed: int = 0) -> bytes:
    """Return the template's data: ``split,text,label`` rows of short reviews, no sentence twice."""
    rng = random.Random(seed)
    seen: set[str] = set()
    lines = ["split,text,label"]
    for split, count in (("train", train), ("test", test)):
        made = 0
        while made < count:
            label = ("negative", "positive")[made % 2]
            words = _WORDS[label]
            text = f"{rng.choice(_SUBJECTS)} was {rng.choice(_FILLERS)} {rng.choice(words)}"
            if rng.random() < 0.5:
                text += f" and {rng.choice(words)}"
            if text in seen:
                continue
            seen.add(text)
            lines.append(f"{split},{text.capitalize()},{label}")
            made += 1
    return ("\n".join(lines) + "\n").encode("utf-8")


def _bars(rng: random.Random, label: str, size: int) -> bytes:
    """Return ``size``x``size`` grey pixels: one dark bar, horizontal or vertical, on a noisy light ground."""
    at, width = rng.randrange(1, size - 4), rng.randrange(2, 4)
    pixels = bytearray(rng.randrange(170, 256) for _ in range(size * size))
    for y in range(size):
        for x in range(size):
            if at <= (y if label == "horizontal" else x) < at + width:
                pixels[y * size + x] = rng.randrange(0, 60)
    return bytes(pixels)


def sample_images(name: str, per_class: tuple[int, int] = (30, 10), seed: int = 0) -> dict[str, bytes]:
    """Return the image template's data: ``{name}.tar.gz`` of 16x16 PNGs in ``split/class/i.png``."""
    rng = random.Random(seed)
    tree = {
        f"{split}/{label}/{i}.png": png(_bars(rng, label, 16), 16, 16)
        for split, count in zip(("train", "test"), per_class)
        for label in ("horizontal", "vertical")
        for i in range(count)
    }
    return {f"{name}.tar.gz": pack(tree, "tar.gz")}


def sample_clips(name: str, per_class: tuple[int, int] = (24, 8), seed: int = 0) -> dict[str, bytes]:
    """Return the audio template's data: ``{name}.tar.gz`` of 8 kHz WAV tones, low or high, 0.1-0.25 s."""
    rng = random.Random(seed)
    pitch = {"low": (200.0, 400.0), "high": (1000.0, 2000.0)}
    tree = {
        f"{split}/{label}/{i}.wav": fake_wav(
            rng.uniform(0.1, 0.25), rate=8000, seed=rng.randrange(1 << 30), freq=rng.uniform(*pitch[label])
        )
        for split, count in zip(("train", "test"), per_class)
        for label in ("low", "high")
        for i in range(count)
    }
    return {f"{name}.tar.gz": pack(tree, "tar.gz")}


def sample_records(train: int = 60, test: int = 20, seed: int = 0) -> dict[str, bytes]:
    """Return the files template's data: ``train.bin`` and ``test.bin``, records of a label byte and 8x8 pixels."""
    rng = random.Random(seed)
    out = {}
    for split, count in (("train", train), ("test", test)):
        out[f"{split}.bin"] = b"".join(bytes([i % 2]) + _bars(rng, ("horizontal", "vertical")[i % 2], 8) for i in range(count))
    return out


#: Each kind: its sample data (from the dataset's name) and the distribution's dependencies.
KINDS: dict[str, tuple[Callable[[str], dict[str, bytes]], str]] = {
    "text": (lambda name: {f"{name}.csv": sample_csv()}, '"dsreg"'),
    "image": (sample_images, '"dsreg", "Pillow>=10"'),
    "audio": (sample_clips, '"dsreg"'),
    "files": (lambda name: sample_records(), '"dsreg"'),
}


def _names(name: str) -> dict[str, str]:
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"plugin name {name!r} is invalid; use lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    ident = re.sub(r"[^a-z0-9_]", "_", name)
    cls = "".join(part.capitalize() for part in re.split(r"[^a-z0-9]+", name) if part)
    if cls[0].isdigit():
        cls = f"Dataset{cls}"
    return {"name": name, "dist": f"dsreg-{name}", "package": f"dsreg_{ident}", "cls": cls}


def _file_entries(data: dict[str, bytes]) -> str:
    """Return the ``dsreg.File`` lines of the Builder's ``files`` for the shipped ``data``."""
    return "".join(
        f'        dsreg.File("{file}", size={len(blob)}, sha256="{hashlib.sha256(blob).hexdigest()}",\n'
        f'                   urls=((DATA / "{file}").as_uri(),)),\n'
        for file, blob in data.items()
    )


def _template(*parts: str) -> Template:
    return Template(resources.files(__package__).joinpath("templates", *parts).read_text(encoding="utf-8"))


def write_plugin(name: str, parent: str | Path = ".", *, kind: str = "text", dest: str | Path | None = None) -> Path:
    """Write the plugin package for dataset ``name``; return its folder.

    The folder is ``dest`` when given (it may exist if empty), else ``parent/name``. ``kind`` picks
    the template: ``text`` (default), ``image``, ``audio`` or ``files`` (see ``KINDS``).
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown plugin kind {kind!r}; choose one of {', '.join(KINDS)}")
    names = _names(name)
    target = Path(dest) if dest is not None else Path(parent) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not empty; pick another --dir or name")
    make_data, dependencies = KINDS[kind]
    data = make_data(name)
    values = {**names, "files": _file_entries(data).rstrip("\n"), "dependencies": dependencies}
    package = target / names["package"]
    files = {
        target / "pyproject.toml": _template("common", "pyproject.toml.tmpl"),
        target / "README.md": _template(kind, "README.md.tmpl"),
        package / "__init__.py": _template(kind, "__init__.py.tmpl"),
        target / "tests" / f"test_{names['package'][len('dsreg_') :]}.py": _template(kind, "test.py.tmpl"),
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values), encoding="utf-8")
    (package / "data").mkdir(exist_ok=True)
    for file, blob in data.items():
        (package / "data" / file).write_bytes(blob)
    return target


@click.command("new-plugin", context_settings=CONTEXT)
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(list(KINDS)),
    default="text",
    show_default=True,
    help="What the dataset holds: a CSV of sentences (text), PNGs (image), WAV clips (audio), or one binary file per split (files).",
)
@click.option(
    "--dir",
    "dest",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder to write the package into (created; must be empty if it exists). Default: ./NAME",
)
def new_plugin_cmd(name: str, kind: str, dest: str | None) -> None:
    """Write a working plugin package for a new dataset NAME (pyproject, Builder, data, tests, README)."""
    target = write_plugin(name, kind=kind, dest=dest)
    names = _names(name)
    click.echo(f"wrote {names['dist']} ({kind}) to {target}")
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        click.echo(f"  {path.relative_to(target)}")
    click.echo("next:")
    click.echo(f'  pip install -e "{target}[test]"')
    click.echo(f"  pytest {target}")
    click.echo(f"  dsreg train {name} --epochs 1")
