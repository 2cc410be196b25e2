"""Builder.review: sees every decoded example (or Skip) in order in the preparing process."""

from __future__ import annotations

from pathlib import Path

import dsreg


def _decode(record: int) -> dict:
    if record % 5 == 0:
        raise dsreg.Skip(f"{record} is a multiple of five")
    return {"x": record}


class Reviewed(dsreg.Builder):
    """Drops odd examples in review, counts what it saw, and turns 7 into a Skip."""

    name = "reviewed"
    splits = ("all",)
    features = {"x": dsreg.Value("int64")}
    decode = staticmethod(_decode)

    def generate(self, split, files):
        for i in range(1, 13):
            yield str(i), i

    def review(self, split, key, example):
        seen = self.notes.setdefault("seen", [])
        seen.append(key if not isinstance(example, dsreg.Skip) else f"skip:{key}")
        if isinstance(example, dsreg.Skip):
            return example
        if example["x"] == 7:
            return dsreg.Skip("seven is reviewed out")
        return example if example["x"] % 2 == 0 else None


def test_review_filters_and_sees_skips_in_order(dsreg_cache: Path, dsreg_register) -> None:
    dsreg_register(Reviewed)
    inf = dsreg.fetch("reviewed", quiet=True, workers=2)
    split = inf.manifest["splits"]["all"]
    assert inf.manifest["notes"]["seen"] == [
        "1",
        "2",
        "3",
        "4",
        "skip:5",
        "6",
        "7",
        "8",
        "9",
        "skip:10",
        "11",
        "12",
    ]
    assert [s["key"] for s in split["skipped"]] == ["5", "7", "10"]
    assert split["skipped"][1]["reason"] == "seven is reviewed out"
    assert [int(v) for v in dsreg.load("reviewed", split="all").to_hf()["x"]] == [2, 4, 6, 8, 12]
