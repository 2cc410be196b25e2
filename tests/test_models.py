"""The core's default models: each builds for its task from a dataset's info and runs forward and backward."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

import dsreg
from dsreg.errors import ConfigError
from dsreg.train import build_model, sample_batch
from dsreg.train.nets import MyLinear, mel_filterbank

import trainsets
from trainsets import models_for

one_thread, registry = trainsets.one_thread, trainsets.registry  # fixtures, found by name in this module

CASES = [
    ("stripes", "image-classification"),
    ("colours", "image-classification"),
    ("tokens", "text-classification"),
    ("unsized", "text-classification"),
    ("tones", "audio-classification"),
    ("melframes", "audio-classification"),
    ("spectrograms", "audio-classification"),
]


def test_every_task_has_a_default_model():
    assert models_for("image-classification") == ["image-mlp", "image-cnn"]
    assert models_for("text-classification") == ["text-bag", "text-gru"]
    assert models_for("audio-classification") == ["audio-cnn"]


@pytest.mark.parametrize("dataset,task", CASES)
def test_every_model_of_the_task_builds_from_the_dataset_and_learns(registry, dataset, task):
    ds = dsreg.load(dataset, split="train")
    batch = sample_batch(ds, n=6)
    for model_name in models_for(task):
        torch.manual_seed(0)
        name, model = build_model(model_name, ds.info, batch)
        assert name == model_name
        logits = model(batch)
        assert logits.shape == (6, len(ds.classes)) and logits.dtype == torch.float32
        loss = torch.nn.functional.cross_entropy(logits, batch["label"])
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), model_name


def test_the_mlp_is_built_on_explicit_parameters(registry):
    ds = dsreg.load("stripes", split="train")
    _, model = build_model("image-mlp", ds.info, sample_batch(ds))
    assert isinstance(model.hidden, MyLinear) and model.hidden.weight.shape == (144, 256)
    assert [type(m).__name__ for m in model.children()] == ["MyLinear", "MyLinear"]


def test_my_linear_is_x_times_w_plus_b():
    layer = MyLinear(5, 3)
    x = torch.randn(4, 5)
    torch.testing.assert_close(layer(x), x @ layer.weight + layer.bias)
    torch.testing.assert_close(layer(x.view(2, 2, 5)), (x @ layer.weight + layer.bias).view(2, 2, 3))
    assert layer.weight.abs().max() <= 1 / math.sqrt(5)


def test_text_models_size_their_embedding_from_the_manifest_or_hash(registry):
    tokens = dsreg.load("tokens", split="train")
    _, model = build_model("text-bag", tokens.info, sample_batch(tokens))
    assert model.bag.num_embeddings == 72 and not model.hashed  # the builder's note("vocab_size", 72)
    unsized = dsreg.load("unsized", split="train")
    _, model = build_model("text-gru", unsized.info, sample_batch(unsized))
    assert model.hashed and model(sample_batch(unsized)).shape == (8, 2)  # ids up to 7,000,021 fold into buckets


def test_text_bag_ignores_padding(registry):
    tokens = dsreg.load("tokens", split="train")
    _, model = build_model("text-bag", tokens.info, sample_batch(tokens))
    one = {"input_ids": torch.tensor([[5, 6, 7]]), "lengths": torch.tensor([3])}
    padded = {"input_ids": torch.tensor([[5, 6, 7, 9, 9]]), "lengths": torch.tensor([3])}
    torch.testing.assert_close(model(one), model(padded))


def test_audio_cnn_reads_each_layout(registry):
    layouts = {}
    for name in ("tones", "melframes", "spectrograms"):
        ds = dsreg.load(name, split="train")
        _, model = build_model("audio-cnn", ds.info, sample_batch(ds))
        layouts[name] = (model.key, model.layout)
    assert layouts == {"tones": ("audio", "wave"), "melframes": ("log_mel", "time-mel"), "spectrograms": ("mel", "mel-time")}


def test_unknown_or_wrong_task_model_lists_the_valid_ones(registry):
    ds = dsreg.load("stripes", split="train")
    with pytest.raises(
        ConfigError, match=r"no model 'text-bag' for 'image-classification' \(stripes\); valid models: image-mlp, image-cnn"
    ):
        build_model("text-bag", ds.info, sample_batch(ds))
    with pytest.raises(ConfigError, match="valid models: image-mlp, image-cnn"):
        build_model("resnet-9000", ds.info, sample_batch(ds))


def test_models_find_the_label_and_variable_sizes_through_the_features():
    from types import SimpleNamespace

    from dsreg.train.models import image_mlp, target_column

    features = {"image": dsreg.Tensor((None, 8), "uint8"), "y": dsreg.ClassLabel(("a", "b"))}
    info = SimpleNamespace(name="varied", features=features, classes=["a", "b"], config={}, manifest=None)
    assert target_column(info) == "y"
    sample = {"image": torch.zeros(2, 5, 8, dtype=torch.uint8), "y": torch.tensor([0, 1])}
    with pytest.raises(ConfigError, match="varied: image-mlp needs fixed-size images; use --model image-cnn"):
        image_mlp(info, sample)
    with pytest.raises(ConfigError, match="unlabelled has no ClassLabel column"):
        target_column(SimpleNamespace(name="unlabelled", features={"x": dsreg.Value("int64")}))


def test_mel_filterbank_triangles_peak_at_their_centres():
    fb = mel_filterbank(8000, 256, 20)
    assert fb.shape == (129, 20) and fb.min() >= 0 and fb.max() <= 1
    peaks = fb.argmax(0)
    assert torch.all(peaks[1:] > peaks[:-1])  # centres rise with the mel index
    # 1 kHz is ~1000 mel: the filter whose centre is nearest to it peaks near bin 1000 / (8000 / 256)
    mel_1k = 2595 * math.log10(1 + 1000 / 700)
    top = 2595 * math.log10(1 + 4000 / 700)
    k = round(mel_1k / (top / 21)) - 1
    assert abs(int(peaks[k]) - 1000 / (8000 / 256)) <= 2


def test_plugin_time_imports_stay_light():
    code = "import sys, dsreg; dsreg.names(); import dsreg.train.models; print(sorted(m for m in ('torch', 'numpy', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
