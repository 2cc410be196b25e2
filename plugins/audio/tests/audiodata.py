"""Generated audio for the tests: sine tones encoded as WAV, FLAC or Ogg Vorbis, in class folders."""

from __future__ import annotations

import io

import numpy as np
import soundfile

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}
#: Each class is a tone at its own frequency.
CLASS_HZ = {"high": 2000.0, "low": 300.0, "mid": 900.0}


def sine(hz: float, seconds: float, rate: int, channels: int = 1, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def encode(samples: np.ndarray, rate: int, fmt: str = "wav") -> bytes:
    container, subtype = FORMATS[fmt]
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format=container, subtype=subtype)
    return buf.getvalue()


def class_tree(per_class: int = 5, prefix: str = "", rate: int = 22050, seed: int = 0) -> dict[str, bytes]:
    """``{prefix<class>/<n>.<ext>: bytes}``: formats, lengths (0.2-0.6 s) and channels vary per file."""
    rng = np.random.default_rng(seed)
    tree = {}
    for cls, hz in CLASS_HZ.items():
        for i in range(per_class):
            fmt = ("wav", "flac", "ogg")[i % 3]
            seconds = float(rng.uniform(0.2, 0.6))
            tree[f"{prefix}{cls}/{i:02d}.{fmt}"] = encode(sine(hz, seconds, rate, channels=1 + i % 2), rate, fmt)
    return tree
