"""The study note's plain training loop, on notmnist-synth: zero_grad -> forward -> loss -> backward -> step.

    python plugins/notmnist/examples/study_note_loop.py

No download: notmnist-synth renders its letters from the fonts on this machine on first use.
"""

from __future__ import annotations

import time

import torch
from torch import nn

import dsreg


class Linear(nn.Module):
    """y = x W^T + b, written with nn.Parameter as in the study note."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / n_in**0.5)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


class Model(nn.Module):
    """28x28 image -> 128 hidden units -> 10 letters."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = Linear(28 * 28, 128)
        self.out = Linear(128, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(images.flatten(1))))


def main() -> None:
    torch.manual_seed(0)
    train = dsreg.load("notmnist-synth", split="train")
    test = dsreg.load("notmnist-synth", split="test")
    print(train)
    loader = train.loader(batch_size=64, shuffle=True)

    model = Model()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    started = time.perf_counter()
    total, seen = 0.0, 0
    for step, batch in enumerate(loader, 1):
        optimizer.zero_grad()
        outputs = model(batch["image"])  # float32 [64, 1, 28, 28], scaled as (x - 127.5) / 255
        loss = loss_fn(outputs, batch["label"])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch["label"])
        seen += len(batch["label"])
        if step % 20 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")
    print(f"epoch 1: mean training loss {total / seen:.4f} over {seen:,} images in {time.perf_counter() - started:.1f} s")

    correct = 0
    with torch.no_grad():
        for batch in test.loader(batch_size=256):
            correct += (model(batch["image"]).argmax(1) == batch["label"]).sum().item()
    print(f"test accuracy {correct / len(test):.3f} ({correct:,}/{len(test):,})")


if __name__ == "__main__":
    main()
