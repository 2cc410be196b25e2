"""The entry point module of dsreg-image (group ``dsreg``): registers its datasets."""

from __future__ import annotations

from typing import Any

import dsreg

from .imagefolder import ImageFolder
from .shapes import Shapes


@dsreg.hookimpl
def register_datasets(register: Any) -> None:
    """Register ``imagefolder`` and the ``shapes`` sample."""
    register(ImageFolder)
    register(Shapes)
