"""How fast one process streams a notMNIST_large-sized tar.gz: Python's tarfile vs dsreg.fetching.archive.members.

    python plugins/notmnist/benchmarks/tar_stream_probe.py /tmp/nm-bench/notMNIST_large.tar.gz

Reading the large archive is the serial part of a notMNIST prepare (the validation draw needs every
member's name before train can start), so its rate bounds the whole prepare. ``tarfile`` here is
the loop dsreg.fetching.archive.members ran before it read tar headers directly.
"""

from __future__ import annotations

import gzip
import sys
import tarfile
import time
from collections.abc import Iterator


def tarfile_members(path: str) -> Iterator[tuple[str, bytes]]:
    """The previous reader: tarfile in stream mode, every regular file read into memory."""
    with tarfile.open(path, mode="r|*") as tar:
        for info in tar:
            if info.isfile():
                handle = tar.extractfile(info)
                yield info.name, handle.read() if handle else b""


def main() -> None:
    path = sys.argv[1]
    from dsreg.fetching.archive import members

    for label, reader in (("tarfile (stream mode)", tarfile_members), ("dsreg.fetching.archive.members", members)):
        started = time.perf_counter()
        count = size = 0
        for _name, data in reader(path):
            count += 1
            size += len(data)
        seconds = time.perf_counter() - started
        print(f"{label:24s} {count:,} members, {size:,} bytes in {seconds:.1f} s = {count / seconds:,.0f} members/s")
    started = time.perf_counter()
    with gzip.open(path) as fh:
        while fh.read(1 << 20):
            pass
    print(f"{'gunzip alone':24s} {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
