"""Forgetting: probe accuracy on stream A before and after training on stream B, local vs end_to_end.

    python benchmarks/continual.py --out runs/continual [--steps-a 60] [--steps-b 60] [--task shape] [--json OUT]

Per training mode (``train.mode`` = local, end_to_end):
1. train on A = ``synthetic:shapes`` for ``--steps-a`` steps (``train.py``);
2. probe A's labelled task (``synthetic:shapes:<task>``) with ``eval.linear_probe`` -> accuracy before B;
3. keep training the same run on B = ``synthetic:moving_mnist`` for ``--steps-b`` more steps (``train.py --resume``
   with the other data: same optimiser state, the stream just changes);
4. probe A's task again -> accuracy after B. Forgetting = before - after.
A random-init probe of the same architecture is the floor. Both streams are grayscale (Moving MNIST is), so one
model reads both. Every step is a CLI subprocess, as a user would run it; the commands are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")


def _probe(args, ckpt: Path, out: Path, extra: list[str] = ()) -> float:
    _run([sys.executable, "-m", "eval.linear_probe", "--checkpoint", str(ckpt), "--data",
          f"synthetic:shapes:{args.task}", "--out", str(out), "--seeds", str(args.seeds), "--n-train",
          str(args.n_train), "--n-test", str(args.n_test), "--threads", "1", *extra])  # fmt: skip
    return float(json.loads(out.read_text())["top1"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the runs and probe files")
    p.add_argument("--steps-a", type=int, default=60)
    p.add_argument("--steps-b", type=int, default=60)
    p.add_argument("--task", default="shape", choices=["shape", "direction", "speed"])
    p.add_argument("--modes", default="local,end_to_end")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--n-train", type=int, default=256)
    p.add_argument("--n-test", type=int, default=128)
    p.add_argument("--json", help="write the table here")
    args = p.parse_args(argv)
    root = Path(args.out)
    if root.exists():
        p.error(f"--out {root} exists; pick a new folder")
    common = ["--set", "motion=off", "--set", "data.grayscale=true", "--set", "train.threads=1", "--no-progress"]
    rows = []
    for mode in args.modes.split(","):
        a, b = root / mode / "A", root / mode / "AB"
        _run([sys.executable, "train.py", "--data", "synthetic:shapes", "--out", str(a), "--steps", str(args.steps_a),
              "--set", f"train.mode={mode}", *common])  # fmt: skip
        before = _probe(args, a / "checkpoints/last.pt", root / mode / "probe_before.json")
        shutil.copytree(a, b)
        _run([sys.executable, "train.py", "--data", "synthetic:moving_mnist", "--out", str(b), "--resume", "--steps",
              str(args.steps_a + args.steps_b), "--no-progress"])  # fmt: skip
        after = _probe(args, b / "checkpoints/last.pt", root / mode / "probe_after.json")
        rows.append({"mode": mode, "before": before, "after": after, "forgetting": before - after})
    rand = _probe(args, root / args.modes.split(",")[0] / "A/checkpoints/last.pt", root / "probe_random.json",
                  ["--random-init"])  # fmt: skip
    print(f"\nprobe synthetic:shapes:{args.task} (top-1), A=synthetic:shapes {args.steps_a} steps, "
          f"B=synthetic:moving_mnist {args.steps_b} steps; random init {rand:.3f}")  # fmt: skip
    print(f"{'mode':<12}{'before B':>10}{'after B':>10}{'forgetting':>12}")
    for r in rows:
        print(f"{r['mode']:<12}{r['before']:>10.3f}{r['after']:>10.3f}{r['forgetting']:>12.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "random_init": rand, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
