"""The default networks behind ``dsreg.train.models``: small, readable, one per input kind.

Every network takes the batch dict the dataset's collate_fn made and returns logits ``[B, classes]``;
it reads its own columns (named when the factory built it), so the trainer never needs to know
what an image or a sentence is. Raw integer inputs are converted on the device (uint8 images
become floats in [0, 1] there), so the host copies stay small.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MyLinear", "ImageMLP", "ImageCNN", "conv_block", "TextBag", "TextGRU", "AudioCNN", "LogMel", "as_float"]


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` as float32: uint8 scaled to [0, 1], int16 audio to [-1, 1], other numbers as they are."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype == torch.int16:
        return x.float().div_(32768.0)
    return x if x.is_floating_point() else x.float()


def _image(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Bring an image batch to ``[B, C, H, W]`` float (``layout`` is "chw", "hw" or "hwc")."""
    x = as_float(x)
    if layout == "hw":
        return x.unsqueeze(1)
    if layout == "hwc":
        return x.permute(0, 3, 1, 2)
    return x


def _mask(batch: dict[str, Any], key: str, like: torch.Tensor) -> torch.Tensor:
    """Return the bool mask ``[B, T]`` of real positions of the padded column ``key``."""
    for name in (f"{key}_attention_mask", "attention_mask"):
        if name in batch:
            return batch[name].bool()
    for name in (f"{key}_lengths", "lengths"):
        if name in batch:
            lengths = batch[name].to(like.device)
            return torch.arange(like.shape[1], device=like.device).unsqueeze(0) < lengths.unsqueeze(1)
    return torch.ones(like.shape[:2], dtype=torch.bool, device=like.device)


class MyLinear(nn.Module):
    """``x @ weight + bias`` with explicit parameters (the study note's layer), initialised like nn.Linear."""

    def __init__(self, in_units: int, units: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_units)
        self.weight = nn.Parameter(torch.empty(in_units, units).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(units).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # addmm is the fused x @ W + b; autograd flows through both parameters.
        return torch.addmm(self.bias, x, self.weight) if x.dim() == 2 else x @ self.weight + self.bias


class ImageMLP(nn.Module):
    """Flatten → MyLinear → ReLU → MyLinear: the study note's network for any fixed-size image."""

    def __init__(self, key: str, layout: str, in_features: int, classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.key, self.layout = key, layout
        self.hidden = MyLinear(in_features, hidden)
        self.out = MyLinear(hidden, classes)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        x = _image(batch[self.key], self.layout).flatten(1)
        return self.out(F.relu(self.hidden(x)))


def conv_block(c_in: int, c_out: int, pool: bool = True) -> list[nn.Module]:
    """Return conv 3x3 → (max-pool 2) → batch-norm → ReLU: the CPU-friendly order.

    Pooling straight after the convolution runs batch-norm and ReLU (forward and backward, about
    40 % of a step in the conv → BN → ReLU → pool order) on a quarter of the values; max-pooling
    commutes with the monotone ReLU, and BN normalises whatever it is given, so the net learns as
    well. The conv has no bias: the batch-norm's shift replaces it.
    """
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: a 1-pixel map stays 1 pixel, never 0
    return [*layers, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class ImageCNN(nn.Module):
    """Two conv blocks (pooled to a 4x4 grid, so any image size works) and a small MLP head.

    Activations are kept channels-last (NHWC): oneDNN's CPU convolutions run about 1.5x faster on
    it than on NCHW for these small layers, and cuDNN prefers it under bf16 too.
    """

    def __init__(self, key: str, layout: str, channels: int, classes: int, width: int = 16) -> None:
        super().__init__()
        self.key, self.layout = key, layout
        self.features = nn.Sequential(*conv_block(channels, width), *conv_block(width, 2 * width), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.ReLU(), nn.Linear(128, classes))
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to takes it; its stubs leave it out

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        x = _image(batch[self.key], self.layout).contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x))


class TextBag(nn.Module):
    """Mean of token embeddings (an EmbeddingBag weighted by the padding mask) → MLP.

    With ``hashed`` (no vocabulary size known) token ids are folded into ``vocab`` buckets.
    """

    def __init__(self, key: str, vocab: int, classes: int, dim: int = 64, hidden: int = 128, hashed: bool = False) -> None:
        super().__init__()
        self.key, self.vocab, self.hashed = key, vocab, hashed
        self.bag = nn.EmbeddingBag(vocab, dim, mode="sum")
        self.head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        ids = batch[self.key].long()
        if self.hashed:
            ids = ids.remainder(self.vocab)
        mask = _mask(batch, self.key, ids).to(self.bag.weight.dtype)
        # Weights 1/length on real tokens and 0 on padding turn the bag's sum into a masked mean.
        weights = mask / mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(self.bag(ids, per_sample_weights=weights))


class TextGRU(nn.Module):
    """Embedding → one-layer GRU over the real (unpadded) tokens → linear on the last hidden state."""

    def __init__(self, key: str, vocab: int, classes: int, dim: int = 64, hidden: int = 128, hashed: bool = False) -> None:
        super().__init__()
        self.key, self.vocab, self.hashed = key, vocab, hashed
        self.embed = nn.Embedding(vocab, dim)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        ids = batch[self.key].long()
        if self.hashed:
            ids = ids.remainder(self.vocab)
        lengths = _mask(batch, self.key, ids).sum(1).clamp(min=1)
        # pack_padded_sequence wants lengths on the CPU (one small copy per batch).
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)
        return self.out(last[-1])


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Return triangular filters ``[n_fft // 2 + 1, n_mels]`` on the HTK mel scale (mel = 2595 log10(1 + f/700))."""
    n_freqs = n_fft // 2 + 1
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    top = 2595.0 * math.log10(1.0 + (sample_rate / 2) / 700.0)
    mels = torch.linspace(0.0, top, n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    f = freqs.unsqueeze(1)
    rising = (f - lower) / (centre - lower)
    falling = (upper - f) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class LogMel(nn.Module):
    """Waveform ``[B, T]`` → log-mel ``[B, n_mels, frames]`` (Hann window STFT, power, mel filters, log)."""

    window: torch.Tensor  # a buffer: typed here, since nn.Module's __getattr__ could return a Module

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, hop: int = 160, n_mels: int = 64) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # The STFT runs in float32 even under bf16 autocast: low precision ruins small spectral values.
        with torch.autocast(wave.device.type, enabled=False):
            spec = torch.stft(wave.float(), self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
            power = spec.real.square() + spec.imag.square()
            return torch.log(torch.einsum("bft,fm->bmt", power, self.filters) + 1e-6)

    def frames(self, samples: torch.Tensor) -> torch.Tensor:
        """Return how many frames ``samples`` real samples fill (center=True padding)."""
        return samples // self.hop + 1


class AudioCNN(nn.Module):
    """Log-mel (given, or computed from a waveform) → three conv blocks → masked mean over time → linear.

    Frequency is pooled to 8 bands, not averaged away, so the classifier still sees where energy is
    (pitch), while the mean over real frames makes any length work.

    ``layout``: "wave" (``[B, T]`` samples), "time-mel" (``[B, T, n_mels]``) or "mel-time" (``[B, n_mels, T]``).
    """

    BANDS = 8

    def __init__(self, key: str, layout: str, classes: int, sample_rate: int = 16000, width: int = 16) -> None:
        super().__init__()
        self.key, self.layout = key, layout
        self.logmel = LogMel(sample_rate) if layout == "wave" else None
        self.norm = nn.BatchNorm2d(1)
        self.features = nn.Sequential(
            *conv_block(1, width),
            *conv_block(width, 2 * width),
            *conv_block(2 * width, 4 * width, pool=False),
            nn.AdaptiveAvgPool2d((self.BANDS, None)),
        )
        self.out = nn.Linear(4 * width * self.BANDS, classes)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # see ImageCNN

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        x = as_float(batch[self.key])
        lengths = None
        for name in (f"{self.key}_lengths", "lengths"):
            if name in batch:
                lengths = batch[name].to(x.device)
                break
        if self.logmel is not None:
            if x.dim() == 3:  # [B, T, channels]: mix down to mono
                x = x.mean(-1)
            x = self.logmel(x)
            lengths = self.logmel.frames(lengths) if lengths is not None else None
        elif self.layout == "time-mel":
            x = x.transpose(1, 2)
        x = self.norm(x.unsqueeze(1)).contiguous(memory_format=torch.channels_last)
        h = self.features(x).flatten(1, 2)  # [B, C * bands, ceil(T/4)]
        steps = h.shape[-1]
        if lengths is None:
            return self.out(h.mean(-1))
        # Padding frames must not dilute the average: keep only time steps that saw real audio
        # (two ceil-mode poolings: ceil(frames / 4)).
        real = ((lengths + 3) // 4).clamp(min=1, max=steps)
        mask = (torch.arange(steps, device=h.device).unsqueeze(0) < real.unsqueeze(1)).to(h.dtype)
        return self.out((h * mask.unsqueeze(1)).sum(-1) / mask.sum(-1, keepdim=True))
