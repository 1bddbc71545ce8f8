"""build_dataset: the spec registry, split sizes, errors, and the motion hook."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from prednet2.datasets import SYNTHETIC_SPECS, DataError, build_dataset, to_float
from prednet2.datasets.shapes import ShapesDataset

from prednet2.config import DataConfig, MotionConfig

CFG = DataConfig(clip_len=6, size=(32, 32), n_synthetic=20, n_synthetic_test=7)


def test_to_float_range_and_type():
    v = torch.tensor([0, 128, 255], dtype=torch.uint8)
    f = to_float(v)
    assert f.dtype == torch.float32 and f[0] == 0 and f[2] == 1 and abs(f[1] - 128 / 255) < 1e-6
    with pytest.raises(TypeError):
        to_float(f)


def test_shapes_specs_and_split_sizes():
    train = build_dataset("synthetic:shapes", cfg=CFG)
    assert len(train) == 20 and train.num_classes == 0
    assert train[0]["label"].item() == -1
    assert train[0]["video"].shape == (6, 3, 32, 32)
    test = build_dataset("synthetic:shapes:speed", cfg=CFG, split="test", labelled=True)
    assert len(test) == 7 and test.classes == ["slow", "medium", "fast"]
    assert 0 <= test[0]["label"].item() < 3


def test_grayscale_follows_config():
    ds = build_dataset("synthetic:shapes:shape", cfg=dataclasses.replace(CFG, grayscale=True))
    assert ds[0]["video"].shape == (6, 1, 32, 32)


def test_synthetic_pan_reaches_the_training_sets_only():
    panning = dataclasses.replace(CFG, synthetic_pan=1.0)
    for spec in ("synthetic:shapes", "synthetic:trajectories"):
        assert build_dataset(spec, cfg=panning).pan_prob == 1.0
        assert build_dataset(spec, cfg=dataclasses.replace(CFG, synthetic_pan=0.0)).pan_prob == 0.0
        # the default draws the very clips it drew before the key existed
        default = build_dataset(spec, cfg=CFG)
        explicit = type(default)(n=3, size=(32, 32), clip_len=6, pan_prob=0.5)
        assert torch.equal(default[2]["video"], explicit[2]["video"])
    assert all(part.pan_prob == 1.0 for part in build_dataset("synthetic:mix", cfg=panning).parts)
    for spec in ("synthetic:shapes:direction", "synthetic:trajectories:kind"):  # probe tasks never change
        assert build_dataset(spec, cfg=panning, labelled=True).pan_prob == 0.5
    # a still background changes clips: panning ones differ from still ones for the same (seed, index)
    still = build_dataset("synthetic:shapes", cfg=dataclasses.replace(CFG, synthetic_pan=0.0))
    moving = build_dataset("synthetic:shapes", cfg=panning)
    assert any(not torch.equal(still[i]["video"], moving[i]["video"]) for i in range(4))


def test_synthetic_speed_reaches_the_training_sets_only():
    slow = dataclasses.replace(CFG, synthetic_speed=(0.5, 0.5))
    for spec in ("synthetic:shapes", "synthetic:trajectories"):
        assert build_dataset(spec, cfg=slow).speed_range == (0.5, 0.5)
        # the default draws the very clips it drew before the key existed
        default = build_dataset(spec, cfg=CFG)
        explicit = type(default)(n=3, size=(32, 32), clip_len=6)
        assert torch.equal(default[2]["video"], explicit[2]["video"])
        assert any(not torch.equal(default[i]["video"], build_dataset(spec, cfg=slow)[i]["video"]) for i in range(3))
    assert all(part.speed_range == (0.5, 0.5) for part in build_dataset("synthetic:mix", cfg=slow).parts)
    for spec in ("synthetic:shapes:direction", "synthetic:trajectories:kind"):  # probe tasks never change
        assert build_dataset(spec, cfg=slow, labelled=True).speed_range == (1.0, 1.0)
    with pytest.raises(DataError, match="speed range"):
        ShapesDataset(n=2, speed_range=(2.0, 1.0))


def test_synthetic_deform_reaches_the_training_sets_only():
    soft = dataclasses.replace(CFG, synthetic_deform=1.0)
    for spec in ("synthetic:shapes", "synthetic:trajectories"):
        assert build_dataset(spec, cfg=soft).deform == 1.0
        assert build_dataset(spec, cfg=CFG).deform == 0.0
        rigid = build_dataset(spec, cfg=CFG)
        assert any(not torch.equal(rigid[i]["video"], build_dataset(spec, cfg=soft)[i]["video"]) for i in range(3))
    assert all(part.deform == 1.0 for part in build_dataset("synthetic:mix", cfg=soft).parts)
    for spec in ("synthetic:shapes:direction", "synthetic:trajectories:kind"):  # probe tasks never change
        assert build_dataset(spec, cfg=soft, labelled=True).deform == 0.0
    with pytest.raises(DataError, match="deform"):
        ShapesDataset(n=2, deform=1.5)


def test_unknown_synthetic_name_lists_valid_specs():
    with pytest.raises(DataError) as e:
        build_dataset("synthetic:cubes", cfg=CFG)
    assert "synthetic:cubes" in str(e.value)
    for spec in SYNTHETIC_SPECS:
        assert spec in str(e.value)


def test_labelled_needs_a_task():
    with pytest.raises(DataError, match="synthetic:shapes:direction"):
        build_dataset("synthetic:shapes", cfg=CFG, labelled=True)


def test_bad_split_and_missing_folder(tmp_path):
    with pytest.raises(DataError, match="split"):
        build_dataset("synthetic:shapes", cfg=CFG, split="dev")
    with pytest.raises(DataError, match="no such folder"):
        build_dataset(str(tmp_path / "nope"), cfg=CFG)


def test_motion_off_adds_no_mask():
    ds = build_dataset("synthetic:shapes", cfg=CFG, motion=MotionConfig(enabled=False))
    assert "mask" not in ds[0]


def test_motion_on_gives_masks_or_a_clear_error():
    try:
        import prednet2.datasets.motion  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="motion=off"):
            build_dataset("synthetic:shapes", cfg=CFG, motion=MotionConfig())
        return
    item = build_dataset("synthetic:shapes", cfg=CFG, motion=MotionConfig())[0]
    assert item["mask"].shape == (6, 1, 32, 32) and item["mask"].dtype == torch.float32


def test_split_lists_only_for_labelled_folders(tmp_path):
    with pytest.raises(DataError, match="labelled video folders only"):
        build_dataset("synthetic:shapes:shape", cfg=CFG, labelled=True, splits_dir=str(tmp_path))
    with pytest.raises(DataError, match="labelled video folders only"):
        build_dataset(str(tmp_path), cfg=CFG, splits_dir=str(tmp_path))


def _write_clip(path, n=10, size=32, colour=0):
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.height = s.width = size
        s.pix_fmt = "bgr0"
        for t in range(n):
            f = np.full((size, size, 3), 20 * t, np.uint8)
            f[..., colour] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_folders_delegate_to_the_video_readers(tmp_path):
    pytest.importorskip("prednet2.datasets.folder")
    pytest.importorskip("prednet2.datasets.labelled")
    root = tmp_path / "videos"
    for k, cls in enumerate(["red", "green"]):
        for i in range(3):
            _write_clip(root / cls / f"{cls}{i}.mkv", colour=k)
    cfg = dataclasses.replace(CFG, clip_len=4, size=(16, 16), cache_dir=str(tmp_path / "cache"))
    plain = build_dataset(str(root), cfg=cfg)
    assert type(plain).__name__ == "VideoFolder" and plain[0]["video"].shape == (4, 3, 16, 16)
    lab = build_dataset(str(root), cfg=cfg, labelled=True, split="train")
    assert type(lab).__name__ == "LabelledVideoFolder" and lab.num_classes == 2


def test_wrong_argument_types_are_named(tmp_path):
    """The whole Config for cfg, a bool for motion, a hand-built DataConfig out of range: refused naming the argument
    (they failed on a missing attribute deep inside); a path object is read as its string."""
    from prednet2.config import Config

    with pytest.raises(TypeError, match=r"cfg: expected a prednet2.config.DataConfig, got Config; .* cfg=cfg.data"):
        build_dataset("synthetic:shapes", cfg=Config())
    with pytest.raises(TypeError, match="cfg: expected a prednet2.config.DataConfig, got dict"):
        build_dataset("synthetic:shapes", cfg={"clip_len": 4})
    with pytest.raises(TypeError, match="motion: expected a prednet2.config.MotionConfig or None, got True"):
        build_dataset("synthetic:shapes", cfg=CFG, motion=True)
    with pytest.raises(DataError, match=r"data.size: expected a tuple such as \(64, 64\), got int 32"):
        build_dataset("synthetic:shapes", cfg=dataclasses.replace(CFG, size=32))
    with pytest.raises(DataError, match="data.clip_len=1 is out of range"):
        build_dataset("synthetic:shapes", cfg=dataclasses.replace(CFG, clip_len=1))
    with pytest.raises(DataError, match="no such folder"):
        build_dataset(tmp_path / "missing", cfg=CFG)
    assert len(build_dataset(Path("synthetic:shapes"), cfg=CFG)) == len(build_dataset("synthetic:shapes", cfg=CFG))
