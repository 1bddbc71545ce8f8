"""Next-step prediction against trivial predictors: ``python -m eval.next_step``.

    python -m eval.next_step --checkpoint RUN/checkpoints/last.pt --data synthetic:shapes --out next.json

Per layer l, over every frame t >= 1 of every clip (t = 0 has no prediction: nothing was seen before it), with
a = the unit's target (what its target encoder says at t) and â = its prediction made before seeing t:

- ``model``      : â(t)
- ``copy_last``  : a(t-1), the error if the representation did not change
- ``mean``       : the per-channel mean of a over all scored frames (an oracle constant; 0 on sparse data)

``per_layer_change[l]`` says how fast the representation itself moves: per channel, the RMS of a(t) - a(t-1) over
the channel's std, then the median over channels (0: a channel that never changes; about 1.41: no correlation
from one frame to the next). ``per_layer[l]["change_min"]``/``["change_max"]`` give the spread over channels.

``per_layer_arrow[l]`` says which way the predictions point: per scored frame, ``prednet2.losses.arrow_loss``
(a two-way cosine InfoNCE per position whose positive is a(t) and whose negative is a(t-1)), averaged. log 2 =
0.693: as near to the future as to the past (or nothing moved); below it the prediction is nearer to the future,
above it the prediction lags (``model.arrow_weight`` trains against that). ``arrow_copy_last`` is the same score
for the copy-last guess, which *is* the negative: the most a prediction lags without overshooting backward.

``per_layer_ratio[l]`` = MSE(model) / MSE(copy_last) and ``per_layer_ratio_mean[l]`` = MSE(model) / MSE(mean)
(= 1 - R²). Below 1 the model beats that predictor. MAE ratios are reported too (``per_layer_ratio_mae``; MAE is
twice the error-unit mean the model is trained on). In pixel mode (``model.target=pixel``) layer 0 predicts the
frame, and MSE, PSNR and SSIM of the predicted frame are reported against copy-last-frame and a black frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.utils.data import DataLoader, Subset

from prednet2.cli import OneLineParser, int_at_least, out_file, prog_name
from prednet2.interrupt import run_cli
from prednet2.losses import arrow_loss

from .common import (
    add_model_run_args,
    apply_runtime,
    build_or_exit,
    fail,
    model_for_eval,
    progress,
    resolve_device,
    skipped_files,
    skipped_text,
    truncated_files,
    write_json,
)
from .features import to_unit_float


# ---- accumulators ------------------------------------------------------------------------------------------
class LayerErrors:
    """Running sums for one layer over scored frames: model / copy-last errors and per-channel moments of a."""

    def __init__(self):
        self.n = 0  # scored elements
        self.sse: dict[str, torch.Tensor | float] = {"model": 0.0, "copy_last": 0.0}  # per channel (C,) float64
        self.sae = {"model": 0.0, "copy_last": 0.0}
        self.ch_n = 0  # scored elements per channel
        self.ch_sum: torch.Tensor | None = None  # (C,) float64
        self.ch_sq: torch.Tensor | None = None
        self.arrow_sum, self.arrow_n = 0.0, 0  # arrow_loss summed over scored frames, and their count
        self.arrow_copy_sum = 0.0  # the same for the copy-last guess

    @torch.no_grad()
    def add(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: (B, T, C, H, W); frames t >= 1 are scored."""
        a, a_hat, a_prev = target[:, 1:].double(), pred[:, 1:].double(), target[:, :-1].double()
        self.n += a.numel()
        for name, p in (("model", a_hat), ("copy_last", a_prev)):
            d = a - p
            self.sse[name] = self.sse[name] + (d * d).sum(dim=(0, 1, 3, 4))
            self.sae[name] += float(d.abs().sum())
        s, q = a.sum(dim=(0, 1, 3, 4)), (a * a).sum(dim=(0, 1, 3, 4))  # (C,)
        self.ch_sum = s if self.ch_sum is None else self.ch_sum + s
        self.ch_sq = q if self.ch_sq is None else self.ch_sq + q
        self.ch_n += a.numel() // a.shape[2]
        flat = [x.flatten(0, 1) for x in (a_hat, a, a_prev)]  # (B*(T-1), C, H, W): one scored frame per row
        self.arrow_sum += float(arrow_loss(*flat)) * flat[0].shape[0]
        self.arrow_copy_sum += float(arrow_loss(flat[2], flat[1], flat[2])) * flat[0].shape[0]
        self.arrow_n += flat[0].shape[0]

    def summary(self) -> dict[str, float]:
        # MSE of the per-channel mean predictor = the mean per-channel variance (one pass, no second sweep).
        mu = self.ch_sum / self.ch_n
        var = (self.ch_sq / self.ch_n - mu * mu).clamp_min(0.0)
        out = {
            "model_mse": float(self.sse["model"].sum()) / self.n,
            "copy_last_mse": float(self.sse["copy_last"].sum()) / self.n,
            "mean_mse": float(var.mean()),
            "model_mae": self.sae["model"] / self.n,
            "copy_last_mae": self.sae["copy_last"] / self.n,
        }
        out["ratio"] = _ratio(out["model_mse"], out["copy_last_mse"])
        out["ratio_mean"] = _ratio(out["model_mse"], out["mean_mse"])
        out["ratio_mae"] = _ratio(out["model_mae"], out["copy_last_mae"])
        live = var > 1e-12  # a constant channel has no change ratio; copy-last's error is the change a(t) - a(t-1)
        change = (self.sse["copy_last"][live] / self.ch_n / var[live]).sqrt()
        if not change.numel():
            change = var.new_full((1,), float("nan"))
        out.update(change=float(change.median()), change_min=float(change.min()), change_max=float(change.max()))
        out["arrow"] = self.arrow_sum / self.arrow_n if self.arrow_n else float("nan")
        out["arrow_copy_last"] = self.arrow_copy_sum / self.arrow_n if self.arrow_n else float("nan")
        return out


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (1.0 if a == 0 else math.inf)


def psnr(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1]: x, y (N, C, H, W) -> (N,). MSE is floored at ``eps``."""
    mse = ((x - y) ** 2).flatten(1).mean(dim=1).clamp_min(eps)
    return 10.0 * torch.log10(1.0 / mse)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Per-image mean SSIM (Gaussian window, sigma 1.5, Wang et al. 2004 constants): (N, C, H, W) -> (N,)."""
    import kornia

    w = min(window, x.shape[-1], x.shape[-2])
    w -= 1 - w % 2  # odd
    return kornia.metrics.ssim(x.float(), y.float(), window_size=w).flatten(1).mean(dim=1)


def to_frames(pred: torch.Tensor, stem: int) -> torch.Tensor:
    """Layer 0's pixel prediction back to frames: (B, T, C*s*s, H/s, W/s) -> (B, T, C, H, W) when the model
    has a space-to-depth stem s > 1 (its layer 0 works on ``pixel_unshuffle``-d frames); unchanged for s = 1."""
    if stem <= 1:
        return pred
    frames = F.pixel_shuffle(rearrange(pred, "b t c h w -> (b t) c h w"), stem)  # (B*T, C, H, W)
    return rearrange(frames, "(b t) c h w -> b t c h w", b=pred.shape[0])


class PixelMetrics:
    """MSE, PSNR, SSIM of the predicted frame vs the true one, for the model, copy-last-frame and black."""

    NAMES = ("model", "copy_last", "black")

    def __init__(self):
        self.sums = {n: {"mse": 0.0, "psnr": 0.0, "ssim": 0.0} for n in self.NAMES}
        self.count = 0

    @torch.no_grad()
    def add(self, pred: torch.Tensor, frames: torch.Tensor) -> None:
        """pred, frames: (B, T, C, H, W) in [0, 1]; frames t >= 1 are scored."""
        truth = frames[:, 1:].flatten(0, 1)  # (B*(T-1), C, H, W)
        cands = {
            "model": pred[:, 1:].clamp(0, 1).flatten(0, 1),
            "copy_last": frames[:, :-1].flatten(0, 1),
            "black": torch.zeros_like(truth),
        }
        for n, p in cands.items():
            self.sums[n]["mse"] += float(((p - truth) ** 2).flatten(1).mean(dim=1).sum())
            self.sums[n]["psnr"] += float(psnr(p, truth).sum())
            self.sums[n]["ssim"] += float(ssim(p, truth).sum())
        self.count += truth.shape[0]

    def summary(self) -> dict:
        return {n: {k: v / self.count for k, v in m.items()} for n, m in self.sums.items()}


# ---- CLI ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog_name("python -m eval.next_step"),
        description="Per-layer next-step prediction error of a checkpoint against copy-last and the per-channel "
        "mean, as ratios (< 1 beats the trivial predictor).",
    )
    p.add_argument("--checkpoint", required=True, help="RUN/checkpoints/last.pt")
    p.add_argument("--data", required=True, help="a folder of videos or synthetic:NAME")
    p.add_argument("--out", required=True, type=out_file, help="next.json to write")
    p.add_argument("--n-clips", type=int, default=256, help="clips to score (default 256)")
    p.add_argument("--split", default="test", help="synthetic sets: split to score (default test, held out)")
    p.add_argument("--data-seed", type=int_at_least(0), default=0, help="synthetic sets: dataset seed")
    p.add_argument("--random-init", action="store_true", help="score the same architecture with fresh weights")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="--random-init weight seed")
    p.add_argument("--num-workers", type=int_at_least(0), default=0)
    add_model_run_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n_clips < 1:
        fail(f"--n-clips {args.n_clips}: need at least 1")
    apply_runtime(args)
    device = resolve_device(args.device)
    t0 = time.time()

    # Step 1. Model and data (the checkpoint's input format; held-out clips).
    loaded, model, dcfg, motion = model_for_eval(args, device)
    cfg = loaded.cfg
    if dcfg.clip_len < 2:
        fail(f"--clip-len {dcfg.clip_len}: next-step prediction needs at least 2 frames")
    ds = build_or_exit(args.data, cfg=dcfg, split=args.split, seed=args.data_seed, motion=motion, labelled=False)
    if len(ds) == 0:
        fail(f"--data {args.data}: no clips")
    skipped, truncated = skipped_files(ds), truncated_files(ds)
    ds = Subset(ds, range(min(args.n_clips, len(ds))))
    pixel_mode = cfg.model.target == "pixel"
    stem = int(getattr(cfg.model, "stem", 1) or 1)

    # Step 2. One pass: accumulate per-layer errors (and pixel metrics in pixel mode).
    layers: list[LayerErrors] = []
    pixels = PixelMetrics() if pixel_mode else None
    model.eval()
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers)
    with torch.no_grad():
        for batch in progress(loader, "next-step"):
            clip = to_unit_float(batch["video"]).to(device)  # (B, T, C, H, W)
            mask = batch["mask"].to(device).float() if (motion is not None and "mask" in batch) else None
            out = model(clip, mask=mask)
            if not layers:
                layers = [LayerErrors() for _ in out.preds]
            for l, acc in enumerate(layers):
                acc.add(out.preds[l], out.targets[l])
            if pixels is not None:
                pixels.add(to_frames(out.preds[0], stem), clip)

    # Step 3. Ratios and the JSON.
    per_layer = {str(l): acc.summary() for l, acc in enumerate(layers)}
    result = {
        "dataset": args.data,
        "per_layer_ratio": {l: s["ratio"] for l, s in per_layer.items()},
        "per_layer_ratio_mean": {l: s["ratio_mean"] for l, s in per_layer.items()},
        "per_layer_ratio_mae": {l: s["ratio_mae"] for l, s in per_layer.items()},
        "per_layer_change": {l: s["change"] for l, s in per_layer.items()},
        "per_layer_arrow": {l: s["arrow"] for l, s in per_layer.items()},
        "per_layer": per_layer,
        "metric": "mse; ratio = model / copy_last, ratio_mean = model / per-channel mean, frames t >= 1",
        "n_clips": len(ds),
        "clip_len": dcfg.clip_len,
        "split": args.split,
        "pixel_mode": pixel_mode,
        "checkpoint": str(loaded.path),
        "steps": 0 if args.random_init else loaded.step,
        "random_init": bool(args.random_init),
        "data_options": dataclasses.asdict(dcfg),
        "n_skipped": len(skipped),
        "skipped": skipped,
        **truncated,  # videos read only up to damage partway
        "wall_s": round(time.time() - t0, 2),
    }
    if pixels is not None:
        result["pixel"] = pixels.summary()
    write_json(args.out, result)
    print(
        "next-step ratio (MSE model / copy-last): "
        + ", ".join(f"layer {l}: {r:.3f}" for l, r in result["per_layer_ratio"].items())
        + "; MAE (TensorBoard's pred_vs_copy_last): "
        + ", ".join(f"{r:.3f}" for r in result["per_layer_ratio_mae"].values())
        + "; vs channel mean: "
        + ", ".join(f"{r:.3f}" for r in result["per_layer_ratio_mean"].values())
        + "; change/std: "
        + ", ".join(f"{r:.2f}" for r in result["per_layer_change"].values())
        + "; arrow (log 2 = 0.693; lower points forward): "
        + ", ".join(f"{r:.3f}" for r in result["per_layer_arrow"].values())
        + f"{skipped_text(skipped)} -> {args.out}"
    )
    if pixels is not None:
        px = result["pixel"]
        print(
            "pixels: "
            + "; ".join(f"{n} MSE {m['mse']:.4f} PSNR {m['psnr']:.2f} SSIM {m['ssim']:.3f}" for n, m in px.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
