"""prednet2.tblog image helpers, and the TensorBoard tags a short training run writes (read back from disk)."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from train_helpers import tiny_config

from prednet2 import tblog
from prednet2.trainer import train


def test_heatmap_and_images():
    x = torch.zeros(4, 6)
    x[1, 2] = 3.0
    h = tblog.heatmap(x)
    assert h.shape == (3, 4, 6) and 0 <= h.min() and h.max() <= 1
    assert h[:, 1, 2].sum() > h[:, 0, 0].sum()  # the hot pixel is brighter than the cold ones
    frame = torch.rand(3, 16, 16)
    err = torch.rand(8, 4, 4)
    img = tblog.error_map_image(frame, err)
    assert img.shape == (3, 16, 32) and torch.equal(img[:, :, :16], frame)
    assert tblog.error_map_image(torch.rand(1, 16, 16), err).shape == (3, 16, 32)  # grayscale frames
    assert tblog.mask_image(frame, torch.rand(1, 16, 16)).shape == (3, 16, 32)
    assert tblog.frame_strip(torch.rand(12, 3, 8, 8)).shape == (3, 8, 80)  # at most 10 frames
    assert tblog.pred_vs_actual_image(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)).shape == (3, 16, 32)
    frames = torch.rand(4, 3, 8, 8)
    assert torch.equal(tblog.depth_to_frames(torch.nn.functional.pixel_unshuffle(frames, 2), 3), frames)
    assert tblog.depth_to_frames(frames, 3) is frames


def test_logger_disabled_is_a_no_op(tmp_path):
    log = tblog.TBLogger(tmp_path / "tb", enabled=False)
    log.scalars({"a": 1.0}, 0)
    log.image("b", torch.rand(3, 4, 4), 0)
    log.close()
    assert not (tmp_path / "tb").exists()


def _tags(tb_dir) -> tuple[set[str], set[str]]:
    ea = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    return set(ea.Tags()["scalars"]), set(ea.Tags()["images"])


@pytest.mark.parametrize("target", ["repr", "pixel"])
def test_run_writes_every_tag(tmp_path, target):
    train(tiny_config(f"model.target={target}", steps=4), "synthetic:shapes", tmp_path, progress=False)
    scalars, images = _tags(tmp_path / "tb")
    want = {"lr", "frames_per_s"}
    for l in range(2):
        for kind in ("loss", "error", "repr_std", "repr_rank", "pred_vs_copy_last"):
            want.add(f"{kind}/layer{l}")
    want |= {"var/layer1", "cov/layer1"}  # the model's own stats, as hierarchical tags
    assert want <= scalars, sorted(want - scalars)
    want_img = {"input/frames", "error_map/layer0", "error_map/layer1"}
    if target == "pixel":
        want_img.add("pred_vs_actual")
    assert want_img <= images, sorted(want_img - images)


class _WithMasks(torch.utils.data.Dataset):
    """Any dataset plus a motion mask per frame (|frame(t) - frame(t-1)| > 0), standing in for datasets.motion."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        item = dict(self.ds[i])
        v = item["video"].float()
        diff = (v - torch.cat([v[:1], v[:-1]])).abs().amax(1, keepdim=True)  # (T, 1, H, W)
        item["mask"] = (diff > 0).float()
        return item


def test_motion_run_logs_masks_and_binding(tmp_path, monkeypatch):
    from prednet2 import train_data

    real = train_data.build_train_data
    fake = lambda cfg, spec, progress=True: _WithMasks(real(cfg.replace(["motion=off"]), spec))  # noqa: E731
    monkeypatch.setattr(train_data, "build_train_data", fake)
    summary = train(tiny_config("motion=on", steps=2), "synthetic:shapes", tmp_path, progress=False)
    assert summary["status"] == "completed"
    scalars, images = _tags(tmp_path / "tb")
    assert "motion_mask" in images and "stats/bind" in scalars
    assert "model:\n  preset: tiny" in (tmp_path / "config.yaml").read_text()
    assert "motion_channels: 8" in (tmp_path / "config.yaml").read_text()


@pytest.mark.parametrize("target", ["repr", "pixel"])
def test_short_run_logs_every_tag_at_first_and_last_step(tmp_path, monkeypatch, target):
    """20 steps with the default intervals (scalars 10, repr stats 50, images 100): every panel still fills,
    because the first step and the last one log everything."""
    from prednet2 import train_data

    real = train_data.build_train_data
    fake = lambda cfg, spec, progress=True: _WithMasks(real(cfg.replace(["motion=off"]), spec))  # noqa: E731
    monkeypatch.setattr(train_data, "build_train_data", fake)
    defaults = ["train.log_every=10", "train.stats_every=50", "train.image_every=100", "train.ckpt_every=100"]
    cfg = tiny_config("motion=on", f"model.target={target}", *defaults, steps=20)
    train(cfg, "synthetic:shapes", tmp_path, progress=False)
    ea = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    scalars, images = set(ea.Tags()["scalars"]), set(ea.Tags()["images"])
    want = {"lr", "frames_per_s", "stats/bind"}
    for l in range(2):
        for kind in ("loss", "error", "repr_std", "repr_rank", "pred_vs_copy_last"):
            want.add(f"{kind}/layer{l}")
    assert want <= scalars, sorted(want - scalars)
    want_img = {"input/frames", "error_map/layer0", "error_map/layer1", "motion_mask"}
    if target == "pixel":
        want_img.add("pred_vs_actual")
    assert want_img <= images, sorted(want_img - images)
    assert [e.step for e in ea.Scalars("repr_std/layer0")] == [1, 20]
    assert [e.step for e in ea.Images("input/frames")] == [1, 20]
    assert [e.step for e in ea.Scalars("loss/layer0")] == [1, 10, 20]
