"""What ``prednet2.stream`` writes to ``--out``: the folder check, the mp4 panel, the learned checkpoint (stream.json
is written whole by ``prednet2.eval.common.write_json``).

- ``prepare_out_dir``: refuses a folder whose earlier stream outputs this run would leave beside its own (a
  ``last.pt`` of an earlier ``--learn`` run when this one does not learn, a ``stream.mp4`` under ``--no-video``),
  removes the old ``stream.json`` (so a run aborted by a second Ctrl-C leaves no summary of another run's outputs),
  and creates the folder.
- ``panel``: one side-by-side frame of the mp4.
- ``save_learned``: ``last.pt`` after online learning. It carries the source checkpoint's training state (step,
  schedule, data position, best loss), so one from train.py gives one that ``train.py --resume`` continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


class StreamOptionError(ValueError):
    """An option of ``run_stream`` does not fit the checkpoint or ``--out`` (e.g. a window shorter than its horizon)."""


def prepare_out_dir(out_dir: Path, *, learn: bool, video: bool, checkpoint: str | Path) -> None:
    """Refuse stale outputs this run would not overwrite, drop the old stream.json, create the folder."""
    stale = []
    last = out_dir / "last.pt"
    if not learn and last.is_file() and last.resolve() != Path(checkpoint).resolve():
        stale.append("last.pt of an earlier --learn stream (this one does not learn)")
    if not video and (out_dir / "stream.mp4").is_file():
        stale.append("stream.mp4 of an earlier stream (this one has --no-video)")
    if stale:
        raise StreamOptionError(
            f"--out {out_dir} holds {' and '.join(stale)}, which would stay beside this run's outputs as if they were "
            "its own; pick another --out, or move them away"
        )
    (out_dir / "stream.json").unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def panel(frame: np.ndarray, errors: list[torch.Tensor] | None, vmax, mask: np.ndarray | None, height: int):
    """frame (H, W, C) uint8, errors[l] (1, 2C_l, H_l, W_l), mask (H, W) -> one (height, W_total, 3) uint8 image.

    ``errors=None`` (the first frame, where nothing was predicted): blank error panels, the colour scale untouched.
    """
    from prednet2.video_writer import gray_panel, heatmap, hstack_panels, to_panel

    rgb = frame if frame.shape[2] == 3 else np.repeat(frame, 3, axis=2)
    panels = [to_panel(rgb, height, "frame")]
    for l, v in enumerate(vmax):
        if errors is None:
            m, top = np.zeros(frame.shape[:2], np.float32), max(v.value, v.floor)
        else:
            m = errors[l][0].detach().float().mean(dim=0).cpu().numpy()  # (H_l, W_l): mean |error| over channels
            top = v.update(float(m.max()))
        panels.append(to_panel(heatmap(m, top), height, f"error L{l}"))
    if mask is not None:
        panels.append(to_panel(gray_panel(mask), height, "motion"))
    return hstack_panels(panels)


class _Stored:
    """A scheduler state as stored in a checkpoint, for ``save_checkpoint(scheduler=...)``."""

    def __init__(self, state: dict):
        self.state = state

    def state_dict(self) -> dict:
        return self.state


def save_learned(path: Path, *, model, optimizer, cfg, source: dict[str, Any], summary: dict) -> None:
    """Write the learned model. ``step``, the schedule and the trainer's data position are the source checkpoint's
    (online updates are no training steps; ``extra["stream"]["n_updates"]`` counts them), so a checkpoint from
    train.py gives one that ``train.py --resume`` continues."""
    from prednet2.checkpoint import save_checkpoint

    # the trainer's entries a resume reads (data position, best loss, ...); an earlier stream's summary is replaced
    extra = {k: v for k, v in source.get("extra", {}).items() if k != "stream"}
    sched = source.get("scheduler")
    save_checkpoint(
        path,
        model=model,
        optimizer=optimizer,
        config=cfg,
        step=int(source.get("step", 0)),
        extra={**extra, "stream": summary},
        scheduler=_Stored(sched) if sched is not None else None,
    )
