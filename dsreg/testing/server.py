"""Test kit: ``LoopbackServer``, a loopback HTTP server with Range support and injected ``Faults``."""

from __future__ import annotations

import contextlib
import http.server
import sys
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Faults:
    """Misbehaviour to inject, per file name; each ``*_times`` counts the responses it spoils."""

    #: Answer this many requests with ``status`` (and Retry-After, if set) before serving.
    fail: int = 0
    status: int = 500
    retry_after: str | None = None
    #: Send only this many bytes of the body (with the full Content-Length), then drop the connection
    #: after ``cut_pause`` seconds (0: the data and the close arrive together).
    cut_after: int | None = None
    cut_times: int = 1
    cut_pause: float = 0.3
    #: Stall for ``stall`` seconds (then drop the connection): before the headers, or after
    #: ``stall_after`` bytes of the body.
    stall: float = 0.0
    stall_before_headers: bool = False
    stall_after: int | None = None
    stall_times: int = 1
    #: Ignore Range headers (answer 200 with the whole file).
    ignore_range: bool = False
    #: Answer a Range request from the wrong place: this many bytes off the asked start (e.g.
    #: ``-start`` for the whole file), with a Content-Range that says so.
    range_shift: int = 0
    #: Send the body in pieces of ``trickle`` bytes, ``trickle_pause`` seconds apart.
    trickle: int = 0
    trickle_pause: float = 0.0
    content_type: str = "application/octet-stream"
    #: Answer with a redirect (302) to this URL or path instead of the file.
    redirect: str | None = None


@dataclass
class _State:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Faults] = field(default_factory=dict)
    log: list[tuple[str, str | None, int]] = field(default_factory=list)
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set on close: every stall ends at once, so no handler outlives the server.
    closing: threading.Event = field(default_factory=threading.Event)

    def take(self, fault: Faults, counter: str) -> bool:
        """Use up one of ``fault``'s ``counter`` (e.g. "cut_times"); return whether one was left."""
        with self.lock:
            left = getattr(fault, counter)
            if left > 0:
                setattr(fault, counter, left - 1)
            return left > 0


class _Handler(http.server.BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _drop(self, pause: float) -> None:
        """Wait ``pause`` seconds (or until the server closes), then drop the connection."""
        self.wfile.flush()
        if pause:
            self.state.closing.wait(pause)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(2)

    def _send(self, payload: bytes) -> None:
        self.wfile.write(payload)
        with self.state.lock:
            self.state.bytes_sent += len(payload)

    def _empty(self, name: str, rng: str | None, status: int, retry_after: str | None = None) -> None:
        self.state.log.append((name, rng, status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()

    def _serve(self, body: bool) -> None:
        name = self.path.lstrip("/").split("?", 1)[0]
        state = self.state
        data = state.files.get(name)
        fault = state.faults.setdefault(name, Faults())
        rng = self.headers.get("Range")
        if data is None:
            return self._empty(name, rng, 404)
        if state.take(fault, "fail"):
            return self._empty(name, rng, fault.status, fault.retry_after)
        if fault.redirect is not None:
            state.log.append((name, rng, 302))
            self.send_response(302)
            self.send_header("Location", fault.redirect)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        stalling = (fault.stall_before_headers or fault.stall_after is not None) and state.take(fault, "stall_times")
        if stalling and fault.stall_before_headers:
            state.log.append((name, rng, 0))  # 0: no answer
            return self._drop(fault.stall)
        start = 0
        if rng and not fault.ignore_range and rng.startswith("bytes=") and rng.endswith("-"):
            if int(rng[6:-1]) >= len(data):
                return self._empty(name, rng, 416)  # nothing from there on: the .part is longer than the file
            start = max(0, min(len(data), int(rng[6:-1]) + fault.range_shift))
        payload = data[start:]
        status = 206 if rng and not fault.ignore_range else 200
        state.log.append((name, rng, status))
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", fault.content_type)
        self.send_header("Accept-Ranges", "none" if fault.ignore_range else "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        if stalling:
            self._send(payload[: fault.stall_after])
            return self._drop(fault.stall)
        if fault.cut_after is not None and state.take(fault, "cut_times"):
            self._send(payload[: fault.cut_after])
            return self._drop(fault.cut_pause)
        step = fault.trickle or len(payload) or 1
        for at in range(0, len(payload), step):
            if at and fault.trickle_pause:
                self.wfile.flush()
                if state.closing.wait(fault.trickle_pause):
                    return self._drop(0)
            self._send(payload[at : at + step])

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (it gave up on a stall, or dropped a body it did not want) is part
        # of the tests, not a server error worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """An HTTP server on 127.0.0.1 serving in-memory files, with injectable faults (see ``Faults``)."""

    def __init__(self) -> None:
        self.state = _State()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        # A short poll interval: closing waits for the next poll, and the default 0.5 s was paid by
        # every test that used a server.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
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
        """``(file name, Range header, status)`` of every request so far (status 0: stalled, no answer)."""
        return list(self.state.log)

    @property
    def bytes_sent(self) -> int:
        return self.state.bytes_sent

    def close(self) -> None:
        self.state.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
