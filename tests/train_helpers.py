"""Shared by the training tests: a run small enough for milliseconds per step (2 units of 4/8 channels, 16x16,
clips of 4 frames in 2 windows, batches of 2 over 16 synthetic clips = 8 steps per epoch)."""

from __future__ import annotations

TINY_SETS = [
    "motion=off",
    "model.channels=[4,8]",
    "data.size=[16,16]",
    "data.clip_len=4",
    "data.batch_size=2",
    "data.n_synthetic=16",
    "train.window=2",
    "train.warmup_steps=3",
    "train.log_every=1",
    "train.stats_every=2",
    "train.image_every=2",
    "train.ckpt_every=5",
    "train.threads=1",
    "train.device=cpu",
]


def tiny_config(*extra: str, steps: int = 6):
    from prednet2.config import Config

    return Config.from_yaml(None, [*TINY_SETS, f"train.steps={steps}", *extra])
