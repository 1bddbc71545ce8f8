"""Video-level evaluation: N clips spread over each video, their features averaged per video.

One centre clip per video (the labelled folder's default) judges a long video by a few seconds of its middle.
``spread_starts`` places N clips at the middles of N equal segments of the possible start frames, so N = 1 is
exactly the centre clip, and ``pool_by_video`` averages each video's clip features into one row.
"""

from __future__ import annotations

import numpy as np


def spread_starts(n_frames: int, span: int, n: int) -> list[int]:
    """Start frames of ``n`` clips of ``span`` source frames spread over a video of ``n_frames`` frames.

    The ``n_frames - span + 1`` possible starts are cut into ``n`` equal segments and the clip at the middle of
    each is taken: ``start_i = ((2 i + 1) * (n_frames - span)) // (2 n)``. ``n = 1`` gives
    ``(n_frames - span) // 2``, the centre clip. A video shorter than a clip gives ``n`` clips starting at 0 (the
    folder pads them by repeating the last frame); starts repeat when the video has fewer than ``n`` of them, so
    every video always contributes exactly ``n`` clips.
    """
    if n < 1:
        raise ValueError(f"clips per video must be >= 1, got {n}")
    room = max(n_frames - span, 0)
    return [((2 * i + 1) * room) // (2 * n) for i in range(n)]


def spread_clips(ds, n: int) -> None:
    """Re-index a video-folder dataset (``VideoFolder`` or a ``MotionDataset`` around one) to ``n`` spread clips
    per video, in video order: ``ds.clips = [(v, start), ...]`` with ``n`` entries per video.

    The folder's ``clip_frames`` (and the motion wrapper's per-video masks) read whatever ``clips`` says, so
    nothing else changes. Raises ValueError for datasets that are not video folders (synthetic sets are one clip
    per video by construction).
    """
    base = getattr(ds, "ds", None) if type(ds).__name__ == "MotionDataset" else ds
    if not all(hasattr(base, a) for a in ("clips", "num_frames", "span", "videos")):
        raise ValueError("--clips-per-video applies to folders of videos; synthetic sets have one clip per video")
    base.clips = [(v, s) for v in range(len(base.videos)) for s in spread_starts(base.num_frames(v), base.span, n)]


def video_ids(ds) -> np.ndarray:
    """(N_clips,) the video index of every clip of ``ds`` in item order; ``arange`` when each item is a video."""
    clips = getattr(ds, "clips", None)
    if clips is None:
        return np.arange(len(ds))
    return np.asarray([v for v, _ in clips], dtype=np.int64)


def pool_by_video(
    feats: dict[str, np.ndarray], labels: np.ndarray, vids: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Average clip features per video.

    Args:
        feats: {layer key: (N_clips, F_l)}.
        labels: (N_clips,) the label of each clip (all clips of a video share it).
        vids: (N_clips,) the video index of each clip.
    Returns:
        ({layer key: (V, F_l)} float32, labels (V,), the video ids (V,) in ascending order).
    Raises:
        ValueError when the clips of one video disagree on the label.
    """
    vids = np.asarray(vids)
    uniq, inv = np.unique(vids, return_inverse=True)
    counts = np.bincount(inv, minlength=len(uniq)).astype(np.float64)  # (V,)
    pooled = {}
    for k, x in feats.items():
        sums = np.zeros((len(uniq), x.shape[1]), dtype=np.float64)
        np.add.at(sums, inv, x)  # (V, F): sum of each video's clips
        pooled[k] = (sums / counts[:, None]).astype(np.float32)
    first = np.zeros(len(uniq), dtype=np.int64)
    first[inv[::-1]] = np.arange(len(vids))[::-1]  # index of each video's first clip
    y = np.asarray(labels)[first]
    if np.any(np.asarray(labels) != y[inv]):
        raise ValueError("clips of one video carry different labels")
    return pooled, y, uniq
