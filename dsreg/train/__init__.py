"""dsreg.train: one trainer for any registered dataset (``dsreg.train.Trainer``), configured by one
``dsreg.train.TrainSettings``; torch loads on first use.

The package itself imports nothing heavy: ``dsreg.train.models`` is a default plugin that ``dsreg list``
loads, so the names below are fetched from ``dsreg.train.trainer`` (torch) or ``dsreg.train.settings``
(no torch) only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

_SETTINGS = ("TrainSettings", "dataset_defaults", "FALLBACKS")
_TRAINER = (
    "Trainer",
    "build_model",
    "sample_batch",
    "pick_device",
    "pick_precision",
    "pick_threads",
    "load_checkpoint",
    "CHECKPOINT",
    "METRICS",
)
__all__ = [*_TRAINER, *_SETTINGS]


def __getattr__(name: str) -> Any:
    if name in _SETTINGS:
        return getattr(importlib.import_module(".settings", __name__), name)
    if name in _TRAINER:
        return getattr(importlib.import_module(".trainer", __name__), name)
    raise AttributeError(f"module 'dsreg.train' has no attribute {name!r}")
