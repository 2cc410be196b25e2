"""Push and pull throughput against a local S3 server, next to a plain s3fs copy of the same files.

    python -m benchmarks.remote            # ~200 MB store, 3 repetitions
    python -m benchmarks.remote --quick    # ~6 MB, one repetition: checks that it runs, never a speed

A generated dataset (random 3x64x64 uint8 images, so nothing compresses) is prepared once into a
sharded store (``DSREG_SHARD_BYTES``, default 16 MiB here). Then, in one run against one moto S3
server started in its own process on 127.0.0.1, each repetition times, baseline first:

    push   s3fs ``fs.put`` of the store's shard files and manifest  vs  ``dsreg.push`` of the dataset
    pull   s3fs ``fs.get`` of the same objects into an empty folder  vs  ``dsreg.fetch(remote=...)``
           into an empty cache

Every push goes to a fresh prefix and every pull into a fresh folder, so nothing is skipped; both
clients are made and warmed before the clock starts (botocore loads its models once per process,
about 0.4 s, which a one-off `dsreg push` also pays). dsreg's
figures include what the copy does not do: reading each local shard to check its sha256 before a
push, hashing each pulled shard and fsync-ing it before renaming it into place, the dataset lock and the manifests.
Each figure is the median of ``--reps``; the ratio is dsreg's MB/s over the copy's. The table goes to
``benchmarks/results/2026-12-03-remote.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dsreg
from dsreg.fetching import objectstore
from dsreg.testing import registered

from .data import random_images

RESULTS = Path(__file__).resolve().parent / "results" / "2026-12-03-remote.md"
IMAGE = (3, 64, 64)


Blobs = random_images("bench-blobs", IMAGE)  # 12,288 bytes an image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoProcess:
    """moto's S3 in server mode in a process of its own (so client and server do not share one GIL)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the moto server did not start (pip install 'moto[server]')") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(n: int, reps: int, shard: str, work: Path) -> dict[str, Any]:
    """Time every row ``reps`` times over a store of ``n`` images in ``work``; the environment is restored afterwards."""
    saved = dict(os.environ)
    try:
        return _run(n, reps, shard, work)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(n: int, reps: int, shard: str, work: Path) -> dict[str, Any]:
    import s3fs

    os.environ["DSREG_SHARD_BYTES"] = shard
    os.environ["DSREG_CACHE"] = str(work / "cache")
    with registered(Blobs), MotoProcess() as server:
        os.environ.update(
            AWS_ENDPOINT_URL=server.endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
        )
        info = dsreg.fetch("bench-blobs", n=n, quiet=True)
        assert info.prepared_path is not None and info.manifest is not None
        store = Path(info.prepared_path)
        shards = [store / s["file"] for s in info.manifest["splits"]["train"]["shards"]]
        files = [*shards, store / "manifest.json"]
        size = sum(f.stat().st_size for f in files)
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("bench")
        # Warm dsreg's own client too (the baseline's was made above, untimed): botocore loads its models once per process.
        objectstore.url_to_fs("s3://bench/")[0].ls("bench")
        times: dict[str, list[float]] = {"push-copy": [], "push-dsreg": [], "pull-copy": [], "pull-dsreg": []}
        for rep in range(reps):
            copy_prefix = f"bench/copy-{rep}"
            times["push-copy"].append(timed(lambda p=copy_prefix: fs.put([str(f) for f in files], p + "/")))
            url = f"s3://bench/dsreg-{rep}"
            times["push-dsreg"].append(timed(lambda u=url: dsreg.push("bench-blobs", u, n=n, quiet=True)))
            target = work / f"copy-{rep}"
            target.mkdir()
            keys = [f"{copy_prefix}/{f.name}" for f in files]
            times["pull-copy"].append(timed(lambda k=keys, t=target: fs.get(k, str(t) + "/")))
            os.environ["DSREG_CACHE"] = str(work / f"pulled-{rep}")
            times["pull-dsreg"].append(timed(lambda u=url: dsreg.fetch("bench-blobs", n=n, remote=u, quiet=True)))
            pulled = dsreg.info("bench-blobs", n=n)
            assert pulled.manifest is not None and pulled.manifest["splits"]["train"].get("pulled"), "dsreg prepared instead of pulling"
            os.environ["DSREG_CACHE"] = str(work / "cache")
            shutil.rmtree(target)
            shutil.rmtree(work / f"pulled-{rep}")
            fs.rm([copy_prefix, url.split("://", 1)[1]], recursive=True)  # moto holds objects in memory
    return {"bytes": size, "shards": len(shards), "examples": n, "times": times}


def table(result: dict[str, Any], reps: int, quick: bool) -> str:
    mb = result["bytes"] / 1e6
    median = {key: statistics.median(values) for key, values in result["times"].items()}
    rate = {key: mb / seconds for key, seconds in median.items()}
    lines = [
        "# Push and pull throughput: dsreg vs a plain s3fs copy (`python -m benchmarks.remote" + (" --quick" if quick else "") + "`)",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end: a shared machine "
        f"is noisy, read the ratios), Python {platform.python_version()}; "
        f"moto S3 server in its own process on 127.0.0.1. Store: {result['examples']:,} random 3x64x64 uint8 images, "
        f"{result['shards']} shards + manifest, {mb:,.1f} MB. Median of {reps} run(s) each, baseline first in every repetition.",
        "",
        "| row | seconds | MB/s | dsreg / copy |",
        "|---|---:|---:|---:|",
    ]
    for side in ("push", "pull"):
        copy, ours = f"{side}-copy", f"{side}-dsreg"
        what = "fs.put" if side == "push" else "fs.get"
        lines.append(f"| {side}: s3fs `{what}` of the same files (baseline) | {median[copy]:.3f} | {rate[copy]:,.1f} | 1.00 |")
        call = "dsreg.push(...)" if side == "push" else "dsreg.fetch(..., remote=URL) into an empty cache"
        lines.append(f"| {side}: `{call}` | {median[ours]:.3f} | {rate[ours]:,.1f} | {rate[ours] / rate[copy]:.2f} |")
    lines += [
        "",
        "dsreg's push reads every local shard once more to check its sha256 before sending it, and writes the manifest",
        "last; its pull hashes each downloaded shard, fsyncs it and renames it into place, under the dataset's lock.",
        "The server is moto (objects held in Python memory), so absolute MB/s say more about moto than about S3;",
        "the ratio is the figure to read." + (" --quick: one small run, not a measurement." if quick else ""),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~6 MB, one repetition (a smoke test)")
    parser.add_argument("--examples", type=int, default=None, help="images in the store (default 16,000; --quick 500)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3; --quick 1)")
    parser.add_argument("--shard", default="16MiB", help="DSREG_SHARD_BYTES of the store (default 16MiB)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"the table (default {RESULTS})")
    args = parser.parse_args(argv)
    n = args.examples or (500 if args.quick else 16_000)
    reps = args.reps or (1 if args.quick else 3)
    shard = "1MiB" if args.quick and args.shard == "16MiB" else args.shard
    with tempfile.TemporaryDirectory(prefix="dsreg-bench-remote-") as tmp:
        result = run(n, reps, shard, Path(tmp))
    text = table(result, reps, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
