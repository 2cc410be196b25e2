"""User settings: environment variables and the optional config file.

Environment (read at each use, so tests and shells can change them):

    DSREG_CACHE            cache root (default: the platform's user cache dir)
    DSREG_OFFLINE=1        never touch the network; use the cache or say what is missing
    DSREG_MIRRORS          extra mirrors tried before the published URLs:
                           "URL" for every dataset, "name=URL" for one, separated by spaces or ';'
    DSREG_CONFIG           config file (default: <user config dir>/dsreg/config.toml)
    DSREG_RETRIES          attempts per URL before moving to the next mirror (default 3)
    DSREG_NETWORK=loopback downloads may reach only this machine (local paths, file://, 127.0.0.0/8,
                           ::1, localhost): for tests and air-gapped builds; any other URL is refused
    DSREG_STRICT_PLUGINS=1 a plugin that fails to load is an error instead of being skipped
    DSREG_LOAD_PLUGINS     comma-separated entry point names: load only these plugins

The config file is TOML::

    [mirrors]
    "*" = ["https://mirror.example.org/datasets/"]      # every dataset
    notmnist = ["/data/notmnist/", "s3://team/notmnist/"]
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["offline", "retries", "config_path", "load_config", "user_mirrors"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def offline() -> bool:
    """Return True when DSREG_OFFLINE asks dsreg never to touch the network."""
    return _flag("DSREG_OFFLINE")


_LOCAL_SCHEMES = {"", "file", "local", "memory"}


def check_network(url: str) -> None:
    """Raise FetchError if DSREG_NETWORK=loopback and ``url`` would leave this machine."""
    mode = os.environ.get("DSREG_NETWORK", "").strip().lower()
    if mode in ("", "on", "any"):
        return
    if mode != "loopback":
        raise ConfigError(f"DSREG_NETWORK={mode!r} is not understood; use 'loopback' or leave it unset")
    from urllib.parse import urlsplit

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _LOCAL_SCHEMES:
        return
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host == "::1" or host.startswith("127."):
        return
    from .errors import FetchError

    raise FetchError("refused: not on this machine and DSREG_NETWORK=loopback is set")


def retries() -> int:
    value = os.environ.get("DSREG_RETRIES", "3")
    try:
        return max(1, int(value))
    except ValueError:
        raise ConfigError(f"DSREG_RETRIES={value!r} is not a whole number; set it to e.g. 3") from None


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
