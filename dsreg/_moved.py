"""The flat module paths of dsreg 0.1, kept importable after the move into layer subpackages.

``import dsreg.archive`` (or ``from dsreg.collate import stack``) returns the very module object at its new
path, so attributes, monkeypatching and isinstance checks behave the same. New code imports the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

MOVED: dict[str, str] = {
    "dsreg.download": "dsreg.fetching.download",
    "dsreg.cache": "dsreg.fetching.cache",
    "dsreg.config": "dsreg.fetching.config",
    "dsreg.archive": "dsreg.fetching.archive",
    "dsreg.sources": "dsreg.fetching.userdata",
    "dsreg.fetching.sources": "dsreg.fetching.userdata",
    "dsreg.storage": "dsreg.store.storage",
    "dsreg.dataset": "dsreg.store.dataset",
    "dsreg.collate": "dsreg.store.collate",
    "dsreg.splits": "dsreg.store.splits",
    "dsreg.models": "dsreg.train.models",
    "dsreg.nets": "dsreg.train.nets",
    "dsreg.checkpoint": "dsreg.train.checkpoint",
    "dsreg.distributed": "dsreg.train.distributed",
    "dsreg.train_cli": "dsreg.cli.train",
    "dsreg.preview": "dsreg.cli.preview",
    "dsreg.newplugin": "dsreg.cli.newplugin",
    "dsreg.hostile": "dsreg.testing.hostile",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system sets module.__spec__ = spec next
        return module

    def exec_module(self, module: ModuleType) -> None:
        # Already executed under its new name: only give it back its own spec.
        assert module.__spec__ is not None  # create_module set it
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put the alias finder first (before any editable-install finder that still maps the old files)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
