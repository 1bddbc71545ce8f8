"""Probes over seeds: the seed and ``--shots`` options, and one run of a probe over seeds on frozen features.

``eval.linear_probe`` and ``eval.knn`` share it: ``add_seed_args`` adds ``--seeds``, ``--shots`` (and
``--val-frac``), ``run_seeds`` runs ``eval.probe.run_probe`` over the seeds on a ``FeatureSource``'s per-video
features (train cut to K videos per class) and returns the summary both write, with the sizes, the chance level
and the provenance.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .common import fail
from .featureset import FeatureSource
from .probe import ProbeError, run_probe
from .shots import ShotsError, draw_shots, parse_shots, with_shots

VAL_FRAC = 0.2  # --val-frac's default


def add_seed_args(p: argparse.ArgumentParser, *, shots_help: str, val_frac: bool = True) -> argparse.ArgumentParser:
    """--seeds, --shots and (``val_frac``) --val-frac: the options of the per-seed protocols (linear probe, k-NN)."""
    p.add_argument("--seeds", type=int, default=3, help="number of seeds 0..N-1 (default 3)")
    p.add_argument("--shots", default=None, help=shots_help)
    if val_frac:
        p.add_argument(
            "--val-frac",
            type=float,
            default=VAL_FRAC,
            help=f"fraction of train carved out for validation (default {VAL_FRAC}; not with --shots)",
        )
    return p


def parse_seed_args(args) -> int | None:
    """Check --seeds/--val-frac and parse --shots (None: every train video), or exit 2 with one line."""
    if args.seeds < 1:
        fail(f"--seeds {args.seeds}: need at least 1")
    if hasattr(args, "val_frac") and not 0.0 < args.val_frac < 0.5:
        fail(f"--val-frac {args.val_frac}: expected a fraction in (0, 0.5)")
    try:
        shots = parse_shots(args.shots)
    except ShotsError as e:
        fail(str(e))
    if shots is not None and getattr(args, "val_frac", VAL_FRAC) != VAL_FRAC:  # K shots carve no validation split
        fail(f"--val-frac {args.val_frac} with --shots {shots}: with K shots C is fixed (K < 5) or picked by 5-fold "
             "cross-validation, no split is carved; drop --val-frac")  # fmt: skip
    return shots


def run_seeds(args, src: FeatureSource, shots: int | None, **layer_kw) -> dict:
    """``eval.probe.run_probe`` over seeds 0..N-1 on ``src``'s per-video train/test features, train cut to
    ``shots`` videos per class drawn by each seed; ``layer_kw`` picks the evaluator (``fixed_c``, ``one_set``).

    Returns the keys probe.json and knn.json share (the summary, sizes, provenance, chance, ``shots``)."""
    seeds = list(range(args.seeds))
    val_frac = getattr(args, "val_frac", None)  # None for k-NN (leave-one-out, no carve)
    train = src.dataset("train")
    folder_labels = getattr(train, "video_labels", None)
    if shots is not None and folder_labels is not None:  # a folder knows its labels: refuse K before extracting
        try:
            draw_shots(np.asarray(folder_labels), shots, 0)
        except ShotsError as e:
            fail(f"--data {args.data}: {e}")
    if folder_labels is None:
        check_synthetic_size(args, len(train), int(getattr(train, "num_classes", 0) or 0), shots, val_frac is not None)
    try:
        summary = run_probe(with_shots(src.train_test, shots), seeds, val_frac=val_frac or 0.2, **layer_kw)
    except (ProbeError, ShotsError) as e:
        empty = []
        if folder_labels is not None:  # say which classes lost every video: often why a split holds one class
            test_labels = getattr(src.dataset("test"), "video_labels", [])
            empty = classes_without_videos(train, np.asarray(folder_labels), np.asarray(test_labels))
        why = f" ({_no_usable_video(empty, train)}: all skipped)" if empty else ""
        fail(f"--data {args.data}: {e}{why}")
    _, y_train, _, y_test = src.train_test(seeds[-1])
    n_classes = src.num_classes(y_train, y_test)
    empty = classes_without_videos(train, y_train, y_test)
    if empty:  # class folders whose every video was skipped: no class of this probe, nor of its chance level
        n_classes -= len(empty)
        why = (  # a synthetic task draws its clips at random: a small draw can miss a class (no file was skipped)
            f"{_no_usable_video(empty, train)} (all skipped)" if folder_labels is not None
            else f"class(es) {', '.join(empty)} drawn in none of the {len(y_train)} train and {len(y_test)} test "
            "clips (a larger --n-train / --n-test draws every class)"
        )  # fmt: skip
        print(f"warning: {args.data}: {why}; the probe has {n_classes} classes", file=sys.stderr)
    out = {
        "dataset": args.data,
        **summary.to_dict(),
        "n_train": int(len(y_train)) if shots is None else int(shots * len(np.unique(y_train))),
        "n_test": int(len(y_test)),
        "n_classes": n_classes,
        **src.provenance(),
        "n_train_available": int(len(y_train)),
        "val_frac": val_frac,
        "chance": 1.0 / n_classes,
        **({"classes_without_videos": empty} if empty else {}),
        "majority": float(np.max(np.bincount(y_test)) / len(y_test)),  # always guessing the commonest test class
    }
    if args.shots is not None:  # a label-efficiency point; without --shots a plain probe for the main table
        out["shots"] = shots or "all"
    return out


def _no_usable_video(classes: list[str], ds) -> str:
    what = "class(es)" if getattr(ds, "labels_file", None) is not None else "class folder(s)"  # a table's: no folder
    return f"{what} {', '.join(classes)} hold no usable video"


def classes_without_videos(ds, *ys: np.ndarray) -> list[str]:
    """Names of a labelled folder's classes that no usable video of ``ys`` (train and test labels) carries."""
    names = getattr(ds, "classes", None)
    if not names:
        return []
    present = set(np.concatenate([np.asarray(y).ravel() for y in ys]).tolist())
    return [c for i, c in enumerate(names) if i not in present]


def check_synthetic_size(args, n: int, classes: int, shots: int | None, carves: bool) -> None:
    """Exit 2 before any feature is extracted when a synthetic train split of ``n`` clips over ``classes`` labels
    drawn at random cannot serve the probe: fewer than ``shots`` per class at best, or (``carves``: a validation
    split is carved from train) no more clips than classes, when every class may hold a single clip."""
    if classes < 2:
        return
    if shots is not None and n < shots * classes:
        need = shots * classes * 2  # labels are drawn at random: twice the bare minimum
        fail(f"--shots {shots}: --n-train {n} gives fewer than {shots} train clips per class of {args.data}'s "
             f"{classes}; give --n-train {need} or more (labels are drawn at random) or fewer --shots")  # fmt: skip
    if shots is None and carves and n <= classes:
        fail(f"--n-train {n}: the probe carves a validation split from train, which needs more train clips than "
             f"{args.data}'s {classes} classes; give --n-train {classes + 1} or more (default 1024)")  # fmt: skip


def per_layer_text(result: dict) -> str:
    """``0: 0.512, 1: 0.634`` for the one-line summaries the CLIs print."""
    return ", ".join(f"{k}: {v:.3f}" for k, v in result["per_layer"].items())
