"""The text collate: the core's ``pad`` with the padding id and length cap bound."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["collate"]


def collate(max_length: int | None = None, pad_id: int = 0, ragged: tuple[str, ...] = ("input_ids",)) -> Callable[..., dict[str, Any]]:
    """Return a collate_fn padding ``input_ids`` to the longest in the batch (at most ``max_length``).

    Batches hold ``input_ids`` (int64 [B, T]), ``attention_mask`` (bool [B, T], True on tokens),
    ``lengths`` (int64 [B]), ``label`` (int64 [B]) and ``text`` (list of str).
    """
    from dsreg.store.collate import pad

    if max_length is not None and int(max_length) < 1:
        from dsreg.errors import ConfigError

        raise ConfigError(f"max_length must be a positive number of tokens or None, not {max_length}")
    # ``ragged`` is bound so that a batch whose texts happen to be equally long still gets
    # lengths and a mask; a partial of a module-level function pickles, for DataLoader workers.
    return functools.partial(pad, ragged=ragged, max_length=None if max_length is None else int(max_length), value=pad_id)
