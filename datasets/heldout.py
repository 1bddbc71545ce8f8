"""``synthetic:heldout``: four probe tasks of kinds the training study never saw, for checking that gains generalise.

The study picked every default on direction, speed, kind, digit and basketball_actions. These four tasks were
written afterwards (round 135, docs/results/heldout_rounds135.md) and are only ever read, never tuned on: a variant
that wins on the study's tasks and loses here has learnt those tasks, not video. Each has three classes (chance
33%) that no single frame answers, over the same cluttered, half-panning backgrounds as ``synthetic:shapes``:

- ``spin``: the largest object (a square, triangle, cross or star: no round shape) travels in a straight line at
  1.5-2.5 px per frame and turns clockwise, counter-clockwise (0.15-0.3 rad per frame) or not at all;
- ``accel``: the largest object travels in a straight line, speeding up (0.5 to 1.5 times its mean speed over the
  clip), slowing down (the reverse) or steady, at the same mean speed (1.5-2.5 px per frame) in every class;
- ``loom``: the largest object grows (0.87 to 1.15 times its size over the clip), shrinks (the reverse) or keeps one
  size (the same geometric mean), moving slowly (1-2 px per frame): approaching, receding or neither;
- ``count``: four objects of mixed sizes, of which one, two or three move (0.8-3.7 px per frame each, so the amount
  of motion overlaps between classes) and the others stand still; no distractors beside them.

In ``spin``, ``accel`` and ``loom`` 1-3 smaller rigid distractors move in straight lines (0.8-3.7 px per frame); in
``accel`` and ``loom`` each distractor also draws a class of its own (speeding up, slowing, steady; growing,
shrinking, steady), so only the labelled object's own change answers.
Speeds and sizes are at a 64-px frame side and scale with it. Random init and pixels on these tasks:
docs/synthetic.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError
from .scene import SHAPES, Scene, bright_colours, draw_scene, make_background
from .shapes import DISTRACTOR_RADIUS, DISTRACTOR_SPEED, LABELLED_RADIUS, direction_vector, random_pan, simulate
from .synthetic import SyntheticVideoDataset, check_geometry

MIN_CLIP_LEN, MIN_SIDE = 3, 16
TASK_CLASSES = {
    "spin": ("clockwise", "counter_clockwise", "none"),
    "accel": ("speeding_up", "slowing_down", "steady"),
    "loom": ("growing", "shrinking", "steady"),
    "count": ("one", "two", "three"),
}
TASKS = tuple(TASK_CLASSES)
SPEED = (1.5, 2.5)  # px/frame at 64 px: the labelled object's (mean) speed in spin and accel
SPIN_RATE = (0.15, 0.3)  # rad/frame; positive angles turn clockwise on screen (y down)
ACCEL_RANGE = (0.5, 1.5)  # speed at the first and the last step, as a multiple of the mean
LOOM_RANGE = (0.87, 1.15)  # size at the first and the last frame, as a multiple of the base size
LOOM_RADIUS = (0.12, 0.16)  # base radius, fraction of min(H, W)
LOOM_SPEED = (1.0, 2.0)
COUNT_OBJECTS, COUNT_RADIUS = 4, (0.05, 0.14)
SPINNABLE = tuple(i for i, name in enumerate(SHAPES) if name not in ("circle", "ring"))


def check_task(task: str | None) -> None:
    """DataError naming the tasks unless ``task`` is one of them (there is no unlabelled ``synthetic:heldout``)."""
    if task not in TASK_CLASSES:
        raise DataError(f"synthetic:heldout task {task!r}: choose one of {', '.join(TASKS)}")


def _profile(task: str, label: int, S: int, mean: float) -> np.ndarray:
    """(S,) step lengths of an object of class ``label``: its speed profile over the clip (accel), or steady."""
    if task == "accel" and label != 2:
        ramp = np.linspace(*ACCEL_RANGE, S) if S > 1 else np.ones(1)
        return mean * (ramp if label == 0 else ramp[::-1]) / ramp.mean()
    return np.full(S, mean)


def _sizes(label: int, T: int) -> np.ndarray:
    """(T,) size over the clip of an object of loom class ``label``, as a multiple of its base size."""
    grow = np.geomspace(*LOOM_RANGE, T)
    return grow if label == 0 else grow[::-1] if label == 1 else np.full(T, np.sqrt(np.prod(LOOM_RANGE)))


def sample_heldout_scene(
    rng: np.random.Generator, task: str, *, size: tuple[int, int], T: int, pan: tuple[float, float] = (0.0, 0.0)
) -> tuple[Scene, int]:
    """A scene for ``task`` and its label (an index into ``TASK_CLASSES[task]``)."""
    check_task(task)
    H, W = check_geometry("synthetic:heldout", T, size, MIN_CLIP_LEN, MIN_SIDE)
    s = min(H, W)
    scale = s / 64.0
    label = int(rng.integers(3))
    if task == "count":
        N = COUNT_OBJECTS
        shapes = rng.integers(len(SHAPES), size=N)
        radii = rng.uniform(*COUNT_RADIUS, size=N) * s
        moving = np.zeros(N, dtype=bool)
        moving[rng.permutation(N)[: label + 1]] = True
        speeds = rng.uniform(*DISTRACTOR_SPEED, size=(N, 1)) * scale
        steps = np.where(moving[:, None], speeds, 0.0) * np.ones((N, T - 1))
        scale_seq = np.ones((N, T))
    else:
        N = 1 + int(rng.integers(1, 4))
        first = rng.choice(SPINNABLE) if task == "spin" else rng.integers(len(SHAPES))
        shapes = np.concatenate([[first], rng.integers(len(SHAPES), size=N - 1)]).astype(int)
        r0 = rng.uniform(*(LOOM_RADIUS if task == "loom" else LABELLED_RADIUS))
        radii = np.concatenate([[r0], rng.uniform(*DISTRACTOR_RADIUS, size=N - 1)]) * s
        means = np.concatenate(
            [[rng.uniform(*(LOOM_SPEED if task == "loom" else SPEED))], rng.uniform(*DISTRACTOR_SPEED, size=N - 1)]
        )
        # the distractors draw their own classes (a speed profile in accel, a size course in loom): the amount of
        # change in the frame does not give the label away, only the labelled object's own does
        classes = np.concatenate([[label], rng.integers(3, size=N - 1)])
        steps = np.stack([_profile(task, int(c), T - 1, m * scale) for c, m in zip(classes, means)])
        moving = np.ones(N, dtype=bool)
        scale_seq = np.stack([_sizes(int(c), T) for c in classes]) if task == "loom" else np.ones((N, T))
    reach = radii * scale_seq.max(axis=1)  # the largest radius each centre must keep from the walls
    lo = np.stack([reach, reach], axis=1)
    hi = np.stack([W - 1 - reach, H - 1 - reach], axis=1)
    dirs = direction_vector(rng.uniform(0, 360, size=N))
    positions, _ = simulate(rng.uniform(lo, np.maximum(hi, lo)), dirs, steps, lo, hi)
    angles = rng.uniform(0, 2 * np.pi, size=N)
    angle_seq = np.repeat(angles[:, None], T, axis=1)
    if task == "spin" and label != 2:
        rate = rng.uniform(*SPIN_RATE) * (1.0 if label == 0 else -1.0)
        angle_seq[0] = angles[0] + rate * np.arange(T)
    scene = Scene(
        positions=positions,
        shape_seq=np.repeat(shapes[:, None], T, axis=1),
        radii=radii,
        angles=angles,
        colours=bright_colours(rng, N),
        background=make_background(rng, size, T, pan=pan),
        moving=moving,
        dirs0=dirs,
        steps=steps,
        lo=lo,
        hi=hi,
        angle_seq=angle_seq,
        scale_seq=scale_seq,
    )
    return scene, label


class HeldoutDataset(SyntheticVideoDataset):
    """``synthetic:heldout:{spin,accel,loom,count}``: ``n`` labelled clips, deterministic by (seed, split, index).

    Items: ``video`` uint8 (T, C, H, W), ``label`` int64, ``index``. Probe tasks only: there is no unlabelled set.
    """

    stream = "heldout"
    min_clip_len = MIN_CLIP_LEN
    min_side = MIN_SIDE
    version = 1
    task_classes = TASK_CLASSES  # a battery's tasks and their classes (synthetic:heldout2 subclasses this)
    check_task = staticmethod(check_task)

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
        pan_prob: float = 0.5,
        pan_speed: tuple[float, float] = (0.5, 1.5),
    ):
        self.check_task(task)
        super().__init__(
            n=n,
            seed=seed,
            split=split,
            classes=list(self.task_classes[task]),
            size=size,
            clip_len=clip_len,
            grayscale=grayscale,
        )
        self.task = task
        self.pan_prob, self.pan_speed = float(pan_prob), pan_speed

    def generate(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        pan = random_pan(rng, self.size, self.pan_prob, self.pan_speed)
        scene, label = sample_heldout_scene(rng, self.task, size=self.size, T=self.clip_len, pan=pan)
        video, _ = draw_scene(scene, grayscale=self.grayscale)
        return {"video": video, "label": label}
