"""dsreg-glyphs: an example third-party dsreg plugin.

It registers through all three hooks, as any plugin may:

- ``register_datasets``: ``glyphs``, 16x16 grayscale digits read from a zip of PNGs (decoded in the
  core's process pool through a module-level ``decode`` function), with one config parameter;
- ``register_models``: ``glyphs-linear``, a linear classifier (``dsreg train glyphs -m glyphs-linear``);
- ``register_commands``: ``dsreg glyphs-show``, which prints an example as text.

Module import stays light (``dsreg list`` imports it): numpy, PIL and torch load inside functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dsreg

__all__ = ["Glyphs", "decode", "register_datasets", "register_models", "register_commands"]

#: Shipped in the package so the example runs offline; a real plugin lists its https mirrors here.
DATA = Path(__file__).with_name("data") / "glyphs.zip"
DIGITS = tuple("0123456789")


def decode(record: tuple[bytes, str, bool]) -> dict[str, Any]:
    """Decode one ``(png bytes, class folder, invert)`` record (runs in a worker process, so module-level)."""
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    data, folder, invert = record
    if folder not in DIGITS:
        raise dsreg.Skip(f"unknown class folder {folder!r}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise dsreg.Skip(f"not a readable image ({exc})") from None
    if pixels.shape != (16, 16):
        raise dsreg.Skip(f"image is {pixels.shape[1]}x{pixels.shape[0]}, not 16x16")
    return {"image": (255 - pixels if invert else pixels)[None], "label": DIGITS.index(folder)}


class Glyphs(dsreg.Builder):
    """Digits 0-9 drawn from a 5x7 bitmap font at random offsets, with noise (see make_data.py)."""

    name = "glyphs"
    version = "1.0.0"
    description = "250 noisy 16x16 grayscale digit glyphs (200 train, 50 test), an example dsreg plugin's data."
    homepage = "https://github.com/dsreg/dsreg/tree/main/examples/plugin-example"
    license = "CC0-1.0"
    citation = "none"
    task = "image-classification"
    features = {"image": dsreg.Tensor((1, 16, 16), "uint8"), "label": dsreg.ClassLabel(DIGITS)}
    splits = ("train", "test")
    files = (
        dsreg.File(
            "glyphs.zip",
            size=99781,
            sha256="111f6257fb34cfd6325c4474ec08c48cd644291d40605b8b7ff4143d4b624c47",
            urls=(DATA.as_uri(),),
        ),
    )
    #: ``invert=True`` stores white-on-black glyphs as black-on-white (a new prepared copy: config is in the cache key).
    config = {"invert": False}
    decode = staticmethod(decode)
    #: What ``dsreg train glyphs`` uses with no options (about 96 % test accuracy; see the README).
    #: 200 examples need small batches and many epochs; glyphs shifted by up to 6 pixels need a CNN.
    train_defaults = {"model": "image-cnn", "epochs": 15, "batch_size": 16, "lr": 3e-3}

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        """Yield raw ``(png, class folder, invert)`` records of ``split``; ``decode`` turns them into examples."""
        from dsreg.fetching.archive import members

        for path, data in members(files["glyphs.zip"]):
            parts = path.split("/")
            if len(parts) != 3 or parts[0] != split or not parts[2].endswith(".png"):
                continue
            yield path, (data, parts[1], bool(self.params["invert"]))


def glyphs_linear(info: Any, sample: dict[str, Any], **options: Any) -> Any:
    """Build the linear classifier (torch is imported only here, when a model is asked for)."""
    from .model import GlyphLinear

    return GlyphLinear(tuple(sample["image"].shape[1:]), len(info.classes))


@dsreg.hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    """Register the glyphs dataset (also reachable as ``digit-glyphs``)."""
    register(Glyphs, aliases=("digit-glyphs",))


@dsreg.hookimpl
def register_models(register: Callable[..., None]) -> None:
    """Register a linear model for image classification (the core's image-mlp stays the default)."""
    register("glyphs-linear", glyphs_linear, tasks=("image-classification",))


@dsreg.hookimpl
def register_commands(cli: Any) -> None:
    """Add ``dsreg glyphs-show``."""
    import click

    @cli.command("glyphs-show")
    @click.option("--split", default="test", show_default=True)
    @click.option("--index", default=0, show_default=True, help="Which example of the split.")
    def glyphs_show(split: str, index: int) -> None:
        """Print one glyph as text, with its label."""
        ds = dsreg.load("glyphs", split=split)
        example = ds[index]
        click.echo(f"{split}[{index}]: label {ds.classes[int(example['label'])]}")
        for row in example["image"][0].tolist():
            click.echo("".join("#" if v > 127 else "." for v in row))
