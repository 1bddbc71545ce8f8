"""Surprise: per-frame anomaly scores from the error units, AUROC on the built-in anomaly set.

    python -m eval.surprise --checkpoint RUN/checkpoints/last.pt --out surprise.json [--n-clips 128] [--tb DIR]

``synthetic:anomaly`` clips carry ``frame_label`` (T,) bool: True on frames where something impossible happened
(an object teleports, reverses, or changes shape). The model's ``frame_errors[l]`` (B, T) is the per-frame mean of
unit l's error units. Only the frames the set marks ``scored`` count (t >= 3 there: before that no model has
context; ``--skip-frames K`` scores t >= K instead).
Scores (all reported in ``per_score_auroc``; ``--score`` picks the headline ``auroc``):

- ``layer<l>``: unit l's frame error as is (``per_layer_auroc``).
- ``sum_z``: Σ_l (e_l - mean_l) / std_l, each layer standardised over all scored frames of the set.
- ``clip_rel``: Σ_l log(e_l(t) / median_t e_l), each layer relative to its own clip's typical error, so clips that
  are simply harder (clutter, a pan) do not look surprising throughout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

from prednet2.cli import OneLineParser, int_at_least, out_file, out_folder, prog_name
from prednet2.interrupt import run_cli

from .common import (
    add_model_run_args,
    apply_runtime,
    build_or_exit,
    fail,
    model_for_eval,
    progress,
    resolve_device,
    write_json,
)
from .features import to_unit_float

ANOMALY_SPEC = "synthetic:anomaly"
SCORES = ("sum_z", "clip_rel")
DEFAULT_SCORE = "clip_rel"


# ---- scores (pure numpy: tested on constructed cases) ------------------------------------------------------
def frame_scores(errors: np.ndarray, scored: np.ndarray, eps: float = 1e-12) -> dict[str, np.ndarray]:
    """Per-frame surprise scores from per-layer frame errors.

    Args:
        errors: (N, L, T) per-clip, per-layer, per-frame error-unit means.
        scored: (N, T) bool, the frames to score (others come back NaN and take no part in any statistic).
    Returns:
        {"layer0": (N, T), ..., "sum_z": (N, T), "clip_rel": (N, T)}; NaN at unscored frames.
    """
    e = np.asarray(errors, dtype=np.float64)
    scored = np.asarray(scored, dtype=bool)
    if e.ndim != 3:
        raise ValueError(f"errors must be (N, L, T), got shape {e.shape}")
    if scored.shape != (e.shape[0], e.shape[2]):
        raise ValueError(f"scored must be (N, T) = {(e.shape[0], e.shape[2])}, got {scored.shape}")
    if not scored.any(axis=1).all():
        raise ValueError("every clip needs at least one scored frame")
    L = e.shape[1]
    e = np.where(scored[:, None, :], e, np.nan)
    out = {f"layer{l}": e[:, l] for l in range(L)}
    mean = np.nanmean(e, axis=(0, 2), keepdims=True)  # (1, L, 1)
    std = np.nanstd(e, axis=(0, 2), keepdims=True)
    out["sum_z"] = ((e - mean) / np.where(std > eps, std, 1.0)).sum(axis=1)
    med = np.nanmedian(e, axis=2, keepdims=True)  # (N, L, 1): each clip's typical error per layer
    out["clip_rel"] = np.log((e + eps) / (med + eps)).sum(axis=1)
    return out


def scored_frames(n: int, T: int, skip: int) -> np.ndarray:
    """(n, T) bool: frames t >= skip."""
    if not 0 <= skip < T:
        raise ValueError(f"skip={skip} leaves no frame to score in clips of {T} frames")
    return np.broadcast_to(np.arange(T) >= skip, (n, T)).copy()


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of anomalous (label True) vs normal frames over the scored (non-NaN) frames; NaN if one class is absent."""
    s, y = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels, dtype=bool).ravel()
    keep = ~np.isnan(s)
    s, y = s[keep], y[keep]
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def per_kind_auroc(score: np.ndarray, labels: np.ndarray, kind: np.ndarray) -> dict[str, float]:
    """AUROC of each anomaly kind's anomalous frames against all normal frames (``kind`` (N,) = KINDS index)."""
    try:
        from prednet2.datasets.anomaly import KINDS
    except ImportError:
        return {}
    out = {}
    for k, name in enumerate(KINDS):
        if name == "normal" or not (kind == k).any():
            continue
        sel = ~labels | (kind[:, None] == k)  # every normal frame, and the anomalous frames of kind k
        out[name] = auroc(np.where(sel, score, np.nan), labels)
    return out


# ---- outputs -----------------------------------------------------------------------------------------------
def plot_curves(path: str | Path, score: np.ndarray, labels: np.ndarray, name: str, n_show: int = 6) -> Path:
    """PNG: per-frame surprise of a few anomalous clips (anomalous frames marked) and the score histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    clips = [i for i in range(len(score)) if labels[i].any()][:n_show] or list(range(min(n_show, len(score))))
    t = np.arange(score.shape[1])
    for k, i in enumerate(clips):
        (line,) = ax0.plot(t, score[i], marker=".", label=f"clip {i}")
        bad = labels[i] & ~np.isnan(score[i])
        ax0.scatter(t[bad], score[i][bad], s=90, facecolors="none", edgecolors="red", zorder=3,
                    label="anomalous frame" if k == 0 else None)  # fmt: skip
    ax0.set_xlabel("frame t")
    ax0.set_ylabel(f"surprise ({name})")
    ax0.set_title("per-frame surprise, anomalous clips")
    ax0.legend(fontsize=7)
    keep = ~np.isnan(score)
    ax1.hist(score[keep & ~labels], bins=40, alpha=0.6, density=True, label="normal frames")
    ax1.hist(score[keep & labels], bins=40, alpha=0.6, density=True, label="anomalous frames")
    ax1.set_xlabel(f"surprise ({name})")
    ax1.set_title(f"AUROC {auroc(score, labels):.3f}")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")  # at the path given, with or without .png
    plt.close(fig)
    return path


def write_tensorboard(tb_dir: str | Path, score: np.ndarray, labels: np.ndarray, result: dict, n_show: int = 8):
    """Scalars: ``surprise/clipK`` per frame for a few anomalous clips, ``surprise_label/clipK``, and the AUROCs."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tb_dir))
    try:
        clips = [i for i in range(len(score)) if labels[i].any()][:n_show]
        for i in clips:
            for t in range(score.shape[1]):
                if not np.isnan(score[i, t]):
                    w.add_scalar(f"surprise/clip{i}", float(score[i, t]), t)
                    w.add_scalar(f"surprise_label/clip{i}", float(labels[i, t]), t)
        w.add_scalar("surprise/auroc", result["auroc"], 0)
        for k, v in result["per_layer_auroc"].items():
            w.add_scalar(f"surprise/auroc_layer{k}", v, 0)
    finally:
        w.close()


# ---- CLI ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog_name("python -m eval.surprise"),
        description=f"Per-frame surprise from the error units; AUROC of anomalous vs normal frames on {ANOMALY_SPEC}.",
    )
    p.add_argument("--checkpoint", required=True, help="RUN/checkpoints/last.pt")
    p.add_argument("--out", required=True, type=out_file, help="surprise.json to write")
    p.add_argument("--n-clips", type=int, default=128, help="anomaly-set clips (default 128)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="anomaly-set seed (and --random-init weight seed)")
    p.add_argument("--split", default="test", help="anomaly-set split (default test)")
    p.add_argument("--score", choices=SCORES, default=DEFAULT_SCORE, help=f"headline score (default {DEFAULT_SCORE})")
    p.add_argument("--skip-frames", type=int, help="score frames t >= K (default: the set's own 'scored' frames)")
    p.add_argument("--png", type=out_file, help="surprise curve PNG (default: next to --out, surprise.png)")
    p.add_argument("--tb", type=out_folder, help="also write TensorBoard scalars to this folder")
    p.add_argument("--random-init", action="store_true", help="the same architecture with fresh weights")
    add_model_run_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n_clips < 2:
        fail(f"--n-clips {args.n_clips}: need at least 2")
    apply_runtime(args)
    device = resolve_device(args.device)
    t0 = time.time()

    # Step 1. Model and the anomaly set in the checkpoint's input format.
    loaded, model, dcfg, motion = model_for_eval(args, device)
    if args.skip_frames is not None and not 0 <= args.skip_frames < dcfg.clip_len:
        fail(f"--skip-frames {args.skip_frames}: must be in [0, clip_len={dcfg.clip_len})")
    clip_len = f"--clip-len {dcfg.clip_len}" + (" (the checkpoint's data.clip_len)" if args.clip_len is None else "")
    what = f"the anomaly set {ANOMALY_SPEC} with {clip_len} and --split {args.split}"  # there is no --data to name
    ds = build_or_exit(ANOMALY_SPEC, cfg=dcfg, split=args.split, seed=args.seed, motion=motion, labelled=False,
                       what=what)  # fmt: skip

    # Step 2. Per-frame errors of every layer.
    errs, labels, scored, kinds = [], [], [], []
    model.eval()
    with torch.no_grad():
        for batch in progress(DataLoader(ds, batch_size=args.batch_size, shuffle=False), "surprise"):
            if "frame_label" not in batch:
                fail(f"{ANOMALY_SPEC}: items carry no 'frame_label'; the anomaly set is not usable")
            clip = to_unit_float(batch["video"]).to(device)
            mask = batch["mask"].to(device).float() if (motion is not None and "mask" in batch) else None
            out = model(clip, mask=mask)
            errs.append(torch.stack(out.frame_errors, dim=1).float().cpu().numpy())  # (B, L, T)
            labels.append(batch["frame_label"].bool().cpu().numpy())  # (B, T)
            if "scored" in batch:
                scored.append(batch["scored"].bool().cpu().numpy())
            kinds.append(torch.as_tensor(batch.get("label", -1)).reshape(-1).cpu().numpy())
    errors, frame_label, kind = np.concatenate(errs), np.concatenate(labels), np.concatenate(kinds)
    n, _, T = errors.shape
    if args.skip_frames is not None or not scored:
        keep = scored_frames(n, T, 1 if args.skip_frames is None else args.skip_frames)
    else:
        keep = np.concatenate(scored)

    # Step 3. Scores, AUROCs, outputs.
    scores = frame_scores(errors, keep)
    per_score = {k: auroc(v, frame_label) for k, v in scores.items()}
    per_kind = per_kind_auroc(scores[args.score], frame_label, kind)
    png = Path(args.png) if args.png else Path(args.out).with_name(Path(args.out).stem + ".png")
    result = {
        "auroc": per_score[args.score],
        "n_clips": int(len(errors)),
        "score": args.score,
        "per_layer_auroc": {k[len("layer") :]: v for k, v in per_score.items() if k.startswith("layer")},
        "per_score_auroc": per_score,
        "per_kind_auroc": per_kind,
        "n_frames_scored": int(keep.sum()),
        "n_anomalous_frames": int((frame_label & keep).sum()),
        "n_anomalous_clips": int(frame_label.any(axis=1).sum()),
        "scored_frames": "the set's 'scored' frames"
        if args.skip_frames is None and scored
        else f"t >= {1 if args.skip_frames is None else args.skip_frames}",  # fmt: skip
        "clip_len": dcfg.clip_len,
        "seed": args.seed,
        "checkpoint": str(loaded.path),
        "steps": 0 if args.random_init else loaded.step,
        "random_init": bool(args.random_init),
        "png": str(png),
        "wall_s": 0.0,
    }
    plot_curves(png, scores[args.score], frame_label, args.score)
    if args.tb:
        write_tensorboard(args.tb, scores[args.score], frame_label, result)
    result["wall_s"] = round(time.time() - t0, 2)
    write_json(args.out, result)
    print(
        f"surprise AUROC ({args.score}) {result['auroc']:.3f} on {result['n_clips']} clips; per layer "
        + ", ".join(f"{k}: {v:.3f}" for k, v in result["per_layer_auroc"].items())
        + f"; sum_z {per_score['sum_z']:.3f} -> {args.out}, {png}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
