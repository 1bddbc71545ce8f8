"""datasets/scene.py: the shapes' areas, the background's range and pan, the objects' brightness."""

import numpy as np
import pytest
from prednet2.datasets.scene import (
    BG_MAX,
    FG_MIN_LUMA,
    MAX_SPIN,
    MAX_STRETCH,
    SHAPES,
    bright_colours,
    deform_sequences,
    make_background,
    shape_mask,
)


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_shape_areas_are_similar_at_any_rotation(shape):
    r = 20.0
    ys, xs = np.mgrid[-40:41, -40:41].astype(np.float32)
    for angle in (0.0, 0.7, 2.1):
        area = shape_mask(shape, xs, ys, r, angle).sum() / r**2
        assert 2.0 <= area <= 3.3, (SHAPES[shape], angle, area)


def test_unknown_shape_id_is_an_error():
    with pytest.raises(ValueError, match="unknown shape id"):
        shape_mask(len(SHAPES), np.zeros(1), np.zeros(1), 1.0)


def test_background_stays_dark_and_pans_by_whole_pixels():
    rng = np.random.default_rng(0)
    bg = make_background(rng, (32, 48), 5, pan=(2.0, -1.0))
    assert bg.shape == (5, 32, 48, 3) and bg.dtype == np.float32
    assert bg.max() <= BG_MAX + 1e-6
    # content moves by +pan: frame t+1 shifted back by (2, -1) equals frame t on the overlap
    np.testing.assert_array_equal(bg[1, 0:31, 2:48], bg[0, 1:32, 0:46])
    still = make_background(rng, (16, 16), 3)
    np.testing.assert_array_equal(still[0], still[2])


def test_bright_colours_clear_the_luminance_floor():
    c = bright_colours(np.random.default_rng(1), 500)
    luma = c @ np.array([0.299, 0.587, 0.114])
    assert c.shape == (500, 3) and c.min() >= 0 and c.max() <= 1
    assert luma.min() >= FG_MIN_LUMA


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_stretch_keeps_the_area_and_elongates_along_the_shape_axis(shape):
    ys, xs = np.mgrid[-70:71, -70:71].astype(np.float64)
    base = shape_mask(shape, xs, ys, 30.0)
    long = shape_mask(shape, xs, ys, 30.0, stretch=1.3)
    assert abs(long.sum() / base.sum() - 1.0) < 0.04  # x by 1.3, y by 1/1.3: the area is kept
    width = lambda m: np.ptp(np.nonzero(m.any(axis=0))[0])  # noqa: E731
    height = lambda m: np.ptp(np.nonzero(m.any(axis=1))[0])  # noqa: E731
    assert width(long) > width(base) and height(long) < height(base)
    assert np.array_equal(shape_mask(shape, xs, ys, 16.0, 0.4, 1.0), shape_mask(shape, xs, ys, 16.0, 0.4))


def test_deform_sequences_stay_within_their_amounts():
    rng = np.random.default_rng(0)
    offsets, stretch = deform_sequences(rng, 200, 12, 1.0)
    assert offsets.shape == stretch.shape == (200, 12)
    assert np.all(offsets[:, 0] == 0)
    spin = np.diff(offsets, axis=1)
    assert np.allclose(spin, spin[:, :1]) and np.abs(spin).max() <= MAX_SPIN  # a constant spin per object
    assert np.abs(stretch - 1).max() <= MAX_STRETCH + 1e-12 and np.abs(stretch - 1).max() > 0.5 * MAX_STRETCH
    half_o, half_s = deform_sequences(np.random.default_rng(0), 200, 12, 0.5)
    np.testing.assert_allclose(half_o, 0.5 * offsets)  # the same draws, scaled
    np.testing.assert_allclose(half_s - 1, 0.5 * (stretch - 1))
