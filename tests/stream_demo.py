"""Issue 13's streaming checks shown on notmnist-synth: exactly once for 2 ranks x 2 workers, and a mid-epoch resume.

    python tests/stream_demo.py

notmnist-synth (4,000 + 1,000 rendered glyphs) is prepared into 64 KiB shards in a temporary cache
(removed afterwards). Then, with ranks simulated by ``rank=`` / ``world_size=`` and real DataLoader
workers:

- exactly once: each of 2 ranks reads its part through ``loader(num_workers=2)``, shuffled; the
  content hashes of everything read are compared with the plain map-style split's;
- resume: an uninterrupted epoch against (7 batches, ``state_dict()``, a fresh dataset,
  ``load_state_dict``, the rest), with 0 and with 2 workers.

The same checks are asserted by tests/test_streaming.py on a hand-made store.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from typing import Any

SIZE = {"train_size": 4000, "test_size": 1000}


def keys(batch: dict[str, Any]) -> list[str]:
    return [hashlib.sha256(im.numpy().tobytes() + bytes([int(lab)])).hexdigest()[:16] for im, lab in zip(batch["image"], batch["label"])]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dsreg-stream-demo-") as tmp:
        os.environ["DSREG_CACHE"] = tmp
        os.environ["DSREG_SHARD_BYTES"] = "64KiB"
        import dsreg

        dsreg.fetch("notmnist-synth", split="train", quiet=True, **SIZE)
        plain = dsreg.load("notmnist-synth", "train", **SIZE)
        expected = Counter(k for b in plain.loader(batch_size=500) for k in keys(b))
        stream = dsreg.load("notmnist-synth", "train", streaming=True, **SIZE)
        print(
            f"notmnist-synth train: {len(plain):,} examples, {len(stream.shards)} shards; plain content hashes: {len(expected):,} distinct"
        )

        print("\n== exactly once: 2 ranks x 2 DataLoader workers, shuffled ==")
        seen: Counter[str] = Counter()
        for rank in range(2):
            ds = stream.replace(rank=rank, world_size=2, shuffle=True, seed=0, buffer_size=1024)
            got = [k for b in ds.loader(batch_size=128, num_workers=2) for k in keys(b)]
            print(f"rank {rank}: len(ds) {len(ds):,}, read {len(got):,} examples ({ds.num_batches(128, 2)} batches from 2 workers)")
            seen.update(got)
        twice = sum(1 for c in seen.values() if c > 1)
        print(f"total read {sum(seen.values()):,}; distinct {len(seen):,}; read more than once {twice}; missing {len(expected - seen)}")
        print("same multiset of content hashes as the plain dataset:", seen == expected)

        print("\n== mid-epoch resume: uninterrupted epoch vs (7 batches, state_dict, fresh dataset, load_state_dict, rest) ==")
        for workers in (0, 2):
            ds = stream.shuffle(seed=1, buffer_size=1024)
            ds.set_epoch(3)
            whole = [keys(b) for b in ds.loader(batch_size=100, num_workers=workers)]
            first = stream.shuffle(seed=1, buffer_size=1024)
            first.set_epoch(3)
            taken = []
            for batch in first.loader(batch_size=100, num_workers=workers):
                taken.append(keys(batch))
                if len(taken) == 7:
                    break
            state = first.state_dict()
            fresh = stream.shuffle(seed=1, buffer_size=1024)
            fresh.load_state_dict(state)
            rest = [keys(b) for b in fresh.loader(batch_size=100, num_workers=workers)]
            same = rest == whole[7:] if workers == 0 else Counter(map(tuple, rest)) == Counter(map(tuple, whole[7:]))
            how = "in order" if workers == 0 else "as batches (workers take turns afresh)"
            print(
                f"workers {workers}: state epoch {state['epoch']}, consumed per worker {state['consumed']}; "
                f"first 7 batches match: {taken == whole[:7]}; remaining {sum(map(len, rest)):,} examples "
                f"same as the uninterrupted epoch's {sum(map(len, whole[7:])):,} {how}: {same}"
            )


if __name__ == "__main__":
    main()
