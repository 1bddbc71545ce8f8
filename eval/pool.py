"""Few-label probes that use the unlabelled train videos (the *pool*): their statistics, never their labels.

With ``--shots K`` the probe sees K labelled videos per class, but a researcher has the rest of the train split too,
unlabelled. ``PoolTransform`` fits on every train video (labels unused; the test split is never seen) and maps
features before the K shots are drawn:

- ``standardise``: z-score with the pool's per-feature mean and std instead of the K shots';
- ``pca_dims = d``: then project onto the pool's d leading principal components (not whitened, so the L2 penalty
  still favours the directions the videos vary along).

``ncm_one_set`` is a classifier with nothing to tune: each video's vector scaled to unit length, the class means of
the K shots, the nearest mean under cosine (SimpleShot's CL2N on pool-standardised features). It plugs into
``eval.probe.probe_layers`` as ``one_set``, as k-NN does. Measured in docs/results/few_labels_rounds126.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .probe import ProbeError, SetResult, Standardiser


@dataclass(frozen=True)
class PoolTransform:
    """Standardise on the pool, then (``components`` not None) project onto its leading principal components."""

    scaler: Standardiser
    components: np.ndarray | None  # (F, d) orthonormal columns, or None

    @classmethod
    def fit(cls, x_pool: np.ndarray, pca_dims: int | None = None) -> PoolTransform:
        x_pool = np.asarray(x_pool, dtype=np.float64)
        if x_pool.ndim != 2 or len(x_pool) < 2:
            raise ProbeError(f"the unlabelled pool needs 2 or more videos of (N, F) features, got {x_pool.shape}")
        scaler = Standardiser.fit(x_pool)
        if not pca_dims:
            return cls(scaler=scaler, components=None)
        if pca_dims < 1:
            raise ProbeError(f"pca_dims must be at least 1, got {pca_dims}")
        z = scaler(x_pool)  # already centred on the pool: mean 0 per feature
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        return cls(scaler=scaler, components=vt[: min(pca_dims, len(vt))].T)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = self.scaler(x)
        return z if self.components is None else z @ self.components


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ncm_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Nearest class mean under cosine: rows to unit length, per-class mean of train, argmax cosine on test."""
    classes = np.unique(y_train)
    u = unit_rows(x_train)
    means = unit_rows(np.stack([u[y_train == c].mean(axis=0) for c in classes]))
    return classes[np.argmax(unit_rows(x_test) @ means.T, axis=1)]


def ncm_loo_top1(x_train: np.ndarray, y_train: np.ndarray) -> float:
    """Leave-one-out top-1 of the nearest class mean on train (each video scored against means without itself);
    NaN when a class has a single video, which leaving out would empty."""
    classes, counts = np.unique(y_train, return_counts=True)
    if counts.min() < 2:
        return float("nan")
    u = unit_rows(x_train)
    sums = np.stack([u[y_train == c].sum(axis=0) for c in classes])
    means = unit_rows(sums / counts[:, None])  # every class's mean; only the video's own class changes without it
    hits = 0
    for row, y in zip(u, y_train):
        own = np.searchsorted(classes, y)
        scores = means @ row
        scores[own] = (unit_rows(((sums[own] - row) / (counts[own] - 1))[None]) @ row)[0]
        hits += int(classes[np.argmax(scores)] == y)
    return hits / len(y_train)


def ncm_one_set(x_train, y_train, x_test, y_test, tr_idx=None, val_idx=None) -> SetResult:
    """``eval.probe`` evaluator: nearest class mean; ``val_top1`` is its leave-one-out top-1 on train (picks the
    layer), ``c`` is NaN (nothing to choose). ``tr_idx``/``val_idx`` are ignored."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    top1 = float(np.mean(ncm_predict(x_train, y_train, x_test) == y_test))
    return SetResult(c=float("nan"), val_top1=ncm_loo_top1(x_train, y_train), test_top1=top1, converged=True)
