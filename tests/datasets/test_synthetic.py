"""Tests of datasets.synthetic: the base class's checks of the clip geometry, shared by every built-in generator."""

import pytest
from prednet2.datasets import AnomalyDataset, DataError, MovingMNIST, ShapesDataset, TexturesDataset
from prednet2.datasets import TrajectoriesDataset as Trajectories
from prednet2.datasets.moving_mnist import ALL_FILES, default_mnist_dir

GENERATORS = [ShapesDataset, TexturesDataset, Trajectories, AnomalyDataset]


@pytest.mark.parametrize("cls", GENERATORS, ids=lambda c: c.stream)
def test_geometry_is_held_and_checked_when_the_set_is_built(cls):
    ds = cls(n=2, size=[48, 40], clip_len=12, grayscale=True)
    assert ds.size == (48, 40) and ds.clip_len == 12 and ds.grayscale is True
    assert ds[0]["video"].shape == (12, 1, 48, 40)
    with pytest.raises(DataError, match=rf"clip_len must be >= {cls.min_clip_len} for synthetic:{cls.stream}"):
        cls(n=2, clip_len=cls.min_clip_len - 1)  # raised by the constructor: no item is drawn
    side = cls.min_side - 1
    if side >= 1:
        with pytest.raises(DataError, match=rf"synthetic:{cls.stream} needs frames of at least 16x16"):
            cls(n=2, size=(side, 64), clip_len=12)
    with pytest.raises(DataError, match=r"needs \(H, W\)"):
        cls(n=2, size=(64,), clip_len=12)


@pytest.mark.skipif(not all((default_mnist_dir() / f).is_file() for f in ALL_FILES), reason="no MNIST idx files")
def test_moving_mnist_uses_the_base_geometry():
    ds = MovingMNIST(n=1, size=(32, 48), clip_len=5, grayscale=True)
    assert ds.size == (32, 48) and ds[0]["video"].shape == (5, 1, 32, 48)
