"""``dsreg preview NAME``: a picture of a few examples per class, drawn from what the columns hold.

The kind of picture follows the decoded examples, never the plugin: a column of ``[C, H, W]``
images (C = 1, 3 or 4) gives an image grid, one row per class; a 1-D float column is a waveform,
drawn with its log-mel spectrogram (computed here with ``torch.stft``); a 2-D float column (e.g.
precomputed log-mel frames) is drawn as a heat map; a string column gives a table, printed to the
terminal and drawn into the PNG. Examples are picked per class with a seeded generator, so the
same command draws the same picture. Needs matplotlib (``pip install 'dsreg[preview]'``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..features import Text, label_column
from .app import CONTEXT

__all__ = ["Preview", "preview", "preview_cmd", "log_mel", "check_output"]

MAX_CLASSES = 16  # rows beyond this make the picture unreadable; the rest are counted in the title


@dataclass
class Preview:
    """What was drawn: the kind of picture, the PNG, the examples' indices and a text table."""

    kind: str  # "image", "audio", "matrix" or "text"
    path: Path | None
    column: str
    indices: dict[str, list[int]] = field(default_factory=dict)  # class name -> example indices
    table: str = ""


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("dsreg preview draws with matplotlib: pip install 'dsreg[preview]' (or matplotlib)") from None
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _formats() -> list[str]:
    """The file extensions matplotlib can write (``png``, ``pdf``, ``svg``, ...)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ConfigError("dsreg preview draws with matplotlib: pip install 'dsreg[preview]' (or matplotlib)") from None
    return sorted(FigureCanvasBase.get_supported_filetypes())


def check_output(output: str | os.PathLike[str]) -> Path:
    """Return ``output`` as a Path once it is sure a picture can be written there, before any work starts."""
    path = Path(output).expanduser()
    formats = _formats()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        given = f"'.{suffix}' is not a picture format" if suffix else "it has no extension"
        raise ConfigError(
            f"cannot write a picture to {path}: {given}; end the name in .png (or {', '.join('.' + f for f in formats if f != 'png')})"
        )
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; name a file in it, e.g. {path / 'preview.png'}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # savefig makes the missing folders
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: {folder} is a file, not a folder; pick another path")
    # Try it: permissions, read-only filesystems and ACLs all answer the same way, even for root.
    probe = folder / f".dsreg-preview-{os.getpid()}.probe"
    try:
        if path.exists():
            with open(path, "ab"):
                pass
        else:
            probe.touch(exist_ok=False)
            probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror}); pick a path in a folder you can write") from None
    return path


def _labels(ds: Any, column: str) -> Any:
    """Return the label of every example of ``ds`` as a numpy array, read from the store (no decoding)."""
    import numpy as np

    from ..store.storage import open_split

    pieces = []
    for file, start, stop in ds.parts:
        col = open_split(ds.folder / file).column(column)
        pieces.append(np.asarray(col.slice(start, stop - start).to_numpy()))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def _pick(ds: Any, per_class: int, seed: int) -> tuple[str | None, dict[str, list[int]]]:
    """Return the label column and ``{class name: [index, ...]}`` with up to ``per_class`` each."""
    import numpy as np

    label = label_column(ds.features)
    rng = np.random.default_rng(seed)
    if label is None:
        take = sorted(rng.permutation(len(ds))[: per_class * 4].tolist())
        return None, {"examples": take}
    names = ds.features[label].classes
    labels = _labels(ds, label)
    chosen: dict[str, list[int]] = {}
    for c, cname in enumerate(names):
        where = np.flatnonzero(labels == c)
        if len(where):
            chosen[cname] = sorted(rng.choice(where, size=min(per_class, len(where)), replace=False).tolist())
    return label, chosen


def _kind(example: dict[str, Any], label: str | None, features: dict[str, Any]) -> tuple[str, str]:
    """Return ``(kind, column)`` from the first decoded example."""
    import torch

    candidates = [(k, v) for k, v in example.items() if k != label]
    for k, v in candidates:
        if isinstance(v, torch.Tensor) and v.dim() == 3 and v.shape[0] in (1, 3, 4):
            return "image", k
    for k, v in candidates:
        if isinstance(v, torch.Tensor) and v.dim() == 1 and v.is_floating_point() and len(v) > 1:
            return "audio", k
    for k, v in candidates:
        if isinstance(v, torch.Tensor) and v.dim() == 2 and v.is_floating_point():
            return "matrix", k
    for k, v in candidates:
        if isinstance(v, str) or features.get(k) == Text():
            return "text", k
    raise ConfigError(
        f"cannot draw columns {', '.join(k for k, _ in candidates)}: preview knows [C, H, W] images, "
        "1-D float waveforms, 2-D float features and text"
    )


def log_mel(wave: Any, sample_rate: int, n_mels: int = 64, n_fft: int = 512, hop: int | None = None) -> Any:
    """Return the log-mel power spectrogram (dB, ``[n_mels, frames]``) of a 1-D float tensor.

    Hann window, power spectrum, triangular filters evenly spaced on the HTK mel scale
    (2595 log10(1 + f/700)) from 0 Hz to Nyquist, 10 log10(power + 1e-10).
    """
    import torch

    wave = wave.float()
    n_fft = min(n_fft, max(16, 2 ** int(math.log2(max(len(wave), 16)))))
    hop = hop or n_fft // 4
    spec = torch.stft(wave, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs() ** 2
    mel = lambda f: 2595 * torch.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(torch.linspace(0, float(mel(torch.tensor(sample_rate / 2))), n_mels + 2))
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bank = torch.clamp(torch.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)), min=0)
    return 10 * torch.log10(bank @ spec + 1e-10)


def _sample_rate(ds: Any, example: dict[str, Any]) -> int | None:
    for source in (example, getattr(ds.builder, "params", {})):
        value = source.get("sample_rate") if isinstance(source, dict) else None
        if value is not None:
            return int(value.item() if hasattr(value, "item") else value)
    return None


def _title(ds: Any, kind: str, per_class: int, shown: int, total: int) -> str:
    extra = f" (first {shown} of {total} classes)" if shown < total else ""
    return f"{ds.info.name} · {ds.split} · {len(ds):,} examples · {per_class} per class{extra}"


def _draw_images(ds: Any, column: str, chosen: dict[str, list[int]], per_class: int, title: str) -> Any:
    rows, cols = len(chosen), max(len(v) for v in chosen.values())
    fig = _figure(1.3 * cols + 1.4, 1.3 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    shapes = set()
    for r, (cname, idx) in enumerate(chosen.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c >= len(idx):
                continue
            img = ds[idx[c]][column]
            shapes.add(tuple(img.shape))
            arr = img.numpy().transpose(1, 2, 0)
            if img.is_floating_point():  # floats: stretched to 0–1 per picture; uint8 keeps 0–255
                arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-12)
            if arr.shape[2] == 1:
                ax.imshow(arr[:, :, 0], cmap="gray", vmin=0, vmax=1 if img.is_floating_point() else 255, interpolation="nearest")
            else:
                ax.imshow(arr, interpolation="nearest")
            ax.set_xlabel(f"#{idx[c]}", fontsize=7, color="0.4")
        axes[r][0].set_ylabel(cname, rotation=0, ha="right", va="center", fontsize=10, fontweight="bold")
    shape = " × ".join(map(str, next(iter(shapes)))) if len(shapes) == 1 else "mixed sizes"
    fig.suptitle(f"{title}\nimage column '{column}': {shape}", fontsize=10)
    return fig


def _draw_audio(ds: Any, column: str, chosen: dict[str, list[int]], title: str) -> Any:
    import numpy as np

    items = [(cname, i) for cname, idx in chosen.items() for i in idx]
    fig = _figure(11, 1.6 * len(items) + 0.7)
    axes = fig.subplots(len(items), 2, squeeze=False, width_ratios=[1, 1.2])
    mels = []
    for cname, i in items:
        ex = ds[i]
        wave = ex[column].float()
        rate = _sample_rate(ds, ex)
        mels.append((cname, i, wave, rate, log_mel(wave, rate or 16000)))
    top = max(float(m.max()) for *_, m in mels)  # one colour scale for every spectrogram: 80 dB range
    peak = max(float(w.abs().max()) for _, _, w, _, _ in mels) or 1.0
    for row, (cname, i, wave, rate, mel) in enumerate(mels):
        wax, sax = axes[row]
        t = np.arange(len(wave)) / rate if rate else np.arange(len(wave))
        wax.plot(t, wave.numpy(), linewidth=0.5, color="tab:blue")
        wax.set_ylim(-peak * 1.05, peak * 1.05)
        wax.set_xlim(t[0], t[-1] if len(t) > 1 else 1)
        wax.set_ylabel(cname, rotation=0, ha="right", va="center", fontsize=10, fontweight="bold")
        duration = f"{len(wave) / rate:.2f} s" if rate else f"{len(wave):,} samples"
        wax.set_title(f"#{i} waveform ({duration})", fontsize=8, loc="left")
        end = len(wave) / rate if rate else mel.shape[1]
        im = sax.imshow(mel.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top, extent=(0, end, 0, mel.shape[0]))
        sax.set_title(f"log-mel ({mel.shape[0]} bands{'' if rate else ', 16 kHz assumed'})", fontsize=8, loc="left")
        sax.set_yticks([])
    wax.set_xlabel("seconds" if mels[-1][3] else "samples")
    sax.set_xlabel("seconds" if mels[-1][3] else "frames")
    fig.colorbar(im, ax=axes[:, 1].tolist(), label="dB", shrink=0.8)
    fig.suptitle(f"{title}\nwaveform column '{column}'", fontsize=10)
    return fig


def _draw_matrix(ds: Any, column: str, chosen: dict[str, list[int]], title: str) -> Any:
    rows, cols = len(chosen), max(len(v) for v in chosen.values())
    mats = {(r, c): ds[i][column].float() for r, idx in enumerate(chosen.values()) for c, i in enumerate(idx)}
    lo = min(float(m.min()) for m in mats.values())
    hi = max(float(m.max()) for m in mats.values())
    fig = _figure(2.4 * cols + 1.6, 1.5 * rows + 0.7)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, (cname, idx) in enumerate(chosen.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if (r, c) in mats:
                m = mats[(r, c)]
                # Time usually runs along the longer axis: put it left to right.
                arr = m.numpy().T if m.shape[0] > m.shape[1] else m.numpy()
                im = ax.imshow(arr, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi)
                ax.set_xlabel(f"#{idx[c]} {tuple(m.shape)}", fontsize=7, color="0.4")
        axes[r][0].set_ylabel(cname, rotation=0, ha="right", va="center", fontsize=10, fontweight="bold")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(f"{title}\n2-D column '{column}' (one colour scale)", fontsize=10)
    return fig


def _text_rows(ds: Any, column: str, chosen: dict[str, list[int]], width: int) -> list[tuple[str, str, str]]:
    rows = []
    for cname, idx in chosen.items():
        for i in idx:
            text = " ".join(str(ds[i][column]).split())
            rows.append((cname, str(i), text if len(text) <= width else text[: width - 1] + "…"))
    return rows


def _table(rows: list[tuple[str, str, str]], column: str) -> str:
    head = ("CLASS", "#", column.upper())
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    return "\n".join(lines)


def _draw_text(rows: list[tuple[str, str, str]], column: str, title: str) -> Any:
    fig = _figure(11, 0.27 * len(rows) + 0.6)
    ax = fig.add_subplot()
    ax.axis("off")
    colours: dict[str, str] = {}
    palette = ["#e8f0fe", "#fef3e0", "#e6f4ea", "#fce8e6", "#f3e8fd", "#e0f7fa"]
    for cname, _, _ in rows:
        colours.setdefault(cname, palette[len(colours) % len(palette)])
    table = ax.table(
        cellText=[list(r) for r in rows],
        colLabels=["class", "#", column],
        loc="upper center",
        cellLoc="left",
        colLoc="left",
        colWidths=[0.14, 0.06, 0.80],
        cellColours=[[colours[r[0]]] * 3 for r in rows],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.25)
    for (row, _), cell in table.get_celld().items():
        cell.PAD = 0.015  # the default pads by a tenth of the column: too much for the wide text column
        if row == 0:
            cell.set_text_props(fontweight="bold")
    fig.suptitle(title, fontsize=10)
    return fig


def preview(
    name: str, split: str | None = None, *, n: int = 4, output: str | os.PathLike[str] | None = None, seed: int = 0, **config: Any
) -> Preview:
    """Draw ``n`` examples per class of ``name``'s ``split`` into the PNG ``output`` (None: no file)."""
    from .. import api

    if output is not None:
        output = check_output(output)
    datasets = api.load(name, **config) if split is None else None
    ds = next(iter(datasets.values())) if datasets is not None else api.load(name, split=split, **config)
    if len(ds) == 0:
        raise ConfigError(f"{name}:{ds.split} has no examples to preview; pick another split with --split")
    label, chosen = _pick(ds, max(1, n), seed)
    total = len(chosen)
    chosen = dict(list(chosen.items())[:MAX_CLASSES])
    first = ds[next(iter(chosen.values()))[0]]
    kind, column = _kind(first, label, ds.features)
    title = _title(ds, kind, n, len(chosen), total)
    result = Preview(kind, Path(output) if output is not None else None, column, chosen)
    if kind == "text":
        rows = _text_rows(ds, column, chosen, 100)
        result.table = _table(rows, column)
        fig = _draw_text(rows, column, title) if output is not None else None
    elif kind == "image":
        fig = _draw_images(ds, column, chosen, n, title) if output is not None else None
    elif kind == "audio":
        fig = _draw_audio(ds, column, chosen, title) if output is not None else None
    else:
        fig = _draw_matrix(ds, column, chosen, title) if output is not None else None
    if fig is not None and result.path is not None:
        result.path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(result.path)
    return result


def _output_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else str(check_output(value))
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command("preview", context_settings=CONTEXT)
@click.argument("name")
@click.option("--split", default=None, help="Split (or split expression) to draw from (default: the first).")
@click.option("-n", "per_class", type=click.IntRange(min=1), default=4, show_default=True, help="Examples per class.")
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="FILE.png",
    callback=_output_option,
    help="Where to write the picture (default: NAME-SPLIT.png); .pdf, .svg, .jpg also work.",
)
@click.option("-c", "--config", "config", multiple=True, metavar="KEY=VALUE", help="Dataset config (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the example picker.")
def preview_cmd(name: str, split: str | None, per_class: int, output: str | None, config: tuple[str, ...], seed: int) -> None:
    """Draw a few examples per class: an image grid, waveforms with log-mel spectrograms, or a text table."""
    from .app import parse_config

    target = output or f"{name}-{(split or 'preview').replace('[', '_').replace(']', '').replace(':', '-').replace('%', 'pct')}.png"
    result = preview(name, split, n=per_class, output=target, seed=seed, **parse_config(config))
    if result.table:
        click.echo(result.table)
    shown = sum(len(v) for v in result.indices.values())
    click.echo(f"wrote {result.path} ({result.kind} preview of column '{result.column}': {shown} examples, {len(result.indices)} classes)")
