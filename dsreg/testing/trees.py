"""Test kit: a throwaway registry (``registered``) and a user's data as a folder (``write_tree``) or archive bytes (``pack``)."""

from __future__ import annotations

import contextlib
import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..builder import Builder
from ..plugins import use_registry
from ..registry import Registry


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
