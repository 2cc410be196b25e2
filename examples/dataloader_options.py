"""DataLoader options explained by running them, on the study note's CustomDataset(text, labels).

    python examples/dataloader_options.py

Each section changes one option and prints what changed. The same dataset through dsreg (a
vocabulary, padding collate_fn, ``.loader()``) is examples/text_from_lists.py.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import torch
from torch.utils.data import DataLoader, Dataset, SubsetRandomSampler, WeightedRandomSampler, get_worker_info


class CustomDataset(Dataset):
    """The study note's dataset: two Python lists, one example per index."""

    def __init__(self, text: list[str], labels: list[int]) -> None:
        self.labels = labels
        self.text = text

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> dict:
        return {"Text": self.text[idx], "Class": self.labels[idx]}


class Traced(CustomDataset):
    """CustomDataset that records which worker process loaded each example (and counts loads)."""

    def __init__(self, text: list[str], labels: list[int], counter=None, delay: float = 0.0) -> None:
        super().__init__(text, labels)
        self.counter, self.delay = counter, delay

    def __getitem__(self, idx: int) -> dict:
        if self.counter is not None:
            with self.counter.get_lock():
                self.counter.value += 1
        time.sleep(self.delay)
        info = get_worker_info()
        return {**super().__getitem__(idx), "worker": -1 if info is None else info.id, "pid": os.getpid()}


def texts_and_lengths(batch: list[dict]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """A custom collate_fn: a module-level function (workers started with spawn must pickle it)."""
    texts = [example["Text"] for example in batch]
    return texts, torch.tensor([len(t) for t in texts]), torch.tensor([example["Class"] for example in batch])


def show(title: str, loader: DataLoader, keys: tuple[str, ...] = ("Text", "Class")) -> list:
    print(f"\n== {title}")
    batches = list(loader)
    for i, batch in enumerate(batches):
        shown = {k: batch[k] for k in keys} if isinstance(batch, dict) else batch
        print(f"  batch {i}: {shown}")
    return batches


def main() -> None:
    text = ["Happy", "Amazing", "Sad", "Unhappy", "Glum"]
    labels = [1, 1, 0, 0, 0]
    data = CustomDataset(text, labels)
    print(f"dataset: {len(data)} examples; data[0] = {data[0]}")

    show("defaults: batch_size=1, no shuffle -> one example per batch, Class made a tensor", DataLoader(data))
    show(
        "batch_size=2 -> the default collate turns 2 dicts into one dict of lists/tensors; the last batch is short",
        DataLoader(data, batch_size=2),
    )
    show(
        "drop_last=True -> the short last batch is dropped (every batch has the same size)", DataLoader(data, batch_size=2, drop_last=True)
    )
    g = torch.Generator().manual_seed(0)
    show(
        "shuffle=True (generator seeded) -> a new order every epoch, reproducible with the seed",
        DataLoader(data, batch_size=2, shuffle=True, generator=g),
    )
    show(
        "sampler=SubsetRandomSampler([0, 2, 4]) -> only these indices, shuffled (sampler replaces shuffle)",
        DataLoader(data, batch_size=2, sampler=SubsetRandomSampler([0, 2, 4], generator=torch.Generator().manual_seed(0))),
    )
    weights = [1.0 if y == 1 else 0.25 for y in labels]  # positives are rarer: draw them more often
    drawn = torch.cat(
        [
            b["Class"]
            for b in DataLoader(
                data,
                batch_size=5,
                sampler=WeightedRandomSampler(weights, num_samples=1000, replacement=True, generator=torch.Generator().manual_seed(0)),
            )
        ]
    )
    print(
        f"\n== sampler=WeightedRandomSampler (positives weighted 4x) -> 1000 draws, share of Class 1: {drawn.float().mean():.0%}"
        f" (it is {sum(labels) / len(labels):.0%} in the data)"
    )
    show(
        "collate_fn=texts_and_lengths -> whatever the function returns: here (texts, lengths, labels)",
        DataLoader(data, batch_size=2, collate_fn=texts_and_lengths),
    )

    traced = Traced(text, labels)
    show(
        "num_workers=2 -> examples are loaded in 2 worker processes (batches still arrive in order)",
        DataLoader(traced, batch_size=2, num_workers=2),
        keys=("Text", "worker"),
    )

    batch = next(iter(DataLoader(data, batch_size=2, pin_memory=torch.cuda.is_available())))
    print(
        "\n== pin_memory=True -> batches are copied to page-locked memory so .to('cuda', non_blocking=True) overlaps"
        f" with compute; needs an accelerator (here: {'CUDA' if torch.cuda.is_available() else 'none, so it is off'});"
        f" is_pinned: {batch['Class'].is_pinned()}"
    )

    many = Traced([f"text {i}" for i in range(64)], [i % 2 for i in range(64)])
    for factor in (1, 4):
        many.counter = multiprocessing.get_context("fork" if os.name != "nt" else "spawn").Value("i", 0)
        many.delay = 0.002
        loader = DataLoader(many, batch_size=2, num_workers=2, prefetch_factor=factor)
        it = iter(loader)
        next(it)
        time.sleep(0.5)  # give the workers time to run ahead of us
        print(
            f"\n== prefetch_factor={factor} (num_workers=2, batch_size=2) -> after taking 1 batch, {many.counter.value} examples"
            f" are already loaded (each worker keeps up to {factor} batches ready)"
        )
        del it

    many.counter, many.delay = None, 0.0
    for persistent in (False, True):
        loader = DataLoader(many, batch_size=16, num_workers=2, persistent_workers=persistent)
        pids = [sorted({int(p) for b in loader for p in b["pid"]}) for _ in range(2)]
        same = "the same processes" if pids[0] == pids[1] else "new processes"
        print(
            f"\n== persistent_workers={persistent} -> worker pids epoch 1 {pids[0]}, epoch 2 {pids[1]}: {same}"
            f"{' (no start-up cost per epoch)' if persistent else ' (started again every epoch)'}"
        )


if __name__ == "__main__":  # workers started with spawn re-import this file: keep the work behind this guard
    main()
