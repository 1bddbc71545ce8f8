"""Few-label probes side by side on the same frozen features: today's probe against probes that use the unlabelled
train videos (``eval.pool``), on the concatenation of all layers (the probe's ``top1``).

    python benchmarks/few_label_probes.py --checkpoint RUN/checkpoints/last.pt --data synthetic:shapes:direction \\
        --shots 5 [--probes base,pool,pca64,ncm] [--random-init | --baseline pixels] [--seeds 3] [--json out.json]

Features come from ``eval.linear_probe``'s own source (the same options, clips, cache and shots per seed). Probes:

- ``base``: ``eval.linear_probe --shots K`` (K >= 5: z-score on the K labelled videos per class, C by 5-fold CV
  over them);
- ``pool``: z-score on every train video, labels unused, then the same CV;
- ``pcaD``: ``pool``, then the pool's D leading principal components (not whitened), then the same CV;
- ``ncm``: pool z-score, unit length, nearest class mean under cosine (nothing to tune).

Prints one row per probe (test top-1 mean ± std over seeds) and writes ``--json``. Round 126 in
docs/results/few_labels_rounds126.md.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    import numpy as np
    import torch
    from prednet2.eval.common import fail, write_json
    from prednet2.eval.featureset import FeatureSource, add_feature_args
    from prednet2.eval.pool import PoolTransform, ncm_one_set
    from prednet2.eval.probe import probe_one_set_cv
    from prednet2.eval.seeds import add_seed_args, parse_seed_args
    from prednet2.eval.shots import CV_FOLDS, MIN_SHOTS_FOR_VAL, ShotsError, draw_shots

    from prednet2.cli import OneLineParser, out_file

DEFAULT_PROBES = "base,pool,pca64,ncm"


def parse_probes(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ("base", "pool", "ncm") and not re.fullmatch(r"pca[1-9][0-9]*", n)]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown probe(s) {', '.join(bad) or text!r}: use base, pool, pcaD, ncm")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # one row per probe: the second would be dropped without a word
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} given twice; name each probe once")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/few_label_probes.py", description=__doc__.split("\n\n")[0])
    add_feature_args(
        p, data_help="synthetic:shapes:direction, ..., a class folder or a labels file (FOLDER/labels.csv)"
    )
    add_seed_args(p, shots_help="K >= 5 labelled videos per class drawn from train per seed (required)", val_frac=False)
    p.add_argument("--probes", type=parse_probes, default=parse_probes(DEFAULT_PROBES),
                   help=f"comma-separated probes (default {DEFAULT_PROBES})")  # fmt: skip
    p.add_argument("--json", type=out_file, help="write the figures here")
    return p


def score(name: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, shots: np.ndarray,
          seed: int) -> float:  # fmt: skip
    """Test top-1 of probe ``name``, fitted on the ``shots`` rows of train; the pool is every train row."""
    if name == "base":
        fit = probe_one_set_cv(x_tr[shots], y_tr[shots], x_te, y_te, None, None, folds=CV_FOLDS, seed=seed)
        return fit.test_top1
    pca = int(name[3:]) if name.startswith("pca") else None
    t = PoolTransform.fit(x_tr, pca_dims=pca)
    z_tr, z_te = t(x_tr), t(x_te)
    if name == "ncm":
        return ncm_one_set(z_tr[shots], y_tr[shots], z_te, y_te).test_top1
    fit = probe_one_set_cv(z_tr[shots], y_tr[shots], z_te, y_te, None, None, folds=CV_FOLDS, seed=seed,
                           standardise=False)  # fmt: skip
    return fit.test_top1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    k = parse_seed_args(args)
    if k is None:
        given = f"--shots {args.shots}: " if args.shots is not None else ""
        fail(f"{given}this script compares few-label probes; give --shots K, a number of labelled videos per class "
             "(with every label, use python -m eval.linear_probe)")  # fmt: skip
    if k < MIN_SHOTS_FOR_VAL:  # K = 1 failed in the CV with a traceback; 2-4 were not linear_probe's fixed-C figure
        fail(f"--shots {k}: these probes pick C by {CV_FOLDS}-fold cross-validation over the K labelled videos per "
             f"class, which needs --shots {MIN_SHOTS_FOR_VAL} or more (below that, python -m eval.linear_probe "
             f"--shots {k} fixes C)")  # fmt: skip
    t0 = time.time()
    src = FeatureSource(args)
    per_seed: dict[str, list[float]] = {n: [] for n in args.probes}
    for seed in range(args.seeds):
        train, y_tr, test, y_te = src.train_test(seed)
        x_tr = np.concatenate(list(train.values()), axis=1)
        x_te = np.concatenate(list(test.values()), axis=1)
        try:
            shots = draw_shots(y_tr, k, seed)
        except ShotsError as e:
            fail(f"--data {args.data}: {e}")
        rank = min(x_tr.shape)  # the pool has no more principal components than videos or features
        over = [n for n in args.probes if n.startswith("pca") and int(n[3:]) > rank]
        if over:  # PoolTransform would keep all it has: the row would be pool's, under another name
            fail(f"--probes {over[0]}: the pool of {len(y_tr)} train videos x {x_tr.shape[1]} features has at most "
                 f"{rank} principal components; use pca{rank} or fewer (or more --n-train)")  # fmt: skip
        for name in args.probes:
            per_seed[name].append(score(name, x_tr, y_tr, x_te, y_te, shots, seed))
    variant = "random_init" if args.random_init else (args.baseline or "trained")
    rows = {n: {"top1": float(np.mean(v)), "top1_std": float(np.std(v)), "per_seed": v} for n, v in per_seed.items()}
    print(f"{args.data} [{variant}] at {k} shots, {args.seeds} seeds, {x_tr.shape[1]} features, "
          f"{len(y_tr)} train videos (the pool), {len(y_te)} test")  # fmt: skip
    for n, r in rows.items():
        print(f"  {n:<8} {100 * r['top1']:5.1f} ± {100 * r['top1_std']:4.1f}")
    if args.json:
        write_json(args.json, {"dataset": args.data, "variant": variant, "shots": k, "seeds": args.seeds,
                               "n_features": int(x_tr.shape[1]), "n_pool": int(len(y_tr)), "n_test": int(len(y_te)),
                               "probes": rows, "wall_s": round(time.time() - t0, 2)})  # fmt: skip
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(run_cli(main))  # not main_guard: no runs or probes to keep
