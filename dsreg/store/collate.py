"""Collate functions: turn examples (or an already gathered ``Batch``) into one batch dict.

A collate function takes one argument, the batch, and returns the batch dict. The Dataset hands it
what ``Dataset.__getitems__`` returns: a ``Batch`` (columns gathered at once), or ``Examples`` (a
list of example dicts, when examples are decoded one by one). Both carry ``.ragged``, the names of
the variable-length columns, so ``pad`` gives every batch the same keys even when its rows happen
to be equally long. Every collate function here also accepts a plain list of example dicts (a
hand-built batch); ``pad`` then pads the columns whose shapes differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Batch", "Examples", "columns", "stack", "pad"]


class Batch(dict):
    """Columns of a batch already gathered by ``Dataset.__getitems__`` (tensor or list per column)."""

    #: Columns whose first dimension varies between examples (set by the Dataset).
    ragged: tuple[str, ...] = ()


class Examples(list):
    """A batch as a list of example dicts, as ``Dataset.__getitems__`` returns it when examples are decoded one by one."""

    #: Columns whose first dimension varies between examples (set by the Dataset).
    ragged: tuple[str, ...] = ()


def columns(batch: Batch | Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return ``{column: stacked tensor or list of values}`` for either input form."""
    if isinstance(batch, Batch):
        return dict(batch)
    if not batch:
        raise ValueError("cannot collate an empty batch")
    return {key: [example[key] for example in batch] for key in batch[0]}


def _stack_column(values: Any) -> Any:
    import torch

    if isinstance(values, torch.Tensor):
        return values
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, bool):
        return torch.tensor(values, dtype=torch.bool)
    if isinstance(first, int):
        return torch.tensor(values, dtype=torch.int64)
    if isinstance(first, float):
        return torch.tensor(values, dtype=torch.float32)
    if hasattr(first, "__array__") and not isinstance(first, (str, bytes)):
        return torch.stack([torch.as_tensor(v) for v in values])
    return list(values)  # strings, bytes and other objects stay a list


def stack(batch: Batch | Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack every column (tensors, numbers); strings and bytes stay lists. The default collate."""
    return {key: _stack_column(values) for key, values in columns(batch).items()}


def pad(
    batch: Batch | Sequence[dict[str, Any]],
    *,
    ragged: Sequence[str] | None = None,
    max_length: int | None = None,
    value: float = 0,
) -> dict[str, Any]:
    """Stack fixed-size columns and pad variable-length ones along their first dimension.

    ``ragged`` names the variable-length columns; when not given, those the batch names in its
    ``.ragged`` (a ``Batch`` or ``Examples`` from the Dataset: every batch has the same keys), else
    the columns whose tensors differ in shape (a plain list).

    For a single variable-length column the batch also holds ``lengths`` (int64, before padding,
    capped at ``max_length``) and ``attention_mask`` (bool, True on real positions); with several,
    they are named ``<column>_lengths`` and ``<column>_attention_mask``.
    """
    import torch

    cols = columns(batch)
    if ragged is None:
        ragged = getattr(batch, "ragged", None) or [
            key
            for key, values in cols.items()
            if not isinstance(values, torch.Tensor)
            and values
            and isinstance(values[0], torch.Tensor)
            and values[0].dim() > 0
            and len({v.shape for v in values}) > 1
        ]
    out: dict[str, Any] = {}
    for key, values in cols.items():
        if key not in ragged:
            out[key] = _stack_column(values)
            continue
        lengths = torch.tensor([v.shape[0] for v in values], dtype=torch.int64)
        if max_length is not None:
            lengths = lengths.clamp(max=max_length)
        longest = int(lengths.max()) if len(lengths) else 0
        padded = values[0].new_full((len(values), longest, *values[0].shape[1:]), value)
        for i, v in enumerate(values):
            padded[i, : lengths[i]] = v[: lengths[i]]
        mask = torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1)
        prefix = "" if len(ragged) == 1 else f"{key}_"
        out[key] = padded
        out[f"{prefix}lengths"] = lengths
        out[f"{prefix}attention_mask"] = mask
    return out
