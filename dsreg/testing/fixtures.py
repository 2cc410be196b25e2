"""Test kit: the pytest fixtures ``dsreg_cache``, ``file_server`` and ``register`` (defined only when pytest is installed)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from ..builder import Builder
from ..registry import Registry
from .server import LoopbackServer
from .trees import registered

# -- pytest fixtures (active when the dsreg pytest plugin is loaded) --------------------------
try:
    import pytest
except ImportError:  # pragma: no cover - dsreg.testing used without pytest
    pytest = None  # type: ignore[assignment]


if pytest is not None:

    @pytest.fixture
    def dsreg_cache(tmp_path: Path, monkeypatch: Any) -> Path:
        """An empty cache in a tmp dir (DSREG_CACHE), no user mirrors or config, downloads loopback-only."""
        root = tmp_path / "dsreg-cache"
        monkeypatch.setenv("DSREG_CACHE", str(root))
        monkeypatch.setenv("DSREG_NETWORK", "loopback")  # a test never reaches a published URL
        monkeypatch.setenv("DSREG_CONFIG", str(tmp_path / "no-config.toml"))
        monkeypatch.setenv("DSREG_BACKOFF", "0")
        for name in ("DSREG_OFFLINE", "DSREG_MIRRORS", "DSREG_TIMEOUT", "DSREG_CONNECT_TIMEOUT", "DSREG_RETRIES"):
            monkeypatch.delenv(name, raising=False)
        return root

    @pytest.fixture
    def file_server() -> Iterator[LoopbackServer]:
        """A loopback HTTP server; ``file_server.serve({name: bytes})`` returns its base URL."""
        with LoopbackServer() as server:
            yield server

    @pytest.fixture
    def register() -> Iterator[Any]:
        """Call ``register(*builders)`` to make them the only registered datasets for this test."""
        stack = contextlib.ExitStack()

        def _register(*builders: type[Builder]) -> Registry:
            return stack.enter_context(registered(*builders))

        with stack:
            yield _register

