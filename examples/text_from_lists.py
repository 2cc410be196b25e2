"""The study note's example: two Python lists through dsreg_text.from_lists and a DataLoader.

python examples/text_from_lists.py
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

import dsreg_text

text = ["Happy", "Amazing", "Sad", "Unhappy", "Glum"]
labels = [1, 1, 0, 0, 0]

dataset = dsreg_text.from_lists(text, labels, classes=["negative", "positive"])
print(dataset)
print("classes:", dataset.classes, " vocabulary:", dataset.vocab.tokens)

torch.manual_seed(0)  # the same shuffle on every run
loader = DataLoader(dataset, batch_size=2, shuffle=True, collate_fn=dataset.collate_fn)
for i, batch in enumerate(loader):
    print(f"batch {i}:")
    for key, value in batch.items():
        print(f"  {key}: {value!r}")
