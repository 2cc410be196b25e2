"""Probe: ask each URL of a dataset's files whether it still serves the file, without downloading it into the cache.

``dsreg check-urls`` is built on this, so a plugin's CI finds a dead mirror before its users do.
Each URL of each file (the user's mirrors first, then the published URLs, the order a download
tries them in) gets one ``URLCheck``:

    ok      it answers, with the published size when it says a size (and, deep, the published hash)
    dead    it does not serve the file: HTTP 404 or another error status, no connection, a timeout
    wrong   it serves something else: another size, an HTML page, (deep) other bytes

http(s) is asked with HEAD, or with a GET of ``Range: bytes=0-0`` where HEAD is refused, through
the download's own client (``download.open_http``: the same connect and idle timeouts,
DSREG_TIMEOUT and DSREG_CONNECT_TIMEOUT, and DSREG_NETWORK); every other URL (a local path,
``file://``, ``memory://``, s3...) through fsspec's ``info``. A deep probe (``deep=True``) reads
every byte and compares the published sha256 (or md5). One attempt per URL, no retry: a probe
reports the state of a mirror, it does not fight for the bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..builder import File
from ..errors import FetchError
from . import config, objectstore
from .download import CHUNK, Decision, Failure, _is_http, _reason, mirror_url, open_http, status_failure

__all__ = ["URLCheck", "FileCheck", "probe_url", "probe_files", "sources"]

#: URLs probed at once: a dead mirror costs up to the connect timeout, so they are not asked in turn.
PARALLEL = 8
#: What a HEAD answered with when the server will not do HEAD; the same URL is then asked with GET bytes=0-0.
_NO_HEAD = {400, 403, 405, 501}


@dataclass(frozen=True)
class URLCheck:
    """What one URL answered for one file."""

    url: str
    #: "ok", "dead" or "wrong" (see the module docstring).
    state: str
    #: One line: the size it serves, or what is wrong with it.
    detail: str
    #: The size the URL says it serves (deep: the bytes it sent), when known.
    size: int | None = None
    #: The sha256 of the bytes it sent (deep probes only).
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "state": self.state, "detail": self.detail, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class FileCheck:
    """Every URL of one file of one dataset, probed."""

    dataset: str
    file: str
    urls: tuple[URLCheck, ...]

    @property
    def alive(self) -> bool:
        """True when at least one URL serves the file as published."""
        return any(check.ok for check in self.urls)

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "file": self.file, "alive": self.alive, "urls": [u.to_json() for u in self.urls]}


def sources(dataset: str, file: File, mirrors: Sequence[str] = ()) -> list[str]:
    """Return the URLs a download of ``file`` tries, in order: ``mirrors``, the user's configured mirrors, its published URLs."""
    bases = [*mirrors, *config.user_mirrors(dataset)]
    return [mirror_url(base, file.name) for base in bases] + list(file.urls)


def probe_files(dataset: str, files: Iterable[File], *, mirrors: Sequence[str] = (), deep: bool = False) -> list[FileCheck]:
    """Probe every URL of every file in ``files`` (``mirrors`` first); return one FileCheck per file, in order."""
    files = list(files)
    asked = [(file, url) for file in files for url in sources(dataset, file, mirrors)]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        answers = list(pool.map(lambda pair: probe_url(pair[1], pair[0], deep=deep), asked))
    by_file: dict[str, list[URLCheck]] = {}
    for (file, _), answer in zip(asked, answers):
        by_file.setdefault(file.name, []).append(answer)
    return [FileCheck(dataset, file.name, tuple(by_file.get(file.name, ()))) for file in files]


def probe_url(url: str, file: File, *, deep: bool = False) -> URLCheck:
    """Ask ``url`` whether it serves ``file``: alive, of the published size and (``deep``) hash."""
    try:
        config.check_network(url)
        if deep:
            return _judge_bytes(url, file, *_read_all(url))
        size = _http_size(url, file) if _is_http(url) else _fsspec_size(url)
    except Failure as failure:
        return URLCheck(url, "dead", failure.reason)
    except FetchError as exc:  # DSREG_NETWORK forbids this host
        return URLCheck(url, "dead", str(exc))
    except _Wrong as wrong:
        return URLCheck(url, "wrong", str(wrong))
    except FileNotFoundError:
        return URLCheck(url, "dead", "not found")
    except IsADirectoryError:
        return URLCheck(url, "dead", "a folder, not a file")
    except Exception as exc:
        return URLCheck(url, "dead", _reason(exc))
    if size is None:
        return URLCheck(url, "ok", "alive; the server does not say the size")
    if file.size is not None and size != file.size:
        return URLCheck(url, "wrong", f"size {size:,} bytes, expected {file.size:,}", size)
    return URLCheck(url, "ok", f"{size:,} bytes" + ("" if file.size is not None else " (no published size)"), size)


class _Wrong(Exception):
    """The URL answers, but with something other than the file."""


def _http_size(url: str, file: File) -> int | None:
    """Return the size ``url`` says it serves: HEAD's Content-Length, or the total of GET bytes=0-0's Content-Range."""
    conn, response = open_http(url, method="HEAD")
    try:
        status = response.status
        if status in _NO_HEAD:
            conn.close()
            conn, response = open_http(url, last=0)
            status = response.status
        if status not in (200, 206):
            raise status_failure(status, response.reason, response.getheader("Retry-After"))
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if kind == "text/html" and not file.name.lower().endswith((".html", ".htm")):
            raise _Wrong("serves an HTML page (Content-Type text/html), not the file")
        if status == 206:
            header = response.getheader("Content-Range") or ""
            total = header.rpartition("/")[2].strip()
            return int(total) if total.isdigit() else None
        length = response.getheader("Content-Length") or ""
        return int(length) if length.isdigit() else None
    finally:
        conn.close()  # a GET's body is not read: closing drops it


def _fsspec_size(url: str) -> int | None:
    fs, path = objectstore.url_to_fs(url)
    info = fs.info(path)
    if info.get("type") == "directory":
        raise IsADirectoryError(path)
    size = info.get("size")
    return int(size) if size is not None else None


def _read_all(url: str) -> tuple[int, str, str]:
    """Read every byte ``url`` serves; return (size, sha256, md5)."""
    sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    if _is_http(url):
        conn, response = open_http(url)
        try:
            if response.status != 200:
                raise status_failure(response.status, response.reason, response.getheader("Retry-After"))
            while chunk := _read_chunk(response, size):
                sha256.update(chunk)
                md5.update(chunk)
                size += len(chunk)
        finally:
            conn.close()
    else:
        fs, path = objectstore.url_to_fs(url)
        with fs.open(path, "rb") as source:
            while chunk := source.read(CHUNK):
                sha256.update(chunk)
                md5.update(chunk)
                size += len(chunk)
    return size, sha256.hexdigest(), md5.hexdigest()


def _read_chunk(response: Any, received: int) -> bytes:
    try:
        return response.read1(CHUNK)
    except TimeoutError:
        raise Failure(f"stalled: no byte for {config.timeout():g} s after {received:,} bytes", Decision.NEXT) from None
    except OSError as exc:
        raise Failure(f"connection dropped after {received:,} bytes ({_reason(exc)})", Decision.NEXT) from None


def _judge_bytes(url: str, file: File, size: int, sha256: str, md5: str) -> URLCheck:
    if file.size is not None and size != file.size:
        return URLCheck(url, "wrong", f"size {size:,} bytes, expected {file.size:,}", size, sha256)
    if file.checksum is None:
        return URLCheck(url, "ok", f"{size:,} bytes, sha256 {sha256} (no published checksum)", size, sha256)
    algo, expected = file.checksum
    actual = sha256 if algo == "sha256" else md5
    if actual != expected:
        return URLCheck(url, "wrong", f"{algo} {actual}, expected {expected}", size, sha256)
    return URLCheck(url, "ok", f"{size:,} bytes, {algo} matches", size, sha256)
