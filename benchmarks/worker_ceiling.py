"""How fast can DataLoader workers hand batches back at all? The ceiling for any workers>0 epoch.

    python benchmarks/worker_ceiling.py

A Dataset whose ``__getitems__`` returns an already made 256x1x28x28 batch (no gathering, no
decoding): what remains is DataLoader's own transfer from worker processes through shared memory.
On the 2-core machine of benchmarks/results it is 106,000–125,000 float32 images/s with 2 workers,
against millions with ``num_workers=0`` — which is why the epoch target against ImageFolder with 2
workers (150x, i.e. about 1.7 M images/s) cannot be met through DataLoader workers there.
"""

from __future__ import annotations

import statistics
import time

import torch


class Premade(torch.utils.data.Dataset):
    """Returns a copy of one ready batch for every batch of indices."""

    def __init__(self, n: int, dtype: torch.dtype) -> None:
        self.n = n
        self.image = torch.zeros(256, 1, 28, 28, dtype=dtype)
        self.label = torch.zeros(256, dtype=torch.int64)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        raise NotImplementedError("only whole batches are served")

    def __getitems__(self, indices: list[int]) -> dict:
        return {"image": self.image.clone(), "label": self.label.clone()}


def passthrough(batch: dict) -> dict:
    return batch


def main() -> None:
    for dtype in (torch.float32, torch.uint8):
        data = Premade(256 * 800, dtype)
        for workers in (0, 2):
            rates = []
            for _ in range(3):
                loader = torch.utils.data.DataLoader(data, batch_size=256, num_workers=workers, collate_fn=passthrough)
                start, seen = time.perf_counter(), 0
                for batch in loader:
                    seen += len(batch["image"])
                rates.append(seen / (time.perf_counter() - start))
            print(f"{str(dtype):14s} workers={workers}: {statistics.median(rates):12,.0f} images/s (median of 3)")


if __name__ == "__main__":
    main()
