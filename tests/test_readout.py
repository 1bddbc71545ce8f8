"""prednet2.readout: ``readout_features`` is the probes' readout with gradients (what benchmarks/ceiling.py trains)."""

import dataclasses

import pytest
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


def test_a_part_on_its_own_grid_keeps_where_it_was_and_averages_to_the_whole_map_mean():
    x = clip()
    whole = make(readout="a,r", readout_bins=1).eval().extract_features(x)
    gridded = make(readout="a,r@2", readout_bins=1).eval().extract_features(x)
    wide = make(readout="a,r", readout_bins=1).eval().extract_features(x, grid=2)
    for l in whole:
        c = whole[l].shape[1] // 2  # a and r have C channels each
        assert gridded[l].shape[1] == c + 4 * c
        torch.testing.assert_close(gridded[l][:, :c], whole[l][:, :c])  # a: pooled over the whole map as before
        torch.testing.assert_close(gridded[l][:, c:], wide[l][:, 4 * c :])  # r: its 2x2 cells, channel-major
        cells = gridded[l][:, c:].view(-1, c, 4)
        torch.testing.assert_close(cells.mean(dim=2), whole[l][:, c:])  # the cells' mean is the whole map's


def test_a_part_grid_is_checked_and_the_flow_parts_keep_their_checks():
    from prednet2.readout import base_part, check_parts, parse_parts, part_grid

    assert parse_parts("a, r,f@4") == ["a", "r", "f@4"] and parse_parts("f,f@4") == ["f", "f@4"]
    assert [base_part(p) for p in ("f@4", "da")] == ["f", "da"] and [part_grid(p, 1) for p in ("f@4", "a")] == [4, 1]
    for bad in ("a@0", "a@17", "a@", "a@x", "a@02", "q@2"):
        with pytest.raises(ValueError, match=r"PART@G to pool it over a GxG grid, G 1 to 16"):
            parse_parts(f"r,{bad}")
    with pytest.raises(ValueError, match="names f@4 twice"):
        parse_parts("f@4,a,f@4")
    with pytest.raises(ValueError, match=r"reads the flow heads' prediction \(f\), but this model has none"):
        check_parts("a,f@2", has_flow_heads=False)
    with pytest.raises(ValueError, match=r"reads the warp heads' displacement \(w\)"):
        check_parts("a,w@2", has_flow_heads=True)
