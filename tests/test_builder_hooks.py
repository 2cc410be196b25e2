"""Builder hooks for configurations whose columns or decoding depend on the data."""

from __future__ import annotations

from pathlib import Path

import torch

import dsreg
from dsreg.store.collate import Batch


def make(stored: str) -> type[dsreg.Builder]:
    class Shapes(dsreg.Builder):
        """Features found at prepare time; decoding on access only when stored as bytes."""

        name = "hooks"
        config = {"stored": stored, "tag": "a"}
        splits = ("all",)
        features = {"x": dsreg.Binary()}
        prints: list[str] = []

        def fingerprint(self):
            return self.params["tag"]

        def get_features(self, files=None):
            if self.params["stored"] == "tensor":
                return {"x": dsreg.Tensor((2,), "int64"), "label": dsreg.ClassLabel(("lo", "hi"))}
            return {"x": dsreg.Binary(), "label": dsreg.ClassLabel(("lo", "hi"))}

        def generate(self, split, files):
            for i in range(4):
                value = [i, i] if self.params["stored"] == "tensor" else bytes([i, i])
                yield str(i), {"x": value, "label": i // 2}

        def decodes_on_access(self):
            return not isinstance(self.get_features()["x"], dsreg.Tensor)

        def decode_example(self, example):
            x = example["x"]
            return {**example, "x": torch.tensor(list(x)) if isinstance(x, bytes) else x}

    return Shapes


def test_features_from_get_features_are_stored_and_served(dsreg_cache: Path, dsreg_register) -> None:
    dsreg_register(make("tensor"))
    inf = dsreg.fetch("hooks", quiet=True)
    assert list(inf.manifest["schema"]["label"]["names"]) == ["lo", "hi"]
    ds = dsreg.load("hooks", split="all")
    assert ds.classes == ["lo", "hi"]
    assert isinstance(ds.__getitems__([0, 3]), Batch)  # fixed columns keep the one-gather path
    assert ds.loader(batch_size=4).__iter__().__next__()["x"].tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]


def test_decode_on_access_is_chosen_per_configuration(dsreg_cache: Path, dsreg_register) -> None:
    dsreg_register(make("bytes"))
    ds = dsreg.load("hooks", split="all", stored="bytes")
    items = ds.__getitems__([1, 2])
    assert not isinstance(items, Batch) and items[1]["x"].tolist() == [2, 2]


def test_fingerprint_joins_the_config_id() -> None:
    builder = make("tensor")
    assert builder(tag="a").config_id != builder(tag="b").config_id
    # Without a fingerprint the id is what it always was (version and config only).
    plain = type("Plain", (builder,), {"fingerprint": lambda self: None})
    assert plain(tag="a").config_id != builder(tag="a").config_id


def test_splits_found_in_the_input_are_planned_and_served_in_their_order(dsreg_cache: Path, dsreg_register, tmp_path: Path) -> None:
    """A builder whose splits depend on its input finds them in plan() (a cheap listing), before any data is read."""
    for split in ("train", "validation", "test"):
        (tmp_path / "input" / split).mkdir(parents=True)

    class Found(dsreg.Builder):
        name = "found"
        config = {"root": str(tmp_path / "input")}
        features = {"v": dsreg.Value("int64")}

        def get_splits(self):
            order = {"train": 0, "validation": 1, "test": 2}
            return tuple(sorted((p.name for p in Path(self.params["root"]).iterdir()), key=order.get))

        def generate(self, split, files):
            yield split, {"v": len(split)}

    dsreg_register(Found)
    assert [s.name for s in Found().plan()] == ["train", "validation", "test"]
    dsreg.fetch("found", quiet=True, split="validation")
    assert dsreg.info("found").ready_splits == ("validation",)
    dsreg.fetch("found", quiet=True)
    assert dsreg.info("found").splits == ("train", "validation", "test")
    assert list(dsreg.load("found")) == ["train", "validation", "test"]
    assert dsreg.load("found", split="validation")[0]["v"].item() == len("validation")


def test_load_only_params_share_one_prepared_store(dsreg_cache, dsreg_register):
    import dsreg

    class Scaled(dsreg.Builder):
        name = "scaled"
        description = "One column; `scale` only changes how batches are served."
        features = {"x": dsreg.Value("int64")}
        splits = ("train",)
        config = {"scale": 1, "size": 3}
        load_only = ("scale",)

        def generate(self, split, files, size=3, **config):
            for i in range(size):
                yield str(i), {"x": i}

    dsreg_register(Scaled)
    assert Scaled(scale=5).config_id == Scaled().config_id != Scaled(size=4).config_id
    first = dsreg.fetch("scaled", quiet=True)
    assert first.manifest["config"] == {"size": 3}
    assert dsreg.info("scaled", scale=7).cached  # no second prepare for another scale
