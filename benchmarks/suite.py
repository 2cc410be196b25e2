"""The measurements. Each section returns rows; baselines run first and dsreg right after.

A row: ``{"section", "name", "value", "unit", "runs", "note"}`` with ``value`` the median of
``runs`` repetitions; ratios are computed from rows of the same run in ``report.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from . import baselines

Row = dict[str, Any]


def row(section: str, name: str, samples: list[float], unit: str, note: str = "", **extra: Any) -> Row:
    return {
        "section": section,
        "name": name,
        "value": statistics.median(samples),
        "unit": unit,
        "runs": len(samples),
        "samples": [round(s, 4) for s in samples],
        "note": note,
        **extra,
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# -- the dsreg side: the notmnist builder pointed at the generated archives --------------------
def bench_builder(meta: dict[str, Any]) -> type:
    """The notmnist Builder with the generated archives' sizes and md5s (verified like the real ones)."""
    import dsreg
    from dsreg_notmnist import NotMNIST

    files = tuple(
        dsreg.File(f.name, size=meta[f.name.removesuffix(".tar.gz")]["bytes"], md5=meta[f.name.removesuffix(".tar.gz")]["md5"])
        for f in NotMNIST.files
    )
    # The real recipe's 10,000 validation images, or a tenth of a small generated archive.
    images = meta["notMNIST_large"]["images"] or 500_000
    config = {**NotMNIST.config, "validation_size": min(10_000, images // 10)}
    return type("BenchNotMNIST", (NotMNIST,), {"files": files, "config": config, "__module__": NotMNIST.__module__})


@contextlib.contextmanager
def fresh_cache(work: Path) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    old = os.environ.get("DSREG_CACHE")
    os.environ["DSREG_CACHE"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("DSREG_CACHE", None)
        else:
            os.environ["DSREG_CACHE"] = old


# -- 1. prepare --------------------------------------------------------------------------------
def prepare(archives: Path, meta: dict[str, Any], work: Path, reps: int, keep_cache: Path) -> list[Row]:
    import dsreg
    from dsreg.testing import LoopbackServer, registered

    rows: list[Row] = []
    udacity, images = [], 0
    for _ in range(reps):
        out = Path(tempfile.mkdtemp(prefix="udacity-", dir=work))
        seconds, images = timed(partial(baselines.udacity_prepare, archives, out))
        udacity.append(seconds)
        shutil.rmtree(out)
    rows.append(
        row(
            "prepare",
            "Udacity notebook (extract, PIL, pickle)",
            [images / s for s in udacity],
            "images/s",
            f"{images:,} images decoded",
            images=images,
        )
    )

    builder = bench_builder(meta)
    with registered(builder):
        for label, mirror_of in (("file://", lambda: f"file://{archives}/"), ("loopback HTTP", None)):
            rates = []
            for _ in range(reps):
                with fresh_cache(work) as cache, contextlib.ExitStack() as stack:
                    if mirror_of is None:
                        server = stack.enter_context(LoopbackServer())
                        url = server.serve({p.name: p.read_bytes() for p in archives.glob("*.tar.gz")})
                    else:
                        url = mirror_of()
                    seconds, info = timed(partial(dsreg.fetch, "notmnist", mirrors=[url], quiet=True))
                    rates.append(images / seconds)
                    counts = {s: m["examples"] for s, m in info.manifest["splits"].items()}
                    notes = info.manifest["notes"]
                    shutil.rmtree(cache)
            rows.append(
                row(
                    "prepare",
                    f"dsreg fetch from {label}",
                    rates,
                    "images/s",
                    f"download + verify + prepare; splits {counts}",
                    counts=counts,
                    notes=notes,
                )
            )
    ensure_prepared(archives, keep_cache)
    return rows


def ensure_prepared(archives: Path, cache: Path) -> None:
    """Prepare the one copy the epoch and memory sections read (a no-op when it is there)."""
    import dsreg
    from dsreg.testing import registered

    os.environ["DSREG_CACHE"] = str(cache)
    with registered(bench_builder_from_cache(cache)):
        dsreg.fetch("notmnist", mirrors=[f"file://{archives}/"], quiet=True)


# -- 2. epoch ----------------------------------------------------------------------------------
def _throughput(loader: Any, max_batches: int | None) -> tuple[float, int]:
    """Images/s over ``max_batches`` batches after one warm-up batch (whole epoch when None)."""
    it = iter(loader)
    first = next(it)
    seen = 0
    start = time.perf_counter()
    for i, batch in enumerate(it):
        images = batch[0] if isinstance(batch, (tuple, list)) else batch["image"]
        seen += len(images)
        if max_batches is not None and i + 1 >= max_batches:
            break
    del first
    return seen / (time.perf_counter() - start), seen


def epoch(archives: Path, work: Path, reps: int, quick: bool, cache: Path) -> list[Row]:
    import tarfile

    import torch

    import dsreg
    from dsreg.testing import registered

    rows: list[Row] = []
    extracted = work / "extracted"
    if not extracted.exists():
        with tarfile.open(archives / "notMNIST_large.tar.gz") as tar:
            tar.extractall(extracted, filter="data")
    root = extracted / "notMNIST_large"
    slow_batches = 8 if quick else 40

    folder_ds = baselines.ImageFolderStyle(root)
    for workers in (0, 2):
        rates = []
        for _ in range(reps):
            loader = torch.utils.data.DataLoader(folder_ds, batch_size=256, shuffle=True, num_workers=workers)
            rate, seen = _throughput(loader, slow_batches)
            rates.append(rate)
        rows.append(
            row(
                "epoch",
                f"ImageFolder-style (PIL per item), workers={workers}",
                rates,
                "images/s",
                f"{seen:,} images after a warm-up batch",
                workers=workers,
                kind="imagefolder",
            )
        )

    # Hugging Face imagefolder: built once over a subset (building it over 500k files takes minutes).
    import datasets

    per_class = 30 if quick else 2000  # quick: 300 files, one short batch after the warm-up one
    subset = work / "hf-subset"
    if subset.exists():
        shutil.rmtree(subset)
    left_out = baselines.readable_subset(root, subset, per_class)
    datasets.disable_progress_bars()
    build_s, hf = timed(lambda: datasets.load_dataset("imagefolder", data_dir=str(subset), split="train", cache_dir=str(work / "hf-cache")))
    hf = hf.with_format("torch")
    for workers in (0, 2):
        rates = []
        for _ in range(reps):
            loader = torch.utils.data.DataLoader(hf, batch_size=256, shuffle=True, num_workers=workers, collate_fn=baselines.hf_collate)
            rate, seen = _throughput(loader, slow_batches)
            rates.append(rate)
        rows.append(
            row(
                "epoch",
                f"HF datasets imagefolder, with_format('torch'), workers={workers}",
                rates,
                "images/s",
                f"{seen:,} images; building it over {len(hf):,} files took {build_s:.0f} s (not counted)"
                + (f"; {left_out} undecodable files left out (imagefolder cannot skip them)" if left_out else ""),
                workers=workers,
                kind="hf",
            )
        )

    ensure_prepared(archives, cache)
    with registered(bench_builder_from_cache(cache)):
        train = dsreg.load("notmnist", split="train", download=False)
        n = len(train)
        for workers in (0, 2):
            rates = []
            for _ in range(reps):
                loader = train.loader(batch_size=256, shuffle=True, num_workers=workers, persistent_workers=False)
                rate, seen = _throughput(loader, None)
                rates.append(rate)
            rows.append(
                row(
                    "epoch",
                    f"dsreg load().loader(batch_size=256, shuffle=True), workers={workers}",
                    rates,
                    "images/s",
                    f"a whole epoch: {n:,} images",
                    workers=workers,
                    kind="dsreg",
                )
            )
        everything = train.__getitems__(range(n))
        images, labels = everything["image"].clone(), everything["label"].clone()
        rates = []
        for _ in range(reps):
            start = time.perf_counter()
            perm = torch.randperm(n)
            for i in range(0, n, 256):
                idx = perm[i : i + 256]
                x = images.index_select(0, idx).float().sub_(127.5).div_(255)
                y = labels.index_select(0, idx)
            rates.append(n / (time.perf_counter() - start))
            del x, y
        rows.append(
            row(
                "epoch",
                "limit: uint8 tensor in RAM, randperm + index_select to float32",
                rates,
                "images/s",
                f"a whole epoch: {n:,} images",
                kind="limit",
            )
        )
    return rows


def bench_builder_from_cache(cache: Path) -> type:
    return bench_builder(json.loads((cache / "bench-meta.json").read_text()))


# -- 3. start-up -------------------------------------------------------------------------------
def startup(reps: int, warm: bool = True) -> list[Row]:
    """Time each command ``reps`` times; ``warm`` runs each once first, untimed, to fill the disk cache (--quick skips it)."""
    exe = Path(sys.executable).with_name("dsreg")
    commands = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "dsreg list": [str(exe), "list"],
        "dsreg info notmnist": [str(exe), "info", "notmnist"],
    }
    rows = []
    for name, cmd in commands.items():
        if warm:
            subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
        samples = []
        for _ in range(reps):
            seconds, _ = timed(partial(subprocess.run, cmd, capture_output=True, check=True))
            samples.append(seconds)
        rows.append(row("startup", name, samples, "s", "whole process, cold interpreter, warm disk cache"))
    return rows


# -- 4. trainer --------------------------------------------------------------------------------
def trainer(reps: int, quick: bool) -> list[Row]:
    from . import default_models, trainer_overhead

    # Cheap epochs (a fraction of a second), so more runs than elsewhere: 7, as the stand-alone script.
    # Quick runs each side once and leaves out the checkpointing trainer (no row reports it).
    result = trainer_overhead.measure(examples=1_000 if quick else 20_000, runs=1 if quick else 7, batch_size=128, checkpoint=not quick)
    return [
        row("trainer", "hand-written loop (zero_grad, forward, loss, backward, step)", result["hand"], "s/epoch", result["note"]),
        row("trainer", "dsreg.train.Trainer.fit, one epoch", result["trainer"], "s/epoch", result["note"]),
        *default_models.rows(
            runs=1 if quick else 7, quick=quick, datasets=default_models.QUICK if quick else tuple(default_models.DATASETS)
        ),
    ]


# -- 5. memory ---------------------------------------------------------------------------------
def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", *args], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe {args} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(archives: Path, work: Path, cache: Path) -> list[Row]:
    ensure_prepared(archives, cache)
    baseline = _child(["udacity", str(archives), str(Path(tempfile.mkdtemp(prefix="udacity-mem-", dir=work)))])
    idle = _child(["torch"])
    probe = _child(["dsreg", str(cache)])
    mib = 1024 * 1024
    return [
        row("memory", "Udacity notebook prepare, peak RSS", [baseline["peak_rss"] / mib], "MiB"),
        row("memory", "python + import torch, peak RSS", [idle["peak_rss"] / mib], "MiB"),
        row(
            "memory",
            "dsreg load notmnist train + one epoch (workers=0), peak RSS",
            [probe["peak_rss"] / mib],
            "MiB",
            f"prepared train split on disk: {probe['prepared_bytes'] / mib:,.0f} MiB",
            prepared_mib=probe["prepared_bytes"] / mib,
        ),
    ]
