"""The trainer's optimiser: AdamW over one param group per unit, linear warmup then a constant rate."""

from __future__ import annotations

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
    """AdamW over per-unit param groups, with a linear warmup to ``train.lr`` then a constant rate."""
    opt = torch.optim.AdamW(unit_param_groups(model), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    warmup = max(0, cfg.train.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    return opt, sched
