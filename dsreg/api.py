"""The Python API: ``names``, ``info``, ``fetch`` and ``load``. The CLI is a thin layer over these."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .builder import Builder, File, Split, check_plan, needed
from .errors import CacheError, ConfigError, DsregError, PluginError
from .features import Feature, class_names
from .fetching.cache import Cache
from .fetching.records import Status
from .plugins import get_registry

__all__ = ["DatasetInfo", "names", "info", "fetch", "load", "push", "get_builder"]


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
    #: The prepared store's manifest, or None if no split of this configuration was prepared.
    manifest: dict[str, Any] | None = None
    prepared_path: Path | None = None
    #: The splits that can be served now, in plan order (``splits`` lists every split).
    ready_splits: tuple[str, ...] = ()

    @property
    def classes(self) -> list[str]:
        return class_names(self.features)

    @property
    def cached(self) -> bool:
        """True when every split is prepared and can be served."""
        return bool(self.splits) and set(self.splits) <= set(self.ready_splits)

    @property
    def size(self) -> int | None:
        """Total published bytes of the remote files (None if any is unknown or there are none)."""
        sizes = [f.size for f in self.files]
        if not sizes or any(s is None for s in sizes):
            return None
        return sum(s for s in sizes if s is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "homepage": self.homepage,
            "license": self.license,
            "citation": self.citation,
            "task": self.task,
            "plugin": self.plugin,
            "dist": self.dist,
            "aliases": list(self.aliases),
            "config": self.config,
            "splits": list(self.splits),
            "features": {k: v.to_json() | {"description": v.describe()} for k, v in self.features.items()},
            "files": [
                {
                    "name": f.name,
                    "size": f.size,
                    "sha256": f.sha256,
                    "md5": f.md5,
                    "pin_on_first_download": f.pin_on_first_download,
                    "urls": list(f.urls),
                    "fetched": self.fetched.get(f.name),
                }
                for f in self.files
            ],
            "cached": self.cached,
            "ready_splits": list(self.ready_splits),
            "prepared_path": str(self.prepared_path) if self.ready_splits else None,
            "manifest": self.manifest,
        }


def names() -> list[str]:
    """Return the names of every registered dataset."""
    return get_registry().names()


def get_builder(name: str, **config: Any) -> Builder:
    """Return the Builder registered as ``name`` (or an alias), configured with ``config``."""
    entry = get_registry().get(name)
    return entry.builder(**config)


@dataclass
class _Resolved:
    """One dataset configuration, resolved once: what ``info``, ``fetch`` and ``load`` all start from."""

    entry: Any
    builder: Builder
    cache: Cache
    plan: tuple[Split, ...]
    folder: Path
    manifest: dict[str, Any] | None = None
    ready: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, config: dict[str, Any], cache_dir: str | os.PathLike[str] | None) -> _Resolved:
        entry = get_registry().get(name)
        builder = entry.builder(**config)
        cache = Cache(cache_dir)
        resolved = cls(entry, builder, cache, check_plan(builder), cache.prepared_dir(builder.name, builder.config_id))
        return resolved.reread()

    def reread(self) -> _Resolved:
        """Read the store's state again (another process may have prepared splits meanwhile)."""
        from .store.storage import read_manifest, ready_splits

        self.manifest = read_manifest(self.folder)
        ready = ready_splits(self.folder, self.manifest, self.fetched())
        self.ready = tuple(s for s in self.split_names if s in ready)
        return self

    def fetched(self) -> dict[str, str]:
        """Return ``{file name: sha256}`` of this dataset's files whose verified bytes are in the cache."""
        return {
            name: record.sha256
            for name, record in self.cache.read_records(self.builder.name).items()
            if self.cache.blob_path(record.sha256).exists()
        }

    @property
    def split_names(self) -> tuple[str, ...]:
        """The splits in order: the plan's, unless the store holds splits the plan learnt from the data."""
        planned = tuple(split.name for split in self.plan)
        stored = tuple((self.manifest or {}).get("split_order", ()))
        if set(stored) <= set(planned):
            return planned
        return stored + tuple(s for s in planned if s not in stored)

    def wanted(self, split: str | Sequence[str] | None) -> list[str]:
        """Return the split names ``split`` asks for (None: every split; an expression names its splits)."""
        from .store import splits as split_expr

        if split is None:
            return list(self.split_names)
        expressions = [split] if isinstance(split, str) else list(split)
        names: list[str] = []
        for expression in expressions:
            for term in split_expr.parse(expression, self.split_names):
                if term.split not in names:
                    names.append(term.split)
        if not names:
            raise ConfigError(f"no split named; choose from {', '.join(self.split_names)}")
        return names

    def info(self) -> DatasetInfo:
        from .store.storage import stored_features

        builder, manifest = self.builder, self.manifest if self.ready else None
        splits = self.split_names + tuple(s for s in (manifest or {}).get("split_order", []) if s not in self.split_names)
        return DatasetInfo(
            name=builder.name,
            version=builder.version,
            description=builder.description,
            homepage=builder.homepage,
            license=builder.license,
            citation=builder.citation,
            task=builder.task,
            features=stored_features(builder, manifest),
            splits=splits,
            files=builder.get_files(),
            config=dict(builder.params),
            plugin=self.entry.plugin.name,
            dist=self.entry.plugin.dist,
            aliases=self.entry.aliases,
            cache_root=self.cache.root,
            fetched={name: record.to_json() for name, record in self.cache.read_records(builder.name).items()},
            manifest=manifest,
            prepared_path=self.folder if self.ready else None,
            ready_splits=self.ready,
        )


def info(name: str, *, cache_dir: str | os.PathLike[str] | None = None, **config: Any) -> DatasetInfo:
    """Return the metadata and cache state of dataset ``name`` with ``config``."""
    return _Resolved.of(name, config, cache_dir).info()


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


def _candidates(cache: Cache, name: str, files: set[str]) -> list[str]:
    """Return ``files`` of ``name`` downloaded without a published checksum and not yet proved good."""
    return sorted(f for f, record in cache.read_records(name).items() if f in files and record.status is Status.CANDIDATE)


def _pin(cache: Cache, name: str, files: set[str], quiet: bool) -> None:
    """Pin the candidate ``files`` of ``name``: a split prepared from them, so their bytes are good."""
    records = cache.read_records(name)
    pinned = {f: record.as_pinned() for f, record in records.items() if f in files and record.status is Status.CANDIDATE}
    for file, record in pinned.items():
        if not quiet:
            replaced = records[file].replaces
            what = f" (replacing the pin {replaced})" if replaced and replaced != record.sha256 else ""
            print(f"{name}: {file} has no published checksum; pinned sha256 {record.sha256}{what}", file=sys.stderr)
    if pinned:
        cache.write_records(name, records | pinned)


def fetch(
    name: str,
    *,
    split: str | Sequence[str] | None = None,
    mirrors: Sequence[str] = (),
    from_path: str | os.PathLike[str] | None = None,
    verify: bool = True,
    force: bool = False,
    quiet: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    remote: str | None = None,
    executor: Any = None,
    scratch: str | None = None,
    **config: Any,
) -> DatasetInfo:
    """Download, verify and prepare dataset ``name`` (only ``split``, if given); return its info.

    ``split`` names one split or several (a list), and only the files those need are downloaded;
    splits prepared later are added to the same prepared store. A split reviewed against others
    (the plan's ``after``) brings them along. Concurrent calls (other shells, every torchrun rank)
    wait on a per-dataset lock, so the work happens once; splits already prepared are returned
    without the lock, so a read-only cache serves them. ``force`` downloads and prepares the
    splits again even when cached, and replaces the pin of a file that has no published checksum.
    Such a file is pinned (its sha256 recorded and enforced on later downloads) only once a split
    prepared from it. Each failed attempt prints one line on stderr unless ``quiet``.

    ``remote`` (default ``DSREG_REMOTE``; ``""`` for none) is a URL ``dsreg push`` published this
    dataset to: splits not ready here are pulled from it (shards verified against its manifest,
    resumable) instead of prepared from the raw files. A remote passed here that lacks the
    configuration or a split is an error; one from ``DSREG_REMOTE`` falls back to preparing here.
    With a remote, ``force`` pulls the splits again: each local shard is checked against the
    remote manifest's sha256, and those that differ or are missing are downloaded again.

    ``executor`` runs the decode while preparing (default ``DSREG_EXECUTOR``, else a pool of
    ``workers`` local processes): ``"local"``, ``"dask://HOST:PORT"`` (a Dask scheduler, through
    ``distributed.Client(address).get_executor()``; needs ``dsreg[dask]``) or any
    ``concurrent.futures.Executor``. The prepared shards are byte-identical whichever ran them.
    A cluster's tasks write shards under ``scratch`` (default ``DSREG_EXECUTOR_SCRATCH``, else the
    store's own folder, which suits a one-machine cluster; ``s3://…`` for a real one).
    """
    resolved = _Resolved.of(name, config, cache_dir)
    if _pull(resolved, resolved.wanted(split), remote, quiet=quiet, force=force):
        return resolved.info()
    _fetch(
        resolved,
        resolved.wanted(split),
        config=config,
        mirrors=mirrors,
        from_path=from_path,
        verify=verify,
        force=force,
        quiet=quiet,
        cache_dir=cache_dir,
        workers=workers,
        executor=executor,
        scratch=scratch,
    )
    return resolved.info()


def _fetch(
    resolved: _Resolved,
    wanted: list[str],
    *,
    config: dict[str, Any],
    mirrors: Sequence[str] = (),
    from_path: str | os.PathLike[str] | None = None,
    verify: bool = True,
    force: bool = False,
    quiet: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    executor: Any = None,
    scratch: str | None = None,
) -> None:
    """Make the ``wanted`` splits of ``resolved`` (and those they are reviewed after) ready, then re-read its state."""
    from .fetching.download import Downloader, Rerun
    from .store.storage import prepare

    builder, cache = resolved.builder, resolved.cache
    todo = needed(resolved.plan, wanted)
    files = {name for split in todo for name in split.files}
    if not force and all(s.name in resolved.ready for s in todo) and not _candidates(cache, builder.name, files):
        return  # nothing to write: no lock, so a read-only cache (a shared or mounted one) still serves it
    asked_all = set(wanted) >= set(resolved.split_names)
    rerun = Rerun(
        builder.name,
        config,
        tuple(mirrors),
        None if from_path is None else str(from_path),
        verify,
        None if cache_dir is None else str(cache_dir),
        () if asked_all else tuple(wanted),
    )
    lock = _locked(cache, builder.name, quiet)
    try:
        resolved.reread()
        missing = todo if force else [s for s in todo if s.name not in resolved.ready]
        files = {name for split in missing for name in split.files} if missing else files
        downloader = Downloader(
            cache, builder.name, mirrors=mirrors, from_path=from_path, verify=verify, force=force, quiet=quiet, rerun=rerun
        )
        paths = downloader.download(tuple(f for f in builder.get_files() if f.name in files))
        if missing:
            records = cache.read_records(builder.name)
            # The manifest records a split only once it is prepared, by when its candidate files are proved good.
            proved = {
                f: {
                    "sha256": records[f].sha256,
                    "status": (Status.PINNED if records[f].status is Status.CANDIDATE else records[f].status).value,
                }
                for f in files
            }
            existing = resolved.manifest if resolved.ready else None
            features = None
            if existing is None:
                if resolved.folder.exists():
                    shutil.rmtree(resolved.folder)  # nothing in it can be served: start the store afresh
                # A new store fixes its features from the files; a builder whose splits are found in
                # them (a remote archive's split folders) plans again now that it has seen them.
                features = builder.get_features(paths)
                replanned = check_plan(builder)
                if [s.name for s in replanned] != [s.name for s in resolved.plan]:
                    resolved.plan = replanned
                    missing = needed(replanned, resolved.split_names if asked_all else [w for w in wanted if w in resolved.split_names])
                    if not {f for s in missing for f in s.files} <= set(paths):
                        raise PluginError(
                            f"{builder.name}: its plan changed after the download to need files it did not "
                            "declare before; a plan may change only its splits, not their files"
                        )
            try:
                prepare(
                    builder,
                    missing,
                    paths,
                    resolved.folder,
                    proved,
                    workers=workers,
                    executor=executor,
                    scratch=scratch,
                    existing=existing,
                    order=resolved.split_names,
                    features=features,
                )
            except DsregError as exc:
                unproven = _candidates(cache, builder.name, files)
                if unproven:
                    what = ", ".join(unproven)
                    note = f"{what} has no published checksum, so it was not pinned"
                    exc.add_advice(
                        f"{note}: {rerun.python(force=True)} downloads it again", f"{note}: `{rerun.cli(force=True)}` downloads it again"
                    )
                raise
        _pin(cache, builder.name, files, quiet)
    finally:
        lock.release()
        resolved.reread()


def _identity(builder: Builder) -> dict[str, Any]:
    """Return what a store of ``builder``'s configuration records about itself (a remote must match it)."""
    from .store.storage import FORMAT

    kind = type(builder)
    return {
        "format": FORMAT,
        "dataset": builder.name,
        "version": builder.version,
        "builder": f"{kind.__module__}:{kind.__qualname__}",
        "config_id": builder.config_id,
    }


def _pull(resolved: _Resolved, wanted: Sequence[str], remote: str | None, *, quiet: bool, force: bool = False) -> bool:
    """Pull the ``wanted`` splits not ready here from ``remote`` (None: ``DSREG_REMOTE``); True when nothing is left to prepare.

    False when there is no remote, or ``DSREG_REMOTE`` lacks them (a note says so): the caller prepares.
    """
    from .store import remote as remotes

    explicit = remote is not None
    base = remote if explicit else remotes.env_remote()
    if not base:
        return False
    if not force and all(s in resolved.ready for s in wanted):
        return True
    name = resolved.builder.name
    lock = _locked(resolved.cache, name, quiet)
    try:
        resolved.reread()
        missing = list(wanted) if force else [s for s in wanted if s not in resolved.ready]
        if missing:
            remotes.pull_store(base, resolved.folder, _identity(resolved.builder), missing, explicit=explicit, quiet=quiet)
    except remotes.RemoteMissing as exc:
        if explicit:
            raise
        if not quiet:
            print(f"{str(exc).split('; ')[0]}; preparing it here from the raw files", file=sys.stderr)
        return False
    finally:
        lock.release()
        resolved.reread()
    return True


def push(
    name: str,
    url: str,
    *,
    split: str | Sequence[str] | None = None,
    quiet: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    **config: Any,
) -> Any:
    """Publish the prepared store of ``name`` (with ``config``) to ``url``, any fsspec URL or folder; return a ``Transfer``.

    ``split`` names the splits to push (None: those ready here, or every split when none is); a
    split not ready here is fetched and prepared first. The store lands at
    ``URL/<name>/<config_id>/`` (shards first, then the manifest, merged with the splits already
    there), where ``load(..., remote=URL)`` and ``fetch(..., remote=URL)`` on any machine pull it.
    """
    from .store import remote as remotes

    resolved = _Resolved.of(name, config, cache_dir)
    splits = (list(resolved.ready) or resolved.wanted(None)) if split is None else resolved.wanted(split)
    missing = [s for s in splits if s not in resolved.ready]
    if missing:
        _fetch(resolved, missing, config=config, quiet=quiet, cache_dir=cache_dir, workers=workers)
        splits = [s for s in (resolved.ready if split is None else resolved.wanted(split)) if s in resolved.ready]
    assert resolved.manifest is not None
    return remotes.push_store(resolved.folder, resolved.manifest, url, splits)


def load(
    name: str,
    split: str | None = None,
    *,
    download: bool = True,
    transform: Callable[[dict[str, Any]], Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    remote: str | None = None,
    streaming: bool = False,
    executor: Any = None,
    **config: Any,
) -> Any:
    """Return split ``split`` of dataset ``name`` as a ``dsreg.Dataset`` (all splits as a dict if None).

    ``split`` may slice and combine: ``"train[:10%]"``, ``"train[100:200]"``, ``"train+test"``.
    The splits it names are fetched and prepared on first use (only those, and only the files they
    need) unless ``download=False``. With ``remote`` (default ``DSREG_REMOTE``), splits not ready
    here are pulled from that ``dsreg push`` URL instead of prepared (see ``fetch``).

    ``streaming=True`` returns a ``dsreg.StreamingDataset`` (an IterableDataset over the split's
    shards) instead: read in place when the split is prepared here, else streamed from ``remote``
    (or ``DSREG_REMOTE``) through a bounded local shard cache without copying the store here,
    else prepared here first. It takes whole split names only.

    ``executor`` runs the decode of a prepare (see ``fetch``; default ``DSREG_EXECUTOR``).
    """
    from .store import splits as split_expr
    from .store.dataset import Dataset

    resolved = _Resolved.of(name, config, cache_dir)
    if streaming:
        return _streaming(resolved, split, remote, download=download, transform=transform, config=config, cache_dir=cache_dir)
    wanted = resolved.wanted(split)
    missing = [s for s in wanted if s not in resolved.ready]
    if missing:
        if not download:
            which = " ".join(f"--split {s}" for s in missing)
            raise CacheError(
                f"{resolved.builder.name} ({', '.join(missing)}) is not prepared in {resolved.cache.root}; "
                f"run `dsreg fetch {resolved.builder.name} {which}` or pass download=True"
            )
        if not _pull(resolved, missing, remote, quiet=True):
            _fetch(resolved, missing, config=config, quiet=True, cache_dir=cache_dir, executor=executor)
        wanted = resolved.wanted(split)  # the splits found in the data, if the plan learnt them while preparing
    ds_info = resolved.info()
    manifest = ds_info.manifest
    assert manifest is not None
    counts = {s: manifest["splits"][s]["examples"] for s in resolved.ready}
    builder, folder = resolved.builder, resolved.folder
    if split is None:
        return {s: Dataset(builder, folder, [(s, 0, counts[s])], ds_info, s, transform) for s in wanted}
    ranges = split_expr.resolve(split, counts)
    return Dataset(builder, folder, ranges, ds_info, split, transform)


def _streaming(
    resolved: _Resolved,
    split: str | None,
    remote: str | None,
    *,
    download: bool,
    transform: Callable[[dict[str, Any]], Any] | None,
    config: dict[str, Any],
    cache_dir: str | os.PathLike[str] | None,
) -> Any:
    """``load(..., streaming=True)``: a ``StreamingDataset`` per split, local where ready, else from the remote."""
    import dataclasses

    from .store import remote as remotes
    from .store.storage import stored_features
    from .store.streaming import StreamingDataset

    builder = resolved.builder
    if split is not None and split not in resolved.split_names:
        resolved.wanted(split)  # an unknown split is named as load names it
        raise ConfigError(
            f"streaming reads whole splits: give one of {', '.join(resolved.split_names)}, not {split!r} "
            "(slices and sums need dsreg.load without streaming)"
        )
    wanted = resolved.wanted(split)
    missing = [s for s in wanted if s not in resolved.ready]
    base = remote if remote is not None else remotes.env_remote()
    where: str | None = None
    theirs: dict[str, Any] | None = None
    if missing and base:
        where = remotes.location(base, builder.name, builder.config_id)
        theirs = remotes.read_remote_manifest(where)
        problem = "has no store for this configuration" if theirs is None else None
        if theirs is not None:
            incompatible = remotes.incompatibility(theirs, _identity(builder))
            if incompatible:
                raise ConfigError(f"{builder.name}: refusing {where}: {incompatible}")
            absent = [s for s in missing if s not in theirs["splits"]]
            problem = f"has no split {', '.join(absent)} of this configuration" if absent else None
        if problem and remote is not None:
            raise remotes.RemoteMissing(f"{builder.name}: the remote {base} {problem}; push it first (`dsreg push {builder.name} {base}`)")
        if problem:
            where = theirs = None  # DSREG_REMOTE lacks it: prepare here
    if missing and where is None:
        if not download:
            which = " ".join(f"--split {s}" for s in missing)
            raise CacheError(
                f"{builder.name} ({', '.join(missing)}) is not prepared in {resolved.cache.root}; "
                f"run `dsreg fetch {builder.name} {which}` or pass download=True"
            )
        _fetch(resolved, missing, config=config, quiet=True, cache_dir=cache_dir)
        wanted, missing = resolved.wanted(split), []
    base_info = resolved.info()
    out = {}
    for s in wanted:
        manifest = theirs if s in missing and theirs is not None else resolved.manifest
        location = where if s in missing and where is not None else str(resolved.folder)
        assert manifest is not None
        features = stored_features(builder, manifest)
        info = dataclasses.replace(base_info, features=features, manifest=manifest)
        out[s] = StreamingDataset(builder, location, manifest, s, features, info=info, transform=transform)
    return out if split is None else out[split]
