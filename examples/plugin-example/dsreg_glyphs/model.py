"""The model the plugin registers: one linear layer over the flattened image."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GlyphLinear(nn.Module):
    """Logits ``[B, classes]`` from ``batch["image"]`` (uint8 scaled to [0, 1] here)."""

    def __init__(self, shape: tuple[int, ...], classes: int) -> None:
        super().__init__()
        size = 1
        for d in shape:
            size *= d
        self.linear = nn.Linear(size, classes)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        x = batch["image"]
        return self.linear(x.flatten(1).float() / 255.0)
