"""Reading the sharded prepared store: warm and cold epochs against the in-RAM limit, at two shard sizes.

    python -m benchmarks.shards            # 120,000 28x28 uint8 images, 64 MiB and 8 MiB shards, 5 reps
    python -m benchmarks.shards --quick    # 12,000 images, 2 reps: a smoke run, never a speed

A generated dataset (``Glyphs``, made by ``benchmarks.data.random_images``: random 1x28x28 uint8 images and a 10-class label,
read through the notMNIST normalising collate) is prepared once per shard size (``DSREG_SHARD_BYTES``
64 MiB, the default, and 8 MiB). For each:

- warm: ``load(...).loader(batch_size=256, shuffle=True)`` whole epochs in the process that prepared
  the store, after one untimed epoch, in ``WARM_PAIRS * --reps`` pairs with the limit (back to back,
  the order alternating); their ratio is the median of the pairs' ratios, which a busy moment of the
  shared machine moves far less than a ratio of two medians;
- cold: the first epoch of a fresh process right after the shards' pages were dropped from the page
  cache (``posix_fadvise(POSIX_FADV_DONTNEED)`` on each shard), with the open's background
  prefetch and, for comparison, without it (``DSREG_PREFETCH=0``); the clock covers opening the
  shards (the first batch opens them, which starts the prefetch) and the epoch; imports,
  ``dsreg.load`` and a warm-up of torch on a small in-RAM tensor come before it (so it measures
  cold pages, not a cold interpreter);
- after prepare: the same fresh-process first epoch with the shards' pages left in the page cache
  (read once beforehand), as right after ``dsreg fetch`` prepared them: pages cached, none mapped;
- the limit: the same split as one uint8 tensor in RAM, ``randperm`` + ``index_select`` into float32
  (benchmarks/suite.py's "limit" row) and the collate's arithmetic, spelled as ``normalize`` spells it
  (``.to(torch.float32)`` and ``div_(255.0)`` instead of ``.float()`` and ``div_(255)`` cost a few per
  cent on their own), measured in the same process, paired with the warm epochs.

Each other figure is the median of ``--reps`` runs; the targets are ratios to the limit: warm >= 0.9x,
cold >= 0.5x. The table goes to benchmarks/results/2026-12-03-shards.md (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import dsreg

from .data import random_images

RESULTS = Path(__file__).parent / "results" / "2026-12-03-shards.md"
#: Warm epochs and limits are measured in this many pairs per ``--reps``: each pair takes a fraction of a second.
WARM_PAIRS = 3
SIZES = {"64 MiB (default)": "64MiB", "8 MiB": "8MiB"}


def normalize(batch: Any) -> dict[str, Any]:
    """notMNIST's collate: float32 images scaled as (x - 127.5) / 255, int64 labels."""
    from dsreg.store.collate import stack

    out = stack(batch)
    out["image"] = out["image"].to(torch.float32).sub_(127.5).div_(255.0)
    out["label"] = out["label"].to(torch.int64)
    return out


Glyphs = random_images("bench-shards", (1, 28, 28), n=120_000, collate=normalize)


def epoch(ds: Any) -> tuple[float, float]:
    """Images/s of one whole shuffled epoch through the dataset's loader: by the clock, and by this process's CPU time."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in ds.loader(batch_size=256, shuffle=True):
        pass
    return len(ds) / (time.perf_counter() - start), len(ds) / (time.process_time() - cpu)


def limit_epoch(images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    n = len(images)
    start, cpu = time.perf_counter(), time.process_time()
    perm = torch.randperm(n)
    for i in range(0, n, 256):  # as benchmarks/suite.py's limit row: each batch kept until the next is made
        idx = perm[i : i + 256]
        # The arithmetic of ``normalize`` (the collate the loader runs), spelled the same: the limit
        # does the loader's work less the store and the loader themselves.
        x = images.index_select(0, idx).to(torch.float32).sub_(127.5).div_(255.0)
        y = labels.index_select(0, idx).to(torch.int64)
    del x, y
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def evict(folder: Path) -> None:
    """Drop the shards' pages from the page cache."""
    for path in folder.glob("*.arrow"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_seconds(folder: Path) -> float:
    start = time.perf_counter()
    for path in sorted(folder.glob("*.arrow")):
        with open(path, "rb") as fh:
            while fh.read(8 << 20):
                pass
    return time.perf_counter() - start


def probe(cache: str, n: int) -> None:
    """In a fresh process: the first epoch (opening the shards included), printed as JSON."""
    import pyarrow.ipc  # noqa: F401 - imported before the clock starts: the epoch's first batch would import it

    from dsreg.store.collate import Batch
    from dsreg.testing import registered

    torch.set_num_threads(1)
    with registered(Glyphs):
        ds = dsreg.load("bench-shards", split="train", download=False, cache_dir=cache, n=n)
    # Warm torch and the allocator up as the limit's process is (100 batches from a small tensor in
    # RAM, through the same collate): the clock then measures cold pages, not a cold interpreter.
    small = {"image": torch.zeros(4096, 1, 28, 28, dtype=torch.uint8), "label": torch.zeros(4096, dtype=torch.int64)}
    for _ in range(100):
        idx = torch.randint(0, 4096, (256,))
        batch = ds.collate_fn(Batch({k: v.index_select(0, idx) for k, v in small.items()}))
    del batch
    print(json.dumps({"rate": epoch(ds)[0]}))


def cold(cache: Path, folder: Path, n: int, prefetch: bool, drop: bool = True) -> float:
    if drop:
        evict(folder)
    else:  # as right after prepare: every page in the page cache, none mapped by the fresh process
        read_seconds(folder)
    env = {**os.environ, "DSREG_PREFETCH": "1" if prefetch else "0"}
    cmd = [sys.executable, "-m", "benchmarks.shards", "--probe", str(cache), "--n", str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, cwd=Path(__file__).parent.parent)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["rate"])


def run(n: int, reps: int, work: Path, sizes: list[str] | None = None) -> list[dict[str, Any]]:
    from dsreg.testing import registered

    rows: list[dict[str, Any]] = []
    for label, size in SIZES.items():
        if sizes and size not in sizes:
            continue
        cache = work / f"cache-{size}"
        os.environ["DSREG_SHARD_BYTES"] = size
        try:
            with registered(Glyphs):
                start = time.perf_counter()
                info = dsreg.fetch("bench-shards", quiet=True, cache_dir=cache, n=n)
                prepared = time.perf_counter() - start
                ds = dsreg.load("bench-shards", split="train", download=False, cache_dir=cache, n=n)
        finally:
            del os.environ["DSREG_SHARD_BYTES"]
        folder = info.prepared_path
        assert folder is not None
        shards = len(info.manifest["splits"]["train"]["shards"]) if info.manifest else 0
        nbytes = info.manifest["splits"]["train"]["bytes"] if info.manifest else 0
        everything = ds.__getitems__(range(len(ds)))
        images, labels = everything["image"].clone(), everything["label"].clone()
        epoch(ds)  # untimed: the pages mapped in this process
        warm: list[tuple[float, float]] = []
        limit: list[tuple[float, float]] = []
        for rep in range(WARM_PAIRS * reps):  # pairs back to back, each pair's order alternating: a busy moment hits both sides
            if rep % 2:
                limit.append(limit_epoch(images, labels))
                warm.append(epoch(ds))
            else:
                warm.append(epoch(ds))
                limit.append(limit_epoch(images, labels))
        del ds, everything
        colds = [cold(cache, folder, n, True) for _ in range(reps)]
        plain = [cold(cache, folder, n, False) for _ in range(reps)]
        fresh = [cold(cache, folder, n, True, drop=False) for _ in range(reps)]
        evict(folder)
        dropped = read_seconds(folder)
        cached = read_seconds(folder)
        where = f"{shards} shard{'s' if shards != 1 else ''} of {label}, {nbytes / 2**20:.0f} MiB in all, prepared in {prepared:.1f} s"
        clock, cpu = statistics.median(r[0] for r in limit), statistics.median(r[1] for r in limit)
        figures = [
            ("limit: uint8 tensor in RAM, randperm + index_select to float32", [r[0] for r in limit], clock),
            ("limit, by CPU time", [r[1] for r in limit], cpu),
            ("warm epoch, loader(batch_size=256, shuffle=True)", [r[0] for r in warm], clock),
            ("warm epoch, by CPU time", [r[1] for r in warm], cpu),
            ("cold first epoch, fresh process, with the prefetch", colds, clock),
            ("cold first epoch, fresh process, DSREG_PREFETCH=0", plain, clock),
            ("first epoch of a fresh process after prepare, pages in the page cache", fresh, clock),
        ]
        paired = {  # the warm rows' ratios: the median of each pair's ratio
            figures[2][0]: statistics.median(w[0] / b[0] for w, b in zip(warm, limit)),
            figures[3][0]: statistics.median(w[1] / b[1] for w, b in zip(warm, limit)),
        }
        for name, runs, base in figures:
            rate = statistics.median(runs)
            rows.append({"shards": where, "row": name, "rate": rate, "runs": runs, "ratio": paired.get(name, rate / base)})
            if name == figures[2][0]:
                pairs = sorted(w[0] / b[0] for w, b in zip(warm, limit))
                q1, mid, q3 = statistics.quantiles(pairs, n=4)
                rows[-1]["note"] = (
                    f"warm epoch / limit, pair by pair: {pairs[0]:.3f} min, {q1:.3f} q1, {mid:.3f} median, {q3:.3f} q3, {pairs[-1]:.3f} max"
                )
        rows[-1]["note"] = f"reading the shards after the eviction took {dropped:.2f} s, from the page cache {cached:.2f} s"
    return rows


def table(rows: list[dict[str, Any]], n: int, reps: int) -> str:
    lines = [
        "# Sharded store: reading speed against the in-RAM limit",
        "",
        f"`python -m benchmarks.shards` on {platform.system().lower()}-{platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}: {n:,} generated 1x28x28 uint8 images, batch 256, shuffled, workers=0; "
        f"the warm epochs and the limit measured in {WARM_PAIRS * reps} back-to-back pairs in the process that prepared the store, "
        "their ratio the median of the pairs' ratios; every other figure the median of "
        f"{reps} runs, its ratio to the limit's median; one torch thread. Targets: warm >= 0.9x, cold >= 0.5x the limit. "
        "Ratios are by the clock, the CPU-time rows by CPU time (steadier on a shared machine).",
        "",
        "| store | row | images/s | vs limit | runs |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{r:,.0f}" for r in row["runs"])
        lines.append(f"| {row['shards']} | {row['row']} | {row['rate']:,.0f} | {row['ratio']:.2f}x | {runs} |")
    notes = [f"- {row['shards']}: {row['note']}" for row in rows if row.get("note")]
    return "\n".join(lines + ["", *notes, ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shards", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="12,000 images, 2 reps: a smoke run")
    parser.add_argument("--reps", type=int, default=None, help="runs per figure (default 5, --quick 2)")
    parser.add_argument("--n", type=int, default=None, help="images (default 120,000, --quick 12,000)")
    parser.add_argument("--size", action="append", choices=list(SIZES.values()), help="only this shard size (repeatable; default both)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the table goes")
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = args.n or (12_000 if args.quick else 120_000)
    if args.probe:
        probe(args.probe, n)
        return
    reps = args.reps or (2 if args.quick else 5)
    torch.set_num_threads(1)
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dsreg-shards-", dir=args.work))
    try:
        rows = run(n, reps, work, args.size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(rows, n, reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
