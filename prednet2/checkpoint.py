"""Checkpoints: atomic saves, ``weights_only=True`` loads, strict state loading with a readable mismatch error.

A checkpoint is a plain dict of tensors and plain Python values, so ``torch.load(weights_only=True)`` can read it
(no pickled code runs on load):

    {"format": 1, "model": state_dict, "optimizer": state_dict | None, "scheduler": state_dict | None,
     "config": Config.to_dict(), "git_commit": str, "prednet2_version": str, "step": int,
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor], "numpy": {...}, "python": {...}}, "extra": dict}

``extra`` holds what the trainer needs to continue exactly (data position, best loss, ...).
"""

from __future__ import annotations

import os
import random
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prednet2.config import Config, ConfigError
from prednet2.runinfo import git_commit, prednet2_version

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into. The message says which file."""


# ---- saving -----------------------------------------------------------------------------------------------
def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare module under DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        else:
            return model


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A crash or an exception mid-save leaves the previous file at ``path`` untouched (os.replace is atomic on
    POSIX within one filesystem); the error is raised, never only logged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy a finished checkpoint file to ``dst`` atomically (for best.pt / step_XXXXXX.pt)."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dst.parent)
    return dst


def _fsync_dir(folder: Path) -> None:
    # The rename itself is durable only once the directory entry is flushed.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    config: Config,
    step: int,
    extra: dict[str, Any] | None = None,
    scheduler: Any = None,
) -> Path:
    """Write a checkpoint atomically (see the module docstring for its contents). Returns the path."""
    if not isinstance(config, Config):  # load_model rebuilds the model from the whole config
        hint = "; pass the whole Config, not its model section" if type(config).__name__ == "ModelConfig" else ""
        raise TypeError(
            f"save_checkpoint: config must be the run's prednet2.config.Config, got {type(config).__name__}{hint}"
        )
    ckpt = {
        "format": FORMAT,
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "config": config.to_dict(),
        "git_commit": git_commit(),
        "prednet2_version": prednet2_version(),
        "step": int(step),
        "rng": get_rng_state(),
        "extra": dict(extra or {}),
    }
    return atomic_torch_save(ckpt, path)


# ---- RNG state as tensors and plain values (weights_only-safe) ----------------------------------------------
def get_rng_state() -> dict[str, Any]:
    """torch, CUDA, numpy and python RNG states, stored as tensors/ints/floats so weights_only loading works."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
    }


def set_rng_state(rng: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured (CUDA states only when the device count matches)."""
    torch.set_rng_state(rng["torch"])
    cuda = rng.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = rng["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = rng["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"]))


# ---- loading ----------------------------------------------------------------------------------------------
def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file from what a user passes: the file itself, or a run folder (its ``checkpoints/last.pt``).

    Raises CheckpointError with one line saying what was found instead.
    """
    p = Path(path).expanduser()  # --checkpoint=~/runs/x: the shell leaves a ~ after = alone
    if p.is_dir():
        for c in (p / "checkpoints" / "last.pt", p / "last.pt"):
            if c.is_file():
                return c
        raise CheckpointError(f"{p}: a folder without checkpoints/last.pt; pass a run folder of train.py or a .pt file")
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file (expected RUN/checkpoints/last.pt from train.py, or RUN itself)")
    return p


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``. Raises CheckpointError naming the file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path}: a folder, not a checkpoint file; a run folder's is {path / 'checkpoints' / 'last.pt'} "
            "(prednet2.checkpoint.resolve_checkpoint(RUN) finds it)"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip archive (or, in old formats, a pickle)
        raise CheckpointError(f"{path}: not a checkpoint (torch.save writes a zip archive; this file starts {head!r})")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning would only precede our one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling errors come in many types; all mean "not loadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if first.startswith("Weights only load failed"):  # torch's advice (weights_only=False) is not ours to give
            first = "a pickle of something other than tensors and plain values, which prednet2 never loads"
        if head == b"PK" and not zipfile.is_zipfile(path):  # a zip cut short: torch says only "Invalid argument"
            raise CheckpointError(
                f"{path}: truncated or damaged checkpoint (its zip archive is incomplete: an interrupted copy?); copy "
                "it again, or use another of the run's checkpoints (checkpoints/best.pt, step_*.pt)"
            ) from e
        raise CheckpointError(f"{path}: cannot be loaded as a prednet2 checkpoint ({first})") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path}: not a prednet2 checkpoint (no 'model'/'config' entries)")
    return ckpt


def state_dict_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between a model's parameters/buffers and a state dict (empty when they fit)."""
    own = unwrap_model(model).state_dict()
    problems = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if shapes:
        problems.append("shape mismatch " + "; ".join(_first(shapes)))
    if missing:
        problems.append("missing in checkpoint " + ", ".join(_first(missing)))
    if unexpected:
        problems.append("not in model " + ", ".join(_first(unexpected)))
    return problems


def _first(items: list[str], n: int = 4) -> list[str]:
    return items[:n] + ([f"... {len(items) - n} more"] if len(items) > n else [])


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts, as ``key: a -> b``."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, prefix + k + ".")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def load_model_state(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source: str | Path = "checkpoint",
    ckpt_config: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
) -> None:
    """``load_state_dict(strict=True)``, but a mismatch raises CheckpointError naming keys, shapes and, when both
    configs are given, the model-config fields that differ (the usual cause)."""
    problems = state_dict_mismatch(model, state)
    if problems:
        hint = ""
        if ckpt_config is not None and model_config is not None:
            diff = config_diff(ckpt_config.get("model", {}), model_config.get("model", {}), "model.")
            if diff:
                hint = f" (model config differs: {'; '.join(_first(diff))})"
        raise CheckpointError(
            f"{source}: architecture differs from the model being loaded: {' | '.join(problems)}{hint}"
        )
    unwrap_model(model).load_state_dict(state, strict=True)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Config]:
    """Rebuild the model a checkpoint was trained with and load its weights (strict). Returns (model.eval(), cfg)."""
    from prednet2 import build_model

    ckpt = load_checkpoint(path, map_location="cpu")
    try:
        cfg = Config.from_stored(ckpt["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: its config no longer parses with this prednet2 version: {e}") from e
    model = build_model(cfg.model)
    load_model_state(model, ckpt["model"], source=path)
    return model.to(device).eval(), cfg
