"""synthetic:textures: textured objects over a textured moving background (training data, no labels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prednet2.datasets import DataError, build_dataset
from prednet2.datasets.textures import TexturesDataset, pink_noise, render_textures_clip

from prednet2.config import DataConfig


def test_item_contract_and_determinism():
    ds = TexturesDataset(n=4, size=(48, 64), clip_len=7, seed=3)
    item = ds[2]
    assert item["video"].shape == (7, 3, 48, 64) and item["video"].dtype == torch.uint8
    assert item["label"].item() == -1 and ds.num_classes == 0
    assert torch.equal(item["video"], TexturesDataset(n=4, size=(48, 64), clip_len=7, seed=3)[2]["video"])
    assert not torch.equal(item["video"], TexturesDataset(n=4, size=(48, 64), clip_len=7, seed=4)[2]["video"])
    val = TexturesDataset(n=4, size=(48, 64), clip_len=7, seed=3, split="val")[2]
    assert not torch.equal(item["video"], val["video"])
    gray = TexturesDataset(n=1, clip_len=3, grayscale=True)[0]["video"]
    assert gray.shape == (3, 1, 64, 64)


def test_registry_and_errors():
    cfg = DataConfig(clip_len=4, n_synthetic=5, n_synthetic_test=3)
    assert len(build_dataset("synthetic:textures", cfg=cfg)) == 5
    assert len(build_dataset("synthetic:textures", cfg=cfg, split="test")) == 3
    assert len(build_dataset("synthetic:shapes+synthetic:textures", cfg=cfg)) == 10
    with pytest.raises(DataError, match="no labels"):
        build_dataset("synthetic:textures", cfg=cfg, labelled=True)
    with pytest.raises(DataError, match="clip_len"):
        TexturesDataset(n=1, clip_len=1)[0]
    with pytest.raises(DataError, match="16x16"):
        TexturesDataset(n=1, size=(8, 8))[0]


def test_pink_noise_has_a_falling_spectrum():
    tex = pink_noise(np.random.default_rng(0), 64, 64, contrast=0.2, mean=np.full(3, 0.5))
    assert tex.shape == (64, 64, 3) and tex.dtype == np.float32
    assert 0.0 <= tex.min() and tex.max() <= 1.0
    power = np.abs(np.fft.fft2(tex[..., 0] - tex[..., 0].mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64)))
    low, high = power[(f > 0) & (f < 0.1)].mean(), power[f > 0.35].mean()
    assert low > 20 * high  # 1/f amplitude: much more power at low spatial frequency than at high


def test_objects_move_and_carry_their_texture():
    rng = np.random.default_rng(1)
    clip = render_textures_clip(rng, size=(64, 64), T=6, n_objects=1)
    pos, mask = clip["positions"][0], clip["moving_mask"][:, 0]
    assert np.linalg.norm(np.diff(pos, axis=0), axis=1).min() > 0.1  # it moves every frame
    assert mask.any(axis=(1, 2)).all()
    ys, xs = np.nonzero(mask[0])
    assert abs(xs.mean() - pos[0, 0]) < 6 and abs(ys.mean() - pos[0, 1]) < 6  # the mask sits on the object


def test_static_background_without_pan_and_moving_with_it():
    def bg(pan):
        clip = render_textures_clip(np.random.default_rng(2), size=(32, 32), T=4, n_objects=0, pan=pan)
        return clip["video"].astype(float)

    still = bg((0.0, 0.0))
    assert np.abs(still[1:] - still[:1]).max() < 1.0  # no objects, no pan: nothing changes
    moved = bg((2.0, 0.0))
    # content moves 2 px right per frame: frame 1 shifted back by 2 px matches frame 0 away from the borders
    assert np.abs(moved[1, :, :, 4:-4] - moved[0, :, :, 2:-6]).mean() < 2.0
    assert np.abs(moved[1] - moved[0]).mean() > 4 * np.abs(moved[1, :, :, 4:-4] - moved[0, :, :, 2:-6]).mean()
