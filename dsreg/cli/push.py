"""``dsreg push``: publish a prepared dataset to any fsspec URL, for `--remote` / `remote=` / DSREG_REMOTE to pull."""

from __future__ import annotations

import click

from .. import api
from .app import CONTEXT, _echo_json, config_option, parse_config


@click.command("push", context_settings=CONTEXT)
@click.argument("name")
@click.argument("url")
@config_option
@click.option(
    "--split",
    "splits",
    multiple=True,
    metavar="SPLIT",
    help="Push only this split (repeatable; default: the splits prepared here, or every split when none is).",
)
@click.option("-q", "--quiet", is_flag=True, help="No line per pushed split, no progress of a prepare.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes for decoding if a split must be prepared first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: where it went, the splits, shards and bytes sent.")
def push_cmd(
    name: str, url: str, config: tuple[str, ...], splits: tuple[str, ...], quiet: bool, workers: int | None, as_json: bool
) -> None:
    """Publish the prepared store of NAME to URL, so other machines pull it instead of preparing it.

    URL is any fsspec URL or a folder: s3://bucket/datasets (pip install 'dsreg[s3]'; credentials
    and endpoint from the AWS_* variables), a mounted share, gs://... The store lands at
    URL/NAME/<config id>/ with the same shards and manifest.json as the local store; shards go
    first and the manifest last, merged with the splits already there, and a shard the remote
    already holds with the same sha256 is not sent again. A split not prepared here is fetched
    and prepared first.

    \b
    Then, on any machine:
      dsreg fetch NAME --remote URL            pull instead of preparing from the raw files
      dsreg.load(NAME, "train", remote=URL)    the same from Python
      DSREG_REMOTE=URL                         the default remote of load and fetch
    """
    done = api.push(name, url, split=list(splits) or None, quiet=quiet, workers=workers, **parse_config(config))
    if as_json:
        _echo_json(done.to_json())
        return
    sent = f"{done.shards} shard(s), {done.bytes:,} bytes sent" + (f", {done.skipped} already there" if done.skipped else "")
    click.echo(f"{name}: {', '.join(done.splits)} -> {done.location} ({sent})")
