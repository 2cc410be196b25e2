"""Hostile archives for tests: each function writes one into ``folder`` and returns its path.

Every archive dsreg may be handed by a broken mirror or an attacker, made small and on purpose:
members that escape the target folder (``..``, absolute paths, links, devices, FIFOs, and the same
escapes hidden in a GNU long-name record or a pax ``path`` header), bombs (tar and zip, a few MB
expanding to as much as asked), and damaged files (a gzip cut short, a corrupt deflate block in a
tar.gz or a zip, a bad tar header checksum, corrupt bzip2 and xz data). Each starts with a harmless
member, so a reader that checks late would already have handed something out.

They are plain functions over ``tarfile``, ``zipfile`` and ``gzip``, so a plugin's own tests can
use them too::

    from dsreg.testing import hostile
    path = hostile.tar_bomb(tmp_path, expand_to=200 << 20)
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "dotdot",
    "absolute",
    "symlink",
    "hardlink",
    "device",
    "fifo",
    "gnu_long_name_escape",
    "pax_path_escape",
    "tar_bomb",
    "gzip_bomb",
    "zip_bomb",
    "zip_lying_size",
    "truncated_gzip",
    "corrupt_deflate",
    "corrupt_zip_deflate",
    "bad_header_checksum",
    "corrupt_bz2",
    "corrupt_xz",
    "ESCAPES",
    "DAMAGED",
]

_HARMLESS = ("ok/first.txt", b"a harmless first member\n")


class _Zeros(io.RawIOBase):
    """``size`` zero bytes read in chunks, so a bomb is written without holding its expansion."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]  # RawIOBase's signature is Buffer
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _tar(
    path: Path, members: list[tarfile.TarInfo], mode: str = "w:gz", fmt: int = tarfile.GNU_FORMAT, data: dict[str, bytes] | None = None
) -> Path:
    """Write the harmless member, then ``members`` (regular ones get ``data[name]`` or nothing)."""
    data = data or {}
    with tarfile.open(path, mode, format=fmt) as tar:  # type: ignore[call-overload]  # typeshed types only literal modes
        first = tarfile.TarInfo(_HARMLESS[0])
        first.size = len(_HARMLESS[1])
        tar.addfile(first, io.BytesIO(_HARMLESS[1]))
        for info in members:
            body = data.get(info.name, b"")
            if info.isreg():
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if info.isreg() else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


# -- members that escape the target folder ----------------------------------------------------------
def dotdot(folder: Path) -> Path:
    """A tar.gz whose second member is ``../../evil.txt``."""
    return _tar(Path(folder) / "dotdot.tar.gz", [_info("../../evil.txt")], data={"../../evil.txt": b"pwned"})


def absolute(folder: Path) -> Path:
    """A tar.gz whose second member is ``/tmp/evil.txt``."""
    return _tar(Path(folder) / "absolute.tar.gz", [_info("/tmp/evil.txt")], data={"/tmp/evil.txt": b"pwned"})


def symlink(folder: Path) -> Path:
    """A tar.gz with a symlink ``ok/passwd`` -> ``/etc/passwd``."""
    return _tar(Path(folder) / "symlink.tar.gz", [_info("ok/passwd", tarfile.SYMTYPE, "/etc/passwd")])


def hardlink(folder: Path) -> Path:
    """A tar.gz with a hard link ``ok/shadow`` -> ``/etc/shadow``."""
    return _tar(Path(folder) / "hardlink.tar.gz", [_info("ok/shadow", tarfile.LNKTYPE, "/etc/shadow")])


def device(folder: Path) -> Path:
    """A tar.gz with a character device ``ok/null`` (1, 3)."""
    info = _info("ok/null", tarfile.CHRTYPE)
    info.devmajor, info.devminor = 1, 3
    return _tar(Path(folder) / "device.tar.gz", [info])


def fifo(folder: Path) -> Path:
    """A tar.gz with a FIFO ``ok/pipe``."""
    return _tar(Path(folder) / "fifo.tar.gz", [_info("ok/pipe", tarfile.FIFOTYPE)])


def gnu_long_name_escape(folder: Path) -> Path:
    """A GNU tar.gz whose ``..`` escape is in a long-name (``L``) record: the 100-byte header name looks harmless."""
    name = "ok/" + "d" * 110 + "/../../../evil.txt"
    return _tar(Path(folder) / "gnu-long-name.tar.gz", [_info(name)], fmt=tarfile.GNU_FORMAT, data={name: b"pwned"})


def pax_path_escape(folder: Path) -> Path:
    """A pax tar.gz whose member is ``ok/harmless.txt`` in the header and ``../evil.txt`` in its pax ``path``."""
    info = _info("ok/harmless.txt")
    info.pax_headers = {"path": "../evil.txt"}
    return _tar(Path(folder) / "pax-path.tar.gz", [info], fmt=tarfile.PAX_FORMAT, data={"ok/harmless.txt": b"pwned"})


# -- bombs --------------------------------------------------------------------------------------------
def tar_bomb(folder: Path, expand_to: int = 200 << 20, members: int = 1, codec: str = "gz") -> Path:
    """A tar (``codec`` gz, bz2 or xz) of ``members`` files of zeros that together expand to ``expand_to`` bytes."""
    path = Path(folder) / f"bomb-{expand_to >> 20}M-{members}.tar.{codec}"
    each = expand_to // members
    with tarfile.open(path, f"w:{codec}") as tar:  # type: ignore[call-overload]  # typeshed types only literal modes
        for i in range(members):
            info = tarfile.TarInfo(f"bomb/{i:05d}.bin")
            info.size = each
            tar.addfile(info, _Zeros(each))
    return path


def gzip_bomb(folder: Path, expand_to: int = 200 << 20) -> Path:
    """A single gzip file (not a tar) of ``expand_to`` zero bytes, as a dataset's ``.gz`` data file."""
    path = Path(folder) / f"bomb-{expand_to >> 20}M.gz"
    with gzip.open(path, "wb", compresslevel=9) as fh:
        zeros = _Zeros(expand_to)
        while chunk := zeros.read(1 << 20):
            fh.write(chunk)
    return path


def zip_bomb(folder: Path, expand_to: int = 200 << 20, members: int = 1) -> Path:
    """A zip of ``members`` deflated files of zeros that together expand to ``expand_to`` bytes."""
    path = Path(folder) / f"bomb-{expand_to >> 20}M-{members}.zip"
    each, chunk = expand_to // members, bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i in range(members):
            with zf.open(f"bomb/{i:05d}.bin", "w", force_zip64=each >= 1 << 31) as fh:
                for start in range(0, each, len(chunk)):
                    fh.write(chunk[: min(len(chunk), each - start)])
    return path


def zip_lying_size(folder: Path, expand_to: int = 200 << 20, claim: int = 1000) -> Path:
    """A zip whose one member says it holds ``claim`` bytes (local and central headers) but inflates to ``expand_to``."""
    path = zip_bomb(folder, expand_to, 1)
    raw = bytearray(path.read_bytes())
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, claim)  # local header: uncompressed size
    struct.pack_into("<I", raw, central + 24, claim)  # central directory: uncompressed size
    lying = Path(folder) / "zip-lying-size.zip"
    lying.write_bytes(bytes(raw))
    path.unlink()
    return lying


# -- damaged files --------------------------------------------------------------------------------------
def _tar_bytes(count: int = 40, size: int = 3000) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(count):
            body = bytes((i * 7 + j) % 251 for j in range(size))
            info = tarfile.TarInfo(f"ok/{i:03d}.bin")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def truncated_gzip(folder: Path) -> Path:
    """A tar.gz cut off in the middle of its deflate stream (an interrupted download)."""
    whole = gzip.compress(_tar_bytes(), mtime=0)
    path = Path(folder) / "truncated.tar.gz"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _bad_block(compressed: bytes, at: int) -> bytes:
    """``compressed`` with the deflate block at byte ``at`` given the reserved block type 3 (never valid)."""
    raw = bytearray(compressed)
    raw[at] |= 0b110
    return bytes(raw)


def corrupt_deflate(folder: Path) -> Path:
    """A tar.gz whose first half reads well and whose second half starts with an invalid deflate block.

    It is two gzip members one after the other (valid gzip); the second's first block has the
    reserved type, so zlib fails there with "invalid block type" after some members were read.
    """
    tar = _tar_bytes()
    half = len(tar) // 2 // 512 * 512
    second = gzip.compress(tar[half:], mtime=0)
    path = Path(folder) / "corrupt-deflate.tar.gz"
    path.write_bytes(gzip.compress(tar[:half], mtime=0) + _bad_block(second, 10))  # 10: after the gzip header
    return path


def corrupt_zip_deflate(folder: Path) -> Path:
    """A zip whose second member's deflate data starts with an invalid block."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(*_HARMLESS)
        zf.writestr("ok/second.bin", _tar_bytes(4))
    raw = buf.getvalue()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        info = zf.getinfo("ok/second.bin")
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    path = Path(folder) / "corrupt-deflate.zip"
    path.write_bytes(_bad_block(raw, info.header_offset + 30 + name_len + extra_len))
    return path


def bad_header_checksum(folder: Path) -> Path:
    """A tar.gz whose fifth header's name was changed after its checksum was written."""
    raw = bytearray(_tar_bytes(10, 1000))
    header = 4 * (512 + 1024)  # each member: one header block and two data blocks
    raw[header + 3] ^= 0x20  # "ok/004.bin" -> "ok/\x10..." : the stored checksum no longer matches
    path = Path(folder) / "bad-checksum.tar.gz"
    path.write_bytes(gzip.compress(bytes(raw), mtime=0))
    return path


def _zeroed_middle(compressed: bytes, path: Path) -> Path:
    raw = bytearray(compressed)
    raw[len(raw) // 2 : len(raw) // 2 + 16] = bytes(16)
    path.write_bytes(bytes(raw))
    return path


def corrupt_bz2(folder: Path) -> Path:
    """A tar.bz2 with 16 bytes in the middle of its compressed data zeroed."""
    return _zeroed_middle(bz2.compress(_tar_bytes()), Path(folder) / "corrupt.tar.bz2")


def corrupt_xz(folder: Path) -> Path:
    """A tar.xz with 16 bytes in the middle of its compressed data zeroed."""
    return _zeroed_middle(lzma.compress(_tar_bytes()), Path(folder) / "corrupt.tar.xz")


#: Archives with a member that would land outside the target folder or is not a plain file.
ESCAPES: dict[str, Callable[[Path], Path]] = {
    "dotdot": dotdot,
    "absolute": absolute,
    "symlink": symlink,
    "hardlink": hardlink,
    "device": device,
    "fifo": fifo,
    "gnu-long-name": gnu_long_name_escape,
    "pax-path": pax_path_escape,
}
#: Archives whose bytes are damaged.
DAMAGED: dict[str, Callable[[Path], Path]] = {
    "truncated-gzip": truncated_gzip,
    "corrupt-deflate": corrupt_deflate,
    "corrupt-zip-deflate": corrupt_zip_deflate,
    "bad-header-checksum": bad_header_checksum,
    "corrupt-bz2": corrupt_bz2,
    "corrupt-xz": corrupt_xz,
}
