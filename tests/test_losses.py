import math

import torch

from prednet2.losses import (
    covariance_penalty,
    effective_rank,
    error_loss,
    info_nce,
    repr_std,
    variance_hinge,
)
from prednet2.ops import reference_error_unit


def test_error_loss_matches_definition():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    e, loss = error_loss(pred, target)
    assert e.shape == (2, 6, 4, 4)
    want = torch.cat([(target - pred).relu(), (pred - target).relu()], dim=1)
    torch.testing.assert_close(e, want)
    torch.testing.assert_close(loss, want.mean(dim=(1, 2, 3)))
    e2, loss2 = reference_error_unit(pred, target)
    torch.testing.assert_close(e2, e)
    torch.testing.assert_close(loss2, loss)


def test_variance_hinge_zero_when_spread_positive_when_collapsed():
    torch.manual_seed(0)
    spread = 3.0 * torch.randn(4, 8, 16, 16)  # std ~3 >= 1 on every channel
    assert variance_hinge(spread).item() == 0.0
    collapsed = torch.ones(4, 8, 16, 16)
    assert variance_hinge(collapsed).item() > 0.95  # ~1 - sqrt(eps)
    half = 0.5 * torch.randn(4, 8, 16, 16)
    assert 0.3 < variance_hinge(half).item() < 0.7


def test_covariance_penalty_decorrelated_vs_redundant():
    torch.manual_seed(0)
    z = torch.randn(4096, 8)
    redundant = z[:, :1].expand(-1, 8)
    assert covariance_penalty(z).item() < 0.05
    assert covariance_penalty(redundant).item() > 5.0


def test_info_nce_lower_for_matched_pairs():
    torch.manual_seed(0)
    q = torch.randn(32, 16)
    matched = info_nce(q, q + 0.05 * torch.randn_like(q))
    unmatched = info_nce(q, torch.randn(32, 16))
    assert matched.item() < 0.5
    assert unmatched.item() > 0.5 * math.log(32)


def test_repr_std_and_effective_rank():
    torch.manual_seed(0)
    iso = torch.randn(2048, 8)
    assert 7.0 < effective_rank(iso).item() <= 8.0
    line = torch.randn(2048, 1) * torch.ones(1, 8)
    assert effective_rank(line).item() < 1.5
    assert effective_rank(torch.zeros(16, 8)).item() == 1.0
    assert abs(repr_std(2 * torch.randn(4, 8, 16, 16)).item() - 2.0) < 0.1
    assert repr_std(torch.randn(2, 3, 4, 5, 5)).shape == ()
