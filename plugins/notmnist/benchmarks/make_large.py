"""Write a notMNIST_large-shaped archive (default 50,000 PNGs per letter, seeded) for the throughput benchmark.

    python plugins/notmnist/benchmarks/make_large.py /tmp/notmnist-bench/notMNIST_large.tar.gz --per-class 50000

Glyphs are rendered in a process pool; one process writes the tar.gz stream.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from pathlib import Path

from dsreg_notmnist.synth import LETTERS, Renderer, find_fonts
from dsreg_notmnist.testing import member_name, png_bytes, write_archive

_renderer: Renderer | None = None


def _render(job: tuple[str, int, int, int]) -> list[tuple[str, str, bytes]]:
    global _renderer
    letter, start, stop, seed = job
    if _renderer is None:
        _renderer = Renderer(find_fonts())
    rng = random.Random(f"bench/{seed}/{letter}/{start}")
    return [(letter, member_name(i), png_bytes(_renderer.render(letter, i, rng))) for i in range(start, stop)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--per-class", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="notMNIST_large")
    args = parser.parse_args()
    step = 1000
    jobs = [(letter, s, min(s + step, args.per_class), args.seed) for letter in LETTERS for s in range(0, args.per_class, step)]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool() as pool:
        members = (m for chunk in pool.imap(_render, jobs, chunksize=1) for m in chunk)
        write_archive(args.path, args.root, members)
    n = args.per_class * len(LETTERS)
    print(f"wrote {args.path} ({n:,} PNGs, {args.path.stat().st_size:,} bytes) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
