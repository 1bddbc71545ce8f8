"""The stack's wiring helpers: what a unit hands up, how a window's per-step terms aggregate, and the error mask.

Shared by ``PredictiveStack`` (stack.py) and layer-parallel training (layer_parallel.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .losses import flow_loss, info_nce
from .units import PredictiveUnit


def up_channels(pass_up: str, unit: PredictiveUnit) -> int:
    """Channels of what ``unit`` hands to the unit above under ``model.pass_up`` (see ``passed_up``)."""
    e, a, r = 2 * unit.target_channels, unit.target_channels, unit.hidden_channels
    return {"error": e, "repr": a, "state": r, "error+state": e + r}[pass_up]


def passed_up(pass_up: str, e: Tensor, a: Tensor, r: Tensor) -> Tensor:
    """What a unit hands up at step t (before pooling): its error units e, its representation a, its state r
    (made before frame t: what it expected, as a PVM unit passes up its hidden layer), or cat(e, r)."""
    if pass_up == "error":
        return e
    if pass_up == "repr":
        return a
    if pass_up == "state":
        return r
    return torch.cat([e, r], dim=1)


def window_terms(
    step_terms: list[dict[str, Tensor]],
    valid: list[bool],
    bind_pairs: list[tuple[Tensor, Tensor] | None],
    bind_temperature: float,
) -> dict[str, Tensor]:
    """The per-step loss terms of one window (or clip) aggregated into the window's terms; the stack's forward and
    layer-parallel training share it. Terms that need the step before (the error, the change hinge, the time arrow,
    the flow target) are averaged over the valid steps, the others over all steps; the binding loss is InfoNCE over
    all (B*T) pairs."""
    n_valid = sum(valid)
    terms: dict[str, Tensor] = {}
    for key in step_terms[0]:
        if key == "bind":
            continue
        needs_prev = key.startswith(("err/", "chg/", "arrow/", "flow/", "warp/"))
        vals = [t[key] for t, v in zip(step_terms, valid) if v or not needs_prev]
        terms[key] = torch.stack(vals).mean() if (n_valid or not needs_prev) else step_terms[0][key]
    if bind_pairs[0] is not None:
        rgb = torch.cat([p[0] for p in bind_pairs], dim=0)  # (T*B, D)
        mot = torch.cat([p[1] for p in bind_pairs], dim=0)
        terms["bind"] = info_nce(rgb, mot, bind_temperature)
    return terms


def error_mask(mask: Tensor) -> Tensor:
    """A frame's motion mask on unit 0's grid: (B, s*s, H/s, W/s) after the stem (or (B, 1, H, W)) -> (B, 1, h, w),
    1 where any pixel of the cell moves."""
    return mask.amax(dim=1, keepdim=True).float()


def flow_ahead_terms(terms: dict[str, Tensor], steps: list, flow: Tensor, stem: int) -> dict[str, Tensor]:
    """``model.flow_horizon`` K > 1: each unit's ``flow/l`` term (frame t's motion, already averaged over the valid
    steps) becomes the mean over the K offsets of each offset's squared error; offset k averages the valid steps t
    whose frame t+k is in ``flow`` (B, T', 2, H, W), T' >= the window's steps. An offset with no such step is left
    out of the mean."""
    out: dict[str, Tensor] = {}
    for l in range(len(steps[0].flow_ahead or [])):
        if f"flow/{l}" not in terms or steps[0].flow_ahead[l] is None:
            continue
        parts = [terms[f"flow/{l}"]]
        for k in range(1, steps[0].flow_ahead[l].shape[1] // 2 + 1):
            errs = [
                flow_loss(s.flow_ahead[l][:, 2 * (k - 1) : 2 * k], flow[:, t + k], stem << l, True)
                for t, s in enumerate(steps)
                if s.valid and t + k < flow.shape[1]
            ]
            if errs:
                parts.append(torch.stack(errs).mean())
        out[f"flow/{l}"] = torch.stack(parts).mean()
    return out
