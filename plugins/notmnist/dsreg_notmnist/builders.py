"""The four notMNIST Builders. Light at import: numpy, Pillow and torch load only while preparing.

Each split is generated on its own from the files its plan names (``plan()``), keeping no state
between calls, so ``dsreg fetch notmnist --split test`` downloads only the 8 MB archive:

* ``test`` streams ``notMNIST_small.tar.gz``, yielding raw PNG bytes; the core decodes them in
  parallel with ``decode_png``.
* ``validation`` streams ``notMNIST_large.tar.gz`` keeping, per class, the members with the lowest
  seeded rank (blake2b of seed and ``letter/name``): the quota plus a few spares. Its review keeps
  the first ``quota`` readable ones per class.
* ``train`` streams the large archive again and yields every member as soon as it is sure not to
  be a validation candidate; at the end it decodes the remaining candidates to find which ones
  validation took (the same rule, so no state is shared) and yields the rest.
* ``review_split`` counts skipped members per class, and with ``dedupe`` drops an image whose
  pixels equal an image of a split before it in the plan (test, then validation), reading those
  splits from the prepared store: the plan's ``after`` makes sure they are prepared first.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

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
    "notMNIST_small.tar.gz",
    urls=tuple(m + "notMNIST_small.tar.gz" for m in MIRRORS),
    size=8_458_043,
    md5="c9890a473a9769fda4bdf314aaf500dd",
)
LARGE = dsreg.File(
    "notMNIST_large.tar.gz",
    urls=tuple(m + "notMNIST_large.tar.gz" for m in MIRRORS),
    size=247_336_696,
    md5="70a95b805ecfb6592c48e196df7c1499",
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
    """Counts skips per class and exact duplicates, and with ``dedupe`` removes copies of earlier splits."""

    #: Splits in plan order; with ``dedupe`` an image is removed from a split if it equals one of an earlier split.
    splits: tuple[str, ...] = ("test", "train")
    decode = staticmethod(decode_png)

    def files_of(self, split: str) -> tuple[str, ...]:
        """Return the names of the files ``split`` is generated from."""
        return tuple(f.name for f in self.get_files())

    def plan(self) -> tuple[dsreg.Split, ...]:
        names = self.get_splits()
        dedupe = bool(self.params.get("dedupe"))
        return tuple(dsreg.Split(split, self.files_of(split), after=names[:i] if dedupe else ()) for i, split in enumerate(names))

    def review_split(self, split: str, examples: Iterator[tuple[str, Any]], earlier: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """Count skips per class and duplicates within the split; with ``dedupe`` drop images equal to an earlier split's."""
        earlier_hashes = {name: {_pixel_hash(image) for image in stored.column("image")} for name, stored in earlier.items()}
        skipped: Counter[str] = Counter()
        overlap: Counter[str] = Counter()
        seen: set[bytes] = set()
        within = 0
        for key, example in examples:
            if isinstance(example, dsreg.Skip):
                skipped[key[0]] += 1
                yield key, example
                continue
            digest = _pixel_hash(example["image"])
            equal_to = next((name for name, hashes in earlier_hashes.items() if digest in hashes), None)
            if equal_to is not None:  # only with dedupe: without it the plan reviews no split after another
                overlap[equal_to] += 1
                continue
            if digest in seen:
                within += 1
            else:
                seen.add(digest)
            yield key, example
        self.note("skipped_per_class", {split: skipped})
        self.note("duplicates_within_split", {split: within})
        self.note("equal_to_earlier_split", {split: dict(overlap)})
        self.note("removed_by_dedupe", {split: sum(overlap.values())})
        self.note("dedupe", bool(self.params.get("dedupe")))


def _pixel_hash(image: Any) -> bytes:
    # Inline of codec.pixel_hash for the hot path (one call per image in the preparing process).
    return hashlib.blake2b(image.tobytes(), digest_size=16).digest()


def _stream(path: Path, root: str, archive: str) -> Iterator[tuple[str, tuple[bytes, int]]]:
    from dsreg.fetching.archive import members

    for member, data in members(path, label=archive):
        label, key = parse_member(member, root, archive)
        yield key, (data, label)


class NotMNIST(_Reviewed):
    """notMNIST as the course used it: test from notMNIST_small, validation and train from notMNIST_large."""

    name = "notmnist"
    description = (
        "Letters A-J rendered from many fonts, 28x28 grayscale (Yaroslav Bulatov, 2011). "
        "test: every readable image of notMNIST_small (hand-cleaned, 8 MB: `--split test` fetches only it); "
        "validation: a seeded, class-balanced 10,000 of notMNIST_large; train: the rest of notMNIST_large "
        "(~6.5% wrong labels). With dedupe (default) an image equal to a test image is removed from validation "
        "and train, and one equal to a validation image from train; the counts are in the manifest notes."
    )
    splits = ("test", "validation", "train")
    files = (SMALL, LARGE)
    config = {"dedupe": True, "seed": 0, "validation_size": 10_000, "normalize": True}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        size = self.params["validation_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"notmnist: validation_size must be a whole number >= 0, got {size!r}")

    def files_of(self, split: str) -> tuple[str, ...]:
        return (SMALL.name,) if split == "test" else (LARGE.name,)

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        if split == "test":
            yield from _stream(files[SMALL.name], "notMNIST_small", SMALL.name)
            return
        heaps: dict[str, list[tuple[int, str, tuple[bytes, int]]]] = {letter: [] for letter in LETTERS}
        for key, record in self._rank(files[LARGE.name], heaps):
            if split == "train":  # surely not a validation candidate: train's, at once
                yield key, record
        candidates = {letter: [(key, record) for _, key, record in sorted(heap, reverse=True)] for letter, heap in heaps.items()}
        if split == "validation":
            self.note("validation_candidates_per_class", {k: len(v) for k, v in candidates.items()})
            for letter in LETTERS:
                yield from candidates[letter]
            return
        # train: validation's review keeps the first `quota` readable candidates per class; the rest are train's.
        quota = dict(zip(LETTERS, _quotas(self.params["validation_size"])))
        for letter in LETTERS:
            taken = 0
            for key, record in candidates[letter]:
                if taken < quota[letter] and _readable(record):
                    taken += 1
                    continue
                yield key, record

    def _rank(self, path: Path, heaps: dict[str, list[Any]]) -> Iterator[tuple[str, tuple[bytes, int]]]:
        """Stream the large archive, keeping each class's lowest-ranked members in ``heaps``; yield every other one."""
        seed = self.params["seed"]
        quota = dict(zip(LETTERS, _quotas(self.params["validation_size"])))
        for key, record in _stream(path, "notMNIST_large", LARGE.name):
            heap = heaps[key[0]]
            cap = quota[key[0]] + SPARES if quota[key[0]] else 0
            item = (-rank(seed, key), key, record)  # a max-heap of ranks: the root is the worst kept
            if len(heap) < cap:
                heapq.heappush(heap, item)
            elif cap and item > heap[0]:
                _, out_key, out_record = heapq.heapreplace(heap, item)
                yield out_key, out_record
            else:
                yield key, record

    def review_split(self, split: str, examples: Iterator[tuple[str, Any]], earlier: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """Fill validation with the first ``quota`` readable candidates per class, then count and dedupe."""
        if split == "validation":
            examples = _first_readable(examples, dict(zip(LETTERS, _quotas(self.params["validation_size"]))))
        return super().review_split(split, examples, earlier)


def _readable(record: tuple[bytes, int]) -> bool:
    try:
        decode_png(record)
    except dsreg.Skip:
        return False
    return True


def _first_readable(examples: Iterator[tuple[str, Any]], quota: Mapping[str, int]) -> Iterator[tuple[str, Any]]:
    """Pass skips through and keep each class's first ``quota`` decoded examples (the spares go to train)."""
    taken: Counter[str] = Counter()
    for key, example in examples:
        if not isinstance(example, dsreg.Skip):
            if taken[key[0]] >= quota[key[0]]:
                continue
            taken[key[0]] += 1
        yield key, example


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
        # The small archive is 8 MB: each split reads it whole and draws the same test members.
        by_class: dict[str, list[tuple[str, tuple[bytes, int]]]] = {letter: [] for letter in LETTERS}
        for key, record in _stream(files[SMALL.name], "notMNIST_small", SMALL.name):
            by_class[key[0]].append((key, record))
        test_keys: set[str] = set()
        for members in by_class.values():
            ranked = sorted(members, key=lambda m: rank(self.params["seed"], m[0]))
            test_keys.update(k for k, _ in ranked[: round(len(members) * self.params["test_fraction"])])
        for members in by_class.values():
            for key, record in members:
                if (key in test_keys) == (split == "test"):
                    yield key, record


class NotMNISTIdx(_Reviewed):
    """The MNIST-format copy of notMNIST (idx files): 60,000 train images from the large set, 10,000 test from the small."""

    name = "notmnist-idx"
    description = (
        "notMNIST in MNIST's idx format (github.com/davidflanagan/notMNIST-to-MNIST): train = 6,000 images "
        "per letter from notMNIST_large, test (t10k) = 1,000 per letter from notMNIST_small. The train "
        "images file has no published checksum: it is pinned on first download. `dsreg fetch notmnist-idx "
        "--split test` fetches only the two t10k files (splits= still limits a configuration to some splits)."
    )
    homepage = "https://github.com/davidflanagan/notMNIST-to-MNIST"
    license = "unknown (derived from notMNIST; the repository states no license)"
    splits = ("train", "test")
    files = (
        dsreg.File("train-images-idx3-ubyte.gz", urls=(IDX_BASE + "train-images-idx3-ubyte.gz",), pin_on_first_download=True),
        dsreg.File(
            "train-labels-idx1-ubyte.gz",
            urls=(IDX_BASE + "train-labels-idx1-ubyte.gz",),
            size=29_455,
            sha256="0db4c4ec5d019838a57f8c9dd764ada7dc3c73e6ccc93032c538c5845f332545",
        ),
        dsreg.File(
            "t10k-images-idx3-ubyte.gz",
            urls=(IDX_BASE + "t10k-images-idx3-ubyte.gz",),
            size=3_172_375,
            sha256="70ae9e06201f2827e5b0a3781a3169d735dd2efc69996b9eeaee7f10ed4044d7",
        ),
        dsreg.File(
            "t10k-labels-idx1-ubyte.gz",
            urls=(IDX_BASE + "t10k-labels-idx1-ubyte.gz",),
            size=5_118,
            sha256="1fa03836e01c862542f8eb83463bb951bebec6fcb3efa28dad748c6b38a9021b",
        ),
    )
    config = {"splits": ["train", "test"], "dedupe": False, "normalize": True}
    # Which splits a configuration lists does not change any split's content: one prepared store serves all.
    load_only = ("normalize", "splits")
    decode = None  # idx files are read as whole arrays; there is nothing to decode per example
    _PREFIX = {"train": "train", "test": "t10k"}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        chosen = self.params["splits"]
        if isinstance(chosen, str):
            chosen = [s.strip() for s in chosen.split(",") if s.strip()]
        if not isinstance(chosen, (list, tuple)) or not chosen or any(s not in self.splits for s in chosen):
            raise ConfigError(
                f"notmnist-idx: splits must name some of {', '.join(self.splits)} (e.g. -c splits=test), got {self.params['splits']!r}"
            )
        # Canonical order and form, so "test" and ["test"] share one prepared store.
        self.params["splits"] = [s for s in self.splits if s in chosen]

    def get_splits(self) -> tuple[str, ...]:
        return tuple(self.params["splits"])

    def get_files(self) -> tuple[dsreg.File, ...]:
        prefixes = {self._PREFIX[s] for s in self.get_splits()}
        return tuple(f for f in self.files if f.name.split("-", 1)[0] in prefixes)

    def files_of(self, split: str) -> tuple[str, ...]:
        return tuple(f.name for f in self.files if f.name.split("-", 1)[0] == self._PREFIX[split])

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        from .codec import read_idx

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
