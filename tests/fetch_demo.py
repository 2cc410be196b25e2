"""Show, through the real `dsreg` command, what a fetch does when the network misbehaves (not a test).

    python tests/fetch_demo.py stall [DATA]   a stalled first mirror, then a good one (DSREG_TIMEOUT=5)
    python tests/fetch_demo.py pin [DATA]     the pin trap: an HTML page as the first download of a
                                              file with no published checksum, then the printed
                                              advice followed literally
    python tests/fetch_demo.py faults         every fault of the loopback server once, through
                                              dsreg.fetch on a small toy dataset (DSREG_TIMEOUT=1)
    python tests/fetch_demo.py bomb           `dsreg fetch` of a 2 MB tar.gz that expands to 2 GiB, with
                                              the default limits and with DSREG_MAX_EXPANDED=1GiB:
                                              the message, the exit status and the peak RSS

DATA is the folder holding the real notMNIST idx files (default ../shared/data/notmnist-idx, or
DSREG_NOTMNIST_DATA/notmnist-idx); dsreg-notmnist must be installed. Each run uses a throwaway cache
and a loopback server started here; every command is printed with its output and wall time.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
        pixels[i * 784 : i * 784 + 3] = i.to_bytes(3, "big")
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


def fault(
    title: str,
    faults: dict[str, Any] | None = None,
    *,
    body: bytes | None = None,
    pin: bool = False,
    url: str | None = None,
    https: bool = False,
) -> None:
    """Fetch a toy dataset from a server with ``faults``; print the lines, the outcome, the time and the cache."""
    import dsreg
    from dsreg.fetching.cache import Cache
    from dsreg.testing import registered

    from toydata import blob, make_builder

    data = blob(40_000)
    os.environ["DSREG_CACHE"] = tempfile.mkdtemp()
    with LoopbackServer() as server:
        base = server.serve({"toy.bin": data if body is None else body}, **(faults or {}))
        source = url or (base.replace("http://", "https://") if https else base) + "toy.bin"
        said = io.StringIO()
        with registered(make_builder(data, urls=(source,), pin=pin, size=not pin)), contextlib.redirect_stderr(said):
            start = time.monotonic()
            try:
                outcome = f"ok ({dsreg.fetch('toy').fetched['toy.bin']['status']})"
            except dsreg.DsregError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
        part = Cache().part_path("toy", "toy.bin")
        print(
            f"### {title}  [{time.monotonic() - start:.1f} s; HTTP {[s for _, _, s in server.requests]}; "
            f".part {part.stat().st_size if part.exists() else 'none'}]"
        )
        for line in [*said.getvalue().splitlines(), f"=> {outcome}"]:
            print("   ", line.replace(os.environ["DSREG_CACHE"], "$DSREG_CACHE"))


def faults() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    os.environ.update(DSREG_TIMEOUT="1", DSREG_BACKOFF="0.05", DSREG_NETWORK="loopback", DSREG_CONFIG="/nonexistent.toml")
    fault("stall before headers", dict(stall_before_headers=True, stall=30, stall_times=9))
    fault("stall mid-body, once", dict(stall_after=10_000, stall=30))
    fault("stall mid-body, every time", dict(stall_after=10_000, stall=30, stall_times=9))
    fault("drop after N bytes, data and close together", dict(cut_after=12_345, cut_pause=0))
    fault("drop after N bytes, close after a pause", dict(cut_after=12_345, cut_pause=0.3))
    fault("ignore Range", dict(cut_after=12_345, cut_pause=0, ignore_range=True))
    fault("wrong Content-Range (no published checksum)", dict(cut_after=12_345, cut_pause=0, range_shift=-12_345), pin=True)
    fault("404", dict(fail=9, status=404))
    fault("410", dict(fail=9, status=410))
    fault("429 twice", dict(fail=2, status=429))
    fault("500 on a file with no published size", dict(fail=9, status=500), pin=True)
    fault("503 with Retry-After: 1, once", dict(fail=1, status=503, retry_after="1"))
    fault("503 with Retry-After: 3600", dict(fail=9, status=503, retry_after="3600"))
    fault("HTML page (Content-Type text/html)", dict(content_type="text/html"))
    fault("HTML page labelled application/octet-stream", body=b"<!DOCTYPE html><html><body>Quota exceeded</body></html>")
    fault("other bytes (checksum mismatch)", body=bytes(40_000))
    fault("trickle: 4 KB every 0.1 s", dict(trickle=4_000, trickle_pause=0.1))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    fault("connection refused", url=f"http://127.0.0.1:{port}/toy.bin")
    fault("TLS error (https to a plain HTTP server)", https=True)
    os.environ["DSREG_CONNECT_TIMEOUT"] = "0.5"
    with socket.socket() as full:  # a listener whose backlog is full: further SYNs are dropped
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        queued = [socket.socket() for _ in range(3)]
        for s in queued:
            s.setblocking(False)
            s.connect_ex(full.getsockname())
        time.sleep(0.1)
        fault("no connection within the connect timeout", url=f"http://127.0.0.1:{full.getsockname()[1]}/toy.bin")
        for s in queued:
            s.close()


# The child process: `dsreg fetch bomb` of one local archive through an in-process plugin.
_BOMB_FETCH = """
import hashlib, sys
from pathlib import Path
import dsreg
from dsreg import archive
from dsreg.cli import main
from dsreg.testing import registered

path = Path(sys.argv[1])

class Bomb(dsreg.Builder):
    name = "bomb"
    features = {"size": dsreg.Value("int64")}
    splits = ("train",)
    files = (dsreg.File(path.name, urls=(str(path),), size=path.stat().st_size,
                        sha256=hashlib.sha256(path.read_bytes()).hexdigest()),)

    def generate(self, split, files):
        for member, data in archive.members(files[path.name]):
            yield member, {"size": len(data)}

with registered(Bomb):
    main(["fetch", "bomb", "--quiet"])
"""


def bomb() -> None:
    """Fetch a tar bomb in a child process per setting; print its lines, exit status and peak RSS."""
    import resource

    from dsreg.testing import hostile

    with tempfile.TemporaryDirectory(prefix="dsreg-bomb-demo-") as tmp:
        folder = Path(tmp)
        cases = [
            ("2 GiB in one member, default limits", hostile.tar_bomb(folder, expand_to=2 << 30, members=1), {}),
            (
                "2 GiB in 16 members, DSREG_MAX_EXPANDED=1GiB",
                hostile.tar_bomb(folder, expand_to=2 << 30, members=16),
                {"DSREG_MAX_EXPANDED": "1GiB"},
            ),
        ]
        for title, path, extra in cases:
            print(f"== {title}: {path.name}, {path.stat().st_size:,} bytes on disk")
            env = {**os.environ, "DSREG_CACHE": str(folder / f"cache-{path.stem}"), **extra}
            start = time.monotonic()
            out = subprocess.run([sys.executable, "-c", _BOMB_FETCH, str(path)], env=env, capture_output=True, text=True)
            # ru_maxrss of the children is the largest of them so far: the cases go from small to large.
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            for line in (out.stdout + out.stderr).splitlines():
                print(f"  {line}")
            print(f"  exit {out.returncode} in {time.monotonic() - start:.1f} s; peak RSS of the fetch {peak:,.0f} MiB\n")


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "faults":
        sys.exit(faults())
    if len(sys.argv) == 2 and sys.argv[1] == "bomb":
        sys.exit(bomb())
    if len(sys.argv) < 2 or sys.argv[1] not in ("stall", "pin"):
        sys.exit(__doc__)
    default = Path(os.environ.get("DSREG_NOTMNIST_DATA", ROOT.parent / "shared" / "data")) / "notmnist-idx"
    main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else default)
