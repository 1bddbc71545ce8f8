"""``synthetic:moving_mnist``: bouncing MNIST digits (Srivastava, Mansimov and Salakhutdinov, 2015).

The recipe: digits of 28x28 (scaled with the frame: 28 * min(H, W) / 64) start at a uniform position on the canvas
with a uniform direction, move 0.1 of the free range per frame (3.6 px at 64x64), bounce off the edges, and
are combined with a pixel-wise max. Train clips draw digits from MNIST train[:50000], val clips from
train[50000:], test clips from t10k, so no digit image is shared between splits.

Two sets:
- ``synthetic:moving_mnist``: 2 digits, for training; items carry ``digits`` (their classes), ``label`` = -1.
- ``synthetic:moving_mnist:digit``: ONE full-size digit per clip, 10 classes, plus by default one distractor:
  a half-size digit of another class moving on its own. The label is the full-size digit's class.

The four idx files are read from ``data.mnist_path``, else ``$PREDNET2_MNIST``, else ``<repo>/../shared/data/mnist``.
"""

from __future__ import annotations

import gzip
import os
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import DataError
from .synthetic import SyntheticVideoDataset

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ALL_FILES = [f for pair in MNIST_FILES.values() for f in pair]
DIGITS = tuple(str(d) for d in range(10))
STEP = 0.1  # fraction of the free range per frame, as in the original recipe
N_TRAIN_POOL = 50_000  # train[:50000] for the train split, train[50000:] for val


def default_mnist_dir() -> Path:
    """``$PREDNET2_MNIST`` if set, else ``../shared/data/mnist`` next to the repo root (the parent of datasets/)."""
    env = os.environ.get("PREDNET2_MNIST", "")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def resolve_mnist_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path).expanduser() if path else default_mnist_dir()


def _file(folder: Path, name: str) -> Path:
    """The .gz file, or its uncompressed twin when only that exists."""
    p = folder / name
    if not p.is_file() and (folder / name.removesuffix(".gz")).is_file():
        return folder / name.removesuffix(".gz")
    return p


def _read_idx(path: Path, magic: int) -> tuple[tuple[int, ...], bytes]:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read this MNIST file ({e}); re-download it") from None
    kind = "image" if magic == 2051 else "label"
    got = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
    if got != magic:
        raise DataError(f"{path}: idx magic number {got}, expected {magic}; not an MNIST {kind} file")
    ndim = 3 if magic == 2051 else 1
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path}: too short for an idx {kind} file ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    if len(raw) != head + int(np.prod(dims)):
        raise DataError(f"{path}: {len(raw)} bytes does not match its header {dims}; the file is truncated")
    return tuple(dims), raw[head:]


@lru_cache(maxsize=4)
def load_mnist(folder: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels uint8 (N,) of ``part`` ("train" | "t10k"). Cached per process.

    Raises DataError naming the folder and the expected files when one is absent or malformed.
    """
    root = Path(folder)
    missing = [n for n in ALL_FILES if not _file(root, n).is_file()]
    if missing:
        where = f"{root} (not a folder)" if not root.is_dir() else str(root)
        raise DataError(
            f"MNIST not found in {where}: missing {', '.join(missing)}. Expected the four idx files "
            f"{', '.join(ALL_FILES)}; point data.mnist_path (or $PREDNET2_MNIST) at the folder holding them"
        )
    img_name, lab_name = MNIST_FILES[part]
    dims, img = _read_idx(_file(root, img_name), 2051)
    if dims[1:] != (28, 28):
        raise DataError(f"{_file(root, img_name)}: images are {dims[1]}x{dims[2]}, expected 28x28")
    (n_lab,), lab = _read_idx(_file(root, lab_name), 2049)
    if n_lab != dims[0]:
        raise DataError(f"{root}: {img_name} holds {dims[0]} images but {lab_name} {n_lab} labels")
    images = np.frombuffer(img, dtype=np.uint8).reshape(dims)  # (N, 28, 28)
    labels = np.frombuffer(lab, dtype=np.uint8)
    if labels.max() > 9:
        raise DataError(f"{_file(root, lab_name)}: labels above 9; not MNIST labels")
    return images, labels


def split_pool(folder: Path, split: str) -> tuple[str, np.ndarray]:
    """(MNIST part, indices into it) that a split draws its digits from."""
    if split == "test":
        return "t10k", np.arange(len(load_mnist(str(folder), "t10k")[1]))
    n = len(load_mnist(str(folder), "train")[1])
    cut = min(N_TRAIN_POOL, n)
    return "train", (np.arange(cut) if split == "train" else np.arange(cut, n))


def bounce_positions(rng: np.random.Generator, T: int, lim: tuple[int, int], step: float) -> np.ndarray:
    """int (T, 2) top-left corners (x, y) in [0, lim]: Srivastava's update, clamped at the edges."""
    p = rng.random(2)  # in units of the free range
    theta = rng.uniform(0, 2 * np.pi)
    v = np.array([np.sin(theta), np.cos(theta)])
    out = np.empty((T, 2))
    for t in range(T):
        out[t] = p
        p = p + v * step
        for k in range(2):
            if p[k] <= 0.0:
                p[k], v[k] = 0.0, -v[k]
            elif p[k] >= 1.0:
                p[k], v[k] = 1.0, -v[k]
    return np.rint(out * np.asarray(lim, dtype=float)).astype(int)


def render_digits(
    rng: np.random.Generator, digits: list[np.ndarray], *, size: tuple[int, int], T: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bounce the given (already scaled) digit images around an (H, W) canvas.

    Returns frames uint8 (T, H, W) (pixel-wise max) and corners int (n_digits, T, 2) (x, y).
    """
    H, W = size
    frames = np.zeros((T, H, W), dtype=np.uint8)
    corners = []
    for img in digits:
        h, w = img.shape
        lim = (W - w, H - h)
        if min(lim) < 0:
            raise DataError(f"size {size}: too small for {w}x{h} digits")
        pos = bounce_positions(rng, T, lim, STEP)
        for t, (x, y) in enumerate(pos):
            np.maximum(frames[t, y : y + h, x : x + w], img, out=frames[t, y : y + h, x : x + w])
        corners.append(pos)
    return frames, np.stack(corners)


class MovingMNIST(SyntheticVideoDataset):
    """``synthetic:moving_mnist[:digit]``: Moving MNIST clips, deterministic by (seed, split, index).

    Items: ``video`` uint8 (T, C, H, W) (white digits on black, C = 3 unless grayscale), ``label`` int64,
    ``digits`` int64 (n,) classes of the digits drawn (full-size first), ``source_index`` int64 (n,) their rows in
    the MNIST file of the split (train for train/val, t10k for test), ``corners`` int64 (n, T, 2) top-left (x, y).

    Args:
        task: None (2 digits, label -1) or "digit" (one full-size digit, label = its class).
        n_digits: full-size digits when task is None.
        distractors: half-size digits of other classes added when task == "digit".
        mnist_path: the folder of the four idx files ("" = default_mnist_dir()).
    """

    stream = "moving_mnist"

    def __init__(
        self,
        *,
        n: int,
        size: tuple[int, int] = (64, 64),
        clip_len: int = 20,
        grayscale: bool = False,
        seed: int = 0,
        split: str = "train",
        task: str | None = None,
        n_digits: int = 2,
        distractors: int = 1,
        mnist_path: str | os.PathLike | None = None,
    ):
        if task not in (None, "digit"):
            raise DataError(f"synthetic:moving_mnist task {task!r}: the only task is 'digit'")
        super().__init__(
            n=n,
            seed=seed,
            split=split,
            classes=list(DIGITS) if task else [],
            size=size,
            clip_len=clip_len,
            grayscale=grayscale,
        )
        self.task = task
        self.n_digits = int(n_digits)
        self.distractors = int(distractors)
        self.folder = resolve_mnist_dir(mnist_path)
        # Load (and validate) now, so a bad path fails when the dataset is built, not inside a DataLoader worker.
        self.part, self.pool = split_pool(self.folder, split)
        self.digit_px = max(8, round(28 * min(self.size) / 64))

    def _digit(self, images: np.ndarray, row: int, px: int) -> np.ndarray:
        img = images[row]
        return img if px == 28 else cv2.resize(img, (px, px), interpolation=cv2.INTER_AREA)

    def generate(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        images, labels = load_mnist(str(self.folder), self.part)
        if self.task == "digit":
            rows = [int(rng.choice(self.pool))]
            for _ in range(self.distractors):  # a different class, so the label is never ambiguous
                while labels[r := int(rng.choice(self.pool))] == labels[rows[0]]:
                    pass
                rows.append(r)
            px = [self.digit_px] + [max(6, self.digit_px // 2)] * self.distractors
        else:
            rows = [int(r) for r in rng.choice(self.pool, size=self.n_digits)]
            px = [self.digit_px] * self.n_digits
        frames, corners = render_digits(
            rng, [self._digit(images, r, p) for r, p in zip(rows, px)], size=self.size, T=self.clip_len
        )
        video = frames[:, None]  # (T, 1, H, W)
        if not self.grayscale:
            video = np.repeat(video, 3, axis=1)  # (T, 3, H, W)
        digits = labels[rows].astype(np.int64)
        return {
            "video": video,
            "label": int(digits[0]) if self.task else -1,
            "digits": digits,
            "source_index": np.asarray(rows, dtype=np.int64),
            "corners": corners.astype(np.int64),
        }
