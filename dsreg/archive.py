"""Read archives as streams, never extracting them to disk, and refuse unsafe members.

``members(path)`` yields ``(member path, bytes)`` for every regular file of a tar (plain, gz, bz2,
xz; read once, front to back) or zip archive. Every member path is checked first: absolute paths,
``..`` components, links and devices raise ArchiveError naming the member. ``open_compressed``
opens a single gzip/bz2/xz-compressed (or plain) file.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import posixpath
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Callable, Iterator

from .errors import ArchiveError

__all__ = ["members", "open_compressed", "check_member_name", "detect"]

# Magic bytes at offset 0 → format, table-driven like torchvision's archive helpers.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # empty zip
)
_OPENERS: dict[str, Callable[..., IO[bytes]]] = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}


def detect(path: str | Path) -> str:
    """Return ``tar``, ``zip``, ``gzip``, ``bz2``, ``xz`` (a compressed tar or file) or ``plain``."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "plain"


def open_compressed(path: str | Path) -> IO[bytes]:
    """Open ``path`` for reading, decompressing gzip, bz2 or xz transparently."""
    kind = detect(path)
    return _OPENERS[kind](path, "rb") if kind in _OPENERS else open(path, "rb")


def check_member_name(name: str, archive: str = "archive") -> str:
    """Return the normalised member path, or raise ArchiveError if it could escape a target folder."""
    if "\\" in name:
        name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to read this archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive}: member {name!r} climbs out with '..'; refusing to read this archive")
    return posixpath.join(*parts) if parts else ""


def members(path: str | Path, *, label: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member path, bytes)`` for each regular file in the tar or zip archive at ``path``."""
    label = label or Path(path).name
    kind = detect(path)
    if kind == "zip":
        yield from _zip_members(path, label)
        return
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                name = check_member_name(info.name, label)
                if info.isdir():
                    continue
                if info.issym() or info.islnk():
                    raise ArchiveError(f"{label}: member {info.name!r} is a link; refusing to read this archive")
                if not info.isfile():
                    raise ArchiveError(f"{label}: member {info.name!r} is a device or special file; refusing to read this archive")
                handle = tar.extractfile(info)
                yield name, handle.read() if handle else b""
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as exc:
        raise ArchiveError(f"{label} is not a readable tar or zip archive ({exc}); fetch it again with `--force`") from exc


def _zip_members(path: str | Path, label: str) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = check_member_name(info.filename, label)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ArchiveError(f"{label}: member {info.filename!r} is a link; refusing to read this archive")
                if info.is_dir() or not name:
                    continue
                # Only the type bits matter: zips written by Python's zipfile carry permission
                # bits alone (0o600), which are a regular file.
                if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                    raise ArchiveError(f"{label}: member {info.filename!r} is a device or special file; refusing to read this archive")
                yield name, zf.read(info)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{label} is not a readable zip archive ({exc}); fetch it again with `--force`") from exc
