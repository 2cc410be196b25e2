"""Remote stores: a prepared store published to any fsspec URL (``dsreg push``) and pulled back (``remote=``).

Layout: the remote base URL ``URL`` holds, for each dataset and configuration, the same files as the
local store folder ``Cache.prepared_dir(name, config_id)``::

    URL/<dataset>/<config_id>/manifest.json
    URL/<dataset>/<config_id>/<split>-00000.arrow, <split>-00001.arrow, ...

``push_store`` uploads the shards of the splits asked for (a shard the remote already holds with
the same sha256 and size is skipped), then writes the manifest last, merged with the splits the
remote already had, so a reader never sees a manifest naming a shard that is not there yet (on a
local or mounted folder the manifest is written to ``manifest.json.tmp`` and renamed; an object
store's PUT is atomic by itself).

``pull_store`` reads the remote manifest, refuses one written by another store format, dataset
version, builder or configuration (saying which, and what to do), downloads each shard of the
splits asked for into the local store folder (``.<shard>.part``, resumed from its size when a pull
was cut, sha256-verified against the manifest, then renamed into place) and records each split in
the local manifest with ``"pulled": <remote location>``. It never runs a Builder: the local cache
needs neither the raw files nor the plugin's generate.

The API (``dsreg.push``, ``remote=`` on ``dsreg.fetch`` and ``dsreg.load``, ``DSREG_REMOTE``) takes the
dataset's lock and prepares what a push needs; this module only moves files.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CacheError, ChecksumError, ConfigError, DsregError, FetchError, OfflineError
from ..fetching import config, objectstore
from ..fetching.cache import write_json_atomic
from . import storage

__all__ = [
    "location",
    "env_remote",
    "read_remote_manifest",
    "incompatibility",
    "push_store",
    "pull_store",
    "Transfer",
    "RemoteMissing",
    "ENV",
    "CHUNK",
    "PULL_THREADS",
]

#: The environment variable naming a default remote for ``load`` and ``fetch``.
ENV = "DSREG_REMOTE"
#: Bytes read or written per call while moving a shard.
CHUNK = 8 << 20
#: Shards of one split pulled at the same time.
PULL_THREADS = 4
#: Top-level manifest keys a pulled store takes from the remote (its splits are added one by one).
_STORE_KEYS = ("format", "dataset", "version", "config", "config_id", "builder", "features", "schema", "notes")


class RemoteMissing(FetchError):
    """The remote has no store for this configuration, or not the split asked for."""


@dataclass
class Transfer:
    """What a push or pull moved: the remote location, the splits, and the shards and bytes sent or skipped."""

    location: str
    splits: list[str] = field(default_factory=list)
    shards: int = 0
    skipped: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "splits": self.splits,
            "shards": self.shards,
            "skipped": self.skipped,
            "bytes": self.bytes,
            "seconds": self.seconds,
        }


def location(base: str, dataset: str, config_id: str) -> str:
    """Return where the store of ``dataset`` / ``config_id`` lives under the remote ``base`` (no trailing '/')."""
    return f"{str(base).rstrip('/')}/{dataset}/{config_id}"


def env_remote() -> str | None:
    """Return ``DSREG_REMOTE`` (a default remote for ``load`` and ``fetch``), or None when unset or empty."""
    value = os.environ.get(ENV, "").strip()
    return value or None


def _fs(url: str) -> tuple[Any, str]:
    """Return ``(filesystem, path)`` for a remote URL or local folder, after DSREG_NETWORK and DSREG_OFFLINE allow it."""
    if "://" in url and objectstore.scheme(url) not in ("file", "local") and config.offline():
        raise OfflineError(f"{url} is remote and DSREG_OFFLINE=1 is set; unset DSREG_OFFLINE, or load without a remote")
    config.check_network(url)
    return objectstore.url_to_fs(url)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_remote_manifest(where: str) -> dict[str, Any] | None:
    """Return the manifest at the remote store ``where`` (see ``location``), or None when there is none."""
    fs, root = _fs(where)
    try:
        raw = fs.cat_file(f"{root}/{storage.MANIFEST}")
    except FileNotFoundError:
        return None
    except DsregError:
        raise
    except Exception as exc:
        raise FetchError(f"cannot read {where}/{storage.MANIFEST} ({_reason(exc)}); check the URL and your credentials") from exc
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise CacheError(f"{where}/{storage.MANIFEST} is not a dsreg manifest ({exc}); push the dataset there again") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise CacheError(f"{where}/{storage.MANIFEST} is not a dsreg manifest (no splits); push the dataset there again")
    return manifest


def _configs_at(base: str, dataset: str) -> list[str]:
    """Return the configurations of ``dataset`` the remote ``base`` holds a manifest for (best effort)."""
    try:
        fs, root = _fs(f"{str(base).rstrip('/')}/{dataset}")
        return sorted(path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(root, detail=False) if fs.exists(f"{path}/{storage.MANIFEST}"))
    except Exception:
        return []


def incompatibility(remote: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """Return what makes the ``remote`` manifest unusable for a store described by ``expected``, or None.

    ``expected`` holds the keys a local manifest would have (``format``, ``dataset``, ``version``,
    ``builder``, ``config_id``); the first that differs is named.
    """
    checks = (
        ("format", "dsreg store format", "this dsreg reads format {mine}; push it again with this dsreg"),
        ("dataset", "dataset", "check the URL"),
        ("version", "dataset version", "push it again from a dsreg with the same plugin version, or upgrade the plugin here"),
        ("builder", "builder", "push it again with the plugin installed here"),
        ("config_id", "configuration", "push this configuration there, or pass the -c options the remote was pushed with"),
    )
    for key, what, advice in checks:
        theirs, mine = remote.get(key), expected.get(key)
        if theirs != mine:
            return f"it was written for {what} {theirs!r}, not {mine!r} as here; {advice.format(mine=mine)}"
    return None


# -- push ------------------------------------------------------------------------------------
def _write_manifest(fs: Any, root: str, manifest: Mapping[str, Any]) -> None:
    data = (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode()
    final = f"{root}/{storage.MANIFEST}"
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        tmp = f"{final}.tmp"  # a folder (local or mounted): rename into place, readers never see half a file
        fs.pipe_file(tmp, data)
        os.replace(tmp, final)
    else:
        fs.pipe_file(final, data)  # an object store's PUT replaces the object whole


def push_store(folder: Path, manifest: Mapping[str, Any], base: str, splits: Sequence[str]) -> Transfer:
    """Publish ``splits`` of the local store in ``folder`` (its ``manifest``) to the remote ``base``; return what moved.

    Each split is checked against the local manifest (sizes and sha256) first. Shards go before the
    manifest; the remote's other splits of the same configuration are kept.
    """
    started = time.perf_counter()
    name, config_id = manifest["dataset"], manifest["config_id"]
    where = location(base, name, config_id)
    fs, root = _fs(where)
    remote = read_remote_manifest(where)
    if remote is not None:
        problem = incompatibility(remote, manifest)
        if problem:
            raise ConfigError(
                f"{name}: {where} holds a store this one cannot join: {problem.split(';')[0]}; remove it there, or push to another URL"
            )
    done = Transfer(where)
    for split in splits:
        if split not in manifest["splits"]:
            raise ConfigError(f"{name}: split {split!r} is not prepared here; prepare it first (`dsreg fetch {name} --split {split}`)")
        damaged = storage.verify_split(folder, manifest, split)
        if damaged:
            bad, what = next(iter(damaged.items()))
            raise CacheError(
                f"{name}: {split} shard {bad} here is damaged ({what}); run `dsreg fetch {name} --split {split} --force`, then push"
            )
    try:
        fs.makedirs(root, exist_ok=True)
    except Exception as exc:  # an object store has no folders to make; a local one must be writable
        if "://" not in where or objectstore.scheme(where) in ("file", "local"):
            raise CacheError(f"cannot create {where} ({_reason(exc)}); pass a writable folder or URL") from exc
    theirs = {shard["file"]: shard for s in (remote or {}).get("splits", {}).values() for shard in s.get("shards", [])}
    sources: list[str] = []
    targets: list[str] = []
    for split in splits:
        for shard in storage.split_shards(manifest, split):
            target = f"{root}/{shard['file']}"
            same = theirs.get(shard["file"], {})
            if same.get("sha256") == shard["sha256"] and same.get("bytes") == shard["bytes"] and _size(fs, target) == shard["bytes"]:
                done.skipped += 1
                continue
            sources.append(str(folder / shard["file"]))
            targets.append(target)
            done.shards += 1
            done.bytes += int(shard["bytes"])
        done.splits.append(split)
    if sources:
        try:  # one call: an object store's backend sends the shards concurrently
            fs.put(sources, targets)
        except DsregError:
            raise
        except Exception as exc:
            raise FetchError(f"{name}: uploading shards to {where} failed ({_reason(exc)}); run the push again") from exc
    merged: dict[str, Any] = dict(remote) if remote is not None else {key: manifest[key] for key in _STORE_KEYS if key in manifest}
    merged["splits"] = dict(merged.get("splits", {}))
    for split in splits:
        entry = dict(manifest["splits"][split])
        entry.pop("pulled", None)
        merged["splits"][split] = entry
    order = [s for s in manifest.get("split_order", []) if s in merged["splits"]]
    merged["split_order"] = order + [s for s in merged.get("split_order", merged["splits"]) if s not in order and s in merged["splits"]]
    merged["pushed"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_manifest(fs, root, merged)
    done.seconds = round(time.perf_counter() - started, 3)
    return done


def _size(fs: Any, path: str) -> int | None:
    try:
        return int(fs.size(path))
    except Exception:
        return None


# -- pull ------------------------------------------------------------------------------------
def _sha256(path: Path, upto: int | None = None) -> Any:
    digest = hashlib.sha256()
    left = upto
    with open(path, "rb") as fh:
        while left is None or left > 0:
            chunk = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest


def _part(folder: Path, shard: Mapping[str, Any]) -> Path:
    """Return where a shard's bytes arrive before they are verified and renamed into place."""
    return folder / f".{shard['file']}.part"


def _here(folder: Path, shard: Mapping[str, Any]) -> bool:
    """True when the shard is in ``folder`` already with the manifest's size and sha256 (an earlier pull, or prepared here)."""
    final = folder / shard["file"]
    return final.exists() and final.stat().st_size == int(shard["bytes"]) and _sha256(final).hexdigest() == shard["sha256"]


def _fetch_whole(fs: Any, remote_paths: list[str], parts: list[Path], where: str, name: str) -> None:
    """Download shards that have no ``.part`` yet in one call (an object store's backend fetches them concurrently).

    A cut leaves what arrived in the ``.part`` files; ``_pull_shard`` then resumes each and verifies it.
    """
    try:
        fs.get(remote_paths, [str(part) for part in parts])
    except FileNotFoundError as exc:
        raise FetchError(f"{name}: {where} lists a shard that is not there ({_reason(exc)}); push the dataset there again") from exc
    except OSError as exc:
        told = storage.disk_error(exc, parts[0].parent, f"pulling {name}")
        if told is not None:
            raise told from exc
        raise FetchError(f"{name}: pulling from {where} stopped ({_reason(exc)}); run it again: it resumes") from exc
    except DsregError:
        raise
    except Exception as exc:
        raise FetchError(f"{name}: pulling from {where} stopped ({_reason(exc)}); run it again: it resumes") from exc


def _pull_shard(fs: Any, remote_path: str, where: str, folder: Path, shard: Mapping[str, Any], name: str, split: str) -> int:
    """Finish one shard's ``.part`` (resuming from its size), verify it and rename it into place; return the bytes read here."""
    final = folder / shard["file"]
    expected = int(shard["bytes"])
    part = _part(folder, shard)
    offset = part.stat().st_size if part.exists() else 0
    if offset > expected:
        part.unlink()
        offset = 0
    digest = _sha256(part, offset) if offset else hashlib.sha256()
    received = 0
    try:
        if offset < expected:  # a whole .part (from _fetch_whole, or left by a cut) is verified as it is
            with fs.open(remote_path, "rb", block_size=CHUNK, cache_type="none") as source, open(part, "r+b" if offset else "wb") as out:
                if offset:
                    source.seek(offset)
                    out.seek(offset)
                    out.truncate()
                while offset + received < expected:
                    chunk = source.read(min(CHUNK, expected - offset - received))
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
        with open(part, "rb+") as out:
            os.fsync(out.fileno())
    except FileNotFoundError as exc:
        raise FetchError(f"{name}: {where} lists {shard['file']} but it is not there; push {split} there again") from exc
    except OSError as exc:
        told = storage.disk_error(exc, folder, f"pulling {name}")
        if told is not None:
            raise told from exc
        raise FetchError(f"{name}: pulling {shard['file']} from {where} stopped ({_reason(exc)}); run it again: it resumes") from exc
    except Exception as exc:
        raise FetchError(f"{name}: pulling {shard['file']} from {where} stopped ({_reason(exc)}); run it again: it resumes") from exc
    size = offset + received
    if size != expected or digest.hexdigest() != shard["sha256"]:
        part.unlink(missing_ok=True)
        what = (
            f"{size:,} bytes, the manifest says {expected:,}"
            if size != expected
            else f"sha256 {digest.hexdigest()}, the manifest says {shard['sha256']}"
        )
        raise ChecksumError(
            f"{name}: {split} shard {shard['file']} at {where} is damaged ({what}); push {split} there again (`dsreg push {name} URL --split {split}`)"
        )
    os.replace(part, final)
    return received


def _local_base(folder: Path, remote: Mapping[str, Any]) -> dict[str, Any]:
    """Return the local manifest a pull adds splits to: the store's own, or a new one taken from the remote's."""
    local = storage.read_manifest(folder)
    if local is not None:
        if local.get("schema") != remote.get("schema"):
            raise CacheError(
                f"{remote.get('dataset')}: the store here has other features than the remote's (prepared from other data); "
                f"run `dsreg cache rm {remote.get('dataset')}`, then pull again"
            )
        return local
    if folder.exists():
        # No store this dsreg reads (none, or an older format): start afresh, keeping what a cut pull
        # left (unfinished .part files, and whole shards the remote lists: each is verified before use).
        keep = {shard["file"] for split in remote["splits"] for shard in storage.split_shards(remote, split)}
        for path in folder.iterdir():
            if path.is_file() and not path.name.endswith(".part") and path.name not in keep:
                path.unlink()
    fresh = {key: remote[key] for key in _STORE_KEYS if key in remote}
    fresh.update(split_order=[], splits={})
    fresh.setdefault("notes", {})
    return fresh


def pull_store(
    base: str, folder: Path, expected: Mapping[str, Any], splits: Sequence[str], *, explicit: bool = True, quiet: bool = False
) -> Transfer:
    """Pull ``splits`` of the store described by ``expected`` from the remote ``base`` into ``folder``; return what moved.

    ``expected`` holds ``format``, ``dataset``, ``version``, ``builder`` and ``config_id`` as a local
    manifest would. Raises ``RemoteMissing`` when the remote lacks the configuration or a split,
    another DsregError when the remote is unusable (its line says which key differs) or damaged.
    The caller holds the dataset's lock.
    """
    started = time.perf_counter()
    name, config_id = expected["dataset"], expected["config_id"]
    where = location(base, name, config_id)
    how = "the remote" if explicit else f"{ENV}"
    remote = read_remote_manifest(where)
    if remote is None:
        others = _configs_at(base, name)
        held = f" (it holds {name} only as {', '.join(others)})" if others else ""
        raise RemoteMissing(
            f"{name}: {how} {base} has no store for this configuration{held}; "
            f"push it first (`dsreg push {name} {base}` with the same -c options), or fetch without the remote to prepare it here"
        )
    problem = incompatibility(remote, expected)
    if problem:
        raise ConfigError(f"{name}: refusing {where}: {problem}")
    absent = [s for s in splits if s not in remote["splits"]]
    if absent:
        have = ", ".join(remote["splits"]) or "none"
        raise RemoteMissing(
            f"{name}: {how} {base} has no split {', '.join(absent)} of this configuration (it has {have}); "
            f"push it first (`dsreg push {name} {base} --split {absent[0]}`), or fetch without the remote to prepare it here"
        )
    fs, root = _fs(where)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        told = storage.disk_error(exc, folder.parent, f"pulling {name}")
        raise (told or CacheError(f"cannot create {folder} ({_reason(exc)}); set DSREG_CACHE to a writable folder")) from exc
    local = _local_base(folder, remote)
    done = Transfer(where)
    for split in splits:
        entry = remote["splits"][split]
        shards = storage.split_shards(remote, split)
        if not shards:
            raise ConfigError(f"{name}: refusing {where}: split {split} lists no shards; push it again with this dsreg")
        todo = [shard for shard in shards if not _here(folder, shard)]
        done.skipped += len(shards) - len(todo)
        # Shards never started travel together in one call; then each .part is finished if a cut left it short
        # (PULL_THREADS at a time), verified and renamed. The first error is raised once all stopped.
        whole = [shard for shard in todo if not _part(folder, shard).exists()]
        if whole:
            _fetch_whole(fs, [f"{root}/{shard['file']}" for shard in whole], [_part(folder, shard) for shard in whole], where, name)
        with concurrent.futures.ThreadPoolExecutor(max(1, min(PULL_THREADS, len(todo))), thread_name_prefix="dsreg-pull") as pool:
            futures = [pool.submit(_pull_shard, fs, f"{root}/{shard['file']}", where, folder, shard, name, split) for shard in todo]
            concurrent.futures.wait(futures)
        for future in futures:
            done.bytes += future.result()
        done.shards += len(todo)
        done.bytes += sum(int(shard["bytes"]) for shard in whole)
        local["splits"][split] = dict(entry) | {"pulled": where}
        order = [s for s in remote.get("split_order", []) if s in local["splits"]]
        local["split_order"] = order + [s for s in local["splits"] if s not in order]
        write_json_atomic(folder / storage.MANIFEST, local)
        done.splits.append(split)
        if not quiet:
            print(f"{name}: pulled {split} from {where} ({len(shards)} shard(s), {entry.get('examples', '?')} examples)", file=sys.stderr)
    done.seconds = round(time.perf_counter() - started, 3)
    return done
