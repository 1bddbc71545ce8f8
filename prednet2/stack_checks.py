"""The stack's checks of its ``ModelConfig``: what ``PredictiveStack`` refuses to build, with the key to change."""

from __future__ import annotations

from . import readout
from .config import ModelConfig, check_ranges


def flow_weights_of(cfg: ModelConfig) -> tuple[float, ...]:
    """Each unit's flow-target weight: ``model.flow_weights``, or ``model.flow_weight`` at every unit; all 0 without
    the motion stream (the flow comes with the motion masks)."""
    L = len(cfg.channels)
    if cfg.motion_channels == 0:
        return (0.0,) * L
    return tuple(cfg.flow_weights) or (cfg.flow_weight,) * L


def validate_model_config(cfg: ModelConfig) -> None:
    """Raise ValueError (ConfigError where a range is out) naming the ``model.*`` key for a config the stack cannot
    build or would silently misread: ranges, per-unit list lengths, options that only apply with others."""
    L = len(cfg.channels)
    if L < 1:
        raise ValueError("model.channels: need at least one unit")
    # Enum values and numeric ranges are declared once on ModelConfig's fields (prednet2.config.check_ranges);
    # ConfigError is a ValueError, so direct library use still gets a ValueError naming the field.
    check_ranges(cfg, prefix="model.")
    # per-unit lists: empty, or one entry per unit
    for key in ("layer_weights", "cov_weights", "hidden_channels", "flow_weights"):
        n = len(getattr(cfg, key))
        if n and n != L:
            raise ValueError(f"model.{key}: {n} entries for {L} units (model.channels); give one per unit or none")
    if cfg.target_grad and cfg.target_mode == "ema":
        raise ValueError("model.target_grad=true needs model.target_mode=stopgrad (an EMA target takes no gradient)")
    if cfg.anti_collapse != "vicreg":  # the VICReg-only options would be silently ignored
        for key, on in (("change_weight", cfg.change_weight > 0), ("cov_weights", bool(cfg.cov_weights))):
            if on:
                raise ValueError(
                    f"model.{key} applies to model.anti_collapse=vicreg only (it is {cfg.anti_collapse!r}); "
                    f"drop model.{key} or set model.anti_collapse=vicreg"
                )
    if cfg.motion_error_weight > 0 and cfg.motion_channels == 0:
        raise ValueError(
            "model.motion_error_weight weights the error by the motion masks, but this model has no motion stream "
            "(model.motion_channels=0 or motion=off); turn motion on or drop model.motion_error_weight"
        )
    if cfg.blind_prob > 0 and (cfg.change_weight > 0 or cfg.arrow_weight > 0):  # both read a(t-1) as seen
        raise ValueError("model.blind_prob hides frames from a(t-1), which model.change_weight and model.arrow_weight "
                         "compare with a(t); drop one of them")  # fmt: skip
    if cfg.flow_head_hidden and not any(flow_weights_of(cfg)):
        raise ValueError(
            "model.flow_head_hidden shapes the flow heads, but this model has none (model.flow_weight and "
            "model.flow_weights are 0, or the motion stream is off); set a flow weight or drop model.flow_head_hidden"
        )
    if cfg.flow_head_share < 1 and not any(flow_weights_of(cfg)):
        raise ValueError(
            "model.flow_head_share says what the flow heads read, but this model has none (model.flow_weight and "
            "model.flow_weights are 0, or the motion stream is off); set a flow weight or drop model.flow_head_share"
        )
    readout.parse_parts(cfg.readout)
