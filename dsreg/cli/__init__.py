"""The ``dsreg`` command (console script ``dsreg = dsreg.cli:main``): one module per command group."""

from __future__ import annotations

from .app import cli, main

__all__ = ["cli", "main"]
