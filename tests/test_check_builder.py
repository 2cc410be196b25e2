"""check_builder: a good Builder passes every check; each deliberate mistake fails one, clearly."""

from __future__ import annotations

import hashlib
import io
import wave

import pytest

import dsreg
from dsreg.testing import (
    CHECKS,
    ConformanceError,
    ConformanceWarning,
    check_builder,
    fake_flac,
    fake_jpeg,
    fake_png,
    fake_text,
    fake_tree,
    fake_wav,
    pack,
)

from toydata import blob, make_builder

DATA = blob(4000)  # 1,000 four-byte images: small enough that no two collide by chance
SHA = hashlib.sha256(DATA).hexdigest()


class Pairs(dsreg.Builder):
    """1x2x2 images from one file; the base of the deliberate mistakes below."""

    name = "pairs"
    description = "Two-byte images cut from one file."
    homepage = "https://example.invalid/pairs"
    license = "CC0-1.0"
    citation = "none"
    task = "image-classification"
    features = {"image": dsreg.Tensor((1, 2, 2), "uint8"), "label": dsreg.ClassLabel(("even", "odd"))}
    files = (dsreg.File("toy.bin", size=len(DATA), sha256=SHA),)

    def rows(self, files):
        raw = files["toy.bin"].read_bytes()
        return [[[list(raw[i : i + 2]), list(raw[i + 2 : i + 4])]] for i in range(0, len(raw) - 3, 4)]

    def generate(self, split, files, **config):
        rows = self.rows(files)
        cut = len(rows) * 4 // 5
        for i in range(*((0, cut) if split == "train" else (cut, len(rows)))):
            yield str(i), {"image": rows[i], "label": rows[i][0][0][0] % 2}


# -- mistake 1: a file with no checksum ---------------------------------------------------------
class NoChecksum(Pairs):
    name = "no-checksum"
    config = {"url": "https://example.invalid/toy.bin"}

    def get_files(self):
        # A config-dependent file list: the File is built late, so only a check that asks for it sees it.
        return (dsreg.File("toy.bin", urls=(self.params["url"],), size=len(DATA)),)


class NoSize(Pairs):
    name = "no-size"
    files = (dsreg.File("toy.bin", sha256=SHA),)


# -- mistake 2: overlapping splits --------------------------------------------------------------
class Overlapping(Pairs):
    name = "overlapping"

    def generate(self, split, files, **config):
        rows = self.rows(files)
        # The test split is cut from the end of the train split instead of after it.
        for i in range(len(rows) * 4 // 5 if split == "train" else len(rows) // 10):
            j = i if split == "train" else len(rows) * 4 // 5 - 1 - i
            yield str(j), {"image": rows[j], "label": rows[j][0][0][0] % 2}


# -- mistake 3: a collate_fn that breaks with workers -------------------------------------------
def scaled_collate(scale):
    def collate(batch):  # a closure: fine in-process, but it cannot be pickled for a worker
        out = dsreg.store.collate.stack(batch)
        out["image"] = out["image"].float() / scale
        return out

    return collate


class ClosureCollate(Pairs):
    name = "closure-collate"
    collate_fn = staticmethod(scaled_collate(255.0))


def main_process_only(batch):
    """Collate that leans on state only the main process has (here: it refuses to run in a worker)."""
    import torch

    if torch.utils.data.get_worker_info() is not None:
        raise RuntimeError("the tokenizer was never loaded in this process")
    return dsreg.store.collate.stack(batch)


class WorkerOnlyFailure(Pairs):
    name = "worker-failure"
    collate_fn = staticmethod(main_process_only)


# -- other mistakes the suite names -------------------------------------------------------------
class Wraps(Pairs):
    name = "wraps"

    def generate(self, split, files, **config):
        for key, example in super().generate(split, files, **config):
            yield key, {**example, "image": [[[v + 200 for v in row] for row in example["image"][0]]]}  # 455 wraps in uint8


class NoLicense(Pairs):
    name = "no-license"
    license = ""


class Unpicklable(Pairs):
    name = "unpicklable"

    def __init__(self, **config):
        super().__init__(**config)
        self.scale = lambda x: x  # rides along with every pickled Dataset, and cannot be pickled


def list_only(batch):
    """Collate that reads only a list of examples: the DataLoader's Batch breaks it."""
    import torch

    return {"image": torch.stack([e["image"] for e in batch]), "label": torch.stack([e["label"] for e in batch])}


class ListOnlyCollate(Pairs):
    name = "list-only"
    collate_fn = staticmethod(list_only)


class Regression(Pairs):
    name = "regression"
    task = "pair-regression"


def test_a_good_builder_passes_every_check_through_its_published_url(dsreg_file_server):
    url = dsreg_file_server.serve({"toy.bin": DATA})
    toy = make_builder(DATA, name="conform", urls=(url + "toy.bin",))
    report = check_builder(toy, train=True)
    assert list(report.results) == list(CHECKS)
    assert all(outcome.startswith("ok") for outcome in report.results.values()), str(report)
    assert report.splits == {"train": 800, "test": 200}
    assert report.results["train"].startswith("ok (image-mlp")


def test_the_training_step_runs_only_when_asked(recwarn):
    report = check_builder(Pairs, files={"toy.bin": DATA})
    assert list(report.results) == list(CHECKS) and report.results["train"] == "skipped: opt in with train=True"
    assert all(outcome.startswith("ok") for check, outcome in report.results.items() if check != "train")
    assert not [w for w in recwarn if issubclass(w.category, ConformanceWarning)]  # off by default is no news
    assert check_builder(Pairs, files={"toy.bin": DATA}, train=True).results["train"].startswith("ok (image-mlp")


def test_files_stand_in_for_the_published_ones_unverified():
    report = check_builder(Pairs, files={"toy.bin": blob(400, seed=7)})
    assert report.splits == {"train": 80, "test": 20}
    assert report.results["fetch"] == "ok (files= served unverified)"


def test_files_must_be_keyed_by_a_declared_file_name():
    with pytest.raises(ConformanceError, match=r"\[fetch\] pairs: files= names \['other.bin'\].*key files= by File.name"):
        check_builder(Pairs, files={"other.bin": DATA})


def test_a_file_with_no_checksum_is_caught():
    with pytest.raises(ConformanceError) as err:
        check_builder(NoChecksum, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith("check_builder [files] no-checksum: get_files() builds an invalid File")
    assert "no checksum" in message and "sha256=" in message and "\n" not in message
    # A class-level File without one never gets this far: the core refuses it at import.
    with pytest.raises(ValueError, match="toy.bin has no checksum: give sha256="):
        dsreg.File("toy.bin", urls=("https://example.invalid/toy.bin",), size=4)


def test_a_file_with_no_size_is_caught():
    with pytest.raises(ConformanceError, match=r"\[files\] no-size: file 'toy.bin' has a checksum but no size; give size="):
        check_builder(NoSize, files={"toy.bin": DATA})


def test_overlapping_splits_are_caught():
    with pytest.raises(ConformanceError) as err:
        check_builder(Overlapping, files={"toy.bin": DATA})
    assert str(err.value).startswith("check_builder [overlap] overlapping: 100 example(s) appear in two splits, e.g. test[0] == train[799]")
    assert "assign each example to one split" in str(err.value)


def test_overlap_can_be_allowed_by_name():
    report = check_builder(Overlapping, files={"toy.bin": DATA}, skip=("overlap",))
    assert report.results["overlap"] == "skipped: asked by skip="


def test_a_collate_fn_that_cannot_reach_workers_is_caught():
    with pytest.raises(ConformanceError) as err:
        check_builder(ClosureCollate, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith("check_builder [workers] closure-collate: collate_fn scaled_collate.<locals>.collate cannot be pickled")
    assert "spawn" in message and "make it a module-level function" in message


def test_a_collate_fn_that_fails_inside_a_worker_is_caught():
    with pytest.raises(ConformanceError) as err:
        check_builder(WorkerOnlyFailure, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith("check_builder [workers] worker-failure: a DataLoader with num_workers=2")
    assert "RuntimeError: the tokenizer was never loaded in this process" in message
    assert "\n" not in message


def test_values_the_feature_dtype_cannot_hold_are_caught():
    # The conformance suite judges a value by the feature's own check, the one the prepared store applies
    # (Feature.encode): the store refuses the example while preparing, or the features check names it.
    with pytest.raises(
        ConformanceError, match=r"\[(fetch|features)\] wraps: .*'0'.* column 'image' holds int64 values that uint8 cannot represent"
    ):
        check_builder(Wraps, files={"toy.bin": DATA})
    assert (
        Pairs.features["image"].check("image", [[[455, 0], [0, 0]]])
        == "column 'image' holds int64 values that uint8 cannot represent (they would wrap)"
    )


def test_missing_metadata_is_caught():
    with pytest.raises(ConformanceError, match=r"\[metadata\] no-license: license is empty; set license = "):
        check_builder(NoLicense, files={"toy.bin": DATA})


def test_an_unpicklable_dataset_is_caught():
    with pytest.raises(ConformanceError, match=r"\[pickle\] unpicklable: Dataset train does not pickle"):
        check_builder(Unpicklable, files={"toy.bin": DATA})


def test_a_collate_fn_that_reads_only_lists_is_caught():
    with pytest.raises(ConformanceError, match=r"\[collate\] list-only: collate_fn raises .* from the DataLoader's batch path"):
        check_builder(ListOnlyCollate, files={"toy.bin": DATA})


def test_a_task_without_a_model_skips_the_training_step_with_a_warning():
    with pytest.warns(ConformanceWarning, match="no model is registered for task 'pair-regression'"):
        report = check_builder(Regression, files={"toy.bin": DATA}, train=True)
    assert report.skipped == {
        "train": "no model is registered for task 'pair-regression' (register one with register_models to train on it)"
    }


def test_the_check_leaves_the_process_as_it_found_it(monkeypatch):
    monkeypatch.setenv("DSREG_OFFLINE", "1")
    monkeypatch.setenv("DSREG_CACHE", "/nonexistent/cache")
    check_builder(Pairs, files={"toy.bin": DATA})
    import os

    assert os.environ["DSREG_OFFLINE"] == "1" and os.environ["DSREG_CACHE"] == "/nonexistent/cache"


def test_the_training_step_can_name_a_registered_model():
    report = check_builder(Pairs, files={"toy.bin": DATA}, model="image-mlp")
    assert report.results["train"].startswith("ok (image-mlp")
    with pytest.raises(
        ConformanceError,
        match=r"\[train\] pairs: model='text-bag' is not registered for task 'image-classification'; pick one of: image-mlp, image-cnn",
    ):
        check_builder(Pairs, files={"toy.bin": DATA}, model="text-bag")


def test_unknown_skip_names_are_refused():
    with pytest.raises(ValueError, match="skip=\\['trian'\\] names no check"):
        check_builder(Pairs, skip=("trian",))


# -- the deliberate bugs of issue 15: each caught by name ----------------------------------------
class LabelOutOfRange(Pairs):
    name = "label-range"

    def generate(self, split, files, **config):
        for key, example in super().generate(split, files, **config):
            yield key, {**example, "label": 2}  # two classes: 0 and 1


class WrongShape(Pairs):
    name = "wrong-shape"

    def generate(self, split, files, **config):
        for key, example in super().generate(split, files, **config):
            yield key, {**example, "image": [example["image"][0] + [[0, 0]]]}  # 1x3x2, declared 1x2x2


class Shuffled(Pairs):
    name = "shuffled"

    def generate(self, split, files, **config):
        import random

        examples = list(super().generate(split, files, **config))
        random.shuffle(examples)  # unseeded: every prepare orders the split differently
        yield from examples


def float64_images(batch):
    out = dsreg.store.collate.stack(batch)
    out["image"] = out["image"].double() / 255
    return out


def float_labels(batch):
    out = dsreg.store.collate.stack(batch)
    out["image"] = out["image"].float() / 255
    out["label"] = out["label"].float()
    return out


def unscaled(batch):
    out = dsreg.store.collate.stack(batch)
    out["image"] = out["image"].float()  # cast, never divided by 255
    return out


def scaled(batch):
    out = dsreg.store.collate.stack(batch)
    out["image"] = out["image"].float() / 255
    return out


def standardized(batch):
    out = scaled(batch)
    out["image"] = (out["image"] - 0.5) / 0.25
    return out


class Float64Images(Pairs):
    name = "float64-images"
    collate_fn = staticmethod(float64_images)


class FloatLabels(Pairs):
    name = "float-labels"
    collate_fn = staticmethod(float_labels)


class Unnormalised(Pairs):
    name = "unnormalised"
    collate_fn = staticmethod(unscaled)


class WrongSha(Pairs):
    name = "wrong-sha"
    files = (dsreg.File("toy.bin", size=len(DATA), sha256=hashlib.sha256(b"not the data").hexdigest()),)


def test_a_label_out_of_range_is_caught_under_features():
    with pytest.raises(ConformanceError) as err:
        check_builder(LabelOutOfRange, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith("check_builder [features] label-range: generate yields an example the prepared store refuses")
    assert "column 'label': label 2 is outside 0..1" in message and "fix generate" in message
    assert "URL" not in message


def test_a_wrong_image_shape_is_caught_under_features_with_advice_on_generate():
    with pytest.raises(ConformanceError) as err:
        check_builder(WrongShape, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith("check_builder [features] wrong-shape: generate yields an example the prepared store refuses")
    assert "column 'image': shape (1, 3, 2), the feature says (1, 2, 2)" in message
    assert "fix generate (or the decode it names)" in message and "URL" not in message


def test_a_non_deterministic_order_is_caught():
    with pytest.raises(ConformanceError) as err:
        check_builder(Shuffled, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith(
        "check_builder [determinism] shuffled: two prepares of the same files give the same examples in another order: train["
    )
    assert "rows of train differ" in message and "seed any randomness" in message


def test_float64_images_from_the_collate_fn_are_caught():
    with pytest.raises(ConformanceError) as err:
        check_builder(Float64Images, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith(
        "check_builder [batches] float64-images: batch 0 from a DataLoader with num_workers=0: "
        "column 'image' is float64; models run in float32"
    )


def test_float_labels_from_the_collate_fn_are_caught():
    with pytest.raises(ConformanceError) as err:
        check_builder(FloatLabels, files={"toy.bin": DATA})
    assert str(err.value).startswith(
        "check_builder [batches] float-labels: batch 0 from a DataLoader with num_workers=0: "
        "label column 'label' is float32 [4], not int64 [4]"
    )
    assert "int64 labels" in str(err.value)


def test_a_collate_fn_that_forgets_to_normalise_is_caught():
    with pytest.raises(ConformanceError) as err:
        check_builder(Unnormalised, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith(
        "check_builder [batches] unnormalised: batch 0 from a DataLoader with num_workers=0: float image column 'image' holds values from "
    )
    assert "the 0-255 range cast to float without scaling" in message and "scaled to [0, 1] or standardized" in message


@pytest.mark.parametrize("collate", [scaled, standardized])
def test_scaled_and_standardized_float_images_keep_the_contract(collate):
    class Fine(Pairs):
        name = f"fine-{collate.__name__}"
        collate_fn = staticmethod(collate)

    report = check_builder(Fine, files={"toy.bin": DATA}, skip=("workers", "pickle"))  # a local class: no spawn, no pickle
    assert report.results["batches"] == "ok (num_workers=0 and 2)"


def test_the_batches_check_reads_padded_columns_lengths_and_masks():
    import torch

    from dsreg.testing.conformance import _batch_problem

    features = {"ids": dsreg.Tensor((None,), "int64"), "label": dsreg.ClassLabel(("a", "b"))}
    padded = dsreg.store.collate.pad(
        [{"ids": torch.tensor([1, 2, 3]), "label": torch.tensor(0)}, {"ids": torch.tensor([4]), "label": torch.tensor(1)}], ragged=("ids",)
    )
    assert _batch_problem(padded, features, "text-classification", 2) is None
    del padded["attention_mask"]
    assert (
        _batch_problem(padded, features, "text-classification", 2)
        == "padded column 'ids' ([2, 3]) comes without lengths and attention_mask, so a model cannot tell padding from data"
    )
    assert (
        _batch_problem({"ids": [torch.tensor([1])], "label": torch.tensor([0])}, features, "text-classification", 1)
        == "column 'ids' is list, not a tensor (pad it with dsreg.store.collate.pad)"
    )


def test_a_wrong_sha256_is_caught_against_the_mirror_the_test_gives(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.bin").write_bytes(DATA)
    fake = blob(400, seed=7)  # the stand-in that prepares; the mirror holds the published bytes
    with pytest.raises(ConformanceError) as err:
        check_builder(WrongSha, files={"toy.bin": fake}, mirrors=[str(mirror)])
    message = str(err.value)
    assert message.startswith(f"check_builder [checksums] wrong-sha: toy.bin from mirrors= has sha256 {SHA}, the File declares ")
    assert "copy the published values into it" in message
    # The right declaration passes, verified from the mirror.
    report = check_builder(Pairs, files={"toy.bin": fake}, mirrors=[str(mirror)])
    assert report.results["checksums"] == "ok (1 file(s) verified against the declared checksums)"


def test_a_wrong_sha256_is_caught_when_files_hands_over_the_published_bytes():
    with pytest.raises(ConformanceError) as err:
        check_builder(WrongSha, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith("check_builder [checksums] wrong-sha: files={'toy.bin': ...} has exactly the declared size but sha256 ")
    assert "copy its real sha256 into the File" in message


def test_a_wrong_sha256_is_caught_on_the_published_url(dsreg_file_server):
    url = dsreg_file_server.serve({"toy.bin": DATA})

    class WrongShaUrl(WrongSha):
        files = (dsreg.File("toy.bin", urls=(url + "toy.bin",), size=len(DATA), sha256=WrongSha.files[0].sha256),)

    with pytest.raises(ConformanceError) as err:
        check_builder(WrongShaUrl)
    message = str(err.value)
    assert message.startswith("check_builder [checksums] wrong-sha: wrong-sha: toy.bin failed verification from every source")
    assert f"sha256 {SHA}, expected" in message and "copy the published values into it" in message


def test_stand_ins_without_a_mirror_leave_the_checksums_unchecked_and_say_so(recwarn):
    report = check_builder(Pairs, files={"toy.bin": blob(400, seed=7)})
    assert report.results["checksums"].startswith("skipped: toy.bin given only as stand-ins (files=)")
    assert "pass mirrors=" in report.results["checksums"]
    assert not [w for w in recwarn if issubclass(w.category, ConformanceWarning)]  # expected with fakes: no warning


CLASHING = """
import dsreg

class {cls}(dsreg.Builder):
    name = "pairs"
    description = "A dataset that takes a name another plugin has."
    homepage = "https://example.invalid/{module}"
    license = "CC0-1.0"
    citation = "none"
    task = "image-classification"
    features = {{"label": dsreg.ClassLabel(("a", "b"))}}
    files = ()

    def generate(self, split, files, **config):
        yield from ()

@dsreg.hookimpl
def register_datasets(register):
    register({cls})
"""


def test_a_name_two_installed_plugins_register_is_caught_with_both_plugins(tmp_path, monkeypatch):
    from importlib import metadata

    from dsreg import plugins

    for module, cls in (("pairsone", "One"), ("pairstwo", "Two")):
        (tmp_path / f"{module}.py").write_text(CLASHING.format(module=module, cls=cls))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [metadata.EntryPoint(name=n, value=n, group="dsreg") for n in ("pairsone", "pairstwo")]
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps)
    with pytest.raises(ConformanceError) as err:
        check_builder(Pairs, files={"toy.bin": DATA})
    message = str(err.value)
    assert message.startswith(
        "check_builder [installed] pairs: dataset name 'pairs' is registered by installed plugins "
        "'pairsone' and 'pairstwo': `dsreg list` shows the dataset of 'pairsone' and refuses that of 'pairstwo'"
    )
    assert "rename one of the datasets" in message
    # One installed plugin with another Builder under the name is a clash to come.
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps[:1])
    with pytest.raises(
        ConformanceError,
        match=r"\[installed\] pairs: dataset name 'pairs' is already registered by "
        r"installed plugin 'pairsone' \(pairsone.One\)",
    ):
        check_builder(Pairs, files={"toy.bin": DATA})


def test_the_installed_plugin_that_registers_the_builder_passes(tmp_path, monkeypatch):
    from importlib import metadata

    from dsreg import plugins

    (tmp_path / "pairsplugin.py").write_text(
        "import dsreg\nfrom test_check_builder import Pairs\n\n@dsreg.hookimpl\ndef register_datasets(register):\n    register(Pairs)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_entry_points", lambda: [metadata.EntryPoint(name="pairsplugin", value="pairsplugin", group="dsreg")])
    report = check_builder(Pairs, files={"toy.bin": DATA})
    assert report.results["installed"] == "ok (plugin 'pairsplugin')"


# -- fake data ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_fake_png_decodes(mode):
    from PIL import Image

    image = Image.open(io.BytesIO(fake_png(5, 3, mode=mode, seed=1)))
    image.load()
    assert (image.size, image.mode) == ((5, 3), mode)
    assert fake_png(seed=1) == fake_png(seed=1) != fake_png(seed=2)


def test_fake_jpeg_decodes():
    from PIL import Image

    image = Image.open(io.BytesIO(fake_jpeg(16, 8, mode="L")))
    assert (image.format, image.size, image.mode) == ("JPEG", (16, 8), "L")


def test_fake_wav_reads_back():
    with wave.open(io.BytesIO(fake_wav(0.5, rate=8000, channels=2)), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (2, 2, 8000, 4000)


def test_fake_flac_decodes_to_the_same_samples_as_the_wav():
    sf = pytest.importorskip("soundfile", reason="soundfile (libsndfile) decodes FLAC for this check")
    import numpy as np

    flac, info = sf.read(io.BytesIO(fake_flac(0.3, rate=8000, channels=2, seed=4)), dtype="int16")
    wav, _ = sf.read(io.BytesIO(fake_wav(0.3, rate=8000, channels=2, seed=4)), dtype="int16")
    assert info == 8000 and flac.shape == (2400, 2)
    assert np.array_equal(flac, wav)


def test_fake_text_and_tree():
    text = fake_text(lines=4, words=5, seed=3)
    assert len(text.splitlines()) == 4 and all(len(line.split()) == 5 for line in text.splitlines())
    tree = fake_tree(("cat", "dog"), per_class=2, splits=("train", "test"), make=fake_wav, ext="wav", seconds=0.01)
    assert sorted(tree)[:2] == ["test/cat/0.wav", "test/cat/1.wav"] and len(tree) == 8
    assert len(set(tree.values())) == 8  # every file differs
    flat = fake_tree(("a",), per_class=3, splits=(), make=fake_text, ext="txt")
    assert sorted(flat) == ["a/0.txt", "a/1.txt", "a/2.txt"]
    assert pack(flat, "tar.gz")[:2] == b"\x1f\x8b"
