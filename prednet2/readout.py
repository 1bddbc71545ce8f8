"""What a probe reads from a stack: ``extract_features``, separate from the training forward (STYLE.md habit 8).

``model.readout`` names the parts pooled per layer, ``model.readout_bins`` the time segments they are pooled over:

- ``a``: the unit's representation (what is there: identity);
- ``r``: its recurrent state (what it expects: motion);
- ``e``: its error units ``[relu(a - â), relu(â - a)]``;
- ``da``: ``|a(t) - a(t-1)|``, what changed;
- ``dr``: ``|r(t) - r(t-1)|``, how much the state's expectation changed (a turn, a stop: what the path does);
- ``rw`` / ``aw``: r / a pooled with spatial weights proportional to the error units' magnitude (mean 1 over
  space): where the unit was surprised;
- ``am`` / ``rm``: a / r times the horizontal and the vertical coordinate (-1 to 1 across the map; 2C channels):
  mean-pooled, each channel's first spatial moments, where its mass lies. Read in time bins, their change is where
  each channel's mass went: heading as a few linear coordinates (round 127).
- ``av`` / ``rv``: ``(x(t) - x(t-1))`` times x's spatial gradient (2C channels): motion energy, whose sign says which
  way the pattern moved, so mean pooling keeps it (round 144).
- ``f``: the flow heads' prediction of the motion frame t brings, as ``[relu(u), relu(v), relu(-u), relu(-v)]`` (4
  channels; 4K with ``model.flow_horizon`` K: frame t's motion, then t+1's, ...; ``model.flow_weight``): which way
  things will move, learned from the video's optical flow. A unit without a flow head reads nothing for it (round 148).
- ``fo``: the same prediction as a histogram of its orientation (8 channels per predicted frame: each vector's length
  shared between the two nearest of 8 directions 45 degrees apart, linearly in its angle): which way things will
  move, with diagonals and opposing motions kept apart where ``f``'s four signed halves mix them (round 156).
- ``w``: the warp heads' displacement (``model.warp_weight`` or ``model.predict=warp``), split by sign the same way:
  the velocity field the state reads out to move its last representation onto the next, learned without any optical
  flow. Zero at random init (the heads start at zero).

A part named ``PART@G`` (e.g. ``f@4``) is pooled over a ``G x G`` grid of its own, where the other parts pool over
the whole map: where on the map a few channels were, kept without widening every part (round 159). ``f`` and ``f@4``
may be named together; the same name twice may not.

Each part is pooled over a ``grid x grid`` spatial grid (``model.readout_pool``: mean, max or both) and averaged
over each of the ``readout_bins`` equal time segments; the parts and segments are concatenated. With
``model.readout_whole`` (and more than one bin) the mean over the whole clip comes first, beside the bins; with
``model.readout_trend`` the whole clip's mean comes first and the bins enter as their change (bin k+1 minus bin k).
With ``model.readout_warmup = W`` the stack first steps W times on the clip's first frame (motion mask empty), reading
nothing, so the clip is read from a settled state rather than the onset transient. With ``model.readout_reverse`` the
clip is also read reversed in time (b) and the features are [f, f - b]: beside them, what time's arrow changes.
Tensor layout: clips (B, T, C, H, W).
"""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import ModelConfig

if TYPE_CHECKING:
    from .stack import PredictiveStack

FLOW_PARTS = ("f", "fo")  # read through a unit's flow head
HEAD_PARTS = (*FLOW_PARTS, "w")  # read through a unit's own heads (flow, warp), not from its tensors alone
ORIENTATIONS = 8  # the part fo's directions, 360 / 8 = 45 degrees apart
PARTS = ("a", "r", "e", "da", "dr", "rw", "aw", "am", "rm", "av", "rv", *HEAD_PARTS)


MAX_PART_GRID = 16  # PART@G: at most a 16x16 grid (unit 0's map at 64x64 input is 32x32)


def base_part(name: str) -> str:
    """``"f@4"`` -> ``"f"``: the part a name reads, without its grid."""
    return name.split("@", 1)[0]


def part_grid(name: str, default: int) -> int:
    """``"f@4"`` -> 4; ``default`` (the readout's grid) for a name without ``@G``."""
    return int(name.split("@", 1)[1]) if "@" in name else default


def _valid_part(name: str) -> bool:
    part, at, g = name.partition("@")
    if part not in PARTS:
        return False
    return not at or (g.isdigit() and 1 <= int(g) <= MAX_PART_GRID and g == str(int(g)))


def parse_parts(spec: str) -> list[str]:
    """``"a,r,f@4"`` -> ``["a", "r", "f@4"]``; a ValueError naming ``model.readout`` for anything else (a part named
    twice too)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    bad = [p for p in parts if not _valid_part(p)]
    if not parts or bad:
        raise ValueError(f"model.readout: {spec!r} is not a comma-separated list of {', '.join(PARTS)}, each "
                         f"optionally PART@G to pool it over a GxG grid, G 1 to {MAX_PART_GRID} "
                         "(e.g. 'a,r' or 'a,r,da,f@4')")  # fmt: skip
    twice = sorted({p for p in parts if parts.count(p) > 1})
    if twice:  # a part twice would read the same channels twice: a wider feature, nothing new
        raise ValueError(f"model.readout: {spec!r} names {', '.join(twice)} twice; name each part once")
    return parts


def asked_parts(spec: str, has_flow_heads: bool) -> list[str]:
    """``parse_parts``, less the default readout's ``f`` where there are no flow heads (a model trained without the
    motion stream reads ``a,r,da``); an ``f`` named in any other readout stays, for the caller to refuse."""
    parts = parse_parts(spec)
    if not has_flow_heads and spec == ModelConfig.readout:
        parts = [p for p in parts if base_part(p) not in FLOW_PARTS]
    return parts


def check_parts(spec: str, has_flow_heads: bool, has_warp_heads: bool = False) -> list[str]:
    """``asked_parts``, and a ValueError when the part ``f`` or ``fo`` is asked of a model without flow heads, or ``w``
    of one without warp heads."""
    parts = asked_parts(spec, has_flow_heads)
    bases = [base_part(p) for p in parts]
    for p in (p for p in FLOW_PARTS if p in bases and not has_flow_heads):
        raise ValueError(f"model.readout: {spec!r} reads the flow heads' prediction ({p}), but this model has none; "
                         f"train with model.flow_weight (and model.flow_detach=true) or drop {p}")  # fmt: skip
    if "w" in bases and not has_warp_heads:
        raise ValueError(f"model.readout: {spec!r} reads the warp heads' displacement (w), but this model has none; "
                         "train with model.warp_weight or model.predict=warp, or drop w")  # fmt: skip
    return parts


def heads_of(model: PredictiveStack) -> tuple[bool, bool]:
    """(any unit has a flow head, any unit has a warp head): what ``check_parts`` needs to know of a built model."""
    return (any(u.flow_head is not None for u in model.units), any(u.warp_head is not None for u in model.units))


@torch.no_grad()
def extract_features(
    model: PredictiveStack, clip: Tensor, mask: Tensor | None = None, *, grid: int = 1
) -> dict[int, Tensor]:
    """{l: (B, F_l)}, F_l = (channels of the readout parts) * grid**2 * (bins, + 1 with ``readout_whole``; with
    ``readout_trend`` 1 + (bins - 1) differences).

    clip (B, T, C, H, W) in [0, 1]. Frozen: no gradients, the model in eval mode while it reads."""
    was_training = model.training
    model.eval()
    try:
        return readout_features(model, clip, mask, grid=grid)
    finally:
        model.train(was_training)


def readout_features(
    model: PredictiveStack, clip: Tensor, mask: Tensor | None = None, *, grid: int = 1, detach_between: bool = True
) -> dict[int, Tensor]:
    """What ``extract_features`` returns, with gradients: the same readout for a model trained through it (the
    supervised reference of ``benchmarks/ceiling.py``, ``detach_between=False``: end to end through every unit).
    With ``model.readout_reverse`` the clip is read forwards (f) and reversed in time (b): [f, f - b] per layer."""
    model.check_call(clip, mask, None, clip=True)
    if not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid: expected an integer >= 1 (1: pool over the whole map, 2: a 2x2 grid), got {grid!r}")
    fwd = _read(model, clip, mask, grid=grid, detach_between=detach_between)
    if not model.cfg.readout_reverse:
        return fwd
    back = _read(model, clip.flip(1), None if mask is None else mask.flip(1), grid=grid, detach_between=detach_between)
    return {l: torch.cat([f, f - back[l]], dim=1) for l, f in fwd.items()}


def _read(
    model: PredictiveStack, clip: Tensor, mask: Tensor | None, *, grid: int, detach_between: bool
) -> dict[int, Tensor]:
    """One reading of the clip in the order given (checked by the caller): the ``model.readout`` parts pooled over
    space and time bins."""
    parts = check_parts(model.cfg.readout, *heads_of(model))
    bases, grids = [base_part(p) for p in parts], [part_grid(p, grid) for p in parts]  # parsed once, not per frame
    L, T = model.num_layers, clip.shape[1]
    bins = max(1, min(model.cfg.readout_bins, T))
    bin_of = [min(t * bins // T, bins - 1) for t in range(T)]
    counts = [bin_of.count(b) for b in range(bins)]
    sums: dict[int, list[Tensor | None]] = {l: [None] * bins for l in range(L)}
    state = None
    still = None if mask is None else torch.zeros_like(mask[:, 0])  # a frame held still has no motion
    for _ in range(model.cfg.readout_warmup):  # the first frame held still, nothing read: a settled state to start
        _, state = model.step(clip[:, 0], state, still, compute_losses=False, detach_between=detach_between)
    for t in range(T):
        a_before = state.a if state is not None else [None] * L
        r_before = state.r if state is not None else [None] * L
        m = None if mask is None else mask[:, t]
        out, state = model.step(clip[:, t], state, m, compute_losses=False, detach_between=detach_between)
        for l in range(L):
            step = (state.a[l], a_before[l], out.states[l], r_before[l], out.errors[l])
            u = model.units[l]
            maps = [_head_part(p, u, state.a[l], out.states[l]) if p in HEAD_PARTS else _part(p, *step) for p in bases]
            f = _pool_parts(maps, grids, model.cfg.readout_pool)
            b = bin_of[t]
            sums[l][b] = f if sums[l][b] is None else sums[l][b] + f
    feats = {}
    for l, s in sums.items():
        means = [x / n for x, n in zip(s, counts)]
        if bins > 1 and model.cfg.readout_trend:  # the whole clip's mean, then the bins' change
            means = [sum(s) / T, *[b - a for a, b in zip(means, means[1:])]]
        elif bins > 1 and model.cfg.readout_whole:  # the whole clip's mean first, then each bin's
            means = [sum(s) / T, *means]
        feats[l] = torch.cat(means, dim=1)
    return feats


def _pool_parts(maps: list[Tensor], grids: list[int], how: str) -> Tensor:
    """The parts' maps (B, C_part, H, W) pooled, each over its grid, in the order named: runs of parts on the same
    grid are pooled together, so a readout without ``@G`` lays out its features as before (channel-major over the
    whole concatenation). (B, F)."""
    runs = groupby(zip(grids, maps), key=lambda gm: gm[0])
    return torch.cat([_pool(torch.cat([m for _, m in run], dim=1), g, how) for g, run in runs], dim=1)


def _pool(f: Tensor, grid: int, how: str) -> Tensor:
    """(B, C, H, W) -> (B, C * grid**2) pooled per ``model.readout_pool`` (mean | max | meanmax: both, mean first)."""
    if how == "mean":
        return F.adaptive_avg_pool2d(f, grid).flatten(1)
    if how == "max":
        return F.adaptive_max_pool2d(f, grid).flatten(1)
    return torch.cat([F.adaptive_avg_pool2d(f, grid).flatten(1), F.adaptive_max_pool2d(f, grid).flatten(1)], dim=1)


def _head_part(name: str, unit, a: Tensor, r: Tensor) -> Tensor:
    """The part ``f`` (the unit's flow head on its state, made before frame t, or its representation) or ``w`` (its
    warp head's displacement), split by sign into (B, 4, H, W), or ``fo`` (the flow head's prediction as an orientation
    histogram, (B, 8, H, W) per predicted frame); (B, 0, H, W) for a unit without that head."""
    head = unit.flow_head if name in FLOW_PARTS else unit.warp_head
    if head is None:
        return a.new_zeros(a.shape[0], 0, *a.shape[2:])
    v = unit.predict_flow(r, a) if name in FLOW_PARTS else unit.displacement(r)
    if name == "fo":
        return orientation_histogram(v)
    return torch.cat([v.relu(), (-v).relu()], dim=1)


def orientation_histogram(v: Tensor, bins: int = ORIENTATIONS) -> Tensor:
    """(B, 2K, H, W) vectors (u, v per frame) -> (B, bins*K, H, W): each vector's length shared between the two
    directions nearest its angle (bin j at 360*j/bins degrees from +u toward +v), linearly in the angle between
    them, as a histogram of optical flow (HOF) bins it. The bins sum to its length (a zero vector adds about 1e-6)."""
    u, w = v[:, 0::2], v[:, 1::2]  # (B, K, H, W) each
    length = (u * u + w * w + 1e-12).sqrt()
    angle = torch.atan2(w, u)  # (-pi, pi]
    step = 2 * torch.pi / bins
    centres = torch.arange(bins, device=v.device, dtype=v.dtype) * step  # (bins,)
    diff = angle.unsqueeze(2) - centres.view(1, 1, bins, 1, 1)  # (B, K, bins, H, W)
    diff = torch.remainder(diff + torch.pi, 2 * torch.pi) - torch.pi  # wrapped to [-pi, pi)
    weight = (1 - diff.abs() / step).clamp_min(0)
    return (length.unsqueeze(2) * weight).flatten(1, 2)


def _part(name: str, a: Tensor, a_before: Tensor | None, r: Tensor, r_before: Tensor | None, e: Tensor) -> Tensor:
    """One readout part at one step; every input is (B, C, H, W)."""
    if name == "a":
        return a
    if name == "r":
        return r
    if name == "e":
        return e
    if name in ("da", "dr"):  # |x(t) - x(t-1)|; zero at the first step, where nothing came before
        x, before = (a, a_before) if name == "da" else (r, r_before)
        return (x - before).abs() if before is not None else torch.zeros_like(x)
    if name in ("am", "rm"):  # x * horizontal coordinate, x * vertical coordinate: (B, 2C, H, W)
        x = a if name == "am" else r
        h, w = x.shape[-2:]
        gx = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w)
        gy = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
        return torch.cat([x * gx, x * gy], dim=1)
    if name in ("av", "rv"):  # (x(t) - x(t-1)) * d/dx and d/dy of their mean: (B, 2C, H, W); zero at the first step
        x, before = (a, a_before) if name == "av" else (r, r_before)
        if before is None:
            return x.new_zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:])
        mid, dt = (x + before) / 2, x - before
        gx = (mid.roll(-1, 3) - mid.roll(1, 3)) / 2  # central differences (wrapping at the edges)
        gy = (mid.roll(-1, 2) - mid.roll(1, 2)) / 2
        return torch.cat([dt * gx, dt * gy], dim=1)
    w = e.abs().mean(dim=1, keepdim=True)  # (B, 1, H, W): where the unit was surprised
    w = w / w.mean(dim=(2, 3), keepdim=True).clamp_min(1e-8)
    return (r if name == "rw" else a) * w
