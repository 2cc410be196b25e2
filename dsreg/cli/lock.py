"""``dsreg lock`` and what ``dsreg fetch --locked`` runs: write down exactly what a set of datasets is, then fetch exactly that."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import click

from .. import api
from ..errors import ChecksumError, ConfigError, OfflineError
from ..fetching import config as settings
from ..fetching.cache import Cache
from ..fetching.download import Downloader, Rerun
from ..fetching.lockfile import PINNED, UNPINNED, Lock, LockedDataset, drift, enforced, make_lock, missing
from ..fetching.records import Status
from ..plugins import get_registry
from .app import CONTEXT, config_option, human_bytes, parse_config

__all__ = ["lock_cmd", "fetch_locked", "lock_command"]


def lock_command(names: Sequence[str], config: Mapping[str, Any], output: str | os.PathLike[str]) -> str:
    """Return the ``dsreg lock`` command that writes this lock (the lockfile's header, and the advice on drift)."""
    words = ["dsreg", "lock", *names]
    for key, value in config.items():
        words += ["-c", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return shlex.join([*words, "-o", str(output)])


@click.command("lock", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@config_option
@click.option("-o", "--output", default="dsreg.lock", show_default=True, metavar="FILE", help="Where to write the lockfile.")
def lock_cmd(names: tuple[str, ...], config: tuple[str, ...], output: str) -> None:
    """Write a lockfile: the plugins and their versions, each dataset's config id, every file's URLs, size and sha256.

    A file with no published checksum is locked by its pin in the cache (so fetch the dataset
    first); `dsreg fetch --locked FILE` then fetches exactly this, anywhere, and refuses any drift.
    The -c config applies to every NAME.
    """
    params = parse_config(config)
    lock = make_lock(names, params, Cache())
    lock.write(output, lock_command(names, params, output))
    files = [(dataset.name, file) for dataset in lock.datasets for file in dataset.files]
    size = sum(file.size or 0 for _, file in files)
    click.echo(
        f"wrote {output}: {len(lock.plugins)} plugin(s), {len(lock.datasets)} dataset(s), {len(files)} file(s) ({human_bytes(size)})"
    )
    for name, file in files:
        if file.sha256_from == UNPINNED:
            click.echo(
                f"warning: {name}: {file.name} has no published checksum and is not pinned in the cache, so the lock "
                f"cannot hold its sha256; run `dsreg fetch {name}` (which pins it), then lock again",
                err=True,
            )


def fetch_locked(
    path: str | os.PathLike[str],
    *,
    names: Sequence[str] = (),
    mirrors: Sequence[str] = (),
    from_path: str | None = None,
    quiet: bool = False,
    workers: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    executor: Any = None,
    scratch: str | None = None,
) -> list[api.DatasetInfo]:
    """Fetch the datasets the lockfile ``path`` holds (or ``names`` of them) exactly as locked; return their info.

    Raises ConfigError listing every drift (a plugin version, config id or declared file that differs
    from the lock) before anything is downloaded, OfflineError listing each missing file with its
    sha256 and URL when DSREG_OFFLINE=1, and ChecksumError when a file's bytes differ from the lock.
    """
    lock = Lock.read(path)
    chosen = [lock.dataset(get_registry().get(name).name) for name in names] or list(lock.datasets)
    differences = [line for dataset in chosen for line in drift(dataset, lock)]
    # Written again from every dataset it holds, so relocking never drops one (configs differ: one per command).
    everything = list(lock.datasets)
    again = lock_command([d.name for d in everything], everything[0].config if _one_config(everything) else {}, path)
    if differences:
        raise ConfigError(
            f"{path} does not match what is installed ({len(differences)} difference(s)); install what it was written "
            f"with, or write it again with `{again}`:\n  " + "\n  ".join(differences)
        )
    cache = Cache(cache_dir)
    if settings.offline() and from_path is None:
        lacking = [(dataset, file) for dataset in chosen for file in missing(dataset, cache)]
        if lacking:
            lines = [
                f"{dataset.name}: {file.name}  sha256 {file.sha256 or '(unpinned)'}  {human_bytes(file.size)}  "
                + (f"from {file.urls[0]}" if file.urls else "(no URL: hand it over with --from PATH)")
                for dataset, file in lacking
            ]
            raise OfflineError(
                f"DSREG_OFFLINE=1 is set and the cache at {cache.root} lacks {len(lacking)} file(s) {path} needs; unset "
                f"DSREG_OFFLINE and run `dsreg fetch --locked {path}`, or put the files in a folder and add --from FOLDER:\n  "
                + "\n  ".join(lines)
            )
    infos = []
    for dataset in chosen:
        _download_locked(dataset, cache, path, again, mirrors=mirrors, from_path=from_path, quiet=quiet)
        infos.append(
            api.fetch(
                dataset.name,
                mirrors=mirrors,
                from_path=from_path,
                quiet=quiet,
                workers=workers,
                cache_dir=cache_dir,
                executor=executor,
                scratch=scratch,
                **dataset.config,
            )
        )
    return infos


def _one_config(datasets: Sequence[LockedDataset]) -> bool:
    return all(d.config == datasets[0].config for d in datasets)


def _download_locked(
    dataset: LockedDataset,
    cache: Cache,
    path: str | os.PathLike[str],
    relock: str,
    *,
    mirrors: Sequence[str],
    from_path: str | None,
    quiet: bool,
) -> None:
    """Download the files the lock holds a sha256 for, requiring it; a file the lock pinned stays pinned here."""
    builder = api.get_builder(dataset.name, **dataset.config)
    files = [f for f in enforced(builder.get_files(), dataset) if f.name in {lf.name for lf in dataset.files if lf.sha256}]
    if not files:
        return
    rerun = Rerun(dataset.name, dataset.config, tuple(mirrors), from_path, unverified_ok=False)  # --locked refuses --no-verify
    downloader = Downloader(cache, dataset.name, mirrors=mirrors, from_path=from_path, quiet=quiet, rerun=rerun)
    pinned = {f.name for f in dataset.files if f.sha256_from == PINNED}
    # A pinned file's new bytes must become the pin before a lock can hold them; a published one's come with the plugin.
    first = f"`{rerun.cli(force=True)}` (which pins the new bytes), then " if pinned else ""
    again = f"if it changed upstream on purpose, run {first}`{relock}`"
    with cache.lock(dataset.name):
        try:
            paths = downloader.download(files)
        except ChecksumError as exc:
            exc.add_advice(f"{path} requires the sha256 it locks; {again}", f"{path} requires the sha256 it locks; {again}")
            raise
        for file in files:
            # A record kept with --no-verify is reused whatever its bytes: the blob's name is its sha256.
            if paths[file.name].name != file.sha256:
                raise ChecksumError(
                    f"{dataset.name}: {file.name} in the cache has sha256 {paths[file.name].name}, {path} "
                    f"locks sha256 {file.sha256}; run `{rerun.cli(force=True)}` to download it again, or {again}"
                )
        # The lock's pin was proved good where it was written: keep it as this cache's pin, so a plain
        # `dsreg fetch` (which knows no lock) reuses these bytes and requires them from then on.
        records = cache.read_records(dataset.name)
        changed = {name: record.as_pinned() for name, record in records.items() if name in pinned and record.status is Status.VERIFIED}
        if changed:
            cache.write_records(dataset.name, records | changed)
