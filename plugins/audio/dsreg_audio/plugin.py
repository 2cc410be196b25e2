"""Entry point of dsreg-audio: registers ``audiofolder`` and the offline ``dtmf`` sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dsreg

from .builders import AudioFolder, Dtmf


@dsreg.hookimpl
def register_datasets(register: Callable[..., Any]) -> None:
    """Register the audio builders."""
    register(AudioFolder)
    register(Dtmf)
