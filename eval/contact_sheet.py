"""Contact sheets: a few frames of each of several videos, one row per video, as a PNG.

``eval.search`` draws the query and its neighbours, ``eval.cluster`` the members of each cluster. Frames are read
the way ``eval.embed`` read them (the emb.npz ``meta`` keeps the data options): a video file through the decode
cache at the embedding's frame size, a synthetic clip by regenerating it from its spec, split, seed and index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _spread(n_total: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(0, max(n_total - 1, 0), n).round().astype(int))


def video_frames(path: str, meta: dict, n: int = 4) -> np.ndarray:
    """``n`` frames spread over one embedded video: uint8 (n', H, W, 3) with n' <= n (fewer for short videos).

    Args:
        path: an ``eval.embed`` path: a video file, or ``synthetic:...:TASK/SPLIT/INDEX``.
        meta: the emb.npz ``meta`` (``data_options``, ``data_seed``).
    """
    from prednet2.config import DataConfig

    opts = dict(meta.get("data_options") or {})
    opts["size"] = tuple(opts.get("size", (64, 64)))
    cfg = DataConfig(**opts)
    if path.startswith("synthetic:"):
        from prednet2.datasets import build_dataset

        spec, split, index = path.rsplit("/", 2)
        ds = build_dataset(spec, cfg=cfg, split=split, seed=int(meta.get("data_seed", 0)), labelled=True)
        video = ds[int(index)]["video"].numpy().transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    else:
        from prednet2.datasets.folder import VideoFolder

        folder = VideoFolder(path, cfg, clip_len=1, pad_short=True, progress=False)
        video = np.asarray(folder.frames(0))  # (N, H, W, C)
    frames = video[_spread(len(video), n)]
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def strip(frames: np.ndarray, n: int) -> np.ndarray:
    """(n', H, W, 3) -> (H, n * W + gaps, 3): frames side by side, padded with white to ``n`` slots."""
    h, w = frames.shape[1:3]
    gap = np.full((h, 2, 3), 255, np.uint8)
    slots = [frames[i] if i < len(frames) else np.full((h, w, 3), 255, np.uint8) for i in range(n)]
    return np.concatenate([x for s in slots for x in (s, gap)][:-1], axis=1)


def draw_sheet(rows: list[tuple[str, np.ndarray]], path: str | os.PathLike, title: str = "", n: int = 4) -> Path:
    """One PNG: per row, its caption on the left and ``n`` frames (uint8 (n', H, W, 3)) to the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(rows), 1, figsize=(7.5, 1.1 * len(rows) + 0.4), squeeze=False)
    for ax, (caption, frames) in zip(axes[:, 0], rows):
        ax.imshow(strip(frames, n))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(caption, rotation=0, ha="right", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=72, format="png")  # at the path given, with or without .png
    plt.close(fig)
    from PIL import Image

    with Image.open(path) as im:  # a 256-colour palette: a sheet of video frames drops from ~180 KB to ~60 KB
        img = im.convert("RGB").quantize(256)
    img.save(path, optimize=True)
    return path


def short_name(path: str, depth: int = 2) -> str:
    """The last ``depth`` components of a path (``class/video.mp4``), for captions and printed lists."""
    return "/".join(str(path).replace("\\", "/").split("/")[-depth:])
