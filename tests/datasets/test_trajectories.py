"""synthetic:trajectories: the six kinds of motion at equal mean speed, checked on the drawn paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prednet2.datasets import DataError, build_dataset
from prednet2.datasets.trajectories import KINDS, SPEED_RANGE, TrajectoriesDataset, kind_steps, sample_trajectory_scene

from prednet2.config import DataConfig


def test_item_contract_and_determinism():
    ds = TrajectoriesDataset(n=6, size=(48, 64), clip_len=8, task="kind", seed=3)
    item = ds[5]
    assert item["video"].shape == (8, 3, 48, 64) and item["video"].dtype == torch.uint8
    assert item["label"].dtype == torch.int64 and item["label"].item() == item["kind"]
    assert ds.classes == list(KINDS) and ds.num_classes == 6
    again = TrajectoriesDataset(n=6, size=(48, 64), clip_len=8, task="kind", seed=3)[5]
    assert torch.equal(item["video"], again["video"])
    other = TrajectoriesDataset(n=6, size=(48, 64), clip_len=8, task="kind", seed=4)[5]
    assert not torch.equal(item["video"], other["video"])
    assert TrajectoriesDataset(n=2)[0]["label"].item() == -1  # unlabelled training set


def test_registry_specs():
    cfg = DataConfig(clip_len=6, n_synthetic=8, n_synthetic_test=4)
    ds = build_dataset("synthetic:trajectories:kind", cfg=cfg, split="test", labelled=True)
    assert len(ds) == 4 and ds.num_classes == len(KINDS)
    assert len(build_dataset("synthetic:trajectories", cfg=cfg)) == 8
    with pytest.raises(DataError):
        TrajectoriesDataset(n=2, task="direction")
    with pytest.raises(DataError, match="clip_len"):
        TrajectoriesDataset(n=2, clip_len=2)[0]


@pytest.mark.parametrize("kind", range(len(KINDS)))
def test_every_kind_has_the_requested_mean_speed(kind):
    rng = np.random.default_rng(kind)
    d = kind_steps(rng, kind, 9, 2.0)
    assert d.shape == (9, 2)
    assert np.linalg.norm(d, axis=1).mean() == pytest.approx(2.0)


def _turns(d: np.ndarray) -> np.ndarray:
    """Signed heading change between consecutive non-zero steps, radians."""
    a = np.arctan2(d[:, 1], d[:, 0])
    return (np.diff(a) + np.pi) % (2 * np.pi) - np.pi


def test_kinds_differ_in_path_shape_not_speed():
    rng = np.random.default_rng(0)
    lin, circ, zig, osc, sg, rw = (kind_steps(rng, k, 9, 2.0) for k in range(6))
    assert np.allclose(_turns(lin), 0)  # a straight line
    t = _turns(circ)
    assert np.all(np.abs(t) > 0.2) and np.all(np.sign(t) == np.sign(t[0]))  # turns one way, steadily
    assert np.abs(_turns(zig)).max() > np.deg2rad(80)  # heading flips between +-theta
    assert (osc @ osc[0] < 0).any()  # goes back along its line
    speeds = np.linalg.norm(sg, axis=1)
    moving = speeds[speeds > 1e-9]
    assert (speeds < 1e-9).any() and np.allclose(moving, moving[0])  # stands still, then moves at one speed
    assert moving[0] > 2.0 * 1.5  # faster than the mean, so the mean over the clip is still 2
    assert np.std(np.abs(_turns(rw))) > 0.1  # irregular turning


def test_labelled_object_path_follows_its_kind_in_the_scene():
    for kind in range(len(KINDS)):
        scene, label = sample_trajectory_scene(np.random.default_rng(kind), size=(64, 64), T=10, kind=kind)
        assert label == kind
        steps = np.linalg.norm(np.diff(scene.positions[0], axis=0), axis=1)
        lo, hi = SPEED_RANGE
        assert lo - 1e-6 <= steps.mean() <= hi + 1e-6  # walls reflect, they do not change the path length
        assert scene.radii[0] > scene.radii[1:].max()  # the labelled object is the largest


def test_mix_interleaves_shapes_and_trajectories():
    cfg = DataConfig(clip_len=5, size=(32, 32), n_synthetic=6)
    mix = build_dataset("synthetic:mix", cfg=cfg)
    shapes = build_dataset("synthetic:shapes", cfg=DataConfig(clip_len=5, size=(32, 32), n_synthetic=3))
    traj = build_dataset("synthetic:trajectories", cfg=DataConfig(clip_len=5, size=(32, 32), n_synthetic=3))
    assert len(mix) == 6 and mix.n_skipped == 0
    assert torch.equal(mix[0]["video"], shapes[0]["video"]) and torch.equal(mix[3]["video"], traj[1]["video"])
    assert set(mix[1]) == {"video", "label", "index"} and mix[1]["index"] == 1 and mix[1]["label"].item() == -1
    batch = torch.utils.data.default_collate([mix[i] for i in range(4)])  # the parts' extras never clash
    assert batch["video"].shape == (4, 5, 3, 32, 32)
    with pytest.raises(DataError, match="no labels"):
        build_dataset("synthetic:mix", cfg=cfg, labelled=True)
