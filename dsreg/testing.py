"""Test kit for dsreg and plugin authors, also registered as a pytest plugin (``pytest11``).

Fixtures (no network needed):

    dsreg_cache      an isolated cache: DSREG_CACHE points at a tmp dir; returns its Path
    file_server      a loopback HTTP server: ``file_server.serve({"a.bin": b"..."})`` returns the
                     base URL; Range support, injected failures and cut-short responses
    register         register Builder classes in a fresh in-process registry for one test:
                     ``register(MyBuilder, OtherBuilder)``

Plain helpers: ``LoopbackServer`` (the same server, usable outside pytest),
``registered(*builders)`` (a context manager), and for generating a user's data in every
container: ``write_tree(root, {path: bytes})`` (a folder) and ``pack({path: bytes}, "zip" |
"tar" | "tar.gz")`` (archive bytes).
"""

from __future__ import annotations

import contextlib
import http.server
import io
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .builder import Builder
from .plugins import use_registry
from .registry import Registry

__all__ = ["LoopbackServer", "registered", "write_tree", "pack", "dsreg_cache", "file_server", "register"]


@dataclass
class Faults:
    """Misbehaviour to inject, per file name."""

    #: Answer this many requests with HTTP 500 before serving.
    fail: int = 0
    #: Send only this many bytes of the body (with the full Content-Length), then drop the connection.
    cut_after: int | None = None
    #: How many responses to cut short (then serve normally).
    cut_times: int = 1
    #: Ignore Range headers (answer 200 with the whole file).
    ignore_range: bool = False


@dataclass
class _State:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Faults] = field(default_factory=dict)
    log: list[tuple[str, str | None, int]] = field(default_factory=list)
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _serve(self, body: bool) -> None:
        name = self.path.lstrip("/").split("?", 1)[0]
        state = self.state
        data = state.files.get(name)
        fault = state.faults.setdefault(name, Faults())
        rng = self.headers.get("Range")
        if data is None:
            state.log.append((name, rng, 404))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with state.lock:
            failing = fault.fail > 0
            if failing:
                fault.fail -= 1
        if failing:
            state.log.append((name, rng, 500))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if rng and not fault.ignore_range and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
        payload = data[start:]
        status = 206 if start else 200
        state.log.append((name, rng, status))
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "none" if fault.ignore_range else "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        with state.lock:
            cut = fault.cut_after is not None and fault.cut_times > 0
            if cut:
                fault.cut_times -= 1
        if cut:
            part = payload[: fault.cut_after]
            self.wfile.write(part)
            state.bytes_sent += len(part)
            self.wfile.flush()
            # Stall, then drop: the client has read what was sent, as on a real dropped link
            # (aiohttp discards bytes still buffered when the connection error arrives).
            time.sleep(0.3)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        self.wfile.write(payload)
        state.bytes_sent += len(payload)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)


class LoopbackServer:
    """An HTTP server on 127.0.0.1 serving in-memory files, with injectable faults."""

    def __init__(self) -> None:
        self.state = _State()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Base URL ending in ``/``."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def serve(self, files: dict[str, bytes], **faults: Any) -> str:
        """Serve ``files`` (name → bytes); ``faults`` (see Faults) apply to each of them. Return the base URL."""
        for name, data in files.items():
            self.state.files[name] = bytes(data)
            self.state.faults[name] = Faults(**faults)
        return self.url

    def fault(self, name: str, **faults: Any) -> None:
        """Set the faults of one served file."""
        self.state.faults[name] = Faults(**faults)

    @property
    def requests(self) -> list[tuple[str, str | None, int]]:
        """``(file name, Range header, status)`` of every request so far."""
        return list(self.state.log)

    @property
    def bytes_sent(self) -> int:
        return self.state.bytes_sent

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "LoopbackServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def registered(*builders: type[Builder], plugin: str = "tests") -> Iterator[Registry]:
    """Register ``builders`` in a fresh registry (no entry points) for the duration of the block."""
    registry = Registry()
    record = registry.plugin(plugin)
    for builder in builders:
        registry.add_dataset(record, builder)
    with use_registry(registry):
        yield registry


def write_tree(root: Path, tree: dict[str, bytes]) -> Path:
    """Write ``{relative path: bytes}`` under ``root`` (folders made as needed); return ``root``."""
    for name, data in tree.items():
        path = Path(root) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return Path(root)


def pack(tree: dict[str, bytes], fmt: str = "zip") -> bytes:
    """Return ``{member path: bytes}`` as a ``zip``, ``tar`` or ``tar.gz`` archive, members in the given order."""
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in tree.items():
                zf.writestr(name, data)
    elif fmt in ("tar", "tar.gz"):
        with tarfile.open(fileobj=buf, mode="w:gz" if fmt == "tar.gz" else "w") as tf:
            for name, data in tree.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    else:
        raise ValueError(f"archive format {fmt!r} is not zip, tar or tar.gz")
    return buf.getvalue()


# -- pytest fixtures (active when the dsreg pytest plugin is loaded) --------------------------
try:
    import pytest
except ImportError:  # pragma: no cover - dsreg.testing used without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def dsreg_cache(tmp_path: Path, monkeypatch: Any) -> Path:
        """An empty cache in a tmp dir (DSREG_CACHE), online, with no user mirrors or config."""
        root = tmp_path / "dsreg-cache"
        monkeypatch.setenv("DSREG_CACHE", str(root))
        monkeypatch.setenv("DSREG_CONFIG", str(tmp_path / "no-config.toml"))
        monkeypatch.setenv("DSREG_BACKOFF", "0")
        for name in ("DSREG_OFFLINE", "DSREG_MIRRORS"):
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
