"""The linear-probe protocol on frozen features: no torch, no model, only arrays in and accuracies out.

Protocol for one seed (DESIGN §6):

1. Carve a stratified validation split (``val_frac`` of train, at least one item per class) from train; the seed
   picks which items.
2. For each feature set (each layer alone, and all layers concatenated): standardise with mean/std fitted on the
   carved train part only, fit an L2-regularised multinomial logistic regression for every C in the grid, and
   keep the C with the best validation top-1 (ties go to the smaller C: the stronger regularisation).
3. Refit on the *full* train split (carved train + validation) with that C, standardising again on the full train
   split, and measure top-1 on test.
4. The best layer is the one with the best validation top-1 (ties go to the lower layer). Test accuracy never
   chooses anything.

With few labels (``eval.shots``) step 1-2 change: ``fixed_c`` skips validation (K < 5 shots per class) and
``cv_folds`` replaces the carve by stratified cross-validation over all of train (``probe_one_set_cv``, K >= 5).
``one_set`` swaps the per-set evaluator (``eval.knn`` plugs in cosine k-NN, choosing k instead of C).

``run_probe`` repeats this over seeds and reports mean and std. Its ``top1`` is the concatenation of all layers;
the best-on-validation layer is reported beside it as ``best_layer_top1``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

# Inverse L2 strengths tried on validation; standardised features make one grid fit every layer. It reaches 100
# because the baselines (random init, pixels) sometimes pick the old top end, 10 (measured; docs/results/eval.md).
DEFAULT_CS: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0, 30.0, 100.0)
CONCAT = "concat"


class ProbeError(ValueError):
    """Inputs the probe cannot use (empty split, one class, mismatched shapes)."""


# ---- pieces ------------------------------------------------------------------------------------------------
def stratified_split(labels: np.ndarray, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``labels`` (N,) into (train_idx, val_idx), stratified by class, deterministic in ``seed``.

    Every class with at least 2 items puts ``round(val_frac * n_c)`` (at least 1, at most n_c - 1) items into
    validation; a class with a single item stays in train. Both index arrays come back sorted.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ProbeError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not 0.0 < val_frac < 1.0:
        raise ProbeError(f"val_frac must be in (0, 1), got {val_frac}")
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        n_val = int(min(max(round(val_frac * len(idx)), 1), len(idx) - 1))
        val.append(rng.permutation(idx)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    if len(val_idx) == 0:
        raise ProbeError("no class has 2 or more training items: cannot carve a validation split")
    return train_idx, val_idx


@dataclass(frozen=True)
class Standardiser:
    """Per-feature z-scoring fitted on one split; constant features get std 1 (they stay constant)."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        x = np.asarray(x, dtype=np.float64)
        std = x.std(axis=0)
        return cls(mean=x.mean(axis=0), std=np.where(std > 1e-8, std, 1.0))

    @classmethod
    def identity(cls, x: np.ndarray) -> Standardiser:
        """No scaling: for features already standardised elsewhere (on the unlabelled videos, ``eval.pool``)."""
        f = np.asarray(x).shape[1]
        return cls(mean=np.zeros(f), std=np.ones(f))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std


def scaler_for(standardise: bool) -> Callable[[np.ndarray], Standardiser]:
    """How the probe scales: z-score on the labelled videos it fits on (True), or leave as given (False)."""
    return Standardiser.fit if standardise else Standardiser.identity


def fit_logreg(x: np.ndarray, y: np.ndarray, c: float, max_iter: int = 1000) -> tuple[LogisticRegression, bool]:
    """Multinomial L2 logistic regression (lbfgs) on already standardised ``x`` (N, F), ``y`` (N,).

    Returns the fitted classifier and whether lbfgs converged within ``max_iter``. lbfgs is deterministic, so the
    fit does not depend on any seed.
    """
    clf = LogisticRegression(C=c, max_iter=max_iter, tol=1e-4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return clf, converged


def accuracy(clf: LogisticRegression, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(clf.predict(x) == y))


@dataclass(frozen=True)
class SetResult:
    """One feature set (a layer, or the concatenation) under one seed."""

    c: float  # the C picked on validation
    val_top1: float  # validation top-1 at that C (fitted on the carved train part)
    test_top1: float  # test top-1 after refitting on the full train split with that C
    converged: bool


def refit_and_score(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, c: float, *,
    val_top1: float, converged: bool, standardise: bool = True,
) -> SetResult:  # fmt: skip
    """Step 3: standardise on all of train (unless ``standardise`` is False), fit with ``c``, score once on test."""
    full = scaler_for(standardise)(x_train)
    clf, ok = fit_logreg(full(x_train), y_train, c)
    return SetResult(c=float(c), val_top1=val_top1, test_top1=accuracy(clf, full(x_test), y_test),
                     converged=converged and ok)  # fmt: skip


def probe_one_set(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    tr_idx: np.ndarray,
    val_idx: np.ndarray,
    cs: Sequence[float] = DEFAULT_CS,
) -> SetResult:
    """Pick C on (tr_idx -> val_idx) of the train split, refit on all of train, score on test (steps 2-3 above).

    With an empty ``val_idx`` and a single C (the few-shot rule at K < 5) nothing is picked: ``val_top1`` is NaN.
    """
    if len(val_idx) == 0:
        if len(cs) != 1:
            raise ProbeError("no validation items to choose C on: pass a single fixed C")
        return refit_and_score(x_train, y_train, x_test, y_test, cs[0], val_top1=float("nan"), converged=True)
    sub = Standardiser.fit(x_train[tr_idx])
    xs_tr, xs_val = sub(x_train[tr_idx]), sub(x_train[val_idx])
    best_c, best_val, converged = cs[0], -1.0, True
    for c in cs:  # ascending C: a tie keeps the smaller C because only a strictly better score replaces it
        clf, ok = fit_logreg(xs_tr, y_train[tr_idx], c)
        acc = accuracy(clf, xs_val, y_train[val_idx])
        if acc > best_val:
            best_c, best_val, converged = c, acc, ok
    return refit_and_score(x_train, y_train, x_test, y_test, best_c, val_top1=best_val, converged=converged)


def probe_one_set_cv(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    tr_idx: np.ndarray,
    val_idx: np.ndarray,
    cs: Sequence[float] = DEFAULT_CS,
    folds: int = 5,
    seed: int = 0,
    standardise: bool = True,
) -> SetResult:
    """Pick C by stratified ``folds``-fold cross-validation on all of train, refit on all of train, score on test.

    For few labels (K shots per class), where a single carve would validate on one or two videos per class: every
    video is validated once. Folds deal each class's videos round-robin after a seeded shuffle, so with K = 5
    shots and 5 folds each fold holds one video per class. ``val_top1`` is the mean over folds at the chosen C
    (ties: the smaller C). ``tr_idx``/``val_idx`` are ignored. ``standardise`` False keeps the features as given
    (already scaled on the unlabelled videos) instead of z-scoring on each fold's labelled part.
    """
    scaler = scaler_for(standardise)
    rng = np.random.default_rng(seed)
    fold_of = np.zeros(len(y_train), dtype=np.int64)
    for c in np.unique(y_train):
        idx = np.flatnonzero(y_train == c)
        fold_of[rng.permutation(idx)] = np.arange(len(idx)) % folds
    best_c, best_val, converged = cs[0], -1.0, True
    for c in cs:  # ascending C: a tie keeps the smaller C
        accs, oks = [], []
        for f in range(folds):
            tr, va = fold_of != f, fold_of == f
            if not va.any() or len(np.unique(y_train[tr])) < 2:
                continue
            z = scaler(x_train[tr])
            clf, ok = fit_logreg(z(x_train[tr]), y_train[tr], c)
            accs.append(accuracy(clf, z(x_train[va]), y_train[va]))
            oks.append(ok)
        if not accs:
            raise ProbeError(f"{folds}-fold cross-validation needs at least 2 items of 2 classes")
        if np.mean(accs) > best_val:
            best_c, best_val, converged = c, float(np.mean(accs)), all(oks)
    return refit_and_score(x_train, y_train, x_test, y_test, best_c, val_top1=best_val, converged=converged,
                           standardise=standardise)  # fmt: skip


# ---- one seed, all layers ----------------------------------------------------------------------------------
OneSetFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], SetResult]


@dataclass(frozen=True)
class SeedResult:
    seed: int
    per_layer: dict[str, SetResult]  # keys "0", "1", ... and CONCAT
    best_layer: str  # the layer key with the best validation top-1 (never chosen on test)

    @property
    def concat(self) -> SetResult:
        return self.per_layer[CONCAT]


def probe_layers(
    train: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    test: Mapping[str, np.ndarray],
    y_test: np.ndarray,
    seed: int,
    *,
    val_frac: float = 0.2,
    cs: Sequence[float] = DEFAULT_CS,
    concat: bool = True,
    fixed_c: float | None = None,
    cv_folds: int | None = None,
    one_set: OneSetFn | None = None,
) -> SeedResult:
    """Probe every feature set under one seed.

    Args:
        train: {layer key: (N_train, F_l)} features; keys are strings ("0", "1", ...), in layer order.
        y_train: (N_train,) int labels.
        test: same keys as ``train``, (N_test, F_l) each.
        y_test: (N_test,) int labels.
        seed: picks the validation carve.
        concat: also probe all layers concatenated (key ``"concat"``); skipped when there is a single layer,
            where it would equal that layer, and then ``"concat"`` repeats the layer's result.
        fixed_c: skip the validation carve and fit every set with this C on all of train (few shots, K < 5);
            no layer is then chosen and ``best_layer`` is ``"concat"``.
        cv_folds: pick C (and the best layer) by stratified cross-validation over all of train instead of one
            carve (few shots, K >= 5); see ``probe_one_set_cv``.
        one_set: the per-set evaluator, ``one_set(x_train, y_train, x_test, y_test, tr_idx, val_idx) ->
            SetResult`` (default: ``probe_one_set`` over ``cs``); k-NN plugs in here.
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    _check_inputs(train, y_train, test, y_test)
    if fixed_c is not None or cv_folds:
        tr_idx, val_idx = np.arange(len(y_train)), np.zeros(0, dtype=np.int64)
        cs = (fixed_c,) if fixed_c is not None else cs
        if cv_folds and one_set is None:
            one_set = partial(probe_one_set_cv, cs=cs, folds=cv_folds, seed=seed)
    else:
        tr_idx, val_idx = stratified_split(y_train, val_frac, seed)
    if one_set is None:
        one_set = partial(probe_one_set, cs=cs)
    keys = list(train)
    results = {k: one_set(train[k], y_train, test[k], y_test, tr_idx, val_idx) for k in keys}
    if concat and len(keys) > 1:
        x_tr = np.concatenate([train[k] for k in keys], axis=1)
        x_te = np.concatenate([test[k] for k in keys], axis=1)
        results[CONCAT] = one_set(x_tr, y_train, x_te, y_test, tr_idx, val_idx)
    elif concat:
        results[CONCAT] = results[keys[0]]
    if fixed_c is not None:
        return SeedResult(seed=seed, per_layer=results, best_layer=CONCAT)  # nothing to choose a layer on
    # Validation picks the layer; max() keeps the first (lowest) layer on ties.
    best = max(keys, key=lambda k: (results[k].val_top1, -keys.index(k)))
    return SeedResult(seed=seed, per_layer=results, best_layer=best)


def _check_inputs(train, y_train, test, y_test) -> None:
    for name, x in (("train", train), ("test", test)):
        if not isinstance(x, Mapping):
            what = f"{type(x).__name__} of shape {x.shape}" if hasattr(x, "shape") else type(x).__name__
            raise ProbeError(
                f"{name} features: expected a dict {{layer key: (N, F) array}}, e.g. {{'0': x}}, got {what}"
            )
    if not train:
        raise ProbeError("no feature layers given")
    if list(train) != list(test):
        raise ProbeError(f"train and test have different layers: {list(train)} vs {list(test)}")
    for k in train:
        if train[k].ndim != 2 or test[k].ndim != 2:
            raise ProbeError(f"layer {k}: features must be (N, F), got {train[k].shape} and {test[k].shape}")
        if len(train[k]) != len(y_train) or len(test[k]) != len(y_test):
            raise ProbeError(
                f"layer {k}: {len(train[k])}/{len(test[k])} feature rows for {len(y_train)}/{len(y_test)} labels"
            )
        if train[k].shape[1] != test[k].shape[1]:
            raise ProbeError(f"layer {k}: train has {train[k].shape[1]} features, test {test[k].shape[1]}")
    if len(np.unique(y_train)) < 2:
        raise ProbeError("the train split holds a single class: a classifier cannot be fitted")
    if len(y_test) == 0:
        raise ProbeError("the test split is empty")
    if not np.isin(y_test, y_train).any():  # every test item would be scored wrong: labels from two numberings
        raise ProbeError(
            f"no test label occurs in train (train classes {np.unique(y_train)[:8].tolist()}, test classes "
            f"{np.unique(y_test)[:8].tolist()}): train and test labels must index the same classes"
        )


# ---- seeds -------------------------------------------------------------------------------------------------
FeatureFn = Callable[[int], tuple[Mapping[str, np.ndarray], np.ndarray, Mapping[str, np.ndarray], np.ndarray]]


@dataclass
class ProbeSummary:
    """Mean ± std over seeds (population std, ddof=0, so one seed gives std 0)."""

    seeds: list[int]
    runs: list[SeedResult] = field(default_factory=list)

    def _stat(self, fn: Callable[[SeedResult], float]) -> tuple[float, float]:
        v = np.array([fn(r) for r in self.runs], dtype=np.float64)
        return float(v.mean()), float(v.std())

    def to_dict(self) -> dict:
        """The probe.json figures (DESIGN §7 keys plus extras); the caller adds dataset, sizes and provenance."""
        keys = [k for k in self.runs[0].per_layer if k != CONCAT]
        top1, top1_std = self._stat(lambda r: r.concat.test_top1)
        best, best_std = self._stat(lambda r: r.per_layer[r.best_layer].test_top1)
        per_layer = {k: self._stat(lambda r, k=k: r.per_layer[k].test_top1) for k in keys}
        val = {k: _finite(self._stat(lambda r, k=k: r.per_layer[k].val_top1)[0]) for k in [*keys, CONCAT]}
        return {
            "top1": top1,
            "top1_std": top1_std,
            "top1_is": "concat",
            "per_layer": {k: m for k, (m, _) in per_layer.items()},
            "per_layer_std": {k: s for k, (_, s) in per_layer.items()},
            "concat": top1,
            "concat_std": top1_std,
            "best_layer": [r.best_layer for r in self.runs],
            "best_layer_top1": best,
            "best_layer_top1_std": best_std,
            "val_top1": val,
            "chosen_c": {k: [r.per_layer[k].c for r in self.runs] for k in [*keys, CONCAT]},
            "all_converged": all(s.converged for r in self.runs for s in r.per_layer.values()),
            "seeds": list(self.seeds),
            "per_seed": [
                {"seed": r.seed, "concat": r.concat.test_top1, "best_layer": r.best_layer,
                 "per_layer": {k: s.test_top1 for k, s in r.per_layer.items() if k != CONCAT}}
                for r in self.runs
            ],
        }  # fmt: skip


def _finite(x: float) -> float | None:
    """None for NaN (no validation at a fixed C), so probe.json stays strict JSON."""
    return None if np.isnan(x) else x


def run_probe(
    features: FeatureFn,
    seeds: Sequence[int],
    *,
    val_frac: float = 0.2,
    cs: Sequence[float] = DEFAULT_CS,
    **layer_kw,
) -> ProbeSummary:
    """Run ``probe_layers`` once per seed. ``features(seed)`` returns (train, y_train, test, y_test) for that seed.

    The callback lets the seed also change the features (``--random-init`` draws fresh weights per seed); for a
    trained checkpoint it returns the same cached arrays every time and the seed only moves the validation carve.
    ``layer_kw`` (``fixed_c``, ``one_set``, ``concat``) goes to ``probe_layers``.
    """
    if not callable(features):
        raise ProbeError(
            f"features: expected a function seed -> (train, y_train, test, y_test), got {type(features).__name__}"
        )
    if isinstance(seeds, int):
        raise ProbeError(
            f"seeds: expected a list of seeds, got the number {seeds}; for {seeds} seeds pass range({seeds})"
        )
    if not seeds:
        raise ProbeError("at least one seed is needed")
    summary = ProbeSummary(seeds=list(seeds))
    for s in seeds:
        train, y_train, test, y_test = features(s)
        summary.runs.append(probe_layers(train, y_train, test, y_test, s, val_frac=val_frac, cs=cs, **layer_kw))
    return summary
