"""``imagefolder``: your own images, one folder per class, from a folder, archive or URL.

The features depend on the data, so they are fixed when the dataset is prepared (``get_features``
with the fetched files): one pass reads every image's header to find the classes, the mode (L when
every image is grey, else RGB, unless ``mode`` is given) and whether the sizes agree. Then:

- ``size`` given: every image is resized at prepare and stored decoded, uint8 [C, H, W];
- all images the same size: stored decoded as they are (the one-gather fast path);
- sizes differ and no ``size``: stored encoded (the file's bytes) with each one's decoded ``shape``,
  decoded on access; the collate function pads each batch and returns a ``mask``.

Files Pillow cannot read are skipped and listed in the manifest (``dsreg info imagefolder -c url=...``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dsreg
from dsreg.errors import ConfigError
from dsreg.folder import FolderBuilder, FolderScan

from .collate import pad_or_stack
from .decode import RESIZE_POLICIES, Spec, decode_record

__all__ = ["ImageFolder", "parse_size"]


def parse_size(size: Any) -> tuple[int, int] | None:
    """Read ``size`` as (height, width): ``None``, ``64``, ``[48, 64]`` or ``"48x64"``."""
    if size is None or size == "":
        return None
    try:
        if isinstance(size, str):
            parts = [int(p) for p in size.lower().replace("×", "x").split("x")]
        elif isinstance(size, int):
            parts = [size]
        else:
            parts = [int(p) for p in size]
        if len(parts) == 1:
            parts = parts * 2
        height, width = parts
        if height > 0 and width > 0:
            return height, width
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"size {size!r} is not understood; give 64, [48, 64] or 48x64 (height x width)")


class ImageFolder(FolderBuilder):
    name = "imagefolder"
    version = "1.0.0"
    description = (
        "Your own images, one folder per class (cat/1.jpg, dog/2.png, ...), read from a local folder, "
        "a .zip or .tar(.gz), http(s):// or s3://. train/, test/ (and validation/) sub-folders are used "
        "when present; otherwise a seeded, class-stratified holdout makes the test split. Any format "
        "Pillow reads; mode L or RGB (detected or chosen); optional resizing to a fixed size."
    )
    homepage = ""
    license = "the license of your images"
    citation = ""
    task = "image-classification"
    # Until prepared, the columns are unknown: the real ones are found in the data (see get_features).
    features = {"image": dsreg.Binary(), "label": dsreg.ClassLabel()}
    splits = ("train", "test")
    config = {"url": None, "size": None, "resize": "crop", "mode": None, "holdout": 0.2, "seed": 0}
    decode = staticmethod(decode_record)
    collate_fn = staticmethod(pad_or_stack)

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.size = parse_size(self.params["size"])
        if self.params["resize"] not in RESIZE_POLICIES:
            raise ConfigError(f"resize {self.params['resize']!r} is not one of {', '.join(RESIZE_POLICIES)}")
        if self.params["mode"] not in (None, "L", "RGB"):
            raise ConfigError(f"mode {self.params['mode']!r} must be L (grey), RGB, or left out to detect it")

    # -- what depends on the data ---------------------------------------------------------------
    def file_extensions(self) -> tuple[str, ...]:
        from .decode import image_extensions

        return image_extensions()  # every format this Pillow opens: known only once Pillow is imported

    def probe_file(self, path: str, data: bytes) -> tuple[int, int, str]:
        from .decode import probe

        return probe(data)

    def get_features(self, files: Mapping[str, Path] | None = None) -> dict[str, Any]:
        if files is None:
            return {**self.features, "label": dsreg.ClassLabel(self.classes())}
        scan = self.scan(files)
        spec = self._spec(scan)
        label = dsreg.ClassLabel(scan.layout.classes)
        if spec.encoded:
            # ``shape`` is what each image decodes to, [C, H, W]: C says the mode at load time.
            return {"image": dsreg.Binary(), "shape": dsreg.Tensor((3,), "int64"), "label": label}
        height, width = spec.size or spec.expect  # type: ignore[misc]  # expect is set whenever size is not
        return {"image": dsreg.Tensor((1 if spec.mode == "L" else 3, height, width), "uint8"), "label": label}

    def _spec(self, scan: FolderScan) -> Spec:
        headers = [h for p, h in scan.probes.items() if p in scan.layout.entries]
        if not headers:
            raise ConfigError(f"no readable images in class folders at {self.params['url']}; see `dsreg_image` README for the layout")
        mode = self.params["mode"] or ("L" if all(m in _gray_modes() for _, _, m in headers) else "RGB")
        sizes = {(h, w) for h, w, _ in headers}
        if self.size is not None:
            return Spec(mode, self.size, self.params["resize"], False, None)
        if len(sizes) == 1:
            return Spec(mode, None, self.params["resize"], False, next(iter(sizes)))
        return Spec(mode, None, self.params["resize"], True, None)

    # -- preparing ------------------------------------------------------------------------------
    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Any:
        scan = self.scan(files)
        spec = self._spec(scan)  # one Spec for the whole split: the records carry it to the decode pool
        self.note_scan(scan)
        self._note_storage(scan, spec)
        for path, data, label in self.split_files(split, files):
            yield path, (data, label, spec)

    def _note_storage(self, scan: FolderScan, spec: Spec) -> None:
        sizes = Counter((h, w) for p, (h, w, _) in scan.probes.items() if p in scan.layout.entries)
        self.note("mode", spec.mode if self.params["mode"] else f"{spec.mode} (detected)")
        if spec.encoded:
            self.note("storage", f"encoded, decoded on access ({len(sizes)} sizes; padded per batch with a mask)")
        elif spec.size is not None:
            self.note("storage", f"uint8, resized to {spec.size[0]}x{spec.size[1]} ({self.params['resize']})")
        else:
            self.note("storage", f"uint8 {spec.expect[0]}x{spec.expect[1]} as found")  # type: ignore[index]  # expect is set here
        if scan.unreadable:
            self.note("unreadable_headers", len(scan.unreadable))

    # -- loading --------------------------------------------------------------------------------
    # The builder is not told which features its store was prepared with (the core keeps them), so
    # it reads that from the examples: a store of encoded images has a ``shape`` column.
    def decodes_on_access(self) -> bool:
        # With ``size`` the store is always decoded: keep the one-gather batch path. Without, the
        # data decided; a decoded example then passes through decode_example unchanged.
        return self.size is None

    def decode_example(self, example: dict[str, Any]) -> dict[str, Any]:
        if "shape" not in example:
            return example
        import torch

        from .decode import to_array

        mode = "L" if int(example["shape"][0]) == 1 else "RGB"
        return {**example, "image": torch.from_numpy(to_array(example["image"], mode))}


def _gray_modes() -> frozenset[str]:
    from .decode import GRAY_MODES

    return GRAY_MODES
