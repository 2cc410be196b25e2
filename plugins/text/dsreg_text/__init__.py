"""dsreg-text: text classification datasets for dsreg.

    import dsreg, dsreg_text
    train = dsreg.load("textclass", split="train", url="reviews.csv")
    batch = next(iter(train.loader(batch_size=32, shuffle=True)))
    # input_ids int64 [B, T], attention_mask bool [B, T], lengths int64 [B], label int64 [B], text list
    vocab = dsreg_text.vocab_of(train)       # the vocabulary built at prepare time
    ds = dsreg_text.from_lists(["Happy", "Sad"], [1, 0])   # two Python lists as a Dataset

Importing this package is cheap; torch loads when ``from_lists`` / ``TextList`` are used.
"""

from __future__ import annotations

from typing import Any

from .collate import collate
from .vocab import PAD, TOKEN_PATTERN, UNK, HFTokenizer, Vocab, tokenize

__all__ = [
    "PAD",
    "TOKEN_PATTERN",
    "UNK",
    "HFTokenizer",
    "TextList",
    "Vocab",
    "collate",
    "from_lists",
    "tokenize",
    "vocab_of",
]


def vocab_of(dataset: Any) -> Any:
    """Return the encoder (a ``Vocab`` or ``HFTokenizer``) a loaded text dataset was tokenized with."""
    from dsreg.errors import ConfigError

    from .vocab import encoder_from_note

    if hasattr(dataset, "vocab"):  # a TextList
        return dataset.vocab
    manifest = getattr(getattr(dataset, "info", None), "manifest", None) or {}
    note = manifest.get("notes", {}).get("vocab")
    if note is None:
        raise ConfigError("this dataset has no stored vocabulary; vocab_of() takes a dataset prepared by dsreg-text")
    return encoder_from_note(note)


def from_lists(texts: Any, labels: Any, **options: Any) -> Any:
    """Return ``texts`` with ``labels`` as a Dataset with the ``textclass`` collate (see ``lists.from_lists``)."""
    from .lists import from_lists as build

    return build(texts, labels, **options)


def __getattr__(name: str) -> Any:
    if name == "TextList":
        from .lists import TextList

        return TextList
    raise AttributeError(f"module 'dsreg_text' has no attribute {name!r}")
