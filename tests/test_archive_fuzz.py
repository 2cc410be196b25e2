"""Fuzz the direct tar reader against tarfile: the same members, or both refuse.

Archives are made by tarfile from random members (regular files, folders, links, devices, FIFOs;
short, long, non-ASCII and escaping names; GNU, pax and ustar formats), then damaged at random
(a byte flipped, bytes overwritten, the tar cut short) and compressed (none, gzip, bzip2, xz).

The direct reader is stricter than tarfile in one way, on purpose: a damaged or cut header after
the first ends the read with an error there, where tarfile takes it for the end of the archive.
Then both must have handed out the same members up to that point. It also refuses a pax record
that does not frame exactly, as tarfile does since Python 3.11.10 / 3.12.6. (The other difference, an
old-GNU header's time fields that tarfile reads as a name prefix, needs a valid checksum over
crafted bytes, which random damage does not make: test_archive_stream.py covers it.)

A longer run by hand: ``DSREG_FUZZ_EXAMPLES=20000 python -m pytest tests/test_archive_fuzz.py -q -s``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dsreg.errors import ArchiveError  # noqa: E402
from dsreg.fetching.archive import _Budget, _direct_tar_members, _tarfile_members, _Unsupported  # noqa: E402

#: A fixed, seeded 200 in the suite (a few seconds); more, with fresh randomness, when asked for.
EXAMPLES = int(os.environ.get("DSREG_FUZZ_EXAMPLES", "400"))
#: Where the direct reader may refuse what tarfile reads: it treats these as damage, tarfile as the end.
#: The last: tarfile before Python 3.11.10 / 3.12.6 reads a pax record that does not frame loosely.
STRICTER = ("in a tar header", "unexpected end of data", "invalid pax header")  # a bad checksum or number; a cut

KINDS = {
    "file": tarfile.REGTYPE,
    "old-file": tarfile.AREGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chr": tarfile.CHRTYPE,
    "contiguous": tarfile.CONTTYPE,
}
# Mostly well-formed archives, so that "the same members" is tested as often as "both refuse".
parts = st.sampled_from(["a", "b", "data.png", "ü", "ファイル", "x" * 60, "d" * 120, "..", ".", ""])
safe_parts = st.sampled_from(["a", "b", "data.png", "ü", "ファイル", "x" * 60, "d" * 120])
names = (
    st.lists(safe_parts, min_size=1, max_size=4).map("/".join)
    | st.lists(parts, min_size=1, max_size=4).map("/".join)
    | st.sampled_from(["/abs", "/", "./a", "a/", "a//b"])
)
kinds = st.sampled_from(["file", "file", "file", "file", "old-file", "contiguous", "dir", "dir", "symlink", "hardlink", "fifo", "chr"])
data = st.binary(max_size=1300) | st.sampled_from([b"", b"x" * 512])
benign = st.tuples(
    st.lists(safe_parts, min_size=1, max_size=4).map("/".join),
    st.sampled_from(["file", "file", "file", "old-file", "contiguous", "dir"]),
    data,
)
hostile = st.tuples(names, kinds, data)
members = st.tuples(st.lists(benign, min_size=1, max_size=5), st.none() | hostile, st.integers(0, 5)).map(
    lambda t: t[0] if t[1] is None else [*t[0][: t[2]], t[1], *t[0][t[2] :]]  # at most one odd member, anywhere
)
mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),
    st.tuples(st.just("zero"), st.integers(0, 1 << 16), st.integers(1, 64)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16), st.just(0)),
)
damage = st.integers(0, 2).flatmap(lambda k: mutation if k == 0 else st.none())  # two in three are whole


def build(entries: list[tuple[str, str, bytes]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type = KINDS[kind]
            if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = "../target"
            body = data if info.type in tarfile.REGULAR_TYPES else b""
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body else None)
    return buf.getvalue()


def damaged(raw: bytes, how: Any) -> bytes:
    if how is None or not raw:
        return raw
    kind, at, value = how
    at %= len(raw)
    out = bytearray(raw)
    if kind == "flip":
        out[at] ^= value
    elif kind == "zero":
        out[at : at + value] = bytes(len(out[at : at + value]))
    else:
        del out[at:]
    return bytes(out)


COMPRESS = {"tar": lambda b: b, "gzip": lambda b: gzip.compress(b, mtime=0), "bz2": bz2.compress, "xz": lzma.compress}


def outcome(reader: Iterator[tuple[str, bytes]]) -> tuple[str, list[tuple[str, bytes]], str]:
    """``(ok | refused | unsupported, members read, why)``; any other exception fails the test."""
    got: list[tuple[str, bytes]] = []
    try:
        for item in reader:
            got.append(item)
    except _Unsupported as exc:
        return "unsupported", got, str(exc)
    except ArchiveError as exc:
        return "refused", got, str(exc)
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        return "refused", got, f"{type(exc).__name__}: {exc}"
    return "ok", got, ""


def budget() -> _Budget:
    return _Budget("fuzz.tar", 1 << 30, 1 << 40)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="DSREG_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    entries=members,
    fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]),
    how=damage,
    codec=st.sampled_from(sorted(COMPRESS)),
)
def test_the_direct_reader_reads_what_tarfile_reads(tmp_path: Path, entries, fmt, how, codec) -> None:
    try:
        raw = build(entries, fmt)
    except ValueError:  # a name this format cannot hold (ustar: long or non-ASCII)
        assume(False)
    path = tmp_path / f"fuzz.{codec}"
    path.write_bytes(COMPRESS[codec](damaged(raw, how)))
    direct = outcome(_direct_tar_members(path, codec, "fuzz.tar", budget()))
    assume(direct[0] != "unsupported")  # members() hands those to tarfile itself
    reference = outcome(_tarfile_members(path, "fuzz.tar", budget()))
    event(f"direct reader {direct[0]}, tarfile {reference[0]}")  # the mix, in --hypothesis-show-statistics
    if reference[0] == "ok" and direct[0] == "refused":
        assert direct[2].endswith(STRICTER), (direct, reference)
        if direct[2].endswith("invalid pax header"):  # an older tarfile reads on, past the bad record
            assert reference[1][: len(direct[1])] == direct[1]
        else:
            assert direct[1] == reference[1]  # the same members up to the damage tarfile took for the end
    else:
        assert direct[0] == reference[0], (direct, reference)
        if direct[0] == "ok":
            assert direct[1] == reference[1]
