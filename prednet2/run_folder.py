"""The run folder (DESIGN §7): its paths, whether ``--out`` may be used, the resolved config it holds, and resume.

RUN/config.yaml              resolved config, git commit and prednet2 version in the header comments
RUN/checkpoints/last.pt      atomic, every ckpt_every steps, at the end, and on SIGINT/SIGTERM
RUN/checkpoints/best.pt      lowest mean total loss over a checkpoint interval (train.keep_best)
RUN/checkpoints/step_XXXXXX.pt   the last train.keep_numbered saves
RUN/tb/                      TensorBoard events
RUN/summary.json             steps, final per-layer losses, throughput, what was skipped, ...
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prednet2.checkpoint import load_checkpoint
from prednet2.config import Config, ConfigError
from prednet2.runinfo import git_commit, prednet2_version


class RunFolderError(ValueError):
    """The output folder cannot be used as asked (exists without --resume, nothing to resume, ...)."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def ckpt_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.ckpt_dir / "last.pt"

    @property
    def best(self) -> Path:
        return self.ckpt_dir / "best.pt"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def numbered(self, step: int) -> Path:
        return self.ckpt_dir / f"step_{step:06d}.pt"


def check_out_dir(paths: RunPaths, resume: bool) -> None:
    """Raise RunFolderError (one line naming --out and what to do) unless the run folder can be used as asked.

    ``--out`` must be a folder or not exist yet, under a folder this process can write to; a new run needs a folder
    without a run in it, a resumed run needs its ``checkpoints/last.pt``.
    """
    root = paths.root
    p = root.absolute()
    while not p.exists() and p != p.parent:  # the nearest part of the path that exists
        p = p.parent
    if not p.is_dir():
        where = "is a file" if p == root.absolute() else f"is inside {p}, which is a file"
        raise RunFolderError(f"--out {root} {where}, not a folder; give a folder path (it is created when missing)")
    if not os.access(p, os.W_OK | os.X_OK):
        raise RunFolderError(f"--out {root}: {p} is not writable; pick a folder you can write to")
    for sub in (paths.ckpt_dir, paths.tb):  # made later, after data preparation or training: refuse now
        if sub.exists() and not sub.is_dir():
            raise RunFolderError(
                f"--out {root}: {sub} is a file where the run keeps a folder; move it or pick another --out"
            )
    if paths.last.is_file() and not resume:
        raise RunFolderError(
            f"--out {root} already holds a run ({paths.last}); pass --resume to continue it or pick another folder"
        )
    if resume and not paths.last.is_file():
        raise RunFolderError(f"--resume: no checkpoint to resume at {paths.last}; start a new run without --resume")


def make_run_dir(paths: RunPaths) -> None:
    """Create the run folder; an OS refusal (read-only file system, permissions) is a RunFolderError."""
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        msg = f"--out {paths.root}: cannot create the folder ({e.strerror}); pick another folder"
        raise RunFolderError(msg) from None


# A resumed run continues the checkpoint's network on the same kind of input: these fields cannot change on resume
# (a different --data can: that is continual learning). model.use_ext_op picks an implementation, not the math.
FROZEN_ON_RESUME = ("model.", "motion.enabled", "data.size", "data.clip_len", "data.grayscale")  # the weights' shapes
_FREE_ON_RESUME = ("model.use_ext_op",)


def frozen_changes(old: Config, new: Config) -> list[str]:
    """The fields in FROZEN_ON_RESUME whose values differ between ``old`` and ``new``, as ``key (old -> new)``."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    out = []
    for k, v in a.items():
        frozen = any(k == f or (f.endswith(".") and k.startswith(f)) for f in FROZEN_ON_RESUME)
        if frozen and k not in _FREE_ON_RESUME and b[k] != v:
            out.append(f"{k} ({v!r} -> {b[k]!r})")
    return out


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def config_file_was_edited(paths: RunPaths, stored: Config) -> bool:
    """Whether RUN/config.yaml no longer says what the checkpoint's config does (edited by hand, or damaged): the run
    writes it for people to read and reuse; a resume reads the checkpoint's and rewrites the file."""
    try:
        d = yaml.safe_load(paths.config.read_text())
        return Config.from_stored(d).to_dict() != stored.to_dict()
    except FileNotFoundError:
        return False
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):  # ConfigError is a ValueError
        return True


def config_for_resume(out_dir: str | Path, sets: list[str] | None = None) -> Config:
    """The config a ``--resume`` continues with: the checkpoint's own, with ``--set`` overrides on top.

    A ``--set`` that would change the model or the input's shape (FROZEN_ON_RESUME) is refused with a ConfigError
    naming the fields: the override would otherwise be ignored or fail deep in the weight loading.
    """
    paths = RunPaths(Path(out_dir))
    check_out_dir(paths, resume=True)
    ckpt = load_checkpoint(paths.last)
    try:
        stored = Config.from_stored(ckpt["config"])
        cfg = stored.replace(sets or [])
    except ConfigError as e:
        raise ConfigError(f"{e} (while applying --set to the config stored in {paths.last})") from None
    if config_file_was_edited(paths, stored):
        print(
            f"warning: {paths.config} differs from the config stored in {paths.last}; --resume continues with the "
            "checkpoint's (give changes as --set key=value)",
            file=sys.stderr,
        )
    changed = frozen_changes(stored, cfg)
    if changed:
        raise ConfigError(
            f"--resume cannot change {', '.join(changed)}: a resumed run keeps its checkpoint's model and input "
            "(model.*, motion.enabled, data.size, data.clip_len, data.grayscale); start a new run in another --out to "
            "change them"
        )
    done = int(ckpt.get("step", 0))
    if cfg.train.steps <= done:  # it would train nothing, report success and overwrite the run's summary
        where = "past" if cfg.train.steps < done else "already at"
        raise ConfigError(
            f"--resume: {paths.last} is already at step {done}, {where} train.steps={cfg.train.steps}; the step count "
            f"is the total, so give more than {done} (e.g. --steps {2 * done}) to train more"
        )
    return cfg


def write_config(paths: RunPaths, cfg: Config, data_spec: str) -> None:
    header = (
        f"# prednet2 {prednet2_version()}, git commit {git_commit()}\n"
        f"# data: {data_spec}\n"
        f"# resolved config of this run; reuse it with --config {paths.config}\n"
    )
    paths.config.write_text(header + cfg.to_yaml())
