"""Benchmark of the error-unit op, forward+backward: fused vs eager reference vs torch.compile(reference).

Measured the way training uses it: ``E, loss = f(pred, target)``, then ``loss.sum().backward()`` with pred requiring
grad and target detached (``--target-grad`` adds a variant where target requires grad too). The three methods run
interleaved, rep by rep, in one process, so a machine loaded by other work slows them alike and the ratios hold;
the figure per method is the median over reps.

    python benchmarks/error_unit.py --device cpu --threads 2 --json OUT.json

writes ``{"cpu": [{"shape": [B, C, H, W], "fused_ms": f, "eager_ms": f, "compiled_ms": f}, ...]}`` (``"cuda"`` with
``--device cuda``; ``"<device>_target_grad"`` for the variant).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    import torch

    from prednet2.cli import OneLineParser, out_file
    from prednet2.ops import error_unit, extension_available, reference_error_unit

DEFAULT_CHANNELS = (48, 96, 192)
DEFAULT_SIZES = ("64x80", "32x40", "16x20")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: expected HxW like 64x80, got {text!r}") from None
    return h, w


def _step(fn: Callable, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> None:
    """One training-like forward+backward: only the loss is back-propagated."""
    pred.grad = None
    if target.requires_grad:
        target.grad = None
    _E, loss = fn(pred, target, weight)
    loss.sum().backward()


def _time_ms(fn: Callable, args: tuple, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    _step(fn, *args)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def bench_shape(
    shape: tuple[int, int, int, int], device: str, reps: int, warmup: int, weighted: bool, target_grad: bool
) -> dict:
    """Median fwd+bwd ms of fused / eager / compiled at one shape (B, C, H, W), interleaved rep by rep."""
    B, C, H, W = shape
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(shape, generator=g).to(device).requires_grad_(True)
    target = torch.randn(shape, generator=g).to(device).requires_grad_(target_grad)
    weight = torch.rand((B, 1, H, W), generator=g).to(device) if weighted else None
    # A fresh compile per shape (static shapes, the best case for inductor); reset so the recompile limit never
    # silently sends a shape back to eager.
    torch._dynamo.reset()
    compiled = torch.compile(reference_error_unit, dynamic=False)
    methods = {"fused": error_unit, "eager": reference_error_unit, "compiled": compiled}
    args = (pred, target, weight)
    for _ in range(warmup):  # the first compiled call compiles
        for fn in methods.values():
            _step(fn, *args)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(reps):
        for name, fn in methods.items():
            times[name].append(_time_ms(fn, args, device))
    return {"shape": list(shape), **{f"{name}_ms": statistics.median(ts) for name, ts in times.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="benchmarks/error_unit.py", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, nargs="+", default=list(DEFAULT_CHANNELS))
    parser.add_argument("--sizes", type=_parse_size, nargs="+", default=[_parse_size(s) for s in DEFAULT_SIZES])
    parser.add_argument("--reps", type=int, default=30, help="timed reps per method and shape (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--weighted", action="store_true", help="pass a (B, 1, H, W) weight map")
    parser.add_argument("--target-grad", action="store_true", help="also time the variant with target requiring grad")
    parser.add_argument("--json", type=out_file, default=None, metavar="OUT", help="write the figures as JSON")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible here (torch.cuda.is_available() is False)")
    if args.threads < 1 or args.reps < 1 or args.warmup < 1:
        parser.error("--threads, --reps and --warmup must be >= 1")
    if args.json is not None and not Path(args.json).parent.exists():
        parser.error(f"--json: folder {Path(args.json).parent} does not exist")
    torch.set_num_threads(args.threads)
    if args.device == "cpu":  # inductor's CPU compile says "No CUDA runtime is found" on a machine with a toolkit
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

    shapes = [(args.batch, c, h, w) for c in args.channels for h, w in args.sizes]
    variants = [False, True] if args.target_grad else [False]
    out: dict[str, list[dict]] = {}
    print(
        f"error_unit fwd+bwd, device={args.device}, threads={torch.get_num_threads()}, "
        f"extension={'fused C++' if extension_available() else 'NOT BUILT (reference)'}, reps={args.reps}, "
        f"weighted={args.weighted}; median ms, ratios < 1 mean fused is faster"
    )
    for target_grad in variants:
        key = args.device + ("_target_grad" if target_grad else "")
        print(f"\n[{key}] pred requires grad, target {'requires grad' if target_grad else 'detached'}")
        print(
            f"{'shape (B,C,H,W)':>20} {'fused':>9} {'eager':>9} {'compiled':>9} {'fused/eager':>12} {'fused/comp':>11}"
        )
        rows = []
        for shape in shapes:
            r = bench_shape(shape, args.device, args.reps, args.warmup, args.weighted, target_grad)
            rows.append(r)
            print(
                f"{str(tuple(shape)):>20} {r['fused_ms']:9.3f} {r['eager_ms']:9.3f} {r['compiled_ms']:9.3f} "
                f"{r['fused_ms'] / r['eager_ms']:12.2f} {r['fused_ms'] / r['compiled_ms']:11.2f}",
                flush=True,
            )
        out[key] = rows
    if args.json is not None:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
