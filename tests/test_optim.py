"""prednet2.optim: the init anchor (``train.anchor_weight``): its pull, its resume, its off switch."""

from __future__ import annotations

import pytest
import torch
from train_helpers import tiny_config

from prednet2 import build_model
from prednet2.checkpoint import load_checkpoint
from prednet2.config import Config, ConfigError
from prednet2.optim import InitAnchor, build_anchor, build_optimizer
from prednet2.train_step import train_step
from prednet2.trainer import train


def _one_step(cfg, anchor_weight: float):
    torch.manual_seed(0)
    model = build_model(cfg.model)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt, _ = build_optimizer(model, cfg)
    anchor = InitAnchor(opt, anchor_weight) if anchor_weight else None
    clip = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    train_step(model, opt, clip, window=4, anchor=anchor)  # one window: one optimiser step
    return start, {n: p.detach().clone() for n, p in model.named_parameters()}, opt.param_groups[0]["lr"]


def test_anchor_moves_each_weight_back_by_lr_times_weight():
    cfg = tiny_config()
    start, free, lr = _one_step(cfg, 0.0)
    _, pulled, _ = _one_step(cfg, 40.0)
    f = lr * 40.0
    assert 0 < f < 1
    moved = 0
    for n in start:
        torch.testing.assert_close(pulled[n], free[n] + f * (start[n] - free[n]), rtol=1e-5, atol=1e-7, msg=n)
        moved += int((free[n] != start[n]).any())
    assert moved > 0


def test_full_pull_keeps_the_initial_weights(tmp_path):
    """At lr * anchor_weight = 1 every step is undone: the run ends on the weights it was built with."""
    cfg = tiny_config("train.warmup_steps=0", "train.lr_schedule=constant", f"train.anchor_weight={1 / 3e-3}")
    train(cfg, "synthetic:shapes", tmp_path / "run", progress=False)
    torch.manual_seed(cfg.train.seed)
    init = build_model(cfg.model).state_dict()
    got = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    for k, v in init.items():
        if v.is_floating_point():
            torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_anchor_resumes_exactly(tmp_path):
    """The anchor is rebuilt from train.seed on resume (before the checkpoint loads), so a resumed run is the
    straight run."""
    extra = ("train.anchor_weight=20", "train.ckpt_every=4")
    train(tiny_config(*extra, steps=10), "synthetic:shapes", tmp_path / "a", progress=False)
    train(tiny_config(*extra, steps=5), "synthetic:shapes", tmp_path / "b", progress=False)
    train(tiny_config(*extra, steps=10), "synthetic:shapes", tmp_path / "b", resume=True, progress=False)
    free = tiny_config("train.ckpt_every=4", steps=10)
    train(free, "synthetic:shapes", tmp_path / "c", progress=False)
    a, b, c = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt")["model"] for r in "abc")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7, msg=k)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())  # the anchor did something


def test_anchor_default_off_switch_and_old_runs():
    cfg = Config()
    assert cfg.train.anchor_weight == 1.0  # the default since round 152 (0.3 from round 86c)
    model = build_model(cfg.model)
    opt, _ = build_optimizer(model, cfg)
    assert build_anchor(opt, cfg).weight == 1.0
    off = cfg.replace(["train.anchor_weight=0"])
    assert build_anchor(opt, off) is None
    # a run stored before the key existed resumes and probes as it was trained: without the anchor
    assert Config.from_stored({"train": {"lr": 3e-3}}).train.anchor_weight == 0
    with pytest.raises(ConfigError, match="train.anchor_weight"):
        Config.from_yaml(None, ["train.anchor_weight=-1"])
