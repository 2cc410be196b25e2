"""Generated labelled texts in every format dsreg-text reads (the tests' only data)."""

from __future__ import annotations

import io
import json
from typing import Any

from dsreg_text.sample import sentences

CLASSES = ("negative", "positive")


def rows(n: int = 60, seed: int = 1) -> list[tuple[str, str]]:
    """Return ``n`` seeded ``(text, class name)`` pairs."""
    return [(text, CLASSES[label]) for text, label in sentences(n, seed=seed)]


def csv_bytes(pairs: list[tuple[str, str]], *, sep: str = ",") -> bytes:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
    writer.writerow(["id", "text", "label"])
    for i, (text, label) in enumerate(pairs):
        writer.writerow([i, text, label])
    return buf.getvalue().encode()


def jsonl_bytes(pairs: list[tuple[str, Any]], *, text_field: str = "text", label_field: str = "label") -> bytes:
    return "".join(json.dumps({text_field: t, label_field: label}) + "\n" for t, label in pairs).encode()


def parquet_bytes(pairs: list[tuple[Any, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"text": [t for t, _ in pairs], "label": [label for _, label in pairs]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def txt_tree(pairs: list[tuple[str, str]], prefix: str = "") -> dict[str, bytes]:
    """One .txt file per text under ``prefix/<class>/``."""
    return {f"{prefix}{label}/{i:03d}.txt": text.encode() for i, (text, label) in enumerate(pairs)}
