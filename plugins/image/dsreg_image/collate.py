"""Collate images: ``pad_images`` pads images of different sizes and returns a mask of the real pixels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsreg.store.collate import Batch, columns, stack

__all__ = ["pad_images", "pad_or_stack"]


def pad_images(batch: Batch | Sequence[dict[str, Any]], *, value: int = 0) -> dict[str, Any]:
    """Pad each ``image`` [C, h, w] to the batch's largest h and w (bottom and right).

    Returns ``image`` [B, C, H, W] (same dtype), ``mask`` [B, H, W] (bool, True on real pixels),
    ``height`` and ``width`` (int64 [B], before padding) and every other column stacked (e.g.
    ``label``, and ``shape`` [B, 3] for images stored encoded).
    """
    import torch

    cols = columns(batch)
    images = [torch.as_tensor(im) for im in cols.pop("image")]
    heights = torch.tensor([im.shape[-2] for im in images], dtype=torch.int64)
    widths = torch.tensor([im.shape[-1] for im in images], dtype=torch.int64)
    channels = images[0].shape[0]
    out = images[0].new_full((len(images), channels, int(heights.max()), int(widths.max())), value)
    for i, im in enumerate(images):
        out[i, :, : im.shape[-2], : im.shape[-1]] = im
    rows = torch.arange(out.shape[2]).view(1, -1, 1) < heights.view(-1, 1, 1)
    cols_ok = torch.arange(out.shape[3]).view(1, 1, -1) < widths.view(-1, 1, 1)
    result = {"image": out, "mask": rows & cols_ok, "height": heights, "width": widths}
    result.update(stack(Batch(cols)) if cols else {})
    return result


def pad_or_stack(batch: Batch | Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate ``imagefolder``: pad images stored encoded (they carry ``shape``), stack images of one size."""
    first = batch if isinstance(batch, Batch) else (batch[0] if batch else {})
    return pad_images(batch) if "shape" in first else stack(batch)
