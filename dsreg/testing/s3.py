"""A local S3 server for tests: moto in server mode on 127.0.0.1, and the client settings that reach it.

``S3Server`` starts one (``with S3Server() as server:``); ``S3`` is what the ``dsreg_s3`` fixture
yields: the server's ``endpoint``, ``bucket(name)`` (creates it, returns ``s3://name/``),
``upload(data_or_path, url)`` (bytes, a file or a whole folder) and ``filesystem()`` (an s3fs
filesystem on the server). The fixture points the standard AWS variables (``AWS_ENDPOINT_URL``,
dummy ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``) at the server for one
test, so dsreg (through s3fs) finds it the way it would find a real one.

moto and s3fs are imported only when a server starts (``pip install 'moto[server]' s3fs``, both in
dsreg's ``test`` extra); without them the fixture skips, saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["S3Server", "S3", "missing", "ENV"]

#: The variables the fixture sets, and the values that do not depend on the server.
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
#: Variables that would send the clients elsewhere or to other credentials: removed for the test.
_CLEARED = ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "FSSPEC_S3_ENDPOINT_URL")


def missing() -> str | None:
    """Return why a local S3 server cannot run here (a package is missing), or None if it can."""
    import importlib.util

    for module, package in (("moto", "moto[server]"), ("flask", "moto[server]"), ("s3fs", "s3fs")):
        if importlib.util.find_spec(module) is None:
            return f"the local S3 server needs {package}: pip install 'moto[server]' s3fs (both in dsreg's test extra)"
    return None


class S3Server:
    """moto's S3 in server mode on 127.0.0.1 and a free port, in a thread of this process."""

    def __init__(self) -> None:
        self._server: Any = None
        self.endpoint = ""

    def start(self) -> S3Server:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset call)."""
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30).close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def environ(self) -> dict[str, str]:
        """Return the AWS variables that point a client at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, **ENV}

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class S3:
    """One test's handle on the local S3 server (what the ``dsreg_s3`` fixture yields)."""

    server: S3Server

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def filesystem(self) -> Any:
        """Return an s3fs filesystem on the server (a fresh one: no listing cached from earlier)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=ENV["AWS_ACCESS_KEY_ID"], secret=ENV["AWS_SECRET_ACCESS_KEY"], endpoint_url=self.endpoint, skip_instance_cache=True
        )

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (3 to 63 lower-case letters, digits, '-' or '.') and return ``s3://name/``."""
        self.filesystem().mkdir(name)
        return f"s3://{name}/"

    def upload(self, data: bytes | str | os.PathLike[str] | Mapping[str, bytes], url: str) -> str:
        """Put ``data`` at ``url`` and return ``url``.

        ``data`` is bytes (one object), a local file, a local folder (uploaded under ``url``, which
        then names a folder), or ``{relative path: bytes}`` (objects under ``url``).
        """
        fs = self.filesystem()
        key = url.split("://", 1)[1] if "://" in url else url
        if isinstance(data, bytes):
            fs.pipe(key, data)
        elif isinstance(data, Mapping):
            fs.pipe({f"{key.rstrip('/')}/{rel}": value for rel, value in data.items()})
        elif Path(data).is_dir():
            root = Path(data)
            fs.pipe({f"{key.rstrip('/')}/{p.relative_to(root).as_posix()}": p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()})
        else:
            fs.pipe(key, Path(data).read_bytes())
        return url

    def clear_clients(self) -> None:
        """Drop s3fs's cached filesystems, so the next one reads the environment (and listings) afresh."""
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


def serve(monkeypatch: Any, server: S3Server) -> Iterator[S3]:
    """Point the AWS variables at ``server`` for one test (through ``monkeypatch``); yield its handle, then empty it."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environ().items():
        monkeypatch.setenv(name, value)
    handle = S3(server)
    handle.clear_clients()
    try:
        yield handle
    finally:
        handle.clear_clients()
        server.reset()
