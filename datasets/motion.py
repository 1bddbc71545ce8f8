"""Motion masks in the data pipeline: ``with_motion(ds, motion_cfg, data_cfg)`` adds ``"mask"`` to every item.

Two ways to get a clip's masks, picked by what the wrapped dataset offers:

- **Video folders** (``VideoFolder`` and subclasses: they expose ``frames(video_idx)``, ``cache_key(video_idx)`` and
  ``clips``). Flow and masks are computed once per *video*, over its consecutive decoded frames, and stored next
  to the decoded frames as ``<cache_dir>/motion/<stem>-<key>.npy``: uint8 ``(N, H, W)`` in {0, 1}, read back as a
  memmap and sliced with the clip's frame indices. The key hashes the video's decode-cache key (file identity +
  decode options) with the mask options, so a changed file or option never reads stale masks. ``with_motion``
  fills the cache up front with a progress bar; each file is written atomically (tmp + ``os.replace``), so a
  killed run recomputes only the videos whose file is missing.
- **Anything else** (the synthetic sets, generated on the fly). Masks are computed from the item's own clip and
  cached per clip, content-addressed: the key hashes the clip's uint8 bytes with the mask options, so it needs no
  knowledge of the generator. Reading a 5 kB bit-packed file costs well under a millisecond, while computing a
  10-frame 64x64 clip's flow and masks costs tens of milliseconds (docs/results/motion.md), so the cache wins
  after the first epoch. ``motion.cache=false`` computes on the fly and writes nothing.

Masks always follow the clip frames: item["mask"][t] is the motion at item["video"][t] (flow.py's convention).
For a folder clip with stride s, that is the motion between source frames (i-1, i) of the frame it shows.

With ``motion.flow`` (set by ``model.flow_weight``), items also carry ``"flow"``: float32 (T, 2, H, W), the signed
motion of each pixel in px per frame with the camera's share removed (``masks.motion_vectors``), cached beside the
masks as int8 in 1/8 px (``-flow.npy``), from the same flow computation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from prednet2.config import DataConfig, MotionConfig
from prednet2.interrupt import run_cli

from .cache import resolve_cache_dir
from .flow import BACKENDS, FlowError, compute_flow, make_flow
from .masks import CAMERA_MODELS, dequantize_vectors, motion_masks, motion_vectors, quantize_vectors
from .prep import ordered_map, prep_workers

MASK_VERSION = 1  # bump when the mask algorithm changes: old cache files are then ignored
log = logging.getLogger("prednet2.datasets")


def check_motion_config(m: MotionConfig) -> None:
    """Raise ValueError naming the ``motion.*`` key whose value cannot work."""
    if m.backend not in BACKENDS:
        raise FlowError(f"motion.backend: unknown flow backend {m.backend!r}; choose one of {', '.join(BACKENDS)}")
    if m.camera not in CAMERA_MODELS:
        raise ValueError(f"motion.camera: {m.camera!r} is not one of {', '.join(CAMERA_MODELS)}")
    if not 0.0 <= m.min_component < 1.0:
        raise ValueError(f"motion.min_component: {m.min_component} must be a fraction of the frame in [0, 1)")
    for name in ("static_floor", "photo_margin"):
        if getattr(m, name) < 0:
            raise ValueError(f"motion.{name}: {getattr(m, name)} must be >= 0")
    if m.flow_size < 0:
        raise ValueError(f"motion.flow_size: {m.flow_size} must be >= 0 (0 computes flow at the data resolution)")


def mask_options(m: MotionConfig) -> dict[str, Any]:
    """Everything that changes a mask, as a plain dict (hashed into cache keys)."""
    opts: dict[str, Any] = {
        "backend": m.backend,
        "min_component": m.min_component,
        "static_floor": m.static_floor,
        "camera": m.camera,
        "photo_margin": m.photo_margin,
        "flow_size": m.flow_size,
        "version": MASK_VERSION,
    }
    if m.backend == "raft":  # other weights, other flow
        p = Path(m.raft_weights).expanduser()
        st = p.stat() if p.is_file() else None
        opts["raft"] = [str(p.resolve()), st.st_size if st else 0, st.st_mtime_ns if st else 0]
    return opts


def _hash(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        h.update(p if isinstance(p, bytes | memoryview) else json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()


def _atomic_save(dest: Path, arr: np.ndarray) -> None:
    """np.save to a temporary name in the same folder, then os.replace: readers never see half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _flow_path(mask_path: Path) -> Path:
    """Where the motion vectors of a cached mask file live: ``<name>-flow.npy`` beside it."""
    return mask_path.with_name(mask_path.stem + "-flow.npy")


def _default_cache_dir(data_cfg: DataConfig) -> Path:
    if data_cfg.cache_dir:  # checked now (DataError naming it), not a traceback in a DataLoader worker
        return resolve_cache_dir(data_cfg.cache_dir, data_cfg.cache_dir)
    return Path.home() / ".cache" / "prednet2"


class MotionDataset(Dataset):
    """Wraps a dataset; items gain ``"mask"`` float32 (T, 1, H, W) in {0, 1}. Build it with ``with_motion``.

    Attributes forwarded from the wrapped dataset (``classes``, ``num_classes``, ``n_skipped``, ``skipped``, ...)
    read through, so code that inspects a dataset does not care whether motion is on.
    """

    def __init__(self, ds: Dataset, motion_cfg: MotionConfig, data_cfg: DataConfig, *, progress: bool = True):
        check_motion_config(motion_cfg)
        self.ds = ds
        self.motion_cfg = motion_cfg
        self.prep_workers = int(data_cfg.prep_workers)
        self.options = mask_options(motion_cfg)
        self.per_video = all(hasattr(ds, a) for a in ("frames", "cache_key", "clips"))
        base = Path(getattr(ds, "cache_dir", None) or _default_cache_dir(data_cfg))
        self.cache_dir = base / "motion"
        self._flow_fns: dict[tuple[int, int], object] = {}  # (process, thread) -> flow backend
        self._lock = threading.Lock()
        self.n_computed = 0  # masks computed by this process (videos or clips): what the cache saved shows here
        self.want_flow = bool(motion_cfg.flow)
        if motion_cfg.backend == "raft":
            self._get_flow_fn()  # fail now, with the message about the weights, not in a DataLoader worker
        if self.per_video and motion_cfg.cache:
            precompute_video_masks(self, progress=progress)

    # ---- the flow backend, one per process (OpenCV objects do not pickle) ----------------------------------
    def _get_flow_fn(self):
        """This thread's flow backend (an OpenCV flow object keeps buffers between calls: one per thread)."""
        me = (os.getpid(), threading.get_ident())
        if me not in self._flow_fns:
            with self._lock:
                self._flow_fns[me] = make_flow(self.motion_cfg.backend, raft_weights=self.motion_cfg.raft_weights)
        return self._flow_fns[me]

    def __getstate__(self) -> dict:
        d = self.__dict__.copy()
        d["_flow_fns"], d["_lock"] = {}, None
        return d

    def __setstate__(self, d: dict) -> None:
        self.__dict__.update(d)
        self._lock = threading.Lock()

    def compute(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) frames -> uint8 (N, H, W) masks in {0, 1} (no cache)."""
        return self.compute_both(frames)[0]

    def compute_both(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (N, H, W, C) frames -> (uint8 (N, H, W) masks, int8 (N, 2, H, W) motion vectors in 1/8 px, or None
        without ``motion.flow``), from one flow computation (no cache)."""
        m = self.motion_cfg
        flow = compute_flow(frames, flow_fn=self._get_flow_fn(), work_size=m.flow_size)
        vectors = quantize_vectors(motion_vectors(flow, m.camera)) if self.want_flow else None
        masks = motion_masks(
            flow,
            frames,
            camera=m.camera,
            static_floor=m.static_floor,
            min_component=m.min_component,
            photo_margin=m.photo_margin,
        )
        with self._lock:
            self.n_computed += 1
        return masks.astype(np.uint8), vectors

    # ---- per-video cache (video folders) -----------------------------------------------------------------
    def video_mask_path(self, video_idx: int) -> Path:
        ds = self.ds
        stem = Path(ds.videos[video_idx]).stem if hasattr(ds, "videos") else f"video{video_idx}"
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)[:40]
        return self.cache_dir / f"{stem}-{_hash(ds.cache_key(video_idx), self.options)}.npy"

    def video_cached(self, video_idx: int) -> bool:
        """Whether the cache holds this video's masks (and its motion vectors, with ``motion.flow``)."""
        path = self.video_mask_path(video_idx)
        return path.is_file() and (not self.want_flow or _flow_path(path).is_file())

    def video_masks(self, video_idx: int) -> np.ndarray:
        """uint8 (N, H, W) masks of a whole video: from the cache (a memmap), computed and stored on a miss."""
        return self.video_motion(video_idx)[0]

    def video_motion(self, video_idx: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(uint8 (N, H, W) masks, int8 (N, 2, H, W) motion vectors or None without ``motion.flow``) of a whole
        video: from the cache (memmaps), computed and stored on a miss of either."""
        if not self.motion_cfg.cache:
            return self.compute_both(np.asarray(self.ds.frames(video_idx)))
        path = self.video_mask_path(video_idx)
        fpath = _flow_path(path)
        try:
            masks = np.load(path, mmap_mode="r")
            return masks, (np.load(fpath, mmap_mode="r") if self.want_flow else None)
        except (FileNotFoundError, ValueError, OSError):
            pass  # missing (or unreadable: recompute and overwrite)
        masks, vectors = self.compute_both(np.asarray(self.ds.frames(video_idx)))
        if vectors is not None:
            _atomic_save(fpath, vectors)
        _atomic_save(path, masks)
        return masks, vectors

    def _clip_indices(self, index: int, n: int) -> np.ndarray:
        """Source frame indices of clip ``index`` (as VideoFolder.clip_frames picks them, last frame repeated)."""
        _, start = self.ds.clips[index]
        stride = int(getattr(self.ds, "stride", 1))
        return np.minimum(start + np.arange(int(self.ds.clip_len)) * stride, n - 1)

    # ---- per-clip cache (everything else) ----------------------------------------------------------------
    def clip_masks(self, video: torch.Tensor) -> np.ndarray:
        """uint8 (T, H, W) masks of one clip given as uint8 (T, C, H, W); cached by content when enabled."""
        return self.clip_motion(video)[0]

    def clip_motion(self, video: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """(uint8 (T, H, W) masks, int8 (T, 2, H, W) motion vectors or None without ``motion.flow``) of one clip
        given as uint8 (T, C, H, W); cached by content when enabled."""
        frames = np.ascontiguousarray(video.numpy().transpose(0, 2, 3, 1))  # (T, H, W, C)
        if not self.motion_cfg.cache:
            return self.compute_both(frames)
        key = _hash(frames.shape, memoryview(frames).cast("B"), self.options)
        path = self.cache_dir / "clips" / key[:2] / f"{key}.npy"
        fpath = _flow_path(path)
        t, h, w = frames.shape[:3]
        try:
            packed = np.load(path)
            vectors = np.load(fpath) if self.want_flow else None
            if packed.shape == (t, h, (w + 7) // 8) and (vectors is None or vectors.shape == (t, 2, h, w)):
                return np.unpackbits(packed, axis=-1, count=w), vectors
        except (FileNotFoundError, ValueError, OSError):
            pass
        masks, vectors = self.compute_both(frames)
        if vectors is not None:
            _atomic_save(fpath, vectors)
        _atomic_save(path, np.packbits(masks.astype(bool), axis=-1))  # (T, H, ceil(W/8)): 8x smaller
        return masks, vectors

    # ---- Dataset -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict:
        item = self.ds[index]
        if self.per_video:
            v = self.ds.clips[index][0]
            vm, vv = self.video_motion(v)
            idx = self._clip_indices(index, vm.shape[0])
            masks = np.asarray(vm[idx])  # (T, H, W)
            vectors = None if vv is None else np.asarray(vv[idx])  # (T, 2, H, W)
        else:
            masks, vectors = self.clip_motion(item["video"])
        item["mask"] = torch.from_numpy(masks.astype(np.float32))[:, None]  # (T, 1, H, W)
        if vectors is not None:
            item["flow"] = torch.from_numpy(dequantize_vectors(vectors))  # (T, 2, H, W) px per frame
        return item

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: read through to the wrapped dataset (classes, n_skipped, ...).
        if name == "ds" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.ds, name)

    def __repr__(self) -> str:
        return f"MotionDataset({self.ds!r}, backend={self.motion_cfg.backend!r}, cache={str(self.cache_dir)!r})"


def precompute_video_masks(mds: MotionDataset, *, progress: bool = True) -> int:
    """Fill the per-video mask cache of a video-folder MotionDataset; returns how many videos were computed.

    Resumable: videos whose file exists are skipped without being opened, so an interrupted run picks up where
    it stopped.
    """
    ds = mds.ds
    n_videos = len(ds.videos) if hasattr(ds, "videos") else 1 + max(v for v, _ in ds.clips)
    todo = [v for v in range(n_videos) if not mds.video_cached(v)]
    if not todo:
        return 0
    # RAFT is a torch model that uses the cores itself: one video at a time
    workers = 1 if mds.motion_cfg.backend == "raft" else prep_workers(mds.prep_workers)
    log.info(
        "motion masks: computing %d of %d videos into %s (%d threads)", len(todo), n_videos, mds.cache_dir, workers
    )
    ordered_map(lambda v: mds.video_masks(v) is None, todo, workers=workers, desc="motion masks", progress=progress)
    return len(todo)


def with_motion(ds: Dataset, motion_cfg: MotionConfig, data_cfg: DataConfig, *, progress: bool = True) -> Dataset:
    """``ds`` with ``"mask"`` float32 (T, 1, H, W) in {0, 1} added to every item; ``ds`` itself when motion is off.

    Raises:
        ValueError (FlowError for flow backends) naming the ``motion.*`` option that cannot work.
    """
    if not motion_cfg.enabled:
        return ds
    return MotionDataset(ds, motion_cfg, data_cfg, progress=progress)


# ---- visual check without TensorBoard ---------------------------------------------------------------------------
def preview_grid(items: list[dict], *, scale: int = 2) -> np.ndarray:
    """uint8 (rows, cols, 3) RGB image: per item, a row of frames and below it the same frames with the mask in red."""
    rows = []
    for it in items:
        v = it["video"].numpy().transpose(0, 2, 3, 1)  # (T, H, W, C)
        if v.shape[-1] == 1:
            v = np.repeat(v, 3, axis=-1)
        m = it["mask"].numpy()[:, 0, :, :, None]  # (T, H, W, 1)
        red = np.array([255, 0, 0], np.float32)
        over = (v * (1 - 0.6 * m) + red * 0.6 * m).astype(np.uint8)  # red tint where moving
        rows.append(np.concatenate(list(v), axis=1))  # (H, T*W, 3)
        rows.append(np.concatenate(list(over), axis=1))
    img = np.concatenate(rows, axis=0)
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def main(argv: list[str] | None = None) -> int:
    """``python -m prednet2.datasets.motion DATA --out preview.png [--n 4] [--set motion.camera=affine ...]``"""
    import cv2

    from prednet2.cli import OneLineParser, int_at_least, out_file, prog_name
    from prednet2.config import Config, ConfigError

    from . import build_dataset

    p = OneLineParser(
        prog=prog_name("python -m prednet2.datasets.motion"),
        description="Save a PNG of clips with their motion masks (red) for a visual check.",
    )
    p.add_argument("data", help="a video folder or a synthetic spec (synthetic:shapes, ...)")
    p.add_argument("--out", required=True, type=out_file, help="PNG file to write (PNG with or without .png)")
    p.add_argument("--n", type=int_at_least(1), default=4, help="clips to show (spread over the dataset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    a = p.parse_args(argv)
    try:
        cfg = Config.from_yaml(None, ["motion.enabled=true", *a.set])
        ds = build_dataset(a.data, cfg=cfg.data, motion=cfg.motion)
    except (ConfigError, ValueError) as e:
        p.error(str(e))
    idx = np.linspace(0, len(ds) - 1, min(a.n, len(ds))).round().astype(int)
    img = preview_grid([ds[int(i)] for i in idx])
    ok, png = cv2.imencode(".png", img[..., ::-1])  # PNG at the path given (imwrite picks a codec by extension)
    try:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_bytes(png.tobytes())
    except OSError as e:
        p.error(f"--out {a.out}: could not write the PNG ({e.strerror or e})")
    print(f"wrote {a.out}: {len(idx)} clips, frames on top, masks in red below")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(run_cli(main))
