"""Training on several nodes without a shared filesystem: two torchrun "nodes" on loopback.

Each node is a torchrun agent (``--nnodes 2``, c10d rendezvous on 127.0.0.1) with its OWN
``DSREG_CACHE``; the ranks run the real ``dsreg train`` command in-process (the test's Stripes
builder and a recording model registered around it). Checked: each node's local rank 0 prepared
(or pulled) the dataset into its node's cache once, the ranks' examples were disjoint and together
the whole split once per epoch, and every rank ended with identical weights.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import dsreg
from dsreg.train import distributed
from dsreg.train.checkpoint import load_checkpoint
from dsreg.train.distributed import World, node_first

from trainsets import Stripes

TESTS = Path(__file__).resolve().parent

#: One rank: Stripes (logging who prepared it) and a model that records the indices it trained on,
#: then ``dsreg train`` as typed on the command line; the rank's record is written at the end.
RANK_SCRIPT = """
import json, os, sys, torch
sys.path.insert(0, {tests!r})
from trainsets import Stripes, training_registry
from dsreg.cli.app import cli
from dsreg.train.models import image_mlp

LOG = sys.argv[1]
rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])

class LoggedStripes(Stripes):
    def generate(self, split, files, **config):
        with open(os.path.join(LOG, "prepared.log"), "a") as f:
            f.write(json.dumps({{"rank": rank, "local_rank": local_rank, "cache": os.environ["DSREG_CACHE"], "split": split}}) + "\\n")
        yield from super().generate(split, files, **config)

# The identity of the Stripes the pull test pushed, so that the remote's store is this builder's.
LoggedStripes.__module__, LoggedStripes.__qualname__ = Stripes.__module__, Stripes.__qualname__

class Recorder(torch.nn.Module):
    made = []
    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []
        Recorder.made.append(self)
    def forward(self, batch):
        if self.training:
            self.seen.append(batch["index"].tolist())
        return self.inner(batch)

with training_registry(LoggedStripes) as registry:
    plugin = registry.plugin("multinode-test", "dsreg")
    registry.add_model(plugin, "recorder", lambda info, sample: Recorder(image_mlp(info, sample, hidden=16)),
                       ("image-classification",))
    cli.main(["train", "stripes", "--model", "recorder", *sys.argv[2:]], standalone_mode=False)
model = Recorder.made[-1]
torch.save({{"seen": model.seen, "state": model.state_dict(), "cache": os.environ["DSREG_CACHE"],
            "world": int(os.environ["WORLD_SIZE"])}}, os.path.join(LOG, f"rank{{rank}}.pt"))
"""

TRAIN_ARGS = ["--epochs", "2", "--batch-size", "8", "--lr", "3e-3", "-c", "n=96", "--quiet", "--threads", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_nodes(
    tmp_path: Path, args: list[str], per_node: int = 1, log_name: str = "log", caches_name: str = "cache"
) -> tuple[list[Path], list[dict], list[str]]:
    """Run two torchrun agents at once, each with its own cache and run folder; return the caches, every rank's record and the agents' output.

    Node ``n``'s cache is ``node{n}-{caches_name}`` (a new name: empty caches); its run folder is
    always ``node{n}/run``. ``per_node=2`` runs four ranks (it passes too, at about twice the time:
    1 keeps the suite fast).
    """
    script, log = tmp_path / "rank.py", tmp_path / log_name
    script.write_text(textwrap.dedent(RANK_SCRIPT.format(tests=str(TESTS))))
    log.mkdir()
    (tmp_path / "tmp").mkdir(exist_ok=True)
    port = free_port()
    caches = [tmp_path / f"node{n}-{caches_name}" for n in range(2)]
    agents = []
    for n, cache in enumerate(caches):
        node_env = {
            **os.environ,
            "DSREG_CACHE": str(cache),
            "TMPDIR": str(tmp_path / "tmp"),  # torchrun's own scratch stays in the test's folder
            "OMP_NUM_THREADS": "1",
        }
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--nproc-per-node",
            str(per_node),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            f"127.0.0.1:{port}",
            "--node-rank",
            str(n),
            str(script),
            str(log),
            *args,
            "--out",
            "run",
        ]
        # Each node in its own folder, and --out relative to it: a run folder no other node can see.
        home = tmp_path / f"node{n}"
        home.mkdir(exist_ok=True)
        agents.append(subprocess.Popen(cmd, cwd=home, env=node_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for agent in agents:
            outputs.append(agent.communicate(timeout=120)[0])
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
    for agent, output in zip(agents, outputs):
        assert agent.returncode == 0, output[-3000:]
    ranks = [torch.load(log / f"rank{r}.pt", weights_only=True) for r in range(2 * per_node)]
    return caches, ranks, outputs


def prepared(tmp_path: Path, log_name: str = "log") -> list[dict]:
    path = tmp_path / log_name / "prepared.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def manifests(cache: Path) -> list[dict]:
    """The stripes stores in ``cache``: each one's manifest."""
    return [json.loads(p.read_text()) for p in cache.glob("datasets/stripes/prepared/*/manifest.json")]


def check_training(ranks: list[dict], caches: list[Path], n: int = 96, epochs: int = 2, first: int = 1) -> None:
    """Each rank ran on one node's cache; per epoch the ranks' examples are disjoint and cover the split once; weights agree."""
    assert {r["world"] for r in ranks} == {len(ranks)}
    assert sorted({r["cache"] for r in ranks}) == sorted(str(c) for c in caches)  # both nodes took part, each on its own cache
    steps = len(ranks[0]["seen"]) // epochs
    assert all(len(r["seen"]) == epochs * steps for r in ranks)  # DDP: the same number of steps everywhere
    for epoch in range(epochs):
        mine = [[i for b in r["seen"][epoch * steps : (epoch + 1) * steps] for i in b] for r in ranks]
        every = sorted(i for m in mine for i in m)
        assert every == list(range(n)), f"epoch {first + epoch}: not every example exactly once"  # disjoint and complete
        shares = ", ".join(f"rank {r} ({Path(ranks[r]['cache']).name}) {len(m)}" for r, m in enumerate(mine))
        print(f"epoch {first + epoch}: {shares} examples; overlap {len(every) - len(set(every))}; together {len(set(every))} of {n}")
    if epochs > 1:  # the sampler is told the epoch: every epoch is a new order
        assert ranks[0]["seen"][:steps] != ranks[0]["seen"][steps : 2 * steps], "the same order in epochs 1 and 2"
    first = ranks[0]["state"]
    for other in ranks[1:]:
        assert first.keys() == other["state"].keys() and all(torch.equal(first[k], other["state"][k]) for k in first)
    print(f"final weights identical on all {len(ranks)} ranks ({len(first)} tensors)")


# -- node_first in one process: the order of the block and the barrier --------------------------


@pytest.mark.parametrize(
    ("w", "expected"),
    [
        (World(rank=0, local_rank=0, size=4, local_size=2), ["block", "barrier"]),
        (World(rank=2, local_rank=0, size=4, local_size=2, node=1), ["block", "barrier"]),  # node 1's rank 0 fetches too
        (World(rank=3, local_rank=1, size=4, local_size=2, node=1), ["barrier", "block"]),
        (World(rank=1, local_rank=1, size=4, local_size=2), ["barrier", "block"]),
        (World(), ["block"]),
    ],
)
def test_node_first_runs_local_rank_zero_before_the_barrier(monkeypatch, w, expected):
    order: list[str] = []
    monkeypatch.setattr(distributed.dist, "barrier", lambda: order.append("barrier"))
    with node_first(w):
        order.append("block")
    assert order == expected
    assert w.local_main is (w.local_rank == 0) and w.nodes == (2 if w.distributed else 1)


def test_world_reads_the_node_from_torchrun(monkeypatch):
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 3)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 4)
    w = distributed.world("cpu")
    assert (w.rank, w.local_rank, w.size, w.local_size, w.node, w.local_main, w.nodes) == (3, 1, 4, 2, 1, False, 2)


# -- two nodes on loopback ----------------------------------------------------------------------


@pytest.mark.slow
def test_two_nodes_prepare_each_into_their_own_cache_and_stream_then_pull_and_resume_from_rank_0s_checkpoint(
    dsreg_register, dsreg_cache, tmp_path
):
    """Two launches of two nodes (one test: each launch costs four interpreters that import torch).

    First, each node's local rank 0 prepares the dataset into its node's empty cache and the ranks
    stream disjoint parts for two epochs; only rank 0's node writes the checkpoint. Then, on two new
    empty caches, the nodes pull a pushed store instead of preparing, and resume from that
    checkpoint (which the other node does not have) for a third epoch, map-style.
    """
    caches, ranks, outputs = two_nodes(tmp_path, ["--streaming", *[a for a in TRAIN_ARGS if a != "--quiet"]])
    assert sum("stripes: recorder (" in out and ", 2 processes on 2 nodes; 96 train examples" in out for out in outputs) == 1
    for cache in caches:  # each node's cache holds the prepared store, train and test
        (store,) = manifests(cache)
        assert {s: store["splits"][s]["examples"] for s in ("train", "test")} == {"train": 96, "test": 24}
        print(f"{cache.name}: stripes prepared, train 96 + test 24 examples")
    log = prepared(tmp_path)
    assert sorted((e["cache"], e["split"]) for e in log) == sorted((str(c), s) for c in caches for s in ("test", "train"))
    assert {e["local_rank"] for e in log} == {0}  # each node's local rank 0 prepared, once per split
    check_training(ranks, caches)

    # Only rank 0's node has checkpoint.pt; the other node resumes from it all the same (rank 0 sends it).
    (written,) = [p for p in (tmp_path / f"node{n}" / "run" / "checkpoint.pt" for n in range(2)) if p.exists()]
    dsreg_register(Stripes)
    remote = tmp_path / "remote"
    dsreg.push("stripes", remote.as_uri(), quiet=True, n=96)  # prepared once more, here, and pushed
    resumed_args = ["--epochs", "3", *TRAIN_ARGS[2:], "--remote", remote.as_uri(), "--resume"]
    pulled, resumed, _ = two_nodes(tmp_path, resumed_args, log_name="log-resumed", caches_name="pulled")
    assert prepared(tmp_path, "log-resumed") == []  # no node prepared: both pulled
    for cache in pulled:
        (store,) = manifests(cache)
        assert {s: store["splits"][s]["examples"] for s in ("train", "test")} == {"train": 96, "test": 24}
        print(f"{cache.name}: stripes pulled from {remote.name}/ (no prepare), train 96 + test 24 examples")
    check_training(resumed, pulled, epochs=1, first=3)  # the third epoch only, on every rank
    assert [e["epoch"] for e in load_checkpoint(written)["history"]] == [1, 2, 3]
    print(f"resumed on both nodes from {written.relative_to(tmp_path)} alone: history epochs 1, 2, 3")
    before, after = ranks[0]["state"], resumed[0]["state"]
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained on from there
