"""Read labelled texts from CSV/TSV, JSON Lines, Parquet or class folders of .txt files.

Every reader yields ``Row``s keyed by where they are: ``path line N`` (CSV, JSON Lines; the line
a row starts on), ``path row N`` (Parquet, from 1) or the path (.txt). A readable row carries its
text and label; a malformed one carries a ``dsreg.Skip`` with the reason, so nothing is dropped
silently: the manifest and ``dsreg info`` list ``key: reason``. Problems with a whole file (a missing column, an unreadable file)
raise ConfigError instead: no row of such a file could be read.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dsreg import Skip
from dsreg.errors import ConfigError

__all__ = ["Row", "FORMATS", "EXTENSIONS", "detect_format", "read_file", "label_name"]

#: format → file name endings it reads.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".tsv"),
    "jsonl": (".jsonl", ".ndjson", ".json"),
    "parquet": (".parquet", ".pq"),
    "folder": (".txt",),
}
FORMATS = tuple(EXTENSIONS)


@dataclass(frozen=True)
class Row:
    """One example read from a file: ``text`` and ``label`` (a class name), or ``skip``."""

    key: str
    text: str = ""
    label: str = ""
    skip: Skip | None = None


def detect_format(names: list[str]) -> str:
    """Return the one format whose files appear in ``names``; ConfigError when none or several do."""
    found = [fmt for fmt, exts in EXTENSIONS.items() if any(n.lower().endswith(exts) for n in names)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(
            f"found no .csv, .tsv, .jsonl, .parquet or class folders of .txt files at url; pass -c format=... (one of {', '.join(FORMATS)})"
        )
    raise ConfigError(f"url holds files of several formats ({', '.join(found)}); choose one with -c format=...")


def label_name(value: Any) -> str | None:
    """Return a label value as a class name (``1`` and ``1.0`` both give ``"1"``); None when missing."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, float):
        if value != value:  # NaN, as pandas writes a missing value
            return None
        return str(int(value)) if value.is_integer() else str(value)
    text = str(value).strip()
    return text or None


def _row(key: str, text: Any, label: Any, text_field: str, label_field: str) -> Row:
    if not isinstance(text, str):
        if text is None:
            return Row(key, skip=Skip(f"no {text_field!r} value"))
        return Row(key, skip=Skip(f"{text_field!r} is {type(text).__name__}, not text"))
    if not text.strip():
        return Row(key, skip=Skip(f"{text_field!r} is empty"))
    name = label_name(label)
    if name is None:
        return Row(key, skip=Skip(f"no {label_field!r} value"))
    return Row(key, text=text, label=name)


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8") from None


def read_csv(path: str, data: bytes, text_field: str, label_field: str) -> Iterator[Row]:
    """Yield the rows of a CSV (or, for ``.tsv``, tab-separated) file with a header line."""
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    reader = csv.reader(io.StringIO(_decode(path, data), newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ConfigError(f"{path}: the header line is not valid CSV ({exc})") from None
    for field in (text_field, label_field):
        if field not in header:
            which = "text_field" if field == text_field else "label_field"
            raise ConfigError(f"{path} has no column {field!r} (columns: {', '.join(header)}); pass -c {which}=NAME")
    ti, li = header.index(text_field), header.index(label_field)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader resumes at the next line after an error
            yield Row(f"{path} line {start}", skip=Skip(f"not valid CSV ({exc})"))
            continue
        key = f"{path} line {start}"
        if not cells:
            continue  # a blank line is not a row
        if len(cells) != len(header):
            yield Row(key, skip=Skip(f"{len(cells)} fields, the header has {len(header)}"))
            continue
        yield _row(key, cells[ti], cells[li], text_field, label_field)


def read_jsonl(path: str, data: bytes, text_field: str, label_field: str) -> Iterator[Row]:
    """Yield the rows of a JSON Lines file (one object per line; blank lines are ignored)."""
    for number, line in enumerate(_decode(path, data).splitlines(), start=1):
        if not line.strip():
            continue
        key = f"{path} line {number}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            yield Row(key, skip=Skip(f"not valid JSON ({getattr(exc, 'msg', exc)})"))
            continue
        if not isinstance(obj, dict):
            yield Row(key, skip=Skip(f"a JSON {type(obj).__name__}, not an object"))
            continue
        yield _row(key, obj.get(text_field), obj.get(label_field), text_field, label_field)


def read_parquet(path: str, data: bytes, text_field: str, label_field: str) -> Iterator[Row]:
    """Yield the rows of a Parquet file (row numbers count from 1)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{path} is not a readable Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    for field, which in ((text_field, "text_field"), (label_field, "label_field")):
        if field not in names:
            raise ConfigError(f"{path} has no column {field!r} (columns: {', '.join(names)}); pass -c {which}=NAME")
    number = 0
    for batch in pf.iter_batches(columns=[text_field, label_field], batch_size=8192):
        texts = batch.column(0).to_pylist()
        labels = batch.column(1).to_pylist()
        for text, label in zip(texts, labels):
            number += 1
            yield _row(f"{path} row {number}", text, label, text_field, label_field)


def read_txt(path: str, data: bytes, label: str) -> Row:
    """Return one .txt file of a class folder as a row labelled ``label``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Row(path, skip=Skip(f"not UTF-8 text (bad byte at offset {exc.start})"))
    if not text.strip():
        return Row(path, skip=Skip("the file is empty"))
    return Row(path, text=text.strip(), label=label)


_READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


def read_file(fmt: str, path: str, data: bytes, text_field: str, label_field: str) -> Iterator[Row]:
    """Yield the rows of one ``fmt`` file (``csv``, ``jsonl`` or ``parquet``)."""
    return _READERS[fmt](path, data, text_field, label_field)


def split_of(path: str) -> str | None:
    """Return the split a data file's name or folder names (``train.csv``, ``test/part-0.jsonl``), or None."""
    from dsreg.fetching.userdata import SPLIT_FOLDERS

    parts = path.split("/")
    # "train.csv", "test_reviews.jsonl", "validation-00000-of-00001.parquet"
    stem = re.split(r"[-_.]", posixpath.basename(path), maxsplit=1)[0].lower()
    for part in [stem, *reversed([p.lower() for p in parts[:-1]])]:
        if part in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[part]
    return None
