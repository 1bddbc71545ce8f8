"""model.flow_detach (the flow target trains the heads alone) and the readout part ``f`` (the heads' prediction)."""

import dataclasses

import pytest
import torch

from prednet2 import ModelConfig, build_model
from prednet2.readout import check_parts, extract_features, orientation_histogram
from tests.test_flow_target import SMALL, inputs, make  # the same tiny stack with flow heads, and its inputs


def heads_read_by_hand(m, x, mask, unit: int, part) -> torch.Tensor:
    """``part`` of unit ``unit``'s flow head prediction at each step, mean-pooled over space and the clip's steps."""
    m.eval()
    state, total = None, 0.0
    with torch.no_grad():
        for t in range(x.shape[1]):
            out, state = m.step(x[:, t], state, mask[:, t], compute_losses=False)
            total = total + part(m.units[unit].predict_flow(out.states[unit], state.a[unit])).mean(dim=(2, 3))
    return total / x.shape[1]


def test_detached_heads_learn_and_the_stack_learns_as_without_the_flow_target():
    x, mask, flow = inputs()
    attached, detached = make(), make(flow_detach=True)
    detached.load_state_dict(attached.state_dict())  # the same weights: only what the flow term trains differs
    plain = make(flow_weight=0.0)
    plain.load_state_dict({k: v for k, v in attached.state_dict().items() if "flow_head" not in k})
    out_d, out_a, out_p = detached(x, mask, flow=flow), attached(x, mask, flow=flow), plain(x, mask)
    for l in range(3):  # the term is the same number either way; detaching changes where its gradient goes
        torch.testing.assert_close(out_d.stats[f"flow/{l}"], out_a.stats[f"flow/{l}"])
    sum(out_d.losses).backward()
    sum(out_a.losses).backward()
    sum(out_p.losses).backward()
    for ud, ua, up in zip(detached.units, attached.units, plain.units):
        assert ud.flow_head.weight.grad.abs().sum() > 0
        body_d = [p.grad for n, p in ud.named_parameters() if "flow_head" not in n]
        body_a = [p.grad for n, p in ua.named_parameters() if "flow_head" not in n]
        body_p = [p.grad for n, p in up.named_parameters()]
        for gd, gp in zip(body_d, body_p):  # detached: the body's gradient is the plain stack's, exactly
            assert (gd is None) == (gp is None)
            if gd is not None:
                torch.testing.assert_close(gd, gp)
        assert any(  # attached: the flow term reaches the body
            gd is not None and not torch.allclose(gd, ga) for gd, ga in zip(body_d, body_a)
        )


def test_part_f_is_the_heads_prediction_split_by_sign_and_empty_for_units_without_a_head():
    m = make(flow_weights=(1.0, 0.0, 1.0), flow_detach=True, readout="a,f", readout_bins=1)
    x, mask, _ = inputs(t=3)
    feats = extract_features(m, x, mask)
    m.cfg = dataclasses.replace(m.cfg, readout="a")
    only_a = extract_features(m, x, mask)
    c = [only_a[l].shape[1] for l in range(3)]
    for l, extra in zip(range(3), (4, 0, 4)):
        assert feats[l].shape == (2, c[l] + extra)
        torch.testing.assert_close(feats[l][:, : c[l]], only_a[l])
    want = heads_read_by_hand(m, x, mask, 0, lambda f: torch.cat([f.relu(), (-f).relu()], dim=1))
    torch.testing.assert_close(feats[0][:, c[0] :], want)
    assert (feats[0][:, c[0] :] >= 0).all()


def test_part_f_and_flow_detach_are_refused_without_flow_heads():
    with pytest.raises(ValueError, match=r"model.readout: 'a,f' reads the flow heads' prediction \(f\), but this"):
        make(flow_weight=0.0, readout="a,f")
    with pytest.raises(ValueError, match="model.flow_detach says what the flow heads train, but this model has none"):
        make(flow_weight=0.0, flow_detach=True)
    assert check_parts("a,r,f", True) == ["a", "r", "f"]
    with pytest.raises(ValueError, match="names f twice"):
        check_parts("f,a,f", True)


def test_part_w_is_the_warp_heads_displacement_split_by_sign_and_refused_without_warp_heads():
    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig(), **SMALL, warp_weight=1.0, readout="a,w", readout_bins=1)
    m = build_model(cfg)
    x, mask, _ = inputs(t=3)
    assert all(u.warp_head is not None for u in m.units)
    zero = extract_features(m, x, mask)  # the heads start at zero: w reads zeros at random init
    assert all(torch.all(zero[l][:, -4:] == 0) for l in range(3))
    for u in m.units:
        torch.nn.init.normal_(u.warp_head.weight)
    feats = extract_features(m, x, mask)
    m.eval()
    state, want = None, torch.zeros(2, 4)
    with torch.no_grad():
        for t in range(3):
            out, state = m.step(x[:, t], state, mask[:, t], compute_losses=False)
            d = m.units[1].displacement(out.states[1])
            want += torch.cat([d.relu(), (-d).relu()], dim=1).mean(dim=(2, 3)) / 3
    torch.testing.assert_close(feats[1][:, -4:], want)
    with pytest.raises(ValueError, match=r"model.readout: 'a,w' reads the warp heads' displacement \(w\), but this"):
        make(flow_weight=0.0, readout="a,w")
    assert check_parts("a,w", False, True) == ["a", "w"]


def test_orientation_histogram_shares_each_vectors_length_between_its_two_nearest_directions():
    s = 2**-0.5
    # (u, v) per pixel: +u, +v at length 2, the diagonal (-1, -1), 22.5 degrees (half way between bins 0 and 1)
    c, d = torch.cos(torch.tensor(torch.pi / 8)), torch.sin(torch.tensor(torch.pi / 8))
    v = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-s, -s], [3 * c, 3 * d]]).T.reshape(1, 2, 4, 1)
    h = orientation_histogram(v)
    assert h.shape == (1, 8, 4, 1)
    want = torch.zeros(4, 8)
    want[0, 0], want[1, 2], want[2, 5], want[3, 0], want[3, 1] = 1.0, 2.0, 1.0, 1.5, 1.5
    torch.testing.assert_close(h[0, :, :, 0].T, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(h.sum(1), torch.tensor([1.0, 2.0, 1.0, 3.0]).view(1, 4, 1))  # bins sum to the length
    # K = 2 predicted frames: each frame's 8 bins in turn; a zero vector adds (almost) nothing
    two = orientation_histogram(torch.tensor([0.0, 1.0, 0.0, 0.0]).view(1, 4, 1, 1))
    assert two.shape == (1, 16, 1, 1) and two[0, 2, 0, 0] == pytest.approx(1.0) and two[0, 8:].abs().max() < 1e-5


def test_part_fo_is_the_heads_prediction_as_orientation_bins_and_refused_without_flow_heads():
    m = make(flow_weights=(1.0, 0.0, 1.0), flow_detach=True, readout="a,fo", readout_bins=1)
    x, mask, _ = inputs(t=3)
    feats = extract_features(m, x, mask)
    m.cfg = dataclasses.replace(m.cfg, readout="a")
    c = [extract_features(m, x, mask)[l].shape[1] for l in range(3)]
    for l, extra in zip(range(3), (8, 0, 8)):
        assert feats[l].shape == (2, c[l] + extra)
    torch.testing.assert_close(feats[2][:, c[2] :], heads_read_by_hand(m, x, mask, 2, orientation_histogram))
    with pytest.raises(ValueError, match=r"model.readout: 'a,fo' reads the flow heads' prediction \(fo\), but this"):
        make(flow_weight=0.0, readout="a,fo")
