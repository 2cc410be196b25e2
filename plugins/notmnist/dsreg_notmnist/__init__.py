"""dsreg-notmnist: notMNIST from download to DataLoader, verified and fast.

Registers ``notmnist`` (the original archives), ``notmnist-small`` (the 8 MB archive alone),
``notmnist-idx`` (the MNIST-format copy) and ``notmnist-synth`` (rendered offline from local fonts).
Importing this package imports neither torch, numpy nor Pillow.
"""

from __future__ import annotations

from collections.abc import Callable

import dsreg

from .builders import NotMNIST, NotMNISTIdx, NotMNISTSmall, NotMNISTSynth
from .codec import normalize

__all__ = ["NotMNIST", "NotMNISTSmall", "NotMNISTIdx", "NotMNISTSynth", "normalize", "register_datasets"]


@dsreg.hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    """Register the four notMNIST datasets."""
    register(NotMNIST)
    register(NotMNISTSmall)
    register(NotMNISTIdx)
    register(NotMNISTSynth)
