"""Training throughput on 1 process against 2: data-parallel (DDP) and layer-parallel, side by side in one run.

    python benchmarks/scale_throughput.py [--preset tiny] [--batches 6] [--repeats 2] [--json OUT]

Modes (all train.mode=local, the same model, batch and window; frames/s counts global frames):
- ``sequential``: one process, ``trainer.train_step`` (what ``python train.py`` runs);
- ``ddp``: 2 processes (gloo), each half of the global batch, gradients averaged, batch statistics synced (what
  ``torchrun --nproc_per_node 2 train.py`` runs);
- ``layer_parallel``: 2 processes (gloo), the units split between them, pipelined over time steps
  (``prednet2.layer_parallel``), the whole batch.

Every process uses one torch thread, so 2 processes can use at most 2 cores. The modes alternate ``--repeats``
times and each figure is the median, so a load change on a shared machine hits all modes alike; read the ratios.
Data are random frames (throughput does not depend on content); motion is off.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    import torch
    import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cfg(args):
    from prednet2.config import Config

    return Config.from_dict(
        {
            "model": {"preset": args.preset, "motion_channels": 0},
            "data": {"size": [args.size, args.size], "batch_size": args.batch, "clip_len": args.clip_len},
            "motion": {"enabled": False},
            "train": {"window": args.window, "warmup_steps": 0},
        }
    )


def _clips(args, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, args.batch, args.clip_len, 3, args.size, args.size, generator=g)  # (N, B, T, C, H, W)


def _sequential(args) -> float:
    import prednet2
    from prednet2.trainer import build_optimizer, train_step

    torch.set_num_threads(1)
    cfg = _cfg(args)
    torch.manual_seed(0)
    model = prednet2.build_model(cfg.model).train()
    opt, _ = build_optimizer(model, cfg)
    clips = _clips(args, args.batches + 1)
    train_step(model, opt, clips[0], mode="local", window=args.window)  # warm-up
    t0 = time.perf_counter()
    for i in range(1, args.batches + 1):
        train_step(model, opt, clips[i], mode="local", window=args.window)
    return args.batches * args.batch * args.clip_len / (time.perf_counter() - t0)


def _worker(rank: int, world: int, port: int, mode: str, args, out: str) -> None:
    import torch.distributed as dist

    import prednet2
    from prednet2 import distributed as pd

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    pd.setup_distributed("cpu")
    cfg = _cfg(args)
    torch.manual_seed(0)
    model = prednet2.build_model(cfg.model).train()
    clips = _clips(args, args.batches + 1)
    if mode == "ddp":
        from prednet2.trainer import build_optimizer, train_step

        opt, _ = build_optimizer(model, cfg)
        n = args.batch // world

        def run(i: int) -> None:
            with pd.batch_sync(True):
                train_step(model, opt, clips[i, rank * n : (rank + 1) * n], mode="local", window=args.window)

    else:
        from prednet2.layer_parallel import LayerParallelWorker

        w = LayerParallelWorker(
            model, lr=cfg.train.lr, window=args.window, batch_size=args.batch, clip_len=args.clip_len,
            size=(args.size, args.size),
        )  # fmt: skip

        def run(i: int) -> None:
            w.train_batch(clips[i] if 0 in w.mine else None)

    run(0)  # warm-up
    dist.barrier()
    t0 = time.perf_counter()
    for i in range(1, args.batches + 1):
        run(i)
    dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        info = {"fps": args.batches * args.batch * args.clip_len / dt}
        if mode == "layer_parallel":
            info["blocks"] = w.blocks
        Path(out).write_text(json.dumps(info))
    pd.cleanup()


def _parallel(mode: str, args) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        mp.start_processes(_worker, args=(2, port, mode, args, out), nprocs=2, join=True, start_method="spawn")
        return json.loads(Path(out).read_text())


def main(argv: list[str] | None = None) -> int:
    from prednet2.eval.common import write_json

    from prednet2.cli import OneLineParser, int_at_least, out_file

    p = OneLineParser(prog="benchmarks/scale_throughput.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--size", type=int_at_least(16), default=64)
    p.add_argument("--batch", type=int_at_least(2), default=8, help="global batch (DDP: half per process)")
    p.add_argument("--clip-len", type=int_at_least(2), default=10)
    p.add_argument("--window", type=int_at_least(1), default=5)
    p.add_argument("--batches", type=int_at_least(1), default=6, help="timed batches per mode (after one warm-up)")
    p.add_argument("--repeats", type=int_at_least(1), default=2, help="alternate the modes this many times; medians")
    p.add_argument("--json", type=out_file, help="write the figures here")
    args = p.parse_args(argv)
    if args.batch % 2:
        p.error("--batch must be even (DDP splits it over 2 processes)")
    fps: dict[str, list[float]] = {"sequential": [], "ddp": [], "layer_parallel": []}
    blocks = None
    for _ in range(args.repeats):
        fps["sequential"].append(_sequential(args))
        fps["ddp"].append(_parallel("ddp", args)["fps"])
        lp = _parallel("layer_parallel", args)
        fps["layer_parallel"].append(lp["fps"])
        blocks = lp["blocks"]
    med = {k: statistics.median(v) for k, v in fps.items()}
    base = med["sequential"]
    rows = []
    for k, v in med.items():
        procs = 1 if k == "sequential" else 2
        rows.append({"mode": k, "processes": procs, "frames_per_s": round(v, 1), "speedup": round(v / base, 2)})
    print(
        f"preset {args.preset}, {args.size}x{args.size}, global batch {args.batch}, T={args.clip_len}, "
        f"window {args.window}, {args.batches} batches x {args.repeats} repeats; layer-parallel blocks {blocks}"
    )
    print(f"{'mode':<16}{'procs':>6}{'frames/s':>11}{'vs 1 proc':>11}")
    for r in rows:
        print(f"{r['mode']:<16}{r['processes']:>6}{r['frames_per_s']:>11.1f}{r['speedup']:>10.2f}x")
    if args.json:
        write_json(args.json, {"config": vars(args), "layer_parallel_blocks": blocks, "rows": rows, "raw": fps})
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
