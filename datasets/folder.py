"""VideoFolder: every video under a folder as fixed-length clips, decoded once and read from the cache after.

Usage::

    ds = VideoFolder("videos/", cfg.data)             # or VideoFolder("videos/", clip_len=10, size=(64, 64))
    item = ds[0]   # {"video": uint8 (T, C, H, W), "label": int64 -1, "index": 0}
    ds.n_skipped, ds.skipped                          # files that could not be used, and why
    ds.truncated                                      # videos cut short or damaged: (path, frames used)
    ds.frames(v)                                      # all cached frames of video v: uint8 memmap (N, H, W, C)
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from prednet2.config import DataConfig

from .cache import FrameCache, resolve_cache_dir
from .decode import VIDEO_EXTENSIONS, scan_videos
from .errors import CutVideo, DataError, SkippedFile

log = logging.getLogger("prednet2.datasets")
CLIPS_PER_VIDEO = ("all", "centre")
_MAX_OPEN = 64  # memmaps kept open per process (each holds a file descriptor)
_MAX_SKIP_LINES = 10  # skipped files named one warning line each; the rest are counted in one more line


class VideoFolder(Dataset):
    """Clips of ``clip_len`` frames, ``stride`` apart, from every video under ``root`` (recursive).

    Args:
        root: a folder (searched recursively for mp4/avi/mkv/webm/mov/mpg/mpeg/m4v, any case) or one video file.
        cfg: a ``DataConfig`` supplying clip_len, stride, size, fps, grayscale, cache_dir and clip_step; the keyword
            arguments below override its fields when given.
        clip_step: frames between the starts of consecutive clips of one video; 0 = the clip span (no overlap).
        clips_per_video: ``"all"`` (every ``clip_step``) or ``"centre"`` (one clip from the middle of each video).
        pad_short: use videos shorter than a clip by repeating their last frame (one clip each); if False they are
            skipped as too short.
        progress: show a tqdm bar while uncached videos decode (``cfg.prep_workers`` threads at a time).

    Clips never cross video boundaries: clip ``i`` is ``(video_idx, start)`` and reads frames
    ``start, start + stride, ..., start + (clip_len - 1) * stride`` of that one video.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        cfg: DataConfig | None = None,
        *,
        clip_len: int | None = None,
        stride: int | None = None,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        grayscale: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        clip_step: int | None = None,
        clips_per_video: str = "all",
        pad_short: bool = False,
        progress: bool = True,
    ):
        cfg = cfg if cfg is not None else DataConfig()
        self.clip_len = int(cfg.clip_len if clip_len is None else clip_len)
        self.stride = int(cfg.stride if stride is None else stride)
        self.size = tuple(int(x) for x in (cfg.size if size is None else size))
        self.fps = float(cfg.fps if fps is None else fps)
        self.grayscale = bool(cfg.grayscale if grayscale is None else grayscale)
        self.prep_workers = int(cfg.prep_workers)
        step = int(cfg.clip_step if clip_step is None else clip_step)
        self.span = (self.clip_len - 1) * self.stride + 1  # source frames one clip covers
        self.clip_step = step if step > 0 else self.span
        self.clips_per_video = clips_per_video
        self.pad_short = bool(pad_short)
        self.progress = progress
        self._check_options()
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(f"data path not found: {self.root}")
        self._cache_dir_opt = cache_dir if cache_dir is not None else (cfg.cache_dir or None)
        self._load(self._find_files())

    # ---- construction -----------------------------------------------------------------------------------
    def _check_options(self) -> None:
        if self.clip_len < 1 or self.stride < 1:
            raise DataError(f"clip_len and stride must be >= 1 (got clip_len={self.clip_len}, stride={self.stride})")
        if len(self.size) != 2 or min(self.size) < 1:
            raise DataError(f"size must be (H, W) with positive values, got {self.size}")
        if self.fps < 0:
            raise DataError(f"fps must be >= 0 (0 keeps the native rate), got {self.fps}")
        if self.clips_per_video not in CLIPS_PER_VIDEO:
            raise DataError(f"clips_per_video must be one of {CLIPS_PER_VIDEO}, got {self.clips_per_video!r}")

    def _find_files(self) -> list[Path]:
        """The candidate files (subclasses choose their own, e.g. one split of a labelled folder)."""
        files = scan_videos(self.root)
        if not files:
            raise DataError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) found under {self.root}")
        return files

    def _load(self, files: list[Path]) -> None:
        """Scan ``files`` through the cache (decoding misses), drop unusable ones, and index the clips."""
        self.cache_dir = resolve_cache_dir(self.root, self._cache_dir_opt)
        self._cache = FrameCache(
            self.cache_dir, size=self.size, fps=self.fps, grayscale=self.grayscale, workers=self.prep_workers
        )
        entries = self._cache.build(self.root, files, progress=self.progress)
        self.videos: list[str] = []
        self.skipped: list[SkippedFile] = []
        self.truncated: list[CutVideo] = []  # used, but cut short or damaged: the frames before it
        self._keys: list[str] = []
        self._n_frames: list[int] = []
        self._file_index: list[int] = []  # position of each usable video in `files` (subclasses map labels)
        longest_short = 0  # frames of the longest video skipped as too short
        for i, e in enumerate(entries):
            reason = e.reason
            if not reason and e.n_frames < self.span and not self.pad_short:
                longest_short = max(longest_short, e.n_frames)
                reason = (
                    f"too short: {e.n_frames} frames{' (truncated)' if e.truncated else ''}, a clip needs "
                    f"{self.span} (clip_len={self.clip_len}, stride={self.stride})"
                )
            if reason:
                self.skipped.append(SkippedFile(e.path, reason))
                if len(self.skipped) <= _MAX_SKIP_LINES:
                    log.warning("skipping %s: %s", e.path, reason)
                continue
            if e.truncated:
                self.truncated.append(CutVideo(e.path, e.n_frames))
                if len(self.truncated) <= _MAX_SKIP_LINES:
                    log.warning("%s: truncated or damaged; using its %d decodable frames", e.path, e.n_frames)
            self.videos.append(e.path)
            self._keys.append(e.key)
            self._n_frames.append(e.n_frames)
            self._file_index.append(i)
        if len(self.skipped) > _MAX_SKIP_LINES:
            log.warning(
                "... and %d more skipped (`prednet2 inspect %s` lists every file and why)",
                len(self.skipped) - _MAX_SKIP_LINES,
                self.root,
            )
        if len(self.truncated) > _MAX_SKIP_LINES:
            log.warning(
                "... and %d more truncated or damaged, each read up to the damage (`prednet2 inspect %s` lists them)",
                len(self.truncated) - _MAX_SKIP_LINES,
                self.root,
            )
        if not self.videos:
            first = self.skipped[0]
            err = DataError(
                f"no usable video in {self.root}: all {len(self.skipped)} video file(s) were skipped "
                f"(e.g. {first.path}: {first.reason})" + self._short_hint(longest_short)
            )
            err.skipped = list(self.skipped)  # for reports such as datasets.inspect
            raise err
        self._warn_padded()
        self.clips: list[tuple[int, int]] = []
        for v, n in enumerate(self._n_frames):
            self.clips.extend((v, s) for s in self._clip_starts(n))
        self._mm: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pid = os.getpid()

    def padded_videos(self) -> list[tuple[str, int]]:
        """(path, frames) of the videos shorter than a clip, which ``pad_short`` pads with their last frame."""
        return [(str(v), n) for v, n in zip(self.videos, self._n_frames) if n < self.span]

    def _warn_padded(self) -> None:
        """With pad_short, say once how many videos are shorter than a clip: their repeated last frame is read too."""
        short = [n for n in self._n_frames if n < self.span]
        if not short:
            return
        fits = max(2, self._clip_len_within(min(short)))  # data.clip_len >= 2
        log.warning(
            "%d of %d videos in %s are shorter than a clip (clip_len=%d, stride=%d: %d frames; the shortest has %d); "
            "each is padded by repeating its last frame, and the features read the padding too: a clip length that "
            "fits them all is %d (eval commands: --clip-len %d)",
            len(short),
            len(self._n_frames),
            self.root,
            self.clip_len,
            self.stride,
            self.span,
            min(short),
            fits,
            fits,
        )

    def _clip_len_within(self, n: int) -> int:
        """The longest clip_len whose span, at this stride, fits in ``n`` frames (the inverse of ``self.span``)."""
        return (n - 1) // self.stride + 1

    def _short_hint(self, longest: int) -> str:
        """What to set when videos were too short: the longest clip that the longest of them holds."""
        if not longest:
            return ""
        fits = self._clip_len_within(longest)
        if fits < 2 and longest >= 2:  # the stride is what does not fit: 2 frames at it span more than the video
            s = (longest - 1) // (self.clip_len - 1)  # the largest stride at which this clip_len still fits
            hint = f"data.stride={s} or less" if s >= 1 else f"data.stride=1 and data.clip_len={longest} or less"
            return (
                f"; the longest of them has {longest} frames, too few for 2 frames {self.stride} apart "
                f"(data.stride={self.stride}): give {hint}"
            )
        if fits < 2:
            return f"; the longest of them has {longest} frame(s), too few for a clip of 2 (data.clip_len >= 2)"
        hint = f"data.clip_len={fits} or less (train: --set data.clip_len={fits}; eval commands: --clip-len {fits})"
        return f"; the longest of them has {longest} frames: give {hint}"

    def _clip_starts(self, n: int) -> list[int]:
        if n < self.span:
            return [0]  # only reached with pad_short: one clip, the last frame repeated
        if self.clips_per_video == "centre":
            return [(n - self.span) // 2]
        return list(range(0, n - self.span + 1, self.clip_step))

    # ---- per-video access (also used by the motion-mask cache) ------------------------------------------
    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def cache_key(self, video_idx: int) -> str:
        """Key of this video's cache entry; changes when the file or the decode options change."""
        return self._keys[video_idx]

    def num_frames(self, video_idx: int) -> int:
        return self._n_frames[video_idx]

    def frames(self, video_idx: int) -> np.ndarray:
        """All cached frames of one video: read-only uint8 memmap ``(N, H, W, C)``. Opens no video file."""
        if os.getpid() != self._pid:  # forked into a DataLoader worker: open our own memmaps
            self._mm = OrderedDict()
            self._pid = os.getpid()
        mm = self._mm.get(video_idx)
        if mm is None:
            mm = self._cache.load(self.videos[video_idx], self._keys[video_idx])
            self._mm[video_idx] = mm
            if len(self._mm) > _MAX_OPEN:
                self._mm.popitem(last=False)
        else:
            try:
                self._mm.move_to_end(video_idx)
            except KeyError:  # evicted by another thread between the two calls (data.prep_workers): nothing to do
                pass
        return mm

    # ---- Dataset ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clips)

    def clip_frames(self, index: int) -> np.ndarray:
        """The frames of clip ``index`` as a ``(T, H, W, C)`` uint8 view or copy of the cache."""
        v, start = self.clips[index]
        fr = self.frames(v)
        if start + self.span <= fr.shape[0]:
            return fr[start : start + self.span : self.stride]  # a view: no copy until the transpose below
        idx = np.minimum(start + np.arange(self.clip_len) * self.stride, fr.shape[0] - 1)  # pad_short: repeat last
        return fr[idx]

    def label_of(self, video_idx: int) -> int:
        return -1

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.clips):
            raise IndexError(f"clip index {index} out of range for {len(self.clips)} clips")
        # (T, H, W, C) -> (T, C, H, W) in numpy: one copy out of the memmap, ~10x faster than torch's permute copy.
        # Always a copy: with one channel (grayscale) the transpose is already contiguous, and ascontiguousarray
        # handed torch the read-only memmap itself (a UserWarning in every run, and a tensor aliasing the cache).
        clip = torch.from_numpy(np.array(self.clip_frames(index).transpose(0, 3, 1, 2), order="C", copy=True))
        v = self.clips[index][0]
        return {"video": clip, "label": torch.tensor(self.label_of(v), dtype=torch.int64), "index": index}

    def __getstate__(self) -> dict:
        d = self.__dict__.copy()
        d["_mm"] = OrderedDict()  # memmaps are reopened lazily in the receiving process
        return d

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.root)!r}, videos={len(self.videos)}, clips={len(self.clips)}, "
            f"skipped={self.n_skipped}, clip_len={self.clip_len}, stride={self.stride}, size={self.size}, "
            f"fps={self.fps}, grayscale={self.grayscale})"
        )
