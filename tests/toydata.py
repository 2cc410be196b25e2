"""A small dataset whose one file the core's tests build and serve themselves."""

from __future__ import annotations

import hashlib
from typing import Any

import dsreg


def blob(n: int = 300_000, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (big enough to be cut and resumed)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def make_builder(
    data: bytes,
    *,
    name: str = "toy",
    urls: tuple[str, ...] = (),
    checksum: str = "sha256",
    pin: bool = False,
    size: bool = True,
    **attrs: Any,
) -> type[dsreg.Builder]:
    """Return a Builder over one file ``toy.bin``: every 4 bytes are one 1x2x2 uint8 image."""
    file_kwargs: dict[str, Any] = {"size": len(data) if size else None}
    if pin:
        file_kwargs["pin_on_first_download"] = True
    elif checksum == "md5":
        file_kwargs["md5"] = hashlib.md5(data).hexdigest()
    else:
        file_kwargs["sha256"] = hashlib.sha256(data).hexdigest()

    class Toy(dsreg.Builder):
        version = "1.0.0"
        description = "Four-byte images cut from one file."
        homepage = "https://example.invalid/toy"
        license = "CC0-1.0"
        citation = "none"
        task = "image-classification"
        features = {"image": dsreg.Tensor((1, 2, 2), "uint8"), "label": dsreg.ClassLabel(("even", "odd"))}
        splits = ("train", "test")
        files = (dsreg.File("toy.bin", urls=urls, **file_kwargs),)

        def generate(self, split, files, **config):
            import numpy as np

            raw = np.frombuffer(files["toy.bin"].read_bytes(), dtype=np.uint8)
            rows = raw[: len(raw) // 4 * 4].reshape(-1, 1, 2, 2)
            cut = len(rows) * 4 // 5
            lo, hi = (0, cut) if split == "train" else (cut, len(rows))
            for i in range(lo, hi):
                yield f"{i}", {"image": rows[i], "label": int(rows[i, 0, 0, 0]) % 2}

    Toy.name = name
    for key, value in attrs.items():
        setattr(Toy, key, value)
    # Make the class importable by name, so Datasets holding it pickle like a real plugin's.
    Toy.__qualname__ = Toy.__name__ = f"Toy_{name.replace('-', '_')}_{id(Toy):x}"
    globals()[Toy.__qualname__] = Toy
    return Toy
