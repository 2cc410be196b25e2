"""Show a download that drops midway and resumes with an HTTP Range request.

    python examples/resumed_download.py

A loopback server (127.0.0.1, started here) serves an 8 MB file and drops the first connection
after 3 MB; dsreg keeps the 3 MB in its .part file, asks for the rest with `Range: bytes=N-`,
verifies the sha256 and renames the file into the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import dsreg
from dsreg.testing import LoopbackServer, registered

SIZE = 8 * 1024 * 1024
CUT = 3 * 1024 * 1024


def main() -> None:
    data = os.urandom(SIZE)
    sha = hashlib.sha256(data).hexdigest()
    with tempfile.TemporaryDirectory() as cache, LoopbackServer() as server:
        os.environ["DSREG_CACHE"] = cache
        os.environ["DSREG_BACKOFF"] = "0"
        url = server.serve({"big.bin": data}, cut_after=CUT)

        class Big(dsreg.Builder):
            name = "big"
            description = "Random bytes, read back as one example."
            features = {"n": dsreg.Value("int64")}
            splits = ("all",)
            files = (dsreg.File("big.bin", urls=(url + "big.bin",), size=SIZE, sha256=sha),)

            def generate(self, split, files, **config):
                yield "size", {"n": files["big.bin"].stat().st_size}

        with registered(Big):
            info = dsreg.fetch("big", quiet=True)
        for name, rng, status in server.requests:
            print(f"request {name}  Range={rng or '-':<16} -> HTTP {status}")
        second = server.requests[1]
        resumed_from = int(second[1][len("bytes=") : -1])
        print(f"bytes before the cut: {resumed_from:,}")
        print(f"bytes after the cut:  {SIZE - resumed_from:,}")
        print(f"bytes sent in total:  {server.bytes_sent:,} (file size {SIZE:,})")
        print(f"final sha256:         {info.fetched['big.bin']['sha256']}")
        print(f"expected sha256:      {sha}")
        print(f"status:               {info.fetched['big.bin']['status']}")


if __name__ == "__main__":
    main()
