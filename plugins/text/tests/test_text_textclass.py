"""``textclass``: every format in every container, malformed rows, splits, classes, vocab, batches."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from click.testing import CliRunner

import dsreg
import dsreg_text
from dsreg.cli import cli
from dsreg.errors import ConfigError
from dsreg.testing import pack, write_tree
from dsreg_text.builders import SentimentWords, TextClass

from textdata import csv_bytes, jsonl_bytes, parquet_bytes, rows, txt_tree


@pytest.fixture(autouse=True)
def text_registry(dsreg_cache, dsreg_register):
    dsreg_register(TextClass, SentimentWords)


def load_all(url, **config):
    return dsreg.load("textclass", url=url, **config)


def total(splits):
    return sum(len(ds) for ds in splits.values())


PAIRS = rows(60)
SPLIT_FILES = {
    "csv": {"data/train.csv": csv_bytes(PAIRS[:40]), "data/test.csv": csv_bytes(PAIRS[40:])},
    "jsonl": {"train.jsonl": jsonl_bytes(PAIRS[:40]), "test.jsonl": jsonl_bytes(PAIRS[40:])},
    "parquet": {"train/part-0.parquet": parquet_bytes(PAIRS[:40]), "test/part-0.parquet": parquet_bytes(PAIRS[40:])},
    "folder": {**txt_tree(PAIRS[:40], "reviews/train/"), **txt_tree(PAIRS[40:], "reviews/test/")},
}


@pytest.mark.parametrize("fmt", list(SPLIT_FILES))
@pytest.mark.parametrize("container", ["folder", "zip", "tar.gz", "http-zip"])
def test_every_format_in_every_container(tmp_path, dsreg_file_server, fmt, container):
    tree = SPLIT_FILES[fmt]
    if container == "folder":
        url = str(write_tree(tmp_path / "data", tree))
    elif container == "http-zip":
        url = dsreg_file_server.serve({"data.zip": pack(tree, "zip")}) + "data.zip"
    else:
        url = str(tmp_path / f"data.{container}")
        (tmp_path / f"data.{container}").write_bytes(pack(tree, container))
    splits = load_all(url)
    assert {s: len(ds) for s, ds in splits.items()} == {"train": 40, "test": 20}
    train = splits["train"]
    assert train.classes == ["negative", "positive"]
    texts = sorted(train[i]["text"] for i in range(len(train)))
    assert texts == sorted(t for t, _ in PAIRS[:40])
    example = train[0]
    assert example["input_ids"].dtype == torch.int64
    assert dsreg_text.vocab_of(train).encode(example["text"]) == example["input_ids"].tolist()


def test_single_files_over_http_and_tsv(tmp_path, dsreg_file_server):
    base = dsreg_file_server.serve({"rows.csv": csv_bytes(PAIRS), "rows.parquet": parquet_bytes(PAIRS)})
    for name in ("rows.csv", "rows.parquet"):
        splits = load_all(base + name)
        assert {s: len(ds) for s, ds in splits.items()} == {"train": 48, "test": 12}
    (tmp_path / "rows.tsv").write_bytes(csv_bytes(PAIRS, sep="\t"))
    assert total(load_all(str(tmp_path / "rows.tsv"))) == 60


def test_holdout_is_seeded_and_class_stratified(tmp_path):
    pairs = [(f"text number {i}", "big" if i % 4 else "small") for i in range(100)]  # 75 big, 25 small
    (tmp_path / "rows.jsonl").write_bytes(jsonl_bytes(pairs))
    url = str(tmp_path / "rows.jsonl")
    splits = load_all(url, holdout=0.2, seed=3)
    test = splits["test"]
    assert Counter(test.classes[int(test[i]["label"])] for i in range(len(test))) == {"big": 15, "small": 5}
    again = load_all(url, holdout=0.2, seed=3)["test"]
    other = load_all(url, holdout=0.2, seed=4)["test"]
    keys = lambda ds: sorted(ds[i]["text"] for i in range(len(ds)))  # noqa: E731
    assert keys(again) == keys(test) != keys(other)
    three = load_all(url, holdout={"validation": 0.1, "test": 0.1})
    assert {s: len(ds) for s, ds in three.items()} == {"train": 80, "validation": 10, "test": 10}
    assert list(three) == ["train", "validation", "test"]


def test_split_folders_with_validation_are_found(tmp_path):
    tree = {**txt_tree(PAIRS[:30], "train/"), **txt_tree(PAIRS[30:45], "val/"), **txt_tree(PAIRS[45:], "test/")}
    url = str(write_tree(tmp_path / "d", tree))
    assert dsreg.info("textclass", url=url).splits == ("train", "validation", "test")
    splits = load_all(url)
    assert {s: len(ds) for s, ds in splits.items()} == {"train": 30, "validation": 15, "test": 15}


def test_malformed_rows_are_reported_with_their_line(tmp_path):
    lines = [
        "id,text,label",
        "0,a fine day,positive",
        "1,too,many,fields,here",
        "2,,negative",
        "3,a grim day,",
        '4,"a quoted, multi',
        'line text",negative',
        "5,a lovely day,positive",
    ]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "rows.jsonl").write_text(
        '{"text": "ok one", "label": 1}\n{"text": "broken\n\n{"label": 0}\n["a", "list"]\n{"text": "ok two", "label": 0}\n'
    )
    info = dsreg.fetch("textclass", url=str(tmp_path / "rows.csv"), holdout=0.0, quiet=True)
    skipped = [(s["key"], s["reason"]) for s in info.manifest["splits"]["train"]["skipped"]]
    assert skipped == [
        ("rows.csv line 3", "5 fields, the header has 3"),
        ("rows.csv line 4", "'text' is empty"),
        ("rows.csv line 5", "no 'label' value"),
    ]
    train = dsreg.load("textclass", split="train", url=str(tmp_path / "rows.csv"), holdout=0.0)
    assert sorted(train[i]["text"] for i in range(len(train))) == ["a fine day", "a lovely day", "a quoted, multi\nline text"]
    info = dsreg.fetch("textclass", url=str(tmp_path / "rows.jsonl"), holdout=0.0, quiet=True)
    skipped = [f"{s['key']}: {s['reason']}" for s in info.manifest["splits"]["train"]["skipped"]]
    assert skipped[0].startswith("rows.jsonl line 2: not valid JSON")
    assert skipped[1:] == ["rows.jsonl line 4: no 'text' value", "rows.jsonl line 5: a JSON list, not an object"]
    assert info.manifest["splits"]["train"]["examples"] == 2
    # `dsreg info` lists them for the user.
    out = CliRunner().invoke(cli, ["info", "textclass", "-c", f"url={tmp_path / 'rows.jsonl'}", "-c", "holdout=0.0"])
    assert out.exit_code == 0, out.output
    assert "  rows.jsonl line 5: a JSON list, not an object\n" in out.output


def test_parquet_null_rows_and_bad_txt_files(tmp_path):
    (tmp_path / "rows.parquet").write_bytes(parquet_bytes([("good", "a"), (None, "a"), ("fine", None), ("also good", "b")]))
    info = dsreg.fetch("textclass", url=str(tmp_path / "rows.parquet"), holdout=0.0, quiet=True)
    assert [(s["key"], s["reason"]) for s in info.manifest["splits"]["train"]["skipped"]] == [
        ("rows.parquet row 2", "no 'text' value"),
        ("rows.parquet row 3", "no 'label' value"),
    ]
    tree = {"pos/a.txt": b"nice", "pos/b.txt": b"\xff\xfe\xfa not utf-8", "neg/c.txt": b"   ", "neg/d.txt": b"bad"}
    url = str(write_tree(tmp_path / "t", tree))
    info = dsreg.fetch("textclass", url=url, holdout=0.0, quiet=True)
    assert sorted((s["key"], s["reason"]) for s in info.manifest["splits"]["train"]["skipped"]) == [
        ("neg/c.txt", "the file is empty"),
        ("pos/b.txt", "not UTF-8 text (bad byte at offset 0)"),
    ]
    # Folder mode is dsreg.FolderBuilder's: the same notes as imagefolder and audiofolder.
    assert info.manifest["notes"]["splits_from"] == "holdout 0.0 (class-stratified, seed 0)"
    assert info.manifest["notes"]["classes"] == 2 and list(info.splits) == ["train"]


def test_whole_file_problems_are_one_clear_error(tmp_path):
    (tmp_path / "rows.csv").write_text("body,category\nhi,a\n")
    with pytest.raises(ConfigError, match=r"no column 'text' \(columns: body, category\); pass -c text_field=NAME"):
        dsreg.fetch("textclass", url=str(tmp_path / "rows.csv"), quiet=True)
    splits = load_all(str(tmp_path / "rows.csv"), text_field="body", label_field="category", holdout=0.0)
    assert splits["train"][0]["text"] == "hi"
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.csv").write_text("text,label\nx,y\n")
    (tmp_path / "mixed" / "b.jsonl").write_text('{"text": "x", "label": "y"}\n')
    with pytest.raises(ConfigError, match="several formats"):
        dsreg.fetch("textclass", url=str(tmp_path / "mixed"), quiet=True)
    with pytest.raises(ConfigError, match="format 'xml' is not one of"):
        dsreg.info("textclass", url=str(tmp_path / "mixed"), format="xml")
    with pytest.raises(ConfigError, match="-c url="):
        dsreg.fetch("textclass", quiet=True)


def test_classes_config_fixes_order_maps_indices_and_rejects_others(tmp_path):
    pairs = [("one", "0"), ("two", "1"), ("three", "pos"), ("four", "maybe")]
    (tmp_path / "rows.jsonl").write_bytes(jsonl_bytes(pairs))
    url = str(tmp_path / "rows.jsonl")
    assert dsreg.info("textclass", url=url, classes="neg,pos").classes == ["neg", "pos"]  # known before a fetch
    info = dsreg.fetch("textclass", url=url, classes="neg,pos", holdout=0.0, quiet=True)
    assert [(s["key"], s["reason"]) for s in info.manifest["splits"]["train"]["skipped"]] == [
        ("rows.jsonl line 4", "label 'maybe' is not one of the classes ['neg', 'pos']"),
    ]
    train = dsreg.load("textclass", split="train", url=url, classes=["neg", "pos"], holdout=0.0)
    assert {train[i]["text"]: int(train[i]["label"]) for i in range(len(train))} == {"one": 0, "two": 1, "three": 1}
    # Integer labels found in the data keep their value as the index, "10" after "9".
    ints = [(f"t{i}", i % 11) for i in range(44)]
    (tmp_path / "ints.jsonl").write_bytes(jsonl_bytes(ints))
    ds = dsreg.load("textclass", split="train", url=str(tmp_path / "ints.jsonl"), holdout=0.0)
    assert ds.classes == [str(i) for i in range(11)]
    assert all(int(ds[i]["label"]) == int(ds[i]["text"][1:]) % 11 for i in range(len(ds)))


def test_vocabulary_rules_come_from_config_and_train_only(tmp_path):
    train = [("alpha alpha beta", "a"), ("alpha gamma", "b")]
    test = [("delta only in test", "a")]
    url = write_tree(tmp_path / "data", {"train.jsonl": jsonl_bytes(train), "test.jsonl": jsonl_bytes(test)})
    splits = load_all(str(url), min_freq=2)
    vocab = dsreg_text.vocab_of(splits["test"])
    assert vocab.tokens == ["<pad>", "<unk>", "alpha"]
    assert splits["test"][0]["input_ids"].tolist() == [1, 1, 1, 1]
    assert splits["train"].info.manifest["notes"]["label_counts"] == {"train": {"a": 1, "b": 1}, "test": {"a": 1, "b": 0}}


def test_tokenizer_file_config(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "[PAD]": 1, "good": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tok.json"))
    (tmp_path / "rows.jsonl").write_bytes(jsonl_bytes([("good good", "a"), ("good", "b")]))
    ds = dsreg.load("textclass", split="train", url=str(tmp_path / "rows.jsonl"), tokenizer=str(tmp_path / "tok.json"), holdout=0.0)
    assert dsreg_text.vocab_of(ds).to_json()["kind"] == "tokenizers"
    batch = next(iter(ds.loader(batch_size=2)))
    assert batch["input_ids"].tolist() in ([[2, 2], [2, 1]], [[2, 1], [2, 2]])  # padded with [PAD] = 1
    assert batch["attention_mask"].sum().item() == 3


def test_collate_pads_caps_and_masks(tmp_path):
    pairs = [("w " * n, "long" if n > 3 else "short") for n in (1, 2, 3, 5, 8, 13)]
    (tmp_path / "rows.jsonl").write_bytes(jsonl_bytes(pairs))
    url = str(tmp_path / "rows.jsonl")
    ds = dsreg.load("textclass", split="train", url=url, holdout=0.0)
    batch = ds.collate_fn(ds.__getitems__(list(range(6))))
    assert set(batch) == {"input_ids", "attention_mask", "lengths", "label", "text"}
    assert batch["input_ids"].shape == (6, 13) and batch["input_ids"].dtype == torch.int64
    assert sorted(batch["lengths"].tolist()) == [1, 2, 3, 5, 8, 13]
    assert torch.equal(batch["attention_mask"], batch["input_ids"] != 0)
    assert torch.equal(batch["attention_mask"].sum(1), batch["lengths"])
    capped = dsreg.load("textclass", split="train", url=url, holdout=0.0, max_length=4)
    assert capped.folder == ds.folder  # the cap only shapes batches: same prepared data
    batch = capped.collate_fn([capped[i] for i in range(6)])
    assert batch["input_ids"].shape == (6, 4) and batch["lengths"].max() == 4


def test_dataloader_with_workers_and_a_forward_pass(tmp_path):
    (tmp_path / "rows.csv").write_bytes(csv_bytes(rows(64)))
    train = dsreg.load("textclass", split="train", url=str(tmp_path / "rows.csv"))
    vocab = dsreg_text.vocab_of(train)

    class BagOfWords(torch.nn.Module):
        def __init__(self, vocab_size: int, classes: int) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(vocab_size, 16, padding_idx=0)
            self.out = torch.nn.Linear(16, classes)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            summed = (self.embed(ids) * mask.unsqueeze(-1)).sum(1)
            return self.out(summed / mask.sum(1, keepdim=True))

    model = BagOfWords(len(vocab), len(train.classes))
    seen = 0
    for batch in train.loader(batch_size=8, shuffle=True, num_workers=2):
        logits = model(batch["input_ids"], batch["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits, batch["label"])
        loss.backward()
        assert logits.shape == (len(batch["label"]), 2) and torch.isfinite(loss)
        seen += len(batch["label"])
    assert seen == len(train)
    assert model.embed.weight.grad is not None


def test_cli_fetch_from_a_zip_and_info(tmp_path):
    (tmp_path / "data.zip").write_bytes(pack(SPLIT_FILES["jsonl"], "zip"))
    runner = CliRunner()
    out = runner.invoke(cli, ["fetch", "textclass", "-c", f"url={tmp_path / 'data.zip'}"])
    assert out.exit_code == 0, out.output
    assert "textclass: train 40, test 20 ->" in out.output
    out = runner.invoke(cli, ["info", "textclass", "-c", f"url={tmp_path / 'data.zip'}"])
    assert "label: class label (2: negative, positive)" in out.output
    assert "train: 40 examples" in out.output and "vocab:" in out.output
