"""Frames in for ``prednet2.stream``: a video file, a folder of videos, or a camera, decoded one frame at a time."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np


class SourceError(ValueError):
    """SOURCE cannot be opened or holds no decodable video. The message names it and says what to do."""


_CAMERA = re.compile(r"^(\d+|/dev/video\d+)$")


class FrameSource:
    """Iterate uint8 ``(H, W, C)`` frames (C = 3 RGB or 1 gray) of a file, a folder or a camera, one at a time.

    ``size=(H, W)``: shorter-side resize inside FFmpeg (``VideoFrame.to_ndarray``), then centre crop, as
    ``datasets.decode`` does for training clips. ``fps`` is the native rate of the first video (for the mp4).
    ``current`` is the path (or camera device) of the video the last frame came from.
    Raises SourceError on open; a folder's file that yields no frame is skipped with a warning (``skipped``), and one
    cut short or damaged partway plays up to the damage and is listed with a warning (``truncated``: path, frames).
    """

    def __init__(self, source: str, *, size: tuple[int, int], grayscale: bool = False):
        import av

        from prednet2.datasets.decode import native_rate, scan_videos

        if not source.strip():  # Path("") is the working folder: "SOURCE : folder holds no video files" said nothing
            raise SourceError("SOURCE is empty; give a video file, a folder of videos or a camera (/dev/video0 or 0)")
        self.source = source
        self.size = (int(size[0]), int(size[1]))
        self.fmt = "gray" if grayscale else "rgb24"
        self.skipped: list[tuple[str, str]] = []
        self.truncated: list[tuple[str, int]] = []  # played up to damage partway (as datasets.decode flags it)
        self.current: str | None = None
        self.camera = bool(_CAMERA.match(source))
        if self.camera:
            dev = f"/dev/video{source}" if source.isdigit() else source
            try:
                self._first = av.open(dev, format="v4l2")
            except (av.FFmpegError, OSError, ValueError) as e:
                raise SourceError(
                    f"cannot open camera {dev} through PyAV's v4l2 input ({e}); check the device exists "
                    "(ls /dev/video*) and that this user may read it (group 'video')"
                ) from None
            self.paths, self._next = [Path(dev)], 1
        else:
            p = Path(source)
            if not p.exists():
                raise SourceError(f"SOURCE {source}: no such file or folder (nor a camera like /dev/video0 or 0)")
            self.paths = scan_videos(p)
            if not self.paths:
                what = "folder holds no video files" if p.is_dir() else "file is not a known video type"
                raise SourceError(f"SOURCE {source}: {what} (.mp4 .avi .mkv .webm .mov .mpg .mpeg .m4v)")
            # play from the first readable video: unreadable ones before it are skipped, as later ones are
            self._first, self._next = None, 0  # _next: the index after the video that plays first
            while self._first is None and self._next < len(self.paths):
                self._first = self._open(self.paths[self._next], strict=True)
                self._next += 1
            if self._first is None:
                path, reason = self.skipped[0]
                raise SourceError(f"SOURCE {source}: none of its {len(self.paths)} video files is readable "
                                  f"(e.g. {path}: {reason})")  # fmt: skip
        self.fps = native_rate(self._first.streams.video[0])

    def _open(self, path: Path, *, strict: bool):
        import av

        from prednet2.datasets.decode import file_problem

        problem = file_problem(path)  # worded as the training data's decoder words it
        if problem:
            return self._refuse(path, SourceError(problem), strict)
        try:
            c = av.open(str(path), metadata_errors="ignore")
            if not c.streams.video:
                c.close()
                raise SourceError(f"{path}: no video stream")
            return c
        except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError, SourceError) as e:  # no stream: skipped too
            return self._refuse(path, e, strict)

    def _refuse(self, path: Path, e: Exception, strict: bool) -> None:
        """A file that cannot play: SourceError when it is the only one (strict), else skipped and counted."""
        if strict and len(self.paths) == 1:
            raise SourceError(f"SOURCE {path}: not a readable video ({e})") from None
        import av

        from prednet2.datasets.decode import container_problem

        self._skip(path, container_problem(e) if isinstance(e, av.FFmpegError) else str(e))
        return None

    def _skip(self, path, reason: str) -> None:
        """Count a skipped file and say so on stderr (one line each; ``stream.json`` lists them)."""
        self.skipped.append((str(path), reason))
        print(f"prednet2.stream: skipping {path}: {reason}", file=sys.stderr)

    def _cut(self, path, n: int, why: str) -> None:
        """List a video played up to damage partway and say so on stderr (``stream.json``'s ``truncated``)."""
        self.truncated.append((str(path), n))
        print(f"prednet2.stream: {path}: {why} after {n} frames; moving on", file=sys.stderr)

    def _short(self, stream, container, last_t: float) -> bool:
        from prednet2.datasets.decode import ends_short, native_rate

        t0 = float((stream.start_time or 0) * (stream.time_base or 0))  # frame times count from the stream's start
        return ends_short(stream, container, last_t - t0, native_rate(stream))

    def _frames(self, container) -> Iterator[np.ndarray]:
        import av

        from prednet2.datasets.decode import decode_marking_corrupt, upright, upright_plan

        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        plan = None
        H, W = self.size
        n, last_t, seen = 0, None, {"corrupt": False}
        self.current = container.name
        try:
            for frame in decode_marking_corrupt(container, stream, seen):
                last_t = frame.time if frame.time is not None else last_t
                if plan is None:
                    plan = upright_plan(frame, self.size)
                sw, sh, k, top, left = plan
                a = frame.to_ndarray(width=sw, height=sh, format=self.fmt, interpolation="BILINEAR")
                a = upright(a, k)[top : top + H, left : left + W]
                n += 1
                yield np.ascontiguousarray(a[..., None] if a.ndim == 2 else a)
            if n == 0:  # a container that opens and holds no frame (e.g. cut before its first one)
                self._skip(container.name, "no decodable video frames")
            elif seen["corrupt"] or (not self.camera and last_t is not None and self._short(stream, container, last_t)):
                self._cut(container.name, n, "cut short or damaged")
        except av.FFmpegError as e:  # a truncated file: keep what decoded, go on with the next
            if n:
                self._cut(container.name, n, f"decode error ({e.strerror or e})")
            else:
                self._skip(container.name, f"decode error before any frame, moving on: {e.strerror or e}")
        finally:
            container.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("FrameSource can be iterated once")
        yield from self._frames(first)
        for path in self.paths[self._next :]:
            c = self._open(path, strict=False)
            if c is not None:
                yield from self._frames(c)

    def close(self) -> None:
        if self._first is not None:
            self._first.close()
            self._first = None
