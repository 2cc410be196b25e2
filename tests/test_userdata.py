"""dsreg.fetching.userdata: a user's data at a folder, archive, single file or remote URL, class folders and splits."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

import dsreg
from dsreg.errors import ArchiveError, ConfigError
from dsreg.fetching import userdata

TREE = {
    "cat/a.png": b"cat-a",
    "cat/b.png": b"cat-b",
    "dog/c.png": b"dog-c",
    "README.txt": b"not data",
    ".DS_Store": b"junk",
}


def write_tree(root: Path, tree: dict[str, bytes]) -> Path:
    for name, data in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def zip_bytes(tree: dict[str, bytes], top: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in tree.items():
            zf.writestr(top + name, data)
    return buf.getvalue()


def tar_bytes(tree: dict[str, bytes], top: str = "", mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in tree.items():
            info = tarfile.TarInfo(top + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


DATA = {k: v for k, v in TREE.items() if k.endswith(".png")}


def test_kind_by_suffix_and_disk(tmp_path: Path) -> None:
    write_tree(tmp_path / "imgs", TREE)
    (tmp_path / "rows.csv").write_text("a,b\n")
    assert userdata.kind(str(tmp_path / "imgs")) == "folder"
    assert userdata.kind(str(tmp_path / "rows.csv")) == "file"
    assert userdata.kind("https://example.invalid/x/data.tar.gz?dl=1") == "archive"
    assert userdata.kind("https://example.invalid/x/rows.csv") == "file"
    assert userdata.kind("s3://bucket/folder/") == "folder"
    with pytest.raises(ConfigError, match="does not exist"):
        userdata.kind(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="-c url="):
        userdata.UserData(None)


def test_files_for_pins_remote_files_only(tmp_path: Path) -> None:
    assert userdata.files_for(None) == ()
    assert userdata.files_for(str(write_tree(tmp_path / "imgs", TREE))) == ()
    (file,) = userdata.files_for("https://example.invalid/a/data.zip")
    assert file.pin_on_first_download and file.urls == ("https://example.invalid/a/data.zip",)
    assert file.name.endswith("-data.zip")
    # Different URLs never share a file record, even with the same base name.
    (other,) = userdata.files_for("https://example.invalid/b/data.zip")
    assert other.name != file.name


def test_folder_walk_skips_junk_and_reads_selected(tmp_path: Path) -> None:
    src = userdata.UserData(str(write_tree(tmp_path / "imgs", TREE)))
    assert src.names() == ["README.txt", "cat/a.png", "cat/b.png", "dog/c.png"]
    assert dict(src.walk(select=lambda p: p.endswith(".png"))) == DATA


@pytest.mark.parametrize("container", ["zip", "tar.gz", "tar"])
def test_local_archives_walk_the_same(tmp_path: Path, container: str) -> None:
    path = tmp_path / f"imgs.{container}"
    path.write_bytes(zip_bytes(TREE, "imgs/") if container == "zip" else tar_bytes(TREE, "imgs/", "w:gz" if container == "tar.gz" else "w"))
    src = userdata.UserData(str(path))
    assert src.kind == "archive"
    assert dict(src.walk(select=lambda p: p.endswith(".png"))) == {f"imgs/{k}": v for k, v in DATA.items()}
    assert sorted(src.names()) == sorted(f"imgs/{k}" for k in TREE if k != ".DS_Store")


def test_unsafe_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    path.write_bytes(zip_bytes({"../escape/a.png": b"x"}))
    with pytest.raises(ArchiveError, match=r"'\.\.'"):
        userdata.UserData(str(path)).names()


def test_remote_folder_through_fsspec_memory() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for name, data in TREE.items():
        fs.pipe(f"/srcs-test/{name}", data)
    try:
        url = "memory://srcs-test/"
        assert userdata.files_for(url) == ()
        assert dict(userdata.UserData(url).walk(lambda p: p.endswith(".png"))) == DATA
        before = userdata.fingerprint(url)
        fs.pipe("/srcs-test/dog/d.png", b"dog-d")
        assert userdata.fingerprint(url) != before
    finally:
        fs.rm("/srcs-test", recursive=True)


def test_fingerprint_follows_local_changes(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "imgs", TREE)
    first = userdata.fingerprint(str(root))
    assert userdata.fingerprint(str(root)) == first
    (root / "dog" / "d.png").write_bytes(b"new")
    assert userdata.fingerprint(str(root)) != first
    assert userdata.fingerprint("https://example.invalid/data.zip") is None
    assert userdata.fingerprint(None) is None


def test_remote_archive_is_fetched_pinned_and_walked(dsreg_cache: Path, dsreg_file_server, dsreg_register) -> None:
    """End to end through the core: get_files() pins the archive, generate() walks the cached copy."""
    base = dsreg_file_server.serve({"pets.zip": zip_bytes(TREE, "pets/")})

    class Pets(dsreg.Builder):
        name = "pets"
        task = "image-classification"
        config = {"url": None, "holdout": 0.5, "seed": 0}
        features = {"data": dsreg.Binary(), "label": dsreg.ClassLabel()}

        def get_files(self):
            return userdata.files_for(self.params["url"])

        def fingerprint(self):
            return userdata.fingerprint(self.params["url"])

        def get_features(self, files=None):
            if files is None:
                return dict(self.features)
            layout = userdata.class_layout(userdata.UserData(self.params["url"], files).names(), [".png"])
            return {"data": dsreg.Binary(), "label": dsreg.ClassLabel(layout.classes)}

        def generate(self, split, files, **config):
            src = userdata.UserData(self.params["url"], files)
            layout = userdata.class_layout(src.names(), [".png"])
            assign = layout.assign(self.params["holdout"], self.params["seed"])
            for path, data in src.walk(select=assign.__contains__):
                if assign[path] == split:
                    yield path, {"data": data, "label": layout.label(path)}

    dsreg_register(Pets)
    url = base + "pets.zip"
    inf = dsreg.fetch("pets", url=url, quiet=True)
    assert inf.classes == ["cat", "dog"]
    (record,) = inf.fetched.values()
    assert record["status"] == "pinned"
    both = dsreg.load("pets", split="train+test", url=url)
    assert sorted(ex["data"] for ex in (both[i] for i in range(len(both)))) == sorted(DATA.values())
    # A later load reads the features recorded at prepare time (no access to the data needed).
    assert dsreg.info("pets", url=url).features["label"].names == ("cat", "dog")


def test_local_folder_change_prepares_again(dsreg_cache: Path, dsreg_register, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "imgs", TREE)

    class Count(dsreg.Builder):
        name = "count"
        config = {"url": None}
        splits = ("all",)
        features = {"n": dsreg.Value("int64")}

        def fingerprint(self):
            return userdata.fingerprint(self.params["url"])

        def generate(self, split, files, **config):
            yield "n", {"n": len(userdata.UserData(self.params["url"]).names())}

    dsreg_register(Count)
    assert dsreg.load("count", split="all", url=str(root))[0]["n"].item() == 4
    (root / "dog" / "d.png").write_bytes(b"new")
    assert dsreg.load("count", split="all", url=str(root))[0]["n"].item() == 5


def test_class_layout_strips_top_folder_and_ignores_loose_files() -> None:
    layout = userdata.class_layout(["shapes/circle/1.png", "shapes/square/2.PNG", "shapes/notes.md"], [".png"])
    assert layout.classes == ("circle", "square")
    assert layout.prefix == "shapes"
    assert layout.splits == ()
    assert layout.ignored == ["shapes/notes.md"]
    assert layout.label("shapes/square/2.PNG") == 1


def test_class_layout_reads_split_folders() -> None:
    paths = ["data/train/a/1.png", "data/train/b/2.png", "data/val/a/3.png", "data/test/b/4.png", "data/test/c/5.png"]
    layout = userdata.class_layout(paths)
    assert layout.splits == ("train", "validation", "test")
    assert layout.classes == ("a", "b", "c")
    assert layout.assign() == {
        "data/train/a/1.png": "train",
        "data/train/b/2.png": "train",
        "data/val/a/3.png": "validation",
        "data/test/b/4.png": "test",
        "data/test/c/5.png": "test",
    }
    # A lone train/ folder is a split, not a top folder to strip.
    assert userdata.class_layout(["train/a/1.png", "train/b/2.png"]).splits == ("train",)


def test_class_layout_without_class_folders_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="class folders"):
        userdata.class_layout(["1.png", "2.png"])


def test_stratified_split_is_seeded_stratified_and_order_free() -> None:
    keys = [f"{c}{i}" for c in "abc" for i in range(10)]
    labels = [k[0] for k in keys]
    split = userdata.stratified_split(keys, labels, holdout=0.2, seed=1)
    assert Counter((k[0], s) for k, s in split.items()) == {(c, s): n for c in "abc" for s, n in (("train", 8), ("test", 2))}
    assert userdata.stratified_split(keys[::-1], labels[::-1], 0.2, seed=1) == split
    assert userdata.stratified_split(keys, labels, 0.2, seed=2) != split
    three = userdata.stratified_split(keys, labels, {"test": 0.1, "validation": 0.2}, seed=0)
    assert Counter(three.values()) == {"train": 21, "validation": 6, "test": 3}


def test_stratified_split_keeps_small_classes_in_train() -> None:
    split = userdata.stratified_split(["x", "y1", "y2"], ["x", "y", "y"], holdout=0.1)
    assert split["x"] == "train"  # a class of one stays in train
    assert sorted(split[k] for k in ("y1", "y2")) == ["test", "train"]  # at least one held out
    with pytest.raises(ConfigError, match="less than 1"):
        userdata.stratified_split(["a"], ["a"], holdout=1.0)


def test_features_round_trip_through_the_manifest_schema() -> None:
    from dsreg.features import from_json

    for feat in (dsreg.Tensor((None, 3), "uint8"), dsreg.ClassLabel(("a", "b")), dsreg.Binary(), dsreg.Text()):
        assert from_json(feat.to_json()) == feat
    assert from_json({"type": "SomePluginFeature"}) is None


def test_the_names_of_0_1_still_import_the_same_module() -> None:
    import dsreg.fetching.sources as old
    import dsreg.sources as flat

    assert old is flat is userdata
    assert old.Source is userdata.UserData
