"""Data pipeline throughput: decoded clip frames/s from a cold cache (decoding) vs the decode-once cache.

    python benchmarks/data_throughput.py [--data ../shared/data/smoke] [--size 64 64] [--clip-len 10] [--json OUT]

Both passes run in this one process, side by side, so their ratio holds even on a busy machine:
- **cold**: a fresh, empty cache folder; build the VideoFolder (decodes every video) and read every clip once;
- **cached**: a new VideoFolder on the same cache (a second run: re-scan + every clip read from the memmaps),
  best of ``--repeats``; also through a ``DataLoader`` (batch 8, main process) as training reads it.
``--resize`` adds a table of resize methods on one video (why decode.py scales inside FFmpeg); ``--prep`` times a
folder's first read (decode every video, then its motion masks) on one thread against ``data.prep_workers`` threads,
each on a fresh cache, alternated, best of ``--repeats``.
Frames/s counts frames delivered in clips (n_clips x T). Figures go to docs/results/data.md.
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
    import torch
    from prednet2.datasets.decode import INTERPOLATION, resize_plan, scan_videos
    from prednet2.datasets.folder import VideoFolder
    from prednet2.eval.common import write_json

    from prednet2.cli import OneLineParser, int_at_least, out_file


def _read_all(ds: VideoFolder) -> int:
    n = 0
    for i in range(len(ds)):
        n += ds[i]["video"].shape[0]
    return n


def measure(data: Path, size: tuple[int, int], clip_len: int, repeats: int) -> dict:
    kw = dict(clip_len=clip_len, size=size, progress=False)
    with tempfile.TemporaryDirectory(prefix="prednet2-bench-cache-") as cache:
        t0 = time.perf_counter()
        ds = VideoFolder(data, cache_dir=cache, **kw)
        frames = _read_all(ds)
        cold = time.perf_counter() - t0
        src = sum(ds.num_frames(v) for v in range(len(ds.videos)))
        cached = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ds2 = VideoFolder(data, cache_dir=cache, **kw)
            assert _read_all(ds2) == frames
            cached.append(time.perf_counter() - t0)
        loader = torch.utils.data.DataLoader(ds2, batch_size=8, num_workers=0)
        t0 = time.perf_counter()
        n = sum(b["video"].shape[0] * b["video"].shape[1] for b in loader)
        t_loader = time.perf_counter() - t0
    best = min(cached)
    return {
        "data": str(data),
        "size": list(size),
        "clip_len": clip_len,
        "n_videos": len(ds.videos),
        "n_clips": len(ds),
        "frames_per_pass": frames,
        "cold": {"seconds": cold, "frames_per_s": frames / cold, "source_frames_per_s": src / cold},
        "cached": {"seconds": best, "frames_per_s": frames / best, "repeats": cached},
        "cached_dataloader": {"seconds": t_loader, "frames_per_s": n / t_loader},
        "ratio_cached_over_cold": cold / best,
    }


def measure_prep(data: Path, size: tuple[int, int], clip_len: int, workers: int, repeats: int) -> dict:
    """Seconds of a cold first read (decode + motion masks) with 1 and ``workers`` threads, and their ratio."""
    from prednet2.datasets.motion import with_motion

    from prednet2.config import DataConfig, MotionConfig

    best: dict[int, dict] = {}
    for _ in range(repeats):
        for n in (1, workers):
            with tempfile.TemporaryDirectory(prefix="prednet2-bench-prep-") as cache:
                cfg = DataConfig(size=size, clip_len=clip_len, cache_dir=cache, prep_workers=n)
                t0 = time.perf_counter()
                ds = VideoFolder(data, cfg=cfg, progress=False)
                t_decode = time.perf_counter() - t0
                with_motion(ds, MotionConfig(), cfg, progress=False)
                total = time.perf_counter() - t0
            if n not in best or total < best[n]["seconds"]:
                best[n] = {
                    "workers": n,
                    "seconds": total,
                    "decode_seconds": t_decode,
                    "masks_seconds": total - t_decode,
                }
    return {"n_videos": len(ds.videos), "by_workers": list(best.values()),
            "speedup": best[1]["seconds"] / best[workers]["seconds"]}  # fmt: skip


def measure_resize(video: Path, size: tuple[int, int], n: int = 60) -> list[dict]:
    """ms per frame to turn decoded frames into (H, W) RGB uint8, for three methods."""
    import av
    import numpy as np
    from av.video.reformatter import VideoReformatter

    with av.open(str(video)) as c:
        frames = [f for _, f in zip(range(n), c.decode(video=0))]
    h, w = frames[0].height, frames[0].width
    sh, sw, top, left = resize_plan(h, w, size)

    def swscale(interp, shared=True):
        r = VideoReformatter()
        for f in frames:
            if shared:
                a = r.reformat(f, width=sw, height=sh, format="rgb24", interpolation=interp).to_ndarray()
            else:  # PyAV's convenience path: a new SwsContext per frame
                a = f.to_ndarray(width=sw, height=sh, format="rgb24", interpolation=interp)
            a[top : top + size[0], left : left + size[1]]

    def torch_interp():
        full = torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in frames])).permute(0, 3, 1, 2)
        for i in range(0, len(full), 16):
            x = torch.nn.functional.interpolate(
                full[i : i + 16].float(), size=(sh, sw), mode="bilinear", antialias=True
            )
            x.round_().clamp_(0, 255).to(torch.uint8)

    methods = {
        f"swscale {INTERPOLATION.lower()}, shared context (used)": lambda: swscale(INTERPOLATION),
        "swscale bilinear, shared context": lambda: swscale("BILINEAR"),
        "swscale area, frame.to_ndarray(width=..)": lambda: swscale("AREA", shared=False),
        "full-size RGB + torch interpolate(antialias)": torch_interp,
    }
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(5):  # interleaved rounds, best of each: robust to other load on the machine
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    out = [{"method": k, "ms_per_frame": 1000 * v / len(frames)} for k, v in best.items()]
    return [{"video": video.name, "from": [h, w], **r} for r in out]


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="benchmarks/data_throughput.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "smoke"))
    p.add_argument("--size", type=int_at_least(1), nargs=2, default=[64, 64], metavar=("H", "W"))
    p.add_argument("--clip-len", type=int_at_least(2), default=10)
    p.add_argument("--repeats", type=int_at_least(1), default=3)
    p.add_argument("--resize", action="store_true", help="also compare resize methods on the largest video")
    p.add_argument("--prep", action="store_true", help="also time a cold first read on 1 thread and on N threads")
    p.add_argument("--prep-workers", type=int_at_least(2), metavar="N",
                   help="N for --prep (default: data.prep_workers' auto, the usable cores up to 8)")  # fmt: skip
    p.add_argument("--json", type=out_file, metavar="OUT", help="write the figures as JSON")
    p.add_argument(
        "--threads",
        type=int_at_least(1),
        default=1,
        help="torch threads (default 1, as in DataLoader workers; more threads make collate slower on a busy machine)",
    )
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = Path(a.data)
    if not data.exists():
        p.error(f"--data not found: {data}")
    size = (a.size[0], a.size[1])
    r = measure(data, size, a.clip_len, a.repeats)
    r["torch_threads"] = a.threads
    print(f"data: {r['data']}  ({r['n_videos']} videos, {r['n_clips']} clips of {a.clip_len} at {size[0]}x{size[1]})")
    print(f"\n{'pass':<28}{'seconds':>10}{'frames/s':>12}")
    for name, key in [
        ("cold (decode + cache)", "cold"),
        ("cached (2nd run)", "cached"),
        ("cached via DataLoader", "cached_dataloader"),
    ]:
        print(f"{name:<28}{r[key]['seconds']:>10.3f}{r[key]['frames_per_s']:>12.0f}")
    print(
        f"\ncached / cold: {r['ratio_cached_over_cold']:.1f}x  (source frames decoded/s cold: "
        f"{r['cold']['source_frames_per_s']:.0f})"
    )
    if a.resize:
        biggest = max(scan_videos(data), key=lambda v: v.stat().st_size)
        r["resize"] = measure_resize(biggest, size)
        print(f"\nresize to {size[0]}x{size[1]} on {biggest.name} (from {'x'.join(map(str, r['resize'][0]['from']))}):")
        for x in r["resize"]:
            print(f"  {x['method']:<46}{x['ms_per_frame']:>8.3f} ms/frame")
    if a.prep:
        from prednet2.datasets.prep import prep_workers

        n = a.prep_workers or max(2, prep_workers(0))
        r["prep"] = pr = measure_prep(data, size, a.clip_len, n, a.repeats)
        print(f"\nfirst read of {pr['n_videos']} videos (decode + motion masks), best of {a.repeats}:")
        print(f"{'threads':<10}{'seconds':>10}{'decode':>10}{'masks':>10}")
        for x in pr["by_workers"]:
            print(f"{x['workers']:<10}{x['seconds']:>10.2f}{x['decode_seconds']:>10.2f}{x['masks_seconds']:>10.2f}")
        print(f"speed-up with {n} threads: {pr['speedup']:.2f}x")
    if a.json:
        write_json(a.json, r)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
