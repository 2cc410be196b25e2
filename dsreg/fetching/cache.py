"""The cache: where downloads and prepared datasets live, and how to list and remove them.

Layout under the root (``DSREG_CACHE``, default the platform's user cache dir, e.g.
``~/.cache/dsreg`` on Linux)::

    downloads/<sha256>                          blobs: verified files, content-addressed, shared by datasets
    downloads/md5/<md5>                         the sha256 of the file with that md5 (md5-only files)
    downloads/partial/<dataset>/<file>.part     an unfinished download, resumed next time
    downloads/rejected/<dataset>/<file>.<sha256>  bytes that failed verification, kept aside
    datasets/<dataset>/files.json               which blob is which file, how it was verified (FileRecord)
    datasets/<dataset>/prepared/<version>-<config hash>/   manifest.json and <split>-NNNNN.arrow shards
    locks/<dataset>.lock                        held while a dataset is fetched or prepared
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CacheError
from .records import FileRecord

__all__ = ["Cache", "default_root", "write_json_atomic", "read_json"]


def default_root() -> Path:
    """Return ``$DSREG_CACHE`` or the platform's user cache dir for dsreg."""
    env = os.environ.get("DSREG_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dsreg", appauthor=False))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON next to ``path`` and rename it into place, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "x" (not mkstemp, which makes the file 0600): the result gets the
    # user's usual permissions, so a shared cache or a run folder stays readable by the team.
    tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "x") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path, default: Any = None) -> Any:
    """Return the JSON in ``path``, ``default`` if absent; raise CacheError if it is damaged."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise CacheError(f"cache file {path} is damaged ({exc}); delete it or run `dsreg cache rm`") from exc


def _warn(old: str, new: str) -> None:
    warnings.warn(f"Cache.{old} is deprecated; use Cache.{new}", DeprecationWarning, stacklevel=3)


def _renamed(old: str, new: Callable[..., Path]) -> Callable[..., Path]:
    """Return a deprecated alias ``old`` of the Cache method ``new``."""

    def alias(self: Cache, *args: Any) -> Path:
        _warn(old, new.__name__)
        return new(self, *args)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated: ``{new.__name__}``."
    return alias


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass
class CacheEntry:
    """What the cache holds for one dataset."""

    name: str
    files: dict[str, FileRecord]
    prepared: list[str]
    download_bytes: int
    prepared_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "files": sorted(self.files),
            "prepared": self.prepared,
            "download_bytes": self.download_bytes,
            "prepared_bytes": self.prepared_bytes,
        }


class Cache:
    """One cache root and its layout."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()
        if "://" in str(root or ""):
            raise CacheError(f"cache root {root} must be a local path for now; mount remote storage locally")

    # -- paths -------------------------------------------------------------------------------
    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    def blob_path(self, sha256: str) -> Path:
        """Return where the verified bytes with this sha256 live (whether or not they are there yet)."""
        return self.downloads / sha256

    def md5_index_path(self, md5: str) -> Path:
        """Return the file that names the sha256 of the blob with this md5 (for files published by md5)."""
        return self.downloads / "md5" / md5

    def part_path(self, dataset: str, filename: str) -> Path:
        """Return the ``.part`` file an unfinished download of ``filename`` streams into and resumes from."""
        return self.downloads / "partial" / dataset / f"{filename}.part"

    def rejected_path(self, dataset: str, filename: str, sha256: str) -> Path:
        """Return where bytes of ``filename`` that failed verification are kept aside."""
        return self.downloads / "rejected" / dataset / f"{filename}.{sha256[:16]}"

    def dataset_dir(self, dataset: str) -> Path:
        return self.root / "datasets" / dataset

    def records_path(self, dataset: str) -> Path:
        """Return ``files.json``: the FileRecord of each downloaded file of ``dataset``."""
        return self.dataset_dir(dataset) / "files.json"

    def prepared_dir(self, dataset: str, config_id: str) -> Path:
        return self.dataset_dir(dataset) / "prepared" / config_id

    def lock(self, dataset: str, timeout: float = -1) -> Any:
        """Return an inter-process lock for ``dataset`` (held while fetching or preparing)."""
        import filelock

        path = self.root / "locks" / f"{dataset}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the cache at {self.root} ({exc}); set DSREG_CACHE to a writable folder") from exc
        return filelock.FileLock(str(path), timeout=timeout)

    # -- records -----------------------------------------------------------------------------
    def read_records(self, dataset: str) -> dict[str, FileRecord]:
        """Return ``{file name: FileRecord}`` for every downloaded file of ``dataset`` (``{}`` if none)."""
        path = self.records_path(dataset)
        try:
            return {name: FileRecord.from_json(data) for name, data in read_json(path, default={}).items()}
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CacheError(
                f"cache file {path} holds a record dsreg cannot read ({type(exc).__name__}: {exc}); "
                f"delete it or run `dsreg cache rm {dataset}`"
            ) from exc

    def write_records(self, dataset: str, records: Mapping[str, FileRecord]) -> None:
        """Replace ``dataset``'s records, atomically."""
        write_json_atomic(self.records_path(dataset), {name: record.to_json() for name, record in records.items()})

    # -- the names of dsreg 0.1, kept for plugins and callers written against them -----------
    download = _renamed("download", blob_path)
    md5_index = _renamed("md5_index", md5_index_path)
    partial = _renamed("partial", part_path)
    rejected = _renamed("rejected", rejected_path)
    files_record = _renamed("files_record", records_path)

    def read_files(self, dataset: str) -> dict[str, dict[str, Any]]:
        """Deprecated: ``read_records``, as JSON dicts (``{sha256, size, status, source, ...}``)."""
        _warn("read_files", "read_records")
        return {name: record.to_json() for name, record in self.read_records(dataset).items()}

    def write_files(self, dataset: str, files: Mapping[str, Mapping[str, Any]]) -> None:
        """Deprecated: ``write_records``, from JSON dicts (checked as records on the way)."""
        _warn("write_files", "write_records")
        self.write_records(dataset, {name: FileRecord.from_json(data) for name, data in files.items()})

    # -- listing and removal -----------------------------------------------------------------
    def datasets(self) -> list[str]:
        base = self.root / "datasets"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def entry(self, dataset: str) -> CacheEntry:
        files = self.read_records(dataset)
        prepared_root = self.dataset_dir(dataset) / "prepared"
        prepared = (
            sorted(p.name for p in prepared_root.iterdir() if p.is_dir() and (p / "manifest.json").exists())
            if prepared_root.is_dir()
            else []
        )
        blobs = [self.blob_path(record.sha256) for record in files.values()]
        download_bytes = sum(blob.stat().st_size for blob in blobs if blob.exists())
        return CacheEntry(dataset, files, prepared, download_bytes, _tree_size(prepared_root) if prepared_root.exists() else 0)

    def entries(self) -> Iterator[CacheEntry]:
        for name in self.datasets():
            yield self.entry(name)

    def total_bytes(self) -> int:
        return _tree_size(self.root) if self.root.exists() else 0

    def remove(self, dataset: str) -> int:
        """Delete ``dataset``'s prepared data, records and the downloads no other dataset uses; return bytes freed."""
        folder = self.dataset_dir(dataset)
        streamed = self.root / "streaming" / dataset  # shards of a remote store read by a StreamingDataset
        if not folder.exists() and not streamed.exists():
            raise CacheError(f"{dataset} is not in the cache at {self.root}; `dsreg cache ls` lists what is")
        with self.lock(dataset):
            mine = {record.sha256 for record in self.read_records(dataset).values()}
            others = {record.sha256 for name in self.datasets() if name != dataset for record in self.read_records(name).values()}
            freed = 0
            for sha in mine - others:
                path = self.blob_path(sha)
                if path.exists():
                    freed += path.stat().st_size
                    path.unlink()
            for extra in (folder, self.downloads / "partial" / dataset, self.downloads / "rejected" / dataset, streamed):
                if extra.exists():
                    freed += _tree_size(extra)
                    shutil.rmtree(extra)
            return freed
