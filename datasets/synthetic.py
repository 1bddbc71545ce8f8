"""The common machinery of the built-in synthetic video sets: per-item seeding and the Dataset base class.

Every item is generated on the fly from its own RNG, seeded by ``(generator, split, seed, index)``. No global RNG
is touched, so DataLoader workers, resumed runs and two processes all see the same clip for the same index, and
train, val and test never share a seed (the split is part of the seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError

SPLITS = {"train": 0, "val": 1, "test": 2}
# One stream id per generator, so synthetic:shapes and synthetic:anomaly clips with the same (seed, index) are
# unrelated.
STREAMS = {"shapes": 1, "moving_mnist": 2, "anomaly": 3, "trajectories": 4, "textures": 5, "heldout": 6, "heldout2": 7}


def check_split(split: str) -> int:
    if split not in SPLITS:
        raise DataError(f"split {split!r}: choose one of {', '.join(SPLITS)}")
    return SPLITS[split]


def check_geometry(name: str, clip_len: int, size, min_clip_len: int = 1, min_side: int = 1) -> tuple[int, int]:
    """(H, W) of ``size`` as ints, after checking that generator ``name`` can draw clips of this length and size."""
    if len(size) != 2:
        raise DataError(f"size {tuple(size)}: {name} needs (H, W)")
    H, W = int(size[0]), int(size[1])
    if clip_len < min_clip_len:
        raise DataError(f"clip_len must be >= {min_clip_len} for {name} (got {clip_len})")
    if min(H, W) < min_side:
        raise DataError(f"size {(H, W)}: {name} needs frames of at least {min_side}x{min_side}")
    return H, W


def item_rng(stream: str, split: str, seed: int, index: int) -> np.random.Generator:
    """The RNG of one item: a pure function of (generator, split, seed, index)."""
    if seed < 0 or index < 0:
        raise DataError(f"seed and index must be >= 0 (got seed={seed}, index={index})")
    return np.random.default_rng([STREAMS[stream], check_split(split), seed, index])


def to_item(d: dict[str, Any]) -> dict[str, Any]:
    """numpy arrays -> tensors (uint8/bool/int64/float32 kept), ints stay ints. Used by every synthetic set."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        else:
            out[k] = v
    return out


class SyntheticVideoDataset(Dataset):
    """Base class: ``n`` clips, each from ``item_rng(stream, split, seed, index)``.

    Subclasses set ``stream`` and ``classes`` and implement ``generate(rng, index) -> dict`` returning at least
    ``"video"`` uint8 (T, C, H, W) and ``"label"`` (int, -1 when unlabelled). The clip geometry (``size``,
    ``clip_len``, ``grayscale``) is held and checked here, against the subclass's ``min_clip_len`` and ``min_side``,
    so a set that cannot draw its clips fails when it is built, not later inside a DataLoader worker.
    """

    stream: str = ""
    # Bumped whenever a generator draws different clips for the same (seed, split, index): caches of features
    # computed from synthetic clips (eval.featureset) key on it, so a bump invalidates them.
    version: int = 1
    # The shortest clip and the smallest frame side (pixels) the generator can draw.
    min_clip_len: int = 1
    min_side: int = 1

    def __init__(
        self,
        *,
        n: int,
        seed: int = 0,
        split: str = "train",
        classes: list[str] | None = None,
        size: tuple[int, int] = (64, 64),
        clip_len: int = 10,
        grayscale: bool = False,
    ):
        check_split(split)
        if n < 1:
            raise DataError(f"a synthetic set needs at least 1 clip (got n={n})")
        self.n = int(n)
        self.seed = int(seed)
        self.split = split
        self.classes: list[str] = list(classes or [])
        name = f"synthetic:{self.stream}" if self.stream else type(self).__name__
        self.clip_len = int(clip_len)
        self.size = check_geometry(name, self.clip_len, size, self.min_clip_len, self.min_side)
        self.grayscale = bool(grayscale)
        # The same attributes as the video folders, so the training summary reads them without special cases.
        self.n_skipped = 0
        self.skipped: list = []
        self.truncated: list = []

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.n

    def generate(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        d = self.generate(item_rng(self.stream, self.split, self.seed, int(index)), int(index))
        d["label"] = torch.tensor(int(d.get("label", -1)), dtype=torch.int64)
        d["index"] = int(index)
        return to_item(d)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, split={self.split!r}, seed={self.seed}, classes={self.classes})"


class InterleavedDataset(Dataset):
    """Several unlabelled training sets in turn, part p taking ``weights[p]`` of every ``sum(weights)`` items.

    With equal weights item i is item ``(i // k) % len(part)`` of part ``i % k`` (k parts). The set is long enough
    for every part to be drawn once in full at its share, and the shorter parts repeat (a folder of 300 real clips
    beside 2048 synthetic ones at equal weights is seen about 7 times per epoch). Items keep only what every part
    has (``video``; ``mask`` and ``flow`` when the parts carry motion masks and vectors; ``label`` = -1,
    ``index`` = i), so a batch mixes parts. ``synthetic:mix`` is moving shapes and trajectories: straight, bouncing
    motion and five other kinds; ``--data A*3+B`` interleaves any training specs, three clips of A to one of B.
    """

    def __init__(self, parts: list[Dataset], weights: list[int] | None = None):
        if not parts:
            raise DataError("an interleaved set needs at least one part")
        weights = [1] * len(parts) if weights is None else [int(w) for w in weights]
        if len(weights) != len(parts) or min(weights) < 1:
            raise DataError(f"interleave weights must be one integer >= 1 per part, got {weights}")
        empty = [i for i, p in enumerate(parts) if len(p) == 0]
        if empty:
            raise DataError(f"part {empty[0] + 1} of {len(parts)} of an interleaved set holds no clip")
        self.parts, self.weights = parts, weights
        # one cycle of sum(weights) items: (part, its slot within the cycle), parts spread as evenly as possible
        order = sorted(((j + 0.5) / w, p, j) for p, w in enumerate(weights) for j in range(w))
        self.cycle = [(p, j) for _, p, j in order]
        rounds = max(-(-len(p) // w) for p, w in zip(parts, weights))  # cycles to draw the longest share in full
        self.n = rounds * len(self.cycle)
        self.classes: list[str] = []
        self.n_skipped = sum(getattr(p, "n_skipped", 0) for p in parts)
        self.skipped = [s for p in parts for s in getattr(p, "skipped", [])]
        self.truncated = [t for p in parts for t in getattr(p, "truncated", [])]

    @property
    def num_classes(self) -> int:
        return 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} clips")
        r, c = divmod(index, len(self.cycle))
        p, j = self.cycle[c]
        part = self.parts[p]
        item = part[(r * self.weights[p] + j) % len(part)]
        out = {"video": item["video"], "label": torch.tensor(-1, dtype=torch.int64), "index": int(index)}
        for key in ("mask", "flow"):  # the motion stream and the flow target, when the parts carry them
            if key in item:
                out[key] = item[key]
        return out

    def __repr__(self) -> str:
        return f"InterleavedDataset({self.parts!r}, weights={self.weights})"
