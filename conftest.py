"""Repository-wide test settings: no download from outside this machine, nothing left in the system temp dir."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Set before any test (and inherited by the subprocesses tests start): a builder whose mirrors
# fail falls through to its published URLs; here that is refused at once instead of attempted.
os.environ["DSREG_NETWORK"] = "loopback"


def _one_thread_per_worker() -> None:
    """Under pytest-xdist with a worker per core or more, give torch (and the subprocesses tests start) one thread each.

    Each worker's torch would otherwise start a thread per core, so two workers on two cores run four
    busy threads and spend the difference switching between them. A test that measures threads sets its own.
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and int(workers) >= (os.cpu_count() or 1):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


_one_thread_per_worker()


#: Workers per core that ``-n auto`` starts. Much of this suite's time is waiting, not computing (local
#: HTTP and S3 servers, timeouts it provokes, processes it starts and kills): on 2 cores, 680 tests took
#: 5:05 with 2 workers and 3:45 with 3, for the same CPU time (2026-12-03).
WORKERS_PER_CORE = 1.5


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: WORKERS_PER_CORE workers per usable core (PYTEST_XDIST_AUTO_NUM_WORKERS still wins)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, round(cores * WORKERS_PER_CORE))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked ``slow`` first (in their collected order), then the rest.

    pytest-xdist hands the first tests out in turn to each worker and the rest to whichever is free,
    so the long ones start early, on different workers, and the short ones fill in around them: the
    workers finish together instead of one running a 20 s test alone at the end. Every worker
    collects the same order, as xdist requires.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


#: The prefix dsreg gives its own scratch folders and files (``dsreg-bench-*``, ``dsreg-torchrun-*``, ...).
OWN_PREFIX = "dsreg-"


@pytest.fixture(scope="session", autouse=True)
def system_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point the system temp dir (TMPDIR, ``tempfile``) and dsreg's default cache into this run's basetemp.

    There is one basetemp per xdist worker. Whatever a test or a subprocess it starts writes to "the
    system temp dir", or to the cache when the test set none (e.g. a plugin's memo), lands there: a
    run leaves nothing in /tmp or ~/.cache, parallel workers never share a scratch folder, and pytest
    removes it with its old basetemps.
    """
    folder = tmp_path_factory.getbasetemp() / "system-tmp"
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again on its next call
        patch.setenv("DSREG_CACHE", str(tmp_path_factory.getbasetemp() / "user-cache"))
        yield folder


@pytest.fixture(autouse=True)
def leaves_no_scratch_files(system_temp_dir: Path) -> Iterator[None]:
    """Fail a test that leaves ``dsreg-*`` folders or files in the system temp dir (dsreg must clean up after itself)."""
    before = set(os.listdir(system_temp_dir))
    yield
    left = sorted(name for name in set(os.listdir(system_temp_dir)) - before if name.startswith(OWN_PREFIX))
    if left:
        pytest.fail(
            f"the test left {', '.join(left)} in the system temp dir ({system_temp_dir}): "
            "remove scratch folders when done (or write them under tmp_path)",
            pytrace=False,
        )
