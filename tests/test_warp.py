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


def test_warp_weight_adds_a_term_trains_the_displacement_and_keeps_the_prediction():
    """model.warp_weight: a warp term per unit beside the error; the prediction is the direct one, unchanged."""
    x = torch.rand(2, 5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    plain, aux = make(), make(warp_weight=1.0)
    assert all(u.warp_head is not None for u in aux.units)
    out_p, out_a = plain(x), aux(x)
    assert {"warp/0", "warp/1"} <= set(out_a.stats) and "warp/0" not in out_p.stats
    # the warp head starts at zero: its term is copy-last's squared error; the prediction is not a warp
    for l in range(2):
        copy = (out_a.targets[l][:, :-1] - out_a.targets[l][:, 1:]).pow(2).mean()
        assert torch.allclose(out_a.stats[f"warp/{l}"], copy, rtol=1e-4)
        assert not torch.allclose(out_a.preds[l][:, 1:], out_a.targets[l][:, :-1], atol=1e-3)
    assert out_a.losses[0] > out_p.losses[0] - 1e-6  # one more non-negative term
    sum(out_a.losses).backward()
    assert all(u.warp_head.weight.grad.abs().sum() > 0 for u in aux.units)


@pytest.mark.parametrize(
    "over,key",
    [
        (["model.predict=warp", "model.warp_weight=1"], "model.warp_weight"),
        (["model.blind_prob=0.2", "model.warp_weight=1"], "model.blind_prob"),
        (["model.warp_max=2"], "model.warp_max"),
    ],
)
def test_warp_options_that_do_nothing_or_clash_are_refused(over, key):
    with pytest.raises(ValueError, match=key):
        build_model(Config.from_yaml(None, over).model)
