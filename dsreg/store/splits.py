"""Split expressions, as in tfds and Hugging Face: ``train``, ``train[:10%]``, ``train[100:200]``,
``train[-1000:]``, ``train+test``, ``train[:50%]+validation``.

Percent bounds round to the closest example (``round(n * p / 100)``); integer bounds follow Python
slicing (negative counts from the end, out of range is clipped, a reversed range such as
``train[10:5]`` is empty).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["SplitSlice", "parse"]

_TERM = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?\s*$")


@dataclass(frozen=True)
class SplitSlice:
    """One term of a split expression: a split name and a [start, stop) range once resolved."""

    split: str
    start: str | None = None
    stop: str | None = None

    def bounds(self, n: int) -> tuple[int, int]:
        """Return the concrete ``[start, stop)`` in a split of ``n`` examples; a reversed range is empty.

        ``slice.indices`` keeps ``train[10:5]`` as (10, 5), a negative length; like ``list[10:5]``
        it selects nothing, so the stop is raised to the start.
        """
        start, stop = slice(_index(self.start, n), _index(self.stop, n)).indices(n)[:2]
        return start, max(start, stop)


def _index(bound: str | None, n: int) -> int | None:
    if bound is None:
        return None
    if bound.endswith("%"):
        pct = int(bound[:-1])
        if not -100 <= pct <= 100:
            raise ConfigError(f"split bound {bound} must be between -100% and 100%")
        return int(round(n * pct / 100))
    return int(bound)


def parse(expression: str, available: Iterable[str]) -> list[SplitSlice]:
    """Parse ``expression`` against the ``available`` split names."""
    names = list(available)
    terms = []
    for raw in expression.split("+"):
        match = _TERM.match(raw)
        if not match:
            raise ConfigError(
                f"split {expression!r} is not understood; write e.g. 'train', 'train[:10%]', 'train[100:200]' or 'train+test'"
            )
        name, start, stop = match.groups()
        if name not in names:
            raise ConfigError(f"split {name!r} does not exist; choose from {', '.join(names)}")
        terms.append(SplitSlice(name, start, stop))
    return terms


def resolve(expression: str, counts: Mapping[str, int]) -> list[tuple[str, int, int]]:
    """Return ``[(split, start, stop), ...]`` for ``expression`` given each split's size."""
    return [(t.split, *t.bounds(counts[t.split])) for t in parse(expression, counts)]
