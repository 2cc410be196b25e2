"""The documented tokenizer and vocabulary rules, and the optional Hugging Face tokenizers file."""

from __future__ import annotations

import sys

import pytest

from dsreg.errors import ConfigError
from dsreg_text.vocab import HFTokenizer, Vocab, encoder_from_note, tokenize


def test_tokenize_lowercases_keeps_apostrophes_and_splits_punctuation():
    assert tokenize("Don't STOP, it's 9 o'clock!") == ["don't", "stop", ",", "it's", "9", "o'clock", "!"]
    assert tokenize("Café naïve 😀") == ["café", "naïve", "😀"]
    assert tokenize("Keep Case", lowercase=False) == ["Keep", "Case"]
    assert tokenize("  \n\t ") == []


def test_vocab_order_min_freq_max_size_and_specials():
    texts = ["b a b", "c b a", "d", "<pad> a"]  # counts: a 3, b 3, c 1, d 1 ("<", "pad", ">" too)
    vocab = Vocab.build(texts, min_freq=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]  # ties by text; c, d and the pieces of <pad> dropped
    assert Vocab.build(texts, max_size=3).tokens == ["<pad>", "<unk>", "a"]
    assert vocab.encode("B a zebra") == [3, 2, 1]
    assert vocab.decode([3, 2, 1, 0, 0]) == "b a <unk>"
    with pytest.raises(ConfigError, match="min_freq"):
        Vocab.build(texts, min_freq=0)
    with pytest.raises(ConfigError, match="max_vocab"):
        Vocab.build(texts, max_size=1)


def test_vocab_round_trips_through_its_manifest_note():
    vocab = Vocab.build(["Hello there, hello!"], lowercase=True)
    again = encoder_from_note(vocab.to_json())
    assert again.tokens == vocab.tokens and again.encode("hello THERE") == vocab.encode("hello THERE")
    stale = vocab.to_json() | {"pattern": r"\S+"}
    with pytest.raises(ConfigError, match="another rule set"):
        encoder_from_note(stale)


def test_tokenizers_file_is_used_and_checked(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[PAD]": 0, "[UNK]": 1, "good": 2, "bad": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    enc = HFTokenizer(str(path))
    assert enc.encode("good bad ugly") == [2, 3, 1]
    assert enc.pad_id == 0 and len(enc) == 4
    note = enc.to_json()
    assert encoder_from_note(note).encode("bad") == [3]
    tok.add_tokens(["ugly"])
    tok.save(str(path))
    with pytest.raises(ConfigError, match="changed since the dataset was prepared"):
        encoder_from_note(note)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not a Hugging Face tokenizers file"):
        HFTokenizer(str(path))


def test_missing_tokenizers_package_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="pip install tokenizers"):
        HFTokenizer(str(tmp_path / "tokenizer.json"))
