"""imagefolder: every container, splits, modes, sizes, corrupt files, loading and training one batch."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dsreg
from dsreg.store.collate import Batch
from dsreg_image.collate import pad_images
from dsreg_image.imagefolder import ImageFolder, parse_size
from dsreg_image.shapes import CLASSES, Shapes, write_folder


def png(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format=fmt)
    return buf.getvalue()


def zip_folder(root: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, f"{root.name}/{path.relative_to(root)}")
    return buf.getvalue()


def tgz_folder(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(root, arcname=root.name)
    return buf.getvalue()


@pytest.fixture
def shapes_dir(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "shapes", per_class=5, size=16)


@pytest.fixture
def images(dsreg_cache: Path, dsreg_register):
    dsreg_register(ImageFolder, Shapes)

    def load(url: str, **config):
        return dsreg.load("imagefolder", url=url, **config)

    return load


def everything(splits: dict) -> list[tuple[int, bytes]]:
    return sorted((int(ex["label"]), ex["image"].numpy().tobytes()) for ds in splits.values() for ex in (ds[i] for i in range(len(ds))))


def test_folder_zip_tgz_and_http_give_the_same_examples(images, shapes_dir: Path, tmp_path: Path, dsreg_file_server) -> None:
    folder = images(str(shapes_dir))
    assert list(folder) == ["train", "test"] and (len(folder["train"]), len(folder["test"])) == (24, 6)
    assert folder["train"].classes == sorted(CLASSES)
    (tmp_path / "shapes.zip").write_bytes(zip_folder(shapes_dir))
    (tmp_path / "shapes.tar.gz").write_bytes(tgz_folder(shapes_dir))
    base = dsreg_file_server.serve({"shapes.zip": zip_folder(shapes_dir), "shapes.tar.gz": tgz_folder(shapes_dir)})
    expected = everything(folder)
    for url in (str(tmp_path / "shapes.zip"), str(tmp_path / "shapes.tar.gz"), base + "shapes.zip", base + "shapes.tar.gz"):
        got = images(url)
        assert everything(got) == expected, url
        # Paths differ only by the archive's top folder, so the seeded split picks the same files.
        assert len(got["test"]) == 6
    info = dsreg.info("imagefolder", url=base + "shapes.tar.gz")
    assert [r["status"] for r in info.fetched.values()] == ["pinned", "pinned"]


def test_remote_folder_through_fsspec(images, shapes_dir: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for path in shapes_dir.rglob("*.png"):
        fs.pipe(f"/imgtest/{path.relative_to(shapes_dir)}", path.read_bytes())
    try:
        assert everything(images("memory://imgtest/")) == everything(images(str(shapes_dir)))
    finally:
        fs.rm("/imgtest", recursive=True)


def test_holdout_is_stratified_and_seeded(images, shapes_dir: Path) -> None:
    ds = images(str(shapes_dir), holdout=0.4)
    assert Counter(int(ds["test"][i]["label"]) for i in range(len(ds["test"]))) == {c: 2 for c in range(6)}
    keys = lambda d: sorted(d["test"][i]["image"].numpy().tobytes() for i in range(len(d["test"])))  # noqa: E731
    assert keys(images(str(shapes_dir), holdout=0.4, seed=0)) == keys(ds)
    assert keys(images(str(shapes_dir), holdout=0.4, seed=1)) != keys(ds)
    three = images(str(shapes_dir), holdout={"validation": 0.2, "test": 0.2})
    assert {k: len(v) for k, v in three.items()} == {"train": 18, "validation": 6, "test": 6}
    assert list(images(str(shapes_dir), holdout=0)) == ["train"]


def test_split_folders_win_over_holdout(images, tmp_path: Path) -> None:
    root = write_folder(tmp_path / "split", per_class=4, size=16, split_folders=True)
    (root / "val" / "circle").mkdir(parents=True)
    (root / "val" / "circle" / "v.png").write_bytes(next((root / "test" / "circle").glob("*.png")).read_bytes())
    ds = images(str(root), holdout=0.5)
    assert {k: len(v) for k, v in ds.items()} == {"train": 24, "validation": 1, "test": 6}
    assert dsreg.info("imagefolder", url=str(root), holdout=0.5).manifest["notes"]["splits_from"] == "folders"


def test_grey_images_give_one_channel_and_mode_can_be_forced(images, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "g" / cls).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "g" / cls / f"{i}.png").write_bytes(png(rng.integers(0, 255, (8, 10), dtype=np.uint8)))
    # 16-bit grey keeps its top 8 bits; RGBA lands on white; a palette image is read too.
    deep = np.arange(80, dtype=np.uint16).reshape(8, 10) * 800
    (tmp_path / "g" / "a" / "deep.png").write_bytes(png(deep))
    grey = images(str(tmp_path / "g"), holdout=0)["train"]
    assert grey.features["image"] == dsreg.Tensor((1, 8, 10), "uint8")
    deep_row = next(grey[i] for i in range(len(grey)) if grey[i]["image"].max() >= 240 and grey[i]["image"][0, 0, 0] == 0)
    assert deep_row["image"][0, 7, 9].item() == (79 * 800) >> 8
    rgba = np.zeros((8, 10, 4), dtype=np.uint8)
    (tmp_path / "g" / "b" / "clear.png").write_bytes(png(rgba, "RGBA"))
    rgb = images(str(tmp_path / "g"), holdout=0)["train"]
    assert rgb.features["image"].shape == (3, 8, 10)
    assert any(rgb[i]["image"].min() == 255 for i in range(len(rgb)))  # fully transparent → white
    forced = images(str(tmp_path / "g"), holdout=0, mode="L")["train"]
    assert forced.features["image"].shape == (1, 8, 10)


def mixed_tree(root: Path) -> Path:
    rng = np.random.default_rng(1)
    sizes = [(8, 12), (16, 10), (9, 9), (20, 6)]
    for cls in ("wide", "tall"):
        (root / cls).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            fmt = ("PNG", "JPEG", "BMP", "TIFF")[i]
            (root / cls / f"{i}.{fmt.lower()}").write_bytes(png(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), fmt=fmt))
    return root


def test_mixed_sizes_stored_encoded_and_padded_with_a_mask(images, tmp_path: Path) -> None:
    ds = images(str(mixed_tree(tmp_path / "mixed")), holdout=0)["train"]
    assert isinstance(ds.features["image"], dsreg.Value)
    assert sorted(tuple(ds[i]["image"].shape) for i in range(4)) == [(3, 8, 12), (3, 9, 9), (3, 16, 10), (3, 20, 6)]
    batch = next(iter(ds.loader(batch_size=8)))
    assert batch["image"].shape == (8, 3, 20, 12) and batch["image"].dtype == torch.uint8
    assert batch["mask"].shape == (8, 20, 12) and batch["mask"].dtype == torch.bool
    assert batch["mask"].sum(dim=(1, 2)).tolist() == (batch["height"] * batch["width"]).tolist()
    assert batch["shape"][:, 1].tolist() == batch["height"].tolist()
    padded = ~batch["mask"].unsqueeze(1).expand_as(batch["image"])
    assert batch["image"][padded].eq(0).all()
    assert batch["label"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # sorted class folders: tall, wide


@pytest.mark.parametrize("policy", ["crop", "fit", "stretch"])
def test_size_resizes_at_prepare(images, tmp_path: Path, policy: str) -> None:
    ds = images(str(mixed_tree(tmp_path / "mixed")), holdout=0, size=[12, 16], resize=policy)["train"]
    assert ds.features["image"] == dsreg.Tensor((3, 12, 16), "uint8")
    assert isinstance(ds.__getitems__([0, 1]), Batch)  # decoded store: the one-gather batch path
    if policy == "fit":  # the 20x6 image is letterboxed: black columns at both sides
        tallest = ds[3]["image"]  # tall/3.tiff, rows follow the sorted paths
        assert tallest[:, :, 0].eq(0).all() and tallest[:, :, -1].eq(0).all()


def test_parse_size() -> None:
    assert parse_size(None) is None
    assert parse_size(64) == (64, 64)
    assert parse_size("48x64") == (48, 64)
    assert parse_size([48, 64]) == (48, 64)
    with pytest.raises(dsreg.ConfigError, match="height x width"):
        parse_size("big")
    with pytest.raises(dsreg.ConfigError, match="crop, fit, stretch"):
        ImageFolder(url="x", resize="squash")


def test_corrupt_files_are_skipped_and_counted(images, shapes_dir: Path) -> None:
    good = next((shapes_dir / "circle").glob("*.png")).read_bytes()
    (shapes_dir / "circle" / "truncated.png").write_bytes(good[: len(good) // 2])
    (shapes_dir / "star" / "noise.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    (shapes_dir / "star" / "notes.txt").write_text("not an image, not counted as corrupt")
    inf = dsreg.fetch("imagefolder", url=str(shapes_dir), holdout=0, quiet=True)
    skipped = inf.manifest["splits"]["train"]["skipped"]
    assert sorted(s["key"] for s in skipped) == ["circle/truncated.png", "star/noise.jpg"]
    assert all("not a readable image" in s["reason"] for s in skipped)
    assert inf.manifest["splits"]["train"]["examples"] == 30
    assert inf.manifest["notes"]["ignored_files"] == {"count": 1, "first": ["star/notes.txt"]}


def test_missing_url_and_empty_data_say_what_to_do(images, tmp_path: Path) -> None:
    with pytest.raises(dsreg.ConfigError, match="-c url="):
        dsreg.fetch("imagefolder", quiet=True)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "a.txt").write_text("x")
    with pytest.raises(dsreg.ConfigError, match="class folders"):
        dsreg.fetch("imagefolder", url=str(tmp_path / "empty"), quiet=True)


def test_changed_folder_is_prepared_again(images, shapes_dir: Path) -> None:
    assert len(images(str(shapes_dir), holdout=0)["train"]) == 30
    (shapes_dir / "ring" / "extra.png").write_bytes(next((shapes_dir / "ring").glob("*.png")).read_bytes())
    assert len(images(str(shapes_dir), holdout=0)["train"]) == 31


def test_dataloader_workers_and_one_training_step(images, tmp_path: Path, shapes_dir: Path) -> None:
    fixed = images(str(shapes_dir))["train"]
    mixed = images(str(mixed_tree(tmp_path / "mixed")), holdout=0)["train"]
    for ds in (fixed, mixed):
        batches = list(ds.loader(batch_size=4, shuffle=True, num_workers=2))
        assert sum(len(b["label"]) for b in batches) == len(ds)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, len(fixed.classes)),
    )
    batch = next(iter(fixed.loader(batch_size=8, shuffle=True)))
    logits = model(batch["image"].float() / 255)
    loss = torch.nn.functional.cross_entropy(logits, batch["label"])
    loss.backward()
    assert logits.shape == (8, 6) and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())


def test_pad_images_accepts_a_plain_list() -> None:
    out = pad_images(
        [{"image": torch.ones(1, 2, 3, dtype=torch.uint8), "label": 0}, {"image": torch.ones(1, 4, 1, dtype=torch.uint8), "label": 1}]
    )
    assert out["image"].shape == (2, 1, 4, 3) and out["mask"].sum().item() == 10
    assert out["label"].tolist() == [0, 1]


def test_imagefolder_collate_pads_encoded_images_and_stacks_decoded_ones() -> None:
    encoded = [
        {"image": torch.ones(1, 2, 3, dtype=torch.uint8), "shape": torch.tensor([1, 2, 3]), "label": 0},
        {"image": torch.ones(1, 4, 1, dtype=torch.uint8), "shape": torch.tensor([1, 4, 1]), "label": 1},
    ]
    assert ImageFolder.collate_fn(encoded)["mask"].shape == (2, 4, 3)
    decoded = [{"image": torch.ones(1, 2, 3, dtype=torch.uint8), "label": 0}] * 2
    assert set(ImageFolder.collate_fn(decoded)) == {"image", "label"}
