"""model.motion_loss=false: unit 0's motion part is input only; the error's loss reads its appearance channels."""

import dataclasses

import pytest
import torch

from prednet2 import ModelConfig, build_model
from prednet2.config import Config, ConfigError

SMALL = dict(channels=(4, 6), stem=1, input_kernel=3, readout_bins=1, motion_channels=3)


def run(**over):
    torch.manual_seed(0)
    m = build_model(dataclasses.replace(ModelConfig(), **{**SMALL, **over}))
    g = torch.Generator().manual_seed(1)
    clip, mask = torch.rand(2, 4, 3, 16, 16, generator=g), (torch.rand(2, 4, 1, 16, 16, generator=g) > 0.7).float()
    return m, m(clip, mask)


@pytest.mark.parametrize("error_loss", ["l2", "l1"])
def test_the_loss_reads_the_appearance_channels_and_the_error_units_keep_all(error_loss):
    m, on = run(error_loss=error_loss)
    _, off = run(error_loss=error_loss, motion_loss=False)
    C, k = m.units[0].target_channels, m.units[0].repr_channels
    assert torch.allclose(off.errors[0], on.errors[0])  # the same forward: E keeps the motion half, passed on
    E = off.errors[0][:, -1]  # the last step's error units (B, 2C, H, W)
    part = torch.cat([E[:, :k], E[:, C : C + k]], dim=1)
    sq = lambda x: x.pow(2).sum(dim=(1, 2, 3)) / (x.shape[1] // 2 * x.shape[2] * x.shape[3])  # noqa: E731  MSE
    loss = sq if error_loss == "l2" else (lambda x: x.mean(dim=(1, 2, 3)))  # noqa: E731
    assert torch.allclose(off.frame_errors[0][:, -1], loss(part), atol=1e-6)  # the per-frame loss: appearance
    assert torch.allclose(on.frame_errors[0][:, -1], loss(E), atol=1e-6)  # the default: every channel
    assert not torch.allclose(loss(part), loss(E))


def test_the_error_no_longer_trains_the_heads_motion_part_directly():
    grads = {}
    for flag in (True, False):
        m, out = run(motion_loss=flag, cov_weight=0.0, var_weight=0.0, bind_weight=0.0)
        out.losses[0].backward()
        k = m.units[0].repr_channels
        grads[flag] = m.units[0].head.weight.grad[k:].abs().sum()
    # what is left reaches it through the recurrence only (E's motion half is the next step's input)
    assert grads[False] < 0.1 * grads[True]


def test_refused_without_a_motion_stream():
    with pytest.raises((ConfigError, ValueError), match="model.motion_loss"):
        build_model(Config.from_dict({"model": {"motion_channels": 0, "motion_loss": False}}).model)
