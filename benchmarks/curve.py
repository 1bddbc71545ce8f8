"""Probe accuracy against training steps: does learning keep paying?

    python benchmarks/curve.py --json curve.json
    python benchmarks/curve.py --points 0,250,1000,3000 --variants default --variant 'alt=model.horizon=3' \\
        --tasks direction,kind --png curve.png --jobs 2

Each variant trains once to the last point, saving a numbered checkpoint at every point; every checkpoint is
probed on every task (the eval.linear_probe protocol, the same probe seeds and data). Point 0 is the same
architecture at random init. Prints a table (top-1 per task and the mean over tasks, per point) and draws the
mean-over-tasks curve per variant and each task's (``--png``, default ``OUT/curve.png``). ``--readout-bins N`` /
``--readout-whole`` probe every checkpoint on that readout instead of the one it stored (each in its own cached
file), e.g. a curve trained before a readout change.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from functools import reduce
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    from prednet2.eval.common import write_json
    from study import (
        Probe,
        Runner,
        StudyError,
        add_study_args,
        main_guard,
        parse_probe,
        parse_tasks,
        parse_variants,
        readout_note,
    )
    from tables import cell, markdown_table, mean_std

    from prednet2.cli import OneLineParser, out_file

POINT_KEYS = ("steps", "train.ckpt_every", "train.keep_numbered")  # set by --points: a run of other points may serve


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/curve.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--points", default="0,250,1000,3000", help="training steps to probe at (default 0,250,1000,3000)")
    p.add_argument("--variants", default="default", help="built-in variants (default: default)")
    add_study_args(p, tasks="direction,speed,kind,digit", out="runs/curve")
    p.add_argument("--train-seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument(
        "--png", type=out_file, help="draw the curves here: the mean over tasks, then each task (default OUT/curve.png)"
    )
    return p


def parse_points(s: str) -> list[int]:
    try:
        pts = sorted({int(x) for x in s.split(",") if x.strip()})
    except ValueError:
        raise StudyError(f"--points {s!r}: expected steps like 0,250,1000") from None
    if not pts or pts[0] < 0 or pts[-1] < 1:
        raise StudyError(f"--points {s!r}: need steps >= 0 and at least one > 0")
    return pts


def run(args: argparse.Namespace) -> dict:
    points = parse_points(args.points)
    owned = {"train.steps": "--points", "train.ckpt_every": "--points", "train.keep_numbered": "--points",
             "train.seed": "--train-seed"}  # fmt: skip
    variants = parse_variants(args.variants, args.variant, args.sets, data=args.data, owned=owned)
    tasks = parse_tasks(args.tasks)
    if args.jobs < 1:
        raise StudyError(f"--jobs {args.jobs}: need at least 1")
    if args.train_seed < 0:
        raise StudyError(f"--train-seed {args.train_seed}: need a seed >= 0")
    probe = parse_probe(args, tasks)
    runner = Runner(Path(args.out), jobs=args.jobs)
    trained = [p for p in points if p > 0]
    every = reduce(math.gcd, trained)

    # Step 1. One run per variant to the last point, a numbered checkpoint at every multiple of the points' gcd.
    keep = [f"train.ckpt_every={every}", f"train.keep_numbered={trained[-1] // every}", *args.sets]
    runner.map(
        lambda n: runner.train(
            n,
            variants[n],
            data=args.data,
            steps=trained[-1],
            budget_s=None,
            seed=args.train_seed,
            extra_sets=keep,
            may_differ=POINT_KEYS,  # a run of other points serves when it saved these (checked below)
        ),  # fmt: skip
        list(variants),
    )

    # Step 2. Probe each point's checkpoint (point 0: the run's architecture at random init).
    jobs = []
    for n in variants:
        ck = runner.out / n / "checkpoints"
        for p in points:
            if p == 0:
                jobs.append((n, p, ck / "last.pt", "random_init"))
                continue
            src = ck / f"step_{p:06d}.pt"
            if not src.is_file():
                raise StudyError(
                    f"{src} missing: the run did not save step {p}; remove {runner.out / n} or give another --out"
                )
            # eval writes next to RUN/checkpoints; one folder per point keeps the feature caches apart
            dst = runner.out / f"{n}@{p}" / "checkpoints" / "last.pt"
            if not dst.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            jobs.append((n, p, dst, "trained"))
    todo = [(j, t) for j in jobs for t in tasks]
    res = runner.map(lambda x: runner.probe(x[0][2], x[1], x[0][3], probe, f"curve{x[0][1]}"), todo)

    # Step 3. Tabulate: per variant and point, top-1 per task and the mean over tasks.
    out: dict = {"points": points, "tasks": tasks, "data": args.data, "probe": vars(probe), "variants": {}}
    for n in variants:
        rows = {}
        for p in points:
            per = {t: r for (j, t), r in zip(todo, res) if j[0] == n and j[1] == p}
            rows[str(p)] = {t: {"top1": per[t]["top1"], "std": per[t]["top1_std"]} for t in tasks}
            rows[str(p)]["mean"] = mean_std([per[t]["top1"] for t in tasks])[0]
            rows[str(p)]["mean_std"] = mean_std([per[t]["top1_std"] for t in tasks])[0]
        out["variants"][n] = {"sets": variants[n], "points": rows, "rising": _rising(rows, points)}
    return out


def _rising(rows: dict, points: list[int]) -> bool:
    """Each trained point >= the one before within one std (the mean over tasks of the probe std)."""
    pts = [p for p in points if p > 0]
    return all(rows[str(b)]["mean"] >= rows[str(a)]["mean"] - rows[str(b)]["mean_std"] for a, b in zip(pts, pts[1:]))


def table(res: dict) -> str:
    tasks = res["tasks"]
    rows = []
    for n, v in res["variants"].items():
        for p in res["points"]:
            r = v["points"][str(p)]
            rows.append([n, str(p) + (" (random init)" if p == 0 else ""),
                         *[cell(r[t]["top1"], r[t]["std"]) for t in tasks], cell(r["mean"])])  # fmt: skip
    return markdown_table(["variant", "steps", *tasks, "mean"], rows)


def plot(res: dict, path: str) -> None:
    """The mean over tasks per variant (left), then one panel per task: a falling task hides under a flat mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks, xs = res["tasks"], res["points"]
    panels = [("mean", f"mean over {len(tasks)} tasks")] + [(t, t) for t in tasks]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        for n, v in res["variants"].items():
            pts = v["points"]
            ys = [100 * (pts[str(p)]["mean"] if key == "mean" else pts[str(p)][key]["top1"]) for p in xs]
            ax.plot(xs, ys, marker="o", label=n)
        ax.set_title(title)
        ax.set_xlabel("training steps (0 = random init)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("probe top-1 (%)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")  # at the path given, with or without .png
    plt.close(fig)


def png_path(args: argparse.Namespace) -> str:
    """Where the chart goes: --png, or the study folder's curve.png."""
    return args.png or str(Path(args.out) / "curve.png")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        res = run(args)
        print(table(res))
        if note := readout_note(Probe(**res["probe"])):  # the probe settings run() checked and recorded
            print(note)
        for n, v in res["variants"].items():
            print(f"{n}: {'rises' if v['rising'] else 'does not rise'} across the trained points (within 1 std)")
        if args.json:
            write_json(args.json, res)
        plot(res, png := png_path(args))
        print(f"chart: {png}")
        return 0

    return main_guard(go)


if __name__ == "__main__":
    sys.exit(run_cli(main))
