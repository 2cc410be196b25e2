"""The four notMNIST Builders. Light at import: numpy, Pillow and torch load only while preparing.

How a prepare runs (the core calls ``generate`` once per split, in ``splits`` order, and
``review`` on each decoded example in the same process):

* ``test`` streams ``notMNIST_small.tar.gz`` once, yielding raw PNG bytes; the core decodes them
  in parallel with ``decode_png``.
* ``validation`` streams ``notMNIST_large.tar.gz`` once. Each member gets a seeded rank
  (blake2b of seed and ``letter/name``); per class the lowest ranks are kept in memory as
  validation candidates and every other member is appended to an anonymous spool file in the
  temp folder. ``train`` then replays the spool: one read of the large archive, not two.
* ``review`` counts skipped members per class, keeps the first ``quota`` readable candidates
  per class in validation (spares go back to train), and with ``dedupe`` drops an image whose
  pixels equal an image of a split generated before it (test, then validation).
"""

from __future__ import annotations

import hashlib
import heapq
import os
import pickle
import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping

import dsreg
from dsreg.errors import ArchiveError, ConfigError

from .codec import decode_png, normalize
from .synth import BUILTIN, LETTERS

__all__ = ["NotMNIST", "NotMNISTSmall", "NotMNISTIdx", "NotMNISTSynth", "rank", "parse_member"]

MIRRORS = (
    "http://yaroslavvb.com/upload/notMNIST/",
    "https://commondatastorage.googleapis.com/books1000/",
    "http://cn-static.udacity.com/mlnd/",
)
IDX_BASE = "https://github.com/davidflanagan/notMNIST-to-MNIST/raw/master/"

SMALL = dsreg.File(
    "notMNIST_small.tar.gz", urls=tuple(m + "notMNIST_small.tar.gz" for m in MIRRORS),
    size=8_458_043, md5="c9890a473a9769fda4bdf314aaf500dd",
)
LARGE = dsreg.File(
    "notMNIST_large.tar.gz", urls=tuple(m + "notMNIST_large.tar.gz" for m in MIRRORS),
    size=247_336_696, md5="70a95b805ecfb6592c48e196df7c1499",
)

CITATION = """\
@misc{bulatov2011notmnist,
  author = {Yaroslav Bulatov},
  title = {notMNIST dataset},
  year = {2011},
  howpublished = {\\url{http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html}}
}"""

#: notmnist-synth's default sizes: see the plugin README ("Faithfulness") for how they were chosen.
TRAIN_SIZE = 10_000
TEST_SIZE = 2_000
#: What `dsreg train notmnist-synth` uses when no option is given (Builder.train_defaults).
TRAIN_DEFAULTS = {"model": "image-cnn", "epochs": 2, "batch_size": 128, "lr": 3e-3}

#: Validation candidates kept per class beyond the quota, so an unreadable one never leaves a class short.
SPARES = 16


def rank(seed: int, key: str) -> int:
    """Return the seeded rank of an image key (``letter/name``): the lowest ranks are chosen first."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{key}".encode(), digest_size=8).digest(), "big")


def parse_member(member: str, root: str, archive: str) -> tuple[int, str]:
    """Return ``(label, key)`` of ``root/<A-J>/<name>.png``; raise ArchiveError naming any other member."""
    parts = member.split("/")
    if len(parts) != 3 or parts[0] != root or parts[1] not in LETTERS or not parts[2].endswith(".png") or parts[2] == ".png":
        raise ArchiveError(
            f"{archive}: member {member!r} is not {root}/<A-J>/<name>.png; "
            "this is not the notMNIST layout (check the file, or fetch it again with `--force`)"
        )
    return LETTERS.index(parts[1]), f"{parts[1]}/{parts[2]}"


def _quotas(total: int) -> list[int]:
    """Split ``total`` over the ten classes as evenly as possible (earlier letters take the remainder)."""
    return [total // 10 + (1 if i < total % 10 else 0) for i in range(10)]


class _Letters(dsreg.Builder):
    """What every notMNIST dataset shares: schema, the normalising collate and the load-only option."""

    version = "1.0.0"
    task = "image-classification"
    homepage = "http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html"
    license = "unknown (public web release by Yaroslav Bulatov, 2011)"
    citation = CITATION
    features = {"image": dsreg.Tensor((1, 28, 28), "uint8"), "label": dsreg.ClassLabel(tuple(LETTERS))}
    load_only = ("normalize",)  # picks the collate only: both values share one prepared store

    def get_collate_fn(self) -> Callable[[Any], Any]:
        """Return float32 (x - 127.5) / 255 batches, or uint8 ones with ``normalize=False``."""
        if self.params.get("normalize", True):
            return normalize
        from dsreg.store.collate import stack

        return stack



class _Reviewed(_Letters):
    """Counts skips per class and exact duplicates, and with ``dedupe`` removes cross-split copies."""

    #: Splits in generation order; an image is removed from a split if it equals one of an earlier split.
    splits: tuple[str, ...] = ("test", "train")
    decode = staticmethod(decode_png)

    def _start(self) -> None:
        """Reset the figures of a prepare (called when the first split starts)."""
        self._hashes: dict[str, set[bytes]] = {}
        self._skipped: dict[str, Counter[str]] = {}
        self._within: Counter[str] = Counter()
        self._overlap: dict[str, Counter[str]] = {}
        self._removed: Counter[str] = Counter()
        self.note("skipped_per_class", self._skipped)
        self.note("duplicates_within_split", self._within)
        self.note("equal_to_earlier_split", self._overlap)
        self.note("removed_by_dedupe", self._removed)
        self.note("dedupe", bool(self.params.get("dedupe")))

    def _begin(self, split: str) -> None:
        if split == self.get_splits()[0] or not hasattr(self, "_hashes"):
            self._start()
        splits = self.get_splits()
        # The splits an image of this one is compared with, in generation order: an image equal to
        # both a test and a validation image counts as equal to test.
        self._earlier = list(splits[: splits.index(split)])
        for earlier in self._earlier:  # e.g. a split generated on its own has no earlier hashes
            self._hashes.setdefault(earlier, set())
        self._hashes[split] = set()
        self._skipped[split] = Counter()
        self._overlap[split] = Counter()
        self._removed[split] = 0
        self._within[split] = 0

    def review(self, split: str, key: str, example: Any) -> Any:
        """Count skips per class; measure (and with ``dedupe`` remove) exact duplicates of earlier splits."""
        if isinstance(example, dsreg.Skip):
            self._skipped[split][key[0]] += 1
            return example
        digest = _pixel_hash(example["image"])
        for earlier in self._earlier:
            if digest in self._hashes[earlier]:
                self._overlap[split][earlier] += 1
                if self.params.get("dedupe"):
                    self._removed[split] += 1
                    return None
                break
        seen = self._hashes[split]
        if digest in seen:
            self._within[split] += 1
        else:
            seen.add(digest)
        return example


def _pixel_hash(image: Any) -> bytes:
    # Inline of codec.pixel_hash for the hot path (one call per image in the preparing process).
    return hashlib.blake2b(image.tobytes(), digest_size=16).digest()


def _stream(path: Path, root: str, archive: str) -> Iterator[tuple[str, tuple[bytes, int]]]:
    from dsreg.fetching.archive import members

    for member, data in members(path, label=archive):
        label, key = parse_member(member, root, archive)
        yield key, (data, label)


class _Spool:
    """An anonymous temp file of ``(key, record)`` pickles: written once, replayed once, gone on close."""

    def __init__(self) -> None:
        self.fh: IO[bytes] = tempfile.TemporaryFile(prefix="dsreg-notmnist-", suffix=".spool")
        self.count = 0
        self._pickler = pickle.Pickler(self.fh, protocol=pickle.HIGHEST_PROTOCOL)

    def add(self, key: str, record: tuple[bytes, int]) -> None:
        self._pickler.dump((key, record))
        self._pickler.clear_memo()
        self.count += 1

    def replay(self) -> Iterator[tuple[str, tuple[bytes, int]]]:
        self.fh.flush()
        self.fh.seek(0)
        unpickler = pickle.Unpickler(self.fh)
        for _ in range(self.count):
            yield unpickler.load()

    def close(self) -> None:
        self.fh.close()


class NotMNIST(_Reviewed):
    """notMNIST as the course used it: test from notMNIST_small, validation and train from notMNIST_large."""

    name = "notmnist"
    description = (
        "Letters A-J rendered from many fonts, 28x28 grayscale (Yaroslav Bulatov, 2011). "
        "test: every readable image of notMNIST_small (hand-cleaned); validation: a seeded, class-balanced "
        "10,000 of notMNIST_large; train: the rest of notMNIST_large (~6.5% wrong labels). With dedupe "
        "(default) an image equal to a test image is removed from validation and train, and one equal to "
        "a validation image from train; the counts are in the manifest notes."
    )
    splits = ("test", "validation", "train")
    files = (SMALL, LARGE)
    config = {"dedupe": True, "seed": 0, "validation_size": 10_000, "normalize": True}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        size = self.params["validation_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"notmnist: validation_size must be a whole number >= 0, got {size!r}")
        self._large: dict[str, Any] | None = None

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        self._begin(split)
        if split == "test":
            yield from _stream(files[SMALL.name], "notMNIST_small", SMALL.name)
            return
        large = self._select(files[LARGE.name])
        if split == "validation":
            self._taken = Counter[str]()
            self._returned: list[str] = []
            for letter in LETTERS:
                for key in large["candidates"][letter]:
                    yield key, large["records"][key]
            return
        try:  # train: everything that did not end in validation, spool first, then unused spares
            yield from large["spool"].replay()
            for key in getattr(self, "_returned", ()):
                yield key, large["records"][key]
        finally:
            large["spool"].close()
            self._large = None

    def _select(self, path: Path) -> dict[str, Any]:
        """Stream the large archive once: keep each class's lowest-ranked candidates, spool the rest."""
        if self._large is not None and self._large["path"] == path:
            return self._large
        seed = self.params["seed"]
        self._quota = dict(zip(LETTERS, _quotas(self.params["validation_size"])))
        heaps: dict[str, list[tuple[int, str, tuple[bytes, int]]]] = {letter: [] for letter in LETTERS}
        spool = _Spool()
        try:
            for key, record in _stream(path, "notMNIST_large", LARGE.name):
                heap = heaps[key[0]]
                cap = self._quota[key[0]] + SPARES if self._quota[key[0]] else 0
                item = (-rank(seed, key), key, record)  # a max-heap of ranks: the root is the worst kept
                if len(heap) < cap:
                    heapq.heappush(heap, item)
                elif cap and item > heap[0]:
                    _, out_key, out_record = heapq.heapreplace(heap, item)
                    spool.add(out_key, out_record)
                else:
                    spool.add(key, record)
        except BaseException:
            spool.close()
            raise
        candidates = {letter: [key for _, key, _ in sorted(heap, reverse=True)] for letter, heap in heaps.items()}
        records = {key: record for heap in heaps.values() for _, key, record in heap}
        self._large = {"path": path, "candidates": candidates, "records": records, "spool": spool}
        self.note("validation_candidates_per_class", {k: len(v) for k, v in candidates.items()})
        return self._large

    def review(self, split: str, key: str, example: Any) -> Any:
        """Fill validation with the first ``quota`` readable candidates per class, then count and dedupe."""
        if split == "validation" and not isinstance(example, dsreg.Skip):
            letter = key[0]
            if self._taken[letter] >= self._quota[letter]:
                self._returned.append(key)  # a spare that was not needed: it belongs to train
                return None
            self._taken[letter] += 1
        return super().review(split, key, example)


class NotMNISTSmall(_Reviewed):
    """notMNIST_small alone, split into train and test by a seeded, class-stratified draw."""

    name = "notmnist-small"
    description = (
        "notMNIST_small (8 MB, 18,724 readable images, hand-cleaned) alone, for quick work: per class, "
        "the test_fraction of images with the lowest seeded rank form test, the rest train. With dedupe "
        "(default) train images equal to a test image are removed."
    )
    splits = ("test", "train")
    files = (SMALL,)
    config = {"dedupe": True, "seed": 0, "test_fraction": 0.2, "normalize": True}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        fraction = self.params["test_fraction"]
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction <= 1:
            raise ConfigError(f"notmnist-small: test_fraction must be a number from 0 to 1, got {fraction!r}")

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        self._begin(split)
        if split == "test":  # the small archive is 8 MB: read it once, keep it until train is done
            by_class: dict[str, list[tuple[str, tuple[bytes, int]]]] = {letter: [] for letter in LETTERS}
            for key, record in _stream(files[SMALL.name], "notMNIST_small", SMALL.name):
                by_class[key[0]].append((key, record))
            self._test_keys: set[str] = set()
            for members in by_class.values():
                ranked = sorted(members, key=lambda m: rank(self.params["seed"], m[0]))
                self._test_keys.update(k for k, _ in ranked[: round(len(members) * self.params["test_fraction"])])
            self._members = [m for members in by_class.values() for m in members]
        members = self._members
        for key, record in members:
            if (key in self._test_keys) == (split == "test"):
                yield key, record
        if split == "train":
            del self._members


class NotMNISTIdx(_Reviewed):
    """The MNIST-format copy of notMNIST (idx files): 60,000 train images from the large set, 10,000 test from the small."""

    name = "notmnist-idx"
    description = (
        "notMNIST in MNIST's idx format (github.com/davidflanagan/notMNIST-to-MNIST): train = 6,000 images "
        "per letter from notMNIST_large, test (t10k) = 1,000 per letter from notMNIST_small. The train "
        "images file has no published checksum: it is pinned on first download. splits= chooses which "
        "splits (and so which files) a configuration needs, e.g. -c splits=test."
    )
    homepage = "https://github.com/davidflanagan/notMNIST-to-MNIST"
    license = "unknown (derived from notMNIST; the repository states no license)"
    splits = ("train", "test")
    files = (
        dsreg.File("train-images-idx3-ubyte.gz", urls=(IDX_BASE + "train-images-idx3-ubyte.gz",), pin_on_first_download=True),
        dsreg.File("train-labels-idx1-ubyte.gz", urls=(IDX_BASE + "train-labels-idx1-ubyte.gz",), size=29_455,
                   sha256="0db4c4ec5d019838a57f8c9dd764ada7dc3c73e6ccc93032c538c5845f332545"),
        dsreg.File("t10k-images-idx3-ubyte.gz", urls=(IDX_BASE + "t10k-images-idx3-ubyte.gz",), size=3_172_375,
                   sha256="70ae9e06201f2827e5b0a3781a3169d735dd2efc69996b9eeaee7f10ed4044d7"),
        dsreg.File("t10k-labels-idx1-ubyte.gz", urls=(IDX_BASE + "t10k-labels-idx1-ubyte.gz",), size=5_118,
                   sha256="1fa03836e01c862542f8eb83463bb951bebec6fcb3efa28dad748c6b38a9021b"),
    )
    config = {"splits": ["train", "test"], "dedupe": False, "normalize": True}
    decode = None  # idx files are read as whole arrays; there is nothing to decode per example
    _PREFIX = {"train": "train", "test": "t10k"}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        chosen = self.params["splits"]
        if isinstance(chosen, str):
            chosen = [s.strip() for s in chosen.split(",") if s.strip()]
        if not isinstance(chosen, (list, tuple)) or not chosen or any(s not in self.splits for s in chosen):
            raise ConfigError(f"notmnist-idx: splits must name some of {', '.join(self.splits)} (e.g. -c splits=test), got {self.params['splits']!r}")
        # Canonical order and form, so "test" and ["test"] share one prepared store.
        self.params["splits"] = [s for s in self.splits if s in chosen]

    def get_splits(self) -> tuple[str, ...]:
        return tuple(self.params["splits"])

    def get_files(self) -> tuple[dsreg.File, ...]:
        prefixes = {self._PREFIX[s] for s in self.get_splits()}
        return tuple(f for f in self.files if f.name.split("-", 1)[0] in prefixes)

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        from .codec import read_idx

        self._begin(split)
        prefix = self._PREFIX[split]
        images = read_idx(files[f"{prefix}-images-idx3-ubyte.gz"], 3, f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(files[f"{prefix}-labels-idx1-ubyte.gz"], 1, f"{prefix}-labels-idx1-ubyte.gz")
        if images.shape[1:] != (28, 28) or len(images) != len(labels) or (len(labels) and labels.max() > 9):
            raise ArchiveError(
                f"notmnist-idx: {prefix} files disagree ({images.shape} images, {len(labels)} labels, "
                f"largest label {labels.max() if len(labels) else None}); fetch them again with `--force`"
            )
        for i in range(len(labels)):
            yield f"{LETTERS[labels[i]]}/{i:05d}", {"image": images[i].reshape(1, 28, 28), "label": int(labels[i])}


class NotMNISTSynth(_Letters):
    """The notMNIST recipe reproduced offline: letters A-J from vetted system fonts, stretched to fill 28x28."""

    name = "notmnist-synth"
    version = "2.0.0"  # 2.0: vetted fonts from system folders + Pillow's own, glyphs stretched to fill the box
    description = (
        "Letters A-J rendered offline as notMNIST was made: each glyph cropped to its ink and stretched to "
        "fill 28x28 (white on black), from every system font that really draws A-J as ten letters plus "
        "the font Pillow embeds (never a Python package's fonts), with seeded variation in weight, slant, "
        "proportions, outline and edge softness. The fonts used (names, sha256) are in the manifest notes. No download. Default "
        f"{TRAIN_SIZE:,} train and {TEST_SIZE:,} test images, balanced classes."
    )
    homepage = "https://github.com/dsreg/dsreg/tree/main/plugins/notmnist"
    license = "CC0-1.0 (generated); glyphs follow the licenses of the fonts listed in the manifest notes"
    citation = CITATION
    splits = ("train", "test")
    files = ()
    config = {"train_size": TRAIN_SIZE, "test_size": TEST_SIZE, "seed": 0, "fonts": None, "normalize": True}
    train_defaults = TRAIN_DEFAULTS

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        for param in ("train_size", "test_size"):
            value = self.params[param]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"notmnist-synth: {param} must be a whole number >= 0, got {value!r}")
        fonts = self.params["fonts"]
        if fonts is not None and (isinstance(fonts, str) or not fonts or not all(isinstance(f, str) for f in fonts)):
            raise ConfigError(
                f"notmnist-synth: fonts must be a non-empty list of font files (or {BUILTIN!r} for Pillow's own font), "
                "or null to use the system fonts and Pillow's"
            )
        if fonts is not None:  # one canonical form, so the same fonts in another order share a prepared store
            self.params["fonts"] = sorted({f if f == BUILTIN else os.path.abspath(os.path.expanduser(f)) for f in fonts})

    def _sources(self) -> tuple[str, ...] | None:
        return None if self.params["fonts"] is None else tuple(self.params["fonts"])

    def fingerprint(self) -> str:
        """Digest of the fonts actually used (content sha256s) and the Pillow/FreeType that draw them."""
        from .synth import NoFontError, find_fonts, fonts_fingerprint

        try:
            return fonts_fingerprint(find_fonts(self._sources()))
        except NoFontError:
            return "no-usable-font"  # generate() raises the error that says what to install
        except OSError as exc:  # a font file named in the config cannot be read
            raise ConfigError(f"notmnist-synth: cannot read a font named in fonts: {exc}") from None

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        import PIL
        from PIL import features

        from .synth import Renderer, candidates, find_fonts, vet

        renderer = getattr(self, "_renderer", None)
        if renderer is None:
            used = find_fonts(self._sources())  # raises, saying what to install, when no font is usable
            rejected = vet(candidates(self._sources()))[1]
            renderer = self._renderer = Renderer(used)
            self.note("fonts", [font.record() for font in used])
            self.note("fonts_rejected", [r.record() for r in rejected])
            self.note("renderer", f"Pillow {PIL.__version__}, FreeType {features.version('freetype2')}")
        size = self.params[f"{split}_size"]
        rng = random.Random(f"notmnist-synth/{self.params['seed']}/{split}")
        count = len(renderer.fonts)
        for i in range(size):
            label = i % 10
            # Fonts take turns per round of ten letters, so each font draws each letter about equally often.
            pixels = renderer.render(LETTERS[label], (i // 10) % count, rng)
            yield f"{LETTERS[label]}/{i:06d}", {"image": pixels.reshape(1, 28, 28), "label": label}
