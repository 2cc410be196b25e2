"""Entry point of dsreg-text: registers ``textclass`` and the offline ``sentiment-words`` sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dsreg

from .builders import SentimentWords, TextClass


@dsreg.hookimpl
def register_datasets(register: Callable[..., Any]) -> None:
    """Register the text builders."""
    register(TextClass)
    register(SentimentWords)
