"""How much of the coming motion a checkpoint's states hold: ``python -m eval.flow_probe``.

    python -m eval.flow_probe --checkpoint RUN/checkpoints/last.pt --data synthetic:shapes --out flow.json
    python -m eval.flow_probe --checkpoint RUN/checkpoints/last.pt --data synthetic:shapes --random-init --out ri.json

A dense linear probe for dynamics. Per unit l, a ridge regression (closed form, one 1x1 map with a bias) from the
unit's state r(t), made *before* frame t, to the optical flow that frame t brings (the motion vectors the training
flow target uses: classical flow, camera motion removed, px per frame), averaged onto the unit's grid. It is fitted
on ``--n-train`` clips of a synthetic set's ``train`` split and scored on ``--n-test`` clips of ``test``; a folder of
videos has no split, so its first ``--n-train`` clips fit and the next ``--n-test`` score (other clips, maybe of the
same videos; a folder with fewer clips keeps ``--n-test`` of them to score, or half when that is more than half).
Every frame t >= 2 is scored (the state has then seen two
frames, so a motion is there to be read). The pooled probes average over space, so they
cannot see whether a state knows which way each part of the scene is going; this can.

Reported per unit, as mean squared error in px² per frame and as ratios (below 1 beats the predictor):

- ``r2``: 1 - MSE(probe) / MSE(the training mean flow): the share of the coming motion's variance the state holds
  linearly;
- ``ratio_copy_last``: MSE(probe) / MSE(copy-last flow), where copy-last predicts that frame t moves as frame t-1
  did: the state saw t-1, so a state that holds the last motion gets near 1; below 1 it anticipates.

``--target last`` asks instead for the flow frame t-1 brought, which the state has seen: whether it perceives the
motion at all, before whether it anticipates it (its copy-last ratio then compares with frame t-2's flow).

Always read it beside ``--random-init`` (the same architecture, fresh weights): untrained recurrent states hold some
motion too. A model trained with the flow target (``model.flow_weight``) was asked for exactly this, so its figure
is not a held-out measure.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from prednet2.cli import OneLineParser, int_at_least, out_file, prog_name
from prednet2.interrupt import run_cli

from .common import (
    add_model_run_args,
    apply_runtime,
    build_or_exit,
    fail,
    load_or_exit,
    progress,
    random_init_model,
    resolve_device,
    skipped_files,
    skipped_text,
    truncated_files,
    uses_motion,
    write_json,
)
from .features import to_unit_float

FIRST = 2  # the first frame scored: the state has seen frames 0 and 1


@torch.no_grad()
def unit_pairs(model, clip: torch.Tensor, mask: torch.Tensor | None, flow: torch.Tensor, target: str = "next"):
    """Yield (l, x, y, y_last) for every unit l and frame t >= FIRST: x (N, C_h) the state r(t) made before frame t,
    one row per grid cell; y (N, 2) the flow frame t brings averaged onto that grid (``target="last"``: the flow
    frame t-1 brought, which the state has seen); y_last (N, 2) the flow of the frame before y's."""
    state = None
    for t in range(clip.shape[1]):
        out, state = model.step(clip[:, t], state, None if mask is None else mask[:, t], compute_losses=False)
        if t < FIRST:
            continue
        k = t if target == "next" else t - 1
        for l, r in enumerate(out.states):
            factor = flow.shape[-1] // r.shape[-1]
            y, y_last = (F.avg_pool2d(f, factor) if factor > 1 else f for f in (flow[:, k], flow[:, k - 1]))
            yield l, _rows(r), _rows(y), _rows(y_last)


def _rows(z: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, C) in float64: one row per grid cell, as the regression reads them."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()


def _with_bias(x: torch.Tensor) -> torch.Tensor:
    """(N, C) -> (N, C + 1): a constant column last, the regression's bias."""
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)


def batches(model, loader, device, masks: bool, desc: str, target: str = "next"):
    """(l, x, y, y_last) over a loader's clips, for ``unit_pairs``."""
    for batch in progress(loader, desc):
        clip = to_unit_float(batch["video"]).to(device)
        mask = batch["mask"].to(device).float() if masks else None
        yield from unit_pairs(model, clip, mask, batch["flow"].to(device).float(), target)


def fit(
    model, loader, device, masks: bool, ridge: float, target: str = "next"
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per unit (W (C_h + 1, 2), the training mean flow (2,)): ridge scaled to the mean feature power, the bias
    unpenalised."""
    acc: dict[int, list] = {}
    for l, x, y, _ in batches(model, loader, device, masks, "flow probe: fit", target):
        xb = _with_bias(x)
        a = acc.setdefault(l, [0.0, 0.0, 0.0, 0])
        a[0], a[1], a[2], a[3] = a[0] + xb.T @ xb, a[1] + xb.T @ y, a[2] + y.sum(0), a[3] + len(y)
    out = {}
    for l, (xtx, xty, ysum, n) in acc.items():
        d = xtx.shape[0]
        scale = torch.diagonal(xtx)[:-1].mean() / n  # the ridge in units of the mean feature power
        reg = torch.eye(d, dtype=xtx.dtype) * ridge * scale * n
        reg[-1, -1] = 0.0
        out[l] = (torch.linalg.solve(xtx + reg, xty), ysum / n)
    return out


def score(model, loader, device, masks: bool, fits, target: str = "next") -> dict[str, dict]:
    """Per unit: MSE of the probe, of the training mean and of copy-last flow, and the ratios."""
    sums: dict[int, list[float]] = {}
    for l, x, y, y_last in batches(model, loader, device, masks, "flow probe: score", target):
        w, mean = fits[l]
        pred = _with_bias(x) @ w
        s = sums.setdefault(l, [0.0, 0.0, 0.0, 0])
        s[0] += float(((pred - y) ** 2).sum())
        s[1] += float(((mean - y) ** 2).sum())
        s[2] += float(((y_last - y) ** 2).sum())
        s[3] += y.numel()
    res = {}
    for l, (probe, mean, last, n) in sums.items():
        res[str(l)] = {
            "mse": probe / n,
            "mse_mean": mean / n,
            "mse_copy_last": last / n,
            "r2": 1 - probe / max(mean, 1e-12),
            "ratio_copy_last": probe / max(last, 1e-12),
        }
    return res


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog_name("python -m eval.flow_probe"),
        description="How much of the coming optical flow each unit's state holds: a dense linear (ridge) probe "
        "from the state made before frame t to the motion frame t brings, R² and the ratio to copy-last flow.",
    )
    p.add_argument("--checkpoint", required=True, help="RUN/checkpoints/last.pt")
    p.add_argument("--data", required=True, help="a folder of videos or synthetic:NAME")
    p.add_argument("--out", required=True, type=out_file, help="flow.json to write")
    p.add_argument("--n-train", type=int_at_least(1), default=256, help="clips the probe is fitted on (default 256)")
    p.add_argument("--n-test", type=int_at_least(1), default=128, help="clips it is scored on (default 128)")
    p.add_argument("--ridge", type=float, default=1e-3, help="ridge strength, relative to the mean feature power")
    p.add_argument("--target", choices=("next", "last"), default="next",
                   help="next: the flow frame t brings, not yet seen (anticipation, the default); last: the flow "
                   "frame t-1 brought, seen (perception)")  # fmt: skip
    p.add_argument("--data-seed", type=int_at_least(0), default=0, help="synthetic sets: dataset seed")
    p.add_argument("--random-init", action="store_true", help="probe the same architecture with fresh weights")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="--random-init weight seed")
    add_model_run_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from prednet2.stack import PredictiveStack

    from .common import data_config

    args = build_parser().parse_args(argv)
    if not args.ridge >= 0:
        fail(f"--ridge {args.ridge}: expected a number >= 0")
    apply_runtime(args)
    device = resolve_device(args.device)
    t0 = time.time()

    # Step 1. The model (states to read) and the data with its flow (the target), both splits.
    loaded = load_or_exit(args.checkpoint, device)
    cfg = loaded.cfg
    if not isinstance(loaded.model, PredictiveStack):
        fail(f"--checkpoint {loaded.path}: a {type(loaded.model).__name__} (model.preset={cfg.model.preset}) has no "
             "unit states to probe; eval.flow_probe reads the predictive stack")  # fmt: skip
    model = random_init_model(cfg, args.seed, device, like=loaded.model) if args.random_init else loaded.model
    model.eval()
    dcfg = data_config(cfg, clip_len=args.clip_len, n_synthetic=args.n_train, n_synthetic_test=args.n_test)
    if dcfg.clip_len <= FIRST:
        fail(f"--clip-len {dcfg.clip_len}: the probe scores frames {FIRST} on, so it needs at least {FIRST + 1}")
    masks = uses_motion(cfg)
    motion = dataclasses.replace(cfg.motion, enabled=True, flow=True)  # the flow comes with the masks' pipeline
    sets = {}
    if args.data.startswith("synthetic:"):  # held-out clips: the test split never shares a seed with train
        for split, n in (("train", args.n_train), ("test", args.n_test)):
            ds = build_or_exit(args.data, cfg=dcfg, split=split, seed=args.data_seed, motion=motion, labelled=False)
            sets[split] = (ds, Subset(ds, range(min(n, len(ds)))))
    else:  # a folder has no split: the first clips fit, the ones after them score (other clips, maybe same videos)
        ds = build_or_exit(args.data, cfg=dcfg, split="test", seed=args.data_seed, motion=motion, labelled=False)
        if len(ds) < 2:
            fail(f"--data {args.data}: {len(ds)} clip(s); the probe needs at least 2 (one to fit, one to score)")
        n_fit = args.n_train if len(ds) >= args.n_train + args.n_test else max(len(ds) - args.n_test, len(ds) // 2)
        sets["train"] = (ds, Subset(ds, range(n_fit)))
        sets["test"] = (ds, Subset(ds, range(n_fit, min(len(ds), n_fit + args.n_test))))
    loader = {s: DataLoader(v[1], batch_size=args.batch_size, shuffle=False) for s, v in sets.items()}

    # Step 2. Fit on train, score on test.
    fits = fit(model, loader["train"], device, masks, args.ridge, args.target)
    per_unit = score(model, loader["test"], device, masks, fits, args.target)
    skipped = skipped_files(*(v[0] for v in sets.values()))
    result = {
        "dataset": args.data,
        "per_unit_r2": {l: u["r2"] for l, u in per_unit.items()},
        "per_unit_ratio_copy_last": {l: u["ratio_copy_last"] for l, u in per_unit.items()},
        "per_unit": per_unit,
        "metric": f"ridge from the state r(t) (made before frame t) to frame {'t' if args.target == 'next' else 't-1'}"
        f"'s flow on the unit's grid, px² per frame, frames t >= {FIRST}; r2 = 1 - mse / mse(training mean); ratio = "
        "mse / mse(copy-last flow: the frame before's)",
        "n_train": len(sets["train"][1]),
        "n_test": len(sets["test"][1]),
        "clip_len": dcfg.clip_len,
        "ridge": args.ridge,
        "target": args.target,
        "checkpoint": str(loaded.path),
        "steps": 0 if args.random_init else loaded.step,
        "random_init": bool(args.random_init),
        "n_skipped": len(skipped),
        "skipped": skipped,
        **truncated_files(*(v[0] for v in sets.values())),
        "wall_s": round(time.time() - t0, 2),
    }
    write_json(args.out, result)
    print(
        (
            "flow probe R² (share of the coming motion the state holds): "
            if args.target == "next"
            else "flow probe R² (share of the last frame's motion the state holds): "
        )  # fmt: skip
        + ", ".join(f"unit {l}: {r:.3f}" for l, r in result["per_unit_r2"].items())
        + "; MSE / copy-last flow: "
        + ", ".join(f"{r:.3f}" for r in result["per_unit_ratio_copy_last"].values())
        + f"{' (random init)' if args.random_init else ''}{skipped_text(skipped)} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
