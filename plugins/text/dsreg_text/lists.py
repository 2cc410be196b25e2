"""``from_lists``: two Python lists (texts, labels) as a Dataset with the ``textclass`` collate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from dsreg.errors import ConfigError

from .collate import collate
from .vocab import Encoder, HFTokenizer, Vocab

__all__ = ["TextList", "from_lists"]


class TextList(torch.utils.data.Dataset):
    """Texts and labels held in memory, tokenized once, served like a prepared ``textclass`` split."""

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int | str],
        *,
        classes: Sequence[str] | None = None,
        vocab: Encoder | None = None,
        tokenizer: str | None = None,
        max_length: int | None = None,
        min_freq: int = 1,
        max_vocab: int | None = None,
        lowercase: bool = True,
    ) -> None:
        texts, labels = list(texts), list(labels)
        if len(texts) != len(labels):
            raise ConfigError(f"got {len(texts)} texts but {len(labels)} labels; give one label per text")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ConfigError(f"texts[{i}] is {type(text).__name__}, not str")
        self.classes = _classes(labels, classes)
        index = {name: i for i, name in enumerate(self.classes)}
        self.labels = [index[label] if isinstance(label, str) else int(label) for label in labels]
        self.texts = texts
        if vocab is None:
            vocab = HFTokenizer(tokenizer) if tokenizer else Vocab.build(texts, lowercase=lowercase, min_freq=min_freq, max_size=max_vocab)
        self.vocab: Encoder = vocab
        self.ids = [torch.tensor(vocab.encode(text), dtype=torch.int64) for text in texts]
        self.max_length = max_length
        self.collate_fn: Callable[..., dict[str, Any]] = collate(max_length, vocab.pad_id)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "input_ids": self.ids[index],
            "label": torch.tensor(self.labels[index], dtype=torch.int64),
            "text": self.texts[index],
        }

    def loader(self, **kwargs: Any) -> torch.utils.data.DataLoader:
        """Return a ``torch.utils.data.DataLoader`` with this dataset's collate_fn."""
        kwargs.setdefault("collate_fn", self.collate_fn)
        return torch.utils.data.DataLoader(self, **kwargs)

    def __repr__(self) -> str:
        return f"<dsreg_text.TextList ({len(self)} texts; {len(self.vocab)} ids; classes {self.classes})>"


def _classes(labels: list[Any], classes: Sequence[str] | None) -> list[str]:
    if classes is not None:
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise ConfigError(f"classes {names} has duplicates")
    elif all(isinstance(label, str) for label in labels):
        names = sorted(set(labels))
    else:
        names = [str(i) for i in range(max(int(label) for label in labels) + 1)] if labels else []
    for i, label in enumerate(labels):
        if isinstance(label, str):
            if label not in names:
                raise ConfigError(f"labels[{i}] is {label!r}, not one of the classes {names}")
        elif isinstance(label, bool) or not 0 <= int(label) < len(names):
            raise ConfigError(f"labels[{i}] is {label!r}; integer labels must be in 0..{len(names) - 1}")
    return names


def from_lists(texts: Sequence[str], labels: Sequence[int | str], **options: Any) -> TextList:
    """Return ``texts`` with ``labels`` as a Dataset (vocabulary built from ``texts`` unless ``vocab=`` is given).

    Options: ``classes`` (names for integer labels), ``vocab`` (reuse another dataset's, e.g.
    ``vocab_of(train)``), ``tokenizer`` (a Hugging Face ``tokenizers`` file), ``max_length``,
    ``min_freq``, ``max_vocab``, ``lowercase``.
    """
    return TextList(texts, labels, **options)
