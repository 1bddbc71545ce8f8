"""Optical flow (+ frames) -> motion masks: what moves against the dominant (camera) motion.

Per frame t (flow aligned with the frames as in flow.py):
1. Remove the dominant motion: the median flow vector (camera pan), an affine fit on a grid of flow vectors
   (``cv2.estimateAffinePartial2D`` with RANSAC: pan, zoom, roll), or nothing.
2. Candidates: residual magnitude > max(Otsu threshold of the residual magnitude, ``static_floor``). The floor keeps
   a static scene's flow noise from being split in two by Otsu, so a static clip gives an empty mask, not noise.
3. Photometric check (when the frames are given). Classical flow at 64x64 is smooth: it smears an object's motion
   several pixels into a weakly textured background, and flow alone gave IoU ~0.5 with the true object on
   synthetic:shapes (docs/results/motion.md). Each candidate component gets one translation, found by block
   matching the component against the neighbouring frames; a candidate pixel is dropped when the camera motion
   explains its colour clearly better (by ``photo_margin``) than the component's motion does, towards frame
   t-1 or t+1. Background pixels with any texture fail that test, object pixels pass it, and pixels that neither
   model explains (occlusions) or both do (a uniform object's interior) keep the flow's verdict.
4. Morphological opening (drops speckle) then closing (fills pinholes), with kornia.
5. Drop connected components smaller than ``min_component`` x frame area (OpenCV connected components).

Masks are binary floats {0, 1} (stored as uint8), aligned with the frames.
"""

from __future__ import annotations

import cv2
import numba
import numpy as np
import torch

CAMERA_MODELS = ("median", "affine", "none")


# ---- dominant motion -------------------------------------------------------------------------------------------
def dominant_motion(flow: np.ndarray, camera: str, *, grid_step: int = 4) -> np.ndarray:
    """The camera's share of one frame's flow.

    Args:
        flow: float32 (H, W, 2).
        camera: "median" | "affine" | "none".
    Returns:
        float32 (H, W, 2) for "affine", (1, 1, 2) for "median"/"none" (broadcasts).
    """
    if camera == "none":
        return np.zeros((1, 1, 2), np.float32)
    if camera == "median":
        return np.median(flow.reshape(-1, 2), axis=0).astype(np.float32)[None, None]  # (1, 1, 2)
    if camera != "affine":
        raise ValueError(f"motion.camera: unknown camera model {camera!r}; choose one of {', '.join(CAMERA_MODELS)}")
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[grid_step // 2 : h : grid_step, grid_step // 2 : w : grid_step]
    src = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)  # (P, 2) as (x, y)
    dst = src + flow[ys.ravel(), xs.ravel()]  # (P, 2)
    A, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0, maxIters=200)
    if A is None:  # degenerate (too few points): fall back to the median
        return dominant_motion(flow, "median")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx = A[0, 0] * xx + A[0, 1] * yy + A[0, 2] - xx  # (H, W)
    my = A[1, 0] * xx + A[1, 1] * yy + A[1, 2] - yy
    return np.stack([mx, my], axis=-1).astype(np.float32)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (max between-class variance) of a float array, on a ``bins`` histogram over [0, max]."""
    v = values.ravel()
    hi = float(v.max()) if v.size else 0.0
    if hi <= 0:
        return 0.0
    hist, edges = np.histogram(v, bins=bins, range=(0.0, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)  # pixels at or below each bin
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[1:][np.argmax(between)])


# ---- photometric check -----------------------------------------------------------------------------------------
def _warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """img (H, W, C) sampled at p + flow(p): float32 (H, W, C); flow broadcastable to (H, W, 2)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = np.broadcast_to(flow, (h, w, 2))
    out = cv2.remap(img, xx + f[..., 0], yy + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def _abs_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute colour difference: (H, W, C) x2 -> (H, W)."""
    return np.abs(a - b).mean(-1)


@numba.njit(cache=True, nogil=True)
def _match_costs(src, dst, labels, init, radius):  # pragma: no cover - compiled
    """costs[i, a, b] = sum over component i's pixels p of |src(p) - dst(p + init[i] + (b - r, a - r))| (clamped)."""
    h, w, c = src.shape
    k = init.shape[0]
    side = 2 * radius + 1
    costs = np.zeros((k, side, side))
    for y in range(h):
        for x in range(w):
            i = labels[y, x]
            if i == 0:
                continue
            for a in range(side):
                y2 = min(max(y + init[i, 1] + a - radius, 0), h - 1)
                for b in range(side):
                    x2 = min(max(x + init[i, 0] + b - radius, 0), w - 1)
                    e = 0.0
                    for ch in range(c):
                        e += abs(src[y, x, ch] - dst[y2, x2, ch])
                    costs[i, a, b] += e
    return costs


def component_shifts(
    src: np.ndarray, dst: np.ndarray, labels: np.ndarray, init: np.ndarray, radius: int = 2
) -> np.ndarray:
    """Block matching: one integer translation per labelled component, searched around an initial guess.

    Args:
        src, dst: float32 (H, W, C) frames; labels: int32 (H, W), 0 = background, 1..k-1 components.
        init: float (k, 2) starting (dx, dy) per component (from the flow); radius: search half-side in pixels.
    Returns:
        float32 (k, 2): for component i, the (dx, dy) minimising the summed |src(p) - dst(p + d)| over its pixels.
    """
    start = np.round(init).astype(np.int64)  # (k, 2)
    costs = _match_costs(src, dst, labels.astype(np.int32), start, radius)  # (k, side, side)
    k, side, _ = costs.shape
    best = costs.reshape(k, -1).argmin(1)  # (k,)
    dy, dx = np.divmod(best, side)
    return (start + np.stack([dx, dy], axis=1) - radius).astype(np.float32)


def photometric_reject(
    frames: np.ndarray,
    flow_t: np.ndarray,
    t: int,
    cand: np.ndarray,
    camera_flow: np.ndarray,
    *,
    margin: float,
    min_pixels: int = 1,
) -> np.ndarray:
    """Candidate pixels of frame t whose colour the camera motion explains clearly better than their component's.

    Args:
        frames: float32 (N, H, W, C) in [0, 1]; flow_t: float32 (H, W, 2), flow[t] (pointing to t-1, or to t+1
            when t == 0: see flow.py); cand: bool (H, W); camera_flow: (H, W, 2) or (1, 1, 2), its dominant part.
        min_pixels: components smaller than this are dropped outright (they would not survive cleanup anyway).
    Returns:
        bool (H, W): pixels to drop from the mask.
    """
    n = len(frames)
    k, labels, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    tiny = stats[:, cv2.CC_STAT_AREA] < min_pixels  # (k,)
    tiny[0] = False
    drop = tiny[labels]
    if tiny.any():  # relabel so that only the kept components are matched
        keep = np.flatnonzero(~tiny)  # includes 0
        remap = np.zeros(k, np.int32)
        remap[keep] = np.arange(len(keep))
        labels, k = remap[labels], len(keep)
    if k <= 1:
        return drop
    # Each component's mean flow seeds its block-matching search (bincount: one pass, not one per component).
    lab = labels.ravel()
    count = np.maximum(np.bincount(lab, minlength=k), 1)
    init = np.stack([np.bincount(lab, weights=flow_t[..., c].ravel(), minlength=k) / count for c in (0, 1)], 1)
    towards = t - 1 if t >= 1 else t + 1  # where flow[t] points
    for nb in (t - 1, t + 1):
        if not 0 <= nb < n:
            continue
        # Towards the other neighbour the motion flips sign (constant velocity over two frames).
        sign = 1.0 if nb == towards else -1.0
        cam = sign * camera_flow
        shifts = component_shifts(frames[t], frames[nb], labels, sign * init)  # (k, 2)
        obj = shifts[labels]  # (H, W, 2): each candidate pixel's component translation
        e_cam = _abs_err(frames[t], _warp(frames[nb], cam))
        e_obj = _abs_err(frames[t], _warp(frames[nb], obj))
        drop |= cand & (e_cam + margin < e_obj)
    return drop


# ---- cleanup ---------------------------------------------------------------------------------------------------
def _clean(masks: np.ndarray, kernel_size: int) -> np.ndarray:
    """bool (N, H, W) -> bool (N, H, W): kornia opening then closing with a square kernel."""
    if kernel_size <= 1:
        return masks
    from kornia.morphology import closing, opening

    x = torch.from_numpy(masks.astype(np.float32))[:, None]  # (N, 1, H, W)
    k = torch.ones(kernel_size, kernel_size)
    # kornia's "geodesic" border means the outside never wins, so objects touching the frame edge survive.
    x = closing(opening(x, k), k)
    return x[:, 0].numpy() > 0.5


def drop_small_components(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """bool (H, W) -> bool (H, W) without the 8-connected components of fewer than ``min_pixels`` pixels."""
    if min_pixels <= 1 or not mask.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels  # (n,)
    keep[0] = False  # label 0 is the background
    return keep[labels]


# ---- the pipeline ----------------------------------------------------------------------------------------------
def motion_masks(
    flow: np.ndarray,
    frames: np.ndarray | None = None,
    *,
    camera: str = "median",
    static_floor: float = 0.5,
    min_component: float = 0.002,
    kernel_size: int = 3,
    photo_margin: float = 0.02,
) -> np.ndarray:
    """Motion masks from flow (and, when given, the frames for the photometric check).

    Args:
        flow: float32 (N, H, W, 2) in pixels, aligned with the frames (``flow.compute_flow``).
        frames: uint8 (N, H, W, C) channels-last, the frames the flow came from; None skips step 3.
        camera: dominant-motion model removed first: "median" | "affine" | "none".
        static_floor: residual magnitude (pixels) below which nothing counts as moving.
        min_component: drop connected components smaller than this fraction of H*W.
        kernel_size: side of the square opening/closing kernel (<= 1: no morphology).
        photo_margin: colour difference (in [0, 1] units) by which the camera must explain a pixel better than
            its component's motion for the pixel to be dropped; <= 0 skips the photometric check.

    Returns:
        float32 (N, H, W) with values in {0, 1}.
    """
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (N, H, W, 2), got shape {flow.shape}")
    n, h, w, _ = flow.shape
    if frames is not None:
        if frames.shape[:3] != (n, h, w) or frames.ndim != 4:
            raise ValueError(f"frames must be (N, H, W, C) = ({n}, {h}, {w}, C) to match the flow, got {frames.shape}")
        fr = frames.astype(np.float32) / 255.0  # (N, H, W, C)
    min_pixels = int(np.ceil(min_component * h * w))
    raw = np.zeros((n, h, w), bool)
    for t in range(n):
        cam = dominant_motion(flow[t], camera)
        mag = np.sqrt(((flow[t] - cam) ** 2).sum(-1))  # (H, W) residual magnitude
        if mag.max() <= static_floor:  # static frame: skip Otsu, which would split pure noise in two
            continue
        cand = mag > max(otsu_threshold(mag), static_floor)
        if frames is not None and photo_margin > 0 and cand.any():
            cand &= ~photometric_reject(fr, flow[t], t, cand, cam, margin=photo_margin, min_pixels=min_pixels)
        raw[t] = cand
    clean = _clean(raw, kernel_size) if raw.any() else raw
    out = np.stack([drop_small_components(m, min_pixels) for m in clean])  # (N, H, W)
    return out.astype(np.float32)


# ---- motion vectors: the flow target (model.flow_weight) -------------------------------------------------------
FLOW_STEPS_PER_PX = 8  # the flow target is stored as int8 in 1/8 px: +-15.9 px per frame, 0.06 px resolution


def motion_vectors(flow: np.ndarray, camera: str = "median") -> np.ndarray:
    """Where each pixel of frame t moved from frame t-1, with the camera's share removed: the signed motion that a
    mask leaves out (a mask says *that* something moves, this says *which way*).

    Args:
        flow: float32 (N, H, W, 2) aligned with the frames (``flow.compute_flow``: backward for t >= 1, forward at
            t = 0); camera: as ``motion.camera``.
    Returns:
        float32 (N, 2, H, W), (dx, dy) in pixels per frame, pointing along the motion at every t (the backward flow
        of t >= 1 is negated; the forward flow of t = 0 already points that way).
    """
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (N, H, W, 2), got shape {flow.shape}")
    out = np.empty((flow.shape[0], 2, *flow.shape[1:3]), np.float32)
    for t in range(flow.shape[0]):
        v = flow[t] - dominant_motion(flow[t], camera)  # (H, W, 2)
        out[t] = (v if t == 0 else -v).transpose(2, 0, 1)
    return out


def quantize_vectors(v: np.ndarray) -> np.ndarray:
    """float32 motion vectors (px per frame) -> int8 in 1/FLOW_STEPS_PER_PX px, clipped to the int8 range."""
    return np.clip(np.rint(v * FLOW_STEPS_PER_PX), -127, 127).astype(np.int8)


def dequantize_vectors(q: np.ndarray) -> np.ndarray:
    """int8 from ``quantize_vectors`` -> float32 px per frame."""
    return np.asarray(q, dtype=np.float32) / FLOW_STEPS_PER_PX
