"""Linear probe of frozen prednet2 features on a labelled video set: ``python -m eval.linear_probe``.

    python -m eval.linear_probe --checkpoint RUN/checkpoints/last.pt --data synthetic:shapes:direction \\
        --out probe.json [--random-init | --baseline pixels] [--seeds 3] [--layers all|0,1] [--shots K]
        [--clips-per-video N]

The protocol is ``eval.probe`` (validation carved from train picks C and the best layer; test is only scored).
``top1`` in probe.json is the test top-1 of all selected layers concatenated; ``best_layer_top1`` is the layer
picked on validation. ``--shots K`` draws K labelled videos per class from train per seed (eval.shots has the
rule for C); ``--clips-per-video N`` averages N spread clips per video (eval.video_level). See docs/eval.md.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from prednet2.cli import OneLineParser, out_file, prog_name
from prednet2.interrupt import run_cli
from prednet2.runinfo import environment

from .common import skipped_text, write_json
from .featureset import FeatureSource, add_feature_args
from .probe import DEFAULT_CS
from .seeds import add_seed_args, parse_seed_args, per_layer_text, run_seeds
from .shots import protocol_for


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog_name("python -m eval.linear_probe"),
        description="Linear probe (standardised L2 logistic regression, C picked on a validation split of train) "
        "on frozen per-layer features; top-1 on test as mean ± std over seeds.",
    )
    add_feature_args(
        p,
        data_help="synthetic:shapes:{shape,direction,speed}, ..., a class folder (root/<class>/<video>) or a "
        "labels file (FOLDER/labels.csv: path,class per video)",
    )
    p.add_argument("--out", required=True, type=out_file, help="probe.json to write")
    add_seed_args(p, shots_help="K labelled videos per class drawn from train per seed, or 'all' (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shots = parse_seed_args(args)
    t0 = time.time()
    # Steps 1-3. Checkpoint, data (the same clips for every seed and variant) and per-video features (cached).
    src = FeatureSource(args)
    # Step 4. Probe over seeds, train cut to K shots per class (K < 5: a fixed C; K >= 5: C by 5-fold CV).
    protocol = protocol_for(shots)  # how C is chosen with K shots (eval.shots)
    result = run_seeds(args, src, shots, **protocol)
    result |= {"fixed_c": protocol.get("fixed_c"), "cv_folds": protocol.get("cv_folds"), "c_grid": list(DEFAULT_CS),
               "wall_s": round(time.time() - t0, 2), "environment": environment()}  # fmt: skip
    write_json(args.out, result)
    k = f" at {result['shots']} shots" if "shots" in result else ""
    print(
        f"{args.data} [{result['variant']}]{k} top1 {result['top1']:.3f} ± {result['top1_std']:.3f} (concat); "
        f"best-on-val layer {result['best_layer_top1']:.3f}; per layer {per_layer_text(result)}; "
        f"chance {result['chance']:.3f}, majority {result['majority']:.3f}{skipped_text(result['skipped'])} "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(run_cli(main))
