"""Data-parallel training on CPU with two processes, and a check that both ranks end with the same weights.

    python examples/torchrun_check.py [DATASET] [--nproc 2] [--epochs 2] [--quick]

Run plainly, it launches itself under ``torch.distributed.run`` (gloo on CPU). Each rank trains
with ``dsreg.train.Trainer`` on its own DistributedSampler shard, records which examples it saw and
saves its final weights; the launcher then compares the ranks. Default dataset: ``notmnist-synth``.
``--quick`` (or ``DSREG_EXAMPLE_QUICK=1``, which tests/test_examples.py sets) trains on a small
notmnist-synth (1,000 + 200 images): the same two ranks and checks in seconds, at a lower accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

#: notmnist-synth's config under --quick: a tenth of its default size, enough for every rank to see several batches.
QUICK_CONFIG = {"train_size": 1_000, "test_size": 200}


def worker(dataset: str, config: dict, epochs: int, out: Path) -> None:
    """One rank: train, then save what it saw and its weights."""
    from dsreg.train import Trainer

    trainer = Trainer(None, dataset, f"{dataset}:test", config=config, epochs=epochs, batch_size=128, out_dir=out / "run")
    trainer.fit()
    result = trainer.evaluate()
    rank = trainer.world.rank
    # Weights as numpy arrays and the rest as JSON: the launcher compares them without importing torch.
    np.savez(out / f"rank{rank}.npz", **{name: t.cpu().numpy() for name, t in trainer.module.state_dict().items()})
    # The sampler's order is a function of (seed, epoch): list it for the last epoch to see this rank's shard.
    seen = {
        "accuracy": result["accuracy"],
        "examples": result["examples"],
        "shard": [int(i) for i in trainer.sampler],
        "parameters": [name for name, _ in trainer.module.named_parameters()],
    }
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="notmnist-synth")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("DSREG_EXAMPLE_QUICK") == "1",
        help=f"train on notmnist-synth with {QUICK_CONFIG} (a check of the mechanics, not of the accuracy)",
    )
    args = parser.parse_args()
    config = QUICK_CONFIG if args.quick else {}
    if "WORLD_SIZE" in os.environ:
        worker(args.dataset, config, args.epochs, args.out)
        return

    import dsreg

    dsreg.fetch(args.dataset, **config)  # once, before the ranks start
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
        *(["--quick"] if args.quick else []),
    ]
    subprocess.run(cmd, check=True)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(args.nproc)]
    states = [dict(np.load(out / f"rank{r}.npz")) for r in range(args.nproc)]
    shards = [set(r["shard"]) for r in ranks]
    disjoint = all(not (shards[i] & shards[j]) for i in range(len(shards)) for j in range(i + 1, len(shards)))
    covered = len(set().union(*shards))
    parameters = ranks[0]["parameters"]
    buffers = [k for k in states[0] if k not in parameters]
    same = all(all(np.array_equal(states[0][k], state[k]) for k in parameters) for state in states[1:])

    def largest(keys: list[str]) -> float:
        return max((float(np.abs(states[0][k] - state[k]).max(initial=0)) for state in states[1:] for k in keys), default=0.0)

    for i, r in enumerate(ranks):
        print(
            f"rank {i}: last epoch's shard {len(r['shard']):,} examples (first {r['shard'][:4]}); "
            f"test accuracy {r['accuracy']:.2%} on {r['examples']:,} examples (summed over ranks)"
        )
    print(f"last epoch's shards disjoint: {disjoint}; together they cover {covered:,} distinct examples")
    print(
        f"final parameters identical on every rank: {same} (largest difference {largest(parameters):.1e}) across {len(parameters)} tensors"
    )
    if buffers:
        # DDP copies rank 0's buffers to every rank at the start of each forward; the last forward then
        # updates each rank's copy from its own batch, so BatchNorm running statistics differ a little.
        print(f"buffers (e.g. BatchNorm running statistics), each rank's own last batch: largest difference {largest(buffers):.1e}")
    print(f"rank 0's checkpoint and metrics: {sorted(p.name for p in (out / 'run').iterdir())} in {out / 'run'}")


if __name__ == "__main__":
    main()
