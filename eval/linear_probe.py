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

import numpy as np
import torch

from .common import fail, write_json
from .featureset import FeatureSource, add_feature_args
from .probe import DEFAULT_CS, ProbeError, run_probe
from .shots import ShotsError, fixed_c_for, parse_shots, with_shots


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m eval.linear_probe",
        description="Linear probe (standardised L2 logistic regression, C picked on a validation split of train) "
        "on frozen per-layer features; top-1 on test as mean ± std over seeds.",
    )
    add_feature_args(p, data_help="synthetic:shapes:{shape,direction,speed}, ... or a class folder")
    p.add_argument("--out", required=True, help="probe.json to write")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds 0..N-1 (default 3)")
    p.add_argument(
        "--shots",
        default=None,
        help="K labelled videos per class drawn from train per seed, or 'all' (default: all, no draw)",
    )
    p.add_argument("--val-frac", type=float, default=0.2, help="fraction of train carved out for validation")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seeds < 1:
        fail(f"--seeds {args.seeds}: need at least 1")
    if not 0.0 < args.val_frac < 0.5:
        fail(f"--val-frac {args.val_frac}: expected a fraction in (0, 0.5)")
    try:
        shots = parse_shots(args.shots)
    except ShotsError as e:
        fail(str(e))
    t0 = time.time()
    # Steps 1-3. Checkpoint, data (the same clips for every seed and variant) and per-video features (cached).
    src = FeatureSource(args)

    # Step 4. Probe over seeds (at K < 5 shots C is fixed: no room for a validation carve).
    seeds = list(range(args.seeds))
    try:
        features = with_shots(src.train_test, shots)  # Step 3b. K labelled videos per class, drawn by the seed
        summary = run_probe(features, seeds, val_frac=args.val_frac, fixed_c=fixed_c_for(shots))
    except (ProbeError, ShotsError) as e:
        fail(f"--data {args.data}: {e}")
    _, y_train, _, y_test = src.train_test(seeds[-1])
    n_classes = src.num_classes(y_train, y_test)

    result = {
        "dataset": args.data,
        **summary.to_dict(),
        "n_train": int(len(y_train)) if shots is None else int(shots * len(np.unique(y_train))),
        "n_test": int(len(y_test)),
        "n_classes": n_classes,
        **src.provenance(),
        "shots": "all" if (args.shots is not None and shots is None) else shots,
        "n_train_available": int(len(y_train)),
        "fixed_c": fixed_c_for(shots),
        "val_frac": args.val_frac,
        "c_grid": list(DEFAULT_CS),
        "chance": 1.0 / n_classes,
        "majority": float(np.max(np.bincount(y_test)) / len(y_test)),  # always guessing the commonest test class
        "wall_s": round(time.time() - t0, 2),
    }
    if args.shots is None:
        del result["shots"]  # a plain probe: the report's main table, not a label-efficiency point
    write_json(args.out, result)
    k = f" at {result['shots']} shots" if "shots" in result else ""
    print(
        f"{args.data} [{result['variant']}]{k} top1 {result['top1']:.3f} ± {result['top1_std']:.3f} (concat); "
        f"best-on-val layer {result['best_layer_top1']:.3f}; per layer "
        + ", ".join(f"{k}: {v:.3f}" for k, v in result["per_layer"].items())
        + f"; chance {result['chance']:.3f}, majority {result['majority']:.3f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
