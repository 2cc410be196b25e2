"""The word tokenizer and vocabulary that ``textclass`` builds at prepare time.

Rules (documented in docs/plugins/text.md, and the same at prepare and at load):

1. Lowercase with ``str.lower()`` (when ``lowercase`` is on, the default).
2. Split with one regular expression, ``TOKEN_PATTERN``: a run of letters or digits (Unicode
   ``\\w``), optionally joined by inner apostrophes (``don't``, ``o'clock``), or any single character
   that is neither a word character nor whitespace (punctuation, symbols, emoji).
3. Count tokens over the **training split only**; keep those seen at least ``min_freq`` times;
   order them by count (highest first), ties by the token's text; keep the first
   ``max_size - 2`` of them.
4. Id 0 is ``<pad>`` and id 1 is ``<unk>``; kept tokens follow from id 2. Unknown tokens map to 1.

Pure Python, no torch: importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dsreg.errors import ConfigError

__all__ = ["TOKEN_PATTERN", "PAD", "UNK", "tokenize", "Vocab", "HFTokenizer", "Encoder", "encoder_from_note"]

TOKEN_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"
_TOKEN = re.compile(TOKEN_PATTERN)
PAD, UNK = "<pad>", "<unk>"


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into word and punctuation tokens by the documented rules."""
    return _TOKEN.findall(text.lower() if lowercase else text)


@dataclass
class Vocab:
    """A token ↔ id table with ``<pad>`` = 0 and ``<unk>`` = 1."""

    tokens: list[str]
    lowercase: bool = True
    min_freq: int = 1
    max_size: int | None = None
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {self.tokens[:2]}")
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], *, lowercase: bool = True, min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """Count the tokens of ``texts`` and keep the frequent ones (rules 3 and 4)."""
        if min_freq < 1:
            raise ConfigError(f"min_freq must be at least 1, not {min_freq}")
        if max_size is not None and max_size < 2:
            raise ConfigError(f"max_vocab must be at least 2 (room for {PAD} and {UNK}), not {max_size}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text, lowercase))
        for special in (PAD, UNK):  # a literal "<pad>" in the data cannot take the reserved ids
            counts.pop(special, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([PAD, UNK, *kept], lowercase=lowercase, min_freq=min_freq, max_size=max_size)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, text: str) -> list[int]:
        """Return the ids of ``text``'s tokens (unknown tokens → 1)."""
        get = self.index.get
        return [get(token, 1) for token in tokenize(text, self.lowercase)]

    def decode(self, ids: Iterable[int]) -> str:
        """Return the tokens of ``ids`` joined by spaces, padding dropped."""
        return " ".join(self.tokens[int(i)] for i in ids if int(i) != 0)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored in the prepared manifest (``notes.vocab``)."""
        return {
            "kind": "words",
            "pattern": TOKEN_PATTERN,
            "lowercase": self.lowercase,
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "size": len(self.tokens),
            "tokens": self.tokens,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocab:
        """Rebuild a vocabulary stored by ``to_json``."""
        if data.get("pattern", TOKEN_PATTERN) != TOKEN_PATTERN:
            raise ConfigError("this prepared dataset was tokenized with another rule set; prepare it again with `dsreg fetch NAME --force`")
        return cls(list(data["tokens"]), lowercase=data["lowercase"], min_freq=data["min_freq"], max_size=data["max_size"])


class HFTokenizer:
    """A Hugging Face ``tokenizers`` tokenizer file, used instead of the word vocabulary."""

    def __init__(self, path: str) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError("tokenizer=PATH needs the 'tokenizers' package; install it with `pip install tokenizers`") from None
        import fsspec

        try:
            with fsspec.open(path, "rb") as fh:
                self.blob = fh.read()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read tokenizer file {path}: {exc}") from exc
        try:
            self.tokenizer = Tokenizer.from_str(self.blob.decode("utf-8"))
        except Exception as exc:  # tokenizers raises its own Exception type
            raise ConfigError(f"{path} is not a Hugging Face tokenizers file ({exc})") from exc
        self.path = path
        self.sha256 = hashlib.sha256(self.blob).hexdigest()
        # Pad with the tokenizer's own padding token when it names one, else id 0.
        self.pad_id = 0
        for candidate in ("<pad>", "[PAD]", "<|pad|>"):
            found = self.tokenizer.token_to_id(candidate)
            if found is not None:
                self.pad_id = int(found)
                break

    def __len__(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        """Return the tokenizer's ids for ``text`` (with the special tokens its post-processor adds)."""
        return list(self.tokenizer.encode(text).ids)

    def decode(self, ids: Iterable[int]) -> str:
        return str(self.tokenizer.decode([int(i) for i in ids]))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "tokenizers", "path": self.path, "sha256": self.sha256, "size": len(self), "pad_id": self.pad_id}


Encoder = Vocab | HFTokenizer


def encoder_from_note(note: dict[str, Any]) -> Encoder:
    """Return the encoder a prepared manifest's ``notes.vocab`` describes."""
    if note.get("kind") == "tokenizers":
        tok = HFTokenizer(note["path"])
        if tok.sha256 != note["sha256"]:
            raise ConfigError(
                f"tokenizer file {note['path']} changed since the dataset was prepared "
                f"(sha256 {tok.sha256[:12]}…, was {note['sha256'][:12]}…); prepare again with `dsreg fetch NAME --force`"
            )
        return tok
    return Vocab.from_json(note)
