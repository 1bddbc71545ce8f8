"""Local losses and representation statistics: pure functions, no parameters, no state.

- ``error_loss``: the error-unit loss of PredNet (Lotter, Kreiman and Cox 2016, eq. for E_l and the L_t loss):
  the per-sample mean of ``E = [relu(a - a_hat), relu(a_hat - a)]``, through ``prednet2.ops.error_unit``.
- ``variance_hinge`` and ``covariance_penalty``: the variance and covariance terms of VICReg (Bardes, Ponce and
  LeCun 2022, eqs. 1 and 3), applied per unit to the online representation ``a`` with spatial positions as
  samples. They keep a representation target from collapsing to a constant.
- ``info_nce``: the InfoNCE loss of CPC (van den Oord, Li and Vinyals 2018, eq. 4): one positive per row,
  the rest of the batch as negatives. Used for RGB<->motion binding and the contrastive anti-collapse option.
- ``arrow_loss``: a two-way InfoNCE per position whose negative is the step before (the time-arrow option).
- ``repr_std`` and ``effective_rank`` (Roy and Vetterli 2007): logging statistics of a representation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from .distributed import batch_sync_active, gather_rows, sync_sum
from .ops import error_unit


def error_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """PredNet's error units and their per-sample mean (Lotter et al. 2016, §2: E_l and L_train).

    pred, target: (B, C, H, W). Returns ``(E, loss)``: E (B, 2C, H, W), loss (B,). Dispatches to the fused op.
    """
    return error_unit(pred, target, weight)


def repr_part(E: Tensor, keep: int) -> Tensor:
    """The error units of the first ``keep`` channels of the target: E (B, 2C, H, W) -> (B, 2 keep, H, W). Unit 0's
    target is cat(a, m); with ``model.motion_loss=false`` only a's part is a loss, m stays input."""
    C = E.shape[1] // 2
    return torch.cat([E[:, :keep], E[:, C : C + keep]], dim=1)


def mean_error(E: Tensor, weight: Tensor | None = None) -> Tensor:
    """The per-sample weighted mean of the error units (``model.error_loss=l1``, as the op computes it): (B,)."""
    if weight is None:
        return E.mean(dim=(1, 2, 3))
    return (E * weight).sum(dim=(1, 2, 3)) / (E.shape[1] * weight.sum(dim=(1, 2, 3))).clamp_min(1e-12)


def squared_error(E: Tensor, weight: Tensor | None = None) -> Tensor:
    """The per-sample mean squared error from the error units (``model.error_loss=l2``): (B,).

    E (B, 2C, H, W) holds relu(a - â) and relu(â - a), one of each pair zero, so sum(E^2) = sum((a - â)^2) and the
    result is the MSE over the C channels and the positions, weighted per position by ``weight`` (B, 1, H, W) as
    ``error_loss`` weights the mean (a sample whose weights sum to 0 gets 0).
    """
    sq = E.pow(2)
    C = E.shape[1] // 2
    if weight is None:
        return sq.sum(dim=(1, 2, 3)) / (C * E.shape[2] * E.shape[3])
    den = C * weight.sum(dim=(1, 2, 3))
    return (sq * weight).sum(dim=(1, 2, 3)) / den.clamp_min(1e-12)


def ahead_loss(
    ahead: list[list[Tensor]], targets: list[Tensor], valid: list[bool], error_fn=error_loss
) -> Tensor | None:
    """One unit's further-horizon error over a window (``model.horizon`` K > 1), summed over k = 2..K.

    ``ahead[t][k - 2]`` is what the state made at step t predicts for step t+k-1, ``targets[t]`` the target at t,
    ``valid[t]`` whether step t had a prediction at all. Only pairs whose target falls inside the window count;
    each k contributes the mean of its per-sample error means. None when no pair fits (a window shorter than 2).
    ``error_fn(pred, target) -> (E, per_sample)`` is the stack's own (the fused op, or the reference when
    ``model.use_ext_op`` is off).
    """
    K = len(ahead[0]) + 1 if ahead else 1  # the horizon: the k = 1 head plus the further ones
    total = None
    for k in range(2, K + 1):
        errs = [
            error_fn(ahead[t][k - 2], targets[t + k - 1])[1].mean() for t in range(len(targets) - k + 1) if valid[t]
        ]
        if errs:
            e = torch.stack(errs).mean()
            total = e if total is None else total + e
    return total


def _as_samples(a: Tensor) -> Tensor:
    """(B, C, H, W) or (N, C) -> (N, C): every spatial position of every clip is a sample."""
    if a.dim() == 4:
        return rearrange(a, "b c h w -> (b h w) c")
    if a.dim() == 2:
        return a
    raise ValueError(f"expected a (B, C, H, W) or (N, C) tensor, got shape {tuple(a.shape)}")


def variance_hinge(a: Tensor, target_std: float = 1.0, eps: float = 1e-4) -> Tensor:
    """VICReg variance term (Bardes et al. 2022, eq. 1): ``mean_c relu(target_std - sqrt(var_c + eps))``.

    a: (B, C, H, W) (std per channel over B, H, W) or (N, C). Returns a scalar; zero when every channel's std
    reaches ``target_std``, and ``target_std`` when the representation is constant.
    """
    z = _as_samples(a)
    var = _global_var(z) if batch_sync_active() else z.var(dim=0)  # DDP: over the global batch
    std = torch.sqrt(var + eps)
    return F.relu(target_std - std).mean()


def _global_var(z: Tensor) -> Tensor:
    """Unbiased per-column variance of (N, C) rows pooled over all data-parallel ranks (differentiable)."""
    n_all = sync_sum(z.new_tensor(float(z.shape[0])))
    mean = sync_sum(z.sum(dim=0)) / n_all
    return sync_sum((z - mean).pow(2).sum(dim=0)) / (n_all - 1).clamp_min(1.0)


def covariance_penalty(a: Tensor) -> Tensor:
    """VICReg covariance term (Bardes et al. 2022, eq. 3): squared off-diagonal covariances summed, divided by C.

    a: (B, C, H, W) or (N, C). Returns a scalar that pushes channels to decorrelate (no redundant channels).
    """
    z = _as_samples(a).float()
    n, c = z.shape
    if batch_sync_active():  # DDP: the covariance of the global batch (see prednet2.distributed.batch_sync)
        n_all = sync_sum(z.new_tensor(float(n)))
        z = z - sync_sum(z.sum(dim=0)) / n_all
        cov = sync_sum(z.T @ z) / (n_all - 1).clamp_min(1.0)  # (C, C)
    else:
        z = z - z.mean(dim=0)
        cov = (z.T @ z) / max(n - 1, 1)  # (C, C)
    off = cov - torch.diag_embed(torch.diagonal(cov))
    return off.pow(2).sum() / c


def info_nce(query: Tensor, key: Tensor, temperature: float = 0.1) -> Tensor:
    """InfoNCE (van den Oord et al. 2018, eq. 4) with cosine similarity: row i of ``query`` matches row i of ``key``.

    query, key: (N, D). The other N-1 rows of ``key`` are the negatives. Returns a scalar, ``log N`` at chance
    and toward 0 when matched pairs are far more similar than unmatched ones. Symmetric (both directions).
    """
    if query.shape != key.shape or query.dim() != 2:
        raise ValueError(f"info_nce: query and key must both be (N, D); got {tuple(query.shape)}, {tuple(key.shape)}")
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    if batch_sync_active():  # DDP: negatives from the global batch; rows of this rank sit at `offset` in it
        k_all, offset = gather_rows(k)
        q_all, _ = gather_rows(q)
        labels = torch.arange(q.shape[0], device=q.device) + offset
        return 0.5 * (
            F.cross_entropy(q @ k_all.T / temperature, labels) + F.cross_entropy(k @ q_all.T / temperature, labels)
        )
    logits = q @ k.T / temperature  # (N, N)
    labels = torch.arange(q.shape[0], device=q.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def arrow_loss(pred: Tensor, now: Tensor, before: Tensor, temperature: float = 0.1) -> Tensor:
    """Time-arrow contrast (``model.arrow_weight``): at every position the prediction must pick what came over what was.

    pred, now, before: (B, C, H, W): â(t), a(t) and a(t-1). Per position, the cosine similarities of â(t) to a(t)
    (the positive) and to a(t-1) (the negative) over ``temperature`` are the logits of a two-way cross-entropy,
    averaged over positions: ``log 2`` where â is as near to one as to the other (or nothing moved), toward 0
    where â points at the future, above ``log 2`` where it points at the past (the copy-last guess â = a(t-1) is
    the negative itself). Gradient reaches all three, so the encoder learns a change that the
    state can tell from its reverse.
    """
    p = F.normalize(pred.float(), dim=1)
    pos = (p * F.normalize(now.float(), dim=1)).sum(dim=1)  # (B, H, W)
    neg = (p * F.normalize(before.float(), dim=1)).sum(dim=1)
    return F.softplus((neg - pos) / temperature).mean()


@torch.no_grad()
def repr_std(a: Tensor) -> Tensor:
    """Mean over channels of the per-channel std over samples. a: (B, C, H, W), (B, T, C, H, W) or (N, C)."""
    if a.dim() == 5:
        a = rearrange(a, "b t c h w -> (b t) c h w")
    return _as_samples(a.float()).std(dim=0).mean()


@torch.no_grad()
def effective_rank(a: Tensor, max_samples: int = 4096) -> Tensor:
    """Effective rank (Roy and Vetterli 2007): ``exp(H(p))``, p the normalised singular values of centred (N, C).

    a: (B, C, H, W), (B, T, C, H, W) or (N, C). Ranges from 1 (collapsed to a line) to C (isotropic). At most
    ``max_samples`` rows are used (an evenly strided subset), which keeps the SVD cheap for logging.
    """
    if a.dim() == 5:
        a = rearrange(a, "b t c h w -> (b t) c h w")
    z = _as_samples(a.float())
    if z.shape[0] > max_samples:
        z = z[:: z.shape[0] // max_samples][:max_samples]
    z = z - z.mean(dim=0)
    s = torch.linalg.svdvals(z)
    total = s.sum()
    if total <= 0:
        return torch.ones((), device=a.device)
    p = s / total
    ent = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return torch.exp(ent)


def flow_loss(pred: Tensor, flow: Tensor, factor: int, valid: bool) -> Tensor:
    """Squared error of a flow head's output (B, 2, h, w) against a frame's motion vectors (B, 2, H, W) in px per
    frame, averaged onto the head's grid (H = factor * h): ``model.flow_weight``'s term. At a first step (``valid``
    False) a zero that keeps the graph."""
    target = F.avg_pool2d(flow, factor) if factor > 1 else flow
    return ((pred - target) ** 2).mean() if valid else 0.0 * pred.sum()
