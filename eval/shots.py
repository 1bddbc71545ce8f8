"""Few labels: K labelled videos per class drawn from train, and how C is chosen with so few.

Rule for the regularisation C (docs/eval.md):

- ``K >= MIN_SHOTS_FOR_VAL`` (5): the usual protocol on the K shots per class: a stratified validation carve
  (``val_frac``, at least one per class, so 1 of 5 at K = 5) picks C, then the classifier is refitted on all K.
- ``K < 5`` (1 to 4): no carve (at K = 1 it would leave a class with no training example); C is fixed at
  ``FIXED_C`` = 1, the middle of the grid, on standardised features.
- ``all``: every train video, exactly the full-label probe.
"""

from __future__ import annotations

import numpy as np

MIN_SHOTS_FOR_VAL = 5
FIXED_C = 1.0


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


def fixed_c_for(k: int | None) -> float | None:
    """The fixed C for ``k`` shots, or None when C is picked on a validation carve (K >= 5 or all)."""
    return FIXED_C if (k is not None and k < MIN_SHOTS_FOR_VAL) else None


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
