"""Archive safety and layout, decoding of real and corrupt PNGs, and notmnist-small's stratified split."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dsreg
from dsreg_notmnist import NotMNISTSmall
from dsreg_notmnist.builders import rank
from dsreg_notmnist.codec import decode_png, pixel_hash
from dsreg_notmnist.synth import LETTERS
from dsreg_notmnist.testing import CORRUPT_KINDS, corrupt_bytes, member_name, png_bytes, render_letters, write_archive

from notmnistdata import DATA, bind, column, serve


def small_archive(folder: Path, extra: list[tuple[str, bytes, str]] = (), per_class: int = 6, twins: int = 0) -> Path:
    """notMNIST_small.tar.gz with ``per_class`` images per letter (the last ``twins`` repeat the first ones' pixels)."""
    images = render_letters(per_class - twins, seed=7)
    members = [
        (letter, member_name(i), png_bytes(images[letter][i % (per_class - twins)], 6 if i < per_class - twins else 9))
        for letter in LETTERS
        for i in range(per_class)
    ]
    path = write_archive(folder / "notMNIST_small.tar.gz", "notMNIST_small", members)
    if not extra:
        return path
    # Append raw members (any type, any name) by rewriting the archive as plain tar.gz.
    with tarfile.open(path) as src:
        entries = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src.getmembers()]
    with tarfile.open(path, "w:gz") as out:
        for member, data in entries:
            out.addfile(member, io.BytesIO(data) if data is not None else None)
        for name, data, kind in extra:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                out.addfile(info)
            else:
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    return path


def fetch_small(folder: Path, register, file_server, **config):
    path = folder / "notMNIST_small.tar.gz"
    register(bind(NotMNISTSmall, {path.name: path}))
    return dsreg.fetch("notmnist-small", mirrors=[serve(file_server, {path.name: path})], quiet=True, **config)


@pytest.mark.parametrize(
    ("member", "kind", "says"),
    [
        ("../evil.png", "file", "climbs out with '..'"),
        ("/etc/evil.png", "file", "absolute path"),
        ("notMNIST_small/A/link.png", "symlink", "is a link"),
        ("notMNIST_small/K/extra.png", "file", "is not notMNIST_small/<A-J>/<name>.png"),
        ("notMNIST_small/A/deeper/x.png", "file", "is not notMNIST_small/<A-J>/<name>.png"),
        ("notMNIST_large/A/x.png", "file", "is not notMNIST_small/<A-J>/<name>.png"),
        ("notMNIST_small/A/notes.txt", "file", "is not notMNIST_small/<A-J>/<name>.png"),
    ],
)
def test_a_hostile_or_unexpected_member_is_a_clear_error_naming_it(
    tmp_path: Path, dsreg_cache: Path, dsreg_register, dsreg_file_server, member: str, kind: str, says: str
) -> None:
    small_archive(tmp_path, [(member, b"x", kind)], per_class=1)
    with pytest.raises(dsreg.ArchiveError) as err:
        fetch_small(tmp_path, dsreg_register, dsreg_file_server)
    message = str(err.value)
    assert says in message and member.lstrip("/") in message and "\n" not in message
    # Nothing half-prepared is left to be served.
    assert not dsreg.info("notmnist-small").cached


def test_real_notmnist_pngs_decode_white_on_black() -> None:
    files = sorted((DATA / "notmnist-png" / "notMNIST_small").glob("*/*.png"))
    if not files:
        pytest.skip(f"the real PNGs are not at {DATA / 'notmnist-png'}")
    for path in files:
        example = decode_png((path.read_bytes(), LETTERS.index(path.parent.name)))
        image = example["image"]
        assert image.shape == (1, 28, 28) and image.dtype == np.uint8
        assert image.max() == 255 and image.min() == 0  # white glyph (255) on black (0)
        with Image.open(path) as im:
            assert im.mode == "L" and np.array_equal(image[0], np.asarray(im))
        assert example["label"] == LETTERS.index(path.parent.name)


@pytest.mark.parametrize("kind", CORRUPT_KINDS)
def test_each_kind_of_corrupt_member_is_skipped_with_its_reason(kind: str) -> None:
    good = png_bytes(np.full((28, 28), 200, dtype=np.uint8))
    reasons = {
        "empty": "empty file",
        "truncated": "truncated or damaged PNG",
        "not-png": "not a PNG file",
        "wrong-size": "wrong size 32x32, expected 28x28",
    }
    with pytest.raises(dsreg.Skip, match=reasons[kind]):
        decode_png((corrupt_bytes(kind, good), 0))
    assert decode_png((good, 3))["image"].min() == 200


def test_small_split_is_stratified_seeded_and_deduplicated(tmp_path: Path, dsreg_cache: Path, dsreg_register, dsreg_file_server) -> None:
    # 10 per letter; the last 2 of each letter repeat the first 2 (other names, other PNG bytes).
    small_archive(tmp_path, per_class=10, twins=2)
    inf = fetch_small(tmp_path, dsreg_register, dsreg_file_server, test_fraction=0.3)
    keys = {letter: sorted((f"{letter}/{member_name(i)}" for i in range(10)), key=lambda k: rank(0, k)) for letter in LETTERS}
    test_keys = {k for letter in LETTERS for k in keys[letter][:3]}
    twin = {f"{L}/{member_name(i)}": f"{L}/{member_name(i - 8)}" for L in LETTERS for i in (8, 9)}
    content = lambda k: twin.get(k, k)  # noqa: E731
    test_content = {content(k) for k in test_keys}
    train = [k for letter in LETTERS for k in keys[letter][3:]]
    removed = sum(content(k) in test_content for k in train)
    within_test = len(test_keys) - len(test_content)
    m = inf.manifest
    assert m["splits"]["test"]["examples"] == 30
    assert m["splits"]["train"]["examples"] == 70 - removed
    assert m["notes"]["removed_by_dedupe"]["train"] == removed > 0
    assert m["notes"]["duplicates_within_split"]["test"] == within_test
    test = dsreg.load("notmnist-small", split="test", test_fraction=0.3)
    assert Counter(column(test, "label").tolist()) == {i: 3 for i in range(10)}
    assert not {pixel_hash(x) for x in column(test, "image")} & {
        pixel_hash(x) for x in column(dsreg.load("notmnist-small", split="train", test_fraction=0.3), "image")
    }


def test_importing_the_plugin_stays_light() -> None:
    code = "import sys, dsreg_notmnist; print(sorted(m for m in ('torch', 'numpy', 'PIL', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
