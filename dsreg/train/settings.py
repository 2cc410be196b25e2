"""What a training run is configured with: one frozen ``TrainSettings``, checked when it is made.

    from dsreg.train import Trainer, TrainSettings

    settings = TrainSettings(epochs=5, batch_size=256, lr=3e-3, out_dir="runs/cnn")
    Trainer("image-cnn", "notmnist-synth", settings=settings).fit()

The field names are the ones used everywhere else: a Builder's ``train_defaults`` keys, ``dsreg
train``'s options in Python form, the Trainer's keyword arguments, and the ``settings`` dict in a
checkpoint and in ``metrics.json``. A training setting left None (model, model_options, epochs,
batch_size, lr, weight_decay, schedule, clip_grad) is "not given": ``for_dataset`` fills it from the
dataset's ``train_defaults``, else from ``FALLBACKS``. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..builder import TRAIN_SETTINGS, check_train_settings
from ..errors import ConfigError

__all__ = ["TrainSettings", "FALLBACKS", "PRECISIONS", "check_settings", "dataset_defaults"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: What the trainer uses for a setting neither the caller nor the dataset's ``train_defaults`` gives.
FALLBACKS: dict[str, Any] = {
    "model": None,
    "model_options": {},
    "epochs": 3,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.01,
    "schedule": "cosine",
    "clip_grad": None,
}


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and bool(os.fspath(value))


#: The settings beyond ``TRAIN_SETTINGS`` (which ``dsreg.builder`` checks): when a value is valid,
#: and what to give instead, in the words of ``check_train_settings``'s messages.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "eval_batch_size": (lambda v: v is None or _whole(v, 1), "a whole number >= 1, or None"),
    "seed": (lambda v: _whole(v, 0), "a whole number >= 0"),
    "deterministic": (lambda v: isinstance(v, bool), "True or False"),
    "device": (lambda v: isinstance(v, str) and bool(v), "auto, cpu, cuda, cuda:1, mps or another torch device"),
    "precision": (lambda v: v in PRECISIONS, ", ".join(PRECISIONS[:-1]) + " or " + PRECISIONS[-1]),
    "threads": (lambda v: v is None or _whole(v, 1), "a whole number >= 1"),
    "num_workers": (lambda v: v is None or _whole(v, 0), "0 (load in this process) or more"),
    "pin_memory": (lambda v: v is None or isinstance(v, bool), "True, False or None"),
    "preload": (lambda v: v is True or v is False or v == "auto", "True, False or 'auto'"),
    "out_dir": (lambda v: v is None or _path(v), "a folder path, or None"),
    "resume": (lambda v: isinstance(v, bool) or _path(v), "True, False or a checkpoint path"),
    "quiet": (lambda v: isinstance(v, bool), "True or False"),
    "progress": (lambda v: v is None or isinstance(v, bool), "True, False or None"),
    "target": (lambda v: v is None or (isinstance(v, str) and bool(v)), "a column name, or None"),
}


def check_settings(values: Mapping[str, Any], where: str, spell: Callable[[str], str] = str) -> None:
    """Raise ConfigError (one line) naming the first unknown or out-of-range value in ``values``.

    The one place the rules live: ``TrainSettings`` calls it when it is made; a caller that speaks
    another language (``dsreg train``'s ``--batch-size``) calls it first with its own ``where`` and ``spell``.
    """
    known = set(TRAIN_SETTINGS) | set(_RULES)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {', '.join(map(repr, unknown))}; valid: {', '.join(_FIELDS)}")
    check_train_settings({k: v for k, v in values.items() if k in TRAIN_SETTINGS}, where, spell=spell)
    for key, value in values.items():
        if key in _RULES and not _RULES[key][0](value):
            raise ConfigError(f"{where}: {spell(key)} {value!r} is out of range; give {_RULES[key][1]}")


def dataset_defaults(ds: Any) -> dict[str, Any]:
    """Return the ``train_defaults`` the builder of dataset ``ds`` declares ({} for other datasets)."""
    builder = getattr(ds, "builder", None)
    return builder.get_train_defaults() if builder is not None and hasattr(builder, "get_train_defaults") else {}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything a training run is configured with; every field has a default (see docs/train.md).

    The model, its data and what to call it with stay arguments of the Trainer (objects, not settings).
    """

    # What to train, and how: None = the dataset's train_defaults, else FALLBACKS (``for_dataset``).
    model: str | None = None
    model_options: Mapping[str, Any] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    clip_grad: float | None = None
    eval_batch_size: int | None = None  #: None: max(batch_size, 256)
    target: str | None = None  #: the label column; None: the dataset's ClassLabel
    seed: int = 0
    deterministic: bool = False
    # Where it runs: "auto"/None = chosen by the trainer for this machine.
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    # The data path.
    num_workers: int | None = None
    pin_memory: bool | None = None
    preload: bool | str = "auto"
    # Checkpoints and reporting.
    out_dir: str | None = None
    resume: bool | str = False
    quiet: bool = False
    progress: bool | None = None

    def __post_init__(self) -> None:
        # A torch.device or a Path is accepted, and kept as text: settings are plain values.
        if type(self.device).__module__ == "torch":
            object.__setattr__(self, "device", str(self.device))
        for key in ("out_dir", "resume"):
            value = getattr(self, key)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, key, os.fspath(value))
        if isinstance(self.model_options, Mapping):
            object.__setattr__(self, "model_options", dict(self.model_options))  # the caller's dict stays theirs
        check_settings(self.to_dict(), type(self).__name__)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (what a checkpoint and ``metrics.json`` store)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> TrainSettings:
        """Return a copy with ``changes`` applied (checked like a new one)."""
        return dataclasses.replace(self, **changes)

    def with_options(self, options: Mapping[str, Any], where: str = "Trainer") -> TrainSettings:
        """Return a copy with ``options`` (keyword arguments naming fields) applied; a None option is "not given".

        This is how ``Trainer(model, data, epochs=3)`` maps its keyword arguments onto the settings.
        """
        for key in options:
            if key not in _FIELDS:
                close = difflib.get_close_matches(key, _FIELDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"{where}() got an unexpected keyword argument {key!r}{hint}; settings: {', '.join(_FIELDS)}")
        given = {k: v for k, v in options.items() if v is not None}
        check_settings(given, where)
        return self.replace(**given) if given else self

    def for_dataset(self, ds: Any, *, own_module: bool = False) -> TrainSettings:
        """Return these settings with each training setting not given taken from ``ds``'s ``train_defaults``, else ``FALLBACKS``.

        The dataset's ``model_options`` belong to its model: they apply only when that model is used.
        With ``own_module`` (the caller brings an nn.Module) the dataset's model choice is not taken.
        """
        declared = dataset_defaults(ds)
        filled = {
            key: getattr(self, key) if getattr(self, key) is not None else declared.get(key, fallback)
            for key, fallback in FALLBACKS.items()
        }
        if own_module:
            filled["model"] = None
        same_model = filled["model"] is not None and filled["model"] == declared.get("model")
        filled["model_options"] = {**(declared.get("model_options", {}) if same_model else {}), **(self.model_options or {})}
        return self.replace(**filled)


_FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))
