"""The Python API: ``names``, ``info``, ``fetch`` and ``load``. The CLI is a thin layer over these."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .builder import Builder, File
from .fetching.cache import Cache
from .errors import CacheError, DsregError
from .features import ClassLabel, Feature
from .plugins import get_registry

__all__ = ["DatasetInfo", "names", "info", "fetch", "load", "get_builder"]


@dataclass
class DatasetInfo:
    """Everything known about one dataset configuration: its metadata, files and cache state."""

    name: str
    version: str
    description: str
    homepage: str
    license: str
    citation: str
    task: str
    features: dict[str, Feature]
    splits: tuple[str, ...]
    files: tuple[File, ...]
    config: dict[str, Any]
    plugin: str
    dist: str | None
    aliases: tuple[str, ...]
    cache_root: Path
    #: ``{file name: {sha256, size, status, source}}`` for files already fetched.
    fetched: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The prepared store's manifest, or None if this configuration is not prepared.
    manifest: dict[str, Any] | None = None
    prepared_path: Path | None = None

    @property
    def classes(self) -> list[str]:
        for feat in self.features.values():
            if isinstance(feat, ClassLabel):
                return list(feat.names)
        return []

    @property
    def cached(self) -> bool:
        return self.manifest is not None

    @property
    def size(self) -> int | None:
        """Total published bytes of the remote files (None if any is unknown or there are none)."""
        sizes = [f.size for f in self.files]
        if not sizes or any(s is None for s in sizes):
            return None
        return sum(s for s in sizes if s is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "description": self.description,
            "homepage": self.homepage, "license": self.license, "citation": self.citation,
            "task": self.task, "plugin": self.plugin, "dist": self.dist, "aliases": list(self.aliases),
            "config": self.config, "splits": list(self.splits),
            "features": {k: v.to_json() | {"description": v.describe()} for k, v in self.features.items()},
            "files": [
                {
                    "name": f.name, "size": f.size, "sha256": f.sha256, "md5": f.md5,
                    "pin_on_first_download": f.pin_on_first_download, "urls": list(f.urls),
                    "fetched": self.fetched.get(f.name),
                }
                for f in self.files
            ],
            "cached": self.cached, "prepared_path": str(self.prepared_path) if self.cached else None,
            "manifest": self.manifest,
        }


def names() -> list[str]:
    """Return the names of every registered dataset."""
    return get_registry().names()


def get_builder(name: str, **config: Any) -> Builder:
    """Return the Builder registered as ``name`` (or an alias), configured with ``config``."""
    entry = get_registry().get(name)
    return entry.builder(**config)


def _sources(cache: Cache, builder: Builder) -> dict[str, dict[str, Any]] | None:
    """Return the fetched record of each file the builder needs, or None if any is missing."""
    records = cache.read_files(builder.name)
    out = {}
    for file in builder.get_files():
        record = records.get(file.name)
        if record is None or not cache.download(record["sha256"]).exists():
            return None
        out[file.name] = {"sha256": record["sha256"], "status": record.get("status")}
    return out


def _prepared(cache: Cache, builder: Builder) -> tuple[Path, dict[str, Any] | None]:
    from .store.storage import read_manifest

    folder = cache.prepared_dir(builder.name, builder.config_id)
    sources = _sources(cache, builder)
    return folder, (read_manifest(folder, sources) if sources is not None else None)


def info(name: str, *, cache_dir: str | os.PathLike[str] | None = None, **config: Any) -> DatasetInfo:
    """Return the metadata and cache state of dataset ``name`` with ``config``."""
    entry = get_registry().get(name)
    builder = entry.builder(**config)
    cache = Cache(cache_dir)
    folder, manifest = _prepared(cache, builder)
    return _make_info(entry, builder, cache, folder, manifest)


def _features(builder: Builder, manifest: dict[str, Any] | None) -> dict[str, Feature]:
    """Return the features fixed when ``manifest`` was prepared, else the builder's for its config."""
    from .features import from_json

    if manifest and manifest.get("schema"):
        stored = {name: from_json(data) for name, data in manifest["schema"].items()}
        if all(feat is not None for feat in stored.values()):
            return stored  # type: ignore[return-value]
    return builder.get_features()


def _make_info(entry: Any, builder: Builder, cache: Cache, folder: Path, manifest: dict[str, Any] | None) -> DatasetInfo:
    # The Dataset reads builder.features: bind those of the prepared store (they may depend on the data).
    builder.features = _features(builder, manifest)
    splits = tuple(manifest["split_order"]) if manifest and manifest.get("split_order") else builder.get_splits()
    return DatasetInfo(
        name=builder.name, version=builder.version, description=builder.description,
        homepage=builder.homepage, license=builder.license, citation=builder.citation,
        task=builder.task, features=dict(builder.features), splits=splits,
        files=builder.get_files(), config=dict(builder.params), plugin=entry.plugin.name,
        dist=entry.plugin.dist, aliases=entry.aliases, cache_root=cache.root,
        fetched=cache.read_files(builder.name), manifest=manifest,
        prepared_path=folder if manifest else None,
    )


def _locked(cache: Cache, name: str, quiet: bool) -> Any:
    import filelock

    lock = cache.lock(name)
    try:
        try:
            lock.acquire(timeout=0.5)
        except filelock.Timeout:
            if not quiet:
                print(f"waiting for another process that is fetching {name} ({lock.lock_file})", file=sys.stderr)
            lock.acquire()
    except OSError as exc:  # a read-only or full cache: the lock file cannot be created
        raise CacheError(
            f"cannot lock {name} in the cache at {cache.root} ({exc.strerror or exc}); "
            "set DSREG_CACHE to a writable folder to fetch or prepare it"
        ) from exc
    return lock


def _candidates(cache: Cache, name: str) -> list[str]:
    """Return the files of ``name`` downloaded without a published checksum and not yet proved good."""
    return sorted(f for f, record in cache.read_files(name).items() if record.get("status") == "candidate")


def _pin(cache: Cache, name: str, quiet: bool) -> None:
    """Pin every candidate file of ``name``: the dataset prepared from them, so their bytes are good."""
    records = cache.read_files(name)
    changed = False
    for file, record in records.items():
        if record.get("status") == "candidate":
            record["status"] = "pinned"
            record["pinned"] = record.get("fetched")
            replaced = record.pop("replaces", None)
            changed = True
            if not quiet:
                what = f" (replacing the pin {replaced})" if replaced and replaced != record["sha256"] else ""
                print(f"{name}: {file} has no published checksum; pinned sha256 {record['sha256']}{what}", file=sys.stderr)
    if changed:
        cache.write_files(name, records)


def fetch(
    name: str,
    *,
    mirrors: Sequence[str] = (),
    from_path: str | os.PathLike[str] | None = None,
    verify: bool = True,
    force: bool = False,
    quiet: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    **config: Any,
) -> DatasetInfo:
    """Download, verify and prepare dataset ``name``; return its info (with the manifest).

    Concurrent calls (other shells, every torchrun rank) wait on a per-dataset lock, so the work
    happens once; a dataset already prepared is returned without the lock, so a read-only cache
    serves it. ``force`` downloads and prepares again even when the cache is complete, and replaces
    the pin of a file that has no published checksum. Such a file is pinned (its sha256 recorded
    and enforced on later downloads) only once the dataset prepared from it. Each failed attempt
    prints one line on stderr unless ``quiet``.
    """
    from .fetching.download import Fetcher, Rerun
    from .store.storage import prepare, read_manifest

    entry = get_registry().get(name)
    builder = entry.builder(**config)
    cache = Cache(cache_dir)
    folder = cache.prepared_dir(builder.name, builder.config_id)
    rerun = Rerun(builder.name, config, tuple(mirrors), None if from_path is None else str(from_path), verify,
                  None if cache_dir is None else str(cache_dir))

    def fetcher() -> Fetcher:
        return Fetcher(cache, builder.name, mirrors=mirrors, from_path=from_path, verify=verify, force=force, quiet=quiet, rerun=rerun)

    if not force and fetcher().cached(builder.get_files()) is not None and not _candidates(cache, builder.name):
        # Nothing to write: no lock, so a read-only cache (a shared or mounted one) still serves it.
        manifest = read_manifest(folder, _sources(cache, builder) or {})
        if manifest is not None:
            return _make_info(entry, builder, cache, folder, manifest)
    lock = _locked(cache, builder.name, quiet)
    try:
        paths = fetcher().fetch(builder.get_files())
        sources = _sources(cache, builder) or {}
        manifest = None if force else read_manifest(folder, sources)
        if manifest is None:
            # The manifest is written only if prepare succeeds, by when every candidate is pinned.
            proved = {f: s | {"status": "pinned"} if s.get("status") == "candidate" else s for f, s in sources.items()}
            try:
                manifest = prepare(builder, paths, folder, proved, workers=workers)
            except DsregError as exc:
                unproven = _candidates(cache, builder.name)
                if unproven:
                    what = ", ".join(unproven)
                    note = f"{what} has no published checksum, so it was not pinned"
                    exc.add_advice(f"{note}: {rerun.python(force=True)} downloads it again",
                                   f"{note}: `{rerun.cli(force=True)}` downloads it again")
                raise
        _pin(cache, builder.name, quiet)
    finally:
        lock.release()
    return _make_info(entry, builder, cache, folder, manifest)


def load(
    name: str,
    split: str | None = None,
    *,
    download: bool = True,
    transform: Callable[[dict[str, Any]], Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **config: Any,
) -> Any:
    """Return split ``split`` of dataset ``name`` as a ``dsreg.Dataset`` (all splits as a dict if None).

    ``split`` may slice and combine: ``"train[:10%]"``, ``"train[100:200]"``, ``"train+test"``.
    The dataset is fetched and prepared on first use unless ``download=False``.
    """
    from .store import splits as split_expr
    from .store.dataset import Dataset

    entry = get_registry().get(name)
    builder = entry.builder(**config)
    cache = Cache(cache_dir)
    folder, manifest = _prepared(cache, builder)
    if manifest is None:
        if not download:
            raise CacheError(f"{builder.name} is not prepared in {cache.root}; run `dsreg fetch {builder.name}` or pass download=True")
        manifest = fetch(name, cache_dir=cache_dir, quiet=True, **config).manifest
    ds_info = _make_info(entry, builder, cache, folder, manifest)
    assert manifest is not None
    # The prepared order (JSON keys are stored sorted; the splits may depend on the data).
    counts = {s: manifest["splits"][s]["examples"] for s in ds_info.splits if s in manifest["splits"]}
    if split is None:
        return {s: Dataset(builder, folder, [(s, 0, n)], ds_info, s, transform) for s, n in counts.items()}
    ranges = split_expr.resolve(split, counts)
    return Dataset(builder, folder, ranges, ds_info, split, transform)
