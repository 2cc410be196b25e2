"""dsreg's test kit, for dsreg's own tests and for plugin authors; one job per module.

    server       ``LoopbackServer`` and ``Faults``: a loopback HTTP server with Range support and
                 injected faults (error statuses with Retry-After, stalls, cuts, ignored or wrong
                 ranges, trickles, redirects, content types)
    trees        a user's data in every container: ``write_tree(root, {path: bytes})`` (a folder),
                 ``pack({path: bytes}, "zip" | "tar" | "tar.gz")`` (archive bytes), and
                 ``registered(*builders)`` (a throwaway registry, as a context manager)
    media        fake data, valid and small, from a seed: ``fake_png``, ``fake_jpeg``, ``fake_wav``,
                 ``fake_flac``, ``fake_text``, ``fake_tree`` (a ``split/class/file`` layout of any of them)
    conformance  ``check_builder(MyBuilder, files={name: fake bytes})``: fetch, prepare and load in a
                 throwaway cache and run every check a plugin must pass; a failure raises
                 ``ConformanceError`` naming the check, the dataset and the fix
    hostile      hostile and damaged archives (escaping members, bombs, corrupt streams), one function each
    s3           ``S3Server``: a local S3 server (moto on 127.0.0.1) and ``S3``, a test's handle on it
    fixtures     the pytest plugin: ``dsreg_cache``, ``dsreg_file_server``, ``dsreg_register``, ``dsreg_s3``

The fixtures need no network and are loaded into every pytest session wherever dsreg is installed
(``pytest11``); their old names ``file_server`` and ``register`` still work and warn once per run.
Everything above is re-exported here: ``from dsreg.testing import check_builder, fake_png, pack``.
The kit's page in the docs is ``docs/testing.md``.
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
from .s3 import S3, S3Server
from .server import Faults, LoopbackServer
from .trees import pack, registered, write_tree

if _pytest is not None:  # the fixtures exist only where pytest does
    from .fixtures import dsreg_cache, dsreg_file_server, dsreg_register, dsreg_s3, dsreg_s3_server, file_server, register

__all__ = [
    "LoopbackServer",
    "Faults",
    "registered",
    "write_tree",
    "pack",
    "dsreg_cache",
    "dsreg_file_server",
    "dsreg_register",
    "dsreg_s3",
    "dsreg_s3_server",
    "S3Server",
    "S3",
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
