"""dsreg.train: one trainer for any registered dataset, on CPU or GPU, in one process or under torchrun.

    from dsreg.train import Trainer

    settings = TrainSettings(epochs=3, out_dir="runs/a")   # or keywords: Trainer(..., epochs=3, out_dir="runs/a")
    trainer = Trainer("image-cnn", "notmnist-synth", "notmnist-synth:test", settings=settings)
    history = trainer.fit()             # one dict per epoch: loss, accuracy, eval figures, time
    print(trainer.evaluate())           # loss, accuracy, per-class accuracy

Inside ``fit`` is the study note's loop (zero_grad → forward → loss → backward → step) and nothing
that hides it: the trainer picks the device and precision, moves batches (pinned memory,
non-blocking copies), shards them under torchrun, keeps a per-epoch checkpoint that resumes exactly,
and reports. Datasets are ``dsreg.Dataset`` objects or names (``"name"`` or ``"name:split"``).

Exact resume: the sampler's order is a function of ``(seed, epoch)`` only (a generator seeded per
epoch), and the checkpoint holds the model, optimizer, scheduler and every RNG state, so
stopping after any epoch and resuming gives the same weights as never stopping.

Streaming: ``train_data`` may be a ``dsreg.StreamingDataset`` (``dsreg.load(..., streaming=True)``).
It shards itself over ranks and workers (the trainer sets its rank and world, and under torchrun
``balance="pad"`` so every rank takes the same number of steps), the trainer calls its
``set_epoch`` each epoch, and the checkpoint holds its ``state_dict()``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..store.collate import Batch
from .checkpoint import FORMAT, load_checkpoint, plain, rng_state, save, set_rng_state
from .distributed import EvalShard, World, all_sum, broadcast_object, gather_objects, node_first, world
from .models import build_model, sample_batch
from .settings import FALLBACKS, PRECISIONS, TrainSettings, dataset_defaults

__all__ = [
    "Trainer",
    "TrainSettings",
    "build_model",
    "load_checkpoint",
    "pick_device",
    "pick_precision",
    "sample_batch",
    "CHECKPOINT",
    "METRICS",
    "FALLBACKS",
    "dataset_defaults",
]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
#: Settings that say where a run lives and how it reports, or that the machine's load picks
#: (threads): a resume does not list them among the settings that changed.
_NOT_COMPARED = ("out_dir", "resume", "quiet", "progress", "threads")


# -- choosing where and how to compute ----------------------------------------------------------
def pick_device(device: str | torch.device = "auto") -> torch.device:
    """Return ``device``, or for "auto" the first available of cuda, mps and cpu."""
    if str(device) != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but CUDA is not available here; use --device cpu or auto")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_threads(threads: int | None = None, processes: int = 1) -> int:
    """Return how many intra-op threads a CPU run should use: ``threads``, or the cores that are free.

    Left alone, torch uses every core, and its OpenMP threads spin-wait for the slowest of them:
    on a 2-core machine already running other jobs, an epoch of ``dsreg train shapes`` took 58 s
    with 2 threads and 18 s with 1. So "auto" counts the cores this process may use, less the
    1-minute load average, shared among ``processes`` (torchrun ranks on one machine), at least 1.
    A thread count set by the user (``OMP_NUM_THREADS``, or ``torch.set_num_threads`` before the
    trainer starts) is kept.
    """
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads={threads}: give a whole number >= 1 (or None to choose)")
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    current = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS") or current != cores:
        return current
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, int(cores - busy + 0.5) // max(processes, 1))


def pick_precision(precision: str, device: torch.device) -> str:
    """Return "fp32", "bf16" or "fp16"; "auto" is bf16 on GPUs that support it, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 needs a CUDA device (it uses a gradient scaler); use bf16 or fp32 here")
    return precision


# -- datasets and models ------------------------------------------------------------------------
def _dataset(spec: Any, split: str, config: dict[str, Any]) -> Any:
    """Return ``spec`` if it is a dataset, else load ``"name"`` or ``"name:split"``."""
    if not isinstance(spec, str):
        return spec
    from ..api import load

    name, _, chosen = spec.partition(":")
    return load(name, split=chosen or split, **config)


def _streaming(ds: Any) -> bool:
    return isinstance(ds, torch.utils.data.IterableDataset)


def _on_world(ds: Any, w: World, balance: str) -> Any:
    """Return the streaming dataset ``ds`` read as this rank of ``w`` (and ``balance``), a copy if it was set otherwise."""
    changes: dict[str, Any] = {}
    if (ds.rank, ds.world_size) != (w.rank, w.size):
        changes.update(rank=w.rank, world_size=w.size)
    if w.distributed and ds.balance != balance:
        changes["balance"] = balance
    return ds.replace(**changes) if changes else ds


def _fixed(ds: Any) -> bool:
    """True when every column is a fixed-shape tensor or a number, so a split is one tensor per column."""
    from ..builder import Builder

    if _streaming(ds):
        return False
    if getattr(ds, "transform", None) is not None or type(ds.builder).decode_example is not Builder.decode_example:
        return False
    return all(f.fixed for f in ds.features.values())


def _nbytes(ds: Any) -> int:
    return sum(f.nbytes or 0 for f in ds.features.values()) * len(ds)


def _move(batch: dict[str, Any], device: torch.device, non_blocking: bool) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class _Preloaded:
    """A whole split held as one tensor per column on the device; batches are gathered there.

    Columns stay in their stored dtype (uint8 images: a quarter of float32), and the dataset's own
    collate_fn runs on each gathered batch, so normalisation is the dataset's, now on the device.
    """

    def __init__(self, ds: Any, device: torch.device) -> None:
        every = ds.__getitems__(range(len(ds)))
        self.columns = {k: v.to(device) for k, v in every.items()}
        self.collate = ds.collate_fn
        self.device = device
        #: Where collectives run: nccl needs CUDA tensors, gloo CPU ones.
        self._reduce_device = device if device.type == "cuda" else torch.device("cpu")

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[dict[str, Any]]:
        for idx in order.to(self.device).split(batch_size):
            batch = Batch({k: v.index_select(0, idx) for k, v in self.columns.items()})
            batch.ragged = ()
            yield _move(self.collate(batch), self.device, False)


def check_run_folder(path: str | os.PathLike[str]) -> Path:
    """Create the run folder ``path`` and prove a file can be written there, or raise ConfigError in one line."""
    folder = Path(path)
    probe = folder / f".dsreg-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot write the run folder {folder} ({reason}); choose a writable --out folder (out_dir=)") from None
    return folder


class _IndexBatches(torch.utils.data.Sampler):
    """``sampler``'s order in batches of int64 arrays, as ``BatchSampler(sampler, batch_size)`` groups it.

    The same batches, but each is one array slice for ``Dataset.__getitems__`` rather than a list of
    ``batch_size`` Python ints: on small steps (text-bag at batch 32) the list path cost the trainer
    about 5 % against a hand-written loop over ``ds.loader(shuffle=True)``, which draws arrays.
    """

    def __init__(self, sampler: Any, batch_size: int) -> None:
        self.sampler, self.batch_size = sampler, batch_size

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        order = np.fromiter(iter(self.sampler), dtype=np.int64, count=len(self.sampler))
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]


def _rate(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


# -- the trainer --------------------------------------------------------------------------------
class Trainer:
    """Train a classifier on a dsreg dataset: see the module docstring and ``TrainSettings``.

    ``model``: an ``nn.Module``, a registered model name, or None (``settings.model``, else the
    dataset's ``train_defaults``, else the task's default). ``train_data`` and ``eval_data``: a
    ``dsreg.Dataset``, ``"name"`` or ``"name:split"`` (loaded with the dataset ``config``).
    ``settings``: a ``TrainSettings``, the documented way to configure a run; its training settings
    left None take the train data's ``train_defaults``, else ``FALLBACKS`` (``TrainSettings.for_dataset``).
    ``**options``: any ``TrainSettings`` field as a keyword (``Trainer(model, ds, epochs=3)``),
    applied over ``settings``; a None keyword is "not given".
    ``loss``: ``(logits, target) -> loss`` (default: cross-entropy for classification tasks).
    ``optimizer``: None (AdamW with the settings' lr and weight_decay), an optimizer, or ``params -> optimizer``.
    ``inputs``: what the model is called with: None → the batch dict (dsreg models), a column
    name → that tensor, a callable → ``inputs(batch)``. ``log``: where lines go (default ``print``).

    After construction ``trainer.settings`` holds what the run uses, every choice made (the
    dataset's defaults, the device, precision, threads, workers, preload): a ``TrainSettings``
    that rebuilds the same run when given to another Trainer with the same model and data.
    """

    def __init__(
        self,
        model: nn.Module | str | None = None,
        train_data: Any = None,
        eval_data: Any = None,
        *,
        settings: TrainSettings | None = None,
        config: dict[str, Any] | None = None,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        optimizer: Any = None,
        inputs: str | Callable[[dict[str, Any]], Any] | None = None,
        log: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        if train_data is None:
            raise ConfigError("Trainer needs train_data: a dsreg.Dataset or a dataset name")
        own_module = isinstance(model, nn.Module)
        # The keyword arguments (and a model named by string) are applied over the settings object, here only.
        given = (settings or TrainSettings()).with_options({**options, "model": model if isinstance(model, str) else None})
        if own_module and given.model is not None:
            raise ConfigError(f"Trainer: model is an nn.Module and settings.model is {given.model!r}; give one of them")
        if given.out_dir is not None:
            check_run_folder(given.out_dir)  # before any data is fetched
        device = pick_device(given.device)
        self.world: World = world(device.type)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.world.local_rank if self.world.distributed else torch.cuda.current_device())
        self.device = device
        #: Where collectives run: nccl needs CUDA tensors, gloo CPU ones.
        self._reduce_device = device if device.type == "cuda" else torch.device("cpu")
        self.precision = pick_precision(given.precision, device)
        #: Intra-op threads while fitting and evaluating on the CPU (restored afterwards).
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world.size))  # torchrun's processes on this machine
        self.threads = pick_threads(given.threads, local) if device.type == "cpu" else None
        self.seed = given.seed
        self.quiet = given.quiet or not self.world.main
        self.progress = (not self.quiet) and (given.progress if given.progress is not None else sys.stderr.isatty())
        self._log = log or print
        self.inputs = inputs
        self._seed_everything(given.seed, given.deterministic)

        # Each node's local rank 0 fetches into its node's cache first; the node's others wait, then find it cached.
        self.config = dict(config or {})
        with node_first(self.world):
            self.train_data = _dataset(train_data, "train", self.config)
            self.eval_data = _dataset(eval_data, "test", self.config) if eval_data is not None else None
        #: A StreamingDataset reads its own part per rank: DDP needs equal step counts, so "pad".
        self.streaming = _streaming(self.train_data)
        if self.streaming:
            self.train_data = _on_world(self.train_data, self.world, "pad")

        # What was given wins; then the dataset's own train_defaults; then the trainer's fallbacks.
        chosen = given.for_dataset(self.train_data, own_module=own_module)
        assert chosen.epochs and chosen.batch_size and chosen.lr and chosen.weight_decay is not None  # for_dataset filled them
        self.epochs: int = chosen.epochs
        self.batch_size: int = chosen.batch_size
        self.lr: float = chosen.lr
        self.eval_batch_size = chosen.eval_batch_size or max(chosen.batch_size, 256)
        self.schedule, self.clip_grad = chosen.schedule, chosen.clip_grad

        info = self.train_data.info
        self.info = info
        self.classes = list(self.train_data.classes)
        if chosen.target is None:
            from .models import target_column

            self.target = target_column(info)
        else:
            self.target = chosen.target
        self.loss_fn = loss if loss is not None else self._default_loss(info.task)

        # Model: built from the registry with the seeded RNG, so every rank starts identical.
        if isinstance(model, nn.Module):
            self.model_name = type(model).__name__
        else:
            self.model_name, model = build_model(chosen.model, info, sample_batch(self.train_data), **(chosen.model_options or {}))
        self.module: nn.Module = model.to(self.device)
        self.model: nn.Module = self.module
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)

        self.optimizer: torch.optim.Optimizer
        if optimizer is None:
            self.optimizer = torch.optim.AdamW(self.module.parameters(), lr=self.lr, weight_decay=chosen.weight_decay)
        elif isinstance(optimizer, torch.optim.Optimizer):
            self.optimizer = optimizer
        else:
            self.optimizer = optimizer(self.module.parameters())
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

        # Data: one DataLoader (or the device-resident copy) over a per-epoch seeded shard order.
        on_gpu = self.device.type == "cuda"
        workers = chosen.num_workers
        self.num_workers = workers if workers is not None else (min(4, (os.cpu_count() or 2) // 2) if on_gpu else 0)
        self.pin_memory = on_gpu if chosen.pin_memory is None else chosen.pin_memory
        self.non_blocking = on_gpu and self.pin_memory
        self.preloaded = self._want_preload(chosen.preload, self.train_data)
        self.sampler: torch.utils.data.DistributedSampler[Any] | None = None
        if not self.streaming:
            self.sampler = torch.utils.data.DistributedSampler(
                self.train_data,
                num_replicas=self.world.size,
                rank=self.world.rank,
                shuffle=True,
                seed=self.seed,
            )
        self._loader_rng = torch.Generator()
        self._resident: dict[int, _Preloaded] = {}
        self._loaders: dict[tuple[str, int], Any] = {}
        if self.sampler is not None:
            self.steps_per_epoch = math.ceil(len(self.sampler) / self.batch_size)
        else:
            self.steps_per_epoch = self.train_data.num_batches(self.batch_size, self.num_workers)
        self.total_steps = self.steps_per_epoch * self.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: self._lr_factor(step))

        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        #: A streamed epoch's running sums: where a mid-epoch stop left them (``_partial``), and live (``_running``).
        self._partial: dict[str, Any] | None = None
        self._running: dict[str, Any] | None = None
        self._stop_requested = False
        # Rank 0's folder wins, so ranks that computed a default name a second later agree with it.
        shared = broadcast_object(chosen.out_dir, self.world)
        self.out_dir = Path(shared) if shared is not None else None
        #: What this run uses, every choice made: the settings given, filled and decided here.
        self.settings = chosen.replace(
            model=None if own_module else self.model_name,
            eval_batch_size=self.eval_batch_size,
            target=self.target,
            device=str(self.device),
            precision=self.precision,
            threads=self.threads,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            preload=self.preloaded,
            out_dir=shared,
            quiet=self.quiet,
            progress=self.progress,
        )
        resume = chosen.resume
        if resume:
            path = Path(resume) if not isinstance(resume, bool) else (self.out_dir / CHECKPOINT if self.out_dir else None)
            if path is None:
                raise ConfigError("resume=True needs out_dir= (the folder of the run to continue) or a checkpoint path")
            ckpt = self._read_checkpoint(path)
            if ckpt is not None:
                self._restore(path, ckpt)
            elif not isinstance(resume, bool):
                raise ConfigError(f"no checkpoint at {path} to resume from")
            else:
                self._say(f"no checkpoint in {self.out_dir}; starting a new run")

    # -- setup helpers ------------------------------------------------------------------------
    def _say(self, line: str) -> None:
        if not self.quiet:
            self._log(line)

    @staticmethod
    def _default_loss(task: str) -> nn.Module:
        if task.endswith("classification"):
            return nn.CrossEntropyLoss()
        raise ConfigError(f"no default loss for task {task!r}; pass loss= to the Trainer")

    def _seed_everything(self, seed: int, deterministic: bool) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # also seeds every CUDA device
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _want_preload(self, preload: bool | str, ds: Any) -> bool:
        if _streaming(ds):
            if preload is True:
                raise ConfigError(f"{ds.info.name} is streamed; it cannot be preloaded (drop --preload or --streaming)")
            return False
        fixed = _fixed(ds)
        if preload is True and not fixed:
            raise ConfigError(f"{ds.info.name} has variable-length or decoded columns; it cannot be preloaded (drop --preload)")
        if preload == "auto":
            if self.device.type != "cuda" or not fixed:
                return False
            free, _ = torch.cuda.mem_get_info(self.device)
            return _nbytes(ds) < free // 4  # leave room for the model, activations and the eval split
        return bool(preload)

    def _lr_factor(self, step: int) -> float:
        t = min(step, self.total_steps) / max(self.total_steps, 1)
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0 - t if self.schedule == "linear" else 1.0

    @contextlib.contextmanager
    def _cpu_threads(self) -> Iterator[None]:
        """Run the block with ``self.threads`` intra-op threads, then restore the caller's setting."""
        before = torch.get_num_threads()
        if self.threads is not None and self.threads != before:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def _autocast(self) -> Any:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # -- batches ------------------------------------------------------------------------------
    def _resident_copy(self, ds: Any) -> _Preloaded:
        if id(ds) not in self._resident:
            self._resident[id(ds)] = _Preloaded(ds, self.device)
        return self._resident[id(ds)]

    def _loader(self, role: str, ds: Any, sampler: Any, batch_size: int) -> Any:
        """Return the DataLoader for ``role`` ("train" or "eval"), made once: workers persist across epochs."""
        key = (role, batch_size)
        if key not in self._loaders:
            workers = self.num_workers
            self._loaders[key] = ds.loader(
                batch_sampler=_IndexBatches(sampler, batch_size),
                num_workers=workers,
                pin_memory=self.pin_memory,
                persistent_workers=workers > 0,
                generator=self._loader_rng,
            )
        return self._loaders[key]

    def _batches(self, ds: Any, sampler: Any, batch_size: int) -> Iterator[dict[str, Any]]:
        if self.streaming:
            key = ("train", batch_size)
            if key not in self._loaders:  # workers start afresh each epoch: they read the epoch set here
                # (its own generator: a new iterator after a mid-epoch resume draws nothing from the global RNG)
                self._loaders[key] = ds.loader(
                    batch_size=batch_size, num_workers=self.num_workers, pin_memory=self.pin_memory, generator=self._loader_rng
                )
            for batch in self._loaders[key]:
                yield _move(batch, self.device, self.non_blocking) if self.device.type != "cpu" else batch
            return
        if self.preloaded:
            yield from self._resident_copy(ds).batches(torch.tensor(list(sampler), dtype=torch.int64), batch_size)
            return
        loader = self._loader("train", ds, sampler, batch_size)
        if self.device.type == "cpu":
            yield from loader
        else:
            for batch in loader:
                yield _move(batch, self.device, self.non_blocking)

    def _sum_over_ranks(self, values: list[float]) -> list[float]:
        """Sum numbers over all ranks in float64 (on the GPU for nccl, else the CPU)."""
        if not self.world.distributed:
            return [float(v) for v in values]
        return all_sum(torch.tensor(values, dtype=torch.float64, device=self._reduce_device), self.world).tolist()

    def _call(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        if self.inputs is None:
            return model(batch)
        return model(batch[self.inputs]) if isinstance(self.inputs, str) else model(self.inputs(batch))

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train until ``epochs`` are done (continuing a resumed run); return the per-epoch history.

        A streamed run with an ``out_dir`` in one process stops at the end of the step when
        interrupted (Ctrl-C, SIGINT): it writes a mid-epoch checkpoint (the stream's position, the
        epoch's running sums) and raises KeyboardInterrupt; ``resume`` continues that epoch where it
        stopped. A second Ctrl-C stops at once.
        """
        with self._cpu_threads(), self._stop_at_step_end():
            try:
                return self._fit()
            except KeyboardInterrupt:
                if self._running is not None and self._stop_requested:
                    self._partial = plain(self._running)
                    self.save_checkpoint()
                    self._say(f"stopped mid-epoch {self.epoch + 1} after {self._running['seen']:,} examples; saved {self.out_dir}")
                raise
            finally:
                self._running = self._partial = None

    @contextlib.contextmanager
    def _stop_at_step_end(self) -> Iterator[None]:
        """While fitting a streamed run that can be saved mid-epoch, turn the first SIGINT into a stop at the step's end."""
        import signal
        import threading

        self._stop_requested = False
        if not (self.streaming and self.out_dir is not None and not self.world.distributed) or (
            threading.current_thread() is not threading.main_thread()
        ):
            yield
            return

        def request(signum: int, frame: Any) -> None:
            self._stop_requested = True
            signal.signal(signal.SIGINT, previous)  # a second Ctrl-C stops at once

        previous = signal.signal(signal.SIGINT, request)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _fit(self) -> list[dict[str, Any]]:
        params = [p for p in self.module.parameters() if p.requires_grad]
        while self.epoch < self.epochs:
            epoch = self.epoch
            (self.train_data if self.sampler is None else self.sampler).set_epoch(epoch)
            self._loader_rng.manual_seed(self.seed * 1_000_003 + epoch)  # worker seeds depend on the epoch only
            self.model.train()
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), dtype=torch.int64, device=self.device)
            seen = 0
            used_lr = self.optimizer.param_groups[0]["lr"]
            if self._partial is not None:  # a streamed epoch stopped mid-way: its sums so far
                loss_sum.fill_(self._partial["loss_sum"])
                correct.fill_(self._partial["correct"])
                seen, used_lr = int(self._partial["seen"]), float(self._partial["used_lr"])
                self._partial = None
            running: dict[str, Any] = {"loss_sum": 0.0, "correct": 0, "seen": seen, "used_lr": used_lr}
            self._running = running if self.streaming else None
            bar = self._bar(epoch)
            shown = start = time.perf_counter()
            for batch in self._batches(self.train_data, self.sampler, self.batch_size):
                y = batch[self.target]
                self.optimizer.zero_grad(set_to_none=True)
                with self._autocast():
                    out = self._call(self.model, batch)
                    loss = self.loss_fn(out, y)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    if self.clip_grad:
                        self.scaler.unscale_(self.optimizer)
                        nn.utils.clip_grad_norm_(params, self.clip_grad)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    loss.backward()
                    if self.clip_grad:
                        nn.utils.clip_grad_norm_(params, self.clip_grad)
                    self.optimizer.step()
                # The lr this step used: after the epoch's last scheduler step the optimizer already
                # holds the next epoch's (0 after the final one), which is not what the epoch ran at.
                used_lr = self.optimizer.param_groups[0]["lr"]
                self.scheduler.step()
                # Running sums stay on the device: reading them every step would stall a GPU.
                n = y.shape[0]
                loss_sum.add_(loss.detach().float(), alpha=n)  # one kernel: a step of a small net is ~1 ms
                correct.add_((out.detach().argmax(1) == y).sum())
                seen += n
                if self._stop_requested:  # a SIGINT during this step: stop here, where the stream's count is exact
                    running.update(loss_sum=loss_sum.item(), correct=int(correct.item()), seen=seen, used_lr=used_lr)
                    raise KeyboardInterrupt
                if bar is not None:
                    bar.update(n)
                    now = time.perf_counter()
                    if now - shown > 0.5:
                        shown = now
                        bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", ex_s=_rate(seen / (now - start)), refresh=False)
            if bar is not None:
                bar.close()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - start
            total_loss, hits, count = self._sum_over_ranks([loss_sum.item(), correct.item(), seen])
            count = int(count)
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "loss": total_loss / count,
                "accuracy": hits / count,
                "examples": count,
                "seconds": seconds,
                "examples_per_s": count / seconds,
                "lr": used_lr,
            }
            if self.eval_data is not None:
                ev = self.evaluate()
                row["eval_loss"], row["eval_accuracy"] = ev["loss"], ev["accuracy"]
            self.history.append(row)
            self.epoch = epoch + 1
            self._say(self._epoch_line(row))
            if self.out_dir is not None:
                self.save_checkpoint()
                self.write_metrics()
        return self.history

    def _bar(self, epoch: int) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=len(self.sampler if self.sampler is not None else self.train_data),
            desc=f"epoch {epoch + 1}/{self.epochs}",
            unit="ex",
            unit_scale=True,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def _epoch_line(self, row: dict[str, Any]) -> str:
        width = len(str(self.epochs))
        line = f"epoch {row['epoch']:>{width}}/{self.epochs}  loss {row['loss']:.4f}  acc {row['accuracy']:6.1%}"
        if "eval_loss" in row:
            line += f"  | eval loss {row['eval_loss']:.4f}  acc {row['eval_accuracy']:6.1%}"
        return line + f"  | {row['seconds']:.1f}s  {_rate(row['examples_per_s'])} ex/s  lr {row['lr']:.2e}"

    def evaluate(self, data: Any = None, *, batch_size: int | None = None) -> dict[str, Any]:
        """Return loss, accuracy and per-class accuracy on ``data`` (default: the eval data), over all ranks."""
        with self._cpu_threads(), torch.no_grad():
            return self._evaluate(data, batch_size)

    def _evaluate(self, data: Any, batch_size: int | None) -> dict[str, Any]:
        ds = self.eval_data if data is None else _dataset(data, "test", self.config)
        if ds is None:
            raise ConfigError("no evaluation data: pass eval_data= to the Trainer or a dataset to evaluate()")
        batch_size = batch_size or self.eval_batch_size
        module, was_training = self.module, self.module.training
        module.eval()
        k = max(len(self.classes), 1)
        loss_sum = torch.zeros((), device=self.device)  # float32: MPS has no float64
        hits = torch.zeros(k, dtype=torch.int64, device=self.device)
        totals = torch.zeros(k, dtype=torch.int64, device=self.device)
        shard = EvalShard(len(ds), self.world.rank, self.world.size)
        if _streaming(ds):  # each rank reads its own part, every example once ("exact")
            loader = _on_world(ds, self.world, "exact").loader(batch_size=batch_size, pin_memory=self.pin_memory)
            batches: Iterator[dict[str, Any]] = (_move(b, self.device, self.non_blocking) for b in loader)
        elif self.preloaded and _fixed(ds):
            batches = self._resident_copy(ds).batches(torch.tensor(list(shard), dtype=torch.int64), batch_size)
        else:
            # The eval data's loader (and its workers) lives as long as the trainer; others are one-off.
            # (a loader's own generator keeps evaluation from drawing on the global RNG)
            loader = (
                self._loader("eval", ds, shard, batch_size)
                if data is None
                else ds.loader(batch_size=batch_size, sampler=shard, pin_memory=self.pin_memory, generator=torch.Generator())
            )
            batches = (_move(b, self.device, self.non_blocking) for b in loader)
        for batch in batches:
            y = batch[self.target]
            with self._autocast():
                out = self._call(module, batch)
            loss_sum += self.loss_fn(out.float(), y) * y.shape[0]
            hits += torch.bincount(y[out.argmax(1) == y], minlength=k)[:k]
            totals += torch.bincount(y, minlength=k)[:k]
        module.train(was_training)
        total_loss = self._sum_over_ranks([loss_sum.item()])[0]
        hits = all_sum(hits.to(self._reduce_device), self.world)
        totals = all_sum(totals.to(self._reduce_device), self.world)
        n = int(totals.sum().item())
        per = [h / t if t else None for h, t in zip(hits.tolist(), totals.tolist())]
        names = self.classes or [str(i) for i in range(k)]
        return {
            "loss": total_loss / max(n, 1),
            "accuracy": sum(hits.tolist()) / max(n, 1),
            "examples": n,
            "per_class": dict(zip(names, per)),
            "split": getattr(ds, "split", None),
        }

    # -- checkpoints and metrics --------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        info = self.info
        return plain({"name": info.name, "version": info.version, "config": info.config, "split": getattr(self.train_data, "split", None)})

    def _settings_record(self) -> dict[str, Any]:
        """The settings as the checkpoint and metrics.json store them: ``self.settings`` and what ran.

        ``model`` is the model that ran (an nn.Module's class name too); ``epochs`` the run's current
        target (raised when a run is continued).
        """
        return plain(
            {
                **self.settings.to_dict(),
                "model": self.model_name,
                "epochs": self.epochs,
                "world_size": self.world.size,
                "optimizer": type(self.optimizer).__name__,
            }
        )

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write the checkpoint (model, optimizer, scheduler, epoch, RNG, dataset) atomically; rank 0 writes."""
        rng = gather_objects(rng_state(), self.world)  # a collective: every rank takes part
        if not self.world.main:
            return None
        if path is None:
            if self.out_dir is None:
                raise ConfigError("save_checkpoint() needs a path or the Trainer's out_dir=")
            path = self.out_dir / CHECKPOINT
        state = {
            "format": FORMAT,
            "epoch": self.epoch,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng,
            "dataset": self._identity(),
            "settings": self._settings_record(),
            "classes": list(self.classes),
            "task": self.info.task,
            "history": plain(self.history),
        }
        if self.streaming:  # where the stream is (after a whole epoch: that epoch, done)
            state["data_state"] = plain(self.train_data.state_dict())
            state["partial"] = self._partial  # a mid-epoch stop: the epoch's sums so far (None after a whole epoch)
        return save(state, path)

    def _read_checkpoint(self, path: Path) -> dict[str, Any] | None:
        """Return the newest checkpoint at ``path`` on any node, on every rank (None when no node has one).

        Only rank 0 writes checkpoints, into its own node's run folder, and nodes need not share a
        filesystem (nor is the same node rank 0 in every launch): each node's local rank 0 reads its
        own, and the one with the most epochs (the lowest rank among equals) is sent to every rank.
        A checkpoint that cannot be read raises the same one-line error on every rank.
        """
        found: tuple[str, Any] = ("missing", None)
        if self.world.local_main and path.exists():
            try:
                found = ("ok", load_checkpoint(path))
            except ConfigError as exc:
                found = ("error", str(exc))
        if not self.world.distributed:
            if found[0] == "error":
                raise ConfigError(found[1])
            return found[1]
        summary = gather_objects((found[0], found[1]["epoch"] if found[0] == "ok" else found[1]), self.world)
        for kind, detail in summary:
            if kind == "error":
                raise ConfigError(detail)
        held = [(-int(detail), rank) for rank, (kind, detail) in enumerate(summary) if kind == "ok"]
        if not held:
            return None
        src = min(held)[1]
        return broadcast_object(found[1] if self.world.rank == src else None, self.world, src=src)

    def _restore(self, path: Path, ckpt: dict[str, Any]) -> None:
        mine, theirs = self._identity(), ckpt["dataset"]
        for key in ("name", "version", "config"):
            if mine[key] != theirs[key]:
                raise ConfigError(
                    f"checkpoint {path} was trained on {theirs['name']} {theirs['version']} {theirs['config']}, "
                    f"not {mine['name']} {mine['version']} {mine['config']}; use another --out folder"
                )
        self.module.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        rng = ckpt["rng"]
        set_rng_state(rng[min(self.world.rank, len(rng) - 1)])
        self.epoch = int(ckpt["epoch"])
        self.history = list(ckpt["history"])
        if self.streaming and ckpt.get("data_state"):
            self.train_data.load_state_dict(ckpt["data_state"])
            self._partial = ckpt.get("partial")
        # Checkpoints before TrainSettings stored fewer keys: only the keys both hold are compared.
        was, now = ckpt.get("settings") or {}, self._settings_record()
        changed = [
            f"{key} {was[key]!r} -> {now[key]!r}" + (" (the schedule now spans them)" if key == "epochs" else "")
            for key in now
            if key in was and key not in _NOT_COMPARED and was[key] != now[key]
        ]
        note = f"; settings changed since: {', '.join(changed)}" if changed else ""
        where = f"in epoch {self.epoch + 1} after {self._partial['seen']:,} examples" if self._partial else f"after epoch {self.epoch}"
        self._say(f"resumed from {path} {where}{note}")

    def metrics(self, **extra: Any) -> dict[str, Any]:
        """Return the run's figures: dataset, settings, parameter count, history, and ``extra`` (e.g. test=)."""
        return plain(
            {
                "dataset": self._identity(),
                "settings": self._settings_record(),
                "task": self.info.task,
                "classes": self.classes,
                "parameters": sum(p.numel() for p in self.module.parameters()),
                "history": self.history,
                **extra,
            }
        )

    def write_metrics(self, **extra: Any) -> Path | None:
        """Write ``metrics.json`` into ``out_dir`` (rank 0 only) and return its path."""
        if self.out_dir is None or not self.world.main:
            return None
        from ..fetching.cache import write_json_atomic

        path = self.out_dir / METRICS
        write_json_atomic(path, self.metrics(**extra))
        return path

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop DataLoader workers and leave the process group if this trainer joined it."""
        self._loaders.clear()
        self._resident.clear()
        self.model = self.module  # drop the DDP wrapper (and its pending gloo work) before the group goes
        self.world.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
