"""Distributed helpers: one setup function that reads the torchrun environment, plus the collectives we use.

``torchrun --nproc_per_node N train.py ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`setup_distributed` reads them (as nanoGPT does), picks the backend (nccl on CUDA, gloo on
CPU) and returns a :class:`DistInfo`. Without those variables it returns a single-process ``DistInfo`` and
initialises nothing, so the same code path serves ``python train.py`` and ``torchrun``.

Why gradients are averaged by hand (:func:`all_reduce_grads`) instead of wrapping the model in
``DistributedDataParallel``: the trainer runs ``model.step`` many times per backward (a truncated window of k
time steps) and may call backward once per window, not once per ``forward()``; DDP's reducer hooks are armed by
``forward()`` and expect exactly one backward per forward (and the motion/binding branches can leave parameters
unused). Averaging every gradient across ranks after backward and before clipping + ``optimizer.step`` is what DDP
computes anyway (DDP also averages), so the update is the same; on CPU (gloo) the extra cost of not overlapping the
all-reduce with backward is small at our model sizes, and all ranks' gradients are flattened into one buffer per
dtype so there is one collective per step, not one per tensor.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "setup_distributed",
    "cleanup",
    "is_distributed",
    "is_main_process",
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "barrier",
    "all_reduce_mean",
    "all_reduce_grads",
    "broadcast_parameters",
    "reduce_scalars",
    "batch_sync",
    "batch_sync_active",
    "sync_sum",
    "gather_rows",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool

    @property
    def enabled(self) -> bool:
        """True when a process group with more than one process is running."""
        return self.world_size > 1


def _env_int(name: str) -> int | None:
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={v!r} is not an integer (set by torchrun)") from None


def setup_distributed(device: str = "auto", *, timeout_s: float = 600.0) -> DistInfo:
    """Initialise the process group from the torchrun environment, if there is one.

    ``device`` is ``"auto" | "cpu" | "cuda"`` (``auto``: cuda when available). Under torchrun with CUDA each
    process takes ``cuda:LOCAL_RANK`` and the nccl backend; on CPU the gloo backend. Without torchrun variables
    (``RANK``/``WORLD_SIZE`` unset, or WORLD_SIZE=1) nothing is initialised and rank 0 of 1 is returned.
    """
    if device not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"device: expected auto|cpu|cuda, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but torch.cuda.is_available() is False; use --device cpu")

    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK") or 0
    if rank is None or world is None or world <= 1:
        dev = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
        return DistInfo(rank=0, world_size=1, local_rank=0, device=dev, is_main=True)

    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                "use --nproc_per_node <= the number of GPUs on this node"
            )
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, is_main=rank == 0)


def cleanup() -> None:
    """Destroy the process group if one was initialised (safe to call always)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK") or 0


def get_world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE") or 1


def get_local_rank() -> int:
    """This process's index on its node (torchrun's LOCAL_RANK); the global rank when it is not set."""
    v = _env_int("LOCAL_RANK")
    return get_rank() if v is None else v


def is_main_process() -> bool:
    """Rank 0 (or no distributed run at all). Works before the process group exists (reads ``RANK``)."""
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """In-place mean of ``t`` over ranks; returns ``t``. A no-op in a single process."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(dist.get_world_size())
    return t


@torch.no_grad()
def all_reduce_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``p.grad`` over ranks for every parameter that needs a gradient.

    Exactly what DDP computes, so a step on the averaged gradient equals a single-process step on the global batch
    (each rank's loss is a mean over its equal share of the batch). A parameter whose gradient is ``None`` on some
    ranks but not others gets zeros there; one that is ``None`` on every rank stays ``None`` (the optimizer then
    skips it, as it would in a single process).
    """
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    # Step 1. Agree on which parameters have a gradient anywhere (a rank-dependent None would desync the buffer).
    dev = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8, device=dev)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    grads: list[torch.Tensor] = []
    for p, h in zip(params, has.tolist()):
        if not h:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    # Step 2. One flat buffer per dtype: one collective instead of one per tensor.
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    world = dist.get_world_size()
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world)
        offset = 0
        for g in group:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n


@torch.no_grad()
def broadcast_parameters(module: torch.nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers from rank ``src`` to every rank (DDP does this at wrap time)."""
    if not is_distributed():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=src)


# ---- batch statistics across the data-parallel group -----------------------------------------------------------
# VICReg's variance/covariance and InfoNCE's in-batch negatives are statistics of the whole batch, not means over
# samples: under DDP each rank sees B/N clips, so computing them per rank would be a different loss from the
# single-process one at the same global batch. While ``batch_sync`` is on, ``prednet2.losses`` computes them over
# the global batch: sums go through a differentiable all-reduce and InfoNCE keys through a differentiable
# all-gather (as VICReg's and SimCLR's DDP code do). The backward of an all-reduce sums the (identical) upstream
# gradient over ranks, i.e. N times each rank's share, and ``all_reduce_grads`` divides by N, so the averaged
# gradient is exactly the global-batch gradient. Only the data-parallel trainer turns it on: layer-parallel
# processes hold different units, not different samples, and must not sync.
_BATCH_SYNC = False


class batch_sync:  # noqa: N801  (used as a context manager, like torch.no_grad)
    """``with batch_sync(True):`` compute batch statistics over all ranks (no-op without a process group)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self) -> batch_sync:
        global _BATCH_SYNC
        self._prev, _BATCH_SYNC = _BATCH_SYNC, self.enabled
        return self

    def __exit__(self, *exc) -> None:
        global _BATCH_SYNC
        _BATCH_SYNC = self._prev


def batch_sync_active() -> bool:
    return _BATCH_SYNC and is_distributed()


def sync_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks, differentiable (identity when batch sync is off)."""
    if not batch_sync_active():
        return t
    return _AllReduceSum.apply(t)


def gather_rows(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(n, ...)`` per rank -> ``(N*n, ...)`` rows of every rank in rank order, differentiable; and this rank's
    row offset in it. Identity and 0 when batch sync is off. Every rank must pass the same ``n``."""
    if not batch_sync_active():
        return t, 0
    return _AllGatherRows.apply(t), dist.get_rank() * t.shape[0]


class _AllReduceSum(torch.autograd.Function):
    """y = sum_r x_r on every rank; dx_r = sum_r' dy_r' (each rank's loss depends on every rank's x)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> torch.Tensor:
        dx = dy.contiguous().clone()
        dist.all_reduce(dx, op=dist.ReduceOp.SUM)
        return dx


class _AllGatherRows(torch.autograd.Function):
    """y = cat_r x_r (rank order) on every rank; dx_r = sum over ranks of dy's rows that came from rank r."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.n = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> torch.Tensor:
        dy = dy.contiguous().clone()
        dist.all_reduce(dy, op=dist.ReduceOp.SUM)
        r = dist.get_rank()
        return dy[r * ctx.n : (r + 1) * ctx.n]


def reduce_scalars(values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean of each scalar over ranks, for logging (one collective; all ranks must call it with the same keys)."""
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    all_reduce_mean(t)
    return dict(zip(keys, t.tolist()))
