"""prednet2.trainer: exact resume, non-finite stop, data order, config resolution, step modes."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import tiny_config

from prednet2 import PredictiveStack, build_model
from prednet2.checkpoint import load_checkpoint
from prednet2.config import Config
from prednet2.trainer import (
    DEFAULT_MOTION_CHANNELS,
    NonFiniteLossError,
    ResumableBatchSampler,
    RunFolderError,
    build_optimizer,
    resolve_config,
    train,
    train_step,
    unit_param_groups,
)


class NoisyStack(PredictiveStack):
    """The real stack with input noise from the global torch RNG, so exact resume must restore the RNG too."""

    def forward(self, clip, mask=None, state=None, *, detach_between=True):
        return super().forward(clip + 0.05 * torch.randn_like(clip), mask, state, detach_between=detach_between)


class NaNAfter(PredictiveStack):
    """The real stack whose layer-0 loss turns NaN from forward call ``bad_call`` on."""

    bad_call = 10**9

    def forward(self, *args, **kwargs):
        self.calls = getattr(self, "calls", 0) + 1
        out = super().forward(*args, **kwargs)
        if self.calls >= self.bad_call:
            out.losses[0] = out.losses[0] * float("nan")
        return out


def _params(run) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


def test_resume_matches_straight_run(tmp_path):
    # ckpt_every=4 and log_every=5 do not divide 6: the resume point is a forced final save, mid-epoch (8 steps
    # per epoch, so the resumed part crosses an epoch), and the runs log at different steps (logging must not
    # change the numbers). NoisyStack draws from the torch RNG every window, so the RNG must be restored too.
    extra = ("train.ckpt_every=4", "train.log_every=5")
    straight = train(tiny_config(*extra, steps=12), "synthetic:shapes", tmp_path / "a", model_factory=NoisyStack,
                     progress=False)  # fmt: skip
    train(tiny_config(*extra, steps=6), "synthetic:shapes", tmp_path / "b", model_factory=NoisyStack, progress=False)
    resumed = train(tiny_config(*extra, steps=12), "synthetic:shapes", tmp_path / "b", resume=True,
                    model_factory=NoisyStack, progress=False)  # fmt: skip
    assert straight["steps"] == resumed["steps"] == 12 and resumed["resumed_from"] == 6
    assert resumed["train_s_total"] > resumed["train_s"] > 0  # the first session's time is counted in the total
    assert straight["train_s_total"] == straight["train_s"]
    a, b = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7, msg=k)
    assert straight["final_loss"] == pytest.approx(resumed["final_loss"], rel=1e-5)


def test_last_checkpoint_holds_the_best_loss_with_its_own_interval(tmp_path):
    # A run interrupted (or ended) at a save whose interval was the best so far stored the best before it (inf after
    # one interval), so a resume from it took its next interval for the best even when that was worse.
    summary = train(tiny_config("train.ckpt_every=4", steps=4), "synthetic:shapes", tmp_path / "r", progress=False)
    extra = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")["extra"]
    assert summary["best_loss"] is not None and extra["best_loss"] == pytest.approx(summary["best_loss"], rel=1e-6)
    assert load_checkpoint(tmp_path / "r" / "checkpoints" / "best.pt")["extra"]["best_loss"] == extra["best_loss"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    class Bad(NaNAfter):
        bad_call = 2 * 8 - 1  # 2 windows per step: step 8's first window

    with pytest.raises(NonFiniteLossError) as e:
        train(tiny_config(steps=30), "synthetic:shapes", tmp_path, model_factory=Bad, progress=False)
    assert (e.value.step, e.value.layer, e.value.last_good_step) == (8, 0, 5)
    assert "step 8" in str(e.value) and "layer 0" in str(e.value)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["step"] == 5
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "non_finite" and summary["steps"] == 8


def test_refuses_existing_run_without_resume(tmp_path):
    train(tiny_config(steps=2), "synthetic:shapes", tmp_path, progress=False)
    with pytest.raises(RunFolderError, match="--resume"):
        train(tiny_config(steps=2), "synthetic:shapes", tmp_path, progress=False)
    with pytest.raises(RunFolderError, match="no checkpoint"):
        train(tiny_config(steps=2), "synthetic:shapes", tmp_path / "empty", resume=True, progress=False)


def test_sampler_position_and_epochs():
    s = ResumableBatchSampler(10, 3, seed=0)
    full = list(s)
    assert len(full) == len(s) == 3 and all(len(b) == 3 for b in full)
    s.set_position(0, 2)
    assert list(s) == full[2:]
    s.set_position(1, 0)
    assert list(s) != full  # a new permutation per epoch
    assert list(ResumableBatchSampler(2, 8, seed=0)) == [[1, 0]] or len(list(ResumableBatchSampler(2, 8, 0))) == 1


def test_resolve_config_motion_channels_and_prednet():
    cfg = Config.from_yaml(None, ["model.channels=[4,8]"])
    assert resolve_config(cfg).model.motion_channels == DEFAULT_MOTION_CHANNELS
    assert resolve_config(cfg.replace(["model.motion_channels=3"])).model.motion_channels == 3
    off = resolve_config(cfg.replace(["motion=off", "model.motion_channels=3"]))
    assert off.model.motion_channels == 0
    no_mask = resolve_config(cfg, {"video": torch.zeros(4, 1, 16, 16, dtype=torch.uint8)})
    assert not no_mask.motion.enabled and no_mask.model.motion_channels == 0 and no_mask.model.in_channels == 1
    pn = resolve_config(Config.from_yaml(None, ["model.preset=prednet"]))
    assert pn.train.mode == "end_to_end" and not pn.motion.enabled


def test_param_groups_cover_each_parameter_once():
    model = build_model(tiny_config().model)
    groups = unit_param_groups(model)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len([p for p in model.parameters() if p.requires_grad])
    assert [g["name"] for g in groups][:2] == ["unit0", "unit1"]


@pytest.mark.parametrize("mode,window", [("local", 2), ("local", 1), ("end_to_end", 2)])
def test_train_step_modes(mode, window):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg.model)
    opt, _ = build_optimizer(model, cfg)
    clip = torch.rand(2, 4, 3, 16, 16)
    before = [p.detach().clone() for p in model.parameters()]
    res = train_step(model, opt, clip, mode=mode, window=window, want_stats=True, want_outputs=True)
    assert res.losses.shape == (2,) and torch.isfinite(res.losses).all()
    assert res.grad_norms.numel() == (len(opt.param_groups) if mode == "local" else 1)
    for l in range(2):
        assert torch.isfinite(res.metrics[f"pred_vs_copy_last/layer{l}"])
        assert res.metrics[f"error/layer{l}"] > 0
    assert res.last.errors[0].shape[1] == (window if mode == "local" else 4)  # the last window's outputs
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("mode", ["local", "end_to_end"])
def test_encoder_lr_scale_shrinks_only_the_encoders_steps(mode):
    """train.encoder_lr_scale: the encoders move that fraction of their full step; everything else is unchanged."""
    cfg = tiny_config()
    clip = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    after = {}
    for scale in (1.0, 0.25):
        torch.manual_seed(0)
        model = build_model(cfg.model)
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt, _ = build_optimizer(model, cfg)
        train_step(model, opt, clip, mode=mode, window=4, encoder_lr_scale=scale)
        after[scale] = {n: p.detach() - start[n] for n, p in model.named_parameters()}
    enc = {n for n, _ in model.named_parameters() if ".enc." in n or ".enc_motion." in n}
    assert enc and {id(p) for p in model.encoder_parameters()} == {
        id(p) for n, p in model.named_parameters() if n in enc
    }
    for n, d in after[1.0].items():
        want = 0.25 * d if n in enc else d
        torch.testing.assert_close(after[0.25][n], want, rtol=1e-4, atol=1e-7)
    assert any(after[1.0][n].abs().max() > 0 for n in enc)


@pytest.mark.parametrize("heads", [[], ["model.predict=residual", "model.horizon=2"]], ids=["direct", "residual_h2"])
def test_fused_op_and_reference_train_alike(monkeypatch, heads):
    """Issue 4: 10 training steps with the fused error-unit op and with the pure-torch reference give the same
    losses and parameters (the op dispatches to the reference when the extension is not built, so this always
    compares two code paths only where prednet2._C exists)."""
    import prednet2
    from prednet2 import ops
    from prednet2.trainer import build_optimizer, train_step

    if not ops.extension_available():
        pytest.skip("prednet2._C not built: the op is the reference, nothing to compare")
    import prednet2.losses

    calls = {"fused": 0}
    fused = prednet2.losses.error_unit

    def counting(*a, **k):
        calls["fused"] += 1
        return fused(*a, **k)

    monkeypatch.setattr(prednet2.losses, "error_unit", counting)
    results = []
    for use_ext in (True, False):
        cfg = tiny_config(f"model.use_ext_op={str(use_ext).lower()}", "model.channels=[8,16]", *heads)
        torch.manual_seed(0)
        model = prednet2.build_model(cfg)
        opt, sched = build_optimizer(model, cfg)
        g = torch.Generator().manual_seed(1)
        losses = []
        for _ in range(10):
            clip = torch.rand(2, 4, 3, 16, 16, generator=g)
            res = train_step(model, opt, clip, mode="local", window=2, grad_clip=cfg.train.grad_clip)
            sched.step()
            losses.append(res.losses.clone())
        results.append((torch.stack(losses), {k: v.clone() for k, v in model.state_dict().items()}))
        if use_ext:
            assert calls["fused"] > 0, "use_ext_op=true did not go through the fused op"
            calls["fused"] = 0
    assert calls["fused"] == 0, "use_ext_op=false still called the fused op"
    (l_ext, p_ext), (l_ref, p_ref) = results
    torch.testing.assert_close(l_ext, l_ref, rtol=1e-5, atol=1e-6)
    for k in p_ref:
        torch.testing.assert_close(p_ext[k], p_ref[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


def test_lr_schedules():
    from prednet2.optim import lr_factor

    const = lr_factor("constant", warmup=10, total=100)
    assert const(0) == pytest.approx(0.1) and const(9) == 1.0 and const(500) == 1.0
    cos = lr_factor("cosine", warmup=10, total=110)
    assert cos(10) == pytest.approx(1.0) and cos(60) == pytest.approx(0.55) and cos(110) == pytest.approx(0.1)
    assert cos(1000) == pytest.approx(0.1)
    inv = lr_factor("inv_sqrt", warmup=10, total=100)
    assert inv(10) == pytest.approx(1.0) and inv(40) == pytest.approx(0.5)


def test_lr_schedules_hold_until_decay_start():
    """``train.decay_start`` holds the rate after warmup and the decay counts from there, independent of length."""
    from prednet2.optim import lr_factor

    inv = lr_factor("inv_sqrt", warmup=10, total=100, decay_start=1000)
    assert inv(5) == pytest.approx(0.6) and inv(500) == 1.0 and inv(999) == 1.0
    assert inv(1000) == pytest.approx(1.0) and inv(4000) == pytest.approx(0.5)
    short, long = (lr_factor("inv_sqrt", warmup=10, total=t, decay_start=50) for t in (60, 6000))
    assert [short(s) for s in range(60)] == [long(s) for s in range(60)]
    cos = lr_factor("cosine", warmup=10, total=300, decay_start=100)
    assert cos(99) == 1.0 and cos(200) == pytest.approx(0.55) and cos(300) == pytest.approx(0.1)
    # a start inside the warmup is the plain schedule
    assert lr_factor("inv_sqrt", warmup=10, total=100, decay_start=5)(40) == pytest.approx(0.5)


def test_default_schedule_is_constant_to_1000_then_cosine():
    """The default (round 33): the rate held to step 1000, so runs of 1000 steps or fewer are constant, then half a
    cosine to 0.1x at train.steps; the trainer's scheduler follows it."""
    from prednet2.optim import build_optimizer, lr_factor

    t = Config.from_yaml(None, ["train.steps=3000"]).train
    f = lr_factor(t.lr_schedule, warmup=t.warmup_steps, total=t.steps, decay_start=t.decay_start)
    assert [f(s) for s in (t.warmup_steps, 600, 1000)] == [1.0, 1.0, 1.0]
    assert f(2000) == pytest.approx(0.55) and f(3000) == pytest.approx(0.1)
    cfg = Config.from_yaml(None, ["train.steps=1000", "train.warmup_steps=0"])
    opt, sched = build_optimizer(torch.nn.Linear(2, 2), cfg)
    for _ in range(999):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.train.lr)  # a 1000-step run never decays
