"""``synthetic:shapes``: coloured shapes bouncing over a cluttered, optionally panning background.

One clip holds a *labelled* object and 1-3 smaller distractors. The labelled object is always the largest
(radius 0.12-0.18 of the frame side; distractors 0.05-0.09) and is drawn on top, so it is never occluded. Its
three labels:

- ``shape``: 6 classes (circle, square, triangle, cross, ring, star), each object at a random rotation;
  distractors use the same shapes.
- ``direction``: 8 classes, the *initial* direction of motion (0 = east, counter-clockwise in steps of 45 degrees,
  with +-10 degrees jitter). Objects bounce off the walls, so the direction at later frames is not the label.
- ``speed``: 3 classes, mean speeds 1.25 / 2.0 / 2.75 px per frame at 64 px (scaled with the frame), each step
  jittered by +-35 %, so single steps overlap between classes and only an average over time separates them.

Distractors move in random directions at speeds spread over all three classes, so pooled "how much motion is
there" features do not give the speed away. The background is low-frequency colour noise with fine grain and dim
static shapes (clutter); in half of the clips it pans (camera motion) while the objects keep their own screen
motion. These choices keep untrained features away from the ceiling (DESIGN §5): see docs/synthetic.md.

Geometry: positions are (x, y) in pixels, x to the right, y down; directions are drawn with y up (north = up).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError
from .scene import SHAPES, Scene, bright_colours, deform_scene, draw_scene, make_background
from .synthetic import SyntheticVideoDataset, check_geometry

MIN_CLIP_LEN, MIN_SIDE = 2, 16  # the shortest clip and the smallest frame side drawn

DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
SPEEDS = ("slow", "medium", "fast")
SPEED_PX = (1.25, 2.0, 2.75)  # mean px/frame at a 64-px frame side
SPEED_JITTER = 0.35  # each step's speed is mean * (1 + U(-j, j))
DIRECTION_JITTER_DEG = 10.0
TASKS = ("shape", "direction", "speed")
TASK_CLASSES = {"shape": SHAPES, "direction": DIRECTIONS, "speed": SPEEDS}

LABELLED_RADIUS = (0.12, 0.18)  # fraction of min(H, W)
DISTRACTOR_RADIUS = (0.05, 0.09)
DISTRACTOR_SPEED = (0.8, 3.7)  # px/frame at 64 px: spans all speed classes


# ---- motion ----------------------------------------------------------------------------------------------------
def simulate(
    p0: np.ndarray, dirs: np.ndarray, speeds: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bounce N points around a box.

    Args:
        p0: (N, 2) start positions; dirs: (N, 2) unit directions; speeds: (N, T-1) step lengths;
        lo, hi: (N, 2) the box each centre stays in (a wall reflects the overshoot and flips that component).
    Returns:
        positions (N, T, 2) and dirs_at (N, T, 2): the direction in force for the step t -> t+1 (after the flips
        made on arriving at t).
    """
    N, S = speeds.shape
    pos = np.empty((N, S + 1, 2))
    dirs_at = np.empty((N, S + 1, 2))
    p = p0.astype(np.float64).copy()
    d = dirs.astype(np.float64).copy()
    pos[:, 0], dirs_at[:, 0] = p, d
    for t in range(S):
        p = p + d * speeds[:, t, None]
        under, over = p < lo, p > hi
        p = np.where(under, 2 * lo - p, p)
        p = np.where(over, 2 * hi - p, p)
        d = np.where(under | over, -d, d)
        pos[:, t + 1], dirs_at[:, t + 1] = p, d
    return pos, dirs_at


def direction_vector(angle_deg: np.ndarray) -> np.ndarray:
    """(..., 2) unit (x, y) screen vectors for angles measured counter-clockwise from east with y up."""
    a = np.deg2rad(angle_deg)
    return np.stack([np.cos(a), -np.sin(a)], axis=-1)


# ---- one clip --------------------------------------------------------------------------------------------------
def sample_scene(
    rng: np.random.Generator,
    *,
    size: tuple[int, int],
    T: int,
    n_distractors: int = 2,
    pan: tuple[float, float] = (0.0, 0.0),
    static: bool = False,
    clutter: bool = True,
    shape: int | None = None,
    direction: int | None = None,
    speed: int | None = None,
    speed_scale: float = 1.0,
    deform: float = 0.0,
) -> tuple[Scene, dict[str, int]]:
    """Draw the random parts of a clip: labels, object sizes/colours/trajectories, background.

    ``speed_scale`` multiplies every object's speed (the ``speed`` label keeps naming the unscaled class);
    ``deform`` > 0 makes every object spin and stretch as it moves (``deform_sequences``), drawn after the rest, so
    the clip is otherwise the one drawn without it.
    Returns the scene and its labels ``{"shape", "direction", "speed"}`` (of object 0).
    """
    H, W = check_geometry("synthetic:shapes", T, size, MIN_CLIP_LEN, MIN_SIDE)
    s = min(H, W)
    scale = s / 64.0
    N = 1 + int(n_distractors)
    labels = {
        "shape": int(rng.integers(len(SHAPES))) if shape is None else int(shape),
        "direction": int(rng.integers(len(DIRECTIONS))) if direction is None else int(direction),
        "speed": int(rng.integers(len(SPEEDS))) if speed is None else int(speed),
    }
    shapes = np.concatenate([[labels["shape"]], rng.integers(len(SHAPES), size=N - 1)]).astype(int)
    radii = np.concatenate([[rng.uniform(*LABELLED_RADIUS)], rng.uniform(*DISTRACTOR_RADIUS, size=N - 1)]) * s  # (N,)
    colours = bright_colours(rng, N)

    angles = np.concatenate(
        [
            [labels["direction"] * 45.0 + rng.uniform(-DIRECTION_JITTER_DEG, DIRECTION_JITTER_DEG)],
            rng.uniform(0, 360, size=N - 1),
        ]
    )
    dirs = direction_vector(angles)  # (N, 2)
    mean_speed = np.concatenate([[SPEED_PX[labels["speed"]]], rng.uniform(*DISTRACTOR_SPEED, size=N - 1)]) * scale
    mean_speed = mean_speed * speed_scale  # 1.0 (the default) leaves every value as it was
    steps = mean_speed[:, None] * (1.0 + rng.uniform(-SPEED_JITTER, SPEED_JITTER, size=(N, T - 1)))  # (N, T-1)
    if static:
        steps[:] = 0.0

    # Centres stay inside [r, side-1-r]; the first step never touches a wall, so the first displacement of the
    # labelled object shows its direction label exactly (what the tests check).
    lo = np.stack([radii, radii], axis=1)  # (N, 2)
    hi = np.stack([W - 1 - radii, H - 1 - radii], axis=1)
    first = np.abs(dirs) * steps[:, :1] if T > 1 else np.zeros((N, 2))
    margin_lo = lo + np.where(dirs < 0, first, 0.0)
    margin_hi = hi - np.where(dirs > 0, first, 0.0)
    p0 = rng.uniform(margin_lo, np.maximum(margin_hi, margin_lo))
    positions, _ = simulate(p0, dirs, steps, lo, hi)

    background = make_background(rng, size, T, pan=pan, clutter=clutter)
    scene = Scene(
        positions=positions,
        shape_seq=np.repeat(shapes[:, None], T, axis=1),
        radii=radii,
        angles=rng.uniform(0, 2 * np.pi, size=N),
        colours=colours,
        background=background,
        moving=np.full(N, not static),
        dirs0=dirs,
        steps=steps,
        lo=lo,
        hi=hi,
    )
    deform_scene(rng, scene, deform)
    return scene, labels


def render_shapes_clip(
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = (64, 64),
    T: int = 10,
    n_distractors: int = 2,
    pan: tuple[float, float] = (0.0, 0.0),
    static: bool = False,
    clutter: bool = True,
    grayscale: bool = False,
    shape: int | None = None,
    direction: int | None = None,
    speed: int | None = None,
    speed_scale: float = 1.0,
    deform: float = 0.0,
) -> dict[str, Any]:
    """One moving-shapes clip with its ground truth (numpy; for tests and for building other sets).

    Args:
        rng: the only source of randomness.
        size: (H, W); T: frames.
        n_distractors: smaller objects besides the labelled one (0 for a single object).
        pan: background (camera) motion in px/frame, (dx, dy) with y down; objects keep their screen motion.
        static: nothing moves (pan still applies to the background).
        clutter: textured background with dim static shapes; False gives a flat dark background.
        shape, direction, speed: force a label (class index) instead of drawing it.
        speed_scale: multiplies every object's speed (the labels stay those of the unscaled classes).
        deform: non-rigid motion in [0, 1]: every object spins and stretches as it moves (0: rigid).
    Returns:
        ``video`` uint8 (T, C, H, W); ``true_mask`` bool (T, 1, H, W) of the labelled object; ``moving_mask``
        bool (T, 1, H, W), the visible pixels of every object that moves (all False when static);
        ``object_masks`` bool (N, T, H, W) visible pixels per object (0 = labelled); ``positions`` float
        (N, T, 2) centres (x, y); ``radii`` (N,); ``shape``, ``direction``, ``speed`` int labels of object 0.
    """
    scene, labels = sample_scene(
        rng,
        size=size,
        T=T,
        n_distractors=n_distractors,
        pan=pan,
        static=static,
        clutter=clutter,
        shape=shape,
        direction=direction,
        speed=speed,
        speed_scale=speed_scale,
        deform=deform,
    )
    video, visible = draw_scene(scene, grayscale=grayscale)
    moving = (visible & scene.moving[:, None, None, None]).any(axis=0)  # (T, H, W)
    return {
        "video": video,
        "true_mask": visible[0][:, None],  # (T, 1, H, W)
        "moving_mask": moving[:, None],
        "object_masks": visible,
        "positions": scene.positions,
        "radii": scene.radii,
        **labels,
    }


def check_speed_range(speed_range: tuple[float, float]) -> tuple[float, float]:
    """``speed_range`` as (low, high) floats with 0 < low <= high, or DataError."""
    lo, hi = float(speed_range[0]), float(speed_range[1])
    if not 0 < lo <= hi:
        raise DataError(f"speed range {list(speed_range)}: expected 0 < low <= high")
    return lo, hi


def speed_factor(rng: np.random.Generator, speed_range: tuple[float, float]) -> float:
    """A clip's speed factor, log-uniform in ``speed_range``; a single value (lo == hi) draws nothing from ``rng``."""
    lo, hi = check_speed_range(speed_range)
    return lo if lo == hi else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def check_deform(deform: float) -> float:
    """``deform`` as a float in [0, 1], or DataError."""
    if not 0.0 <= float(deform) <= 1.0:
        raise DataError(f"deform {deform}: expected a value in [0, 1] (0: rigid objects)")
    return float(deform)


def random_pan(
    rng: np.random.Generator, size: tuple[int, int], prob: float, speed: tuple[float, float]
) -> tuple[float, float]:
    """A camera pan (dx, dy) px/frame: with chance ``prob``, U(speed) px/frame at 64 px in a random direction."""
    if rng.random() >= prob:
        return (0.0, 0.0)
    v = rng.uniform(*speed) * min(size) / 64.0
    return tuple(float(x) for x in direction_vector(rng.uniform(0, 360)) * v)


# ---- the dataset -----------------------------------------------------------------------------------------------
class ShapesDataset(SyntheticVideoDataset):
    """``synthetic:shapes[:task]``: ``n`` clips of moving shapes, deterministic by (seed, split, index).

    Items: ``video`` uint8 (T, C, H, W), ``label`` int64 (the task's class, -1 without a task), ``index``,
    ``shape``/``direction``/``speed`` ints (all three labels, whatever the task), and ``true_mask`` bool
    (T, 1, H, W) of the labelled object when ``with_true_mask``.

    Args:
        task: None (unlabelled), "shape", "direction" or "speed".
        n_distractors: (lo, hi) inclusive range drawn per clip.
        pan_prob: chance that a clip's background pans; pan speed U(pan_speed) px/frame (at 64 px) in a random
            direction.
        speed_range: (lo, hi): each clip's object speeds are scaled by a factor drawn log-uniformly in it; (1, 1)
            draws nothing (the default clips).
        deform: non-rigid motion in [0, 1] (objects spin and stretch as they move); 0 draws nothing.
    """

    stream = "shapes"
    min_clip_len = MIN_CLIP_LEN
    min_side = MIN_SIDE
    version = 2  # 2: random rotations, star instead of diamond

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
        with_true_mask: bool = True,
    ):
        if task is not None and task not in TASKS:
            raise DataError(f"synthetic:shapes task {task!r}: choose one of {', '.join(TASKS)}")
        super().__init__(
            n=n,
            seed=seed,
            split=split,
            classes=list(TASK_CLASSES[task]) if task else [],
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
        self.with_true_mask = with_true_mask

    def generate(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        factor = speed_factor(rng, self.speed_range)
        pan = random_pan(rng, self.size, self.pan_prob, self.pan_speed)
        clip = render_shapes_clip(
            rng,
            size=self.size,
            T=self.clip_len,
            n_distractors=int(rng.integers(self.n_distractors[0], self.n_distractors[1] + 1)),
            pan=pan,
            clutter=self.clutter,
            grayscale=self.grayscale,
            speed_scale=factor,
            deform=self.deform,
        )
        item = {
            "video": clip["video"],
            "label": clip[self.task] if self.task else -1,
            "shape": clip["shape"],
            "direction": clip["direction"],
            "speed": clip["speed"],
        }
        if self.with_true_mask:
            item["true_mask"] = clip["true_mask"]
        return item
