"""Drawing a synthetic scene: the ``Scene`` record, six shapes of equal area, the cluttered panning background.

Shared by ``synthetic:shapes``, ``synthetic:trajectories`` and the anomaly clips; the motion that fills a
``Scene``'s positions lives with each dataset. Geometry: positions are (x, y) in pixels, x to the right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "ring", "star")
BG_MAX = 0.42  # background luminance stays below this ...
FG_MIN_LUMA = 0.55  # ... and objects above this, so they stay visible in grayscale


@dataclass
class Scene:
    """Everything needed to draw a clip. Object 0 is the labelled one; the others are distractors.

    positions: float (N, T, 2) centre (x, y) per frame; shape_seq: int (N, T) shape id per frame (constant unless an
    anomaly changes it); radii: float (N,); angles: float (N,) rotation in radians; colours: float (N, 3) in [0, 1];
    background: float32 (T, H, W, 3);
    moving: bool (N,) whether each object moves. The motion that made ``positions`` (so a trajectory can be
    re-simulated from any frame): dirs0 (N, 2) initial unit directions, steps (N, T-1) step lengths, lo/hi (N, 2)
    the box each centre bounces in. Non-rigid motion (``deform_sequences``), when given: angle_seq float (N, T) the
    rotation per frame (replaces ``angles``) and stretch_seq float (N, T) an area-preserving stretch per frame along
    the object's own x axis (1 = none). scale_seq float (N, T), when given: each object's radius per frame as a
    multiple of ``radii`` (an object that grows or shrinks: ``synthetic:heldout:loom``).
    """

    positions: np.ndarray
    shape_seq: np.ndarray
    radii: np.ndarray
    angles: np.ndarray
    colours: np.ndarray
    background: np.ndarray
    moving: np.ndarray
    dirs0: np.ndarray
    steps: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    angle_seq: np.ndarray | None = None
    stretch_seq: np.ndarray | None = None
    scale_seq: np.ndarray | None = None


# Non-rigid motion at amount 1 (data.synthetic_deform): each object spins at up to this many radians per frame
# and stretches by up to this fraction (x by 1 + s, y by 1 / (1 + s)) with a period of 4-10 frames.
MAX_SPIN = 0.3
MAX_STRETCH = 0.3


def deform_sequences(rng: np.random.Generator, N: int, T: int, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame rotation offsets and stretch factors (both (N, T)) of ``N`` objects deforming by ``amount`` in
    [0, 1]: a constant spin of U(-1, 1) * amount * MAX_SPIN rad/frame and a sinusoidal, area-preserving stretch of
    amplitude U(0.5, 1) * amount * MAX_STRETCH, random period and phase. Draws from ``rng`` only when called."""
    t = np.arange(T)[None, :]
    spin = rng.uniform(-1.0, 1.0, size=N) * amount * MAX_SPIN
    amp = rng.uniform(0.5, 1.0, size=N) * amount * MAX_STRETCH
    period = rng.uniform(4.0, 10.0, size=N)
    phase = rng.uniform(0.0, 2 * np.pi, size=N)
    offsets = spin[:, None] * t
    stretch = 1.0 + amp[:, None] * np.sin(2 * np.pi * t / period[:, None] + phase[:, None])
    return offsets, stretch


def deform_scene(rng: np.random.Generator, scene: Scene, amount: float) -> None:
    """Make ``scene``'s objects non-rigid by ``amount`` (sets ``angle_seq`` and ``stretch_seq``); 0 draws nothing
    and leaves the scene rigid. Called after the rest of the clip is drawn, so the clip is otherwise unchanged."""
    if amount > 0:
        N, T = scene.shape_seq.shape
        offsets, scene.stretch_seq = deform_sequences(rng, N, T, amount)
        scene.angle_seq = scene.angles[:, None] + offsets


# ---- drawing ---------------------------------------------------------------------------------------------------
def shape_mask(
    shape: int, dx: np.ndarray, dy: np.ndarray, r: float, angle: float = 0.0, stretch: float = 1.0
) -> np.ndarray:
    """Boolean mask of shape ``shape`` (index into SHAPES) of radius ``r``, rotated by ``angle`` radians and
    stretched by ``stretch`` along its own x axis (and by ``1 / stretch`` along y), at offsets ``dx, dy`` from its
    centre.

    The areas are similar (2.2-3.1 r^2) so size alone does not tell the shapes apart, and with random rotations
    neither do edge orientations (no two shapes are rotations of each other).
    """
    if not 0 <= shape < len(SHAPES):
        raise ValueError(f"unknown shape id {shape}; ids are 0..{len(SHAPES) - 1} ({', '.join(SHAPES)})")
    name = SHAPES[shape]
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = c * dx + s * dy, c * dy - s * dx  # coordinates in the shape's own frame
    if stretch != 1.0:
        dx, dy = dx / stretch, dy * stretch
    if name == "circle":  # 3.14 r^2
        return dx * dx + dy * dy <= r * r
    if name == "square":  # 2.89 r^2
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
    if name == "triangle":  # 2.50 r^2; equilateral, apex up, base at dy = 0.78 r
        return (dy <= 0.78 * r) & (np.abs(dx) <= (dy + 1.3 * r) * 0.577)
    if name == "cross":  # 2.56 r^2
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= 0.4 * r) & (ay <= r)) | ((ay <= 0.4 * r) & (ax <= r))
    if name == "ring":  # 2.19 r^2
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    # star, 2.16 r^2: five rounded points
    R = 1.25 * r * (0.6 + 0.4 * np.cos(5 * np.arctan2(dy, dx)))
    return dx * dx + dy * dy <= R * R


def object_masks(scene: Scene, size: tuple[int, int]) -> np.ndarray:
    """bool (N, T, H, W): where each object covers the frame (before occlusion)."""
    H, W = size
    N, T = scene.shape_seq.shape
    ys = np.arange(H, dtype=np.float32)[None, :, None]  # (1, H, 1)
    xs = np.arange(W, dtype=np.float32)[None, None, :]  # (1, 1, W)
    out = np.zeros((N, T, H, W), dtype=bool)
    for i in range(N):
        dx = xs - scene.positions[i, :, 0, None, None].astype(np.float32)  # (T, 1, W)
        dy = ys - scene.positions[i, :, 1, None, None].astype(np.float32)  # (T, H, 1)
        if scene.angle_seq is not None or scene.scale_seq is not None:  # non-rigid or resized: a pose per frame
            for t in range(T):
                angle = scene.angles[i] if scene.angle_seq is None else scene.angle_seq[i, t]
                stretch = 1.0 if scene.stretch_seq is None else scene.stretch_seq[i, t]
                scale = 1.0 if scene.scale_seq is None else scene.scale_seq[i, t]
                out[i, t] = shape_mask(
                    int(scene.shape_seq[i, t]),
                    dx[t],
                    dy[t],
                    float(scene.radii[i] * scale),
                    float(angle),
                    float(stretch),
                )
            continue
        for s in np.unique(scene.shape_seq[i]):
            ts = np.nonzero(scene.shape_seq[i] == s)[0]
            out[i, ts] = shape_mask(int(s), dx[ts], dy[ts], float(scene.radii[i]), float(scene.angles[i]))
    return out


def draw_scene(scene: Scene, *, grayscale: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Paint the objects over the background, distractors first and the labelled object (0) last.

    Returns video uint8 (T, C, H, W) with C = 1 or 3, and masks bool (N, T, H, W) of each object's *visible*
    pixels (object 0 is never occluded, so its mask is its full silhouette).
    """
    T, H, W, _ = scene.background.shape
    masks = object_masks(scene, (H, W))
    frame = scene.background.copy()  # (T, H, W, 3)
    N = masks.shape[0]
    visible = masks.copy()
    order = list(range(1, N)) + [0]  # painter's order: labelled object on top
    for k, i in enumerate(order):
        frame[masks[i]] = scene.colours[i]
        for j in order[:k]:  # what object i covers is no longer visible of those painted before it
            visible[j] &= ~masks[i]
    if grayscale:
        frame = frame @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (T, H, W)
        frame = frame[..., None]
    video = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)  # (T, C, H, W)
    return np.ascontiguousarray(video), visible


def bright_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """float (n, 3) random colours with luminance >= FG_MIN_LUMA (mixed toward white when too dark)."""
    c = rng.random((n, 3))
    luma = c @ np.array([0.299, 0.587, 0.114])
    a = np.clip((FG_MIN_LUMA + 0.05 - luma) / (1.0 - luma), 0.0, 1.0)[:, None]
    return (c + a * (1.0 - c)).astype(np.float32)


def make_background(
    rng: np.random.Generator,
    size: tuple[int, int],
    T: int,
    *,
    pan: tuple[float, float] = (0.0, 0.0),
    clutter: bool = True,
) -> np.ndarray:
    """float32 (T, H, W, 3) in [0, BG_MAX]: colour noise + grain + dim static shapes, moving by ``pan`` px/frame.

    The texture is drawn once on a canvas larger than the frame, and each frame is a window into it; the window
    moves by -pan per frame so the content appears to move by +pan (x right, y down). Pan offsets are rounded to
    whole pixels per frame.
    """
    H, W = size
    px, py = float(pan[0]), float(pan[1])
    P = int(np.ceil(max(abs(px), abs(py)) * max(T - 1, 0))) + 1  # margin so the window never leaves the canvas
    CH, CW = H + 2 * P, W + 2 * P
    if clutter:
        low = rng.random((6, 6, 3)).astype(np.float32)
        canvas = cv2.resize(low, (CW, CH), interpolation=cv2.INTER_CUBIC)  # (CH, CW, 3)
        canvas = 0.05 + 0.22 * np.clip(canvas, 0, 1) + 0.07 * rng.random((CH, CW, 1), dtype=np.float32)
        n_clutter = int(rng.integers(3, 7))
        ys = np.arange(CH, dtype=np.float32)[:, None]
        xs = np.arange(CW, dtype=np.float32)[None, :]
        s = min(H, W)
        for _ in range(n_clutter):  # dim static shapes: a single frame shows shape-like things that never move
            cx, cy = rng.uniform(0, CW), rng.uniform(0, CH)
            r = rng.uniform(0.04, 0.08) * s
            m = shape_mask(int(rng.integers(len(SHAPES))), xs - cx, ys - cy, r, rng.uniform(0, 2 * np.pi))
            canvas[m] = rng.uniform(0.15, BG_MAX, size=3).astype(np.float32)
    else:
        canvas = np.full((CH, CW, 3), 0.1, dtype=np.float32)
    canvas = np.minimum(canvas, BG_MAX)
    t = np.arange(T)
    ox = P - np.round(px * t).astype(int)
    oy = P - np.round(py * t).astype(int)
    return np.stack([canvas[oy[k] : oy[k] + H, ox[k] : ox[k] + W] for k in range(T)])  # (T, H, W, 3)
