"""``--data A+B``: training specs joined by ``+`` interleave with an equal share each; masks and skips carry over."""

from __future__ import annotations

import pytest
import torch
from prednet2.datasets import DataError, build_dataset, check_spec, split_spec

from prednet2.config import DataConfig, MotionConfig


@pytest.fixture
def folder(vt, tmp_path):
    root = tmp_path / "real"
    for v, n in enumerate([8, 12]):
        vt.write_video(root / f"v{v}.mkv", vt.coded_frames(n, 16, 16, video_id=v + 1))
    (root / "broken.mp4").write_text("not a video\n")
    return root


def test_split_spec(tmp_path):
    assert split_spec("synthetic:shapes") == [("synthetic:shapes", 1)]
    assert split_spec("synthetic:shapes + a/b") == [("synthetic:shapes", 1), ("a/b", 1)]
    assert split_spec("synthetic:shapes*3+a/b*2") == [("synthetic:shapes", 3), ("a/b", 2)]
    plus = tmp_path / "c++ videos*2"
    plus.mkdir()
    assert split_spec(str(plus)) == [(str(plus), 1)]  # a folder that exists as written is never split
    for bad, match in [
        ("a++b", "empty part"),
        ("a+", "empty part"),
        ("+a", "empty part"),
        ("a*0+b", "N >= 1"),
        ("a*x+b", "N >= 1"),
        ("*2+b", "N >= 1"),
        ("synthetic:shapes*3", "applies to a part"),
        ("", "'': empty; give a folder of videos or synthetic:NAME"),
        ("  ", "empty"),
    ]:
        with pytest.raises(DataError, match=match):
            split_spec(bad)


def test_check_spec_names_the_bad_part(tmp_path):
    assert check_spec(f"synthetic:shapes*2+{tmp_path}") == [("synthetic:shapes", 2), (str(tmp_path), 1)]
    for bad, match in [
        ("synthetic:nope", r"^synthetic:nope: unknown synthetic data; valid specs: .*synthetic:shapes"),
        ("synthetic:shapes+synthetic:nope", r"^synthetic:shapes\+synthetic:nope: 'synthetic:nope': unknown synthetic"),
        (str(tmp_path / "gone"), "^" + str(tmp_path / "gone") + ": no such file or folder"),
        (f"synthetic:shapes+{tmp_path / 'gone'}", f": '{tmp_path / 'gone'}': no such file or folder"),
        ("a++b", "empty part"),  # split_spec's own errors pass through
    ]:
        with pytest.raises(DataError, match=match):
            check_spec(bad)


def test_weights_give_each_part_its_share(folder, tmp_path):
    cfg = DataConfig(clip_len=4, size=(16, 16), n_synthetic=15, cache_dir=str(tmp_path / "cache"))
    ds = build_dataset(f"synthetic:shapes*3+{folder}", cfg=cfg)
    shapes = build_dataset("synthetic:shapes", cfg=cfg)
    real = build_dataset(str(folder), cfg=cfg)
    assert len(ds) == 20  # 5 cycles of 4 draw the 15 shapes clips and the 5 real ones in full
    got = [ds[i]["video"] for i in range(len(ds))]
    is_real = [any(torch.equal(g, real[j]["video"]) for j in range(len(real))) for g in got]
    assert is_real == [False, False, True, False] * 5  # one real clip in every four, spread
    shown = [next(j for j in range(len(shapes)) if torch.equal(g, shapes[j]["video"])) for g, r in zip(got, is_real)
             if not r]  # fmt: skip
    assert shown == list(range(15))  # each shapes clip once, in order


def test_synthetic_and_folder_interleave_with_equal_shares(folder, tmp_path):
    cfg = DataConfig(clip_len=4, size=(16, 16), n_synthetic=5, cache_dir=str(tmp_path / "cache"))
    ds = build_dataset(f"synthetic:shapes+{folder}", cfg=cfg)
    shapes = build_dataset("synthetic:shapes", cfg=cfg)
    real = build_dataset(str(folder), cfg=cfg)
    assert len(real) == 5  # 2 + 3 clips of 4 frames
    assert len(ds) == 2 * max(len(shapes), len(real)) == 10
    assert torch.equal(ds[0]["video"], shapes[0]["video"]) and torch.equal(ds[1]["video"], real[0]["video"])
    assert torch.equal(ds[8]["video"], shapes[4]["video"]) and torch.equal(ds[9]["video"], real[4]["video"])
    assert ds.n_skipped == 1 and "broken.mp4" in str(ds.skipped[0])  # the folder's bad file is still reported
    assert all(ds[i]["label"].item() == -1 for i in range(len(ds)))


def test_shorter_part_repeats(folder, tmp_path):
    cfg = DataConfig(clip_len=4, size=(16, 16), n_synthetic=12, cache_dir=str(tmp_path / "cache"))
    ds = build_dataset(f"{folder}+synthetic:shapes", cfg=cfg)
    real = build_dataset(str(folder), cfg=cfg)
    assert len(ds) == 24
    assert torch.equal(ds[10]["video"], real[0]["video"])  # item 10 is the folder's 6th draw: clip 5 % 5 = 0


def test_motion_masks_come_from_each_part(folder, tmp_path):
    cfg = DataConfig(clip_len=4, size=(16, 16), n_synthetic=3, cache_dir=str(tmp_path / "cache"))
    ds = build_dataset(f"synthetic:shapes+{folder}", cfg=cfg, motion=MotionConfig(), seed=0)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["mask"].shape == (4, 4, 1, 16, 16) and batch["video"].shape == (4, 4, 3, 16, 16)
    assert "flow" not in batch  # only with motion.flow


def test_flow_vectors_come_from_each_part(folder, tmp_path):
    """The flow target (model.flow_weight sets motion.flow) trains on mixtures too: every item keeps its vectors."""
    cfg = DataConfig(clip_len=4, size=(16, 16), n_synthetic=3, cache_dir=str(tmp_path / "cache"))
    ds = build_dataset(f"synthetic:shapes+{folder}", cfg=cfg, motion=MotionConfig(flow=True), seed=0)
    shapes = build_dataset("synthetic:shapes", cfg=cfg, motion=MotionConfig(flow=True), seed=0)
    real = build_dataset(str(folder), cfg=cfg, motion=MotionConfig(flow=True), seed=0)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["flow"].shape == (4, 4, 2, 16, 16) and batch["flow"].dtype == torch.float32
    assert torch.equal(ds[0]["flow"], shapes[0]["flow"]) and torch.equal(ds[1]["flow"], real[0]["flow"])
    assert batch["flow"].abs().sum() > 0  # moving shapes: not all zero


def test_a_mixture_has_no_labels(folder):
    with pytest.raises(DataError, match="no labels"):
        build_dataset("synthetic:shapes:direction+synthetic:trajectories:kind", cfg=DataConfig(), labelled=True)
