"""The one exception tree of dsreg.

    DsregError                      base of everything dsreg raises on purpose
    ├── UnknownDatasetError         no plugin registers that name (lists close names)
    ├── PluginError                 a plugin failed to import, raised in a hook, or clashed
    ├── FetchError                  no mirror delivered a file (lists every URL tried and why)
    ├── ChecksumError               bytes arrived but size/hash differ (expected vs actual, file kept aside)
    ├── ArchiveError                an archive member is unsafe (absolute, '..', link, device) or unreadable
    ├── OfflineError                DSREG_OFFLINE=1 and something is not in the cache (names what)
    ├── CacheError                  the cache is unusable or an entry is damaged
    └── ConfigError                 bad configuration, split expression or option

Every message is one line that says what went wrong and what to do next; the CLI prints it and
exits non-zero (``--debug`` shows the traceback). Advice is worded for whoever reads it: ``str(exc)``
names the Python arguments (``mirrors=``, ``from_path=``) and ``exc.cli_message``, when set, the same
advice as command-line flags (``--mirror``, ``--from``), which is what the CLI prints.
"""

from __future__ import annotations

__all__ = [
    "DsregError",
    "UnknownDatasetError",
    "PluginError",
    "FetchError",
    "ChecksumError",
    "OfflineError",
    "ArchiveError",
    "CacheError",
    "ConfigError",
]


class DsregError(Exception):
    """Base class of every error dsreg raises on purpose."""

    #: The message worded for the command line (flags, commands), when it differs from ``str(self)``.
    cli_message: str | None = None

    def __init__(self, *args: object, cli: str | None = None) -> None:
        super().__init__(*args)
        if cli is not None:
            self.cli_message = cli

    def add_advice(self, python: str, cli: str) -> None:
        """Append advice to the message, worded for Python callers and for the command line."""
        base = str(self)
        self.cli_message = f"{self.cli_message or base}; {cli}"
        self.args = (f"{base}; {python}", *self.args[1:])


class UnknownDatasetError(DsregError, KeyError):
    """No registered dataset has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginError(DsregError):
    """A plugin could not be loaded or registered something invalid."""


class FetchError(DsregError):
    """A file could not be fetched from any of its sources."""


class ChecksumError(DsregError):
    """A file's size or hash does not match what its Builder declares."""


class ArchiveError(DsregError):
    """An archive holds an unsafe member (absolute path, '..', link, device) or cannot be read."""


class OfflineError(DsregError):
    """Offline mode is on and a needed file or prepared split is not cached."""


class CacheError(DsregError):
    """The cache directory or one of its entries cannot be used."""


class ConfigError(DsregError, ValueError):
    """An option, config parameter or split expression is invalid."""
