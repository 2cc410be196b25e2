"""Test kit: fake data, valid and small, from a seed: ``fake_png``, ``fake_jpeg``, ``fake_wav``, ``fake_flac``, ``fake_text``, ``fake_tree``; ``png`` encodes given pixels."""

from __future__ import annotations

import io
import math
import random
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

# -- fake data: small, valid files from a seed --------------------------------------------------
_WORDS = (
    "river stone quiet amber lantern meadow copper violet harbor window thunder maple silver "
    "orchard pepper candle marble falcon willow ember glacier velvet cedar saffron pebble comet"
).split()


def _pixels(width: int, height: int, channels: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(width * height * channels))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(pixels: bytes, width: int, height: int, *, mode: str = "L") -> bytes:
    """Return a valid PNG of the given 8-bit ``pixels`` (row by row); ``mode`` is "L", "LA", "RGB" or "RGBA"."""
    modes = {"L": (0, 1), "LA": (4, 2), "RGB": (2, 3), "RGBA": (6, 4)}
    if mode not in modes:
        raise ValueError(f"PNG mode {mode!r} is not one of {', '.join(modes)}")
    color_type, channels = modes[mode]
    stride = width * channels
    if len(pixels) != height * stride:
        raise ValueError(f"{len(pixels)} bytes of pixels for a {width}x{height} {mode} PNG; expected {height * stride}")
    # Filter byte 0 (none) before every row, as the format requires.
    raw = b"".join(b"\x00" + pixels[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b"")


def fake_png(width: int = 8, height: int = 8, *, mode: str = "L", seed: int = 0) -> bytes:
    """Return a valid PNG of random pixels; ``mode`` is "L", "LA", "RGB" or "RGBA" (8 bits per channel)."""
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(mode)
    if channels is None:
        raise ValueError(f"PNG mode {mode!r} is not one of L, LA, RGB, RGBA")
    return png(_pixels(width, height, channels, seed), width, height, mode=mode)


def fake_jpeg(width: int = 8, height: int = 8, *, mode: str = "RGB", seed: int = 0, quality: int = 90) -> bytes:
    """Return a valid JPEG of random pixels ("L" or "RGB"); needs Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("fake_jpeg needs Pillow: pip install Pillow") from exc
    channels = {"L": 1, "RGB": 3}.get(mode)
    if channels is None:
        raise ValueError(f"JPEG mode {mode!r} is not 'L' or 'RGB'")
    image = Image.frombytes(mode, (width, height), _pixels(width, height, channels, seed))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _samples(seconds: float, rate: int, channels: int, seed: int, freq: float | None) -> list[int]:
    """Return interleaved 16-bit samples: a sine (a random pitch from the seed) plus a little noise."""
    rng = random.Random(seed)
    pitch = freq if freq is not None else rng.uniform(200.0, 2000.0)
    out = []
    for i in range(max(1, int(seconds * rate))):
        value = 0.5 * math.sin(2 * math.pi * pitch * i / rate) + rng.uniform(-0.05, 0.05)
        out.extend([int(value * 32767)] * channels)
    return out


def fake_wav(seconds: float = 0.25, *, rate: int = 8000, channels: int = 1, seed: int = 0, freq: float | None = None) -> bytes:
    """Return a valid 16-bit PCM WAV: a sine (pitch ``freq`` or one drawn from the seed) with noise."""
    import wave

    samples = _samples(seconds, rate, channels, seed, freq)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buf.getvalue()


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's frame number coding (the UTF-8 scheme, extended to 36 bits)."""
    if n < 0x80:
        return bytes([n])
    for length in range(2, 8):
        if n < 1 << (5 * length + 1):
            break
    out = []
    for _ in range(length - 1):
        out.append(0x80 | (n & 0x3F))
        n >>= 6
    lead = (0xFF << (8 - length)) & 0xFF
    return bytes([lead | n, *reversed(out)])


def fake_flac(seconds: float = 0.25, *, rate: int = 8000, channels: int = 1, seed: int = 0, freq: float | None = None) -> bytes:
    """Return a valid 16-bit FLAC (uncompressed "verbatim" frames) of the same signal as ``fake_wav``."""
    if not 1 <= channels <= 8 or not 1 <= rate < 1 << 20:
        raise ValueError("FLAC needs 1-8 channels and a sample rate below 1048576 Hz")
    samples = _samples(seconds, rate, channels, seed, freq)
    frames_total = len(samples) // channels
    block = 1024
    # STREAMINFO: block sizes, unknown frame sizes, rate, channels, 16 bits, total samples, no MD5.
    info = struct.pack(">HH", block, block) + b"\x00" * 6
    bits = (rate << 44) | ((channels - 1) << 41) | (15 << 36) | frames_total
    info += bits.to_bytes(8, "big") + b"\x00" * 16
    out = bytearray(b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info)  # last metadata block
    for number, start in enumerate(range(0, frames_total, block)):
        n = min(block, frames_total - start)
        header = bytearray(b"\xff\xf8")
        header.append(0x70)  # block size: 16-bit (n-1) at the end of the header; rate from STREAMINFO
        header.append(((channels - 1) << 4) | 0x08)  # independent channels, 16 bits per sample
        header += _utf8_number(number) + struct.pack(">H", n - 1)
        header.append(_crc8(bytes(header)))
        frame = bytearray(header)
        for ch in range(channels):
            frame.append(0x02)  # verbatim subframe, no wasted bits
            chunk = samples[start * channels + ch : (start + n) * channels : channels]
            frame += struct.pack(f">{n}h", *chunk)
        frame += struct.pack(">H", _crc16(bytes(frame)))
        out += frame
    return bytes(out)


def fake_text(lines: int = 3, words: int = 8, *, seed: int = 0) -> str:
    """Return ``lines`` lines of ``words`` random words each (a newline after each line)."""
    rng = random.Random(seed)
    return "".join(" ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + ".\n" for _ in range(lines))


def fake_tree(
    classes: Sequence[str] = ("a", "b"),
    per_class: int = 2,
    *,
    splits: Sequence[str] = ("train", "test"),
    make: Callable[..., Any] = fake_png,
    ext: str = "png",
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, bytes]:
    """Return ``{"<split>/<class>/<i>.<ext>": bytes}`` made by ``make(seed=..., **kwargs)``, every file different.

    Pass ``splits=()`` for a ``<class>/<i>.<ext>`` layout. Hand the result to ``pack`` for an archive
    or ``write_tree`` for a folder.
    """
    tree: dict[str, bytes] = {}
    n = seed * 1_000_003
    for split in splits or (None,):
        for label in classes:
            for i in range(per_class):
                data = make(seed=n, **kwargs)
                n += 1
                path = f"{label}/{i}.{ext}" if split is None else f"{split}/{label}/{i}.{ext}"
                tree[path] = data.encode() if isinstance(data, str) else bytes(data)
    return tree
