"""How faithful is notmnist-synth? Train one small CNN on it and test on the REAL notMNIST images.

    python plugins/notmnist/benchmarks/faithfulness.py                      # real t10k from ../shared/data
    python plugins/notmnist/benchmarks/faithfulness.py --idx DIR --seeds 0 1 2

The real images are the t10k files of the notMNIST idx copy (10,000 images, 1,000 per letter, from
notMNIST_small), read through `notmnist-idx` (`-c splits=test`, handed over with `--from`). They are
split per class by a seeded draw into two halves of 5,000; images of the test half that equal an image
of the train half pixel for pixel are left out of both scores (t10k has 57 groups of exact copies).

* synth→real: the CNN trained on notmnist-synth's train split (default config), tested on the test half.
* real→real: the same CNN, same settings, trained on the train half (5,000 real images), tested on the same test half.

It prints both accuracies, their ratio (the target is >= 0.9) and the pixel statistics of both sets
(how much of the box the glyph fills, mid-grey share, all-white share), then one summary line. The
prepared stores go to a temporary cache, so a changed recipe is always prepared afresh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

IDX = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "notmnist-idx"


class SmallCNN(nn.Module):
    """Two conv blocks (32, 64 channels) and a 128-unit head: a small CNN any laptop trains in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def as_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 1, 28, 28] -> float32 scaled as the plugin's collate does: (x - 127.5) / 255."""
    return ((torch.from_numpy(images).float() - 127.5) / 255.0).contiguous(memory_format=torch.channels_last)


def train(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int, batch_size: int = 128, lr: float = 3e-3) -> nn.Module:
    """AdamW with a one-cycle schedule, the same for every training set."""
    torch.manual_seed(seed)
    model = SmallCNN().to(memory_format=torch.channels_last)
    x, y = as_input(images), torch.from_numpy(labels).long()
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    x = as_input(images)
    predicted = torch.cat([model(chunk).argmax(1) for chunk in x.split(1000)])
    return float((predicted.numpy() == labels).mean())


def pixel_stats(images: np.ndarray) -> dict[str, float]:
    """Figures that tell how an image set looks: ink, grey levels, how much of the box the glyph spans."""
    x = images.reshape(len(images), 28, 28)
    ink = x > 32
    rows, cols = ink.any(2), ink.any(1)
    height = np.where(rows.any(1), 28 - rows.argmax(1) - rows[:, ::-1].argmax(1), 0)
    width = np.where(cols.any(1), 28 - cols.argmax(1) - cols[:, ::-1].argmax(1), 0)
    return {
        "mean pixel": float(x.mean()),
        "share of pixels > 127": float((x > 127).mean()),
        "share of pixels 1..254 (anti-aliased)": float(((x > 0) & (x < 255)).mean()),
        "glyph spans full height": float((height == 28).mean()),
        "glyph spans full width": float((width == 28).mean()),
        "all-white images": float((x == 255).all(axis=(1, 2)).mean()),
    }


def real_halves(idx_dir: Path, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The real t10k images through notmnist-idx, split per class into two seeded halves (copies left out of the test half)."""
    import dsreg

    dsreg.fetch("notmnist-idx", from_path=idx_dir, splits="test", quiet=True)
    real = dsreg.load("notmnist-idx", split="test", splits=["test"], normalize=False)
    batch = real.__getitems__(list(range(len(real))))
    images, labels = batch["image"].numpy(), batch["label"].numpy()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        train_idx.extend(members[: len(members) // 2])
        test_idx.extend(members[len(members) // 2 :])
    seen = {images[i].tobytes() for i in train_idx}
    test_idx = [i for i in test_idx if images[i].tobytes() not in seen]
    tr, te = np.array(sorted(train_idx)), np.array(sorted(test_idx))
    return images[tr], labels[tr], images[te], labels[te]


def synth_train(config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any], float]:
    import dsreg

    start = time.perf_counter()
    ds = dsreg.load("notmnist-synth", split="train", normalize=False, **config)
    seconds = time.perf_counter() - start
    batch = ds.__getitems__(list(range(len(ds))))
    notes = dsreg.info("notmnist-synth", **config).manifest["notes"]
    return batch["image"].numpy(), batch["label"].numpy(), notes, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--idx",
        type=Path,
        default=Path(os.environ.get("DSREG_NOTMNIST_DATA", IDX.parent)) / "notmnist-idx",
        help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds; the median is reported")
    parser.add_argument("--train-size", type=int, default=None, help="notmnist-synth train_size (default: its default)")
    parser.add_argument("--synth-seed", type=int, default=0, help="notmnist-synth seed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="dsreg-faithfulness-") as cache:
        os.environ["DSREG_CACHE"] = cache
        real_x, real_y, test_x, test_y = real_halves(args.idx, seed=0)
        config: dict[str, Any] = {"seed": args.synth_seed}
        if args.train_size is not None:
            config["train_size"] = args.train_size
        synth_x, synth_y, notes, prep = synth_train(config)

    print(f"real: {len(real_x)} train / {len(test_x)} test images (t10k halves, exact copies of train left out of test)")
    print(
        f"synth: {len(synth_x)} train images from {len(notes['fonts'])} fonts, prepared in {prep:.1f} s; "
        f"{len(notes['fonts_rejected'])} fonts rejected"
    )
    print(f"\n{'pixel statistics':40s} {'real t10k':>10s} {'synth':>10s}")
    real_stats, synth_stats = pixel_stats(np.concatenate([real_x, test_x])), pixel_stats(synth_x)
    for key in real_stats:
        print(f"{key:40s} {real_stats[key]:10.3f} {synth_stats[key]:10.3f}")

    results: dict[str, list[float]] = {"synth->real": [], "real->real": []}
    for seed in args.seeds:
        start = time.perf_counter()
        results["synth->real"].append(accuracy(train(synth_x, synth_y, args.epochs, seed), test_x, test_y))
        results["real->real"].append(accuracy(train(real_x, real_y, args.epochs, seed), test_x, test_y))
        print(
            f"seed {seed}: synth->real {results['synth->real'][-1]:.4f}  real->real {results['real->real'][-1]:.4f}"
            f"  ({time.perf_counter() - start:.0f} s)"
        )
    synth_acc, real_acc = statistics.median(results["synth->real"]), statistics.median(results["real->real"])
    print(
        f"\nsynth->real accuracy {synth_acc:.4f}, real->real accuracy {real_acc:.4f}, "
        f"ratio {synth_acc / real_acc:.3f} (target >= 0.9; {args.epochs} epochs, median of {len(args.seeds)} seed(s))"
    )


if __name__ == "__main__":
    main()
