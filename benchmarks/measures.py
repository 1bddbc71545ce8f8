"""The issue's seven acceptance measures on finished checkpoints, each variant beside its own random init, and the
paired differences from a reference variant (issue 13; docs/results/dynamics_rounds115.md, round 115's rule).

    python benchmarks/measures.py --variant default=runs/r109/default_s0,runs/r109/default_s1 \\
        --variant fw101=runs/r109/fw101_s0,runs/r109/fw101_s1 [--ref default] [--jobs 2] [--json m.json]

A variant is a list of runs (run folders or checkpoint files), one per training seed, paired with the reference's
by position. Each run is read on every measure; each variant's random init once, on its first run (random weights
do not depend on the training seed, but a variant whose extra heads shift the random stream has its own), and
variants whose first runs' ``config.yaml`` agree on the ``model``, ``data`` and ``motion`` sections (the same network
drawn the same way, probed the same way: e.g. variants that differ only in ``train.*``) share one. The
measures:

- ``dir1024``, ``kind1024``: direction (``synthetic:shapes:direction``) and kind of motion
  (``synthetic:trajectories:kind``) at 1024 train / 512 test clips of 20 frames, 3 probe seeds;
- ``bbres``: basketball_actions on 10 resampled stratified 226/57 splits, 6 frames (``--resplit --seeds 10``);
- ``dirK5``, ``dirK10``, ``kindK5``, ``kindK10``: the same two tasks with 5 or 10 labels per class (512/256).

``--measures heldout`` reads round 135's held-out battery instead (``spin``, ``accel``, ``loom``, ``count`` from
``synthetic:heldout``, 512/256 clips of 20 frames, all labels and ``K5``: 5 per class), tasks no default was
chosen on: docs/results/heldout_rounds135.md. ``--measures heldout2`` reads the second battery (``collide``,
``occlude``, ``follow`` from ``synthetic:heldout2``, the same sizes, all labels and ``K5``), written in session 39 for
variants chosen by looking at the first: docs/results/flow_anchor_round150.md. ``--measures bbK5`` reads
basketball_actions at 5 labels per class (its fixed split, 10 draws, 6 frames): the few-label target on real footage.

Probes are ``python -m eval.linear_probe`` subprocesses, one thread each, cached as
``RUN/eval/measure_<measure>_<trained|random_init>.json`` (another checkpoint than ``last.pt`` adds its name), so an
interrupted call resumes; a checkpoint written after its file is read again. ``--pixels`` also reads each measure
on pooled raw pixels, once, on the reference's first run (``measure_<measure>_pixels.json``), as a row of its own.
``--readout NAME=PARTS`` reads a variant's runs on other readout parts (eval ``--readout``, files of their own): the
same runs named under two variants, one with ``--readout``, compare two readouts of the same weights, paired. The
table gives each variant's mean over its runs, the same minus its random init, and ``variant - REF`` per measure as
the mean ± the standard error of the paired differences; a measure that falls by more than twice its standard error
is marked.
Below it, each set's mean (seven, heldout, heldout2) paired training seed by training seed: what round 143's rule
reads ("above on every seed"; also in ``--json`` as ``summary[variant]["vs_ref"]["per_seed"]``).
Bad input is one line and exit 2; a failed probe one line naming its log and exit 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    from prednet2.eval.common import run_dir_of, write_json
    from study import BASKETBALL, Runner, StudyError, StudyFailure, last_line, main_guard
    from study_probe import Probe, readout_args, readout_parts, readout_tag
    from tables import markdown_table, paired

    from prednet2.checkpoint import CheckpointError, resolve_checkpoint
    from prednet2.cli import OneLineParser, int_at_least, out_file, out_folder

_SYN = ["--n-train", "1024", "--n-test", "512", "--clip-len", "20", "--seeds", "3"]
_FEW = ["--n-train", "512", "--n-test", "256", "--clip-len", "20", "--seeds", "3"]
# measure -> (data spec, probe arguments); BASKETBALL is read when the probe runs (PREDNET2_BASKETBALL overrides it)
MEASURES: dict[str, tuple[str, list[str]]] = {
    "dir1024": ("synthetic:shapes:direction", _SYN),
    "kind1024": ("synthetic:trajectories:kind", _SYN),
    "bbres": (BASKETBALL, ["--resplit", "--seeds", "10", "--clip-len", "6"]),
    "dirK5": ("synthetic:shapes:direction", [*_FEW, "--shots", "5"]),
    "dirK10": ("synthetic:shapes:direction", [*_FEW, "--shots", "10"]),
    "kindK5": ("synthetic:trajectories:kind", [*_FEW, "--shots", "5"]),
    "kindK10": ("synthetic:trajectories:kind", [*_FEW, "--shots", "10"]),
}
SEVEN = tuple(MEASURES)  # the issue's acceptance measures: the default set
# Round 135's held-out battery (datasets/heldout.py): tasks no variant was chosen on, each with all labels and at 5
# labels per class. All-labels first: two probes side by side then read different tasks, and the K5 probes that
# follow find their features cached instead of computing them twice at once.
_HELDOUT = ("spin", "accel", "loom", "count")
MEASURES |= {t: (f"synthetic:heldout:{t}", _FEW) for t in _HELDOUT}
MEASURES |= {f"{t}K5": (f"synthetic:heldout:{t}", [*_FEW, "--shots", "5"]) for t in _HELDOUT}
HELDOUT = tuple(m for m in MEASURES if m not in SEVEN)
# The second held-out battery (session 39, datasets/heldout2.py): what happens between objects and out of sight.
_HELDOUT2 = ("collide", "occlude", "follow")
MEASURES |= {t: (f"synthetic:heldout2:{t}", _FEW) for t in _HELDOUT2}
MEASURES |= {f"{t}K5": (f"synthetic:heldout2:{t}", [*_FEW, "--shots", "5"]) for t in _HELDOUT2}
HELDOUT2 = tuple(m for m in MEASURES if m not in SEVEN + HELDOUT)
SETS = {"seven": SEVEN, "heldout": HELDOUT, "heldout2": HELDOUT2}  # names --measures expands
# The few-label target on real footage (docs/RESULTS.md): basketball_actions at 5 labels per class on its fixed
# split, 10 draws of the labels; in no set, asked for by name (--measures bbK5).
MEASURES["bbK5"] = (BASKETBALL, ["--seeds", "10", "--clip-len", "6", "--shots", "5"])
ON_BASKETBALL = tuple(m for m, (spec, _) in MEASURES.items() if spec == BASKETBALL)  # read the basketball folder


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/measures.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=RUN,RUN,...",
        help="a variant and its runs (run folders or checkpoints), one per training seed; repeatable",
    )
    p.add_argument("--readout", action="append", default=[], metavar="NAME=PARTS",
                   help="read the variant NAME's runs on these readout parts (eval --readout, e.g. a,r,da,fo) instead "
                   "of their own model.readout; two variants can then name the same runs; repeatable")  # fmt: skip
    p.add_argument("--ref", default=None, help="the variant the others are paired with (default: the first)")
    p.add_argument("--measures", default="seven", help=f"comma-separated measures of {','.join(MEASURES)}, or the "
                   f"sets {', '.join(SETS)} (default: seven, the acceptance measures)")  # fmt: skip
    p.add_argument("--out", type=out_folder, default="runs/measures", help="folder for the probes' logs")
    p.add_argument("--jobs", type=int_at_least(1), default=1, help="probes side by side, one thread each (default 1)")
    p.add_argument("--json", type=out_file, default=None, help="write every figure here")
    p.add_argument("--quiet", action="store_true", help="no line per finished probe")
    p.add_argument("--pixels", action="store_true", help="also read each measure on pooled raw pixels (eval "
                   "--baseline pixels, on the reference's first run's data settings): the floor beside "
                   "random init")  # fmt: skip
    return p


def checkpoint_of(run: str, what: str) -> Path:
    """A run folder (its checkpoints/last.pt) or a checkpoint file; StudyError naming ``what`` when missing."""
    try:
        return resolve_checkpoint(run)
    except CheckpointError:
        raise StudyError(f"{what}: {run} is neither a checkpoint nor a run folder with checkpoints/last.pt") from None


def parse_variants(specs: list[str]) -> dict[str, list[Path]]:
    if not specs:
        raise StudyError("give at least one --variant NAME=RUN,RUN,...")
    out: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, runs = spec.partition("=")
        name = name.strip()
        if not sep or not name or not runs.strip():
            raise StudyError(f"--variant {spec!r}: expected NAME=RUN,RUN,... (run folders or checkpoints)")
        if name in out:
            raise StudyError(f"--variant {name!r} given twice; give each variant once with all its runs")
        seen: dict[Path, str] = {}  # resolved checkpoint -> the run that named it
        ckpts: list[Path] = []
        for r in (r.strip() for r in runs.split(",") if r.strip()):
            c = checkpoint_of(r, f"--variant {name}")
            key = c.resolve()
            if key in seen:  # one training seed counted twice: the mean and its standard error would lie
                raise StudyError(f"--variant {name}: {r} is the same checkpoint as {seen[key]}; "
                                 "give each training seed's run once")  # fmt: skip
            seen[key] = r
            ckpts.append(c)
        if not ckpts:  # NAME=, : commas and nothing between them
            raise StudyError(f"--variant {spec!r}: no run given; give NAME=RUN,RUN,... (run folders or checkpoints)")
        out[name] = ckpts
    return out


def parse_readouts(specs: list[str], variants: dict[str, list[Path]]) -> dict[str, str | None]:
    """{variant: readout parts or None (each run's own model.readout)} from ``--readout NAME=PARTS``."""
    out: dict[str, str | None] = dict.fromkeys(variants)
    for spec in specs:
        name, sep, parts = (x.strip() for x in spec.partition("="))
        if not sep or not parts:
            raise StudyError(f"--readout {spec!r}: expected NAME=PARTS (e.g. fo=a,r,da,fo)")
        if name not in variants:
            raise StudyError(f"--readout {spec!r}: {name!r} is not a --variant (given: {', '.join(variants)})")
        if out[name] is not None:
            raise StudyError(f"--readout {name!r} given twice; give each variant one readout")
        try:
            out[name] = readout_parts(parts, f"--readout {name}")
        except ValueError as e:
            raise StudyError(str(e)) from None
    return out


def parse_measures(names: str) -> list[str]:
    named = [m.strip() for m in names.split(",") if m.strip()]
    chosen = [x for m in named for x in SETS.get(m, [m])]  # a set's name stands for its measures
    bad = [m for m in chosen if m not in MEASURES]
    if bad or not chosen:
        raise StudyError(f"--measures: unknown {bad or names!r}; choose from {','.join(MEASURES)} "
                         f"or the sets {', '.join(SETS)}")  # fmt: skip
    twice = sorted({m for m in chosen if chosen.count(m) > 1})
    if twice:  # a column twice would count twice in the mean over measures
        raise StudyError(f"--measures: {','.join(twice)} given twice; name each measure once")
    for m in (m for m in chosen if m in ON_BASKETBALL):  # before any probe runs, as study.py does
        if not Path(MEASURES[m][0]).is_dir():
            raise StudyError(f"--measures {m}: {MEASURES[m][0]} not found (set PREDNET2_BASKETBALL to the "
                             f"basketball_actions folder, or leave {m} out)")  # fmt: skip
    return chosen


def cached_top1(path: Path) -> float:
    """``top1`` of a probe.json this script keeps; StudyError naming the file when it is not one."""
    try:
        return float(json.loads(path.read_text())["top1"])
    except (OSError, ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        why = f"{type(e).__name__}: {e}"
        raise StudyError(f"{path}: not a probe result ({why}); delete it and rerun to probe again") from None


KIND_FLAGS = {"trained": [], "random_init": ["--random-init"], "pixels": ["--baseline", "pixels"]}


def probe(runner: Runner, ckpt: Path, measure: str, kind: str, readout: str | None = None) -> float:
    """Top-1 of one measure on one checkpoint (cached beside it) read as ``kind`` (trained, random_init or pixels),
    on ``readout``'s parts where given (eval --readout; ``job_key`` gives pixels none); StudyFailure naming the log
    when it fails."""
    tag = "" if ckpt.name == "last.pt" else f"_{ckpt.stem}"  # another checkpoint of the run: files of its own
    other = Probe(readout=readout)  # another readout of the same weights: eval flags and files of its own
    tag += readout_tag(other) if readout is not None else ""
    run = run_dir_of(ckpt)
    out = run / "eval" / f"measure_{measure}_{kind}{tag}.json"
    if out.is_file() and out.stat().st_mtime >= ckpt.stat().st_mtime:  # cached, unless the checkpoint is newer
        return 100 * cached_top1(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec, extra = MEASURES[measure]
    args = ["-m", "eval.linear_probe", "--checkpoint", str(ckpt), "--data", spec, "--out", str(out)]
    args += [*extra, "--threads", "1", "--no-progress", *KIND_FLAGS[kind]]
    args += readout_args(other)
    log = f"measure_{run.name}{tag}_{measure}_{kind}"
    rc = runner.run(args, log)
    if rc != 0 or not out.is_file():
        log_path = runner.out / "logs" / f"{log}.log"
        said = last_line(log_path).split(" error: ", 1)[-1]  # the probe's own words, without its program name
        said = said.removeprefix("error: ")  # eval's tools say "error: ..." without one
        if rc == 2:  # the probe refused its input (e.g. a file that is no checkpoint): bad input, said as it said it
            raise StudyError(f"{measure} on {ckpt} ({kind}): {said} (log: {log_path})")
        raise StudyFailure(f"{measure} on {ckpt} ({kind}) failed (exit {rc}): {said} (log: {log_path})")
    top1 = 100 * cached_top1(out)
    runner.say(f"{run.name} {measure} ({kind}): {top1:.1f}")
    return top1


def random_init_key(ckpt: Path) -> str:
    """What a checkpoint's random init depends on: its run's ``config.yaml`` sections ``model``, ``data`` and
    ``motion`` (the probe draws the same architecture under each probe seed), read as the library loads a stored
    config (``Config.from_stored``), so a run stored before a key existed shares with one that states the key's
    value of that time; the checkpoint's own path where the run has no readable config.yaml, so such a run shares
    with no other."""
    import yaml

    from prednet2.config import Config

    try:
        cfg = Config.from_stored(yaml.safe_load((run_dir_of(ckpt) / "config.yaml").read_text())).to_dict()
        return json.dumps({k: cfg[k] for k in ("model", "data", "motion")}, sort_keys=True)
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):  # ConfigError is a ValueError
        return str(ckpt.resolve())


def set_label(name: str, chosen: list[str]) -> str:
    """A set's name in the per-seed line, with the measures read where they are not the whole set."""
    return name if len(chosen) == len(SETS[name]) else f"{name} ({', '.join(chosen)} of its {len(SETS[name])})"


def tabulate(figures: dict, ref: str, measures: list[str], pixels: dict | None = None) -> tuple[str, dict]:
    """The markdown table and the summary behind it from ``figures[variant] = {"runs": [{measure: top1}],
    "random_init": {measure: top1}}`` and, where read, ``pixels = {measure: top1}`` (a row of its own, and each
    variant's ``gain_over_pixels``)."""
    header = ["", *measures, "mean"]
    rows, summary, notes = [], {}, []
    mean = statistics.fmean
    if pixels:
        rows.append(["pooled pixels", *(f"{pixels[m]:.1f}" for m in measures), f"{mean(pixels.values()):.2f}"])
    for v, f in figures.items():
        avg = {m: mean([r[m] for r in f["runs"]]) for m in measures}
        gain = {m: avg[m] - f["random_init"][m] for m in measures}
        rows.append([f"{v} ({len(f['runs'])} runs)", *(f"{avg[m]:.1f}" for m in measures),
                     f"{mean(list(avg.values())):.2f}"])  # fmt: skip
        rows.append([f"{v} − its random init", *(f"{gain[m]:+.1f}" for m in measures),
                     f"{mean(list(gain.values())):+.2f}"])  # fmt: skip
        summary[v] = {"mean": avg, "gain_over_random_init": gain}
        if pixels:
            summary[v]["gain_over_pixels"] = {m: avg[m] - pixels[m] for m in measures}
    for v, f in figures.items():
        if v == ref:
            continue
        pairs = list(zip(f["runs"], figures[ref]["runs"]))
        cells, below = [], []
        for m in [*measures, "mean"]:
            if m == "mean":
                d, se = paired([mean([a[x] for x in measures]) - mean([b[x] for x in measures]) for a, b in pairs])
            else:
                d, se = paired([a[m] - b[m] for a, b in pairs])
                if se is not None and d < -2 * se:
                    below.append(m)
            mark = "**" if m in below else ""
            cells.append(f"{mark}{d:+.2f}{'' if se is None else f' ± {se:.2f}'}{mark}")
        rows.append([f"{v} − {ref}, paired ({len(pairs)})", *cells])
        # each set's mean, paired seed by seed: what a rule "above on every seed" reads (sets with a chosen measure)
        groups = {name: [m for m in ms if m in measures] for name, ms in SETS.items()}
        groups = {name: ms for name, ms in groups.items() if ms}
        per_seed = {
            name: [mean([a[x] for x in ms]) - mean([b[x] for x in ms]) for a, b in pairs] for name, ms in groups.items()
        }
        summary[v]["vs_ref"] = {"ref": ref, "pairs": len(pairs), "below_by_2se": below, "per_seed": per_seed}
        sets = "; ".join(f"{set_label(name, groups[name])} {' / '.join(f'{d:+.2f}' for d in ds)}"
                         for name, ds in per_seed.items())  # fmt: skip
        if sets:  # none where every chosen measure is in no set (bbK5 alone)
            notes.append(f"{v} − {ref}, each set's mean per training seed: {sets}")
    return "\n".join([markdown_table(header, rows), *notes]), summary


def run(args: argparse.Namespace) -> dict:
    variants = parse_variants(args.variant)
    readouts = parse_readouts(args.readout, variants)
    measures = parse_measures(args.measures)
    ref = args.ref or next(iter(variants))
    if ref not in variants:
        raise StudyError(f"--ref {ref!r}: not a --variant (given: {', '.join(variants)})")
    odd = [f"{v} has {len(cs)}" for v, cs in variants.items() if len(cs) != len(variants[ref])]
    if odd:
        raise StudyError(f"runs pair by position with --ref {ref}'s {len(variants[ref])}, but {', '.join(odd)}; "
                         "give every variant one run per training seed, in the same order")  # fmt: skip
    runner = Runner(Path(args.out), jobs=args.jobs, verbose=not args.quiet)
    jobs = [(v, i, c, m, "trained") for v, cs in variants.items() for i, c in enumerate(cs) for m in measures]
    first: dict[str, Path] = {}  # random-init key -> the first run that has it: its random init stands for all
    ri = {v: first.setdefault(random_init_key(cs[0]) + str(readouts[v]), cs[0]) for v, cs in variants.items()}
    for v, c in ri.items():
        if c != variants[v][0]:
            runner.say(f"{v}: random init read on {c} (the same model, data and motion config)")
    jobs += [(v, -1, ri[v], m, "random_init") for v in variants for m in measures]
    # pixels once, on the reference's first run (its data settings: size, clip length; no weights read)
    jobs += [(ref, -1, variants[ref][0], m, "pixels") for m in measures] if args.pixels else []
    # a run named twice on one readout: probed once
    unique = list(dict.fromkeys(job_key(c, m, kind, readouts[v]) for v, _, c, m, kind in jobs))
    got = dict(zip(unique, runner.map(lambda k: probe(runner, *k), unique)))
    figures = {v: {"runs": [{} for _ in cs], "random_init": {}} for v, cs in variants.items()}
    pixels: dict[str, float] = {}
    for v, i, c, m, kind in jobs:
        top1 = got[job_key(c, m, kind, readouts[v])]
        if kind == "pixels":
            pixels[m] = top1
        else:
            (figures[v]["random_init"] if kind == "random_init" else figures[v]["runs"][i])[m] = top1
    table, summary = tabulate(figures, ref, measures, pixels or None)
    return {"measures": measures, "ref": ref, "runs": {v: [str(c) for c in cs] for v, cs in variants.items()},
            "readouts": readouts, "figures": figures, "pixels": pixels or None, "summary": summary,
            "table": table}  # fmt: skip


def job_key(ckpt: Path, measure: str, kind: str, readout: str | None) -> tuple:
    """One probe's identity: pixels read no weights and no readout, so every run's pixel reading is one."""
    return (ckpt.resolve(), measure, kind, None if kind == "pixels" else readout)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        res = run(args)
        print(res["table"])
        print("(**bold**: below the reference by more than twice the standard error of the paired differences)")
        if args.json:
            write_json(args.json, res)
        return 0

    return main_guard(go)


if __name__ == "__main__":
    sys.exit(run_cli(main))
