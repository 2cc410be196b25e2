"""Write archives in the real notMNIST layout (``notMNIST_small/<A-J>/<name>.png``), for tests,
demonstrations and benchmarks: glyphs rendered with ``synth.Renderer``, corrupt members on request.

Member names follow the original: base64 of a font file name plus ``.png``, the same name in every
letter folder. Pillow and numpy are imported inside the functions.
"""

from __future__ import annotations

import base64
import io
import random
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .synth import LETTERS, Renderer, find_fonts

__all__ = ["member_name", "png_bytes", "corrupt_bytes", "CORRUPT_KINDS", "render_letters", "write_archive", "make_pair", "Pair"]

#: Kinds of undecodable member ``corrupt_bytes`` makes (what the real archives and the decoder meet).
CORRUPT_KINDS = ("empty", "truncated", "not-png", "wrong-size")


def member_name(index: int) -> str:
    """Return the file name of font ``index``: base64 of a font file name plus ``.png``, as in notMNIST."""
    return base64.b64encode(f"SynthFont-{index:06d}.ttf".encode()).decode() + ".png"


def png_bytes(pixels: Any, compress_level: int = 6) -> bytes:
    """Encode a 28×28 uint8 array as an 8-bit grayscale PNG."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG", compress_level=compress_level)
    return out.getvalue()


def corrupt_bytes(kind: str, good: bytes) -> bytes:
    """Return an undecodable member of ``kind`` (see CORRUPT_KINDS), built from a good PNG."""
    import numpy as np

    if kind == "empty":
        return b""
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "not-png":
        return b"<html><body>404 Not Found</body></html>\n"
    if kind == "wrong-size":
        return png_bytes(np.zeros((32, 32), dtype=np.uint8))
    raise ValueError(f"corrupt kind {kind!r} is not one of {CORRUPT_KINDS}")


def render_letters(per_class: int, seed: int, renderer: Renderer | None = None, seen: set[bytes] | None = None) -> dict[str, list[Any]]:
    """Return ``{letter: [28×28 uint8 arrays]}``, ``per_class`` seeded renders of each letter, all different.

    A render equal to an earlier one (the recipe can repeat itself, e.g. a sans-serif I stretched to
    an all-white box, as in the real set) is drawn again, so the only twins are the ones asked for;
    ``seen`` (pixel bytes, updated) extends that to renders of earlier calls.
    """
    renderer = renderer or Renderer(find_fonts())
    rng = random.Random(f"dsreg-notmnist-testing/{seed}")
    seen = set() if seen is None else seen
    out: dict[str, list[Any]] = {}
    for letter in LETTERS:
        out[letter] = []
        i = 0
        while len(out[letter]) < per_class:
            image = renderer.render(letter, i, rng)
            i += 1
            if image.tobytes() not in seen:
                seen.add(image.tobytes())
                out[letter].append(image)
    return out


def write_archive(path: str | Path, root: str, members: Iterable[tuple[str, str, bytes]]) -> Path:
    """Write a tar.gz holding ``root/<letter>/<name>`` for each ``(letter, name, bytes)``, folders first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = int(time.mktime((2011, 9, 1, 0, 0, 0, 0, 0, 0)))  # fixed, so the same input gives the same bytes

    def entry(name: str, size: int = 0, folder: bool = False) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mtime = stamp
        info.type = tarfile.DIRTYPE if folder else tarfile.REGTYPE
        info.mode = 0o755 if folder else 0o644
        info.size = size
        return info

    with open(path, "wb") as raw, _gzip(raw) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        tar.addfile(entry(root + "/", folder=True))
        seen: set[str] = set()
        for letter, name, data in members:
            if letter not in seen:
                seen.add(letter)
                tar.addfile(entry(f"{root}/{letter}/", folder=True))
            tar.addfile(entry(f"{root}/{letter}/{name}", len(data)), io.BytesIO(data))
    return path


def _gzip(raw: Any) -> Any:
    import gzip

    return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)


@dataclass
class Pair:
    """A generated archive pair: the paths, and what each member holds (for computing expectations)."""

    paths: dict[str, Path]
    #: ``{"small"|"large": {"<letter>/<name>": content id or None for a corrupt member}}``; equal
    #: content ids mean equal pixels (ids look like ``small/A/3`` or ``large/A/17``).
    content: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return next(iter(self.paths.values())).parent


def make_pair(
    folder: str | Path,
    *,
    small_per_class: int = 30,
    large_per_class: int = 120,
    overlap: int = 3,
    twins: int = 4,
    corrupt: Sequence[tuple[str, str, str]] = (("small", "B", "truncated"), ("large", "E", "empty")),
    seed: int = 0,
) -> Pair:
    """Write ``notMNIST_small.tar.gz`` and ``notMNIST_large.tar.gz`` into ``folder``.

    Per class: ``overlap`` large images repeat a small image's pixels (re-encoded, so the bytes
    differ), ``twins`` large images repeat another large image's pixels under a new name, and each
    ``(archive, letter, kind)`` of ``corrupt`` adds one undecodable member after that letter's images.
    """
    folder = Path(folder)
    renderer = Renderer(find_fonts())
    fresh = large_per_class - overlap - twins
    if fresh < twins or small_per_class < overlap:
        raise ValueError("make_pair: too few images per class for the overlap and twins asked for")
    seen: set[bytes] = set()
    small = render_letters(small_per_class, seed, renderer, seen)
    large = render_letters(fresh, seed + 1, renderer, seen)
    out: dict[str, list[tuple[str, str, bytes]]] = {"small": [], "large": []}
    content: dict[str, dict[str, str | None]] = {"small": {}, "large": {}}
    for letter in LETTERS:
        for i, pixels in enumerate(small[letter]):
            out["small"].append((letter, member_name(i), png_bytes(pixels)))
            content["small"][f"{letter}/{member_name(i)}"] = f"small/{letter}/{i}"
        ids = [f"large/{letter}/{i}" for i in range(fresh)]
        ids += [f"small/{letter}/{i}" for i in range(overlap)]  # same pixels as test images
        ids += [f"large/{letter}/{i}" for i in range(twins)]  # same pixels as other large images
        for i, cid in enumerate(ids):
            kind, _, index = cid.split("/")
            pixels = (small if kind == "small" else large)[letter][int(index)]
            level = 9 if i >= fresh else 6  # copies are encoded differently
            out["large"].append((letter, member_name(i), png_bytes(pixels, level)))
            content["large"][f"{letter}/{member_name(i)}"] = cid
    for n, (which, letter, kind) in enumerate(corrupt):
        members = out[which]
        at = max(i for i, m in enumerate(members) if m[0] == letter) + 1
        name = member_name(900000 + n)
        members.insert(at, (letter, name, corrupt_bytes(kind, members[0][2])))
        content[which][f"{letter}/{name}"] = None
    paths = {
        "notMNIST_small.tar.gz": write_archive(folder / "notMNIST_small.tar.gz", "notMNIST_small", out["small"]),
        "notMNIST_large.tar.gz": write_archive(folder / "notMNIST_large.tar.gz", "notMNIST_large", out["large"]),
    }
    return Pair(paths, content)
