"""Decode one audio file into an example: soundfile → mono → soxr resampling → cut → waveform or log-mel.

``decode`` is a pure module-level function of one picklable record, so the core maps it over a
process pool while the builder streams the files.
"""

from __future__ import annotations

import io
from typing import Any, NamedTuple

from dsreg import Skip

__all__ = ["Options", "Record", "decode", "EXTENSIONS"]

#: File endings read as audio (what libsndfile decodes: WAV, FLAC, Ogg Vorbis/Opus).
EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus")


class Options(NamedTuple):
    """How every clip of a configuration is turned into features."""

    sample_rate: int
    max_seconds: float | None
    features: str  # "waveform" | "log-mel"
    n_mels: int


class Record(NamedTuple):
    """One file as the builder read it."""

    path: str
    data: bytes
    label: int
    options: Options


def decode(record: Record) -> dict[str, Any]:
    """Return ``{"waveform" | "log_mel": float32 array, "label": int}``; raise Skip (the reason; the key names the file) for unreadable audio."""
    import numpy as np
    import soundfile
    import soxr

    _path, data, label, opt = record
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        # libsndfile's own words, without the "Error opening <BytesIO at 0x…>" prefix.
        raise Skip(f"not a readable audio file ({getattr(exc, 'error_string', exc)})") from None
    if samples.shape[0] == 0:
        raise Skip("the file holds no audio frames")
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    if opt.max_seconds is not None:
        # Cut before resampling (with a little margin for the filter) so long files cost little.
        mono = mono[: int(np.ceil(opt.max_seconds * rate)) + 64]
    if rate != opt.sample_rate:
        mono = soxr.resample(mono, rate, opt.sample_rate, quality="HQ")
    if opt.max_seconds is not None:
        mono = mono[: int(round(opt.max_seconds * opt.sample_rate))]
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise Skip("the audio holds NaN or infinite samples")
    if opt.features == "log-mel":
        import torch

        from .mel import log_mel

        # One clip is far too small to share between threads (on 2 cores, 2 threads made each clip
        # 20x slower); the core's process pool is the parallelism. The caller's setting is restored.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            features = log_mel(mono, opt.sample_rate, opt.n_mels).numpy()
        finally:
            torch.set_num_threads(threads)
        return {"log_mel": features, "label": label}
    return {"waveform": mono, "label": label}
