"""A custom nn.Module with nn.Parameter, as in the study note: what registering a parameter buys you.

    python examples/custom_module.py

Builds ``MyLinear`` (``x @ weight + bias`` with explicit parameters; dsreg's default image MLP uses
the same layer, ``dsreg.train.nets.MyLinear``), shows which attributes become parameters, where the
gradients land, and trains a two-layer MLP made of it on a small generated problem (two interleaved
spirals) with the explicit loop: zero_grad → forward → loss → backward → step.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class MyLinear(nn.Module):
    """``x @ weight + bias``; weight and bias are nn.Parameters, so the module owns and trains them."""

    def __init__(self, in_units: int, units: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_units)  # the range nn.Linear uses, so activations keep their scale
        self.weight = nn.Parameter(torch.empty(in_units, units).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(units).uniform_(-bound, bound))
        self.scale = torch.ones(units)  # a plain tensor attribute: NOT a parameter, not trained, not moved by .to()
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))  # state that is saved, not trained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x @ self.weight + self.bias


class MLP(nn.Module):
    """Two MyLinear layers with a ReLU between: modules assigned as attributes register their parameters too."""

    def __init__(self, in_units: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.hidden = MyLinear(in_units, hidden)
        self.out = MyLinear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x)))


def spirals(n: int, noise: float = 0.15, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``n`` points of two interleaved spirals and their class (0 or 1)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3 * math.pi + 0.5
    label = torch.arange(n) % 2
    sign = 1 - 2 * label.float()
    x = torch.stack([sign * t * torch.cos(t), sign * t * torch.sin(t)], dim=1) / 5
    return x + noise * torch.randn(n, 2, generator=g), label


def main() -> None:
    torch.manual_seed(0)
    layer = MyLinear(3, 2)
    print("MyLinear(3, 2) parameters (registered because they are nn.Parameter attributes):")
    for name, p in layer.named_parameters():
        print(f"  {name:<7} shape {tuple(p.shape)}  requires_grad={p.requires_grad}")
    print(f"  'scale' is a parameter? {'scale' in dict(layer.named_parameters())}; state_dict keys: {list(layer.state_dict())}")

    x = torch.randn(4, 3)
    y = layer(x)
    print(f"forward: x {tuple(x.shape)} -> y {tuple(y.shape)}; same as x @ W + b: {torch.allclose(y, x @ layer.weight + layer.bias)}")
    y.sum().backward()
    print(
        f"after backward: weight.grad {tuple(layer.weight.grad.shape)}, bias.grad = {layer.bias.grad.tolist()} (one per output, summed over 4 rows)"
    )

    model = MLP(2, 64, 2)
    print(f"\nMLP(2, 64, 2): {sum(p.numel() for p in model.parameters())} parameters in {len(list(model.parameters()))} tensors")
    train_x, train_y = spirals(800, seed=1)
    test_x, test_y = spirals(400, seed=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(1, 301):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(train_x), train_y)
        loss.backward()
        optimizer.step()
        if step in (1, 50, 150, 300):
            with torch.no_grad():
                acc = (model(test_x).argmax(1) == test_y).float().mean().item()
            print(f"  step {step:>3}  loss {loss.item():.4f}  test accuracy {acc:.1%}")
    print(f"MyLinear.forward ran {int(model.hidden.calls)} times (a buffer: saved in state_dict, never trained)")


if __name__ == "__main__":
    main()
