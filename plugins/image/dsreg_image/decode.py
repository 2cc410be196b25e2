"""Pure image functions (Pillow, numpy): probe a header, normalise the mode, resize, decode a record.

They run in the core's decode pool while preparing (``decode_record``) and in DataLoader workers
when images are stored encoded (``to_array``), so they take plain values and keep no state.
"""

from __future__ import annotations

import io
from typing import Any, NamedTuple

import dsreg

__all__ = ["Spec", "GRAY_MODES", "RESIZE_POLICIES", "image_extensions", "probe", "normalise", "resize", "to_array", "decode_record"]

#: Pillow modes with one grey channel (16- and 32-bit ones are scaled down to 8 bits).
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
#: How a fixed ``size`` is reached: crop to the aspect ratio then scale (centre), scale into the box
#: and pad with black (letterbox), or scale each side independently.
RESIZE_POLICIES = ("crop", "fit", "stretch")


class Spec(NamedTuple):
    """How one configuration decodes images (picklable, sent with every record)."""

    mode: str  # "L" or "RGB"
    size: tuple[int, int] | None  # (height, width) to resize to, or None
    resize: str  # one of RESIZE_POLICIES
    encoded: bool  # True: keep the file's bytes (sizes differ), decoded on access
    expect: tuple[int, int] | None  # (height, width) every image has when not resized and not encoded


def image_extensions() -> tuple[str, ...]:
    """Return the file extensions (lower case, with the dot) of every format Pillow can open."""
    from PIL import Image

    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN))


def probe(data: bytes) -> tuple[int, int, str]:
    """Return ``(height, width, mode)`` read from an image's header (no pixel decoding)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.height, im.width, im.mode


def normalise(im: Any, mode: str) -> Any:
    """Return ``im`` in ``mode`` (L or RGB): deep greys scaled to 8 bits, transparency over white."""
    import numpy as np
    from PIL import Image

    if im.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N"}:
        # 16-bit greys (Pillow's "I" too): keep the top 8 bits instead of clipping at 255.
        arr = np.asarray(im).astype(np.int64).clip(0, 65535) >> 8
        im = Image.fromarray(arr.astype(np.uint8), "L")
    if im.mode in {"RGBA", "LA", "La", "RGBa", "PA"} or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return im if im.mode == mode else im.convert(mode)


def resize(im: Any, size: tuple[int, int], policy: str) -> Any:
    """Return ``im`` resized to ``size`` = (height, width) following ``policy``."""
    from PIL import Image, ImageOps

    box = (size[1], size[0])
    if im.size == box:
        return im
    method = Image.Resampling.BICUBIC
    if policy == "crop":
        return ImageOps.fit(im, box, method=method)
    if policy == "fit":
        return ImageOps.pad(im, box, method=method, color=0)
    return im.resize(box, method)


def to_array(data: bytes, mode: str, size: tuple[int, int] | None = None, policy: str = "crop") -> Any:
    """Decode image bytes to a ``uint8`` array ``[C, H, W]`` (C = 1 for L, 3 for RGB)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if size is not None and im.format == "JPEG":
            im.draft(mode, (size[1], size[0]))  # DCT scaling: decode big JPEGs at a fraction of the cost
        im.load()
        out = normalise(im, mode)
        if size is not None:
            out = resize(out, size, policy)
        arr = np.asarray(out, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def decode_record(record: tuple[bytes, int, Spec]) -> dict[str, Any]:
    """Turn ``(file bytes, label, spec)`` into a stored example, or raise ``dsreg.Skip`` if unreadable."""
    data, label, spec = record
    try:
        if spec.encoded:
            arr = to_array(data, spec.mode)  # decoded once to prove it is readable, then kept as bytes
            return {"image": data, "shape": list(arr.shape), "label": label}
        arr = to_array(data, spec.mode, spec.size, spec.resize)
    except Exception as exc:  # any decoder failure means a corrupt file
        raise dsreg.Skip(f"not a readable image ({type(exc).__name__}: {exc})") from None
    if spec.expect is not None and arr.shape[1:] != spec.expect:
        raise dsreg.Skip(f"decoded to {arr.shape[1]}x{arr.shape[2]}, not {spec.expect[0]}x{spec.expect[1]} like the others")
    return {"image": arr, "label": label}
