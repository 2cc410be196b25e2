"""notmnist: splits from a generated archive pair served as a mirror; dedupe, skips, seeded validation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import dsreg
from dsreg_notmnist import NotMNIST
from dsreg_notmnist.builders import SPARES, rank
from dsreg_notmnist.codec import pixel_hash
from dsreg_notmnist.synth import LETTERS
from dsreg_notmnist.testing import Pair

from notmnistdata import bind, column, serve

QUOTA = 5  # validation_size=50 in these tests


def expected(pair: Pair, seed: int, dedupe: bool = True) -> dict:
    """Work out every figure from what the generator put where, independently of the Builder."""
    small, large = pair.content["small"], pair.content["large"]
    test_ids = [cid for cid in small.values() if cid is not None]
    validation: list[str] = []
    for letter in LETTERS:
        keys = sorted((k for k in large if k[0] == letter), key=lambda k: rank(seed, k))[: QUOTA + SPARES]
        readable = [k for k in keys if large[k] is not None]
        validation += readable[:QUOTA]
    val_ids = [large[k] for k in validation]
    val_kept = [cid for cid in val_ids if not (dedupe and cid in set(test_ids))]
    train_ids = [cid for k, cid in large.items() if cid is not None and k not in set(validation)]
    equal_test = sum(cid in set(test_ids) for cid in train_ids)
    equal_val = sum(cid in set(val_kept) and cid not in set(test_ids) for cid in train_ids)
    train_kept = [cid for cid in train_ids if not (dedupe and (cid in set(test_ids) or cid in set(val_kept)))]
    return {
        "sizes": {"test": len(test_ids), "validation": len(val_kept), "train": len(train_kept)},
        "val_equal_test": sum(cid in set(test_ids) for cid in val_ids),
        "train_equal_test": equal_test,
        "train_equal_val": equal_val,
        "within": {s: len(ids) - len(set(ids)) for s, ids in (("test", test_ids), ("validation", val_kept), ("train", train_kept))},
        "validation_per_class": Counter(k[0] for k in validation),
        "corrupt_in_validation": [
            k
            for letter in LETTERS
            for k in sorted((k for k in large if k[0] == letter), key=lambda k: rank(seed, k))[:QUOTA]
            if large[k] is None
        ],
    }


def fetch(pair: Pair, register, file_server, **config):
    """Register notmnist bound to the pair, serve the pair as a mirror and fetch from it."""
    register(bind(NotMNIST, pair.paths))
    url = serve(file_server, pair.paths)
    return dsreg.fetch("notmnist", mirrors=[url], quiet=True, validation_size=50, **config)


def test_splits_dedupe_and_skips_match_the_generated_archives(dsreg_cache: Path, dsreg_register, dsreg_file_server, pair: Pair) -> None:
    inf = fetch(pair, dsreg_register, dsreg_file_server)
    want = expected(pair, seed=0)
    m = inf.manifest
    assert {s: meta["examples"] for s, meta in m["splits"].items()} == want["sizes"]
    assert list(m["splits"]) == ["test", "validation", "train"]
    notes = m["notes"]
    assert notes["equal_to_earlier_split"]["validation"] == ({"test": want["val_equal_test"]} if want["val_equal_test"] else {})
    assert notes["equal_to_earlier_split"]["train"].get("test", 0) == want["train_equal_test"]
    assert notes["equal_to_earlier_split"]["train"].get("validation", 0) == want["train_equal_val"]
    assert notes["removed_by_dedupe"] == {
        "test": 0,
        "validation": want["val_equal_test"],
        "train": want["train_equal_test"] + want["train_equal_val"],
    }
    assert want["train_equal_test"] + want["val_equal_test"] == 30  # every overlapping image was found
    assert notes["duplicates_within_split"] == want["within"]
    # Both corrupt members are reported, with their class, and never reach a split.
    skipped = {s: [(x["key"], x["reason"]) for x in meta["skipped"]] for s, meta in m["splits"].items()}
    assert [(k[0], r.split(" (")[0]) for k, r in skipped["test"]] == [("B", "truncated or damaged PNG")]
    assert sum(len(v) for v in skipped.values()) == 2
    assert [r for s in ("validation", "train") for _, r in skipped[s]] == ["empty file"]
    assert notes["skipped_per_class"]["test"] == {"B": 1}
    assert sum(notes["skipped_per_class"][s].get("E", 0) for s in ("validation", "train")) == 1


def test_no_image_is_in_two_splits_and_validation_is_class_balanced(
    dsreg_cache: Path, dsreg_register, dsreg_file_server, pair: Pair
) -> None:
    fetch(pair, dsreg_register, dsreg_file_server)
    splits = dsreg.load("notmnist", validation_size=50, normalize=False)
    hashes = {s: {pixel_hash(x) for x in column(ds, "image")} for s, ds in splits.items()}
    assert not (hashes["test"] & hashes["validation"]) and not (hashes["train"] & (hashes["test"] | hashes["validation"]))
    labels = Counter(column(splits["validation"], "label").tolist())
    want = expected(pair, seed=0)
    # Balanced before dedupe: each class gave QUOTA readable images, minus those equal to a test image.
    assert sum(labels.values()) == want["sizes"]["validation"] and max(labels.values()) <= QUOTA
    assert all(want["validation_per_class"][letter] == QUOTA for letter in LETTERS)


def test_dedupe_off_keeps_everything_and_ties_no_split_to_another(dsreg_cache: Path, dsreg_register, dsreg_file_server, pair: Pair) -> None:
    inf = fetch(pair, dsreg_register, dsreg_file_server, dedupe=False)
    want = expected(pair, seed=0, dedupe=False)
    assert {s: meta["examples"] for s, meta in inf.manifest["splits"].items()} == want["sizes"]
    assert want["sizes"] == {"test": 300, "validation": 50, "train": 120 * 10 - 50}
    assert inf.manifest["notes"]["removed_by_dedupe"] == {"test": 0, "validation": 0, "train": 0}
    assert [split.after for split in NotMNIST(dedupe=False).plan()] == [(), (), ()]
    assert [split.after for split in NotMNIST().plan()] == [(), ("test",), ("test", "validation")]


def test_the_test_split_downloads_only_the_small_archive_and_later_splits_join_its_store(
    dsreg_cache: Path, dsreg_register, dsreg_file_server, pair: Pair
) -> None:
    dsreg_register(bind(NotMNIST, pair.paths))
    url = serve(dsreg_file_server, pair.paths)
    inf = dsreg.fetch("notmnist", split="test", mirrors=[url], quiet=True, validation_size=50)
    assert {name for name, _, _ in dsreg_file_server.requests} == {"notMNIST_small.tar.gz"}
    assert inf.ready_splits == ("test",) and not inf.cached
    store = inf.prepared_path
    test_file = (store / "test-00000.arrow").stat()
    # A later split joins the same store; test is not prepared again.
    dsreg.fetch("notmnist", split="validation", mirrors=[url], quiet=True, validation_size=50)
    assert len(dsreg.load("notmnist", split="validation", validation_size=50, download=False)) > 0
    assert {name for name, _, _ in dsreg_file_server.requests} == {"notMNIST_small.tar.gz", "notMNIST_large.tar.gz"}
    after = dsreg.info("notmnist", validation_size=50)
    assert after.ready_splits == ("test", "validation") and after.prepared_path == store
    assert (store / "test-00000.arrow").stat().st_mtime_ns == test_file.st_mtime_ns


def test_each_split_prepared_alone_equals_the_split_prepared_with_the_others(
    dsreg_cache: Path, dsreg_register, dsreg_file_server, pair: Pair, tmp_path: Path
) -> None:
    """Per-split prepares keep no state between calls: train alone (after its plan's splits) equals train of a full fetch."""
    dsreg_register(bind(NotMNIST, pair.paths))
    url = serve(dsreg_file_server, pair.paths)
    dsreg.fetch("notmnist", mirrors=[url], quiet=True, validation_size=50, cache_dir=tmp_path / "full")
    full = dsreg.load("notmnist", validation_size=50, normalize=False, cache_dir=tmp_path / "full")
    for split in ("validation", "train"):
        alone = tmp_path / f"alone-{split}"
        inf = dsreg.fetch("notmnist", split=split, mirrors=[url], quiet=True, validation_size=50, cache_dir=alone)
        assert inf.ready_splits == (("test", "validation") if split == "validation" else ("test", "validation", "train"))
        got = dsreg.load("notmnist", split=split, validation_size=50, normalize=False, cache_dir=alone, download=False)
        assert column(got, "image").tolist() == column(full[split], "image").tolist()
        assert column(got, "label").tolist() == column(full[split], "label").tolist()
    # Without dedupe, validation needs no other split and train alone is still the same train.
    alone = tmp_path / "nodedupe"
    inf = dsreg.fetch("notmnist", split="train", mirrors=[url], quiet=True, validation_size=50, dedupe=False, cache_dir=alone)
    assert inf.ready_splits == ("train",)


def test_seeded_validation_is_deterministic_and_seed_dependent(
    tmp_path: Path, monkeypatch, dsreg_register, dsreg_file_server, pair: Pair
) -> None:
    dsreg_register(bind(NotMNIST, pair.paths))
    url = serve(dsreg_file_server, pair.paths)

    def validation(cache: str, seed: int) -> np.ndarray:
        ds = dsreg.load("notmnist", split="validation", cache_dir=tmp_path / cache, validation_size=50, seed=seed)
        return column(ds, "image")

    monkeypatch.setenv("DSREG_MIRRORS", url)
    monkeypatch.setenv("DSREG_CONFIG", str(tmp_path / "none.toml"))
    first, again, other = validation("a", 0), validation("b", 0), validation("c", 1)
    assert np.array_equal(first, again)
    assert not np.array_equal(np.sort(first.reshape(len(first), -1), axis=0), np.sort(other.reshape(len(other), -1), axis=0))


def test_an_unreadable_validation_candidate_is_replaced_by_a_spare(
    dsreg_cache: Path, dsreg_register, dsreg_file_server, pair: Pair
) -> None:
    # Find a seed where the corrupt E member ranks among the first QUOTA of its class.
    seed = next(s for s in range(500) if expected(pair, s)["corrupt_in_validation"])
    inf = fetch(pair, dsreg_register, dsreg_file_server, seed=seed)
    assert [x["reason"] for x in inf.manifest["splits"]["validation"]["skipped"]] == ["empty file"]
    assert inf.manifest["notes"]["skipped_per_class"]["validation"] == {"E": 1}
    want = expected(pair, seed)
    assert inf.manifest["splits"]["validation"]["examples"] == want["sizes"]["validation"]
    assert inf.manifest["splits"]["train"]["examples"] == want["sizes"]["train"]


def test_default_collate_normalises_and_normalize_false_keeps_uint8(
    dsreg_cache: Path, dsreg_register, dsreg_file_server, pair: Pair
) -> None:
    fetch(pair, dsreg_register, dsreg_file_server)
    ds = dsreg.load("notmnist", split="test", validation_size=50)
    batch = next(iter(ds.loader(batch_size=32)))
    assert batch["image"].dtype.is_floating_point and batch["image"].shape == (32, 1, 28, 28)
    assert float(batch["image"].min()) == pytest.approx(-0.5) and float(batch["image"].max()) == pytest.approx(0.5)
    assert str(batch["label"].dtype) == "torch.int64"
    raw = dsreg.load("notmnist", split="test", validation_size=50, normalize=False)
    assert raw.info.prepared_path == ds.info.prepared_path  # normalize does not prepare a second copy
    ubatch = next(iter(raw.loader(batch_size=32)))
    assert str(ubatch["image"].dtype) == "torch.uint8"
    assert np.allclose((ubatch["image"].float().numpy() - 127.5) / 255, batch["image"].numpy())
