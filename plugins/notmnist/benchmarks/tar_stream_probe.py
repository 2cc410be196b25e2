"""Probe for a proposed core change: how fast can one process stream a tar.gz's members?

    python plugins/notmnist/benchmarks/tar_stream_probe.py /tmp/nm-bench/notMNIST_large.tar.gz

Compares ``dsreg.archive.members`` (Python's tarfile, the serial part of a notMNIST prepare) with a
direct parser of ustar/GNU headers on the same gzip stream. The direct parser here is a measuring
stick, not used by the plugin: it handles only what this archive holds (regular files, folders,
GNU long names) and stops at anything else.
"""

from __future__ import annotations

import gzip
import io
import sys
import time
from typing import Iterator


def direct_members(path: str) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` of regular files, parsing 512-byte headers without tarfile."""
    with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as gz:
        read = io.BufferedReader(gz, buffer_size=1 << 20).read
        longname = None
        while True:
            header = read(512)
            if len(header) < 512 or not header.strip(b"\0"):
                return
            checksum = int(header[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
            if checksum != sum(header[:148]) + 256 + sum(header[156:]):
                raise ValueError("bad tar header checksum")
            field = header[124:136]
            size = int.from_bytes(field[1:], "big") if field[0] & 0x80 else int(field.split(b"\0", 1)[0].strip() or b"0", 8)
            kind = header[156:157]
            data = read(size)
            if size % 512:
                read(512 - size % 512)
            if kind == b"L":
                longname = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if header[257:262] == b"ustar" and header[345:346] != b"\0":
                name = header[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape") + "/" + name
            if longname is not None:
                name, longname = longname, None
            if kind == b"5":
                continue
            if kind not in (b"0", b"\0", b"7"):
                raise NotImplementedError(f"member {name!r} of type {kind!r}: the probe handles regular files only")
            yield name, data


def main() -> None:
    path = sys.argv[1]
    from dsreg.archive import members

    for label, reader in (("dsreg.archive.members (tarfile)", members), ("direct header parser", direct_members)):
        started = time.perf_counter()
        count = size = 0
        for _name, data in reader(path):
            count += 1
            size += len(data)
        seconds = time.perf_counter() - started
        print(f"{label:34s} {count:,} members, {size:,} bytes in {seconds:.1f} s = {count / seconds:,.0f} members/s")
    started = time.perf_counter()
    with gzip.open(path) as fh:
        while fh.read(1 << 20):
            pass
    print(f"{'gunzip alone':34s} {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
