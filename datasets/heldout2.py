"""``synthetic:heldout2``: a second battery of held-out probe tasks, kinds of dynamics between and behind objects.

``synthetic:heldout`` (round 135) checks gains on four kinds nobody tuned on; once a variant has been chosen by
looking at that battery, it is no longer held out for it. These three tasks were written in session 39 (round 150,
docs/results/flow_anchor_round150.md), before any trained model was read on them, and are only ever read. They ask
what happens *between* objects or *out of sight*, which no earlier task asks. Three classes each (chance 33%), the
cluttered, half-panning backgrounds of ``synthetic:shapes``, no class answerable from one frame:

- ``collide``: two objects of similar size approach each other on two parallel lines that graze, and touch side by
  side halfway through the clip, somewhere in the frame's middle; they bounce back, pass on, or both turn away at
  a right angle. They never overlap, the first half is the same in every class and every object keeps its speed,
  so only the motion after the contact answers;
- ``occlude``: a static vertical band (a pillar drawn over everything) stands in the middle; the object moves
  across toward it and goes behind it, then comes out on the far side, comes back out on the side it entered, or
  never comes out;
- ``follow``: two objects move in the two halves of the frame on winding paths; the second copies the first's every
  step (parallel), copies it mirrored left-right, or winds on its own. Each clip offsets the pair at random, so
  the positions in one frame do not answer.

1-2 smaller distractors move in straight lines (0.8-3.7 px per frame). Speeds and sizes are at a 64-px frame side
and scale with it; speeds are capped so that the paths stay in the frame for any clip length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError
from .heldout import HeldoutDataset
from .scene import SHAPES, Scene, bright_colours, draw_scene, make_background
from .shapes import DISTRACTOR_RADIUS, DISTRACTOR_SPEED, direction_vector, random_pan, simulate
from .synthetic import check_geometry

MIN_CLIP_LEN, MIN_SIDE = 4, 16
TASK_CLASSES = {
    "collide": ("bounce", "pass", "deflect"),
    "occlude": ("through", "back", "vanish"),
    "follow": ("parallel", "mirror", "independent"),
}
TASKS = tuple(TASK_CLASSES)
SPEED = (1.5, 2.5)  # px/frame at 64 px, every labelled object
RADIUS = (0.09, 0.12)  # fraction of min(H, W), the labelled objects
REACH = 0.3  # the farthest a labelled object travels from where its path is centred, fraction of min(H, W)
COLLIDE_REACH, COLLIDE_WHERE = 0.22, (0.35, 0.65)  # collide: shorter paths, met anywhere in the frame's middle
OCCLUDER_WIDTH = 0.3  # the band's width, fraction of W; the object (radius <= 0.12) hides fully behind it
OCCLUDE_AT = 0.4  # the object reaches the band's centre line at this fraction of the clip
FOLLOW_TURN_DEG = 35.0  # the winding path's heading turns N(0, this) degrees every frame
FOLLOW_OFFSET = 0.06  # each clip shifts the follower by up to this fraction of min(H, W) in x and y


def check_task(task: str | None) -> None:
    """DataError naming the tasks unless ``task`` is one of them (there is no unlabelled ``synthetic:heldout2``)."""
    if task not in TASK_CLASSES:
        raise DataError(f"synthetic:heldout2 task {task!r}: choose one of {', '.join(TASKS)}")


def _speed(rng: np.random.Generator, s: int, span: float, reach: float = REACH) -> float:
    """A labelled object's speed in px/frame: U(SPEED) at 64 px, capped so ``span`` frames stay within ``reach``."""
    return min(rng.uniform(*SPEED) * s / 64.0, reach * s / max(span, 1.0))


def _collide(rng, label: int, s: int, H: int, W: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(2, T, 2) positions and the radii: the pair approaches on two parallel lines that graze (so they touch side
    by side and never overlap), meets at the clip's middle, then bounces back, passes on, or turns away (a right
    angle each)."""
    r = rng.uniform(*RADIUS, size=2) * s
    tc = (T - 1) / 2 + rng.uniform(-0.5, 0.5)  # contact time
    v = _speed(rng, s, max(tc, T - 1 - tc), COLLIDE_REACH)
    u = direction_vector(rng.uniform(0, 360))
    p = np.array([-u[1], u[0]])  # a right angle to the lines
    centre = rng.uniform(*COLLIDE_WHERE, size=2) * np.array([W, H])
    t = np.arange(T, dtype=np.float64)[:, None]
    before, after = np.clip(tc - t, 0, None) * v, np.clip(t - tc, 0, None) * v  # distance to / since the contact
    a0, b0 = centre - p * r[0], centre + p * r[1]  # where each is at the contact (touching)
    out_a, out_b = {0: (-u, u), 1: (u, -u), 2: (-p, p)}[label]  # the way each goes after the contact
    return np.stack([a0 - u * before + out_a * after, b0 + u * before + out_b * after]), r


def _occlude(rng, label: int, s: int, H: int, W: int, T: int) -> tuple[np.ndarray, float]:
    """(T, 2) positions of the object passing behind the central band, and its radius."""
    r = rng.uniform(*RADIUS) * s
    th = OCCLUDE_AT * (T - 1)  # when it reaches the band's centre line
    v = _speed(rng, s, max(th, T - 1 - th))
    side = rng.choice([-1.0, 1.0])  # it comes from the left (-1) or the right
    t = np.arange(T, dtype=np.float64)
    before, after = np.clip(th - t, 0, None) * v, np.clip(t - th, 0, None) * v
    way = {0: -side, 1: side, 2: 0.0}[label]  # after the centre line: on across, back out, or stays hidden
    x = W / 2 + side * before + way * after
    y = np.full(T, rng.uniform(r, H - 1 - r))
    return np.stack([x, y], axis=1), r


def _wander(rng, T: int, v: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(T, 2) a winding path at speed ``v`` in the box [lo, hi], reflecting off its walls."""
    heading = rng.uniform(0, 2 * np.pi)
    pos = np.empty((T, 2))
    pos[0] = rng.uniform(lo, hi)
    for k in range(1, T):
        heading += np.deg2rad(rng.normal(0, FOLLOW_TURN_DEG))
        q = pos[k - 1] + v * np.array([np.cos(heading), np.sin(heading)])
        for d in range(2):  # reflect an overshoot and turn the heading's component with it
            if q[d] < lo[d] or q[d] > hi[d]:
                q[d] = np.clip(2 * (lo[d] if q[d] < lo[d] else hi[d]) - q[d], lo[d], hi[d])
                heading = np.pi - heading if d == 0 else -heading
        pos[k] = q
    return pos


def _follow(rng, label: int, s: int, H: int, W: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(2, T, 2) positions of a winding leader in one half and its parallel, mirrored or free follower, and radii."""
    r = rng.uniform(*RADIUS, size=2) * s
    m = FOLLOW_OFFSET * s
    reach = r.max() + m
    v = rng.uniform(*SPEED) * s / 64.0
    left = rng.random() < 0.5  # the leader's half
    lo = np.array([reach, reach]) if left else np.array([W / 2 + reach, reach])
    hi = np.array([W / 2 - reach, H - 1 - reach]) if left else np.array([W - 1 - reach, H - 1 - reach])
    lead = _wander(rng, T, v, lo, np.maximum(hi, lo))
    shift = rng.uniform(-m, m, size=2)
    if label == 0:
        follow = lead + np.array([W / 2 if left else -W / 2, 0.0]) + shift
    elif label == 1:
        follow = np.stack([W - 1 - lead[:, 0], lead[:, 1]], axis=1) + shift
    else:
        flo = np.array([W / 2 + reach, reach]) if left else np.array([reach, reach])
        fhi = np.array([W - 1 - reach, H - 1 - reach]) if left else np.array([W / 2 - reach, H - 1 - reach])
        follow = _wander(rng, T, v, flo, np.maximum(fhi, flo))
    return np.stack([lead, follow]), r


def sample_heldout2_scene(
    rng: np.random.Generator, task: str, *, size: tuple[int, int], T: int, pan: tuple[float, float] = (0.0, 0.0)
) -> tuple[Scene, int, tuple[int, int] | None]:
    """A scene for ``task``, its label (an index into ``TASK_CLASSES[task]``) and, for ``occlude``, the band's
    columns ``[x0, x1)`` (painted over the drawn video by ``draw_heldout2``; None otherwise)."""
    check_task(task)
    H, W = check_geometry("synthetic:heldout2", T, size, MIN_CLIP_LEN, MIN_SIDE)
    s = min(H, W)
    label = int(rng.integers(3))
    band = None
    if task == "collide":
        labelled, radii = _collide(rng, label, s, H, W, T)
    elif task == "occlude":
        pos, r = _occlude(rng, label, s, H, W, T)
        labelled, radii = pos[None], np.array([r])
        half = OCCLUDER_WIDTH * W / 2
        band = (int(round(W / 2 - half)), int(round(W / 2 + half)))
    else:
        labelled, radii = _follow(rng, label, s, H, W, T)
    n_lab, n_dis = len(labelled), int(rng.integers(1, 3))
    dr = rng.uniform(*DISTRACTOR_RADIUS, size=n_dis) * s
    dlo = np.stack([dr, dr], axis=1)
    dhi = np.stack([W - 1 - dr, H - 1 - dr], axis=1)
    dsteps = rng.uniform(*DISTRACTOR_SPEED, size=(n_dis, 1)) * (s / 64.0) * np.ones((n_dis, T - 1))
    ddirs = direction_vector(rng.uniform(0, 360, size=n_dis))
    dpos, _ = simulate(rng.uniform(dlo, np.maximum(dhi, dlo)), ddirs, dsteps, dlo, dhi)
    positions = np.concatenate([labelled, dpos])
    N = n_lab + n_dis
    diffs = np.diff(labelled, axis=1)
    steps = np.concatenate([np.linalg.norm(diffs, axis=2), dsteps])
    first = diffs[:, 0] / np.maximum(np.linalg.norm(diffs[:, 0], axis=1, keepdims=True), 1e-9)
    box_lo, box_hi = np.zeros((n_lab, 2)), np.tile([W - 1.0, H - 1.0], (n_lab, 1))
    scene = Scene(
        positions=positions,
        shape_seq=np.repeat(rng.integers(len(SHAPES), size=N)[:, None], T, axis=1),
        radii=np.concatenate([radii, dr]),
        angles=rng.uniform(0, 2 * np.pi, size=N),
        colours=bright_colours(rng, N),
        background=make_background(rng, size, T, pan=pan),
        moving=np.ones(N, dtype=bool),
        dirs0=np.concatenate([first, ddirs]),
        steps=steps,
        lo=np.concatenate([box_lo, dlo]),
        hi=np.concatenate([box_hi, dhi]),
    )
    return scene, label, band


def draw_heldout2(
    scene: Scene, band: tuple[int, int] | None, colour: np.ndarray, *, grayscale: bool = False
) -> np.ndarray:
    """The scene's video uint8 (T, C, H, W), with the occluding band (if any) painted over every frame in
    ``colour`` (RGB in [0, 1])."""
    video, _ = draw_scene(scene, grayscale=grayscale)
    if band is not None:
        c = colour if not grayscale else np.array([colour @ np.array([0.299, 0.587, 0.114])])
        video[:, :, :, band[0] : band[1]] = np.round(c * 255).astype(np.uint8)[None, :, None, None]
    return video


class Heldout2Dataset(HeldoutDataset):
    """``synthetic:heldout2:{collide,occlude,follow}``: ``n`` labelled clips, deterministic by (seed, split, index).

    Items: ``video`` uint8 (T, C, H, W), ``label`` int64, ``index``. Probe tasks only: there is no unlabelled set.
    The constructor is ``HeldoutDataset``'s (size, clip_len, grayscale, seed, split, task, pan_prob, pan_speed).
    """

    stream = "heldout2"
    min_clip_len = MIN_CLIP_LEN
    min_side = MIN_SIDE
    version = 2  # 2: collide on grazing lines, met anywhere in the frame's middle (before any trained model read it)
    task_classes = TASK_CLASSES
    check_task = staticmethod(check_task)

    def generate(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        pan = random_pan(rng, self.size, self.pan_prob, self.pan_speed)
        scene, label, band = sample_heldout2_scene(rng, self.task, size=self.size, T=self.clip_len, pan=pan)
        colour = rng.uniform(0.25, 0.6) * np.ones(3) + rng.uniform(-0.08, 0.08, size=3)  # a dull, even pillar
        return {"video": draw_heldout2(scene, band, colour, grayscale=self.grayscale), "label": label}
