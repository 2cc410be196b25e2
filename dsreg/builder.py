"""A dataset is a Builder: class-level metadata, remote files, a split plan and one generator.

What an author writes (everything else has a working default):

* the class attributes: ``name``, ``version``, ``task``, ``features``, ``splits``, ``files`` (and the
  descriptive ``description``/``license``/``homepage``/``citation``, ``config`` defaults);
* ``generate(self, split, files)``: yield ``(key, example)`` for one split from the verified local
  files, reading the configuration from ``self.params``;
* optionally ``plan()`` when a split needs only some of the files or is reviewed against another
  split, ``decode`` (a pure function the core maps over a process pool), ``collate_fn`` (a plain
  function), ``review_split`` (checks that need a whole split), ``train_defaults``.

    class Letters(dsreg.Builder):
        name = "letters"
        version = "1.0.0"
        description = "..."
        license = "CC0-1.0"
        homepage = "https://example.org/letters"
        citation = "none"
        task = "image-classification"
        features = {"image": Tensor((1, 28, 28), "uint8"), "label": ClassLabel("ABC")}
        splits = ("train", "test")
        files = (File("letters.tar.gz", size=1234, sha256="...", urls=("https://...",)),)

        def generate(self, split, files):
            for key, example in ...:
                yield key, example          # or yield key, record and set `decode`

Everything else (download, verification, locking, caching, parallel decoding, storage) is the
core's job. Importing this module must not import torch, numpy or datasets.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError, PluginError
from .features import Feature

__all__ = ["Builder", "File", "Split", "Skip", "NAME_PATTERN", "TRAIN_SETTINGS", "check_train_settings"]

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_HEX = re.compile(r"^[0-9a-f]+$")


#: The settings a Builder's ``train_defaults`` may declare, named like ``dsreg train``'s options in
#: Python form (and like ``dsreg.train.Trainer``'s arguments), each with what a valid value is.
TRAIN_SETTINGS: dict[str, str] = {
    "model": "a registered model name",
    "model_options": "a dict of keyword arguments for the model factory",
    "epochs": "a whole number >= 1",
    "batch_size": "a whole number >= 1",
    "lr": "a number > 0",
    "weight_decay": "a number >= 0",
    "schedule": "cosine, linear or constant",
    "clip_grad": "a number > 0, or None",
}
_SCHEDULES = ("cosine", "linear", "constant")


def _valid_setting(key: str, value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key == "model":
        return isinstance(value, str) and bool(value)
    if key == "model_options":
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    if key in ("epochs", "batch_size"):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if key == "lr":
        return number and value > 0 and value == value  # NaN compares unequal to itself
    if key == "weight_decay":
        return number and value >= 0
    if key == "schedule":
        return value in _SCHEDULES
    if key == "clip_grad":
        return value is None or (number and value > 0)
    return False


def check_train_settings(
    settings: Mapping[str, Any], where: str, error: type[Exception] = ConfigError, spell: Callable[[str], str] = str
) -> None:
    """Raise ``error`` naming the first unknown key or out-of-range value of ``settings`` (None values are "not given").

    ``where`` starts the message; ``spell`` turns a key into how the reader wrote it (e.g. ``--batch-size``).
    """
    unknown = sorted(set(settings) - set(TRAIN_SETTINGS))
    if unknown:
        raise error(f"{where}: unknown training setting {', '.join(map(repr, unknown))}; valid: {', '.join(TRAIN_SETTINGS)}")
    for key, value in settings.items():
        if value is not None and not _valid_setting(key, value):
            raise error(f"{where}: {spell(key)} {value!r} is out of range; give {TRAIN_SETTINGS[key]}")


class Skip(Exception):
    """Raise from ``generate``'s decode step to skip one example; the reason goes in the manifest."""


@dataclass(frozen=True)
class File:
    """One remote file: its published name, size, checksum and ordered mirror URLs (any fsspec URL).

    A file with no published checksum must say so with ``pin_on_first_download=True``: its sha256
    is then pinned the first time it is fetched and every later copy is verified against the pin.
    """

    name: str
    urls: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    pin_on_first_download: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        if not self.name or "/" in self.name or self.name in {".", ".."}:
            raise ValueError(f"File name {self.name!r} must be a plain file name")
        for algo, length in (("sha256", 64), ("md5", 32)):
            digest = getattr(self, algo)
            if digest is not None:
                digest = digest.lower()
                object.__setattr__(self, algo, digest)
                if len(digest) != length or not _HEX.match(digest):
                    raise ValueError(f"File {self.name}: {algo} must be {length} hex digits")
        if not (self.sha256 or self.md5 or self.pin_on_first_download):
            raise ValueError(
                f"File {self.name} has no checksum: give sha256= (or md5=), or declare pin_on_first_download=True if none is published"
            )

    @property
    def checksum(self) -> tuple[str, str] | None:
        """Return the strongest published ``(algorithm, hexdigest)``, or None."""
        if self.sha256:
            return ("sha256", self.sha256)
        if self.md5:
            return ("md5", self.md5)
        return None


@dataclass(frozen=True)
class Split:
    """One split in a Builder's plan: the files it is generated from and the splits it is reviewed against.

    ``files`` names files of ``Builder.get_files()``: fetching this split downloads only those.
    ``after`` names splits that must be prepared first because ``review_split`` reads their stored
    examples (e.g. to drop images equal to a test image); they come earlier in the plan.
    """

    name: str
    files: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "after", tuple(self.after))


class Builder:
    """Base class of every dataset.

    Implement ``generate(split, files)`` and set the class attributes (``name``, ``version``,
    ``task``, ``features``, ``splits``, ``files``); override ``plan()`` when splits need different
    files or depend on each other. The configuration is ``self.params``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = ""
    homepage: ClassVar[str] = ""
    license: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    task: ClassVar[str] = ""
    features: ClassVar[Mapping[str, Feature]] = {}
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    files: ClassVar[tuple[File, ...]] = ()
    #: Defaults of the config parameters ``dsreg.load(name, **config)`` accepts.
    config: ClassVar[Mapping[str, Any]] = {}
    #: A pure, picklable ``record -> example`` function; when set, ``generate`` yields raw records
    #: and the core maps this over a process pool while the generator streams.
    decode: ClassVar[Callable[[Any], dict[str, Any]] | None] = None
    #: Collate function name in ``dsreg.store.collate`` or a callable; the default stacks tensors.
    collate_fn: ClassVar[Any] = "stack"
    #: Config parameters that change only how examples are served (e.g. the collate's scaling or a
    #: padding cap), not what is prepared: every value of them reads the same prepared store.
    load_only: ClassVar[tuple[str, ...]] = ()
    #: Archive limits for this dataset's files (bytes, or a size such as "1GiB"); None keeps
    #: dsreg.fetching.archive's defaults. The user's DSREG_MAX_MEMBER / DSREG_MAX_EXPANDED still win.
    max_member: ClassVar[int | str | None] = None
    max_expanded: ClassVar[int | str | None] = None
    #: The model and settings this dataset trains best with: ``dsreg train NAME`` and
    #: ``Trainer(None, NAME)`` use them for every option not given. Keys: ``TRAIN_SETTINGS``
    #: (model, model_options, epochs, batch_size, lr, weight_decay, schedule, clip_grad).
    train_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **config: Any) -> None:
        unknown = sorted(set(config) - set(self.config))
        if unknown:
            valid = ", ".join(sorted(self.config)) or "none"
            raise ConfigError(f"{self.name} has no config parameter {', '.join(unknown)} (valid: {valid})")
        self.params: dict[str, Any] = {**self.config, **config}
        #: Figures recorded with ``note()`` during a prepare; stored in the manifest.
        self.notes: dict[str, Any] = {}

    # -- what the core asks of a builder; override to make them depend on config -------------
    def get_files(self) -> tuple[File, ...]:
        """Return the remote files this configuration needs."""
        return tuple(self.files)

    def get_splits(self) -> tuple[str, ...]:
        """Return the split names this configuration produces."""
        return tuple(self.splits)

    def get_features(self, files: Mapping[str, Path] | None = None) -> dict[str, Feature]:
        """Return the columns of this configuration (``files``: the verified local files, when preparing).

        Override when the columns depend on the data (class names found in folders, an image size
        probed from the files). The core calls it once before writing a prepared store, records the
        result in the manifest and serves that on every later load (``get_splits()`` is asked next,
        and its answer is kept the same way); without a prepared store (e.g.
        ``dsreg info`` before a fetch) it is called with ``files=None``, so keep that case cheap.
        """
        return dict(self.features)

    def fingerprint(self) -> str | None:
        """Return a cheap digest of input the core does not fetch and checksum (e.g. a local folder), or None.

        It joins the config in ``config_id``, so changed input is prepared again under a new id.
        """
        return None

    def plan(self) -> tuple[Split, ...]:
        """Return, per split in order, which files it needs and which splits it is reviewed against.

        The default: every split of ``get_splits()`` needs every file of ``get_files()`` and no
        other split. ``dsreg fetch NAME --split S`` downloads and prepares only what S needs (with
        the splits named in its ``after``, recursively).
        """
        names = tuple(f.name for f in self.get_files())
        return tuple(Split(split, names) for split in self.get_splits())

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        """Yield ``(key, example)`` pairs of ``split`` from the verified local ``files`` (its plan's files).

        The configuration is ``self.params``; the core calls this with no keyword arguments. It may
        run in any order with any other split, or alone: keep no state between calls.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement generate()")

    def note(self, key: str, value: Any) -> None:
        """Record a figure in the prepared manifest (e.g. how many duplicates were removed)."""
        self.notes[key] = value

    def review(self, split: str, key: str, example: Any) -> Any:
        """Return what to store for one decoded ``example`` (or Skip) of ``split``; None leaves it out."""
        return example

    def review_split(self, split: str, examples: Iterator[tuple[str, Any]], earlier: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """Yield ``(key, example or Skip)`` to store for ``split``, from its decoded ``examples`` in generation order.

        The core calls it in the preparing process after the parallel decode: the place for checks
        that need a whole split (per-class skip counts, dropping exact copies of another split's
        examples). Keep its state in local variables. ``earlier`` maps each split of this split's
        ``after`` to its stored examples (``earlier["test"].column("image")`` is a numpy array).
        Record what it leaves out with ``note()``. The default calls ``review`` on each example.
        """
        for key, example in examples:
            reviewed = self.review(split, key, example)
            if reviewed is not None:
                yield key, reviewed

    def decode_example(self, example: dict[str, Any]) -> dict[str, Any]:
        """Turn a stored example into what ``__getitem__`` returns (default: unchanged)."""
        return example

    def decodes_on_access(self) -> bool:
        """True when ``decode_example`` must run per example, which turns off the one-gather batch path.

        The default says whether ``decode_example`` is overridden; override this when it depends on
        the configuration (e.g. images stored encoded only when their sizes differ).
        """
        return type(self).decode_example is not Builder.decode_example

    def get_train_defaults(self) -> dict[str, Any]:
        """Return the training settings for this configuration (default: ``train_defaults``).

        Override when they depend on config (e.g. more epochs for a smaller sample).
        """
        return dict(self.train_defaults)

    def get_collate_fn(self) -> Callable[[Any], Any]:
        """Return the collate function (resolving a name in ``dsreg.store.collate``).

        Read from the class, so a plain function set as ``collate_fn = my_collate`` stays a plain
        function (through the instance it would become a method taking the builder as ``batch``).
        """
        return _plain_function(type(self), "collate_fn") or _named_collate(self.collate_fn)

    def get_decode(self) -> Callable[[Any], dict[str, Any]] | None:
        """Return the ``decode`` function as the class declares it (a plain function), or None."""
        return _plain_function(type(self), "decode")

    # -- identity ---------------------------------------------------------------------------
    def prepared_params(self) -> dict[str, Any]:
        """The config that decides what is prepared: ``params`` less the ``load_only`` ones."""
        return {k: v for k, v in self.params.items() if k not in self.load_only}

    @property
    def config_id(self) -> str:
        """A short stable hash of the version, config and fingerprint: the prepared store's folder name."""
        identity: dict[str, Any] = {"version": self.version, "config": self.prepared_params()}
        fingerprint = self.fingerprint()
        if fingerprint is not None:
            identity["fingerprint"] = fingerprint
        blob = json.dumps(identity, sort_keys=True, default=str)
        return f"{self.version}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    @classmethod
    def validate(cls) -> None:
        """Raise PluginError if the class-level metadata cannot work."""
        where = f"{cls.__module__}.{cls.__qualname__}"
        if not isinstance(cls.name, str) or not NAME_PATTERN.match(cls.name):
            raise PluginError(f"{where}: dataset name {cls.name!r} is invalid; use lowercase letters, digits, '-', '_' or '.'")
        if cls.generate is Builder.generate:
            raise PluginError(f"{where}: implement generate(split, files)")
        if not cls.splits and cls.get_splits is Builder.get_splits:
            raise PluginError(f"{where}: declare at least one split")
        names = [f.name for f in cls.files]
        if len(names) != len(set(names)):
            raise PluginError(f"{where}: two files share a name in {names}")
        if not isinstance(cls.collate_fn, str) and _plain_function(cls, "collate_fn") is None:
            raise PluginError(f"{where}: collate_fn must be a function or the name of one in dsreg.store.collate, not {cls.collate_fn!r}")
        check_train_settings(cls.train_defaults, f"{where}.train_defaults", PluginError)
        for col, feat in dict(cls.features).items():
            if not isinstance(feat, Feature):
                raise PluginError(f"{where}: feature {col!r} is {feat!r}, not a dsreg.features.Feature")


def _plain_function(cls: type, attribute: str) -> Callable[..., Any] | None:
    """Return ``cls.attribute`` when it is a function (a staticmethod unwrapped on class access), else None."""
    value = getattr(cls, attribute, None)
    return value if callable(value) and not isinstance(value, str) else None


def _named_collate(name: Any) -> Callable[[Any], Any]:
    from .store import collate  # here: the data core does not import the store (and torch) at import time

    function = getattr(collate, str(name), None)
    if not callable(function):
        raise PluginError(f"collate_fn {name!r} is not a function of dsreg.store.collate; name one of stack, pad, or give a function")
    return function


def check_plan(builder: Builder) -> tuple[Split, ...]:
    """Return ``builder.plan()`` after checking it: known files, unique names, ``after`` naming earlier splits."""
    plan = tuple(builder.plan())
    where = builder.name
    files = {f.name for f in builder.get_files()}
    seen: list[str] = []
    for split in plan:
        if not isinstance(split, Split):
            raise PluginError(f"{where}: plan() must return dsreg.Split objects, got {split!r}")
        if split.name in seen:
            raise PluginError(f"{where}: plan() names split {split.name!r} twice")
        unknown = sorted(set(split.files) - files)
        if unknown:
            raise PluginError(f"{where}: split {split.name!r} needs files {unknown} that get_files() does not declare")
        late = [s for s in split.after if s not in seen]
        if late:
            raise PluginError(f"{where}: split {split.name!r} is reviewed after {late}, which must come earlier in plan()")
        seen.append(split.name)
    return plan


def needed(plan: tuple[Split, ...], wanted: Iterator[str] | tuple[str, ...] | list[str]) -> list[Split]:
    """Return the splits of ``plan`` to prepare for ``wanted``: those and every split their ``after`` names, in plan order."""
    by_name = {split.name: split for split in plan}
    chosen: set[str] = set()
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name not in chosen:
            chosen.add(name)
            stack.extend(by_name[name].after)
    return [split for split in plan if split.name in chosen]
