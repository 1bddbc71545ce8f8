"""``synthetic:trajectories``: objects that differ in the *kind* of motion, at equal mean speed.

The labelled task ``synthetic:trajectories:kind`` asks which of six kinds of motion the largest object makes:

- ``linear``: a straight line at constant speed (bouncing off the walls);
- ``circle``: a circular arc, turning 0.25-0.45 rad per frame, clockwise or counter-clockwise;
- ``zigzag``: the heading alternates between +-(45-65) degrees about a mean heading every 2 or 3 frames;
- ``oscillate``: back and forth along a line (velocity ~ cos(wt + phi), w = 0.5-0.8 rad per frame);
- ``stop_go``: moves for 2 frames at twice the mean speed, then stands still for 2 frames;
- ``random_walk``: the heading turns by a random N(0, 60 deg) every frame.

Within a clip the per-step displacements are rescaled so that the mean step length is exactly the clip's speed,
drawn from the same range (1.5-2.5 px per frame at 64 px) for every kind: neither a single frame nor the amount
of motion answers the task, only the shape of the path over time does. Distractors (1-3 smaller objects) move
with random kinds and speeds, the background is cluttered and pans in half of the clips (as ``synthetic:shapes``:
see ``datasets/shapes.py``). Random-init features stay far from the ceiling: docs/results/synthetic.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError
from .scene import SHAPES, Scene, bright_colours, deform_scene, draw_scene, make_background
from .shapes import (
    DISTRACTOR_RADIUS,
    LABELLED_RADIUS,
    check_deform,
    check_speed_range,
    direction_vector,
    random_pan,
    speed_factor,
)
from .synthetic import SyntheticVideoDataset, check_geometry

MIN_CLIP_LEN, MIN_SIDE = 3, 16  # the shortest clip and the smallest frame side drawn

KINDS = ("linear", "circle", "zigzag", "oscillate", "stop_go", "random_walk")
SPEED_RANGE = (1.5, 2.5)  # mean px/frame at 64 px, the same range for every kind
TASKS = ("kind",)


def _rotate(v: np.ndarray, ang: np.ndarray) -> np.ndarray:
    """Rotate (2,) vector v by angles ang (S,) (radians, screen coordinates) -> (S, 2)."""
    c, s = np.cos(ang), np.sin(ang)
    return np.stack([c * v[0] - s * v[1], s * v[0] + c * v[1]], axis=-1)


def kind_steps(rng: np.random.Generator, kind: int, S: int, speed: float) -> np.ndarray:
    """(S, 2) per-step displacements of one object making motion ``KINDS[kind]``; mean step length = ``speed``."""
    u = direction_vector(rng.uniform(0, 360))  # (2,) initial heading
    t = np.arange(S, dtype=np.float64)
    name = KINDS[kind]
    if name == "linear":
        d = np.repeat(u[None], S, axis=0)
    elif name == "circle":
        w = rng.uniform(0.25, 0.45) * rng.choice([-1.0, 1.0])
        d = _rotate(u, w * t)
    elif name == "zigzag":
        theta = np.deg2rad(rng.uniform(45, 65))
        period = int(rng.integers(2, 4))
        sign = np.where(((t + rng.integers(period)) // period) % 2 == 0, 1.0, -1.0)
        d = _rotate(u, theta * sign)
    elif name == "oscillate":
        w, phi = rng.uniform(0.5, 0.8), rng.uniform(0, 2 * np.pi)
        d = u[None] * np.cos(w * t + phi)[:, None]
    elif name == "stop_go":
        on = ((t + rng.integers(4)) // 2) % 2 == 0
        if not on.any():  # S < 3 with an unlucky phase: keep the clip moving
            on[0] = True
        d = u[None] * on[:, None].astype(np.float64)
    elif name == "random_walk":
        d = _rotate(u, np.cumsum(rng.normal(0.0, np.deg2rad(60), size=S)))
    else:  # pragma: no cover - KINDS is closed
        raise ValueError(name)
    norms = np.linalg.norm(d, axis=1)
    return d * (speed / max(norms.mean(), 1e-6))


def bounce_path(p0: np.ndarray, steps: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(S+1, 2) positions from p0 and (S, 2) steps, reflecting off the box [lo, hi] (the step's sign flips).

    Shared with ``synthetic:textures``."""
    pos = np.empty((len(steps) + 1, 2))
    p, flip = p0.astype(np.float64).copy(), np.ones(2)
    pos[0] = p
    for k, d in enumerate(steps):
        p = p + d * flip
        under, over = p < lo, p > hi
        p = np.where(under, 2 * lo - p, p)
        p = np.where(over, 2 * hi - p, p)
        flip = np.where(under | over, -flip, flip)
        pos[k + 1] = p
    return pos


def sample_trajectory_scene(
    rng: np.random.Generator,
    *,
    size: tuple[int, int],
    T: int,
    n_distractors: int = 2,
    pan: tuple[float, float] = (0.0, 0.0),
    clutter: bool = True,
    kind: int | None = None,
    speed_scale: float = 1.0,
    deform: float = 0.0,
) -> tuple[Scene, int]:
    """A scene whose object 0 (the largest, drawn on top) moves with kind ``kind`` (random when None); every
    object's speed is multiplied by ``speed_scale``, and with ``deform`` > 0 every object spins and stretches."""
    H, W = check_geometry("synthetic:trajectories", T, size, MIN_CLIP_LEN, MIN_SIDE)
    s = min(H, W)
    scale = s / 64.0
    N = 1 + int(n_distractors)
    label = int(rng.integers(len(KINDS))) if kind is None else int(kind)
    kinds = np.concatenate([[label], rng.integers(len(KINDS), size=N - 1)]).astype(int)
    shapes = rng.integers(len(SHAPES), size=N)
    radii = np.concatenate([[rng.uniform(*LABELLED_RADIUS)], rng.uniform(*DISTRACTOR_RADIUS, size=N - 1)]) * s
    speeds = rng.uniform(*SPEED_RANGE, size=N) * scale * speed_scale  # 1.0 (the default) changes nothing
    lo = np.stack([radii, radii], axis=1)  # (N, 2)
    hi = np.stack([W - 1 - radii, H - 1 - radii], axis=1)
    positions = np.empty((N, T, 2))
    steps_len = np.empty((N, T - 1))
    dirs0 = np.empty((N, 2))
    for i in range(N):
        d = kind_steps(rng, int(kinds[i]), T - 1, float(speeds[i]))  # (T-1, 2)
        # Start where the whole unreflected path fits when it can, so most paths keep their shape.
        path = np.concatenate([[np.zeros(2)], np.cumsum(d, axis=0)])  # (T, 2) relative
        a_lo, a_hi = lo[i] - path.min(axis=0), hi[i] - path.max(axis=0)
        p0 = np.where(a_lo <= a_hi, rng.uniform(a_lo, np.maximum(a_hi, a_lo)), rng.uniform(lo[i], hi[i]))
        positions[i] = bounce_path(p0, d, lo[i], hi[i])
        steps_len[i] = np.linalg.norm(d, axis=1)
        dirs0[i] = d[0] / max(np.linalg.norm(d[0]), 1e-9)
    scene = Scene(
        positions=positions,
        shape_seq=np.repeat(shapes[:, None], T, axis=1),
        radii=radii,
        angles=rng.uniform(0, 2 * np.pi, size=N),
        colours=bright_colours(rng, N),
        background=make_background(rng, size, T, pan=pan, clutter=clutter),
        moving=np.ones(N, dtype=bool),
        dirs0=dirs0,
        steps=steps_len,
        lo=lo,
        hi=hi,
    )
    deform_scene(rng, scene, deform)
    return scene, label


class TrajectoriesDataset(SyntheticVideoDataset):
    """``synthetic:trajectories[:kind]``: ``n`` clips, deterministic by (seed, split, index).

    Items: ``video`` uint8 (T, C, H, W), ``label`` int64 (the kind, or -1 without a task), ``index``, ``kind``.
    """

    stream = "trajectories"
    min_clip_len = MIN_CLIP_LEN
    min_side = MIN_SIDE
    version = 1

    def __init__(
        self,
        *,
        n: int,
        size: tuple[int, int] = (64, 64),
        clip_len: int = 10,
        grayscale: bool = False,
        seed: int = 0,
        split: str = "train",
        task: str | None = None,
        n_distractors: tuple[int, int] = (1, 3),
        pan_prob: float = 0.5,
        pan_speed: tuple[float, float] = (0.5, 1.5),
        speed_range: tuple[float, float] = (1.0, 1.0),
        deform: float = 0.0,
        clutter: bool = True,
    ):
        if task is not None and task not in TASKS:
            raise DataError(f"synthetic:trajectories task {task!r}: choose one of {', '.join(TASKS)}")
        super().__init__(
            n=n,
            seed=seed,
            split=split,
            classes=list(KINDS) if task else [],
            size=size,
            clip_len=clip_len,
            grayscale=grayscale,
        )
        self.task = task
        self.n_distractors = n_distractors
        self.pan_prob = float(pan_prob)
        self.pan_speed = pan_speed
        self.speed_range = check_speed_range(speed_range)  # a bad range raises here, not in a worker
        self.deform = check_deform(deform)
        self.clutter = clutter

    def generate(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        factor = speed_factor(rng, self.speed_range)
        pan = random_pan(rng, self.size, self.pan_prob, self.pan_speed)
        scene, label = sample_trajectory_scene(
            rng,
            size=self.size,
            T=self.clip_len,
            n_distractors=int(rng.integers(self.n_distractors[0], self.n_distractors[1] + 1)),
            pan=pan,
            clutter=self.clutter,
            speed_scale=factor,
            deform=self.deform,
        )
        video, _ = draw_scene(scene, grayscale=self.grayscale)
        return {"video": video, "label": label if self.task else -1, "kind": label}
