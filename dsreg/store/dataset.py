"""``dsreg.Dataset``: a standard ``torch.utils.data.Dataset`` over a memory-mapped prepared split.

A split is a sequence of Arrow shards (see ``storage``). Fixed-shape tensor columns are viewed
zero-copy as one tensor; over several shards laid out for it, the column of every shard is mapped
back to back into one address range (``_join``), so ``__getitems__`` (which DataLoader calls with a
whole batch of indices) is one ``index_select`` per column whatever the shard count; otherwise
each shard is gathered into a preallocated batch. Opening a dataset starts a background thread
that reads its mapped columns in sequentially (``_prefetch``), so a shuffled first epoch does not
fault pages in one random read at a time. Pickling sends only paths and ranges: each DataLoader
worker re-opens the memory maps.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..builder import Builder
from ..features import Feature, class_names
from .collate import Batch, Examples
from .storage import map_split, shard_ranges

__all__ = ["Dataset", "Batches", "Loader"]


def _numpy_view(array: Any) -> np.ndarray:
    """View a primitive pyarrow array's values as numpy without copying (bool, bit-packed, is unpacked).

    Reads the values buffer directly rather than through ``Array.to_numpy``, which imports pandas
    (~0.5 s and ~50 MB in every process and DataLoader worker).
    """
    if array.null_count:
        raise ValueError("a prepared numeric column has missing values; prepare the dataset again")
    buffer = array.buffers()[1]
    if str(array.type) == "bool":
        bits = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")
        return bits[array.offset : array.offset + len(array)].astype(bool)
    dtype = np.dtype(_ARROW_TO_NUMPY[str(array.type)])
    return np.frombuffer(buffer, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _zero_copy(array: Any) -> torch.Tensor:
    """View a primitive pyarrow array as a tensor without copying."""
    with warnings.catch_warnings():  # the memory map is read-only; we only ever read or copy out
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(_numpy_view(array))


#: Arrow's names of the numeric types the features allow, and their numpy dtypes.
_ARROW_TO_NUMPY = {
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "halffloat": "float16",
    "float": "float32",
    "double": "float64",
}


def _leaf(array: Any) -> Any:
    """The values of a (fixed-size) list array, down to the primitive ones, for its rows only.

    Slices the child arrays by hand: ``Array.flatten`` would import ``pyarrow.compute`` (~0.4 s in
    every process and DataLoader worker, on the first batch).
    """
    import pyarrow as pa

    while True:
        if pa.types.is_fixed_size_list(array.type):
            size = array.type.list_size
            array = array.values.slice(array.offset * size, len(array) * size)
        elif pa.types.is_list(array.type):
            offsets = _numpy_view(array.offsets)
            array = array.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        else:
            return array


class _Part:
    """The columns of one ``[start, stop)`` range of a split file, each read as its feature says.

    Numbers of one shape are one zero-copy tensor per column; numbers whose first dimension varies
    are one tensor of all values plus row offsets; anything else (strings, bytes) stays Arrow.
    """

    def __init__(self, path: Path, start: int, stop: int, features: dict[str, Feature]) -> None:
        table, self.base = map_split(path)
        self.path, self.start, self.stop, self.rows = path, start, stop, table.num_rows
        self.length = stop - start
        self.columns: dict[str, Any] = {}
        self.offsets: dict[str, np.ndarray] = {}
        for name, feat in features.items():
            col = table.column(name)
            array = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            array = array.slice(start, stop - start)
            known = [d for d in feat.shape if d is not None]  # a ragged column: its rows' values, end to end
            if not feat.numeric:
                self.columns[name] = array
            elif feat.ragged:
                offsets = _numpy_view(array.offsets)
                self.offsets[name] = offsets - offsets[0]
                values = _leaf(array.values.slice(offsets[0], offsets[-1] - offsets[0]))
                self.columns[name] = _zero_copy(values).view(-1, *known)
            elif len(array):
                self.columns[name] = _zero_copy(_leaf(array)).view(-1, *known)
            else:
                self.columns[name] = torch.empty((0, *known), dtype=getattr(torch, feat.dtype))

    def row(self, i: int) -> dict[str, Any]:
        out = {}
        for name, col in self.columns.items():
            if name in self.offsets:
                off = self.offsets[name]
                out[name] = col[off[i] : off[i + 1]].clone()
            elif isinstance(col, torch.Tensor):
                out[name] = col[i].clone()
            else:
                out[name] = col[i].as_py()
        return out

    def gather(self, index: np.ndarray) -> dict[str, Any]:
        idx = torch.from_numpy(index)
        return {
            name: col.index_select(0, idx)
            if isinstance(col, torch.Tensor) and name not in self.offsets
            else self.gather_column(name, index)
            for name, col in self.columns.items()
        }

    def gather_column(self, name: str, index: np.ndarray) -> Any:
        """Rows ``index`` of column ``name``: a tensor for fixed-shape numbers, else a list."""
        col = self.columns[name]
        if name in self.offsets:
            off = self.offsets[name]
            return [col[off[i] : off[i + 1]].clone() for i in index]
        if isinstance(col, torch.Tensor):
            return col.index_select(0, torch.from_numpy(index))
        return [col[int(i)].as_py() for i in index]


_MAP_FIXED = 0x10  # the same on Linux and macOS
_MADV_POPULATE_READ = 22  # Linux 5.14+


def _libc() -> Any:
    """The C library's ``mmap``/``munmap`` through ctypes (they release the GIL), or None where not usable."""
    import ctypes
    import mmap
    import sys

    if sys.platform not in ("linux", "darwin") or ctypes.sizeof(ctypes.c_void_p) != 8 or not hasattr(mmap, "MAP_ANONYMOUS"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.madvise.restype = ctypes.c_int
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def _join(parts: list[_Part], name: str) -> tuple[torch.Tensor, int, int] | None:
    """Map column ``name`` of the shards behind ``parts`` back to back, as one zero-copy tensor of the parts' rows.

    Possible when every part but the first starts at its shard's first row, every part but the
    last ends at its shard's last row, each shard's column data starts at a page boundary in its
    file and every shard's column but the last is a whole number of pages (the writer lays shards
    out so: ``storage.ALIGN``). The last shard's column may start anywhere: it is then copied in
    (at most one shard's column). Returns the tensor and the mapped region (address, bytes), or
    None where this is not possible (mmap not at hand, a layout that does not fit).
    """
    import ctypes
    import mmap
    import weakref

    first = parts[0].columns[name]
    if not isinstance(first, torch.Tensor) or name in parts[0].offsets or first.dtype == torch.bool or first.dim() == 0:
        return None
    page = mmap.PAGESIZE
    row = int(np.prod(first.shape[1:], dtype=np.int64)) * first.element_size()
    layout = []
    last = len(parts) - 1
    for k, part in enumerate(parts):
        if part.length == 0 or (k and part.start) or (k < last and part.stop != part.rows):
            return None
        offset = part.columns[name].data_ptr() - part.start * row - part.base
        size = part.rows * row
        if k < last and (offset % page or size % page):
            return None
        layout.append((part, offset, size))
    libc = _libc()
    if libc is None or row == 0:
        return None
    total = sum(-(-size // page) * page for _, _, size in layout)
    failed = ctypes.c_void_p(-1).value
    reserved = libc.mmap(None, total, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)  # PROT_NONE: address space only
    if reserved in (None, failed):
        return None
    at = 0
    for part, offset, size in layout:
        length = -(-size // page) * page
        if offset % page == 0:
            try:
                fd = os.open(part.path, os.O_RDONLY)
            except OSError:
                libc.munmap(reserved, total)
                return None
            try:
                got = libc.mmap(reserved + at, length, mmap.PROT_READ, mmap.MAP_SHARED | _MAP_FIXED, fd, offset)
            finally:
                os.close(fd)
        else:  # the last shard, whose column starts mid-page: copied into anonymous memory
            prot = mmap.PROT_READ | mmap.PROT_WRITE
            got = libc.mmap(reserved + at, length, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED, -1, 0)
            if got == reserved + at:
                ctypes.memmove(got, part.base + offset, size)
        if got != reserved + at:
            libc.munmap(reserved, total)
            return None
        at += size
    buffer = (ctypes.c_uint8 * total).from_address(reserved)
    weakref.finalize(buffer, libc.munmap, reserved, total)  # unmapped once no view of it is left
    flat = np.frombuffer(buffer, dtype=first.numpy().dtype, count=at // first.element_size())
    whole = torch.from_numpy(flat).view(-1, *first.shape[1:])
    return whole[parts[0].start : parts[0].start + sum(part.length for part in parts)], reserved, at


def _populate(regions: list[tuple[int, int]]) -> None:
    """Read ``regions`` (address, bytes) of file mappings into memory and map their pages, sequentially.

    Runs in a background thread when a dataset is opened, so a shuffled first epoch finds its
    pages mapped instead of faulting them in one 4 KiB random read at a time. ``madvise`` through
    ctypes releases the GIL; MADV_POPULATE_READ (Linux 5.14+) maps the pages, MADV_WILLNEED (the
    fallback) only starts reading them.
    """
    import mmap

    libc = _libc()
    if libc is None:
        return
    page, chunk = mmap.PAGESIZE, 8 << 20
    for address, size in regions:
        start = address - address % page
        end = address + size
        for lo in range(start, end, chunk):
            length = min(chunk, end - lo)
            if libc.madvise(lo, length, _MADV_POPULATE_READ) != 0:
                libc.madvise(lo, end - lo, getattr(mmap, "MADV_WILLNEED", 3))
                break


def _prefetch(regions: list[tuple[int, int]]) -> None:
    """Start ``_populate`` in a daemon thread if the regions fit in half the memory available now (Linux)."""
    import threading

    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if not regions or sum(size for _, size in regions) > available // 2 or os.environ.get("DSREG_PREFETCH", "1") == "0":
        return
    threading.Thread(target=_populate, args=(regions,), name="dsreg-prefetch", daemon=True).start()


class Batches(torch.utils.data.Sampler):
    """Batches of indices as int64 arrays, in the order DataLoader's own samplers give.

    ``shuffle=True`` draws like ``RandomSampler`` (a fresh seed from torch's global RNG, or the
    given generator, then one ``randperm``), so seeds reproduce the stock DataLoader's batches; a
    whole batch is one slice of the permutation instead of ``batch_size`` Python ints.
    """

    def __init__(
        self, n: int, batch_size: int, *, shuffle: bool = False, drop_last: bool = False, generator: torch.Generator | None = None
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size should be a positive integer, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.drop_last, self.generator = n, batch_size, shuffle, drop_last, generator

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Any:
        if self.shuffle:
            generator = self.generator
            if generator is None:
                generator = torch.Generator()
                generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            order = torch.randperm(self.n, generator=generator).numpy()
        else:
            order = np.arange(self.n, dtype=np.int64)
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, self.n), self.batch_size):
            yield order[start : start + self.batch_size]
        if self.shuffle and self.generator is not None:
            # RandomSampler draws a second (empty) slice after a full pass; keep the caller's generator in
            # step with it. The fresh one drawn above is thrown away: drawing from it would only cost time.
            torch.randperm(self.n, generator=generator)


def _pin(data: Any) -> Any:
    if isinstance(data, torch.Tensor):
        return data.pin_memory()
    if isinstance(data, dict):
        return {k: _pin(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_pin(v) for v in data)
    return data


class Loader(torch.utils.data.DataLoader):
    """The DataLoader ``Dataset.loader()`` returns: a ``torch.utils.data.DataLoader`` in every respect.

    With ``num_workers=0`` over ``Batches`` it iterates leanly — next batch of indices, one gather,
    the collate, pinning if asked — instead of through DataLoader's general per-batch machinery,
    which costs about as much as the gather itself on small examples. It draws the iterator's base
    seed from ``generator`` as DataLoader does, so seeded orders stay the same.
    """

    def __iter__(self) -> Any:
        if self.num_workers == 0 and self.timeout == 0 and isinstance(self.batch_sampler, Batches):
            return self._lean()
        return super().__iter__()

    def _lean(self) -> Any:
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        pin = self.pin_memory and torch.cuda.is_available()
        assert isinstance(self.dataset, Dataset) and isinstance(self.batch_sampler, Batches)  # as __iter__ checked
        dataset, sampler = self.dataset, self.batch_sampler
        # Batches of a permutation of range(len) are in range already: no bounds check per batch.
        fetch = dataset._gather if dataset._plain and sampler.n == len(dataset) else dataset.__getitems__
        collate: Callable[[Any], Any] = self.collate_fn  # it takes a Batch or Examples, not only DataLoader's list
        for index in self.batch_sampler:
            batch = collate(fetch(index))
            yield _pin(batch) if pin else batch


class Dataset(torch.utils.data.Dataset):
    """A prepared split (or slices of several) as a torch Dataset of dicts."""

    def __init__(
        self,
        builder: Builder,
        folder: Path,
        ranges: Sequence[tuple[str, int, int]],
        info: Any,
        split: str,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        """Serve ``ranges`` (``(split, start, stop)``, in the split's example numbers) of the store in ``folder``.

        ``info`` is the resolved ``DatasetInfo``: its ``manifest`` says which shards hold each
        split, its ``features`` (those the store was prepared with) how each column is read; the
        builder supplies ``decode_example`` and the collate.
        """
        self.builder = builder
        self.folder = Path(folder)
        self.ranges: list[tuple[str, int, int]] = [(str(s), int(a), int(b)) for s, a, b in ranges]
        self.info = info
        self.split = split
        self.transform = transform
        self.features: dict[str, Feature] = dict(info.features)
        #: The same examples as ``(shard file name, start, stop)`` pieces, one per shard touched.
        self.parts: list[tuple[str, int, int]] = shard_ranges(info.manifest, self.ranges)
        lengths = [stop - start for _, start, stop in self.parts]
        self._ends = np.cumsum(lengths, dtype=np.int64)
        self._starts = self._ends - np.asarray(lengths, dtype=np.int64)
        self._n = int(self._ends[-1]) if len(self._ends) else 0
        self._parts: list[_Part] | None = None
        self._joined: dict[str, torch.Tensor] = {}  # columns of every part mapped back to back
        self._plain = transform is None and not builder.decodes_on_access()
        self._ragged = tuple(name for name, feat in self.features.items() if feat.ragged)

    # -- torch Dataset protocol ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def _open(self) -> list[_Part]:
        if self._parts is None:
            parts = [_Part(self.folder / file, a, b, self.features) for file, a, b in self.parts]
            regions: list[tuple[int, int]] = []
            if len(parts) > 1:
                with warnings.catch_warnings():  # a read-only mapping: we only ever read or copy out
                    warnings.simplefilter("ignore", UserWarning)
                    joined = {name: _join(parts, name) for name in self.features}
                self._joined = {name: found[0] for name, found in joined.items() if found is not None}
                regions = [found[1:] for found in joined.values() if found is not None]
            if len(self._joined) < len(self.features):  # some columns are read from the shards' own mappings
                regions += [(part.base, part.path.stat().st_size) for part in parts if part.base]
            _prefetch(regions)
            self._parts = parts
        return self._parts

    def _locate(self, index: int) -> tuple[_Part, int]:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} is out of range for {self.info.name}:{self.split} of {n} examples")
        k = int(np.searchsorted(self._ends, index, side="right"))
        return self._open()[k], index - int(self._starts[k])

    def __getitem__(self, index: int) -> Any:
        part, local = self._locate(int(index))
        example = self.builder.decode_example(part.row(local))
        return self.transform(example) if self.transform is not None else example

    def __getitems__(self, indices: Sequence[int]) -> Batch | Examples:
        """Gather a whole batch at once (DataLoader's batch path) for the collate function.

        Returns a ``Batch`` of columns, or, when examples are decoded one by one (``decode_example``,
        ``transform=``), ``Examples``: a list of example dicts. Both name the variable-length
        columns in ``.ragged``, which ``collate.pad`` reads.
        """
        if not self._plain:
            examples = Examples(self[i] for i in indices)
            examples.ragged = self._ragged
            return examples
        index = np.asarray(indices, dtype=np.int64)
        n = self._n
        if len(index):
            low, high = index.min(), index.max()
            if low < 0:  # counted from the end
                index = np.where(index < 0, index + n, index)
                low, high = index.min(), index.max()
            if low < 0 or high >= n:
                raise IndexError(f"batch index out of range for {self.info.name}:{self.split} of {n} examples")
        return self._gather(index)

    def _gather(self, index: np.ndarray) -> Batch:
        """Gather rows ``index`` (int64, each in ``[0, len)``: checked by the caller) of a plain dataset."""
        parts = self._open()
        if len(self._joined) == len(self.features):  # every column mapped as one: one gather each
            idx = torch.from_numpy(index)
            batch = Batch({name: col.index_select(0, idx) for name, col in self._joined.items()})
        elif len(parts) == 1:
            batch = Batch(parts[0].gather(index))
        else:
            batch = self._gather_parts(parts, index)
        batch.ragged = self._ragged
        return batch

    def _gather_parts(self, parts: list[_Part], index: np.ndarray) -> Batch:
        """Gather a batch whose examples may lie in several parts (shards), in ``index`` order.

        A column mapped back to back over the shards (``_join``) is one ``index_select``; any other
        is gathered shard by shard into a preallocated tensor (or list).
        """
        gathered: dict[str, Any] = {}
        if self._joined:
            idx = torch.from_numpy(index)
            gathered = {name: col.index_select(0, idx) for name, col in self._joined.items()}
        rest = [name for name in self.features if name not in gathered]
        if rest:
            which = np.searchsorted(self._ends, index, side="right")
            local = index - self._starts[which]
            if len(index) and (which == which[0]).all():
                part = parts[int(which[0])]
                gathered.update((name, part.gather_column(name, local)) for name in rest)
            else:
                hits = [(parts[k], np.flatnonzero(which == k)) for k in np.flatnonzero(np.bincount(which, minlength=len(parts)))]
                for name in rest:
                    gathered[name] = self._gather_column(name, parts[0], hits, local, len(index))
        return Batch({name: gathered[name] for name in self.features})

    @staticmethod
    def _gather_column(name: str, first: _Part, hits: list[tuple[_Part, np.ndarray]], local: np.ndarray, n: int) -> Any:
        """Gather column ``name`` shard by shard: ``hits`` holds each shard touched and the batch positions it serves."""
        col = first.columns[name]
        if isinstance(col, torch.Tensor) and name not in first.offsets:
            out = torch.empty((n, *col.shape[1:]), dtype=col.dtype)
            for part, sel in hits:
                out[torch.from_numpy(sel)] = part.columns[name].index_select(0, torch.from_numpy(local[sel]))
            return out
        values: list[Any] = [None] * n
        for part, sel in hits:
            for at, value in zip(sel.tolist(), part.gather_column(name, local[sel])):
                values[at] = value
        return values

    # -- conveniences -------------------------------------------------------------------------
    @property
    def collate_fn(self) -> Callable[[Any], Any]:
        """The builder's collate function, called as ``collate_fn(batch)`` with what ``__getitems__`` returns."""
        return self.builder.get_collate_fn()

    @property
    def classes(self) -> list[str]:
        """Class names of the first class-label column (empty if there is none)."""
        return class_names(self.features)

    def loader(self, **kwargs: Any) -> Loader:
        """Return a ``torch.utils.data.DataLoader`` with this dataset's collate_fn (any DataLoader option works).

        Unless a ``sampler`` or ``batch_sampler`` is given, batches of indices come from ``Batches``:
        the same order as ``shuffle=True`` / ``False`` would give, drawn as arrays rather than one
        Python int at a time.
        """
        if "batch_size" in kwargs and kwargs["batch_size"] is None:
            return Loader(self, **kwargs)  # single examples: nothing to collate (DataLoader's own path)
        kwargs.setdefault("collate_fn", self.collate_fn)
        if kwargs.get("sampler") is None and kwargs.get("batch_sampler") is None:
            # The generator stays in kwargs too: DataLoader draws each iterator's base seed from it
            # before the sampler draws its permutation, as with its own samplers.
            kwargs["batch_sampler"] = Batches(
                len(self),
                kwargs.pop("batch_size", 1),
                shuffle=bool(kwargs.pop("shuffle", False)),
                drop_last=kwargs.pop("drop_last", False),
                generator=kwargs.get("generator"),
            )
            kwargs.pop("sampler", None)
        return Loader(self, **kwargs)

    def to_hf(self) -> Any:
        """Return the same examples as a Hugging Face ``datasets.Dataset`` (memory-mapped, no copy)."""
        import datasets

        pieces = [datasets.Dataset.from_file(str(self.folder / file)).select(range(a, b)) for file, a, b in self.parts]
        return pieces[0] if len(pieces) == 1 else datasets.concatenate_datasets(pieces)

    def with_transform(self, transform: Callable[[dict[str, Any]], Any] | None) -> Dataset:
        """Return a copy of this dataset that applies ``transform`` to each example."""
        return Dataset(self.builder, self.folder, self.ranges, self.info, self.split, transform)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_parts"], state["_joined"] = None, {}  # workers re-open the memory map instead of copying data
        return state

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}: {v.describe()}" for k, v in self.features.items())
        return f"<dsreg.Dataset {self.info.name}:{self.split} ({len(self):,} examples; {cols})>"
