"""eval.pool: the unlabelled pool's z-score and PCA, the nearest class mean, and the probe keeping features as given."""

import numpy as np
import pytest
from prednet2.eval.pool import PoolTransform, ncm_loo_top1, ncm_one_set, ncm_predict
from prednet2.eval.probe import ProbeError, Standardiser, probe_one_set_cv


def test_pool_standardises_with_the_pool_statistics_not_the_shots():
    rng = np.random.default_rng(0)
    pool = rng.normal(3.0, 2.0, size=(200, 5))
    t = PoolTransform.fit(pool)
    z = t(pool)
    assert np.allclose(z.mean(axis=0), 0, atol=1e-9) and np.allclose(z.std(axis=0), 1)
    shots = pool[:4] + 10.0  # a shifted handful keeps the pool's scale: not re-centred on itself
    assert np.allclose(t(shots), (shots - pool.mean(axis=0)) / pool.std(axis=0))
    assert t.components is None


def test_pca_keeps_the_leading_directions_unwhitened():
    rng = np.random.default_rng(1)
    scale = np.array([10.0, 1.0, 0.1, 0.01])
    rot, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    pool = (rng.normal(size=(500, 4)) * scale) @ rot.T
    pool = pool / pool.std(axis=0)  # equal feature scales: the principal directions survive the z-score
    t = PoolTransform.fit(pool, pca_dims=2)
    assert t.components.shape == (4, 2)
    assert np.allclose(t.components.T @ t.components, np.eye(2), atol=1e-9)  # orthonormal
    var = t(pool).var(axis=0)
    assert var[0] > var[1] > 0 and var[0] > 5 * var[1]  # ordered and not whitened
    assert PoolTransform.fit(pool, pca_dims=99).components.shape == (4, 4)  # at most the rank available
    with pytest.raises(ProbeError, match="pca_dims"):
        PoolTransform.fit(pool, pca_dims=-1)
    with pytest.raises(ProbeError, match="2 or more"):
        PoolTransform.fit(pool[:1])


def test_ncm_classifies_by_the_nearest_class_mean_under_cosine():
    x = np.array([[1.0, 0.1], [2.0, -0.1], [0.1, 1.0], [-0.1, 3.0]])
    y = np.array([4, 4, 7, 7])
    test = np.array([[5.0, 1.0], [0.2, 0.1], [1.0, 2.0]])  # length does not matter, direction does
    assert ncm_predict(x, y, test).tolist() == [4, 4, 7]
    assert ncm_loo_top1(x, y) == 1.0
    assert np.isnan(ncm_loo_top1(x[:3], y[:3]))  # class 7 has one video: leaving it out empties the class
    r = ncm_one_set(x, y, test, np.array([4, 7, 7]))
    assert r.test_top1 == pytest.approx(2 / 3) and np.isnan(r.c) and r.converged
    # leave-one-out really leaves the video out: a lone outlier in its class is misread once left out
    x2 = np.array([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [0.9, 0.1]])
    assert ncm_loo_top1(x2, np.array([0, 0, 1, 1])) == 0.75


def test_cv_probe_standardise_false_keeps_the_features_as_given():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 10)
    x = rng.normal(size=(20, 3))
    x[:, 0] += 3 * y  # informative, unit scale
    x[:, 1] *= 1000.0  # a huge noise feature: z-scoring tames it, keeping it as given lets it dominate the penalty
    xt = rng.normal(size=(40, 3))
    yt = np.repeat([0, 1], 20)
    xt[:, 0] += 3 * yt
    xt[:, 1] *= 1000.0
    kw = {"tr_idx": None, "val_idx": None, "cs": (1e-3,), "folds": 5, "seed": 0}
    z = probe_one_set_cv(x, y, xt, yt, **kw)
    raw = probe_one_set_cv(x, y, xt, yt, standardise=False, **kw)
    assert z.test_top1 > 0.8 and raw.test_top1 < z.test_top1 - 0.15
    s = Standardiser.identity(x)
    assert np.array_equal(s(x), x)
