import dataclasses

import pytest
import torch
import torch.nn.functional as F

from prednet2 import Config, ModelConfig, PredictiveStack, build_model, detach_state

SMALL = dict(channels=(4, 6, 8), stem=1, input_kernel=3)


def make(**over) -> PredictiveStack:
    torch.manual_seed(0)
    return build_model(dataclasses.replace(ModelConfig(), **{**SMALL, **over}))


def clip(b=2, t=4, c=3, h=16, w=16):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, t, c, h, w, generator=g)


def test_forward_shapes_and_finite():
    m = make()
    x = clip()
    out = m(x)
    assert m.num_layers == 3 and len(out.losses) == 3
    for l, (c, s) in enumerate(zip((4, 6, 8), (16, 8, 4))):
        assert out.preds[l].shape == (2, 4, c, s, s)
        assert out.targets[l].shape == (2, 4, c, s, s)
        assert out.errors[l].shape == (2, 4, 2 * c, s, s)
        assert out.states[l].shape == (2, 4, c, s, s)
        assert out.frame_errors[l].shape == (2, 4)
        assert out.losses[l].dim() == 0 and torch.isfinite(out.losses[l])
    for k in ("err/0", "var/0", "cov/0", "err/2"):
        assert k in out.stats and not out.stats[k].requires_grad


def test_cov_weights_per_unit():
    """model.cov_weights replaces cov_weight unit by unit; the rest of each unit's loss is unchanged."""
    x = clip()
    base = make(motion_channels=0)(x)
    per = make(motion_channels=0, cov_weights=(0.0, 0.04, 1.0))(x)
    for l, w in enumerate((0.0, 0.04, 1.0)):
        want = base.losses[l] + (w - 0.04) * base.stats[f"cov/{l}"]
        torch.testing.assert_close(per.losses[l].detach(), want.detach())
    assert base.stats["cov/2"] > 0


def test_no_error_loss_at_t0():
    m = make()
    out = m(clip(t=1))
    for l in range(3):
        assert out.stats[f"err/{l}"].item() == 0.0
        assert torch.all(out.frame_errors[l][:, 0] == 0)
    out = m(clip(t=3))
    assert torch.all(out.frame_errors[0][:, 0] == 0) and torch.all(out.frame_errors[0][:, 1:] > 0)
    # the error loss is the mean over t >= 1 only
    want = out.frame_errors[1][:, 1:].mean()
    torch.testing.assert_close(out.stats["err/1"], want)


def test_loss_backward_with_single_frame_and_no_anti_collapse():
    m = make(anti_collapse="none")
    out = m(clip(t=1))
    sum(out.losses).backward()  # a zero but differentiable loss, so a trainer's backward never fails


def test_step_equals_forward():
    m = make()
    x = clip(t=5)
    out = m(x)
    state = None
    for t in range(5):
        so, state = m.step(x[:, t], state)
        for l in range(3):
            torch.testing.assert_close(so.preds[l], out.preds[l][:, t])
            torch.testing.assert_close(so.errors[l], out.errors[l][:, t])
            torch.testing.assert_close(so.states[l], out.states[l][:, t])
    torch.testing.assert_close(state.r[2], out.state.r[2])


def test_windows_continue_the_state():
    m = make()
    x = clip(t=6)
    full = m(x)
    w1 = m(x[:, :3])
    w2 = m(x[:, 3:], state=detach_state(w1.state))
    for l in range(3):
        torch.testing.assert_close(w2.preds[l], full.preds[l][:, 3:])
        assert torch.all(w2.frame_errors[l] > 0)  # the window's first step has a prediction: it counts


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"cell": "lstm"},
        {"pass_up": "repr"},
        {"pass_up": "state"},
        {"pass_up": "error+state"},
        {"anti_collapse": "infonce"},
        {"target_mode": "ema"},
        {"target": "pixel"},
        {"motion_channels": 3},
        {"lateral": False},
        {"feedback": False},
        {"stem": 2, "motion_channels": 2},
    ],
)
def test_gradient_isolation_local_mode(over):
    m = make(**over)
    x = clip(t=4)
    mask = (torch.rand(2, 4, 1, 16, 16) > 0.5).float() if over.get("motion_channels") else None
    for l in range(3):
        m.zero_grad(set_to_none=True)
        out = m(x, mask)
        out.losses[l].backward()
        for k, u in enumerate(m.units):
            grads = [p.grad for p in u.parameters() if p.requires_grad]
            if k == l:
                assert any(g is not None and g.abs().sum() > 0 for g in grads), f"unit {l} got no gradient"
            else:
                assert all(g is None or torch.all(g == 0) for g in grads), f"loss {l} leaked into unit {k}"


@pytest.mark.parametrize("pass_up", ["error", "repr", "state", "error+state"])
def test_pass_up_hands_the_named_tensor_to_the_unit_above(pass_up):
    """Unit 1's input at step t is the 2x2 max-pool of unit 0's E, a, r or cat(E, r) at the same step."""
    m = make(pass_up=pass_up)
    seen = []
    m.units[1].enc.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    x = clip(t=3)
    out = m(x)
    for t, s in enumerate(out.steps):
        e, r = s.errors[0], s.states[0]
        a = s.targets[0]  # stop-gradient target == a in value
        want = {"error": e, "repr": a, "state": r, "error+state": torch.cat([e, r], 1)}[pass_up]
        torch.testing.assert_close(seen[t], F.max_pool2d(want, 2))


def test_gradients_cross_units_end_to_end():
    m = make()
    out = m(clip(t=4), detach_between=False)
    out.losses[2].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.units[0].parameters())
    m.zero_grad(set_to_none=True)
    out = m(clip(t=4), detach_between=False)
    out.losses[0].backward()  # via the top-down input up(r_1(t-1))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.units[1].parameters())


def test_size_not_multiple_of_stride():
    m = make(stem=2)  # total stride 2 * 2^2 = 8
    assert m.stride == 8
    with pytest.raises(ValueError, match=r"20x16 is not a multiple of 8"):
        m(torch.rand(1, 2, 3, 20, 16))


def test_extract_features_shapes_no_grad_and_mode():
    m = make()
    m.train()
    feats = m.extract_features(clip(t=3))
    assert m.training
    assert sorted(feats) == [0, 1, 2]
    for l, c in enumerate((4, 6, 8)):
        assert feats[l].shape == (2, 3 * c * 3)  # the default readout a,r,da: the whole clip and two time bins
        assert not feats[l].requires_grad
    grid = m.extract_features(clip(t=3), grid=2)
    assert grid[0].shape == (2, 3 * 4 * 4 * 3)


def test_motion_stream_shapes_and_errors():
    m = make(motion_channels=3)
    x = clip(t=3)
    mask = (torch.rand(2, 3, 1, 16, 16) > 0.5).float()
    out = m(x, mask)
    assert out.targets[0].shape == (2, 3, 4 + 3, 16, 16)
    assert out.preds[0].shape == (2, 3, 7, 16, 16)
    assert out.errors[0].shape == (2, 3, 14, 16, 16)
    assert "bind" in out.stats and out.stats["bind"] > 0
    # a (rgb + motion), r, da and f (the default flow heads sit on the first and the last unit); whole + 2 bins
    assert m.extract_features(x, mask)[0].shape == (2, (7 + 4 + 7 + 4) * 3)
    with pytest.raises(ValueError, match="motion_channels=3 needs motion masks"):
        m(x)


def test_motion_error_weight_counts_moving_positions_more():
    """model.motion_error_weight: unit l's error is the mean weighted by 1 + lambda * (mask max-pooled to its grid);
    a uniform mask (all still or all moving) leaves the plain mean, a partial one changes it to exactly that."""
    from prednet2.ops import reference_error_unit

    def make_l1(**over):  # the check below is on the L1 frame error
        return make(error_loss="l1", **over)

    x = clip(t=3)
    part = torch.zeros(2, 3, 1, 16, 16)
    part[..., :6, :5] = 1.0
    plain = make_l1(motion_channels=2)(x, part)
    for mask in (torch.zeros_like(part), torch.ones_like(part)):
        same = make_l1(motion_channels=2, motion_error_weight=4.0)(x, mask)
        ref = make_l1(motion_channels=2)(x, mask)
        for l in range(3):
            assert torch.allclose(same.stats[f"err/{l}"], ref.stats[f"err/{l}"], atol=1e-6)
    m = make_l1(motion_channels=2, motion_error_weight=4.0)
    out = m(x, part)
    for l in range(3):
        w = 1.0 + 4.0 * F.max_pool2d(part[:, 2], 2**l) if l else 1.0 + 4.0 * part[:, 2]
        _, want = reference_error_unit(out.preds[l][:, 2], out.targets[l][:, 2], w)
        assert torch.allclose(out.steps[2].frame_errors[l], want, atol=1e-5)
        assert not torch.allclose(out.stats[f"err/{l}"], plain.stats[f"err/{l}"])
    with pytest.raises(ValueError, match="model.motion_error_weight .* no motion stream"):
        make(motion_channels=0, motion_error_weight=1.0)


def test_motion_binding_loss_decreases_on_matched_toy():
    # Clip b shows one square of size 2 + b whose mask is that square: RGB and motion co-occur per clip, so pooled
    # projections can learn to match (the two frames of a clip are alike, so the floor is about log 2, not 0).
    m = make(motion_channels=4, bind_weight=1.0)
    x = torch.zeros(8, 2, 3, 16, 16)
    mask = torch.zeros(8, 2, 1, 16, 16)
    for b in range(8):
        s = 2 + b
        x[b, :, :, 1 : 1 + s, 2 : 2 + s] = 1.0
        mask[b, :, :, 1 : 1 + s, 2 : 2 + s] = 1.0
    opt = torch.optim.Adam(m.units[0].parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        out = m(x, mask)
        bind = out.stats["bind"].item()
        first = bind if first is None else first
        opt.zero_grad()
        out.losses[0].backward()
        opt.step()
    assert bind < 0.6 * first, (first, bind)


def test_ema_target_and_update():
    m = make(target_mode="ema", ema_momentum=0.5)
    u = m.units[1]
    with torch.no_grad():
        u.enc.conv.weight.add_(1.0)
    before = u.enc_target.conv.weight.clone()
    m.update_ema()
    torch.testing.assert_close(u.enc_target.conv.weight, 0.5 * before + 0.5 * u.enc.conv.weight)
    assert not any(p.requires_grad for p in u.enc_target.parameters())


def test_pixel_mode_layer0_target_is_the_frame():
    m = make(target="pixel")
    x = clip(t=2)
    out = m(x)
    torch.testing.assert_close(out.targets[0], x)
    assert out.preds[0].min() >= 0 and out.preds[0].max() <= 1
    assert "var/0" not in out.stats  # nothing to collapse at the pixel layer


def test_stem_space_to_depth():
    m = make(stem=2)
    out = m(clip(t=2))
    assert out.preds[0].shape == (2, 2, 4, 8, 8)
    assert out.preds[2].shape == (2, 2, 8, 2, 2)


def test_build_model_motion_off_from_config():
    cfg = Config.from_dict(
        {
            "model": {**{k: list(v) if isinstance(v, tuple) else v for k, v in SMALL.items()}, "motion_channels": 3},
            "motion": {"enabled": False},
        }
    )
    assert build_model(cfg).cfg.motion_channels == 0
    assert build_model(cfg.model).cfg.motion_channels == 3


@pytest.mark.parametrize(
    "key,val",
    [
        ("cell", "rnn"),
        ("pass_up", "x"),
        ("anti_collapse", "y"),
        ("target", "z"),
        ("layer_weights", (1.0,)),
        ("cov_weights", (0.1, 0.1)),
        ("hidden_channels", (8, 8, 8, 8)),
        ("arch", "transformer"),
    ],
)
def test_bad_model_config(key, val):
    with pytest.raises(ValueError, match=f"model.{key}"):
        make(**{key: val})


@pytest.mark.parametrize("over", [{"change_weight": 0.5}, {"cov_weights": (0.1, 0.1, 0.1)}])
@pytest.mark.parametrize("mode", ["none", "infonce"])
def test_vicreg_only_options_are_refused_without_vicreg(over, mode):
    """They would do nothing there; the error names the key and the mode."""
    key = next(iter(over))
    with pytest.raises(ValueError, match=f"model.{key} applies to model.anti_collapse=vicreg only.*'{mode}'"):
        make(anti_collapse=mode, **over)
    make(**over)  # with vicreg (the default) the same option builds


# ---- plausible input mistakes: refused by name, with the shape got and expected, before torch fails deep inside ----
def _bad_input_cases():
    x, mask = clip(), torch.ones(2, 4, 1, 16, 16)
    plain, motion = make(), make(motion_channels=2)
    state = plain(x).state
    return [
        ("bcthw", lambda: plain(x.permute(0, 2, 1, 3, 4)), ValueError, ["clip: 4 channels", "permute(0, 2, 1, 3, 4)"]),
        ("no_batch", lambda: plain(x[0]), ValueError, ["(B, T, C, H, W)", "(4, 3, 16, 16)", "unsqueeze(0)"]),
        ("uint8", lambda: plain((x * 255).byte()), TypeError, ["torch.uint8", "/ 255"]),
        ("0_255_floats", lambda: plain(x * 255), ValueError, ["floats in [0, 1]", "divide 0-255 frames by 255"]),
        ("minus1_1", lambda: plain(x * 2 - 1), ValueError, ["floats in [0, 1]", "[-1, 1]"]),
        ("grayscale", lambda: plain(x[:, :, :1]), ValueError, ["1 channel at dim 2", "takes 3", "model.in_channels"]),
        ("no_frames", lambda: plain(x[:, :0]), ValueError, ["no frames (T=0"]),
        ("list", lambda: plain(list(x.unbind(1))), TypeError, ["got list", "torch.stack(frames, dim=1)"]),
        ("mask_no_channel", lambda: motion(x, mask[:, :, 0]), ValueError, ["(2, 4, 1, 16, 16)", "mask.unsqueeze(2)"]),
        ("mask_short", lambda: motion(x, mask[:, :2]), ValueError, ["mask: expected shape (2, 4, 1, 16, 16)"]),
        ("mask_bool", lambda: motion(x, mask.bool()), TypeError, ["mask: expected floats", "torch.bool"]),
        ("mask_as_state", lambda: motion(x, None, mask), TypeError, ["state: expected the StackState", "mask=mask"]),
        ("step_mask_as_state", lambda: motion.step(x[:, 0], mask[:, 0]), TypeError, ["state: expected the StackState"]),
        ("step_clip", lambda: plain.step(x), ValueError, ["expected a frame (B, C, H, W)", "clip[:, t]"]),
        ("step_no_batch", lambda: plain.step(x[0, 0]), ValueError, ["frame.unsqueeze(0)"]),
        ("state_batch", lambda: plain.step(x[:1, 0], state), ValueError, ["batch of 2 at 16x16", "batch of 1"]),
        ("state_size", lambda: plain(clip(h=32, w=32), state=state), ValueError, ["at 16x16", "at 32x32"]),
        ("features_bcthw", lambda: plain.extract_features(x.permute(0, 2, 1, 3, 4)), ValueError, ["4 channels"]),
        ("features_grid0", lambda: plain.extract_features(x, grid=0), ValueError, ["grid: expected an integer >= 1"]),
        ("features_mask", lambda: motion.extract_features(x, mask[:, :2]), ValueError, ["mask: expected shape"]),
    ]


@pytest.mark.parametrize("i", range(20))
def test_bad_inputs_are_refused_with_what_was_expected(i):
    name, call, exc, says = _bad_input_cases()[i]
    with pytest.raises(exc) as e:
        call()
    assert all(s in str(e.value) for s in says), (name, str(e.value))


def test_input_checks_leave_valid_inputs_alone():
    """Frames a little outside [0, 1] (resampling overshoot, noise) pass; a mask is only checked where it is read."""
    x = clip()
    torch.testing.assert_close(make()(x).losses[0], make()(x).losses[0])
    make()((x + 0.1 * torch.randn_like(x)).clamp(-0.25, 1.25))
    make()(x, torch.ones(2, 4, 3, 16, 16))  # no motion stream: the mask is not read, so not checked, as before
