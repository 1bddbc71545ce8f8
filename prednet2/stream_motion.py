"""The motion mask of each new frame of a stream (the data pipeline's flow and mask code, one frame at a time)."""

from __future__ import annotations

import numpy as np


class StreamMotion:
    """Motion mask of each new frame from the flow to the previous one (``datasets.flow`` + ``datasets.masks``).

    Same convention as the data pipeline: the mask of frame t comes from the backward flow t -> t-1; the first
    frame has no predecessor and gets an empty mask.
    """

    def __init__(self, motion_cfg):
        from prednet2.datasets.flow import make_flow

        self.cfg = motion_cfg
        self.flow_fn = make_flow(motion_cfg.backend, raft_weights=motion_cfg.raft_weights)
        self.prev: np.ndarray | None = None

    def reset(self) -> None:
        """The next frame starts a new video: it gets an empty mask (no flow across a cut)."""
        self.prev = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (H, W, C) -> float32 (H, W) in {0, 1}."""
        from prednet2.datasets.flow import compute_flow
        from prednet2.datasets.masks import motion_masks

        h, w = frame.shape[:2]
        if self.prev is None:
            self.prev = frame
            return np.zeros((h, w), np.float32)
        flow = compute_flow(np.stack([self.prev, frame]), flow_fn=self.flow_fn)[1:]  # (1, H, W, 2): t -> t-1
        self.prev = frame
        m = motion_masks(
            flow, camera=self.cfg.camera, static_floor=self.cfg.static_floor, min_component=self.cfg.min_component
        )
        return m[0]
