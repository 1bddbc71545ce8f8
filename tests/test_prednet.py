import pytest
import torch

from prednet2 import Config, build_model
from prednet2.prednet import PredNet


def kitti(**over):
    cfg = Config.from_dict({"model": {"preset": "prednet", **over}})
    torch.manual_seed(0)
    return build_model(cfg.model)


def test_kitti_stack_shapes_match_the_original():
    # Lotter et al. 2016, KITTI: stack sizes (3, 48, 96, 192) at 128x160.
    m = kitti()
    assert isinstance(m, PredNet) and m.num_layers == 4
    out = m(torch.rand(1, 2, 3, 128, 160))
    a_shapes = [(3, 128, 160), (48, 64, 80), (96, 32, 40), (192, 16, 20)]
    for l, (c, h, w) in enumerate(a_shapes):
        assert out.targets[l].shape == (1, 2, c, h, w)  # A_l
        assert out.preds[l].shape == (1, 2, c, h, w)  # Â_l
        assert out.states[l].shape == (1, 2, c, h, w)  # R_l: R stack sizes equal the A stack sizes
        assert out.errors[l].shape == (1, 2, 2 * c, h, w)  # E_l
    assert out.preds[0].min() >= 0 and out.preds[0].max() <= 1  # SatLU
    assert len(out.losses) == 4
    assert all(out.losses[l].item() == 0 for l in (1, 2, 3))  # L_0 weights [1, 0, 0, 0]


def test_prednet_is_end_to_end_and_top_down_is_same_time():
    m = kitti(channels=[3, 4, 6], layer_weights=[1.0, 0.0, 0.0])
    x = torch.rand(2, 3, 3, 16, 16)
    out = m(x)
    sum(out.losses).backward()
    # the pixel loss alone trains every layer (through the targets A_l and the same-t top-down input)
    for u in m.units:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in u.parameters())


def test_prednet_step_equals_forward_and_t0_has_no_loss():
    m = kitti(channels=[3, 4, 6], layer_weights=[1.0, 0.1, 0.1])
    x = torch.rand(2, 3, 3, 16, 16)
    out = m(x)
    assert torch.all(out.frame_errors[0][:, 0] == 0)
    state = None
    for t in range(3):
        so, state = m.step(x[:, t], state)
        torch.testing.assert_close(so.preds[0], out.preds[0][:, t])
    torch.testing.assert_close(out.losses[1], 0.1 * out.frame_errors[1][:, 1:].mean())


def test_prednet_grayscale_and_features_and_size_error():
    m = kitti(in_channels=1, channels=[3, 4, 6], layer_weights=[1.0, 0.0, 0.0])
    x = torch.rand(2, 2, 1, 16, 16)
    assert m(x).targets[0].shape == (2, 2, 1, 16, 16)
    feats = m.extract_features(x)
    assert feats[0].shape == (2, 1 + 3) and feats[2].shape == (2, 12)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        m(torch.rand(1, 2, 1, 18, 16))


@pytest.mark.parametrize("over", [{"pass_up": "error+state"}, {"horizon": 2}, {"readout": "a,r"}, {"cell": "gru"}])
def test_stack_only_options_are_refused_by_name(over):
    """An option PredNet would silently ignore is an error naming the key (the trainer turns it into exit 2)."""
    key = next(iter(over))
    with pytest.raises(ValueError, match=f"model.{key}=.*not used by the PredNet baseline"):
        kitti(channels=[3, 4], layer_weights=[1.0, 0.0], **over)


def test_use_ext_op_false_runs_the_torch_reference_with_the_same_result(monkeypatch):
    import prednet2.prednet as pn

    fused = kitti(channels=[3, 4], layer_weights=[1.0, 0.0])
    ref = kitti(channels=[3, 4], layer_weights=[1.0, 0.0], use_ext_op=False)
    ref.load_state_dict(fused.state_dict())
    x = torch.rand(2, 3, 3, 16, 16)
    want = fused(x).losses[0]

    def no_fused_op(*a, **k):
        raise AssertionError("the fused op was called")

    monkeypatch.setattr(pn, "error_loss", no_fused_op)
    torch.testing.assert_close(ref(x).losses[0], want)  # the reference alone, same value
    with pytest.raises(AssertionError, match="fused op"):
        fused(x)


def test_prednet_refuses_bad_inputs_as_the_stack_does():
    """The stack's input checks (prednet2.stack_checks) guard the baseline too: dtype, channels, layout, state."""
    m = kitti(channels=[3, 4, 6], layer_weights=[1.0, 0.0, 0.0])
    x = torch.rand(2, 2, 3, 16, 16)
    with pytest.raises(TypeError, match=r"torch.uint8.*/ 255"):
        m((x * 255).byte())
    with pytest.raises(ValueError, match="1 channel at dim 2.*takes 3"):
        m(x[:, :, :1])
    with pytest.raises(ValueError, match=r"expected a clip \(B, T, C, H, W\).*unsqueeze\(0\)"):
        m.extract_features(x[0])
    with pytest.raises(ValueError, match="divide 0-255 frames by 255"):
        m.step(x[:, 0] * 255)
    with pytest.raises(ValueError, match="state: made for a batch of 2"):
        m.step(x[:1, 1], m.step(x[:, 0])[1])
