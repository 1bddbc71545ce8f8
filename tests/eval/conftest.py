"""Shared fixtures for the eval tests: a tiny randomly initialised checkpoint in a run-like folder."""

import pytest
import torch

from prednet2 import build_model
from prednet2.checkpoint import save_checkpoint
from prednet2.config import Config

TINY = {
    "model": {"channels": [4, 8]},
    "data": {"size": [32, 32], "clip_len": 6},
    "motion": {"enabled": False},
}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """RUN/checkpoints/last.pt of a 2-unit (4, 8) stack for 32x32 clips of 6 frames, never trained."""
    run = tmp_path_factory.mktemp("run")
    cfg = Config.from_dict(TINY)
    torch.manual_seed(0)
    save_checkpoint(run / "checkpoints" / "last.pt", model=build_model(cfg.model), optimizer=None, config=cfg, step=3)
    return run
