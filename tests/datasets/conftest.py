"""Tiny test videos written with PyAV, so decoding is checked against the frames that went in."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest


def coded_frames(n: int, h: int = 16, w: int = 16, video_id: int = 0) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 frames whose values encode (video_id, frame index): smooth, so lossy codecs keep them.

    Channel 0 = 8 * frame index (so at most 32 frames), channel 1 = 40 * video_id, channel 2 a smooth horizontal ramp.
    """
    f = np.zeros((n, h, w, 3), np.uint8)
    assert n <= 32, "coded_frames encodes at most 32 frame indices"
    f[..., 0] = (np.arange(n) * 8)[:, None, None]
    f[..., 1] = 40 * video_id % 256
    f[..., 2] = np.linspace(0, 255, w, dtype=np.uint8)[None, None, :]
    return f


def decode_id(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``coded_frames`` (tolerant to codec noise): per-frame (video ids, frame indices)."""
    f = frames.astype(np.float64)
    idx = np.round(f[..., 0].mean(axis=(1, 2)) / 8).astype(int)
    vid = np.round(f[..., 1].mean(axis=(1, 2)) / 40).astype(int)
    return vid, idx


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    *,
    fps: float = 10,
    codec: str = "ffv1",
    audio: bool = False,
    rotation: int = 0,
) -> Path:
    """Write ``(N, H, W, 3)`` uint8 frames. ``ffv1`` (in .mkv) and ``libx264rgb`` are lossless; ``mpeg4`` is lossy.
    ``rotation``: a display matrix turning the stored frames that many degrees counter-clockwise (as a phone
    writes one), where this PyAV can write it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.height, s.width = frames.shape[1:3]
        if rotation:
            s.set_display_rotation(rotation)
        s.pix_fmt = {"ffv1": "bgr0", "libx264rgb": "rgb24"}.get(codec, "yuv420p")
        if codec == "libx264rgb":
            s.options = {"qp": "0"}
        elif codec == "mpeg4":
            s.bit_rate = 4_000_000  # the default (~200 kb/s) blurs the colour that codes the frame index
        if len(frames) == 0:
            c.start_encoding()  # write the header anyway: a valid container whose video stream has no frames
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_audio_only(path: str | os.PathLike) -> Path:
    """A file with one audio stream and no video (named like a video by the caller)."""
    path = Path(path)
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("mp2", rate=44100)
        s.layout = "mono"
        t = np.sin(np.linspace(0, 100, 1152 * 4)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray((t * 3000).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = 44100
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_truncated_mp4(path: str | os.PathLike, n: int = 12) -> Path:
    """An mp4 cut in half: its index (moov atom, written last) is gone, so no decoder can open it."""
    path = write_video(path, coded_frames(n, 32, 32), codec="mpeg4")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_broken_mp4(path: str | os.PathLike, n: int = 24) -> Path:
    """A valid mp4 (its index at the end, intact) with a tenth of its bytes zeroed at 60 %: the first frames decode,
    then FFmpeg raises (about half of the ``n`` frames decode)."""
    frames = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # noise: every frame is big
    path = write_video(path, frames, codec="mpeg4")
    data = bytearray(path.read_bytes())
    at, span = len(data) * 6 // 10, len(data) // 10
    data[at : at + span] = bytes(span)
    path.write_bytes(bytes(data))
    return path


def write_shapes_videos(root: str | os.PathLike, n: int, *, T: int, n_distractors: int) -> Path:
    """``n`` lossless videos of moving shapes (``synthetic:shapes``' renderer, seeds 0..n-1) as root/v<i>.mkv."""
    from prednet2.datasets.shapes import render_shapes_clip

    root = Path(root)
    for i in range(n):
        clip = render_shapes_clip(np.random.default_rng(i), T=T, n_distractors=n_distractors)
        write_video(root / f"v{i}.mkv", np.ascontiguousarray(clip["video"].transpose(0, 2, 3, 1)), codec="ffv1")
    return root


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """One good clip in a sub-folder with a space (and non-ASCII) in its name, plus 3 bad files."""
    root = tmp_path / "mixed"
    write_video(root / "good sub ü" / "good clip.mp4", coded_frames(12, 32, 32), codec="mpeg4")
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("this is a text file, not a video\n")
    write_truncated_mp4(root / "cut.mp4")
    return root


@pytest.fixture
def vt():
    """The video helpers above, as a fixture (tests/ has no __init__.py, so test modules cannot import conftest)."""
    return SimpleNamespace(
        coded_frames=coded_frames,
        decode_id=decode_id,
        write_video=write_video,
        write_audio_only=write_audio_only,
        write_truncated_mp4=write_truncated_mp4,
        write_broken_mp4=write_broken_mp4,
        write_shapes_videos=write_shapes_videos,
    )
