"""Regenerate dsreg_glyphs/data/glyphs.zip (byte for byte): python make_data.py

Each digit's 5x7 bitmap is scaled 2x into a 16x16 image at a random offset, with random stroke
brightness and background noise; 20 train and 5 test images per digit, as PNGs in a zip laid out
``<split>/<digit>/<n>.png``. The sha256 printed goes into dsreg_glyphs/__init__.py.
"""

from __future__ import annotations

import hashlib
import io
import random
import zipfile
from pathlib import Path

from PIL import Image

from dsreg_glyphs.font import DIGITS

OUT = Path(__file__).parent / "dsreg_glyphs" / "data" / "glyphs.zip"
COUNTS = {"train": 20, "test": 5}


def glyph(digit: str, rng: random.Random) -> bytes:
    """Return one 16x16 grayscale PNG of ``digit``."""
    pixels = [[rng.randrange(0, 40) for _ in range(16)] for _ in range(16)]
    dx, dy, ink = rng.randrange(0, 7), rng.randrange(0, 3), rng.randrange(170, 256)
    for y, row in enumerate(DIGITS[digit]):
        for x, on in enumerate(row):
            if on:
                for yy in (2 * y + dy, 2 * y + dy + 1):
                    for xx in (2 * x + dx, 2 * x + dx + 1):
                        pixels[yy][xx] = ink
    image = Image.frombytes("L", (16, 16), bytes(v for row in pixels for v in row))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    rng = random.Random(2024)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for split, count in COUNTS.items():
            for digit in DIGITS:
                for n in range(count):
                    # A fixed timestamp keeps the archive, and so its sha256, reproducible.
                    zf.writestr(zipfile.ZipInfo(f"{split}/{digit}/{n:04d}.png", (2024, 1, 1, 0, 0, 0)), glyph(digit, rng))
    OUT.write_bytes(buf.getvalue())
    print(f"{OUT}: size={len(buf.getvalue())} sha256={hashlib.sha256(buf.getvalue()).hexdigest()}")


if __name__ == "__main__":
    main()
