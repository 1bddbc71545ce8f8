"""model.flow_horizon: the flow heads predict the motion of frames t .. t+K-1 from r(t) (round 155)."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from prednet2 import ModelConfig, build_model
from prednet2.config import ConfigError
from prednet2.config_ranges import check_ranges
from prednet2.train_step import train_step
from tests.test_flow_target import inputs  # random clips, masks and flow (b, t, h, w)

SMALL = dict(channels=(4, 6, 8), stem=2, motion_channels=2, flow_weight=1.0, flow_units="ends")


def make(**over):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(ModelConfig(), **{**SMALL, **over}))


def test_heads_have_two_channels_per_frame_ahead_and_the_readout_reads_them_all():
    models = [make(flow_horizon=k) for k in (1, 2, 3)]
    assert [u.flow_head.out_channels for u in models[2].units if u.flow_head is not None] == [6, 6]
    x, mask, _ = inputs(t=5)
    widths = [[f.shape[1] for f in m.extract_features(x, mask).values()] for m in models]
    # f is split by sign, 4 channels per frame ahead (times the readout's time pools), on units 0 and 2 alone
    step = [widths[1][l] - widths[0][l] for l in range(3)]
    assert step[0] == step[2] > 0 and step[0] % 4 == 0 and step[1] == 0
    assert [widths[2][l] - widths[0][l] for l in range(3)] == [2 * s for s in step]


def test_the_term_is_the_mean_over_offsets_of_each_offsets_error_over_valid_steps_in_the_window():
    m = make(flow_horizon=3)
    x, mask, flow = inputs(t=5)
    out = m(x, mask, flow=flow)
    for l in (0, 2):
        head, grid = m.units[l].flow_head, 2 << l

        def err(t, k, head=head, grid=grid, l=l):  # r(t)'s prediction of frame t+k's motion
            v = head(out.states[l][:, t])[:, 2 * k : 2 * k + 2]
            return ((v - F.avg_pool2d(flow[:, t + k], grid)) ** 2).mean()

        # the first frame has no state before it; offset k reaches frame t+k only inside the window (T = 5)
        per_offset = [torch.stack([err(t, k) for t in range(1, 5 - k)]).mean() for k in range(3)]
        torch.testing.assert_close(out.stats[f"flow/{l}"], torch.stack(per_offset).mean())


def test_offsets_past_a_short_window_are_left_out_and_horizon_1_is_the_old_term():
    m1, m2 = make(), make(flow_horizon=2)
    # the same weights, and for frame t's motion K = 2's first two outputs are K = 1's head
    heads = {k: v for k, v in m1.state_dict().items() if "flow_head" in k}
    m2.load_state_dict({k: v for k, v in m1.state_dict().items() if k not in heads}, strict=False)
    with torch.no_grad():
        for k, v in heads.items():
            m2.state_dict()[k][:2].copy_(v)
    x, mask, flow = inputs(t=2)  # steps 0 and 1: only step 1 is valid, and frame 2 is outside the window
    torch.testing.assert_close(m2(x, mask, flow=flow).stats["flow/0"], m1(x, mask, flow=flow).stats["flow/0"])
    x, mask, flow = inputs(t=4)  # now offset 1 counts and the terms differ
    assert not torch.allclose(m2(x, mask, flow=flow).stats["flow/0"], m1(x, mask, flow=flow).stats["flow/0"])


def test_training_moves_the_ahead_outputs_and_their_error_falls():
    m = make(flow_horizon=2)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    x, mask, _ = inputs(b=2, t=6)
    flow = torch.zeros(2, 6, 2, 16, 16)
    flow[:, :, 0] = torch.arange(6.0).view(1, 6, 1, 1)  # speeding up: frame t+1's motion is not frame t's
    w0 = m.units[0].flow_head.weight[2:].clone()
    first = m(x, mask, flow=flow).stats["flow/0"].item()
    for _ in range(30):
        train_step(m, opt, x, mask, flow=flow, window=6)
    assert not torch.equal(m.units[0].flow_head.weight[2:], w0)
    assert m(x, mask, flow=flow).stats["flow/0"].item() < 0.5 * first


@pytest.mark.parametrize("over", [dict(flow_weight=0.0), dict(motion_channels=0)])
def test_refused_where_there_is_no_flow_head(over):
    with pytest.raises(ValueError, match="model.flow_horizon"):
        make(flow_horizon=2, **over)


def test_refused_below_1():
    with pytest.raises(ConfigError, match=r"^model\.flow_horizon=0 is out of range; expected >= 1$"):
        check_ranges(dataclasses.replace(ModelConfig(), flow_horizon=0), "model.")
