"""imagefolder on s3:// (the dsreg_s3 fixture's local server): a .zip fetched by `dsreg fetch`, and a folder of objects read in place."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli.app import cli
from dsreg_image.shapes import write_folder


@pytest.fixture
def shapes(tmp_path: Path) -> tuple[Path, bytes]:
    """A shapes folder and the same folder as shapes.zip (with its top folder)."""
    root = write_folder(tmp_path / "shapes", per_class=4, size=16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, f"shapes/{path.relative_to(root)}")
    return root, buf.getvalue()


def content(splits: dict) -> list[tuple[int, bytes]]:
    return sorted((int(ex["label"]), ex["image"].numpy().tobytes()) for ds in splits.values() for ex in ds)


def test_imagefolder_fetches_a_zip_and_reads_a_folder_on_s3(dsreg_cache: Path, dsreg_s3, shapes: tuple[Path, bytes]) -> None:
    root, archive = shapes
    base = dsreg_s3.bucket("user-data")
    url = dsreg_s3.upload(archive, base + "shapes.zip")
    result = CliRunner().invoke(cli, ["fetch", "imagefolder", "-c", f"url={url}"])
    assert result.exit_code == 0, result.output
    from_zip = dsreg.load("imagefolder", url=url, download=False)
    assert {k: len(v) for k, v in from_zip.items()} == {"train": 18, "test": 6}
    record = next(iter(dsreg.info("imagefolder", url=url).fetched.values()))
    assert record["status"] == "pinned" and record["source"] == url
    # The same images as a folder of objects, read in place through s3fs.
    dsreg_s3.upload(root, base + "folder/")
    from_folder = dsreg.load("imagefolder", url=base + "folder/")
    assert content(from_folder) == content(from_zip) == content(dsreg.load("imagefolder", url=str(root)))
