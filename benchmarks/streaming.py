"""Streaming epochs: from local shards and from a local S3 server, against the memory-mapped map-style epoch.

    python -m benchmarks.streaming            # 120,000 28x28 images (~94 MB), 3 repetitions
    python -m benchmarks.streaming --quick    # 3,000 images, one repetition: checks that it runs, never a speed

A generated dataset (random 1x28x28 uint8 images, the size of notMNIST's, and a label) is prepared
once into a sharded store (``DSREG_SHARD_BYTES``, 8 MiB here) and pushed to a moto S3 server in its
own process on 127.0.0.1. Each repetition then times one whole epoch of each row, baseline first,
all with ``batch_size=256``, the dataset's own collate, one torch thread and ``num_workers=0``:

    baseline   ``dsreg.load(name, "train").loader(batch_size=256, shuffle=True)``: memory-mapped, map-style
    local      ``dsreg.load(name, "train", streaming=True).shuffle(seed)``: the same shards, read in place
    s3         the same from ``remote=s3://…`` into an empty shard cache capped below the split's size
               (``DSREG_STREAM_CACHE_BYTES``), so every shard is downloaded, verified and evicted in the epoch;
               also with ``num_workers=2`` (two readers sharing the cache)

During the S3 epochs a thread samples the bytes in the shard cache folder every 5 ms; the peak is
reported next to the limit and the split's size. Each figure is the median of ``--reps``; the
ratio is images/s over the baseline's. The table goes to
``benchmarks/results/2026-12-03-streaming.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import dsreg
from dsreg.testing import registered

from .data import random_images

RESULTS = Path(__file__).resolve().parent / "results" / "2026-12-03-streaming.md"
IMAGE = (1, 28, 28)
BATCH = 256


Glyphs = random_images("bench-stream", IMAGE)


def folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.iterdir() if folder.exists() else ():
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # evicted or renamed between the listing and the stat
            pass
    return total


class PeakDisk:
    """Sample the bytes in ``folder`` every 5 ms in a thread; ``peak`` is the most seen."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.peak = folder, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, folder_bytes(self.folder))
            time.sleep(0.005)

    def __enter__(self) -> PeakDisk:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, folder_bytes(self.folder))


def epoch(loader: Any) -> tuple[float, int]:
    """Seconds for one pass over ``loader`` and the examples it gave."""
    seen = 0
    start = time.perf_counter()
    for batch in loader:
        seen += len(batch["label"])
    return time.perf_counter() - start, seen


def run(n: int, reps: int, shard: str, work: Path, buffer: int) -> dict[str, Any]:
    """Time every row ``reps`` times over ``n`` images in ``work``; the environment is restored afterwards."""
    saved = dict(os.environ)
    try:
        return _run(n, reps, shard, work, buffer)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(n: int, reps: int, shard: str, work: Path, buffer: int) -> dict[str, Any]:
    import torch

    os.environ["DSREG_SHARD_BYTES"] = shard
    os.environ["DSREG_CACHE"] = str(work / "cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every row gathers in one thread: steadier on a shared machine, and the same for all
    try:
        return _rows(n, reps, work, buffer)
    finally:
        torch.set_num_threads(threads)


def _rows(n: int, reps: int, work: Path, buffer: int) -> dict[str, Any]:
    import torch

    from benchmarks.remote import MotoProcess

    rows: dict[str, list[float]] = {"map": [], "local": [], "s3": [], "s3-w2": []}
    peaks: dict[str, list[int]] = {"s3": [], "s3-w2": []}
    with registered(Glyphs), MotoProcess() as server:
        os.environ.update(
            AWS_ENDPOINT_URL=server.endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
        )
        info = dsreg.fetch("bench-stream", n=n, quiet=True)
        assert info.manifest is not None
        shards = info.manifest["splits"]["train"]["shards"]
        split_bytes = sum(s["bytes"] for s in shards)
        biggest = max(s["bytes"] for s in shards)
        limit = max(split_bytes * 2 // 5, 3 * biggest)  # well under the split
        remote = "s3://bench-stream"
        from dsreg.fetching import objectstore

        objectstore.url_to_fs(remote)[0].mkdir("bench-stream")
        dsreg.push("bench-stream", remote, n=n, quiet=True)
        plain = dsreg.load("bench-stream", "train", n=n)
        local = dsreg.load("bench-stream", "train", n=n, streaming=True).shuffle(seed=0, buffer_size=buffer)
        assert len(plain) == len(local) == n
        epoch(plain.loader(batch_size=BATCH, shuffle=True))  # warm pages: every row reads a warm store
        for rep in range(reps):
            seconds, seen = epoch(plain.loader(batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(rep)))
            assert seen == n
            rows["map"].append(seconds)
            local.set_epoch(rep)
            seconds, seen = epoch(local.loader(batch_size=BATCH))
            assert seen == n
            rows["local"].append(seconds)
            for key, workers in (("s3", 0), ("s3-w2", 2)):
                cache = work / f"stream-{key}-{rep}"
                # A fresh DSREG_CACHE: nothing prepared or cached here, everything comes from the server.
                os.environ["DSREG_CACHE"] = str(work / f"empty-{key}-{rep}")
                ds = dsreg.load("bench-stream", "train", n=n, streaming=True, remote=remote)
                ds = ds.replace(shuffle=True, seed=0, buffer_size=buffer, cache_dir=cache, cache_limit_bytes=limit)
                assert ds.remote
                ds.set_epoch(rep)
                with PeakDisk(cache) as disk:
                    seconds, seen = epoch(ds.loader(batch_size=BATCH, num_workers=workers))
                assert seen == n
                rows[key].append(seconds)
                peaks[key].append(disk.peak)
                os.environ["DSREG_CACHE"] = str(work / "cache")
    return {
        "examples": n,
        "shards": len(shards),
        "split_bytes": split_bytes,
        "limit": limit,
        "buffer": buffer,
        "times": rows,
        "peaks": peaks,
    }


def table(result: dict[str, Any], reps: int, quick: bool) -> str:
    n = result["examples"]
    median = {key: statistics.median(values) for key, values in result["times"].items()}
    rate = {key: n / seconds for key, seconds in median.items()}
    mb = result["split_bytes"] / 1e6
    lines = [
        "# Streaming epochs vs the memory-mapped map-style epoch (`python -m benchmarks.streaming" + (" --quick" if quick else "") + "`)",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; moto S3 server in its own "
        f"process on 127.0.0.1. Split: {n:,} random 1x28x28 uint8 images, {result['shards']} shards, {mb:,.1f} MB. "
        f"One torch thread. Whole epochs, batch_size={BATCH}, shuffled (streaming: buffer_size={result['buffer']:,}), the dataset's collate; "
        f"median of {reps} run(s) each, baseline first.",
        "",
        "| row | seconds | images/s | / map-style |",
        "|---|---:|---:|---:|",
        f"| map-style: `load(...).loader(batch_size={BATCH}, shuffle=True)`, memory-mapped, warm (baseline) "
        f"| {median['map']:.3f} | {rate['map']:,.0f} | 1.00 |",
        f"| streaming, local shards read in place: `load(..., streaming=True).shuffle(0, buffer_size).loader(batch_size={BATCH})` "
        f"| {median['local']:.3f} | {rate['local']:,.0f} | {rate['local'] / rate['map']:.2f} |",
        f"| streaming from the local S3 server, empty shard cache capped at {result['limit'] / 1e6:,.1f} MB, workers 0 "
        f"| {median['s3']:.3f} | {rate['s3']:,.0f} | {rate['s3'] / rate['map']:.2f} |",
        f"| the same, workers 2 | {median['s3-w2']:.3f} | {rate['s3-w2']:,.0f} | {rate['s3-w2'] / rate['map']:.2f} |",
        "",
        "| peak local disk while streaming from S3 | bytes | / cache limit | / split size |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (("s3", "workers 0"), ("s3-w2", "workers 2")):
        peak = max(result["peaks"][key])
        lines.append(f"| {label} (most of {reps} run(s)) | {peak:,} | {peak / result['limit']:.2f} | {peak / result['split_bytes']:.2f} |")
    lines += [
        "",
        "The S3 rows download, hash and verify every shard in the epoch (the cache is capped below the split, and starts",
        "empty), with the next block's shards fetched in a background thread; the server is moto (objects held in Python",
        "memory), so the S3 figures say more about moto on this machine than about S3. The peak counts every file in",
        "the cache folder, downloads in progress included, sampled every 5 ms."
        + (" --quick: one small run, not a measurement." if quick else ""),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 images, one repetition (a smoke test)")
    parser.add_argument("--examples", type=int, default=None, help="images in the split (default 120,000; --quick 3,000)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3; --quick 1)")
    parser.add_argument("--shard", default="8MiB", help="DSREG_SHARD_BYTES of the store (default 8MiB; --quick 256KiB)")
    parser.add_argument("--buffer", type=int, default=None, help="buffer_size of the streaming rows (default 16,384; --quick 256)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"the table (default {RESULTS})")
    args = parser.parse_args(argv)
    n = args.examples or (3_000 if args.quick else 120_000)
    reps = args.reps or (1 if args.quick else 3)
    shard = "256KiB" if args.quick and args.shard == "8MiB" else args.shard
    with tempfile.TemporaryDirectory(prefix="dsreg-bench-streaming-") as tmp:
        result = run(n, reps, shard, Path(tmp), args.buffer or (256 if args.quick else 16_384))
    text = table(result, reps, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
