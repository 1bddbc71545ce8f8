"""Errors and records shared by the video datasets."""

from __future__ import annotations

from typing import NamedTuple


class DataError(ValueError):
    """A data spec names no usable video, or a path/option is wrong. The message names the path and says why."""


class SkippedFile(NamedTuple):
    """A file found by a scan but not used, and why (e.g. ``"empty file (0 bytes)"``)."""

    path: str
    reason: str


class CutVideo(NamedTuple):
    """A video used although it is cut short or damaged partway: only its first ``frames`` frames are read."""

    path: str
    frames: int


class DecodeError(DataError):
    """One file could not be decoded. ``reason`` is the short text that ends up in ``SkippedFile.reason``."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
