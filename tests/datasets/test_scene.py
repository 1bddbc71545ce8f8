"""datasets/scene.py: the shapes' areas, the background's range and pan, the objects' brightness."""

import numpy as np
import pytest
from prednet2.datasets.scene import BG_MAX, FG_MIN_LUMA, SHAPES, bright_colours, make_background, shape_mask


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
