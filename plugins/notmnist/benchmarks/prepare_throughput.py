"""Prepare throughput of `notmnist` next to a single-process extract-then-decode baseline, in one run.

    python plugins/notmnist/benchmarks/make_large.py /tmp/nm-bench/notMNIST_large.tar.gz   # once
    python plugins/notmnist/benchmarks/prepare_throughput.py /tmp/nm-bench/notMNIST_large.tar.gz

dsreg: the archive pair (this large archive and a 100-image small one) is handed over with --from
semantics into a temporary cache, then `prepare` runs (one reader streaming the tar.gz, PNG decode in
the core's process pool, dedupe and the seeded validation draw included); its time is the manifest's
``seconds``. Baseline: ``tarfile.extractall`` into a temp folder, then Pillow opens every PNG into a
float32 array, one process, as the course notebook did. Both count every image they turned into pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run_dsreg(large: Path, work: Path, workers: int | None) -> tuple[int, float, dict]:
    import dsreg
    from dsreg.testing import registered
    from dsreg_notmnist import NotMNIST
    from dsreg_notmnist.testing import make_pair

    source = work / "source"
    source.mkdir()
    small = make_pair(work / "tiny", small_per_class=10, large_per_class=10, overlap=0, twins=0, corrupt=()).paths["notMNIST_small.tar.gz"]
    os.symlink(small, source / "notMNIST_small.tar.gz")
    os.symlink(large, source / "notMNIST_large.tar.gz")
    files = tuple(dsreg.File(f.name, size=(source / f.name).stat().st_size, md5=md5(source / f.name)) for f in NotMNIST.files)
    bench = type("NotMNIST", (NotMNIST,), {"files": files, "__module__": NotMNIST.__module__})
    with registered(bench):
        inf = dsreg.fetch("notmnist", from_path=source, cache_dir=work / "cache", quiet=True, workers=workers)
    m = inf.manifest
    images = sum(meta["examples"] for meta in m["splits"].values())
    images += sum(v for v in m["notes"]["removed_by_dedupe"].values())  # decoded, then left out
    return images, m["seconds"], m


def run_baseline(large: Path, work: Path) -> tuple[int, float]:
    from PIL import Image

    started = time.perf_counter()
    target = work / "extracted"
    with tarfile.open(large) as tar:
        tar.extractall(target, filter="data")
    arrays = []
    for folder in sorted((target / "notMNIST_large").iterdir()):
        for path in sorted(folder.iterdir()):
            try:
                with Image.open(path) as im:
                    arrays.append(np.asarray(im, dtype=np.float32))
            except OSError:
                continue
    data = np.stack(arrays)
    return len(data), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("large", type=Path, help="a notMNIST_large-shaped tar.gz (see make_large.py)")
    parser.add_argument("--workers", type=int, default=None, help="decode processes for dsreg (default: all cores)")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    print(f"archive {args.large} ({args.large.stat().st_size:,} bytes); {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="nm-bench-") as tmp:
        work = Path(tmp)
        n, seconds, m = run_dsreg(args.large.resolve(), work, args.workers)
        counts = ", ".join(f"{split} {meta['examples']:,}" for split, meta in m["splits"].items())
        print(
            f"dsreg prepare:  {n:,} images in {seconds:.1f} s = {n / seconds:,.0f} images/s "
            f"(splits {counts}; dedupe removed {m['notes']['removed_by_dedupe']})"
        )
        shutil.rmtree(work / "cache")
        if args.skip_baseline:
            return
        bn, bseconds = run_baseline(args.large, work)
        print(
            f"baseline:       {bn:,} images in {bseconds:.1f} s = {bn / bseconds:,.0f} images/s "
            "(tarfile.extractall, then PIL -> float32, one process)"
        )
        print(f"speed-up:       {(n / seconds) / (bn / bseconds):.1f}x")


if __name__ == "__main__":
    main()
