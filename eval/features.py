"""Frozen features for probes: the model's ``extract_features``, or pooled raw pixels, cached to disk.

A cache entry is one ``.npz`` per (feature source, data spec, split, data options), named by a hash of those
parts; see ``cache_key``. The source of a trained model is its checkpoint's absolute path and mtime, so a
retrained checkpoint at the same path misses the cache; a random-init model is keyed by its seed and the
checkpoint whose config it copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch.utils.data import DataLoader, Dataset

from .common import progress

# Bump when the meaning of cached arrays changes (pooling, layout), so old cache files are not reused.
FEATURE_VERSION = 1

Features = dict[str, np.ndarray]  # {layer key "0", "1", ...: (N, F_l) float32}


# ---- identity and cache ------------------------------------------------------------------------------------
def checkpoint_id(path: str | os.PathLike) -> str:
    """``"<absolute path>@<mtime_ns>"``: changes whenever the file is rewritten."""
    p = Path(path).resolve()
    return f"{p}@{p.stat().st_mtime_ns}"


def cache_key(parts: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-able ``parts`` (sorted keys; tuples and lists hash alike)."""
    blob = json.dumps({"version": FEATURE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_cached(cache_dir: str | os.PathLike, key: str) -> tuple[Features, np.ndarray] | None:
    """The cached (features, labels) for ``key``, or None when absent or unreadable (then it is recomputed)."""
    path = Path(cache_dir) / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            feats = {k[len("feat_") :]: z[k] for k in z.files if k.startswith("feat_")}
            labels = z["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    return feats, labels


def save_cached(cache_dir: str | os.PathLike, key: str, feats: Features, labels: np.ndarray, parts: Mapping) -> Path:
    """Write atomically (temporary file + ``os.replace``) so an interrupted run never leaves a half file."""
    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{key}.npz"
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".npz.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                labels=labels,
                meta=np.array(json.dumps(dict(parts), sort_keys=True, default=str)),
                **{f"feat_{k}": v for k, v in feats.items()},
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def cached_features(
    cache_dir: str | os.PathLike | None,
    parts: Mapping[str, Any],
    compute: Callable[[], tuple[Features, np.ndarray]],
) -> tuple[Features, np.ndarray, bool]:
    """Return (features, labels, hit): from ``cache_dir`` when present, else ``compute()`` and store it.

    ``cache_dir=None`` turns caching off.
    """
    if cache_dir is None:
        feats, labels = compute()
        return feats, labels, False
    key = cache_key(parts)
    got = load_cached(cache_dir, key)
    if got is not None:
        return got[0], got[1], True
    feats, labels = compute()
    save_cached(cache_dir, key, feats, labels, parts)
    return feats, labels, False


# ---- extraction --------------------------------------------------------------------------------------------
def _loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def _labels(batch: Mapping[str, Any]) -> np.ndarray:
    if "label" not in batch:
        raise ValueError("dataset items carry no 'label': a linear probe needs a labelled dataset")
    return torch.as_tensor(batch["label"]).reshape(-1).cpu().numpy().astype(np.int64)


def to_unit_float(video: torch.Tensor) -> torch.Tensor:
    """uint8 (..., C, H, W) -> float32 in [0, 1]; float input is passed through as float32."""
    return video.float().div_(255.0) if video.dtype == torch.uint8 else video.float()


@torch.no_grad()
def extract_model_features(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    use_mask: bool = True,
    desc: str = "features",
) -> tuple[Features, np.ndarray]:
    """Run ``model.extract_features`` over ``dataset`` in order.

    Args:
        dataset: items {"video": uint8 (T, C, H, W), "label": int64 scalar, "mask"?: float (T, 1, H, W)}.
        use_mask: hand the item's motion mask to the model when the dataset provides one.

    Returns:
        ({"0": (N, F_0), "1": (N, F_1), ...} float32, labels (N,) int64).
    """
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    for batch in progress(_loader(dataset, batch_size, num_workers), desc):
        clip = to_unit_float(batch["video"]).to(device)  # (B, T, C, H, W)
        mask = batch["mask"].to(device).float() if (use_mask and "mask" in batch) else None
        out = model.extract_features(clip, mask=mask)
        for layer, f in out.items():
            chunks.setdefault(str(layer), []).append(f.detach().float().reshape(f.shape[0], -1).cpu().numpy())
        labels.append(_labels(batch))
    if not labels:
        raise ValueError("the dataset is empty: no clips to extract features from")
    feats = {k: np.concatenate(v) for k, v in sorted(chunks.items(), key=lambda kv: int(kv[0]))}
    return feats, np.concatenate(labels)


def pooled_pixels(video: torch.Tensor, *, pool: int = 8, bins: int = 4) -> torch.Tensor:
    """The pixel baseline's features of a batch of clips.

    Each frame is average-pooled to ``pool`` x ``pool``; the T frames are split into ``bins`` contiguous
    temporal bins (``torch.tensor_split``, so sizes differ by at most one) and averaged within each bin. The bins
    keep coarse order in time, so a linear read-out can see where things went (motion), not only what was there.

    Args:
        video: (B, T, C, H, W) uint8 or float in [0, 1].
    Returns:
        (B, bins * C * pool * pool) float32.
    """
    x = to_unit_float(video)
    b, t = x.shape[:2]
    if t < bins:
        raise ValueError(f"clips have {t} frames, fewer than the {bins} temporal bins of the pixel baseline")
    x = F.adaptive_avg_pool2d(rearrange(x, "b t c h w -> (b t) c h w"), pool)
    x = rearrange(x, "(b t) c h w -> b t c h w", b=b)
    binned = torch.stack([chunk.mean(dim=1) for chunk in torch.tensor_split(x, bins, dim=1)], dim=1)
    return rearrange(binned, "b k c h w -> b (k c h w)")  # (B, bins*C*pool*pool)


def extract_pixel_features(
    dataset: Dataset,
    *,
    batch_size: int = 16,
    num_workers: int = 0,
    pool: int = 8,
    bins: int = 4,
    desc: str = "pixels",
) -> tuple[Features, np.ndarray]:
    """``pooled_pixels`` over ``dataset`` as one "layer" ``"0"``: ({"0": (N, F)}, labels (N,))."""
    rows: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for batch in progress(_loader(dataset, batch_size, num_workers), desc):
        rows.append(pooled_pixels(batch["video"], pool=pool, bins=bins).numpy())
        labels.append(_labels(batch))
    if not labels:
        raise ValueError("the dataset is empty: no clips to extract features from")
    return {"0": np.concatenate(rows)}, np.concatenate(labels)


def select_layers(feats: Features, layers: list[int] | None) -> Features:
    """Keep ``layers`` (None keeps all), in the given order. Unknown layers raise ValueError naming them."""
    if layers is None:
        return dict(feats)
    missing = [str(layer) for layer in layers if str(layer) not in feats]
    if missing:
        raise ValueError(f"--layers: the model has layers {sorted(feats, key=int)}, not {missing}")
    return {str(layer): feats[str(layer)] for layer in layers}
