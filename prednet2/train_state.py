"""What the training loop mutates (``TrainState``), the finite-loss check, checkpoint saving, and signals."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from prednet2 import tblog
from prednet2.checkpoint import atomic_copy, save_checkpoint
from prednet2.config import Config
from prednet2.run_folder import RunPaths


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
    start_step: int = 0  # the step this session started from (0, or the resumed checkpoint's)
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
    train_s_before: float = 0.0  # seconds in the loop in the sessions before a resume (from the checkpoint)
    t_log: float = 0.0
    frames_at_log: int = 0
    stop_signal: int | None = None
    main: bool = True
    pbar: Any = None
    anchor: Any = None  # prednet2.optim.InitAnchor when train.anchor_weight > 0


def say(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def flush_pending(ts: TrainState) -> list[float] | None:
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
    flush_pending(ts)
    if not ts.main:
        return ts.paths.last
    # The interval's mean loss decides best.pt before the checkpoint is written, so last.pt (and a resume from it)
    # holds the best loss so far, this interval's included; best.pt is copied from last.pt once that is on disk.
    new_best = False
    if ts.cfg.train.keep_best and ts.ckpt_loss_n:
        mean = ts.ckpt_loss_sum / ts.ckpt_loss_n
        if mean < ts.best_loss:
            ts.best_loss, new_best = mean, True
    ts.ckpt_loss_sum, ts.ckpt_loss_n = 0.0, 0
    extra = {
        "epoch": ts.epoch,
        "batch_in_epoch": ts.batch_in_epoch,
        "best_loss": ts.best_loss,
        "last_losses": list(ts.last_losses),
        "train_s_total": ts.train_s_before + ts.train_s,  # the run's training time over every session so far
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
    if new_best:
        atomic_copy(ts.paths.last, ts.paths.best)
    keep = ts.cfg.train.keep_numbered
    if keep > 0:
        atomic_copy(ts.paths.last, ts.paths.numbered(ts.step))
        for old in sorted(ts.paths.ckpt_dir.glob("step_*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
    return ts.paths.last


class SecondInterrupt(KeyboardInterrupt):
    """A second SIGINT while the first one's checkpoint was pending: abort at once, without saving."""


@contextlib.contextmanager
def stop_on_signals(ts: TrainState):
    """SIGINT/SIGTERM set a flag the loop checks after each step; a second SIGINT aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if ts.stop_signal is not None and signum == signal.SIGINT:
            raise SecondInterrupt
        ts.stop_signal = signum
        say(f"{signal.Signals(signum).name} received: saving a checkpoint after this step")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
