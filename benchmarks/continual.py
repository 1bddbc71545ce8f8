"""Forgetting: probe accuracy on stream A before and after training on stream B, local vs end_to_end.

    python benchmarks/continual.py --out runs/continual [--steps-a 60] [--steps-b 60] [--tasks shape,direction]
                                   [--seeds 3] [--n-train 512] [--n-test 256] [--json OUT]

Per training mode (``train.mode`` = local, end_to_end):
1. train on A = ``synthetic:shapes`` for ``--steps-a`` steps (``train.py``);
2. probe A's labelled task(s) (``synthetic:shapes:<task>``) with ``eval.linear_probe`` -> accuracy before B;
3. copy the run folder and keep training the copy on B = ``synthetic:moving_mnist`` for ``--steps-b`` more steps
   (``train.py --resume --data synthetic:moving_mnist``: the resumed run keeps its config, weights, optimiser
   state and learning rate, only the stream changes; the checked summary says it resumed at step ``--steps-a``
   and read B);
4. probe A's task(s) again on the copy's checkpoint -> accuracy after B. Forgetting = before - after.
A random-init probe of the same architecture is the floor. Both streams are grayscale (Moving MNIST is; shapes
with ``data.grayscale=true``), so one model reads both. Every probe recomputes its features (``--no-cache``), so
the after-B probe can never reuse before-B features. Every step is a CLI subprocess, as a user would run it; the
commands are printed. Set OMP_NUM_THREADS / nice from outside; children inherit them (default 1 thread).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from prednet2.interrupt import run_cli

REPO = Path(__file__).resolve().parents[1]
STREAM_A, STREAM_B = "synthetic:shapes", "synthetic:moving_mnist"


def _run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")


def _probe(args, task: str, ckpt: Path, out: Path, extra: list[str] = ()) -> dict:
    _run([sys.executable, "-m", "eval.linear_probe", "--checkpoint", str(ckpt), "--data",
          f"synthetic:shapes:{task}", "--out", str(out), "--seeds", str(args.seeds), "--n-train",
          str(args.n_train), "--n-test", str(args.n_test), "--threads", "1", "--no-cache", "--no-progress",
          *extra])  # fmt: skip
    r = json.loads(out.read_text())
    return {"top1": float(r["top1"]), "top1_std": float(r["top1_std"]), "checkpoint_step": r["checkpoint_step"]}


def _check_summary(run: Path, data: str, steps: int, resumed_from: int | None) -> dict:
    """Fail loudly unless RUN/summary.json says the run read ``data`` up to ``steps`` (resumed as expected)."""
    s = json.loads((run / "summary.json").read_text())
    got = (s["data"], s["steps"], s["resumed_from"], s["status"])
    want = (data, steps, resumed_from, "completed")
    if got != want:
        sys.exit(f"{run}/summary.json: (data, steps, resumed_from, status) = {got}, expected {want}")
    return s


def main(argv: list[str] | None = None) -> int:
    from prednet2.cli import OneLineParser, int_at_least, out_file

    p = OneLineParser(prog="benchmarks/continual.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the runs and probe files (must not exist)")
    p.add_argument("--steps-a", type=int_at_least(1), default=60, help="training steps on stream A")
    p.add_argument("--steps-b", type=int_at_least(1), default=60, help="further training steps on stream B")
    p.add_argument("--tasks", default="shape", help="A's probed tasks, comma-separated: shape, direction, speed")
    p.add_argument("--modes", default="local,end_to_end", help="comma-separated train.mode values")
    p.add_argument("--seeds", type=int_at_least(1), default=1, help="probe seeds (the training run is one seed)")
    p.add_argument("--n-train", type=int_at_least(1), default=256, help="probe train clips")
    p.add_argument("--n-test", type=int_at_least(1), default=128, help="probe test clips")
    p.add_argument("--set", action="append", default=[], dest="sets", help="extra train.py --set for stream A")
    p.add_argument("--json", type=out_file, help="write the table here")
    args = p.parse_args(argv)
    root = Path(args.out)
    if root.exists():
        p.error(f"--out {root} exists; pick a new folder")
    t0 = time.perf_counter()
    common = ["--set", "motion=off", "--set", "data.grayscale=true", "--set", "train.threads=1", "--no-progress"]
    common += [x for s in args.sets for x in ("--set", s)]
    modes, tasks = args.modes.split(","), args.tasks.split(",")
    bad = sorted(set(tasks) - {"shape", "direction", "speed"})
    if bad:
        p.error(f"--tasks: unknown {bad}; choose from shape, direction, speed")
    rows = []
    for mode in modes:
        a, b = root / mode / "A", root / mode / "AB"
        _run([sys.executable, "train.py", "--data", STREAM_A, "--out", str(a), "--steps", str(args.steps_a),
              "--set", f"train.mode={mode}", *common])  # fmt: skip
        sa = _check_summary(a, STREAM_A, args.steps_a, None)
        before = {t: _probe(args, t, a / "checkpoints/last.pt", root / mode / f"probe_before_{t}.json") for t in tasks}
        shutil.copytree(a, b)  # A stays as it was (its checkpoint is the before-B model)
        _run([sys.executable, "train.py", "--data", STREAM_B, "--out", str(b), "--resume", "--steps",
              str(args.steps_a + args.steps_b), "--no-progress"])  # fmt: skip
        sb = _check_summary(b, STREAM_B, args.steps_a + args.steps_b, args.steps_a)
        for t in tasks:
            after = _probe(args, t, b / "checkpoints/last.pt", root / mode / f"probe_after_{t}.json")
            if after["checkpoint_step"] != args.steps_a + args.steps_b:
                sys.exit(f"after-B probe read step {after['checkpoint_step']}, expected {args.steps_a + args.steps_b}")
            rows.append({"task": t, "mode": mode, "before": before[t]["top1"], "before_std": before[t]["top1_std"],
                         "after": after["top1"], "after_std": after["top1_std"],
                         "forgetting": before[t]["top1"] - after["top1"],
                         "loss_end_a": sa["final_loss"], "loss_end_b": sb["final_loss"]})  # fmt: skip
    ckpt0 = root / modes[0] / "A/checkpoints/last.pt"  # any: --random-init keeps only the architecture
    rand = {t: _probe(args, t, ckpt0, root / f"probe_random_{t}.json", ["--random-init"]) for t in tasks}
    wall = time.perf_counter() - t0
    print(f"\nprobe test top-1, mean over {args.seeds} probe seed(s), one training seed; A={STREAM_A} "
          f"{args.steps_a} steps, then B={STREAM_B} {args.steps_b} steps; grayscale; wall {wall:.0f} s")  # fmt: skip
    print(f"{'task':<11}{'mode':<12}{'before B':>10}{'after B':>10}{'forgetting':>12}{'random init':>13}")
    for r in rows:
        print(f"{r['task']:<11}{r['mode']:<12}{r['before']:>10.3f}{r['after']:>10.3f}{r['forgetting']:>+12.3f}"
              f"{rand[r['task']]['top1']:>13.3f}")  # fmt: skip
    if args.json:
        out = {"config": vars(args), "random_init": {t: r["top1"] for t, r in rand.items()},
               "random_init_std": {t: r["top1_std"] for t, r in rand.items()}, "rows": rows,
               "wall_s": round(wall, 1)}  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
