"""The fused error-unit op: ``torch.ops.prednet2.error_unit`` (DESIGN.md §4).

``E = cat(relu(target - pred), relu(pred - target))`` along channels, fused with the per-sample weighted mean
that the local loss needs::

    loss[b] = sum_{k, h, w} E[b, k, h, w] * weight[b, 0, h, w] / (2C * sum_{h, w} weight[b, 0, h, w])

This module holds, for that op:
- ``reference_error_unit``: the pure-torch reference (the definition of the op, and the fallback);
- the autograd formula (``register_autograd``, backed by the fused ``prednet2::error_unit_backward`` op) and fake
  kernels (``register_fake``), so ``torch.compile(fullgraph=True)`` traces through it;
- the dispatch: the C++/CUDA kernels of ``prednet2._C`` when the extension is built, otherwise the schema is defined
  here and implemented by the reference, with one log line saying so. Either way the op is
  ``torch.ops.prednet2.error_unit``. ``PREDNET2_DISABLE_EXT=1`` forces the fallback (tests use it).

Conventions (the same on every path):
- ``loss`` is float32 for float32/float16/bfloat16 inputs and float64 for float64 inputs (sums accumulate in it).
- A sample whose ``2C * sum(weight)`` is 0 gets ``loss = 0`` and no gradient through the loss. Weights are meant to
  be non-negative (e.g. a motion mask); they receive no gradient.
- At ``pred == target`` the sub-gradient is 0 (that of ``torch.relu``).
- Non-contiguous inputs are copied to contiguous; ``E`` is a new contiguous (B, 2C, H, W) tensor.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor

__all__ = ["error_unit", "reference_error_unit", "reference_error_unit_backward", "extension_available"]

logger = logging.getLogger(__name__)

_SCHEMA = "error_unit(Tensor pred, Tensor target, Tensor? weight) -> (Tensor E, Tensor loss)"
_BACKWARD_SCHEMA = (
    "error_unit_backward(Tensor? grad_E, Tensor grad_loss, Tensor pred, Tensor target, Tensor? weight, "
    "bool need_grad_target) -> (Tensor grad_pred, Tensor grad_target)"
)
_BUILD_HINT = "build it with `make install` or `pip install --no-build-isolation -e .` (needs a C++ compiler)"


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The accumulation (and loss) dtype: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------------------------------------------------
# Reference (pure torch)
# ---------------------------------------------------------------------------------------------------------------
def reference_error_unit(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Error units and their per-sample weighted mean, in plain torch ops (differentiable by autograd).

    Args:
        pred: (B, C, H, W) prediction a_hat.
        target: (B, C, H, W) what arrived, a (same dtype as pred).
        weight: (B, 1, H, W) per-pixel weight (e.g. a motion mask), or None for w = 1.

    Returns:
        E: (B, 2C, H, W) = cat(relu(target - pred), relu(pred - target)), pred's dtype.
        loss: (B,) sum(E * w) / (2C * sum_hw w) per sample (0 where that denominator is 0); float32, or float64 for
        float64 inputs.
    """
    B, C, H, W = pred.shape
    E = torch.cat([torch.relu(target - pred), torch.relu(pred - target)], dim=1)  # (B, 2C, H, W)
    acc = _acc_dtype(pred.dtype)
    if weight is None:
        num = E.to(acc).sum(dim=(1, 2, 3))  # (B,)
        denom = torch.full_like(num, 2 * C * H * W)
    else:
        w = weight.to(acc)  # (B, 1, H, W)
        num = (E.to(acc) * w).sum(dim=(1, 2, 3))  # (B,)
        denom = 2 * C * w.sum(dim=(1, 2, 3))  # (B,)
    nonzero = denom != 0
    loss = torch.where(nonzero, num / torch.where(nonzero, denom, torch.ones_like(denom)), torch.zeros_like(num))
    return E, loss


def reference_error_unit_backward(
    grad_E: Tensor | None,
    grad_loss: Tensor,
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None,
    need_grad_target: bool,
) -> tuple[Tensor, Tensor]:
    """Pure-torch version of ``prednet2::error_unit_backward`` (the fallback, and a check of the fused one).

    Args:
        grad_E: (B, 2C, H, W) gradient of E, or None when E got none.
        grad_loss: (B,) gradient of loss.
        pred, target: (B, C, H, W); weight: (B, 1, H, W) or None.
        need_grad_target: when False, grad_target is an empty tensor.

    Returns:
        grad_pred: (B, C, H, W); grad_target: (B, C, H, W) = -grad_pred, or shape (0,).
    """
    B, C, H, W = pred.shape
    acc = _acc_dtype(pred.dtype)
    d = target.to(acc) - pred.to(acc)  # (B, C, H, W)
    if weight is None:
        w = torch.ones((B, 1, 1, 1), dtype=acc, device=pred.device)
        wsum = torch.full((B,), float(H * W), dtype=acc, device=pred.device)
    else:
        w = weight.to(acc)  # (B, 1, H, W)
        wsum = w.sum(dim=(1, 2, 3))  # (B,)
    denom = 2 * C * wsum
    nonzero = denom != 0
    inv = torch.where(nonzero, 1 / torch.where(nonzero, denom, torch.ones_like(denom)), torch.zeros_like(denom))
    g_loss_w = (grad_loss.to(acc) * inv).view(B, 1, 1, 1) * w  # d loss_total / d E[b, k], broadcast over k
    if grad_E is None:
        g_pos = g_neg = torch.zeros((), dtype=acc, device=pred.device)
    else:
        g_pos, g_neg = grad_E.to(acc).split(C, dim=1)  # (B, C, H, W) each
    zero = torch.zeros((), dtype=acc, device=pred.device)
    g = torch.where(d > 0, g_pos + g_loss_w, torch.where(d < 0, -(g_neg + g_loss_w), zero))
    grad_pred = (-g).to(pred.dtype)
    grad_target = g.to(pred.dtype) if need_grad_target else pred.new_empty(0)
    return grad_pred, grad_target


# ---------------------------------------------------------------------------------------------------------------
# Registration: C++ schema + kernels when prednet2._C loads, else schema here + reference kernels
# ---------------------------------------------------------------------------------------------------------------
def _load_extension() -> bool:
    if os.environ.get("PREDNET2_DISABLE_EXT") == "1":
        logger.info("prednet2: PREDNET2_DISABLE_EXT=1, error_unit uses the pure-torch reference")
        return False
    try:
        from prednet2 import _C  # noqa: F401  (loading the library runs its TORCH_LIBRARY registrations)
    except ImportError as e:
        logger.warning(
            "prednet2: the C++ extension prednet2._C is not built (%s); error_unit uses the slower pure-torch "
            "reference. To get the fused kernels, %s.",
            e,
            _BUILD_HINT,
        )
        return False
    return True


def _has_kernel(op: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"prednet2::{op}", key)


_EXTENSION = _load_extension()
_LIB: torch.library.Library | None = None  # kept alive: dropping it would unregister what it holds

if _EXTENSION:
    # The schema and the CPU (and CUDA, when compiled) kernels come from C++. A build without CUDA still serves
    # CUDA tensors, through the reference.
    if not _has_kernel("error_unit", "CUDA"):
        _LIB = torch.library.Library("prednet2", "IMPL")
        _LIB.impl("error_unit", reference_error_unit, "CUDA")
        _LIB.impl("error_unit_backward", reference_error_unit_backward, "CUDA")
else:
    _LIB = torch.library.Library("prednet2", "DEF")
    _LIB.define(_SCHEMA)
    _LIB.define(_BACKWARD_SCHEMA)
    _LIB.impl("error_unit", reference_error_unit, "CompositeExplicitAutograd")
    _LIB.impl("error_unit_backward", reference_error_unit_backward, "CompositeExplicitAutograd")


def extension_available() -> bool:
    """True when the fused C++ kernels of ``prednet2._C`` serve the op (False: pure-torch reference)."""
    return _EXTENSION


# ---------------------------------------------------------------------------------------------------------------
# Fake kernels (shapes only), for torch.compile / FakeTensor
# ---------------------------------------------------------------------------------------------------------------
@torch.library.register_fake("prednet2::error_unit")
def _error_unit_fake(pred: Tensor, target: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    B, C, H, W = pred.shape
    E = pred.new_empty((B, 2 * C, H, W))
    loss = pred.new_empty((B,), dtype=_acc_dtype(pred.dtype))
    return E, loss


@torch.library.register_fake("prednet2::error_unit_backward")
def _error_unit_backward_fake(grad_E, grad_loss, pred, target, weight, need_grad_target):
    grad_target = (
        torch.empty_like(pred, memory_format=torch.contiguous_format) if need_grad_target else pred.new_empty(0)
    )
    return torch.empty_like(pred, memory_format=torch.contiguous_format), grad_target


# ---------------------------------------------------------------------------------------------------------------
# Autograd
# ---------------------------------------------------------------------------------------------------------------
def _setup_context(ctx, inputs, output) -> None:
    pred, target, weight = inputs
    ctx.save_for_backward(pred, target, weight)
    # Training back-propagates only the loss (E goes up the stack detached): leave grad_E as None rather than a
    # materialised (B, 2C, H, W) tensor of zeros, so the backward reads nothing for it.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_E: Tensor | None, grad_loss: Tensor | None):
    pred, target, weight = ctx.saved_tensors
    need_pred, need_target = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if grad_E is None and grad_loss is None:
        return None, None, None
    if grad_loss is None:
        grad_loss = torch.zeros(pred.shape[0], dtype=_acc_dtype(pred.dtype), device=pred.device)
    grad_pred, grad_target = torch.ops.prednet2.error_unit_backward(
        grad_E, grad_loss, pred, target, weight, bool(need_target)
    )
    # The weight gets no gradient (it is a mask, not a parameter).
    return (grad_pred if need_pred else None), (grad_target if need_target else None), None


torch.library.register_autograd("prednet2::error_unit", _backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------------------------
def error_unit(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fused error units and per-sample weighted mean (``torch.ops.prednet2.error_unit``), differentiable.

    Args:
        pred: (B, C, H, W) prediction a_hat; float32, float16, bfloat16 or float64.
        target: (B, C, H, W) what arrived, a; same dtype and device as pred. Pass it detached when it must not
            receive a gradient (a stop-gradient target); otherwise it gets grad_target = -grad_pred.
        weight: (B, 1, H, W) non-negative per-pixel weight, or None (w = 1). Cast to pred's dtype; no gradient.

    Returns:
        E: (B, 2C, H, W) = cat(relu(target - pred), relu(pred - target)).
        loss: (B,) sum(E * w) / (2C * sum_hw w) per sample, 0 where that denominator is 0; float32 (float64 for
        float64 inputs).
    """
    if pred.dim() != 4 or target.shape != pred.shape:
        raise ValueError(f"error_unit: pred and target must both be (B, C, H, W); got {pred.shape} and {target.shape}")
    if target.dtype != pred.dtype:
        raise ValueError(f"error_unit: target dtype {target.dtype} must equal pred dtype {pred.dtype}")
    if weight is not None:
        B, _, H, W = pred.shape
        if tuple(weight.shape) != (B, 1, H, W):
            raise ValueError(f"error_unit: weight must be (B, 1, H, W) = {(B, 1, H, W)}; got {tuple(weight.shape)}")
        weight = weight.to(dtype=pred.dtype)
    return torch.ops.prednet2.error_unit(pred, target, weight)
