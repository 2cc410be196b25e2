"""Prepare, the prepared store, and the torch Dataset: load, slices, batches, workers, pickling."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import dsreg
from dsreg.features import ClassLabel, Tensor, Text, Value, class_names, label_column
from dsreg.store.collate import Batch, Examples, pad, stack
from dsreg.store.dataset import Dataset

from toydata import blob, make_builder


@pytest.fixture(scope="module")
def toy_prepared(tmp_path_factory):
    """A cache holding toy fetched and prepared (75,000 examples), made once per module: tests get a copy."""
    from dsreg.testing import registered

    data = blob()
    work = tmp_path_factory.mktemp("toy-template")
    (work / "toy.bin").write_bytes(data)
    with pytest.MonkeyPatch.context() as env, registered(make_builder(data)):
        env.setenv("DSREG_NETWORK", "loopback")
        env.setenv("DSREG_CONFIG", str(work / "no-config.toml"))
        dsreg.fetch("toy", from_path=work, quiet=True, cache_dir=work / "cache")
    return work / "cache"


@pytest.fixture
def toy(dsreg_cache, dsreg_register, data, tmp_path, toy_prepared):
    # A copy of the module's prepared cache: each test may damage its own, and none pays for a prepare.
    shutil.copytree(toy_prepared, dsreg_cache)
    (tmp_path / "toy.bin").write_bytes(data)
    dsreg_register(make_builder(data))
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, 1, 2, 2)


def test_load_returns_a_torch_dataset_of_tensors(toy):
    train = dsreg.load("toy", split="train")
    assert isinstance(train, torch.utils.data.Dataset) and isinstance(train, dsreg.Dataset)
    assert len(train) == 60_000
    example = train[5]
    assert example["image"].dtype == torch.uint8 and example["image"].shape == (1, 2, 2)
    assert torch.equal(example["image"], torch.from_numpy(toy[5].copy()))
    assert example["label"].item() == toy[5, 0, 0, 0] % 2
    assert train.classes == ["even", "odd"]
    assert torch.equal(train[-1]["image"], torch.from_numpy(toy[59_999].copy()))
    with pytest.raises(IndexError):
        train[60_000]


def test_all_splits_when_split_is_none(toy):
    splits = dsreg.load("toy")
    assert {k: len(v) for k, v in splits.items()} == {"train": 60_000, "test": 15_000}


def test_getitems_is_one_gather_equal_to_getitem(toy):
    train = dsreg.load("toy", split="train")
    idx = [7, 3, 59_999, 0, 3]
    batch = train.__getitems__(idx)
    assert isinstance(batch, Batch)
    assert torch.equal(batch["image"], torch.stack([train[i]["image"] for i in idx]))
    assert batch["label"].tolist() == [train[i]["label"].item() for i in idx]


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("train[:10%]", list(range(0, 6000))),
        ("train[100:200]", list(range(100, 200))),
        ("train[-5:]", list(range(59_995, 60_000))),
        ("test[:2]+train[:3]", [60_000, 60_001, 0, 1, 2]),
    ],
)
def test_split_slicing(toy, expr, expected):
    ds = dsreg.load("toy", split=expr)
    assert len(ds) == len(expected)
    got = ds.__getitems__(list(range(len(ds))))["image"]
    assert torch.equal(got, torch.from_numpy(toy[expected].copy()))


@pytest.mark.parametrize("expr", ["train[10:5]", "train[-5:-10]", "train[60%:50%]", "test[5:5]"])
def test_a_reversed_or_empty_slice_is_an_empty_dataset(toy, expr):
    ds = dsreg.load("toy", split=expr)
    assert len(ds) == 0 and list(ds.loader(batch_size=4)) == []
    both = dsreg.load("toy", split=f"{expr}+test[:3]")
    assert len(both) == 3 and torch.equal(both[0]["image"], torch.from_numpy(toy[60_000].copy()))


def test_bad_split_expression_is_a_clear_error(toy):
    with pytest.raises(dsreg.ConfigError, match="split 'valid' does not exist; choose from train, test"):
        dsreg.load("toy", split="valid")
    with pytest.raises(dsreg.ConfigError, match="not understood"):
        dsreg.load("toy", split="train[1:2")


def test_loader_with_workers_covers_every_example_once(toy):
    train = dsreg.load("toy", split="train[:2000]")
    seen = []
    for batch in train.loader(batch_size=256, shuffle=True, num_workers=2, persistent_workers=True, prefetch_factor=2):
        assert batch["image"].shape[1:] == (1, 2, 2)
        seen.append(batch["image"].reshape(len(batch["image"]), -1))
    flat = torch.cat(seen)
    assert len(flat) == 2000
    expected = torch.from_numpy(toy[:2000].reshape(2000, -1).copy())
    assert sorted(map(tuple, flat.tolist())) == sorted(map(tuple, expected.tolist()))


def test_pickles_cheaply_and_reopens(toy):
    train = dsreg.load("toy", split="train")
    train[0]  # opens the memory map
    blob = pickle.dumps(train)
    assert len(blob) < 20_000  # paths and ranges, not 240 kB of images
    clone = pickle.loads(blob)
    assert torch.equal(clone[123]["image"], train[123]["image"])


def test_transform_and_to_hf(toy):
    train = dsreg.load("toy", split="train[:10]", transform=lambda ex: {**ex, "image": ex["image"].float() / 255})
    assert train[0]["image"].dtype == torch.float32
    batch = next(iter(train.loader(batch_size=4)))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (4, 1, 2, 2)
    hf = dsreg.load("toy", split="test[:5]").to_hf()
    assert len(hf) == 5 and hf.features["label"].names == ["even", "odd"]
    assert np.array(hf[0]["image"], dtype=np.uint8).tolist() == toy[60_000].tolist()


def test_download_false_raises_when_not_prepared(dsreg_cache, dsreg_register, data):
    dsreg_register(make_builder(data))
    with pytest.raises(dsreg.CacheError, match="not prepared.*dsreg fetch toy"):
        dsreg.load("toy", download=False)


def test_unknown_dataset_lists_close_names(dsreg_cache, dsreg_register, data):
    dsreg_register(make_builder(data))
    with pytest.raises(dsreg.UnknownDatasetError, match="no dataset named 'tyo'; did you mean toy"):
        dsreg.load("tyo")


def test_unknown_config_parameter_is_named(dsreg_cache, dsreg_register, data):
    dsreg_register(make_builder(data))
    with pytest.raises(dsreg.ConfigError, match="toy has no config parameter colour"):
        dsreg.load("toy", colour="red")


def test_damaged_store_is_detected_and_redone(toy, dsreg_cache):
    info = dsreg.info("toy")
    arrow = info.prepared_path / "train-00000.arrow"
    with open(arrow, "r+b") as fh:
        fh.truncate(1000)
    assert not dsreg.info("toy").cached
    train = dsreg.load("toy", split="train")
    assert len(train) == 60_000 and arrow.stat().st_size > 1000


class Exploding(dsreg.Builder):
    name = "exploding"
    description = "Fails halfway through its second split."
    features = {"x": dsreg.Value("int64")}
    splits = ("a", "b")

    def generate(self, split, files, **config):
        for i in range(10):
            if split == "b" and i == 5:
                raise RuntimeError("disk on fire")
            yield str(i), {"x": i}


def test_failed_prepare_leaves_nothing_half_written(dsreg_cache, dsreg_register):
    dsreg_register(Exploding)
    with pytest.raises(RuntimeError, match="disk on fire"):
        dsreg.fetch("exploding", quiet=True)
    prepared = dsreg_cache / "datasets" / "exploding" / "prepared"
    # Split a was complete and may be kept, with the manifest that records it; nothing of b, no temporary file.
    left = [p.relative_to(prepared) for p in prepared.rglob("*") if p.is_file()]
    assert all(p.name in ("a-00000.arrow", "manifest.json") for p in left), left
    assert "b" not in (dsreg.info("exploding").manifest or {}).get("splits", {})


class Slow(dsreg.Builder):
    """100 rows that stop halfway for ``delay`` seconds, saying so: a prepare to kill in the middle."""

    name = "slow"
    features = {"x": dsreg.Value("int64")}
    splits = ("train",)
    config = {"delay": 0.0}
    load_only = ("delay",)  # so a killed slow run and a quick rerun share one prepared store

    def generate(self, split, files, **config):
        delay = self.params["delay"]
        for i in range(100):
            if i == 50 and delay:
                print("halfway", flush=True)
                time.sleep(delay)
            yield str(i), {"x": i}


def test_prepare_killed_midway_is_redone(dsreg_cache, dsreg_register):
    # A real process killed with SIGKILL in the middle of writing a split.
    script = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import dsreg; from test_dataset import Slow; "
    script += "from dsreg.testing import registered\nwith registered(Slow): dsreg.load('slow', split='train', delay=60.0)"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert proc.stdout.readline().strip() == "halfway"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    prepared = dsreg_cache / "datasets" / "slow" / "prepared"
    leftovers = [p.relative_to(prepared) for p in prepared.rglob("*") if p.is_file()]
    assert all(any(part.startswith(".") for part in p.parts) for p in leftovers), leftovers  # at most temporary files
    # The same prepared store (delay is load-only), so it must redo, not serve half a split; in this
    # process, as the killed one left nothing behind that a fresh interpreter would need.
    dsreg_register(Slow)
    ds = dsreg.load("slow", split="train")
    assert (len(ds), int(ds[99]["x"])) == (100, 99)
    assert [p.name for p in prepared.iterdir() if not p.name.startswith(".")] == [Slow().config_id]


class Ragged(dsreg.Builder):
    name = "ragged"
    description = "Variable-length sequences."
    features = {"ids": dsreg.Tensor((None,), "int64"), "text": dsreg.Text(), "label": dsreg.ClassLabel(("no", "yes"))}
    splits = ("train",)
    collate_fn = "pad"

    def generate(self, split, files, **config):
        for i in range(20):
            yield str(i), {"ids": list(range(1, i % 6 + 2)), "text": f"row {i}", "label": "yes" if i % 2 else "no"}


def test_variable_length_columns_pad_with_lengths_and_mask(dsreg_cache, dsreg_register):
    dsreg_register(Ragged)
    ds = dsreg.load("ragged", split="train")
    assert ds[4]["ids"].tolist() == [1, 2, 3, 4, 5] and ds[4]["text"] == "row 4"
    batch = next(iter(ds.loader(batch_size=4)))
    assert batch["ids"].tolist() == [[1, 0, 0, 0], [1, 2, 0, 0], [1, 2, 3, 0], [1, 2, 3, 4]]
    assert batch["lengths"].tolist() == [1, 2, 3, 4]
    assert batch["attention_mask"].sum().item() == 10
    assert batch["label"].tolist() == [0, 1, 0, 1] and batch["text"][0] == "row 0"
    # Equal lengths in a batch still give the same keys: the batch the dataset hands over names its ragged columns.
    gathered = ds.__getitems__([0, 6])
    assert gathered.ragged == ("ids",)
    assert set(ds.collate_fn(gathered)) == {"ids", "text", "label", "lengths", "attention_mask"}
    # A plain list built by hand names nothing: pad pads the columns whose lengths differ, here none.
    assert set(ds.collate_fn([ds[0], ds[6]])) == {"ids", "text", "label"}
    for b in ds.loader(batch_size=3, num_workers=2):
        assert b["ids"].shape[0] == b["lengths"].shape[0]


def _tagged(example):
    return {**example, "text": example["text"].upper()}


def first_ids(batch):
    """A plain collate function: one argument, the batch."""
    return {"first": [example["ids"][0].item() for example in batch], "n": len(batch)}


class RaggedDecoded(Ragged):
    name = "ragged-decoded"

    def decode_example(self, example):  # examples are decoded one by one, so batches are lists
        return _tagged(example)


class PlainCollate(RaggedDecoded):
    name = "plain-collate"
    collate_fn = staticmethod(first_ids)


def test_examples_decoded_one_by_one_still_name_their_ragged_columns(dsreg_cache, dsreg_register):
    dsreg_register(RaggedDecoded)
    ds = dsreg.load("ragged-decoded", split="train")
    gathered = ds.__getitems__([0, 6])
    assert isinstance(gathered, Examples) and gathered.ragged == ("ids",) and gathered[1]["text"] == "ROW 6"
    batch = ds.collate_fn(gathered)
    assert batch["ids"].tolist() == [[1], [1]] and batch["lengths"].tolist() == [1, 1]
    for b in ds.loader(batch_size=4, num_workers=2):
        assert b["ids"].shape[0] == b["lengths"].shape[0] == len(b["text"])


def test_a_plain_collate_function_gets_the_batch_as_its_one_argument(dsreg_cache, dsreg_register):
    dsreg_register(PlainCollate)
    ds = dsreg.load("plain-collate", split="train")
    assert ds.collate_fn is first_ids
    assert next(iter(ds.loader(batch_size=3))) == {"first": [1, 1, 1], "n": 3}
    assert next(iter(ds.loader(batch_size=3, num_workers=1))) == {"first": [1, 1, 1], "n": 3}


class Probed(dsreg.Builder):
    """Columns known only from the data: the class declares none."""

    name = "probed"
    splits = ("train",)

    def get_features(self, files=None):
        return {"x": dsreg.Tensor((3,), "int16"), "label": dsreg.ClassLabel(("a", "b"))}

    def generate(self, split, files, **config):
        for i in range(4):
            yield str(i), {"x": [i, -i, 2 * i], "label": i % 2}


def test_a_dataset_reads_the_features_of_its_info_not_the_builders(dsreg_cache, dsreg_register):
    dsreg_register(Probed)
    ds = dsreg.load("probed", split="train")
    fresh = Dataset(Probed(), ds.folder, ds.ranges, ds.info, "train")  # no features were ever assigned to it
    assert Probed.features == {} and fresh.features == ds.info.features
    assert fresh[3]["x"].tolist() == [3, -3, 6] and fresh[3]["x"].dtype == torch.int16
    assert fresh.classes == ["a", "b"]


def test_features_encode_what_the_store_writes_and_say_why_a_value_does_not_fit():
    image, label = Tensor((1, 2, 2), "uint8"), ClassLabel(("cat", "dog"))
    assert image.encode("image", [[[1, 2], [3, 4]]]).dtype == np.uint8
    assert image.check("image", [[[1, 2], [3, 455]]]) == "column 'image' holds int64 values that uint8 cannot represent (they would wrap)"
    assert image.check("image", np.zeros((1, 2, 2))) == "column 'image' holds float64 values, the feature says uint8[1, 2, 2]"
    assert image.check("image", np.zeros((2, 2), np.uint8)) == "column 'image': shape (2, 2), the feature says (1, 2, 2)"
    assert image.check("image", "pixels") == "column 'image' is str, the feature says uint8[1, 2, 2]"
    ids = Tensor((None,), "int64")
    assert (
        ids.encode("ids", []).dtype == np.int64 and ids.check("ids", [[1], [2]]) == "column 'ids': shape (2, 1), the feature says (None,)"
    )
    assert Tensor((None,), "float32").encode("wave", np.ones(5)).dtype == np.float32  # floats round: not refused
    assert label.encode("label", "dog") == 1 and label.encode("label", np.int64(1)) == 1 and label.encode("label", torch.tensor(0)) == 0
    assert label.check("label", "cow") == "column 'label': 'cow' is not one of the class names (cat, dog)"
    assert label.check("label", 2) == "column 'label': label 2 is outside 0..1"
    assert label.check("label", True) == "column 'label' is bool True, not a class index or name"
    assert label.check("label", 1.0) == "column 'label' is float 1.0, not a class index or name"
    score = Value("float32")
    assert score.encode("score", np.float64(0.5)) == 0.5 and type(Value("int16").encode("n", np.int64(3))) is int
    assert Value("int64").check("n", 2.5) == "column 'n' holds float64 values, the feature says int64"
    assert Value("int64").check("n", [1]) == "column 'n' is list, the feature says a int64 scalar"
    assert Text().check("text", b"x") == "column 'text' is bytes, the feature says string"
    assert dsreg.Binary().encode("raw", bytearray(b"ab")) == b"ab"
    # What the Dataset returns: numbers as tensors of exactly the declared dtype.
    assert image.check("image", torch.zeros(1, 2, 2, dtype=torch.uint8), loaded=True) is None
    assert image.check("image", torch.zeros(1, 2, 2), loaded=True) == "column 'image' loads as float32, the feature says uint8"
    assert label.check("label", "dog", loaded=True) == "column 'label' loads as str, not a tensor"


def test_features_say_how_a_column_is_read_and_what_it_weighs():
    image, ids, label, text = Tensor((1, 28, 28), "uint8"), Tensor((None, 4), "float32"), ClassLabel(("a", "b")), Text()
    assert [f.numeric for f in (image, ids, label, text)] == [True, True, True, False]
    assert [f.fixed for f in (image, ids, label, text, Value("float16"))] == [True, False, True, False, True]
    assert [f.ragged for f in (image, ids, label, text)] == [False, True, False, False]
    assert [f.nbytes for f in (image, ids, label, text, Value("float16"))] == [784, None, 8, None, 2]
    assert [f.is_label for f in (image, label)] == [False, True] and label.classes == ("a", "b") and image.classes == ()
    features = {"image": image, "label": label}
    assert label_column(features) == "label" and class_names(features) == ["a", "b"]
    assert label_column({"image": image}) is None and class_names({"image": image}) == []
    assert label.to_json() == {"type": "ClassLabel", "names": ("a", "b")}  # dtype is not a field: the manifest is unchanged
    code = "import sys, dsreg.features; print(sorted(m for m in ('numpy', 'torch', 'datasets') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip() == "[]"


def test_collate_functions_accept_lists_of_examples():
    examples = [{"x": torch.ones(2), "y": 1, "s": "a"}, {"x": torch.zeros(2), "y": 0, "s": "b"}]
    out = stack(examples)
    assert out["x"].shape == (2, 2) and out["y"].dtype == torch.int64 and out["s"] == ["a", "b"]
    padded = pad([{"t": torch.arange(3)}, {"t": torch.arange(1)}], max_length=2)
    assert padded["t"].tolist() == [[0, 1], [0, 0]] and padded["lengths"].tolist() == [2, 1]


def test_example_not_matching_features_is_a_clear_plugin_error(dsreg_cache, dsreg_register):
    class Wrong(dsreg.Builder):
        name = "wrong"
        features = {"image": dsreg.Tensor((1, 2, 2), "uint8")}
        splits = ("train",)

        def generate(self, split, files, **config):
            yield "first", {"image": np.zeros((2, 2), np.uint8)}

    dsreg_register(Wrong)
    with pytest.raises(
        dsreg.PluginError, match=r"example 'first' of split 'train': column 'image': shape \(2, 2\), the feature says \(1, 2, 2\)"
    ):
        dsreg.fetch("wrong", quiet=True)


def _double(record):
    if record == 3:
        raise dsreg.Skip("three is refused by decode")
    return {"x": record * 2}


class Decoded(dsreg.Builder):
    name = "decoded"
    description = "Raw records decoded in the core's process pool."
    features = {"x": dsreg.Value("int64")}
    splits = ("train",)
    decode = staticmethod(_double)

    def generate(self, split, files, **config):
        for i in range(600):
            yield str(i), (dsreg.Skip("five is refused by generate") if i == 5 else i)


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_decode_keeps_order_and_both_kinds_of_skip(dsreg_cache, dsreg_register, workers):
    dsreg_register(Decoded)
    info = dsreg.fetch("decoded", quiet=True, workers=workers)
    assert info.manifest["splits"]["train"]["skipped"] == [
        {"key": "3", "reason": "three is refused by decode"},
        {"key": "5", "reason": "five is refused by generate"},
    ]
    ds = dsreg.load("decoded", split="train")
    assert ds.__getitems__(list(range(len(ds))))["x"].tolist() == [2 * i for i in range(600) if i not in (3, 5)]


@pytest.mark.parametrize("shuffle, drop_last", [(True, False), (False, False), (True, True)])
def test_loader_batches_match_the_stock_dataloader_order(toy, shuffle, drop_last):
    train = dsreg.load("toy", split="train[:1000]")
    ours = train.loader(batch_size=64, shuffle=shuffle, drop_last=drop_last, generator=torch.Generator().manual_seed(3))
    stock = torch.utils.data.DataLoader(
        train, batch_size=64, shuffle=shuffle, drop_last=drop_last, generator=torch.Generator().manual_seed(3), collate_fn=train.collate_fn
    )
    assert len(ours) == len(stock)
    for _ in range(2):  # the generator stays in step across epochs
        got, want = list(ours), list(stock)
        assert len(got) == len(want)
        assert all(torch.equal(a["image"], b["image"]) for a, b in zip(got, want))
    torch.manual_seed(11)
    first = [b["label"] for b in train.loader(batch_size=100, shuffle=True)]
    torch.manual_seed(11)
    again = [b["label"] for b in torch.utils.data.DataLoader(train, batch_size=100, shuffle=True, collate_fn=train.collate_fn)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_loader_still_takes_a_sampler_or_batch_size_none(toy):
    train = dsreg.load("toy", split="train[:10]")
    picked = [b["image"] for b in train.loader(batch_size=2, sampler=[9, 8, 7, 6])]
    assert torch.equal(picked[0], train.__getitems__([9, 8])["image"])
    single = next(iter(train.loader(batch_size=None)))
    assert single["image"].shape == (1, 2, 2)


class Scalars(dsreg.Builder):
    name = "scalars"
    description = "Every scalar kind, read back through the zero-copy views."
    features = {
        "flag": dsreg.Value("bool"),
        "score": dsreg.Value("float32"),
        "count": dsreg.Value("int16"),
        "half": dsreg.Tensor((2,), "float16"),
    }
    splits = ("train",)

    def generate(self, split, files, **config):
        for i in range(13):
            yield str(i), {"flag": i % 3 == 0, "score": i / 4, "count": -i, "half": [i, i / 2]}


def test_scalar_columns_of_every_kind_read_back(dsreg_cache, dsreg_register):
    dsreg_register(Scalars)
    ds = dsreg.load("scalars", split="train[3:]")  # an offset slice exercises the bit and byte offsets
    batch = ds.__getitems__(list(range(len(ds))))
    assert batch["flag"].tolist() == [i % 3 == 0 for i in range(3, 13)]
    assert batch["score"].tolist() == [i / 4 for i in range(3, 13)] and batch["score"].dtype == torch.float32
    assert batch["count"].tolist() == [-i for i in range(3, 13)] and batch["count"].dtype == torch.int16
    assert batch["half"][1].tolist() == [4.0, 2.0]


def test_loading_and_iterating_imports_neither_pandas_nor_datasets(toy, dsreg_cache):
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import dsreg
        from dsreg.testing import registered
        from toydata import blob, make_builder

        with registered(make_builder(blob())):
            for batch in dsreg.load("toy", split="train[:1000]", download=False).loader(batch_size=100):
                pass
        print(sorted(m for m in ("pandas", "datasets") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env={**os.environ, "DSREG_CACHE": str(dsreg_cache)},
        timeout=120,
    )
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
