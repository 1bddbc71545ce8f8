"""Peers at equal compute: train each variant for the same wall-clock budget (or steps), probe all on the same tasks.

    python benchmarks/peers.py --budget-s 300 --json peers.json
    python benchmarks/peers.py --steps 600 --train-seeds 0,1 --variants default \\
        --variant 'residual=model.predict=residual' --tasks direction,kind --jobs 2 --out runs/study

Each variant trains on ``--data`` (default ``synthetic:shapes``) from a fresh run folder, stopped by SIGTERM at
``--budget-s`` (the trainer saves a checkpoint and its summary; the run's data caches are filled first, outside
the budget, by ``train.py --prepare``) or after ``--steps``. Every trained run is then
probed on every task beside the same architecture at random init and pooled raw pixels, with the same probe
seeds and data (the eval.linear_probe protocol). Prints one table (top-1 ± std, frames/s, steps reached, the mean
over tasks) and writes ``--json``. With several training seeds the ± is over training seeds (each the mean over
probe seeds); with one it is over probe seeds. Runs and probes already on disk are reused. Variants trained on
other clip lengths (``data.clip_len``) are compared at one readout with ``--probe-clip-len 10``; runs trained before
a readout change are read on another readout with ``--readout-bins N`` / ``--readout-whole``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    from prednet2.eval.common import write_json
    from study import (
        PEERS,
        TASKS,
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

    from prednet2.cli import OneLineParser


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/peers.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, help="training budget per run in seconds of --clock (default 300)")
    p.add_argument("--steps", type=int, help="train a fixed number of steps instead of a time budget")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                   help="what --budget-s counts: the run's CPU seconds (default; fair on a shared machine, and "
                   "equal to wall time for a one-thread run on an idle one) or wall-clock seconds")  # fmt: skip
    p.add_argument("--variants", default=",".join(PEERS), help=f"built-in variants (default {','.join(PEERS)})")
    add_study_args(p, tasks=",".join(TASKS), out="runs/peers")
    p.add_argument("--train-seeds", default="0", help="training seeds, comma-separated (default 0)")
    p.add_argument("--random-for", default=None,
                   help="variants probed at random init too, comma-separated or 'all' (default: the default "
                   "variant, or the first when default is not run; variants with the same model settings "
                   "share one)")  # fmt: skip
    p.add_argument("--no-baselines", action="store_true", help="skip random init and pixels")
    p.add_argument("--no-pixels", action="store_true", help="skip the pixel baseline (e.g. measured by another call)")
    return p


def _random_key(sets: list[str]) -> tuple:
    """Variants whose model/motion settings agree have the same random-init features: probe those once."""
    return tuple(sorted(s for s in sets if s.startswith(("model.", "motion", "data."))))


def _random_for(args: argparse.Namespace, variants: dict[str, list[str]]) -> list[str]:
    """The variants probed at random init (--random-for), in variant order; checked before anything trains."""
    if args.random_for is None:  # the default variant's random init, or the first variant's without it
        wanted = ["default"] if "default" in variants else list(variants)[:1]
    elif args.random_for == "all":
        wanted = list(variants)
    else:
        wanted = [x.strip() for x in args.random_for.split(",")]
    unknown = [w for w in wanted if w and w not in variants]
    if unknown:
        raise StudyError(f"--random-for: {unknown} are not among the variants ({', '.join(variants)})")
    return [n for n in variants if n in wanted]


def run(args: argparse.Namespace) -> dict:
    if args.steps is not None and args.budget_s is not None:  # one of them would be silently ignored
        raise StudyError(f"--steps {args.steps} and --budget-s {args.budget_s:g} both bound training; give one")
    if args.steps is None and args.budget_s is None:
        args.budget_s = 300.0
    if args.steps is not None and args.steps < 1:
        raise StudyError(f"--steps {args.steps}: need at least 1")
    if args.budget_s is not None and args.budget_s <= 0:
        raise StudyError(f"--budget-s {args.budget_s}: need a positive number of seconds")
    if args.jobs < 1:
        raise StudyError(f"--jobs {args.jobs}: need at least 1")
    owned = {"train.steps": "--steps / --budget-s", "train.seed": "--train-seeds"}
    variants = parse_variants(args.variants, args.variant, args.sets, data=args.data, owned=owned)
    tasks = parse_tasks(args.tasks)
    try:
        seeds = [int(s) for s in args.train_seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise StudyError(f"--train-seeds {args.train_seeds!r}: expected integers >= 0 like 0,1")
    probe = parse_probe(args, tasks)
    random_for = _random_for(args, variants)
    runner = Runner(Path(args.out), jobs=args.jobs, budget_clock=args.clock)
    budget = None if args.steps else args.budget_s

    # Step 1. Train every (variant, seed), `jobs` at a time.
    jobs = [(name, seed) for seed in seeds for name in variants]
    summaries = runner.map(
        lambda j: runner.train(
            f"{j[0]}_s{j[1]}",
            variants[j[0]],
            data=args.data,
            steps=args.steps,
            budget_s=budget,
            seed=j[1],
            extra_sets=args.sets,
        ),  # fmt: skip
        jobs,
    )
    runs = {j: s for j, s in zip(jobs, summaries)}
    ckpt = {j: runner.out / f"{j[0]}_s{j[1]}" / "checkpoints" / "last.pt" for j in jobs}

    # Step 2. Probe: trained (every run), random init (once per architecture), pixels (once per task).
    probes: list[tuple] = [(ckpt[j], t, "trained", j) for j in jobs for t in tasks]
    random_of: dict[str, tuple] = {}
    if not args.no_baselines:
        first: dict[tuple, tuple] = {}
        for name in random_for:
            key = _random_key(variants[name] + args.sets)
            first.setdefault(key, (name, seeds[0]))
            random_of[name] = first[key]
        probes += [(ckpt[j], t, "random_init", j) for j in set(random_of.values()) for t in tasks]
        if not args.no_pixels:
            probes += [(ckpt[jobs[0]], t, "pixels", jobs[0]) for t in tasks]
    results = runner.map(lambda p: runner.probe(p[0], p[1], p[2], probe, "peers"), probes)
    got = {(p[3], p[1], p[2]): r for p, r in zip(probes, results)}

    # Step 3. Tabulate.
    out: dict = {"budget_s": budget, "clock": args.clock, "steps": args.steps, "data": args.data, "tasks": tasks,
                 "train_seeds": seeds, "probe": vars(probe), "variants": {}}  # fmt: skip
    for name, sets in variants.items():
        v: dict = {"sets": sets, "runs": [], "tasks": {}, "data": runs[(name, seeds[0])]["data"]}
        for seed in seeds:
            s = runs[(name, seed)]
            v["runs"].append({"seed": seed, "steps": s["steps"], "frames_per_s": s["frames_per_s"],
                              "train_s": s["train_s"], "status": s["status"],
                              "kernels": s.get("environment", {}).get("kernels")})  # fmt: skip
        for t in tasks:
            per = [got[((name, seed), t, "trained")] for seed in seeds]
            m, sd = mean_std([r["top1"] for r in per])
            if len(per) == 1:
                sd = per[0]["top1_std"]
            entry = {"trained": m, "std": sd, "per_seed": [r["top1"] for r in per]}
            if name in random_of:
                r = got[(random_of[name], t, "random_init")]
                entry |= {"random_init": r["top1"], "random_init_std": r["top1_std"]}
            v["tasks"][t] = entry
        v["mean"] = mean_std([v["tasks"][t]["trained"] for t in tasks])[0]
        if name in random_of:
            v["random_init_mean"] = mean_std([v["tasks"][t]["random_init"] for t in tasks])[0]
        out["variants"][name] = v
    if not args.no_baselines and not args.no_pixels:
        out["pixels"] = {t: got[(jobs[0], t, "pixels")]["top1"] for t in tasks}
        out["pixels"]["mean"] = mean_std([out["pixels"][t] for t in tasks])[0]
    return out


def table(res: dict) -> str:
    tasks = res["tasks"]
    header = ["variant", "steps", "frames/s", *tasks, "mean"]
    rows = []
    for name, v in res["variants"].items():
        steps = "/".join(str(r["steps"]) for r in v["runs"])
        fps = "/".join(f"{r['frames_per_s']:.0f}" for r in v["runs"])
        rows.append([name, steps, fps, *[cell(v["tasks"][t]["trained"], v["tasks"][t]["std"]) for t in tasks],
                     cell(v["mean"])])  # fmt: skip
    for name, v in res["variants"].items():
        if "random_init_mean" in v:
            rows.append([f"{name} (random init)", "0", "-",
                         *[cell(v["tasks"][t]["random_init"], v["tasks"][t]["random_init_std"]) for t in tasks],
                         cell(v["random_init_mean"])])  # fmt: skip
    if "pixels" in res:
        rows.append(["pixels", "-", "-", *[cell(res["pixels"][t]) for t in tasks], cell(res["pixels"]["mean"])])
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        res = run(args)
        print(table(res))
        if note := readout_note(Probe(**res["probe"])):  # the probe settings run() checked and recorded
            print(note)
        if args.json:
            write_json(args.json, res)
        return 0

    return main_guard(go)


if __name__ == "__main__":
    sys.exit(run_cli(main))
