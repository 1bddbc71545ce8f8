"""model.predict=residual, model.horizon and model.readout: what they add to the stack, and that they train."""

import dataclasses

import pytest
import torch

from prednet2 import ModelConfig, build_model
from prednet2.losses import arrow_loss, error_loss, squared_error

SMALL = dict(channels=(4, 6), stem=1, input_kernel=3, readout_bins=1)  # one mean over the clip unless a test asks


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


def _fit(m, x, steps: int) -> None:
    """Adam on unit 0's loss over the same clip batch ``x`` for ``steps`` steps."""
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(steps):
        out = m(x)
        opt.zero_grad()
        out.losses[0].backward()
        opt.step()


def test_residual_learns_to_beat_copy_last_on_constant_motion():
    """A bar moving one pixel per frame: the change is predictable, so residual prediction goes below copy-last."""
    torch.manual_seed(0)
    m = make(predict="residual", channels=(4,))
    T = 8
    x = torch.zeros(4, T, 3, 16, 16)
    for t in range(T):
        x[:, t, :, :, (2 + t) % 16] = 1.0
    _fit(m, x, 150)
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
    "readout,bins,width0",
    [
        ("a,r", 1, 8),
        ("a,r,e,da", 1, 20),
        ("a", 2, 8),
        ("r,da", 3, 24),
        ("r,rw,aw", 1, 12),
        ("dr", 1, 4),
        ("a,am", 1, 12),
        ("rm", 2, 16),
    ],
)
def test_readout_parts_and_bins(readout, bins, width0):
    m = make(readout=readout, readout_bins=bins, readout_whole=False)
    f = m.extract_features(clip(t=6))
    assert f[0].shape == (2, width0)
    assert torch.isfinite(f[1]).all()


def test_a_readout_part_named_twice_is_refused():
    with pytest.raises(ValueError, match="model.readout: 'a,r,a' names a twice"):
        make(readout="a,r,a")


def test_moment_parts_are_where_each_channel_s_mass_lies():
    from prednet2.readout import _part, _pool

    a = torch.zeros(1, 2, 3, 5)
    a[0, 0, :, -1] = 1.0  # channel 0: mass in the right column
    a[0, 1, 0, :] = 1.0  # channel 1: mass in the top row
    m = _pool(_part("am", a, None, a * 0, None, a * 0), 1, "mean")[0]  # x of ch 0, 1, then y of ch 0, 1
    assert torch.allclose(m, torch.tensor([3 / 15, 0.0, 0.0, -5 / 15]))
    assert torch.equal(_part("rm", a * 0, None, a, None, a * 0), _part("am", a, None, a * 0, None, a * 0))


def test_readout_warmup_settles_the_state_and_reads_only_the_clip():
    x = clip(t=5)
    plain = make(readout="a,r").extract_features(x)
    assert all(torch.equal(f, g) for f, g in zip(plain.values(), make(readout="a,r", readout_warmup=0)
                                                 .extract_features(x).values()))  # fmt: skip
    warm = make(readout="a,r", readout_warmup=3).extract_features(x)
    assert warm[0].shape == plain[0].shape  # the warm-up steps are not pooled
    assert torch.allclose(warm[0][:, :4], plain[0][:, :4])  # unit 0's a sees the frame only: the same
    assert not torch.allclose(warm[0][:, 4:], plain[0][:, 4:])  # its state starts settled: not the same
    # a still first frame held for the warm-up: reading the clip after it is reading frames 0,0,0,0.. from frame 3
    still = torch.cat([x[:, :1].expand(-1, 3, -1, -1, -1), x], dim=1)
    m = make(readout="r", readout_bins=2, readout_whole=False)
    both = m.extract_features(still[:, :6])[1]  # bins of 3 frames: the warm-up, then frames 0-2
    assert torch.allclose(both[:, 6:], make(readout="r", readout_warmup=3).extract_features(x[:, :3])[1], atol=1e-6)
    with pytest.raises(ValueError, match="readout_warmup"):
        make(readout_warmup=-1)


def test_readout_reverse_adds_what_time_s_arrow_changes():
    x = clip(t=5)
    plain = make(readout="a,r", readout_bins=2).extract_features(x)
    both = make(readout="a,r", readout_bins=2, readout_reverse=True).extract_features(x)
    back = make(readout="a,r", readout_bins=2).extract_features(x.flip(1))
    for l, f in plain.items():
        assert both[l].shape == (2, 2 * f.shape[1])
        assert torch.allclose(both[l][:, : f.shape[1]], f, atol=1e-6)  # the default features first
        assert torch.allclose(both[l][:, f.shape[1] :], f - back[l], atol=1e-6)  # then forwards minus backwards
    palindrome = torch.cat([x, x.flip(1)[:, 1:]], dim=1)  # frames 0 1 2 3 4 3 2 1 0: the same either way
    p = make(readout="a,r", readout_reverse=True).extract_features(palindrome)
    assert all(v[:, v.shape[1] // 2 :].abs().max() < 1e-5 for v in p.values())


def test_readout_bins_are_time_segments():
    m = make(readout="a", readout_bins=2, readout_whole=False)
    x = clip(t=4)
    f = m.extract_features(x)[0]
    first = make(readout="a")  # the same weights: pooled over the first two frames only
    assert torch.allclose(f[:, :4], first.extract_features(x[:, :2])[0], atol=1e-6)


def test_readout_whole_puts_the_clip_mean_before_the_bins():
    x = clip(t=5)  # bins of 3 and 2 frames: the whole-clip mean weights each frame alike, not each bin
    m = make(readout="a", readout_bins=2, readout_whole=True)
    f = m.extract_features(x)[0]
    assert f.shape == (2, 12)
    plain = make(readout="a")
    assert torch.allclose(f[:, :4], plain.extract_features(x)[0], atol=1e-6)
    assert torch.allclose(f[:, 4:8], plain.extract_features(x[:, :3])[0], atol=1e-6)
    one = make(readout="a", readout_whole=True)  # one bin is the whole clip already: nothing twice
    assert one.extract_features(x)[0].shape == (2, 4)


def test_readout_trend_is_the_whole_clip_then_the_bins_change():
    x = clip(t=6)
    plain = make(readout="a", readout_bins=3, readout_whole=True)
    trend = make(readout="a", readout_bins=3, readout_trend=True)
    f, g = plain.extract_features(x)[0], trend.extract_features(x)[0]
    assert g.shape == (2, 12)  # the whole mean (4) and two changes (4 each), against 16 with the bins' means
    assert torch.allclose(g[:, :4], f[:, :4], atol=1e-6)
    assert torch.allclose(g[:, 4:8], f[:, 8:12] - f[:, 4:8], atol=1e-6)
    assert torch.allclose(g[:, 8:], f[:, 12:] - f[:, 8:12], atol=1e-6)
    one = make(readout="a", readout_bins=1, readout_trend=True)  # one bin has no change: the whole mean alone
    assert one.extract_features(x)[0].shape == (2, 4)


def test_the_default_readout_is_the_whole_clip_and_two_bins():
    cfg = ModelConfig()
    assert (cfg.readout, cfg.readout_bins, cfg.readout_whole) == ("a,r,da,f", 2, True)  # f: where flow heads are
    x = clip(t=4)
    m = make(readout_bins=cfg.readout_bins, readout_whole=cfg.readout_whole)
    one = make()
    f, whole = m.extract_features(x)[0], one.extract_features(x)[0]
    assert f.shape == (2, 3 * whole.shape[1]) and torch.allclose(f[:, : whole.shape[1]], whole, atol=1e-6)


def test_readout_pool_max_and_meanmax():
    x = clip(t=4)
    m = make(readout="r", readout_pool="max")
    r = m(x).states[0]  # (B, T, C, H, W)
    want = r.amax(dim=(3, 4)).mean(dim=1)  # the strongest response at each step, averaged over time
    assert torch.allclose(m.extract_features(x)[0], want, atol=1e-5)
    both = make(readout="r", readout_pool="meanmax")
    both.load_state_dict(m.state_dict())
    f = both.extract_features(x)[0]
    assert f.shape == (2, 8) and torch.allclose(f[:, 4:], want, atol=1e-5)
    assert torch.allclose(f[:, :4], r.mean(dim=(3, 4)).mean(dim=1), atol=1e-5)


def test_readout_dr_is_the_mean_change_of_the_state():
    m = make(readout="dr")
    x = clip(t=4)
    r = m(x).states[0]  # (B, T, C, H, W): the states the readout sees (same weights, same clip)
    want = (r[:, 1:] - r[:, :-1]).abs().mean(dim=(3, 4)).sum(dim=1) / 4  # t = 0 contributes zeros
    assert torch.allclose(m.extract_features(x)[0], want, atol=1e-5)


@pytest.mark.parametrize(
    "over,match",
    [({"predict": "delta"}, "model.predict"), ({"horizon": 0}, "model.horizon"),
     ({"readout": "a,x"}, "model.readout"), ({"readout_bins": 0}, "model.readout_bins"),
     ({"readout_pool": "median"}, "model.readout_pool")],
)  # fmt: skip
def test_bad_values_name_the_key(over, match):
    with pytest.raises(ValueError, match=match):
        make(**over)


def test_target_grad_lets_the_error_train_the_encoder_of_the_target():
    """The target of the error is sg(a) by default; with target_grad the error's gradient reaches a(t) itself."""
    x = clip(t=3)
    for tg in (False, True):
        m = make(target_grad=tg, anti_collapse="none")
        out = m(x)
        target = out.steps[-1].targets[0]
        assert target.requires_grad is tg
        if tg:  # the error at t pulls a(t) toward the prediction: a gradient on the target path alone
            (g,) = torch.autograd.grad(out.steps[-1].terms["err/0"], target)
            assert g.abs().sum() > 0


def test_target_grad_refuses_an_ema_target():
    with pytest.raises(ValueError, match="target_grad"):
        make(target_grad=True, target_mode="ema")


def test_change_hinge_is_off_by_default():
    out = make()(clip())
    assert not any(k.startswith("chg/") for k in out.stats)


def test_change_hinge_asks_each_channel_to_change():
    """On a still clip unit 0's a(t) - a(t-1) is zero, so its hinge is at the full change_std (the units above see
    error units, which move as the state settles); on a moving clip it is lower, and its gradient reaches the
    encoder. The first step has no step before and is not counted."""
    m = make(change_weight=1.0, change_std=0.5)
    still = clip(t=1).expand(2, 4, 3, 16, 16).contiguous()
    out = m(still)
    assert out.stats["chg/0"] == pytest.approx(0.5 - 1e-2, abs=1e-3)  # std = sqrt(0 + eps), eps 1e-4
    for l in range(2):
        assert 0.0 <= out.stats[f"chg/{l}"] <= 0.5
        assert out.steps[0].terms[f"chg/{l}"].item() == 0.0
    moving = make(change_weight=1.0, change_std=0.5)(clip(t=4))
    assert float(moving.stats["chg/0"]) < 0.5 - 1e-2
    m.zero_grad()
    m(clip(t=4)).steps[-1].terms["chg/0"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.units[0].parameters())


def test_change_hinge_weights_the_unit_loss():
    x = clip(t=4)
    base = make(change_weight=0.0)(x)
    on = make(change_weight=2.0)(x)
    for l in range(2):
        assert (on.losses[l] - base.losses[l]).item() == pytest.approx(2.0 * on.stats[f"chg/{l}"].item(), rel=1e-4)


def test_arrow_is_off_by_default():
    out = make()(clip())
    assert not any(k.startswith("arrow/") for k in out.stats)


def test_arrow_loss_scores_the_direction_of_the_prediction():
    """log 2 where now and before are alike; below log 2 when the
    prediction points at what came, above when it points back at what was; gradient reaches all three inputs."""
    g = torch.Generator().manual_seed(0)
    before, now = torch.rand(2, 5, 3, 3, generator=g), torch.rand(2, 5, 3, 3, generator=g)
    log2 = torch.log(torch.tensor(2.0)).item()
    assert arrow_loss(now, before, before).item() == pytest.approx(log2, abs=1e-6)
    assert arrow_loss(now, now, before).item() < log2 - 0.1
    assert arrow_loss(before, now, before).item() > log2 + 0.1
    ps = [t.clone().requires_grad_() for t in (0.5 * (now + before), now, before)]
    arrow_loss(*ps).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ps)


def test_detached_arrow_keys_train_only_the_prediction():
    """model.arrow_keys=detached: the contrast's gradient reaches the prediction, not the keys a(t) and a(t-1)
    (the encoder still learns through the prediction's input, as with the error)."""
    g = torch.Generator().manual_seed(0)
    for keys, keys_learn in (("online", True), ("detached", False)):
        m = make(arrow_weight=1.0, arrow_keys=keys)
        a, a_hat, a_prev = (torch.rand(2, 4, 8, 8, generator=g).requires_grad_() for _ in range(3))
        m._unit_terms(0, a, a_hat, a_prev)["arrow/0"].backward()
        assert a_hat.grad is not None and a_hat.grad.abs().sum() > 0
        assert (a.grad is not None) == keys_learn and (a_prev.grad is not None) == keys_learn


def test_arrow_weights_the_unit_loss_from_the_second_step():
    x = clip(t=4)
    base = make()(x)
    on = make(arrow_weight=2.0)(x)
    for l in range(2):
        assert on.steps[0].terms[f"arrow/{l}"].item() == 0.0
        assert 0.0 < on.stats[f"arrow/{l}"].item() < 10.0
        assert (on.losses[l] - base.losses[l]).item() == pytest.approx(2.0 * on.stats[f"arrow/{l}"].item(), rel=1e-4)


def _arrow_after_training(weight: float, error_loss: str = "l1") -> float:
    """Unit 0's time-arrow loss (measured, whatever the weight) after training on bars that move right in half of
    the clips and left in the other half."""
    torch.manual_seed(0)
    m = make(channels=(4,), arrow_weight=weight, error_loss=error_loss, error_weight=1.0)
    T, x = 8, torch.zeros(4, 8, 3, 16, 16)
    for b in range(4):
        for t in range(T):
            x[b, t, :, :, (2 + t if b % 2 else 13 - t) % 16] = 1.0
    _fit(m, x, 100)
    with torch.no_grad():
        out = m(x)
    p, a = out.preds[0], out.targets[0]
    return sum(arrow_loss(p[:, t], a[:, t], a[:, t - 1]).item() for t in range(1, T)) / (T - 1)


def test_arrow_teaches_the_state_which_way_a_bar_moves():
    """Trained on the L1 error alone, the prediction lags: it is nearer to what was than to what came (above
    log 2). With the arrow term it points the right way (well below log 2), and so it does trained on the L2 error
    alone (model.error_loss=l2: the conditional mean moves by the expected change, the median does not)."""
    log2 = torch.log(torch.tensor(2.0)).item()
    assert _arrow_after_training(0.0) > log2
    assert _arrow_after_training(0.0, error_loss="l2") < log2 - 0.05
    assert _arrow_after_training(0.1) < log2 - 0.1


def test_l2_error_loss_is_the_mse_and_leaves_E_alone():
    """model.error_loss=l2: the per-sample loss is the MSE over channels and positions (weighted like the L1 mean),
    and E is unchanged."""
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    E, l1 = error_loss(pred, target)
    assert torch.allclose(squared_error(E), ((pred - target) ** 2).mean(dim=(1, 2, 3)), atol=1e-6)
    w = torch.zeros(2, 1, 4, 4)
    w[:, :, :2] = 1.0
    top = ((pred - target) ** 2)[:, :, :2].mean(dim=(1, 2, 3))
    assert torch.allclose(squared_error(E, w), top, atol=1e-6)
    x = clip(t=4)
    a, b = make(error_loss="l1")(x), make(error_loss="l2")(x)
    for l in range(2):
        assert torch.allclose(a.steps[2].errors[l], b.steps[2].errors[l])
        mse = ((b.steps[2].preds[l] - b.steps[2].targets[l]) ** 2).mean()
        assert b.steps[2].terms[f"err/{l}"].item() == pytest.approx(mse.item(), rel=1e-4)


def test_error_weight_scales_every_units_error_terms():
    """model.error_weight multiplies layer_weights: with no other term in the loss, twice the weight is twice the
    loss of every unit."""
    assert make(error_weight=2.0, layer_weights=(1.0, 0.5)).layer_weights == (2.0, 1.0)
    x = clip(t=4)
    one, two = (make(anti_collapse="none", horizon=2, error_weight=w)(x) for w in (1.0, 2.0))
    for l in range(2):
        assert two.losses[l].item() == pytest.approx(2.0 * one.losses[l].item(), rel=1e-5)
        assert one.losses[l].item() > 0


def test_l2_prediction_moves_by_the_expected_change():
    """A target that jumps from 0 to 1 in a third of the samples: the L1-optimal constant prediction is 0 (the
    median, copy-last), the L2-optimal one 1/3 (the mean)."""
    target = torch.zeros(3, 1, 1, 1)
    target[0] = 1.0
    for kind, best in (("l1", 0.0), ("l2", 1.0 / 3)):
        p = torch.full((1, 1, 1, 1), 0.5, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.05)
        for _ in range(400):
            E, l1 = error_loss(p.expand(3, 1, 1, 1), target)
            loss = (l1 if kind == "l1" else squared_error(E)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert p.item() == pytest.approx(best, abs=0.03), kind


def test_blind_step_remembers_the_prediction_and_scores_the_real_frame():
    """model.blind_prob: a hidden frame's place in the memory is the unit's own prediction with no error; the step's
    errors and losses are those of the real frame either way."""
    m = make(blind_prob=0.5)
    x = clip(b=3, t=3)
    _, s1 = m.step(x[:, 0])
    out_seen, seen = m.step(x[:, 1], s1, blind=torch.tensor([False, False, False]))
    out_hid, hid = m.step(x[:, 1], s1, blind=torch.tensor([True, False, True]))
    for l in range(2):
        assert torch.equal(out_hid.errors[l], out_seen.errors[l]) and torch.equal(hid.r[l], seen.r[l])
        assert torch.equal(hid.a[l][1], seen.a[l][1]) and torch.equal(hid.e[l][1], seen.e[l][1])
        for b in (0, 2):
            assert torch.equal(hid.a[l][b], out_hid.preds[l][b]) and not torch.equal(hid.a[l][b], seen.a[l][b])
            assert hid.e[l][b].abs().sum() == 0
    assert torch.equal(out_hid.losses[0], out_seen.losses[0])
    # the next step predicts from what the memory holds: the hidden clips' predictions differ, the seen one's not
    nxt_hid, _ = m.step(x[:, 2], hid)
    nxt_seen, _ = m.step(x[:, 2], seen)
    assert torch.equal(nxt_hid.preds[0][1], nxt_seen.preds[0][1])
    assert not torch.equal(nxt_hid.preds[0][0], nxt_seen.preds[0][0])


def test_blind_prob_hides_only_in_training_and_off_draws_nothing():
    x = clip(b=4, t=6)
    ref = make()
    on = make(blind_prob=0.5)
    on.load_state_dict(ref.state_dict())
    on.eval(), ref.eval()
    assert torch.equal(on(x).preds[0], ref(x).preds[0])  # probes and evaluation never hide a frame
    on.train(), ref.train()
    rng = torch.get_rng_state()
    a = ref(x)
    assert torch.equal(torch.get_rng_state(), rng)  # the default draws nothing: runs stay bit-identical
    b = on(x)
    assert torch.equal(b.preds[0][:, :2], a.preds[0][:, :2])  # frame 0 is never hidden, so step 1 predicts alike
    assert not torch.equal(b.preds[0], a.preds[0])
    b.losses[0].backward()  # and it trains


@pytest.mark.parametrize("other", ["change_weight", "arrow_weight"])
def test_blind_prob_refuses_terms_that_read_the_previous_frame(other):
    with pytest.raises(ValueError, match="model.blind_prob"):
        make(blind_prob=0.3, **{other: 1.0})
