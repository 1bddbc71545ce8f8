"""Motion-mask throughput and quality: flow backends side by side, flow vs mask cost, cache read vs compute.

    python benchmarks/motion_throughput.py [--data ../shared/data/smoke] [--sizes 64 128] [--backends dis farneback]
        [--max-frames 150] [--threads 1] [--json OUT]

Everything runs in this one process, side by side, so ratios hold on a busy machine:
1. **Real footage** (``--data``, decoded once with VideoFolder): per backend and frame size, frames/s of the flow
   alone, of the masks alone (given the flow), and of both, over the first ``--max-frames`` frames of each video.
2. **Quality** on synthetic:shapes with ground truth (12 clips, two per shape): mask IoU with the moving object on
   a static background, with a panning background, and with distractors (all moving objects).
3. **Cache**: per synthetic clip (10 x 64x64), computing its masks vs reading them from the per-clip cache.
Figures go to docs/results/motion.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a clone without installing
from prednet2.interrupt import quiet_loading, run_cli  # noqa: E402

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    import cv2
    import numpy as np
    import torch
    from prednet2.datasets.flow import compute_flow, make_flow
    from prednet2.datasets.folder import VideoFolder
    from prednet2.datasets.masks import motion_masks
    from prednet2.datasets.motion import with_motion
    from prednet2.datasets.shapes import SHAPES, ShapesDataset, render_shapes_clip
    from prednet2.eval.common import write_json

    from prednet2.cli import OneLineParser, int_at_least, out_file
    from prednet2.config import DataConfig, MotionConfig


def real_footage(data: Path, size: int, backends: list[str], max_frames: int, cache: str) -> list[dict]:
    ds = VideoFolder(data, size=(size, size), clip_len=2, cache_dir=cache, progress=False)
    videos = [np.asarray(ds.frames(v)[:max_frames]) for v in range(len(ds.videos))]
    n = sum(len(v) for v in videos)
    rows = []
    for b in backends:
        fn = make_flow(b)
        compute_flow(videos[0][:3], flow_fn=fn)  # warm-up (and the masks' numba compile below)
        motion_masks(compute_flow(videos[0][:3], flow_fn=fn), videos[0][:3])
        t_flow = t_mask = 0.0
        moving = 0.0
        for v in videos:
            t0 = time.perf_counter()
            flow = compute_flow(v, flow_fn=fn)
            t1 = time.perf_counter()
            m = motion_masks(flow, v)
            t_mask += time.perf_counter() - t1
            t_flow += t1 - t0
            moving += m.sum()
        rows.append(
            {
                "size": size,
                "backend": b,
                "videos": len(videos),
                "frames": n,
                "flow_fps": n / t_flow,
                "mask_fps": n / t_mask,
                "total_fps": n / (t_flow + t_mask),
                "masked_fraction": float(moving) / (n * size * size),
            }
        )
    return rows


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = (a | b).sum()
    return 1.0 if u == 0 else float((a & b).sum() / u)


def quality(backends: list[str]) -> list[dict]:
    cases = {
        "static_bg": (dict(n_distractors=0), "true_mask"),
        "pan": (dict(n_distractors=0, pan=(1.0, 0.6)), "true_mask"),
        "distractors": (dict(n_distractors=2), "moving_mask"),
        "flat_bg": (dict(n_distractors=0, clutter=False), "true_mask"),
    }
    clips = {
        c: [render_shapes_clip(np.random.default_rng(s), shape=s % len(SHAPES), **kw) for s in range(12)]
        for c, (kw, _) in cases.items()
    }
    static = [render_shapes_clip(np.random.default_rng(s), static=True) for s in range(12)]
    rows = []
    for b in backends:
        fn = make_flow(b)
        row = {"backend": b}
        for c, (_, key) in cases.items():
            per_clip = []
            for clip in clips[c]:
                f = clip["video"].transpose(0, 2, 3, 1)
                m = motion_masks(compute_flow(f, flow_fn=fn), f) > 0.5
                true = clip[key][:, 0]
                per_clip.append(np.mean([iou(m[t], true[t]) for t in range(1, len(true))]))
            row[f"iou_{c}"] = float(np.mean(per_clip))
        row["static_masked_fraction"] = float(
            np.mean([motion_masks(compute_flow(c["video"].transpose(0, 2, 3, 1), flow_fn=fn)).mean() for c in static])
        )
        rows.append(row)
    return rows


def cache_vs_compute(n: int = 16) -> dict:
    with tempfile.TemporaryDirectory(prefix="prednet2-bench-motion-") as cache:
        ds = ShapesDataset(n=n, seed=0)
        cfg = DataConfig(cache_dir=cache)
        items = [ds[i] for i in range(n)]  # generated once, outside the timings
        cold = with_motion(ds, MotionConfig(), cfg)
        t0 = time.perf_counter()
        for it in items:
            cold.clip_masks(it["video"])
        t_compute = (time.perf_counter() - t0) / n
        warm = with_motion(ds, MotionConfig(), cfg)
        t0 = time.perf_counter()
        for it in items:
            warm.clip_masks(it["video"])
        t_read = (time.perf_counter() - t0) / n
        assert warm.n_computed == 0
        t0 = time.perf_counter()
        for i in range(n):
            ds[i]
        t_gen = (time.perf_counter() - t0) / n
    return {"clips": n, "compute_ms_per_clip": 1e3 * t_compute, "read_ms_per_clip": 1e3 * t_read,
            "generate_ms_per_clip": 1e3 * t_gen, "compute_over_read": t_compute / t_read}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="benchmarks/motion_throughput.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "smoke"))
    p.add_argument("--sizes", type=int_at_least(16), nargs="+", default=[64, 128])
    p.add_argument("--backends", nargs="+", default=["dis", "farneback"], choices=["dis", "farneback"])
    p.add_argument("--max-frames", type=int_at_least(2), default=150, help="frames per video used (the start of each)")
    p.add_argument("--threads", type=int_at_least(1), default=1, help="OpenCV and torch threads (1: per-core figures)")
    p.add_argument("--cache-dir", default="", help="decode cache for --data (default: a temporary folder)")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--json", type=out_file, help="also write the results here")
    a = p.parse_args(argv)
    if not Path(a.data).is_dir():
        p.error(f"--data {a.data}: no such folder")
    cv2.setNumThreads(a.threads)
    torch.set_num_threads(a.threads)

    out: dict = {"args": vars(a), "real": [], "quality": [], "cache": {}}
    with tempfile.TemporaryDirectory(prefix="prednet2-bench-decode-") as tmp:
        for s in a.sizes:
            out["real"] += real_footage(Path(a.data), s, a.backends, a.max_frames, a.cache_dir or tmp)
    print(f"\nflow + masks on {a.data} (first {a.max_frames} frames per video, {a.threads} thread(s))")
    print(f"{'size':>5} {'backend':>10} {'frames':>7} {'flow f/s':>9} {'mask f/s':>9} {'total f/s':>10} {'moving':>7}")
    for r in out["real"]:
        print(
            f"{r['size']:>5} {r['backend']:>10} {r['frames']:>7} {r['flow_fps']:>9.0f} {r['mask_fps']:>9.0f} "
            f"{r['total_fps']:>10.0f} {r['masked_fraction']:>7.3f}"
        )
    if not a.skip_quality:
        out["quality"] = quality(a.backends)
        print("\nmask IoU on synthetic:shapes (12 clips, frames after the first), 64x64")
        print(f"{'backend':>10} {'static bg':>10} {'pan':>6} {'distract':>9} {'flat bg':>8} {'static: masked':>15}")
        for r in out["quality"]:
            print(
                f"{r['backend']:>10} {r['iou_static_bg']:>10.3f} {r['iou_pan']:>6.3f} {r['iou_distractors']:>9.3f} "
                f"{r['iou_flat_bg']:>8.3f} {r['static_masked_fraction']:>15.4f}"
            )
    out["cache"] = c = cache_vs_compute()
    print(
        f"\nper-clip cache (10 x 64x64, dis): compute {c['compute_ms_per_clip']:.1f} ms, read "
        f"{c['read_ms_per_clip']:.2f} ms ({c['compute_over_read']:.0f}x), generating the clip "
        f"{c['generate_ms_per_clip']:.1f} ms"
    )
    if a.json:
        write_json(a.json, out)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
