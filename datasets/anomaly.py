"""``synthetic:anomaly``: the built-in anomaly set that ``eval.surprise`` scores.

Clips of moving shapes (a labelled object and one distractor, cluttered static background). Even indices are
normal; odd ones hold one anomaly of the labelled object at an onset frame ``t0`` in [3, T-1]:

- ``teleport``: from t0 on the object is somewhere else (at least 0.35 of the frame side away) and keeps moving;
- ``reverse``: at t0 the object turns back without touching a wall (bounces are normal; this is not one);
- ``shape_change``: from t0 on the object has another shape, at the same place, size and colour.

Frames before t0 are identical to the clip's normal continuation, and frame t0 differs from it (tested).

``frame_label`` is True at the onset frame only. A predictive model is surprised when its prediction fails,
which is at t0; after that it sees the new state and can predict again, so counting later frames as anomalies
would reward lingering error rather than detection. ``onset`` lets a caller use another convention (e.g. t0 and
t0+1). Frames before ``MIN_ONSET`` are never anomalous, and any model is surprised there (it has no context
yet), so ``scored`` marks the frames an AUROC should use: t >= MIN_ONSET.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .errors import DataError
from .scene import SHAPES, Scene, draw_scene
from .shapes import sample_scene, simulate
from .synthetic import SyntheticVideoDataset, check_geometry

KINDS = ("normal", "teleport", "reverse", "shape_change")
MIN_ONSET = 3
TELEPORT_MIN_DIST = 0.35  # fraction of min(H, W)


def _teleport(rng: np.random.Generator, scene: Scene, t0: int, size: tuple[int, int]) -> np.ndarray:
    """positions (N, T, 2) with object 0 jumping away at t0 and moving on from there."""
    pos = scene.positions.copy()
    _, dirs_at = simulate(scene.positions[:, 0], scene.dirs0, scene.steps, scene.lo, scene.hi)
    lo, hi = scene.lo[0], scene.hi[0]
    far = TELEPORT_MIN_DIST * min(size)
    for _ in range(100):
        p = rng.uniform(lo, hi)
        if np.linalg.norm(p - pos[0, t0]) >= far:
            break
    else:  # the box is too small for a far jump: take the farthest corner
        corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
        p = corners[np.argmax(np.linalg.norm(corners - pos[0, t0], axis=1))]
    new, _ = simulate(p[None], dirs_at[:1, t0], scene.steps[:1, t0:], scene.lo[:1], scene.hi[:1])
    pos[0, t0:] = new[0]
    return pos


def _reverse(rng: np.random.Generator, scene: Scene, T: int) -> tuple[int, np.ndarray] | None:
    """(t0, positions) with object 0 turning back at t0 away from any wall, or None if no frame allows it."""
    _, dirs_at = simulate(scene.positions[:, 0], scene.dirs0, scene.steps, scene.lo, scene.hi)
    for t0 in rng.permutation(np.arange(MIN_ONSET, T)):
        start = scene.positions[0, t0 - 1]
        d, s = dirs_at[0, t0 - 1], scene.steps[0, t0 - 1]
        back = start - d * s
        # Both the normal and the reversed step must be free of walls, so neither looks like a bounce.
        normal_free = np.isclose(np.linalg.norm(scene.positions[0, t0] - start), s)
        back_free = (back >= scene.lo[0]).all() and (back <= scene.hi[0]).all()
        if normal_free and back_free and s > 0:
            new, _ = simulate(start[None], -d[None], scene.steps[:1, t0 - 1 :], scene.lo[:1], scene.hi[:1])
            pos = scene.positions.copy()
            pos[0, t0:] = new[0, 1:]
            return int(t0), pos
    return None


def render_anomaly_clip(
    rng: np.random.Generator,
    kind: str,
    *,
    size: tuple[int, int] = (64, 64),
    T: int = 20,
    grayscale: bool = False,
    with_normal: bool = False,
) -> dict[str, Any]:
    """One clip of the anomaly set.

    Args:
        kind: one of KINDS. "reverse" falls back to "teleport" when no frame is far enough from the walls (rare).
        with_normal: also return ``normal_video``, the same clip without the anomaly (for tests).
    Returns:
        ``video`` uint8 (T, C, H, W); ``true_mask`` bool (T, 1, H, W) of the object that may misbehave;
        ``frame_label`` bool (T,) True at the onset only; ``onset`` int (-1 when normal); ``kind`` str.
    """
    if kind not in KINDS:
        raise DataError(f"anomaly kind {kind!r}: choose one of {', '.join(KINDS)}")
    check_geometry("synthetic:anomaly", T, size, MIN_ONSET + 2)
    # Medium or fast objects, so a reversal moves the object by >= 2 px against its normal continuation.
    scene, _ = sample_scene(rng, size=size, T=T, n_distractors=1, speed=int(rng.integers(1, 3)))
    anomalous = scene
    onset = -1
    if kind == "reverse":
        found = _reverse(rng, scene, T)
        if found is None:
            kind = "teleport"
        else:
            onset, pos = found
            anomalous = dataclasses.replace(scene, positions=pos)
    if kind == "teleport":
        onset = int(rng.integers(MIN_ONSET, T))
        anomalous = dataclasses.replace(scene, positions=_teleport(rng, scene, onset, size))
    elif kind == "shape_change":
        onset = int(rng.integers(MIN_ONSET, T))
        seq = scene.shape_seq.copy()
        seq[0, onset:] = (seq[0, 0] + rng.integers(1, len(SHAPES))) % len(SHAPES)  # any other shape
        anomalous = dataclasses.replace(scene, shape_seq=seq)
    video, visible = draw_scene(anomalous, grayscale=grayscale)
    frame_label = np.zeros(T, dtype=bool)
    if onset >= 0:
        frame_label[onset] = True
    out = {"video": video, "true_mask": visible[0][:, None], "frame_label": frame_label, "onset": onset, "kind": kind}
    if with_normal:
        out["normal_video"] = draw_scene(scene, grayscale=grayscale)[0] if anomalous is not scene else video
    return out


class AnomalyDataset(SyntheticVideoDataset):
    """``synthetic:anomaly``: even indices normal, odd ones anomalous (kind drawn per clip).

    Items: ``video`` uint8 (T, C, H, W), ``label`` int64 index into KINDS (0 = normal), ``frame_label`` bool (T,),
    ``scored`` bool (T,) (t >= MIN_ONSET), ``onset`` int (-1 when normal), ``true_mask`` bool (T, 1, H, W).
    """

    stream = "anomaly"
    min_clip_len = MIN_ONSET + 2

    def __init__(
        self,
        *,
        n: int,
        size: tuple[int, int] = (64, 64),
        clip_len: int = 20,
        grayscale: bool = False,
        seed: int = 0,
        split: str = "test",
    ):
        super().__init__(
            n=n, seed=seed, split=split, classes=list(KINDS), size=size, clip_len=clip_len, grayscale=grayscale
        )

    def generate(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        kind = "normal" if index % 2 == 0 else KINDS[1 + int(rng.integers(len(KINDS) - 1))]
        clip = render_anomaly_clip(rng, kind, size=self.size, T=self.clip_len, grayscale=self.grayscale)
        return {
            "video": clip["video"],
            "label": KINDS.index(clip["kind"]),
            "frame_label": clip["frame_label"],
            "scored": np.arange(self.clip_len) >= MIN_ONSET,
            "onset": clip["onset"],
            "true_mask": clip["true_mask"],
        }


def make_anomaly_set(
    n_clips: int,
    *,
    size: tuple[int, int] = (64, 64),
    T: int = 20,
    seed: int = 0,
    grayscale: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """The whole anomaly set in memory (what ``eval.surprise`` scores).

    Returns:
        ``video`` uint8 tensor (N, T, C, H, W); ``frame_label`` bool (N, T) (True at each onset);
        ``scored`` bool (N, T) (frames to score: t >= MIN_ONSET); ``onset`` int64 (N,) (-1 when normal);
        ``kind`` list[str] of KINDS. Half the clips (even indices) are normal. Deterministic by seed.
    """
    ds = AnomalyDataset(n=n_clips, size=size, clip_len=T, grayscale=grayscale, seed=seed)
    items = [ds[i] for i in tqdm(range(n_clips), desc="anomaly set", disable=not progress)]
    return {
        "video": torch.stack([it["video"] for it in items]),
        "frame_label": torch.stack([it["frame_label"] for it in items]),
        "scored": torch.stack([it["scored"] for it in items]),
        "onset": torch.tensor([it["onset"] for it in items], dtype=torch.int64),
        "kind": [KINDS[int(it["label"])] for it in items],
    }
