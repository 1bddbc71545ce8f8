"""Frames/s of the built-in synthetic generators on one core (items made on the fly, as training reads them).

    OMP_NUM_THREADS=1 python benchmarks/synthetic_throughput.py [--clips 200] [--size 64] [--json OUT]

Every set is timed in the same process, one after another, so the figures compare under the same load.
"""

from __future__ import annotations

import sys
import time

from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    import torch
    from prednet2.datasets import DataError, build_dataset
    from prednet2.eval.common import write_json

    from prednet2.cli import OneLineParser, out_file
    from prednet2.config import DataConfig

SPECS = [
    ("synthetic:shapes", 10),
    ("synthetic:shapes:direction", 10),
    ("synthetic:moving_mnist", 20),
    ("synthetic:moving_mnist:digit", 20),
    ("synthetic:anomaly", 20),
]


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="benchmarks/synthetic_throughput.py", description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=200, help="clips timed per set (default 200)")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--json", type=out_file, help="write the figures here")
    args = p.parse_args(argv)
    if args.clips < 1 or args.size < 16:
        p.error("--clips must be >= 1 and --size >= 16")
    torch.set_num_threads(1)
    rows = []
    for spec, T in SPECS:
        cfg = DataConfig(clip_len=T, size=(args.size, args.size), n_synthetic=args.clips)
        try:
            ds = build_dataset(spec, cfg=cfg, labelled=spec.count(":") == 2 or spec == "synthetic:anomaly")
        except DataError as e:  # e.g. MNIST absent: report and go on
            print(f"{spec}: skipped ({e})", file=sys.stderr)
            continue
        ds[0]  # warm-up: loads MNIST, first-call overheads
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(len(ds)):
            ds[i]
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        frames = len(ds) * T
        rows.append(
            {
                "spec": spec,
                "T": T,
                "size": args.size,
                "clips": len(ds),
                "frames_per_s": frames / dt,
                "frames_per_cpu_s": frames / dc,
            }  # fmt: skip
        )
    # Wall-clock frames/s drops when other processes share the core; frames per CPU-second does much less.
    print(f"{'spec':32s} {'T':>3s} {'size':>5s} {'frames/s':>10s} {'frames/cpu-s':>13s}")
    for r in rows:
        print(f"{r['spec']:32s} {r['T']:3d} {r['size']:5d} {r['frames_per_s']:10.0f} {r['frames_per_cpu_s']:13.0f}")
    if args.json:
        write_json(args.json, {"threads": 1, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
