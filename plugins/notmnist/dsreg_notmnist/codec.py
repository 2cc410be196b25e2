"""Decoding and batching: PNG members to 1×28×28 uint8 arrays, idx files to arrays, and the collate.

``decode_png`` is the pure function the core maps over its process pool while one process streams
the archive; it raises ``dsreg.Skip`` for members that cannot be images. Heavy imports (numpy,
Pillow, torch) happen inside the functions.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import dsreg
from dsreg.errors import ArchiveError

__all__ = ["PNG_SIGNATURE", "decode_png", "pixel_hash", "read_idx", "normalize", "SHAPE"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHAPE = (1, 28, 28)


def decode_png(record: tuple[bytes, int]) -> dict[str, Any]:
    """Decode ``(png bytes, label)`` to ``{"image": uint8[1, 28, 28], "label": label}``; raise Skip if it is no 28×28 PNG."""
    data, label = record
    if not data:
        raise dsreg.Skip("empty file")
    if not data.startswith(PNG_SIGNATURE):
        raise dsreg.Skip(f"not a PNG file (starts with {data[:8]!r})")
    import numpy as np
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data), formats=("PNG",))
        size = image.size
        if size == (28, 28):
            image.load()
    except Exception as exc:
        raise dsreg.Skip(f"truncated or damaged PNG ({type(exc).__name__}: {exc})") from None
    if size != (28, 28):
        raise dsreg.Skip(f"wrong size {size[0]}x{size[1]}, expected 28x28")
    if image.mode != "L":
        image = image.convert("L")
    return {"image": np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(SHAPE), "label": label}


def pixel_hash(image: Any) -> bytes:
    """Return a 128-bit digest of an image's pixels: equal digests mean equal pixels."""
    import numpy as np

    return hashlib.blake2b(memoryview(np.ascontiguousarray(image)).cast("B"), digest_size=16).digest()


_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}


def read_idx(path: str | Path, ndim: int, label: str) -> Any:
    """Read an idx file (gzip-compressed or plain) of uint8 with ``ndim`` dimensions into a numpy array."""
    import numpy as np

    from dsreg.fetching.archive import open_compressed

    try:
        with open_compressed(path) as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ArchiveError(f"{label} cannot be read ({exc}); fetch it again with `--force`") from exc
    header = 4 + 4 * ndim
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != _IDX_MAGIC[ndim] or len(raw) < header:
        found = f"0x{magic:08x}" if magic is not None else "nothing"
        raise ArchiveError(f"{label} is not an idx file of uint8 with {ndim} dimension(s) (magic {found}); fetch it again with `--force`")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise ArchiveError(f"{label} holds {len(raw):,} bytes but its header {dims} says {expected:,}; fetch it again with `--force`")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def normalize(batch: Any) -> dict[str, Any]:
    """Collate a batch: float32 images scaled as (x - 127.5) / 255 and int64 labels (the course recipe)."""
    import torch

    from dsreg.store.collate import stack

    out = stack(batch)
    out["image"] = out["image"].to(torch.float32).sub_(127.5).div_(255.0)
    out["label"] = out["label"].to(torch.int64)
    return out
