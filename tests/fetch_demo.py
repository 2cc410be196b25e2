"""Show, through the real `dsreg` command, what a fetch does when the network misbehaves (not a test).

    python tests/fetch_demo.py stall [DATA]   a stalled first mirror, then a good one (DSREG_TIMEOUT=5)
    python tests/fetch_demo.py pin [DATA]     the pin trap: an HTML page as the first download of a
                                              file with no published checksum, then the printed
                                              advice followed literally

DATA is the folder holding the real notMNIST idx files (default ../shared/data/notmnist-idx, or
DSREG_NOTMNIST_DATA/notmnist-idx); dsreg-notmnist must be installed. Each run uses a throwaway cache
and a loopback server started here; every command is printed with its output and wall time.
"""

from __future__ import annotations

import gzip
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dsreg.testing import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]


def run(command: str, env: dict[str, str]) -> str:
    """Run ``command`` in a shell, printing it and each line of its output (stdout and stderr) with the
    seconds since it started; return the output."""
    print(f"$ {command}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(command, shell=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = []
    for line in proc.stdout:
        out.append(line)
        print(f"  [{time.monotonic() - start:5.1f} s] {line.rstrip()}", flush=True)
    code = proc.wait()
    print(f"  [{time.monotonic() - start:5.1f} s] exit {code}\n", flush=True)
    return "".join(out)


def train_images() -> bytes:
    """A train-images idx file of 60,000 distinct 28x28 images (the real train-labels file has 60,000 labels)."""
    header = (0x803).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (60_000, 28, 28))
    pixels = bytearray(60_000 * 784)
    for i in range(60_000):
        pixels[i * 784:i * 784 + 3] = i.to_bytes(3, "big")
    return gzip.compress(header + bytes(pixels), compresslevel=1)


def main(mode: str, data: Path) -> None:
    files = {p.name: p.read_bytes() for p in data.glob("*.gz")}
    with tempfile.TemporaryDirectory() as cache, LoopbackServer() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSREG_")}
        env.update(DSREG_CACHE=cache, DSREG_CONFIG=os.path.join(cache, "none.toml"), DSREG_NETWORK="loopback")
        if mode == "stall":
            good = server.serve({f"good/{name}": body for name, body in files.items()})
            server.serve({f"stalled/{name}": body for name, body in files.items()}, stall_before_headers=True, stall=600)
            run(f"DSREG_TIMEOUT=5 dsreg fetch notmnist-idx -c splits=test --mirror {good}stalled/ --mirror {good}good/", env)
        else:
            page = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n"
            url = server.serve({**files, "train-images-idx3-ubyte.gz": page})  # labelled application/octet-stream
            said = run(f"dsreg fetch notmnist-idx -c splits=train --mirror {url}", env)
            run("dsreg info notmnist-idx -c splits=train | grep -A2 train-images", env)
            print("# the server recovers; the advice above, followed literally:\n")
            server.serve({"train-images-idx3-ubyte.gz": train_images()})
            [advice] = re.findall(r"`(dsreg [^`]+)`", said.splitlines()[-1])
            run(advice, env)
            run("dsreg info notmnist-idx -c splits=train | grep -A2 train-images", env)
            run(f"dsreg fetch notmnist-idx -c splits=train --mirror {shlex.quote(url)}", env)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("stall", "pin"):
        sys.exit(__doc__)
    default = Path(os.environ.get("DSREG_NOTMNIST_DATA", ROOT.parent / "shared" / "data")) / "notmnist-idx"
    main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else default)
