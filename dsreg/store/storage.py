"""The prepared store: each split written once as Arrow shards, memory-mapped on load.

A split is a sequence of shards ``<split>-00000.arrow``, ``<split>-00001.arrow``, …: Arrow IPC stream
files holding one record batch each, with the schema of the dataset's features as Hugging Face
``datasets`` writes it (so ``datasets.Dataset.from_file`` reads any shard). Concatenated in order,
the shards are the split in example order. A shard closes at the first example boundary at or past
the target size (``DSREG_SHARD_BYTES``, default 64 MiB, read by ``shard_bytes()``), so every shard
but the last holds about that many bytes of data. Fixed-shape tensor columns are streamed to a raw
side file while examples arrive and only wrapped as Arrow when the shard closes, so each such column
is one contiguous buffer per shard: a batch is one gather per shard it touches, and preparing holds
at most one shard's small columns in RAM. The sha256 of each shard is computed as it is written.
So that a reader can map one column of every shard back to back as one array (``dsreg.Dataset``
does), the first fixed-width column of a shard starts at a multiple of ``ALIGN`` bytes in the file
(padded by a ``dsreg.pad`` schema metadata entry) and, when that is a small step next to the
target, shards hold a multiple of the rows that make every fixed-width column a whole number of
``ALIGN`` blocks.

A prepared store is one folder per configuration holding the shards of every split and
``manifest.json`` (format 3), whose ``splits[S]`` records ``examples``, ``bytes``, ``skipped``,
``files`` (the fetched files S was generated from, with their sha256), ``seconds`` and ``shards``:
``[{"file", "rows", "bytes", "sha256"}, ...]`` (``split_shards()`` returns them). A split that was
pulled from a remote store instead of prepared here also carries ``"pulled": URL``.

Splits are prepared on their own or together (``Builder.plan()`` says what each needs): a split's
shards are written under temporary names, renamed into place once all are written, then the split
is recorded in the manifest, which is replaced atomically. A split is served (``ready_splits()``)
while each of its shards has the size the manifest records and, unless it was pulled, the files it
was generated from are the ones in the cache now; anything else is prepared again.
``verify_split()`` checks the shards' sha256 too (pulls and ``dsreg doctor`` use it).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..builder import Builder, Skip, Split
from ..errors import CacheError, DsregError, PluginError
from ..features import Feature
from ..fetching.cache import read_json, write_json_atomic

if TYPE_CHECKING:
    from .executor import Runner

__all__ = [
    "prepare",
    "read_manifest",
    "ready_splits",
    "split_shards",
    "shard_ranges",
    "shard_name",
    "shard_bytes",
    "verify_split",
    "open_split",
    "map_split",
    "SplitWriter",
    "ShardedWriter",
    "StoredSplit",
    "reviews",
]

MANIFEST = "manifest.json"
#: 3: each split is Arrow shards listed with rows, bytes and sha256; 2 was one file per split with
#: per-split readiness; 1 was all-or-nothing. Stores of another format are prepared again.
FORMAT = 3
_FLUSH_ROWS = 65536
#: The default target size of a shard (``DSREG_SHARD_BYTES``): 64 MiB.
DEFAULT_SHARD_BYTES = 64 << 20
#: Shards start their fixed-width columns' data at a multiple of this many bytes in the file and,
#: when the quantum of rows this needs is small next to the target, hold a multiple of it: so a
#: reader can map a column of every shard back to back as one array (16 KiB: any 4 or 16 KiB page).
ALIGN = 16 << 10
#: The schema metadata key whose value pads the schema so the columns start aligned.
_PAD_KEY = b"dsreg.pad"


def shard_bytes() -> int:
    """The target size of a shard in bytes: ``DSREG_SHARD_BYTES`` (e.g. ``8MiB``), else 64 MiB."""
    from ..fetching.config import parse_size

    value = os.environ.get("DSREG_SHARD_BYTES", "").strip()
    return parse_size(value, "DSREG_SHARD_BYTES") if value else DEFAULT_SHARD_BYTES


def shard_name(split: str, index: int) -> str:
    """The file name of shard ``index`` (from 0) of ``split``: ``train-00000.arrow``."""
    return f"{split}-{index:05d}.arrow"


def split_shards(manifest: Mapping[str, Any], split: str) -> list[dict[str, Any]]:
    """Return the shard entries (``{"file", "rows", "bytes", "sha256"}``, in example order) of ``split`` in ``manifest``."""
    return list(manifest["splits"][split].get("shards", []))


def _np_dtype(dtype: str) -> Any:
    import numpy as np

    return np.dtype("bool" if dtype == "bool" else dtype)


class _RawColumn:
    """A tensor column streamed to a side file; variable-length ones also keep row offsets."""

    def __init__(self, path: Path, feature: Feature) -> None:
        import numpy as np

        self.path = path
        self.feature = feature
        self.dtype = _np_dtype(feature.dtype)
        self.fh = open(path, "wb")
        self.lengths: list[int] | None = None if feature.fixed else []
        self.nbytes = 0
        self._np = np

    def append(self, column: str, value: Any) -> None:
        arr = self.feature.encode(column, value)  # the declared dtype and shape, or a ValueError naming the column
        if self.lengths is not None:
            self.lengths.append(arr.shape[0])
            self.nbytes += 4  # its row offset
        data = self._np.ascontiguousarray(arr).tobytes()
        self.nbytes += len(data)
        self.fh.write(data)

    def finish(self, rows: int, arrow_type: Any) -> Any:
        import pyarrow as pa

        self.fh.close()
        np = self._np
        size = self.path.stat().st_size
        data = np.memmap(self.path, dtype=self.dtype, mode="r") if size else np.zeros(0, self.dtype)
        values = pa.Array.from_buffers(pa.from_numpy_dtype(self.dtype), len(data), [None, pa.py_buffer(data)])
        # Wrap innermost dimension first, following the Arrow type HF derives from the feature.
        types = []
        t = arrow_type
        while pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
            types.append(t)
            t = t.value_type
        for t in reversed(types):
            if pa.types.is_fixed_size_list(t):
                values = pa.FixedSizeListArray.from_arrays(values, t.list_size)
            else:
                offsets = np.zeros(rows + 1, dtype=np.int64)
                np.cumsum(self.lengths, out=offsets[1:])
                if offsets[-1] > np.iinfo(np.int32).max:
                    raise ValueError(f"{self.path.name}: more than 2**31 elements in one variable-length column")
                values = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
        return values


def _value_bytes(value: Any) -> int:
    """About how many bytes Arrow stores for one encoded value of a column kept in Python (strings, lists, numbers)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 4
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) + 4
    if isinstance(value, Mapping):
        return sum(_value_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return 4 + sum(_value_bytes(v) for v in value)
    if getattr(value, "ndim", None):  # a numpy array
        return int(value.nbytes) + 4
    return 8  # a number


class _HashingFile:
    """A binary file that hashes what is written to it: the sink pyarrow writes a shard through."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        written = self.fh.write(data)
        self.size += written
        return written

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.fh.close()


class SplitWriter:
    """Write examples to one Arrow file ``path`` (one record batch: a shard); call ``close()`` at the end.

    ``nbytes`` estimates the data written so far (exact for tensor columns); after ``close()``,
    ``size`` and ``sha256`` describe the file.
    """

    def __init__(self, path: Path, features: Mapping[str, Feature]) -> None:
        from datasets import Features

        if not features:
            raise PluginError("a Builder must declare features to be prepared")
        self.path = Path(path)
        self.features = dict(features)
        self.hf = Features({name: feat.to_hf() for name, feat in self.features.items()})
        self.schema = self.hf.arrow_schema
        self.rows = 0
        self.size = 0
        self.sha256 = ""
        self._estimated = 0  # bytes of the columns kept in Python
        self._width: dict[str, int] = {}  # bytes per value of a fixed-width column kept in Python
        self.raw: dict[str, _RawColumn] = {}
        self.buffers: dict[str, list[Any]] = {}
        self.chunks: dict[str, list[Any]] = {}
        for name, feat in self.features.items():
            if feat.numeric and feat.shape:  # an array (fixed or ragged): streamed to a side file
                self.raw[name] = _RawColumn(self.path.with_name(f".{self.path.name}.{name}.raw"), feat)
            else:
                self.buffers[name] = []
                self.chunks[name] = []
                try:
                    self._width[name] = max(1, int(self.schema.field(name).type.bit_width) // 8)
                except ValueError:  # not a fixed-width type: strings, lists
                    pass

    @property
    def nbytes(self) -> int:
        """About how many bytes of data the examples written so far take in the file."""
        return self._estimated + sum(col.nbytes for col in self.raw.values())

    def write(self, example: Mapping[str, Any]) -> None:
        """Append one example (a dict with exactly the feature columns)."""
        if example.keys() != self.features.keys():
            missing = sorted(set(self.features) - set(example))
            extra = sorted(set(example) - set(self.features))
            raise ValueError(f"example columns differ from the features (missing {missing}, unexpected {extra})")
        for name, feat in self.features.items():
            value = example[name]
            if name in self.raw:
                self.raw[name].append(name, value)
            else:
                encoded = feat.encode(name, value)
                self.buffers[name].append(encoded)
                width = self._width.get(name)
                self._estimated += width if width is not None else _value_bytes(encoded)
        self.rows += 1
        if self.rows % _FLUSH_ROWS == 0:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        for name, values in self.buffers.items():
            if values:
                self.chunks[name].append(pa.array(values, type=self.schema.field(name).type))
                self.buffers[name] = []

    def fixed_widths(self) -> dict[str, int]:
        """Bytes per row of each column stored as one fixed-width buffer (no validity bits, not bit-packed)."""
        import math

        widths: dict[str, int] = {}
        for name, feat in self.features.items():
            if name in self.raw and feat.fixed:
                widths[name] = math.prod(feat.shape) * self.raw[name].dtype.itemsize  # type: ignore[arg-type]
            elif name in self._width and str(self.schema.field(name).type) != "bool":
                widths[name] = self._width[name]
        return widths

    def close(self) -> int:
        """Write the record batch (hashing it as it goes), remove the side files and return the number of rows."""
        import pyarrow as pa

        self._flush()
        arrays = []
        for field in self.schema:
            if field.name in self.raw:
                arrays.append(self.raw[field.name].finish(self.rows, field.type))
            else:
                chunks = self.chunks[field.name]
                arrays.append(pa.concat_arrays(chunks) if chunks else pa.array([], type=field.type))
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        schema = _aligned_schema(batch)
        batch = batch.replace_schema_metadata(schema.metadata)
        sink = _HashingFile(self.path)
        try:
            with pa.ipc.new_stream(sink, schema) as writer:
                writer.write_batch(batch)
        finally:
            sink.close()
        self.size, self.sha256 = sink.size, sink.sha256.hexdigest()
        del batch, arrays
        self.discard()
        return self.rows

    def discard(self) -> None:
        """Remove the side files; never raises, so the error that led here is the one reported."""
        for col in self.raw.values():
            try:
                col.fh.close()  # on a full disk the flush in close fails again: the file goes anyway
            except OSError:
                pass
            try:
                col.path.unlink(missing_ok=True)
            except OSError:
                pass


class _Layout:
    """A sink that writes nothing and notes where the first fixed-width column's data would land."""

    closed = False

    def __init__(self, address: int) -> None:
        self.address, self.position, self.found = address, 0, -1

    def write(self, data: Any) -> int:
        import pyarrow as pa

        size = memoryview(data).nbytes
        if self.found < 0 and size and isinstance(data, pa.Buffer) and data.address == self.address:
            self.found = self.position
        self.position += size
        return size

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _data_offset(batch: Any, schema: Any, address: int) -> int:
    """Where in the stream file of ``batch`` written with ``schema`` the buffer at ``address`` starts (-1: not found)."""
    import pyarrow as pa

    sink = _Layout(address)
    with pa.ipc.new_stream(sink, schema) as writer:  # pyarrow hands the buffers over without copying them
        writer.write_batch(batch)
    return sink.found


def _aligned_schema(batch: Any) -> Any:
    """Return ``batch``'s schema padded (a ``dsreg.pad`` metadata entry) so the first fixed-width column's data starts at a multiple of ``ALIGN``."""
    import pyarrow as pa

    schema = batch.schema
    first = None
    for column in batch.columns:
        leaf = column
        while pa.types.is_fixed_size_list(leaf.type):
            leaf = leaf.values
        if len(leaf) and leaf.null_count == 0 and pa.types.is_primitive(leaf.type) and not pa.types.is_boolean(leaf.type):
            first = leaf
            break
    if first is None:
        return schema
    address = first.buffers()[1].address + first.offset * first.type.bit_width // 8
    offset = _data_offset(batch, schema, address)
    if offset < 0 or offset % ALIGN == 0:
        return schema
    base = schema.serialize().size
    needed = -offset % ALIGN
    metadata = dict(schema.metadata or {})
    for length in range(max(0, needed - 64), needed + ALIGN):
        padded = schema.with_metadata({**metadata, _PAD_KEY: b" " * length})
        if padded.serialize().size - base == needed:
            return padded
    return schema  # pragma: no cover - a length always fits within ALIGN + 64


def _shard_pattern(split: str) -> re.Pattern[str]:
    return re.compile(re.escape(split) + r"-\d{5,}\.arrow")


class ShardedWriter:
    """Write one split's examples as shards of about ``target`` bytes into ``folder``.

    Shards are written under temporary names (``.<shard>.tmp-<id>``); ``close()`` ends the last one
    and returns the manifest's shard entries, ``commit()`` renames them all into place and removes
    shards a previous version of the split left beyond the new count; ``discard()`` (never raises)
    removes everything written.
    """

    def __init__(self, folder: Path, split: str, features: Mapping[str, Feature], target: int | None = None) -> None:
        if not features:
            raise PluginError("a Builder must declare features to be prepared")
        self.folder = Path(folder)
        self.split = split
        self.features = dict(features)
        self.target = shard_bytes() if target is None else max(1, int(target))
        self.tag = uuid.uuid4().hex[:8]
        self.rows = 0
        self.done: list[tuple[Path, dict[str, Any]]] = []  # (temporary path, shard entry)
        self.current: SplitWriter | None = None
        self.quantum: int | None = None  # rows a shard holds a multiple of (but the last), set by the first shard
        self.per_shard: int | None = None  # planned shards (``plan``): records per shard, a Skip included
        self._taken = 0  # records taken into the current planned shard

    def _quantum(self, writer: SplitWriter) -> int:
        """Rows that make every fixed-width column a multiple of ``ALIGN`` bytes, if that is a small part of the target; else 1."""
        import math

        widths = writer.fixed_widths()
        if not widths:
            return 1
        rows = math.lcm(*(ALIGN // math.gcd(width, ALIGN) for width in widths.values()))
        per_row = max(1, writer.nbytes // max(1, writer.rows))
        return rows if rows * per_row * 4 <= self.target else 1

    def _temp(self, index: int) -> Path:
        return self.folder / f".{shard_name(self.split, index)}.tmp-{self.tag}"

    def plan(self, sample: Sequence[tuple[str, Any]], dataset: str = "") -> int:
        """Fix the records each shard holds from decoded ``sample`` examples (``(key, example)``); return it.

        The bytes per example (as ``SplitWriter.nbytes`` counts them) of the sample give the records
        that make ``target`` bytes, rounded up to the rows that keep fixed-width columns aligned:
        for fixed-size examples the same shards the byte rule of ``write`` makes. From then on a shard
        closes after that many records, a ``skip()`` counting as one, so the plan depends on the
        records only (see ``executor``).
        """
        probe = SplitWriter(self.folder / f".plan.tmp-{self.tag}", self.features)
        try:
            for key, example in sample:
                try:
                    probe.write(example)
                except (ValueError, TypeError) as exc:
                    raise PluginError(f"{dataset}: example {key!r} of split {self.split!r}: {exc}") from exc
            per_row = max(1, probe.nbytes // probe.rows) if probe.rows else 1024
            quantum = self._quantum(probe) if probe.rows else 1
        finally:
            probe.discard()
        rows = -(-self.target // per_row)
        self.per_shard = max(1, -(-rows // quantum) * quantum)
        return self.per_shard

    def write(self, example: Mapping[str, Any]) -> None:
        """Append one example; the shard closes once it holds ``target`` bytes or more (planned: ``per_shard`` records)."""
        if self.current is None:
            self.current = SplitWriter(self._temp(len(self.done)), self.features)
        self.current.write(example)
        self.rows += 1
        if self.per_shard is not None:
            self._taken += 1
            if self._taken >= self.per_shard:
                self._end_shard()
            return
        if self.current.nbytes >= self.target:
            if self.quantum is None:
                self.quantum = self._quantum(self.current)
            if self.current.rows % self.quantum == 0:
                self._end_shard()

    def skip(self) -> None:
        """Count a record that decoded to Skip: in a planned shard it still takes its place (no-op otherwise)."""
        if self.per_shard is None:
            return
        self._taken += 1
        if self._taken >= self.per_shard:
            if self.current is None:
                self.current = SplitWriter(self._temp(len(self.done)), self.features)
            self._end_shard()

    def adopt(self, path: Path, entry: dict[str, Any]) -> None:
        """Take the next shard as written elsewhere (a task): its temporary ``path`` here and its manifest ``entry``."""
        assert self.current is None and entry["file"] == shard_name(self.split, len(self.done))
        self.done.append((path, entry))
        self.rows += int(entry["rows"])

    def _end_shard(self) -> None:
        self._taken = 0
        writer = self.current
        assert writer is not None
        rows = writer.close()
        self.done.append(
            (writer.path, {"file": shard_name(self.split, len(self.done)), "rows": rows, "bytes": writer.size, "sha256": writer.sha256})
        )
        self.current = None

    def close(self) -> list[dict[str, Any]]:
        """End the last shard (an empty split still gets one, holding the schema) and return the shard entries."""
        if self.current is not None or self._taken or not self.done:
            if self.current is None:
                self.current = SplitWriter(self._temp(len(self.done)), self.features)
            self._end_shard()
        return [entry for _, entry in self.done]

    def commit(self) -> None:
        """Rename every shard into place, then remove the split's other shard files (a longer earlier version's)."""
        for path, entry in self.done:
            os.replace(path, self.folder / entry["file"])
        keep = {entry["file"] for _, entry in self.done}
        pattern = _shard_pattern(self.split)
        for stale in self.folder.glob(f"{glob.escape(self.split)}-*.arrow"):
            if stale.name not in keep and pattern.fullmatch(stale.name):
                stale.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove the shards written (still under temporary names) and the current one's side files; never raises."""
        if self.current is not None:
            self.current.discard()
            paths = [self.current.path, *(path for path, _ in self.done)]
        else:
            paths = [path for path, _ in self.done]
        for path in paths:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass


# -- running a builder ------------------------------------------------------------------------
def _decode_chunk(decode: Callable[[Any], Any], chunk: list[tuple[str, Any]], dataset: str = "", split: str = "") -> list[tuple[str, Any]]:
    from .executor import decode_chunk

    return decode_chunk(decode, chunk, dataset, split)


def prepare_workers() -> int:
    """Processes used to decode while preparing: DSREG_PREPARE_WORKERS, else the usable cores."""
    value = os.environ.get("DSREG_PREPARE_WORKERS")
    if value:
        return max(1, int(value))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _die_with_parent(parent: int, use_prctl: bool = True) -> None:
    """Pool initializer: end this worker when ``parent`` dies, even by SIGKILL, instead of idling on for good.

    Linux delivers SIGKILL to the worker when its parent dies (prctl PR_SET_PDEATHSIG). Elsewhere
    (or if that fails) a daemon thread polls the parent's pid and exits when it changes.
    """
    if not (use_prctl and _set_pdeathsig()):
        import threading

        threading.Thread(target=_watch_parent, args=(parent,), name="dsreg-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import signal

        pr_set_pdeathsig = 1  # from <linux/prctl.h>
        return ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc symbol (e.g. a static or unusual libc)
        return False


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)  # no cleanup: the parent that would collect the results is gone


def examples(
    builder: Builder, split: str, files: Mapping[str, Path], workers: int | None = None, runner: Runner | None = None
) -> Iterator[tuple[str, Any]]:
    """Yield ``(key, example or Skip)`` for ``split``, decoding records on ``runner`` (default: a local pool of ``workers``) if the builder names a decode."""
    stream = builder.generate(split, files)  # the configuration is builder.params
    decode = builder.get_decode()
    if decode is None:
        yield from stream
        return
    if runner is not None:
        yield from _decoded(decode, stream, runner, builder.name, split)
        return
    from .executor import runner as open_runner

    with open_runner("local", workers) as run:
        yield from _decoded(decode, stream, run, builder.name, split)


def _decoded(
    decode: Callable[[Any], Any], records: Iterator[tuple[str, Any]], run: Runner, dataset: str, split: str
) -> Iterator[tuple[str, Any]]:
    """Decode ``records`` in chunks on ``run``'s executor (in this process if it has one worker); yield in input order."""
    from .executor import CHUNK, decode_chunk

    chunks = iter(lambda: list(islice(records, CHUNK)), [])
    if run.inline:
        for chunk in chunks:
            yield from decode_chunk(decode, chunk, dataset, split)
        return
    # A bounded, ordered pipeline: the generator streams in this process while up to
    # 4 chunks per worker are being decoded; results come back in input order.
    pool = run.pool()
    pending: list[Any] = []
    try:
        for chunk in chunks:
            pending.append(pool.submit(decode_chunk, decode, chunk, dataset, split))
            if len(pending) >= 4 * run.workers:
                yield from pending.pop(0).result()
        while pending:
            yield from pending.pop(0).result()
    finally:
        for future in pending:
            future.cancel()


def write_examples(
    writer: SplitWriter | ShardedWriter,
    pairs: Iterable[tuple[str, Any]],
    dataset: str,
    split: str,
    on_skip: Callable[[], None] | None = None,
) -> list[dict[str, str]]:
    """Write each ``(key, example)`` of ``pairs`` to ``writer``; return the skipped ones as ``{key, reason}``.

    A ``Skip`` is recorded, not written (``on_skip`` is called for it: a planned writer counts it
    toward its shard); an example the store refuses is a ``PluginError`` naming it.
    """
    skipped: list[dict[str, str]] = []
    for key, example in pairs:
        if isinstance(example, Skip):
            skipped.append({"key": str(key), "reason": str(example)})
            if on_skip is not None:
                on_skip()
            continue
        try:
            writer.write(example)
        except (ValueError, TypeError) as exc:
            raise PluginError(f"{dataset}: example {key!r} of split {split!r}: {exc}") from exc
    return skipped


def _write_planned(
    builder: Builder, split: str, files: Mapping[str, Path], decode: Callable[[Any], Any], writer: ShardedWriter, run: Runner
) -> tuple[list[dict[str, str]], list[float]]:
    """Write ``split`` as planned shards (``ShardedWriter.plan``) through ``run``; return the skipped records and each task's seconds.

    The first chunk is decoded here to fix the plan. On the local pool (or inline) the chunks are
    decoded there and written here; on any other executor each shard is one ``write_shard`` task.
    """
    from itertools import chain

    from .executor import CHUNK, decode_chunk

    records = builder.generate(split, files)
    first = list(islice(records, CHUNK))
    decoded = decode_chunk(decode, first, builder.name, split)
    writer.plan([(key, example) for key, example in decoded if not isinstance(example, Skip)], builder.name)
    if not run.local:
        return _run_shard_tasks(builder, split, decode, chain(first, records), writer, run)
    pairs = chain(decoded, _decoded(decode, records, run, builder.name, split))
    return write_examples(writer, pairs, builder.name, split, on_skip=writer.skip), []


def _run_shard_tasks(
    builder: Builder, split: str, decode: Callable[[Any], Any], records: Iterator[tuple[str, Any]], writer: ShardedWriter, run: Runner
) -> tuple[list[dict[str, str]], list[float]]:
    """One ``write_shard`` task per planned shard on ``run``'s executor; results taken in shard order into ``writer``.

    As each task ends (in shard order) its shard is copied in (``fetch_shard``: checked against the
    sha256 the task reported) by one of ``COPIERS`` threads, so several shards come in at once.
    """
    import concurrent.futures as cf

    from .executor import COPIERS, ShardTask, fetch_shard, write_shard

    assert writer.per_shard is not None
    pool = run.pool()
    where = f"{run.scratch.rstrip('/')}/{builder.name}-{split}-{writer.tag}" if run.scratch else None
    skipped: list[dict[str, str]] = []
    seconds: list[float] = []
    pending: list[tuple[int, str, Any]] = []  # tasks running, in shard order
    copying: list[tuple[int, dict[str, Any], Any]] = []  # shards being copied in, in shard order
    dests: list[str] = []

    def result_of(index: int, future: Any) -> dict[str, Any]:
        try:
            return dict(future.result())
        except (DsregError, OSError):
            raise
        except Exception as exc:  # the engine's own failure (a worker lost too often, a cancelled task)
            raise PluginError(
                f"{builder.name}: shard {index} of split {split!r} failed on {run.label} ({type(exc).__name__}: {exc}); "
                "see the cluster's worker logs, then fetch again"
            ) from exc

    def adopt(index: int, result: dict[str, Any], copy: Any) -> None:
        copy.result()
        writer.adopt(writer._temp(index), {"file": shard_name(split, index), **{k: result[k] for k in ("rows", "bytes", "sha256")}})
        skipped.extend(result["skipped"])
        seconds.append(result["seconds"])

    with cf.ThreadPoolExecutor(COPIERS, thread_name_prefix="dsreg-copy") as copiers:

        def collect(index: int, dest: str, future: Any) -> None:
            result = result_of(index, future)
            what = f"preparing {builder.name}"
            copy = copiers.submit(fetch_shard, dest, writer._temp(index), result["bytes"], result["sha256"], what)
            copying.append((index, result, copy))
            while len(copying) > COPIERS:
                adopt(*copying.pop(0))

        try:
            index = 0
            while batch := list(islice(records, writer.per_shard)):
                dest = f"{where}/{shard_name(split, index)}" if where else str(writer._temp(index))
                dests.append(dest)
                task = ShardTask(builder.name, split, index, decode, writer.features, batch, dest)
                pending.append((index, dest, pool.submit(write_shard, task)))
                del batch, task
                index += 1
                while len(pending) >= run.width:
                    collect(*pending.pop(0))
            while pending:
                collect(*pending.pop(0))
            while copying:
                adopt(*copying.pop(0))
        except BaseException:
            for _, _, future in pending:
                future.cancel()
            cf.wait([future for _, _, future in pending] + [copy for _, _, copy in copying], timeout=60)
            for i, dest in enumerate(dests):  # let running tasks finish (above) before their files go
                _remove_quietly(dest)
                if i >= len(writer.done):
                    _remove_quietly(str(writer._temp(i)))
            raise
        finally:
            if where and "://" in where:
                _remove_quietly(where, recursive=True)
            elif where:
                shutil.rmtree(where, ignore_errors=True)
    return skipped, seconds


def _remove_quietly(path: str, recursive: bool = False) -> None:
    try:
        if "://" in path and not path.startswith("file://"):
            from ..fetching.objectstore import url_to_fs

            fs, inner = url_to_fs(path)
            if fs.exists(inner):
                fs.rm(inner, recursive=recursive)
        else:
            Path(path.removeprefix("file://")).unlink(missing_ok=True)
    except Exception:  # cleaning up must not hide the error that led here
        pass


#: What each disk error means for the folder a prepare writes to, and what to do about it.
_DISK_ERRORS: dict[int, str] = {
    errno.ENOSPC: "the disk of {folder} is full; free space there (`dsreg cache du` shows what the cache holds) "
    "or set DSREG_CACHE to a folder on a bigger disk",
    errno.EFBIG: "a file in {folder} grew past the largest file allowed (the shell's `ulimit -f` or the filesystem's "
    "maximum); raise the limit or set DSREG_CACHE to a folder on another filesystem",
    errno.EACCES: "you may not write in {folder}; make it writable (chmod u+w) or set DSREG_CACHE to a folder you can write",
    errno.EPERM: "you may not write in {folder}; make it writable (chmod u+w) or set DSREG_CACHE to a folder you can write",
    errno.EROFS: "{folder} is on a read-only filesystem; set DSREG_CACHE to a writable folder",
}
if hasattr(errno, "EDQUOT"):  # not on Windows
    _DISK_ERRORS[errno.EDQUOT] = "your disk quota on {folder} is used up; free space there or set DSREG_CACHE to a folder with room"


def disk_error(exc: OSError, folder: Path, what: str) -> CacheError | None:
    """Return a one-line CacheError for a disk error met while ``what`` wrote under ``folder``; None for other errors."""
    code = exc.errno
    if code is None:  # pyarrow's OSError carries the reason in its text only
        code = next((c for c in _DISK_ERRORS if os.strerror(c) in str(exc)), None)
    if code not in _DISK_ERRORS:
        return None
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) and exc.filename is not None:
        try:  # a permission error on a file outside the cache (a builder reading its input) is not ours
            Path(exc.filename).resolve().relative_to(folder.resolve())
        except ValueError:
            return None
    reason = os.strerror(code)
    return CacheError(f"{what} stopped: {reason}: {_DISK_ERRORS[code].format(folder=folder)}; then fetch again")


class StoredSplit:
    """A prepared split as ``Builder.review_split`` sees an earlier one: its length and its columns."""

    def __init__(self, paths: Path | list[Path], features: Mapping[str, Feature]) -> None:
        self.paths = [paths] if isinstance(paths, Path) else list(paths)
        self.features = dict(features)
        self._table: Any = None

    def _columns(self) -> Any:
        if self._table is None:
            import pyarrow as pa

            tables = [open_split(path) for path in self.paths]
            self._table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return self._table

    def __len__(self) -> int:
        return int(self._columns().num_rows)

    def column(self, name: str) -> Any:
        """Return column ``name``: a numpy array of shape ``(rows, *shape)`` for a fixed-shape tensor, else a list."""
        import numpy as np
        import pyarrow as pa

        column = self._columns().column(name).combine_chunks()
        feature = self.features[name]
        if feature.fixed and feature.shape:
            values = column
            while pa.types.is_fixed_size_list(values.type):
                values = values.flatten()
            return np.asarray(values.to_numpy(zero_copy_only=False)).reshape((len(column), *feature.shape))
        return column.to_pylist()


def _merge_notes(into: dict[str, Any], notes: Mapping[str, Any]) -> None:
    """Merge one split's notes: a dict note (e.g. counts per split) is updated key by key, others replaced."""
    for key, value in notes.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            into[key].update(value)
        else:
            into[key] = value


def _clean_leftovers(folder: Path, manifest: Mapping[str, Any] | None = None) -> None:
    """Remove what a killed prepare left: temporary shards, their raw side files, old temp folders.

    With the store's ``manifest`` (None: none yet), shard files it does not list go too (a prepare
    killed between renaming a split's shards into place and recording them).
    """
    stale = [*folder.glob(".*.tmp-*"), *folder.glob(".*.raw"), *folder.parent.glob(f".{folder.name}.tmp-*")]
    listed = {shard["file"] for split in (manifest or {}).get("splits", {}) for shard in split_shards(manifest or {}, split)}
    stale += [path for path in folder.glob("*.arrow") if path.name not in listed]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def prepare(
    builder: Builder,
    splits: list[Split],
    files: Mapping[str, Path],
    target: Path,
    records: Mapping[str, Any],
    workers: int | None = None,
    existing: dict[str, Any] | None = None,
    order: tuple[str, ...] = (),
    features: Mapping[str, Feature] | None = None,
    executor: Any = None,
    scratch: str | None = None,
) -> dict[str, Any]:
    """Prepare ``splits`` of ``builder`` into the store ``target`` and return its manifest.

    ``records`` holds ``{file name: {sha256, status}}`` of the fetched files; ``existing`` is the
    store's manifest when some of its splits are ready (their features are kept: they may depend
    on the data); ``order`` is the plan's split order; ``features`` those of a new store, when the
    caller computed them already; ``executor`` and ``scratch`` where the decode runs (see
    ``dsreg.store.executor.runner``: default ``DSREG_EXECUTOR``, else a local pool of ``workers``
    processes). Each split is renamed into place and
    recorded in the manifest as soon as it is complete, so a failure in a later split loses
    nothing prepared before it.
    """
    from ..fetching import archive
    from .executor import runner

    what = f"preparing {builder.name}"
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        _clean_leftovers(target, existing)
    except OSError as exc:
        told = disk_error(exc, target.parent, what)
        if told is None:
            raise
        raise told from exc
    manifest = existing
    try:
        # A dataset may declare its own archive limits; the user's settings still win (see dsreg.fetching.archive).
        with (
            archive.for_dataset(
                max_member=builder.max_member, max_expanded=builder.max_expanded, names={str(path): name for name, path in files.items()}
            ),
            runner(executor, workers, scratch) as run,
        ):
            # Fixed by the store's first prepare (they may depend on the data) and kept in the manifest.
            features = dict(features) if manifest is None and features is not None else stored_features(builder, manifest, files)
            if manifest is None:
                manifest = _new_manifest(builder, features)
            for split in splits:
                manifest["splits"][split.name] = _prepare_split(builder, split, files, target, records, features, run, manifest)
                _merge_notes(manifest["notes"], builder.notes)
                builder.notes.clear()
                manifest["split_order"] = [s for s in order if s in manifest["splits"]] + [s for s in manifest["splits"] if s not in order]
                manifest["prepared"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                write_json_atomic(target / MANIFEST, manifest)
    except BaseException as exc:
        _clean_leftovers(target, manifest if manifest is not None and (target / MANIFEST).exists() else None)
        if created and not any(target.iterdir()):
            shutil.rmtree(target, ignore_errors=True)  # nothing was prepared: leave no empty store behind
        if isinstance(exc, OSError):
            told = disk_error(exc, target.parent, what)
            if told is not None:
                raise told from exc
        raise
    return manifest


def stored_features(builder: Builder, manifest: Mapping[str, Any] | None, files: Mapping[str, Path] | None = None) -> dict[str, Feature]:
    """Return the features ``manifest`` fixed when the store was first prepared, else the builder's.

    A feature type the core cannot rebuild from JSON (a plugin's own) is asked of the builder.
    """
    from ..features import from_json

    if manifest and manifest.get("schema"):
        stored = {name: from_json(data) for name, data in manifest["schema"].items()}
        if all(feat is not None for feat in stored.values()):
            return stored  # type: ignore[return-value]
    return dict(builder.get_features(files))


def _new_manifest(builder: Builder, features: Mapping[str, Feature]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "dataset": builder.name,
        "version": builder.version,
        "config": builder.prepared_params(),
        "config_id": builder.config_id,
        "builder": f"{type(builder).__module__}:{type(builder).__qualname__}",
        "features": {name: feat.describe() for name, feat in features.items()},
        "schema": {name: feat.to_json() for name, feat in features.items()},
        # JSON keys are stored sorted: this keeps the plan's split order (it may depend on the data).
        "split_order": [],
        "splits": {},
        "notes": {},
    }


def _prepare_split(
    builder: Builder,
    split: Split,
    files: Mapping[str, Path],
    target: Path,
    records: Mapping[str, Any],
    features: Mapping[str, Feature],
    run: Runner,
    manifest: dict[str, Any],
) -> dict[str, Any]:
    """Write one split as shards in ``target`` (through temporary files) and return its manifest entry.

    A builder with a ``decode`` that reviews nothing (``review``/``review_split`` not overridden) is
    written as planned shards (``_write_planned``: the same bytes on any executor); otherwise the
    records are decoded on ``run`` in chunks and reviewed and written here, shards closing by the
    byte rule of ``ShardedWriter.write``. A split already in ``manifest`` (prepared again) is
    dropped from it on disk before its new shards are renamed into place, so no reader ever sees
    old and new shards mixed.
    """
    started = time.perf_counter()
    own = {name: files[name] for name in split.files}
    earlier = {name: StoredSplit([target / shard["file"] for shard in split_shards(manifest, name)], features) for name in split.after}
    writer = ShardedWriter(target, split.name, features)
    task_seconds: list[float] = []
    decode = builder.get_decode()
    try:
        if decode is not None and not reviews(builder):
            skipped, task_seconds = _write_planned(builder, split.name, own, decode, writer, run)
        else:
            stream = examples(builder, split.name, own, runner=run)
            skipped = write_examples(writer, builder.review_split(split.name, stream, earlier), builder.name, split.name)
        shards = writer.close()
        if manifest["splits"].pop(split.name, None) is not None and (target / MANIFEST).exists():
            write_json_atomic(target / MANIFEST, manifest)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return {
        "examples": sum(shard["rows"] for shard in shards),
        "bytes": sum(shard["bytes"] for shard in shards),
        "skipped": skipped,
        "files": {name: dict(records[name]) for name in split.files if name in records},
        "seconds": round(time.perf_counter() - started, 3),
        "shards": shards,
    } | ({"task_seconds": task_seconds} if task_seconds else {})


def reviews(builder: Builder) -> bool:
    """True when ``builder`` reviews its decoded examples (``review`` or ``review_split`` overridden): they are then written here."""
    kind = type(builder)
    return kind.review_split is not Builder.review_split or kind.review is not Builder.review


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """Return the manifest of the store in ``folder`` if it is one this dsreg writes; None otherwise."""
    try:
        manifest = read_json(folder / MANIFEST)
    except CacheError:
        return None
    if not manifest or manifest.get("format") != FORMAT or not isinstance(manifest.get("splits"), dict):
        return None
    # JSON keys are stored sorted: give the splits back in the plan's order.
    order = [s for s in manifest.get("split_order", []) if s in manifest["splits"]]
    manifest["splits"] = {s: manifest["splits"][s] for s in order + sorted(set(manifest["splits"]) - set(order))}
    return manifest


def shard_ranges(manifest: Mapping[str, Any], ranges: Sequence[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Map ``[(split, start, stop), ...]`` onto the shards: ``[(shard file name, start, stop), ...]`` in the same order.

    Empty pieces are left out; if nothing is left, the first range's first shard stands as one
    empty piece (so the schema is still known).
    """
    out: list[tuple[str, int, int]] = []
    for split, start, stop in ranges:
        offset = 0
        for shard in split_shards(manifest, split):
            rows = int(shard["rows"])
            lo, hi = max(start, offset), min(stop, offset + rows)
            if lo < hi:
                out.append((shard["file"], lo - offset, hi - offset))
            offset += rows
    if not out and ranges:
        out.append((split_shards(manifest, ranges[0][0])[0]["file"], 0, 0))
    return out


def _shards_intact(folder: Path, meta: Mapping[str, Any]) -> bool:
    """True when ``meta`` lists shards adding up to its examples and each file has the recorded size."""
    shards = meta.get("shards")
    if not isinstance(shards, list) or not shards or sum(int(shard.get("rows", -1)) for shard in shards) != meta.get("examples"):
        return False
    for shard in shards:
        try:
            if (folder / shard["file"]).stat().st_size != shard["bytes"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def ready_splits(folder: Path, manifest: Mapping[str, Any] | None, fetched: Mapping[str, str]) -> list[str]:
    """Return the splits of ``manifest`` that can be served, in its order.

    A split is ready while each of its shards has the recorded size and, unless it was pulled from
    a remote store (``"pulled"`` in its entry), every file it was generated from is in the cache
    now with the same sha256 (``fetched``: ``{file name: sha256}`` of the files whose verified
    bytes are present). Sizes only: ``verify_split`` reads the bytes.
    """
    if manifest is None:
        return []
    ready = []
    for split in manifest.get("split_order", []):
        meta = manifest["splits"].get(split)
        if meta is None or not _shards_intact(folder, meta):
            continue
        if meta.get("pulled") or all(fetched.get(name) == record.get("sha256") for name, record in meta.get("files", {}).items()):
            ready.append(split)
    return ready


def verify_split(folder: Path, manifest: Mapping[str, Any], split: str) -> dict[str, str]:
    """Check every shard of ``split`` against the manifest (size, then sha256).

    Return ``{shard file name: what is wrong}`` for each shard that fails; empty when all pass.
    """
    problems: dict[str, str] = {}
    for shard in split_shards(manifest, split):
        path = folder / shard["file"]
        try:
            size = path.stat().st_size
        except OSError:
            problems[shard["file"]] = "missing"
            continue
        if size != shard["bytes"]:
            problems[shard["file"]] = f"{size} bytes, the manifest says {shard['bytes']}"
            continue
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            problems[shard["file"]] = f"unreadable ({exc.strerror or exc})"
            continue
        if digest.hexdigest() != shard["sha256"]:
            problems[shard["file"]] = f"sha256 {digest.hexdigest()}, the manifest says {shard['sha256']}"
    return problems


def open_split(path: Path) -> Any:
    """Memory-map one shard file and return its pyarrow Table (one chunk per column)."""
    return map_split(path)[0]


def map_split(path: Path) -> tuple[Any, int]:
    """Memory-map one shard file; return its pyarrow Table and the address the file is mapped at."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path), "r")
        base = source.read_buffer(1).address if source.size() else 0
        source.seek(0)
        return pa.ipc.open_stream(source).read_all(), base
    except (OSError, pa.ArrowInvalid) as exc:
        raise CacheError(f"prepared file {path} is damaged ({exc}); run `dsreg cache rm` on the dataset and fetch again") from exc
