"""Find and decode video files with PyAV: resize (shorter side, then centre crop), RGB or gray, fps resampling,
and frames turned upright where the container says so (a phone's portrait video is stored sideways).

Decoding is the slow, once-per-video step; ``cache.py`` stores what ``decode_video`` returns so epochs after the
first never decode again.

Resize rule: scale so the *shorter* side matches the target (aspect kept), then crop the centre to exactly
``(H, W)``. Scaling happens inside FFmpeg's swscale (area filter, antialiased when downscaling) on each decoded
frame, converting YUV to RGB at the small size, so a 1080p frame never becomes a full-size numpy array. One
``VideoReformatter`` per video reuses its scaler context. Measured on a busy 2-core machine (576x768 -> 64x64):
about 1-1.5 ms/frame against 3.5-4 ms/frame for ``frame.to_ndarray(width=..)`` (a new context per frame) and
~25 ms/frame for full-size RGB + ``torch.nn.functional.interpolate(antialias=True)``
(``benchmarks/data_throughput.py --resize``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .errors import DecodeError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v")
# Never scan our own cache folders (they hold .npy files, but a user may point cache_dir inside the data).
_SKIP_DIRS = {".prednet2_cache"}
INTERPOLATION = "AREA"  # swscale filter; see the module docstring
# Video that ends this far before the container's declared duration counts as cut short (both must hold: a sound
# track a little longer than the picture, or timestamp rounding, is not a cut).
SHORT_BY_S, SHORT_BY_FRAC = 0.5, 0.05


class Decoded(NamedTuple):
    """What ``decode_video`` returns."""

    frames: np.ndarray  # (N, H, W, C) uint8, C = 3 (RGB) or 1 (gray)
    fps: float  # frame rate of ``frames``: the requested fps, or the native rate when fps=0
    truncated: bool  # cut short or damaged (see ``decode_video``); ``frames`` holds what decoded


def is_video_file(path: str | os.PathLike) -> bool:
    """True when the name ends in a known video extension (case-insensitive)."""
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def scan_videos(root: str | os.PathLike) -> list[Path]:
    """All video files under ``root`` (recursive, symlinks followed once), sorted by their path relative to root.

    Sorting by the relative POSIX path makes the order (and so clip indices) identical on every machine.
    """
    root = Path(root)
    if root.is_file():
        return [root] if is_video_file(root) else []
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop: do not walk it again
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        found.extend(Path(dirpath) / f for f in filenames if is_video_file(f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def resize_plan(h: int, w: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """For a ``h x w`` frame and target ``size=(H, W)``: ``(scaled_h, scaled_w, crop_top, crop_left)``.

    The shorter side (relative to the target aspect) is scaled to the target; the other side is scaled by the same
    factor and then centre-cropped.
    """
    H, W = size
    scale = max(H / h, W / w)
    sh = max(H, int(round(h * scale)))
    sw = max(W, int(round(w * scale)))
    return sh, sw, (sh - H) // 2, (sw - W) // 2


def frame_rotation(frame) -> int:
    """Quarter turns counter-clockwise that show ``frame`` upright (0-3): the display matrix its container carries,
    as a phone filming upright writes it (the pixels are stored sideways). Angles between quarter turns round to
    the nearest; flips in the matrix are ignored; 0 where PyAV cannot read one."""
    return round((getattr(frame, "rotation", 0) or 0) / 90.0) % 4


def upright_plan(frame, size: tuple[int, int]) -> tuple[int, int, int, int, int]:
    """``(width, height, quarter_turns, crop_top, crop_left)`` for one video's frames: scale a stored frame to
    ``width x height``, turn it upright (``upright``), then crop ``size`` at the offsets (``resize_plan`` on the
    upright frame)."""
    k = frame_rotation(frame)
    h, w = (frame.width, frame.height) if k % 2 else (frame.height, frame.width)  # as shown, not as stored
    sh, sw, top, left = resize_plan(h, w, size)
    return (sh, sw, k, top, left) if k % 2 else (sw, sh, k, top, left)


def upright(a: np.ndarray, quarter_turns: int) -> np.ndarray:
    """An (H, W, ...) frame turned counter-clockwise by ``quarter_turns`` (a view; ``np.rot90``)."""
    return np.rot90(a, quarter_turns, axes=(0, 1)) if quarter_turns else a


def native_rate(stream) -> float:
    """A video stream's frame rate: its average, guessed or base rate, the first above 0 (FFmpeg's 25 without one)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    return 25.0  # no rate in the container at all: FFmpeg's own default guess


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a video before any container is opened (a broken link, an unreadable or empty file), as
    a short reason; None when it has bytes to read. Shared by the decoder and ``prednet2.stream``'s frame source."""
    try:
        nbytes = os.path.getsize(path)
    except OSError as e:
        return "a broken link (its target is missing)" if os.path.islink(path) else f"cannot read file ({e.strerror})"
    return "empty file (0 bytes)" if nbytes == 0 else None


def container_problem(e: av.FFmpegError) -> str:
    """FFmpeg's failure to open a container as a short reason (not its "[Errno 1094995529] ..." text)."""
    return f"not a readable video container (corrupt, truncated or not a video): {e.strerror}"


def decode_video(
    path: str | os.PathLike,
    *,
    size: tuple[int, int],
    fps: float = 0.0,
    grayscale: bool = False,
    start: float = 0.0,
    duration: float | None = None,
) -> Decoded:
    """Decode one video file to ``(N, H, W, C)`` uint8 frames.

    Args:
        size: ``(H, W)`` output size (shorter side resize, then centre crop).
        fps: resample to this frame rate (sample-and-hold on presentation timestamps: output time ``k / fps``
            shows the last source frame whose timestamp is ``<=`` it). 0 keeps every decoded frame.
        grayscale: one channel (FFmpeg ``gray``, i.e. luma) instead of RGB.
        start, duration: decode only ``[start, start + duration)`` seconds; a start > 0 seeks to the keyframe
            before it instead of decoding from the beginning.

    Raises:
        DecodeError: with a short ``reason`` (empty file, not a video container, no video stream, no frames).

    ``truncated`` is set when the file was cut short or damaged and ``frames`` holds what decoded: a decode error, a
    packet the demuxer marks corrupt (a cut mp4, mov or avi: FFmpeg's frame threads swallow the decode error), or,
    when decoding to the end, video that stops short of the duration the container declares (a cut mkv or webm,
    whose packets all look whole) by more than ``SHORT_BY_S`` seconds and ``SHORT_BY_FRAC`` of it.
    """
    path = str(path)
    problem = file_problem(path)
    if problem:
        raise DecodeError(path, problem)
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise DecodeError(path, container_problem(e)) from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DecodeError(path, f"cannot open: {e}") from None
    with container:
        if not container.streams:  # e.g. an mp4 cut before its index (moov atom)
            raise DecodeError(path, "no streams found (truncated or corrupt container)")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            raise DecodeError(path, f"no video stream (only {', '.join(kinds)}; audio-only file?)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame+slice threads inside FFmpeg; the GIL is released while decoding
        native = native_rate(stream)
        fmt = "gray" if grayscale else "rgb24"
        out: list[np.ndarray] = []
        plan = None
        truncated = False
        # One reformatter for the whole video keeps its SwsContext: frame.to_ndarray(width=...) builds a new one
        # per frame, which costs ~10x the scaling itself.
        reformatter = VideoReformatter()

        def convert(frame) -> np.ndarray:
            nonlocal plan
            if plan is None:
                plan = upright_plan(frame, size)
            sw, sh, k, top, left = plan
            a = reformatter.reformat(frame, width=sw, height=sh, format=fmt, interpolation=INTERPOLATION).to_ndarray()
            a = upright(a, k)[top : top + size[0], left : left + size[1]]
            return a[..., None] if a.ndim == 2 else a

        if start > 0 and stream.time_base is not None:
            # Seek to the keyframe at or before `start`; frames before it are decoded and dropped below.
            container.seek(int(start / stream.time_base) + (stream.start_time or 0), stream=stream, backward=True)
        end = math.inf if duration is None else start + duration
        t0 = None  # timestamp of the stream's first frame (streams often start at t > 0)
        prev = None  # (frame, t) not yet emitted: with fps > 0, its repeat count needs the next frame's time
        next_k = 0  # index of the next output time k / fps
        i = 0
        t = None  # the last source frame's time, from t0
        seen = {"corrupt": False}
        try:
            for frame in decode_marking_corrupt(container, stream, seen):
                t = frame.time if frame.time is not None else i / native
                i += 1
                if t0 is None:
                    t0 = t if start == 0 else (stream.start_time or 0) * float(stream.time_base or 0)
                t = t - t0
                if prev is not None and t <= prev[1]:  # broken/missing timestamps: fall back to the native rate
                    t = prev[1] + 1.0 / native
                if t < start - 1e-6:
                    continue
                if t >= end:
                    break
                if fps <= 0:
                    out.append(convert(frame))
                    continue
                if prev is not None:
                    next_k = _emit(out, prev, t, fps, start, next_k, convert)
                prev = (frame, t)
        except av.FFmpegError:
            truncated = True  # keep what decoded before the error; the caller decides whether it is enough
        to_end = duration is None and t is not None  # a cut mkv or webm: no error, no corrupt packet, just short
        truncated = truncated or seen["corrupt"] or (to_end and ends_short(stream, container, t, native))
        if fps > 0 and prev is not None:
            # The last frame lasts one native frame; the quarter-output-frame margin absorbs timestamp rounding
            # (e.g. mkv's 1 ms time base), so 1 s at 30 fps gives exactly 10 frames at fps=10, not 11.
            last_end = min(prev[1] + 1.0 / native - 0.25 / fps, end)
            next_k = _emit(out, prev, last_end, fps, start, next_k, convert)
    if not out:
        raise DecodeError(
            path, "no decodable video frames" + (" (decode error at the first frame)" if truncated else "")
        )
    return Decoded(np.stack(out), float(fps) if fps > 0 else native, truncated)


def decode_marking_corrupt(container, stream, seen: dict):
    """``container.decode(stream)`` that sets ``seen["corrupt"]`` when the demuxer marks a packet corrupt (a cut mp4,
    mov or avi: with FFmpeg's frame threads on, its decode error never reaches Python)."""
    for packet in container.demux(stream):
        if packet.is_corrupt:
            seen["corrupt"] = True
        yield from packet.decode()


def ends_short(stream, container, last_t: float, native: float) -> bool:
    """Whether the video, decoded to its end, stops well before the duration its container declares (the video
    stream's own, else the container's): the last frame shown from ``last_t`` for one native frame."""
    declared = None
    if stream.duration and stream.time_base:
        declared = float(stream.duration * stream.time_base)
    elif container.duration:
        declared = container.duration / av.time_base
    if not declared or declared <= 0:
        return False
    missing = declared - (last_t + 1.0 / native)
    return missing > max(SHORT_BY_S, SHORT_BY_FRAC * declared)


def _emit(out, prev, t_next, fps, start, next_k, convert) -> int:
    """Append ``prev``'s frame once per output time ``start + k/fps`` before ``t_next``; return the next k.

    Called with consecutive frames, so these are exactly the output times in ``[prev_t, t_next)``.
    """
    n = 0
    while start + next_k / fps < t_next - 1e-9:
        n += 1
        next_k += 1
    if n:
        out.extend([convert(prev[0])] * n)
    return next_k
