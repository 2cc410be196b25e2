"""dsreg-audio: audio classification datasets for dsreg.

    import dsreg
    train = dsreg.load("audiofolder", split="train", url="speech.zip", features="log-mel")
    batch = next(iter(train.loader(batch_size=8, shuffle=True)))
    # log_mel float32 [B, T, 64], lengths int64 [B], attention_mask bool [B, T], label int64 [B]

``dsreg_audio.log_mel(waveform, sample_rate)`` computes the same features (see ``dsreg_audio.mel``
for the filterbank). Importing this package is cheap; torch and numpy load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["log_mel", "mel_filterbank"]


def log_mel(waveform: Any, sample_rate: int, n_mels: int = 64) -> Any:
    """Return the float32 ``[frames, n_mels]`` log-mel features of a mono waveform (see ``dsreg_audio.mel``)."""
    from .mel import log_mel as compute

    return compute(waveform, sample_rate, n_mels)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> Any:
    """Return the ``[n_mels, n_fft // 2 + 1]`` HTK triangular filterbank ``log_mel`` uses."""
    from .mel import mel_filterbank as build

    return build(sample_rate, n_fft, n_mels)
