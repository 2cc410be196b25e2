"""Log-mel features against an independent formula: a direct numpy DFT and textbook triangular filters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsreg.errors import ConfigError
from dsreg_audio.builders import AudioFolder
from dsreg_audio.mel import frame_params, log_mel, mel_filterbank, num_frames


def textbook_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """HTK mel triangles, one bin at a time, from mel(f) = 2595 log10(1 + f/700)."""

    def mel(f: float) -> float:
        return 2595 * math.log10(1 + f / 700)

    def hz(m: float) -> float:
        return 700 * (10 ** (m / 2595) - 1)

    top = mel(sample_rate / 2)
    edges = [hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sample_rate / n_fft
            if lo < f <= mid:
                out[m, k] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                out[m, k] = (hi - f) / (hi - mid)
    return out


def reference_log_mel(x: np.ndarray, sample_rate: int, n_mels: int) -> np.ndarray:
    n_fft, hop = round(0.025 * sample_rate / 2) * 2, round(0.010 * sample_rate)
    padded = np.concatenate([np.zeros(n_fft // 2), x.astype(np.float64), np.zeros(n_fft // 2)])
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n_fft // 2 + 1), n) / n_fft)  # not np.fft
    frames = 1 + (len(padded) - n_fft) // hop
    power = np.stack([np.abs(dft @ (padded[t * hop : t * hop + n_fft] * window)) ** 2 for t in range(frames)])
    return np.log(power @ textbook_filters(sample_rate, n_fft, n_mels).T + 1e-6)


@pytest.mark.parametrize("sample_rate,n_mels", [(16000, 64), (8000, 40), (22050, 80)])
def test_log_mel_matches_the_independent_formula(sample_rate, n_mels):
    rng = np.random.default_rng(sample_rate)
    x = (
        0.1 * rng.standard_normal(int(0.3 * sample_rate)) + 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(0.3 * sample_rate)) / sample_rate)
    ).astype(np.float32)
    ours = log_mel(x, sample_rate, n_mels)
    assert ours.dtype == torch.float32 and ours.shape == (num_frames(len(x), frame_params(sample_rate)[1]), n_mels)
    np.testing.assert_allclose(ours.numpy(), reference_log_mel(x, sample_rate, n_mels), atol=2e-3, rtol=0)
    n_fft, _ = frame_params(sample_rate)
    np.testing.assert_allclose(mel_filterbank(sample_rate, n_fft, n_mels).numpy(), textbook_filters(sample_rate, n_fft, n_mels), atol=1e-6)


def test_frames_hop_and_peak_band_of_a_tone():
    assert frame_params(16000) == (400, 160) and frame_params(8000) == (200, 80)
    rate, hz = 16000, 1000.0
    x = np.sin(2 * np.pi * hz * np.arange(rate) / rate).astype(np.float32)
    feats = log_mel(x, rate, 64)
    assert feats.shape == (101, 64)
    n_fft, _ = frame_params(rate)
    fb = mel_filterbank(rate, n_fft, 64)
    centres = fb.argmax(dim=1).double() * rate / n_fft
    peak = int(feats[50].argmax())
    assert abs(centres[peak].item() - hz) <= 80  # the loudest band is the one around 1 kHz
    silent = log_mel(np.zeros(1600, np.float32), rate, 64)
    assert torch.allclose(silent, torch.full_like(silent, math.log(1e-6)))
    assert log_mel(np.zeros(10, np.float32), rate).shape == (1, 64)  # shorter than half a window


def test_too_many_mels_for_the_rate_is_refused():
    with pytest.raises(ConfigError, match="n_mels=128 is too many for sample_rate=8000"):
        AudioFolder(features="log-mel", sample_rate=8000, n_mels=128)
    AudioFolder(features="log-mel", sample_rate=8000, n_mels=40)
    AudioFolder(features="waveform", sample_rate=8000, n_mels=128)  # unused when storing waveforms
