"""The core's conformance suite on both text builders."""

from __future__ import annotations

from dsreg.testing import check_builder, write_tree
from dsreg_text.builders import SentimentWords, TextClass

from textdata import csv_bytes, rows


def test_sentiment_words_conforms():
    check_builder(SentimentWords)


def test_textclass_conforms(tmp_path):
    pairs = rows(80)
    url = write_tree(tmp_path / "data", {"train.csv": csv_bytes(pairs[:60]), "test.csv": csv_bytes(pairs[60:])})
    check_builder(TextClass, config={"url": str(url)})
