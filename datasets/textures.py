"""``synthetic:textures``: textured objects over a textured, moving background, for training only.

The other synthetic sets paint flat-coloured objects over a dim background: a moving object changes pixels only
at its edges. Real video is textured everywhere, so motion shows inside objects and across the whole frame, and a
stack trained on 11 real clips read the moving shapes' direction better than one trained on the shapes themselves
(docs/results/dynamics_rounds32.md, rounds 45-46). This set brings those statistics to built-in video:

- **Textures.** The background and every object carry their own 1/f ("pink") colour noise, the power spectrum
  of natural images, at a random contrast; an object's texture moves rigidly with it.
- **Camera.** In ``pan_prob`` of the clips the background translates at U(pan_speed) px/frame in a random
  direction (sub-pixel, bilinear), in a quarter of those also zooming slowly; objects keep their own motion.
- **Objects.** 1-4 of them, any of the six shapes at 0.08-0.25 of the frame side, each moving at U(speed) px/frame
  on a straight line, a gentle curve or with acceleration, a third of them also growing or shrinking (looming),
  bouncing off the walls. Sizes and speeds overlap widely: nothing is labelled.

Every clip is a pure function of (seed, split, index), as for every synthetic set (``datasets/synthetic.py``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .errors import DataError
from .scene import SHAPES, shape_mask
from .shapes import direction_vector, random_pan
from .synthetic import SyntheticVideoDataset, check_geometry
from .trajectories import bounce_path

MIN_CLIP_LEN, MIN_SIDE = 2, 16  # the shortest clip and the smallest frame side drawn

OBJECT_RADIUS = (0.08, 0.25)  # fraction of min(H, W)
OBJECT_SPEED = (0.5, 3.5)  # px/frame at 64 px
PAN_SPEED = (0.3, 2.5)


def pink_noise(rng: np.random.Generator, h: int, w: int, *, contrast: float, mean: np.ndarray) -> np.ndarray:
    """float32 (h, w, 3) in [0, 1]: colour 1/f noise (amplitude ~ 1/f) around ``mean`` with std ``contrast``."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = 1.0 / np.maximum(f, 1.0 / max(h, w))
    amp[0, 0] = 0.0
    spec = amp[..., None] * (rng.normal(size=(h, w // 2 + 1, 3)) + 1j * rng.normal(size=(h, w // 2 + 1, 3)))
    tex = np.fft.irfft2(spec, s=(h, w), axes=(0, 1))
    tex = (tex - tex.mean(axis=(0, 1))) / (tex.std(axis=(0, 1)) + 1e-8)
    # channels share most of their structure (natural colour), with some hue variation of their own
    tex = 0.75 * tex.mean(axis=2, keepdims=True) + 0.25 * tex
    return np.clip(mean[None, None, :] + contrast * tex, 0.0, 1.0).astype(np.float32)


def _warp(
    img: np.ndarray,
    centre_src: tuple[float, float],
    centre_dst: np.ndarray,
    scale: float,
    size: tuple[int, int],
    border: int = cv2.BORDER_REFLECT_101,
) -> np.ndarray:
    """Resample ``img`` so that its point ``centre_src`` lands at ``centre_dst`` (x, y) scaled by ``scale``."""
    H, W = size
    M = np.array(
        [
            [scale, 0.0, centre_dst[0] - scale * centre_src[0]],
            [0.0, scale, centre_dst[1] - scale * centre_src[1]],
        ],
        dtype=np.float64,
    )
    return cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)


def _paths(rng: np.random.Generator, T: int, p0: np.ndarray, speed: float, lo: np.ndarray, hi: np.ndarray):
    """(T, 2) centres: straight, curving (0.05-0.2 rad/frame) or accelerating, reflected off the box [lo, hi]."""
    heading = np.deg2rad(rng.uniform(0, 360))
    kind = rng.integers(3)
    turn = rng.uniform(0.05, 0.2) * rng.choice([-1.0, 1.0]) if kind == 1 else 0.0
    accel = rng.uniform(-0.08, 0.08) * speed if kind == 2 else 0.0
    headings = np.cumsum(np.r_[heading, np.full(T - 2, turn)])  # (T-1,) the heading of each step
    speeds = np.maximum(np.cumsum(np.r_[speed, np.full(T - 2, accel)]), 0.0)
    steps = direction_vector(np.rad2deg(headings)) * speeds[:, None]  # (T-1, 2)
    return bounce_path(p0, steps, lo, hi)


def render_textures_clip(
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = (64, 64),
    T: int = 10,
    n_objects: int = 2,
    pan: tuple[float, float] = (0.0, 0.0),
    zoom: float = 1.0,
    grayscale: bool = False,
) -> dict[str, Any]:
    """One clip: ``video`` uint8 (T, C, H, W), ``moving_mask`` bool (T, 1, H, W) of the objects' pixels and
    ``positions`` float (N, T, 2). ``zoom`` is the background's scale factor per frame (1.0: none)."""
    H, W = check_geometry("synthetic:textures", T, size, MIN_CLIP_LEN, MIN_SIDE)
    s = min(H, W)
    scale = s / 64.0
    # background: a canvas large enough for the pan, centred on the frame's centre at t = 0
    margin = int(np.ceil(max(abs(pan[0]), abs(pan[1])) * T)) + 4
    CH, CW = H + 2 * margin, W + 2 * margin
    canvas = pink_noise(rng, CH, CW, contrast=rng.uniform(0.08, 0.22), mean=rng.uniform(0.2, 0.7, size=3))
    c_src = ((CW - 1) / 2.0, (CH - 1) / 2.0)
    c_dst = np.array([(W - 1) / 2.0, (H - 1) / 2.0])
    frames = np.stack(
        [_warp(canvas, c_src, c_dst + np.array(pan) * t, zoom**t, (H, W)) for t in range(T)]
    )  # (T, H, W, 3)
    moving = np.zeros((T, H, W), dtype=bool)
    positions = np.empty((n_objects, T, 2))
    lo, hi = np.array([0.0, 0.0]), np.array([W - 1.0, H - 1.0])  # centres bounce off the frame's edges
    for i in range(n_objects):
        r = rng.uniform(*OBJECT_RADIUS) * s
        p0 = rng.uniform(lo + r / 2, hi - r / 2)
        positions[i] = _paths(rng, T, p0, rng.uniform(*OBJECT_SPEED) * scale, lo, hi)
        # the sprite: a texture and a soft-edged mask in the object's own frame, drawn once and moved rigidly
        S = int(np.ceil(2.6 * r)) + 3
        tex = pink_noise(rng, S, S, contrast=rng.uniform(0.1, 0.3), mean=rng.uniform(0.05, 0.95, size=3))
        cs = (S - 1) / 2.0
        grid = np.arange(S, dtype=np.float32) - cs
        m = shape_mask(int(rng.integers(len(SHAPES))), grid[None, :], grid[:, None], r, rng.uniform(0, 2 * np.pi))
        alpha = cv2.GaussianBlur(m.astype(np.float32), (3, 3), 0.6)
        grow = rng.uniform(0.97, 1.03) if rng.random() < 1 / 3 else 1.0
        for t in range(T):
            k = grow**t
            a = _warp(alpha, (cs, cs), positions[i, t], k, (H, W), border=cv2.BORDER_CONSTANT)
            img = _warp(tex, (cs, cs), positions[i, t], k, (H, W))
            frames[t] = frames[t] * (1.0 - a[..., None]) + img * a[..., None]
            moving[t] |= a > 0.5
    if grayscale:
        frames = (frames @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    video = np.clip(frames * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)
    return {"video": np.ascontiguousarray(video), "moving_mask": moving[:, None], "positions": positions}


class TexturesDataset(SyntheticVideoDataset):
    """``synthetic:textures``: ``n`` unlabelled clips of textured objects over a textured moving background.

    Items: ``video`` uint8 (T, C, H, W), ``label`` -1, ``index``. Deterministic by (seed, split, index).

    Args:
        n_objects: (lo, hi) inclusive range drawn per clip.
        pan_prob: chance that the background moves (camera pan, a quarter of those with a slow zoom).
    """

    stream = "textures"
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
        n_objects: tuple[int, int] = (1, 4),
        pan_prob: float = 0.6,
    ):
        if task is not None:
            raise DataError("synthetic:textures is training data with no labels; probe a labelled task")
        super().__init__(n=n, seed=seed, split=split, size=size, clip_len=clip_len, grayscale=grayscale)
        self.n_objects = n_objects
        self.pan_prob = float(pan_prob)

    def generate(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        pan = random_pan(rng, self.size, self.pan_prob, PAN_SPEED)
        zoom = rng.uniform(0.985, 1.015) if pan != (0.0, 0.0) and rng.random() < 0.25 else 1.0
        clip = render_textures_clip(
            rng,
            size=self.size,
            T=self.clip_len,
            n_objects=int(rng.integers(self.n_objects[0], self.n_objects[1] + 1)),
            pan=pan,
            zoom=zoom,
            grayscale=self.grayscale,
        )
        return {"video": clip["video"], "label": -1}
