"""Training throughput and peak memory: local (online, windowed) vs end_to_end (BPTT) vs the PredNet baseline.

    python benchmarks/train_throughput.py [--device cpu|cuda] [--T 10 20 40 80] [--json OUT]

Every (variant, T) is measured in a fresh subprocess, on the same clips (synthetic:shapes, one seed, the first T
frames of the same 80-frame clips), so one variant's allocations cannot inflate another's peak:
- CPU peak memory: the kernel's peak RSS counter (VmHWM) is reset once the model, optimiser and clips exist, and
  read after the steps, so the figure is what training itself adds (activations, grads, optimiser state). Where
  the kernel refuses the reset, the delta VmHWM - VmRSS(before) is reported (an upper bound).
- CUDA peak memory: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.
- Throughput: frames (B*T per step) per wall second over the timed steps, and per CPU second (process time),
  which is the robust figure on a machine shared with other jobs.

Prints the table and the ratios the design asks for: local peak at T=80 over T=10 (target <= 1.3), and local
frames/s over PredNet's at each T (target >= 2, parameter counts in the table).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from prednet2.interrupt import run_cli

REPO = Path(__file__).resolve().parents[1]

VARIANTS = {
    # name: (config overrides). Motion is off for all: the baseline has no motion stream, and equal input matters.
    "local": ["train.mode=local"],
    "end_to_end": ["train.mode=end_to_end"],
    # PredNet (Lotter et al. 2016) with its KITTI stack scaled down, (3, 48, 96, 192) -> (3, 10, 20, 40), so its
    # parameter count (~0.30M) is comparable to the tiny preset's (~0.25M); --prednet-set overrides.
    "prednet": ["model.preset=prednet", "model.channels=[3,10,20,40]", "train.mode=end_to_end"],
}


def worker(spec: dict) -> dict:
    """One measurement, in its own process. spec: variant, T, batch, size, steps, warmup, window, device, sets."""
    import torch
    from prednet2.datasets import build_dataset

    from prednet2 import build_model
    from prednet2.config import Config
    from prednet2.runinfo import read_proc_status_kb, reset_peak_rss
    from prednet2.trainer import build_optimizer, resolve_config, train_step

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    T, B, S = spec["T"], spec["batch"], spec["size"]
    sets = [
        "motion=off",
        f"data.clip_len={spec['max_T']}",
        f"data.size=[{S},{S}]",
        f"data.batch_size={B}",
        f"data.n_synthetic={B}",
        f"train.window={spec['window']}",
        *VARIANTS[spec["variant"]],
        *spec["sets"],
    ]
    cfg = resolve_config(Config.from_yaml(None, sets))
    ds = build_dataset("synthetic:shapes", cfg=cfg.data, split="train", seed=0)
    video = torch.stack([ds[i]["video"][:T] for i in range(B)])  # (B, T, C, H, W) uint8, same clips for every T
    cfg = resolve_config(cfg, {"video": video[0]})
    clip = video.to(device).float().div_(255.0)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device).train()
    opt, _ = build_optimizer(model, cfg)
    params = sum(p.numel() for p in model.parameters())

    def step():
        train_step(model, opt, clip, mode=cfg.train.mode, window=cfg.train.window, amp=False)

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = read_proc_status_kb("VmRSS") or 0
    reset_ok = reset_peak_rss()
    for _ in range(spec["warmup"]):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(spec["steps"]):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames = B * T * spec["steps"]
    if device.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
        how = "cuda max_memory_allocated - allocated before"
    else:
        peak_mb = ((read_proc_status_kb("VmHWM") or 0) - rss_before) / 1024
        how = "VmHWM (reset) - VmRSS before" if reset_ok else "VmHWM - VmRSS before (no reset: upper bound)"
    return {
        "variant": spec["variant"],
        "T": T,
        "mode": cfg.train.mode,
        "preset": cfg.model.preset,
        "params": params,
        "frames_per_s": frames / wall,
        "frames_per_cpu_s": frames / cpu if device.type == "cpu" else None,
        "step_s": wall / spec["steps"],
        "peak_mb": peak_mb,
        "peak_how": how,
    }


def measure(spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if p.returncode != 0:
        raise RuntimeError(f"{spec['variant']} T={spec['T']} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from prednet2.eval.common import write_json

    from prednet2.cli import OneLineParser, int_at_least, out_file

    p = OneLineParser(prog="benchmarks/train_throughput.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--T", type=int_at_least(2), nargs="+", default=[10, 20, 40, 80])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--batch", type=int_at_least(1), default=4)
    p.add_argument("--size", type=int_at_least(16), default=64)
    p.add_argument("--window", type=int_at_least(1), default=5, help="train.window of the local variant")
    p.add_argument("--steps", type=int_at_least(1), default=2, help="timed steps per measurement")
    p.add_argument("--warmup", type=int_at_least(0), default=1)
    p.add_argument("--threads", type=int_at_least(1), default=2)
    p.add_argument("--set", action="append", default=[], dest="sets", help="extra config override for all variants")
    p.add_argument(
        "--prednet-set",
        action="append",
        default=[],
        dest="prednet_sets",
        help="extra override for the prednet variant, e.g. model.channels=[3,32,64,128] to match parameter counts",
    )
    p.add_argument("--json", type=out_file, help="write the figures here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda: CUDA is not available here")

    rows = []
    for variant in args.variants:
        for T in args.T:
            spec = {
                "variant": variant,
                "T": T,
                "max_T": max(args.T),
                "batch": args.batch,
                "size": args.size,
                "window": args.window,
                "steps": args.steps,
                "warmup": args.warmup,
                "threads": args.threads,
                "device": args.device,
                "sets": args.sets + (args.prednet_sets if variant == "prednet" else []),
            }
            r = measure(spec)
            rows.append(r)
            print(
                f"  {variant:10s} T={T:3d}  {r['frames_per_s']:8.1f} frames/s  peak {r['peak_mb']:8.1f} MB",
                file=sys.stderr,
            )

    print(f"\ndevice {args.device}, batch {args.batch}, {args.size}x{args.size}, local window {args.window}, "
          f"{args.threads} threads, {args.steps} timed steps after {args.warmup} warm-up")  # fmt: skip
    cpu = args.device == "cpu"
    print(f"{'variant':10s} {'params':>9s} {'T':>4s} {'frames/s':>9s} {'frames/cpu-s':>12s} {'peak MB':>9s}")
    for r in rows:
        fc = f"{r['frames_per_cpu_s']:12.1f}" if cpu else f"{'-':>12s}"
        print(f"{r['variant']:10s} {r['params']:9d} {r['T']:4d} {r['frames_per_s']:9.1f} {fc} {r['peak_mb']:9.1f}")

    by = {(r["variant"], r["T"]): r for r in rows}
    ratios: dict[str, float] = {}
    lo, hi = min(args.T), max(args.T)
    for v in args.variants:
        if (v, lo) in by and (v, hi) in by and by[(v, lo)]["peak_mb"] > 0:
            ratios[f"{v}_peak_T{hi}_over_T{lo}"] = by[(v, hi)]["peak_mb"] / by[(v, lo)]["peak_mb"]
    key = "frames_per_cpu_s" if cpu else "frames_per_s"
    for T in args.T:
        for other in ("prednet", "end_to_end"):
            if ("local", T) in by and (other, T) in by:
                ratios[f"local_over_{other}_speed_T{T}"] = by[("local", T)][key] / by[(other, T)][key]
    print("\nratios (speed by " + key + "):")
    for k, v in ratios.items():
        print(f"  {k:36s} {v:6.2f}")
    if args.json:
        out = {"device": args.device, "args": {k: v for k, v in vars(args).items() if k != "worker"}}
        out.update({"rows": rows, "ratios": ratios})
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
