"""The explicit training loop over ``dsreg.load(...).loader()``: no trainer, nothing hidden.

    python examples/hand_written_loop.py [DATASET] [--epochs 2] [--quick]

zero_grad → forward → loss → backward → step, on an MLP built from the study note's ``MyLinear``
(explicit ``nn.Parameter`` weight and bias). Any registered image-classification dataset with
fixed-size images works; the default is ``notmnist-synth`` from dsreg-notmnist (no download).
``dsreg train DATASET`` runs the same loop with a progress bar, checkpoints and torchrun on top.
``--quick`` (or ``DSREG_EXAMPLE_QUICK=1``, which tests/test_examples.py sets) trains on a small
notmnist-synth (1,000 + 200 images): the same loop in seconds, at a lower accuracy.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn
from torch.nn import functional as F

import dsreg
from dsreg.train.nets import MyLinear

#: notmnist-synth's config under --quick: a tenth of its default size, enough for several batches an epoch.
QUICK_CONFIG = {"train_size": 1_000, "test_size": 200}


class MLP(nn.Module):
    """Flatten → MyLinear → ReLU → MyLinear, as in the study note."""

    def __init__(self, in_features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.hidden = MyLinear(in_features, hidden)
        self.out = MyLinear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x.flatten(1))))


def as_input(images: torch.Tensor) -> torch.Tensor:
    # Datasets may hand out uint8 pixels or already-normalised floats: give the model floats.
    return images.float() / 255 if images.dtype == torch.uint8 else images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="notmnist-synth")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("DSREG_EXAMPLE_QUICK") == "1",
        help=f"train on notmnist-synth with {QUICK_CONFIG} (a check that the loop runs, not of the accuracy)",
    )
    args = parser.parse_args()
    config = QUICK_CONFIG if args.quick else {}

    torch.manual_seed(0)
    train = dsreg.load(args.dataset, split="train", **config)  # fetches and prepares on first use
    test = dsreg.load(args.dataset, split="test", **config)
    loader = train.loader(batch_size=args.batch_size, shuffle=True)
    first = next(iter(loader))
    print(f"{train!r}\nbatch: " + ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in first.items()))

    model = MLP(first["image"][0].numel(), 256, len(train.classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    for epoch in range(args.epochs):
        model.train()
        total, seen, start = 0.0, 0, time.perf_counter()
        for batch in loader:
            optimizer.zero_grad()  # 1. forget the last step's gradients
            logits = model(as_input(batch["image"]))  # 2. forward
            loss = F.cross_entropy(logits, batch["label"])  # 3. loss
            loss.backward()  # 4. backward: fills .grad
            optimizer.step()  # 5. step: update the parameters
            total += loss.item() * len(batch["label"])
            seen += len(batch["label"])
        print(f"epoch {epoch + 1}: loss {total / seen:.4f}  ({seen / (time.perf_counter() - start):,.0f} examples/s)")

    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in test.loader(batch_size=512):
            correct += int((model(as_input(batch["image"])).argmax(1) == batch["label"]).sum())
    print(f"test accuracy: {correct / len(test):.2%} on {len(test):,} examples")


if __name__ == "__main__":
    main()
