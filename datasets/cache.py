"""Decode-once cache: each video's decoded, resized frames stored once on disk as a ``.npy`` file.

- **Key.** ``sha1(real path, file size, mtime_ns, size, fps, grayscale, format version)``: a changed file (new
  size or mtime) or other decode options give a new key, so stale frames are never read.
- **Files.** ``<cache_dir>/<stem>-<key>.npy`` holds ``(N, H, W, C)`` uint8 frames, read back as a memmap.
  Files are written to a temporary name and moved into place with ``os.replace``, so a reader never sees a half
  written file and two processes building the same cache at once are safe (both write the same bytes; the last
  rename wins).
- **Scan index.** ``<cache_dir>/scan-<hash>.json`` remembers, per file, its size, mtime, key and frame count or
  the reason it was skipped, so a re-scan of an unchanged folder only stats files: it opens no video and no
  ``.npy``. Decode failures are remembered too (until the file changes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import decode as _decode  # called through the module so tests can monkeypatch decode_video
from .errors import DataError, DecodeError
from .prep import ordered_map, prep_workers

CACHE_VERSION = 2  # 2: frames turned upright by the container's display rotation
log = logging.getLogger("prednet2.datasets")


class CacheEntry(NamedTuple):
    """One scanned file: its cache key and frame count, or why it cannot be used."""

    path: str  # absolute path
    key: str  # cache key ("" when the file could not be stat'ed)
    n_frames: int  # decoded frames after resize/fps (0 when skipped)
    reason: str  # "" when usable
    truncated: bool  # cut short or damaged (decode.decode_video); n_frames counts what decoded


def resolve_cache_dir(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the cache lives: ``cache_dir`` if given, else ``<root>/.prednet2_cache`` if writable, else
    ``~/.cache/prednet2``. The folder is created. One that cannot be (a file, or a folder not writable) raises
    ``DataError`` naming it."""
    if cache_dir:
        p = Path(cache_dir).expanduser()
        if not _writable_dir(p):
            why = "is a file, not a folder" if p.is_file() else "is not a folder this user can write to"
            raise DataError(
                f"cache folder {cache_dir} (data.cache_dir) {why}; give a writable folder, or '' for the default"
            )
        return p
    root = Path(root)
    base = root if root.is_dir() else root.parent
    for p in (base / ".prednet2_cache", Path.home() / ".cache" / "prednet2"):
        if _writable_dir(p):
            return p
    raise DataError(
        f"no writable cache folder: tried {base / '.prednet2_cache'} and ~/.cache/prednet2; set data.cache_dir"
    )


def _writable_dir(p: Path) -> bool:
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".probe-"):
            pass
        return True
    except OSError:
        return False


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _atomic_write(dest: Path, write) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


class FrameCache:
    """The decode-once store for one set of decode options (size, fps, grayscale) in one folder."""

    def __init__(
        self, cache_dir: str | os.PathLike, *, size: tuple[int, int], fps: float, grayscale: bool, workers: int = 0
    ):
        """``workers``: threads that decode cache misses (``data.prep_workers``; 0: ``prep.prep_workers``'s auto)."""
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.grayscale = bool(grayscale)
        self.workers = int(workers)

    # ---- keys and files ---------------------------------------------------------------------------------
    def key(self, path: str, stat: tuple[int, int]) -> str:
        """Cache key of ``path`` whose ``(size, mtime_ns)`` is ``stat``."""
        ident = [os.path.realpath(path), stat[0], stat[1], self.size, self.fps, self.grayscale, CACHE_VERSION]
        return hashlib.sha1(json.dumps(ident).encode()).hexdigest()[:24]

    def npy_path(self, path: str, key: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem)[:40]
        return self.dir / f"{stem}-{key}.npy"

    def load(self, path: str, key: str) -> np.ndarray:
        """The cached frames ``(N, H, W, C)`` uint8 as a read-only memmap (opens no video)."""
        return np.load(self.npy_path(path, key), mmap_mode="r")

    def _cached_frames(self, path: str, key: str) -> int | None:
        """How many frames the cache holds for ``path``; None without a readable cache file (missing or damaged:
        the video is decoded again)."""
        try:
            return int(self.load(path, key).shape[0])
        except (OSError, ValueError):
            return None

    def store(self, path: str, key: str, frames: np.ndarray) -> Path:
        dest = self.npy_path(path, key)
        _atomic_write(dest, lambda f: np.save(f, np.ascontiguousarray(frames, dtype=np.uint8)))
        return dest

    # ---- scanning ---------------------------------------------------------------------------------------
    def _index_path(self, root: str) -> Path:
        ident = [os.path.realpath(root), self.size, self.fps, self.grayscale, CACHE_VERSION]
        return self.dir / f"scan-{hashlib.sha1(json.dumps(ident).encode()).hexdigest()[:16]}.json"

    def _read_index(self, root: str) -> dict:
        try:
            d = json.loads(self._index_path(root).read_text())
            return d["entries"] if d.get("version") == CACHE_VERSION else {}
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # no index yet, or a damaged one: rebuild it

    def _write_index(self, root: str, entries: dict) -> None:
        data = json.dumps({"version": CACHE_VERSION, "entries": entries}, ensure_ascii=False).encode()
        _atomic_write(self._index_path(root), lambda f: f.write(data))

    def build(self, root: str | os.PathLike, paths: list[Path], *, progress: bool = True) -> list[CacheEntry]:
        """Make sure every file in ``paths`` is cached (decoding only the misses); one ``CacheEntry`` per path.

        ``root`` only names the scan index. A tqdm bar shows the decoding of cache misses, ``workers`` at a time.
        """
        root = str(root)
        old = self._read_index(root)
        entries: list[CacheEntry | None] = []
        misses: list[tuple[int, str, tuple[int, int], str]] = []
        for p in paths:
            path = os.path.abspath(p)
            st = _stat(path)
            if st is None:
                entries.append(CacheEntry(path, "", 0, "cannot stat file (vanished or unreadable)", False))
                continue
            k = self.key(path, st)
            e = old.get(path)
            if e and e.get("key") == k and e.get("reason"):  # a skip is remembered: the file is not read again
                entries.append(CacheEntry(path, k, int(e["n_frames"]), e["reason"], bool(e["truncated"])))
                continue
            n = self._cached_frames(path, k)  # indexed here, or built by another scan (another root, process)
            if n is not None:
                entries.append(CacheEntry(path, k, n, "", bool(e and e.get("truncated"))))
                continue
            entries.append(None)
            misses.append((len(entries) - 1, path, st, k))
        decoded = ordered_map(
            lambda m: self._decode_one(m[1], m[3]),
            misses,
            workers=prep_workers(self.workers),
            desc="decoding videos (once; cached after)",
            progress=progress,
        )
        for (i, *_), e in zip(misses, decoded, strict=True):
            entries[i] = e
        done: list[CacheEntry] = entries  # type: ignore[assignment]
        scanned = {
            e.path: {"key": e.key, "n_frames": e.n_frames, "reason": e.reason, "truncated": e.truncated}
            for e in done
            if e.key
        }
        # Keep entries of files this scan did not ask about (e.g. the other split of a labelled folder) while the
        # file exists, so alternating scans neither rewrite the index nor re-decode each other's failures.
        new = {p: e for p, e in old.items() if p not in scanned and os.path.exists(p)}
        new.update(scanned)
        if new != old:
            for path, e in old.items():  # drop .npy files of entries that changed (stale frames)
                ne = new.get(path)
                if ne and ne["key"] != e.get("key") and not e.get("reason"):
                    self.npy_path(path, e["key"]).unlink(missing_ok=True)
            try:
                self._write_index(root, new)
            except OSError as err:  # the frames are cached; only the fast re-scan is lost
                log.warning("could not write the scan index in %s: %s", self.dir, err)
        return done

    def _decode_one(self, path: str, key: str) -> CacheEntry:
        try:
            d = _decode.decode_video(path, size=self.size, fps=self.fps, grayscale=self.grayscale)
        except DecodeError as e:
            return CacheEntry(path, key, 0, e.reason, False)
        self.store(path, key, d.frames)
        return CacheEntry(path, key, int(d.frames.shape[0]), "", d.truncated)
