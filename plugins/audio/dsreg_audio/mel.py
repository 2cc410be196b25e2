"""Log-mel features computed with torch; the filterbank is documented here and in docs/plugins/audio.md.

For a mono waveform ``x`` at ``sample_rate`` Hz:

1. Frames: window ``n_fft`` = 25 ms (rounded to an even number of samples), hop ``hop_length`` =
   10 ms (rounded): 400 and 160 samples at 16 kHz, 200 and 80 at 8 kHz. The signal is zero-padded by ``n_fft // 2`` on both sides (centred frames), so there
   are ``1 + len(x) // hop_length`` frames.
2. Each frame is multiplied by a periodic Hann window ``w[n] = 0.5 - 0.5 cos(2πn / n_fft)`` and
   its power spectrum ``|X[k]|²`` taken for bins ``k = 0 .. n_fft // 2`` (bin ``k`` is at
   ``k · sample_rate / n_fft`` Hz).
3. ``n_mels`` triangular filters (64 by default) on the HTK mel scale
   ``mel(f) = 2595 · log10(1 + f / 700)``: ``n_mels + 2`` edge frequencies equally spaced in mel
   from ``fmin`` = 0 Hz to ``fmax`` = ``sample_rate / 2``; filter ``m`` rises linearly from edge ``m``
   to a peak of 1 at edge ``m + 1`` and falls to 0 at edge ``m + 2`` (no area normalisation).
4. ``log_mel = ln(filterbank · power + 1e-6)``: natural log with an offset of 1e-6, so silence
   gives about -13.8 instead of -inf.

The result is float32 ``[frames, n_mels]`` (time first, so that batches pad along time).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LOG_OFFSET", "frame_params", "hz_to_mel", "mel_to_hz", "mel_filterbank", "log_mel", "num_frames"]

LOG_OFFSET = 1e-6
WINDOW_SECONDS = 0.025
HOP_SECONDS = 0.010


def frame_params(sample_rate: int) -> tuple[int, int]:
    """Return ``(n_fft, hop_length)`` in samples: a 25 ms window (rounded to an even count) and a 10 ms hop."""
    return 2 * round(WINDOW_SECONDS * sample_rate / 2), round(HOP_SECONDS * sample_rate)


def num_frames(num_samples: int, hop_length: int) -> int:
    """Return the number of centred frames of a signal of ``num_samples``."""
    return 1 + num_samples // hop_length


def hz_to_mel(f: float) -> float:
    """HTK mel scale."""
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m: float) -> float:
    """Inverse of the HTK mel scale."""
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> Any:
    """Return the ``[n_mels, n_fft // 2 + 1]`` float32 torch tensor of triangular HTK mel filters."""
    import torch

    fmax = sample_rate / 2 if fmax is None else fmax
    lo, hi = hz_to_mel(fmin), hz_to_mel(fmax)
    mels = torch.linspace(lo, hi, n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (torch.pow(10.0, mels / 2595.0) - 1.0)
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


def log_mel(waveform: Any, sample_rate: int, n_mels: int = 64) -> Any:
    """Return the float32 ``[frames, n_mels]`` log-mel spectrogram of a mono waveform (1-D array or tensor)."""
    import torch

    x = torch.as_tensor(waveform, dtype=torch.float32)
    if x.dim() != 1:
        raise ValueError(f"log_mel takes a mono 1-D waveform, got shape {tuple(x.shape)}")
    n_fft, hop = frame_params(sample_rate)
    # Zero padding (not reflection) so that clips shorter than half a window still work.
    x = torch.nn.functional.pad(x, (n_fft // 2, n_fft // 2))
    spec = torch.stft(
        x,
        n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=torch.hann_window(n_fft, periodic=True),
        center=False,
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()  # [freq, frames]
    mel = mel_filterbank(sample_rate, n_fft, n_mels) @ power
    return torch.log(mel + LOG_OFFSET).T.contiguous()
