"""Encode side-by-side panels to mp4 with PyAV, one frame at a time (constant memory).

``Mp4Writer`` picks the first codec this PyAV/FFmpeg build can encode (``h264`` via libx264, else ``mpeg4``),
pads odd sizes to even (yuv420p needs even sides) and encodes frames as they come, so a stream of any length
never holds more than the encoder's own small lookahead.

Panel helpers turn tensors into uint8 RGB images: ``heatmap`` (a 2-D map through a matplotlib colormap, scaled by a
running maximum so colours mean the same thing from frame to frame), ``gray_panel`` and ``hstack_panels``.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

__all__ = ["Mp4Writer", "pick_codec", "heatmap", "gray_panel", "to_panel", "hstack_panels", "RunningMax"]

_CODECS = ("h264", "mpeg4")


def pick_codec(preferred: str = "auto") -> str:
    """The first encoder in ``("h264", "mpeg4")`` that this FFmpeg build has (or ``preferred`` if it exists)."""
    candidates = _CODECS if preferred == "auto" else (preferred,)
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
            continue
    raise RuntimeError(
        f"no usable video encoder among {', '.join(candidates)} in this PyAV build; "
        "install a PyAV wheel with libx264 (pip install av) or pass codec='mpeg4'"
    )


class Mp4Writer:
    """Streaming mp4 encoder. ``write(rgb)`` takes ``(H, W, 3)`` uint8; every frame must have the first's size.

    Use as a context manager (or call ``close``) so the encoder is flushed and the file is playable.
    """

    def __init__(self, path: str | Path, *, fps: float = 10.0, codec: str = "auto", crf: int = 23):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec = pick_codec(codec)
        self.fps = fps
        self._crf = crf
        self._container = av.open(str(self.path), mode="w")
        self._stream = None
        self._size: tuple[int, int] | None = None  # (H, W) of the input frames
        self.n_frames = 0

    def _open_stream(self, h: int, w: int) -> None:
        from fractions import Fraction

        rate = Fraction(self.fps).limit_denominator(1000) if self.fps > 0 else Fraction(10)
        s = self._container.add_stream(self.codec, rate=rate)
        s.width, s.height = w + (w % 2), h + (h % 2)  # yuv420p: even sides
        s.pix_fmt = "yuv420p"
        if self.codec == "h264":
            s.options = {"crf": str(self._crf), "preset": "veryfast"}
        else:
            s.bit_rate = 2_000_000
        self._stream = s
        self._size = (h, w)

    def write(self, rgb: np.ndarray) -> None:
        """Encode one ``(H, W, 3)`` uint8 RGB frame."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"Mp4Writer.write expects (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        if self._stream is None:
            self._open_stream(h, w)
        elif (h, w) != self._size:
            raise ValueError(f"frame size changed from {self._size} to {(h, w)}; every frame must have one size")
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.n_frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        if self._stream is not None:
            for packet in self._stream.encode(None):  # flush the encoder's lookahead
                self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RunningMax:
    """A decaying running maximum, so heatmap colours stay comparable across frames (no per-frame rescaling)."""

    def __init__(self, decay: float = 0.99, floor: float = 1e-6):
        self.decay, self.floor, self.value = decay, floor, 0.0

    def update(self, x: float) -> float:
        self.value = max(float(x), self.value * self.decay, self.floor)
        return self.value


_LUTS: dict[str, np.ndarray] = {}


def _lut(cmap: str) -> np.ndarray:
    if cmap not in _LUTS:
        import matplotlib

        rgba = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))  # (256, 4) floats
        _LUTS[cmap] = (rgba[:, :3] * 255).round().astype(np.uint8)  # (256, 3)
    return _LUTS[cmap]


def heatmap(m: np.ndarray, vmax: float, *, cmap: str = "magma") -> np.ndarray:
    """``(H, W)`` float map -> ``(H, W, 3)`` uint8 RGB through ``cmap``, with 0 -> first colour, vmax -> last."""
    idx = np.clip(np.asarray(m, np.float32) / max(vmax, 1e-12), 0.0, 1.0) * 255.0
    return _lut(cmap)[idx.astype(np.uint8)]


def gray_panel(m: np.ndarray) -> np.ndarray:
    """``(H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8 gray."""
    g = (np.clip(np.asarray(m, np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def to_panel(img: np.ndarray, height: int, label: str = "") -> np.ndarray:
    """Scale an ``(h, w, 3)`` uint8 image to ``height`` rows (nearest: keeps error pixels crisp) and label it."""
    h, w = img.shape[:2]
    width = max(1, round(w * height / h))
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)
    if label:
        out = np.ascontiguousarray(out)
        scale = max(0.35, height / 500)
        cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def hstack_panels(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Join same-height ``(H, w_i, 3)`` uint8 panels left to right with a ``gap``-pixel black separator."""
    if not panels:
        raise ValueError("hstack_panels: no panels")
    h = panels[0].shape[0]
    sep = np.zeros((h, gap, 3), np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if p.shape[0] != h:
            raise ValueError(f"panel {i} has height {p.shape[0]}, expected {h}")
        if i:
            parts.append(sep)
        parts.append(p)
    return np.concatenate(parts, axis=1)
