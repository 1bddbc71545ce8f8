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


def _video_helpers():
    """tests/datasets/conftest.py's PyAV writers (tests/ has no __init__.py, so load the file by path)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "dataset_video_helpers", Path(__file__).parent.parent / "datasets" / "conftest.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def labelled_videos(tmp_path_factory):
    """A tiny UCF101-layout folder written with PyAV: 3 classes x 4 lossless 32x32 videos of 14-24 frames.

    A class is a colour (red, green, blue) plus per-video noise, so the classes separate even in raw pixels.
    """
    import numpy as np

    write_video = _video_helpers().write_video
    root = tmp_path_factory.mktemp("labelled") / "videos"
    rng = np.random.default_rng(0)
    for c, name in enumerate(["blue", "green", "red"]):
        for i in range(4):
            n = 14 + 3 * i
            f = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
            f[..., 2 - c] += 150  # rgb: blue -> channel 2, green -> 1, red -> 0
            write_video(root / name / f"{name}{i}.mkv", f)
    return root


@pytest.fixture(scope="session")
def videos_and_a_corrupt_file(labelled_videos, tmp_path_factory):
    """``labelled_videos`` plus one text file named .mkv in class red: it is skipped, and the outputs count it."""
    import shutil

    root = tmp_path_factory.mktemp("corrupt") / "videos"
    shutil.copytree(labelled_videos, root, ignore=shutil.ignore_patterns(".prednet2_cache"))
    (root / "red" / "notes.mkv").write_text("a text file, not a video\n")
    return root
