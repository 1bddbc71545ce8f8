"""Few labels: K labelled videos per class drawn from train, and how C is chosen with so few.

Rule for the regularisation C (docs/eval.md):

- ``K < 5`` (1 to 4): C is fixed at ``FIXED_C`` = 1, the middle of the grid, on standardised features (at K = 1
  there is nothing to validate on: any held-out video leaves its class without an example).
- ``K >= 5``: C is chosen on the grid by stratified 5-fold cross-validation over the K shots (each fold holds
  K/5 videos per class, so every shot is validated once), then the classifier is refitted on all K. A single
  carve would validate on one or two videos per class and pick C by noise (measured in
  docs/results/few_labels.md).
- ``all``: every train video, exactly the full-label probe (one stratified validation carve).
"""

from __future__ import annotations

import numpy as np

MIN_SHOTS_FOR_VAL = 5
FIXED_C = 1.0
CV_FOLDS = 5


class ShotsError(ValueError):
    """K that the train split cannot supply."""


def parse_shots(text: str | int | None) -> int | None:
    """``"5"`` -> 5; ``"all"`` or None -> None (every train video). Raises ShotsError for anything else."""
    if text is None or str(text).strip().lower() == "all":
        return None
    try:
        k = int(text)
    except ValueError:
        raise ShotsError(f"--shots {text!r}: expected a number of labelled videos per class, or 'all'") from None
    if k < 1:
        raise ShotsError(f"--shots {k}: need at least 1 labelled video per class")
    return k


def draw_shots(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Indices of exactly ``k`` items of every class in ``labels`` (N,), drawn without replacement under ``seed``.

    Deterministic in (labels, k, seed); the result is sorted. Raises ShotsError naming the smallest class when it
    holds fewer than ``k`` items.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < k:
        small = classes[np.argmin(counts)]
        raise ShotsError(
            f"--shots {k}: the smallest class in train (label {small}) has only {counts.min()} labelled videos; "
            f"use --shots {counts.min()} or fewer"
        )
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c in classes]
    return np.sort(np.concatenate(picked))


def protocol_for(k: int | None) -> dict:
    """``eval.probe.probe_layers`` keywords for ``k`` shots: ``fixed_c`` below 5, ``cv_folds`` from 5, none for all."""
    if k is None:
        return {}
    if k < MIN_SHOTS_FOR_VAL:
        return {"fixed_c": FIXED_C}
    return {"cv_folds": CV_FOLDS}


def with_shots(train_test, k: int | None):
    """Wrap a ``run_probe`` callback ``seed -> (train, y_train, test, y_test)`` so that train keeps ``k`` videos
    per class drawn under the seed (``k`` None: unchanged). Test is never touched. ShotsError propagates."""
    if k is None:
        return train_test

    def features(seed: int):
        train, y_train, test, y_test = train_test(seed)
        idx = draw_shots(y_train, k, seed)
        return {name: x[idx] for name, x in train.items()}, y_train[idx], test, y_test

    return features
