"""Test kit: the conformance suite, ``check_builder(MyBuilder, files=...)``: every check a plugin must pass."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..builder import Builder, File, Skip
from ..errors import ChecksumError, DsregError, PluginError
from ..features import Feature
from ..plugins import use_registry
from ..registry import Registry
from .trees import write_tree

# -- the conformance suite -----------------------------------------------------------------------
#: Every check ``check_builder`` runs, in order; ``skip=`` takes any of these names ("train" runs only with train=True).
CHECKS: tuple[str, ...] = (
    "metadata",
    "installed",
    "files",
    "fetch",
    "checksums",
    "features",
    "determinism",
    "overlap",
    "collate",
    "pickle",
    "workers",
    "batches",
    "offline",
    "train",
)
#: The report's entry for the training step when it was not asked for.
_TRAIN_OFF = "skipped: opt in with train=True"


class ConformanceError(DsregError, AssertionError):
    """A Builder failed one conformance check: the message names the check, the dataset and the fix."""

    def __init__(self, check: str, dataset: str, problem: str, fix: str) -> None:
        self.check, self.dataset, self.problem, self.fix = check, dataset, problem, fix
        super().__init__(f"check_builder [{check}] {dataset}: {problem}; {fix}")


class ConformanceWarning(UserWarning):
    """A conformance check was skipped for a reason worth seeing (e.g. no model for the task)."""


class _Fail(Exception):
    """Raised inside a check: ``(problem, fix)``, turned into a ConformanceError by the runner.

    ``check`` names another check when this one found what that one is about (a prepare that
    refuses an example is a ``features`` failure, a checksum mismatch a ``checksums`` one).
    """

    def __init__(self, problem: str, fix: str, check: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.fix, self.check = problem, fix, check


class _Note(str):
    """A check's outcome worth reading in the report but not worth a warning (e.g. nothing to verify)."""


@dataclass
class Conformance:
    """What ``check_builder`` found: each check's outcome ("ok" or "skipped: why") and the split sizes."""

    dataset: str
    results: dict[str, str] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> dict[str, str]:
        """Return ``{check: reason}`` of the checks that did not run."""
        return {k: v.partition(": ")[2] for k, v in self.results.items() if v.startswith("skipped")}

    def __str__(self) -> str:
        sizes = ", ".join(f"{s} {n}" for s, n in self.splits.items())
        lines = [f"{self.dataset}: {sizes}"] + [f"  {check:<11} {outcome}" for check, outcome in self.results.items()]
        return "\n".join(lines)


@contextlib.contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block, then restore them."""

    def put(settings: dict[str, str | None]) -> None:
        for key, value in settings.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    saved = {key: os.environ.get(key) for key in values}
    try:
        put(values)
        yield
    finally:
        put(saved)


def _installed() -> Registry:
    """Return a fresh registry of the core's default plugins and every installed plugin, failures recorded."""
    from ..plugins import load_registry

    return load_registry(strict=False)  # a broken neighbour is `dsreg plugins`' news, not this builder's failure


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # DataLoader re-raises a worker's error with the worker's traceback; its last line is the error.
    lines = [line for line in text.splitlines() if line.strip()]
    if "Original Traceback" in text and lines:
        return lines[-1].strip()  # already "ErrorType: message"
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _drain(loader: Any) -> list[Any]:
    """Return every batch of ``loader``, its worker processes stopped on the way out, error or not.

    Without the ``finally``, a worker's error keeps the iterator alive through the traceback the caller
    chains, and its workers linger until the garbage collector finds the cycle (10-12 s per failed check).
    """
    it = iter(loader)
    try:
        return list(it)
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # only the multi-process iterator has workers
        if shutdown is not None:
            shutdown()
        del it


def _rows(ds: Any, chunk: int = 256) -> Iterator[dict[str, Any]]:
    """Yield every example of ``ds`` as a dict, reading a chunk at a time through the batch path."""
    from ..store.collate import Batch

    for start in range(0, len(ds), chunk):
        got = ds.__getitems__(list(range(start, min(start + chunk, len(ds)))))
        if isinstance(got, Batch):
            n = min(chunk, len(ds) - start)
            for j in range(n):
                yield {k: v[j] for k, v in got.items()}
        else:
            yield from got


def _feed(h: Any, value: Any) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous()
        h.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        h.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else repr(value.tolist()).encode())
    elif isinstance(value, str):
        h.update(b"S" + value.encode())
    elif isinstance(value, (bytes, bytearray, memoryview)):
        h.update(b"B" + bytes(value))
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for item in value:
            _feed(h, item)
    elif isinstance(value, dict):
        for key in sorted(value):
            h.update(f"K{key}".encode())
            _feed(h, value[key])
    elif hasattr(value, "__array__"):
        _feed(h, torch.as_tensor(value))
    else:
        h.update(f"V{value!r}".encode())


def _content_hash(example: dict[str, Any]) -> str:
    """Return a digest of every column of one example (the key is not part of it)."""
    import hashlib

    h = hashlib.sha256()
    _feed(h, example)
    return h.hexdigest()


def _same(a: Any, b: Any) -> bool:
    """True when two batches or examples hold equal values of equal types (tensors: dtype, shape, data)."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(torch.equal(a, b) or (a.is_floating_point() and torch.allclose(a, b, equal_nan=True)))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _differs(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Name the first column where two batches differ."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return f"{type(a).__name__} vs {type(b).__name__}"
    if a.keys() != b.keys():
        return f"columns {sorted(a)} vs {sorted(b)}"
    return next((k for k in a if not _same(a[k], b[k])), "?")


def _example_problem(example: Any, features: Mapping[str, Feature], loaded: bool) -> str | None:
    """Return why ``example`` does not fit ``features`` (None when it does), by the features' own checks.

    ``loaded`` False checks what ``generate`` yields, exactly as the prepared store does; True checks
    what the Dataset returns (tensors of exactly the declared dtype and shape).
    """
    if not isinstance(example, dict):
        return f"an example is {type(example).__name__}, not a dict of columns"
    if example.keys() != features.keys():
        missing = sorted(set(features) - set(example))
        extra = sorted(set(example) - set(features))
        return f"example columns differ from the features (missing {missing}, unexpected {extra})"
    for column, feat in features.items():
        problem = feat.check(column, example[column], loaded=loaded)
        if problem:
            return problem
    return None


def _mismatch(file: File, data: bytes | Path) -> str | None:
    """Return how ``data`` differs from the size and checksum ``file`` declares (None when it matches)."""
    import hashlib

    assert file.checksum is not None
    algo, expected = file.checksum
    if isinstance(data, Path):
        size = data.stat().st_size
        digest = hashlib.new(algo)
        with open(data, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        actual = digest.hexdigest()
    else:
        size, actual = len(data), hashlib.new(algo, data).hexdigest()
    if file.size is not None and size != file.size:
        return f"{size:,} bytes, the File declares {file.size:,}"
    if actual != expected:
        return f"{algo} {actual}, the File declares {expected}"
    return None


#: The normalisation rule of the ``batches`` check: float images scaled to [0, 1] stay under it; standardized
#: ones have negative values. All values >= 0 with a maximum above it is the 0-255 range cast to float, unscaled.
UNSCALED_MAX = 1.5
#: Float dtypes a batch may hand a model (its weights are float32; half precision comes from autocast or a choice).
_MODEL_FLOATS = ("float32", "float16", "bfloat16")


def _is_image(feat: Feature, task: str) -> bool:
    """True for a column of pictures: numeric, not a label, (channels,) height, width; uint8 or an image task's."""
    shape = getattr(feat, "shape", ())
    return (
        feat.numeric and not feat.is_label and len(shape) in (2, 3) and (getattr(feat, "dtype", "") == "uint8" or task.startswith("image"))
    )


def _batch_problem(batch: Any, features: Mapping[str, Feature], task: str, size: int) -> str | None:
    """Return how a collated batch breaks the contract the features and the task imply (None when it keeps it).

    Labels are int64 ``[B]``; float columns are float32 (or half precision); a float image is scaled
    (see ``UNSCALED_MAX``) and at least ``[B, H, W]``; a padded (ragged) numeric column comes with
    its lengths (int64 ``[B]``) and attention mask (bool ``[B, L]``), named as ``collate.pad`` names them.
    """
    import torch

    if not isinstance(batch, Mapping):
        return f"the batch is {type(batch).__name__}, not a dict of columns"
    ragged = [c for c, f in features.items() if f.numeric and f.ragged]
    for column, feat in features.items():
        if column not in batch:
            if feat.is_label and task.endswith("classification"):
                return f"the batch has no label column {column!r}, which a {task} model learns from"
            continue  # a collate may turn a column into others (e.g. a waveform into a spectrogram)
        value = batch[column]
        if feat.is_label:
            if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or tuple(value.shape) != (size,):
                got = (
                    f"{str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
                    if isinstance(value, torch.Tensor)
                    else type(value).__name__
                )
                return (
                    f"label column {column!r} is {got}, not int64 [{size}] (cross_entropy takes int64 class "
                    f"indices; float labels fail or train on the wrong loss)"
                )
            continue
        if not feat.numeric:
            continue
        if not isinstance(value, torch.Tensor):
            padding = " (pad it with dsreg.store.collate.pad)" if feat.ragged else ""
            return f"column {column!r} is {type(value).__name__}, not a tensor{padding}"
        if value.is_floating_point() and str(value.dtype).removeprefix("torch.") not in _MODEL_FLOATS:
            return (
                f"column {column!r} is {str(value.dtype).removeprefix('torch.')}; models run in float32, so a "
                "float64 batch fails at the first layer (or doubles the memory and time)"
            )
        if _is_image(feat, task):
            if value.dim() < 3:
                return f"image column {column!r} is {list(value.shape)}, not [B, (C,) H, W]"
            if value.is_floating_point() and value.numel():
                low, high = float(value.min()), float(value.max())
                if low >= 0 and high > UNSCALED_MAX:
                    return (
                        f"float image column {column!r} holds values from {low:g} to {high:g}: the 0-255 range cast "
                        f"to float without scaling (float images are scaled to [0, 1] or standardized)"
                    )
        if feat.ragged and column in ragged:
            prefix = "" if len(ragged) == 1 else f"{column}_"
            lengths, mask = batch.get(f"{prefix}lengths"), batch.get(f"{prefix}attention_mask")
            if value.dim() < 2 or not isinstance(lengths, torch.Tensor) or not isinstance(mask, torch.Tensor):
                return (
                    f"padded column {column!r} ({list(value.shape)}) comes without {prefix}lengths and "
                    f"{prefix}attention_mask, so a model cannot tell padding from data"
                )
            if lengths.dtype != torch.int64 or tuple(lengths.shape) != (size,):
                return f"{prefix}lengths is {str(lengths.dtype).removeprefix('torch.')} {list(lengths.shape)}, not int64 [{size}]"
            if mask.dtype != torch.bool or tuple(mask.shape) != tuple(value.shape[:2]):
                return (
                    f"{prefix}attention_mask is {str(mask.dtype).removeprefix('torch.')} {list(mask.shape)}, "
                    f"not bool {list(value.shape[:2])}"
                )
            if not torch.equal(mask.sum(1), lengths):
                return f"{prefix}attention_mask does not mark {prefix}lengths real positions per row"
    return None


#: What to do when two prepares of the same files differ.
_STEADY = (
    "make generate depend only on the files and the config: sort directory listings, set and glob results, "
    "seed any randomness (random.Random(seed)), and read no clock or environment"
)


class _Checker:
    """One run of the suite over one Builder class in a throwaway cache."""

    def __init__(self, builder_cls: type[Builder], config: dict[str, Any], skip: Sequence[str], root: Path) -> None:
        self.cls = builder_cls
        self.name = getattr(builder_cls, "name", "") or builder_cls.__qualname__
        self.config = config
        self.skip = set(skip)
        self.root = root
        self.report = Conformance(self.name)
        self.datasets: dict[str, Any] = {}
        self.info: Any = None
        self.registry: Registry | None = None
        #: Every installed plugin, as `dsreg list` sees them (for the installed check and the models).
        self.installed_registry: Registry | None = None
        #: The batches the workers check got from a DataLoader with num_workers=2 (the batches check reads them too).
        self.worker_batches: list[Any] | None = None
        self.mp_method = "fork"

    def run(self, check: str, fn: Callable[[], str | None]) -> None:
        if check in self.skip:
            self.report.results[check] = "skipped: asked by skip="
            return
        try:
            outcome = fn()
        except _Fail as fail:  # chain the error that caused it, if any, for the traceback
            raise ConformanceError(fail.check or check, self.name, fail.problem, fail.fix) from fail.__cause__
        except ConformanceError:
            raise
        except Exception as exc:  # a bug surfaced by the check: keep its traceback chained
            raise ConformanceError(check, self.name, f"raised {_first_line(exc)}", "see the chained traceback above") from exc
        self.report.results[check] = outcome or "ok"
        if outcome and outcome.startswith("skipped") and not isinstance(outcome, _Note):
            warnings.warn(f"check_builder [{check}] {self.name}: {outcome}", ConformanceWarning, stacklevel=3)

    # -- the checks ---------------------------------------------------------------------------
    def metadata(self) -> None:
        cls = self.cls
        try:
            cls.validate()
        except DsregError as exc:
            raise _Fail(str(exc), "fix the Builder's class attributes") from None
        wanted = {
            "description": "a sentence or two users see in `dsreg info`",
            "license": 'the data\'s license, e.g. "CC-BY-4.0" (or "unknown" with a note)',
            "citation": 'a BibTeX entry, or "none" when there is nothing to cite',
            "homepage": "the URL where the data is described",
            "task": 'what the data is for, e.g. "image-classification" (picks the default model)',
            "version": 'a version string such as "1.0.0", raised whenever the prepared data changes',
        }
        for attr, what in wanted.items():
            value = getattr(cls, attr, "")
            if not isinstance(value, str) or not value.strip():
                raise _Fail(f"{attr} is empty", f"set {attr} = ... to {what}")
        if "://" not in cls.homepage:
            raise _Fail(f"homepage {cls.homepage!r} is not a URL", "set homepage to an http(s) URL")
        if not dict(self.cls.features) and self.cls.get_features is Builder.get_features:
            raise _Fail("features is empty", "declare features = {column: dsreg.Tensor(...)/ClassLabel(...)/...}")

    def builder(self) -> Builder:
        try:
            return self.cls(**self.config)
        except DsregError as exc:
            raise _Fail(str(exc), "pass config= with parameters the Builder declares") from None

    def installed(self) -> str:
        """The name is registered by exactly one installed plugin (or by none yet): no clash for users to meet."""
        assert self.installed_registry is not None
        registry, name = self.installed_registry, self.name
        advice = "rename one of the datasets (its Builder's name = ...) or uninstall one of the packages; `dsreg plugins` lists both"
        clashes = [c for c in registry.clashes() if c.kind == "dataset" and c.name == name]
        if clashes:
            lost = ", ".join(repr(c.plugin) for c in clashes)
            raise _Fail(
                f"dataset name {name!r} is registered by installed plugins {clashes[0].owner!r} and {lost}: "
                f"`dsreg list` shows the dataset of {clashes[0].owner!r} and refuses that of {lost}",
                advice,
            )
        if name in registry.aliases:
            owner = registry.datasets[registry.aliases[name]]
            raise _Fail(f"dataset name {name!r} is an alias of {owner.name!r} from installed plugin {owner.plugin.name!r}", advice)
        entry = registry.datasets.get(name)
        if entry is None:
            return "ok (no installed plugin registers the name yet, and none takes it)"
        theirs = entry.builder
        if not issubclass(self.cls, theirs) and (self.cls.__module__, self.cls.__qualname__) != (theirs.__module__, theirs.__qualname__):
            raise _Fail(
                f"dataset name {name!r} is already registered by installed plugin {entry.plugin.name!r} "
                f"({theirs.__module__}.{theirs.__qualname__}), so installing this one would clash",
                advice,
            )
        dist = f" from {entry.plugin.dist}" if entry.plugin.dist else ""
        return f"ok (plugin {entry.plugin.name!r}{dist})"

    def files(self) -> None:
        try:
            files = self.builder().get_files()
        except ValueError as exc:  # File() refuses a file without a checksum
            raise _Fail(f"get_files() builds an invalid File ({exc})", "give every File size= and sha256= (or md5=)") from None
        names = set()
        for file in files:
            if not isinstance(file, File):
                raise _Fail(f"get_files() returned {file!r}, not a dsreg.File", "return dsreg.File objects")
            if file.name in names:
                raise _Fail(f"two files are named {file.name!r}", "give each File its own name")
            names.add(file.name)
            if file.pin_on_first_download:
                continue  # declared as having no published checksum (and maybe no size)
            if file.checksum is None:
                raise _Fail(
                    f"file {file.name!r} has no checksum",
                    "give sha256= (or md5=), or declare pin_on_first_download=True if none is published",
                )
            if file.size is None:
                raise _Fail(
                    f"file {file.name!r} has a checksum but no size",
                    "give size= in bytes (or declare pin_on_first_download=True if it is not published)",
                )

    def fetch(
        self, fake: Mapping[str, bytes | str | os.PathLike[str]] | None, mirrors: Sequence[str], from_path: str | os.PathLike[str] | None
    ) -> str:
        from .. import api

        mirrors = list(mirrors)
        if fake:
            declared = [f.name for f in self.builder().get_files()]
            unknown = sorted(set(fake) - set(declared))
            if unknown:
                raise _Fail(f"files= names {unknown}, which it does not declare (it declares {declared})", "key files= by File.name")
            tree = {k: v if isinstance(v, (bytes, bytearray)) else Path(v).read_bytes() for k, v in fake.items()}
            mirrors.insert(0, str(write_tree(self.root / "fake-files", tree)))
        try:
            # Fake bytes cannot match the published checksums: they are accepted as unverified (see checksums).
            self.info = api.fetch(self.name, mirrors=mirrors, from_path=from_path, verify=not fake, quiet=True, **self.config)
        except ChecksumError as exc:
            raise _Fail(
                str(exc),
                "if these are the published bytes, the File's size or sha256 is wrong: copy the "
                "published values into it; otherwise fix the URL or mirror that serves other bytes",
                check="checksums",
            ) from None
        except PluginError as exc:  # the Builder's to fix, not the files': e.g. the prepared store refused an example
            if isinstance(exc.__cause__, (ValueError, TypeError)):  # Feature.encode refused a value: found while preparing
                raise _Fail(
                    f"generate yields an example the prepared store refuses ({exc})",
                    "fix generate (or the decode it names) to yield exactly the feature columns with the declared "
                    "dtypes, shapes and label range",
                    check="features",
                ) from None
            raise _Fail(f"prepare failed: {exc}", "fix the Builder as the message says") from None
        except DsregError as exc:
            raise _Fail(f"fetch failed: {exc}", "fix the files' URLs, or pass files=, mirrors= or from_path= to check_builder") from None
        for split in self.info.splits:
            ds = api.load(self.name, split=split, download=False, **self.config)
            self.datasets[split] = ds
            self.report.splits[split] = len(ds)
        if not self.datasets:
            raise _Fail("it prepared no splits", "return the split names from get_splits()")
        empty = [s for s, ds in self.datasets.items() if len(ds) == 0]
        if empty:
            raise _Fail(
                f"split {empty[0]!r} has no examples", "make generate yield examples for every split (give files= data that covers each)"
            )
        return "ok" if not fake else "ok (files= served unverified)"

    def _local_files(self) -> dict[str, Path]:
        from ..fetching.cache import Cache

        cache = Cache()
        records = cache.read_records(self.name)
        return {f.name: cache.blob_path(records[f.name].sha256) for f in self.info.files if f.name in records}

    def checksums(
        self, fake: Mapping[str, bytes | str | os.PathLike[str]] | None, mirrors: Sequence[str], from_path: str | os.PathLike[str] | None
    ) -> str:
        """The real bytes match each File's size and checksum: verified by the fetch, or here from mirrors=/from_path=."""
        from dataclasses import replace

        from ..fetching.cache import Cache
        from ..fetching.download import Downloader

        declared = {f.name: f for f in self.info.files}
        fetched = [declared[name] for name in self._local_files()]
        pinned = sum(1 for f in fetched if f.checksum is None)
        also = f"; {pinned} pinned on first download, having no published checksum" if pinned else ""
        if not fake:  # the fetch verified every byte (a mismatch failed it under this check's name)
            return f"ok ({len(fetched) - pinned} file(s) verified by the fetch{also})"
        todo = [f for f in fetched if f.checksum is not None]
        verified: list[str] = []
        for file in todo:
            if file.name not in fake:
                continue
            data = fake[file.name]
            given = bytes(data) if isinstance(data, (bytes, bytearray)) else Path(data)
            problem = _mismatch(file, given)
            size = len(given) if isinstance(given, bytes) else given.stat().st_size
            if problem is None:
                verified.append(file.name)
            elif size == file.size:  # a fake rarely has the published size to the byte: these are the published bytes
                raise _Fail(
                    f"files={{{file.name!r}: ...}} has exactly the declared size but {problem}; a stand-in of the "
                    "published size is taken for the published file",
                    "if it is the published file, copy its real sha256 into the File; if it is fake, give it another size",
                )
        rest = [f for f in todo if f.name not in verified]
        if rest and (mirrors or from_path is not None):
            # Only the sources the test gives: the published URLs are the network's, and the fetch of fakes skipped them.
            downloader = Downloader(
                Cache(self.root / "checksums"), self.name, mirrors=mirrors, from_path=from_path, verify=False, quiet=True
            )
            for file in rest:
                try:
                    path = downloader.download([replace(file, urls=())])[file.name]
                except DsregError:
                    continue  # not on the given mirrors: it stays unverified, said below
                problem = _mismatch(file, path)
                if problem:
                    source = "from_path=" if from_path is not None else "mirrors="
                    raise _Fail(
                        f"{file.name} from {source} has {problem}",
                        "if the mirror holds the published file, the File's size or sha256 is wrong: copy the "
                        "published values into it; otherwise put the published file on the mirror",
                    )
                verified.append(file.name)
        left = [f.name for f in todo if f.name not in verified]
        if left:
            return _Note(
                f"skipped: {', '.join(left)} given only as stand-ins (files=), so the declared checksum is unchecked; "
                "pass mirrors=[URL or folder] holding the published file(s) to verify them"
            )
        return f"ok ({len(verified)} file(s) verified against the declared checksums{also})"

    def determinism(self) -> str:
        """A second prepare of the same files, in another cache, gives the same examples in the same order."""
        from .. import api

        again = self.root / "determinism-files"
        again.mkdir()
        for name, path in self._local_files().items():
            try:
                os.link(path, again / name)
            except OSError:  # another filesystem: copy
                (again / name).write_bytes(path.read_bytes())
        with _environ(DSREG_CACHE=str(self.root / "determinism-cache")):
            api.fetch(self.name, mirrors=[str(again)], verify=False, quiet=True, **self.config)
            for split, ds in self.datasets.items():
                other = api.load(self.name, split=split, download=False, **self.config)
                if len(other) != len(ds):
                    raise _Fail(
                        f"split {split} has {len(ds)} examples in one prepare and {len(other)} in another of the same files", _STEADY
                    )
                first = [_content_hash(e) for e in _rows(ds)]
                second = [_content_hash(e) for e in _rows(other)]
                del other
                if first != second:
                    index = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
                    moved = sorted(first) == sorted(second)
                    what = "the same examples in another order" if moved else "different examples"
                    count = sum(a != b for a, b in zip(first, second))
                    raise _Fail(
                        f"two prepares of the same files give {what}: {split}[{index}] differs first "
                        f"({count} of {len(first)} rows of {split} differ)",
                        _STEADY,
                    )
        return f"ok (two prepares, {sum(len(d) for d in self.datasets.values())} examples alike)"

    def features(self, sample: int) -> None:
        from ..store.storage import examples

        features = dict(self.info.features)  # what the store was prepared with: the columns to check against
        paths = self._local_files()
        builder = self.builder()
        for split in self.datasets:
            stream = examples(builder, split, paths, workers=1)
            seen = 0
            try:
                for key, example in stream:
                    if isinstance(example, Skip):
                        continue
                    problem = _example_problem(example, features, loaded=False)
                    if problem:
                        raise _Fail(
                            f"generate yields {split}[{key!r}] whose {problem}",
                            "yield exactly the feature columns with the declared dtypes and shapes",
                        )
                    seen += 1
                    if seen >= sample:
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        for split, ds in self.datasets.items():
            decoded = ds.builder.decodes_on_access() or ds.transform is not None
            for i in range(min(sample, len(ds))):
                example = ds[i]
                if decoded:  # decode_example may turn a stored column into another type
                    problem = (
                        None
                        if isinstance(example, dict) and example.keys() == features.keys()
                        else f"example columns {sorted(example) if isinstance(example, dict) else type(example).__name__} differ from the features {sorted(features)}"
                    )
                else:
                    problem = _example_problem(example, features, loaded=True)
                if problem:
                    raise _Fail(f"{split}[{i}] loads with {problem}", "make decode_example return the feature columns")

    def overlap(self) -> None:
        first: dict[str, tuple[str, int]] = {}
        clashes: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for split, ds in self.datasets.items():
            for i, example in enumerate(_rows(ds)):
                digest = _content_hash(example)
                where = first.setdefault(digest, (split, i))
                if where[0] != split:
                    clashes.setdefault((where[0], split), []).append((where[1], i))
        if clashes:
            (a, b), pairs = next(iter(clashes.items()))
            total = sum(len(p) for p in clashes.values())
            raise _Fail(
                f"{total} example(s) appear in two splits, e.g. {b}[{pairs[0][1]}] == {a}[{pairs[0][0]}] "
                f"({len(pairs)} between {a} and {b})",
                "assign each example to one split in generate (or drop duplicates in review()); "
                "pass skip=('overlap',) only if the published splits really overlap",
            )

    def _probe(self) -> Any:
        """The split used for batch checks: train if there is one, else the first."""
        return self.datasets.get("train") or next(iter(self.datasets.values()))

    def collate(self, batch_size: int) -> None:
        from collections.abc import Mapping as AbcMapping

        import torch

        from ..store.collate import Examples

        ds = self._probe()
        fn = ds.collate_fn
        n = min(batch_size, len(ds))
        index = list(range(n))
        gathered = ds.__getitems__(index)
        try:
            from_batch = fn(gathered)
        except Exception as exc:
            raise _Fail(
                f"collate_fn raises {_first_line(exc)} on a batch of {n} from the DataLoader's batch path",
                "accept the Batch that Dataset.__getitems__ returns (dsreg.store.collate.columns() reads both forms)",
            ) from exc
        # The list as the Dataset hands it over when examples are decoded one by one: naming the same ragged columns.
        listed = Examples(ds[i] for i in index)
        listed.ragged = gathered.ragged
        try:
            from_list = fn(listed)
        except Exception as exc:
            raise _Fail(
                f"collate_fn raises {_first_line(exc)} on a list of {n} examples",
                "accept a list of example dicts too (dsreg.store.collate.columns() reads both forms)",
            ) from exc
        if not isinstance(from_batch, AbcMapping):
            raise _Fail(f"collate_fn returns {type(from_batch).__name__}, not a dict of columns", "return {column: batched value}")
        for key, value in from_batch.items():
            size = value.shape[0] if isinstance(value, torch.Tensor) and value.dim() else (len(value) if isinstance(value, list) else None)
            if size is not None and size != n:
                raise _Fail(f"batch column {key!r} has {size} rows for {n} examples", "keep the batch dimension first")
        if not _same(dict(from_batch), dict(from_list) if isinstance(from_list, AbcMapping) else from_list):
            raise _Fail(
                f"collate_fn gives a different batch for a Batch and for a list of the same examples (column {_differs(dict(from_batch), from_list)})",
                "make both input forms collate alike",
            )

    def pickle(self) -> None:
        import pickle

        for split, ds in self.datasets.items():
            try:
                blob = pickle.dumps(ds)
                back = pickle.loads(blob)
            except Exception as exc:
                raise _Fail(
                    f"Dataset {split} does not pickle ({_first_line(exc)})",
                    "keep the Builder's instance attributes picklable (no open files, locks or lambdas)",
                ) from exc
            if len(blob) > 4 << 20:
                raise _Fail(f"Dataset {split} pickles to {len(blob) >> 20} MiB", "hold paths and small settings on the Builder, not data")
            if len(back) != len(ds) or not _same(back[0], ds[0]):
                raise _Fail(f"Dataset {split} reads differently after pickling", "keep what examples depend on in picklable attributes")

    def workers(self, batch_size: int) -> str:
        import pickle

        import torch

        ds = self._probe()
        fn = ds.collate_fn
        label = getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", repr(fn))
        try:
            pickle.loads(pickle.dumps(fn))
        except Exception as exc:
            raise _Fail(
                f"collate_fn {label} cannot be pickled ({_first_line(exc)}), so DataLoader workers started with spawn "
                "(macOS, Windows, CUDA) cannot receive it",
                "make it a module-level function (or a functools.partial of one), not a lambda or a closure",
            ) from None
        method = self.mp_method
        count = min(len(ds), 4 * batch_size)
        chunks = [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]
        expected = [fn(ds.__getitems__(chunk)) for chunk in chunks]
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=batch_size,
            sampler=list(range(count)),
            num_workers=2,
            collate_fn=fn,
            multiprocessing_context=method,
            timeout=120,
        )
        try:
            got = _drain(loader)
        except Exception as exc:
            raise _Fail(
                f"a DataLoader with num_workers=2 ({method}) fails: {_first_line(exc)}",
                "make collate_fn and decode_example work in a fresh worker process (no state set up only in the main process)",
            ) from exc
        for i, (a, b) in enumerate(zip(expected, got)):
            if not _same(a, b):
                raise _Fail(
                    f"batch {i} from DataLoader workers differs from the main process's (column {_differs(a, b)})",
                    "make collate_fn depend only on its input, not on process state",
                )
        self.worker_batches = got
        return f"ok ({method})"

    def batches(self, batch_size: int) -> str:
        """What a DataLoader hands the model, with num_workers=0 and 2, fits the features and the task (``_batch_problem``)."""
        import torch

        ds = self._probe()
        count = min(len(ds), 4 * batch_size)
        for workers in (0, 2):
            got = self.worker_batches if workers and self.worker_batches is not None else None
            if got is None:
                loader = torch.utils.data.DataLoader(
                    ds,
                    batch_size=batch_size,
                    sampler=list(range(count)),
                    num_workers=workers,
                    collate_fn=ds.collate_fn,
                    multiprocessing_context=self.mp_method if workers else None,
                    timeout=120 if workers else 0,
                )
                try:
                    got = _drain(loader)
                except Exception as exc:
                    raise _Fail(
                        f"a DataLoader with num_workers={workers} fails: {_first_line(exc)}",
                        "make collate_fn accept what Dataset.__getitems__ returns",
                    ) from exc
            for i, batch in enumerate(got):
                size = min(batch_size, count - i * batch_size)
                problem = _batch_problem(batch, self.info.features, self.cls.task, size)
                if problem:
                    raise _Fail(
                        f"batch {i} from a DataLoader with num_workers={workers}: {problem}",
                        "make collate_fn return what the task's models take: int64 labels, float32 inputs scaled "
                        "to [0, 1] or standardized, padded columns with lengths and attention_mask (dsreg.store.collate.pad)",
                    )
        return "ok (num_workers=0 and 2)"

    def offline(self) -> None:
        from .. import api

        with _environ(DSREG_OFFLINE="1"):
            try:
                api.fetch(self.name, quiet=True, **self.config)
                for split, ds in self.datasets.items():
                    again = api.load(self.name, split=split, **self.config)
                    if len(again) != len(ds) or not _same(again[0], ds[0]):
                        raise _Fail(
                            f"split {split} reloads differently from the cache",
                            "make prepared data depend only on version, config and files",
                        )
            except DsregError as exc:
                raise _Fail(
                    f"reloading from the cache with DSREG_OFFLINE=1 fails: {exc}",
                    "make get_files(), get_splits() and config_id depend only on the configuration",
                ) from None

    def train(self, batch_size: int, model_name: str | None) -> str:
        """Take one SGD step with the task's model: run only when asked (``train=True``), as it builds and trains a model."""
        import torch

        from ..train.models import target_column
        from ..train.trainer import build_model

        task = self.cls.task
        assert self.registry is not None
        models = self.registry.models_for(task)
        if model_name is not None:
            entry = self.registry.models.get(model_name)
            if entry is None or task not in entry.tasks:
                valid = ", ".join(m.name for m in models) or "none registered"
                raise _Fail(f"model={model_name!r} is not registered for task {task!r}", f"pick one of: {valid}")
            models = [entry]
        if not models:
            return f"skipped: no model is registered for task {task!r} (register one with register_models to train on it)"
        if not task.endswith("classification"):
            return f"skipped: no default loss for task {task!r}"
        ds = self._probe()
        batch = ds.collate_fn(ds.__getitems__(list(range(min(max(batch_size, 8), len(ds))))))
        try:
            model_name, model = build_model(model_name, ds.info, batch)
        except DsregError as exc:
            raise _Fail(
                f"the model {models[0].name} for {task} cannot be built: {exc}",
                "shape the batch as the models in dsreg.train.models read it, or register a model for this dataset",
            ) from None
        target = target_column(ds.info)
        if target not in batch:
            raise _Fail(f"the batch has no {target!r} column", "keep the ClassLabel column in what collate_fn returns")
        params = [p for p in model.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params]
        optimizer = torch.optim.SGD(params, lr=0.1)
        model.train()
        optimizer.zero_grad()
        out = model(batch)
        classes = len(ds.info.classes)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(batch[target]), classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise _Fail(
                f"model {model_name} returns {shape} for a batch of {len(batch[target])}, expected logits {(len(batch[target]), classes)}",
                "check the ClassLabel names and the input columns",
            )
        loss = torch.nn.functional.cross_entropy(out, batch[target])
        if not torch.isfinite(loss):
            raise _Fail(f"model {model_name} gives a loss of {loss.item()} on the first batch", "check the input values (NaN, inf, scale)")
        loss.backward()
        optimizer.step()
        if not any(not torch.equal(a, p.detach()) for a, p in zip(before, params)):
            raise _Fail(f"one SGD step leaves every weight of {model_name} unchanged", "check that the inputs reach the model")
        return f"ok ({model_name}, loss {loss.item():.3f})"


def check_builder(
    builder: type[Builder],
    *,
    files: Mapping[str, bytes | str | os.PathLike[str]] | None = None,
    mirrors: Sequence[str] = (),
    from_path: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    skip: Sequence[str] = (),
    batch_size: int = 4,
    sample: int = 32,
    mp_context: str | None = None,
    model: str | None = None,
    train: bool = False,
) -> Conformance:
    """Run the conformance suite on ``builder``; raise ConformanceError at the first failed check.

    In a throwaway cache (no user config or mirrors), in order:

    - ``metadata``: description, license, citation (or "none"), homepage URL, task, version, features;
    - ``installed``: the name is registered by exactly one installed plugin (entry points), or by
      none yet and taken by none; a clash names both plugins;
    - ``files``: every remote file has a size and a checksum, or declares ``pin_on_first_download``;
    - ``fetch``: fetch → prepare → load every split, none empty;
    - ``checksums``: the real bytes match each File's size and sha256 (md5): verified by the fetch,
      or, when ``files=`` hands over stand-ins, fetched from ``mirrors=``/``from_path=`` alone and
      verified here; a ``files=`` entry of exactly the declared size is taken for the published
      file and must match too. With stand-ins and no mirror, the report says "skipped" (no warning);
    - ``features``: the first ``sample`` examples ``generate`` yields, and the Dataset returns,
      match the declared features (columns, dtypes, shapes, label range); an example the prepared
      store refuses during the fetch is reported here too;
    - ``determinism``: a second prepare of the same files, into another cache, gives the same
      examples (content hash, row by row) in the same order;
    - ``overlap``: no example (hash of all its columns) appears in two splits;
    - ``collate``: ``collate_fn`` on a small batch, from ``__getitems__`` and from a list, alike;
    - ``pickle``: each Dataset pickles small and reads the same after;
    - ``workers``: the collate_fn pickles (spawn needs it) and a DataLoader with ``num_workers=2``
      gives the batches the main process makes (``mp_context``: "fork" where available, or "spawn");
    - ``batches``: what a DataLoader yields with ``num_workers=0`` and ``2`` is what the task's models
      take: class labels int64 ``[B]``, float columns float32 (or half), images ``[B, (C,) H, W]``,
      float images scaled to [0, 1] or standardized (values all >= 0 with a maximum above
      ``UNSCALED_MAX`` = 1.5 are 0-255 cast to float, unscaled), padded columns with ``lengths`` and
      ``attention_mask`` as ``dsreg.store.collate.pad`` names them;
    - ``offline``: with ``DSREG_OFFLINE=1`` the dataset fetches and loads from the cache;
    - ``train``, only with ``train=True`` (or ``model=``): one SGD step of the task's default
      registered model lowers nothing to NaN and changes the weights (skipped, with a
      ConformanceWarning, when no model serves the task). Off by default: it checks the data
      against the installed models, not the plugin, and costs a model build and a training step;
      the report says "skipped: opt in with train=True".

    ``files``: ``{File.name: bytes or path}`` served instead of the published files (prepared
    unverified: fake bytes cannot match real checksums; see ``checksums``). ``mirrors``/``from_path``/``config`` go to
    ``dsreg.fetch``. ``skip``: names from ``CHECKS`` not to run. ``model``: a registered model name
    for the training step instead of the task's default (naming one turns the step on). Returns the
    ``Conformance`` report.
    """
    if not (isinstance(builder, type) and issubclass(builder, Builder)):
        raise TypeError(f"check_builder expects a dsreg.Builder subclass, got {builder!r}")
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise ValueError(f"skip={unknown} names no check; the checks are {', '.join(CHECKS)}")
    with tempfile.TemporaryDirectory(prefix="dsreg-check-") as tmp:
        root = Path(tmp)
        checker = _Checker(builder, dict(config or {}), skip, root)
        checker.mp_method = mp_context or ("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        env = _environ(
            DSREG_CACHE=str(root / "cache"),
            DSREG_CONFIG=str(root / "no-config.toml"),
            DSREG_BACKOFF="0",
            DSREG_OFFLINE=None,
            DSREG_MIRRORS=None,
            DSREG_NETWORK="loopback",
        )
        with env:
            checker.run("metadata", checker.metadata)
            checker.installed_registry = _installed()
            checker.run("installed", checker.installed)
            registry = Registry()
            registry.add_dataset(registry.plugin("check_builder"), builder)
            registry.models.update(checker.installed_registry.models)
            checker.registry = registry
            with use_registry(registry):
                checker.run("files", checker.files)
                checker.run("fetch", lambda: checker.fetch(files, mirrors, from_path))
                if not checker.datasets:
                    raise ValueError("skip=('fetch',) leaves nothing to check: the other checks read the fetched data")
                checker.run("checksums", lambda: checker.checksums(files, mirrors, from_path))
                checker.run("features", lambda: checker.features(sample))
                checker.run("determinism", checker.determinism)
                checker.run("overlap", checker.overlap)
                checker.run("collate", lambda: checker.collate(batch_size))
                checker.run("pickle", checker.pickle)
                checker.run("workers", lambda: checker.workers(batch_size))
                checker.run("batches", lambda: checker.batches(batch_size))
                checker.run("offline", checker.offline)
                if train or model is not None:
                    checker.run("train", lambda: checker.train(batch_size, model))
                else:
                    checker.report.results["train"] = _TRAIN_OFF
                checker.datasets.clear()  # let the memory maps go before the cache is removed
    return checker.report
