"""The notMNIST recipe offline: letters A–J from vetted fonts, each glyph stretched to fill 28×28.

Where the fonts come from (``candidates()``): the operating system's font folders and the font
Pillow embeds (Aileron Regular, CC0, in every Pillow >= 10.1 built with FreeType). Never a Python
package's private font folder (matplotlib's, for one): installing an optional package must not
change the data. A font is used only if it really draws A–J as ten letters (``check()``):

1. its character map covers A–J in a Unicode subtable (a symbol-encoded font does not count);
2. each of the ten glyphs has ink and is not a filled block;
3. the ten glyphs are pairwise distinct (a placeholder-box font draws one shape for all);
4. at least ``RECOGNISED`` of the ten have their letter's topology (``SHAPES``: one piece; A and D
   enclose one hole, B two, the rest none), so brackets, arrows or pictures under the letters'
   code points are refused too. (Nearest-template matching against Aileron's letters was tried
   first and dropped: it failed serif and italic text faces as often as symbol fonts.)

Fonts are identified by the sha256 of their bytes, so two paths to one file count once and the
prepared store's id follows the fonts' content. The checks need Pillow only (no numpy): they run
when a notmnist-synth config id is computed, which ``dsreg list`` does. So that this costs a few
stats and not a few hundred milliseconds each time, what was learned is remembered in
``<cache root>/plugins/notmnist/fonts.json`` (``Memo``): each file's sha256 by its path and stat,
each face's verdict and name by its sha256, under a stamp of this module's code and the Pillow and
FreeType versions. A file whose stat changed is hashed again, content not seen before is checked
again; a memo that cannot be read or written is ignored.

``Renderer.render`` draws one 28×28 white-on-black image: the glyph drawn at ``RENDER_SIZE``
pixels, thickened or thinned, sometimes slanted, warped or hollow, cropped to its ink, resized to
fill the whole box on both axes and softened — what the real notMNIST images measure (see the
plugin README, which also gives the synth→real accuracy each choice was kept for).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsreg.errors import ConfigError

__all__ = [
    "LETTERS",
    "FONT_DIRS",
    "BUILTIN",
    "RECOGNISED",
    "SHAPES",
    "Font",
    "Rejected",
    "candidates",
    "check",
    "vet",
    "find_fonts",
    "fonts_fingerprint",
    "cmap_covers",
    "glyph_problem",
    "topology",
    "stretch",
    "Renderer",
    "NoFontError",
    "Memo",
]

LETTERS = "ABCDEFGHIJ"
#: System font folders (missing ones are ignored). No Python package's folder, on purpose.
FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "~/Library/Fonts",
    os.path.join(os.environ.get("WINDIR", r"C:\Windows"), "Fonts") if sys.platform == "win32" else "",
)
_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
#: The source name of the font Pillow embeds; also accepted in the ``fonts`` config list.
BUILTIN = "pillow:default"
#: How many of the ten glyphs must have their letter's topology for a font to be used. Text faces
#: score 10 (DejaVu's 22 faces, Aileron; matplotlib's STIX and Computer Modern text faces), the
#: calligraphic cmsy10 9; the delimiter font cmex10 scores 4, the placeholder LastResortHE 0.
RECOGNISED = 8
RENDER_SIZE = 64  # glyphs are drawn large and scaled down, so edges are anti-aliased like the real set
_CHECK_SIZE = 20  # side of the stretched glyphs the distinctness check compares
#: Least mean absolute difference (0..255) between two stretched letters of one font: real faces
#: measure 12.5 or more (E and F are the closest pair), a placeholder font 0.
_MIN_DIFFERENCE = 10.0


class NoFontError(ConfigError):
    """No usable font was found (the message says what to install)."""


@dataclass(frozen=True)
class Font:
    """One font face: where it is read from, the sha256 of its file's bytes, and its name."""

    source: str  # a file path, or BUILTIN
    sha256: str
    index: int = 0  # face index in a font collection (.ttc/.otc)
    name: str = ""  # family and style, e.g. "DejaVu Sans Bold"

    @property
    def file(self) -> str:
        """The file name (or BUILTIN), with the face index for collections."""
        base = self.source if self.source == BUILTIN else os.path.basename(self.source)
        return f"{base}#{self.index}" if self.source.lower().endswith((".ttc", ".otc")) else base

    def data(self) -> bytes:
        """Return the font file's bytes."""
        if self.source == BUILTIN:
            return _builtin_bytes()
        with open(self.source, "rb") as fh:
            return fh.read()

    def load(self, size: int) -> Any:
        """Return a Pillow FreeTypeFont of this face at ``size`` pixels."""
        from PIL import ImageFont

        if self.source == BUILTIN:
            return ImageFont.load_default(size)
        return ImageFont.truetype(self.source, size, index=self.index)

    def record(self) -> dict[str, str]:
        """What the manifest notes say about this font."""
        return {"name": self.name, "file": self.file, "sha256": self.sha256}


@dataclass(frozen=True)
class Rejected:
    """A font that was found but is not used, and why."""

    font: Font
    reason: str

    def record(self) -> dict[str, str]:
        return {"file": self.font.file, "sha256": self.font.sha256, "reason": self.reason}


# -- finding fonts -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _builtin_bytes() -> bytes:
    """The bytes of the font ``ImageFont.load_default(size)`` embeds (Pillow >= 10.1 with FreeType)."""
    from PIL import ImageFont, features

    if not features.check("freetype2"):
        raise NoFontError(
            "notmnist-synth: this Pillow has no FreeType support; reinstall Pillow from its wheels (pip install --force-reinstall Pillow)"
        )
    font = ImageFont.load_default(RENDER_SIZE)
    data = getattr(font, "font_bytes", None)
    if not isinstance(font, ImageFont.FreeTypeFont) or not data:
        raise NoFontError("notmnist-synth: this Pillow has no scalable built-in font; install Pillow >= 10.1 (pip install -U Pillow)")
    return bytes(data)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _faces(path: str) -> int:
    """Return how many faces a font file holds (a TrueType collection names its count)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:4] == b"ttcf" and len(head) == 12:
        return struct.unpack(">I", head[8:12])[0]
    return 1


def _system_files(dirs: Iterable[str]) -> list[str]:
    found: set[str] = set()
    for folder in dirs:
        root = Path(folder).expanduser() if folder else None
        if root is None or not root.is_dir():
            continue
        for dirpath, _dirs, names in os.walk(root, followlinks=False):
            for name in names:
                if name.lower().endswith(_SUFFIXES):
                    path = os.path.realpath(os.path.join(dirpath, name))
                    if os.path.isfile(path):
                        found.add(path)
    return sorted(found)


def candidates(sources: Sequence[str] | None = None, memo: Memo | None = None) -> tuple[Font, ...]:
    """Return the font faces of ``sources`` (files, or BUILTIN), or of the system folders and BUILTIN.

    Faces with the same bytes count once (the first path in sorted order is kept); the result is
    sorted by sha256 and face index, so it does not depend on folder order or install paths.
    """
    paths = [*_system_files(FONT_DIRS), BUILTIN] if sources is None else list(sources)
    own = memo is None
    memo = Memo.open() if memo is None else memo
    seen: dict[tuple[str, int], Font] = {}
    for source in paths:
        try:
            digest, faces = memo.digest(source)
        except (OSError, NoFontError):
            if sources is not None:
                raise
            continue
        for index in range(faces):
            seen.setdefault((digest, index), Font(source, digest, index))
    if own:
        memo.save()
    return tuple(seen[key] for key in sorted(seen))


# -- checking a font ---------------------------------------------------------------------------
_UNICODE_SUBTABLES = {(0, e) for e in range(7)} | {(3, 1), (3, 10)}


def _sfnt_offset(data: bytes, index: int) -> int:
    if data[:4] == b"ttcf":
        count = struct.unpack_from(">I", data, 8)[0]
        if index >= count:
            raise ValueError(f"face {index} of a {count}-face collection")
        return struct.unpack_from(">I", data, 12 + 4 * index)[0]
    return 0


def _cmap_lookup(data: bytes, at: int, codes: Sequence[int]) -> list[int]:
    """Return the glyph id of each code in the cmap subtable at ``at`` (0: not mapped)."""
    fmt = struct.unpack_from(">H", data, at)[0]
    if fmt == 4:
        seg2 = struct.unpack_from(">H", data, at + 6)[0]
        ends, starts, deltas, ranges = (at + 14, at + 16 + seg2, at + 16 + 2 * seg2, at + 16 + 3 * seg2)
        out = []
        for code in codes:
            gid = 0
            for i in range(0, seg2, 2):
                if struct.unpack_from(">H", data, ends + i)[0] >= code:
                    start = struct.unpack_from(">H", data, starts + i)[0]
                    if start <= code:
                        delta = struct.unpack_from(">H", data, deltas + i)[0]
                        offset = struct.unpack_from(">H", data, ranges + i)[0]
                        if offset == 0:
                            gid = (code + delta) & 0xFFFF
                        else:
                            gid = struct.unpack_from(">H", data, ranges + i + offset + 2 * (code - start))[0]
                            gid = (gid + delta) & 0xFFFF if gid else 0
                    break
            out.append(gid)
        return out
    if fmt in (12, 13):
        groups = struct.unpack_from(">I", data, at + 12)[0]
        out = []
        for code in codes:
            gid = 0
            for g in range(groups):
                start, end, first = struct.unpack_from(">III", data, at + 16 + 12 * g)
                if start <= code <= end:
                    gid = first if fmt == 13 else first + code - start
                    break
            out.append(gid)
        return out
    if fmt == 6:
        first, count = struct.unpack_from(">HH", data, at + 6)
        return [struct.unpack_from(">H", data, at + 10 + 2 * (c - first))[0] if first <= c < first + count else 0 for c in codes]
    if fmt == 0:
        return [data[at + 6 + c] if c < 256 else 0 for c in codes]
    return [0] * len(codes)


def cmap_covers(data: bytes, text: str = LETTERS, index: int = 0) -> bool:
    """True if the font's character map maps every character of ``text`` in a Unicode subtable.

    Reads the sfnt ``cmap`` table directly (formats 0, 4, 6, 12, 13), so a font whose letters sit
    only in a symbol (3, 0) or Macintosh subtable does not count, whatever FreeType would make of it.
    """
    try:
        base = _sfnt_offset(data, index)
        tables = struct.unpack_from(">H", data, base + 4)[0]
        cmap = None
        for t in range(tables):
            tag, _check, offset, _length = struct.unpack_from(">4sIII", data, base + 12 + 16 * t)
            if tag == b"cmap":
                cmap = offset
        if cmap is None:
            return False
        codes = [ord(c) for c in text]
        for s in range(struct.unpack_from(">H", data, cmap + 2)[0]):
            platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * s)
            if (platform, encoding) in _UNICODE_SUBTABLES and all(_cmap_lookup(data, cmap + offset, codes)):
                return True
    except (struct.error, IndexError, ValueError):
        return False
    return False


_CROP = bytes(255 if v >= 48 else 0 for v in range(256))  # the faintest edge pixels do not widen the box
RESAMPLE = 4  # PIL.Image.Resampling.BOX: each output pixel averages the glyph pixels it covers


def stretch(glyph: Any, side: int) -> Any:
    """Crop a white-on-black 'L' image to its ink and resize it to ``side``×``side`` (None if blank)."""

    box = glyph.point(_CROP).getbbox()
    if box is None:
        return None
    return glyph.crop(box).resize((side, side), RESAMPLE)


def _draw(font: Any, letter: str, stroke: int = 0) -> Any:
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(letter, stroke_width=stroke)
    pad = 2 + stroke
    canvas = Image.new("L", (max(1, right - left) + 2 * pad, max(1, bottom - top) + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), letter, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    return canvas


def _difference(a: Any, b: Any) -> float:
    from PIL import ImageChops, ImageStat

    return float(ImageStat.Stat(ImageChops.difference(a, b)).mean[0])


_INK = bytes(0 if v < 128 else 1 for v in range(256))  # threshold table: ink is >= 128
_RUN = {1: re.compile(b"\x01+"), 0: re.compile(b"\x00+")}


def _regions(rows: Sequence[bytes], value: int, diagonal: bool) -> int:
    """Count the connected regions of pixels equal to ``value`` (0/1) in a binary image given by rows.

    Works on runs (one union-find node per horizontal run), so a 64-pixel glyph costs a few hundred
    steps; ``diagonal`` joins runs that touch only at a corner (8-connectivity).
    """
    parent: list[int] = []

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    above: list[tuple[int, int, int]] = []
    reach = 1 if diagonal else 0
    for row in rows:
        here = []
        for match in _RUN[value].finditer(row):
            node = len(parent)
            parent.append(node)
            start, end = match.start(), match.end()  # end is exclusive
            for a_start, a_end, a_node in above:
                if a_start < end + reach and start < a_end + reach:
                    parent[root(a_node)] = root(node)
            here.append((start, end, node))
        above = here
    return sum(1 for i in range(len(parent)) if root(i) == i)


def topology(glyph: Any) -> tuple[int, int]:
    """Return ``(pieces, holes)`` of a white-on-black glyph: its ink's connected parts and enclosed gaps.

    Ink is pixels >= 128, 8-connected; holes are the 4-connected background regions that the
    border cannot reach (the usual pairing, under which the two counts agree).
    """
    width, height = glyph.size
    data = glyph.tobytes().translate(_INK)
    blank = bytes(width + 2)
    rows = [blank, *(b"\0" + data[y * width : (y + 1) * width] + b"\0" for y in range(height)), blank]
    return _regions(rows, 1, diagonal=True), _regions(rows, 0, diagonal=False) - 1


#: (pieces, holes) of the capital Latin letters A–J as almost every text face draws them.
SHAPES = ((1, 1), (1, 2), (1, 0), (1, 1), (1, 0), (1, 0), (1, 0), (1, 0), (1, 0), (1, 0))


def glyph_problem(glyphs: Sequence[Any]) -> str | None:
    """Return why ten drawn glyphs (white-on-black 'L' images of A..J) are not ten letters, or None.

    Checks: every glyph has ink and is not a filled block; the ten are pairwise distinct once
    stretched to a common box; and at least ``RECOGNISED`` of them have their letter's topology
    (``SHAPES``: one piece; A and D enclose one hole, B two, the others none). A placeholder box
    encloses one hole under every code point, a bracket none, so neither passes for A–J.
    """
    from PIL import ImageStat

    if len(glyphs) != len(LETTERS):
        raise ValueError(f"expected {len(LETTERS)} glyphs, got {len(glyphs)}")
    fitted = []
    for letter, glyph in zip(LETTERS, glyphs):
        box = glyph.getbbox()
        if box is None or min(box[2] - box[0], box[3] - box[1]) < 2:
            return f"draws nothing for {letter}"
        if letter != "I" and ImageStat.Stat(glyph.crop(box)).mean[0] > 0.97 * 255:
            return f"draws a filled block for {letter}"  # (a sans-serif I may well be a solid bar)
        fitted.append(stretch(glyph, _CHECK_SIZE))
    for i in range(len(fitted)):
        for j in range(i + 1, len(fitted)):
            if _difference(fitted[i], fitted[j]) < _MIN_DIFFERENCE:
                return f"draws {LETTERS[i]} and {LETTERS[j]} alike"
    shapes = [topology(glyph) for glyph in glyphs]
    wrong = [f"{letter} {shape[0]} piece(s) {shape[1]} hole(s)" for letter, shape, want in zip(LETTERS, shapes, SHAPES) if shape != want]
    if len(LETTERS) - len(wrong) < RECOGNISED:
        return f"its glyphs are not shaped like the letters ({', '.join(wrong)})"
    return None


def check(font: Font) -> str | None:
    """Return why ``font`` cannot stand for the letters A–J, or None if it can."""
    try:
        data = font.data()
    except (OSError, NoFontError) as exc:
        return f"unreadable: {exc}"
    if not cmap_covers(data, LETTERS, font.index):
        return "its character map has no Unicode entries for all of A-J"
    try:
        face = font.load(RENDER_SIZE)
        glyphs = [_draw(face, letter) for letter in LETTERS]
    except (OSError, ValueError) as exc:
        return f"Pillow cannot draw it: {exc}"
    return glyph_problem(glyphs)


@functools.lru_cache(maxsize=64)
def _vet_one(font: Font) -> tuple[Font, str | None]:
    problem = check(font)
    if problem is not None:
        return font, problem
    family, style = font.load(RENDER_SIZE).getname()
    return Font(font.source, font.sha256, font.index, f"{family} {style}".strip()), None


def vet(fonts: Iterable[Font], memo: Memo | None = None) -> tuple[tuple[Font, ...], tuple[Rejected, ...]]:
    """Split ``fonts`` into the usable ones (named) and the rejected ones (with reasons)."""
    own = memo is None
    memo = Memo.open() if memo is None else memo
    used, rejected = [], []
    for font in fonts:
        named, problem = memo.verdict(font)
        if problem is None:
            used.append(named)
        else:
            rejected.append(Rejected(font, problem))
    if own:
        memo.save()
    return tuple(used), tuple(rejected)


def find_fonts(sources: Sequence[str] | None = None) -> tuple[Font, ...]:
    """Return the usable fonts of ``sources`` (default: the system folders and Pillow's font).

    Raise NoFontError, saying what to install, when none is usable.
    """
    memo = Memo.open()
    try:
        used, rejected = vet(candidates(None if sources is None else tuple(sources), memo), memo)
    finally:
        memo.save()
    if not used:
        why = "; ".join(f"{r.font.file}: {r.reason}" for r in rejected[:3]) or "none found"
        raise NoFontError(
            "notmnist-synth: no font draws the letters A-J "
            f"({why}); install one (e.g. apt-get install fonts-dejavu-core) or Pillow >= 10.1 with FreeType"
        )
    return used


def fonts_fingerprint(fonts: Sequence[Font]) -> str:
    """Return a digest of the fonts' content hashes, Pillow's and FreeType's versions: what decides the pixels."""
    import PIL

    digest = hashlib.sha256(f"Pillow {PIL.__version__}; FreeType {_freetype_version()}\n".encode())
    for font in fonts:
        digest.update(f"{font.sha256}#{font.index}\n".encode())
    return digest.hexdigest()[:16]


def _freetype_version() -> str | None:
    """``PIL.features.version("freetype2")`` without importing PIL.Image (20 ms of ``dsreg list``)."""
    try:
        from PIL import _imagingft
    except ImportError:
        return None
    return str(_imagingft.freetype2_version)


# -- remembering what was learned ----------------------------------------------------------------
#: A file changed less than this long ago could change again within one tick of the file system's
#: clock without its stat showing it (git's "racy clean" case): its hash is not remembered yet.
SETTLE_NS = 2_000_000_000


def _stat_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _stat_path(source: str) -> str:
    """The file whose stat stands for ``source``'s bytes: Pillow embeds its font in ImageFont.py."""
    if source != BUILTIN:
        return source
    import PIL

    return os.path.join(os.path.dirname(PIL.__file__), "ImageFont.py")


def _read_digest(source: str) -> tuple[str, int]:
    """Read ``source`` (a font file or BUILTIN): the sha256 of its bytes and its face count."""
    if source == BUILTIN:
        return hashlib.sha256(_builtin_bytes()).hexdigest(), 1
    return _sha256(source), _faces(source)


def _stamp() -> str:
    """What the memo's verdicts depend on besides the fonts' bytes: this module's code, Pillow, FreeType."""
    import PIL

    digest = hashlib.sha256(f"Pillow {PIL.__version__}; FreeType {_freetype_version()}\n".encode())
    try:  # any edit here (a check, a threshold, RENDER_SIZE) makes every verdict be made again
        digest.update(Path(__file__).read_bytes())
    except OSError:
        digest.update(b"unreadable source")
    return digest.hexdigest()


class Memo:
    """What earlier runs learned about fonts, kept in the dsreg cache so ``dsreg list`` stays fast.

    ``files`` maps a font file's path to its stat (size, mtime_ns, ctime_ns, inode, device), sha256
    and face count: a file whose stat differs is read and hashed again. ``verdicts`` maps
    ``sha256#face`` to the check's outcome (the problem, or None) and the face's name; content is
    all they depend on, under ``stamp``. A memo that is missing, unreadable, damaged or from another
    stamp is empty; one that cannot be written is not written. Neither is ever an error.
    """

    def __init__(self, path: Path | None, stamp: str, data: Any = None) -> None:
        self.path, self.stamp, self.changed = path, stamp, False
        ok = isinstance(data, dict) and data.get("stamp") == stamp
        files, verdicts = (data.get("files"), data.get("verdicts")) if ok else (None, None)
        self.files: dict[str, Any] = files if isinstance(files, dict) else {}
        self.verdicts: dict[str, Any] = verdicts if isinstance(verdicts, dict) else {}

    @classmethod
    def open(cls) -> Memo:
        """Read the memo of the current cache root (``DSREG_CACHE`` or the user cache dir)."""
        import json

        from dsreg.fetching.cache import default_root

        stamp = _stamp()
        try:
            path = default_root() / "plugins" / "notmnist" / "fonts.json"
        except (OSError, RuntimeError):  # no cache root to be found (no home folder): simply no memo
            return cls(None, stamp)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):  # absent, unreadable or damaged: start afresh
            data = None
        return cls(path, stamp, data)

    def digest(self, source: str) -> tuple[str, int]:
        """Return the sha256 and face count of ``source`` (a font file or BUILTIN), hashing only on a miss."""
        path = _stat_path(source)
        try:
            before = _stat_key(path)
        except OSError:
            if source == BUILTIN:  # no ImageFont.py to stat (a zipped Pillow): hash every time
                return _read_digest(source)
            raise
        known = self.files.get(source)
        if (
            isinstance(known, dict)
            and known.get("stat") == before
            and isinstance(known.get("sha256"), str)
            and type(known.get("faces")) is int
        ):
            return known["sha256"], known["faces"]
        digest, faces = _read_digest(source)
        try:
            after = _stat_key(path)
        except OSError:
            return digest, faces
        if after == before and time.time_ns() - max(after[1], after[2]) >= SETTLE_NS:
            self.files[source] = {"stat": after, "sha256": digest, "faces": faces}
            self.changed = True
        return digest, faces

    def verdict(self, font: Font) -> tuple[Font, str | None]:
        """Return ``font`` named and None if it passes the checks, or ``font`` and why not; check only on a miss."""
        key = f"{font.sha256}#{font.index}"
        known = self.verdicts.get(key)
        if isinstance(known, dict) and isinstance(known.get("name"), str) and isinstance(known.get("problem"), (str, type(None))):
            if known["problem"] is not None:
                return font, known["problem"]
            return Font(font.source, font.sha256, font.index, known["name"]), None
        named, problem = _vet_one(font)
        if problem is None or not problem.startswith("unreadable"):  # a read error may pass; a verdict stands
            self.verdicts[key] = {"problem": problem, "name": named.name}
            self.changed = True
        return named, problem

    def save(self) -> None:
        """Write the memo if it learned something (atomically); forget files that are gone."""
        if not self.changed or self.path is None:
            return
        from dsreg.fetching.cache import write_json_atomic

        self.files = {p: v for p, v in self.files.items() if p == BUILTIN or os.path.exists(p)}
        kept = {v.get("sha256") for v in self.files.values() if isinstance(v, dict)}
        self.verdicts = {k: v for k, v in self.verdicts.items() if k.partition("#")[0] in kept}
        try:
            write_json_atomic(self.path, {"stamp": self.stamp, "files": self.files, "verdicts": self.verdicts})
        except (OSError, TypeError, ValueError):  # a read-only or full cache: the next run learns again
            return
        self.changed = False


# -- rendering ---------------------------------------------------------------------------------
class Renderer:
    """Draw letters A–J from a list of fonts (``Font``s, or file paths), with seeded variation."""

    def __init__(self, fonts: Sequence[Font | str]) -> None:
        self.fonts: list[tuple[Font, Any]] = []
        for font in fonts:
            if isinstance(font, str):
                font = candidates([font])[0]
            self.fonts.append((font, font.load(RENDER_SIZE)))
        if not self.fonts:
            raise NoFontError("notmnist-synth: Renderer needs at least one font")

    #: Stroke widths (pixels at RENDER_SIZE) drawn with equal chance: mostly the face's own weight.
    STROKES: tuple[int, ...] = (0, 0, 0, 0, 0, 1, 2)
    SLANT = 0.5  # chance of an extra slant (italic, oblique), shear drawn from SHEAR
    SHEAR = (-0.1, 0.4)
    HOLLOW = 0.05  # chance of an outline face (where the strokes are thick enough to hollow)
    THIN = 0.2  # chance of a lighter face: strokes eroded by a pixel (where half the ink survives it)
    WARP = 0.2  # each corner of the glyph's box moves by up to this share of its size: other proportions
    BLUR = (0.2, 0.6)  # range of the Gaussian blur radius (pixels of the 28×28 image): the real edges are soft

    def render(self, letter: str, font_index: int, rng: Any) -> Any:
        """Return one 28×28 uint8 numpy array: ``letter`` in font ``font_index``, varied by ``rng``."""
        import numpy as np
        from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat

        font = self.fonts[font_index % len(self.fonts)][1]
        glyph = _draw(font, letter, rng.choice(self.STROKES))
        if rng.random() < self.THIN:
            thinner = glyph.filter(ImageFilter.MinFilter(3))
            if ImageStat.Stat(thinner).sum[0] >= 0.5 * ImageStat.Stat(glyph).sum[0]:
                glyph = thinner  # (a hairline face would lose most of its ink: it stays as it is)
        if self.WARP:
            # A margin as wide as the largest inward move keeps the whole letter inside the quad
            # (stretch() crops the margin off again); QUAD maps the output box's corners (NW, SW,
            # SE, NE) to these input points, so the letter's proportions change, never its parts.
            px, py = int(self.WARP * glyph.width) + 1, int(self.WARP * glyph.height) + 1
            glyph = ImageOps.expand(glyph, border=(px, py), fill=0)
            w, h = glyph.size
            j = [rng.uniform(-1.0, 1.0) for _ in range(8)]
            quad = (px * j[0], py * j[1], px * j[2], h + py * j[3], w + px * j[4], h + py * j[5], w + px * j[6], py * j[7])
            glyph = glyph.transform((w, h), Image.Transform.QUAD, quad, resample=Image.Resampling.BILINEAR, fillcolor=0)
        if rng.random() < self.SLANT:  # slant (italic / oblique), mostly to the right
            shear = rng.uniform(*self.SHEAR)
            w, h = glyph.size
            extra = int(abs(shear) * h) + 1
            glyph = glyph.transform(
                (w + extra, h),
                Image.Transform.AFFINE,
                (1, shear, -extra if shear > 0 else 0, 0, 1, 0),
                resample=Image.Resampling.BILINEAR,
                fillcolor=0,
            )
        if rng.random() < self.HOLLOW:
            inner = glyph.filter(ImageFilter.MinFilter(7))
            if inner.getbbox() is not None:
                glyph = ImageChops.subtract(glyph, inner)
        image = stretch(glyph, 28)
        if image is None:
            return np.zeros((28, 28), dtype=np.uint8)
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*self.BLUR)))
        return np.asarray(image, dtype=np.uint8)
