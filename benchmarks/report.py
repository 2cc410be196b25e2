"""Turn a run's rows into ratios against the targets, a Markdown table and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def _find(rows: list[Row], section: str, **match: Any) -> Row | None:
    for r in rows:
        if r["section"] == section and all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def _by_prefix(rows: list[Row], section: str, prefix: str) -> Row | None:
    return next((r for r in rows if r["section"] == section and r["name"].startswith(prefix)), None)


def targets(rows: list[Row]) -> list[dict[str, Any]]:
    """Compute each target's ratio from rows of this run (None where a section did not run)."""
    out = []

    def add(name: str, value: float | None, goal: str, ok: bool | None) -> None:
        out.append({"target": name, "value": value, "goal": goal, "met": ok})

    udacity = _by_prefix(rows, "prepare", "Udacity")
    for label in ("file://", "loopback HTTP"):
        mine = _by_prefix(rows, "prepare", f"dsreg fetch from {label}")
        if udacity and mine:
            ratio = mine["value"] / udacity["value"]
            add(f"prepare ({label}) vs Udacity path", ratio, ">= 5x", ratio >= 5)
    folder2 = _find(rows, "epoch", kind="imagefolder", workers=2)
    for workers in (0, 2):
        mine = _find(rows, "epoch", kind="dsreg", workers=workers)
        if folder2 and mine and workers == 2:
            ratio = mine["value"] / folder2["value"]
            add("epoch: dsreg workers=2 vs ImageFolder-style workers=2", ratio, ">= 150x", ratio >= 150)
        limit = _find(rows, "epoch", kind="limit")
        if limit and mine:
            ratio = mine["value"] / limit["value"]
            add(f"epoch: dsreg workers={workers} vs the in-RAM limit", ratio, ">= 0.5x", ratio >= 0.5)
    listing = _by_prefix(rows, "startup", "dsreg list")
    if listing:
        add("`dsreg list` median wall time (s)", listing["value"], "<= 0.3 s", listing["value"] <= 0.3)
    hand = _by_prefix(rows, "trainer", "hand-written")
    fit = _by_prefix(rows, "trainer", "dsreg.train")
    if hand and fit:
        ratio = fit["value"] / hand["value"]
        add("Trainer epoch vs hand-written loop", ratio, "<= 1.1x", ratio <= 1.1)
    for r in rows:  # benchmarks.default_models: one row per bundled sample's default model
        if r["section"] == "trainer" and "ratio" in r:
            add(f"{r['name']} vs hand-written loop", r["ratio"], "<= 1.1x", r["ratio"] <= 1.1)
    probe = _by_prefix(rows, "memory", "dsreg load")
    if probe:
        over = probe["value"] - probe["prepared_mib"]
        add("peak RSS minus prepared train bytes (MiB)", over, "<= 300 MiB", over <= 300)
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Run {result['date']} on {result['machine']['description']} (`{result['command']}`).",
        "",
        "| section | measurement | median | runs | note |",
        "|---|---|---:|---:|---|",
    ]
    for r in result["rows"]:
        value = f"{r['value']:,.0f}" if r["value"] >= 100 else f"{r['value']:.3f}"
        lines.append(f"| {r['section']} | {r['name']} | {value} {r['unit']} | {r['runs']} | {r['note']} |")
    lines += ["", "| target | this run | goal | met |", "|---|---:|---|---|"]
    for t in result["targets"]:
        value = "-" if t["value"] is None else (f"{t['value']:,.1f}" if abs(t["value"]) >= 10 else f"{t['value']:.2f}")
        lines.append(f"| {t['target']} | {value} | {t['goal']} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


CHARTED = ("prepare", "epoch")


def chart(result: dict[str, Any], path: Path) -> bool:
    """Draw bars of throughput (log scale) for the prepare and epoch sections, dsreg highlighted.

    Return False, drawing nothing, when the run measured neither section (e.g. ``--sections startup``).
    """
    sections = [s for s in CHARTED if any(r["section"] == s for r in result["rows"])]
    if not sections:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(sections), 1, figsize=(11, 2.2 + 0.55 * len(result["rows"])), squeeze=False)
    for ax, section in zip(axes[:, 0], sections):
        rows = [r for r in result["rows"] if r["section"] == section]
        names = [r["name"] for r in rows][::-1]
        values = [r["value"] for r in rows][::-1]
        colors = ["#d9480f" if n.startswith("dsreg") else "#868e96" for n in names]
        bars = ax.barh(names, values, color=colors)
        ax.set_xscale("log")
        ax.set_xlabel("images / second (log scale, higher is better)")
        ax.set_title(f"{section}: median of each measurement", loc="left", fontweight="bold")
        for bar, value in zip(bars, values):
            ax.text(value * 1.05, bar.get_y() + bar.get_height() / 2, f"{value:,.0f}", va="center", fontsize=9)
        ax.set_xlim(right=max(values) * 8)
    fig.suptitle(f"dsreg benchmarks — {result['machine']['description']}, {result['date']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(result: dict[str, Any], folder: Path, stem: str) -> dict[str, Path]:
    """Write the run as JSON, a Markdown table and (when it has throughput rows) a PNG chart; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / f"{stem}.json", "md": folder / f"{stem}.md"}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    paths["md"].write_text(markdown(result))
    if chart(result, folder / f"{stem}.png"):
        paths["png"] = folder / f"{stem}.png"
    return paths
