"""The surprise gate of online learning: a running z-score of per-frame surprise, and the update it allows."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class SurpriseGate:
    """Running z-score of surprise over the previous ``history`` frames, and the gate it opens (see module doc)."""

    MODES = ("threshold", "lr", "always")

    def __init__(self, mode: str = "threshold", *, z_threshold: float = 1.0, history: int = 100, min_history: int = 10):
        if mode not in self.MODES:
            raise ValueError(f"gate: unknown mode {mode!r}; choose one of {', '.join(self.MODES)}")
        if history < 2 or min_history < 2 or min_history > history:
            raise ValueError(f"--history {history} and --min-history {min_history}: need 2 <= min-history <= history")
        if not math.isfinite(z_threshold):
            raise ValueError(f"--z-threshold {z_threshold:g}: need a finite number of standard deviations, like 1.0")
        if mode == "lr" and z_threshold <= 0:
            raise ValueError(f"--gate lr scales the rate by z / --z-threshold, so it needs --z-threshold > 0, got "
                             f"{z_threshold:g}")  # fmt: skip
        self.mode, self.z_threshold = mode, z_threshold
        self.min_history = min_history
        self.past: deque[float] = deque(maxlen=history)

    def zscore(self, s: float) -> float:
        """z of ``s`` against the previous frames (``inf`` before ``min_history`` frames), then remember ``s``."""
        if len(self.past) < self.min_history:
            z = math.inf
        else:
            a = np.asarray(self.past, np.float64)
            z = float((s - a.mean()) / (a.std() + 1e-8))
        self.past.append(float(s))
        return z

    def frame_open(self, z: float) -> bool:
        """Does this frame's loss enter the window's update?"""
        return self.mode != "threshold" or z > self.z_threshold

    def lr_scale(self, zs: list[float]) -> float:
        """The lr multiplier of a window from its frames' z-scores."""
        if self.mode != "lr" or not zs:
            return 1.0
        return float(min(1.0, max(0.0, max(zs) / self.z_threshold)))
