"""synthetic:heldout2: the second battery's three probe tasks, each label checked on the drawn scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prednet2.datasets import DataError, build_dataset
from prednet2.datasets.heldout2 import (
    OCCLUDER_WIDTH,
    TASK_CLASSES,
    TASKS,
    Heldout2Dataset,
    draw_heldout2,
    sample_heldout2_scene,
)
from prednet2.datasets.scene import draw_scene

from prednet2.config import DataConfig


def scenes_by_label(task: str, T: int = 20, size=(64, 64), start: int = 0):
    """{label: (scene, band)}, one scene of each of the task's three classes."""
    out, seed = {}, start
    while len(out) < 3:
        scene, label, band = sample_heldout2_scene(np.random.default_rng(seed), task, size=size, T=T)
        out.setdefault(label, (scene, band))
        seed += 1
    return out


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize("task", TASKS)
def test_item_contract_determinism_and_registry(task):
    ds = Heldout2Dataset(n=6, size=(48, 64), clip_len=8, task=task, seed=3)
    item = ds[5]
    assert item["video"].shape == (8, 3, 48, 64) and item["video"].dtype == torch.uint8
    assert ds.classes == list(TASK_CLASSES[task]) and ds.num_classes == 3
    assert torch.equal(item["video"], Heldout2Dataset(n=6, size=(48, 64), clip_len=8, task=task, seed=3)[5]["video"])
    assert not torch.equal(
        item["video"], Heldout2Dataset(n=6, size=(48, 64), clip_len=8, task=task, seed=4)[5]["video"]
    )
    gray = Heldout2Dataset(n=2, size=(32, 32), clip_len=6, task=task, grayscale=True)[1]["video"]
    assert gray.shape == (6, 1, 32, 32)
    cfg = DataConfig(clip_len=6, n_synthetic=30, n_synthetic_test=4)
    built = build_dataset(f"synthetic:heldout2:{task}", cfg=cfg, labelled=True)
    assert len(built) == 30 and sorted({int(built[i]["label"]) for i in range(30)}) == [0, 1, 2]


def test_bad_task_and_short_clip_are_refused():
    with pytest.raises(DataError, match="synthetic:heldout2 task 'spin'"):
        Heldout2Dataset(n=2, task="spin")
    with pytest.raises(DataError, match="choose one of collide"):
        Heldout2Dataset(n=2)  # probe tasks only: no unlabelled set
    with pytest.raises(DataError, match="clip_len"):
        Heldout2Dataset(n=2, clip_len=3, task="collide")


@pytest.mark.parametrize("T", [8, 20, 40])
def test_collide_pair_meets_then_bounces_passes_or_deflects_at_its_speed(T):
    for label, (scene, _) in scenes_by_label("collide", T=T).items():
        a, b = scene.positions[0], scene.positions[1]
        va, vb = np.diff(a, axis=0), np.diff(b, axis=0)
        speed = np.linalg.norm(va, axis=1)
        # one speed throughout, the contact step included (the path bends there, so that step is a little shorter)
        assert np.ptp(np.delete(speed, T // 2 - 1)) < 1e-6 and np.allclose(speed, np.linalg.norm(vb, axis=1), atol=1e-6)
        gap = np.linalg.norm(a - b, axis=1) - scene.radii[0] - scene.radii[1]
        assert -1e-6 < gap.min() < 1.0 and gap[0] > 0  # they touch midway, never overlap, apart at the start
        turn = float(unit(va[0]) @ unit(va[-1]))  # how the first object's heading changed over the contact
        assert turn == pytest.approx({0: -1.0, 1: 1.0, 2: 0.0}[label], abs=1e-6)
        assert np.allclose(va[0], -vb[0]) and np.allclose(va[-1], -vb[-1])  # head-on before, opposite after


def test_occlude_object_hides_behind_the_band_and_comes_out_where_its_class_says():
    for label, (scene, band) in scenes_by_label("occlude").items():
        x = scene.positions[0, :, 0]
        start_side = np.sign(x[0] - 32)
        end_side = np.sign(np.round(x[-1] - 32, 6))
        assert end_side == {0: -start_side, 1: start_side, 2: 0}[label]
        assert band == (round(32 - OCCLUDER_WIDTH * 32), round(32 + OCCLUDER_WIDTH * 32))
        colour = np.array([0.5, 0.4, 0.3])
        video = draw_heldout2(scene, band, colour)
        assert (video[:, :, :, band[0] : band[1]] == np.round(colour * 255)[None, :, None, None]).all()
        _, visible = draw_scene(scene)
        shown = visible[0][:, :, : band[0]].sum(axis=(1, 2)) + visible[0][:, :, band[1] :].sum(axis=(1, 2))
        assert shown[0] > 0 and (shown[-1] > 0) == (
            label != 2
        )  # outside the band at the start; at the end unless vanished
    scene, band = scenes_by_label("collide")[0]
    assert band is None


def test_follow_copies_the_leaders_steps_mirrors_them_or_winds_alone():
    s = scenes_by_label("follow")
    for label, (scene, _) in s.items():
        lead, fol = np.diff(scene.positions[0], axis=0), np.diff(scene.positions[1], axis=0)
        lx, fx = scene.positions[0, :, 0], scene.positions[1, :, 0]
        assert ((lx < 32) == (fx >= 32)).all()  # each in its own half, the whole clip
        if label == 0:
            assert np.allclose(fol, lead)
        elif label == 1:
            assert np.allclose(fol, lead * np.array([-1.0, 1.0]))
        else:
            assert not np.allclose(fol, lead) and not np.allclose(fol, lead * np.array([-1.0, 1.0]))
            speed = np.median(np.linalg.norm(lead, axis=1))  # a wall's reflection shortens that one step
            assert np.median(np.linalg.norm(fol, axis=1)) == pytest.approx(speed)
    # the pair's offset differs between clips of one class, so one frame's positions do not answer
    offsets = {
        tuple(np.round(sc.positions[1, 0] - sc.positions[0, 0], 3))
        for sc, _ in (scenes_by_label("follow", start=k)[0] for k in (0, 50))
    }
    assert len(offsets) == 2
