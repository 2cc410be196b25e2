"""User settings: environment variables and the optional config file.

Environment (read at each use, so tests and shells can change them):

    DSREG_CACHE            cache root (default: the platform's user cache dir)
    DSREG_OFFLINE=1        never touch the network; use the cache or say what is missing
    DSREG_MIRRORS          extra mirrors tried before the published URLs:
                           "URL" for every dataset, "name=URL" for one, separated by spaces or ';'
    DSREG_CONFIG           config file (default: <user config dir>/dsreg/config.toml)
    DSREG_RETRIES          attempts per URL before moving to the next mirror (default 3)
    DSREG_TIMEOUT          idle timeout: seconds with no byte received before a request counts as
                           stalled (default 30); a stall is a cut, resumed on the next attempt
    DSREG_CONNECT_TIMEOUT  seconds to open a connection, TLS included (default 10, or DSREG_TIMEOUT
                           when that is smaller)
    DSREG_BACKOFF          seconds before the first retry of a URL, doubled after each (default 1)
    DSREG_NETWORK=loopback downloads may reach only this machine (local paths, file://, 127.0.0.0/8,
                           ::1, localhost; s3:// when its endpoint, AWS_ENDPOINT_URL, is one of
                           these): for tests and air-gapped builds; any other URL is refused
    DSREG_STRICT_PLUGINS=1 a plugin that fails to load is an error instead of being skipped
    DSREG_LOAD_PLUGINS     comma-separated entry point names: load only these plugins
    DSREG_MAX_MEMBER       the largest archive member dsreg reads (default 256MiB; e.g. "1GiB"):
                           a member is held whole in memory while it is handed over, so this also
                           bounds memory (two to three times this value at the peak, counting the
                           member the dataset still holds)
    DSREG_MAX_EXPANDED     the most bytes one archive may expand to, tar headers included (default
                           32GiB); the rest of an archive bomb is never decompressed

Sizes are bytes or a number with a unit (K, M, G, T; KiB, MiB, GiB, TiB; KB, MB, GB, TB). A dataset
may set its own archive limits (Builder attributes ``max_member`` / ``max_expanded``, or the arguments
of ``dsreg.fetching.archive.members``); the user's setting above wins over the dataset's, so raising it is
always enough to read a genuine archive.

The config file is TOML::

    [mirrors]
    "*" = ["https://mirror.example.org/datasets/"]      # every dataset
    notmnist = ["/data/notmnist/", "s3://team/notmnist/"]

    [fetch]                                             # as the DSREG_* variables; they win
    timeout = 30
    connect_timeout = 10
    retries = 3
    backoff = 1.0

    [archive]                                           # as DSREG_MAX_MEMBER / DSREG_MAX_EXPANDED
    max_member = "1GiB"
    max_expanded = "64GiB"
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "offline",
    "retries",
    "timeout",
    "connect_timeout",
    "backoff",
    "config_path",
    "load_config",
    "user_mirrors",
    "parse_size",
    "archive_limit",
]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def offline() -> bool:
    """Return True when DSREG_OFFLINE asks dsreg never to touch the network."""
    return _flag("DSREG_OFFLINE")


_LOCAL_SCHEMES = {"", "file", "local", "memory"}


def _loopback_address(host: str) -> bool:
    # An address, not a name: "127.example.org" is not this machine.
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_network(url: str) -> None:
    """Raise FetchError if DSREG_NETWORK=loopback and ``url`` would leave this machine."""
    mode = os.environ.get("DSREG_NETWORK", "").strip().lower()
    if mode in ("", "on", "any"):
        return
    if mode != "loopback":
        raise ConfigError(f"DSREG_NETWORK={mode!r} is not understood; use 'loopback' or leave it unset")
    from urllib.parse import urlsplit

    from ..errors import FetchError
    from . import objectstore

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _LOCAL_SCHEMES:
        return
    if scheme in objectstore.S3_SCHEMES:
        # s3://bucket/key names a bucket, not a host: what leaves the machine is the endpoint.
        reached = objectstore.endpoint(url)
        if reached and _on_this_machine(urlsplit(reached).hostname or ""):
            return
        where = f"its endpoint {reached}" if reached else "AWS (no AWS_ENDPOINT_URL is set)"
        raise FetchError(f"refused: {scheme}:// reaches {where}, not this machine, and DSREG_NETWORK=loopback is set")
    if _on_this_machine(urlsplit(url).hostname or ""):
        return
    raise FetchError("refused: not on this machine and DSREG_NETWORK=loopback is set")


def _on_this_machine(host: str) -> bool:
    host = host.lower()
    return host == "localhost" or _loopback_address(host)


def _fetch_setting(key: str, default: float, example: str, *, whole: bool = False, zero: bool = False) -> float:
    """Return the ``[fetch] key`` setting: DSREG_<KEY> first, then the config file, then ``default``."""
    env = f"DSREG_{key.upper()}"
    raw: Any = os.environ.get(env, "").strip()
    where = env
    if raw == "":
        table = load_config().get("fetch", {})
        if not isinstance(table, dict):
            raise ConfigError(f"[fetch] in {config_path()} must be a table (timeout = 30, retries = 3)")
        if key not in table:
            return default
        raw, where = table[key], f"[fetch] {key} in {config_path()}"
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero) or (whole and value != int(value)):
        kind = ("whole number" if whole else "number of seconds") + (", 0 or more" if zero else " above 0")
        raise ConfigError(f"{where}={raw!r} is not a {kind}; set it to e.g. {example}")
    return value


def retries() -> int:
    """Return how many attempts each URL gets (DSREG_RETRIES, ``[fetch] retries``; default 3)."""
    return int(_fetch_setting("retries", 3, "3", whole=True))


def timeout() -> float:
    """Return the idle timeout in seconds: how long a request may go without receiving a byte."""
    return _fetch_setting("timeout", 30.0, "30")


def connect_timeout() -> float:
    """Return the seconds allowed to open a connection (default 10, or the idle timeout if smaller)."""
    return _fetch_setting("connect_timeout", min(10.0, timeout()), "10")


def backoff() -> float:
    """Return the seconds before the first retry of a URL (doubled after each failed attempt)."""
    return _fetch_setting("backoff", 1.0, "1", zero=True)


def config_path() -> Path:
    env = os.environ.get("DSREG_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("dsreg", appauthor=False)) / "config.toml"


def load_config() -> dict[str, Any]:
    """Return the parsed config file, or {} when there is none."""
    path = config_path()
    if not path.exists():
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc}); fix or remove it") from exc


def user_mirrors(dataset: str) -> list[str]:
    """Return the user's mirrors for ``dataset``: DSREG_MIRRORS first, then the config file."""
    found: list[str] = []
    for item in re.split(r"[\s;]+", os.environ.get("DSREG_MIRRORS", "").strip()):
        if not item:
            continue
        name, sep, url = item.partition("=")
        if sep and "://" not in name and "/" not in name:
            if name == dataset:
                found.append(url)
        else:
            found.append(item)
    mirrors = load_config().get("mirrors", {})
    if not isinstance(mirrors, dict):
        raise ConfigError(f"[mirrors] in {config_path()} must be a table of name = [URL, ...]")
    for key in (dataset, "*"):
        value = mirrors.get(key, [])
        found.extend([value] if isinstance(value, str) else list(value))
    return found


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_size(value: str | int, where: str) -> int:
    """Return a size such as ``512MiB``, ``2G``, ``1.5GB`` or ``1048576`` in bytes; ``where`` names its source in errors."""
    if isinstance(value, int) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", str(value), re.IGNORECASE)
        if not match:
            raise ConfigError(f"{where}={value!r} is not a size; write bytes or e.g. 512MiB, 2GiB")
        number, unit = float(match[1]), match[2].lower() + ("b" if match[3].lower() == "b" else "")
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise ConfigError(f"{where}={value!r} must be more than 0 bytes; write e.g. 512MiB")
    return size


def archive_limit(name: str) -> int | None:
    """Return the user's archive limit ``max_member`` or ``max_expanded`` in bytes (env, then config file), or None."""
    env = f"DSREG_{name.upper()}"
    value = os.environ.get(env, "").strip()
    if value:
        return parse_size(value, env)
    table = load_config().get("archive", {})
    if not isinstance(table, dict):
        raise ConfigError(f'[archive] in {config_path()} must be a table (max_member = "1GiB", max_expanded = "64GiB")')
    if name in table:
        return parse_size(table[name], f"[archive] {name} in {config_path()}")
    return None
