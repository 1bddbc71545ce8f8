"""model.predict=warp: the prediction is the last representation moved by a displacement the state reads out."""

import dataclasses

import pytest
import torch

from prednet2 import ModelConfig, build_model
from prednet2.config import Config, ConfigError
from prednet2.units import warp

SMALL = dict(channels=(4, 6), stem=1, input_kernel=3, readout_bins=1)


def make(**over):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(ModelConfig(), **{**SMALL, **over}))


def test_warp_by_zero_is_identity_and_by_one_cell_shifts():
    x = torch.rand(2, 3, 8, 9)
    assert torch.allclose(warp(x, torch.zeros(2, 2, 8, 9)), x, atol=1e-6)
    d = torch.zeros(2, 2, 8, 9)
    d[:, 0] = 1.0  # sample one cell to the right: the content moves one cell left
    assert torch.allclose(warp(x, d)[..., :-1], x[..., 1:], atol=1e-5)
    d = torch.zeros(2, 2, 8, 9)
    d[:, 1] = -2.0  # two cells up
    assert torch.allclose(warp(x, d)[..., 2:, :], x[..., :-2, :], atol=1e-5)


def test_warp_starts_at_copy_last():
    out = make(predict="warp")(torch.rand(2, 5, 3, 16, 16))
    for l in range(2):
        assert torch.allclose(out.preds[l][:, 1:], out.targets[l][:, :-1], atol=1e-6)


def test_warp_learns_the_motion_of_a_moving_bar():
    """A bar moving one pixel right per frame: the displacement head learns to sample from the left, beating
    copy-last well, and the mean displacement where the bar is points left (x < 0)."""
    m = make(predict="warp", channels=(4,))
    T = 8
    x = torch.zeros(4, T, 3, 16, 16)
    for t in range(T):
        x[:, t, :, :, 2 + t] = 1.0
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(150):
        out = m(x)
        opt.zero_grad()
        out.losses[0].backward()
        opt.step()
    out = m(x)
    pred, tgt, copy = out.preds[0][:, 2:], out.targets[0][:, 2:], out.targets[0][:, 1:-1]
    assert (pred - tgt).pow(2).mean() < 0.5 * (copy - tgt).pow(2).mean()
    assert m.units[0].warp_head.weight.grad is not None


def test_warp_with_horizon_moves_k_steps():
    m = make(predict="warp", horizon=3)
    out = m(torch.rand(2, 6, 3, 16, 16))
    assert {"ahead/0", "ahead/1"} <= set(out.stats)
    sum(out.losses).backward()
    assert all(u.warp_head.weight.grad.abs().sum() > 0 for u in m.units)


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_warp_max_must_be_positive(bad):
    with pytest.raises(ConfigError, match=r"^model\.warp_max=.* is out of range; expected > 0$"):
        Config.from_yaml(None, ["model.predict=warp", f"model.warp_max={bad}"])
