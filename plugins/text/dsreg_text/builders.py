"""The ``textclass`` and ``sentiment-words`` builders.

Both read every row first (``get_features`` runs before the core writes the Arrow schema, and the
class names and the vocabulary depend on the data), then ``generate`` tokenizes each split with the
vocabulary built from the training split. The vocabulary is stored in the manifest under
``notes.vocab``; ``dsreg_text.vocab_of(dataset)`` rebuilds it at load.
Importing this module imports only dsreg and the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dsreg
from dsreg.errors import ConfigError
from dsreg.fetching import userdata
from dsreg.folder import FolderBuilder, holdout_fractions, holdout_splits

from . import read
from .read import Row

__all__ = ["TextBuilder", "TextClass", "SentimentWords"]

#: Config shared by every text builder: how text becomes ids, and the batch length cap.
TOKEN_CONFIG: dict[str, Any] = {
    "lowercase": True,
    "min_freq": 1,
    "max_vocab": 30000,
    "tokenizer": None,
    "max_length": 512,
}


@dataclass
class Scan:
    """Every row of every split, read once, and the class names."""

    classes: tuple[str, ...]
    rows: dict[str, list[Row]]


class TextBuilder(dsreg.Builder):
    """Base of text-classification builders: subclasses implement ``read`` (and ``known_classes``)."""

    task = "text-classification"
    collate_fn = "pad"
    load_only = ("max_length",)  # the length cap only shapes batches: every cap reads one prepared store

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._scan: Scan | None = None
        self._pad_id: int | None = None
        self._built: Any = None
        max_length = self.params.get("max_length")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ConfigError(f"max_length must be a positive number of tokens or null, not {max_length!r}")

    # -- what subclasses provide ----------------------------------------------------------------
    def read(self, files: Mapping[str, Path]) -> Scan:
        """Read every row of every split."""
        raise NotImplementedError(f"{type(self).__name__} must implement read(files)")

    def known_classes(self) -> tuple[str, ...]:
        """Return the class names known without reading the data (``()`` when they come from it)."""
        return ()

    # -- the Builder contract -------------------------------------------------------------------
    def _scanned(self, files: Mapping[str, Path]) -> Scan:
        if self._scan is None:
            self._scan = self.read(files)
        return self._scan

    def get_features(self, files: Mapping[str, Path] | None = None) -> dict[str, dsreg.features.Feature]:
        classes = self.known_classes() if files is None else self._scanned(files).classes
        return {
            "input_ids": dsreg.Tensor((None,), "int64"),
            "label": dsreg.ClassLabel(classes),
            "text": dsreg.Text(),
        }

    def get_splits(self) -> tuple[str, ...]:
        if self._scan is not None:
            return tuple(self._scan.rows)
        return tuple(self.splits)

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        scan = self._scanned(files)
        encoder = self._encoder(scan)
        index = {name: i for i, name in enumerate(scan.classes)}
        for row in scan.rows.get(split, []):
            if row.skip is not None:
                yield row.key, row.skip
                continue
            ids = encoder.encode(row.text)
            if not ids:
                yield row.key, dsreg.Skip("the tokenizer found no tokens in the text")
                continue
            yield row.key, {"input_ids": ids, "label": index[row.label], "text": row.text}

    def _encoder(self, scan: Scan) -> Any:
        from .vocab import HFTokenizer, Vocab

        if self._built is not None and "vocab" in self.notes:  # notes are cleared when a prepare starts
            return self._built
        p = self.params
        if p.get("tokenizer"):
            encoder: Any = HFTokenizer(p["tokenizer"])
        else:
            train = "train" if "train" in scan.rows else next(iter(scan.rows))
            texts = (row.text for row in scan.rows[train] if row.skip is None)
            encoder = Vocab.build(
                texts,
                lowercase=bool(p["lowercase"]),
                min_freq=int(p["min_freq"]),
                max_size=None if p["max_vocab"] is None else int(p["max_vocab"]),
            )
        self._built = encoder
        self.note("vocab", encoder.to_json())
        self.note("label_counts", {split: _counts(rows, scan.classes) for split, rows in scan.rows.items()})
        return encoder

    def get_collate_fn(self) -> Callable[..., Any]:
        from .collate import collate

        if self._pad_id is None:
            self._pad_id = 0
            if self.params.get("tokenizer"):
                from .vocab import HFTokenizer

                self._pad_id = HFTokenizer(self.params["tokenizer"]).pad_id
        return collate(self.params.get("max_length"), self._pad_id)

    def fingerprint(self) -> str | None:
        tokenizer = self.params.get("tokenizer")
        if not tokenizer:
            return None
        import hashlib

        import fsspec

        # A changed tokenizer file means different ids: prepare again under a new id.
        with fsspec.open(tokenizer, "rb") as fh:
            return "tokenizer:" + hashlib.sha256(fh.read()).hexdigest()[:16]


def _counts(rows: list[Row], classes: tuple[str, ...]) -> dict[str, int]:
    out = {name: 0 for name in classes}
    for row in rows:
        if row.skip is None:
            out[row.label] += 1
    return out


def _class_order(names: set[str]) -> tuple[str, ...]:
    # Integer labels 0..K-1 keep their value as the class index; "10" sorts after "9".
    if names and all(n.lstrip("-").isdigit() for n in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


class TextClass(TextBuilder, FolderBuilder):
    """Your own labelled texts at any URL: CSV/TSV, JSON Lines, Parquet or class folders of .txt files.

    Its folder mode is ``dsreg.FolderBuilder``'s: the same layout, splits and holdout rule as
    ``imagefolder`` and ``audiofolder``; files of rows are split by the same rule, row by row.
    """

    name = "textclass"
    version = "1.0.0"
    description = (
        "Text classification on your own data at any fsspec URL (a local folder or file, a .zip or "
        ".tar(.gz), http(s)://, s3://): CSV/TSV, JSON Lines or Parquet with a text and a label column, "
        "or one folder of .txt files per class. Tokenized at prepare time with a vocabulary built from "
        "the training split (or a Hugging Face tokenizers file). Pass -c url=..."
    )
    homepage = "https://github.com/dsreg/dsreg/tree/main/plugins/text"
    license = "the license of your data"
    citation = "none (your own data)"
    splits = ("train", "test")
    config = {
        "url": None,
        "format": None,
        "text_field": "text",
        "label_field": "label",
        "classes": None,
        "holdout": 0.2,
        "seed": 0,
        **TOKEN_CONFIG,
    }
    extensions = read.EXTENSIONS["folder"]

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        fmt = self.params["format"]
        if fmt is not None and fmt not in read.FORMATS:
            raise ConfigError(f"format {fmt!r} is not one of {', '.join(read.FORMATS)}")
        classes = self.params["classes"]
        if isinstance(classes, str):
            self.params["classes"] = [c.strip() for c in classes.split(",") if c.strip()]
        elif classes is not None:
            self.params["classes"] = [str(c) for c in classes]
        if self.params["classes"] is not None and len(set(self.params["classes"])) != len(self.params["classes"]):
            raise ConfigError(f"classes {self.params['classes']} has duplicates")

    def fingerprint(self) -> str | None:
        parts = [FolderBuilder.fingerprint(self), TextBuilder.fingerprint(self)]  # the data, the tokenizer
        kept = [p for p in parts if p]
        return "+".join(kept) if kept else None

    def known_classes(self) -> tuple[str, ...]:
        return tuple(self.params["classes"] or ())

    def get_splits(self) -> tuple[str, ...]:
        if self._scan is None and self.params["url"] and not userdata.is_remote(self.params["url"]):
            # A local source lists cheaply: know train/validation/test before (and after) preparing.
            fmt, splits = self._plan(userdata.UserData(self.params["url"]))
            return FolderBuilder.get_splits(self) if fmt == "folder" else splits
        return TextBuilder.get_splits(self)

    def _plan(self, data: userdata.UserData) -> tuple[str, tuple[str, ...]]:
        """Return the format and (for files of rows) the split names of ``data`` from its file names alone."""
        names = data.names()
        fmt = self.params["format"] or read.detect_format(names)
        exts = read.EXTENSIONS[fmt]
        found = [read.split_of(n) for n in names if n.lower().endswith(exts)]
        if fmt != "folder" and found and all(found):
            order = ("train", "validation", "test")
            return fmt, tuple(s for s in order if s in found)
        return fmt, holdout_splits(self.params["holdout"])

    def read(self, files: Mapping[str, Path]) -> Scan:
        p = self.params
        fmt, splits = self._plan(userdata.UserData(p["url"], files))
        if fmt == "folder":
            scan = self.scan(files)
            self.note_scan(scan)
            rows: dict[str, list[Row]] = {split: [] for split in FolderBuilder.get_splits(self)}
            for path, data in scan.data.walk(select=scan.assignment.__contains__):
                rows[scan.assignment[path]].append(read.read_txt(path, data, scan.layout.entries[path][1]))
            return Scan(self._classes(rows), rows)
        exts = read.EXTENSIONS[fmt]
        by_file: list[tuple[str, Row]] = []
        for path, data in userdata.UserData(p["url"], files).walk(select=lambda n: n.lower().endswith(exts)):
            split = read.split_of(path)
            by_file += [(split or "", row) for row in read.read_file(fmt, path, data, p["text_field"], p["label_field"])]
        if not by_file:
            raise ConfigError(f"found no {fmt} rows at {p['url']}")
        if all(split for split, _ in by_file) and set(splits) >= {s for s, _ in by_file}:
            rows = {split: [row for s, row in by_file if s == split] for split in splits}
        else:
            rows = _holdout(by_file, p["holdout"], p["seed"], splits)
        return Scan(self._classes(rows), rows)

    def _classes(self, rows: dict[str, list[Row]]) -> tuple[str, ...]:
        """Fix the class names; rows whose label is not a class become skips naming it."""
        given = self.params["classes"]
        if given is None:
            found = {row.label for split_rows in rows.values() for row in split_rows if row.skip is None}
            if not found:
                raise ConfigError(f"no readable rows at {self.params['url']}; see the reasons with `dsreg info textclass -c url=...`")
            return _class_order(found)
        classes = tuple(given)
        for split_rows in rows.values():
            for i, row in enumerate(split_rows):
                if row.skip is not None or row.label in classes:
                    continue
                if row.label.isdigit() and int(row.label) < len(classes):
                    # An integer label indexes the given class names (e.g. 0/1 with classes=neg,pos).
                    split_rows[i] = Row(row.key, row.text, classes[int(row.label)])
                else:
                    split_rows[i] = Row(row.key, skip=dsreg.Skip(f"label {row.label!r} is not one of the classes {list(classes)}"))
        return classes


def _holdout(by_file: list[tuple[str, Row]], holdout: Any, seed: int, splits: tuple[str, ...]) -> dict[str, list[Row]]:
    """Split readable rows by the folder datasets' holdout rule (keyed by row); skips go to train."""
    good = [row for _, row in by_file if row.skip is None]
    assign = userdata.stratified_split([r.key for r in good], [r.label for r in good], holdout_fractions(holdout), seed)
    rows: dict[str, list[Row]] = {split: [] for split in splits}
    for _, row in by_file:
        rows[assign.get(row.key, "train") if row.skip is None else "train"].append(row)
    return rows


class SentimentWords(TextBuilder):
    """An offline sample: short positive and negative sentences composed by a seeded generator."""

    name = "sentiment-words"
    version = "1.0.0"
    description = (
        "Short English sentences built from positive and negative word lists by a seeded generator "
        "(e.g. 'what a lovely walk!', 'the movie was not awful.'), labelled negative or positive. "
        "Written by the dsreg project; needs no network. 400 train and 100 test sentences by default."
    )
    homepage = "https://github.com/dsreg/dsreg/tree/main/plugins/text"
    license = "CC0-1.0"
    citation = "none (generated by dsreg-text)"
    splits = ("train", "test")
    config = {"seed": 0, "train_size": 400, "test_size": 100, **TOKEN_CONFIG}
    # 400 sentences make 13 steps an epoch at batch 32: it takes ~20 epochs at a high lr for the
    # MLP after the mean embedding to learn how "not"/"never" flip a sentence.
    train_defaults = {"model": "text-bag", "epochs": 20, "batch_size": 32, "lr": 1e-2}

    def known_classes(self) -> tuple[str, ...]:
        from .sample import CLASSES

        return CLASSES

    def read(self, files: Mapping[str, Path]) -> Scan:
        from .sample import CLASSES, sentences

        p = self.params
        pairs = list(sentences(int(p["train_size"]) + int(p["test_size"]), seed=int(p["seed"])))
        rows = [Row(f"{i:05d}", text, CLASSES[label]) for i, (text, label) in enumerate(pairs)]
        cut = int(p["train_size"])
        return Scan(CLASSES, {"train": rows[:cut], "test": rows[cut:]})
