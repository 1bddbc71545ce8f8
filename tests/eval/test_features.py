"""eval.features: extraction order and shapes, the pixel baseline, and the on-disk cache."""

import os
import time

import numpy as np
import pytest
import torch
from prednet2.eval.features import (
    cache_key,
    cached_features,
    checkpoint_id,
    extract_model_features,
    extract_pixel_features,
    pooled_pixels,
    select_layers,
)


class ToyDataset(torch.utils.data.Dataset):
    """n clips (T=4, C=1, 8x8) whose brightness encodes the index; label = index % 3."""

    def __init__(self, n: int = 7):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        video = torch.full((4, 1, 8, 8), 10 * i, dtype=torch.uint8)
        return {"video": video, "label": torch.tensor(i % 3), "index": i}


class ToyModel(torch.nn.Module):
    """extract_features -> {0: mean brightness (B, 1), 1: (B, 2)}; records the masks it was given."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def extract_features(self, clip, mask=None):
        self.masks.append(mask)
        m = clip.mean(dim=(1, 2, 3, 4))
        return {0: m[:, None], 1: torch.stack([m, -m], dim=1)}


def test_model_features_keep_dataset_order():
    feats, labels = extract_model_features(ToyModel(), ToyDataset(7), batch_size=3)
    assert sorted(feats) == ["0", "1"]
    assert feats["0"].shape == (7, 1) and feats["1"].shape == (7, 2)
    np.testing.assert_allclose(feats["0"][:, 0], 10 * np.arange(7) / 255, rtol=1e-6)
    np.testing.assert_array_equal(labels, np.arange(7) % 3)


def test_select_layers():
    feats = {"0": np.zeros((2, 1)), "1": np.zeros((2, 3))}
    assert list(select_layers(feats, [1])) == ["1"]
    assert list(select_layers(feats, None)) == ["0", "1"]
    with pytest.raises(ValueError, match="layers"):
        select_layers(feats, [5])


def test_pooled_pixels_keep_coarse_time():
    video = torch.zeros(2, 8, 3, 16, 16, dtype=torch.uint8)
    for t in range(8):  # a bright square moving right: early bins light the left, late bins the right
        video[0, t, :, 4:8, 2 * t : 2 * t + 2] = 255
    f = pooled_pixels(video, pool=4, bins=2)
    assert f.shape == (2, 2 * 3 * 4 * 4)
    per_bin = f[0].reshape(2, 3, 4, 4)[:, 0, 1]  # (bins, W) of the square's row
    assert per_bin[0, :2].sum() > per_bin[0, 2:].sum()
    assert per_bin[1, 2:].sum() > per_bin[1, :2].sum()
    assert torch.all(f[1] == 0)
    with pytest.raises(ValueError, match="temporal bins"):
        pooled_pixels(video[:, :1], bins=2)


def test_pixel_features_shape_and_labels():
    feats, labels = extract_pixel_features(ToyDataset(5), batch_size=2, pool=2, bins=2)
    assert feats["0"].shape == (5, 2 * 1 * 2 * 2)
    np.testing.assert_array_equal(labels, np.arange(5) % 3)


def test_cache_hit_on_second_call(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return extract_model_features(ToyModel(), ToyDataset(4), batch_size=2)

    parts = {"source": "x", "data": "toy", "split": "train", "options": {"clip_len": 4}}
    f1, y1, hit1 = cached_features(tmp_path, parts, compute)
    f2, y2, hit2 = cached_features(tmp_path, parts, compute)
    assert (hit1, hit2) == (False, True)
    assert len(calls) == 1
    assert f1.keys() == f2.keys()
    for k in f1:
        np.testing.assert_array_equal(f1[k], f2[k])
    np.testing.assert_array_equal(y1, y2)
    # Another split is another entry; None disables the cache.
    _, _, hit3 = cached_features(tmp_path, {**parts, "split": "test"}, compute)
    _, _, hit4 = cached_features(None, parts, compute)
    assert not hit3 and not hit4 and len(calls) == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_key_tracks_every_part(tmp_path):
    base = {"source": "a", "data": "synthetic:shapes:direction", "split": "train", "options": {"clip_len": 10}}
    keys = {
        cache_key(base),
        cache_key({**base, "source": "b"}),
        cache_key({**base, "data": "synthetic:shapes:shape"}),
        cache_key({**base, "split": "test"}),
        cache_key({**base, "options": {"clip_len": 8}}),
    }
    assert len(keys) == 5
    assert cache_key(dict(reversed(list(base.items())))) == cache_key(base)


def test_checkpoint_id_changes_with_mtime(tmp_path):
    p = tmp_path / "last.pt"
    p.write_bytes(b"a")
    a = checkpoint_id(p)
    later = time.time() + 5
    os.utime(p, (later, later))
    assert checkpoint_id(p) != a
    assert str(p.resolve()) in a


def test_corrupt_cache_file_is_recomputed(tmp_path):
    parts = {"source": "c"}
    (tmp_path / f"{cache_key(parts)}.npz").write_bytes(b"not a zip")
    feats, labels, hit = cached_features(tmp_path, parts, lambda: ({"0": np.ones((2, 1))}, np.zeros(2, np.int64)))
    assert not hit and feats["0"].shape == (2, 1)
