"""Optical flow between consecutive frames: OpenCV DIS / Farneback (CPU, no weights) and torchvision RAFT.

Alignment convention (so that motion masks line up with the clip frames):

    flow[t] is defined on frame t's pixel grid.
    - t >= 1: backward flow, frame t -> frame t-1 (where each pixel of frame t was one frame earlier);
    - t == 0: forward flow, frame 0 -> frame 1 (there is no earlier frame).

Masks use only the magnitude of the flow after the dominant motion is removed, so the sign flip at t == 0 does
not matter, and a moving object is marked where it *is* in frame t (a forward flow would mark where it was).
A one-frame input gets zero flow.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import DataError

BACKENDS = ("dis", "farneback", "raft")


class FlowError(DataError):
    """A flow backend cannot run as configured (unknown name, missing RAFT weights, bad frames)."""


def to_gray(frames: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) RGB or (N, H, W, 1) / (N, H, W) grey -> uint8 (N, H, W) grey."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise FlowError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        return np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise FlowError(f"frames must be (N, H, W, 3) or (N, H, W, 1) channels-last, got shape {frames.shape}")
    if frames.shape[-1] == 1:
        return np.ascontiguousarray(frames[..., 0])
    # Rec.601 luma, same weights as cv2.COLOR_RGB2GRAY, vectorised over N.
    g = frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114  # (N, H, W)
    return np.clip(g + 0.5, 0, 255).astype(np.uint8)


class _PairFlow:
    """Base for backends that compute one frame pair at a time (OpenCV)."""

    def pair(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """uint8 (H, W) x2 -> float32 (H, W, 2): for each pixel of src, its displacement (dx, dy) into dst."""
        raise NotImplementedError

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        n, h, w = gray.shape
        out = np.zeros((n, h, w, 2), np.float32)
        if n < 2:
            return out
        out[0] = self.pair(gray[0], gray[1])
        for t in range(1, n):
            out[t] = self.pair(gray[t], gray[t - 1])
        return out


class DISFlow(_PairFlow):
    """OpenCV Dense Inverse Search (Kroeger et al. 2016). ``preset``: "ultrafast" | "fast" | "medium"."""

    PRESETS = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }

    def __init__(self, preset: str = "fast"):
        if preset not in self.PRESETS:
            raise FlowError(f"DIS preset {preset!r}: choose one of {sorted(self.PRESETS)}")
        self.dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])

    def pair(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return self.dis.calc(src, dst, None)


class FarnebackFlow(_PairFlow):
    """OpenCV Farneback polynomial-expansion flow (Farneback 2003)."""

    def __init__(self, *, winsize: int = 9, levels: int = 3, iterations: int = 3):
        self.kw = dict(pyr_scale=0.5, levels=levels, winsize=winsize, iterations=iterations, poly_n=5, poly_sigma=1.1)

    def pair(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(src, dst, None, flags=0, **self.kw)


RAFT_HELP = (
    "motion.backend=raft needs torchvision RAFT weights, and this machine cannot download them. On a machine with "
    'network access run `python -c "import torch, torchvision; torch.save(torchvision.models.optical_flow.'
    "Raft_Small_Weights.DEFAULT.get_state_dict(), 'raft_small.pth')\"` (or Raft_Large_Weights / raft_large), copy "
    "the file here and pass --set motion.raft_weights=/path/to/raft_small.pth; or use motion.backend=dis"
)


class RAFTFlow:
    """torchvision RAFT (Teed & Deng 2020) from a local state-dict file; small or large is read off the keys."""

    def __init__(self, weights: str, device: str = "cpu", iters: int = 12):
        import torch
        from torchvision.models.optical_flow import raft_large, raft_small

        if not weights:
            raise FlowError(RAFT_HELP)
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FlowError(f"motion.raft_weights: file not found: {path}. {RAFT_HELP}")
        with open(path, "rb") as f:
            head = f.read(2)
        if head != b"PK" and head[:1] != b"\x80":  # torch's message would advise weights_only=False: not the fix
            raise FlowError(
                f"motion.raft_weights: {path} is not a torch file (torch.save writes a zip archive; this file starts "
                f"{head!r}); give the .pth the command in the docs saves (docs/motion.md)"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise FlowError(f"motion.raft_weights: cannot read {path} as a torch state dict ({first})") from None
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        errors = []
        for build in (raft_large, raft_small):
            model = build(weights=None, progress=False)
            try:
                model.load_state_dict(state, strict=True)
                break
            except RuntimeError as e:
                errors.append(str(e).splitlines()[0])
        else:
            raise FlowError(f"motion.raft_weights: {path} fits neither raft_large nor raft_small ({errors[0]})")
        self.model = model.eval().to(device)
        self.device = device
        self.iters = iters

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        n, h, w = gray.shape
        out = np.zeros((n, h, w, 2), np.float32)
        if n < 2:
            return out
        x = torch.from_numpy(gray).float().div(127.5).sub(1.0)  # (N, H, W) in [-1, 1], RAFT's input range
        x = x[:, None].expand(n, 3, h, w)  # (N, 3, H, W): RAFT is trained on RGB; grey replicated
        # RAFT needs sides divisible by 8 (and >= 128 works best); resize, then scale the vectors back.
        hh, ww = max(128, -(-h // 8) * 8), max(128, -(-w // 8) * 8)
        x = F.interpolate(x, size=(hh, ww), mode="bilinear", align_corners=False).contiguous()
        src = torch.cat([x[:1], x[1:]])  # (N, 3, hh, ww): frames 0, 1, ..., N-1
        dst = torch.cat([x[1:2], x[:-1]])  # (N, 3, hh, ww): frames 1, 0, ..., N-2 (convention in the module doc)
        with torch.inference_mode():
            flows = []
            for i in range(0, n, 8):
                a, b = src[i : i + 8].to(self.device), dst[i : i + 8].to(self.device)
                flows.append(self.model(a, b, num_flow_updates=self.iters)[-1].cpu())  # last refinement
            f = torch.cat(flows)  # (N, 2, hh, ww)
        f = F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)
        f[:, 0] *= w / ww
        f[:, 1] *= h / hh
        out[:] = f.permute(0, 2, 3, 1).numpy()
        return out


def make_flow(backend: str, *, raft_weights: str = "", device: str = "cpu"):
    """A callable ``gray uint8 (N, H, W) -> flow float32 (N, H, W, 2)`` for a backend name."""
    if backend == "dis":
        # "fast" beat "ultrafast" and "medium" on synthetic:shapes with distractors and pans (docs/results/motion.md).
        return DISFlow("fast")
    if backend == "farneback":
        return FarnebackFlow()
    if backend == "raft":
        return RAFTFlow(raft_weights, device=device)
    raise FlowError(f"motion.backend: unknown flow backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def compute_flow(
    frames: np.ndarray, *, backend: str = "dis", raft_weights: str = "", work_size: int = 0, flow_fn=None
) -> np.ndarray:
    """Dense optical flow of a frame sequence, aligned with the frames (see the module docstring).

    Args:
        frames: uint8 (N, H, W, 3) RGB, (N, H, W, 1) or (N, H, W) grey.
        backend: "dis" | "farneback" | "raft".
        raft_weights: path to a torchvision RAFT state dict (backend "raft" only).
        work_size: compute the flow with the shorter side upsampled to at least this many pixels (0: as given),
            then bring it back to (H, W) in pixels of the input. Tiny frames give the pyramid more room.
        flow_fn: a ready callable from ``make_flow`` (saves building a backend per call).

    Returns:
        float32 (N, H, W, 2): (dx, dy) in pixels of the input frames.
    """
    gray = to_gray(frames)
    n, h, w = gray.shape
    fn = flow_fn if flow_fn is not None else make_flow(backend, raft_weights=raft_weights)
    scale = work_size / min(h, w) if work_size and min(h, w) < work_size else 1.0
    if scale == 1.0:
        return fn(gray)
    hh, ww = round(h * scale), round(w * scale)
    big = np.stack([cv2.resize(g, (ww, hh), interpolation=cv2.INTER_LINEAR) for g in gray])  # (N, hh, ww)
    f = fn(big)  # (N, hh, ww, 2) in pixels of the big frames
    out = np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA) for x in f])  # (N, H, W, 2)
    out[..., 0] *= w / ww
    out[..., 1] *= h / hh
    return out.astype(np.float32, copy=False)
