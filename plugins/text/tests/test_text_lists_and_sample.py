"""``from_lists`` (the study note's example) and the offline ``sentiment-words`` sample end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import dsreg
import dsreg_text
from dsreg.cli.train import run_train
from dsreg.errors import ConfigError
from dsreg_text.builders import SentimentWords, TextClass
from dsreg_text.sample import NEGATIVE, POSITIVE, sentences

NOTE_TEXT = ["Happy", "Amazing", "Sad", "Unhappy", "Glum"]
NOTE_LABELS = [1, 1, 0, 0, 0]


def test_the_study_note_example_batches_of_two():
    ds = dsreg_text.from_lists(NOTE_TEXT, NOTE_LABELS, classes=["negative", "positive"])
    assert len(ds) == 5 and ds.classes == ["negative", "positive"]
    torch.manual_seed(0)
    batches = list(DataLoader(ds, batch_size=2, shuffle=True, collate_fn=ds.collate_fn))
    assert [len(b["label"]) for b in batches] == [2, 2, 1]
    seen = {}
    for b in batches:
        assert b["input_ids"].dtype == torch.int64 and b["attention_mask"].dtype == torch.bool
        assert b["lengths"].tolist() == [1] * len(b["label"])  # one word each, still with lengths and mask
        for text, ids, label in zip(b["text"], b["input_ids"], b["label"]):
            seen[text] = (ds.vocab.decode(ids), int(label))
    assert seen == {t: (t.lower(), label) for t, label in zip(NOTE_TEXT, NOTE_LABELS)}


def test_from_lists_string_labels_shared_vocab_and_errors():
    ds = dsreg_text.from_lists(["good day", "bad day", "so good"], ["pos", "neg", "pos"])
    assert ds.classes == ["neg", "pos"] and [int(ds[i]["label"]) for i in range(3)] == [1, 0, 1]
    test = dsreg_text.from_lists(["good night"], ["pos"], vocab=ds.vocab, classes=ds.classes)
    assert test[0]["input_ids"].tolist() == [ds.vocab.index["good"], 1]
    batch = ds.loader(batch_size=3)
    b = next(iter(batch))
    assert b["input_ids"].shape == (3, 2) and b["lengths"].tolist() == [2, 2, 2]
    capped = dsreg_text.from_lists(["a b c d e"], [0], max_length=2)
    assert capped.collate_fn([capped[0]])["input_ids"].tolist() == [[2, 3]]
    with pytest.raises(ConfigError, match="3 texts but 2 labels"):
        dsreg_text.from_lists(["a", "b", "c"], [0, 1])
    with pytest.raises(ConfigError, match=r"labels\[1\] is 'maybe', not one of the classes"):
        dsreg_text.from_lists(["a", "b"], ["yes", "maybe"], classes=["no", "yes"])
    with pytest.raises(ConfigError, match=r"labels\[0\] is 5; integer labels must be in 0..1"):
        dsreg_text.from_lists(["a"], [5], classes=["no", "yes"])


def test_sample_is_seeded_and_labels_follow_the_words():
    first = list(sentences(50, seed=7))
    assert first == list(sentences(50, seed=7)) != list(sentences(50, seed=8))
    for text, label in sentences(300, seed=0):
        words = set(dsreg_text.tokenize(text))
        polarity = 1 if words & set(POSITIVE) else 0
        assert not (words & set(POSITIVE) and words & set(NEGATIVE))
        assert label == (1 - polarity if "not" in words or "never" in words else polarity), text


def test_sentiment_words_offline_end_to_end(dsreg_cache, dsreg_register, monkeypatch):
    monkeypatch.setenv("DSREG_OFFLINE", "1")  # no file to fetch: it must not need the network
    dsreg_register(TextClass, SentimentWords)
    assert dsreg.info("sentiment-words").classes == ["negative", "positive"]
    splits = dsreg.load("sentiment-words")
    assert {s: len(ds) for s, ds in splits.items()} == {"train": 400, "test": 100}
    vocab = dsreg_text.vocab_of(splits["train"])
    assert {"happy", "amazing", "sad", "unhappy", "glum"} <= set(vocab.tokens)
    # A bag of words learns the polarity of the words (the "not" templates keep it below 100%).
    torch.manual_seed(0)
    embed = torch.nn.EmbeddingBag(len(vocab), 2, mode="mean", padding_idx=0)
    opt = torch.optim.Adam(embed.parameters(), lr=0.05)
    for _ in range(15):
        for b in splits["train"].loader(batch_size=32, shuffle=True):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(embed(b["input_ids"]), b["label"]).backward()
            opt.step()

    def accuracy(ds):
        with torch.no_grad():
            right = sum((embed(b["input_ids"]).argmax(1) == b["label"]).sum().item() for b in ds.loader(batch_size=50))
        return right / len(ds)

    assert accuracy(splits["train"]) > 0.75 and accuracy(splits["test"]) > 0.55


def test_every_test_word_of_sentiment_words_is_in_the_train_vocabulary(dsreg_cache: Path) -> None:
    """What makes the sample learnable from its train split: no test token maps to <unk>."""
    test = dsreg.load("sentiment-words", split="test")
    unk = dsreg_text.vocab_of(test).tokens.index("<unk>")
    assert not any(unk in row["input_ids"].tolist() for row in test)


def test_dsreg_train_sentiment_words_with_no_options_learns(dsreg_cache: Path, tmp_path: Path) -> None:
    """The README's figure: the builder's train_defaults, from a fresh cache (prepare included), seed 0."""
    metrics, seconds = run_train(["sentiment-words", "--out", str(tmp_path / "run")])
    assert metrics["settings"]["model"] == "text-bag" and metrics["test"]["examples"] == 100
    assert metrics["test"]["accuracy"] >= 0.85 and seconds < 90, (metrics["test"], seconds)  # measured 0.97
