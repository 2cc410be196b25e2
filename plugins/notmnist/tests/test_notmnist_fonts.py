"""notmnist-synth's fonts: only faces that draw A–J as ten letters, the same set whatever Python packages
are installed, recorded with their content hashes, and part of the prepared store's id."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import dsreg
from dsreg_notmnist import NotMNISTSynth, synth
from dsreg_notmnist.synth import BUILTIN, LETTERS, NoFontError

from notmnistdata import column

SMALL = {"train_size": 40, "test_size": 20}
# Every test gets an empty cache of its own: the font memo lives there, never in the user's cache.
pytestmark = pytest.mark.usefixtures("dsreg_cache")


# -- tiny fonts and glyphs built here ------------------------------------------------------------
def sfnt_with_cmap(platform: int, encoding: int, text: str = LETTERS, fmt: int = 4) -> bytes:
    """A minimal sfnt holding only a cmap table: one subtable (format 4 or 12) mapping ``text`` to glyphs 1..n."""
    codes = sorted(ord(c) for c in text)
    if fmt == 4:  # one segment per code, then the required 0xFFFF end segment
        ends, starts = codes + [0xFFFF], codes + [0xFFFF]
        deltas = [(i + 1 - c) & 0xFFFF for i, c in enumerate(codes)] + [1]
        seg = len(ends)
        body = struct.pack(f">{seg}H", *ends) + b"\0\0" + struct.pack(f">{seg}H", *starts)
        body += struct.pack(f">{seg}H", *deltas) + struct.pack(f">{seg}H", *([0] * seg))
        sub = struct.pack(">HHHHHHH", 4, 14 + len(body), 0, 2 * seg, 0, 0, 0) + body
    else:
        groups = b"".join(struct.pack(">III", c, c, i + 1) for i, c in enumerate(codes))
        sub = struct.pack(">HHIII", 12, 0, 16 + len(groups), 0, len(codes)) + groups
    cmap = struct.pack(">HHHHI", 0, 1, platform, encoding, 12) + sub
    return struct.pack(">IHHHH", 0x00010000, 1, 0, 0, 0) + struct.pack(">4sIII", b"cmap", 0, 28, len(cmap)) + cmap


def drawn(shape: str, size: int = 48) -> Image.Image:
    """One white-on-black glyph made of plain shapes: a box outline, a filled block, an arc or nothing."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    if shape == "box":
        draw.rectangle((4, 4, size - 5, size - 5), outline=255, width=4)
    elif shape == "block":
        draw.rectangle((4, 4, size - 5, size - 5), fill=255)
    elif shape.startswith("arc"):  # an open arc turned by 36° times the number after the name
        turn = 36 * int(shape[len("arc") :])
        draw.arc((4, 4, size - 5, size - 5), turn, turn + 230, fill=255, width=4)
    return image


def letters(path_or_builtin: str) -> list[Image.Image]:
    font = synth.candidates([path_or_builtin])[0].load(synth.RENDER_SIZE)
    return [synth._draw(font, letter) for letter in LETTERS]


def plain_family() -> Path:
    """A system font that must pass (DejaVu Sans, or whichever the first usable system font is)."""
    for font in synth.find_fonts():
        if font.source != BUILTIN:
            return Path(font.source)
    pytest.skip("no system font on this machine")


# -- the filter ---------------------------------------------------------------------------------
def test_the_character_map_must_cover_a_to_j_in_a_unicode_subtable() -> None:
    assert synth.cmap_covers(sfnt_with_cmap(3, 1))  # Windows Unicode BMP
    assert synth.cmap_covers(sfnt_with_cmap(0, 3, fmt=12))  # Unicode, format 12
    assert not synth.cmap_covers(sfnt_with_cmap(3, 0))  # the same letters in a symbol subtable
    assert not synth.cmap_covers(sfnt_with_cmap(3, 1, text="ABCDEFGHI"))  # no J
    assert not synth.cmap_covers(b"not a font at all")
    assert synth.cmap_covers(synth._builtin_bytes())  # Pillow's own font


def test_real_letters_pass_and_boxes_blocks_and_brackets_do_not() -> None:
    assert synth.glyph_problem(letters(BUILTIN)) is None
    assert synth.glyph_problem(letters(str(plain_family()))) is None
    # A placeholder font draws one box for every letter.
    assert synth.glyph_problem([drawn("box")] * 10) == "draws A and B alike"
    # Ten different open arcs (like a delimiter font's): distinct, but without the holes of A, B and D.
    problem = synth.glyph_problem([drawn(f"arc{i}") for i in range(10)])
    assert problem is not None and problem.startswith("its glyphs are not shaped like the letters (A 1 piece(s) 0 hole(s), B ")
    glyphs = letters(BUILTIN)
    assert synth.glyph_problem(glyphs[:2] + [drawn("")] + glyphs[3:]) == "draws nothing for C"
    assert synth.glyph_problem([drawn("block")] + glyphs[1:]) == "draws a filled block for A"


def test_topology_counts_pieces_and_holes() -> None:
    assert [synth.topology(g) for g in letters(BUILTIN)] == list(synth.SHAPES)
    assert synth.topology(drawn("box")) == (1, 1)
    assert synth.topology(drawn("block")) == (1, 0)
    two = Image.new("L", (20, 10), 0)
    two.paste(255, (1, 1, 5, 5))
    two.paste(255, (5, 5, 9, 9))  # touches the first square only at a corner: one piece (8-connected)
    assert synth.topology(two) == (1, 0)


def test_a_font_with_a_symbol_map_or_no_letters_is_rejected(tmp_path: Path) -> None:
    symbol = tmp_path / "symbol.ttf"
    symbol.write_bytes(sfnt_with_cmap(3, 0))
    used, rejected = synth.vet(synth.candidates([str(symbol), BUILTIN]))
    assert [f.name for f in used] == ["Aileron Regular"]
    assert [(r.font.file, r.reason) for r in rejected] == [("symbol.ttf", "its character map has no Unicode entries for all of A-J")]


MPL_FONTS = ("LastResortHE-Regular.ttf", "cmex10.ttf")


def test_matplotlibs_placeholder_and_delimiter_fonts_are_rejected() -> None:
    spec = importlib.util.find_spec("matplotlib")
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" if spec and spec.origin else None
    if folder is None or not all((folder / name).exists() for name in MPL_FONTS):
        pytest.skip("matplotlib's fonts are not installed")
    for name in MPL_FONTS:
        used, rejected = synth.vet(synth.candidates([str(folder / name)]))
        assert not used and rejected, name


# -- where fonts come from ----------------------------------------------------------------------
PROBE = """
import importlib.util, json, sys
if sys.argv[1] == "blocked":
    sys.modules["matplotlib"] = None  # import matplotlib now fails, as if it were not installed
from dsreg_notmnist import NotMNISTSynth
from dsreg_notmnist.synth import find_fonts
spec = importlib.util.find_spec("matplotlib") if sys.argv[1] != "blocked" else None
print(json.dumps({"fonts": [f.record() for f in find_fonts()], "config_id": NotMNISTSynth().config_id,
                  "matplotlib": spec.origin if spec else None}))
"""


def test_the_font_set_and_config_id_do_not_depend_on_matplotlib(tmp_path: Path) -> None:
    # A stand-in matplotlib whose font folder holds a font no system folder has (a DejaVu copy with
    # extra bytes, so its sha256 differs): the old search would have used it.
    fake = tmp_path / "site" / "matplotlib"
    ttf = fake / "mpl-data" / "fonts" / "ttf"
    ttf.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (ttf / "Extra.ttf").write_bytes(plain_family().read_bytes() + b"\0" * 4)
    assert synth.check(synth.candidates([str(ttf / "Extra.ttf")])[0]) is None  # a usable font indeed

    def probe(mode: str) -> dict:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *sys.path])}
        out = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    installed, blocked = probe("installed"), probe("blocked")
    assert installed["matplotlib"] == str(fake / "__init__.py") and blocked["matplotlib"] is None
    assert installed["fonts"] == blocked["fonts"] and installed["config_id"] == blocked["config_id"]
    assert "Extra.ttf" not in {f["file"] for f in installed["fonts"]}


def test_the_config_id_follows_the_fonts_content_not_their_order(tmp_path: Path) -> None:
    one, two = str(plain_family()), BUILTIN
    ids = {order: NotMNISTSynth(fonts=list(order)).config_id for order in ((one, two), (two, one))}
    assert len(set(ids.values())) == 1
    assert NotMNISTSynth(fonts=[one]).config_id != NotMNISTSynth(fonts=[two]).config_id
    copy = tmp_path / "copy.ttf"
    shutil.copyfile(one, copy)
    before = NotMNISTSynth(fonts=[str(copy)]).fingerprint()
    assert before == NotMNISTSynth(fonts=[one]).fingerprint()  # same bytes, same fingerprint
    synth._vet_one.cache_clear()
    copy.write_bytes(copy.read_bytes() + b"\0")  # other bytes: another prepared store
    assert NotMNISTSynth(fonts=[str(copy)]).fingerprint() != before


def test_no_usable_font_is_one_line_saying_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "FONT_DIRS", (str(tmp_path),))
    (tmp_path / "symbol.ttf").write_bytes(sfnt_with_cmap(3, 0))

    def no_builtin() -> bytes:
        raise NoFontError("notmnist-synth: this Pillow has no FreeType support")

    monkeypatch.setattr(synth, "_builtin_bytes", no_builtin)
    synth._vet_one.cache_clear()
    with pytest.raises(
        NoFontError, match=r"no font draws the letters A-J \(symbol.ttf: its character map .*apt-get install fonts-dejavu-core"
    ) as err:
        synth.find_fonts()
    assert "\n" not in str(err.value) and isinstance(err.value, dsreg.ConfigError)
    assert NotMNISTSynth().fingerprint() == "no-usable-font"  # dsreg list keeps working
    with pytest.raises(dsreg.ConfigError, match="fonts must be a non-empty list"):
        NotMNISTSynth(fonts=[])


# -- what the dataset records -------------------------------------------------------------------
def test_the_manifest_and_dsreg_info_name_every_font_with_its_sha256(dsreg_cache: Path) -> None:
    from click.testing import CliRunner

    from dsreg.cli import cli

    ds = dsreg.load("notmnist-synth", split="train", **SMALL)
    notes = ds.info.manifest["notes"]
    used = synth.find_fonts()
    assert notes["fonts"] == [f.record() for f in used] and len(used) >= 2
    builtin = next(f for f in notes["fonts"] if f["file"] == BUILTIN)
    assert builtin["name"] == "Aileron Regular" and builtin["sha256"] == hashlib.sha256(synth._builtin_bytes()).hexdigest()
    for font in used:
        if font.source != BUILTIN:
            assert hashlib.sha256(Path(font.source).read_bytes()).hexdigest() == font.sha256
    assert isinstance(notes["fonts_rejected"], list) and notes["renderer"].startswith("Pillow ")
    out = CliRunner().invoke(cli, ["info", "notmnist-synth", "-c", "train_size=40", "-c", "test_size=20"]).output
    assert "fonts:" in out and used[0].sha256[:12] in out
    assert len(column(ds, "label")) == 40


def test_glyphs_are_stretched_to_the_whole_box_as_in_notmnist(dsreg_cache: Path) -> None:
    fonts = [BUILTIN, str(plain_family())]
    ds = dsreg.load("notmnist-synth", split="train", fonts=fonts, train_size=40, test_size=10, normalize=False)
    images = column(ds, "image")
    assert images.shape == (40, 1, 28, 28)
    # Ink (> 32, as the README's statistics count it) on each of the four edges: the real t10k
    # images have it on all four in 93.8 % of cases, on at least three in 98.8 %.
    edges = [images[:, 0, 0, :], images[:, 0, 27, :], images[:, 0, :, 0], images[:, 0, :, 27]]
    assert all((edge.max(axis=1) > 32).mean() > 0.95 for edge in edges)


# -- the memo: what a second run need not do again ------------------------------------------------
MEMO_PROBE = """
import json, sys
from dsreg_notmnist import NotMNISTSynth, synth
if sys.argv[1] == "no-work":  # the second run may neither hash, count faces, nor check a font
    def refuse(*args, **kwargs):
        raise AssertionError("the memo should have answered")
    synth._sha256 = synth._faces = synth._builtin_bytes = synth.check = refuse
print(json.dumps({"fonts": [f.record() for f in synth.find_fonts()], "config_id": NotMNISTSynth().config_id}))
"""


def memo_file() -> Path:
    path = synth.Memo.open().path
    assert path is not None
    return path


def test_a_second_run_takes_the_fonts_from_the_memo(dsreg_cache: Path) -> None:
    def probe(mode: str) -> dict:
        out = subprocess.run([sys.executable, "-c", MEMO_PROBE, mode], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    first = probe("first")
    assert memo_file().is_relative_to(dsreg_cache)
    memo = json.loads(memo_file().read_text())
    assert {f["sha256"] for f in first["fonts"]} <= {key.partition("#")[0] for key, v in memo["verdicts"].items() if v["problem"] is None}
    assert probe("no-work") == first  # same fonts, names, hashes and config id, without reading a font
    synth._vet_one.cache_clear()
    assert [f.record() for f in synth.find_fonts()] == first["fonts"]


def test_a_changed_font_file_is_hashed_and_checked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "SETTLE_NS", 0)  # remember the files made here at once
    calls: list[str] = []  # the fonts checked (by sha256) and the files hashed (by path)
    check, sha256 = synth.check, synth._sha256
    monkeypatch.setattr(synth, "check", lambda font: calls.append(font.sha256) or check(font))
    monkeypatch.setattr(synth, "_sha256", lambda path: calls.append(path) or sha256(path))
    synth._vet_one.cache_clear()
    system = [f for f in synth.find_fonts() if f.source != BUILTIN]
    if len(system) < 2:
        pytest.skip("needs two usable system fonts")
    font = tmp_path / "fonts" / "Mine.ttf"
    font.parent.mkdir()
    shutil.copyfile(system[0].source, font)

    def ident() -> tuple[str, list[dict[str, str]]]:
        return NotMNISTSynth(fonts=[str(font)]).config_id, [f.record() for f in synth.find_fonts([str(font)])]

    first = ident()
    assert first[1] == [{**system[0].record(), "file": "Mine.ttf"}]
    assert json.loads(memo_file().read_text())["files"][str(font)]["sha256"] == system[0].sha256
    calls.clear()
    assert ident() == first and calls == []  # remembered: nothing checked again

    # Another font under the same name (a new file moved into place): another hash, name and id.
    shutil.copyfile(system[1].source, tmp_path / "new.ttf")
    os.replace(tmp_path / "new.ttf", font)
    calls.clear()
    second = ident()
    assert second[1] == [{**system[1].record(), "file": "Mine.ttf"}] and second[0] != first[0]
    assert calls == [str(font)]  # hashed again; the verdict on those bytes was already known

    # The same size and modification time, other bytes (as `cp -p` or a careful tool leaves it):
    # the inode's change time still differs, so the file is read again.
    data = bytearray(font.read_bytes())
    data[-1] ^= 1
    st = font.stat()
    font.write_bytes(bytes(data))
    os.utime(font, ns=(st.st_atime_ns, st.st_mtime_ns))
    calls.clear()
    third = ident()
    assert third[0] not in (first[0], second[0]) and calls == [str(font), hashlib.sha256(data).hexdigest()]
    assert json.loads(memo_file().read_text())["files"][str(font)]["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "damage", [b"{not json", b"[1, 2]", b'{"stamp": "other", "files": {}, "verdicts": {}}', b"\xff\xfe", "broken entries"]
)
def test_a_damaged_or_foreign_memo_is_ignored(damage: bytes | str) -> None:
    expected = [f.record() for f in synth.find_fonts()]
    config_id = NotMNISTSynth().config_id
    memo = memo_file()
    if damage == "broken entries":  # the right stamp, entries of the wrong shape
        data = json.loads(memo.read_text())
        data["files"] = {path: {"stat": "x", "sha256": 1} for path in data["files"]}
        data["verdicts"] = {key: {"problem": 3} for key in data["verdicts"]}
        memo.write_text(json.dumps(data))
    else:
        memo.write_bytes(damage)
    synth._vet_one.cache_clear()
    assert [f.record() for f in synth.find_fonts()] == expected and NotMNISTSynth().config_id == config_id
    assert json.loads(memo.read_text())["stamp"] == synth.Memo.open().stamp  # written afresh


def test_a_cache_that_cannot_be_written_only_costs_time(dsreg_cache: Path) -> None:
    dsreg_cache.mkdir(parents=True)
    (dsreg_cache / "plugins").write_text("")  # a file where the memo's folder would go (read-only, even for root)
    synth._vet_one.cache_clear()
    assert synth.find_fonts() and NotMNISTSynth().config_id
    assert not memo_file().exists()
