"""The ``dsreg`` command line: thin click commands over the Python API.

Errors print one line and exit 1 (DsregError, and OSError such as a full disk or a folder that may not be
written); a bad option value prints one line and exits 2; ``--debug`` shows the traceback. Nothing here imports torch,
numpy or datasets unless a command needs them, so ``dsreg list`` starts fast.
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Any

import click

from .. import api
from ..errors import ConfigError, DsregError
from ..fetching.cache import Cache

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def human_bytes(n: int | None) -> str:
    """Return ``n`` bytes as e.g. ``8.1 MiB`` (``?`` when unknown)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def note_line(value: Any, width: int = 160) -> str:
    """Return a manifest note as JSON on one line, cut at ``width`` characters (a vocabulary can be long)."""
    text = json.dumps(value)
    if len(text) <= width:
        return text
    return f"{text[:width]}… ({len(text):,} characters; `dsreg info NAME --json` shows all)"


def parse_config(pairs: tuple[str, ...]) -> dict[str, Any]:
    """Turn ``("key=value", ...)`` into a dict, reading each value as JSON when it parses."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"config {pair!r} must look like KEY=VALUE (e.g. -c url=/data/images)")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


#: Built-in commands kept in their own modules, imported only when invoked or listed in --help
#: (name -> "module:attribute"), so that `dsreg list` never pays for torch or matplotlib.
LAZY_COMMANDS: dict[str, str] = {
    "train": "dsreg.cli.train:train_cmd",
    "new-plugin": "dsreg.cli.newplugin:new_plugin_cmd",
    "preview": "dsreg.cli.preview:preview_cmd",
    "catalog": "dsreg.cli.catalog:catalog_cmd",
    "check-urls": "dsreg.cli.checkurls:check_urls_cmd",
    "lock": "dsreg.cli.lock:lock_cmd",
    "doctor": "dsreg.cli.doctor:doctor_cmd",
    "push": "dsreg.cli.push:push_cmd",
}


class DsregGroup(click.Group):
    """Turns DsregError (and Ctrl-C) into one line and a non-zero exit unless --debug is given."""

    lazy: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            import importlib

            module, _, attr = self.lazy[name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


def os_error_line(exc: OSError, command: str) -> str:
    """One line for an OSError no layer below turned into a DsregError: what failed, where, and what to do."""
    from ..store.storage import disk_error

    if exc.filename is not None:
        told = disk_error(exc, Path(exc.filename).parent, command)
        if told is not None:
            return str(told)
        return f"{command} stopped: {exc.strerror or exc}: {exc.filename} (`dsreg --debug ...` shows where)"
    if exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)):
        # A write that names no file (a full disk met while flushing) is the cache's: dsreg writes nowhere else.
        return str(disk_error(exc, Cache().root, command))
    return f"{command} stopped: {exc} (`dsreg --debug ...` shows where)"


class RootGroup(DsregGroup):
    """The ``dsreg`` group: also offers the lazily imported built-in commands."""

    lazy = LAZY_COMMANDS

    def invoke(self, ctx: click.Context) -> Any:
        debug = ctx.find_root().params.get("debug")
        try:
            return super().invoke(ctx)
        except DsregError as exc:
            if debug:
                raise
            click.echo(f"error: {exc.cli_message or exc}", err=True)  # advice worded as flags, not arguments
            ctx.exit(1)
        except OSError as exc:
            if debug or exc.errno == errno.EPIPE:  # output piped into e.g. `head`: click ends quietly
                raise
            click.echo(f"error: {os_error_line(exc, f'dsreg {ctx.invoked_subcommand}')}", err=True)
            ctx.exit(1)
        except click.UsageError as exc:  # a bad option value: one line, not click's usage block
            if debug:
                raise
            # Named "dsreg" whatever the program was called (click's test runner calls it "cli").
            where = " ".join(["dsreg", *(exc.ctx.command_path.split()[1:] if exc.ctx is not None else [])])
            listed = "commands" if type(exc).__name__ == "NoSuchCommand" else "options"  # NoSuchCommand: click >= 8.2
            click.echo(f"error: {exc.format_message()} (`{where} -h` lists the {listed})", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; partial downloads are kept and resume next time", err=True)
            ctx.exit(130)


config_option = click.option(
    "-c",
    "--config",
    "config",
    multiple=True,
    metavar="KEY=VALUE",
    help="Builder config parameter (repeatable), e.g. -c url=/data/images.",
)


@click.group(cls=RootGroup, context_settings=CONTEXT)
@click.version_option(package_name="dsreg", prog_name="dsreg")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """A dataset registry for PyTorch: list, inspect, fetch and train on datasets from plugins."""


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List every registered dataset: name, plugin, task, size and which splits are ready (prepared).

    \b
    READY is "yes" when every split is prepared, "no" when none is, else the ready splits.
    """
    rows: list[dict[str, Any]] = []
    for name in api.names():
        inf = api.info(name)
        rows.append(
            {
                "name": name,
                "plugin": inf.plugin,
                "task": inf.task,
                "size": inf.size,
                "cached": inf.cached,
                "ready_splits": list(inf.ready_splits),
            }
        )
    from ..plugins import problems_line

    problems = problems_line()  # failed plugins and name clashes are never hidden, even when no dataset is left
    if problems is not None:
        click.echo(f"warning: {problems}", err=True)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no datasets registered; install a plugin (e.g. pip install dsreg-notmnist) or see `dsreg plugins`")
        return
    table = [("NAME", "PLUGIN", "TASK", "SIZE", "READY")] + [
        (
            r["name"],
            r["plugin"],
            r["task"] or "-",
            human_bytes(r["size"]) if r["size"] is not None else "-",
            "yes" if r["cached"] else ",".join(r["ready_splits"]) or "no",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@cli.command("info")
@click.argument("name")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_cmd(name: str, config: tuple[str, ...], as_json: bool) -> None:
    """Show a dataset's description, license, citation, files, splits, features and cache state."""
    from ..fetching.records import FileRecord
    from ..plugins import get_registry

    params = parse_config(config)
    inf = api.info(name, **params)
    # The settings `dsreg train NAME` uses when no option is given (the builder's train_defaults).
    defaults = get_registry().get(name).builder(**params).get_train_defaults()
    if as_json:
        _echo_json(inf.to_json() | {"train_defaults": defaults})
        return
    m = inf.manifest
    lines = [
        f"{inf.name} {inf.version}  ({inf.task or 'no task'}; plugin {inf.plugin}" + (f", {inf.dist}" if inf.dist else "") + ")",
        "",
        inf.description.strip() or "(no description)",
        "",
        f"homepage:  {inf.homepage or '-'}",
        f"license:   {inf.license or '-'}",
    ]
    if inf.aliases:
        lines.append(f"aliases:   {', '.join(inf.aliases)}")
    if inf.config:
        lines.append(f"config:    {json.dumps(inf.config, sort_keys=True)}")
    if defaults:
        lines.append(f"training:  {json.dumps(defaults)} (dsreg train {inf.name} uses these unless told otherwise)")
    lines.append("features:")
    lines += [f"  {k}: {v.describe()}" for k, v in inf.features.items()]
    lines.append("splits:")
    for split in inf.splits:
        meta = (m or {}).get("splits", {}).get(split)
        if meta and split in inf.ready_splits:
            skipped = f", {len(meta['skipped'])} skipped" if meta["skipped"] else ""
            lines.append(f"  {split}: {meta['examples']:,} examples{skipped}")
        else:
            lines.append(f"  {split}: not prepared (dsreg fetch {inf.name} --split {split})")
    lines.append("files:")
    for f in inf.files:
        record = inf.fetched.get(f.name)
        checksum = f"{f.checksum[0]} {f.checksum[1]}" if f.checksum else "no published checksum (pinned on first download)"
        lines.append(f"  {f.name}  {human_bytes(f.size)}  {checksum}")
        if record is None:
            lines.append("    not fetched")
        else:
            status = FileRecord.from_json(record).describe_status()
            lines.append(f"    fetched from {record.get('source')}: {status}; sha256 {record['sha256']}")
        for url in f.urls:
            lines.append(f"    mirror {url}")
    if m:
        for split, meta in m["splits"].items():
            if meta["skipped"] and split in inf.ready_splits:
                lines.append(f"skipped in {split}:")
                lines += [f"  {s['key']}: {s['reason']}" for s in meta["skipped"][:20]]
                if len(meta["skipped"]) > 20:
                    lines.append(f"  … {len(meta['skipped']) - 20} more (dsreg info {inf.name} --json lists all)")
        if m.get("notes"):
            lines.append("notes:")
            lines += [f"  {k}: {note_line(v)}" for k, v in m["notes"].items()]
        lines.append(f"prepared:  {inf.prepared_path} ({m['prepared']})")
    else:
        lines.append(f"prepared:  no (run `dsreg fetch {inf.name}`)")
    lines += ["", "citation:", inf.citation.strip() or "-"]
    click.echo("\n".join(lines))


@cli.command("fetch")
@click.argument("names", nargs=-1, metavar="NAMES...")  # required unless --locked: checked in fetch_cmd
@config_option
@click.option(
    "--split",
    "splits",
    multiple=True,
    metavar="SPLIT",
    help="Fetch and prepare only this split, and only the files it needs (repeatable; default: every split).",
)
@click.option("--mirror", "mirrors", multiple=True, metavar="URL", help="Try this base URL or folder first (repeatable).")
@click.option("--from", "from_path", metavar="PATH", help="Take the files from this file or folder instead of downloading.")
@click.option("--no-verify", is_flag=True, help="Accept files whose size or hash differ (recorded and shown by `dsreg info`).")
@click.option(
    "--force", is_flag=True, help="Download and prepare again even if cached (replaces the pin of a file with no published checksum)."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars, and no line per failed download attempt.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes for decoding while preparing (default: all cores).")
@click.option(
    "--executor",
    metavar="SPEC",
    default=None,
    help="Where the decode runs: 'local' (the process pool, default: $DSREG_EXECUTOR, else local) or dask://HOST:PORT (a Dask scheduler; pip install 'dsreg[dask]').",
)
@click.option(
    "--scratch",
    metavar="URL",
    default=None,
    help="Where a cluster's tasks write shards before they are copied in (default: $DSREG_EXECUTOR_SCRATCH, else the store's folder; s3://... for a real cluster).",
)
@click.option(
    "--locked",
    metavar="FILE",
    help="Fetch exactly what this lockfile (`dsreg lock`) says: its datasets (or NAMES of them), configs and sha256s; fail on any drift.",
)
@click.option(
    "--remote",
    metavar="URL",
    default=None,
    help="Pull the prepared splits from this `dsreg push` URL instead of preparing them here (default: $DSREG_REMOTE; '' for none).",
)
def fetch_cmd(
    names: tuple[str, ...],
    config: tuple[str, ...],
    splits: tuple[str, ...],
    mirrors: tuple[str, ...],
    from_path: str | None,
    no_verify: bool,
    force: bool,
    quiet: bool,
    workers: int | None,
    executor: str | None,
    scratch: str | None,
    locked: str | None,
    remote: str | None,
) -> None:
    """Download, verify and prepare datasets (mirrors, resume, checksums, a lock against doing it twice).

    With --split, only that split is prepared, from only the files it needs; splits fetched later
    are added to the same prepared store (`dsreg list` shows which are ready).

    With --locked FILE, the datasets of that lockfile are fetched with the configs it records,
    each file's bytes must have the sha256 it records, and any drift from it (a plugin version,
    a config id, a declared file) stops the fetch before it starts, one line each. With
    DSREG_OFFLINE=1 it lists each missing file with its sha256 and URL.

    With --remote URL (or DSREG_REMOTE), splits not ready here are pulled from a store that
    `dsreg push` published there (verified shard by shard, resumable) and no raw file is
    downloaded; a remote that lacks them, or was written for another version or config, is an
    error (with DSREG_REMOTE, a missing one falls back to preparing here). --force with a remote
    pulls again: shards that differ from the remote's sha256 are downloaded again.

    With --executor dask://HOST:PORT (or DSREG_EXECUTOR), each shard is decoded and written by a
    task on that Dask cluster (the workers need dsreg and the dataset's plugin installed), under
    --scratch (a folder or URL every worker and this machine see); this machine assembles the
    manifest. The shards are byte-identical to a local prepare's.

    \b
    Settings (environment or the config file, see docs/cache.md):
      DSREG_TIMEOUT        seconds a download may go without a byte (default 30)
      DSREG_RETRIES        attempts per URL before the next mirror (default 3)
      DSREG_OFFLINE=1      use only the cache; say what is missing
      DSREG_MAX_MEMBER     largest archive member read (default 256MiB)
      DSREG_MAX_EXPANDED   most an archive may expand to (default 32GiB)
    """
    if locked is not None:
        clashing = [
            flag
            for flag, given in (("-c", config), ("--split", splits), ("--no-verify", no_verify), ("--force", force), ("--remote", remote))
            if given
        ]
        if clashing:
            raise click.UsageError(f"--locked fetches what the lockfile says, so it takes no {', '.join(clashing)}")
        from .lock import fetch_locked

        infos = iter(
            fetch_locked(
                locked, names=names, mirrors=mirrors, from_path=from_path, quiet=quiet, workers=workers, executor=executor, scratch=scratch
            )
        )
    elif not names:
        ctx = click.get_current_context()
        raise click.MissingParameter(ctx=ctx, param=next(p for p in ctx.command.params if p.name == "names"))
    else:
        params = parse_config(config)
        # A generator, so each dataset's line prints as soon as it is ready.
        infos = (
            api.fetch(
                name,
                split=list(splits) or None,
                mirrors=mirrors,
                from_path=from_path,
                verify=not no_verify,
                force=force,
                quiet=quiet,
                workers=workers,
                remote=remote,
                executor=executor,
                scratch=scratch,
                **params,
            )
            for name in names
        )
    for inf in infos:
        ready = {s: (inf.manifest or {})["splits"][s] for s in inf.ready_splits}
        counts = ", ".join(f"{s} {meta['examples']:,}" for s, meta in ready.items())
        skipped = sum(len(meta["skipped"]) for meta in ready.values())
        extra = f"; {skipped} skipped (see `dsreg info {inf.name}`)" if skipped else ""
        click.echo(f"{inf.name}: {counts}{extra} -> {inf.prepared_path}")


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_cmd(as_json: bool) -> None:
    """List loaded plugins and those that failed, with the reason."""
    from ..plugins import get_registry

    records = list(get_registry().plugins.values())
    if as_json:
        _echo_json([r.to_json() for r in records])
        return
    if not records:
        click.echo("no plugins installed")
    for r in records:
        where = f"{r.dist} {r.version}" if r.dist else "-"
        if r.ok:
            what = ", ".join(r.datasets + r.models) or "nothing registered"
            click.echo(f"ok      {r.name} ({where}): {what}")
        else:
            click.echo(f"FAILED  {r.name} ({where}): {'; '.join(r.errors)}")


@cli.group("cache", cls=DsregGroup)
def cache_group() -> None:
    """Inspect and clean the cache (root: $DSREG_CACHE or the user cache dir)."""


@cache_group.command("path")
def cache_path() -> None:
    """Print the cache root."""
    click.echo(str(Cache().root))


@cache_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_ls(as_json: bool) -> None:
    """List cached datasets with their downloaded and prepared sizes."""
    entries = list(Cache().entries())
    if as_json:
        _echo_json([e.to_json() for e in entries])
        return
    if not entries:
        click.echo("the cache is empty")
    for e in entries:
        click.echo(
            f"{e.name}  downloads {human_bytes(e.download_bytes)}  prepared {human_bytes(e.prepared_bytes)} ({len(e.prepared)} config(s))"
        )


@cache_group.command("du")
def cache_du() -> None:
    """Print the total size of the cache."""
    cache = Cache()
    click.echo(f"{human_bytes(cache.total_bytes())}\t{cache.root}")


@cache_group.command("rm")
@click.argument("names", nargs=-1, required=True)
def cache_rm(names: tuple[str, ...]) -> None:
    """Remove datasets from the cache (downloads shared with other datasets are kept)."""
    cache = Cache()
    for name in names:
        freed = cache.remove(name)
        click.echo(f"removed {name} ({human_bytes(freed)})")


def _add_plugin_commands() -> None:
    from ..plugins import call_hook, get_registry

    registry = get_registry()
    if registry.manager is not None:
        call_hook(registry.manager, registry, "register_commands", lambda record: cli)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``dsreg`` console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        _add_plugin_commands()
    except DsregError as exc:  # DSREG_STRICT_PLUGINS=1 and a plugin failed
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return sys.exit(1)
    return cli.main(args=argv, prog_name="dsreg")
