"""dsreg preview: the picture follows what the columns hold (images, waveforms, 2-D features, text)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import dsreg
from dsreg.cli import cli
from dsreg.preview import log_mel, preview

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

        def generate(self, split, files, sample_rate):
            import numpy as np

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
def test_preview_draws_each_kind(dsreg_cache: Path, register, tmp_path: Path, kind: str) -> None:
    register(builder(kind))
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


def test_cli_prints_the_text_table_and_writes_the_png(dsreg_cache: Path, register, tmp_path: Path) -> None:
    register(builder("text"))
    out = tmp_path / "t.png"
    res = CliRunner().invoke(cli, ["preview", "gen-text", "-n", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["CLASS", "#", "X"]
    assert [line.split()[0] for line in lines[1:4]] == list(CLASSES)
    assert f"wrote {out} (text preview of column 'x': 3 examples, 3 classes)" in res.output
    assert out.exists()


def test_preview_of_an_unknown_split_says_which_exist(dsreg_cache: Path, register, tmp_path: Path) -> None:
    register(builder("image"))
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
        "print('matplotlib' in sys.modules, 'dsreg.preview' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"
