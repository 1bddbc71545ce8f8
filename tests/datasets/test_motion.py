"""datasets.motion: the wrapper adds aligned masks, caches them (per video / per clip), resumes, and fails clearly."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch
from prednet2.datasets import motion as M
from prednet2.datasets.flow import FlowError
from prednet2.datasets.folder import VideoFolder
from prednet2.datasets.shapes import ShapesDataset

from prednet2.config import DataConfig, MotionConfig


def no_flow(*a, **k):
    raise AssertionError("flow was computed: the cache missed")


@pytest.fixture
def shapes(tmp_path):
    cfg = DataConfig(clip_len=6, cache_dir=str(tmp_path / "cache"))
    return ShapesDataset(n=3, size=(64, 64), clip_len=6, seed=0), cfg


def test_synthetic_items_get_masks_and_second_pass_hits_cache(shapes, monkeypatch):
    ds, cfg = shapes
    mds = M.with_motion(ds, MotionConfig(), cfg)
    first = [mds[i] for i in range(len(mds))]
    assert mds.n_computed == 3
    for it in first:
        assert it["mask"].shape == (6, 1, 64, 64) and it["mask"].dtype == torch.float32
        assert set(it["mask"].unique().tolist()) <= {0.0, 1.0}
        assert it["video"].shape == (6, 3, 64, 64)
    monkeypatch.setattr(M, "compute_flow", no_flow)
    again = M.with_motion(ds, MotionConfig(), cfg)  # a fresh wrapper: only the disk cache can answer
    for i, it in enumerate(first):
        torch.testing.assert_close(again[i]["mask"], it["mask"])
    assert again.n_computed == 0
    # Another option is another key: this one must compute (and so hit the patched flow).
    with pytest.raises(AssertionError, match="cache missed"):
        M.with_motion(ds, MotionConfig(static_floor=0.7), cfg)[0]


def test_masks_find_the_moving_object(shapes):
    ds, cfg = shapes
    mds = M.with_motion(ds, MotionConfig(cache=False), cfg)
    ious = []
    for i in range(len(ds)):
        it = mds[i]
        m, true = it["mask"][1:, 0] > 0.5, it["true_mask"][1:, 0].bool()
        ious.append(((m & true).sum() / (m | true).sum()).item())
    assert np.mean(ious) > 0.5  # the labelled object, with 1-3 distractors also moving: a loose sanity floor


def test_motion_off_returns_the_dataset(shapes):
    ds, cfg = shapes
    assert M.with_motion(ds, MotionConfig(enabled=False), cfg) is ds


def test_attributes_read_through_and_pickle(shapes):
    ds, cfg = shapes
    mds = M.with_motion(ds, MotionConfig(cache=False), cfg)
    assert mds.num_classes == ds.num_classes and mds.n_skipped == 0 and len(mds) == 3
    clone = pickle.loads(pickle.dumps(mds))  # DataLoader workers receive a pickled copy
    torch.testing.assert_close(clone[1]["mask"], mds[1]["mask"])
    batch = next(iter(torch.utils.data.DataLoader(mds, batch_size=2)))
    assert batch["mask"].shape == (2, 6, 1, 64, 64)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("camera", "homography", "motion.camera"),
        ("backend", "lucas", "motion.backend"),
        ("min_component", 1.5, "motion.min_component"),
        ("static_floor", -1.0, "motion.static_floor"),
        ("flow_size", -4, "motion.flow_size"),
    ],
)
def test_bad_options_name_the_key(shapes, field, value, match):
    ds, cfg = shapes
    with pytest.raises(ValueError, match=match):
        M.with_motion(ds, MotionConfig(**{field: value}), cfg)


def test_raft_without_weights_fails_at_construction(shapes):
    ds, cfg = shapes
    with pytest.raises(FlowError, match="cannot download"):
        M.with_motion(ds, MotionConfig(backend="raft"), cfg)


# ---- video folders: per-video cache --------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path, vt):
    """Two lossless 64x64 videos of moving shapes (24 frames each) in a folder."""
    root = vt.write_shapes_videos(tmp_path / "videos", 2, T=24, n_distractors=0)
    cfg = DataConfig(clip_len=5, stride=2, size=(64, 64), cache_dir=str(tmp_path / "cache"))
    return VideoFolder(root, cfg=cfg, progress=False), cfg


def test_video_masks_cached_aligned_and_resumable(folder, monkeypatch):
    ds, cfg = folder
    mds = M.with_motion(ds, MotionConfig(), cfg, progress=False)
    assert mds.n_computed == 2  # one flow pass per video, at construction
    files = sorted(mds.cache_dir.glob("*.npy"))
    assert len(files) == 2 and not list(mds.cache_dir.glob(".*.tmp"))  # no temporary left behind
    # Clip masks are the video's masks at the clip's frames (stride 2): same as computing over the whole video.
    v, start = ds.clips[1]
    full = mds.compute(np.asarray(ds.frames(v)))  # (N, H, W)
    item = mds[1]
    np.testing.assert_array_equal(item["mask"][:, 0].numpy(), full[start : start + 10 : 2])
    assert item["mask"].shape == (5, 1, 64, 64)

    # Second pass: no flow at all.
    monkeypatch.setattr(M, "compute_flow", no_flow)
    again = M.with_motion(ds, MotionConfig(), cfg, progress=False)
    assert again.n_computed == 0
    torch.testing.assert_close(again[1]["mask"], item["mask"])

    # Killed run: one file missing -> only that video is recomputed.
    monkeypatch.undo()
    files[0].unlink()
    resumed = M.with_motion(ds, MotionConfig(), cfg, progress=False)
    assert resumed.n_computed == 1
    assert len(list(mds.cache_dir.glob("*.npy"))) == 2


def test_flow_option_adds_cached_motion_vectors(shapes, monkeypatch):
    ds, cfg = shapes
    M.with_motion(ds, MotionConfig(), cfg)[0]  # a run without the flow target filled the mask cache first
    mds = M.with_motion(ds, MotionConfig(flow=True), cfg)
    it = mds[0]
    assert mds.n_computed == 1  # the mask was cached but its flow was not: computed once, both written
    assert it["flow"].shape == (6, 2, 64, 64) and it["flow"].dtype == torch.float32
    moving = it["mask"][1:, 0] > 0.5
    speed = it["flow"][1:].norm(dim=1)  # (T-1, H, W) px per frame
    assert speed[moving].mean() > 0.5 > speed[~moving].mean()  # the vectors live where the mask says things move
    monkeypatch.setattr(M, "compute_flow", no_flow)
    again = M.with_motion(ds, MotionConfig(flow=True), cfg)[0]  # now only the cache can answer
    torch.testing.assert_close(again["flow"], it["flow"])
    torch.testing.assert_close(again["mask"], it["mask"])
    assert "flow" not in M.with_motion(ds, MotionConfig(), cfg)[0]  # off by default: items as before


def test_video_flow_cached_and_aligned_with_the_clip(folder, monkeypatch):
    ds, cfg = folder
    mds = M.with_motion(ds, MotionConfig(flow=True), cfg, progress=False)
    assert len(list(mds.cache_dir.glob("*-flow.npy"))) == 2  # one per video, beside its masks
    v, start = ds.clips[1]
    _, full = mds.compute_both(np.asarray(ds.frames(v)))  # int8 (N, 2, H, W)
    item = mds[1]
    np.testing.assert_array_equal(item["flow"].numpy(), M.dequantize_vectors(full[start : start + 10 : 2]))
    monkeypatch.setattr(M, "compute_flow", no_flow)
    again = M.with_motion(ds, MotionConfig(flow=True), cfg, progress=False)
    assert again.n_computed == 0
    torch.testing.assert_close(again[1]["flow"], item["flow"])


def test_preview_png(tmp_path, capsys):
    out = tmp_path / "p.png"
    M.main(["synthetic:shapes", "--out", str(out), "--n", "2", "--set", "motion.cache=false"])
    img = cv2.imread(str(out))
    assert img.shape == (2 * 2 * 64 * 2, DataConfig().clip_len * 64 * 2, 3)  # a row of frames per clip
    with pytest.raises(SystemExit) as e:
        M.main(["synthetic:nope", "--out", str(out)])
    assert e.value.code == 2 and "unknown synthetic" in capsys.readouterr().err


def test_preview_bad_options_are_one_line_and_a_bare_name_is_a_png(tmp_path, capsys):
    # The PNG is written at the path given, with or without .png (cv2.imwrite chose its codec by extension and
    # raised on a name without one).
    small = ["--set", "motion.cache=false", "--set", "data.size=[16,16]", "--set", "data.clip_len=2"]
    assert M.main(["synthetic:shapes", "--out", str(tmp_path / "preview"), "--n", "1", *small]) == 0
    assert (tmp_path / "preview").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    for argv, needle in (
        (["--out", str(tmp_path)], f"argument --out: {tmp_path} is a folder"),  # was a cv2.error traceback
        (["--out", str(tmp_path / "p.png"), "--n", "0"], "argument --n: 0: need at least 1"),
    ):
        with pytest.raises(SystemExit) as e:
            M.main(["synthetic:shapes", *argv, *small])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and needle in err[0], err  # one line, not argparse's usage too
