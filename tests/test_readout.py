"""prednet2.readout: ``readout_features`` is the probes' readout with gradients (what benchmarks/ceiling.py trains)."""

import dataclasses

import torch

from prednet2 import ModelConfig, build_model
from prednet2.readout import readout_features


def make(**over):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(ModelConfig(), channels=(4, 6), stem=1, input_kernel=3, **over))


def clip(b=2, t=6):
    return torch.rand(b, t, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_same_values_as_extract_features():
    m = make().eval()
    x = clip()
    frozen = m.extract_features(x)
    live = readout_features(m, x)
    assert frozen.keys() == live.keys()
    for l in frozen:
        assert not frozen[l].requires_grad and live[l].requires_grad
        assert torch.allclose(frozen[l], live[l].detach(), atol=1e-6)


def test_extract_features_restores_training_mode():
    m = make().train()
    m.extract_features(clip())
    assert m.training


def _grad_reaching_unit0(detach_between: bool) -> float:
    m = make()
    readout_features(m, clip(), detach_between=detach_between)[1].sum().backward()
    return sum(float(p.grad.abs().sum()) for p in m.unit_parameters(0) if p.grad is not None)


def test_end_to_end_reaches_the_bottom_unit_local_does_not():
    # the top unit's features depend on unit 0 only through what unit 0 passes up: cut in local mode
    assert _grad_reaching_unit0(detach_between=False) > 0
    assert _grad_reaching_unit0(detach_between=True) == 0


def test_motion_energy_parts_hold_the_sign_of_the_motion():
    from prednet2.readout import _part

    x = torch.arange(32.0).view(1, 1, 1, 32).expand(1, 3, 8, 32)
    bump = lambda c: torch.exp(-((x - c) ** 2) / 8)  # noqa: E731
    pooled = {v: _part("av", bump(10 + v), bump(10), None, None, None).mean(dim=(2, 3)) for v in (-1, 1)}
    assert pooled[1].shape == (1, 6)  # x and y per channel
    assert (pooled[1][:, :3] < 0).all() and (pooled[-1][:, :3] > 0).all()  # about -v |grad|^2 per channel
    assert pooled[1][:, 3:].abs().max() < 1e-6  # nothing moved vertically
    assert _part("rv", None, None, bump(10), None, None).abs().max() == 0  # the first step: nothing came before
    m = make(readout="a,r,av,rv").eval()
    f = m.extract_features(clip())
    base = make(readout="a,r").eval().extract_features(clip())
    assert all(f[l].shape[1] == 3 * base[l].shape[1] for l in f)  # av and rv: 2C each beside a and r's C
