"""One optimisation step on one batch of clips (local windows or end-to-end), and the metrics it can hand back."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prednet2.checkpoint import unwrap_model
from prednet2.config import ConfigError
from prednet2.distributed import all_reduce_grads, all_reduce_mean, is_distributed


@dataclass
class StepResult:
    """What one training step hands back. Tensors stay on the device; nothing here has synced."""

    losses: Tensor  # (L,) per-layer loss, time-averaged over the clip, detached
    grad_norms: Tensor  # (G,) gradient norm per param group before clipping (last window)
    metrics: dict[str, Tensor] = field(default_factory=dict)  # error/..., pred_vs_copy_last/..., stats (want_stats)
    last: Any = None  # the last window's model output (want_outputs), for images and repr metrics


def _forward_params(model: nn.Module) -> set[str]:
    """Names ``model.forward`` accepts (a ``**kwargs`` wrapper is taken to pass state/detach_between through)."""
    params = inspect.signature(unwrap_model(model).forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return set(params) | {"mask", "state", "detach_between"}
    return set(params)


def _detach(x: Any) -> Any:
    """Cut a carried state (tensors in lists, tuples, dicts or dataclasses) from the autograd graph."""
    if isinstance(x, Tensor):
        return x.detach()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return type(x)(**{f.name: _detach(getattr(x, f.name)) for f in dataclasses.fields(x)})
    if isinstance(x, list | tuple):
        return type(x)(_detach(v) for v in x)
    if isinstance(x, dict):
        return {k: _detach(v) for k, v in x.items()}
    return x


def _autocast(device: torch.device, amp: bool):
    # bf16 autocast needs no loss scaler (same exponent range as fp32); CPU autocast is slower here, so CUDA only.
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    clip: Tensor,
    mask: Tensor | None = None,
    *,
    mode: str = "local",
    window: int = 5,
    grad_clip: float = 1.0,
    amp: bool = False,
    encoder_lr_scale: float = 1.0,
    anchor: Callable[[torch.optim.Optimizer], None] | None = None,
    want_stats: bool = False,
    want_outputs: bool = False,
    flow: Tensor | None = None,
) -> StepResult:
    """One optimisation step on a batch of clips.

    clip: (B, T, C, H, W) float in [0, 1]; mask: (B, T, 1, H, W) or None; flow: (B, T, 2, H, W) motion vectors or
    None (the flow head's target, ``model.flow_weight``; passed only when given).

    ``local``: the clip runs in windows of ``window`` time steps. Each window is forwarded from the carried
    state, its summed per-unit losses are backpropagated, the optimiser steps, and the state is detached before
    the next window (truncated BPTT: memory is set by the window, not by T). Summing the unit losses into one
    backward with one optimiser is the same as one optimiser per unit, because the model detaches every input
    a unit takes from another unit: d(sum_l L_l)/d(theta_l) = dL_l/d(theta_l), and AdamW is elementwise per
    parameter. Only clipping couples parameters, so it is done per unit (param group).

    ``end_to_end``: one forward over all T with gradients crossing units (``detach_between=False``), one
    backward, global clipping: the BPTT ablation.

    ``encoder_lr_scale`` < 1 (``train.encoder_lr_scale``): after each optimiser step the target encoders' parameters
    move only that fraction of the way from their old values, i.e. their AdamW step (decay included) at that
    fraction of the learning rate; the optimiser's moments are those of an unscaled run, as with a per-group rate.

    ``anchor`` (``train.anchor_weight``, ``prednet2.optim.InitAnchor``): called with the optimiser after each of
    its steps.
    """
    if mode not in ("local", "end_to_end"):
        raise ConfigError(f"train.mode: expected 'local' or 'end_to_end', got {mode!r}")
    B, T = clip.shape[:2]
    params = _forward_params(model)
    k = T if mode == "end_to_end" else max(1, min(window, T))
    if k < T and "state" not in params:
        raise ConfigError("train.window < clip_len needs a model whose forward accepts state=; set train.window")
    groups = [g["params"] for g in optimizer.param_groups]
    slow = encoder_params(model) if encoder_lr_scale != 1.0 else []
    loss_acc: Tensor | None = None
    m_err: list[Tensor] = []
    m_pred: list[Tensor] = []
    m_copy: list[Tensor] = []
    prev_targets: list[Tensor] | None = None
    state = None
    out = None
    norms = torch.zeros(0)
    for t0 in range(0, T, k):
        x = clip[:, t0 : t0 + k]  # (B, k, C, H, W)
        kw: dict[str, Any] = {}
        if mask is not None:
            kw["mask"] = mask[:, t0 : t0 + k]
        if flow is not None:
            kw["flow"] = flow[:, t0 : t0 + k]
        if state is not None:
            kw["state"] = state
        if "detach_between" in params:
            kw["detach_between"] = mode == "local"
        with _autocast(clip.device, amp):
            out = model(x, **kw)
        losses = torch.stack([torch.as_tensor(v, device=clip.device).float() for v in out.losses])  # (L,)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        if is_distributed():  # DDP: average gradients over ranks before clipping (prednet2.distributed docstring)
            all_reduce_grads(p for g in groups for p in g)
        if mode == "local":
            norms = torch.stack([nn.utils.clip_grad_norm_(g, grad_clip if grad_clip > 0 else math.inf) for g in groups])
        else:
            all_p = [p for g in groups for p in g]
            norms = nn.utils.clip_grad_norm_(all_p, grad_clip if grad_clip > 0 else math.inf)[None]
        before = [p.detach().clone() for p in slow]
        optimizer.step()
        with torch.no_grad():
            for p, old in zip(slow, before):
                p.lerp_(old, 1.0 - encoder_lr_scale)  # old + scale * (new - old)
        if anchor is not None:
            anchor(optimizer)
        ema = getattr(unwrap_model(model), "update_ema", None)
        if callable(ema):  # EMA target encoders follow the online weights after each optimiser step
            ema()
        frac = x.shape[1] / T
        loss_acc = losses.detach() * frac if loss_acc is None else loss_acc + losses.detach() * frac
        if want_stats:
            with torch.no_grad():
                e, p, c, prev_targets = _window_metrics(out, prev_targets, first=t0 == 0)
                m_err.append(e * frac)
                m_pred.append(p)
                m_copy.append(c)
        state = _detach(getattr(out, "state", None))
    assert loss_acc is not None and out is not None
    all_reduce_mean(loss_acc)  # DDP: the global batch's loss on every rank (no-op in one process)
    res = StepResult(losses=loss_acc, grad_norms=norms.detach())
    if want_stats:
        L = len(loss_acc)
        err = torch.stack(m_err).sum(0)
        ratio = torch.stack(m_pred).sum(0) / torch.stack(m_copy).sum(0).clamp_min(1e-12)
        for l in range(L):
            res.metrics[f"error/layer{l}"] = err[l]
            res.metrics[f"pred_vs_copy_last/layer{l}"] = ratio[l]
        for name, v in (getattr(out, "stats", None) or {}).items():
            res.metrics[_stat_tag(name)] = torch.as_tensor(v).detach().float()
    if want_outputs:
        res.last = out
    return res


def encoder_params(model: nn.Module) -> list[Tensor]:
    """The model's target-encoder parameters; a ConfigError for a model without them (the PredNet baseline)."""
    get = getattr(unwrap_model(model), "encoder_parameters", None)
    if not callable(get):
        raise ConfigError("train.encoder_lr_scale needs the stack's target encoders; the PredNet baseline has none "
                          "(leave it at 1)")  # fmt: skip
    return get()


def _stat_tag(name: str) -> str:
    """The model's stat names as TensorBoard tags: ``var/0`` -> ``var/layer0``; ``bind`` -> ``stats/bind``."""
    kind, _, layer = name.rpartition("/")
    if kind and layer.isdigit():
        return f"{kind}/layer{layer}"
    return name if "/" in name else f"stats/{name}"


def _window_metrics(out: Any, prev: list[Tensor] | None, first: bool) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """Per-layer mean |E|, and summed |pred - a| and |a(t) - a(t-1)| over the same time steps (t >= 1 of the clip).

    The ratio of the last two is ``pred_vs_copy_last``: below 1 the unit predicts better than "nothing moves".
    """
    errs, preds, copies, lasts = [], [], [], []
    for l, (pr, tg, er) in enumerate(zip(out.preds, out.targets, out.errors)):
        pr, tg = pr.float(), tg.float()
        errs.append(er.float().abs().mean())
        if prev is not None:  # the step between windows: a(t0) against the last target of the previous window
            tg_prev = torch.cat([prev[l], tg[:, :-1]], dim=1)
            preds.append((pr - tg).abs().sum())
            copies.append((tg - tg_prev).abs().sum())
        else:  # the clip's first frame has no previous target: skip it on both sides
            preds.append((pr[:, 1:] - tg[:, 1:]).abs().sum())
            copies.append((tg[:, 1:] - tg[:, :-1]).abs().sum())
        lasts.append(tg[:, -1:])
    return torch.stack(errs), torch.stack(preds), torch.stack(copies), lasts
