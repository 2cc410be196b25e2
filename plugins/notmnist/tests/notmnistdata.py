"""Helpers of the dsreg-notmnist tests: where the real data is, and Builders bound to generated archives."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dsreg

#: The real test data of the project (../shared/data from the repository root).
DATA = Path(os.environ.get("DSREG_NOTMNIST_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))


def bind(base: type[dsreg.Builder], paths: dict[str, Path]) -> type[dsreg.Builder]:
    """Return ``base`` with its files declared as the generated ones (same names, their sizes and md5s, no URLs)."""
    files = tuple(
        dsreg.File(f.name, urls=(), size=paths[f.name].stat().st_size, md5=hashlib.md5(paths[f.name].read_bytes()).hexdigest())
        for f in base.files
    )
    return type(base.__name__, (base,), {"files": files, "__module__": base.__module__, "__qualname__": base.__qualname__})


def serve(file_server, paths: dict[str, Path]) -> str:
    """Serve the files at ``paths`` from the loopback server; return the mirror URL."""
    return file_server.serve({name: path.read_bytes() for name, path in paths.items()})


def column(ds, name: str):
    """Return one column of a whole dsreg.Dataset as a numpy array (one gather)."""
    return ds.__getitems__(list(range(len(ds))))[name].numpy()
