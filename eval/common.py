"""Helpers shared by the eval CLIs: failing with exit 2, the device, loading a checkpoint, building data, JSON out.

The library raises; only these CLI helpers turn an error into one line on stderr and exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import torch

from prednet2.busy import busy_note
from prednet2.cli import int_at_least
from prednet2.config import Config, ConfigError, DataConfig, check_ranges


def fail(msg: str) -> NoReturn:
    """One clear line on stderr, exit status 2 (the CLI contract for a bad option or path)."""
    from prednet2.cli import error_prefix

    print(f"{error_prefix()}{msg}", file=sys.stderr)
    raise SystemExit(2)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu. Asking for cuda without one fails with exit 2."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        fail(f"--device {name!r}: expected auto, cpu or cuda[:N]")


_PROGRESS = [True]  # progress bars on; --no-progress turns them off for the whole process


def add_runtime_args(p) -> None:
    """``--threads`` and ``--no-progress``, the same in every eval CLI (``apply_runtime`` reads them)."""
    p.add_argument("--threads", type=int_at_least(0), default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def add_model_run_args(p) -> None:
    """``--device``, ``--clip-len``, ``--batch-size`` of the CLIs that run a checkpoint over clips, then
    ``add_runtime_args``'s."""
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--clip-len", type=int, help="frames per clip (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int_at_least(1), default=16)
    add_runtime_args(p)


def apply_runtime(args: Any) -> None:
    """Apply ``add_runtime_args``'s options: torch threads, progress bars."""
    set_threads(args.threads)
    _PROGRESS[0] = not getattr(args, "no_progress", False)
    device = str(getattr(args, "device", "cpu") or "cpu")
    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if args.threads == 0 and not on_gpu and (note := busy_note(torch.get_num_threads(), "--threads 1")):
        print(note, file=sys.stderr)


def progress(iterable, desc: str):
    """A transient tqdm bar over ``iterable`` (none with --no-progress)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, disable=not _PROGRESS[0])


def set_threads(n: int) -> None:
    """``n`` > 0 threads for torch and for the BLAS under numpy/scipy (the probes' solver): --threads 1 beside
    other jobs must mean one thread, or a probe's BLAS spins on every core (5x slower on 2 loaded cores)."""
    if n > 0:
        torch.set_num_threads(n)
        import scipy.linalg  # noqa: F401  (loads scipy's own BLAS, so the limit reaches it too)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)


@dataclasses.dataclass
class Loaded:
    """A checkpoint's model and config, plus what the reports quote about it."""

    model: torch.nn.Module
    cfg: Config
    path: Path
    step: int


def load_or_exit(path: str, device: torch.device | str = "cpu") -> Loaded:
    """Load a trained checkpoint (strict, weights_only) from its file or its run folder, or exit 2 with one line
    naming the file and why."""
    from prednet2.checkpoint import CheckpointError, load_checkpoint, load_model, resolve_checkpoint

    try:
        p = resolve_checkpoint(path)
        model, cfg = load_model(p, device=device)
        step = int(load_checkpoint(p, map_location="cpu").get("step", 0))
    except CheckpointError as e:
        fail(str(e))
    return Loaded(model=model.eval(), cfg=cfg, path=p, step=step)


def random_init_model(
    cfg: Config, seed: int, device: torch.device | str = "cpu", like: torch.nn.Module | None = None
) -> torch.nn.Module:
    """The same architecture as ``cfg.model`` with fresh weights drawn under ``seed`` (the --random-init control).

    Built exactly as ``prednet2.checkpoint.load_model`` builds the trained one; with ``like`` (the trained model)
    the parameter names and shapes are checked to match, so the control is never a different network.
    """
    from prednet2 import build_model

    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = build_model(cfg.model)
    if like is not None:
        own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        ref = {k: tuple(v.shape) for k, v in like.state_dict().items()}
        if own != ref:
            raise RuntimeError("--random-init built a model whose parameters differ from the checkpoint's")
    return model.to(device).eval()


def run_dir_of(checkpoint: str | os.PathLike) -> Path:
    """RUN/ for RUN/checkpoints/last.pt; the checkpoint's own folder otherwise."""
    p = Path(checkpoint).resolve()
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def data_config(cfg: Config, **overrides: Any) -> DataConfig:
    """The checkpoint's data config with the CLI's overrides (None values are ignored), ``prep_workers`` at auto.

    An override out of its config range (``--clip-len 0``, ``--batch-size 0``) exits 2 with one line naming the
    option, as ``train.py --set`` would for the config key."""
    over = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(DataConfig)}
    bad = sorted(set(over) - known)
    if bad:
        raise ValueError(f"unknown data options {bad}")
    # How many threads prepare a folder is this machine's business, not the checkpoint's: auto unless overridden.
    out = dataclasses.replace(cfg.data, **{"prep_workers": 0, **over})
    try:
        check_ranges(out, "data.")
    except ConfigError as e:
        key = next((k for k in ("clip_len", "batch_size") if k in over and str(e).startswith(f"data.{k}=")), None)
        fail(f"--{key.replace('_', '-')} {over[key]}: {e}" if key else str(e))
    return out


def uses_motion(cfg: Config) -> bool:
    """Whether the model was built to take motion masks (then the data must make them)."""
    return bool(cfg.motion.enabled and cfg.model.motion_channels > 0)


def input_motion(cfg: Config) -> Any:
    """The motion config the evaluation data needs: the masks the model takes (None without a motion stream), never
    the flow target (``model.flow_weight``), which only training reads."""
    return dataclasses.replace(cfg.motion, flow=False) if uses_motion(cfg) else None


def model_for_eval(args: Any, device: torch.device) -> tuple[Loaded, torch.nn.Module, DataConfig, Any]:
    """The loaded checkpoint; its model (or, with ``args.random_init``, the same architecture seeded by
    ``args.seed``); the data config in the checkpoint's input format with ``args.n_clips`` clips; and the motion
    config to pass to ``build_dataset`` (None without a motion stream). Exits 2 with one line on a bad checkpoint."""
    loaded = load_or_exit(args.checkpoint, device)
    cfg = loaded.cfg
    model = random_init_model(cfg, args.seed, device, like=loaded.model) if args.random_init else loaded.model
    dcfg = data_config(cfg, clip_len=args.clip_len, n_synthetic=args.n_clips, n_synthetic_test=args.n_clips)
    return loaded, model, dcfg, input_motion(cfg)


def build_or_exit(
    spec: str, *, cfg: DataConfig, split: str, seed: int, motion, labelled: bool, what: str = "", **kw: Any
):
    """``prednet2.datasets.build_dataset`` or exit 2 with the data error's own message, after ``what`` (default
    ``--data SPEC``: name the options the user gave that set the data)."""
    from prednet2.datasets import build_dataset

    try:  # kw: the UCF101 split lists (splits_dir, fold), which build_dataset hands to the labelled folder reader
        return build_dataset(
            spec, cfg=cfg, split=split, seed=seed, motion=motion, labelled=labelled, progress=_PROGRESS[0], **kw
        )
    except (ValueError, FileNotFoundError, OSError) as e:  # DataError is a ValueError
        fail(f"{what or f'--data {spec}'}: {e}")


def skipped_files(*datasets: Any) -> list[dict]:
    """The files the datasets' scans could not use (corrupt, empty, too short...), each once, as
    ``{"path", "reason"}``; the per-file warnings went to stderr as they were found."""
    seen: dict[str, str] = {}
    for ds in datasets:
        for s in getattr(ds, "skipped", None) or []:
            seen.setdefault(str(s.path), str(s.reason))
    return [{"path": p, "reason": r} for p, r in seen.items()]


def truncated_files(*datasets: Any) -> dict:
    """How many distinct videos the datasets read only up to damage partway (``VideoFolder.truncated``),
    and which: ``{"n_truncated", "truncated": [{"path", "frames"}]}`` (the warnings went to stderr)."""
    seen: dict[str, int] = {}
    for ds in datasets:
        for t in getattr(ds, "truncated", None) or []:
            seen.setdefault(str(t.path), int(t.frames))
    return {"n_truncated": len(seen), "truncated": [{"path": p, "frames": n} for p, n in seen.items()]}


def padded_files(*datasets: Any) -> dict:
    """How many distinct videos the datasets padded to a clip (shorter than one), and the shortest: the probe JSON
    records it, since a probe of padded clips reads repeated frames (the warning went to stderr)."""
    seen: dict[str, int] = {}
    for ds in datasets:
        get = getattr(ds, "padded_videos", None)
        for path, n in get() if callable(get) else []:
            seen.setdefault(path, n)
    return {"n_padded": len(seen), "shortest_padded": min(seen.values()) if seen else None}


def skipped_text(skipped: list[dict]) -> str:
    """``; 2 unusable file(s) skipped`` for the one-line summaries the CLIs print ("" when none was)."""
    return f"; {len(skipped)} unusable file(s) skipped" if skipped else ""


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomic JSON write (temporary file + os.replace); parent folders are made."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def parse_layers(text: str) -> list[int] | None:
    """``all`` -> None; ``0,2`` -> [0, 2]. Raises ValueError with the option name."""
    if text.strip().lower() == "all":
        return None
    try:
        layers = [int(x) for x in text.split(",")]  # an empty entry (0,,2) is a typo, not a skip
    except ValueError:
        raise ValueError(f"--layers {text!r}: expected 'all' or comma-separated layer numbers like 0,1") from None
    if not layers or any(x < 0 for x in layers):
        raise ValueError(f"--layers {text!r}: expected 'all' or comma-separated layer numbers like 0,1")
    if len(set(layers)) < len(layers):  # 0,0 read as one layer: a typo for 0,1 most likely
        raise ValueError(f"--layers {text!r}: a layer is named twice; name each layer once, like 0,1")
    return layers
