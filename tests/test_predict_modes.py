"""model.predict=residual, model.horizon and model.readout: what they add to the stack, and that they train."""

import dataclasses

import pytest
import torch

from prednet2 import ModelConfig, build_model

SMALL = dict(channels=(4, 6), stem=1, input_kernel=3)


def make(**over):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(ModelConfig(), **{**SMALL, **over}))


def clip(b=2, t=5):
    return torch.rand(b, t, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_residual_starts_at_copy_last():
    m = make(predict="residual")
    out = m(clip())
    # zero-initialised change heads: the prediction of t is the representation at t-1
    for l in range(2):
        assert torch.allclose(out.preds[l][:, 1:], out.targets[l][:, :-1], atol=1e-6)


def test_residual_learns_to_beat_copy_last_on_constant_motion():
    """A bar moving one pixel per frame: the change is predictable, so residual prediction goes below copy-last."""
    torch.manual_seed(0)
    m = make(predict="residual", channels=(4,))
    T = 8
    x = torch.zeros(4, T, 3, 16, 16)
    for t in range(T):
        x[:, t, :, :, (2 + t) % 16] = 1.0
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(150):
        out = m(x)
        opt.zero_grad()
        out.losses[0].backward()
        opt.step()
    out = m(x)
    pred, tgt = out.preds[0][:, 2:], out.targets[0][:, 2:]
    copy = out.targets[0][:, 1:-1]
    assert (pred - tgt).pow(2).mean() < 0.7 * (copy - tgt).pow(2).mean()


def test_horizon_adds_a_term_per_layer_and_trains_the_extra_heads():
    m = make(horizon=3)
    out = m(clip(t=5))
    assert {"ahead/0", "ahead/1"} <= set(out.stats)
    sum(out.losses).backward()
    for u in m.units:
        assert len(u.heads_ahead) == 2
        assert all(h.weight.grad is not None and h.weight.grad.abs().sum() > 0 for h in u.heads_ahead)
    # no further-horizon pair fits in a 2-step window: no term, no error
    assert "ahead/0" not in make(horizon=3)(clip(t=2)).stats


@pytest.mark.parametrize(
    "readout,bins,width0", [("a,r", 1, 8), ("a,r,e,da", 1, 20), ("a", 2, 8), ("r,da", 3, 24), ("r,rw,aw", 1, 12)]
)
def test_readout_parts_and_bins(readout, bins, width0):
    m = make(readout=readout, readout_bins=bins)
    f = m.extract_features(clip(t=6))
    assert f[0].shape == (2, width0)
    assert torch.isfinite(f[1]).all()


def test_readout_bins_are_time_segments():
    m = make(readout="a", readout_bins=2)
    x = clip(t=4)
    f = m.extract_features(x)[0]
    first = make(readout="a")  # the same weights: pooled over the first two frames only
    assert torch.allclose(f[:, :4], first.extract_features(x[:, :2])[0], atol=1e-6)


@pytest.mark.parametrize(
    "over,match",
    [({"predict": "delta"}, "model.predict"), ({"horizon": 0}, "model.horizon"),
     ({"readout": "a,x"}, "model.readout"), ({"readout_bins": 0}, "model.readout_bins")],
)  # fmt: skip
def test_bad_values_name_the_key(over, match):
    with pytest.raises(ValueError, match=match):
        make(**over)
