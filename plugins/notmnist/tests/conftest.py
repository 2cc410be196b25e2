"""Shared pieces of the dsreg-notmnist tests: generated archive pairs and Builders bound to them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import dsreg
from dsreg_notmnist.testing import Pair, make_pair

#: The real test data of the project (../shared/data from the repository root).
DATA = Path(os.environ.get("DSREG_NOTMNIST_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))


def bind(base: type[dsreg.Builder], paths: dict[str, Path]) -> type[dsreg.Builder]:
    """Return ``base`` with its files declared as the generated ones (same names, their sizes and md5s, no URLs)."""
    files = tuple(
        dsreg.File(f.name, urls=(), size=paths[f.name].stat().st_size,
                   md5=hashlib.md5(paths[f.name].read_bytes()).hexdigest())
        for f in base.files
    )
    return type(base.__name__, (base,), {"files": files, "__module__": base.__module__, "__qualname__": base.__qualname__})


def serve(file_server, paths: dict[str, Path]) -> str:
    """Serve the files at ``paths`` from the loopback server; return the mirror URL."""
    return file_server.serve({name: path.read_bytes() for name, path in paths.items()})


def column(ds, name: str):
    """Return one column of a whole dsreg.Dataset as a numpy array (one gather)."""
    return ds.__getitems__(list(range(len(ds))))[name].numpy()


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """A small archive pair in the real layout: 30 + 120 images per class, one corrupt member in each."""
    return make_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture
def idx_data() -> Path:
    folder = DATA / "notmnist-idx"
    if not (folder / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"the real idx files are not at {folder} (set DSREG_NOTMNIST_DATA)")
    return folder
