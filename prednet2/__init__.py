"""prednet2: self-supervised video representation learning by predictive coding."""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING

from .envcheck import tool_loading

with tool_loading("torch"):  # `python -m prednet2.stream`: torch loads here, where a Ctrl-C can end quietly
    pass

# Imported on first use (PEP 562), so ``import prednet2.cli`` (the console script) loads neither torch nor yaml and
# a Ctrl-C while they load falls inside the command's guard (prednet2.interrupt.run_cli), not before it.
_LAZY = {
    "Config": ".config",
    "ConfigError": ".config",
    "ModelConfig": ".config",
    "StackOutput": ".outputs",
    "StackState": ".outputs",
    "StepOutput": ".outputs",
    "detach_state": ".outputs",
    "PredictiveStack": ".stack",
    "with_motion": ".stack",
}

if TYPE_CHECKING:
    from .config import Config, ConfigError, ModelConfig
    from .outputs import StackOutput, StackState, StepOutput, detach_state
    from .stack import PredictiveStack, with_motion


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'prednet2' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def build_model(cfg: ModelConfig | Config):
    """Build the model a config describes: a PredictiveStack, or the PredNet baseline when ``model.arch="prednet"``.

    Given the whole ``Config``, the motion stream is switched off when ``cfg.motion.enabled`` is False
    (``--set motion=off``), so the model and the data agree on whether masks exist.
    """
    from .config import Config, ModelConfig
    from .stack import PredictiveStack, with_motion

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
