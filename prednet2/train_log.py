"""What a training run writes to TensorBoard: scalars every ``log_every`` steps, representation statistics
(``repr_std``/``repr_rank``) every ``stats_every`` and images every ``image_every``, and all of them at the run's
first and last step, so a run shorter than an interval still fills every panel."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from prednet2 import tblog
from prednet2.losses import effective_rank, repr_std
from prednet2.train_state import TrainState, flush_pending
from prednet2.train_step import StepResult


def log_step(ts: TrainState, res: StepResult, clip: Tensor, mask: Tensor | None, *, stats: bool, images: bool) -> None:
    """Scalars (one host sync), plus repr statistics when ``stats`` and images when ``images``.

    The loop decides when (``train_one_epoch``): every interval, and at the session's first and the run's last step.
    """
    means = flush_pending(ts)
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
    if res.last is not None and stats:
        for l, a in enumerate(res.last.targets):
            tensors[f"repr_std/layer{l}"] = repr_std(a)
            tensors[f"repr_rank/layer{l}"] = effective_rank(a)
    if tensors:
        keys = list(tensors)
        vals = torch.stack([tensors[k].float().reshape(()) for k in keys]).cpu().tolist()  # one sync
        scalars.update(zip(keys, vals))
    ts.logger.scalars(scalars, ts.step)
    if res.last is not None and images:
        log_images(ts, res.last, clip, mask)
    if ts.pbar is not None and means:
        ts.pbar.set_postfix(loss=f"{sum(means):.4g}", fps=f"{fps:.0f}", refresh=False)


def log_images(ts: TrainState, out: Any, clip: Tensor, mask: Tensor | None) -> None:
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
        # Layer 0's prediction is the pixels (after the stem's space-to-depth), then any motion channels: keep the
        # pixels, (k, C*s*s, H/s, W/s) -> (k, C, H, W).
        pix = clip.shape[2] * ts.cfg.model.stem**2
        pred = tblog.depth_to_frames(out.preds[0][0, :, :pix].float(), clip.shape[2])
        ts.logger.image("pred_vs_actual", tblog.pred_vs_actual_image(pred, clip[0, T - k :]), step)
