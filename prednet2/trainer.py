"""The training loop behind ``train.py``: local (per-unit, truncated window) or end-to-end training of a stack.

``train(cfg, data_spec, out_dir)`` runs a whole job and returns the summary it writes to ``RUN/summary.json``.
``train_step`` is one optimisation step on one batch of clips (the benchmark calls it directly), and
``train_one_epoch`` walks the data loader with numbered steps (forward/backward, schedule, log, checkpoint).

Run folder (DESIGN §7)::

    RUN/config.yaml              resolved config, git commit and prednet2 version in the header comments
    RUN/checkpoints/last.pt      atomic, every ckpt_every steps, at the end, and on SIGINT/SIGTERM
    RUN/checkpoints/best.pt      lowest mean total loss over a checkpoint interval (train.keep_best)
    RUN/checkpoints/step_XXXXXX.pt   the last train.keep_numbered saves
    RUN/tb/                      TensorBoard events
    RUN/summary.json             steps, final per-layer losses, throughput, what was skipped, ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from prednet2 import tblog
from prednet2.checkpoint import (
    CheckpointError,
    atomic_copy,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    set_rng_state,
    unwrap_model,
)
from prednet2.config import Config, ConfigError
from prednet2.distributed import (
    all_reduce_grads,
    all_reduce_mean,
    batch_sync,
    broadcast_parameters,
    cleanup,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
    setup_distributed,
)
from prednet2.losses import effective_rank, repr_std
from prednet2.runinfo import git_commit, prednet2_version, resolve_device

# Channels of the motion stream's encoder when motion is on and the config leaves model.motion_channels at 0.
DEFAULT_MOTION_CHANNELS = 8


class RunFolderError(ValueError):
    """The output folder cannot be used as asked (exists without --resume, nothing to resume, ...)."""


class NonFiniteLossError(RuntimeError):
    """A loss became NaN/inf. Training stopped; the last checkpoint on disk predates the failure."""

    def __init__(self, step: int, layer: int, value: float, last_good: Path | None, last_good_step: int | None):
        self.step, self.layer, self.value = step, layer, value
        self.last_good, self.last_good_step = last_good, last_good_step
        kept = (
            f"last good checkpoint kept: {last_good} (step {last_good_step})"
            if last_good is not None
            else "no checkpoint was written before it"
        )
        super().__init__(
            f"non-finite loss at step {step} in layer {layer} (loss/layer{layer} = {value}); training stopped, "
            f"{kept}. Try a lower train.lr or a smaller train.grad_clip."
        )


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was saved. ``exit_code`` is 128 + signal number (130 / 143)."""

    def __init__(self, signum: int, step: int, path: Path | None):
        self.signum, self.step, self.path = signum, step, path
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; saved {path}")


# ---- run folder -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def ckpt_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.ckpt_dir / "last.pt"

    @property
    def best(self) -> Path:
        return self.ckpt_dir / "best.pt"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def numbered(self, step: int) -> Path:
        return self.ckpt_dir / f"step_{step:06d}.pt"


def config_for_resume(out_dir: str | Path, sets: list[str] | None = None) -> Config:
    """The config a ``--resume`` continues with: the checkpoint's own, with ``--set`` overrides on top."""
    paths = RunPaths(Path(out_dir))
    if not paths.last.is_file():
        raise RunFolderError(f"--resume: no checkpoint to resume at {paths.last}; start a new run without --resume")
    ckpt = load_checkpoint(paths.last)
    try:
        return Config.from_dict(ckpt["config"]).replace(sets or [])
    except ConfigError as e:
        raise ConfigError(f"{e} (while applying --set to the config stored in {paths.last})") from None


def resolve_config(cfg: Config, sample: dict[str, Tensor] | None = None) -> Config:
    """Fill the fields that follow from other sections or from the data, so config.yaml states what ran.

    - motion on and ``model.motion_channels == 0`` -> DEFAULT_MOTION_CHANNELS; motion off -> 0 (no mask arrives);
    - motion on but the dataset yields no ``"mask"`` -> motion turned off, with a warning;
    - ``model.in_channels`` follows the data's channel count (1 for grayscale/MNIST, 3 for RGB);
    - ``model.arch == "prednet"`` (the baseline) -> ``train.mode=end_to_end`` and motion off.

    Called once before the data is built (``sample=None``) and once with the first item.
    """
    over: dict[str, dict[str, Any]] = {"model": {}, "motion": {}, "train": {}}
    motion_on = cfg.motion.enabled
    if cfg.model.arch == "prednet":
        # The PredNet baseline is what Lotter et al. trained: end-to-end, pixels only, no motion stream.
        if cfg.train.mode != "end_to_end":
            over["train"]["mode"] = "end_to_end"
        if motion_on:
            motion_on = False
            over["motion"]["enabled"] = False
    if sample is not None:
        channels = int(sample["video"].shape[1])
        if channels != cfg.model.in_channels:
            over["model"]["in_channels"] = channels
        if motion_on and "mask" not in sample:
            _say("warning: motion is enabled but the dataset yields no motion masks; training without motion")
            motion_on = False
            over["motion"]["enabled"] = False
    if motion_on and cfg.model.motion_channels == 0:
        over["model"]["motion_channels"] = DEFAULT_MOTION_CHANNELS
    if not motion_on and cfg.model.motion_channels != 0:
        over["model"]["motion_channels"] = 0
    over = {k: v for k, v in over.items() if v}
    return cfg.replace(over) if over else cfg


# ---- data order that can be restored ----------------------------------------------------------------------
class ResumableBatchSampler(Sampler[list[int]]):
    """Shuffled batches, a fresh permutation per epoch from ``(seed, epoch)``, starting at any batch.

    The permutation depends only on the seed and the epoch (not on a global RNG), so a resumed run that sets
    the saved ``(epoch, batch)`` sees exactly the batches a straight run would have seen.
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise ValueError("the dataset is empty")
        if batch_size % world_size:
            raise ConfigError(
                f"data.batch_size={batch_size} is the global batch and must be divisible by the number of "
                f"processes ({world_size})"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, batch: int) -> None:
        self.epoch, self.start = epoch, batch

    def __len__(self) -> int:
        # Drop the ragged last batch (a constant batch size keeps steps comparable), but never drop everything.
        return max(1, self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        for b in range(self.start, len(self)):
            # DDP: every rank draws the same global batch and keeps its 1/world share (a DistributedSampler over
            # clips with set_epoch, but one that keeps the global batches of a single-process run, and resumes).
            yield perm[b * self.batch_size : (b + 1) * self.batch_size][self.rank :: self.world_size]


# ---- optimiser --------------------------------------------------------------------------------------------
def unit_param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """One optimiser param group per unit (``model.units[l]``), plus one for anything outside the units.

    Groups let the trainer clip each unit's gradient norm on its own: a global norm would let one unit's large
    gradient shrink every other unit's update, coupling units that local learning keeps apart.
    """
    model = unwrap_model(model)
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    units = getattr(model, "units", None)
    if isinstance(units, nn.ModuleList | list | tuple):
        for l, unit in enumerate(units):
            ps = [p for p in unit.parameters() if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in ps)
            if ps:
                groups.append({"params": ps, "name": f"unit{l}"})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    if rest:
        groups.append({"params": rest, "name": "shared" if groups else "all"})
    return groups


def build_optimizer(model: nn.Module, cfg: Config) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over per-unit param groups, with a linear warmup to ``train.lr`` then a constant rate."""
    opt = torch.optim.AdamW(unit_param_groups(model), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    warmup = max(0, cfg.train.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    return opt, sched


# ---- one step ---------------------------------------------------------------------------------------------
@dataclass
class StepResult:
    """What one training step hands back. Tensors stay on the device; nothing here has synced."""

    losses: Tensor  # (L,) per-layer loss, time-averaged over the clip, detached
    grad_norms: Tensor  # (G,) gradient norm per param group before clipping (last window)
    metrics: dict[str, Tensor] = field(default_factory=dict)  # error/..., pred_vs_copy_last/..., stats (want_stats)
    last: Any = None  # the last window's model output (want_outputs), for images and repr metrics


def _forward_params(model: nn.Module) -> set[str]:
    """Names ``model.forward`` accepts (a ``**kwargs`` wrapper is taken to pass state/detach_between through)."""
    params = inspect.signature(unwrap_model(model).forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return set(params) | {"mask", "state", "detach_between"}
    return set(params)


def _detach(x: Any) -> Any:
    """Cut a carried state (tensors in lists, tuples, dicts or dataclasses) from the autograd graph."""
    if isinstance(x, Tensor):
        return x.detach()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return type(x)(**{f.name: _detach(getattr(x, f.name)) for f in dataclasses.fields(x)})
    if isinstance(x, list | tuple):
        return type(x)(_detach(v) for v in x)
    if isinstance(x, dict):
        return {k: _detach(v) for k, v in x.items()}
    return x


def _autocast(device: torch.device, amp: bool):
    # bf16 autocast needs no loss scaler (same exponent range as fp32); CPU autocast is slower here, so CUDA only.
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    clip: Tensor,
    mask: Tensor | None = None,
    *,
    mode: str = "local",
    window: int = 5,
    grad_clip: float = 1.0,
    amp: bool = False,
    want_stats: bool = False,
    want_outputs: bool = False,
) -> StepResult:
    """One optimisation step on a batch of clips.

    clip: (B, T, C, H, W) float in [0, 1]; mask: (B, T, 1, H, W) or None.

    ``local``: the clip runs in windows of ``window`` time steps. Each window is forwarded from the carried
    state, its summed per-unit losses are backpropagated, the optimiser steps, and the state is detached before
    the next window (truncated BPTT: memory is set by the window, not by T). Summing the unit losses into one
    backward with one optimiser is the same as one optimiser per unit, because the model detaches every input
    a unit takes from another unit: d(sum_l L_l)/d(theta_l) = dL_l/d(theta_l), and AdamW is elementwise per
    parameter. Only clipping couples parameters, so it is done per unit (param group).

    ``end_to_end``: one forward over all T with gradients crossing units (``detach_between=False``), one
    backward, global clipping: the BPTT ablation.
    """
    if mode not in ("local", "end_to_end"):
        raise ConfigError(f"train.mode: expected 'local' or 'end_to_end', got {mode!r}")
    B, T = clip.shape[:2]
    params = _forward_params(model)
    k = T if mode == "end_to_end" else max(1, min(window, T))
    if k < T and "state" not in params:
        raise ConfigError("train.window < clip_len needs a model whose forward accepts state=; set train.window")
    groups = [g["params"] for g in optimizer.param_groups]
    loss_acc: Tensor | None = None
    m_err: list[Tensor] = []
    m_pred: list[Tensor] = []
    m_copy: list[Tensor] = []
    prev_targets: list[Tensor] | None = None
    state = None
    out = None
    norms = torch.zeros(0)
    for t0 in range(0, T, k):
        x = clip[:, t0 : t0 + k]  # (B, k, C, H, W)
        kw: dict[str, Any] = {}
        if mask is not None:
            kw["mask"] = mask[:, t0 : t0 + k]
        if state is not None:
            kw["state"] = state
        if "detach_between" in params:
            kw["detach_between"] = mode == "local"
        with _autocast(clip.device, amp):
            out = model(x, **kw)
        losses = torch.stack([torch.as_tensor(v, device=clip.device).float() for v in out.losses])  # (L,)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        if is_distributed():  # DDP: average gradients over ranks before clipping (prednet2.distributed docstring)
            all_reduce_grads(p for g in groups for p in g)
        if mode == "local":
            norms = torch.stack([nn.utils.clip_grad_norm_(g, grad_clip if grad_clip > 0 else math.inf) for g in groups])
        else:
            all_p = [p for g in groups for p in g]
            norms = nn.utils.clip_grad_norm_(all_p, grad_clip if grad_clip > 0 else math.inf)[None]
        optimizer.step()
        ema = getattr(unwrap_model(model), "update_ema", None)
        if callable(ema):  # EMA target encoders follow the online weights after each optimiser step
            ema()
        frac = x.shape[1] / T
        loss_acc = losses.detach() * frac if loss_acc is None else loss_acc + losses.detach() * frac
        if want_stats:
            with torch.no_grad():
                e, p, c, prev_targets = _window_metrics(out, prev_targets, first=t0 == 0)
                m_err.append(e * frac)
                m_pred.append(p)
                m_copy.append(c)
        state = _detach(getattr(out, "state", None))
    assert loss_acc is not None and out is not None
    all_reduce_mean(loss_acc)  # DDP: the global batch's loss on every rank (no-op in one process)
    res = StepResult(losses=loss_acc, grad_norms=norms.detach())
    if want_stats:
        L = len(loss_acc)
        err = torch.stack(m_err).sum(0)
        ratio = torch.stack(m_pred).sum(0) / torch.stack(m_copy).sum(0).clamp_min(1e-12)
        for l in range(L):
            res.metrics[f"error/layer{l}"] = err[l]
            res.metrics[f"pred_vs_copy_last/layer{l}"] = ratio[l]
        for name, v in (getattr(out, "stats", None) or {}).items():
            res.metrics[_stat_tag(name)] = torch.as_tensor(v).detach().float()
    if want_outputs:
        res.last = out
    return res


def _stat_tag(name: str) -> str:
    """The model's stat names as TensorBoard tags: ``var/0`` -> ``var/layer0``; ``bind`` -> ``stats/bind``."""
    kind, _, layer = name.rpartition("/")
    if kind and layer.isdigit():
        return f"{kind}/layer{layer}"
    return name if "/" in name else f"stats/{name}"


def _window_metrics(out: Any, prev: list[Tensor] | None, first: bool) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """Per-layer mean |E|, and summed |pred - a| and |a(t) - a(t-1)| over the same time steps (t >= 1 of the clip).

    The ratio of the last two is ``pred_vs_copy_last``: below 1 the unit predicts better than "nothing moves".
    """
    errs, preds, copies, lasts = [], [], [], []
    for l, (pr, tg, er) in enumerate(zip(out.preds, out.targets, out.errors)):
        pr, tg = pr.float(), tg.float()
        errs.append(er.float().abs().mean())
        if prev is not None:  # the step between windows: a(t0) against the last target of the previous window
            tg_prev = torch.cat([prev[l], tg[:, :-1]], dim=1)
            preds.append((pr - tg).abs().sum())
            copies.append((tg - tg_prev).abs().sum())
        else:  # the clip's first frame has no previous target: skip it on both sides
            preds.append((pr[:, 1:] - tg[:, 1:]).abs().sum())
            copies.append((tg[:, 1:] - tg[:, :-1]).abs().sum())
        lasts.append(tg[:, -1:])
    return torch.stack(errs), torch.stack(preds), torch.stack(copies), lasts


# ---- the loop ---------------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Everything the loop mutates, in one place (no nested closures)."""

    cfg: Config
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    paths: RunPaths
    logger: tblog.TBLogger
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_loss: float = math.inf
    last_saved_step: int | None = None
    last_losses: list[float] = field(default_factory=list)  # per-layer mean over the last log interval
    pending: list[tuple[int, Tensor]] = field(default_factory=list)  # (step, losses) not yet checked/logged
    ckpt_loss_sum: float = 0.0  # total loss summed since the last checkpoint (for best.pt)
    ckpt_loss_n: int = 0
    frames: int = 0  # frames trained on in this session
    train_s: float = 0.0  # seconds in the loop in this session
    t_log: float = 0.0
    frames_at_log: int = 0
    stop_signal: int | None = None
    main: bool = True
    pbar: Any = None


def _say(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def _flush_pending(ts: TrainState) -> list[float] | None:
    """Sync the losses of the steps since the last check (one transfer); stop on the first non-finite one.

    Returns the per-layer mean over those steps (None when there were none).
    """
    if not ts.pending:
        return None
    steps = [s for s, _ in ts.pending]
    losses = torch.stack([v for _, v in ts.pending]).cpu()  # (n, L); the one sync of the interval
    ts.pending.clear()
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        i, l = (~finite).nonzero()[0].tolist()
        raise NonFiniteLossError(steps[i], l, float(losses[i, l]), *_last_good(ts))
    ts.ckpt_loss_sum += float(losses.sum(1).sum())
    ts.ckpt_loss_n += len(steps)
    ts.last_losses = losses.mean(0).tolist()
    return ts.last_losses


def _last_good(ts: TrainState) -> tuple[Path | None, int | None]:
    return (ts.paths.last, ts.last_saved_step) if ts.last_saved_step is not None else (None, None)


def save_run_checkpoint(ts: TrainState) -> Path:
    """Check the pending losses (never save after a NaN), then write last.pt (+ best/numbered copies)."""
    _flush_pending(ts)
    if not ts.main:
        return ts.paths.last
    extra = {
        "epoch": ts.epoch,
        "batch_in_epoch": ts.batch_in_epoch,
        "best_loss": ts.best_loss,
        "last_losses": list(ts.last_losses),
    }
    save_checkpoint(
        ts.paths.last,
        model=ts.model,
        optimizer=ts.optimizer,
        scheduler=ts.scheduler,
        config=ts.cfg,
        step=ts.step,
        extra=extra,
    )
    ts.last_saved_step = ts.step
    if ts.cfg.train.keep_best and ts.ckpt_loss_n:
        mean = ts.ckpt_loss_sum / ts.ckpt_loss_n
        if mean < ts.best_loss:
            ts.best_loss = mean
            atomic_copy(ts.paths.last, ts.paths.best)
    ts.ckpt_loss_sum, ts.ckpt_loss_n = 0.0, 0
    keep = ts.cfg.train.keep_numbered
    if keep > 0:
        atomic_copy(ts.paths.last, ts.paths.numbered(ts.step))
        for old in sorted(ts.paths.ckpt_dir.glob("step_*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
    return ts.paths.last


def _log(ts: TrainState, res: StepResult, clip: Tensor, mask: Tensor | None) -> None:
    """Scalars every log_every steps (one sync), repr metrics every stats_every, images every image_every."""
    tc = ts.cfg.train
    means = _flush_pending(ts)
    now = time.perf_counter()
    fps = (ts.frames - ts.frames_at_log) / max(now - ts.t_log, 1e-9)
    ts.t_log, ts.frames_at_log = now, ts.frames
    scalars: dict[str, float] = {"lr": ts.optimizer.param_groups[0]["lr"], "frames_per_s": fps}
    for l, v in enumerate(means or []):
        scalars[f"loss/layer{l}"] = v
    names = [g.get("name", str(i)) for i, g in enumerate(ts.optimizer.param_groups)]
    tensors = dict(res.metrics)
    if len(res.grad_norms) == len(names):
        tensors.update({f"grad_norm/{n}": v for n, v in zip(names, res.grad_norms)})
    if res.last is not None and ts.step % tc.stats_every == 0:
        for l, a in enumerate(res.last.targets):
            tensors[f"repr_std/layer{l}"] = repr_std(a)
            tensors[f"repr_rank/layer{l}"] = effective_rank(a)
    if tensors:
        keys = list(tensors)
        vals = torch.stack([tensors[k].float().reshape(()) for k in keys]).cpu().tolist()  # one sync
        scalars.update(zip(keys, vals))
    ts.logger.scalars(scalars, ts.step)
    if res.last is not None and ts.step % tc.image_every == 0:
        _log_images(ts, res.last, clip, mask)
    if ts.pbar is not None and means:
        ts.pbar.set_postfix(loss=f"{sum(means):.4g}", fps=f"{fps:.0f}", refresh=False)


def _log_images(ts: TrainState, out: Any, clip: Tensor, mask: Tensor | None) -> None:
    step, T = ts.step, clip.shape[1]
    ts.logger.image("input/frames", tblog.frame_strip(clip[0]), step)
    # The last window covers the clip's last k frames; show its last frame beside each layer's |E| map.
    k = out.errors[0].shape[1]
    frame = clip[0, T - 1]
    for l, e in enumerate(out.errors):
        ts.logger.image(f"error_map/layer{l}", tblog.error_map_image(frame, e[0, -1]), step)
    if mask is not None:
        ts.logger.image("motion_mask", tblog.mask_image(frame, mask[0, T - 1]), step)
    if ts.cfg.model.target == "pixel":
        pred = tblog.depth_to_frames(out.preds[0][0].float(), clip.shape[2])  # (k, C, H, W): undo the model's stem
        ts.logger.image("pred_vs_actual", tblog.pred_vs_actual_image(pred, clip[0, T - k :]), step)


def train_one_epoch(ts: TrainState, loader: DataLoader, total_steps: int) -> bool:
    """Train on the loader's batches until the epoch ends (True) or the run must stop (False)."""
    tc = ts.cfg.train
    for batch in loader:
        t0 = time.perf_counter()
        # Step 1. Batch to the device: uint8 (B, T, C, H, W) travels, the float copy is made there.
        video = batch["video"].to(ts.device, non_blocking=True)
        clip = video.float().div_(255.0)  # (B, T, C, H, W) in [0, 1]
        mask = batch["mask"].to(ts.device, non_blocking=True).float() if "mask" in batch else None
        step = ts.step + 1
        log_now = step % tc.log_every == 0 or step == total_steps
        out_now = log_now and (step % tc.stats_every == 0 or step % tc.image_every == 0)
        # Step 2. Forward, backward, optimiser: per window (local) or over the whole clip (end_to_end).
        res = train_step(
            ts.model,
            ts.optimizer,
            clip,
            mask,
            mode=tc.mode,
            window=tc.window,
            grad_clip=tc.grad_clip,
            amp=tc.amp,
            want_stats=log_now,
            want_outputs=out_now,
        )
        # Step 3. Advance the schedule and the counters (the data position is part of the resume state).
        ts.scheduler.step()
        ts.step, ts.batch_in_epoch = step, ts.batch_in_epoch + 1
        ts.pending.append((step, res.losses))
        ts.frames += clip.shape[0] * clip.shape[1] * get_world_size()  # global frames under DDP
        # Step 4. Log (the only host syncs: every log_every steps) and check the losses are finite.
        if log_now:
            _log(ts, res, clip, mask)
        ts.train_s += time.perf_counter() - t0
        if ts.pbar is not None:
            ts.pbar.update(1)
        # Step 5. Checkpoint (atomic; after checking every pending loss is finite).
        if step % tc.ckpt_every == 0 or step == total_steps:
            save_run_checkpoint(ts)
        # Step 6. Stop on a signal (after the step, so the saved state is a step boundary) or at the end.
        if ts.stop_signal is not None or step >= total_steps:
            return False
    return True


@contextlib.contextmanager
def _stop_on_signals(ts: TrainState):
    """SIGINT/SIGTERM set a flag the loop checks after each step; a second SIGINT aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if ts.stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        ts.stop_signal = signum
        _say(f"{signal.Signals(signum).name} received: saving a checkpoint after this step")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _build_data(cfg: Config, data_spec: str) -> Dataset:
    from prednet2.datasets import build_dataset

    motion = cfg.motion if cfg.motion.enabled else None
    return build_dataset(data_spec, cfg=cfg.data, split="train", seed=cfg.train.seed, motion=motion)


def _write_config(paths: RunPaths, cfg: Config, data_spec: str) -> None:
    header = (
        f"# prednet2 {prednet2_version()}, git commit {git_commit()}\n"
        f"# data: {data_spec}\n"
        f"# resolved config of this run; reuse it with --config {paths.config}\n"
    )
    paths.config.write_text(header + cfg.to_yaml())


def train(
    cfg: Config,
    data_spec: str,
    out_dir: str | Path,
    *,
    resume: bool = False,
    model_factory: Callable[[Any], nn.Module] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train for ``cfg.train.steps`` total steps and return the summary written to ``RUN/summary.json``.

    ``resume`` continues from ``RUN/checkpoints/last.pt`` (model, optimiser, schedule, RNG and data position are
    restored, so on CPU the result matches an uninterrupted run). ``model_factory`` replaces
    ``prednet2.build_model`` (tests). Raises RunFolderError, ConfigError, CheckpointError, DataError (bad input),
    NonFiniteLossError, TrainingInterrupted (after saving).
    """
    t_start = time.perf_counter()
    paths = RunPaths(Path(out_dir))
    main = is_main_process()
    if paths.last.is_file() and not resume:
        raise RunFolderError(
            f"--out {paths.root} already holds a run ({paths.last}); "
            "pass --resume to continue it or pick another folder"
        )
    if resume and not paths.last.is_file():
        raise RunFolderError(f"--resume: no checkpoint to resume at {paths.last}; start a new run without --resume")
    if get_world_size() > 1:  # torchrun: one process per device, gloo on CPU / nccl on GPU
        device = setup_distributed(cfg.train.device).device
    else:
        device = resolve_device(cfg.train.device)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    ckpt = load_checkpoint(paths.last) if resume else None

    # Data first (it decides in_channels and whether masks exist), then the model from the resolved config.
    _seed_everything(cfg.train.seed)
    cfg = resolve_config(cfg)
    dataset = _build_data(cfg, data_spec)
    cfg = resolve_config(cfg, dataset[0])
    n_skipped = int(getattr(dataset, "n_skipped", 0))
    skipped = [{"path": str(s.path), "reason": str(s.reason)} for s in getattr(dataset, "skipped", [])]
    if n_skipped and main:
        reasons = "; ".join(f"{Path(s['path']).name}: {s['reason']}" for s in skipped[:3])
        _say(f"warning: skipped {n_skipped} file(s) of {data_spec}: {reasons}{' ...' if n_skipped > 3 else ''}")

    if model_factory is None:
        from prednet2 import build_model

        model_factory = build_model
    _seed_everything(cfg.train.seed)
    try:
        model = model_factory(cfg.model)
    except ValueError as e:  # the model validates its config fields; to the user that is a config error
        raise ConfigError(str(e)) from e
    stride = int(getattr(model, "stride", 1))
    if any(s % stride for s in cfg.data.size):
        raise ConfigError(
            f"data.size {list(cfg.data.size)} is not a multiple of the model's total stride {stride}; "
            f"use e.g. --set data.size=[{cfg.data.size[0] // stride * stride or stride},"
            f"{cfg.data.size[1] // stride * stride or stride}]"
        )
    model = model.to(device)
    model.train()
    optimizer, scheduler = build_optimizer(model, cfg)
    logger_purge = None
    ts = TrainState(cfg=cfg, model=model, optimizer=optimizer, scheduler=scheduler, device=device, paths=paths,
                    logger=tblog.TBLogger(paths.tb, enabled=False), main=main)  # fmt: skip
    if ckpt is not None:
        load_model_state(
            model, ckpt["model"], source=paths.last, ckpt_config=ckpt["config"], model_config=cfg.to_dict()
        )
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        ex = ckpt["extra"]
        ts.step, ts.epoch, ts.batch_in_epoch = int(ckpt["step"]), int(ex["epoch"]), int(ex["batch_in_epoch"])
        ts.best_loss, ts.last_losses = float(ex["best_loss"]), list(ex["last_losses"])
        ts.last_saved_step = ts.step
        logger_purge = ts.step + 1
    broadcast_parameters(model)  # DDP: every rank starts from rank 0's weights (no-op in one process)
    start_step = ts.step

    paths.root.mkdir(parents=True, exist_ok=True)
    if main:
        _write_config(paths, cfg, data_spec)
    ts.logger = tblog.TBLogger(paths.tb, enabled=main, purge_step=logger_purge)

    sampler = ResumableBatchSampler(
        len(dataset),
        cfg.data.batch_size,
        cfg.train.seed,
        rank=get_rank(),
        world_size=get_world_size(),
    )
    if ts.batch_in_epoch >= len(sampler):
        ts.epoch, ts.batch_in_epoch = ts.epoch + 1, 0
    # A dedicated generator, re-seeded per epoch: otherwise creating the loader iterator draws worker seeds from
    # the global torch RNG, and a run resumed mid-epoch would drift from a straight one.
    loader_gen = torch.Generator()
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda",
        generator=loader_gen,
    )

    total = cfg.train.steps
    n_params = sum(p.numel() for p in model.parameters())
    status = "completed"
    if main and progress:
        ts.pbar = tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)
    ts.t_log = time.perf_counter()
    try:
        with _stop_on_signals(ts), batch_sync(True):
            while ts.step < total and ts.stop_signal is None:
                sampler.set_position(ts.epoch, ts.batch_in_epoch)
                loader_gen.manual_seed(cfg.train.seed * 1_000_003 + ts.epoch)
                if train_one_epoch(ts, loader, total):
                    ts.epoch, ts.batch_in_epoch = ts.epoch + 1, 0
            if ts.stop_signal is not None:
                status = "interrupted"
                if ts.last_saved_step != ts.step:
                    save_run_checkpoint(ts)
    except NonFiniteLossError:
        status = "non_finite"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        if ts.pbar is not None:
            ts.pbar.close()
        ts.logger.close()
        summary = {
            "steps": ts.step,
            "final_loss": {str(l): v for l, v in enumerate(ts.last_losses)},
            "n_skipped": n_skipped,
            "skipped": skipped[:20],
            "wall_s": time.perf_counter() - t_start,
            "train_s": ts.train_s,
            "frames_per_s": ts.frames / ts.train_s if ts.train_s > 0 else 0.0,
            "steps_per_s": (ts.step - start_step) / ts.train_s if ts.train_s > 0 else 0.0,
            "status": status,
            "mode": cfg.train.mode,
            "window": cfg.train.window,
            "preset": cfg.model.preset,
            "params": n_params,
            "device": str(device),
            "amp": bool(cfg.train.amp and device.type == "cuda"),
            "batch_size": cfg.data.batch_size,
            "clip_len": cfg.data.clip_len,
            "size": list(cfg.data.size),
            "data": data_spec,
            "resumed_from": start_step if resume else None,
            "best_loss": ts.best_loss if math.isfinite(ts.best_loss) else None,
            "checkpoint": str(paths.last) if ts.last_saved_step is not None else None,
            "tb": str(paths.tb),
            "git_commit": git_commit(),
            "prednet2_version": prednet2_version(),
        }
        if main:
            paths.root.mkdir(parents=True, exist_ok=True)
            paths.summary.write_text(json.dumps(summary, indent=2) + "\n")
        cleanup()  # DDP: destroy the process group (no-op in one process)
    if status == "interrupted":
        raise TrainingInterrupted(ts.stop_signal or signal.SIGTERM, ts.step, paths.last)
    return summary


__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "ResumableBatchSampler",
    "RunFolderError",
    "StepResult",
    "TrainingInterrupted",
    "build_optimizer",
    "config_for_resume",
    "resolve_config",
    "train",
    "train_one_epoch",
    "train_step",
    "unit_param_groups",
]
