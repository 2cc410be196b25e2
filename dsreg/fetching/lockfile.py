"""Lockfile: the plugins, configs and exact bytes of a set of datasets, written down so another machine fetches the same.

``dsreg lock NAME...`` writes one (``dsreg.lock``, TOML, stable ordering: plugins and datasets by
name, files by name); ``dsreg fetch --locked dsreg.lock`` fetches exactly what it says and refuses
any drift. A lock records, per dataset, the plugin that registers it (its distribution and
version), the config given and its ``config_id``, and per file its URLs, size and sha256: the
published one, else the pin the cache holds (``Status.PINNED``), else the sha256 of bytes the cache
verified against a published md5. A file with none of those is written ``sha256_from = "unpinned"``
(fetch it once, so that it is pinned, and lock again).

This module knows the format and the checks (``drift``, ``missing``, ``enforced``); fetching
through a lock is ``dsreg.cli.lock.fetch_locked``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..builder import File
from ..errors import ConfigError
from ..plugins import get_registry
from .cache import Cache
from .records import Status

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport (a dependency there)
    import tomli as tomllib

__all__ = ["Lock", "LockedDataset", "LockedFile", "LockedPlugin", "make_lock", "drift", "missing", "enforced", "FORMAT"]

#: The lock format this dsreg writes and reads (``lock_version``).
FORMAT = 1
#: Where a locked file's sha256 came from.
PUBLISHED, PINNED, DOWNLOADED, UNPINNED = "published", "pinned", "downloaded", "unpinned"


@dataclass(frozen=True)
class LockedPlugin:
    """A plugin a locked dataset comes from: its name and, when installed from a package, the distribution and version."""

    name: str
    dist: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class LockedFile:
    """One file of a locked dataset: where it is published, its size and the sha256 its bytes must have."""

    name: str
    urls: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    #: PUBLISHED (the plugin's), PINNED (the cache's pin), DOWNLOADED (bytes verified by the published md5) or UNPINNED.
    sha256_from: str = UNPINNED
    md5: str | None = None


@dataclass(frozen=True)
class LockedDataset:
    """One dataset configuration: its plugin, the config given, its config id and its files."""

    name: str
    plugin: str
    config_id: str
    config: dict[str, Any] = field(default_factory=dict)
    files: tuple[LockedFile, ...] = ()


@dataclass(frozen=True)
class Lock:
    """What ``dsreg lock`` writes: the plugins and the datasets, each sorted by name."""

    plugins: tuple[LockedPlugin, ...]
    datasets: tuple[LockedDataset, ...]

    def dataset(self, name: str) -> LockedDataset:
        """Return the locked dataset ``name``; ConfigError naming the locked ones if it is not there."""
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        raise ConfigError(f"the lock holds no dataset {name!r}; it holds {', '.join(d.name for d in self.datasets)}")

    def plugin(self, name: str) -> LockedPlugin:
        return next(p for p in self.plugins if p.name == name)

    # -- TOML ------------------------------------------------------------------------------
    def to_toml(self, command: str = "dsreg lock") -> str:
        """Return the lock as TOML, the same text for the same lock (sorted, one key per line)."""
        lines = [
            f"# Written by `{command}`. `dsreg fetch --locked FILE` fetches exactly this and refuses any drift;",
            "# write it again with `dsreg lock` rather than by hand.",
            f"lock_version = {FORMAT}",
        ]
        for plugin in self.plugins:
            lines += ["", "[[plugin]]", *_pairs({"name": plugin.name, "dist": plugin.dist, "version": plugin.version})]
        for dataset in self.datasets:
            lines += [
                "",
                "[[dataset]]",
                *_pairs({"name": dataset.name, "plugin": dataset.plugin, "config_id": dataset.config_id}),
                f"config = {_value(dataset.config, f'{dataset.name} config')}",
            ]
            for file in dataset.files:
                lines += ["", "[[dataset.file]]"]
                if file.sha256_from == UNPINNED:
                    lines.append(f"# no sha256 known: fetch {dataset.name} once (which pins it), then lock again")
                lines += _pairs(
                    {"name": file.name, "size": file.size, "sha256": file.sha256, "sha256_from": file.sha256_from, "md5": file.md5}
                )
                lines += ["urls = [", *[f"  {_value(url, file.name)}," for url in file.urls], "]"] if file.urls else ["urls = []"]
        return "\n".join(lines) + "\n"

    def write(self, path: str | os.PathLike[str], command: str = "dsreg lock") -> Path:
        """Write the lock to ``path`` as TOML; return the path."""
        path = Path(path)
        path.write_text(self.to_toml(command))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Lock:
        """Read a lock written by ``write``; ConfigError naming the file and what is wrong with it."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no lockfile at {path}; write one with `dsreg lock NAME... -o {path}`") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the lockfile {path} ({exc}); write it again with `dsreg lock NAME... -o {path}`") from None
        try:
            return cls.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"the lockfile {path} is not one `dsreg lock` writes ({exc}); write it again with `dsreg lock NAME... -o {path}`"
            ) from None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lock:
        """Build a Lock from the parsed TOML; KeyError, TypeError or ValueError if it does not fit the format."""
        if data.get("lock_version") != FORMAT:
            raise ValueError(f"lock_version {data.get('lock_version')!r}, this dsreg reads {FORMAT}")
        plugins = tuple(LockedPlugin(p["name"], p.get("dist"), p.get("version")) for p in data.get("plugin", []))
        datasets = tuple(
            LockedDataset(
                d["name"],
                d["plugin"],
                d["config_id"],
                dict(d.get("config", {})),
                tuple(
                    LockedFile(
                        f["name"], tuple(f.get("urls", ())), f.get("size"), f.get("sha256"), f.get("sha256_from", UNPINNED), f.get("md5")
                    )
                    for f in d.get("file", [])
                ),
            )
            for d in data.get("dataset", [])
        )
        return cls(plugins, datasets)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _pairs(values: Mapping[str, Any]) -> list[str]:
    """``key = value`` lines for the values that are set (TOML has no null)."""
    return [f"{key} = {_value(value, key)}" for key, value in values.items() if value is not None]


def _value(value: Any, where: str) -> str:
    """Return ``value`` as a TOML value on one line (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item, where) for item in value) + "]"
    if isinstance(value, Mapping):
        items = sorted(value.items())
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v, where)}" for k, v in items) + "}"
    raise ConfigError(
        f"{where}: {value!r} cannot be written in a lockfile (TOML has strings, numbers, booleans, lists and tables, and no null)"
    )


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


# -- making a lock and checking one -------------------------------------------------------------


def installed_version(dist: str | None) -> str | None:
    """Return the installed version of distribution ``dist`` (None for an in-process plugin or one not installed)."""
    if dist is None:
        return None
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def make_lock(names: Iterable[str], config: Mapping[str, Any], cache: Cache) -> Lock:
    """Lock the datasets ``names``, each with ``config``: their plugins, config ids and files (pins from ``cache``)."""
    registry = get_registry()
    plugins: dict[str, LockedPlugin] = {}
    datasets: dict[str, LockedDataset] = {}
    for name in names:
        entry = registry.get(name)
        builder = entry.builder(**config)
        record = entry.plugin
        plugins[record.name] = LockedPlugin(record.name, record.dist, installed_version(record.dist))
        records = cache.read_records(builder.name)
        files = tuple(_locked_file(file, records.get(file.name)) for file in sorted(builder.get_files(), key=lambda f: f.name))
        datasets[builder.name] = LockedDataset(builder.name, record.name, builder.config_id, dict(config), files)
    return Lock(tuple(plugins[k] for k in sorted(plugins)), tuple(datasets[k] for k in sorted(datasets)))


def _locked_file(file: File, record: Any) -> LockedFile:
    sha256, source = file.sha256, PUBLISHED
    if sha256 is None and record is not None:
        if file.md5 is None and record.status is Status.PINNED:
            sha256, source = record.sha256, PINNED
        elif file.md5 is not None and record.md5 == file.md5 and record.status is Status.VERIFIED:
            sha256, source = record.sha256, DOWNLOADED
    if sha256 is None:
        source = UNPINNED
    return LockedFile(file.name, tuple(file.urls), file.size, sha256, source, file.md5)


def drift(locked: LockedDataset, lock: Lock) -> list[str]:
    """Return one line per way the installed plugin differs from ``locked``: version, config id, files; [] if none."""
    registry = get_registry()
    entry = registry.get(locked.name)
    lines = []
    want = lock.plugin(locked.plugin) if any(p.name == locked.plugin for p in lock.plugins) else LockedPlugin(locked.plugin)
    have = entry.plugin
    if have.name != want.name:
        lines.append(f"{locked.name}: registered by plugin {have.name!r} now, by {want.name!r} in the lock")
    elif (have.dist, installed_version(have.dist)) != (want.dist, want.version):
        lines.append(
            f"{locked.name}: plugin {have.name} is {have.dist or 'in-process'} {installed_version(have.dist) or ''}".rstrip()
            + f" now, {want.dist or 'in-process'} {want.version or ''}".rstrip()
            + " in the lock"
        )
    builder = entry.builder(**locked.config)
    if builder.config_id != locked.config_id:
        lines.append(
            f"{locked.name}: config id {builder.config_id} now, {locked.config_id} in the lock "
            "(the plugin's version, the config or the data it fingerprints changed)"
        )
    files = {file.name: file for file in builder.get_files()}
    for file in locked.files:
        now = files.pop(file.name, None)
        if now is None:
            lines.append(f"{locked.name}: {file.name} is in the lock but the plugin no longer declares it")
            continue
        if now.size != file.size:
            lines.append(f"{locked.name}: {file.name} has size {now.size} now, {file.size} in the lock")
        published = file.sha256 if file.sha256_from == PUBLISHED else None
        if now.sha256 != published:
            lines.append(f"{locked.name}: {file.name} publishes sha256 {now.sha256 or 'none'} now, {published or 'none'} in the lock")
        if now.md5 != file.md5:
            lines.append(f"{locked.name}: {file.name} publishes md5 {now.md5 or 'none'} now, {file.md5 or 'none'} in the lock")
    lines += [f"{locked.name}: {name} is declared by the plugin but not in the lock" for name in sorted(files)]
    return lines


def missing(locked: LockedDataset, cache: Cache) -> list[LockedFile]:
    """Return the files of ``locked`` whose bytes the cache lacks (for an unpinned file: any recorded bytes)."""
    records = cache.read_records(locked.name)
    out = []
    for file in locked.files:
        sha256 = file.sha256 or (records[file.name].sha256 if file.name in records else None)
        if sha256 is None or not cache.blob_path(sha256).exists():
            out.append(file)
    return out


def enforced(files: Sequence[File], locked: LockedDataset) -> list[File]:
    """Return ``files`` with the lock's sha256 required of each (the published one, a pin, an md5-verified download)."""
    sha = {file.name: file.sha256 for file in locked.files if file.sha256}
    return [dataclasses.replace(file, sha256=sha[file.name]) if file.name in sha else file for file in files]
