"""Issue 15's checks shown end to end, each in a temporary folder removed afterwards (nothing leaves 127.0.0.1).

    python tests/kit_demo.py bugs      # deliberate bugs planted in a Builder, each caught by check_builder by name
    python tests/kit_demo.py doctor    # dsreg doctor on a healthy cache, then with an orphaned .part, a broken plugin and a clash
    python tests/kit_demo.py urls      # dsreg check-urls against loopback mirrors (one dead), dsreg lock, fetch --locked

The planted bugs and the fake plugin packages are the test suite's own (tests/test_check_builder.py,
tests/test_plugins.py), so what this prints is what the tests assert.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def bugs(tmp: Path) -> None:
    import test_check_builder as planted

    from dsreg import plugins
    from dsreg.testing import ConformanceError, check_builder

    warnings.simplefilter("ignore")
    mirror = tmp / "mirror"
    mirror.mkdir()
    (mirror / "toy.bin").write_bytes(planted.DATA)
    cases = [
        ("labels out of range", planted.LabelOutOfRange, {}),
        ("an image of the wrong shape", planted.WrongShape, {}),
        ("a non-deterministic example order", planted.Shuffled, {}),
        ("a collate returning float64 images", planted.Float64Images, {}),
        ("a collate returning float labels", planted.FloatLabels, {}),
        ("a collate that forgets to normalise", planted.Unnormalised, {}),
        (
            "a wrong sha256 (files= stand-in, mirrors= the real bytes)",
            planted.WrongSha,
            {"files": {"toy.bin": planted.blob(400, seed=7)}, "mirrors": [str(mirror)]},
        ),
    ]
    for what, builder, kwargs in cases:
        try:
            check_builder(builder, **(kwargs or {"files": {"toy.bin": planted.DATA}}))
            print(f"{what}: NOT CAUGHT")
        except ConformanceError as exc:
            print(f"{what}:\n  {exc}")
    site = tmp / "site"
    site.mkdir()
    for module, cls in (("pairsone", "One"), ("pairstwo", "Two")):
        (site / f"{module}.py").write_text(planted.CLASHING.format(module=module, cls=cls))
    sys.path.insert(0, str(site))
    plugins._entry_points = lambda: [metadata.EntryPoint(name=n, value=n, group="dsreg") for n in ("pairsone", "pairstwo")]
    try:
        check_builder(planted.Pairs, files={"toy.bin": planted.DATA})
        print("two plugins registering one name: NOT CAUGHT")
    except ConformanceError as exc:
        print(f"two plugins registering one name:\n  {exc}")


def _dsreg(*args: str, env: dict[str, str]) -> None:
    print("$ dsreg " + " ".join(args))
    done = subprocess.run([sys.executable, "-m", "dsreg", *args], capture_output=True, text=True, env=env, timeout=300)
    print((done.stdout + done.stderr).rstrip())
    print(f"[exit {done.returncode}]\n")


def doctor(tmp: Path) -> None:
    from test_plugins import BROKEN_IMPORT, CLASH, GOOD, install_fake_dist

    site = tmp / "site"
    site.mkdir()
    install_fake_dist(site, "dsreg-goodplugin", "goodplugin", GOOD, names=("letters", "digits"))
    install_fake_dist(site, "dsreg-broken", "brokenplugin", BROKEN_IMPORT, "0.3", names=("wrecked",))
    install_fake_dist(site, "dsreg-later", "laterplugin", CLASH, "0.1")
    env = {**os.environ, "PYTHONPATH": str(site), "DSREG_CACHE": str(tmp / "cache"), "DSREG_CONFIG": str(tmp / "none.toml")}
    env.pop("DSREG_STRICT_PLUGINS", None)
    healthy = env | {"DSREG_LOAD_PLUGINS": "goodplugin"}
    _dsreg("fetch", "letters", "-q", env=healthy)
    _dsreg("doctor", env=healthy)
    partial = tmp / "cache" / "downloads" / "partial" / "letters"
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "letters.bin.part").write_bytes(b"\0" * 4096)  # a download killed midway, nobody resuming it
    broken = env | {"DSREG_LOAD_PLUGINS": "goodplugin,brokenplugin,laterplugin"}
    _dsreg("doctor", env=broken)
    _dsreg("list", env=broken)
    _dsreg("info", "wrecked", env=broken)


def urls(tmp: Path) -> None:
    from dsreg.testing import LoopbackServer, registered

    from toydata import blob, make_builder

    os.environ.update(DSREG_CACHE=str(tmp / "cache"), DSREG_CONFIG=str(tmp / "none.toml"), DSREG_BACKOFF="0")
    from click.testing import CliRunner

    from dsreg.cli.app import cli

    def run(*args: str, env: dict[str, str] | None = None) -> None:
        print("$ dsreg " + " ".join(args))
        result = CliRunner().invoke(cli, list(args), env=env)
        print(result.output.rstrip())
        print(f"[exit {result.exit_code}]\n")

    data, other = blob(4000), blob(4000, seed=1)
    lock, fresh = tmp / "dsreg.lock", str(tmp / "fresh-cache")
    with LoopbackServer() as server:
        base = server.serve({"toy.bin": data, "short/toy.bin": data[:3000], "pinny/toy.bin": other})
        toy = make_builder(data, urls=(base + "toy.bin",))
        pinny = make_builder(other, name="pinny", pin=True, urls=(base + "pinny/toy.bin",))
        with registered(toy, pinny):
            run("check-urls", "--mirror", base + "dead/", "--mirror", base + "short/")
            server.serve({"toy.bin": data[:10]})  # the only published URL now serves 10 bytes
            run("check-urls", "toy", "--mirror", base + "dead/")
            server.serve({"toy.bin": data})
            run("fetch", "pinny", "-q")
            run("lock", "toy", "pinny", "-o", str(lock))
            print(lock.read_text())
            run("fetch", "--locked", str(lock), "-q", env={"DSREG_CACHE": fresh, "DSREG_OFFLINE": "1"})
            server.serve({"pinny/toy.bin": other[:-1] + b"\0"})  # upstream changed a file the lock pins
            run("fetch", "--locked", str(lock), "-q", env={"DSREG_CACHE": fresh})
            server.serve({"pinny/toy.bin": other})
            run("fetch", "--locked", str(lock), "-q", env={"DSREG_CACHE": fresh})
            drift = tmp / "drift.lock"
            drift.write_text(lock.read_text().replace("size = 4000", "size = 4001", 1))
            run("fetch", "--locked", str(drift), "-q")


if __name__ == "__main__":
    demos = {"bugs": bugs, "doctor": doctor, "urls": urls}
    if len(sys.argv) != 2 or sys.argv[1] not in demos:
        sys.exit(f"usage: python tests/kit_demo.py {{{'|'.join(demos)}}}")
    folder = Path(tempfile.mkdtemp(prefix="dsreg-kit-demo-"))
    try:
        demos[sys.argv[1]](folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
