"""dsreg.FolderBuilder: class folders from any URL, split folders or the one holdout rule, one scan."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import dsreg
from dsreg.errors import ConfigError
from dsreg.folder import FolderBuilder, holdout_fractions, holdout_splits
from dsreg.testing import pack, write_tree


class ByteFolder(FolderBuilder):
    """The smallest folder dataset: each .bin file's bytes, labelled by its class folder."""

    name = "bytefolder"
    description = "bytes in class folders (a test of dsreg.FolderBuilder)"
    features = {"data": dsreg.Binary(), "label": dsreg.ClassLabel()}
    extensions = (".bin",)

    def file_record(self, path: str, data: bytes, label: int) -> dict[str, Any]:
        return {"data": data, "label": label}


class SizedFolder(ByteFolder):
    """Probes every file before preparing: its length, or unreadable when it is empty."""

    name = "sizedfolder"
    probed: list[str] = []

    def probe_file(self, path: str, data: bytes) -> int:
        SizedFolder.probed.append(path)
        if not data:
            raise ValueError("empty")
        return len(data)


def tree(per_class: dict[str, int], prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{cls}/{i:02d}.bin": f"{cls}-{i}".encode() for cls, n in per_class.items() for i in range(n)}


CLASSES = {"ant": 10, "bee": 5, "cat": 1}


@pytest.fixture
def folders(dsreg_cache: Path, dsreg_register: Any) -> None:
    dsreg_register(ByteFolder, SizedFolder)


def contents(splits: dict[str, Any]) -> dict[str, list[bytes]]:
    return {name: sorted(ds[i]["data"] for i in range(len(ds))) for name, ds in splits.items()}


def test_holdout_is_per_class_seeded_and_never_takes_a_class_last_file(folders: None, tmp_path: Path) -> None:
    url = str(write_tree(tmp_path / "data", tree(CLASSES)))
    splits = dsreg.load("bytefolder", url=url)
    assert list(splits) == ["train", "test"] and splits["train"].classes == ["ant", "bee", "cat"]
    test = splits["test"]
    # round(n * 0.2) of each class, at least one of a class with two or more, none of a class of one.
    assert Counter(test.classes[int(test[i]["label"])] for i in range(len(test))) == {"ant": 2, "bee": 1}
    assert contents(dsreg.load("bytefolder", url=url, seed=0)) == contents(splits)
    assert contents(dsreg.load("bytefolder", url=url, seed=1))["test"] != contents(splits)["test"]
    notes = dsreg.info("bytefolder", url=url).manifest["notes"]
    assert notes["classes"] == 3 and notes["splits_from"] == "holdout 0.2 (class-stratified, seed 0)"


def test_every_container_splits_the_same_files(folders: None, tmp_path: Path, dsreg_file_server: Any) -> None:
    files = tree(CLASSES)
    expected = contents(dsreg.load("bytefolder", url=str(write_tree(tmp_path / "plain", files))))
    wrapped = tree(CLASSES, prefix="top/")  # an archive made from a folder: the top folder is not a class
    (tmp_path / "data.zip").write_bytes(pack(wrapped, "zip"))
    (tmp_path / "data.tar.gz").write_bytes(pack(dict(reversed(wrapped.items())), "tar.gz"))  # order does not matter
    base = dsreg_file_server.serve({"data.tar.gz": pack(wrapped, "tar.gz")})
    for url in (str(tmp_path / "data.zip"), str(tmp_path / "data.tar.gz"), base + "data.tar.gz"):
        assert contents(dsreg.load("bytefolder", url=url)) == expected, url


def test_split_folders_win_and_are_known_before_preparing(folders: None, tmp_path: Path) -> None:
    files = {**tree({"ant": 3, "bee": 3}, "train/"), **tree({"ant": 1, "bee": 1}, "val/"), **tree({"ant": 2}, "test/")}
    url = str(write_tree(tmp_path / "split", files))
    assert dsreg.info("bytefolder", url=url, holdout=0.5).splits == ("train", "validation", "test")
    splits = dsreg.load("bytefolder", url=url, holdout=0.5)
    assert {name: len(ds) for name, ds in splits.items()} == {"train": 6, "validation": 2, "test": 2}
    assert dsreg.info("bytefolder", url=url, holdout=0.5).manifest["notes"]["splits_from"] == "folders"


def test_holdout_names_the_splits(folders: None, tmp_path: Path) -> None:
    url = str(write_tree(tmp_path / "data", tree(CLASSES)))
    assert list(dsreg.load("bytefolder", url=url, holdout=0)) == ["train"]
    three = dsreg.load("bytefolder", url=url, holdout={"test": 0.2, "validation": 0.2})
    assert list(three) == ["train", "validation", "test"]
    assert sum(len(ds) for ds in three.values()) == 16


def test_holdout_rule_in_one_place() -> None:
    assert holdout_splits(0.2) == ("train", "test")
    assert holdout_splits(0) == ("train",)
    assert holdout_splits({"test": 0.1, "extra": 0.1, "validation": 0.1}) == ("train", "validation", "test", "extra")
    assert holdout_splits({"validation": 0.0, "test": 0.3}) == ("train", "test")
    assert holdout_fractions(0.25) == {"test": 0.25}
    for bad, message in [
        ("lots", "not a fraction"),
        (True, "not a fraction"),
        (1.0, "from 0 to below 1"),
        (-0.1, "from 0 to below 1"),
        ({"train": 0.1}, "names train"),
        ({"Test": 0.1}, "lower-case"),
        ({"test": 0.5, "validation": 0.5}, "sum to less than 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            holdout_fractions(bad)


def test_bad_config_is_refused_before_any_work(folders: None) -> None:
    with pytest.raises(ConfigError, match="holdout 'lots' is not a fraction"):
        dsreg.info("bytefolder", url="/nowhere", holdout="lots")
    with pytest.raises(ConfigError, match="seed '1' must be a whole number"):
        ByteFolder(seed="1")
    with pytest.raises(ConfigError, match="-c url="):
        dsreg.fetch("bytefolder", quiet=True)


def test_other_files_are_left_out_and_noted(folders: None, tmp_path: Path) -> None:
    files = {**tree({"ant": 2, "bee": 2}), "README.md": b"about", "ant/notes.txt": b"x"}
    url = str(write_tree(tmp_path / "data", files))
    info = dsreg.fetch("bytefolder", url=url, holdout=0, quiet=True)
    assert info.manifest["splits"]["train"]["examples"] == 4
    assert info.manifest["notes"]["ignored_files"] == {"count": 2, "first": ["README.md", "ant/notes.txt"]}
    with pytest.raises(ConfigError, match="found no class folders"):
        dsreg.fetch("bytefolder", url=str(write_tree(tmp_path / "flat", {"a.bin": b"a"})), quiet=True)


def test_a_changed_folder_is_prepared_again(folders: None, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "data", tree({"ant": 2, "bee": 2}))
    assert len(dsreg.load("bytefolder", split="train", url=str(root), holdout=0)) == 4
    (root / "bee" / "new.bin").write_bytes(b"new")
    assert len(dsreg.load("bytefolder", split="train", url=str(root), holdout=0)) == 5


def test_probe_reads_each_file_once_and_keeps_what_it_learnt(folders: None, tmp_path: Path) -> None:
    files = {**tree({"ant": 3, "bee": 2}), "bee/empty.bin": b"", "notes.txt": b"not data"}
    url = str(write_tree(tmp_path / "data", files))
    SizedFolder.probed.clear()
    builder = SizedFolder(url=url, holdout=0)
    scan = builder.scan({})
    assert sorted(SizedFolder.probed) == sorted(p for p in files if p.endswith(".bin"))
    assert scan.probes["ant/00.bin"] == len(b"ant-0") and scan.unreadable == ["bee/empty.bin"]
    assert builder.scan({}) is scan and len(SizedFolder.probed) == 6  # cached: no second pass
    # generate reads its config from self.params: the core calls it with no keyword arguments.
    assert sorted(key for key, _ in builder.generate("train", {})) == sorted(p for p in files if p.endswith(".bin"))
    assert builder.get_features({})["label"] == dsreg.ClassLabel(["ant", "bee"])


def test_split_folders_of_a_remote_archive_are_found_once_fetched(folders: None, dsreg_file_server: Any) -> None:
    files = {**tree({"ant": 3, "bee": 3}, "train/"), **tree({"ant": 1, "bee": 1}, "val/"), **tree({"ant": 2}, "test/")}
    url = dsreg_file_server.serve({"split.zip": pack(files, "zip")}) + "split.zip"
    splits = dsreg.load("bytefolder", url=url)
    assert {name: len(ds) for name, ds in splits.items()} == {"train": 6, "validation": 2, "test": 2}
    assert dsreg.info("bytefolder", url=url).splits == ("train", "validation", "test")


def test_a_class_label_without_names_says_where_they_come_from() -> None:
    # Before a folder dataset's data is read (dsreg info, the catalog), its classes are not known yet.
    assert dsreg.ClassLabel(names=[]).describe() == "class label (names read from the data)"
    assert dsreg.ClassLabel(names=["cat", "dog"]).describe() == "class label (2: cat, dog)"
