"""The trainer's optimiser: AdamW over one param group per unit, linear warmup then ``train.lr_schedule``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from prednet2.checkpoint import unwrap_model
from prednet2.config import Config


def unit_param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """One optimiser param group per unit (``model.units[l]``), plus one for anything outside the units.

    Groups let the trainer clip each unit's gradient norm on its own: a global norm would let one unit's large
    gradient shrink every other unit's update, coupling units that local learning keeps apart.
    """
    model = unwrap_model(model)
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    units = getattr(model, "units", None)
    if isinstance(units, nn.ModuleList | list | tuple):
        for l, unit in enumerate(units):
            ps = [p for p in unit.parameters() if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in ps)
            if ps:
                groups.append({"params": ps, "name": f"unit{l}"})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    if rest:
        groups.append({"params": rest, "name": "shared" if groups else "all"})
    return groups


def build_optimizer(model: nn.Module, cfg: Config) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over per-unit param groups: a linear warmup to ``train.lr``, then ``train.lr_schedule``."""
    t = cfg.train
    opt = torch.optim.AdamW(unit_param_groups(model), lr=t.lr, weight_decay=t.weight_decay)
    factor = lr_factor(t.lr_schedule, warmup=t.warmup_steps, total=t.steps, decay_start=t.decay_start)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def lr_factor(schedule: str, *, warmup: int, total: int, decay_start: int = 0):
    """Step -> multiplier of ``train.lr``. After a linear warmup of ``warmup`` steps, held at 1 until step
    ``decay_start`` (0: no hold; a start inside the warmup counts from its end), then:

    - ``constant``: 1;
    - ``cosine``: half a cosine from 1 down to 0.1 at step ``total`` (then 0.1);
    - ``inv_sqrt``: ``sqrt(start / step)`` (Vaswani et al. 2017) with ``start = max(warmup, decay_start)``, which
      needs no end: for open-ended or streaming training, and budget runs whose step count is not known in advance.

    With a hold, a run's first ``decay_start`` steps are the same whatever its length, so checkpoints of one long
    run stand for shorter runs (``benchmarks/curve.py``) as long as the schedule does not depend on ``total``.
    """
    warmup = max(0, warmup)
    start = decay_begins(warmup, decay_start)

    def f(s: int) -> float:
        if warmup and s < warmup:
            return (s + 1) / warmup
        if s < start:
            return 1.0
        if schedule == "cosine":
            return _half_cosine(s, start, total, 0.1)
        if schedule == "inv_sqrt":
            return math.sqrt(max(1, start) / max(1, s))
        return 1.0

    return f


def decay_begins(warmup: int, decay_start: int) -> int:
    """The step where the learning rate's decay (and the late schedules) begin: ``train.decay_start``, or the end of
    the warmup where that comes later."""
    return max(max(0, warmup), decay_start)


def _half_cosine(s: int, start: int, total: int, end: float) -> float:
    """Half a cosine from 1 at step ``start`` down to ``end`` at step ``total`` (then ``end``)."""
    p = min(1.0, max(0, s - start) / max(1, total - start))
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * p))


def late_factor(end: float, *, warmup: int, total: int, decay_start: int = 0):
    """Step -> multiplier of a loss or pull weight that is held at 1 until the learning rate's decay starts
    (``train.decay_start``, counted from the end of the warmup as in ``lr_factor``) and then falls by half a
    cosine to ``end`` at step ``total``: ``train.flow_end`` and ``train.anchor_end``. With the default hold (1000
    steps) a run of 1000 steps or fewer never leaves 1; ``end=1`` is 1 throughout."""
    start = decay_begins(warmup, decay_start)

    def f(s: int) -> float:
        return 1.0 if s < start else _half_cosine(s, start, total, end)  # end=1: 1 throughout

    return f


class InitAnchor:
    """``train.anchor_weight``: after each optimiser step, every parameter moves back toward its value at the
    start of training by ``lr * weight`` of the way, ``p <- p + lr * weight * (p0 - p)``: decoupled like AdamW's
    weight decay, which pulls toward 0 instead (the "L2 init" / regenerative regularisation of Kumar et al. 2023,
    for keeping plasticity in continual learning). ``lr`` is the param group's current rate, so the pull follows
    the schedule.

    The anchor is the weights the optimiser holds when this is built: the trainer builds it right after the model
    is built from ``train.seed`` and before a resume loads its checkpoint, so a resumed run rebuilds the same
    anchor and resumes exactly; ``prednet2 stream --learn`` anchors to the checkpoint it starts from.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, weight: float):
        self.weight = float(weight)
        self.scale = 1.0  # the trainer's late_factor for train.anchor_end, set before each step
        self.init = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]

    @torch.no_grad()
    def __call__(self, optimizer: torch.optim.Optimizer) -> None:
        for g, inits in zip(optimizer.param_groups, self.init):
            f = min(1.0, float(g["lr"]) * self.weight * self.scale)
            for p, p0 in zip(g["params"], inits):
                p.lerp_(p0, f)


def build_anchor(optimizer: torch.optim.Optimizer, cfg: Config) -> InitAnchor | None:
    """An ``InitAnchor`` at ``train.anchor_weight`` (default 1), or None when it is 0."""
    w = cfg.train.anchor_weight
    return InitAnchor(optimizer, w) if w > 0 else None
