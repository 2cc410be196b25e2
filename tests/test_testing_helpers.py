"""dsreg.testing's data helpers: a folder tree and zip/tar/tar.gz archives a plugin's tests read back."""

from __future__ import annotations

import pytest

from dsreg.fetching import archive
from dsreg.testing import pack, write_tree

TREE = {"b/one.txt": b"1", "a/two.txt": b"22", "three.bin": bytes(range(256))}


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz"])
def test_pack_round_trips_through_the_core_reader(tmp_path, fmt):
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(pack(TREE, fmt))
    assert list(archive.members(path)) == list(TREE.items())  # the given order is kept
    assert archive.detect(path) == {"zip": "zip", "tar": "tar", "tar.gz": "gzip"}[fmt]


def test_pack_rejects_unknown_format():
    with pytest.raises(ValueError, match="not zip, tar or tar.gz"):
        pack(TREE, "rar")


def test_write_tree_makes_folders(tmp_path):
    root = write_tree(tmp_path / "data", TREE)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == sorted(TREE)
    assert (root / "three.bin").read_bytes() == bytes(range(256))
