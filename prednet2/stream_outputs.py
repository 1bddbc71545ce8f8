"""What ``prednet2.stream`` writes to ``--out``: the mp4 panel and stream.json.

- ``panel``: one side-by-side frame of the mp4.
- ``write_summary``: ``stream.json``, written whole (temporary file and rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch


class StreamOptionError(ValueError):
    """An option of ``run_stream`` does not fit the checkpoint or ``--out`` (e.g. a window shorter than its horizon)."""


def panel(frame: np.ndarray, errors: list[torch.Tensor], vmax, mask: np.ndarray | None, height: int) -> np.ndarray:
    """frame (H, W, C) uint8, errors[l] (1, 2C_l, H_l, W_l), mask (H, W) -> one (height, W_total, 3) uint8 image."""
    from prednet2.video_writer import gray_panel, heatmap, hstack_panels, to_panel

    rgb = frame if frame.shape[2] == 3 else np.repeat(frame, 3, axis=2)
    panels = [to_panel(rgb, height, "frame")]
    for l, e in enumerate(errors):
        m = e[0].detach().float().mean(dim=0).cpu().numpy()  # (H_l, W_l): mean |error| over channels
        panels.append(to_panel(heatmap(m, vmax[l].update(float(m.max()))), height, f"error L{l}"))
    if mask is not None:
        panels.append(to_panel(gray_panel(mask), height, "motion"))
    return hstack_panels(panels)


def write_summary(out_dir: Path, summary: dict) -> None:
    """``stream.json``, whole or not at all."""
    tmp = out_dir / "stream.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, out_dir / "stream.json")
