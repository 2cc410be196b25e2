"""Data-parallel training on CPU with two processes, and a check that both ranks end with the same weights.

    python examples/torchrun_check.py [DATASET] [--nproc 2] [--epochs 2]

Run plainly, it launches itself under ``torch.distributed.run`` (gloo on CPU). Each rank trains
with ``dsreg.train.Trainer`` on its own DistributedSampler shard, records which examples it saw and
saves its final weights; the launcher then compares the ranks. Default dataset: ``notmnist-synth``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def worker(dataset: str, epochs: int, out: Path) -> None:
    """One rank: train, then save what it saw and its weights."""
    from dsreg.train import Trainer

    trainer = Trainer(None, dataset, f"{dataset}:test", epochs=epochs, batch_size=128, out_dir=out / "run")
    trainer.fit()
    result = trainer.evaluate()
    rank = trainer.world.rank
    # The sampler's order is a function of (seed, epoch): list it for the last epoch to see this rank's shard.
    torch.save(
        {
            "state": trainer.module.state_dict(),
            "accuracy": result["accuracy"],
            "examples": result["examples"],
            "shard": list(trainer.sampler),
        },
        out / f"rank{rank}.pt",
    )
    trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="notmnist-synth")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if "WORLD_SIZE" in os.environ:
        worker(args.dataset, args.epochs, args.out)
        return

    import dsreg

    dsreg.fetch(args.dataset)  # once, before the ranks start
    with contextlib.ExitStack() as stack:  # without --out, a scratch folder removed at the end
        out = args.out or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dsreg-torchrun-")))
        check(args, out)


def check(args: argparse.Namespace, out: Path) -> None:
    """Train under torchrun into ``out`` and print whether the ranks' shards and weights agree."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.nproc}",
        __file__,
        args.dataset,
        "--epochs",
        str(args.epochs),
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(args.nproc)]
    shards = [set(r["shard"]) for r in ranks]
    disjoint = all(not (shards[i] & shards[j]) for i in range(len(shards)) for j in range(i + 1, len(shards)))
    covered = len(set().union(*shards))
    same = all(all(torch.equal(ranks[0]["state"][k], r["state"][k]) for k in ranks[0]["state"]) for r in ranks[1:])
    largest = max((ranks[0]["state"][k] - r["state"][k]).abs().max().item() for r in ranks[1:] for k in ranks[0]["state"])
    for i, r in enumerate(ranks):
        print(
            f"rank {i}: last epoch's shard {len(r['shard']):,} examples (first {r['shard'][:4]}); "
            f"test accuracy {r['accuracy']:.2%} on {r['examples']:,} examples (summed over ranks)"
        )
    print(f"last epoch's shards disjoint: {disjoint}; together they cover {covered:,} distinct examples")
    print(f"final weights identical on every rank: {same} (largest difference {largest:.1e}) across {len(ranks[0]['state'])} tensors")
    print(f"rank 0's checkpoint and metrics: {sorted(p.name for p in (out / 'run').iterdir())} in {out / 'run'}")


if __name__ == "__main__":
    main()
