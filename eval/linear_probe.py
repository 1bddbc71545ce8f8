"""Linear probe of frozen prednet2 features on a labelled video set: ``python -m eval.linear_probe``.

    python -m eval.linear_probe --checkpoint RUN/checkpoints/last.pt --data synthetic:shapes:direction \\
        --out probe.json [--random-init | --baseline pixels] [--seeds 3] [--layers all|0,1]

The protocol is ``eval.probe`` (validation carved from train picks C and the best layer; test is only scored).
``top1`` in probe.json is the test top-1 of all selected layers concatenated; ``best_layer_top1`` is the layer
picked on validation. See docs/eval.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from prednet2.config import DataConfig

from .common import (
    build_or_exit,
    data_config,
    fail,
    load_or_exit,
    parse_layers,
    random_init_model,
    resolve_device,
    run_dir_of,
    set_threads,
    uses_motion,
    write_json,
)
from .features import (
    cached_features,
    checkpoint_id,
    extract_model_features,
    extract_pixel_features,
    select_layers,
)
from .probe import DEFAULT_CS, ProbeError, run_probe

PIXEL_POOL, PIXEL_BINS = 8, 4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m eval.linear_probe",
        description="Linear probe (standardised L2 logistic regression, C picked on a validation split of train) "
        "on frozen per-layer features; top-1 on test as mean ± std over seeds.",
    )
    p.add_argument("--checkpoint", required=True, help="RUN/checkpoints/last.pt (its config sets model and data)")
    p.add_argument("--data", required=True, help="synthetic:shapes:{shape,direction,speed}, ... or a class folder")
    p.add_argument("--out", required=True, help="probe.json to write")
    p.add_argument("--random-init", action="store_true", help="same architecture, fresh weights (seeded per seed)")
    p.add_argument("--baseline", choices=["pixels"], help="pooled raw pixels instead of the model")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds 0..N-1 (default 3)")
    p.add_argument("--layers", default="all", help="'all' or comma-separated layers, e.g. 0,2")
    p.add_argument("--splits", help="folder with trainlistKK.txt/testlistKK.txt (UCF101 style)")
    p.add_argument("--fold", type=int, default=1, help="split fold K with --splits (default 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--clip-len", type=int, help="frames per clip (default: the checkpoint's data.clip_len)")
    p.add_argument("--batch-size", type=int, default=32, help="clips per forward pass")
    p.add_argument("--n-train", type=int, default=1024, help="synthetic sets: train clips (default 1024)")
    p.add_argument("--n-test", type=int, default=512, help="synthetic sets: test clips (default 512)")
    p.add_argument("--data-seed", type=int, default=0, help="synthetic sets: dataset seed, fixed across seeds")
    p.add_argument("--val-frac", type=float, default=0.2, help="fraction of train carved out for validation")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--cache-dir", help="feature cache folder (default RUN/feature_cache)")
    p.add_argument("--no-cache", action="store_true", help="always recompute features")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.random_init and args.baseline:
        fail("--random-init and --baseline pixels are two different baselines: pass one of them")
    if args.seeds < 1:
        fail(f"--seeds {args.seeds}: need at least 1")
    if not 0.0 < args.val_frac < 0.5:
        fail(f"--val-frac {args.val_frac}: expected a fraction in (0, 0.5)")
    if args.splits and not Path(args.splits).is_dir():
        fail(f"--splits {args.splits}: no such folder")
    try:
        layers = parse_layers(args.layers)
    except ValueError as e:
        fail(str(e))
    set_threads(args.threads)
    device = resolve_device(args.device)
    t0 = time.time()

    # Step 1. The checkpoint: its config fixes the architecture and the input format (size, grayscale, clip).
    loaded = load_or_exit(args.checkpoint, device)
    cfg = loaded.cfg
    n_layers = int(getattr(loaded.model, "num_layers", 0) or 0)
    if args.baseline:
        layers = None  # the pixel baseline is a single feature set
    elif layers is not None and n_layers and max(layers) >= n_layers:
        fail(f"--layers {args.layers}: the model has {n_layers} layers (0..{n_layers - 1})")
    dcfg = data_config(cfg, clip_len=args.clip_len, batch_size=args.batch_size, **_synthetic_sizes(args))
    motion = cfg.motion if (uses_motion(cfg) and not args.baseline) else None
    split_kw = _split_kwargs(args)

    # Step 2. The labelled data: train and test splits, the same for every seed and every variant.
    train_ds = build_or_exit(args.data, cfg=dcfg, split="train", seed=args.data_seed, motion=motion, labelled=True,
                             **split_kw)  # fmt: skip
    test_ds = build_or_exit(args.data, cfg=dcfg, split="test", seed=args.data_seed, motion=motion, labelled=True,
                            **split_kw)  # fmt: skip
    if len(train_ds) == 0 or len(test_ds) == 0:
        fail(f"--data {args.data}: empty split (train {len(train_ds)} clips, test {len(test_ds)} clips)")

    # Step 3. Features (cached): what varies with the seed depends on the variant.
    cache_dir = None if args.no_cache else Path(args.cache_dir or run_dir_of(loaded.path) / "feature_cache")
    data_parts = {
        "data": args.data,
        "data_options": dataclasses.asdict(dcfg) | {"batch_size": None, "num_workers": None},
        "data_seed": args.data_seed,
        "motion": dataclasses.asdict(motion) if motion is not None else None,
        "splits": [str(Path(args.splits).resolve()), args.fold] if args.splits else None,
        "layers": "all",  # every layer is cached; --layers selects after loading
    }
    if args.baseline == "pixels":
        source = {"source": f"pixels:pool{PIXEL_POOL}:bins{PIXEL_BINS}"}
    elif args.random_init:
        source = {"source": "random-init", "config": dataclasses.asdict(cfg.model), "ckpt": checkpoint_id(loaded.path)}
    else:
        source = {"source": checkpoint_id(loaded.path)}
    hits: list[bool] = []

    def split_features(ds, split: str, model, seed_part: dict):
        def compute():
            if model is None:
                return extract_pixel_features(ds, batch_size=args.batch_size, num_workers=args.num_workers,
                                              pool=PIXEL_POOL, bins=PIXEL_BINS, desc=f"pixels {split}")  # fmt: skip
            return extract_model_features(model, ds, batch_size=args.batch_size, device=device,
                                          num_workers=args.num_workers, desc=f"features {split}")  # fmt: skip

        feats, labels, hit = cached_features(cache_dir, {**source, **seed_part, **data_parts, "split": split}, compute)
        hits.append(hit)
        return feats, labels

    fixed: dict[str, tuple] = {}
    sizes: dict[str, tuple] = {}

    def features(seed: int):
        if args.random_init:
            model = random_init_model(cfg, seed, device, like=loaded.model)
            tr = split_features(train_ds, "train", model, {"init_seed": seed})
            te = split_features(test_ds, "test", model, {"init_seed": seed})
        else:
            if not fixed:  # a trained model or pixels: the features do not depend on the seed
                model = None if args.baseline else loaded.model
                fixed["train"] = split_features(train_ds, "train", model, {})
                fixed["test"] = split_features(test_ds, "test", model, {})
            tr, te = fixed["train"], fixed["test"]
        sizes.setdefault("y", (tr[1], te[1]))
        try:
            return select_layers(tr[0], layers), tr[1], select_layers(te[0], layers), te[1]
        except ValueError as e:
            fail(str(e))

    # Step 4. Probe over seeds.
    seeds = list(range(args.seeds))
    try:
        summary = run_probe(features, seeds, val_frac=args.val_frac)
    except ProbeError as e:
        fail(f"--data {args.data}: {e}")
    y_train, y_test = sizes["y"]

    result = {
        "dataset": args.data,
        **summary.to_dict(),
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "n_classes": int(_num_classes(train_ds, y_train, y_test)),
        "classes": list(getattr(train_ds, "classes", []) or []),
        "variant": "pixels" if args.baseline else ("random_init" if args.random_init else "trained"),
        "random_init": bool(args.random_init),
        "baseline": args.baseline,
        "checkpoint": str(loaded.path),
        "run": str(run_dir_of(loaded.path)),
        "steps": 0 if (args.random_init or args.baseline) else loaded.step,
        "checkpoint_step": loaded.step,
        "features": _describe_features(args),
        "clip_len": dcfg.clip_len,
        "size": list(dcfg.size),
        "motion": motion is not None,
        "val_frac": args.val_frac,
        "c_grid": list(DEFAULT_CS),
        "chance": 1.0 / _num_classes(train_ds, y_train, y_test),
        "majority": float(np.max(np.bincount(y_test)) / len(y_test)),  # always guessing the commonest test class
        "cache_hits": sum(hits),
        "wall_s": round(time.time() - t0, 2),
    }
    write_json(args.out, result)
    print(
        f"{args.data} [{result['variant']}] top1 {result['top1']:.3f} ± {result['top1_std']:.3f} (concat); "
        f"best-on-val layer {result['best_layer_top1']:.3f}; per layer "
        + ", ".join(f"{k}: {v:.3f}" for k, v in result["per_layer"].items())
        + f"; chance {result['chance']:.3f}, majority {result['majority']:.3f} -> {args.out}"
    )
    return 0


def _synthetic_sizes(args) -> dict:
    """--n-train/--n-test as the synthetic set sizes (folders ignore them)."""
    known = {f.name for f in dataclasses.fields(DataConfig)}
    out = {}
    if "n_synthetic" in known:
        out["n_synthetic"] = args.n_train
    if "n_synthetic_test" in known:
        out["n_synthetic_test"] = args.n_test
    return out


def _split_kwargs(args) -> dict:
    """UCF101-style split lists; passed as build_dataset keywords (the folder reader owns their parsing)."""
    if not args.splits:
        return {}
    return {"splits_dir": args.splits, "fold": args.fold}


def _num_classes(ds, y_train: np.ndarray, y_test: np.ndarray) -> int:
    n = getattr(ds, "num_classes", 0) or 0
    return int(n) if n else int(max(y_train.max(), y_test.max()) + 1)


def _describe_features(args) -> str:
    if args.baseline == "pixels":
        return (
            f"raw pixels: each frame average-pooled to {PIXEL_POOL}x{PIXEL_POOL}, frames averaged in "
            f"{PIXEL_BINS} contiguous temporal bins, flattened"
        )
    return "model.extract_features per layer (pooled over space and time)"


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
