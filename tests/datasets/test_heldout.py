"""synthetic:heldout: the four held-out probe tasks, each label checked on the drawn scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prednet2.datasets import DataError, build_dataset
from prednet2.datasets.heldout import (
    ACCEL_RANGE,
    LOOM_RANGE,
    TASK_CLASSES,
    TASKS,
    HeldoutDataset,
    sample_heldout_scene,
)
from prednet2.datasets.scene import draw_scene

from prednet2.config import DataConfig


def scenes_by_label(task: str, T: int = 12, size=(64, 64)):
    """{label: scene}, one scene of each of the task's three classes."""
    out, seed = {}, 0
    while len(out) < 3:
        scene, label = sample_heldout_scene(np.random.default_rng(seed), task, size=size, T=T)
        out.setdefault(label, scene)
        seed += 1
    return out


@pytest.mark.parametrize("task", TASKS)
def test_item_contract_determinism_and_registry(task):
    ds = HeldoutDataset(n=6, size=(48, 64), clip_len=8, task=task, seed=3)
    item = ds[5]
    assert item["video"].shape == (8, 3, 48, 64) and item["video"].dtype == torch.uint8
    assert ds.classes == list(TASK_CLASSES[task]) and ds.num_classes == 3
    assert torch.equal(item["video"], HeldoutDataset(n=6, size=(48, 64), clip_len=8, task=task, seed=3)[5]["video"])
    assert not torch.equal(item["video"], HeldoutDataset(n=6, size=(48, 64), clip_len=8, task=task, seed=4)[5]["video"])
    cfg = DataConfig(clip_len=6, n_synthetic=30, n_synthetic_test=4)
    built = build_dataset(f"synthetic:heldout:{task}", cfg=cfg, labelled=True)
    assert len(built) == 30 and sorted({int(built[i]["label"]) for i in range(30)}) == [0, 1, 2]


def test_bad_task_and_short_clip_are_refused():
    with pytest.raises(DataError, match="synthetic:heldout task 'kind'"):
        HeldoutDataset(n=2, task="kind")
    with pytest.raises(DataError, match="choose one of spin"):
        HeldoutDataset(n=2)  # probe tasks only: no unlabelled set
    with pytest.raises(DataError, match="clip_len"):
        HeldoutDataset(n=2, clip_len=2, task="spin")


def test_spin_turns_the_labelled_object_one_way_or_not_at_all():
    s = scenes_by_label("spin")
    turn = {label: np.diff(scene.angle_seq[0]) for label, scene in s.items()}
    assert (turn[0] > 0).all() and (turn[1] < 0).all() and (turn[2] == 0).all()  # clockwise on screen: angle grows
    for scene in s.values():
        assert (np.diff(scene.angle_seq[1:], axis=1) == 0).all()  # distractors stay rigid
        assert scene.shape_seq[0, 0] not in (0, 4)  # never a circle or a ring: their turn would not show


def test_accel_profiles_share_the_mean_speed():
    s = scenes_by_label("accel")
    steps = {label: scene.steps[0] for label, scene in s.items()}
    assert (np.diff(steps[0]) > 0).all() and (np.diff(steps[1]) < 0).all() and np.ptp(steps[2]) < 1e-9
    ratio = steps[0][-1] / steps[0][0]
    assert ratio == pytest.approx(ACCEL_RANGE[1] / ACCEL_RANGE[0])
    # each class's mean step is its clip's mean speed, drawn from the same range: no class is faster on average
    for st in steps.values():
        assert 1.5 <= st.mean() <= 2.5


def test_loom_grows_or_shrinks_the_drawn_object():
    s = scenes_by_label("loom", T=10)
    area = {}
    for label, scene in s.items():
        _, visible = draw_scene(scene)
        area[label] = visible[0].reshape(10, -1).sum(axis=1)  # object 0 is never occluded
    assert area[0][-1] > 1.4 * area[0][0] and area[1][0] > 1.4 * area[1][-1]  # (1.15 / 0.87)^2 = 1.75 in area
    assert np.ptp(area[2]) <= 0.25 * area[2].mean()  # steady: only rasterisation changes its area
    assert s[2].scale_seq[0, 0] == pytest.approx(np.sqrt(np.prod(LOOM_RANGE)))
    for scene in s.values():  # the largest size still fits inside the frame
        reach = scene.radii[0] * scene.scale_seq[0].max()
        assert (scene.positions[0] >= reach - 1e-9).all() and (scene.positions[0] <= 63 - reach + 1e-9).all()


def test_count_moves_exactly_label_plus_one_objects():
    for label, scene in scenes_by_label("count").items():
        travelled = np.abs(np.diff(scene.positions, axis=1)).sum(axis=(1, 2))  # (N,)
        assert (travelled > 0).sum() == label + 1 == scene.moving.sum()
        assert len(scene.radii) == 4
