"""The notMNIST recipe offline: letters A–J rendered from the fonts on this machine, with seeded jitter.

``find_fonts()`` lists every TrueType/OpenType file in the usual font folders (and matplotlib's
bundled DejaVu when matplotlib is installed); ``Renderer`` draws one 28×28 white-on-black glyph
per call. Pillow and numpy are imported only when rendering starts.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import random
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["LETTERS", "FONT_DIRS", "find_fonts", "fonts_fingerprint", "Renderer", "BUILTIN"]

LETTERS = "ABCDEFGHIJ"
#: Where fonts usually live; missing folders are ignored.
FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "~/Library/Fonts",
    os.path.join(os.environ.get("WINDIR", r"C:\Windows"), "Fonts") if sys.platform == "win32" else "",
)
_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
#: The name recorded for Pillow's built-in font, used when no font file is usable.
BUILTIN = "<pillow built-in>"
_RENDER_SIZE = 64  # glyphs are drawn large, then fitted into 28×28, as the original recipe did


def _font_dirs() -> list[Path]:
    dirs = [Path(d).expanduser() for d in FONT_DIRS if d]
    spec = importlib.util.find_spec("matplotlib")  # found without importing matplotlib
    if spec is not None and spec.origin:
        dirs.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf")
    return dirs


@functools.lru_cache(maxsize=1)
def find_fonts() -> tuple[str, ...]:
    """Return the sorted paths of every TrueType/OpenType font file found (symlinks resolved, no repeats).

    A file named like one already found (e.g. matplotlib's copy of a system DejaVu font) is
    taken to be the same font: only the first path in sorted order is kept, so no font counts twice.
    """
    found: set[str] = set()
    for root in _font_dirs():
        if not root.is_dir():
            continue
        for dirpath, _dirs, names in os.walk(root, followlinks=False):
            for name in names:
                if name.lower().endswith(_SUFFIXES):
                    path = os.path.realpath(os.path.join(dirpath, name))
                    if os.path.isfile(path):
                        found.add(path)
    unique: dict[str, str] = {}
    for path in sorted(found):
        unique.setdefault(os.path.basename(path).lower(), path)
    return tuple(sorted(unique.values()))


def fonts_fingerprint(fonts: Sequence[str]) -> str:
    """Return a digest of the font files (path and size), so new fonts mean a new prepared store."""
    digest = hashlib.sha256()
    for path in fonts:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = -1
        digest.update(f"{path}\0{size}\n".encode())
    return digest.hexdigest()[:16]


class Renderer:
    """Draw letters with jitter (scale, shift, small rotation, stroke) from a list of fonts."""

    def __init__(self, fonts: Sequence[str]) -> None:
        from PIL import ImageFont

        self._ImageFont = ImageFont
        #: (name, font) of every font that can draw all ten letters; unusable ones are listed apart.
        self.fonts: list[tuple[str, Any]] = []
        self.unusable: list[str] = []
        for path in fonts:
            font = self._load(path)
            if font is None:
                self.unusable.append(path)
            else:
                self.fonts.append((path, font))
        if not self.fonts:
            self.fonts.append((BUILTIN, self._builtin()))

    def _builtin(self) -> Any:
        try:  # Pillow >= 10.1 with FreeType: a scalable font
            return self._ImageFont.load_default(size=_RENDER_SIZE)
        except TypeError:  # older Pillow: a small bitmap font, scaled up when fitted
            return self._ImageFont.load_default()

    def _load(self, path: str) -> Any:
        try:
            font = self._ImageFont.truetype(path, _RENDER_SIZE)
        except (OSError, ValueError):
            return None
        try:
            for letter in LETTERS:
                left, top, right, bottom = font.getbbox(letter)
                if right - left < 2 or bottom - top < 2:
                    return None
        except (OSError, ValueError):
            return None
        return font

    def render(self, letter: str, font_index: int, rng: random.Random) -> Any:
        """Return one 28×28 uint8 numpy array: ``letter`` in font ``font_index``, jittered by ``rng``."""
        import numpy as np
        from PIL import Image, ImageDraw

        font = self.fonts[font_index % len(self.fonts)][1]
        stroke = rng.choice((0, 0, 1, 2))
        angle = rng.uniform(-10.0, 10.0)
        fill = rng.uniform(0.70, 1.0)  # share of the 28-pixel box the longer side of the glyph spans
        dx, dy = rng.randint(-2, 2), rng.randint(-2, 2)

        probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        left, top, right, bottom = probe.textbbox((0, 0), letter, font=font, stroke_width=stroke)
        pad = 4
        canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
        ImageDraw.Draw(canvas).text((pad - left, pad - top), letter, fill=255, font=font,
                                    stroke_width=stroke, stroke_fill=255)
        canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=0)
        box = canvas.getbbox()
        if box is not None:
            canvas = canvas.crop(box)
        w, h = canvas.size
        scale = fill * 28 / max(w, h)
        size = (max(1, min(28, round(w * scale))), max(1, min(28, round(h * scale))))
        glyph = canvas.resize(size, Image.Resampling.LANCZOS)
        out = Image.new("L", (28, 28), 0)
        x = min(max(0, (28 - size[0]) // 2 + dx), 28 - size[0])
        y = min(max(0, (28 - size[1]) // 2 + dy), 28 - size[1])
        out.paste(glyph, (x, y))
        return np.asarray(out, dtype=np.uint8)
