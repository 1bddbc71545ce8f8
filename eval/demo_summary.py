"""The last step of ``make demo``: a three-row table (trained, random init, pixels) and a PNG chart of it.

    python -m eval.demo_summary RUN [--png RUN/probe_summary.png]

Reads ``RUN/probe.json``, ``RUN/probe_random_init.json`` and ``RUN/probe_pixels.json`` (written by
``eval.linear_probe``) and ``RUN/summary.json`` (the training run), prints the table, and draws the chart with
``eval.report``'s bar chart. A missing or unreadable file exits 2 with one line naming it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prednet2.cli import OneLineParser, prog_name
from prednet2.interrupt import run_cli

from .report import ReportError, bar_chart, collect

ROWS = (("trained", "probe.json"), ("random init", "probe_random_init.json"), ("pixels", "probe_pixels.json"))


def _read(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: missing (run eval.linear_probe first; see the Makefile's demo target)") from None
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(d, dict) or "top1" not in d:
        raise ReportError(f"{path}: not a probe result (no 'top1')")
    return d


def summary_table(run: Path) -> str:
    """The table as text: one row per feature source, top-1 mean ± std over seeds, and a header naming the task."""
    probes = {name: _read(run / f) for name, f in ROWS}
    any_d = probes["trained"]
    train = {}
    if (run / "summary.json").is_file():
        train = json.loads((run / "summary.json").read_text())
    steps = f"{train['steps']} steps, {train['wall_s'] / 60:.1f} min" if train else "training summary missing"
    lines = [
        f"Linear probe on {any_d['dataset']}: test top-1 (%), mean ± std over {len(any_d.get('seeds', []))} seeds, "
        f"{any_d['n_train']}/{any_d['n_test']} train/test clips, chance {100 * any_d.get('chance', 0):.1f}%",
        "",
        "| features    | top-1        | vs random init |",
        "|-------------|--------------|----------------|",
    ]
    base = probes["random init"]["top1"]
    for name, _ in ROWS:
        d = probes[name]
        delta = "" if name == "random init" else f"{100 * (d['top1'] - base):+.1f}"
        lines.append(f"| {name:<11} | {100 * d['top1']:5.1f} ± {100 * d['top1_std']:4.1f} | {delta:>14} |")
    lines += ["", f"trained: {steps} ({run / 'checkpoints' / 'last.pt'})"]
    ro = any_d.get("readout")
    if ro:  # what the model rows pooled (the probe JSON records it)
        bins = ro["readout_bins"]
        whole = " and the whole clip" if ro.get("readout_whole") and bins > 1 else ""
        if ro.get("readout_trend") and bins > 1:  # the whole clip's mean, then each bin's change from the one before
            whole = " read as the whole clip and the change between bins"
        lines.append(f"model features: {ro['readout']} over {any_d.get('clip_len', '?')} frames, "
                     f"{bins} time bin{'s' if bins > 1 else ''}{whole}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=prog_name("python -m eval.demo_summary"), description=__doc__.splitlines()[0])
    p.add_argument("run", metavar="RUN", help="the demo's run folder (runs/demo)")
    p.add_argument("--png", help="chart to write (default RUN/probe_summary.png)")
    args = p.parse_args(argv)
    run = Path(args.run)
    if not run.is_dir():
        p.error(f"RUN {run}: no such folder")
    try:
        table = summary_table(run)
        png = bar_chart(collect([str(run / f) for _, f in ROWS]), args.png or run / "probe_summary.png")
    except ReportError as e:
        p.error(str(e))
    print(table)
    print(f"chart: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
