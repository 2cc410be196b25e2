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
from pathlib import Path
from typing import Any, Callable, Mapping

import dsreg
from dsreg.fetching import sources
from dsreg.errors import ConfigError

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


class _Scan:
    """What one pass over the data found: the class layout, each image's header, unreadable files."""

    def __init__(self, layout: sources.Layout, headers: dict[str, tuple[int, int, str]], bad: int, other: list[str]) -> None:
        self.layout = layout
        self.headers = headers
        self.bad = bad
        self.other = other


class ImageFolder(dsreg.Builder):
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

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.size = parse_size(self.params["size"])
        if self.params["resize"] not in RESIZE_POLICIES:
            raise ConfigError(f"resize {self.params['resize']!r} is not one of {', '.join(RESIZE_POLICIES)}")
        if self.params["mode"] not in (None, "L", "RGB"):
            raise ConfigError(f"mode {self.params['mode']!r} must be L (grey), RGB, or left out to detect it")
        holdout = self.params["holdout"]
        if not isinstance(holdout, (int, float, dict)):
            raise ConfigError(f"holdout {holdout!r} must be a fraction (0.2) or {{split: fraction}}")
        self._scan: _Scan | None = None

    # -- what depends on the data ---------------------------------------------------------------
    def get_files(self) -> tuple[dsreg.File, ...]:
        return sources.files_for(self.params["url"])

    def fingerprint(self) -> str | None:
        return sources.fingerprint(self.params["url"])

    def _scanned(self, files: Mapping[str, Path]) -> _Scan:
        if self._scan is not None:
            return self._scan
        from .decode import image_extensions, probe

        exts = image_extensions()
        names: list[str] = []

        def select(path: str) -> bool:
            names.append(path)
            return path.lower().endswith(exts)

        headers: dict[str, tuple[int, int, str]] = {}
        bad = 0
        for path, data in sources.Source(self.params["url"], files).walk(select=select):
            try:
                headers[path] = probe(data)
            except Exception:  # noqa: BLE001 - unreadable: skipped (and listed) when decoding
                bad += 1
        layout = sources.class_layout(names, extensions=exts)
        other = [p for p in names if p not in layout.entries]
        self._scan = _Scan(layout, headers, bad, other)
        return self._scan

    def get_features(self, files: Mapping[str, Path] | None = None) -> dict[str, Any]:
        if files is None:
            return dict(self.features)
        scan = self._scanned(files)
        spec = self._spec(scan)
        label = dsreg.ClassLabel(scan.layout.classes)
        if spec.encoded:
            # ``shape`` is what each image decodes to, [C, H, W]: C says the mode at load time.
            return {"image": dsreg.Binary(), "shape": dsreg.Tensor((3,), "int64"), "label": label}
        height, width = spec.size or spec.expect  # type: ignore[misc]
        return {"image": dsreg.Tensor((1 if spec.mode == "L" else 3, height, width), "uint8"), "label": label}

    def get_splits(self) -> tuple[str, ...]:
        if self._scan is not None and self._scan.layout.splits:
            return self._scan.layout.splits
        holdout = self.params["holdout"]
        held = [s for s, f in holdout.items() if f > 0] if isinstance(holdout, dict) else (["test"] if holdout > 0 else [])
        return ("train", *held)

    def _spec(self, scan: _Scan) -> Spec:
        headers = [h for p, h in scan.headers.items() if p in scan.layout.entries]
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
    def generate(self, split: str, files: Mapping[str, Path], url: str, size: Any, resize: str, mode: Any,
                 holdout: Any, seed: int) -> Any:
        scan = self._scanned(files)
        spec = self._spec(scan)
        layout = scan.layout
        assign = layout.assign(holdout, seed)
        if split == self.get_splits()[0]:
            self._record_notes(scan, spec, assign)
        for path, data in sources.Source(url, files).walk(select=lambda p: assign.get(p) == split):
            yield path, (data, layout.label(path), spec)

    def _record_notes(self, scan: _Scan, spec: Spec, assign: dict[str, str]) -> None:
        sizes = Counter((h, w) for p, (h, w, _) in scan.headers.items() if p in scan.layout.entries)
        self.note("classes", len(scan.layout.classes))
        self.note("splits_from", "folders" if scan.layout.splits else
                  f"holdout {self.params['holdout']} (class-stratified, seed {self.params['seed']})")
        self.note("mode", spec.mode if self.params["mode"] else f"{spec.mode} (detected)")
        if spec.encoded:
            self.note("storage", f"encoded, decoded on access ({len(sizes)} sizes; padded per batch with a mask)")
        elif spec.size is not None:
            self.note("storage", f"uint8, resized to {spec.size[0]}x{spec.size[1]} ({self.params['resize']})")
        else:
            self.note("storage", f"uint8 {spec.expect[0]}x{spec.expect[1]} as found")  # type: ignore[index]
        if scan.other:
            self.note("not_images", {"count": len(scan.other), "first": scan.other[:5]})
        if scan.bad:
            self.note("unreadable_headers", scan.bad)

    # -- loading --------------------------------------------------------------------------------
    def _encoded(self) -> bool:
        return not isinstance(self.features.get("image"), dsreg.Tensor)

    def decodes_on_access(self) -> bool:
        return self._encoded()

    def decode_example(self, example: dict[str, Any]) -> dict[str, Any]:
        if not self._encoded():
            return example
        import torch

        from .decode import to_array

        mode = "L" if int(example["shape"][0]) == 1 else "RGB"
        return {**example, "image": torch.from_numpy(to_array(example["image"], mode))}

    def get_collate_fn(self) -> Callable[[Any], Any]:
        if self._encoded():
            from .collate import pad_images

            return pad_images
        return super().get_collate_fn()


def _gray_modes() -> frozenset[str]:
    from .decode import GRAY_MODES

    return GRAY_MODES
