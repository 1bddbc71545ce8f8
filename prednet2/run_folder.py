"""The run folder (DESIGN §7): its paths, whether ``--out`` may be used, the resolved config it holds, and resume.

RUN/config.yaml              resolved config, git commit and prednet2 version in the header comments
RUN/checkpoints/last.pt      atomic, every ckpt_every steps, at the end, and on SIGINT/SIGTERM
RUN/checkpoints/best.pt      lowest mean total loss over a checkpoint interval (train.keep_best)
RUN/checkpoints/step_XXXXXX.pt   the last train.keep_numbered saves
RUN/tb/                      TensorBoard events
RUN/summary.json             steps, final per-layer losses, throughput, what was skipped, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def config_for_resume(out_dir: str | Path, sets: list[str] | None = None) -> Config:
    """The config a ``--resume`` continues with: the checkpoint's own, with ``--set`` overrides on top."""
    paths = RunPaths(Path(out_dir))
    if not paths.last.is_file():
        raise RunFolderError(f"--resume: no checkpoint to resume at {paths.last}; start a new run without --resume")
    ckpt = load_checkpoint(paths.last)
    try:
        return Config.from_dict(ckpt["config"]).replace(sets or [])
    except ConfigError as e:
        raise ConfigError(f"{e} (while applying --set to the config stored in {paths.last})") from None


def write_config(paths: RunPaths, cfg: Config, data_spec: str) -> None:
    header = (
        f"# prednet2 {prednet2_version()}, git commit {git_commit()}\n"
        f"# data: {data_spec}\n"
        f"# resolved config of this run; reuse it with --config {paths.config}\n"
    )
    paths.config.write_text(header + cfg.to_yaml())
