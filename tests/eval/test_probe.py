"""eval.probe: the linear-probe protocol on planted features (no model, no data)."""

import numpy as np
import pytest
from prednet2.eval.probe import (
    CONCAT,
    ProbeError,
    Standardiser,
    probe_layers,
    run_probe,
    stratified_split,
)

N_CLASSES = 5


def planted(y: np.ndarray, n_feat: int, signal: float, rng: np.random.Generator) -> np.ndarray:
    """(N, n_feat) noise with ``signal`` * one-hot(label) added to the first N_CLASSES columns."""
    x = rng.normal(size=(len(y), n_feat))
    x[:, :N_CLASSES] += signal * np.eye(N_CLASSES)[y]
    return x


def labels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(n) % N_CLASSES)


def test_planted_signal_is_recovered():
    rng = np.random.default_rng(0)
    y, yt = labels(300, 1), labels(150, 2)
    # Layer "0" carries the label (one-hot + noise); layer "1" is pure noise. Scaled and shifted to check that
    # standardisation makes the grid work whatever the feature scale.
    train = {"0": 50.0 * planted(y, 20, 4.0, rng) + 7.0, "1": rng.normal(size=(300, 10))}
    test = {"0": 50.0 * planted(yt, 20, 4.0, rng) + 7.0, "1": rng.normal(size=(150, 10))}
    r = probe_layers(train, y, test, yt, seed=0)
    assert r.per_layer["0"].test_top1 >= 0.97
    assert r.per_layer["1"].test_top1 < 0.4  # chance is 0.2
    assert r.best_layer == "0"
    assert r.per_layer[CONCAT].test_top1 >= 0.95


def test_shuffled_labels_give_chance():
    rng = np.random.default_rng(3)
    y, yt = labels(400, 4), labels(400, 5)
    train = {"0": planted(y, 20, 4.0, rng)}
    test = {"0": planted(yt, 20, 4.0, rng)}
    # Shuffle train and test labels: the features still cluster by the true class, but no label follows them, so
    # whatever map the probe learns scores chance on test (binomial std on 400 items: 0.02).
    accs = []
    for s in range(3):
        perm = np.random.default_rng(100 + s)
        y_shuf, yt_shuf = perm.permutation(y), perm.permutation(yt)
        accs.append(probe_layers(train, y_shuf, test, yt_shuf, seed=s).per_layer["0"].test_top1)
    assert abs(np.mean(accs) - 1 / N_CLASSES) < 0.06


def test_stratified_split_is_deterministic_and_stratified():
    y = labels(103, 7)
    a_tr, a_val = stratified_split(y, 0.2, seed=11)
    b_tr, b_val = stratified_split(y, 0.2, seed=11)
    c_tr, c_val = stratified_split(y, 0.2, seed=12)
    np.testing.assert_array_equal(a_val, b_val)
    np.testing.assert_array_equal(a_tr, b_tr)
    assert not np.array_equal(a_val, c_val)  # another seed carves another validation set
    assert len(np.intersect1d(a_tr, a_val)) == 0 and len(a_tr) + len(a_val) == len(y)
    for c in range(N_CLASSES):  # every class is represented in validation at ~20%
        n_c = np.sum(y == c)
        assert np.sum(y[a_val] == c) == round(0.2 * n_c)


def test_split_keeps_singleton_classes_in_train():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    tr, val = stratified_split(y, 0.25, seed=0)
    assert 8 in tr and 8 not in val
    assert set(y[val]) == {0, 1}


def test_seeds_are_deterministic():
    rng = np.random.default_rng(8)
    y, yt = labels(200, 9), labels(100, 10)
    train = {"0": planted(y, 12, 1.0, rng), "1": planted(y, 12, 0.7, rng)}
    test = {"0": planted(yt, 12, 1.0, rng), "1": planted(yt, 12, 0.7, rng)}

    def feats(seed):
        return train, y, test, yt

    a = run_probe(feats, [0, 1, 2]).to_dict()
    b = run_probe(feats, [0, 1, 2]).to_dict()
    assert a == b
    assert a["seeds"] == [0, 1, 2]
    assert len(a["per_seed"]) == 3


def test_best_layer_is_chosen_on_validation_not_test():
    """Layer 0 is perfect on train/validation but its test features are scrambled (chance on test); layer 1
    carries a weaker signal everywhere. Validation must pick layer 0 even though layer 1 is better on test."""
    rng = np.random.default_rng(12)
    y, yt = labels(300, 13), labels(300, 14)
    x0_tr = planted(y, 10, 6.0, rng)
    x0_te = planted(yt, 10, 6.0, rng)[np.random.default_rng(15).permutation(300)]  # rows no longer match labels
    train = {"0": x0_tr, "1": planted(y, 10, 1.2, rng)}
    test = {"0": x0_te, "1": planted(yt, 10, 1.2, rng)}
    r = probe_layers(train, y, test, yt, seed=0)
    assert r.per_layer["0"].val_top1 > r.per_layer["1"].val_top1
    assert r.per_layer["1"].test_top1 > r.per_layer["0"].test_top1 + 0.2  # test would have picked layer 1
    assert r.best_layer == "0"
    s = run_probe(lambda seed: (train, y, test, yt), [0, 1]).to_dict()
    assert s["best_layer"] == ["0", "0"]
    assert s["best_layer_top1"] == pytest.approx(s["per_layer"]["0"])


def test_c_is_chosen_on_validation():
    """With many noise features and few items, strong regularisation wins on validation."""
    rng = np.random.default_rng(16)
    y, yt = labels(60, 17), labels(200, 18)
    train, test = {"0": planted(y, 300, 1.5, rng)}, {"0": planted(yt, 300, 1.5, rng)}
    r = probe_layers(train, y, test, yt, seed=0)
    assert r.per_layer["0"].c < 1.0


def test_standardiser_fits_train_only():
    tr = np.array([[0.0, 5.0], [2.0, 5.0]])
    s = Standardiser.fit(tr)
    np.testing.assert_allclose(s(tr)[:, 0], [-1.0, 1.0])
    np.testing.assert_allclose(s(np.array([[4.0, 9.0]])), [[3.0, 4.0]])  # constant column: std taken as 1


def test_bad_inputs_raise():
    y = labels(20, 0)
    with pytest.raises(ProbeError, match="single class"):
        probe_layers({"0": np.zeros((20, 3))}, np.zeros(20, int), {"0": np.zeros((5, 3))}, np.zeros(5, int), 0)
    with pytest.raises(ProbeError, match="feature rows"):
        probe_layers({"0": np.zeros((19, 3))}, y, {"0": np.zeros((5, 3))}, np.zeros(5, int), 0)
    with pytest.raises(ProbeError, match="different layers"):
        probe_layers({"0": np.zeros((20, 3))}, y, {"1": np.zeros((5, 3))}, np.zeros(5, int), 0)


def test_few_shot_protocols_fixed_c_and_cross_validation():
    rng = np.random.default_rng(7)
    y, yt = labels(25, 8), labels(200, 9)  # 5 shots per class
    train = {"0": planted(y, 20, 4.0, rng), "1": rng.normal(size=(25, 10))}
    test = {"0": planted(yt, 20, 4.0, rng), "1": rng.normal(size=(200, 10))}
    fixed = probe_layers(train, y, test, yt, seed=0, fixed_c=1.0)
    assert {s.c for s in fixed.per_layer.values()} == {1.0} and fixed.best_layer == CONCAT
    assert np.isnan(fixed.per_layer["0"].val_top1) and fixed.per_layer["0"].test_top1 > 0.8
    cv = probe_layers(train, y, test, yt, seed=0, cv_folds=5)
    assert cv.best_layer == "0" and cv.per_layer["0"].val_top1 > 0.8  # every shot validated once
    assert cv.per_layer["0"].test_top1 > 0.8 and cv.per_layer["1"].val_top1 < 0.6
    again = probe_layers(train, y, test, yt, seed=0, cv_folds=5)
    assert again.per_layer["0"].c == cv.per_layer["0"].c  # deterministic by seed


def test_plausible_api_mistakes_are_named():
    """run_probe(features, 3), arrays where layer dicts go, a tuple where the seed function goes, and test labels of
    another numbering than train's are refused saying what to pass (they raised numpy/Python errors, or scored 0)."""
    rng = np.random.default_rng(0)
    y_tr, y_te = np.arange(40) % 4, np.arange(20) % 4
    tr, te = {"0": rng.normal(size=(40, 5))}, {"0": rng.normal(size=(20, 5))}
    with pytest.raises(ProbeError, match=r"seeds: expected a list of seeds, got the number 3; .* range\(3\)"):
        run_probe(lambda s: (tr, y_tr, te, y_te), 3)
    with pytest.raises(ProbeError, match="features: expected a function seed"):
        run_probe((tr, y_tr, te, y_te), [0])
    with pytest.raises(ProbeError, match=r"train features: expected a dict .* got ndarray of shape \(40, 5\)"):
        run_probe(lambda s: (tr["0"], y_tr, te["0"], y_te), [0])
    with pytest.raises(ProbeError, match="no test label occurs in train"):
        run_probe(lambda s: (tr, y_tr, te, y_te + 10), [0])
    assert run_probe(lambda s: (tr, y_tr, te, np.where(y_te == 3, 7, y_te)), [0]).runs  # some unseen: still scored
