"""``sentiment-words``: short sentences composed by a seeded generator, labelled negative/positive.

Everything here is written by the dsreg project (word lists and templates included) and released
with it under CC0-1.0, so the sample works offline and carries no third-party license.
A sentence is one template filled with words of one polarity; the "not" templates flip the label,
so a bag-of-words model cannot reach 100% and a sequence model has something to learn. No
sentence is drawn twice, so train and test never share one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["POSITIVE", "NEGATIVE", "sentences", "CLASSES"]

CLASSES = ("negative", "positive")

POSITIVE = (
    "happy",
    "amazing",
    "great",
    "wonderful",
    "delightful",
    "cheerful",
    "joyful",
    "excellent",
    "lovely",
    "brilliant",
    "pleasant",
    "fantastic",
    "superb",
    "glad",
    "marvelous",
    "terrific",
    "charming",
    "bright",
    "kind",
    "calm",
)
NEGATIVE = (
    "sad",
    "unhappy",
    "glum",
    "awful",
    "terrible",
    "dreadful",
    "gloomy",
    "miserable",
    "horrible",
    "dismal",
    "poor",
    "bleak",
    "upset",
    "angry",
    "boring",
    "dull",
    "nasty",
    "tragic",
    "weary",
    "grim",
)
_NOUNS = (
    "day",
    "movie",
    "meal",
    "trip",
    "song",
    "book",
    "game",
    "party",
    "show",
    "weather",
    "concert",
    "evening",
    "story",
    "class",
    "visit",
    "morning",
    "walk",
    "holiday",
    "garden",
    "lesson",
)
_ADVERBS = ("very", "really", "truly", "quite", "so", "rather", "incredibly", "fairly")
# (template, flips the label?)
_TEMPLATES = (
    ("{Adj}", False),
    ("{Adj}!", False),
    ("the {noun} was {adj}.", False),
    ("what {a} {adj} {noun}!", False),
    ("i felt {adv} {adj} today.", False),
    ("this {noun} is {adv} {adj}.", False),
    ("{a} {adj}, {adj2} {noun}.", False),
    ("my {noun} was {adj} and {adj2}.", False),
    ("honestly, the {noun} seemed {adj}.", False),
    ("the {noun} was not {adj}.", True),
    ("i did not feel {adj} at all.", True),
    ("it was never {a} {adj} {noun}.", True),
)


def sentences(n: int, seed: int = 0) -> Iterator[tuple[str, int]]:
    """Yield ``n`` different seeded ``(sentence, label)`` pairs; label 1 is positive, 0 negative."""
    if n > 100_000:  # the templates make a few hundred thousand different sentences
        raise ValueError(f"sentences() makes at most 100000 different sentences, not {n}")
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < n:
        polarity = rng.randrange(2)
        words = POSITIVE if polarity else NEGATIVE
        template, flips = rng.choice(_TEMPLATES)
        adj, adj2 = rng.sample(words, 2)
        text = template.format(
            Adj=adj.capitalize(),
            adj=adj,
            adj2=adj2,
            noun=rng.choice(_NOUNS),
            adv=rng.choice(_ADVERBS),
            a="an" if adj[0] in "aeiou" else "a",
        )
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        yield text, (1 - polarity) if flips else polarity
