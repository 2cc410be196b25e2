"""``dsreg doctor``: one report of what an operator needs when something is odd.

It reads, never repairs: the versions (Python, dsreg, and torch's from its metadata, without importing
it), every plugin with its state, the hook implementations that match no hookspec, the cache's health
and the settings in force with where each came from. Each finding has a level:

    error    something is wrong: a plugin failed to load, two plugins registered one name, a hook
             implementation matches no hookspec (so it is never called), a prepared store fails its
             manifest check, a cache record or a setting cannot be read. The command exits 1.
    warning  worth a look, nothing is broken: a ``.part`` file no fetch is writing (orphaned), bytes
             kept aside under downloads/rejected, less than 1 GiB free on the cache's disk, a store
             from another dsreg version or a prepare that did not finish (prepared again on fetch).
    note     plain information: lock files no process holds (harmless: the lock is released when its
             process ends), DSREG_* variables the core does not read (a plugin's own, or a typo).

The exit status is 0 when there is no error, warnings or not.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from .. import hookspecs
from ..errors import CacheError, ConfigError
from ..fetching import config
from ..fetching.cache import Cache, read_json
from ..plugins import format_failure, load_registry, unknown_hooks
from ..registry import Registry
from .app import CONTEXT, _echo_json, human_bytes

__all__ = ["doctor_cmd", "diagnose", "Report", "Finding", "LOW_DISK_BYTES"]

LEVELS = ("error", "warning", "note")

#: Less free space than this on the cache's disk is a warning.
LOW_DISK_BYTES = 1 << 30

#: Every DSREG_* variable the core reads, with what it is when unset.
KNOWN_VARIABLES: dict[str, str] = {
    "DSREG_CACHE": "the user cache dir",
    "DSREG_CONFIG": "the user config dir's dsreg/config.toml",
    "DSREG_OFFLINE": "off",
    "DSREG_NETWORK": "any",
    "DSREG_MIRRORS": "none",
    "DSREG_RETRIES": "3",
    "DSREG_TIMEOUT": "30",
    "DSREG_CONNECT_TIMEOUT": "10, or DSREG_TIMEOUT when smaller",
    "DSREG_BACKOFF": "1",
    "DSREG_MAX_MEMBER": "the dataset's own, else 256MiB",
    "DSREG_MAX_EXPANDED": "the dataset's own, else 32GiB",
    "DSREG_STRICT_PLUGINS": "off",
    "DSREG_LOAD_PLUGINS": "every installed plugin",
    "DSREG_PREPARE_WORKERS": "the usable cores",
    "DSREG_EXECUTOR": "local",
    "DSREG_EXECUTOR_SCRATCH": "the store's own folder",
    "DSREG_SHARD_BYTES": "64MiB",
    "DSREG_PREFETCH": "on",
    "DSREG_REMOTE": "none",
    "DSREG_STREAM_CACHE_BYTES": "4GiB",
}


@dataclass(frozen=True)
class Finding:
    """One thing the doctor found: its level (error, warning, note), the report section and one line."""

    level: str
    section: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"level": self.level, "section": self.section, "message": self.message}


@dataclass
class Report:
    """Everything ``dsreg doctor`` prints, as data (``--json`` prints ``to_json()``)."""

    versions: dict[str, str | None] = field(default_factory=dict)
    plugins: list[dict[str, Any]] = field(default_factory=list)
    unknown_hooks: list[dict[str, str]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    settings: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return not any(f.level == "error" for f in self.findings)

    def ranked(self) -> list[Finding]:
        """Return the findings, errors first, then warnings, then notes."""
        return sorted(self.findings, key=lambda f: LEVELS.index(f.level))

    def add(self, level: str, section: str, message: str) -> None:
        self.findings.append(Finding(level, section, message))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "versions": self.versions,
            "plugins": self.plugins,
            "unknown_hooks": self.unknown_hooks,
            "cache": self.cache,
            "settings": self.settings,
            "findings": [f.to_json() for f in self.ranked()],
        }


def diagnose() -> Report:
    """Look at this installation and its cache (DSREG_CACHE) and return what is wrong, worth a look, or merely so."""
    report = Report(versions=_versions())
    registry = load_registry(strict=False)  # see every plugin, whatever DSREG_STRICT_PLUGINS says
    _check_plugins(report, registry)
    _check_cache(report, Cache(), registry)
    _check_settings(report)
    return report


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, str | None]:
    # torch's version from its metadata: importing torch would cost seconds and could itself be what is broken.
    return {"python": platform.python_version(), "dsreg": _version("dsreg"), "torch": _version("torch")}


def _check_plugins(report: Report, registry: Registry) -> None:
    for record in registry.plugins.values():
        state = "failed" if record.failed else "clash" if record.clashes else "ok"
        report.plugins.append({**record.to_json(), "state": state, "clashes": [c.to_json() for c in record.clashes]})
        if record.failed:
            report.add("error", "plugins", f"plugin failed: {format_failure(record)}")
        for clash in record.clashes:
            report.add("error", "plugins", f"name clash: {clash}; uninstall one of the two or leave one out with DSREG_LOAD_PLUGINS")
    if registry.manager is None:
        return
    hooks = ", ".join(hookspecs.HOOKS)
    for plugin, hook in unknown_hooks(registry.manager):
        report.unknown_hooks.append({"plugin": plugin, "hook": hook})
        report.add(
            "error", "hooks", f"plugin {plugin!r} implements {hook!r}, which is no dsreg hook, so it is never called; the hooks are {hooks}"
        )


def _held(lock: Path) -> bool:
    """Return True when a process holds the lock file ``lock`` now (tried without waiting)."""
    import filelock

    probe = filelock.FileLock(str(lock), timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return True
    probe.release()
    return False


def _age(path: Path) -> str:
    seconds = max(0.0, time.time() - path.stat().st_mtime)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _check_cache(report: Report, cache: Cache, registry: Registry) -> None:
    root = cache.root
    existing = next(p for p in (root, *root.parents) if p.exists())
    disk = shutil.disk_usage(existing)
    report.cache = {
        "root": str(root),
        "exists": root.exists(),
        "used_bytes": cache.total_bytes(),
        "free_bytes": disk.free,
        "disk_bytes": disk.total,
        "locks": [],
        "partials": [],
        "rejected": [],
        "stores": [],
    }
    if disk.free < LOW_DISK_BYTES:
        report.add(
            "warning",
            "cache",
            f"only {human_bytes(disk.free)} free on the disk holding the cache ({root}); "
            f"`dsreg cache rm NAME` frees space, or set DSREG_CACHE to a folder on a bigger disk",
        )
    if not root.exists():
        return
    busy = _check_locks(report, cache)
    _check_partials(report, cache, registry, busy)
    _check_rejected(report, cache)
    for dataset in cache.datasets():
        if dataset in busy:
            report.add("note", "cache", f"{dataset} is being fetched or prepared now: its store is not checked")
        else:
            _check_stores(report, cache, dataset)


def _check_locks(report: Report, cache: Cache) -> set[str]:
    """Report each lock file and return the datasets whose lock a process holds (a fetch is running)."""
    busy = set()
    for lock in sorted((cache.root / "locks").glob("*.lock")):
        held = _held(lock)
        report.cache["locks"].append({"path": str(lock), "dataset": lock.stem, "held": held})
        if held:
            busy.add(lock.stem)
    stale = [lock["dataset"] for lock in report.cache["locks"] if not lock["held"]]
    if stale:
        report.add(
            "note",
            "cache",
            f"{len(stale)} lock file{'s' if len(stale) != 1 else ''} no process holds "
            f"({', '.join(stale)}): harmless, a lock is released when its process ends",
        )
    return busy


def _check_partials(report: Report, cache: Cache, registry: Registry, busy: set[str]) -> None:
    partial = cache.downloads / "partial"
    for part in sorted(partial.rglob("*.part")) if partial.is_dir() else []:
        dataset = part.relative_to(partial).parts[0]
        size = part.stat().st_size
        orphaned = dataset not in busy
        report.cache["partials"].append({"path": str(part), "dataset": dataset, "bytes": size, "orphaned": orphaned})
        if not orphaned:
            continue
        where = f"orphaned partial download {part} ({human_bytes(size)}, last written {_age(part)} ago): no fetch is writing it"
        if dataset in registry.datasets:
            report.add("warning", "cache", f"{where}; `dsreg fetch {dataset}` resumes it, or delete it: rm {shlex.quote(str(part))}")
        else:
            report.add(
                "warning", "cache", f"{where} and no plugin registers {dataset} now, so nothing resumes it: rm {shlex.quote(str(part))}"
            )


def _check_rejected(report: Report, cache: Cache) -> None:
    rejected = cache.downloads / "rejected"
    for folder in sorted(p for p in rejected.iterdir() if p.is_dir()) if rejected.is_dir() else []:
        files = [p for p in folder.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        report.cache["rejected"].append({"path": str(folder), "dataset": folder.name, "files": len(files), "bytes": size})
        if files:
            report.add(
                "warning",
                "cache",
                f"rejected bytes of {folder.name}: {len(files)} file{'s' if len(files) != 1 else ''} "
                f"({human_bytes(size)}) kept aside in {folder} after failing verification; "
                f"look at them, then delete them: rm -r {shlex.quote(str(folder))}",
            )


def _check_stores(report: Report, cache: Cache, dataset: str) -> None:
    from ..store.storage import FORMAT, MANIFEST, read_manifest, ready_splits, split_shards, verify_split

    again = f"the next `dsreg fetch {dataset}` (with the store's -c config) prepares it again, or `dsreg cache rm {dataset}` removes it"
    try:
        records = cache.read_records(dataset)
    except CacheError as exc:
        report.add("error", "cache", str(exc))
        return
    fetched = {name: record.sha256 for name, record in records.items() if cache.blob_path(record.sha256).exists()}
    prepared = cache.dataset_dir(dataset) / "prepared"
    for folder in sorted(p for p in prepared.iterdir() if p.is_dir() and not p.name.startswith(".")) if prepared.is_dir() else []:
        manifest = read_manifest(folder)
        store: dict[str, Any] = {"dataset": dataset, "path": str(folder), "splits": [], "ready": [], "failing": []}
        report.cache["stores"].append(store)
        if manifest is None:
            _unreadable_store(report, folder / MANIFEST, FORMAT, again)
            continue
        ready = ready_splits(folder, manifest, fetched)
        store["splits"], store["ready"] = list(manifest["splits"]), ready
        for split in manifest["splits"]:
            if split in ready:
                # Sizes were checked for readiness; the bytes themselves are checked here (sha256 of every shard).
                damaged = verify_split(folder, manifest, split)
                if damaged:
                    store["failing"].append(split)
                    name, what = next(iter(damaged.items()))
                    more = f" and {len(damaged) - 1} more shard{'s' if len(damaged) > 2 else ''}" if len(damaged) > 1 else ""
                    why = f"shard {name} has {what}{more}"
                    # Its size is right, so a plain fetch would serve it: only --force prepares it again.
                    redo = (
                        f"`dsreg fetch {dataset} --split {split} --force` (with the store's -c config) prepares it again, "
                        f"or `dsreg cache rm {dataset}` removes it"
                    )
                    report.add("error", "cache", f"prepared store {folder}: split {split!r} fails its manifest check ({why}); {redo}")
                continue
            store["failing"].append(split)
            shards = split_shards(manifest, split)
            wrong = [
                shard["file"]
                for shard in shards
                if not (folder / shard["file"]).is_file() or (folder / shard["file"]).stat().st_size != shard.get("bytes")
            ]
            if not shards:
                why = "its manifest entry lists no shards"
            elif wrong:
                why = f"shard {wrong[0]} is missing or not the size recorded" + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "")
            else:
                why = "the files it was generated from are no longer in the cache with the same sha256"
            report.add("error", "cache", f"prepared store {folder}: split {split!r} fails its manifest check ({why}); {again}")


def _unreadable_store(report: Report, manifest: Path, current: int, again: str) -> None:
    if not manifest.exists():
        report.add("warning", "cache", f"prepared store {manifest.parent} has no manifest (a prepare that did not finish); {again}")
        return
    try:
        data = read_json(manifest)
    except CacheError as exc:
        report.add("error", "cache", f"{exc}; {again}")
        return
    found = data.get("format") if isinstance(data, dict) else None
    report.add(
        "warning",
        "cache",
        f"prepared store {manifest.parent} has manifest format {found!r}, not {current} (another dsreg version); {again}",
    )


def _check_settings(report: Report) -> None:
    path = config.config_path()
    try:
        file = config.load_config()
    except ConfigError as exc:
        report.add("error", "settings", str(exc))
        file = {}

    def in_file(table: str, key: str | None = None) -> bool:
        value = file.get(table)
        return isinstance(value, dict) and bool(value) and (key is None or key in value)

    def add(variable: str, read: Any, table: str | None = None, key: str | None = None) -> None:
        # A set variable wins over the config file, which wins over the default (as dsreg.fetching.config reads them).
        set_here = os.environ.get(variable, "").strip() != ""
        where = (
            "environment"
            if set_here
            else f"[{table}]{' ' + key if key else ''} in {path}"
            if table is not None and in_file(table, key)
            else "default"
        )
        try:
            value = read()
        except ConfigError as exc:
            report.add("error", "settings", str(exc))
            value = "invalid"
        if where == "default" and value in (None, ""):
            value = KNOWN_VARIABLES[variable]
        report.settings.append({"name": variable, "value": value, "source": where})

    def raw(variable: str) -> Any:
        return lambda: os.environ.get(variable, "").strip()

    def mirrors() -> str:
        table = file.get("mirrors")
        listed = [f"{name}={urls}" for name, urls in sorted(table.items())] if isinstance(table, dict) else []
        return " ".join(filter(None, [os.environ.get("DSREG_MIRRORS", "").strip(), *listed]))

    add("DSREG_CACHE", lambda: str(Cache().root))
    add("DSREG_CONFIG", lambda: f"{path}{'' if path.exists() else ' (no such file)'}")
    add("DSREG_OFFLINE", lambda: "on" if config.offline() else "off")
    add("DSREG_NETWORK", raw("DSREG_NETWORK"))
    add("DSREG_MIRRORS", mirrors, "mirrors")  # both add up: the variable's mirrors are tried first
    add("DSREG_RETRIES", config.retries, "fetch", "retries")
    add("DSREG_TIMEOUT", config.timeout, "fetch", "timeout")
    add("DSREG_CONNECT_TIMEOUT", config.connect_timeout, "fetch", "connect_timeout")
    add("DSREG_BACKOFF", config.backoff, "fetch", "backoff")
    add("DSREG_MAX_MEMBER", lambda: config.archive_limit("max_member"), "archive", "max_member")
    add("DSREG_MAX_EXPANDED", lambda: config.archive_limit("max_expanded"), "archive", "max_expanded")
    add("DSREG_STRICT_PLUGINS", raw("DSREG_STRICT_PLUGINS"))
    add("DSREG_LOAD_PLUGINS", raw("DSREG_LOAD_PLUGINS"))
    if os.environ.get("DSREG_LOAD_PLUGINS", None) == "":  # set and empty: no entry point loads
        report.settings[-1].update(value="none", source="environment")
    add("DSREG_PREPARE_WORKERS", raw("DSREG_PREPARE_WORKERS"))

    def executor() -> str:  # checked here, so a typo shows up before a prepare starts
        from ..store.executor import check_executor

        return str(check_executor(os.environ.get("DSREG_EXECUTOR", "").strip() or None) or "")

    add("DSREG_EXECUTOR", executor)
    add("DSREG_EXECUTOR_SCRATCH", raw("DSREG_EXECUTOR_SCRATCH"))

    def size(variable: str) -> Any:  # a size variable as bytes, so a typo shows up here and not mid-prepare
        value = os.environ.get(variable, "").strip()
        return lambda: config.parse_size(value, variable) if value else ""

    add("DSREG_SHARD_BYTES", size("DSREG_SHARD_BYTES"))
    add("DSREG_PREFETCH", lambda: "off" if os.environ.get("DSREG_PREFETCH", "1") == "0" else "on")
    add("DSREG_REMOTE", raw("DSREG_REMOTE"))
    add("DSREG_STREAM_CACHE_BYTES", size("DSREG_STREAM_CACHE_BYTES"))
    for variable in sorted(v for v in os.environ if v.startswith("DSREG_") and v not in KNOWN_VARIABLES):
        report.add("note", "settings", f"{variable} is set but the core does not read it (a plugin's own, or a typo?)")


@click.command("doctor", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_cmd(as_json: bool) -> None:
    """Report versions, plugins, misspelt hooks, the cache's health and the settings in force.

    \b
    Exits 1 when something is wrong (a plugin failed, a name clash, a hook matching no hookspec, a
    prepared store failing its manifest check, a setting that cannot be read); warnings (an orphaned
    .part, rejected bytes, low disk space) and notes leave the exit status 0.
    """
    report = diagnose()
    if as_json:
        _echo_json(report.to_json())
    else:
        _print(report)
    if not report.ok:
        raise click.exceptions.Exit(1)


def _print(report: Report) -> None:
    v = report.versions
    click.echo(f"versions  python {v['python']}, dsreg {v['dsreg'] or 'not installed'}, torch {v['torch'] or 'not installed'}")
    click.echo("plugins")
    for p in report.plugins:
        where = f"{p['dist']} {p['version']}" if p["dist"] else "-"
        what = ", ".join(p["datasets"] + p["models"]) or "nothing registered"
        if p["state"] == "failed":
            what = "; ".join(p["errors"])
        elif p["state"] == "clash":
            what += "; lost " + ", ".join(f"{c['name']!r} to {c['owner']}" for c in p["clashes"])
        click.echo(f"  {p['state'].upper() if p['state'] != 'ok' else 'ok':7} {p['name']} ({where}): {what}")
    if not report.plugins:
        click.echo("  none installed")
    click.echo(
        "hooks     "
        + (
            "every hook implementation matches a hookspec"
            if not report.unknown_hooks
            else ", ".join(f"{h['plugin']}: {h['hook']} (no such hook)" for h in report.unknown_hooks)
        )
    )
    c = report.cache
    click.echo(
        f"cache     {c['root']}: {human_bytes(c['used_bytes'])} used, {human_bytes(c['free_bytes'])} free"
        + ("" if c["exists"] else " (not created yet)")
    )
    if c.get("exists"):
        stores = c["stores"]
        failing = sum(bool(s["failing"]) for s in stores)
        click.echo(
            f"          {len(stores)} prepared store{'s' if len(stores) != 1 else ''} ({failing} failing), "
            f"{len(c['partials'])} partial download{'s' if len(c['partials']) != 1 else ''}, "
            f"{sum(r['files'] for r in c['rejected'])} rejected file(s), {len(c['locks'])} lock file(s)"
        )
    click.echo("settings")
    width = max(len(s["name"]) for s in report.settings)
    for s in report.settings:
        click.echo(f"  {s['name']:{width}}  {s['value']}  ({s['source']})")
    counts = [(level, sum(f.level == level for f in report.findings)) for level in LEVELS]
    click.echo(
        ", ".join(f"{n} {level}{'s' if n != 1 else ''}" for level, n in counts)
        + (": nothing is wrong" if report.ok else ": something is wrong")
    )
    for f in report.ranked():
        click.echo(f"  {f.level:7}  {f.message}")
