"""Test kit for dsreg and plugin authors, also registered as a pytest plugin (``pytest11``).

Fixtures (no network needed):

    dsreg_cache      an isolated cache: DSREG_CACHE points at a tmp dir; returns its Path
    file_server      a loopback HTTP server: ``file_server.serve({"a.bin": b"..."})`` returns the
                     base URL; Range support and injected faults (``Faults``: error statuses with
                     Retry-After, stalls, cuts, ignored or wrong ranges, trickles, content types)
    register         register Builder classes in a fresh in-process registry for one test:
                     ``register(MyBuilder, OtherBuilder)``

Plain helpers: ``LoopbackServer`` (the same server, usable outside pytest),
``registered(*builders)`` (a context manager), and for generating a user's data in every
container: ``write_tree(root, {path: bytes})`` (a folder) and ``pack({path: bytes}, "zip" |
"tar" | "tar.gz")`` (archive bytes).

Fake data, valid and small, from a seed (no Pillow, numpy or soundfile needed except for JPEG):
``fake_png``, ``fake_jpeg``, ``fake_wav``, ``fake_flac``, ``fake_text`` and ``fake_tree`` (a
``split/class/file`` layout of any of them, ready for ``pack`` or ``write_tree``).

The conformance suite: ``check_builder(MyBuilder, files={name: fake bytes})`` fetches, prepares and
loads the dataset in a throwaway cache and runs every check a plugin must pass (see its docstring);
a failure raises ``ConformanceError`` with one line naming the check, the dataset and the fix.
"""

from __future__ import annotations

from .conformance import (
    CHECKS,
    Conformance,
    ConformanceError,
    ConformanceWarning,
    check_builder,
)
from .fixtures import pytest as _pytest
from .media import fake_flac, fake_jpeg, fake_png, fake_text, fake_tree, fake_wav
from .server import Faults, LoopbackServer
from .trees import pack, registered, write_tree

if _pytest is not None:  # the fixtures exist only where pytest does (as before the split)
    from .fixtures import dsreg_cache, file_server, register

__all__ = [
    "LoopbackServer",
    "Faults",
    "registered",
    "write_tree",
    "pack",
    "dsreg_cache",
    "file_server",
    "register",
    "fake_png",
    "fake_jpeg",
    "fake_wav",
    "fake_flac",
    "fake_text",
    "fake_tree",
    "check_builder",
    "Conformance",
    "ConformanceError",
    "ConformanceWarning",
    "CHECKS",
]
