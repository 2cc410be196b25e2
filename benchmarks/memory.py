"""Peak-RSS probes, each run in its own process: ``python -m benchmarks.memory udacity|torch|dsreg ...``.

Prints one JSON line with ``peak_rss`` in bytes (ru_maxrss of this process: resident memory,
including the pages of memory-mapped files it touched).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def peak() -> int:
    """Peak resident bytes of this process image.

    /proc's VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a probe
    started by a large parent would report the parent's peak.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # other systems


def main() -> None:
    kind, *args = sys.argv[1:]
    out: dict = {}
    if kind == "udacity":
        from .baselines import udacity_prepare

        out["images"] = udacity_prepare(Path(args[0]), Path(args[1]))
    elif kind == "torch":
        import torch  # noqa: F401
    elif kind == "dsreg":
        import os

        os.environ["DSREG_CACHE"] = args[0]
        import dsreg
        from dsreg.testing import registered

        from .suite import bench_builder_from_cache

        with registered(bench_builder_from_cache(Path(args[0]))):
            train = dsreg.load("notmnist", split="train", download=False)
            for _ in train.loader(batch_size=256, shuffle=True):
                pass
            out["examples"] = len(train)
            out["prepared_bytes"] = train.info.manifest["splits"]["train"]["bytes"]
    else:
        raise SystemExit(f"unknown probe {kind!r}; use udacity, torch or dsreg")
    out["peak_rss"] = peak()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
