"""Fetch `notmnist` from a loopback mirror serving a generated archive pair in the real layout.

    python plugins/notmnist/examples/mirror_demo.py [FOLDER] [FETCH OPTIONS, e.g. --split test]

Writes notMNIST_small.tar.gz and notMNIST_large.tar.gz into FOLDER (default: a temp folder; kept if
given) with one corrupt member in each, serves them from a dsreg.testing.LoopbackServer on
127.0.0.1, and runs ``dsreg fetch notmnist --mirror URL [FETCH OPTIONS]`` then ``dsreg info notmnist``
in a temporary cache, then prints the server's log: which files were requested. Generated archives cannot match the published sizes and md5s, so the real Builder runs with
its File entries re-declared for these bytes (and no public URLs, so nothing leaves the machine).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import dsreg
from dsreg.cli import main as dsreg_cli
from dsreg.testing import LoopbackServer, registered
from dsreg_notmnist import NotMNIST
from dsreg_notmnist.testing import make_pair


def bound(paths: dict[str, Path]) -> type[dsreg.Builder]:
    """NotMNIST with its files declared as the generated ones."""
    files = tuple(
        dsreg.File(f.name, size=paths[f.name].stat().st_size, md5=hashlib.md5(paths[f.name].read_bytes()).hexdigest())
        for f in NotMNIST.files
    )
    return type("NotMNIST", (NotMNIST,), {"files": files, "__module__": NotMNIST.__module__})


def main() -> None:
    args = sys.argv[1:]
    given = args.pop(0) if args and not args[0].startswith("-") else None
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="notmnist-mirror-"))
    if not (folder / "notMNIST_large.tar.gz").exists():
        make_pair(
            folder,
            small_per_class=300,
            large_per_class=2000,
            overlap=20,
            twins=30,
            corrupt=(("small", "B", "truncated"), ("large", "E", "empty")),
        )
    paths = {name: folder / name for name in ("notMNIST_small.tar.gz", "notMNIST_large.tar.gz")}
    with tempfile.TemporaryDirectory(prefix="dsreg-cache-") as cache, LoopbackServer() as server, registered(bound(paths)):
        os.environ["DSREG_CACHE"] = cache
        url = server.serve({name: path.read_bytes() for name, path in paths.items()})
        for argv in (["fetch", "notmnist", "--mirror", url, "--quiet", *args], ["info", "notmnist"]):
            print("$ dsreg " + " ".join(argv), flush=True)
            try:
                dsreg_cli(argv)
            except SystemExit as exit_:
                if exit_.code:
                    raise
        print(f"server log ({server.bytes_sent:,} bytes served from {url}):")
        for name, byte_range, status in server.requests:
            print(f"  GET {name}  range={byte_range}  status={status}")
    if not given:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
