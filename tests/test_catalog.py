"""dsreg catalog --html DIR: a card per dataset, escaped, offline, searchable; checked in headless Chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli.catalog import catalog_cmd

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it)"
)


class Shades(dsreg.Builder):
    """A tiny image dataset, generated (no files): prepared in the test's own cache in well under a second."""

    name = "shades"
    version = "1.2.0"
    description = "Tiny generated images in three shades of grey."
    license = "CC0-1.0"
    homepage = "https://example.org/shades"
    citation = "@misc{shades, title={Shades & Greys}}"
    task = "image-classification"
    features = {"image": dsreg.Tensor((1, 8, 8), "uint8"), "label": dsreg.ClassLabel(("dark", "mid", "light"))}
    splits = ("train", "test")
    train_defaults = {"epochs": 3, "batch_size": 16}

    def generate(self, split, files, **config):
        import numpy as np

        for i in range(12 if split == "train" else 6):
            yield str(i), {"image": np.full((1, 8, 8), 40 + 90 * (i % 3), dtype=np.uint8), "label": i % 3}


class Words(dsreg.Builder):
    """Never prepared here: its one file points at a port nothing listens on, so a download would fail."""

    name = "words"
    description = "Sentences to classify <script>alert('owned')</script> by mood."
    license = "MIT & <b>friends</b>"
    homepage = "javascript:alert(1)"
    citation = "Someone <someone@example.org>, 2026."
    task = "text-classification"
    features = {"text": dsreg.Text(), "label": dsreg.ClassLabel(("sad", "glad"))}
    splits = ("train",)
    files = (dsreg.File("words.csv", size=10, sha256="0" * 64, urls=("http://127.0.0.1:9/words.csv",)),)

    def generate(self, split, files, **config):
        yield "0", {"text": "never read", "label": 0}


@pytest.fixture
def registry(dsreg_cache: Path, dsreg_register):
    """shades (prepared), words (not prepared), a model for images and a plugin that failed to load."""
    registry = dsreg_register(Shades, Words)
    registry.add_model(registry.plugin("tests"), "tiny-cnn", lambda info, sample: None, tasks=("image-classification",))
    registry.plugin("broken", "dsreg-broken", "0.1").errors.append("import failed: ModuleNotFoundError: No module named 'nope'")
    dsreg.fetch("shades", quiet=True)
    return registry


def write_site(folder: Path, *args: str) -> str:
    result = CliRunner().invoke(catalog_cmd, ["--html", str(folder), *args])
    assert result.exit_code == 0, result.output
    return result.output


def cards(page: str) -> dict[str, str]:
    """Return ``{dataset name: the card's opening tag}`` (its attributes say whether it is hidden)."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<article class="card" id="([^"]+)"[^>]*>', page)}


def test_the_site_has_a_card_per_dataset_with_what_a_user_needs(registry, tmp_path: Path) -> None:
    site = tmp_path / "site"
    out = write_site(site)
    assert out == f"wrote {site / 'index.html'} (2 datasets, 1 picture, 1 plugin failure listed)\n"
    page = (site / "index.html").read_text()
    assert list(cards(page)) == ["shades", "words"]
    card = page[page.index('id="shades"') : page.index('id="words"')]
    for shown in (
        "1.2.0",
        "image-classification",
        "Tiny generated images in three shades",
        "CC0-1.0",
        '<a href="https://example.org/shades"',
        "Shades &amp; Greys",
        "<code>image</code>: ",
        "12 examples",
        "6 examples",
        '<code class="model">tiny-cnn</code>',
        "epochs <code>3</code>",
        "batch_size <code>16</code>",
        '<img src="previews/shades.png"',
    ):
        assert shown in card, shown
    picture = (site / "previews" / "shades.png").read_bytes()
    assert picture[:8] == b"\x89PNG\r\n\x1a\n" and len(picture) > 2000
    words = page[page.index('id="words"') :]
    assert "not prepared — <code>dsreg fetch words</code>" in words
    assert "not prepared (<code>dsreg fetch words --split train</code>)" in words
    assert "no model registered for this task" in words
    # The plugin that failed to load is named at the top, with its error.
    assert "1 plugin failed to load" in page and "broken (dsreg-broken 0.1): import failed: ModuleNotFoundError" in page
    # Offline: every file the page loads sits next to it.
    assert sorted(p.name for p in site.iterdir()) == ["index.html", "previews", "search.js", "style.css"]
    loaded = re.findall(r'<(?:script|img|link)\b[^>]*\b(?:src|href)="([^"]+)"', page)
    assert loaded and all("//" not in url and not url.startswith("/") for url in loaded), loaded


def test_text_is_escaped_and_only_http_homepages_are_links(registry, tmp_path: Path) -> None:
    write_site(tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page
    assert "MIT &amp; &lt;b&gt;friends&lt;/b&gt;" in page
    assert "Someone &lt;someone@example.org&gt;" in page
    assert 'href="javascript:' not in page and "javascript:alert(1)" in page  # shown as text, not a link


def test_nothing_is_downloaded_unless_asked(registry, dsreg_cache: Path, tmp_path: Path) -> None:
    write_site(tmp_path / "site")
    assert dsreg.info("words").ready_splits == ()
    assert not (dsreg_cache / "downloads").exists() or not any((dsreg_cache / "downloads").iterdir())


def test_fetch_prepares_what_is_not_prepared(registry, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Words, "files", ())  # a generated dataset now, so --fetch can prepare it
    write_site(tmp_path / "site", "--fetch", "words")
    page = (tmp_path / "site" / "index.html").read_text()
    assert list(cards(page)) == ["words"] and '<img src="previews/words.png"' in page
    assert dsreg.info("words").cached


def test_a_failed_fetch_is_told_on_the_card_and_in_the_exit_status(registry, tmp_path: Path) -> None:
    result = CliRunner().invoke(catalog_cmd, ["--html", str(tmp_path / "site"), "--fetch"])
    assert result.exit_code == 1
    assert "words: fetch failed: " in result.output
    page = (tmp_path / "site" / "index.html").read_text()
    assert '<p class="error">fetch failed: ' in page and "not prepared — <code>dsreg fetch words</code>" in page
    assert '<img src="previews/shades.png"' in page  # the other cards are whole


class Broken(Shades):
    name = "broken-files"

    def get_files(self):
        raise RuntimeError("the plugin's bug")


class Undrawable(Shades):
    name = "pairs"
    features = {"pair": dsreg.Tensor((2,), "int64"), "label": dsreg.ClassLabel(("odd", "even"))}

    def generate(self, split, files, **config):
        for i in range(4):
            yield str(i), {"pair": [i, i + 1], "label": i % 2}


def test_a_broken_dataset_or_picture_costs_its_own_card_only(dsreg_cache: Path, dsreg_register, tmp_path: Path) -> None:
    dsreg_register(Shades, Broken, Undrawable)
    dsreg.fetch("shades", quiet=True)
    dsreg.fetch("pairs", quiet=True)
    result = CliRunner().invoke(catalog_cmd, ["--html", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert "broken-files: RuntimeError: the plugin's bug" in result.output
    assert "pairs: no picture: cannot draw columns pair" in result.output
    page = (tmp_path / "site" / "index.html").read_text()
    assert list(cards(page)) == ["broken-files", "pairs", "shades"]
    assert '<div class="missing"><p class="error">RuntimeError: the plugin&#x27;s bug</p></div>' in page
    assert '<p class="error">no picture: cannot draw columns pair' in page and "4 examples" in page
    assert '<img src="previews/shades.png"' in page


def test_an_unknown_name_fails_before_anything_is_written(registry, tmp_path: Path) -> None:
    result = CliRunner().invoke(catalog_cmd, ["--html", str(tmp_path / "site"), "shade"])
    assert result.exit_code != 0 and "did you mean shades" in str(result.exception)
    assert not (tmp_path / "site").exists()


# -- in a real browser ------------------------------------------------------------------------------
def chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once (its own profile folder, no sandbox: tests may run as root)."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@needs_chromium
def test_chromium_shows_the_cards_and_the_search_filters_them(registry, tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site(site)
    url = (site / "index.html").as_uri()
    everything = chromium("--dump-dom", url, tmp_path=tmp_path).stdout
    assert {name: "hidden" in tag for name, tag in cards(everything).items()} == {"shades": False, "words": False}
    assert '<output id="shown" for="search">2 of 2 datasets</output>' in everything
    # The search reads ?q= and keeps cards whose name, description or task hold every word.
    for query, visible in (("mood", {"words"}), ("IMAGE classification", {"shades"}), ("zebra", set())):
        dom = chromium("--dump-dom", f"{url}?q={query}", tmp_path=tmp_path).stdout
        assert {name for name, tag in cards(dom).items() if "hidden" not in tag} == visible, query
        assert f"{len(visible)} of 2 datasets</output>" in dom
        assert ('<p id="none" class="empty" hidden="">' in dom) == bool(visible)


@needs_chromium
def test_chromium_takes_a_screenshot_of_the_page(registry, tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site(site)
    shot = tmp_path / "catalog.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,900", (site / "index.html").as_uri(), tmp_path=tmp_path)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1280, 900)
    assert len(data) > 20_000  # a blank or error page compresses to a few KiB
    from PIL import Image

    with Image.open(shot) as im:
        colours = im.convert("RGB").resize((64, 45)).getcolors(64 * 45)
    assert colours is not None and len(colours) > 20  # text, cards and the picture, not one flat colour
