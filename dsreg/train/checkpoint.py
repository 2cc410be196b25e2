"""Trainer checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain values only (RNG states as tensors, settings as JSON
types), so loading one runs no code. ``save`` writes a temporary file next to the target and
renames it into place: a reader (or a crash) sees the old checkpoint or the new one, never half.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["FORMAT", "save", "load_checkpoint", "rng_state", "set_rng_state", "plain"]

#: Bumped when the layout changes; older checkpoints are refused with a clear message.
FORMAT = 1


def save(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + ``os.replace``); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain numbers (so ``torch.load(weights_only=True)`` reads it)."""
    py = random.getstate()
    # legacy=True (the default) returns the tuple ("MT19937", keys, pos, has_gauss, cached), not the dict
    npst = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state(legacy=True))
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": py[0], "state": torch.tensor(py[1], dtype=torch.int64), "gauss": py[2]},
        "numpy": {
            "keys": torch.from_numpy(npst[1].astype(np.int64)),
            "pos": int(npst[2]),
            "has_gauss": int(npst[3]),
            "cached": float(npst[4]),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(("MT19937", nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a trainer checkpoint (``weights_only=True``: tensors and plain values, no code runs)."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"no checkpoint at {path}; train first, or pass the run's --out folder") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a dsreg trainer checkpoint (format {FORMAT}); start a new run")
    return ckpt


def plain(value: Any) -> Any:
    """Return ``value`` as JSON types (what a weights-only checkpoint may hold)."""
    return json.loads(json.dumps(value, default=str))
