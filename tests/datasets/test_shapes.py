"""synthetic:shapes: determinism, item contract, and labels checked against what is actually drawn."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from prednet2.datasets.errors import DataError
from prednet2.datasets.shapes import (
    DIRECTIONS,
    SHAPES,
    SPEED_JITTER,
    SPEED_PX,
    ShapesDataset,
    render_shapes_clip,
    speed_factor,
)


def centroids(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> (T, 2) centroid (x, y) per frame."""
    T, H, W = mask.shape
    ys, xs = np.mgrid[0:H, 0:W]
    area = mask.sum(axis=(1, 2))
    assert (area > 0).all(), "the labelled object vanished from a frame"
    return np.stack([(mask * xs).sum(axis=(1, 2)) / area, (mask * ys).sum(axis=(1, 2)) / area], axis=1)


def angle_error(measured_deg: float, label: int) -> float:
    return abs((measured_deg - 45.0 * label + 180.0) % 360.0 - 180.0)


def classify_shape(m: np.ndarray) -> str:
    """Name a single binary silhouette at any rotation from its geometry alone (not the generator's formulas)."""
    ys, xs = np.nonzero(m)
    cy, cx = ys.mean(), xs.mean()
    if not m[int(round(cy)), int(round(cx))]:
        return "ring"
    area = float(m.sum())
    hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))
    solidity = area / (cv2.contourArea(hull) + len(hull) / 2 + 1)  # pixel centres: the hull misses half a pixel
    if solidity < 0.68:
        return "star"
    if solidity < 0.85:
        return "cross"
    compact = area / ((xs - cx) ** 2 + (ys - cy) ** 2).max()  # circle pi, square 2, triangle 1.3
    return "circle" if compact > 2.6 else "square" if compact > 1.65 else "triangle"


def test_item_contract_and_nonsquare_size():
    ds = ShapesDataset(n=4, size=(48, 80), clip_len=7, task="direction")
    item = ds[3]
    assert item["video"].shape == (7, 3, 48, 80) and item["video"].dtype == torch.uint8
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0
    assert item["label"].item() == item["direction"]
    assert item["index"] == 3
    assert item["true_mask"].shape == (7, 1, 48, 80) and item["true_mask"].dtype == torch.bool
    assert ds.num_classes == 8 and ds.classes == list(DIRECTIONS)
    assert ds.n_skipped == 0 and ds.skipped == []
    with pytest.raises(IndexError):
        ds[4]


def test_deterministic_by_seed_split_and_index():
    a = ShapesDataset(n=8, seed=3)
    b = ShapesDataset(n=8, seed=3)
    assert torch.equal(a[5]["video"], b[5]["video"])
    assert torch.equal(a[5]["true_mask"], b[5]["true_mask"])
    assert not torch.equal(a[5]["video"], ShapesDataset(n=8, seed=4)[5]["video"])
    assert not torch.equal(a[5]["video"], a[6]["video"])
    test = ShapesDataset(n=8, seed=3, split="test")
    val = ShapesDataset(n=8, seed=3, split="val")
    for i in range(8):
        assert not torch.equal(a[i]["video"], test[i]["video"])
        assert not torch.equal(val[i]["video"], test[i]["video"])


def test_dataloader_workers_give_the_same_clips():
    ds = ShapesDataset(n=6, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batch = torch.cat([b["video"] for b in loader])
    assert torch.equal(batch, torch.stack([ds[i]["video"] for i in range(6)]))


@pytest.mark.parametrize("direction", range(8))
def test_direction_label_matches_first_displacement(direction):
    # 128 px and the fast class make the centroid's rounding error small against the step (~2 degrees).
    rng = np.random.default_rng(direction)
    for _ in range(4):
        clip = render_shapes_clip(rng, size=(128, 128), T=4, direction=direction, speed=2, n_distractors=2)
        c = centroids(clip["true_mask"][:, 0])
        dx, dy = c[1] - c[0]
        measured = np.degrees(np.arctan2(-dy, dx))  # y up
        assert angle_error(measured, direction) < 14.0, (measured, direction)


def test_dataset_direction_labels_match_drawn_motion():
    ds = ShapesDataset(n=48, seed=0, task="direction")
    hits = 0
    for i in range(len(ds)):
        item = ds[i]
        c = centroids(item["true_mask"][:, 0].numpy())
        dx, dy = c[1] - c[0]
        hits += angle_error(np.degrees(np.arctan2(-dy, dx)), int(item["label"])) < 22.5
    assert hits >= 0.9 * len(ds), f"only {hits}/{len(ds)} first displacements point the labelled way"


def test_speed_label_matches_measured_speed_and_needs_time():
    rng = np.random.default_rng(0)
    first_steps = {k: [] for k in range(3)}
    for k in range(3):
        for _ in range(8):
            clip = render_shapes_clip(rng, size=(128, 128), T=20, speed=k)
            steps = np.linalg.norm(np.diff(centroids(clip["true_mask"][:, 0]), axis=0), axis=1) / 2.0  # px @ 64
            med = np.median(steps)  # bounces shorten a step; the median ignores them
            nearest = int(np.argmin([abs(med - s) for s in SPEED_PX]))
            assert nearest == k, (med, k)
            first_steps[k].append(steps[0])
    # Single steps of neighbouring classes overlap by design: two frames cannot tell slow from medium.
    lo_max = SPEED_PX[0] * (1 + SPEED_JITTER)
    hi_min = SPEED_PX[1] * (1 - SPEED_JITTER)
    assert hi_min < lo_max


def test_speed_scale_scales_every_displacement_and_nothing_else():
    for seed in range(4):
        base = render_shapes_clip(np.random.default_rng(seed), size=(64, 64), T=6)
        slow = render_shapes_clip(np.random.default_rng(seed), size=(64, 64), T=6, speed_scale=0.5)
        # the first step never touches a wall, so it halves exactly; the labels are the unscaled classes'
        step = base["positions"][:, 1] - base["positions"][:, 0]
        np.testing.assert_allclose(slow["positions"][:, 1] - slow["positions"][:, 0], 0.5 * step, atol=1e-9)
        assert (slow["direction"], slow["speed"], slow["shape"]) == (base["direction"], base["speed"], base["shape"])


def test_deform_changes_the_silhouettes_not_the_motion_or_labels():
    for seed in range(3):
        rigid = render_shapes_clip(np.random.default_rng(seed), size=(64, 64), T=8)
        soft = render_shapes_clip(np.random.default_rng(seed), size=(64, 64), T=8, deform=1.0)
        np.testing.assert_array_equal(soft["positions"], rigid["positions"])  # drawn after the rest of the clip
        assert (soft["direction"], soft["speed"], soft["shape"]) == (rigid["direction"], rigid["speed"], rigid["shape"])
        assert not np.array_equal(soft["true_mask"], rigid["true_mask"])  # the pose changes
        area = soft["true_mask"].reshape(8, -1).sum(axis=1) / rigid["true_mask"][0].sum()
        assert np.all(np.abs(area - 1) < 0.15)  # spin and stretch keep the labelled object's size


def test_speed_range_draws_log_uniform_factors_per_clip():
    rng = np.random.default_rng(0)
    assert speed_factor(rng, (0.5, 0.5)) == 0.5
    assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state  # a single value draws nothing
    f = np.array([speed_factor(rng, (0.25, 4.0)) for _ in range(4000)])
    assert 0.25 <= f.min() and f.max() <= 4.0
    assert abs(np.mean(np.log(f))) < 0.05  # log-uniform about 1: as many clips slower as faster
    assert abs(np.mean(f < 0.5) - 0.25) < 0.03
    with pytest.raises(DataError, match="speed range"):
        speed_factor(rng, (0.0, 1.0))


def test_shape_labels_match_drawn_silhouette():
    ds = ShapesDataset(n=36, size=(128, 128), clip_len=2, seed=0, task="shape")
    for i in range(len(ds)):
        item = ds[i]
        assert SHAPES[int(item["label"])] == classify_shape(item["true_mask"][0, 0].numpy()), i


def test_labelled_object_is_largest_and_on_top():
    rng = np.random.default_rng(1)
    for _ in range(10):
        clip = render_shapes_clip(rng, T=5, n_distractors=3)
        areas = clip["object_masks"].sum(axis=(2, 3))  # (N, T) visible pixels
        assert (areas[0] > areas[1:].max(axis=0)).all()
        # Drawn on top: every pixel of its silhouette shows its own single colour, in every frame.
        v = clip["video"].transpose(0, 2, 3, 1)  # (T, H, W, C)
        pix = v[clip["true_mask"][:, 0]]  # (P, C)
        assert (pix == pix[0]).all()


def test_grayscale_objects_stand_out():
    clip = render_shapes_clip(np.random.default_rng(2), T=3, grayscale=True, n_distractors=2)
    v = clip["video"][:, 0]
    assert clip["video"].shape[1] == 1
    any_obj = clip["object_masks"].any(axis=0)
    assert v[clip["true_mask"][:, 0]].min() > 135  # objects have luminance >= 0.55
    assert v[~any_obj].max() < 110  # background <= 0.42


def test_static_clip_and_camera_pan():
    rng = np.random.default_rng(5)
    clip = render_shapes_clip(rng, T=4, static=True, pan=(2.0, 0.0), n_distractors=2)
    m = clip["object_masks"]
    assert (m == m[:, :1]).all(), "static objects moved"
    assert not clip["moving_mask"].any()
    # The background content moves 2 px right per frame: frame 1 shifted back equals frame 0 off the objects.
    v = clip["video"]
    off = ~m.any(axis=0)  # (T, H, W)
    keep = off[0, :, :-2] & off[1, :, 2:]
    assert np.array_equal(v[1][:, :, 2:][:, keep], v[0][:, :, :-2][:, keep])
    assert not np.array_equal(v[1], v[0])


def test_moving_mask_covers_all_moving_objects():
    clip = render_shapes_clip(np.random.default_rng(3), T=4, n_distractors=2)
    assert np.array_equal(clip["moving_mask"][:, 0], clip["object_masks"].any(axis=0))
    assert (clip["true_mask"] <= clip["moving_mask"]).all()
