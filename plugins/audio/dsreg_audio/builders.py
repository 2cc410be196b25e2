"""The ``audiofolder`` and ``dtmf`` builders.

Both yield raw file bytes as ``decode.Record``s and name ``decode.decode`` as their decode step,
so the core decodes and resamples on every core while one reader streams the folder or archive.
Importing this module imports only dsreg and the standard library.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator, Mapping

import dsreg
from dsreg.fetching import sources
from dsreg.errors import ConfigError

from .decode import EXTENSIONS, Options, Record, decode

__all__ = ["AudioBuilder", "AudioFolder", "Dtmf", "FEATURES"]

FEATURES = ("waveform", "log-mel")

AUDIO_CONFIG: dict[str, Any] = {"sample_rate": 16000, "max_seconds": 10.0, "features": "waveform", "n_mels": 64}


def _check_mels(sample_rate: int, n_mels: int) -> None:
    """Refuse a filterbank with a filter that no FFT bin falls inside (it would be all zeros)."""
    from .mel import frame_params, hz_to_mel, mel_to_hz

    n_fft, _ = frame_params(sample_rate)
    top = hz_to_mel(sample_rate / 2)
    edges = [mel_to_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    step = sample_rate / n_fft
    for m in range(n_mels):
        first = math.floor(edges[m] / step) + 1  # the first bin strictly above the left edge
        if first * step >= edges[m + 2]:
            raise ConfigError(
                f"n_mels={n_mels} is too many for sample_rate={sample_rate}: mel filter {m} covers no "
                f"frequency bin ({n_fft}-point FFT); use fewer mels or a higher sample rate"
            )


class AudioBuilder(dsreg.Builder):
    """Base of the audio-classification builders: subclasses yield records in ``generate``."""

    task = "audio-classification"
    collate_fn = "pad"
    decode = staticmethod(decode)

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        p = self.params
        if p["features"] not in FEATURES:
            raise ConfigError(f"features {p['features']!r} is not one of {', '.join(FEATURES)}")
        if not isinstance(p["sample_rate"], int) or not 1000 <= p["sample_rate"] <= 384000:
            raise ConfigError(f"sample_rate must be a whole number of Hz from 1000 to 384000, not {p['sample_rate']!r}")
        if p["max_seconds"] is not None and not (isinstance(p["max_seconds"], (int, float)) and p["max_seconds"] > 0):
            raise ConfigError(f"max_seconds must be a positive number of seconds or null, not {p['max_seconds']!r}")
        if not isinstance(p["n_mels"], int) or p["n_mels"] < 1:
            raise ConfigError(f"n_mels must be a positive whole number, not {p['n_mels']!r}")
        if p["features"] == "log-mel":
            _check_mels(p["sample_rate"], p["n_mels"])

    @property
    def options(self) -> Options:
        p = self.params
        return Options(p["sample_rate"], None if p["max_seconds"] is None else float(p["max_seconds"]), p["features"], p["n_mels"])

    def classes(self, files: Mapping[str, Path] | None) -> tuple[str, ...]:
        """Return the class names (``files`` None: only what is known without reading the data)."""
        raise NotImplementedError(f"{type(self).__name__} must implement classes(files)")

    def get_features(self, files: Mapping[str, Path] | None = None) -> dict[str, dsreg.features.Feature]:
        column = {"waveform": ("waveform", dsreg.Tensor((None,), "float32")),
                  "log-mel": ("log_mel", dsreg.Tensor((None, self.params["n_mels"]), "float32"))}[self.params["features"]]
        return {column[0]: column[1], "label": dsreg.ClassLabel(self.classes(files))}


class AudioFolder(AudioBuilder):
    """Your own audio: one folder per class (optionally under train/ test/ validation/)."""

    name = "audiofolder"
    version = "1.0.0"
    description = (
        "Audio classification on your own recordings at any fsspec URL (a local folder, a .zip or "
        ".tar(.gz), http(s)://, s3://): one folder per class of WAV, FLAC or Ogg files, optionally under "
        "train/, test/ and validation/ (else a seeded, class-stratified holdout). Decoded with soundfile, "
        "mixed down to mono, resampled with soxr; stored as waveforms or log-mel features. Pass -c url=..."
    )
    homepage = "https://github.com/dsreg/dsreg/tree/main/plugins/audio"
    license = "the license of your data"
    citation = "none (your own data)"
    splits = ("train", "test")
    config = {"url": None, "holdout": 0.2, "seed": 0, **AUDIO_CONFIG}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._layout: sources.Layout | None = None

    def get_files(self) -> tuple[dsreg.File, ...]:
        return sources.files_for(self.params["url"])

    def fingerprint(self) -> str | None:
        return sources.fingerprint(self.params["url"])

    def _scan(self, files: Mapping[str, Path]) -> sources.Layout:
        if self._layout is None:
            src = sources.Source(self.params["url"], files)
            self._layout = sources.class_layout(src.names(), extensions=EXTENSIONS)
            # Files that are not audio (a README, .mp3) are left out, and said so.
            self.note("ignored_files", len(self._layout.ignored))
        return self._layout

    def classes(self, files: Mapping[str, Path] | None) -> tuple[str, ...]:
        return () if files is None else self._scan(files).classes

    def get_splits(self) -> tuple[str, ...]:
        layout = self._layout
        if layout is None and self.params["url"] and not sources.is_remote(self.params["url"]):
            layout = sources.class_layout(sources.Source(self.params["url"]).names(), extensions=EXTENSIONS)
        if layout is None:
            return tuple(self.splits)
        if layout.splits:
            return layout.splits
        holdout = self.params["holdout"]
        if isinstance(holdout, Mapping):
            return ("train", *[s for s in ("validation", "test") if s in holdout])
        return ("train", "test")

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        layout = self._scan(files)
        assign = layout.assign(holdout=self.params["holdout"], seed=self.params["seed"])
        options = self.options
        src = sources.Source(self.params["url"], files)
        for path, data in src.walk(select=lambda p: assign.get(p) == split):
            yield path, Record(path, data, layout.label(path), options)


class Dtmf(AudioBuilder):
    """An offline sample: the 16 telephone keypad tones of ITU-T Q.23, generated with seeded variation."""

    name = "dtmf"
    version = "1.0.0"
    description = (
        "Telephone keypad (DTMF) tones generated by dsreg-audio from the ITU-T Q.23 frequency pairs "
        "(rows 697/770/852/941 Hz, columns 1209/1336/1477/1633 Hz), with seeded durations, levels, twist, "
        "frequency deviation and noise; 16 classes (0-9, *, #, A-D). Needs no network."
    )
    homepage = "https://www.itu.int/rec/T-REC-Q.23"
    license = "CC0-1.0"
    citation = (
        "ITU-T Recommendation Q.23, Technical features of push-button telephone sets. "
        "International Telecommunication Union, 1988."
    )
    splits = ("train", "test")
    # 25 test clips a key: 5 (80 clips) measured accuracy in steps of 1.25 %.
    config = {"per_key_train": 20, "per_key_test": 25, "seed": 0, **AUDIO_CONFIG, "sample_rate": 8000}
    # 320 clips are 3 steps an epoch at batch 128: 3 epochs (9 steps) learnt nothing. 180 steps do.
    train_defaults = {"model": "audio-cnn", "epochs": 18, "batch_size": 32, "lr": 3e-3}

    def classes(self, files: Mapping[str, Path] | None) -> tuple[str, ...]:
        from .dtmf import CLASSES

        return CLASSES

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        from .dtmf import CLASSES, clips

        per_key = int(self.params[f"per_key_{split}"])
        # Train and test come from different seeds: no clip is in both.
        seed = [int(self.params["seed"]), 0 if split == "train" else 1]
        options = self.options
        for key, name, wav in clips(per_key, seed):
            yield key, Record(f"{key}.wav", wav, CLASSES.index(name), options)
