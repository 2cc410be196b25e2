"""``StreamingDataset``: a prepared split's shards as a ``torch.utils.data.IterableDataset``.

The shards are read where they are: a local store folder is memory-mapped in place; a remote one
(any fsspec URL, ``s3://…``) is downloaded shard by shard into a local shard cache, verified against
the manifest's sha256 and evicted least-recently-used first, so the cache folder stays under a byte
limit and a split larger than the disk streams.

**Who reads what.** Each epoch is one sequence of rows: the shards in order (a permutation seeded
by ``(seed, epoch)`` when shuffling), end to end. Rank ``r`` of ``W`` takes the ``r``-th of ``W``
contiguous near-equal parts of it; DataLoader worker ``w`` of ``K`` takes the ``w``-th of ``K``
contiguous near-equal parts of its rank's. Parts may cut a shard: they read row ranges. So every
example is read exactly once per epoch, for any world size and worker count, and loads differ by
at most one example. A rank's share does not depend on the worker count.

**Equal steps under DDP.** With ``W > 1`` the shares differ by one example when ``W`` does not
divide the split. DistributedDataParallel needs every rank to take the same number of steps, so
``balance="pad"`` gives each rank ``ceil(N / W)`` examples by reading the epoch's first few again
(what ``DistributedSampler`` does) and ``balance="drop"`` gives each ``floor(N / W)``, leaving out
at most ``W - 1``. The default, ``"exact"``, reads every example exactly once; the trainer uses
``"pad"``, as its map-style sampler does.

**Shuffle.** Shard order plus a bounded buffer: each worker's part is cut into blocks of
``buffer_size`` examples, and each block is read in a random order seeded by ``(seed, epoch,
rank, worker, block)``. Examples move at most ``buffer_size`` places, only the shards of one block
(and the next, prefetched) need to be on disk, and the order is a pure function of those numbers:
the same every run, different every epoch (``set_epoch``).

**Resuming.** ``state_dict()`` records the epoch and, per DataLoader worker, how many examples the
training loop received. A fresh dataset given it with ``load_state_dict`` recomputes each
worker's order and skips what was consumed: the rest of the epoch comes out exactly as it would
have. Count through ``loader()`` (it tags each batch with its worker); iterating the dataset
directly in the main process counts too, a DataLoader of your own with workers cannot.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..builder import Builder
from ..errors import CacheError, ChecksumError, ConfigError, DsregError, FetchError
from ..features import Feature, class_names
from .collate import Batch, Examples
from .dataset import _Part

__all__ = ["StreamingDataset", "StreamingLoader", "ShardCache", "cache_limit", "DEFAULT_CACHE_BYTES", "DEFAULT_BUFFER"]

#: The shard cache's default limit (``DSREG_STREAM_CACHE_BYTES`` overrides it).
DEFAULT_CACHE_BYTES = 4 << 30
#: Examples per shuffle block by default, fewer where a block of them would take more than ``DEFAULT_BUFFER_BYTES``.
DEFAULT_BUFFER = 16384
DEFAULT_BUFFER_BYTES = 256 << 20
BALANCES = ("exact", "pad", "drop")
_CHUNK = 1 << 20
_BLOCK_RAM = 64 << 20
#: How long a reader waits for other readers to release shards before the limit is called too small.
_ROOM_WAIT_S = 60.0


def cache_limit(value: int | str | None = None) -> int:
    """Return the shard cache limit in bytes: ``value``, else ``DSREG_STREAM_CACHE_BYTES``, else 4 GiB."""
    from ..fetching.config import parse_size

    if value is not None:
        return parse_size(value, "cache_limit_bytes")
    env = os.environ.get("DSREG_STREAM_CACHE_BYTES", "").strip()
    return parse_size(env, "DSREG_STREAM_CACHE_BYTES") if env else DEFAULT_CACHE_BYTES


def is_remote(location: str | os.PathLike[str]) -> bool:
    """True when ``location`` is a URL (read through fsspec and the shard cache), False for a local folder."""
    return "://" in os.fspath(location)


def read_location_manifest(location: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json`` at a store location (a folder or an fsspec URL); CacheError if it is missing."""
    import json

    where = os.fspath(location).rstrip("/")
    try:
        if is_remote(where):
            fs, root = _remote_fs(where)
            manifest = json.loads(fs.cat_file(f"{root}/manifest.json"))
        else:
            manifest = json.loads((Path(where) / "manifest.json").read_bytes())
    except FileNotFoundError:
        raise CacheError(f"no prepared store at {where} (manifest.json is missing); push or prepare the dataset there first") from None
    except (OSError, ValueError) as exc:
        raise CacheError(f"cannot read the manifest at {where} ({exc}); check the location and try again") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise CacheError(f"{where}/manifest.json is not a dsreg store manifest; push or prepare the dataset there again")
    return manifest


def _remote_fs(url: str) -> tuple[Any, str]:
    """``(filesystem, path)`` of a remote location, once DSREG_OFFLINE and DSREG_NETWORK allow it."""
    from ..errors import OfflineError
    from ..fetching import config, objectstore

    if objectstore.scheme(url) not in ("file", "local", "memory") and config.offline():
        raise OfflineError(f"{url} is remote and DSREG_OFFLINE=1 is set; unset DSREG_OFFLINE, or stream a local store")
    config.check_network(url)
    return objectstore.url_to_fs(url)


def split_shards(manifest: Mapping[str, Any], split: str) -> list[dict[str, Any]]:
    """Return the ordered shard entries (``file``, ``rows``, ``bytes``, ``sha256``) of ``split``."""
    meta = manifest["splits"].get(split)
    if meta is None:
        raise ConfigError(
            f"{manifest.get('dataset', 'the dataset')} has no prepared split {split!r}; choose from {', '.join(manifest['splits'])}"
        )
    shards = meta.get("shards")
    if not isinstance(shards, list):
        raise CacheError(
            f"the store of {manifest.get('dataset', 'this dataset')} is not sharded (manifest format {manifest.get('format')}); "
            "prepare it again with this dsreg (dsreg fetch --force) to stream it"
        )
    return [dict(s) for s in shards]


# -- the local shard cache --------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ShardCache:
    """A folder of downloaded shards kept under ``limit`` bytes, least recently used evicted first.

    Shared by every process that reads the same remote store on this machine (DataLoader workers,
    torchrun ranks): a file lock guards the bookkeeping, a shard being read is pinned (a marker
    file naming the reading process) and never evicted, and a download in progress counts its
    full size. A shard is downloaded to a temporary name, hashed on the way, checked against the
    manifest and only then renamed into place.
    """

    def __init__(self, base: str, folder: Path, limit: int, shards: Sequence[Mapping[str, Any]]) -> None:
        self.base = base.rstrip("/")
        self.folder = Path(folder)
        self.limit = int(limit)
        self.sizes = {str(s["file"]): int(s["bytes"]) for s in shards}
        self.sha = {str(s["file"]): str(s["sha256"]) for s in shards}
        biggest = max(self.sizes.values(), default=0)
        if self.limit < 2 * biggest:
            raise ConfigError(
                f"the streaming shard cache limit {self.limit:,} bytes is under two shards ({2 * biggest:,} bytes: "
                "one being read, the next being fetched); raise DSREG_STREAM_CACHE_BYTES (cache_limit_bytes=)"
            )
        self._pins: dict[str, int] = {}
        self._mutex = threading.Lock()
        self._fs: tuple[int, Any, str] | None = None  # (pid, filesystem, root): made again in a forked worker

    # bookkeeping (under the folder lock)
    def _lock(self) -> Any:
        import filelock

        self.folder.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.folder / ".lock"))

    def _pinned(self) -> dict[str, set[int]]:
        pins: dict[str, set[int]] = {}
        for marker in self.folder.glob(".pin.*"):
            file, _, pid = marker.name[len(".pin.") :].rpartition(".")
            try:
                owner = int(pid)
            except ValueError:
                continue
            if _alive(owner):
                pins.setdefault(file, set()).add(owner)
            else:
                marker.unlink(missing_ok=True)
        return pins

    def used(self) -> int:
        """Bytes the cache holds now: complete shards, plus the full size of each download in progress."""
        total = 0
        for path in self.folder.iterdir() if self.folder.exists() else ():
            name = path.name
            if name.startswith(".") and name.endswith(".part"):  # .<file>.<tag>.part: counts its full size
                total += self.sizes.get(name[1 : -len(".part")].rpartition(".")[0], 0)
            elif not name.startswith("."):
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    def _make_room(self, need: int) -> bool:
        """Evict unpinned shards, oldest use first, until ``need`` more bytes fit; False if they cannot yet."""
        pinned = self._pinned()
        used = self.used()
        if used + need <= self.limit:
            return True
        shards = [p for p in self.folder.iterdir() if not p.name.startswith(".") and p.name not in pinned]
        shards.sort(key=lambda p: p.stat().st_mtime_ns)
        for path in shards:
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            used -= size
            if used + need <= self.limit:
                return True
        return False

    def _pin(self, file: str) -> None:
        with self._mutex:
            self._pins[file] = self._pins.get(file, 0) + 1
            (self.folder / f".pin.{file}.{os.getpid()}").touch()

    def release(self, file: str) -> None:
        """Unpin ``file`` (it stays cached until it is the least recently used and room is needed)."""
        with self._mutex:
            left = self._pins.get(file, 0) - 1
            if left > 0:
                self._pins[file] = left
                return
            self._pins.pop(file, None)
            (self.folder / f".pin.{file}.{os.getpid()}").unlink(missing_ok=True)

    def _reserve(self, file: str) -> Path:
        """Pin ``file`` and reserve its size with an empty ``.part`` file (under the folder lock)."""
        part = self.folder / f".{file}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part"
        part.touch()
        self._pin(file)
        return part

    def _fetch(self, file: str, part: Path) -> Path:
        path = self.folder / file
        try:
            self._download(file, part)
            os.replace(part, path)
        except BaseException:
            part.unlink(missing_ok=True)
            self.release(file)
            raise
        return path

    def _complete(self, file: str) -> bool:
        path = self.folder / file
        try:
            return path.stat().st_size == self.sizes[file]
        except OSError:
            return False

    def prefetch(self, file: str) -> bool:
        """Download ``file`` now if the cache has room for it without waiting (not pinned); False if it has not."""
        with self._lock():
            if self._complete(file):
                return True
            if not self._make_room(self.sizes[file]):
                return False
            part = self._reserve(file)
        self._fetch(file, part)
        self.release(file)
        return True

    def acquire(self, files: Sequence[str], held: Sequence[str] = ()) -> list[Path]:
        """Return the local paths of ``files`` (one block's shards), downloading what is missing; all pinned.

        ``held``: those of ``files`` this process pinned already (by ``prefetch``); they are taken
        over, so each of ``files`` ends pinned once. The shards are taken together or not at all:
        while there is no room for them this process holds none of them, so readers waiting for
        each other never wait for ever.
        """
        wanted = list(dict.fromkeys(files))
        held = [f for f in dict.fromkeys(held) if f in wanted]
        together = sum(self.sizes[f] for f in wanted)
        if together > self.limit:
            raise CacheError(
                f"one shuffle block spans {len(wanted)} shards ({together:,} bytes), over the streaming shard cache "
                f"limit of {self.limit:,} bytes; raise DSREG_STREAM_CACHE_BYTES or lower buffer_size"
            )
        deadline = time.monotonic() + _ROOM_WAIT_S
        while True:
            with self._lock():
                present = [f for f in wanted if self._complete(f)]
                for f in present:
                    if f not in held:
                        self._pin(f)
                        held.append(f)
                    os.utime(self.folder / f)  # most recently used
                missing = [f for f in wanted if f not in present]
                if self._make_room(sum(self.sizes[f] for f in missing if f not in held)):
                    parts = {f: self._reserve(f) for f in missing if f not in held}
                    break
                for f in held:  # hold nothing while waiting
                    self.release(f)
                held = []
            if time.monotonic() > deadline:
                raise CacheError(
                    f"the streaming shard cache in {self.folder} cannot hold the shards its readers need at once within "
                    f"{self.limit:,} bytes (DSREG_STREAM_CACHE_BYTES); raise it, or lower buffer_size or num_workers"
                )
            time.sleep(0.05)
        try:
            for f, part in list(parts.items()):
                del parts[f]
                self._fetch(f, part)  # on failure it drops its own part and pin
                held.append(f)
        except BaseException:
            for f, part in parts.items():
                part.unlink(missing_ok=True)
                self.release(f)
            for f in held:
                self.release(f)
            raise
        return [self.folder / f for f in wanted]

    def _download(self, file: str, part: Path) -> None:
        url = f"{self.base}/{file}"
        digest = hashlib.sha256()
        size = 0
        if self._fs is None or self._fs[0] != os.getpid():
            self._fs = (os.getpid(), *_remote_fs(self.base))
        _, fs, root = self._fs
        try:
            with fs.open(f"{root}/{file}", "rb") as src, open(part, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            raise FetchError(f"shard {file} is missing at {self.base}; push the dataset there again (dsreg push)") from None
        except DsregError:
            raise
        except Exception as exc:
            from .storage import disk_error

            told = disk_error(exc, self.folder, f"streaming {file}") if isinstance(exc, OSError) else None
            if told is not None:
                raise told from exc
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FetchError(
                f"cannot read shard {url} ({reason}); check the URL, your credentials and the network, then try again"
            ) from exc
        got = digest.hexdigest()
        if got != self.sha[file] or size != self.sizes[file]:
            raise ChecksumError(
                f"shard {file} from {self.base} has sha256 {got[:16]}… ({size:,} bytes), the manifest says "
                f"{self.sha[file][:16]}… ({self.sizes[file]:,} bytes): the remote copy is damaged or was changed "
                "after it was pushed; push the dataset again (dsreg push)"
            )


# -- reading rows -------------------------------------------------------------------------------
class _Block:
    """The rows of one shuffle block: ``(whole shard, start, stop)`` ranges, gathered like ``Dataset.__getitems__``."""

    def __init__(self, ranges: list[tuple[_Part, int, int]], owner: StreamingDataset) -> None:
        self.parts = [part for part, _, _ in ranges]
        self.ends = np.cumsum([b - a for _, a, b in ranges], dtype=np.int64)
        self.firsts = np.array([a for _, a, _ in ranges], dtype=np.int64)
        self.ranges = ranges
        self.owner = owner

    def gather_all(self, index: np.ndarray) -> Batch | Examples:
        """Gather (nearly) the whole block: fixed-shape columns as one copy of the ranges end to end, then one gather."""
        owner = self.owner
        if not owner._plain or len(self.parts) == 1:
            return self.gather(index)
        first = self.parts[0]
        if not all(isinstance(col, torch.Tensor) and name not in first.offsets for name, col in first.columns.items()):
            return self.gather(index)
        order = torch.from_numpy(index)
        batch = Batch(
            {name: torch.cat([part.columns[name][a:b] for part, a, b in self.ranges]).index_select(0, order) for name in first.columns}
        )
        batch.ragged = owner._ragged
        return batch

    def gather(self, index: np.ndarray) -> Batch | Examples:
        owner = self.owner
        which = np.searchsorted(self.ends, index, side="right")
        # block position -> row of its shard: minus the ranges before it, plus where its range starts
        starts = np.concatenate([[0], self.ends[:-1]]) - self.firsts
        if not owner._plain:
            rows = Examples()
            for k, i in zip(which.tolist(), (index - starts[which]).tolist()):
                example = owner.builder.decode_example(self.parts[k].row(i))
                rows.append(owner.transform(example) if owner.transform is not None else example)
            rows.ragged = owner._ragged
            return rows
        if len(self.parts) == 1 or (len(which) and which.min() == which.max()):
            k = int(which[0]) if len(which) else 0
            batch = Batch(self.parts[k].gather(index - starts[k]))
        else:  # several shards: each column filled in place, part by part (no concatenation, no reordering)
            local = index - starts[which]
            hits = [(self.parts[k], np.flatnonzero(which == k)) for k in np.flatnonzero(np.bincount(which, minlength=len(self.parts)))]
            batch = Batch()
            first = self.parts[0]
            for name, col in first.columns.items():
                if isinstance(col, torch.Tensor) and name not in first.offsets:
                    out = torch.empty((len(index), *col.shape[1:]), dtype=col.dtype)
                    for part, sel in hits:
                        out.index_copy_(0, torch.from_numpy(sel), part.columns[name].index_select(0, torch.from_numpy(local[sel])))
                    batch[name] = out
                else:
                    values: list[Any] = [None] * len(index)
                    for part, sel in hits:
                        for at, value in zip(sel.tolist(), part.gather_column(name, local[sel])):
                            values[at] = value
                    batch[name] = values
        batch.ragged = owner._ragged
        return batch


def _rows(batch: Batch | Examples) -> Iterator[dict[str, Any]]:
    if isinstance(batch, Examples):
        yield from batch
        return
    n = len(next(iter(batch.values()))) if batch else 0
    for i in range(n):
        yield {name: col[i] for name, col in batch.items()}


def _count(batch: Batch | Examples) -> int:
    return len(batch) if isinstance(batch, Examples) else len(next(iter(batch.values()))) if batch else 0


def _join(a: Batch | Examples, b: Batch | Examples) -> Batch | Examples:
    """One batch of ``a``'s examples then ``b``'s."""
    joined: Batch | Examples
    if isinstance(a, Examples):
        joined = Examples([*a, *b])
    else:
        joined = Batch({name: torch.cat([col, b[name]]) if isinstance(col, torch.Tensor) else [*col, *b[name]] for name, col in a.items()})
    joined.ragged = a.ragged
    return joined


def _gather_range(block: _Block, local: np.ndarray, a: int, b: int) -> Batch | Examples:
    return block.gather(local[a:b])


def _slice(batch: Batch | Examples, a: int, b: int) -> Batch | Examples:
    """Examples ``a`` to ``b`` of a gathered batch."""
    if isinstance(batch, Examples):
        part: Batch | Examples = Examples(batch[a:b])
    else:
        part = Batch({name: col[a:b] for name, col in batch.items()})
    part.ragged = batch.ragged
    return part


def _share(n: int, parts: int, k: int) -> tuple[int, int]:
    """The ``k``-th of ``parts`` contiguous near-equal parts of ``range(n)``."""
    return k * n // parts, (k + 1) * n // parts


def _keep(item: Any) -> Any:
    return item


class StreamingDataset(torch.utils.data.IterableDataset):
    """A prepared split streamed from its shards: see the module docstring.

    ``location``: the store folder or its fsspec URL (``…/<name>/<config_id>``); ``manifest``: its
    manifest; ``features``: the store's features. ``rank`` / ``world_size``: default from
    torch.distributed when it is initialized (else 0 / 1). ``cache_dir``: the shard cache folder
    for a remote location (default ``<cache>/streaming/<name>/<config_id>``), ``cache_limit_bytes``
    its limit (default ``DSREG_STREAM_CACHE_BYTES``, else 4 GiB). ``buffer_size``: examples per
    shuffle block (default 16,384, or fewer so that a block of fixed-size examples takes at most
    256 MiB: a remote block is held in memory whole).
    """

    def __init__(
        self,
        builder: Builder,
        location: str | os.PathLike[str],
        manifest: Mapping[str, Any],
        split: str,
        features: Mapping[str, Feature],
        *,
        shuffle: bool = False,
        seed: int = 0,
        buffer_size: int | None = None,
        balance: str = "exact",
        rank: int | None = None,
        world_size: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_limit_bytes: int | str | None = None,
        info: Any = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._args: dict[str, Any] = {
            "shuffle": shuffle,
            "seed": seed,
            "buffer_size": buffer_size,
            "balance": balance,
            "rank": rank,
            "world_size": world_size,
            "cache_dir": cache_dir,
            "cache_limit_bytes": cache_limit_bytes,
            "info": info,
            "transform": transform,
        }
        if balance not in BALANCES:
            raise ConfigError(f"balance={balance!r}: give one of {', '.join(BALANCES)}")
        if buffer_size is None:
            row = sum(feat.nbytes or 0 for feat in features.values())
            buffer_size = max(1, min(DEFAULT_BUFFER, DEFAULT_BUFFER_BYTES // max(row, 1)))
        if buffer_size < 1:
            raise ConfigError(f"buffer_size={buffer_size}: give a whole number >= 1")
        self.builder = builder
        self.location = os.fspath(location).rstrip("/") or "/"
        self.remote = is_remote(self.location)
        self.manifest = dict(manifest)
        self.split = split
        self.features: dict[str, Feature] = dict(features)
        self.info = info
        self.transform = transform
        self.shuffled, self.seed, self.buffer_size, self.balance = bool(shuffle), int(seed), int(buffer_size), balance
        self.shards = split_shards(manifest, split)
        self.rows = np.array([int(s["rows"]) for s in self.shards], dtype=np.int64)
        self.total = int(self.rows.sum())
        self._rows_of = {str(s["file"]): int(s["rows"]) for s in self.shards}
        self._open: dict[str, _Part] = {}
        self._explicit_world = rank is not None or world_size is not None
        self.rank, self.world_size = (int(rank or 0), int(world_size or 1)) if self._explicit_world else _dist_world()
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank {self.rank} is outside a world of {self.world_size}")
        self._plain = transform is None and not builder.decodes_on_access()
        self._ragged = tuple(name for name, feat in self.features.items() if feat.ragged)
        row_bytes = [feat.nbytes for feat in self.features.values()]
        #: A local block gathered at once (faster than batch by batch) while it takes at most 64 MiB of memory.
        self._small_block = self._plain and None not in row_bytes and sum(b or 0 for b in row_bytes) * buffer_size <= _BLOCK_RAM
        self.epoch = 0
        #: What this rank consumed this epoch: {"workers", "consumed": per worker, "done"}.
        self._progress: dict[str, Any] | None = None
        #: A state from ``load_state_dict``, taken up by the next iteration.
        self._resume: dict[str, Any] | None = None
        #: What each worker skips in the iteration ``loader()`` is running.
        self._loader_skips: list[int] = []
        self._cache: ShardCache | None = None
        self._cache_dir = cache_dir
        self._cache_limit = cache_limit(cache_limit_bytes)
        if self.remote:
            self._shard_cache()  # the limit is checked now, not in a worker

    # -- where things are ---------------------------------------------------------------------------
    def _shard_cache(self) -> ShardCache:
        if self._cache is None:
            if self._cache_dir is not None:
                folder = Path(self._cache_dir)
            else:
                from ..fetching.cache import Cache

                folder = (
                    Cache().root
                    / "streaming"
                    / str(self.manifest.get("dataset", self.builder.name))
                    / str(self.manifest.get("config_id", "default"))
                )
            self._cache = ShardCache(self.location, folder, self._cache_limit, self.shards)
        return self._cache

    @property
    def cache_folder(self) -> Path | None:
        """The local shard cache folder (None for a local store, read in place)."""
        return self._shard_cache().folder if self.remote else None

    def _check_blocks(self) -> None:
        """Refuse, before reading, a remote ``buffer_size`` whose blocks may need more shards than the cache holds."""
        if not self.remote or not self.shards:
            return
        limit = self._shard_cache().limit
        # A block of B rows covers at most two shards in part and, between them, whole shards of fewer
        # than B - 1 rows in all: at most 2 + m shards, m the most of the smallest that sum under that.
        smallest = np.cumsum(np.sort(self.rows))
        biggest = np.cumsum(np.sort(np.array([int(s["bytes"]) for s in self.shards]))[::-1])
        span = min(len(self.shards), 2 + int(np.searchsorted(smallest, self.buffer_size - 2, side="right")))
        need = int(biggest[span - 1])
        if need > limit:
            held = int(np.searchsorted(biggest, limit, side="right"))  # shards the limit holds, whatever their size
            fits = max(1, int(smallest[held - 2]) + 1 if held >= 2 else 1)
            raise ConfigError(
                f"buffer_size={self.buffer_size:,} examples can span {span} shards ({need:,} bytes), more than the streaming shard "
                f"cache may hold ({limit:,} bytes, DSREG_STREAM_CACHE_BYTES); raise it, or read with buffer_size={fits:,} or less "
                "(ds.shuffle(seed, buffer_size=…))"
            )

    def _refresh_world(self) -> None:
        if not self._explicit_world and torch.utils.data.get_worker_info() is None:
            self.rank, self.world_size = _dist_world()

    # -- the plan of an epoch ---------------------------------------------------------------------
    def _shard_order(self, epoch: int) -> np.ndarray:
        if not self.shuffled:
            return np.arange(len(self.shards), dtype=np.int64)
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))

    def _rank_span(self) -> tuple[int, int]:
        """This rank's rows as ``[start, stop)`` of the epoch sequence (past N wraps round: ``balance="pad"``)."""
        n, w = self.total, self.world_size
        if self.balance == "exact" or w == 1:
            return _share(n, w, self.rank)
        per = -(-n // w) if self.balance == "pad" else n // w
        return self.rank * per, (self.rank + 1) * per

    def __len__(self) -> int:
        """Examples this rank reads per epoch."""
        start, stop = self._rank_span()
        return stop - start

    def _worker_span(self, worker: int, workers: int) -> tuple[int, int]:
        start, stop = self._rank_span()
        a, b = _share(stop - start, workers, worker)
        return start + a, start + b

    def num_batches(self, batch_size: int, num_workers: int = 0) -> int:
        """Batches ``loader(batch_size=…, num_workers=…)`` gives this rank per epoch (each worker ends with a short one)."""
        workers = max(num_workers, 1)
        sizes = [b - a for a, b in (self._worker_span(w, workers) for w in range(workers))]
        return sum(-(-s // batch_size) for s in sizes)

    def _order(self, epoch: int, worker: int, workers: int) -> Iterator[np.ndarray]:
        """This worker's blocks, each an array of epoch-sequence positions in reading order."""
        start, stop = self._worker_span(worker, workers)
        size = self.buffer_size
        for k, lo in enumerate(range(start, stop, size)):
            block = np.arange(lo, min(lo + size, stop), dtype=np.int64)
            if self.shuffled:
                rng = np.random.default_rng([self.seed, epoch, self.rank, worker, k])
                block = block[rng.permutation(len(block))]
            yield block

    def _ranges(self, epoch: int, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """``(shard index, start, stop)`` row ranges that hold epoch positions ``[lo, hi)`` (wrapping past N)."""
        order = self._shard_order(epoch)
        ends = np.cumsum(self.rows[order])
        out: list[tuple[int, int, int]] = []
        n = self.total
        pos = lo
        while pos < hi:
            p = pos % n
            j = int(np.searchsorted(ends, p, side="right"))
            first = int(ends[j - 1]) if j else 0
            take = min(int(ends[j]) - p, hi - pos)
            out.append((int(order[j]), p - first, p - first + take))
            pos += take
        return out

    # -- state ------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` next (its shard order and shuffle); a restored mid-epoch state is kept for its own epoch."""
        if epoch != self.epoch:
            self._progress = self._resume = None
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Where this rank is in the epoch: plain values (a checkpoint can hold them)."""
        progress = self._progress or self._resume or {"workers": 1, "consumed": [0]}
        return {
            "epoch": self.epoch,
            "seed": self.seed,
            "shuffle": self.shuffled,
            "buffer_size": self.buffer_size,
            "balance": self.balance,
            "rank": self.rank,
            "world_size": self.world_size,
            "examples": self.total,
            "workers": int(progress["workers"]),
            "consumed": [int(c) for c in progress["consumed"]],
            "done": bool(progress.get("done", False)),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from ``state_dict``): the next iteration yields the rest of its epoch."""
        mine = self.state_dict()
        for key in ("seed", "shuffle", "buffer_size", "balance", "world_size", "examples"):
            if state.get(key) != mine[key]:
                raise ConfigError(
                    f"the streaming state was saved with {key}={state.get(key)!r}, this dataset has {key}={mine[key]!r}; "
                    "resume with the same settings (or start the epoch afresh)"
                )
        self.epoch = int(state["epoch"])
        self._progress = None
        self._resume = {
            "workers": int(state["workers"]),
            "consumed": [int(c) for c in state["consumed"]],
            "done": bool(state.get("done", False)),
        }

    def _skip(self, worker: int, workers: int) -> int:
        progress = self._resume
        if progress is None or progress.get("done") or not any(progress["consumed"]):
            return 0
        if progress["workers"] != workers:
            raise ConfigError(
                f"the streaming state was saved reading with {progress['workers']} DataLoader worker(s) (0 counts as 1), "
                f"now {workers}; resume with num_workers={progress['workers'] if progress['workers'] > 1 else 0}"
            )
        return int(progress["consumed"][worker])

    # -- reading ----------------------------------------------------------------------------------
    def _open_block(self, epoch: int, positions: np.ndarray) -> tuple[_Block, np.ndarray, list[str]]:
        """Open the shards under ``positions`` (one block); return it, the positions made block-local, and the pins."""
        lo, hi = int(positions.min()), int(positions.max()) + 1
        ranges = self._ranges(epoch, lo, hi)
        files = [str(self.shards[j]["file"]) for j, _, _ in ranges]
        if self.remote:
            paths = self._shard_cache().acquire(files)
            where = dict(zip(dict.fromkeys(files), paths))
            pins = list(where)
        else:
            where = {f: Path(self.location) / f for f in files}
            pins = []
        opened = {f: self._shard(f, path) for f, path in where.items()}
        block = _Block([(opened[f], a, b) for f, (_, a, b) in zip(files, ranges)], self)
        return block, positions - lo, pins

    def _shard(self, file: str, path: Path) -> _Part:
        """Shard ``file`` memory-mapped whole: kept open for a local store, opened each time from the cache."""
        if self.remote:
            return _Part(path, 0, self._rows_of[file], self.features)
        if file not in self._open:
            self._open[file] = _Part(path, 0, self._rows_of[file], self.features)
        return self._open[file]

    def _prefetch(self, epoch: int, positions: np.ndarray) -> None:
        """Download the next block's shards ahead, as far as the cache has room for them now."""
        cache = self._shard_cache()
        for file in dict.fromkeys(
            str(self.shards[j]["file"]) for j, _, _ in self._ranges(epoch, int(positions.min()), int(positions.max()) + 1)
        ):
            if not cache.prefetch(file):
                return

    def _chunks(self, epoch: int, worker: int, workers: int, size: int, skip: int = 0) -> Iterator[Batch | Examples]:
        """Gathered batches of ``size`` examples (the last may be short) of this worker's part, after skipping ``skip``.

        A local block is gathered batch by batch from the memory-mapped shards. A remote block is
        read into memory at once (``buffer_size`` examples) and its shards unpinned before the
        first batch is handed out: a reader paused by its DataLoader holds no shard, so readers
        never wait on each other for cache room.
        """
        blocks = [b for b in self._order(epoch, worker, workers) if len(b)]
        pool = ThreadPoolExecutor(1, thread_name_prefix="dsreg-prefetch") if self.remote else None
        ahead: Future[None] | None = None
        carry: Batch | Examples | None = None  # the start of a batch that the next block completes
        try:
            for k, positions in enumerate(blocks):
                if skip >= len(positions):
                    skip -= len(positions)
                    continue
                positions, skip = positions[skip:], 0
                if ahead is not None:
                    ahead.result()
                    ahead = None
                pins: list[str] = []
                try:
                    block, local, pins = self._open_block(epoch, positions)
                    if pool is not None and k + 1 < len(blocks):
                        ahead = pool.submit(self._prefetch, epoch, blocks[k + 1])
                    if self.remote or self._small_block:  # one gather per block, then batches are slices of it
                        rows = block.gather_all(local)
                        del block
                        for file in pins:
                            self._shard_cache().release(file)
                        pins = []
                        take: Callable[[int, int], Batch | Examples] = functools.partial(_slice, rows)
                    else:
                        take = functools.partial(_gather_range, block, local)
                    at, n = 0, len(local)
                    if carry is not None:
                        at = min(size - _count(carry), n)
                        carry = _join(carry, take(0, at))
                        if _count(carry) == size:
                            yield carry
                            carry = None
                    while at < n:
                        piece = take(at, at + size)
                        at += size
                        if _count(piece) == size:
                            yield piece
                        else:
                            carry = piece
                finally:
                    for file in pins:
                        self._shard_cache().release(file)
            if carry is not None:
                yield carry
        finally:
            if ahead is not None:
                with contextlib.suppress(Exception):
                    ahead.result()
            if pool is not None:
                pool.shutdown()

    def _worker(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def __iter__(self) -> Iterator[Any]:
        """Yield this rank's (and worker's) examples of the current epoch, one dict each.

        Settings that cannot work (a remote block larger than the shard cache, a state saved with
        other workers) are refused here, before anything is read.
        """
        self._refresh_world()
        worker, workers = self._worker()
        main = torch.utils.data.get_worker_info() is None
        if main:
            self._check_blocks()
        skip = self._skip(worker, workers)
        if main:
            self._progress, self._resume = {"workers": 1, "consumed": [skip]}, None
        return self._examples(self.epoch, worker, workers, skip, main)

    def _examples(self, epoch: int, worker: int, workers: int, skip: int, main: bool) -> Iterator[Any]:
        for chunk in self._chunks(epoch, worker, workers, 256, skip):
            for row in _rows(chunk):
                if main and self._progress is not None:
                    self._progress["consumed"][0] += 1
                yield row
        if main and self._progress is not None:
            self._progress["done"] = True  # the next iteration reads a whole epoch again

    def _batches(self, batch_size: int) -> Iterator[tuple[int, int, Any]]:
        """``(worker, examples, collated batch)`` for ``loader``; runs in the worker."""
        worker, workers = self._worker()
        collate = self.collate_fn
        skips = self._loader_skips
        for chunk in self._chunks(self.epoch, worker, workers, batch_size, skips[worker] if worker < len(skips) else 0):
            yield worker, _count(chunk), collate(chunk)

    # -- conveniences -----------------------------------------------------------------------------
    def head(self, n: int = 8) -> Batch | Examples:
        """The first ``n`` examples of the current epoch's shard order, gathered for ``collate_fn`` (counts as no reading)."""
        positions = np.arange(min(n, self.total), dtype=np.int64)
        if not len(positions):
            raise ConfigError(f"{self.manifest.get('dataset')}:{self.split} is empty")
        block, local, pins = self._open_block(self.epoch, positions)
        try:
            return block.gather(local)
        finally:
            del block
            for file in pins:
                self._shard_cache().release(file)

    def replace(self, **changes: Any) -> StreamingDataset:
        """Return a new dataset over the same shards with some constructor options changed (``balance="pad"``, ...)."""
        args = {**self._args, **changes}
        return StreamingDataset(self.builder, self.location, self.manifest, self.split, self.features, **args)

    def shuffle(self, seed: int = 0, buffer_size: int | None = None) -> StreamingDataset:
        """Return the same dataset read shuffled: shard order and blocks of ``buffer_size`` examples, seeded by ``seed`` and the epoch."""
        return self.replace(shuffle=True, seed=seed, buffer_size=buffer_size or self.buffer_size)

    def with_transform(self, transform: Callable[[dict[str, Any]], Any] | None) -> StreamingDataset:
        """Return a copy that applies ``transform`` to each example."""
        return self.replace(transform=transform)

    @property
    def collate_fn(self) -> Callable[[Any], Any]:
        """The builder's collate function (called with a ``Batch`` of gathered columns or ``Examples``)."""
        return self.builder.get_collate_fn()

    @property
    def classes(self) -> list[str]:
        """Class names of the first class-label column (empty if there is none)."""
        return class_names(self.features)

    def loader(self, batch_size: int = 1, **kwargs: Any) -> StreamingLoader:
        """Return a DataLoader of collated batches (the dataset's collate_fn), each worker batching its own part.

        Any DataLoader option works except ``shuffle``/``sampler`` (the dataset shuffles: give
        ``shuffle=True`` when it is made) and ``persistent_workers`` (workers start afresh each
        epoch so they read the epoch and state set in this process). The loader counts what it
        delivers per worker, which is what ``state_dict()`` records.
        """
        for bad in ("sampler", "batch_sampler", "shuffle"):
            if kwargs.get(bad):
                raise ConfigError(
                    f"loader({bad}=…): a streaming dataset orders itself; pass shuffle=True to dsreg.load(..., streaming=True)"
                )
            kwargs.pop(bad, None)
        if batch_size is None or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: a streaming loader batches; give a whole number >= 1")
        kwargs.pop("persistent_workers", None)
        kwargs.pop("collate_fn", None)
        kwargs.pop("drop_last", None)
        self._refresh_world()
        self._check_blocks()
        return StreamingLoader(_BatchStream(self, int(batch_size)), batch_size=None, collate_fn=_keep, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None  # each worker opens the cache folder again (its lock is per process)
        state["_open"] = {}  # and its own memory maps
        return state

    def __repr__(self) -> str:
        where = self.location
        return f"<dsreg.StreamingDataset {self.manifest.get('dataset')}:{self.split} ({len(self):,} of {self.total:,} examples, {len(self.shards)} shards at {where})>"


def _dist_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _BatchStream(torch.utils.data.IterableDataset):
    """What ``StreamingLoader`` iterates: each worker's collated batches, tagged with the worker."""

    def __init__(self, ds: StreamingDataset, batch_size: int) -> None:
        self.ds, self.batch_size = ds, batch_size

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        return self.ds._batches(self.batch_size)


class StreamingLoader(torch.utils.data.DataLoader):
    """The DataLoader ``StreamingDataset.loader()`` returns: collated batches, counted per worker for ``state_dict``."""

    def __len__(self) -> int:
        stream = self.dataset
        assert isinstance(stream, _BatchStream)
        return stream.ds.num_batches(stream.batch_size, self.num_workers)

    def __iter__(self) -> Any:
        stream = self.dataset
        assert isinstance(stream, _BatchStream)
        ds = stream.ds
        workers = max(self.num_workers, 1)
        ds._loader_skips = [ds._skip(w, workers) for w in range(workers)]  # the workers read it
        ds._progress, ds._resume = {"workers": workers, "consumed": list(ds._loader_skips)}, None
        counts = ds._progress["consumed"]
        for worker, n, batch in super().__iter__():
            counts[worker] += n
            yield batch
        ds._progress["done"] = True  # the next iteration reads a whole epoch again
