"""What users would otherwise write: the Udacity notebook's prepare and an ImageFolder-style Dataset.

Written the way the course notebook and the usual tutorials do it, to be fair to them: extract the
tar.gz to disk, open every PNG with PIL into float32 ``(x - 127.5) / 255``, skip unreadable files,
pickle one array per class; and a map-style Dataset that opens one PNG per ``__getitem__``.
"""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path
from typing import Any

LETTERS = "ABCDEFGHIJ"


def udacity_prepare(archives: Path, out: Path) -> int:
    """Extract both archives under ``out``, decode every PNG, pickle per class; return images decoded."""
    import numpy as np
    from PIL import Image

    decoded = 0
    for stem in ("notMNIST_large", "notMNIST_small"):
        with tarfile.open(archives / f"{stem}.tar.gz") as tar:
            tar.extractall(out, filter="data")
        for folder in sorted(p for p in (out / stem).iterdir() if p.is_dir()):
            images = []
            for png in sorted(folder.iterdir()):
                try:
                    with Image.open(png) as im:
                        pixels = np.asarray(im, dtype=np.float32)
                except (OSError, ValueError, SyntaxError):
                    continue  # the notebook prints "Could not read" and moves on
                if pixels.shape != (28, 28):
                    continue
                images.append((pixels - 127.5) / 255)
            with open(folder.with_suffix(".pickle"), "wb") as fh:
                pickle.dump(np.stack(images), fh, pickle.HIGHEST_PROTOCOL)
            decoded += len(images)
    return decoded


class ImageFolderStyle:
    """A map-style Dataset over ``root/<letter>/*.png``: one PIL open per item (torchvision's pattern)."""

    def __init__(self, root: Path) -> None:
        self.items = [(p, LETTERS.index(p.parent.name)) for p in sorted(root.glob("*/*.png"))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        import numpy as np
        import torch
        from PIL import Image

        path, label = self.items[index]
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im, dtype=np.float32)
        except (OSError, ValueError, SyntaxError):
            pixels = np.zeros((28, 28), np.float32)  # an unreadable file: torchvision would crash here
        if pixels.shape != (28, 28):
            pixels = np.zeros((28, 28), np.float32)
        return torch.from_numpy((pixels - 127.5) / 255).unsqueeze(0), label


def readable_subset(root: Path, subset: Path, per_class: int) -> int:
    """Link up to ``per_class`` fully decodable PNGs per letter of ``root`` into ``subset``; return how many were left out.

    Hugging Face's imagefolder decodes lazily and raises ``OSError: image file is truncated`` in the
    middle of an epoch on the real archive's corrupt members, so its baseline runs over files Pillow
    can decode whole (the ImageFolder-style baseline and dsreg skip those members themselves).
    """
    from PIL import Image

    left_out = 0
    for letter in LETTERS:
        (subset / letter).mkdir(parents=True, exist_ok=True)
        linked = 0
        for png in sorted((root / letter).glob("*.png")):
            if linked == per_class:
                break
            try:
                with Image.open(png) as im:
                    im.load()
            except (OSError, ValueError, SyntaxError):
                left_out += 1
                continue
            (subset / letter / png.name).symlink_to(png)
            linked += 1
    return left_out


def hf_collate(rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    """Collate Hugging Face imagefolder rows (``with_format("torch")``) into normalised float32."""
    import torch

    images = torch.stack([r["image"].reshape(1, 28, 28) for r in rows]).float().sub_(127.5).div_(255)
    return images, torch.tensor([int(r["label"]) for r in rows])
