"""Issue 13's s3:// and push/pull checks shown end to end against the test kit's local S3 server (nothing leaves 127.0.0.1).

    python tests/s3_demo.py fetch      # the dsreg_s3 fixture's server starts; `dsreg fetch imagefolder -c url=s3://…/shapes.zip`
    python tests/s3_demo.py pushpull   # `dsreg push notmnist-synth s3://…`, then dsreg.load(…, remote=…) on an empty cache

Every command runs as a real `dsreg` process with the AWS_* variables pointed at the server (the way
the ``dsreg_s3`` fixture points them), in a temporary folder removed afterwards. The same steps are
asserted by tests/test_s3.py, plugins/image/tests/test_imagefolder_s3.py and
plugins/notmnist/tests/test_notmnist_remote.py.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SMALL = ["-c", "train_size=300", "-c", "test_size=100"]

#: Run in a fresh interpreter on the empty cache: load both splits from the remote with generate refused, print their content hashes.
LOAD = """
import hashlib, sys
import dsreg
from dsreg_notmnist.builders import NotMNISTSynth

def refuse(self, split, files, **config):
    raise SystemExit("notmnist-synth was prepared instead of pulled")

NotMNISTSynth.generate = refuse
for split in ("train", "test"):
    ds = dsreg.load("notmnist-synth", split, remote=sys.argv[1], train_size=300, test_size=100)
    h = hashlib.sha256()
    for batch in ds.loader(batch_size=128, shuffle=False):
        h.update(batch["image"].numpy().tobytes() + batch["label"].numpy().tobytes())
    print(f"{split}: {len(ds)} examples, content sha256 {h.hexdigest()}")
info = dsreg.info("notmnist-synth", train_size=300, test_size=100)
print("pulled from:", {s: m.get("pulled", "(prepared here)") for s, m in info.manifest["splits"].items()})
print("raw files in this cache:", len(info.fetched), "| generate called in this process: no (it would have exited)")
"""


def say(line: str) -> None:
    print(line, flush=True)


def run(args: list[str], env: dict[str, str]) -> None:
    say("$ " + " ".join(args))
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    out = (done.stdout + done.stderr).rstrip()
    if out:
        say(out)
    if done.returncode:
        raise SystemExit(f"exit {done.returncode}")


def fetch(tmp: Path, env: dict[str, str], s3: object) -> None:
    from dsreg_image.shapes import write_folder

    root = write_folder(tmp / "shapes", per_class=4, size=16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, f"shapes/{path.relative_to(root)}")
    url = s3.upload(buf.getvalue(), s3.bucket("user-data") + "shapes.zip")  # type: ignore[attr-defined]
    say(f"uploaded {len(buf.getvalue()):,} bytes to {url}")
    run(["dsreg", "fetch", "imagefolder", "-c", f"url={url}"], env)
    run(["dsreg", "info", "imagefolder", "-c", f"url={url}"], env)


def pushpull(tmp: Path, env: dict[str, str], s3: object) -> None:
    url = s3.bucket("team-datasets") + "stores"  # type: ignore[attr-defined]
    run(["dsreg", "push", "notmnist-synth", url, *SMALL], env)
    here = {
        **env,
        "DSREG_CACHE": str(tmp / "cache"),
    }
    script = tmp / "load_remote.py"
    script.write_text(LOAD)
    say(f"-- {script.name}:{LOAD.rstrip()}")
    say("-- on the machine that pushed (its cache; the splits are ready, so remote= pulls nothing):")
    run(["python", str(script), url], here)
    empty = {**env, "DSREG_CACHE": str(tmp / "empty-cache")}
    say(f"-- a fresh, empty cache ({empty['DSREG_CACHE']}): no file in it yet")
    run(["python", str(script), url], empty)


def main() -> None:
    what = sys.argv[1:] or ["fetch", "pushpull"]
    from dsreg.testing.s3 import S3, S3Server, missing

    if missing():
        raise SystemExit(missing())
    tmp = Path(tempfile.mkdtemp(prefix="dsreg-s3demo-"))
    try:
        with S3Server() as server:
            say(f"local S3 server (moto, the dsreg_s3 fixture's S3Server) listening on {server.endpoint}")
            env = {**os.environ, **server.environ(), "DSREG_CACHE": str(tmp / "cache"), "DSREG_NETWORK": "loopback"}
            say(
                "AWS_ENDPOINT_URL="
                + env["AWS_ENDPOINT_URL"]
                + " AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing DSREG_NETWORK=loopback"
            )
            s3 = S3(server)
            for step in what:
                say(f"== {step}")
                {"fetch": fetch, "pushpull": pushpull}[step](tmp, env, s3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
