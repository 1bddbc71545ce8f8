"""TensorBoard helpers: a rank-0 writer, heatmap images, and the representation metrics the trainer logs.

Tags are hierarchical (``loss/layer0``, ``error_map/layer1``) so TensorBoard groups them by kind. Images are
CHW float in [0, 1]. Nothing here calls ``.item()``: the trainer decides when to sync (every ``log_every`` steps).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


class TBLogger:
    """A SummaryWriter that exists only where ``enabled`` (rank 0); elsewhere every call is a no-op."""

    def __init__(self, log_dir: str | Path, *, enabled: bool = True, purge_step: int | None = None):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after its last checkpoint, so a resumed run's curves
            # do not double back on themselves.
            self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for tag, v in values.items():
            self.writer.add_scalar(tag, v, step)

    def image(self, tag: str, img: Tensor, step: int) -> None:
        """img: (3, H, W) or (1, H, W) float in [0, 1]."""
        if self.writer is None:
            return
        self.writer.add_image(tag, img.detach().float().clamp(0, 1).cpu(), step, dataformats="CHW")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ---- images -----------------------------------------------------------------------------------------------
@functools.cache
def _lut(name: str = "inferno") -> Tensor:
    """(256, 3) colour table of a matplotlib colormap (imported lazily: only image logging needs it)."""
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return torch.tensor(cmap(torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)


def heatmap(x: Tensor, *, cmap: str = "inferno") -> Tensor:
    """(H, W) non-negative map -> (3, H, W) colour image, normalised to its own max (0 stays black)."""
    x = x.detach().float().cpu()
    x = x / x.max().clamp_min(1e-8)
    idx = (x * 255).round().long().clamp(0, 255)
    return rearrange(_lut(cmap)[idx], "h w c -> c h w")


def to_rgb(frame: Tensor) -> Tensor:
    """(C, H, W) float in [0, 1] with C in {1, 3} (extra channels dropped) -> (3, H, W)."""
    frame = frame.detach().float().cpu()
    if frame.shape[0] == 1:
        return frame.expand(3, -1, -1)
    return frame[:3]


def error_map_image(frame: Tensor, error: Tensor) -> Tensor:
    """The frame beside a heatmap of |E| summed over channels, upsampled to the frame's size.

    frame: (C, H, W) in [0, 1]; error: (2C_l, H_l, W_l), non-negative -> (3, H, 2W).
    """
    H, W = frame.shape[-2:]
    e = error.detach().float().abs().sum(0, keepdim=True)[None]  # (1, 1, H_l, W_l)
    e = F.interpolate(e.cpu(), size=(H, W), mode="nearest")[0, 0]
    return torch.cat([to_rgb(frame), heatmap(e)], dim=-1)


def mask_image(frame: Tensor, mask: Tensor) -> Tensor:
    """The frame beside its motion mask. frame: (C, H, W); mask: (1, H, W) in [0, 1] -> (3, H, 2W)."""
    return torch.cat([to_rgb(frame), to_rgb(mask.detach().float().clamp(0, 1))], dim=-1)


def frame_strip(clip: Tensor, max_frames: int = 10) -> Tensor:
    """Frames of one clip side by side. clip: (T, C, H, W) in [0, 1] -> (3, H, n*W), n = min(T, max_frames)."""
    clip = clip[:max_frames]
    return rearrange(torch.stack([to_rgb(f) for f in clip]), "t c h w -> c h (t w)")


def depth_to_frames(x: Tensor, channels: int) -> Tensor:
    """Undo a space-to-depth stem: (T, C*s*s, H/s, W/s) -> (T, C, H, W) (``F.pixel_shuffle``); as is when s = 1."""
    s = math.isqrt(x.shape[1] // channels)
    if s > 1 and x.shape[1] == channels * s * s:
        return F.pixel_shuffle(x, s)
    return x


def pred_vs_actual_image(pred: Tensor, actual: Tensor, max_frames: int = 10) -> Tensor:
    """Actual frames (top row) over predicted frames (bottom row). pred, actual: (T, C, H, W) -> (3, 2H, n*W)."""
    return torch.cat([frame_strip(actual, max_frames), frame_strip(pred.clamp(0, 1), max_frames)], dim=-2)
