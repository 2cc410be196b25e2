"""Benchmark data: a notMNIST archive pair in the real layout, generated once (seeded) and cached.

The real notMNIST_large.tar.gz cannot be downloaded here, so we write archives with the same
layout (``notMNIST_large/<A-J>/<base64 name>.png``), image size and encoding, using the notMNIST
plugin's own renderer and archive writer (``dsreg_notmnist.testing``), plus a few corrupt members
(empty, truncated, not a PNG). ``--archive DIR`` takes a folder holding real archives instead.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

CACHE = Path(__file__).resolve().parent / ".cache"
#: Images per letter: full mode matches notMNIST_large (~529k; we use 500k) and notMNIST_small.
FULL = {"notMNIST_large": 50_000, "notMNIST_small": 1_872}
#: --quick: the fewest that still give every measurement a few batches of 256 after its warm-up batch.
QUICK = {"notMNIST_large": 100, "notMNIST_small": 20}
CORRUPT = (("A", "empty"), ("C", "truncated"), ("F", "not-png"))

_renderer: Any = None


def random_images(name: str, shape: tuple[int, ...], n: int = 1000, collate: Any = None) -> Any:
    """Return a Builder ``name`` of ``n`` (its config) seeded random uint8 images of ``shape`` and a 10-class label, from no files.

    The generated datasets of the shards, streaming and remote benchmarks; ``collate`` replaces the
    default collate (the shards benchmark reads through notMNIST's normalising one).
    """
    import numpy as np

    import dsreg

    class RandomImages(dsreg.Builder):
        description = f"Seeded random {'x'.join(map(str, shape))} uint8 images for a benchmark."
        task = "image-classification"
        features = {"image": dsreg.Tensor(shape, "uint8"), "label": dsreg.ClassLabel(tuple("ABCDEFGHIJ"))}
        splits = ("train",)
        config = {"n": n}

        def get_collate_fn(self) -> Any:
            return collate if collate is not None else super().get_collate_fn()

        def generate(self, split: str, files: Any, **config: Any) -> Any:
            rng = np.random.default_rng(0)
            total = self.params["n"]
            for lo in range(0, total, 4096):  # a block at a time: never the whole dataset in RAM
                images = rng.integers(0, 256, size=(min(4096, total - lo), *shape), dtype=np.uint8)
                for i, image in enumerate(images):
                    yield str(lo + i), {"image": image, "label": (lo + i) % 10}

    RandomImages.name = name
    RandomImages.__qualname__ = RandomImages.__name__ = f"RandomImages[{name}]"
    return RandomImages


def _render(job: tuple[str, str, int, int, int]) -> list[tuple[str, str, bytes]]:
    global _renderer
    from dsreg_notmnist.synth import Renderer, find_fonts
    from dsreg_notmnist.testing import member_name, png_bytes

    stem, letter, start, stop, seed = job
    if _renderer is None:
        _renderer = Renderer(find_fonts())
    rng = random.Random(f"bench/{stem}/{seed}/{letter}/{start}")
    return [(letter, member_name(i), png_bytes(_renderer.render(letter, i, rng))) for i in range(start, stop)]


def _members(stem: str, per_class: int, seed: int, pool: Any) -> Any:
    from dsreg_notmnist.synth import LETTERS
    from dsreg_notmnist.testing import corrupt_bytes

    step = 1000
    jobs = [(stem, letter, s, min(s + step, per_class), seed) for letter in LETTERS for s in range(0, per_class, step)]
    last: dict[str, bytes] = {}
    for chunk in pool.imap(_render, jobs, chunksize=1):
        for member in chunk:
            last[member[0]] = member[2]
            yield member
    for letter, kind in CORRUPT:
        yield letter, f"corrupt-{kind}.png", corrupt_bytes(kind, last[letter])


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def archive_pair(quick: bool, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """Return the folder holding ``notMNIST_small.tar.gz`` and ``notMNIST_large.tar.gz``, and their facts."""
    from dsreg_notmnist.testing import write_archive

    shape = QUICK if quick else FULL
    # The quick folder's name carries its size, so a cache written at another size is not taken for it.
    folder = CACHE / (f"quick{QUICK['notMNIST_large']}-s{seed}" if quick else f"full-s{seed}")
    meta_path = folder / "meta.json"
    if meta_path.exists():
        return folder, json.loads(meta_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {}
    with multiprocessing.get_context("fork").Pool() as pool:
        for stem, per_class in shape.items():
            path = folder / f"{stem}.tar.gz"
            print(f"generating {path} ({per_class * 10:,} PNGs + {len(CORRUPT)} corrupt; once, then cached)", flush=True)
            started = time.perf_counter()
            write_archive(path, stem, _members(stem, per_class, seed, pool))
            meta[stem] = {
                "images": per_class * 10,
                "corrupt": len(CORRUPT),
                "bytes": path.stat().st_size,
                "md5": md5(path),
                "seconds": round(time.perf_counter() - started, 1),
            }
    meta_path.write_text(json.dumps(meta, indent=2))
    return folder, meta


def given_pair(folder: Path) -> tuple[Path, dict[str, Any]]:
    """Facts of a user-supplied folder holding the two archives (e.g. the real ones)."""
    meta = {}
    for stem in ("notMNIST_large", "notMNIST_small"):
        path = folder / f"{stem}.tar.gz"
        if not path.exists():
            raise SystemExit(f"--archive {folder}: {path.name} is missing; the folder must hold both notMNIST archives")
        meta[stem] = {"images": None, "corrupt": None, "bytes": path.stat().st_size, "md5": md5(path)}
    return folder, meta
