"""Small generated datasets the trainer's tests train on: easy images, token ids and tones.

They need no files and no network; each builds in well under a second.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import dsreg
from dsreg.registry import Registry


class Stripes(dsreg.Builder):
    """Noisy 12x12 stripe patterns: the orientation is the class; ``index`` numbers the examples."""

    name = "stripes"
    description = "Noisy stripe patterns, one orientation per class."
    license = "CC0-1.0"
    task = "image-classification"
    features = {
        "image": dsreg.Tensor((1, 12, 12), "uint8"),
        "label": dsreg.ClassLabel(("horizontal", "vertical", "diagonal", "square")),
        "index": dsreg.Value("int64"),
    }
    splits = ("train", "test")
    config = {"n": 512}

    def generate(self, split, files, **config):
        import numpy as np

        n = self.params["n"]  # the configuration is self.params; the core passes no keywords
        rng = np.random.default_rng(0 if split == "train" else 1)
        yy, xx = np.mgrid[:12, :12]
        for i in range(n if split == "train" else n // 4):
            label = i % 4
            phase = int(rng.integers(0, 4))
            pattern = [
                (yy + phase) % 4 < 2,
                (xx + phase) % 4 < 2,
                (xx + yy + phase) % 4 < 2,
                (abs(yy - 6) < 2 + phase % 2) & (abs(xx - 6) < 2 + phase % 2),
            ][label]
            image = pattern * 170 + rng.integers(0, 80, (12, 12))
            yield str(i), {"image": image.astype("uint8")[None], "label": label, "index": i}


class Tokens(dsreg.Builder):
    """Variable-length token-id sequences: each class draws most tokens from its own range."""

    name = "tokens"
    description = "Token ids, class-specific ranges plus shared noise."
    license = "CC0-1.0"
    task = "text-classification"
    features = {"input_ids": dsreg.Tensor((None,), "int64"), "label": dsreg.ClassLabel(("low", "high"))}
    splits = ("train", "validation", "test")
    collate_fn = "pad"

    def generate(self, split, files):
        import numpy as np

        self.note("vocab_size", 72)
        rng = np.random.default_rng({"train": 0, "validation": 1, "test": 2}[split])
        for i in range(256 if split == "train" else 64):
            label = i % 2
            n = int(rng.integers(3, 11))
            own = rng.integers(2 + 30 * label, 32 + 30 * label, n)
            noise = rng.integers(62, 72, n)
            ids = np.where(rng.random(n) < 0.7, own, noise)
            yield str(i), {"input_ids": ids.astype("int64"), "label": label}


class Tones(dsreg.Builder):
    """Short noisy sine tones at 8 kHz, one pitch per class, as variable-length waveforms."""

    name = "tones"
    description = "Sine tones of three pitches with noise."
    license = "CC0-1.0"
    task = "audio-classification"
    features = {"audio": dsreg.Tensor((None,), "float32"), "label": dsreg.ClassLabel(("low", "mid", "high"))}
    splits = ("train", "test")
    config = {"sample_rate": 8000}
    collate_fn = "pad"

    def generate(self, split, files, **config):
        import numpy as np

        sample_rate = self.params["sample_rate"]
        rng = np.random.default_rng(0 if split == "train" else 1)
        for i in range(192 if split == "train" else 48):
            label = i % 3
            t = np.arange(int(rng.integers(800, 1600))) / sample_rate
            freq = (300.0, 1000.0, 2500.0)[label] * rng.uniform(0.95, 1.05)
            wave = 0.5 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.28)) + 0.1 * rng.standard_normal(len(t))
            yield str(i), {"audio": wave.astype("float32"), "label": label}


class MelFrames(dsreg.Builder):
    """Log-mel-like features stored time first ``[frames, 16]`` (variable length), for model shape tests."""

    name = "melframes"
    license = "CC0-1.0"
    task = "audio-classification"
    features = {"log_mel": dsreg.Tensor((None, 16), "float32"), "label": dsreg.ClassLabel(("a", "b"))}
    splits = ("train",)
    collate_fn = "pad"

    def generate(self, split, files):
        import numpy as np

        rng = np.random.default_rng(0)
        for i in range(16):
            yield str(i), {"log_mel": rng.standard_normal((int(rng.integers(5, 30)), 16)).astype("float32"), "label": i % 2}


class Spectrograms(dsreg.Builder):
    """Fixed-size ``[n_mels, frames]`` spectrograms (the picture layout), for model shape tests."""

    name = "spectrograms"
    license = "CC0-1.0"
    task = "audio-classification"
    features = {"mel": dsreg.Tensor((20, 24), "float32"), "label": dsreg.ClassLabel(("a", "b", "c"))}
    splits = ("train",)

    def generate(self, split, files):
        import numpy as np

        rng = np.random.default_rng(0)
        for i in range(12):
            yield str(i), {"mel": rng.standard_normal((20, 24)).astype("float32"), "label": i % 3}


class ColourImages(dsreg.Builder):
    """RGB images stored channels last ``[H, W, 3]``, for model layout tests."""

    name = "colours"
    license = "CC0-1.0"
    task = "image-classification"
    features = {"image": dsreg.Tensor((10, 14, 3), "uint8"), "label": dsreg.ClassLabel(("r", "g", "b"))}
    splits = ("train",)

    def generate(self, split, files):
        import numpy as np

        rng = np.random.default_rng(0)
        for i in range(12):
            yield str(i), {"image": rng.integers(0, 255, (10, 14, 3)).astype("uint8"), "label": i % 3}


class Unsized(dsreg.Builder):
    """Token ids with no recorded vocabulary size (the models hash them into buckets)."""

    name = "unsized"
    license = "CC0-1.0"
    task = "text-classification"
    features = {"input_ids": dsreg.Tensor((None,), "int64"), "label": dsreg.ClassLabel(("a", "b"))}
    splits = ("train",)
    collate_fn = "pad"

    def generate(self, split, files):
        for i in range(8):
            yield str(i), {"input_ids": [i * 1_000_003, 5, 7 + i][: 1 + i % 3], "label": i % 2}


ALL = (Stripes, Tokens, Tones, MelFrames, Spectrograms, ColourImages, Unsized)


def add_default_models(registry: Registry) -> Registry:
    """Register the core's default models in a test registry (the ``register`` fixture holds datasets only)."""
    import dsreg.train.models

    record = registry.plugin("dsreg.train.models", "dsreg")
    dsreg.train.models.register_models(lambda name, factory, tasks=(): registry.add_model(record, name, factory, tasks))
    return registry


@contextlib.contextmanager
def training_registry(*builders: type[dsreg.Builder]) -> Iterator[Registry]:
    """Register ``builders`` and the default models for the block (usable outside pytest, e.g. under torchrun)."""
    from dsreg.testing import registered

    with registered(*(builders or ALL)) as registry:
        yield add_default_models(registry)


def models_for(task: str) -> list[str]:
    """Return the default model names registered for ``task``."""
    registry = add_default_models(Registry())
    return [m.name for m in registry.models_for(task)]


def state_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two state dicts hold the same keys and bit-identical tensors."""
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- fixtures shared by test_train.py and test_models.py (imported there by name) -------------


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine they stall."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry(dsreg_register, dsreg_cache):
    return add_default_models(dsreg_register(*ALL))
