"""Where a split's decode runs: this process, the local process pool, or any ``concurrent.futures`` executor.

A split whose builder names a ``decode`` (and reviews nothing across the split) is planned by the
client as shards of a fixed number of records, decided before anything runs elsewhere: the first
chunk of records is decoded here, its examples' size (as the shard writer counts it) gives the
bytes per example, and a shard holds the records that make ``DSREG_SHARD_BYTES``, rounded up to the
rows that keep its fixed-width columns page-aligned (``storage.ALIGN``). A shard holds fewer rows
only where its records decoded to ``Skip``. Nothing depends on timing or arrival order, so the
shards are byte-identical whichever executor ran them (``tests/test_executor.py``).

How each executor runs the plan (``Runner``):

* ``"local"`` (the default; ``DSREG_EXECUTOR`` unset): with more than one worker
  (``prepare_workers()``), a process pool decodes chunks of 256 records while the generator streams
  in this process, which writes each shard as its planned records come back: the fastest on one
  machine (fine-grained, so a split of one shard still uses every core).
* one worker: everything in this process.
* any other executor (``dask://HOST:PORT`` runs ``distributed.Client(address).get_executor()``, or a
  ``concurrent.futures.Executor`` passed in Python): one task per shard (``write_shard``) decodes
  its records and writes the shard file, to the store's own folder (the workers share this disk: a
  one-machine cluster) or under a shared fsspec URL (``DSREG_EXECUTOR_SCRATCH``, ``--scratch``,
  e.g. ``s3://bucket/scratch``), and returns its rows, bytes, sha256 and skipped records. The client
  assembles the results in shard order, copies each shard into the store checking its sha256, and
  writes the manifest as for a local prepare. Only records go out and only summaries come back.

A task that fails for bad data raises the same one-line ``PluginError`` as a local decode; a worker
that dies mid-task is the engine's to retry (Dask reruns the task on another worker, up to its
``distributed.scheduler.allowed-failures``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CacheError, ConfigError, DsregError, PluginError

__all__ = ["Runner", "ShardTask", "runner", "write_shard", "executor_setting", "check_executor", "scratch_setting", "decode_error"]

#: Records decoded per chunk by the local pool (and in the client, to plan the shards).
CHUNK = 256
#: Shards a client copies in from the scratch location at once (threads).
COPIERS = 4


def executor_setting(executor: Any = None) -> Any:
    """The executor to prepare with: ``executor`` if given, else ``DSREG_EXECUTOR``, else None (the local pool)."""
    if executor is not None:
        return executor
    return os.environ.get("DSREG_EXECUTOR", "").strip() or None


def check_executor(spec: Any) -> Any:
    """Return ``spec`` if it names an executor dsreg can open (None, 'local', dask://, tcp://, tls://, an Executor); else raise ConfigError."""
    import concurrent.futures as cf

    if spec is None or spec == "local" or isinstance(spec, cf.Executor):
        return spec
    if isinstance(spec, str) and spec.startswith(("dask://", "tcp://", "tls://")) and len(spec.split("://", 1)[1]) > 0:
        return spec
    raise ConfigError(
        f"executor {spec!r} is not one dsreg knows: use 'local' (the default), dask://HOST:PORT for a Dask "
        "scheduler, or pass a concurrent.futures.Executor in Python (executor=)"
    )


def scratch_setting(scratch: str | None = None) -> str | None:
    """Where a cluster's tasks write shards: ``scratch``, else ``DSREG_EXECUTOR_SCRATCH``, else None (the store's folder)."""
    if scratch:
        return scratch
    return os.environ.get("DSREG_EXECUTOR_SCRATCH", "").strip() or None


def decode_error(dataset: str, split: str, key: str, exc: BaseException) -> PluginError:
    """The one-line error for a record whose decode failed (the same wherever it ran)."""
    return PluginError(
        f"{dataset}: decoding example {key!r} of split {split!r} failed ({type(exc).__name__}: {exc}); "
        "the plugin's decode should raise dsreg.Skip for a record it cannot use"
    )


def decode_chunk(decode: Callable[[Any], Any], chunk: list[tuple[str, Any]], dataset: str = "", split: str = "") -> list[tuple[str, Any]]:
    """Decode ``[(key, record or Skip), ...]`` into ``[(key, example or Skip), ...]`` (a Skip raised stays one)."""
    from ..builder import Skip

    out: list[tuple[str, Any]] = []
    for key, record in chunk:
        if isinstance(record, Skip):  # generate already knew this one is unusable
            out.append((key, record))
            continue
        try:
            out.append((key, decode(record)))
        except Skip as skip:
            out.append((key, skip))
        except DsregError:
            raise
        except Exception as exc:
            raise decode_error(dataset, split, str(key), exc) from exc
    return out


@dataclass
class ShardTask:
    """One shard to decode and write: what ``write_shard`` needs, all of it picklable."""

    dataset: str
    split: str
    index: int
    decode: Callable[[Any], Any]
    features: Mapping[str, Any]
    records: list[tuple[str, Any]]
    dest: str  # a local path, or an fsspec URL the client can read


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> Path:
    return Path(path[len("file://") :] if path.startswith("file://") else path)


def write_shard(task: ShardTask) -> dict[str, Any]:
    """Decode ``task.records`` and write them as one shard at ``task.dest``; return ``{rows, bytes, sha256, skipped, seconds}``.

    Runs on a worker. A local ``dest`` is written in place; a URL is written to a local temporary
    folder first, then uploaded (fsspec) and the local copy removed.
    """
    from .storage import SplitWriter, write_examples

    started = time.perf_counter()
    records, task.records = task.records, []
    tmp = tempfile.mkdtemp(prefix="dsreg-shard-") if _is_url(task.dest) else None
    path = Path(tmp) / Path(task.dest).name if tmp else _local(task.dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = SplitWriter(path, task.features)
    try:
        # One record at a time, decoded then written: a shard's decoded examples are never all held at once.
        pairs = (pair for one in records for pair in decode_chunk(task.decode, [one], task.dataset, task.split))
        skipped = write_examples(writer, pairs, task.dataset, task.split)
        rows = writer.close()
        if tmp:
            import fsspec

            with open(path, "rb") as src, fsspec.open(task.dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except BaseException:
        writer.discard()
        if not tmp:
            path.unlink(missing_ok=True)
        raise
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "rows": rows,
        "bytes": writer.size,
        "sha256": writer.sha256,
        "skipped": skipped,
        "seconds": round(time.perf_counter() - started, 3),
    }


def fetch_shard(source: str, target: Path, size: int, sha256: str, what: str) -> None:
    """Move or copy the shard a task wrote at ``source`` to ``target``, checking its size and sha256; remove ``source``."""
    digest = hashlib.sha256()
    if _is_url(source):
        from ..fetching.objectstore import url_to_fs

        fs, path = url_to_fs(source)
        with fs.open(path, "rb") as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
        fs.rm(path)
    else:
        local = _local(source)
        if local.parent == target.parent:
            os.replace(local, target)  # the store's own folder: a rename (a no-op when the task wrote there)
        else:
            shutil.move(str(local), str(target))
        with open(target, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    got = target.stat().st_size
    if got != size or digest.hexdigest() != sha256:
        raise CacheError(
            f"{what}: the shard a worker wrote at {source} arrived with {got} bytes and sha256 {digest.hexdigest()}, "
            f"not the {size} bytes and {sha256} it reported; check the scratch location (DSREG_EXECUTOR_SCRATCH) "
            "is one storage all workers and this machine see, then fetch again"
        )


@dataclass
class Runner:
    """An executor opened for one prepare: see the module's docstring for what each kind does."""

    label: str
    workers: int
    executor: Any = None  # a concurrent.futures.Executor, or None (decode in this process)
    local: bool = True  # the local pool (chunks decoded there, shards written here); False: one task per shard
    scratch: str | None = None
    _make: Callable[[], Any] | None = field(default=None, repr=False)
    _close: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def pool(self) -> Any:
        """The executor, started on first use (the local pool's processes start only when something is decoded)."""
        if self.executor is None and self._make is not None:
            self.executor = self._make()
            self._close.append(lambda: self.executor.shutdown(wait=True, cancel_futures=True))
        return self.executor

    @property
    def inline(self) -> bool:
        return self.local and self.workers <= 1

    @property
    def width(self) -> int:
        """Tasks kept in flight: two per worker (the client holds their records meanwhile)."""
        return max(2, 2 * self.workers)

    def close(self) -> None:
        for close in reversed(self._close):
            try:
                close()
            except Exception:  # closing must not hide the error that ended the prepare
                pass
        self._close.clear()


def _dask(address: str) -> Runner:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(f"executor {address} needs Dask's distributed, which is not installed: pip install 'dsreg[dask]'") from exc
    target = "tcp://" + address[len("dask://") :] if address.startswith("dask://") else address
    try:
        client = distributed.Client(target, timeout=30, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {target} ({exc}); start one (`dask scheduler`, then `dask worker {target}` "
            "on each machine) or fix the address in --executor / DSREG_EXECUTOR"
        ) from exc
    # The cluster's threads, not ``workers`` (the local pool's size), set how many tasks are kept in flight.
    threads = sum(client.nthreads().values()) or 1
    run = Runner(label=address, workers=threads, executor=client.get_executor(pure=False), local=False)
    run._close.append(client.close)
    # A task carries a shard's records (tens of MB) by design: not the mistake Dask's warning is about.
    import dask

    quiet = dask.config.set({"distributed.admin.large-graph-warning-threshold": "4GiB"})
    run._close.append(lambda: quiet.__exit__(None, None, None))
    return run


@contextmanager
def runner(executor: Any = None, workers: int | None = None, scratch: str | None = None) -> Iterator[Runner]:
    """Open the executor a prepare runs its decode on (see ``executor_setting``); close what was opened here at the end.

    ``executor``: None (``DSREG_EXECUTOR``, else the local pool of ``workers`` processes, default
    ``prepare_workers()``), ``"local"``, ``"dask://HOST:PORT"`` (or ``tcp://``/``tls://`` scheduler
    address), or a ``concurrent.futures.Executor`` (used as is, never shut down here).
    """
    import concurrent.futures as cf

    spec = check_executor(executor_setting(executor))
    if isinstance(spec, cf.Executor):
        run = Runner(label=type(spec).__name__, workers=workers or getattr(spec, "_max_workers", None) or 2, executor=spec, local=False)
    elif spec is None or spec == "local":
        from .storage import prepare_workers

        count = prepare_workers() if workers is None else max(1, workers)
        run = Runner(label="local", workers=count, _make=lambda: _local_pool(count))
    else:
        run = _dask(spec)
    if not run.local:
        run.scratch = scratch_setting(scratch)
    try:
        yield run
    finally:
        run.close()


def _local_pool(workers: int) -> Any:
    import concurrent.futures as cf
    import multiprocessing

    from .storage import _die_with_parent

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    # The pool's processes are forked by the thread running the prepare; PR_SET_PDEATHSIG
    # follows that thread, which outlives the pool (the runner shuts it down first).
    return cf.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context(method), initializer=_die_with_parent, initargs=(os.getpid(),)
    )
