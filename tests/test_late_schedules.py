"""train.flow_end and train.anchor_end: multipliers held at 1 until train.decay_start, then a half cosine to the
given value at train.steps (prednet2.optim.late_factor), applied by the trainer before each step."""

from __future__ import annotations

import math

import pytest
import torch
from train_helpers import tiny_config

from prednet2.checkpoint import load_checkpoint
from prednet2.config import Config, ConfigError
from prednet2.optim import late_factor, lr_factor
from prednet2.trainer import train

FLOW = ("motion.enabled=true", "model.flow_weight=1", "train.decay_start=2", "train.lr_schedule=constant")


def test_late_factor_holds_then_falls_by_half_a_cosine():
    f = late_factor(0.2, warmup=3, total=11, decay_start=1)  # the hold counts from the warmup's end, as the lr's
    assert [f(s) for s in range(4)] == [1.0] * 4
    assert f(7) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert f(11) == pytest.approx(0.2) and f(50) == pytest.approx(0.2)
    assert all(f(s) >= f(s + 1) for s in range(20))
    assert {late_factor(1.0, warmup=0, total=5)(s) for s in range(9)} == {1.0}
    # the cosine lr schedule is the same curve down to 0.1
    g = lr_factor("cosine", warmup=3, total=11, decay_start=1)
    h = late_factor(0.1, warmup=3, total=11)
    assert [g(s) for s in range(3, 14)] == pytest.approx([h(s) for s in range(3, 14)])


def _weights(run):
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


def _differs(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("late", [("train.flow_end=0",), ("train.anchor_end=0",)])
def test_late_keys_change_nothing_before_decay_start_then_train_otherwise_and_resume_exactly(tmp_path, late):
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    base = (*FLOW, cache, "train.decay_start=5", "train.ckpt_every=5", "train.keep_numbered=2")
    base = (*base, "train.anchor_weight=20")  # a strong pull, so that weakening it shows in 3 steps
    train(tiny_config(*base, *late, steps=8), "synthetic:shapes", tmp_path / "a", progress=False)
    train(tiny_config(*base, steps=8), "synthetic:shapes", tmp_path / "c", progress=False)
    # b: the first 5 steps without the key (the schedules hold 1 until decay_start), then resumed with it
    train(tiny_config(*base, steps=5), "synthetic:shapes", tmp_path / "b", progress=False)
    train(tiny_config(*base, *late, steps=8), "synthetic:shapes", tmp_path / "b", resume=True, progress=False)
    at5 = [load_checkpoint(tmp_path / r / "checkpoints" / "step_000005.pt")["model"] for r in "ac"]
    for k in at5[0]:
        assert torch.equal(at5[0][k], at5[1][k]), k  # nothing changes before decay_start
    a, b, c = (_weights(tmp_path / r) for r in "abc")
    assert _differs(a, c)  # after it, the late fall changes the training
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7, msg=k)  # recomputed from the step on resume
    key, value = late[0].split("=")
    assert getattr(Config.from_yaml(tmp_path / "a" / "config.yaml", []).train, key.split(".")[1]) == float(value)


def test_anchor_end_lets_a_full_pull_go_late(tmp_path):
    """At lr x anchor_weight = 1 every step is undone (test_optim); with anchor_end the pull weakens after
    decay_start and the run ends away from its initial weights."""
    full = ("train.warmup_steps=0", "train.lr_schedule=constant", f"train.anchor_weight={1 / 3e-3}")
    train(tiny_config(*full, "train.decay_start=3", "train.anchor_end=0.5", steps=6), "synthetic:shapes",
          tmp_path / "run", progress=False)  # fmt: skip
    cfg = tiny_config(*full)
    torch.manual_seed(cfg.train.seed)
    from prednet2 import build_model

    init = {k: v for k, v in build_model(cfg.model).state_dict().items() if v.is_floating_point()}
    assert _differs(init, _weights(tmp_path / "run"))


def test_anchor_end_without_the_anchor_is_refused():
    with pytest.raises(ConfigError, match="anchor_end=0.5 .*anchor_weight=0"):
        tiny_config("train.anchor_weight=0", "train.anchor_end=0.5", "train.decay_start=2")
    with pytest.raises(ConfigError, match="train.flow_end"):
        tiny_config("train.flow_end=2")


@pytest.mark.parametrize(
    "sets, match",
    [
        (
            ("train.flow_end=0.5", "train.decay_start=2"),
            "train.flow_end=0.5 scales the flow target, but this model has none",
        ),
        (("train.flow_end=0.5", *FLOW[:2]), "train.flow_end=0.5 takes effect after train.decay_start=1000"),
        (("train.anchor_end=0.5", "train.decay_start=10"), "train.steps=6 ends there: nothing would change"),
        (  # decay_start is below the steps, but the warmup (20 steps by default) ends after them: name the warmup
            ("train.anchor_end=0.5", "train.decay_start=2", "train.warmup_steps=20"),
            r"after step 20, the later of train.warmup_steps=20 and train.decay_start=2,.*lower train.warmup_steps",
        ),
        (  # both outlast the run, decay_start the later: lowering it alone would not do
            ("train.anchor_end=0.5", "train.decay_start=30", "train.warmup_steps=20"),
            r"after step 30, the later of train.warmup_steps=20 and train.decay_start=30,.*lower train.warmup_steps",
        ),
    ],
)
def test_late_keys_that_would_do_nothing_are_refused_before_training(tmp_path, sets, match):
    cfg = tiny_config(*sets, f"data.cache_dir={tmp_path / 'cache'}")  # a study may set the steps after these keys
    with pytest.raises(ConfigError, match=match):
        train(cfg, "synthetic:shapes", tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert Config.from_stored({"train": {"lr": 3e-3}}).train.flow_end == 1.0  # runs stored before the keys
