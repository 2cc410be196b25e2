"""``python -m benchmarks run [--quick] [--archive DIR] [--reps N] [--sections ...] [--out DIR]``.

Generates (once, cached in benchmarks/.cache) a notMNIST archive pair in the real layout — 500,000
+ 18,720 PNGs, or 1,000 + 200 with --quick — then measures each section, baselines first and dsreg
right after, and writes benchmarks/results/<date>-<machine>.{json,md,png}. --quick (small archives,
one repetition) is the CI smoke test: it checks that the suite runs, never a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import data, report, suite

SECTIONS = ("prepare", "epoch", "startup", "trainer", "memory")


def machine() -> dict[str, str]:
    import torch

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "slug": f"{platform.system().lower()}-{platform.machine()}-{cores}cpu",
        "description": f"{cores} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, torch {torch.__version__}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the suite")
    run.add_argument("--quick", action="store_true", help="small archives, one repetition (CI smoke test)")
    run.add_argument("--archive", type=Path, help="a folder holding notMNIST_large.tar.gz and notMNIST_small.tar.gz")
    run.add_argument("--reps", type=int, default=None, help="repetitions per measurement (default 3, quick 1)")
    run.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    run.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    run.add_argument("--work", type=Path, default=None, help="scratch folder, created if missing (default: the system temp dir)")
    args = parser.parse_args(argv)

    reps = args.reps or (1 if args.quick else 3)
    archives, meta = data.given_pair(args.archive) if args.archive else data.archive_pair(args.quick)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dsreg-bench-", dir=args.work))
    cache = work / "prepared-cache"
    cache.mkdir()
    (cache / "bench-meta.json").write_text(json.dumps(meta))
    os.environ.setdefault("DSREG_BACKOFF", "0")
    rows: list[dict] = []
    started = time.perf_counter()
    try:
        for section in SECTIONS:
            if section not in args.sections:
                continue
            print(f"== {section}", flush=True)
            if section == "prepare":
                new = suite.prepare(archives, meta, work, reps, cache)
            elif section == "epoch":
                new = suite.epoch(archives, work, reps, args.quick, cache)
            elif section == "startup":
                new = suite.startup(1 if args.quick else 5, warm=not args.quick)
            elif section == "trainer":
                new = suite.trainer(reps, args.quick)
            else:
                new = suite.memory(archives, work, cache)
            for r in new:
                print(f"   {r['name']}: {r['value']:,.3f} {r['unit']} (median of {r['runs']})", flush=True)
            rows += new
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = machine()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": info,
        "quick": args.quick,
        "archives": meta,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    result["targets"] = report.targets(rows)
    stem = f"{result['date']}-{info['slug']}" + ("-quick" if args.quick else "")
    paths = report.write(result, args.out, stem)
    print(report.markdown(result))
    print("wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
