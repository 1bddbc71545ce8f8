"""The command line of ``prednet2.stream`` (``python -m prednet2.stream``, ``prednet2 stream``): options, their
checks, and the one-line summary; the loop itself is ``prednet2.stream.run_stream``."""

from __future__ import annotations

import argparse
import sys

import torch

from prednet2.cli import OneLineParser, int_at_least, prog_name
from prednet2.frame_source import SourceError
from prednet2.interrupt import EXIT_INTERRUPTED
from prednet2.stream import RESETS, run_stream
from prednet2.stream_outputs import StreamOptionError
from prednet2.surprise_gate import SurpriseGate


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog_name("python -m prednet2.stream"),
        description="Run a prednet2 checkpoint on a video file, folder or camera; optionally learn online.",
    )
    p.add_argument("source", help="video file, folder of videos (sorted), or camera (/dev/video0 or 0)")
    p.add_argument("--checkpoint", required=True, help="checkpoint .pt (e.g. RUN/checkpoints/last.pt)")
    p.add_argument("--out", default="stream_out", help="output folder (default: stream_out)")
    p.add_argument("--learn", action="store_true", help="keep training online, gated by surprise")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: the whole stream)")
    p.add_argument("--gate", default="threshold", choices=SurpriseGate.MODES, help="how surprise gates updates")
    p.add_argument("--z-threshold", type=float, default=1.0, help="surprise z-score that opens the gate")
    p.add_argument("--history", type=int, default=100, help="frames in the running surprise baseline")
    p.add_argument("--min-history", type=int, default=10, help="frames before z-scores exist (gate open until then)")
    p.add_argument("--reset", default="video", choices=RESETS,
                   help="video: fresh state at each video of a folder (default); never: one stream")  # fmt: skip
    p.add_argument("--window", type=int, default=0, help="truncated window k in frames (0: train.window)")
    p.add_argument("--lr", type=float, default=0.0, help="online learning rate (0: train.lr of the checkpoint)")
    p.add_argument(
        "--anchor-weight",
        type=float,
        default=None,
        help="pull the weights toward the checkpoint's by lr x this per update (default: train.anchor_weight)",
    )
    p.add_argument("--fresh-optimizer", action="store_true", help="ignore the checkpoint's optimizer state")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-video", action="store_true", help="skip stream.mp4")
    p.add_argument("--panel-height", type=int_at_least(16), default=192, help="pixel height of each panel in the mp4")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    from prednet2.checkpoint import CheckpointError, resolve_checkpoint

    try:
        a.checkpoint = str(resolve_checkpoint(a.checkpoint))
    except CheckpointError as e:
        p.error(f"--checkpoint {e}")
    for name in ("max_frames", "window", "panel_height", "threads"):
        if getattr(a, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here; use --device cpu")
    if a.threads:
        torch.set_num_threads(a.threads)

    try:
        summary = run_stream(
            a.source,
            a.checkpoint,
            a.out,
            learn=a.learn,
            max_frames=a.max_frames,
            gate=a.gate,
            z_threshold=a.z_threshold,
            history=a.history,
            min_history=a.min_history,
            window=a.window,
            lr=a.lr,
            anchor_weight=a.anchor_weight,
            fresh_optimizer=a.fresh_optimizer,
            device=a.device,
            video=not a.no_video,
            panel_height=a.panel_height,
            progress=not a.no_progress,
            reset=a.reset,
        )
    except (SourceError, CheckpointError, StreamOptionError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    r = summary["rss"]
    last = str(summary["n_frames"])
    print(
        ("stopped by Ctrl-C: " if summary["interrupted"] else "")
        + f"{summary['n_frames']} frames at {summary['frames_per_s']} frames/s, {summary['n_updates']} updates; "
        f"peak RSS {r[last]['peak_rss_mb']:.0f} MiB; wrote {a.out}/stream.json, surprise.csv"
        + (", stream.mp4" if summary["video"] else "")
        + (f"; the learned weights: {summary['checkpoint_out']}" if summary.get("checkpoint_out") else "")
        + (f"; skipped {len(summary['skipped'])} unreadable file(s) (in stream.json)" if summary["skipped"] else "")
        + (f"; {summary['n_truncated']} cut short or damaged (in stream.json)" if summary["n_truncated"] else "")
    )
    return EXIT_INTERRUPTED if summary["interrupted"] else 0
