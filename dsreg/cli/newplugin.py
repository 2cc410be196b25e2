"""``dsreg new-plugin NAME``: write a complete, working plugin package to start from.

The package it writes installs with ``pip install -e``, passes its own tests untouched (they run
``dsreg.testing.check_builder``), shows up in ``dsreg list`` and trains with ``dsreg train``. Its
Builder reads a small CSV of labelled sentences shipped inside the package, so everything works
offline; replace the CSV (or point ``urls`` at where your data is published) and edit ``generate``.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from string import Template

import click

from ..builder import NAME_PATTERN
from ..errors import ConfigError

__all__ = ["new_plugin_cmd", "write_plugin", "sample_csv"]

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


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "${dist}"
version = "0.1.0"
description = "The ${name} dataset for dsreg."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["dsreg"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This line is the whole plugin registration: dsreg finds the package through the group "dsreg".
[project.entry-points.dsreg]
${name} = "${package}"

[tool.setuptools.packages.find]
include = ["${package}*"]

[tool.setuptools.package-data]
${package} = ["data/*.csv"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_MODULE = '''\
"""${dist}: the ``${name}`` dataset for dsreg.

Keep this module light: ``dsreg list`` imports it, so no torch, numpy or PIL at module level
(import them inside the functions that need them).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator, Mapping

import dsreg

__all__ = ["${cls}", "CLASSES", "encode", "register_datasets"]

#: The data ships inside this package so everything works offline. Once you publish the file,
#: put its https URL first in ``urls`` below (keep size and sha256: the core verifies every copy).
DATA = Path(__file__).with_name("data") / "${name}.csv"
CLASSES = ("negative", "positive")


def encode(text: str) -> list[int]:
    """Return the token ids of ``text``: its UTF-8 bytes (256 ids). Swap in your own tokenizer."""
    return list(text.encode("utf-8"))


class ${cls}(dsreg.Builder):
    """Short labelled reviews read from one CSV file (columns split, text, label)."""

    name = "${name}"
    version = "1.0.0"
    description = "Short reviews labelled negative or positive, from one small CSV file."
    homepage = "https://example.org/${name}"
    license = "CC0-1.0"
    citation = "none"
    task = "text-classification"
    features = {
        "text": dsreg.Text(),
        "input_ids": dsreg.Tensor((None,), "int64"),  # None: the length varies; collate pads it
        "label": dsreg.ClassLabel(CLASSES),
    }
    splits = ("train", "test")
    files = (
        dsreg.File(
            "${name}.csv",
            size=${size},
            sha256="${sha256}",
            urls=(DATA.as_uri(),),
        ),
    )
    collate_fn = "pad"  # pads input_ids and adds lengths and attention_mask

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        """Yield ``(key, example)`` for each CSV row of ``split``."""
        self.note("vocab_size", 256)  # tells the default text models how many token ids exist
        with open(files["${name}.csv"], newline="", encoding="utf-8") as fh:
            for row_number, row in enumerate(csv.DictReader(fh), start=2):
                if row["split"] != split:
                    continue
                if not row["text"].strip():
                    yield f"row-{row_number}", dsreg.Skip("empty text")  # recorded in the manifest
                    continue
                yield f"row-{row_number}", {
                    "text": row["text"],
                    "input_ids": encode(row["text"]),
                    "label": row["label"],  # a class name or its index
                }


@dsreg.hookimpl
def register_datasets(register: Any) -> None:
    """Register ${cls} with dsreg."""
    register(${cls})
'''

_TESTS = '''\
"""Tests of ${dist}: the dsreg conformance suite on the shipped file and on fake rows."""

from __future__ import annotations

import random
from importlib import metadata

import pytest

import dsreg
from dsreg.testing import check_builder, fake_text
from ${package} import CLASSES, ${cls}


def fake_csv(rows_per_split: int = 6, seed: int = 0) -> bytes:
    """Return a CSV in the dataset's layout with random sentences."""
    rng = random.Random(seed)
    lines = ["split,text,label"]
    for split in ("train", "test"):
        for i in range(rows_per_split):
            text = fake_text(lines=1, words=6, seed=rng.randrange(1 << 30)).strip()
            lines.append(f"{split},{text},{CLASSES[i % 2]}")
    return ("\\n".join(lines) + "\\n").encode()


def test_conformance_on_the_shipped_file():
    report = check_builder(${cls})
    assert report.splits == {"train": 120, "test": 40}


def test_conformance_on_fake_rows():
    report = check_builder(${cls}, files={"${name}.csv": fake_csv()})
    assert report.splits == {"train": 6, "test": 6}


def test_examples_read_back(dsreg_cache, register):
    register(${cls})
    train = dsreg.load("${name}", split="train")
    example = train[0]
    assert train.classes == list(CLASSES)
    assert bytes(example["input_ids"].tolist()).decode("utf-8") == example["text"]
    batch = next(iter(train.loader(batch_size=4)))
    assert batch["input_ids"].shape == (4, int(batch["lengths"].max()))
    assert batch["attention_mask"].sum() == batch["lengths"].sum()


def _installed() -> bool:
    try:
        metadata.distribution("${dist}")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="${dist} is not pip-installed, so its entry point is not registered")
def test_registered_through_its_entry_point():
    from dsreg.plugins import load_registry

    entry = load_registry().get("${name}")
    assert entry.builder is ${cls} and entry.plugin.dist == "${dist}"
'''

_README = """\
# ${dist}

A [dsreg](https://pypi.org/project/dsreg/) plugin that registers one dataset, `${name}`: short
reviews labelled `negative` or `positive`, read from a CSV file shipped in the package
(`${package}/data/${name}.csv`), so it works offline.

| | |
|---|---|
| task | `text-classification` |
| splits | `train` (120), `test` (40) |
| features | `text` (string), `input_ids` (int64, variable length: UTF-8 bytes), `label` (negative, positive) |
| collate | `pad`: pads `input_ids`, adds `lengths` and `attention_mask` |
| config | none |

## Use

```bash
pip install -e "./${name}[test]"    # from the folder that holds this package
dsreg list                          # shows ${name}
dsreg info ${name}
dsreg train ${name} --epochs 1      # the default text-classification model
pytest ${name}                      # the conformance suite (dsreg.testing.check_builder) and more
```

```python
import dsreg

train = dsreg.load("${name}", split="train")
batch = next(iter(train.loader(batch_size=8, shuffle=True)))
```

## Make it yours

1. Replace `${package}/data/${name}.csv` with your data (or publish it and put its https URL first in
   `urls`), then update `size=` and `sha256=` in `${package}/__init__.py`
   (`python -c "import hashlib,sys; d=open(sys.argv[1],'rb').read(); print(len(d), hashlib.sha256(d).hexdigest())" FILE`).
2. Edit `features`, `generate` and the metadata (description, homepage, license, citation).
3. Keep `tests/` passing: `check_builder` checks metadata, checksums, every split, the features,
   split overlap, collate, pickling, DataLoader workers, offline reloads and one training step.

The plugin contract and every hook are described in dsreg's plugin author guide.
"""


def _names(name: str) -> dict[str, str]:
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"plugin name {name!r} is invalid; use lowercase letters, digits, '-', '_' or '.', starting with a letter or digit")
    ident = re.sub(r"[^a-z0-9_]", "_", name)
    cls = "".join(part.capitalize() for part in re.split(r"[^a-z0-9]+", name) if part)
    if cls[0].isdigit():
        cls = f"Dataset{cls}"
    return {"name": name, "dist": f"dsreg-{name}", "package": f"dsreg_{ident}", "cls": cls}


def write_plugin(name: str, parent: str | Path = ".") -> Path:
    """Write the plugin package for dataset ``name`` into ``parent/name``; return that folder."""
    names = _names(name)
    target = Path(parent) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not empty; pick another --dir or name")
    data = sample_csv()
    values = {**names, "size": str(len(data)), "sha256": hashlib.sha256(data).hexdigest()}
    package = target / names["package"]
    files = {
        target / "pyproject.toml": Template(_PYPROJECT).substitute(values),
        target / "README.md": Template(_README).substitute(values),
        package / "__init__.py": Template(_MODULE).substitute(values),
        target / "tests" / f"test_{names['package'][len('dsreg_'):]}.py": Template(_TESTS).substitute(values),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (package / "data").mkdir(exist_ok=True)
    (package / "data" / f"{name}.csv").write_bytes(data)
    return target


@click.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder to create the package in (as DIR/NAME).")
def new_plugin_cmd(name: str, parent: str) -> None:
    """Write a working plugin package for a new dataset NAME (pyproject, Builder, data, tests, README)."""
    target = write_plugin(name, parent)
    names = _names(name)
    click.echo(f"wrote {names['dist']} to {target}")
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        click.echo(f"  {path.relative_to(target)}")
    click.echo("next:")
    click.echo(f'  pip install -e "{target}[test]"')
    click.echo(f"  pytest {target}")
    click.echo(f"  dsreg train {name} --epochs 1")
