"""Read archives as streams, never extracting them to disk, and refuse unsafe or oversized members.

``members(path)`` yields ``(member path, bytes)`` for every regular file of a tar (plain, gz, bz2,
xz; read once, front to back) or zip archive. Every member path is checked first: absolute paths,
``..`` components, links and devices raise ArchiveError naming the member. ``members_in_order``
yields named members in a required order, holding early ones in a bounded buffer. ``open_compressed``
opens a single gzip/bz2/xz-compressed (or plain) file.

Reading is bounded, so an archive bomb is refused before it fills memory:

- one member is held in memory at a time, whole, and only up to ``max_member`` bytes (default
  256 MiB); reading it takes twice its size at the peak, three times while the caller still holds
  the previous one (measured: 386 MiB above the baseline for 128 MiB members); a bigger member is
  refused from its declared size, before any of it is decompressed;
- the members together, with their 512-byte tar headers, may expand to ``max_expanded`` bytes
  (default 32 GiB); the archive is refused at the member that would pass it, and the rest is never
  decompressed;
- zip headers can lie, so no more than a zip member's declared size (the size the limits
  checked) is ever decompressed from it, and a member whose data is longer or shorter than
  declared is refused (zipfile's CRC check, our count); tar sizes cannot lie (they say where the
  next header starts);
- a tar header record (GNU long name, pax header) may hold at most 1 MiB.

The limits come from, first to last: the user's ``DSREG_MAX_MEMBER`` / ``DSREG_MAX_EXPANDED`` (or the
config file's ``[archive]`` table), so raising them always lets a genuine archive through; the
arguments of ``members``; the dataset's Builder attributes ``max_member`` / ``max_expanded`` (which
``prepare`` passes on through ``for_dataset``); the defaults here.

Every failure is one ArchiveError line that names the file (and member) and what to do: an unsafe
member, a limit passed, an archive cut short, corrupt compressed data (zlib, bz2, lzma), a bad header.
"""

from __future__ import annotations

import bz2
import contextlib
import contextvars
import gzip
import io
import lzma
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from ..errors import ArchiveError
from . import config

__all__ = [
    "members",
    "members_in_order",
    "for_dataset",
    "open_compressed",
    "check_member_name",
    "detect",
    "DEFAULT_MAX_MEMBER",
    "DEFAULT_MAX_EXPANDED",
    "DEFAULT_MAX_BUFFERED",
]

DEFAULT_MAX_MEMBER = 256 << 20
DEFAULT_MAX_EXPANDED = 32 << 30
#: What ``members_in_order`` may hold of members read before their turn, together (as one member may hold).
DEFAULT_MAX_BUFFERED = 256 << 20
_MAX_RECORD = 1 << 20  # a GNU long name or pax header bigger than this is not a name: refuse it unread
_STEP = 1 << 20  # members up to this are read in one call; bigger ones in steps of it into one buffer

# Magic bytes at offset 0 → format, table-driven like torchvision's archive helpers.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # empty zip
)
_OPENERS: dict[str, Callable[..., Any]] = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}  # each opens binary files here


def detect(path: str | Path) -> str:
    """Return ``tar``, ``zip``, ``gzip``, ``bz2``, ``xz`` (a compressed tar or file) or ``plain``."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "plain"


def check_member_name(name: str, archive: str = "archive") -> str:
    """Return the normalised member path, or raise ArchiveError if it could escape a target folder."""
    if "\\" in name:
        name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to read this archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive}: member {name!r} climbs out with '..'; refusing to read this archive")
    return posixpath.join(*parts) if parts else ""


# -- limits -----------------------------------------------------------------------------------
_dataset: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("dsreg_archive_dataset", default=MappingProxyType({}))


@contextlib.contextmanager
def for_dataset(
    *, max_member: int | str | None = None, max_expanded: int | str | None = None, names: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Within the block, ``members`` applies a dataset's limits and calls each local path by its published name.

    ``prepare`` wraps every dataset in it, passing the Builder's ``max_member`` / ``max_expanded``
    and ``{local path: file name}``, so a message says ``train.tar.gz``, not the sha256 the
    download is stored under.
    """
    token = _dataset.set({"max_member": max_member, "max_expanded": max_expanded, "names": dict(names or {})})
    try:
        yield
    finally:
        _dataset.reset(token)


def _limit(name: str, given: int | str | None, default: int) -> int:
    user = config.archive_limit(name)
    if user is not None:
        return user
    for value in (given, _dataset.get().get(name)):
        if value is not None:
            return config.parse_size(value, name)
    return default


def _size(n: int, exact: bool = False) -> str:
    """``n`` bytes as a value DSREG_MAX_* accepts: rounded up (``300MiB``), or ``exact`` in the largest unit that is."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and not (exact and n % (1 << shift)):
            return f"{-(-n >> shift)}{unit}"
    return f"{n}B"


class _Budget:
    """The bytes an archive may still expand to, and the most one member may hold."""

    __slots__ = ("label", "member", "expanded", "left")

    def __init__(self, label: str, max_member: int, max_expanded: int) -> None:
        self.label, self.member, self.expanded, self.left = label, max_member, max_expanded, max_expanded

    def claim(self, name: str, size: int) -> None:
        """Count ``size`` bytes of member ``name``; refuse (before they are read) if they pass a limit."""
        if size > self.member:
            raise ArchiveError(
                f"{self.label}: member {name!r} expands to {_size(size)}, over the {_size(self.member, exact=True)} "
                f"one member may hold (DSREG_MAX_MEMBER); if the archive is genuine, set "
                f"DSREG_MAX_MEMBER={_size(max(size, self.member + 1))} and fetch again"
            )
        if size > self.left:
            raise self.bomb(name)
        self.left -= size

    def header(self, name: str) -> None:
        """Count a 512-byte tar header: an archive of millions of empty members is a bomb too."""
        self.left -= _BLOCK
        if self.left < 0:
            raise self.bomb(name)

    def bomb(self, name: str | None) -> ArchiveError:
        at = f" at member {name!r}" if name is not None else ""
        return ArchiveError(
            f"{self.label} expands to more than {_size(self.expanded, exact=True)} (DSREG_MAX_EXPANDED){at}: "
            f"refused as an archive bomb; if the archive is genuine, set "
            f"DSREG_MAX_EXPANDED={_size(4 * self.expanded)} (or more) and fetch again"  # 4x: the true size is unknown
        )


# -- errors -------------------------------------------------------------------------------------
#: What to do about a damaged archive, worded for Python callers and for the command line.
_ADVICE = "fetch it again with force=True, or hand over a good copy with from_path=PATH"
_CLI_ADVICE = "fetch it again with `--force`, or hand over a good copy with `--from PATH`"


def _damaged(problem: str) -> ArchiveError:
    return ArchiveError(f"{problem}: {_ADVICE}", cli=f"{problem}: {_CLI_ADVICE}")


def _unreadable(label: str, kind: str, exc: BaseException, done: int) -> ArchiveError:
    """One line for an archive that stopped reading: cut short, corrupt compressed data, or a bad header."""
    where = f" after {done:,} member{'' if done == 1 else 's'}" if done else ""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end" in text or "ended before" in text:
        what = f"is cut short{where} ({text}); the download is incomplete or damaged"
    elif (
        isinstance(exc, (zlib.error, lzma.LZMAError))
        or "zlib" in text
        or "compressed data" in text
        or (isinstance(exc, OSError) and kind in ("gzip", "bz2", "xz", "zip"))
    ):
        codec = {"gzip": "gzip", "bz2": "bzip2", "xz": "xz", "zip": "compressed"}.get(kind, "compressed")
        what = f"holds corrupt {codec} data{where} ({text}); the file is damaged"
    else:
        what = f"is not a readable {'zip' if kind == 'zip' else 'tar'} archive{where} ({text})"
    return _damaged(f"{label} {what}")


#: What a damaged archive raises from tarfile, zipfile and the decompressors.
_BROKEN = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError)


# -- reading --------------------------------------------------------------------------------------
def _read_whole(readinto: Callable[[memoryview], int | None], size: int) -> bytes:
    """Up to ``size`` bytes read in steps into one buffer (fewer if the data ends first).

    The peak is the member twice (the buffer and the bytes made from it), never more, whatever the
    readers below buffer: one call of ``read(size)`` through gzip's and the buffered readers'
    copies measured up to 4.7 times an 8 MiB member, this 3.1 times (with the previous member
    still held by the caller).
    """
    buf = bytearray(size)
    got = 0
    with memoryview(buf) as view:
        while got < size:
            n = readinto(view[got : got + _STEP])
            if not n:
                break
            got += n
        return bytes(view[:got]) if got < size else bytes(buf)


def open_compressed(
    path: str | Path, *, label: str | None = None, max_member: int | str | None = None, max_expanded: int | str | None = None
) -> IO[bytes]:
    """Open ``path`` for reading, decompressing gzip, bz2 or xz transparently, within the archive limits.

    Read in pieces (``read(n)``, lines, iteration), the file may expand to ``max_expanded`` bytes;
    read whole (``read()``), it is held in memory, so it may hold ``max_member`` bytes, like one
    member of an archive. Past either, and on corrupt compressed data, ArchiveError says so in one
    line. A plain file is opened as it is: it cannot expand.
    """
    kind = detect(path)
    if kind not in _OPENERS:
        return open(path, "rb")
    label = label or _dataset.get().get("names", {}).get(str(path)) or Path(path).name
    budget = _Budget(
        label, _limit("max_member", max_member, DEFAULT_MAX_MEMBER), _limit("max_expanded", max_expanded, DEFAULT_MAX_EXPANDED)
    )
    return io.BufferedReader(_BoundedReader(_OPENERS[kind](path, "rb"), kind, budget), _STEP)


class _BoundedReader(io.RawIOBase):
    """A decompressing reader that counts what it hands out against a budget and speaks ArchiveError."""

    def __init__(self, inner: IO[bytes], kind: str, budget: _Budget) -> None:
        self.inner, self.kind, self.budget, self.done = inner, kind, budget, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = self.inner.readinto(buffer)  # type: ignore[attr-defined]  # gzip, bz2 and lzma files have it
        except _BROKEN as exc:
            raise _unreadable(self.budget.label, self.kind, exc, 0) from exc
        self.done += n
        if self.done > self.budget.expanded:
            raise self.budget.bomb(None)
        return n

    def readall(self) -> bytes:
        # BufferedReader.read() ends here: a whole read is held in memory, so it is bounded as a member.
        pieces: list[bytes] = []
        held = 0
        while True:
            piece = self.read(_STEP)
            if not piece:
                return b"".join(pieces)
            held += len(piece)
            if held > self.budget.member:
                raise ArchiveError(
                    f"{self.budget.label} expands to more than the {_size(self.budget.member, exact=True)} a file read whole may "
                    f"hold (DSREG_MAX_MEMBER); if it is genuine, set DSREG_MAX_MEMBER={_size(4 * self.budget.member)} "
                    "(or more) and fetch again"
                )
            pieces.append(piece)

    def close(self) -> None:
        self.inner.close()
        super().close()


def members(
    path: str | Path, *, label: str | None = None, max_member: int | str | None = None, max_expanded: int | str | None = None
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member path, bytes)`` for each regular file in the tar or zip archive at ``path``.

    ``max_member`` and ``max_expanded`` (bytes, or e.g. ``"1GiB"``) are the dataset's limits; the
    user's DSREG_MAX_MEMBER / DSREG_MAX_EXPANDED win over them (see the module docstring).
    """
    label = label or _dataset.get().get("names", {}).get(str(path)) or Path(path).name
    budget = _Budget(
        label, _limit("max_member", max_member, DEFAULT_MAX_MEMBER), _limit("max_expanded", max_expanded, DEFAULT_MAX_EXPANDED)
    )
    kind = detect(path)
    if kind == "zip":
        yield from _zip_members(path, label, budget)
        return
    yielded = 0
    try:
        if kind in ("gzip", "bz2", "xz", "tar"):
            try:
                for item in _direct_tar_members(path, kind, label, budget):
                    yield item
                    yielded += 1
                return
            except _Unsupported:
                pass  # a header the direct reader leaves to tarfile: read again, from the start
        budget.left = budget.expanded
        for index, item in enumerate(_tarfile_members(path, label, budget)):
            if index >= yielded:  # those before were given out by the direct reader before it stopped
                yield item
                yielded += 1
    except _BROKEN as exc:
        raise _unreadable(label, kind, exc, yielded) from exc


def _tarfile_members(path: str | Path, label: str, budget: _Budget) -> Iterator[tuple[str, bytes]]:
    """The regular files of any tar ``tarfile`` reads, with the checks of the direct reader."""
    with tarfile.open(path, mode="r|*") as tar:
        while (info := tar.next()) is not None:
            # tarfile keeps every header it has read (600 bytes each): an archive of millions of
            # empty members would fill memory with them. Reading on needs none of them.
            del tar.members[:]  # type: ignore[attr-defined]  # a documented attribute the stubs leave out
            budget.header(info.name)
            name = check_member_name(info.name, label)
            if info.isdir():
                continue
            if info.issym() or info.islnk():
                raise ArchiveError(f"{label}: member {info.name!r} is a link; refusing to read this archive")
            if not info.isfile():
                raise ArchiveError(f"{label}: member {info.name!r} is a device or special file; refusing to read this archive")
            budget.claim(info.name, info.size)
            handle = tar.extractfile(info)
            if handle is None:
                yield name, b""
            else:
                yield name, handle.read() if info.size <= _STEP else _read_whole(handle.readinto, info.size)  # type: ignore[attr-defined]  # an ExFileObject has it


class _Unsupported(Exception):
    """A tar header type the direct reader does not handle (pax global headers, sparse files, ...)."""


_BLOCK = 512
_ZEROS = bytes(_BLOCK)
_REGULAR = (b"0", b"\0", b"7")


def _header_number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for big values
        if field[0] == 0xFF:
            raise tarfile.ReadError("negative number in a tar header")
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise tarfile.ReadError(f"invalid number {text!r} in a tar header") from None


def _header_text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """The records ``"<length> <key>=<value>\\n"`` of a pax header; a record that does not frame exactly is refused.

    This is the framing tarfile checks since Python 3.11.10 / 3.12.6 (CVE-2024-6232); older
    tarfiles read such records loosely, taking bytes of the next record or of the padding.
    """
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space]
        if space < 0 or not digits.isdigit():
            raise tarfile.ReadError("invalid pax header")
        length = int(digits)
        end = pos + length - 1  # where the record's newline must be
        if length < 5 or end >= len(data) or data[end] != 0x0A:
            raise tarfile.ReadError("invalid pax header")
        key, equals, value = data[space + 1 : end].partition(b"=")
        if not key or not equals:
            raise tarfile.ReadError("invalid pax header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _direct_tar_members(path: str | Path, kind: str, label: str, budget: _Budget) -> Iterator[tuple[str, bytes]]:
    """Yield regular files of a (compressed) ustar/GNU/pax tar by reading its headers directly.

    Python's tarfile spends ~50 µs per member on header objects; an archive of half a million
    small files is then bound by it. This reads the same stream with the same checks at about
    three times the rate, and raises _Unsupported for anything unusual so tarfile takes over.
    It differs from tarfile in two ways, on purpose: a damaged or cut header after the first is an
    error here, where tarfile takes it silently for the end of the archive; and bytes 345-500 of an
    old-GNU header (magic ``ustar  ``) are not a name prefix here, as GNU tar keeps access and
    change times there (tarfile prepends them to the name).
    """
    opener = _OPENERS.get(kind, open)
    with opener(path, "rb") as raw:
        reader = io.BufferedReader(raw, _STEP) if kind in _OPENERS else raw
        read, readinto = reader.read, reader.readinto

        def data(size: int) -> bytes:
            """The ``size`` bytes after a header, and the padding to the next 512-byte block."""
            out = (read(size) if size else b"") if size <= _STEP else _read_whole(readinto, size)
            pad = -size % _BLOCK
            if len(out) < size or (pad and len(read(pad)) < pad):
                raise tarfile.ReadError("unexpected end of data")
            return out

        long_name: str | None = None
        pax: dict[str, str] = {}
        described = False  # a long name, long link or pax record waits for its member
        empty = True
        while True:
            header = read(_BLOCK)
            if not header and empty:  # not even an end-of-archive block: no tar at all (as tarfile says)
                raise tarfile.ReadError("empty file")
            empty = False
            if not header or header == _ZEROS:
                if described:  # the member those records describe is missing (tarfile refuses too)
                    raise tarfile.ReadError("unexpected end of data after a long-name or pax header")
                return
            if len(header) < _BLOCK:
                raise tarfile.ReadError("unexpected end of data")
            budget.left -= _BLOCK  # inline Budget.header: this loop runs once per member
            if budget.left < 0:
                raise budget.bomb(_header_text(header[:100]))
            stored = _header_number(header[148:156])
            unsigned = sum(header) - sum(header[148:156]) + 256
            if stored != unsigned and stored not in tarfile.calc_chksums(header):  # type: ignore[attr-defined]  # tarfile's own, unlisted in its stubs
                raise tarfile.ReadError("bad checksum in a tar header")
            type_ = header[156:157]
            size = _header_number(header[124:136])
            if type_ in (b"x", b"g", b"L", b"K"):
                if size > _MAX_RECORD:  # read whole below: bound it like a member
                    raise ArchiveError(
                        f"{label}: a tar header record (type {type_.decode()}) claims {_size(size)}; "
                        f"names and pax headers stay under {_size(_MAX_RECORD, exact=True)}: refusing a damaged or hostile archive"
                    )
                budget.claim(_header_text(header[:100]), size)
                record = data(size)
                described = True
                if type_ == b"L":
                    long_name = _header_text(record)
                elif type_ == b"x":
                    pax = _pax_records(record)
                    if any(key.startswith("GNU.sparse") for key in pax):
                        raise _Unsupported("sparse file")
                elif type_ == b"g":
                    raise _Unsupported("pax global header")
                continue  # "K", a long link target: the link itself is refused below
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    size = 0  # as tarfile reads it
                if size < 0:
                    raise tarfile.ReadError("negative size in a pax header")
            short = _header_text(header[:100])
            name = short
            if header[257:265] == b"ustar\x0000" and header[345] != 0:
                name = _header_text(header[345:500]) + "/" + name
            name = pax.get("path") or long_name or name
            long_name, pax, described = None, {}, False
            # tarfile's rules: an old-style regular file whose own name ends in "/" is a folder; a
            # folder's name loses its trailing "/" (so "/" is no absolute path); a folder's size is
            # not skipped (nor a link's or a device's, which are refused anyway).
            if type_ == b"5" or (type_ == b"\0" and short.endswith("/")):
                check_member_name(name.rstrip("/"), label)
                continue
            checked = check_member_name(name, label)
            if type_ in (b"1", b"2"):
                raise ArchiveError(f"{label}: member {name!r} is a link; refusing to read this archive")
            if type_ in (b"3", b"4", b"6"):
                raise ArchiveError(f"{label}: member {name!r} is a device or special file; refusing to read this archive")
            if type_ not in _REGULAR:
                raise _Unsupported(f"tar member type {type_!r}")
            budget.claim(name, size)
            yield checked, data(size)


def _zip_members(path: str | Path, label: str, budget: _Budget) -> Iterator[tuple[str, bytes]]:
    done = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = check_member_name(info.filename, label)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ArchiveError(f"{label}: member {info.filename!r} is a link; refusing to read this archive")
                if info.is_dir() or not name:
                    continue
                # Only the type bits matter: zips written by Python's zipfile carry permission
                # bits alone (0o600), which are a regular file.
                if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                    raise ArchiveError(f"{label}: member {info.filename!r} is a device or special file; refusing to read this archive")
                if info.flag_bits & 0x1:
                    problem = f"{label}: member {info.filename!r} is encrypted; dsreg reads only unencrypted archives"
                    raise ArchiveError(
                        f"{problem}: decrypt it yourself and hand it over with from_path=PATH",
                        cli=f"{problem}: decrypt it yourself and hand it over with `--from PATH`",
                    )
                budget.claim(info.filename, info.file_size)
                with zf.open(info) as fh:
                    # Never more than the declared size, which passed the limits above, whatever
                    # the deflate stream holds: a lying header cannot make this read bigger, and
                    # zipfile's CRC check then refuses the member it cut.
                    size = info.file_size
                    data = fh.read(size) if size <= _STEP else _read_whole(fh.readinto, size)  # type: ignore[attr-defined]  # a ZipExtFile has it
                if len(data) != size:
                    raise _damaged(
                        f"{label}: member {info.filename!r} holds fewer bytes than its header says "
                        f"({size:,}); the archive is damaged or hostile"
                    )
                yield name, data
                done += 1
    except (*_BROKEN, NotImplementedError) as exc:
        raise _unreadable(label, "zip", exc, done) from exc


def members_in_order(
    path: str | Path,
    order: Sequence[str],
    *,
    key: Callable[[str], str] | None = None,
    rest: bool = False,
    max_buffered: int | str = DEFAULT_MAX_BUFFERED,
    label: str | None = None,
    max_member: int | str | None = None,
    max_expanded: int | str | None = None,
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member path, bytes)`` for the members ``order`` names, in that order, reading the archive once.

    ``members`` yields the archive's own order; when a file must come first (labels stored after the
    images, shards read in sequence), a member that arrives before its turn is held in memory until
    then. Held members together may take ``max_buffered`` bytes (default 256 MiB, or e.g. ``"1GiB"``);
    past it ArchiveError names the member still awaited, so memory stays bounded whatever the archive's
    order. ``key`` maps a member path to the name ``order`` uses (default: the path itself); ``rest``
    then yields every other member in archive order (those read before the last of ``order`` are held
    too and count against ``max_buffered``), else they are skipped. A name of ``order`` missing from
    the archive raises ArchiveError listing the missing; so does a name that two members share. The
    other arguments are those of ``members``.
    """
    label = label or _dataset.get().get("names", {}).get(str(path)) or Path(path).name
    wanted = list(order)
    turn = {name: i for i, name in enumerate(wanted)}
    if len(turn) != len(wanted):
        raise ValueError("members_in_order: order names a member twice")
    limit = config.parse_size(max_buffered, "max_buffered")
    held: dict[int, tuple[str, bytes]] = {}  # by turn: members of ``order`` that came early
    later: list[tuple[str, bytes]] = []  # with ``rest``: other members read while ``order`` is not done
    held_bytes = 0
    next_turn = 0
    for member, data in members(path, label=label, max_member=max_member, max_expanded=max_expanded):
        name = key(member) if key is not None else member
        index = turn.get(name)
        if index is not None and (index < next_turn or index in held):
            raise ArchiveError(f"{label}: two members are {name!r} (the second is {member!r}); members_in_order needs one each")
        if index == next_turn:
            yield member, data
            next_turn += 1
            while next_turn in held:
                early = held.pop(next_turn)
                held_bytes -= len(early[1])
                yield early
                next_turn += 1
            if next_turn == len(wanted):
                held_bytes -= sum(len(d) for _, d in later)
                yield from later
                later.clear()
            continue
        if index is None:
            if not rest:
                continue
            if next_turn == len(wanted):
                yield member, data
                continue
            later.append((member, data))
        else:
            held[index] = (member, data)
        held_bytes += len(data)
        if held_bytes > limit:
            raise ArchiveError(
                f"{label}: members read before their turn, up to {member!r}, take more than the {_size(limit, exact=True)} "
                f"members_in_order may hold (max_buffered) while it waits for {wanted[next_turn]!r}; pass "
                f"max_buffered={_size(4 * limit)!r} (or more), or read the archive in its own order with members()"
            )
    missing = [name for name in wanted[next_turn:] if turn[name] not in held]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ArchiveError(f"{label} has no member {shown}, which members_in_order was asked for")
