"""synthetic:moving_mnist: digits drawn are the MNIST images whose labels the items claim; clear errors on bad files."""

from __future__ import annotations

import dataclasses
import functools
import gzip

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from prednet2.datasets import DataError, build_dataset
from prednet2.datasets.moving_mnist import ALL_FILES, MovingMNIST, default_mnist_dir

from prednet2.config import DataConfig

MNIST = default_mnist_dir()
needs_mnist = pytest.mark.skipif(
    not all((MNIST / f).is_file() for f in ALL_FILES), reason=f"MNIST idx files not in {MNIST}"
)
CFG = DataConfig(clip_len=5, size=(64, 64), n_synthetic=16, n_synthetic_test=16)


@functools.lru_cache(maxsize=4)
def read_idx(path):
    """An independent idx reader (no code shared with the generator)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[2] == 8 and raw[3] == 3:
        n, h, w = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
        return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)
    return np.frombuffer(raw, np.uint8, offset=8)


@needs_mnist
def test_item_contract_and_determinism():
    ds = build_dataset("synthetic:moving_mnist", cfg=CFG, seed=1)
    item = ds[2]
    assert item["video"].shape == (5, 3, 64, 64) and item["video"].dtype == torch.uint8
    assert item["label"].item() == -1 and item["digits"].shape == (2,)
    assert torch.equal(item["video"], build_dataset("synthetic:moving_mnist", cfg=CFG, seed=1)[2]["video"])
    assert not torch.equal(item["video"], build_dataset("synthetic:moving_mnist", cfg=CFG, seed=2)[2]["video"])
    assert not torch.equal(item["video"], ds[3]["video"])
    # Each frame is the pixel-wise max of the two MNIST images placed at their corners (Srivastava's recipe).
    images = read_idx(MNIST / "train-images-idx3-ubyte.gz")
    for t in range(5):
        want = np.zeros((64, 64), np.uint8)
        for src, (x, y) in zip(item["source_index"].tolist(), item["corners"][:, t].tolist()):
            np.maximum(want[y : y + 28, x : x + 28], images[src], out=want[y : y + 28, x : x + 28])
        assert np.array_equal(item["video"][t, 0].numpy(), want)
        assert np.array_equal(item["video"][t, 2].numpy(), want)


@needs_mnist
def test_splits_use_disjoint_digit_pools():
    train = MovingMNIST(n=32, split="train", clip_len=2)
    val = MovingMNIST(n=32, split="val", clip_len=2)
    test = MovingMNIST(n=32, split="test", clip_len=2)
    assert all((train[i]["source_index"] < 50_000).all() for i in range(32))
    assert all((val[i]["source_index"] >= 50_000).all() for i in range(32))
    assert test.part == "t10k" and train.part == "train"
    assert not torch.equal(train[0]["video"], test[0]["video"])


@needs_mnist
@pytest.mark.parametrize("split", ["train", "test"])
def test_digit_label_is_the_digit_drawn(split):
    images = read_idx(MNIST / ("train-images-idx3-ubyte.gz" if split == "train" else "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(MNIST / ("train-labels-idx1-ubyte.gz" if split == "train" else "t10k-labels-idx1-ubyte.gz"))
    ds = MovingMNIST(n=12, split=split, task="digit", distractors=0, clip_len=3, grayscale=True)
    assert ds.num_classes == 10
    for i in range(len(ds)):
        item = ds[i]
        frame = item["video"][0, 0].numpy()
        src = int(item["source_index"][0])
        # Find the 28x28 window of frame 0 that is exactly that MNIST image, without using the stored corners.
        win = sliding_window_view(frame, (28, 28))  # (37, 37, 28, 28)
        hits = np.argwhere((win == images[src]).all(axis=(2, 3)))
        assert len(hits) >= 1, f"item {i}: MNIST image {src} is not drawn in frame 0"
        assert item["label"].item() == labels[src]
        assert frame.sum() == images[src].astype(int).sum(), "something besides the one digit was drawn"


@needs_mnist
def test_digit_task_distractor_is_smaller_and_another_class():
    ds = build_dataset("synthetic:moving_mnist:digit", cfg=CFG, labelled=True)
    for i in range(8):
        item = ds[i]
        assert item["digits"].shape == (2,) and item["digits"][0] != item["digits"][1]
        assert item["label"] == item["digits"][0]


@needs_mnist
def test_grayscale_and_other_sizes():
    ds = build_dataset("synthetic:moving_mnist", cfg=dataclasses.replace(CFG, grayscale=True, size=(48, 96)))
    assert ds[0]["video"].shape == (5, 1, 48, 96)


def test_missing_mnist_gives_a_clear_error(tmp_path):
    cfg = dataclasses.replace(CFG, mnist_path=str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as e:
        build_dataset("synthetic:moving_mnist", cfg=cfg)
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "train-images-idx3-ubyte.gz" in msg and "mnist_path" in msg


def test_env_var_sets_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PREDNET2_MNIST", str(tmp_path))
    with pytest.raises(DataError, match=str(tmp_path)):
        build_dataset("synthetic:moving_mnist:digit", cfg=CFG, labelled=True)


def test_malformed_file_is_named(tmp_path):
    for name in ALL_FILES:
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(5))  # a label header everywhere
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*magic number 2049, expected 2051"):
        MovingMNIST(n=2, mnist_path=tmp_path)
