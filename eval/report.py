"""Results tables from run folders and eval JSON files: ``python -m eval.report``.

    python -m eval.report runs/shapes runs/mnist extra/probe_basketball.json --out docs/RESULTS_tables.md \\
        --png docs/results_probe.png

Every figure comes from a file: a RUN folder contributes ``summary.json`` and every ``*.json`` in it (and in
``RUN/eval/``); a JSON file is classified by its keys (probe: ``top1``; few-label point: ``top1`` and ``shots``;
k-NN: ``method: knn``; clusters: ``method: kmeans``; next-step: ``per_layer_ratio``; flow probe: ``per_unit_r2``;
surprise: ``auroc``;
training summary: ``final_loss``). The few/no-label tables and the label-efficiency PNG (``--curve-png``) live
in ``eval.report_fewlabels``. Probe files are tied to their training run through their
``run`` key, so the probe table carries that run's steps and wall time. The Markdown ends with the list of files
read.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from prednet2.cli import OneLineParser, error_prefix, json_files, out_file, prog_name
from prednet2.interrupt import run_cli

from . import report_fewlabels as fl

VARIANTS = ("trained", "random_init", "pixels")
VARIANT_TITLES = {"trained": "trained", "random_init": "random init", "pixels": "pixels"}


@dataclass
class Collected:
    summaries: dict[str, dict] = field(default_factory=dict)  # run dir -> summary.json
    probes: list[tuple[Path, dict]] = field(default_factory=list)
    nexts: list[tuple[Path, dict]] = field(default_factory=list)
    flows: list[tuple[Path, dict]] = field(default_factory=list)  # eval.flow_probe: the coming motion from the states
    surprises: list[tuple[Path, dict]] = field(default_factory=list)
    shots: list[tuple[Path, dict]] = field(default_factory=list)  # probes/k-NN at K labelled videos per class
    knns: list[tuple[Path, dict]] = field(default_factory=list)
    clusters: list[tuple[Path, dict]] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)


class ReportError(ValueError):
    pass


def kind_of(d: dict) -> str | None:
    """Which result a JSON dict is, from its keys."""
    if not isinstance(d, dict):
        return None
    if "top1" in d and "shots" in d:
        return "shots"
    if d.get("method") == "knn" and "top1" in d:
        return "knn"
    if d.get("method") == "kmeans" and "k" in d:
        return "cluster"
    if "top1" in d and "per_layer" in d:
        return "probe"
    if "per_layer_ratio" in d:
        return "next"
    if "per_unit_r2" in d:
        return "flow"
    if "auroc" in d:
        return "surprise"
    if "final_loss" in d and "steps" in d:
        return "summary"
    return None


def collect(paths: list[str]) -> Collected:
    """Read RUN folders and JSON files. Raises ReportError naming a path that is neither."""
    c = Collected()
    files = json_files(paths, ReportError, folders=("", "eval"), expected="expected a RUN folder with summary.json")
    for f in files:
        try:
            d = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ReportError(f"{f}: not readable JSON ({e})") from None
        kind = kind_of(d)
        if kind is None:
            continue  # other JSON in a run folder (e.g. a config dump) is not a result
        _add(c, f, d, kind)
        _check_renders(f, d, kind)
    # Probe files name their run: read its summary too when it was not given.
    for _, d in [*c.probes, *c.nexts, *c.flows, *c.surprises, *c.shots, *c.knns, *c.clusters]:
        run = _run_of(d)
        if run and run not in c.summaries and (Path(run) / "summary.json").is_file():
            c.summaries[run] = json.loads((Path(run) / "summary.json").read_text())
            c.sources.append(Path(run) / "summary.json")
    return c


def _add(c: Collected, f: Path, d: dict, kind: str) -> None:
    c.sources.append(f)
    if kind == "summary":
        c.summaries[str(f.resolve().parent)] = d
    else:
        field_of = {"probe": "probes", "next": "nexts", "flow": "flows", "surprise": "surprises", "shots": "shots",
                    "knn": "knns", "cluster": "clusters"}  # fmt: skip
        getattr(c, field_of[kind]).append((f, d))


def _check_renders(f: Path, d: dict, kind: str) -> None:
    """Render ``f`` alone: a hand-edited, cut or other-version file (a key missing, a figure that is text) is a
    ReportError naming it, not a KeyError or format error from deep in a table with many files in it."""
    alone = Collected()
    _add(alone, f, d, kind)
    try:
        render(alone)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, ReportError):
            raise
        raise ReportError(
            f"{f}: looks like a {kind} result but cannot be read as one ({e.__class__.__name__}: {e}); "
            "pass the file the tool wrote"
        ) from None


def _run_of(d: dict) -> str:
    if d.get("run"):
        return str(Path(d["run"]).resolve())
    ck = d.get("checkpoint")
    if ck:
        p = Path(ck).resolve()
        return str(p.parent.parent if p.parent.name == "checkpoints" else p.parent)
    return ""


def _name(run: str) -> str:
    return Path(run).name if run else "?"


def _pct(x: float | None, std: float | None = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{100 * x:.1f}"
    return s + (f" ± {100 * std:.1f}" if std is not None else "")


def _num(x, fmt: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "–" if x is None else str(x)
    return format(x, fmt)


def _per(figures: dict) -> str:
    """``{layer: x}`` as ``"0: 0.800, 1: 1.200"``; "–" when empty."""
    return ", ".join(f"{k}: {_num(v)}" for k, v in figures.items()) or "–"


def _wall(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def _variant(d: dict) -> str:
    if d.get("variant") in VARIANTS:
        return d["variant"]
    if d.get("baseline") == "pixels":
        return "pixels"
    return "random_init" if d.get("random_init") else "trained"


# ---- tables ------------------------------------------------------------------------------------------------
def probe_rows(c: Collected) -> list[dict]:
    """One row per (run, dataset, clip length): the three variants side by side. Probes read at other clip lengths
    are not comparable, so they get rows of their own, the length named in the task column."""
    rows: dict[tuple[str, str, object], dict] = {}
    for f, d in c.probes:
        run = _run_of(d)
        task = fl.task_of(d)  # the dataset, plus the clips per video when not the one centre clip
        row = rows.setdefault((run, task, d.get("clip_len")), {"run": run, "dataset": task, "files": []})
        v = _variant(d)
        if v in row:
            raise ReportError(
                f"{f}: a second {v} probe for {_name(run)} / {task} at the same clip length (also {row[v + '_file']}); "
                "pass only one of them"
            )
        row[v] = d
        row[v + "_file"] = f
    lengths = Counter((run, task) for run, task, _ in rows)  # clip lengths read per (run, task)
    for (run, task, clip_len), row in rows.items():
        if lengths[(run, task)] > 1:
            row["dataset"] = f"{task} ({clip_len} frames)"
    return list(rows.values())


def probe_table(c: Collected) -> str:
    rows = probe_rows(c)
    if not rows:
        return ""
    head = (
        "| run | task | trained | random init | pixels | trained − random | best layer (val) | per layer (trained) "
        "| chance | train steps | train wall | seeds | train/test clips |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        tr, ri, px = r.get("trained"), r.get("random_init"), r.get("pixels")
        any_d = tr or ri or px
        summ = c.summaries.get(r["run"], {})
        delta = f"{100 * (tr['top1'] - ri['top1']):+.1f}" if tr and ri else "–"
        best = "–"
        per_layer = "–"
        if tr:
            layers = tr.get("best_layer") or []
            best = "/".join(sorted(set(map(str, layers)))) + f" ({_pct(tr.get('best_layer_top1'))})"
            per_layer = ", ".join(f"{k}: {_pct(v)}" for k, v in tr["per_layer"].items())
        seeds = sorted({len(d.get("seeds", [])) for d in (tr, ri, px) if d})
        lines.append(
            f"| {_name(r['run'])} | {r['dataset']} | {_pct(tr and tr['top1'], tr and tr['top1_std'])} "
            f"| {_pct(ri and ri['top1'], ri and ri['top1_std'])} | {_pct(px and px['top1'], px and px['top1_std'])} "
            f"| {delta} | {best} | {per_layer} | {_pct(any_d.get('chance'))} "
            f"| {summ.get('steps', (tr or {}).get('steps', '–'))} | {_wall(summ.get('wall_s'))} "
            f"| {'/'.join(map(str, seeds))} | {any_d['n_train']}/{any_d['n_test']} |"
        )
    note = (
        "\nTop-1 on test in %, mean ± std over seeds: a linear probe (standardised L2 logistic regression, C chosen "
        "on a validation split carved from train) on all layers' features concatenated. *best layer (val)*: the "
        "layer(s) picked on validation across seeds and their mean test top-1. *random init*: the same "
        "architecture with fresh weights. *pixels*: frames average-pooled to 8×8, averaged in 4 temporal bins.\n"
    )
    return "### Linear probes\n\n" + head + "\n".join(lines) + "\n" + note


def next_table(c: Collected) -> str:
    if not c.nexts:
        return ""
    lines = []
    for _, d in c.nexts:
        ratios = _per(d["per_layer_ratio"])
        means = _per(d.get("per_layer_ratio_mean", {}))
        beats = all(v < 1.0 for v in d["per_layer_ratio"].values())
        summ = c.summaries.get(_run_of(d), {})
        lines.append(
            f"| {_name(_run_of(d))} | {d.get('dataset', '?')} | {'random init' if d.get('random_init') else 'trained'} "
            f"| {ratios} | {means} | {'yes' if beats else 'no'} | {d.get('n_clips', '–')} "
            f"| {0 if d.get('random_init') else summ.get('steps', d.get('steps', '–'))} |"
        )
    out = (
        "### Next-step prediction\n\n"
        "| run | data | model | MSE ratio vs copy-last, per layer | MSE ratio vs channel mean, per layer "
        "| all layers < 1 | clips | train steps |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n"
    )
    pix = [(f, d) for f, d in c.nexts if d.get("pixel")]
    if pix:
        out += "\n| run | predictor | MSE | PSNR (dB) | SSIM |\n|---|---|---|---|---|\n"
        for _, d in pix:
            for name, m in d["pixel"].items():
                out += (
                    f"| {_name(_run_of(d))} | {name} | {_num(m['mse'], '.4f')} | {_num(m['psnr'], '.2f')} "
                    f"| {_num(m['ssim'])} |\n"
                )
    return out + "\nRatios below 1 beat the trivial predictor; frames t ≥ 1 of held-out clips.\n"


def flow_table(c: Collected) -> str:
    if not c.flows:
        return ""
    lines = []
    for _, d in c.flows:
        r2 = _per(d["per_unit_r2"])
        ratio = _per(d.get("per_unit_ratio_copy_last", {}))
        model, steps = ("random init", 0) if d.get("random_init") else ("trained", d.get("steps", "–"))
        lines.append(f"| {_name(_run_of(d))} | {d.get('dataset', '?')} | {model} | {d.get('target', '–')} | {r2} "
                     f"| {ratio} | {d.get('n_test', '–')} | {steps} |")  # fmt: skip
    return (
        "### Flow probe (the coming motion read from each unit's state)\n\n"
        "| run | data | model | target | R² per unit | MSE ratio vs copy-last flow, per unit | test clips "
        "| train steps |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n\n"
        "R² is the share of the optical flow's variance that a ridge from the state explains on held-out clips.\n"
    )


def surprise_table(c: Collected) -> str:
    if not c.surprises:
        return ""
    lines = []
    for _, d in c.surprises:
        per_layer = _per(d.get("per_layer_auroc", {}))
        lines.append(
            f"| {_name(_run_of(d))} | {'random init' if d.get('random_init') else 'trained'} | {_num(d['auroc'])} "
            f"| {d.get('score', '–')} | {per_layer} | {d.get('n_clips', '–')} | {d.get('steps', '–')} |"
        )
    return (
        "### Surprise (anomaly AUROC, per frame)\n\n"
        "| run | model | AUROC | score | AUROC per layer | clips | train steps |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(lines)
        + "\n"
    )


def runs_table(c: Collected) -> str:
    if not c.summaries:
        return ""
    lines = []
    for run, s in c.summaries.items():
        losses = _per(s.get("final_loss") or {})
        fps = s.get("frames_per_s")
        lines.append(
            f"| {_name(run)} | {s.get('data', '–')} | {s.get('preset', '–')} | {s.get('mode', '–')} "
            f"| {s.get('steps', '–')} | {_wall(s.get('wall_s'))} | {_num(fps, '.0f') if fps else '–'} "
            f"| {s.get('device', '–')} | {losses} | {s.get('n_skipped', '–')} |"
        )
    return (
        "### Training runs\n\n| run | data | preset | mode | steps | wall time | frames/s | device "
        "| final loss per layer | skipped files |\n" + "|---" * 10 + "|\n" + "\n".join(lines) + "\n"
    )


def render(c: Collected, title: str = "prednet2 results") -> str:
    parts = [f"## {title}\n", "Generated by `python -m eval.report`; every figure is read from the files listed "
             "at the end.\n"]  # fmt: skip
    few = (
        fl.shots_table(c.shots, _run_of, _name, ReportError),
        fl.knn_table(c.knns, _run_of, _name, ReportError),
        fl.cluster_table(c.clusters, _run_of, _name),
    )
    for t in (runs_table(c), probe_table(c), *few, next_table(c), flow_table(c), surprise_table(c)):
        if t:
            parts.append(t)
    parts.append("### Sources\n\n" + "\n".join(f"- `{p}`" for p in c.sources) + "\n")
    return "\n".join(parts)


def bar_chart(c: Collected, path: str | Path) -> Path | None:
    """Grouped bars: per (run, task), trained / random init / pixels top-1 with ± std error bars."""
    rows = probe_rows(c)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.arange(len(rows))
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(rows) + 2), 4.2))
    for k, v in enumerate(VARIANTS):
        means = [100 * r[v]["top1"] if v in r else np.nan for r in rows]
        stds = [100 * r[v]["top1_std"] if v in r else 0.0 for r in rows]
        ax.bar(x + (k - 1) * width, means, width, yerr=stds, capsize=3, label=VARIANT_TITLES[v])
    chance = [100 * (r.get("trained") or r.get("random_init") or r.get("pixels")).get("chance", np.nan) for r in rows]
    for i, ch in enumerate(chance):  # across the row's three bars, not the middle one alone
        ax.hlines(ch, i - 1.5 * width, i + 1.5 * width, color="black", zorder=3, label="chance" if i == 0 else None)
    names = [r["dataset"].replace("synthetic:", "").split("/")[-1] for r in rows]  # a folder by its own name
    ax.set_xticks(x, [f"{n}\n({_name(r['run'])})" for n, r in zip(names, rows)], fontsize=8)
    ax.set_ylabel("test top-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.7, len(rows) - 0.3)
    ax.set_title("Linear probe on frozen features (mean ± std over seeds)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")  # at the path given, with or without .png
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=prog_name("python -m eval.report"), description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", help="RUN folders and/or result JSON files")
    p.add_argument("--out", type=out_file, help="Markdown file to write (default: print)")
    p.add_argument("--png", type=out_file, help="bar chart of the probe results")
    p.add_argument(
        "--curve-png", type=out_file, help="label-efficiency curves (top-1 against labelled videos per class)"
    )
    p.add_argument("--title", default="prednet2 results")
    args = p.parse_args(argv)
    try:
        c = collect(args.inputs)
        if not c.sources:
            raise ReportError(
                f"no result JSON found in {', '.join(args.inputs)}: eval.report reads RUN folders and the --out "
                "files of the eval tools (probe, knn, next-step, surprise, cluster); a benchmarks/ --json file is "
                "read by benchmarks/study_table.py"
            )
        md = render(c, args.title)
    except ReportError as e:
        print(f"{error_prefix()}{e}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(md)
        print(f"wrote {args.out}")
    else:
        print(md)
    if args.curve_png:
        if fl.curve_chart(c.shots, _run_of, _name, ReportError, args.curve_png):
            print(f"wrote {args.curve_png}")
        else:
            print("no --shots results: no label-efficiency chart drawn", file=sys.stderr)
    if args.png:
        if bar_chart(c, args.png):
            print(f"wrote {args.png}")
        else:
            print("no probe results: no chart drawn", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
