"""dsreg: a dataset registry for PyTorch, built from plugins.

    import dsreg
    train = dsreg.load("notmnist-synth", split="train")
    loader = train.loader(batch_size=256, shuffle=True)

Importing dsreg is cheap: torch, numpy and datasets load only when a dataset is loaded.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from . import _moved
from .api import DatasetInfo, fetch, get_builder, info, load, names, push
from .builder import Builder, File, Skip, Split
from .errors import (
    ArchiveError,
    CacheError,
    ChecksumError,
    ConfigError,
    DsregError,
    FetchError,
    OfflineError,
    PluginError,
    UnknownDatasetError,
)
from .features import Binary, ClassLabel, Tensor, Text, Value
from .folder import FolderBuilder
from .hookspecs import hookimpl

_moved.install()  # the flat module paths of 0.1 (dsreg.archive, ...) as aliases: see _moved.py

try:
    __version__ = _metadata.version("dsreg")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "ArchiveError",
    "Binary",
    "Builder",
    "CacheError",
    "ChecksumError",
    "ClassLabel",
    "ConfigError",
    "Dataset",
    "DatasetInfo",
    "DsregError",
    "FetchError",
    "File",
    "FolderBuilder",
    "OfflineError",
    "PluginError",
    "Skip",
    "Split",
    "StreamingDataset",
    "Tensor",
    "Text",
    "UnknownDatasetError",
    "Value",
    "__version__",
    "fetch",
    "get_builder",
    "hookimpl",
    "info",
    "load",
    "names",
    "push",
]


def __getattr__(name: str) -> Any:
    # Dataset subclasses torch's Dataset: import it (and torch) only when asked for.
    if name == "Dataset":
        from .store.dataset import Dataset

        return Dataset
    if name == "StreamingDataset":
        from .store.streaming import StreamingDataset

        return StreamingDataset
    if name == "train":  # the trainer module (torch): `dsreg.train.Trainer` works after a plain `import dsreg`
        import importlib

        return importlib.import_module(".train", __name__)
    raise AttributeError(f"module 'dsreg' has no attribute {name!r}")
