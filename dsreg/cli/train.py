"""``dsreg train NAME``: fetch if needed, train the task's default (or a chosen) model, test, write results.

Thin over ``dsreg.train.Trainer``: the options become one ``TrainSettings`` (``settings_from_options``).
Imported only when the command runs (and torch only inside the command), so ``dsreg list`` and
``dsreg --help`` stay fast.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..train.settings import TrainSettings, check_settings
from .app import CONTEXT, _echo_json, config_option, parse_config

__all__ = [
    "train_cmd",
    "pick_splits",
    "default_out_dir",
    "settings_from_options",
    "option_name",
    "check_options",
    "resume_command",
    "run_train",
]

#: Each ``TrainSettings`` field that ``dsreg train`` sets, and the option (its parameter name) that sets it.
SETTING_OPTIONS = {
    "model": "model",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "schedule": "schedule",
    "clip_grad": "clip_grad",
    "seed": "seed",
    "deterministic": "deterministic",
    "device": "device",
    "precision": "precision",
    "num_workers": "workers",
    "threads": "threads",
    "preload": "preload",
    "out_dir": "out",
    "resume": "resume",
    "quiet": "quiet",
}

_EVAL_SPLITS = ("validation", "valid", "val", "dev")


def pick_splits(splits: list[str]) -> tuple[str, str | None, str | None]:
    """Return (train, per-epoch eval, final test) splits: "train"; a validation split; "test" or the last other one."""
    train = "train" if "train" in splits else splits[0]
    val = next((s for s in _EVAL_SPLITS if s in splits), None)
    others = [s for s in splits if s not in (train, val)]
    test = "test" if "test" in splits else (others[-1] if others else val)
    return train, val, test


def default_out_dir(name: str, resume: bool) -> Path:
    """Return ``runs/<name>-<YYYYmmdd-HHMMSS>``; with ``resume``, the newest such run holding a checkpoint."""
    from ..train.trainer import CHECKPOINT

    if resume:
        earlier = sorted(p.parent for p in Path("runs").glob(f"{name}-*/{CHECKPOINT}"))
        if earlier:
            return earlier[-1]
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _forwarded(ctx: click.Context, out: Path, given_only: bool = False) -> list[str]:
    """Rebuild this command's arguments (without --nproc, with the chosen --out); ``given_only``: those typed."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if param.name in ("nproc", "out") or value is None:
            continue
        if given_only and ctx.get_parameter_source(param.name or "") is click.core.ParameterSource.DEFAULT:
            continue
        if isinstance(param, click.Argument):
            args.append(str(value))
            continue
        assert isinstance(param, click.Option)
        flag = max(param.opts, key=len)  # the long spelling
        if param.is_flag:
            if param.secondary_opts and value is False:
                args.append(param.secondary_opts[0])
            elif value:
                args.append(flag)
        elif param.multiple:
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return [*args, "--out", str(out)]


def option_name(setting: str) -> str:
    """Return the ``dsreg train`` option that sets the ``TrainSettings`` field ``setting`` (``num_workers`` → ``--workers``)."""
    return "--" + SETTING_OPTIONS.get(setting, setting).replace("_", "-")


def settings_from_options(options: Mapping[str, Any], out: Path) -> TrainSettings:
    """Return the ``TrainSettings`` that ``dsreg train``'s parsed ``options`` configure, with run folder ``out``.

    The one place options become settings. A value out of range raises ConfigError in one line that
    names the option as typed (``dsreg train: --batch-size -5 is out of range; ...``), before any work.
    """
    values = {setting: options[option] for setting, option in SETTING_OPTIONS.items()}
    values["preload"] = "auto" if values["preload"] is None else values["preload"]  # neither flag: the trainer decides
    values["out_dir"] = str(out)
    check_settings(values, "dsreg train", spell=option_name)
    if options["nproc"] < 1:
        raise ConfigError(f"dsreg train: --nproc {options['nproc']} is out of range; give a whole number >= 1")
    return TrainSettings(**values)


def check_options(given: dict[str, Any], workers: int | None, nproc: int, threads: int | None = None) -> None:
    """Raise ConfigError (one line, before any work) for an option out of range (``settings_from_options`` does this too)."""
    check_settings({**given, "num_workers": workers, "threads": threads}, "dsreg train", spell=option_name)
    if nproc < 1:
        raise ConfigError(f"dsreg train: --nproc {nproc} is out of range; give a whole number >= 1")


def resume_command(ctx: click.Context, out: Path, nproc: int = 1) -> str:
    """Return the command line that continues this run: every option it was given, its run folder, --resume."""
    args = [a for a in _forwarded(ctx, out, given_only=True) if a != "--resume"]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    return shlex.join(["dsreg", "train", *args, "--resume"])


def run_train(args: list[str]) -> tuple[dict[str, Any], float]:
    """Run ``dsreg train ARGS --json`` in this process; return its metrics and wall seconds.

    For plugin tests that hold a dataset to its documented figure: it fails with the command's
    output when the command fails.
    """
    from click.testing import CliRunner

    from .app import cli

    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["train", *args, "--json"])
    seconds = time.perf_counter() - start
    if result.exit_code != 0:
        raise AssertionError(f"dsreg train {shlex.join(args)} exited {result.exit_code}: {result.output[-2000:]}")
    return json.loads(result.stdout), seconds


def _missing_folders(path: Path) -> list[Path]:
    """Return ``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first: a parent empties once its child is gone
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (the run wrote something) or already gone


def _prepares_here(streaming: bool, remote: str | None = None) -> bool:
    """False when the splits are streamed from ``remote`` or DSREG_REMOTE (nothing is fetched or prepared here first)."""
    from ..store.remote import env_remote

    return not (streaming and (remote if remote is not None else env_remote()))


def _spawn(ctx: click.Context, nproc: int, name: str, params: dict[str, Any], out: Path, quiet: bool) -> None:
    """Fetch once here, then run ``nproc`` training processes through torch.distributed's launcher."""
    from .. import api

    remote = ctx.params.get("remote")
    if _prepares_here(ctx.params.get("streaming", False), remote):
        api.fetch(name, quiet=quiet, remote=remote, **params)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "dsreg",
        "train",
        *_forwarded(ctx, out),
    ]
    rc = subprocess.call(cmd)
    if rc:
        ctx.exit(rc)


_FALLBACK_HELP = "default: the dataset's train_defaults, else"


@click.command("train", context_settings=CONTEXT)
@click.argument("name")
@click.option("-m", "--model", default=None, help="Registered model (default: the dataset's train_defaults, else the first for its task).")
@click.option("--epochs", type=int, default=None, help=f"[{_FALLBACK_HELP} 3]")
@click.option("--batch-size", type=int, default=None, help=f"[{_FALLBACK_HELP} 128]")
@click.option("--lr", type=float, default=None, help=f"Peak learning rate (AdamW). [{_FALLBACK_HELP} 1e-3]")
@click.option("--weight-decay", type=float, default=None, help=f"[{_FALLBACK_HELP} 0.01]")
@click.option("--schedule", default=None, help=f"Learning-rate schedule: cosine, linear or constant. [{_FALLBACK_HELP} cosine]")
@click.option("--clip-grad", type=float, default=None, help=f"Clip the gradient norm to this value. [{_FALLBACK_HELP} off]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--deterministic", is_flag=True, help="Use deterministic algorithms only (slower on GPU).")
@click.option("--device", default="auto", show_default=True, help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps.")
@click.option("--precision", default="auto", show_default=True, help="auto (bf16 on capable GPUs, else fp32), fp32, bf16, fp16.")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes (default: 0 on CPU, up to 4 on GPU).")
@click.option("--threads", type=int, default=None, help="CPU threads per process (default: the cores not busy; see docs/train.md).")
@click.option("--preload/--no-preload", default=None, help="Hold the whole split on the device (default: on CUDA when it fits).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder (default: runs/<name>-<time>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out (default: the newest runs/<name>-*).")
@click.option("--nproc", type=int, default=1, show_default=True, help="Data-parallel processes (launched by torchrun).")
@click.option(
    "--streaming",
    is_flag=True,
    help="Stream the splits from their shards (read in place when prepared here, else from DSREG_REMOTE through "
    "the bounded shard cache); resumable, each rank and worker reading its own part.",
)
@click.option(
    "--remote",
    metavar="URL",
    default=None,
    help="Pull the prepared splits from this `dsreg push` URL (into each node's cache) instead of preparing them; "
    "with --streaming, stream from it (default: $DSREG_REMOTE; '' for none).",
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON (progress goes to stderr).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final result.")
@click.pass_context
def train_cmd(
    ctx: click.Context,
    name: str,
    out: Path | None,
    resume: bool,
    nproc: int,
    config: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    streaming: bool,
    remote: str | None,
    **options: Any,
) -> None:
    """Train a model on dataset NAME, test it, and write checkpoint.pt and metrics.json into the run folder.

    Options not given come from the dataset's train_defaults (`dsreg info NAME` shows them).
    """
    params = parse_config(config)
    out = out or default_out_dir(name, resume)
    settings = settings_from_options(ctx.params, out)  # every option checked, in one line, before any work
    from ..train.trainer import check_run_folder

    made = _missing_folders(out)
    check_run_folder(out)  # before a download or an epoch is spent on a run that could not be saved
    # A run that ends before writing anything (a failed fetch, a bad model name) leaves no empty folders behind.
    ctx.call_on_close(lambda: _remove_if_empty(made))
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        _spawn(ctx, nproc, name, params, out, quiet)
        return

    from .. import api
    from ..train.distributed import node_first, world
    from ..train.trainer import CHECKPOINT, METRICS, Trainer, dataset_defaults, pick_device

    w = world(pick_device(settings.device).type)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        # Each node's local rank 0 downloads and prepares (or pulls from DSREG_REMOTE) into its node's
        # cache; the node's other ranks wait, then find it cached.
        with node_first(w):
            if _prepares_here(streaming, remote):
                inf = api.fetch(name, quiet=quiet or not w.local_main, remote=remote, **params)
            else:
                inf = api.info(name, **params)
        splits = list((inf.manifest or {}).get("splits", {})) or list(inf.splits)
        train_split, val_split, test_split = pick_splits(splits)

        def data(split: str | None, shuffle: bool = False) -> Any:
            if split is None or not streaming:
                return f"{name}:{split}" if split else None
            ds = api.load(name, split=split, streaming=True, remote=remote, **params)
            return ds.shuffle(seed=settings.seed) if shuffle else ds

        trainer = Trainer(None, data(train_split, shuffle=True), data(val_split), config=params, settings=settings, log=say)
        with trainer:
            if not quiet and w.main:
                n_params = sum(p.numel() for p in trainer.module.parameters())
                where = f"{trainer.device}, {trainer.precision}" + (", data on device" if trainer.preloaded else "")
                where += f", {trainer.threads} thread{'s' if trainer.threads != 1 else ''}" if trainer.threads else ""
                where += f", {w.size} processes" + (f" on {w.nodes} nodes" if w.nodes > 1 else "") if w.distributed else ""
                val = f", eval on {val_split}" if val_split else ""
                say(
                    f"{inf.name}: {trainer.model_name} ({n_params:,} parameters) on {where}; "
                    f"{getattr(trainer.train_data, 'total', len(trainer.train_data)):,} {train_split} examples{val}; run folder {out}"
                )
                taken = {k: v for k, v in dataset_defaults(trainer.train_data).items() if getattr(settings, k) is None}
                if taken:
                    say("from the dataset's train_defaults: " + ", ".join(f"{k} {v}" for k, v in taken.items()))
            try:
                trainer.fit()
            except KeyboardInterrupt:
                if w.main:
                    click.echo(f"interrupted; continue with: {resume_command(ctx, out, w.size)}", err=True)
                ctx.exit(130)
            test = trainer.evaluate(data(test_split)) if test_split else None
            trainer.write_metrics(test=test)
            if not w.main:
                return
            if as_json:
                _echo_json(trainer.metrics(test=test) | {"out": str(out)})
                return
            if test is None:
                say("no split other than the training split to test on")
            else:
                say(f"test ({test_split}): loss {test['loss']:.4f}  accuracy {test['accuracy']:.2%} on {test['examples']:,} examples")
                per = [f"{k} {v:.1%}" for k, v in test["per_class"].items() if v is not None]
                if per and len(per) <= 20 and not quiet:
                    say("per class: " + "  ".join(per))
            say(f"wrote {out / CHECKPOINT} and {out / METRICS}")
    finally:
        w.close()
