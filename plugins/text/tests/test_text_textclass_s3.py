"""``textclass`` on s3:// (the dsreg_s3 fixture's local server): a folder of objects and a .tar.gz give the local folder's examples."""

from __future__ import annotations

import dsreg
from dsreg.testing import pack, write_tree
from dsreg_text.builders import TextClass

from textdata import jsonl_bytes, rows

PAIRS = rows(30)
TREE = {"train.jsonl": jsonl_bytes(PAIRS[:20]), "test.jsonl": jsonl_bytes(PAIRS[20:])}


def texts(splits: dict) -> dict[str, list[tuple[str, int]]]:
    return {s: sorted((ds[i]["text"], int(ds[i]["label"])) for i in range(len(ds))) for s, ds in splits.items()}


def test_textclass_reads_a_folder_and_an_archive_on_s3(dsreg_cache, dsreg_register, dsreg_s3, tmp_path) -> None:
    dsreg_register(TextClass)
    base = dsreg_s3.bucket("text-data")
    dsreg_s3.upload(TREE, base + "reviews/")
    archive = dsreg_s3.upload(pack(TREE, "tar.gz"), base + "reviews.tar.gz")
    expected = texts(dsreg.load("textclass", url=str(write_tree(tmp_path / "local", TREE))))
    assert {s: len(v) for s, v in expected.items()} == {"train": 20, "test": 10}
    assert texts(dsreg.load("textclass", url=base + "reviews/")) == expected
    assert texts(dsreg.load("textclass", url=archive)) == expected
