"""dsreg preview: the picture follows what the columns hold (images, waveforms, 2-D features, text)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import dsreg
from dsreg.cli import cli
from dsreg.cli.preview import log_mel, preview

CLASSES = ("low", "mid", "high")


def builder(kind: str) -> type[dsreg.Builder]:
    """A generated three-class dataset whose main column is of ``kind``."""
    main = {
        "image": dsreg.Tensor((1, 12, 10), "uint8"),
        "audio": dsreg.Tensor((None,), "float32"),
        "matrix": dsreg.Tensor((None, 8), "float32"),
        "text": dsreg.Text(),
    }[kind]

    class Generated(dsreg.Builder):
        name = f"gen-{kind}"
        task = "classification"
        features = {"x": main, "label": dsreg.ClassLabel(CLASSES)}
        splits = ("train",)
        config = {"sample_rate": 8000}

        def generate(self, split, files, **config):
            import numpy as np

            sample_rate = self.params["sample_rate"]
            for i in range(30):
                label = i % 3
                if kind == "image":
                    x = np.full((1, 12, 10), 40 + 80 * label, dtype=np.uint8)
                elif kind == "audio":
                    t = np.arange(800 + 40 * i) / sample_rate
                    x = np.sin(2 * np.pi * (300 + 1200 * label) * t).astype(np.float32)
                elif kind == "matrix":
                    x = np.random.default_rng(i).normal(label, 1, (20 + i, 8)).astype(np.float32)
                else:
                    x = f"example {i} says {CLASSES[label]} " * (1 + i % 4)
                yield str(i), {"x": x, "label": label}

    return Generated


@pytest.mark.parametrize("kind", ["image", "audio", "matrix", "text"])
def test_preview_draws_each_kind(dsreg_cache: Path, dsreg_register, tmp_path: Path, kind: str) -> None:
    dsreg_register(builder(kind))
    out = tmp_path / f"{kind}.png"
    result = preview(f"gen-{kind}", n=2, output=out)
    assert result.kind == kind and result.column == "x"
    assert {k: len(v) for k, v in result.indices.items()} == {c: 2 for c in CLASSES}
    # Indices really belong to their class (picked from the stored labels).
    ds = dsreg.load(f"gen-{kind}", split="train")
    assert all(CLASSES[int(ds[i]["label"])] == c for c, idx in result.indices.items() for i in idx)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(out) as im:
        assert im.width >= 400 and im.height >= 150
    assert preview(f"gen-{kind}", n=2, output=tmp_path / "again.png").indices == result.indices  # seeded


def test_cli_prints_the_text_table_and_writes_the_png(dsreg_cache: Path, dsreg_register, tmp_path: Path) -> None:
    dsreg_register(builder("text"))
    out = tmp_path / "t.png"
    res = CliRunner().invoke(cli, ["preview", "gen-text", "-n", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["CLASS", "#", "X"]
    assert [line.split()[0] for line in lines[1:4]] == list(CLASSES)
    assert f"wrote {out} (text preview of column 'x': 3 examples, 3 classes)" in res.output
    assert out.exists()


def test_preview_of_an_unknown_split_says_which_exist(dsreg_cache: Path, dsreg_register, tmp_path: Path) -> None:
    dsreg_register(builder("image"))
    res = CliRunner().invoke(cli, ["preview", "gen-image", "--split", "test", "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 1 and "choose from train" in res.output


def test_log_mel_puts_a_tone_in_its_band() -> None:
    rate, n_mels = 16000, 40
    for freq in (440.0, 3000.0):
        wave = torch.sin(2 * torch.pi * freq * torch.arange(rate) / rate)
        mel = log_mel(wave, rate, n_mels=n_mels)
        assert mel.shape[0] == n_mels
        band = int(mel.mean(dim=1).argmax())
        # Independent formula: the band whose centre (HTK mel) is closest to the tone.
        top = 2595 * torch.log10(torch.tensor(1 + rate / 2 / 700))
        centres = 700 * (10 ** (torch.linspace(0, float(top), n_mels + 2)[1:-1] / 2595) - 1)
        assert abs(band - int((centres - freq).abs().argmin())) <= 1


def test_dsreg_list_does_not_import_matplotlib() -> None:
    code = (
        "import sys; from dsreg.cli import cli; cli.main(['list'], standalone_mode=False); "
        "print('matplotlib' in sys.modules, 'dsreg.cli.preview' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process may not write in (root writes through permissions; sysfs refuses even root)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ("{tmp}/grid.jgp", "cannot write a picture to {tmp}/grid.jgp: '.jgp' is not a picture format; end the name in .png (or "),
        ("{tmp}/grid", "cannot write a picture to {tmp}/grid: it has no extension; end the name in .png (or "),
        ("{tmp}", "cannot write a picture to {tmp}: it has no extension"),
        ("{tmp}/a-folder.png", "{tmp}/a-folder.png is a folder; name a file in it, e.g. {tmp}/a-folder.png/preview.png"),
        (
            "{tmp}/a-file.txt/grid.png",
            "cannot write {tmp}/a-file.txt/grid.png: {tmp}/a-file.txt is a file, not a folder; pick another path",
        ),
        ("{ro}/deeper/grid.png", "cannot write {ro}/deeper/grid.png (Permission denied); pick a path in a folder you can write"),
    ],
    ids=["unknown extension", "no extension", "a folder without extension", "a folder", "under a file", "unwritable"],
)
def test_a_bad_output_is_one_line_before_any_work(dsreg_cache: Path, dsreg_register, tmp_path: Path, output: str, says: str) -> None:
    ran = []

    class Watched(builder("image")):  # type: ignore[misc, valid-type]
        def generate(self, split, files, **config):
            ran.append(split)
            yield from super().generate(split, files)

    dsreg_register(Watched)
    (tmp_path / "a-folder.png").mkdir()
    (tmp_path / "a-file.txt").write_text("x")
    ro = unwritable_folder(tmp_path)
    target = output.format(tmp=tmp_path, ro=ro)
    res = CliRunner().invoke(cli, ["preview", "gen-image", "-o", target])
    assert res.exit_code == 2
    assert res.output.startswith(f"error: Invalid value for '-o' / '--output': {says.format(tmp=tmp_path, ro=ro)}")
    assert res.output.endswith(" (`dsreg preview -h` lists the options)\n") and res.output.count("\n") == 1
    with pytest.raises(dsreg.ConfigError, match="^" + re.escape(says.format(tmp=tmp_path, ro=ro))):
        preview("gen-image", output=target)  # the Python API checks first too
    assert ran == [] and not dsreg.info("gen-image").cached


def test_other_picture_formats_are_written(dsreg_cache: Path, dsreg_register, tmp_path: Path) -> None:
    dsreg_register(builder("image"))
    res = CliRunner().invoke(cli, ["preview", "gen-image", "-n", "1", "-o", str(tmp_path / "new" / "grid.svg")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "grid.svg").read_text().lstrip().startswith("<?xml")


def test_a_count_below_one_is_refused(dsreg_cache: Path, dsreg_register) -> None:
    dsreg_register(builder("image"))
    res = CliRunner().invoke(cli, ["preview", "gen-image", "-n", "0"])
    assert res.exit_code == 2
    assert res.output == "error: Invalid value for '-n': 0 is not in the range x>=1. (`dsreg preview -h` lists the options)\n"
