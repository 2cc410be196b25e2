"""Trainer epoch time vs the plain hand-written loop: same model, data, batch size, optimizer and seed.

    python benchmarks/trainer_overhead.py [--examples 20000] [--batch-size 128] [--runs 7] [--model image-mlp]
    python benchmarks/trainer_overhead.py --dataset notmnist-synth   # a registered dataset instead

Both sides run in this one process, interleaved (hand, trainer, trainer, hand, ...), each on its own
copy of the same initial model; the figure is the median epoch wall time of each side. The
trainer's epoch is a whole ``fit()`` epoch: its progress accounting, scheduler step and end-of-epoch
reduction included. A third column adds the per-epoch checkpoint and metrics file. The target is
trainer / hand <= 1.1.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import dsreg


class Glyphs(dsreg.Builder):
    """Generated 28x28 uint8 images, ten classes of bars and boxes with noise (no files)."""

    name = "bench-glyphs"
    description = "Generated 28x28 glyph-like images for timing."
    license = "CC0-1.0"
    task = "image-classification"
    features = {"image": dsreg.Tensor((1, 28, 28), "uint8"), "label": dsreg.ClassLabel(tuple("ABCDEFGHIJ"))}
    splits = ("train", "test")
    config = {"n": 20000}

    def generate(self, split, files, **config):
        import numpy as np

        n = self.params["n"]  # the core passes the configuration as self.params, not as keywords
        rng = np.random.default_rng(0 if split == "train" else 1)
        count = n if split == "train" else n // 5
        base = np.zeros((10, 28, 28), np.uint8)
        for k in range(10):
            base[k, 4 + 2 * k : 8 + 2 * k, 4:24] = 255
            base[k, 4:24, 2 + 2 * k : 5 + 2 * k] = 200
        for i in range(count):
            label = i % 10
            img = np.roll(base[label], rng.integers(-2, 3, 2), (0, 1)).astype(np.int16) + rng.integers(0, 60, (28, 28))
            yield str(i), {"image": img.clip(0, 255).astype(np.uint8)[None], "label": label}


def hand_epoch(model: Any, loader: Any, optimizer: Any) -> float:
    """The study note's loop: zero_grad → forward → loss → backward → step. Return seconds."""
    import torch.nn.functional as F

    model.train()
    start = time.perf_counter()
    for batch in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(batch), batch["label"])
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def trainer_epoch(trainer: Any) -> float:
    trainer.epochs += 1  # one more epoch of the same run
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


@contextlib.contextmanager
def _scratch_cache() -> Iterator[None]:
    """Point DSREG_CACHE at a temporary folder while the block runs; remove both afterwards."""
    with tempfile.TemporaryDirectory(prefix="dsreg-bench-") as folder:
        os.environ["DSREG_CACHE"] = folder
        try:
            yield
        finally:
            del os.environ["DSREG_CACHE"]


def measure(
    dataset: str | None = None,
    examples: int = 20000,
    batch_size: int = 128,
    runs: int = 7,
    model: str = "image-mlp",
    threads: int | None = None,
    *,
    lr: float = 1e-3,
    model_options: dict[str, Any] | None = None,
    limit: int | None = None,
    checkpoint: bool = True,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time hand-written and Trainer epochs, interleaved; return the samples (seconds) of each side.

    ``limit`` trains on the first examples of a named dataset only; ``checkpoint=False`` leaves out
    the third side (the trainer that also writes its checkpoint every epoch).
    """
    import torch

    from dsreg.plugins import get_registry
    from dsreg.testing import registered
    from dsreg.train import Trainer, build_model, sample_batch

    if threads:
        torch.set_num_threads(threads)
    with contextlib.ExitStack() as stack:
        if "DSREG_CACHE" not in os.environ:  # a scratch cache, gone with the measurement
            stack.enter_context(_scratch_cache())
        if dataset:
            name, config = dataset, dict(config or {})
        else:
            name, config = Glyphs.name, {"n": examples}
            registry = stack.enter_context(registered(Glyphs))
            # a fresh registry holds datasets only: add the core's default models to it
            from dsreg.train import models as default_models

            record = registry.plugin("dsreg.train.models", "dsreg")
            default_models.register_models(lambda n, f, tasks=(): registry.add_model(record, n, f, tasks))
        assert get_registry().models, "no models registered"

        ds = dsreg.load(name, split=f"train[:{limit}]" if dataset and limit else "train", **config)
        torch.manual_seed(0)
        _, net = build_model(model, ds.info, sample_batch(ds), **(model_options or {}))
        hand_model = copy.deepcopy(net)
        hand_opt = torch.optim.AdamW(hand_model.parameters(), lr=lr, weight_decay=0.01)
        loader = ds.loader(batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))

        # The same thread count as the hand loop: left to choose, the trainer would count free cores.
        common = dict(
            epochs=1, batch_size=batch_size, lr=lr, schedule="constant", seed=0, quiet=True, device="cpu", threads=torch.get_num_threads()
        )
        trainer = Trainer(copy.deepcopy(net), ds, **common)
        saving = Trainer(
            copy.deepcopy(net), ds, out_dir=stack.enter_context(tempfile.TemporaryDirectory(prefix="dsreg-bench-run-")), **common
        )

        # Warm up each side once (allocator, first-touch of the memory map), then time.
        hand_epoch(hand_model, loader, hand_opt)
        trainer.fit()
        if checkpoint:
            saving.fit()
        hand, plain, saved = [], [], []
        # CPU seconds of this process too: with one thread and no workers they are the work done,
        # which other jobs on a shared machine inflate far less than the wall time.
        hand_cpu: list[float] = []
        plain_cpu: list[float] = []
        for run in range(runs):
            order = [("h", "t", "s"), ("s", "t", "h")][run % 2] if checkpoint else [("h", "t"), ("t", "h")][run % 2]
            for side in order:
                if side == "h":
                    cpu = time.process_time()
                    hand.append(hand_epoch(hand_model, loader, hand_opt))
                    hand_cpu.append(time.process_time() - cpu)
                elif side == "t":
                    cpu = time.process_time()
                    plain.append(trainer_epoch(trainer))
                    plain_cpu.append(time.process_time() - cpu)
                else:
                    saved.append(trainer_epoch(saving))
        note = (
            f"dataset {name} ({len(ds):,} train examples), model {model}, batch {batch_size}, "
            f"{torch.get_num_threads()} torch threads, {runs} interleaved runs each"
        )
        return {
            "hand": hand,
            "trainer": plain,
            "trainer_checkpoint": saved,
            "hand_cpu": hand_cpu,
            "trainer_cpu": plain_cpu,
            "examples": len(ds),
            "note": note,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="a registered dataset (default: generated glyphs)")
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--model", default="image-mlp")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    result = measure(args.dataset, args.examples, args.batch_size, args.runs, args.model, args.threads)
    hand, plain, saved = result["hand"], result["trainer"], result["trainer_checkpoint"]
    h, t, s = (statistics.median(x) for x in (hand, plain, saved))
    n = result["examples"]
    print(result["note"] + " (median)")
    print(f"hand-written loop            {h * 1000:8.1f} ms/epoch  {n / h:9,.0f} ex/s")
    print(f"Trainer.fit                  {t * 1000:8.1f} ms/epoch  {n / t:9,.0f} ex/s  ratio {t / h:.3f}")
    print(f"Trainer.fit + checkpoint     {s * 1000:8.1f} ms/epoch  {n / s:9,.0f} ex/s  ratio {s / h:.3f}")
    print("all runs (ms): hand " + " ".join(f"{x * 1000:.0f}" for x in hand))
    print("               trainer " + " ".join(f"{x * 1000:.0f}" for x in plain))
    print("               trainer+ckpt " + " ".join(f"{x * 1000:.0f}" for x in saved))
    sys.exit(0 if t / h <= 1.1 else 1)


if __name__ == "__main__":
    main()
