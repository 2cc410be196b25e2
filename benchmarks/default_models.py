"""The trainer on each bundled sample's default model vs the plain hand-written loop with the same net.

    python -m benchmarks.default_models [--runs 7] [--threads 1] [--quick] [DATASET ...]

For each dataset (default: the bundled offline samples that are installed) the model, batch size
and lr are the dataset's own ``train_defaults`` (what ``dsreg train NAME`` uses), so the figure is
the speed a user gets. Both sides run in this process, interleaved, with the same thread count,
data, initial weights and optimizer; the hand loop is ``benchmarks.trainer_overhead.hand_epoch``
(zero_grad → forward → loss → backward → step over ``ds.loader``). Each figure is the median of
``--runs`` epochs; the target is trainer / hand <= 1.1. With one thread (the default, and what the
trainer picks on a busy 2-core machine) the figures are CPU seconds of this process, which other
jobs on a shared machine disturb far less than wall time (wall-time ratios swung 0.88-1.25 here
between runs); the wall-time ratio is printed beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

#: The bundled samples whose defaults cover each kind of network (image CNN, audio CNN, text bag),
#: with the config timed: the small samples are made larger so an epoch lasts a second or more
#: (an 80 ms epoch of the 400 default sentences measured the other jobs on the machine, not the
#: trainer); model, batch size and lr stay the dataset's defaults.
DATASETS: dict[str, dict[str, Any]] = {
    "shapes": {},
    "dtmf": {"per_key_train": 150},
    "sentiment-words": {"train_size": 10_000},
    "notmnist-synth": {},
}
#: What the suite's --quick (a smoke test of this code, not of every model) times: the sample that prepares fastest.
QUICK = ("sentiment-words",)


def measure(name: str, runs: int, threads: int, quick: bool = False, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return examples/s of the hand loop and of ``Trainer.fit`` on ``name``'s default model, and their ratio."""
    import torch

    import dsreg
    from dsreg.train import FALLBACKS, dataset_defaults

    from . import trainer_overhead

    ds = dsreg.load(name, split="train", **(config or {}))
    settings = {**FALLBACKS, **dataset_defaults(ds)}
    model = settings["model"] or "default"
    torch.set_num_threads(threads)
    result = trainer_overhead.measure(
        name,
        batch_size=settings["batch_size"],
        runs=runs,
        model=settings["model"],
        threads=threads,
        lr=settings["lr"],
        model_options=settings["model_options"],
        limit=1_000 if quick else None,
        checkpoint=False,
        config=config,
    )
    n = result["examples"]
    # One thread, no workers: the process's CPU seconds are the epoch's work (see trainer_overhead).
    hand, fit = (result["hand_cpu"], result["trainer_cpu"]) if threads == 1 else (result["hand"], result["trainer"])
    return {
        "dataset": name,
        "model": model,
        "batch_size": settings["batch_size"],
        "threads": threads,
        "examples": n,
        "clock": "CPU" if threads == 1 else "wall",
        "hand_ex_s": [n / s for s in hand],
        "trainer_ex_s": [n / s for s in fit],
        "ratio": statistics.median(fit) / statistics.median(hand),
        "wall_ratio": statistics.median(result["trainer"]) / statistics.median(result["hand"]),
    }


def rows(runs: int = 7, threads: int = 1, quick: bool = False, datasets: tuple[str, ...] = tuple(DATASETS)) -> list[dict[str, Any]]:
    """Return one suite row per installed dataset: the trainer's examples/s, with the hand loop's and the ratio."""
    from dsreg.plugins import get_registry

    from .suite import row

    out = []
    for name in [d for d in datasets if d in get_registry().names()]:
        m = measure(name, runs, threads, quick, None if quick else DATASETS.get(name))
        note = (
            f"{m['model']} (its train_defaults), batch {m['batch_size']}, {m['examples']:,} train examples, "
            f"{threads} thread(s), {m['clock']} time; hand-written loop {statistics.median(m['hand_ex_s']):,.0f} ex/s; "
            f"trainer / hand {m['ratio']:.3f} ({m['wall_ratio']:.3f} by wall time)"
        )
        out.append(
            row(
                "trainer",
                f"Trainer on {name} (default model {m['model']})",
                m["trainer_ex_s"],
                "ex/s",
                note,
                dataset=name,
                model=m["model"],
                ratio=round(m["ratio"], 4),
                wall_ratio=round(m["wall_ratio"], 4),
                hand_ex_s=round(statistics.median(m["hand_ex_s"]), 1),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides (default 1: see docs/train.md)")
    parser.add_argument("--quick", action="store_true", help="the default configs, at most 1,000 examples an epoch (a smoke test)")
    args = parser.parse_args()
    worst = 0.0
    print(f"{'dataset':16} {'model':10} {'hand ex/s':>10} {'trainer ex/s':>13} {'ratio':>6} {'(wall)':>7}")
    for r in rows(args.runs, args.threads, args.quick, tuple(args.datasets)):
        print(f"{r['dataset']:16} {r['model']:10} {r['hand_ex_s']:>10,.0f} {r['value']:>13,.0f} {r['ratio']:>6.3f} {r['wall_ratio']:>7.3f}")
        worst = max(worst, r["ratio"])
    sys.exit(0 if worst <= 1.1 else 1)


if __name__ == "__main__":
    main()
