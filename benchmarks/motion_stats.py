"""How much and how fast things move in training data: optical-flow statistics of several sources side by side.

    python benchmarks/motion_stats.py synthetic:shapes ../shared/data/smoke synthetic:textures [--clips 60]
        [--size 64] [--clip-len 10] [--set data.synthetic_speed=[0.5,0.5]] [--json OUT]

For each source, ``--clips`` training clips spread evenly over the set are read as training reads them (resized to
``--size``, ``--clip-len`` frames) and the DIS flow (the motion masks' backend) is computed between consecutive
frames, upsampled to 128 px for the pyramid's sake and given back in pixels of the clip. A pixel "moves" where the
flow exceeds ``--threshold`` px/frame. The table gives the moving share of all pixels and the quartiles and 90th
percentile of the moving pixels' speed, in px/frame at ``--size``: compare your footage with the built-in sets
(``data.synthetic_speed``, ``data.synthetic_pan``) before picking training data. ``--set`` applies data keys to
every source (docs/synthetic.md).
"""

from __future__ import annotations

import json
import sys

from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    import numpy as np
    from prednet2.datasets import DataError, build_dataset
    from prednet2.datasets.flow import compute_flow, make_flow

    from prednet2.cli import OneLineParser
    from prednet2.config import Config, ConfigError

QUANTILES = (25, 50, 75, 90)


def clip_speeds(video: np.ndarray, flow_fn, *, work_size: int = 128) -> np.ndarray:
    """Flow magnitude (px/frame) of every pixel between consecutive frames: (T-1, H, W). video uint8 (T, H, W, C)."""
    flow = compute_flow(video, flow_fn=flow_fn, work_size=work_size)  # (T, H, W, 2), frame 0 has no predecessor
    return np.linalg.norm(flow[1:], axis=-1)


def source_stats(spec: str, cfg, *, clips: int, threshold: float, flow_fn) -> dict:
    """Motion statistics of ``clips`` training clips of ``spec`` (a synthetic spec or a video folder)."""
    ds = build_dataset(spec, cfg=cfg, split="train", seed=0)
    idx = np.unique(np.linspace(0, len(ds) - 1, min(clips, len(ds))).astype(int))
    speeds = np.concatenate(
        [clip_speeds(ds[int(i)]["video"].numpy().transpose(0, 2, 3, 1), flow_fn).ravel() for i in idx]
    )
    moving = speeds[speeds > threshold]
    q = np.percentile(moving, QUANTILES) if moving.size else np.full(len(QUANTILES), np.nan)
    return {
        "source": spec,
        "clips": int(len(idx)),
        "moving_share": float(moving.size / speeds.size),
        **{f"p{k}": float(v) for k, v in zip(QUANTILES, q)},
    }


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="benchmarks/motion_stats.py", description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="*", default=["synthetic:shapes"], metavar="SOURCE",
                   help="synthetic specs or video folders (default synthetic:shapes)")  # fmt: skip
    p.add_argument("--clips", type=int, default=60, help="clips per source, spread over the set (default 60)")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--clip-len", type=int, default=10, help="frames per clip (default 10)")
    p.add_argument("--threshold", type=float, default=0.3, help="px/frame above which a pixel moves (default 0.3)")
    p.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE", help="data keys for every source")
    p.add_argument("--json", help="write the table here")
    args = p.parse_args(argv)
    if args.clips < 1 or args.size < 16 or args.clip_len < 2 or args.threshold < 0:
        p.error("need --clips >= 1, --size >= 16, --clip-len >= 2 and --threshold >= 0")
    other = [s for s in args.set if not s.startswith("data.")]
    if other:
        p.error(f"--set takes data keys only (data.KEY=VALUE), got {other}")
    try:
        sets = [*args.set, f"data.size=[{args.size},{args.size}]", f"data.clip_len={args.clip_len}"]
        cfg = Config.from_yaml(None, sets).data
    except ConfigError as e:
        p.error(str(e))
    flow_fn = make_flow("dis")
    rows = []
    for spec in args.data:
        try:
            rows.append(source_stats(spec, cfg, clips=args.clips, threshold=args.threshold, flow_fn=flow_fn))
        except DataError as e:  # the readers' messages name train.py's --data; here a source is a positional SOURCE
            msg = str(e).replace("--data", "SOURCE")
            print(f"motion_stats.py: error: {msg if spec in msg else f'{spec}: {msg}'}", file=sys.stderr)
            return 2
    head = "".join(f"{'p' + str(k):>7s}" for k in QUANTILES)
    print(f"px/frame at {args.size} px over {args.clip_len}-frame clips; moving: > {args.threshold} px/frame")
    print(f"{'source':36s} {'clips':>5s} {'moving':>7s}{head}")
    for r in rows:
        qs = "".join(f"{r[f'p{k}']:7.2f}" for k in QUANTILES)
        print(f"{r['source'][-36:]:36s} {r['clips']:5d} {100 * r['moving_share']:6.1f}%{qs}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "clip_len": args.clip_len, "threshold": args.threshold, "sets": args.set,
                       "results": rows}, f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
