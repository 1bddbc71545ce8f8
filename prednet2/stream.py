"""Run a trained stack on a live stream, frame by frame, and optionally keep learning from it.

    python -m prednet2.stream SOURCE --checkpoint CKPT [--learn] [--out DIR] [--max-frames N]
                              [--gate threshold|lr|always] [--z-threshold 1.0] [--history 100] [--window K]
                              [--reset video|never]

SOURCE is a video file, a folder of videos (played in sorted order, as ``datasets`` scans it), or a camera: a V4L2
device path (``/dev/video0``) or its index (``0``). Frames are decoded one at a time with PyAV and resized like the
training data (shorter side, then centre crop to the checkpoint's ``data.size``), so memory does not grow with the
length of the stream. Between the videos of a folder the state and the motion mask start afresh (``--reset video``,
the default): each video's first frame is not predicted, as a clip's first frame in training. ``--reset never`` plays
the folder as one stream; each video's first frame is then a cut, a surprise spike the model could not predict.

What it writes to ``--out`` (default ``stream_out``):
- ``surprise.csv``: one row per frame: surprise, its z-score, the gate value, whether an update ended there and at
  what learning rate (``--gate lr`` scales it), and each layer's error.
- ``stream.json``: summary (frames, updates, frames/s, RSS at frames 100 and the last, the RSS trace, options,
  where each video of a folder starts and how many frames it gave).
- ``stream.mp4``: the frame, one error heatmap per layer and (motion enabled) the motion mask, side by side.
- ``last.pt`` with ``--learn``: the model after online learning (a normal checkpoint; step, schedule and data
  position are the source checkpoint's, so ``train.py --resume`` continues one from train.py).

Online learning (``--learn``): the stack runs in local mode with a truncated window of ``--window`` steps
(default ``train.window``). After each window the summed per-unit losses are back-propagated, the optimizer steps
and the state is detached, so the graph never spans more than one window (constant memory). Each update is gated
by surprise. A frame's surprise s_t is the mean over layers of its per-layer error-unit mean; its z-score is
z_t = (s_t - mean) / std over the previous ``--history`` frames (the first ``--min-history`` frames have no
baseline and count as surprising: a new stream is worth learning from). Gates:
- ``threshold`` (default): a window's loss is the mean of the losses of its frames with z_t > ``--z-threshold``;
  a window with none is skipped (no backward, no step).
- ``lr``: every window updates on all its frames, with lr scaled by clamp(max_t z_t / z_threshold, 0, 1).
- ``always``: plain online learning, every window, full lr.
With ``model.horizon > 1`` an updating window also trains the further-horizon heads on the targets inside it (all
of its frames, as the trainer's window loss does).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from prednet2.cli import out_folder
from prednet2.config import ConfigError
from prednet2.eval.common import write_json

# One concept per file: the frame source, the per-frame motion mask, the surprise gate and the outputs live beside
# this loop.
from prednet2.frame_source import FrameSource, SourceError
from prednet2.interrupt import run_cli, stop_on_sigint
from prednet2.optim import build_anchor, unit_param_groups
from prednet2.runinfo import read_rss_mb
from prednet2.stream_motion import StreamMotion
from prednet2.stream_outputs import StreamOptionError, panel, prepare_out_dir, save_learned
from prednet2.surprise_gate import SurpriseGate

__all__ = ["SourceError", "StreamOptionError", "FrameSource", "SurpriseGate", "StreamMotion", "read_rss_mb",
           "run_stream", "main"]  # fmt: skip


RESETS = ("video", "never")  # --reset: where the state starts afresh


# ---- the loop ---------------------------------------------------------------------------------------------------
def _to_input(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (H, W, C) -> float (1, C, H, W) in [0, 1]."""
    return torch.from_numpy(frame).to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def _build_optimizer(model: torch.nn.Module, cfg, source: dict, fresh: bool) -> tuple[torch.optim.Optimizer, str]:
    """AdamW at ``train.lr`` with the trainer's per-unit param groups; the checkpoint's optimizer state when it fits."""
    opt = torch.optim.AdamW(unit_param_groups(model), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    if fresh:
        return opt, "fresh"
    state = source.get("optimizer")
    if not state:
        return opt, "fresh (checkpoint has none)"
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError) as e:  # another optimizer type or param layout: start fresh, say so
        print(f"prednet2.stream: optimizer state not reusable ({e}); starting a fresh AdamW", file=sys.stderr)
        return opt, "fresh (checkpoint's did not fit)"
    for g in opt.param_groups:  # the trainer's schedule may have left lr anywhere: online learning uses train.lr
        g["lr"] = cfg.train.lr
    return opt, "checkpoint"


def run_stream(
    source: str,
    checkpoint: str,
    out_dir: str | Path,
    *,
    learn: bool = False,
    max_frames: int = 0,
    gate: str = "threshold",
    z_threshold: float = 1.0,
    history: int = 100,
    min_history: int = 10,
    window: int = 0,
    lr: float = 0.0,
    anchor_weight: float | None = None,
    fresh_optimizer: bool = False,
    device: str = "cpu",
    video: bool = True,
    panel_height: int = 192,
    rss_at: tuple[int, ...] = (100,),
    progress: bool = True,
    reset: str = "video",
) -> dict:
    """Stream ``source`` through the checkpoint's model; see the module docstring. Returns the stream.json dict."""
    from tqdm import tqdm

    from prednet2 import detach_state
    from prednet2.checkpoint import load_model

    if not learn and (fresh_optimizer or lr > 0 or anchor_weight is not None or window > 0):  # they shape updates
        what = ("--fresh-optimizer" if fresh_optimizer else f"--lr {lr:g}" if lr > 0 else
                f"--window {window}" if window > 0 else "--anchor-weight")  # fmt: skip
        raise StreamOptionError(
            f"{what} only matters with --learn (nothing is trained without it); add --learn or drop it"
        )
    if lr < 0 or not math.isfinite(lr):  # a negative rate was taken as 0: the checkpoint's, without a word
        raise StreamOptionError(f"--lr {lr:g}: need a rate > 0 (or 0 for the checkpoint's train.lr)")
    if anchor_weight is not None and not (anchor_weight >= 0 and math.isfinite(anchor_weight)):
        raise StreamOptionError(f"--anchor-weight {anchor_weight:g}: need a weight >= 0 (0 turns the anchor off)")
    if reset not in RESETS:
        raise StreamOptionError(f"--reset {reset!r}: choose one of {', '.join(RESETS)}")
    try:  # the gate checks its own options (--gate, --history, --min-history, --z-threshold), before the model loads
        gate_ = SurpriseGate(gate, z_threshold=z_threshold, history=history, min_history=min_history)
    except ValueError as e:
        raise StreamOptionError(str(e)) from None
    try:  # a file, or a path inside one: refused before the model loads, not a traceback from mkdir
        out_dir = Path(out_folder(str(out_dir)))
    except argparse.ArgumentTypeError as e:
        raise StreamOptionError(f"--out {e}") from None
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    model, cfg = load_model(checkpoint, dev)
    over = {**({"lr": lr} if lr > 0 else {}), **({"anchor_weight": anchor_weight} if anchor_weight is not None else {})}
    if anchor_weight is not None:  # streaming applies no late schedule: a stored train.anchor_end must not refuse 0
        over["anchor_end"] = 1.0
    try:  # e.g. an --lr or --anchor-weight whose product pulls every update all the way back
        cfg = cfg.replace({"train": over}) if over else cfg
    except ConfigError as e:
        flags = " / ".join(f for f, v in (("--lr", lr > 0), ("--anchor-weight", anchor_weight is not None)) if v)
        raise StreamOptionError(f"{flags}: {e}") from None
    window = window or cfg.train.window
    if window < 1:
        raise StreamOptionError(f"--window must be >= 1, got {window}")
    if learn and 0 < max_frames < window:  # no window would ever close: last.pt would be the checkpoint, "learned"
        raise StreamOptionError(
            f"--max-frames {max_frames} is shorter than the learning window of {window} frames (--window, else the "
            f"checkpoint's train.window): --learn would never update; use --window {max_frames} or fewer"
        )
    horizon = model.cfg.horizon
    if learn and window < horizon:  # as the trainer refuses train.window < model.horizon
        raise StreamOptionError(
            f"--window {window} is shorter than the checkpoint's model.horizon={horizon}: its further-horizon heads "
            f"would get no target; use --window {horizon} or more"
        )
    end_to_end = cfg.train.mode == "end_to_end"
    grayscale = cfg.model.in_channels == 1
    src = FrameSource(source, size=tuple(cfg.data.size), grayscale=grayscale)
    # after the checks: a refused stream leaves no folder behind
    prepare_out_dir(out_dir, learn=learn, video=video, checkpoint=checkpoint)
    motion = StreamMotion(cfg.motion) if cfg.motion.enabled else None
    use_mask = getattr(model.cfg, "motion_channels", 0) > 0
    opt, opt_from, anchor = (None, "", None)
    if learn:
        from prednet2.checkpoint import load_checkpoint

        source_ckpt = load_checkpoint(checkpoint)  # its optimizer state, and the training state last.pt carries on
        model.train()
        opt, opt_from = _build_optimizer(model, cfg, source_ckpt, fresh_optimizer)
        anchor = build_anchor(opt, cfg)
    L = model.num_layers

    writer = None
    if video:
        from prednet2.video_writer import Mp4Writer, RunningMax

        writer = Mp4Writer(out_dir / "stream.mp4", fps=src.fps)
        vmax = [RunningMax() for _ in range(L)]

    csv_f = open(out_dir / "surprise.csv", "w", newline="")
    rows = csv.writer(csv_f)
    rows.writerow(["frame", "surprise", "z", "gate", "update", "lr"] + [f"error_{l}" for l in range(L)])
    rss_marks: dict[str, dict[str, float]] = {}
    rss_trace: list[tuple[int, float, float]] = []
    state = None
    win_losses: list[torch.Tensor] = []
    win_steps: list = []  # the window's step outputs, for the further-horizon terms (model.horizon > 1)
    win_z: list[float] = []
    n_updates = n_windows = 0
    surprises: list[float] = []
    videos: list[dict] = []  # where each video of the source starts in the stream
    n = 0
    t0 = time.perf_counter()
    bar = tqdm(total=max_frames or None, desc="stream", unit="frame", disable=not progress)
    with stop_on_sigint() as stop:  # Ctrl-C ends the stream after its frame; what follows saves as at the end
        try:
            for frame in src:
                if (max_frames and n >= max_frames) or stop.stop:
                    break
                if not videos or videos[-1]["path"] != src.current:  # a folder's next video starts here
                    if videos and reset == "video":  # a new scene: nothing to predict it from
                        state = None
                        win_steps = []  # further-horizon targets do not pair across the cut
                        if motion is not None:
                            motion.reset()
                    videos.append({"path": src.current, "first_frame": n})
                x = _to_input(frame, dev)
                m_np = motion(frame) if motion is not None else None
                mask = torch.from_numpy(m_np).to(dev)[None, None] if (use_mask and m_np is not None) else None
                # Step 1. One step of the stack (a graph only when learning, and only for the current window).
                with torch.set_grad_enabled(learn):
                    out, state = model.step(x, state, mask, detach_between=not end_to_end, compute_losses=learn)
                # Step 2. Surprise: mean over layers of the per-layer error-unit mean (0 at the very first frame).
                per_layer = [float(fe[0]) for fe in out.frame_errors]
                s = float(np.mean(per_layer))
                z = gate_.zscore(s) if out.valid else 0.0
                is_open = out.valid and gate_.frame_open(z)
                # Step 3. Online learning over a truncated window: backward, step, detach (memory flat in length).
                updated, lr_used = False, ""
                if learn:
                    if is_open:
                        win_losses.append(torch.stack(out.losses).sum())
                    if horizon > 1:
                        win_steps.append(out)
                    if out.valid:
                        win_z.append(z)
                    if (n + 1) % window == 0:
                        n_windows += 1
                        scale = gate_.lr_scale(win_z)
                        if win_losses and scale > 0:
                            opt.zero_grad(set_to_none=True)
                            loss = torch.stack(win_losses).mean()
                            ahead = model.ahead_loss(win_steps) if win_steps else None  # t+2.. targets in the window
                            if ahead is not None:
                                loss = loss + ahead
                            loss.backward()
                            if cfg.train.grad_clip > 0:
                                # As the trainer: per unit in local mode (units stay independent), global end to end.
                                groups = [g["params"] for g in opt.param_groups]
                                for ps in [[p for g in groups for p in g]] if end_to_end else groups:
                                    torch.nn.utils.clip_grad_norm_(ps, cfg.train.grad_clip)
                            for g in opt.param_groups:
                                g["lr"] = cfg.train.lr * scale
                            lr_used = f"{cfg.train.lr * scale:.6g}"
                            opt.step()
                            if anchor is not None:  # train.anchor_weight: toward the weights the stream started from
                                anchor(opt)
                            model.update_ema()
                            n_updates += 1
                            updated = True
                        win_losses, win_z, win_steps = [], [], []
                        state = detach_state(state)
                else:
                    state = detach_state(state)  # no graph anyway (no_grad); keeps the contract explicit
                if out.valid:  # frame 0's 0 is a placeholder (nothing predicted), not a surprise
                    surprises.append(s)
                rows.writerow([n, f"{s:.6g}", f"{z:.4g}", int(is_open), int(updated), lr_used]
                              + [f"{v:.6g}" for v in per_layer])  # fmt: skip
                # Step 4. The side-by-side panel.
                if writer is not None:
                    writer.write(panel(frame, out.errors if out.valid else None, vmax, m_np, panel_height))
                n += 1
                bar.update(1)
                if n in rss_at:
                    rss_marks[str(n)] = read_rss_mb()
                if n % 50 == 0 or n == 1:
                    r = read_rss_mb()
                    rss_trace.append((n, round(r["rss_mb"], 1), round(r["peak_rss_mb"], 1)))
        finally:
            bar.close()
            csv_f.close()
            if writer is not None:
                writer.close()
            src.close()
    if n == 0:
        sk = src.skipped
        why = f" ({len(sk)} file(s) skipped, e.g. {sk[0][0]}: {sk[0][1]})" if sk else ""
        raise SourceError(f"SOURCE {source}: no frame decoded{why}")
    if learn and n_windows == 0:
        msg = f"the stream ended after {n} frames, before its first learning window of {window} closed"
        print(f"prednet2.stream: warning: {msg}: nothing was learned (last.pt holds the checkpoint's weights)",
              file=sys.stderr)  # fmt: skip
    wall = time.perf_counter() - t0
    rss_marks[str(n)] = read_rss_mb()
    summary = {
        "source": str(source),
        "checkpoint": str(checkpoint),
        "n_frames": n,
        "learn": learn,
        "gate": gate,
        "z_threshold": z_threshold,
        "history": history,
        "min_history": min_history,
        "window": window,
        "reset": reset,
        "lr": cfg.train.lr,
        "optimizer": opt_from,
        "n_windows": n_windows,
        "n_updates": n_updates,
        "wall_s": round(wall, 3),
        "frames_per_s": round(n / wall, 2),
        "surprise_mean": float(np.mean(surprises)) if surprises else None,  # over the predicted frames
        "rss": rss_marks,
        "rss_trace": rss_trace,
        "peak_rss_ratio_last_vs_100": (
            rss_marks[str(n)]["peak_rss_mb"] / rss_marks["100"]["peak_rss_mb"] if "100" in rss_marks else None
        ),
        "video": str(out_dir / "stream.mp4") if writer is not None else None,
        "surprise_csv": str(out_dir / "surprise.csv"),
        "videos": [
            {**v, "n_frames": e - v["first_frame"]}
            for v, e in zip(videos, [v["first_frame"] for v in videos[1:]] + [n])
        ],
        "skipped": [{"path": p, "reason": r} for p, r in src.skipped],
        "n_truncated": len(src.truncated),  # played up to damage partway (cut short or a decode error)
        "truncated": [{"path": p, "frames": k} for p, k in src.truncated],
        "motion_panel": motion is not None,
        "interrupted": stop.stop,
    }
    if learn:
        save_learned(out_dir / "last.pt", model=model, optimizer=opt, cfg=cfg, source=source_ckpt, summary=summary)
        summary["checkpoint_out"] = str(out_dir / "last.pt")
    write_json(out_dir / "stream.json", summary)  # whole or not at all (temporary file and rename)
    return summary


# ---- CLI: prednet2/stream_cli.py -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """The command line (``prednet2.stream_cli.main``): ``python -m prednet2.stream`` and ``prednet2 stream``."""
    from prednet2.stream_cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
