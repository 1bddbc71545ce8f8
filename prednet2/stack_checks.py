"""The stack's checks of its ``ModelConfig`` (what ``PredictiveStack`` refuses to build, with the key to change) and of
its inputs (clip, frame, mask and state: what a call refuses, with the shape it got and the one expected)."""

from __future__ import annotations

import torch

from . import readout
from .config import ModelConfig, check_ranges
from .outputs import StackState

_FLOW_UNITS = {"all": lambda l, L: True, "ends": lambda l, L: l in (0, L - 1), "first": lambda l, L: l == 0,
               "last": lambda l, L: l == L - 1}  # fmt: skip


def flow_weights_of(cfg: ModelConfig) -> tuple[float, ...]:
    """Each unit's flow-target weight: ``model.flow_weights``, or ``model.flow_weight`` at the units
    ``model.flow_units`` places it on (every unit by default); all 0 without the motion stream (the flow comes with
    the motion masks)."""
    L = len(cfg.channels)
    if cfg.motion_channels == 0:
        return (0.0,) * L
    if cfg.flow_weights:
        return tuple(cfg.flow_weights)
    on = _FLOW_UNITS[cfg.flow_units]
    return tuple(cfg.flow_weight if on(l, L) else 0.0 for l in range(L))


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
    moved = cfg.flow_units != ModelConfig.flow_units  # a placement set away from the default
    if moved and cfg.flow_weights:  # the list names every unit's weight: the placement would go unread
        raise ValueError(f"model.flow_units={cfg.flow_units} places model.flow_weight, but model.flow_weights already "
                         "gives each unit's weight; drop one of them")  # fmt: skip
    if moved and cfg.flow_weight == 0:
        raise ValueError(f"model.flow_units={cfg.flow_units} places model.flow_weight, which is 0 (no flow target); "
                         "set model.flow_weight (e.g. 1) or drop model.flow_units")  # fmt: skip
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
    if cfg.warp_weight > 0 and cfg.predict == "warp":
        raise ValueError("model.warp_weight asks a direct or residual prediction's state for a displacement on "
                         "the side; model.predict=warp already trains it through the prediction: drop one")  # fmt: skip
    if cfg.blind_prob > 0 and cfg.warp_weight > 0:  # the warp target reads a(t-1) as seen
        raise ValueError("model.blind_prob hides frames from a(t-1), which model.warp_weight moves to match a(t); "
                         "drop one of them")  # fmt: skip
    if not cfg.motion_loss and not cfg.motion_channels:
        raise ValueError("model.motion_loss=false leaves the motion stream out of the loss, but this model has none "
                         "(model.motion_channels=0, or motion off); drop model.motion_loss")  # fmt: skip
    if cfg.warp_max != ModelConfig.warp_max and cfg.predict != "warp" and cfg.warp_weight == 0:
        raise ValueError("model.warp_max bounds the warp displacement, but this model has none (model.predict is not "
                         "warp and model.warp_weight is 0); set one of them or drop model.warp_max")  # fmt: skip
    if not any(flow_weights_of(cfg)):  # a flow-head key set on a model with no flow head would do nothing
        for key, off, does in (
            ("flow_head_hidden", 0, "shapes the flow heads"),
            ("flow_horizon", 1, "shapes the flow heads"),
            ("flow_head_share", 1.0, "says what the flow heads read"),
            ("flow_head_input", "state", "says what the flow heads read"),
            ("flow_detach", False, "says what the flow heads train"),
        ):
            if getattr(cfg, key) != off:
                raise ValueError(
                    f"model.{key} {does}, but this model has none (model.flow_weight and model.flow_weights are 0, "
                    f"or the motion stream is off); set a flow weight or drop model.{key}"
                )
    readout.check_parts(cfg.readout, any(flow_weights_of(cfg)), cfg.predict == "warp" or cfg.warp_weight > 0)


# ---- inputs ---------------------------------------------------------------------------------------------------
# What forward/step/extract_features refuse before torch would fail deep inside a conv (or compute on garbage),
# each with the argument, the shape or dtype it got, what is expected and what to do. Shape and dtype checks only
# read metadata; the one value check reads a first frame on the CPU (a GPU check would cost a host sync).
def check_frames(x, in_channels: int, *, clip: bool) -> None:
    """``x`` a clip (B, T, C, H, W) (``clip``) or a frame (B, C, H, W) of floats with ``in_channels`` channels."""
    name, layout = ("clip", "(B, T, C, H, W)") if clip else ("frame", "(B, C, H, W)")
    if not isinstance(x, torch.Tensor):
        hint = "; stack a list of frames (B, C, H, W) with torch.stack(frames, dim=1)" if isinstance(x, list) else ""
        raise TypeError(f"{name}: expected a torch.Tensor {layout} of floats in [0, 1], got {type(x).__name__}{hint}")
    shape = tuple(x.shape)
    if x.dim() != (5 if clip else 4):
        if clip and x.dim() == 4:
            hint = "one clip needs a batch dimension: clip.unsqueeze(0) (one frame at a time goes to model.step)"
        elif not clip and x.dim() == 3:
            hint = "one frame needs a batch dimension: frame.unsqueeze(0)"
        elif not clip and x.dim() == 5:
            hint = "step takes one frame per call, clip[:, t]; a whole clip goes to model(clip)"
        else:
            hint = f"give a {layout} tensor"
        raise ValueError(f"expected a {name} {layout}, got shape {shape}; {hint}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name}: expected floats in [0, 1], got dtype {x.dtype} (shape {shape}); convert 0-255 frames with "
            f"{name}.float() / 255 (prednet2.datasets.to_float)"
        )
    if clip and shape[1] == 0:
        raise ValueError(f"clip: no frames (T=0 in shape {shape}); give at least one frame, two for a loss")
    c = shape[-3]
    if c != in_channels:
        hint = ""
        if clip and shape[1] == in_channels:
            hint = f"; if it is (B, C, T, H, W), pass {name}.permute(0, 2, 1, 3, 4)"
        raise ValueError(
            f"{name}: {c} channel{'s' * (c != 1)} at dim {x.dim() - 3} of {layout} {shape}, but this model takes "
            f"{in_channels} (model.in_channels: 3 for RGB, 1 for grayscale, with data.grayscale){hint}"
        )


def check_value_range(frame: torch.Tensor) -> None:
    """A first frame far outside [0, 1] (0-255 floats, [-1, 1] or mean/std-normalised frames) is refused; CPU only."""
    if frame.device.type != "cpu" or frame.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(frame.detach()))
    if lo < -0.5 or hi > 1.5:  # 0-255 floats, [-1, 1] or mean/std-normalised frames; not resampling overshoot
        raise ValueError(
            f"frame values span [{lo:g}, {hi:g}], but the model takes floats in [0, 1]: divide 0-255 frames by 255 "
            "(prednet2.datasets.to_float) and do not normalise them to [-1, 1] or by mean/std"
        )


def check_mask(mask, x: torch.Tensor, *, clip: bool) -> None:
    """A motion mask (B, T, 1, H, W) (or (B, 1, H, W) for a frame) of floats matching ``x``."""
    layout = "(B, T, 1, H, W)" if clip else "(B, 1, H, W)"
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask: expected a torch.Tensor {layout} of floats in [0, 1], got {type(mask).__name__}")
    want = (*x.shape[: 2 if clip else 1], 1, *x.shape[-2:])
    if tuple(mask.shape) != want:
        hint = ""
        if mask.dim() == len(want) - 1 and tuple(mask.shape) == want[:-3] + want[-2:]:
            hint = f"; add the channel dimension: mask.unsqueeze({len(want) - 3})"
        raise ValueError(
            f"mask: expected shape {want} {layout}, one channel with the batch, frames and size of the "
            f"{'clip' if clip else 'frame'} {tuple(x.shape)}, got {tuple(mask.shape)}{hint}"
        )
    if not mask.is_floating_point():
        raise TypeError(f"mask: expected floats in [0, 1], got dtype {mask.dtype}; pass mask.float() (0/255: / 255)")


def check_state(state, frame: torch.Tensor, stem: int) -> None:
    """``state`` None or the StackState of a previous call with the same batch and frame size as ``frame``."""
    if state is None:
        return
    if not isinstance(state, StackState):
        raise TypeError(
            f"state: expected the StackState a previous call returned (out.state, or step's second value) or None, "
            f"got {type(state).__name__}; pass a motion mask by keyword: model(clip, mask=mask)"
        )
    a0 = state.a[0] if state.a else None
    if a0 is None:
        return
    had = (a0.shape[0], a0.shape[-2] * stem, a0.shape[-1] * stem)
    now = (frame.shape[0], frame.shape[-2], frame.shape[-1])
    if had != now:
        raise ValueError(
            f"state: made for a batch of {had[0]} at {had[1]}x{had[2]}, but this frame is a batch of {now[0]} at "
            f"{now[1]}x{now[2]}; start a new clip with state=None, or keep the batch and frame size"
        )
