"""The core's default models, registered through ``register_models`` exactly as a plugin would.

A model factory is called as ``factory(info, sample, **options)``: ``info`` is the dataset's
``dsreg.DatasetInfo`` (features, classes, task, config, manifest notes) and ``sample`` one small
batch as the dataset's collate_fn makes it (so shapes after collation, e.g. padded token ids, are
known). It returns an ``nn.Module`` that takes the batch dict and returns logits ``[B, classes]``.

Registered here (first one per task is the default):

    image-mlp   image-classification   the study note's MLP on explicit nn.Parameter layers
    image-cnn   image-classification   two conv blocks, any image size
    text-bag    text-classification    masked mean of token embeddings (EmbeddingBag) → MLP
    text-gru    text-classification    embedding → GRU over real tokens
    audio-cnn   audio-classification   conv net over log-mel (computed in the model from waveforms)

Importing this module must stay cheap (it loads with every ``dsreg list``): torch is imported
inside the factories only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..features import label_column
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

    from ..api import DatasetInfo

__all__ = [
    "register_models",
    "build_model",
    "sample_batch",
    "image_mlp",
    "image_cnn",
    "text_bag",
    "text_gru",
    "audio_cnn",
    "input_column",
    "target_column",
]

#: Sample columns that describe another column rather than being an input.
_AUX_SUFFIXES = ("lengths", "attention_mask", "mask")
#: Token-id buckets when a text dataset does not say how large its vocabulary is.
HASH_BUCKETS = 1 << 15


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    """Register the default model of each task (the first per task is the trainer's default)."""
    register("image-mlp", image_mlp, tasks=("image-classification",))
    register("image-cnn", image_cnn, tasks=("image-classification",))
    register("text-bag", text_bag, tasks=("text-classification",))
    register("text-gru", text_gru, tasks=("text-classification",))
    register("audio-cnn", audio_cnn, tasks=("audio-classification",))


# -- choosing and building a model ------------------------------------------------------------
def sample_batch(ds: Any, n: int = 8) -> dict[str, Any]:
    """Return the first ``n`` examples of ``ds`` collated by its own collate_fn (what factories look at)."""
    if len(ds) == 0:
        raise ConfigError(f"{ds.info.name}:{ds.split} is empty; there is nothing to train on")
    if not hasattr(ds, "__getitems__"):  # a StreamingDataset: its first examples
        return ds.collate_fn(ds.head(n))
    return ds.collate_fn(ds.__getitems__(list(range(min(n, len(ds))))))


def build_model(name: str | None, info: Any, sample: dict[str, Any], **options: Any) -> tuple[str, nn.Module]:
    """Return ``(name, model)`` from the registered factory ``name`` (or the task's default)."""
    from ..plugins import get_registry

    registry = get_registry()
    choices = registry.models_for(info.task)
    valid = ", ".join(m.name for m in choices) or "none registered"
    if name is None:
        if not choices:
            raise ConfigError(
                f"no model is registered for task {info.task!r} ({info.name}); pass a torch module as model= "
                "or install a plugin that registers one (`dsreg plugins` lists models)"
            )
        entry = choices[0]
    else:
        named = registry.models.get(name)
        if named is None or info.task not in named.tasks:
            raise ConfigError(f"no model {name!r} for {info.task!r} ({info.name}); valid models: {valid}")
        entry = named
    return entry.name, entry.factory(info, sample, **options)


# -- reading a dataset's shape ----------------------------------------------------------------
def target_column(info: DatasetInfo) -> str:
    """Return the class-label column (the first ClassLabel feature)."""
    label = label_column(info.features)
    if label is not None:
        return label
    raise ConfigError(f"{info.name} has no ClassLabel column; give the trainer target= and loss=")


def _classes(info: DatasetInfo) -> int:
    n = len(info.classes)
    if n < 2:
        raise ConfigError(f"{info.name} declares {n} class(es); a classifier needs a ClassLabel with at least 2 names")
    return n


def input_column(info: DatasetInfo, sample: dict[str, Any], prefer: tuple[str, ...], min_dim: int, integer: bool | None = None) -> str:
    """Return the batch column a model reads: a preferred name, else the first tensor that fits.

    ``min_dim`` counts the batch dimension; ``integer`` True/False demands an integer/float column.
    """
    import torch

    target = target_column(info)

    def fits(key: str) -> bool:
        value = sample.get(key)
        if key == target or not isinstance(value, torch.Tensor) or value.dim() < min_dim:
            return False
        if key.endswith(_AUX_SUFFIXES) or value.dtype == torch.bool:
            return False
        if integer is None:
            return True
        is_int = not value.is_floating_point() and value.dtype != torch.uint8
        return is_int == integer

    for key in (*prefer, *sample):
        if key in sample and fits(key):
            return key
    shapes = {k: tuple(v.shape) for k, v in sample.items() if isinstance(v, torch.Tensor)}
    raise ConfigError(f"{info.name}: no batch column fits this model (columns: {shapes}); pick another --model")


def _image_layout(shape: tuple[int, ...]) -> str:
    """Return "chw", "hw" or "hwc" for one image's shape (channels are 1, 3 or 4)."""
    if len(shape) == 2:
        return "hw"
    if len(shape) == 3 and shape[0] not in (1, 3, 4) and shape[-1] in (1, 3, 4):
        return "hwc"
    if len(shape) == 3:
        return "chw"
    raise ConfigError(f"image shape {shape} is neither [H, W], [C, H, W] nor [H, W, C]")


def _setting(info: DatasetInfo, *keys: str) -> Any:
    """Return the first of ``keys`` found in the dataset's config or its manifest notes."""
    notes = (info.manifest or {}).get("notes", {})
    for key in keys:
        for source in (info.config, notes):
            if source.get(key) is not None:
                return source[key]
    return None


# -- factories --------------------------------------------------------------------------------
def image_mlp(info: DatasetInfo, sample: dict[str, Any], *, hidden: int = 256) -> nn.Module:
    """Build the MLP for fixed-size images: flatten → MyLinear(hidden) → ReLU → MyLinear(classes)."""
    from .nets import ImageMLP

    key = input_column(info, sample, ("image", "pixel_values"), min_dim=3)
    shape = tuple(sample[key].shape[1:])
    layout = _image_layout(shape)
    numel = 1
    for d in shape:
        numel *= d
    feat = info.features.get(key)
    if feat is not None and feat.ragged:
        raise ConfigError(f"{info.name}: image-mlp needs fixed-size images; use --model image-cnn")
    return ImageMLP(key, layout, numel, _classes(info), hidden=hidden)


def image_cnn(info: DatasetInfo, sample: dict[str, Any], *, width: int = 16) -> nn.Module:
    """Build a small CNN for images of any size and 1, 3 or 4 channels (``width``: the first block's channels).

    On the bundled samples 16 channels test within about a point of 32 and train about 2x faster on a CPU.
    """
    from .nets import ImageCNN

    key = input_column(info, sample, ("image", "pixel_values"), min_dim=3)
    shape = tuple(sample[key].shape[1:])
    layout = _image_layout(shape)
    channels = 1 if layout == "hw" else (shape[0] if layout == "chw" else shape[-1])
    return ImageCNN(key, layout, channels, _classes(info), width=width)


def _vocab(info: DatasetInfo, sample: dict[str, Any], key: str) -> tuple[int, bool]:
    """Return (vocabulary size, hashed?): the dataset's own figure, or hash buckets when it has none.

    Looked up in config or manifest notes: ``vocab_size``, or a ``vocab`` note that is a token list
    or a dict with ``size`` (or ``tokens``), as dsreg-text records it.
    """
    size = _setting(info, "vocab_size", "vocabulary_size")
    if size is None:
        vocab = _setting(info, "vocab", "vocabulary")
        if isinstance(vocab, dict):
            size = vocab.get("size") or len(vocab.get("tokens") or vocab.get("itos") or ()) or None
        elif isinstance(vocab, list):
            size = len(vocab)
    if not size:
        return HASH_BUCKETS, True
    return max(int(size), int(sample[key].max()) + 1), False


def text_bag(info: DatasetInfo, sample: dict[str, Any], *, dim: int = 64, hidden: int = 128) -> nn.Module:
    """Build a bag-of-embeddings classifier over padded ``input_ids`` (masked by lengths/attention_mask)."""
    from .nets import TextBag

    key = input_column(info, sample, ("input_ids", "tokens", "ids"), min_dim=2, integer=True)
    vocab, hashed = _vocab(info, sample, key)
    return TextBag(key, vocab, _classes(info), dim=dim, hidden=hidden, hashed=hashed)


def text_gru(info: DatasetInfo, sample: dict[str, Any], *, dim: int = 64, hidden: int = 128) -> nn.Module:
    """Build a one-layer GRU classifier over padded ``input_ids``."""
    from .nets import TextGRU

    key = input_column(info, sample, ("input_ids", "tokens", "ids"), min_dim=2, integer=True)
    vocab, hashed = _vocab(info, sample, key)
    return TextGRU(key, vocab, _classes(info), dim=dim, hidden=hidden, hashed=hashed)


def audio_cnn(info: DatasetInfo, sample: dict[str, Any], *, width: int = 16) -> nn.Module:
    """Build a conv net over log-mel features ``[B, T, n_mels]``/``[B, n_mels, T]`` or waveforms ``[B, T]``."""
    from .nets import AudioCNN

    key = input_column(info, sample, ("log_mel", "logmel", "mel", "spectrogram", "features", "audio", "waveform"), min_dim=2)
    value = sample[key]
    feat = info.features.get(key)
    if value.dim() == 2 or key in ("audio", "waveform"):
        layout = "wave"
    elif feat is not None and feat.ragged:
        layout = "time-mel"  # variable-length features store time first (only dim 0 may vary)
    else:
        layout = "mel-time"  # fixed [n_mels, frames], the usual spectrogram picture
    rate = int(_setting(info, "sample_rate", "sampling_rate") or 16000)
    return AudioCNN(key, layout, _classes(info), sample_rate=rate, width=width)
