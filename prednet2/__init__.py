"""prednet2: self-supervised video representation learning by predictive coding."""

from __future__ import annotations

__version__ = "0.1.0"

from .config import Config, ConfigError, ModelConfig
from .outputs import StackOutput, StackState, StepOutput, detach_state
from .stack import PredictiveStack, with_motion


def build_model(cfg: ModelConfig | Config):
    """Build the model a config describes: a PredictiveStack, or the PredNet baseline when ``model.arch="prednet"``.

    Given the whole ``Config``, the motion stream is switched off when ``cfg.motion.enabled`` is False
    (``--set motion=off``), so the model and the data agree on whether masks exist.
    """
    if isinstance(cfg, Config):
        mcfg = with_motion(cfg.model, cfg.motion.enabled)
    elif isinstance(cfg, ModelConfig):
        mcfg = cfg
    else:
        raise TypeError(f"build_model expects a ModelConfig or Config, got {type(cfg).__name__}")
    if mcfg.arch == "prednet":
        from .prednet import PredNet

        return PredNet(mcfg)
    if mcfg.arch != "stack":
        raise ValueError(f"model.arch: unknown architecture {mcfg.arch!r}; choose 'stack' or 'prednet'")
    return PredictiveStack(mcfg)


__all__ = [
    "Config",
    "ConfigError",
    "ModelConfig",
    "PredictiveStack",
    "StackOutput",
    "StackState",
    "StepOutput",
    "build_model",
    "detach_state",
    "with_motion",
]
