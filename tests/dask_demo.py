"""Issue 14's prepare on a Dask cluster, shown with the real commands: `dask scheduler`, `dask worker`, `dsreg fetch --executor`.

    python tests/dask_demo.py [DATASET]     # default: shapes (6,000 + 1,200 images drawn by the decode)

In a temporary folder (removed afterwards): a scheduler and 2 worker processes (1 thread each) on
127.0.0.1, started with Dask's own command line; then ``dsreg fetch DATASET --executor
dask://127.0.0.1:PORT`` into one empty cache and ``dsreg fetch DATASET`` (the local pool) into
another, both with 2 MiB shards so there are several shard tasks; the shard files' sha256 and the
manifests (less their timings) are compared. The same check is asserted by tests/test_executor.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(command: list[str], env: dict[str, str]) -> float:
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    seconds = time.perf_counter() - started
    print(f"  ({seconds:.1f} s)", flush=True)
    return seconds


def store(cache: Path) -> tuple[dict[str, str], dict]:
    (folder,) = [p for p in cache.glob("datasets/*/prepared/*") if p.is_dir()]
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("prepared")
    for meta in manifest["splits"].values():
        meta.pop("seconds")
        meta.pop("task_seconds", None)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.arrow"))}, manifest


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "shapes"
    work = Path(tempfile.mkdtemp(prefix="dask-demo-"))
    env = {**os.environ, "DSREG_SHARD_BYTES": "2MiB", "DSREG_NETWORK": "loopback"}
    bin_dir = Path(sys.executable).parent
    procs: list[subprocess.Popen[bytes]] = []
    try:
        scheduler_file = work / "scheduler.json"
        log = open(work / "dask.log", "wb")
        common = ["--no-dashboard", "--host", "127.0.0.1"]
        procs.append(
            subprocess.Popen(
                [str(bin_dir / "dask"), "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", *common],
                stdout=log,
                stderr=log,
            )
        )
        while not scheduler_file.exists():
            time.sleep(0.2)
        time.sleep(0.5)
        address = json.loads(scheduler_file.read_text())["address"]
        print(f"dask scheduler --scheduler-file ... --port 0 --host 127.0.0.1 --no-dashboard  -> {address}")
        procs.append(
            subprocess.Popen(
                [
                    str(bin_dir / "dask"),
                    "worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--local-directory",
                    str(work / "w"),
                    *common,
                ],
                stdout=log,
                stderr=log,
            )
        )
        print(f"dask worker {address} --nworkers 2 --nthreads 1 --host 127.0.0.1 --no-dashboard")
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        dsreg = str(bin_dir / "dsreg")
        executor = address.replace("tcp://", "dask://")
        on_dask = run([dsreg, "fetch", name, "--executor", executor], {**env, "DSREG_CACHE": str(work / "dask")})
        local = run([dsreg, "fetch", name, "--workers", "2"], {**env, "DSREG_CACHE": str(work / "local")})
        a, b = store(work / "dask"), store(work / "local")
        for split, meta in a[1]["splits"].items():
            rows = [s["rows"] for s in meta["shards"]]
            print(f"{split}: {meta['examples']:,} examples in {len(rows)} shards {rows}")
        manifest = json.loads(next((work / "dask").glob("datasets/*/prepared/*/manifest.json")).read_text())
        for split, meta in manifest["splits"].items():
            tasks = meta.get("task_seconds", [])
            print(f"{split}: Dask shard tasks took {', '.join(f'{t:.2f}' for t in tasks)} s on the workers; split {meta['seconds']:.2f} s")
        print(f"wall: Dask {on_dask:.1f} s, local pool {local:.1f} s (both include starting dsreg)")
        same_files = a[0] == b[0]
        print(f"shard files: {len(a[0])} on Dask, {len(b[0])} local; every sha256 equal: {same_files}")
        print(f"manifests equal (less timings): {a[1] == b[1]}")
        if not (same_files and a[1] == b[1]):
            raise SystemExit("the two prepares differ")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
