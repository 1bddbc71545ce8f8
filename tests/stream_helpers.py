"""Shared by the stream and frame-source tests: a small moving-square video written with PyAV."""

from __future__ import annotations

import av
import numpy as np


def write_video(
    path, n: int, *, h: int = 48, w: int = 80, seed: int = 0, faststart: bool = False, rotation: int = 0
) -> np.ndarray:
    """A square moving right over noise, encoded with PyAV; returns the (n, h, w, 3) frames written. ``faststart``
    puts the mp4 index before the frame data; ``rotation`` writes a display matrix (degrees counter-clockwise)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, (n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        x = 4 + 2 * t
        frames[t, 10:26, x : x + 16] = 230
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if rotation:
            s.set_display_rotation(rotation)
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return frames
