"""torch.distributed for the trainer: read torchrun's environment, start and stop the process group.

One process (no torchrun) is a world of size 1 and none of this starts anything. Under torchrun
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set) the trainer joins a process group: nccl on CUDA,
gloo on the CPU.

Several nodes share no filesystem: each has its own cache. ``node_first`` lets each node's local
rank 0 fetch (prepare, or pull from a remote) into its node's cache while the node's other ranks
wait, all nodes at once; then every rank finds the dataset ready in its own node's cache.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["World", "world", "node_first", "EvalShard", "all_sum", "broadcast_object", "gather_objects"]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    #: True when this World started the process group (and so must end it).
    owns_group: bool = False
    #: The processes on this node (torchrun's ``LOCAL_WORLD_SIZE``), and this node's number (``GROUP_RANK``).
    local_size: int = 1
    node: int = 0

    @property
    def main(self) -> bool:
        """True on the process that prints and saves (rank 0)."""
        return self.rank == 0

    @property
    def local_main(self) -> bool:
        """True on the process that fetches into this node's cache (local rank 0)."""
        return self.local_rank == 0

    @property
    def nodes(self) -> int:
        """How many nodes the world spans (torchrun gives every node the same number of processes)."""
        return max(self.size // max(self.local_size, 1), 1)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """End the process group if this World started it."""
        if self.owns_group and dist.is_initialized():
            # Nobody leaves while a peer is still in a collective: with gloo, a rank tearing down
            # early can abort its peer ("terminate called without an active exception").
            dist.barrier()
            dist.destroy_process_group()


def world(device_type: str) -> World:
    """Return the World of this process, joining torchrun's process group when launched by it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    node = int(os.environ.get("GROUP_RANK", rank // max(local_size, 1)))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)  # before nccl starts, so each rank talks from its own GPU
        dist.init_process_group(backend)
        owns = True
    return World(dist.get_rank(), local_rank, dist.get_world_size(), owns, local_size, node)


@contextlib.contextmanager
def node_first(w: World) -> Iterator[None]:
    """Run the block on each node's local rank 0 first, then on the node's other ranks.

    For fetching: the cache is per node (nodes share no filesystem), so a global rank-0-only fetch
    would leave the other nodes' caches empty. Local rank 0 of every node fetches into its own cache
    while the node's other ranks wait at a barrier (one barrier over the whole group: the nodes
    fetch at the same time, and all go on once the slowest node is done); the others then run the
    block and find the dataset ready. A no-op in one process. A node whose local rank 0 fails
    stops the run: its peers then wait at the barrier until torchrun ends them.
    """
    if not w.distributed:
        yield
        return
    if not w.local_main:
        w.barrier()
        yield
        return
    yield
    w.barrier()


class EvalShard(torch.utils.data.Sampler[int]):
    """Every ``size``-th index from ``rank``: disjoint shards that cover the split exactly once.

    (DistributedSampler pads the last shard with repeats, which would count examples twice in a metric.)
    """

    def __init__(self, n: int, rank: int, size: int) -> None:
        self.n, self.rank, self.size = n, rank, size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.size))


def all_sum(tensor: torch.Tensor, w: World) -> torch.Tensor:
    """Sum ``tensor`` over all ranks (in place; a no-op in one process)."""
    if w.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj: Any, w: World, src: int = 0) -> Any:
    """Return rank ``src``'s ``obj`` on every rank."""
    if not w.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any, w: World) -> list[Any]:
    """Return every rank's ``obj``, in rank order, on every rank."""
    if not w.distributed:
        return [obj]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out
