"""Download: get each remote file of a dataset into the cache, verified, through fsspec.

(Named download, not fetch, so that importing it never shadows the function ``dsreg.fetch``.)

For each file, in order: a verified copy already in the cache; ``--from`` (a file or folder the user
has); the user's mirrors (``--mirror``, DSREG_MIRRORS, the config file); the Builder's published
URLs. Each URL is tried up to DSREG_RETRIES times with exponential backoff, resuming the ``.part``
file where the last attempt stopped (HTTP Range, or seek for other filesystems). Bytes are hashed
from the ``.part`` file as they stream in; the file is renamed into ``downloads/<sha256>`` only
after its size and hash match. Bytes that do not match are kept aside under ``downloads/rejected``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import config
from .builder import File
from .cache import Cache
from .errors import ChecksumError, DsregError, FetchError, OfflineError

__all__ = ["Fetcher", "mirror_url"]

CHUNK = 1 << 20
#: Seconds before the first retry; doubled after each failed attempt (DSREG_BACKOFF overrides).
BACKOFF = 1.0


def mirror_url(base: str, filename: str) -> str:
    """Return where ``filename`` lives under the mirror ``base`` (a URL or folder)."""
    if "://" in base:
        return base.rstrip("/") + "/" + filename
    return os.path.join(os.path.expanduser(base), filename)


def _backoff() -> float:
    try:
        return float(os.environ.get("DSREG_BACKOFF", BACKOFF))
    except ValueError:
        return BACKOFF


def _is_http(url: str) -> bool:
    return url.split("://", 1)[0].lower() in {"http", "https"} if "://" in url else False


@dataclass
class _Hashes:
    sha256: Any = field(default_factory=hashlib.sha256)
    md5: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    size: int = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        self.md5.update(chunk)
        self.size += len(chunk)


class _Cut(Exception):
    """A source ended before the expected number of bytes (retried, resuming)."""


def _progress(name: str, total: int | None, initial: int, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
        disable=quiet or not sys.stderr.isatty(), file=sys.stderr, leave=False,
    )


class Fetcher:
    """Fetch one dataset's files into ``cache``; see the module docstring for the order of sources."""

    def __init__(
        self,
        cache: Cache,
        dataset: str,
        *,
        mirrors: Sequence[str] = (),
        from_path: str | os.PathLike[str] | None = None,
        verify: bool = True,
        force: bool = False,
        quiet: bool = False,
    ) -> None:
        self.cache = cache
        self.dataset = dataset
        self.mirrors = [*mirrors, *config.user_mirrors(dataset)]
        self.from_path = Path(from_path).expanduser() if from_path is not None else None
        self.verify = verify
        self.force = force
        self.quiet = quiet
        #: Bytes read from sources by this fetcher (resumed bytes not counted twice).
        self.bytes_transferred = 0

    # -- the public step ---------------------------------------------------------------------
    def fetch(self, files: Iterable[File]) -> dict[str, Path]:
        """Return ``{file name: verified local path}``, fetching what the cache lacks."""
        files = list(files)
        records = self.cache.read_files(self.dataset)
        paths: dict[str, Path] = {}
        missing: list[File] = []
        for file in files:
            path = None if self.force else self._cached(file, records)
            if path is None:
                missing.append(file)
            else:
                paths[file.name] = path
        if missing and self.from_path is None and config.offline():
            names = ", ".join(f.name for f in missing)
            raise OfflineError(
                f"{self.dataset} needs {names}, not in the cache at {self.cache.root} and DSREG_OFFLINE=1 is set; "
                f"fetch it online (`dsreg fetch {self.dataset}`) or hand it over with `dsreg fetch {self.dataset} --from PATH`"
            )
        for file in missing:
            paths[file.name] = self._fetch_one(file, records)
            self.cache.write_files(self.dataset, records)
        return paths

    def _cached(self, file: File, records: dict[str, dict[str, Any]]) -> Path | None:
        record = records.get(file.name)
        if record and self._record_matches(file, record):
            path = self.cache.download(record["sha256"])
            if path.exists() and path.stat().st_size == record["size"]:
                return path
        # The same bytes may already be here for another dataset (content addressing).
        sha = file.sha256
        if sha is None and file.md5 and self.cache.md5_index(file.md5).exists():
            sha = self.cache.md5_index(file.md5).read_text().strip()
        if sha and self.cache.download(sha).exists():
            path = self.cache.download(sha)
            size = path.stat().st_size
            if file.size is None or size == file.size:
                records[file.name] = {"sha256": sha, "md5": file.md5, "size": size, "status": "verified", "source": "cache"}
                self.cache.write_files(self.dataset, records)
                return path
        return None

    @staticmethod
    def _record_matches(file: File, record: dict[str, Any]) -> bool:
        if record.get("status") == "unverified":  # the user's explicit --no-verify choice stands
            return True
        if file.sha256:
            return record.get("sha256") == file.sha256
        if file.md5:
            return record.get("md5") == file.md5
        return record.get("status") == "pinned"

    # -- one file ----------------------------------------------------------------------------
    def _sources(self, file: File) -> list[str]:
        if self.from_path is not None:
            if self.from_path.is_dir():
                return [str(self.from_path / file.name)]
            return [str(self.from_path)]
        return [mirror_url(m, file.name) for m in self.mirrors] + list(file.urls)

    def _fetch_one(self, file: File, records: dict[str, dict[str, Any]]) -> Path:
        part = self.cache.partial(self.dataset, file.name)
        part.parent.mkdir(parents=True, exist_ok=True)
        sources = self._sources(file)
        if not sources:
            raise FetchError(f"{self.dataset}: file {file.name} has no URL; pass --mirror URL or --from PATH")
        if self.from_path is not None and not Path(sources[0]).exists():
            raise FetchError(f"{self.dataset}: {file.name} is not at {sources[0]}; pass the folder that holds it or the file itself")
        failures: list[str] = []
        mismatches: list[str] = []
        pinned = records.get(file.name) if file.checksum is None else None
        for url in sources:
            try:
                hashes = self._download(url, part, file)
            except FileNotFoundError:
                failures.append(f"{url}: not found")
                continue
            except Exception as exc:  # noqa: BLE001 - every reason is reported to the user
                failures.append(f"{url}: {_reason(exc)}")
                continue
            problem = self._check(file, hashes, pinned)
            if problem:
                kept = self.cache.rejected(self.dataset, file.name, hashes.sha256.hexdigest())
                kept.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, kept)
                mismatches.append(f"{url}: {problem}; the bytes are kept at {kept}")
                continue
            return self._install(file, part, hashes, url, records, pinned)
        if mismatches:
            raise ChecksumError(
                f"{self.dataset}: {file.name} failed verification from every source ({'; '.join(mismatches + failures)}); "
                "try another --mirror, or --no-verify if this is your own copy"
            )
        raise FetchError(
            f"{self.dataset}: could not fetch {file.name} ({'; '.join(failures)}); "
            "check the network, add a mirror with --mirror URL, or use --from PATH"
        )

    def _check(self, file: File, hashes: _Hashes, pinned: dict[str, Any] | None) -> str | None:
        if not self.verify:
            return None
        if file.size is not None and hashes.size != file.size:
            return f"size {hashes.size:,} bytes, expected {file.size:,}"
        if file.checksum:
            algo, expected = file.checksum
            actual = getattr(hashes, algo).hexdigest()
            if actual != expected:
                return f"{algo} {actual}, expected {expected}"
        elif pinned and pinned.get("status") == "pinned" and pinned["sha256"] != hashes.sha256.hexdigest():
            return f"sha256 {hashes.sha256.hexdigest()}, expected the pinned {pinned['sha256']} from the first download"
        return None

    def _install(self, file: File, part: Path, hashes: _Hashes, url: str, records: dict[str, Any], pinned: Any) -> Path:
        sha = hashes.sha256.hexdigest()
        target = self.cache.download(sha)
        if target.exists():
            part.unlink()
        else:
            os.replace(part, target)
        md5 = hashes.md5.hexdigest()
        index = self.cache.md5_index(md5)
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text(sha + "\n")
        if not self.verify:
            status = "unverified"
        elif file.checksum:
            status = "verified"
        else:
            status = "pinned"
        records[file.name] = {
            "sha256": sha, "md5": md5, "size": hashes.size, "status": status,
            "source": url, "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if status == "pinned" and pinned and pinned.get("status") == "pinned":
            records[file.name]["pinned"] = pinned.get("pinned", pinned.get("fetched"))
        elif status == "pinned":
            records[file.name]["pinned"] = records[file.name]["fetched"]
        return target

    # -- bytes -------------------------------------------------------------------------------
    def _download(self, url: str, part: Path, file: File) -> _Hashes:
        """Stream ``url`` into ``part``, resuming and retrying; return the hashes of the whole file."""
        attempts = config.retries()
        delay = _backoff()
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(url, part, file)
            except FileNotFoundError:
                raise
            except PermissionError:
                raise
            except Exception:
                if attempt == attempts:
                    raise
                time.sleep(delay * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _attempt(self, url: str, part: Path, file: File) -> _Hashes:
        import fsspec

        offset = part.stat().st_size if part.exists() else 0
        if file.size is not None and offset > file.size:
            offset = 0
        config.check_network(url)
        fs, path = fsspec.core.url_to_fs(url)
        if _is_http(url):
            kwargs: dict[str, Any] = {"block_size": 0}
            if file.size:
                kwargs["size"] = file.size  # skips a HEAD request; streaming ignores it otherwise
            if offset:
                kwargs["headers"] = {"Range": f"bytes={offset}-"}
            source = fs.open(path, "rb", **kwargs)
            status = getattr(getattr(source, "r", None), "status", None)
            if offset and status != 206:
                offset = 0  # the server ignored Range: start over
        else:
            source = fs.open(path, "rb")
            if offset:
                source.seek(offset)
        hashes = _Hashes()
        if offset:
            with open(part, "rb") as done:
                while chunk := done.read(CHUNK):
                    hashes.update(chunk)
            if hashes.size != offset:
                raise _Cut(f"{part} changed while resuming")
        with source, open(part, "r+b" if offset else "wb") as out, _progress(file.name, file.size, offset, self.quiet) as bar:
            out.seek(offset)
            out.truncate()
            while chunk := source.read(CHUNK):
                out.write(chunk)
                hashes.update(chunk)
                self.bytes_transferred += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        return hashes


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, DsregError):  # already worded for the user
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

