"""Entry point of dsreg-audio: registers ``audiofolder`` and the offline ``dtmf`` sample."""

from __future__ import annotations

from typing import Any, Callable

import dsreg

from .builders import AudioFolder, Dtmf


@dsreg.hookimpl
def register_datasets(register: Callable[..., Any]) -> None:
    """Register the audio builders."""
    register(AudioFolder)
    register(Dtmf)
