"""``dsreg check-urls``: is every published file of each dataset still served, at the right size (and hash)?"""

from __future__ import annotations

import click

from .. import api
from ..errors import DsregError
from ..fetching.probe import FileCheck, probe_files
from .app import CONTEXT, _echo_json, config_option, parse_config


@click.command("check-urls", context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@config_option
@click.option("--mirror", "mirrors", multiple=True, metavar="URL", help="Probe this base URL or folder too, first (repeatable).")
@click.option("--deep", is_flag=True, help="Read every byte and compare the published sha256 (or md5), not just the size.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per file, with every URL's state.")
def check_urls_cmd(names: tuple[str, ...], config: tuple[str, ...], mirrors: tuple[str, ...], deep: bool, as_json: bool) -> None:
    """Check that every file of each dataset (default: all) is served by a live URL of the right size.

    \b
    Each URL of each file (--mirror, your configured mirrors, then the published URLs) prints one line:
      ok      it answers with the published size (with --deep: the published hash)
      dead    an error status, no connection or a timeout (DSREG_TIMEOUT, DSREG_CONNECT_TIMEOUT)
      wrong   another size, an HTML page, or (--deep) other bytes
    Exits 1 when a file has no URL that is ok, so a plugin's CI catches dead mirrors.
    """
    params = parse_config(config)
    checks: list[FileCheck] = []
    for name in names or tuple(api.names()):
        try:
            builder = api.get_builder(name, **params)
            files = builder.get_files()
        except DsregError as exc:
            if names:
                raise
            # Checking every dataset: one that needs config (a user's folder) has no published file to check.
            click.echo(f"{name}: skipped ({exc})", err=True)
            continue
        checks += probe_files(builder.name, files, mirrors=mirrors, deep=deep)
    if as_json:
        _echo_json([check.to_json() for check in checks])
    else:
        for check in checks:
            for url in check.urls:
                click.echo(f"{check.dataset}/{check.file}  {url.state:<5}  {url.url}  {url.detail}")
        urls = [url for check in checks for url in check.urls]
        counts = ", ".join(f"{sum(u.state == state for u in urls)} {state}" for state in ("ok", "dead", "wrong"))
        click.echo(f"{len(checks)} file(s), {len(urls)} URL(s): {counts}")
    lost = [check for check in checks if not check.alive]
    for check in lost:
        why = "no URL" if not check.urls else "no URL that serves it as published"
        click.echo(
            f"error: {check.dataset}/{check.file} has {why}; add a mirror to the plugin or `dsreg fetch "
            f"{check.dataset} --mirror URL` where a copy lives",
            err=True,
        )
    if lost:
        raise SystemExit(1)
