"""The pytest plugin: the fixtures ``dsreg_cache``, ``dsreg_file_server``, ``dsreg_register`` and ``dsreg_s3``.

pytest loads this module at start-up wherever dsreg is installed (the ``pytest11`` entry point), so
it stays thin: a few fixtures over the kit's helpers, nothing imported that a test does not use
(no torch, numpy or datasets; moto and s3fs only when a test asks for ``dsreg_s3``). The fixtures
exist only where pytest does.

``dsreg_s3`` is a local S3 server (moto, on 127.0.0.1) with the AWS variables pointed at it for one
test; the server itself (``dsreg_s3_server``) starts once per session (per xdist worker) and is
emptied after each test. It skips, saying what to install, where moto or s3fs is missing.

``file_server`` and ``register`` are the fixtures' old names, kept for suites written against them:
each still works and warns once per run with a ``DeprecationWarning`` naming its new name.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..builder import Builder
from ..registry import Registry
from .s3 import S3, S3Server, missing, serve
from .server import LoopbackServer
from .trees import registered

try:
    import pytest
except ImportError:  # pragma: no cover - dsreg.testing used without pytest
    pytest = None  # type: ignore[assignment]

__all__ = ["dsreg_cache", "dsreg_file_server", "dsreg_register", "dsreg_s3", "dsreg_s3_server", "file_server", "register", "RENAMED"]

#: Old fixture name -> new name. The old names still work and warn once per pytest run.
RENAMED = {"file_server": "dsreg_file_server", "register": "dsreg_register"}


if pytest is not None:
    _WARNED = pytest.StashKey[set]()

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
    def dsreg_file_server() -> Iterator[LoopbackServer]:
        """A loopback HTTP server; ``dsreg_file_server.serve({name: bytes})`` returns its base URL."""
        with LoopbackServer() as server:
            yield server

    @pytest.fixture
    def dsreg_register() -> Iterator[Callable[..., Registry]]:
        """Call ``dsreg_register(*builders)`` to make them the only registered datasets for this test."""
        stack = contextlib.ExitStack()

        def _register(*builders: type[Builder]) -> Registry:
            return stack.enter_context(registered(*builders))

        with stack:
            yield _register

    @pytest.fixture(scope="session")
    def dsreg_s3_server() -> Iterator[S3Server]:
        """A local S3 server (moto on 127.0.0.1), started once per session; skips where moto or s3fs is missing."""
        why = missing()
        if why:
            pytest.skip(why)
        with S3Server() as server:
            yield server

    @pytest.fixture
    def dsreg_s3(dsreg_s3_server: S3Server, monkeypatch: Any) -> Iterator[S3]:
        """The local S3 server for one test: AWS_ENDPOINT_URL and dummy credentials set; ``bucket(name)``, ``upload(data, url)``."""
        yield from serve(monkeypatch, dsreg_s3_server)

    def _old_name(old: str) -> Any:
        """Return a fixture named ``old`` that serves ``RENAMED[old]`` and warns once per run."""
        new = RENAMED[old]

        @pytest.fixture(name=old)
        def alias(request: Any) -> Any:
            warned = request.config.stash.setdefault(_WARNED, set())
            if old not in warned:  # once per run: a suite using it in 80 tests needs to hear it once
                warned.add(old)
                # Pointed at the first test that asked for it: pytest's own frames would say nothing.
                path, lineno, _ = request.node.reportinfo()
                warnings.warn_explicit(
                    f"the dsreg fixture {old!r} is deprecated; request {new!r} instead (same behaviour)",
                    DeprecationWarning,
                    filename=str(path),
                    lineno=(lineno or 0) + 1,
                )
            return request.getfixturevalue(new)

        alias.__doc__ = f"Deprecated name of ``{new}`` (warns once per run)."
        return alias

    file_server = _old_name("file_server")
    register = _old_name("register")
