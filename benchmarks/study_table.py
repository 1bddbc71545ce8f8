"""The study's table from ``peers.py --json`` files: every variant's mean over its training seeds, side by side,
and its paired difference from a reference variant on the seeds they share.

    python benchmarks/study_table.py runs/study/r73_*.json runs/study/r72c_default_s0.json [--ref default]
        [--json table.json]

A study runs one ``peers.py`` call per variant and training seed (docs/results/dynamics_study.md, "The study"); this
script merges the calls. Runs are grouped by protocol (steps or budget, tasks, probe sizes and seeds, training
data), and each protocol gets its own table, so files of other protocols (e.g. ``--resplit`` basketball) never mix.
A variant is its name: the same name with other ``--set`` keys in two files is an error, and so is one seed of one
variant in two files with other figures (rename one, or pass only one); with the same figures it is the same run (a
later call that added random init, say) and counts once. Random init and pixels rows appear where the files hold
them.
Runs trained under different CPU kernels (``prednet2.runinfo.kernels``: another CPU, or ``ATEN_CPU_CAPABILITY``
set) differ as much as two training seeds do; a table that mixes them says so under it.

The "vs REF" rows give, per task and for the mean over tasks, the mean over shared seeds of (variant − REF) and,
with two seeds or more, ± its standard error (the std of the paired differences over √n): the study's noise is
mostly the training seed's, and pairing on seeds removes the part the two runs share. Arguments may be folders
(their ``*.json``). Bad input is one line and exit 2.
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
    from prednet2.eval.common import write_json
    from study import StudyError, main_guard
    from tables import markdown_table, paired

    from prednet2.cli import OneLineParser, json_files, out_file


def _protocol(res: dict) -> tuple:
    probe = {k: v for k, v in (res.get("probe") or {}).items() if not (k.startswith("readout_") and v is None)}
    return (res.get("steps"), res.get("budget_s"), tuple(res["tasks"]), tuple(sorted(probe.items())), res.get("data"))


def _describe(proto: tuple) -> str:
    steps, budget, tasks, probe, data = proto
    run = f"{steps} steps" if steps else (f"{budget:g} s budget" if budget else "unknown length")
    probe = ", ".join(f"{k} {v}" for k, v in probe)
    return f"{run} on {data}; tasks {', '.join(tasks)}; probe: {probe}"


def load(paths: list[str]) -> list[tuple[Path, dict]]:
    """Read peers.py JSON files (folders: their *.json). Raises StudyError naming the file on bad input."""
    files = json_files(paths, StudyError, expected="pass peers.py --json outputs")
    out = []
    for f in files:
        try:
            res = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise StudyError(f"{f}: not readable JSON (line {e.lineno}, column {e.colno}: {e.msg}); pass peers.py "
                             "--json outputs") from None  # fmt: skip
        except (OSError, UnicodeDecodeError) as e:
            raise StudyError(f"{f}: not readable JSON ({e.__class__.__name__}); pass peers.py --json outputs") from None
        if not isinstance(res, dict) or not isinstance(res.get("variants"), dict) or "tasks" not in res:
            raise StudyError(f"{f}: not a peers.py --json output (no 'variants' and 'tasks'); curve.py files differ")
        out.append((f, res))
    return out


def merge(loaded: list[tuple[Path, dict]]) -> dict[tuple, dict]:
    """{protocol: {"variants": {name: {"sets", "seeds": {seed: {task: top1}}, "random_init"?}}, "pixels"?}}."""
    protos: dict[tuple, dict] = {}
    source: dict[tuple, Path] = {}  # (protocol, name, seed) -> the file it came from; (protocol, name) -> the first
    for f, res in loaded:
        try:
            _merge_file(f, res, protos, source)
        except (KeyError, IndexError, TypeError, AttributeError) as e:  # a hand-edited or truncated file
            raise StudyError(f"{f}: not a complete peers.py --json output ({e.__class__.__name__}: {e}); "
                             "pass the file peers.py wrote") from None  # fmt: skip
    return protos


def _merge_file(f: Path, res: dict, protos: dict[tuple, dict], source: dict[tuple, Path]) -> None:
    """Merge one peers.py JSON into ``protos`` (see ``merge``); StudyError on a name or seed conflict."""
    proto = _protocol(res)
    group = protos.setdefault(proto, {"variants": {}, "tasks": list(res["tasks"]), "kernels": {}})
    for name, v in res["variants"].items():
        sets = v.get("sets", [])
        entry = group["variants"].setdefault(name, {"sets": sets, "seeds": {}})
        first = source.setdefault((proto, name), f)
        if entry["sets"] != sets:
            raise StudyError(f"variant {name!r}: {first} trains {entry['sets']}, {f} trains {sets}; "
                             "rename one (peers.py --variant 'NEWNAME=...')")  # fmt: skip
        for i, run in enumerate(v["runs"]):
            seed = run["seed"]
            figures = {t: v["tasks"][t]["per_seed"][i] for t in res["tasks"]}
            if seed in entry["seeds"]:
                if entry["seeds"][seed] == figures:  # the same run in two calls (e.g. a later one adding baselines)
                    continue
                raise StudyError(f"variant {name!r} seed {seed} is in both {source[(proto, name, seed)]} and {f} "
                                 "with other figures; pass only one, or rename one variant")  # fmt: skip
            if run.get("kernels"):  # recorded since session 19
                group["kernels"].setdefault(run["kernels"], []).append(f"{name} s{seed}")
            source[(proto, name, seed)] = f
            entry["seeds"][seed] = figures
        if "random_init" in next(iter(v["tasks"].values()), {}):
            entry["random_init"] = {t: v["tasks"][t]["random_init"] for t in res["tasks"]}
    if "pixels" in res:
        group["pixels"] = {t: res["pixels"][t] for t in res["tasks"]}


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def _paired(d: list[float]) -> dict:
    """The mean of paired differences and its standard error (None from one pair), as the table's dict."""
    m, se = paired(d)
    return {"diff": m, "se": se}


def summarize(group: dict, ref: str | None) -> dict:
    """Per variant: seeds, per-task means, the mean over tasks; and the paired difference from ``ref``."""
    tasks = group["tasks"]
    rows: dict[str, dict] = {}
    for name, v in group["variants"].items():
        seeds = sorted(v["seeds"])
        per = {t: _mean([v["seeds"][s][t] for s in seeds]) for t in tasks}
        row = {"sets": v["sets"], "seeds": seeds, "tasks": per, "mean": _mean(list(per.values()))}
        if "random_init" in v:
            row["random_init"] = dict(v["random_init"], mean=_mean(list(v["random_init"].values())))
        rows[name] = row
    if ref and ref in group["variants"]:
        base = group["variants"][ref]["seeds"]
        for name, row in rows.items():
            shared = sorted(set(base) & set(group["variants"][name]["seeds"]))
            if name == ref or not shared:
                continue
            mine = group["variants"][name]["seeds"]
            diffs = {t: [mine[s][t] - base[s][t] for s in shared] for t in tasks}
            diffs["mean"] = [_mean([mine[s][t] for t in tasks]) - _mean([base[s][t] for t in tasks]) for s in shared]
            row["vs_ref"] = {"ref": ref, "seeds": shared, **{k: _paired(d) for k, d in diffs.items()}}
    out = {"tasks": tasks, "variants": rows, "kernels": group["kernels"]}
    if "pixels" in group:
        out["pixels"] = dict(group["pixels"], mean=_mean(list(group["pixels"].values())))
    return out


def pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.2f}"


def _diff(d: dict) -> str:
    s = f"{100 * d['diff']:+.2f}"
    return s + (f" ± {100 * d['se']:.2f}" if d["se"] is not None else "")


def table(summary: dict) -> str:
    tasks = summary["tasks"]
    header = ["variant", "seeds", *tasks, "mean"]
    rows = []
    for name, r in summary["variants"].items():
        seeds = ",".join(map(str, r["seeds"]))
        rows.append([name, seeds, *[pct(r["tasks"][t]) for t in tasks], pct(r["mean"])])
    for name, r in summary["variants"].items():
        if "random_init" in r:
            rows.append([f"{name} (random init)", "-", *[pct(r["random_init"][t]) for t in tasks],
                         pct(r["random_init"]["mean"])])  # fmt: skip
    if "pixels" in summary:
        rows.append(["pixels", "-", *[pct(summary["pixels"][t]) for t in tasks], pct(summary["pixels"]["mean"])])
    for name, r in summary["variants"].items():
        if "vs_ref" in r:
            d = r["vs_ref"]
            rows.append([f"{name} vs {d['ref']}", ",".join(map(str, d["seeds"])), *[_diff(d[t]) for t in tasks],
                         _diff(d["mean"])])  # fmt: skip
    text = markdown_table(header, rows)
    if len(summary.get("kernels", {})) > 1:
        mixed = "; ".join(f"{k}: {', '.join(runs)}" for k, runs in summary["kernels"].items())
        text += (f"\nnote: these runs were trained under different CPU kernels ({mixed}); trained figures differ "
                 "between kernels as between training seeds, so pair runs of one kind")  # fmt: skip
    return text


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/study_table.py", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="peers.py --json outputs, or folders of them")
    p.add_argument("--ref", default=None, help="the variant the others are paired with (default: default, when "
                   "the files hold it; '' for none); a named one must be in the files")  # fmt: skip
    p.add_argument("--json", type=out_file, help="write the tables as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        protos = merge(load(args.files))
        names = {n for g in protos.values() for n in g["variants"]}
        if args.ref and args.ref not in names:
            raise StudyError(f"--ref {args.ref!r} is not among the variants ({', '.join(sorted(names))})")
        ref = "default" if args.ref is None else args.ref or None
        results = []
        for proto, group in protos.items():
            s = summarize(group, ref)
            print(f"\n{_describe(proto)}\n\n{table(s)}" if len(protos) > 1 else table(s))
            results.append({"protocol": _describe(proto), **s})
        if args.json:
            write_json(args.json, results)
        return 0

    return main_guard(go, resumes=False)


if __name__ == "__main__":
    sys.exit(run_cli(main))
