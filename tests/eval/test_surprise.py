"""eval.surprise: scores and AUROC on constructed frame errors; plot and TensorBoard outputs."""

import numpy as np
import pytest
from prednet2.eval.surprise import auroc, frame_scores, plot_curves, write_tensorboard


def constructed(n=60, L=2, T=8, seed=0):
    """Frame errors whose clips differ 10x in base level, with a spike on the anomalous frame of half the clips."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 1.0, size=(n, 1, 1))  # clip difficulty
    e = base * (1 + 0.1 * rng.standard_normal((n, L, T)))
    labels = np.zeros((n, T), dtype=bool)
    for i in range(0, n, 2):
        t = rng.integers(2, T)
        labels[i, t] = True
        e[i, :, t] *= 1.6  # the surprise: +60% over the clip's own level
    e[:, :, 0] = 0.0  # t = 0: nothing predicted (as the model reports it)
    return e, labels


def test_clip_relative_score_separates_a_spike():
    e, labels = constructed()
    s = frame_scores(e, skip=1)
    assert set(s) == {"layer0", "layer1", "sum_z", "clip_rel"}
    assert np.isnan(s["clip_rel"][:, 0]).all()  # t = 0 is not scored
    # The spike is small next to the clip-to-clip spread, so raw errors rank poorly; the clip-relative score
    # removes each clip's level and ranks the anomalous frames first.
    assert auroc(s["clip_rel"], labels) > 0.97
    assert auroc(s["layer0"], labels) < auroc(s["clip_rel"], labels)


def test_auroc_of_constant_score_is_half_and_needs_both_classes():
    labels = np.array([[False, True, False, False]])
    assert auroc(np.ones((1, 4)), labels) == pytest.approx(0.5)
    assert np.isnan(auroc(np.ones((1, 4)), np.zeros((1, 4), bool)))
    assert auroc(np.array([[np.nan, 3.0, 1.0, 2.0]]), labels) == pytest.approx(1.0)  # NaN frames are ignored


def test_frame_scores_rejects_bad_shapes():
    with pytest.raises(ValueError, match="N, L, T"):
        frame_scores(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="skip"):
        frame_scores(np.zeros((2, 1, 3)), skip=3)


def test_png_and_tensorboard(tmp_path):
    e, labels = constructed(n=10)
    s = frame_scores(e)["clip_rel"]
    png = plot_curves(tmp_path / "s.png", s, labels, "clip_rel")
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    write_tensorboard(tmp_path / "tb", s, labels, {"auroc": 0.9, "per_layer_auroc": {"0": 0.8}})
    assert list((tmp_path / "tb").glob("events.out.tfevents*"))
