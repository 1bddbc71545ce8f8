"""PredNet (Lotter, Kreiman and Cox 2016, "Deep Predictive Coding Networks for Video Prediction"): the baseline.

A faithful port of the original Keras model (coxlab/prednet, ``prednet.py``), with the same face as
PredictiveStack (``step``, ``forward``, ``extract_features``, ``units``, ``stride``) so train.py and eval/ run it
unchanged. Per time step:

    for l = L-1 .. 0:   R_l(t) = ConvLSTM(E_l(t-1), R_l(t-1), up(R_{l+1}(t)))      # top-down, R_{l+1} at the SAME t
    A_0(t) = frame(t)
    for l = 0 .. L-1:   Â_l = relu(conv(R_l)) (layer 0: min(., 1), the "SatLU")
                        E_l = [relu(A_l - Â_l), relu(Â_l - A_l)];  A_{l+1} = maxpool(relu(conv(E_l)))

Differences from the Keras code, none of which changes the function class: E's two halves are in the order of
``prednet2.ops.error_unit`` (``relu(A - Â)`` first; Keras puts ``relu(Â - A)`` first); PyTorch's default
initialisation instead of Keras' glorot_uniform. The ConvLSTM uses hard-sigmoid gates as Keras does.

Training is end-to-end only: ``losses[l] = layer_weight_l * mean_{t>=1} mean(E_l(t))`` (time weight 0 at t=0,
as in the paper), and the terms are parts of ONE loss (their sum), not local losses; with L_0 weights
[1, 0, 0, 0] only the pixel error trains the whole stack.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import ConvLSTMCell, State, upsample2
from .config import ModelConfig
from .losses import error_loss
from .ops import reference_error_unit
from .outputs import StackOutput, StackState, StepOutput
from .stack_checks import check_frames, check_state, check_value_range


class PredNetLayer(nn.Module):
    """One PredNet layer: the A conv (from the error below; none at layer 0), the R ConvLSTM and the Â conv."""

    def __init__(self, *, a_channels: int, r_channels: int, below_channels: int, above_r_channels: int, k: int):
        super().__init__()
        self.a_channels = a_channels
        self.r_channels = r_channels
        self.td_channels = above_r_channels
        self.conv_a = nn.Conv2d(2 * below_channels, a_channels, k, padding=k // 2) if below_channels else None
        self.cell = ConvLSTMCell(
            in_channels=2 * a_channels + above_r_channels, hidden_channels=r_channels, kernel_size=k, hard_gates=True
        )
        self.conv_ahat = nn.Conv2d(r_channels, a_channels, k, padding=k // 2)


# The ModelConfig fields the PredNet baseline reads; every other field belongs to the predictive stack, and a value
# other than the prednet preset's would be silently ignored here, so ``unused_options`` names it and PredNet refuses.
PREDNET_FIELDS = ("preset", "arch", "in_channels", "channels", "hidden_channels", "kernel_size", "layer_weights",
                  "use_ext_op")  # fmt: skip


def unused_options(cfg: ModelConfig) -> list[str]:
    """``["model.KEY=VALUE", ...]`` for each stack-only field of ``cfg`` that differs from the prednet preset."""
    from .presets import PRESETS

    ref = dataclasses.replace(ModelConfig(), **{k: v for k, v in PRESETS["prednet"].items() if k not in PREDNET_FIELDS})
    return [
        f"model.{f.name}={getattr(cfg, f.name)!r}"
        for f in dataclasses.fields(ModelConfig)
        if f.name not in PREDNET_FIELDS and getattr(cfg, f.name) != getattr(ref, f.name)
    ]


class PredNet(nn.Module):
    """The PredNet baseline. ``cfg.channels`` are the stack sizes (A_l channels; A_0 is the frame, so channels[0]
    is replaced by ``in_channels``), ``cfg.hidden_channels`` the R stack sizes (default: the same)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        L = len(cfg.channels)
        if L < 1:
            raise ValueError("model.channels: need at least one layer")
        unused = unused_options(cfg)
        if unused:
            raise ValueError(
                f"{', '.join(unused)}: not used by the PredNet baseline (model.arch=prednet), which reads only "
                f"{', '.join('model.' + k for k in PREDNET_FIELDS[2:])}; drop the option or use a stack preset"
            )
        if cfg.layer_weights and len(cfg.layer_weights) != L:
            raise ValueError(f"model.layer_weights: {len(cfg.layer_weights)} weights for {L} layers (model.channels)")
        if cfg.hidden_channels and len(cfg.hidden_channels) != L:
            raise ValueError(f"model.hidden_channels: {len(cfg.hidden_channels)} entries for {L} layers")
        self.cfg = cfg
        a_ch = (cfg.in_channels, *cfg.channels[1:])
        r_ch = tuple(cfg.hidden_channels or cfg.channels)
        self.units = nn.ModuleList(
            PredNetLayer(
                a_channels=a_ch[l],
                r_channels=r_ch[l],
                below_channels=a_ch[l - 1] if l > 0 else 0,
                above_r_channels=r_ch[l + 1] if l + 1 < L else 0,
                k=cfg.kernel_size,
            )
            for l in range(L)
        )
        self.layer_weights = tuple(cfg.layer_weights) or (1.0,) + (0.0,) * (L - 1)  # L_0

    @property
    def num_layers(self) -> int:
        return len(self.units)

    @property
    def stride(self) -> int:
        return 2 ** (self.num_layers - 1)

    def update_ema(self) -> None:
        """No EMA targets in PredNet (kept so trainers can call it on any model)."""

    def step(
        self,
        frame: Tensor,
        state: StackState | None = None,
        mask: Tensor | None = None,
        *,
        detach_between: bool = False,
        compute_losses: bool = True,
    ) -> tuple[StepOutput, StackState]:
        """One time step. frame (B, C, H, W) in [0, 1]; ``mask`` is ignored (PredNet has no motion stream)."""
        L = self.num_layers
        check_frames(frame, self.cfg.in_channels, clip=False)
        _check_size(frame.shape[-2:], self.stride, L)
        check_state(state, frame, 1)
        if state is None:
            check_value_range(frame)
        B, _, H, W = frame.shape
        if state is None:
            state = StackState(t=0, cell=[None] * L, r=[None] * L, a=[None] * L, e=[None] * L)

        # Step 1. Top-down: R_l(t) from E_l(t-1), R_l(t-1) and up(R_{l+1}(t)), computed from the top.
        r_new: list[Tensor] = [frame] * L
        cell_new: list[State | None] = [None] * L
        for l in reversed(range(L)):
            u = self.units[l]
            e_prev = state.e[l]
            if e_prev is None:
                e_prev = frame.new_zeros(B, 2 * u.a_channels, H >> l, W >> l)
            inputs = [e_prev]
            if l + 1 < L:
                inputs.append(upsample2(r_new[l + 1].detach() if detach_between else r_new[l + 1]))
            r_new[l], cell_new[l] = u.cell(torch.cat(inputs, dim=1), state.cell[l])

        # Step 2. Bottom-up: Â, E and the next layer's A.
        valid = state.t > 0
        a = frame
        preds, targets, errors, frame_errors = [], [], [], []
        terms: dict[str, Tensor] = {}
        for l in range(L):
            u = self.units[l]
            a_hat = F.relu(u.conv_ahat(r_new[l]))
            if l == 0:
                a_hat = a_hat.clamp(max=1.0)  # SatLU: pixels are at most 1
            # the target A is NOT detached: end-to-end, as the original
            e, per_sample = (error_loss if self.cfg.use_ext_op else reference_error_unit)(a_hat, a)
            preds.append(a_hat)
            targets.append(a)
            errors.append(e)
            frame_errors.append(per_sample.detach() if valid else torch.zeros_like(per_sample.detach()))
            if compute_losses:
                terms[f"err/{l}"] = per_sample.mean() if valid else 0.0 * per_sample.sum()
            if l + 1 < L:
                a = F.max_pool2d(F.relu(self.units[l + 1].conv_a(e.detach() if detach_between else e)), 2)
        losses = [self.layer_weights[l] * terms[f"err/{l}"] for l in range(L)] if compute_losses else []
        new_state = StackState(t=state.t + 1, cell=cell_new, r=r_new, a=targets, e=errors)
        return StepOutput(preds, targets, errors, r_new, frame_errors, losses, terms, valid), new_state

    def forward(
        self,
        clip: Tensor,
        mask: Tensor | None = None,
        state: StackState | None = None,
        *,
        detach_between: bool = False,
    ) -> StackOutput:
        """A clip (B, T, C, H, W) in [0, 1]. ``losses[l]`` are the weighted layer terms of PredNet's one loss."""
        check_frames(clip, self.cfg.in_channels, clip=True)
        steps = []
        for t in range(clip.shape[1]):
            out, state = self.step(clip[:, t], state, detach_between=detach_between)
            steps.append(out)
        terms = {}
        for key in steps[0].terms:
            vals = [s.terms[key] for s in steps if s.valid]
            terms[key] = torch.stack(vals).mean() if vals else steps[0].terms[key]
        losses = [self.layer_weights[l] * terms[f"err/{l}"] for l in range(self.num_layers)]
        return StackOutput(steps, losses, {k: v.detach() for k, v in terms.items()}, state)

    @torch.no_grad()
    def extract_features(self, clip: Tensor, mask: Tensor | None = None, *, grid: int = 1) -> dict[int, Tensor]:
        """{l: (B, (C_A_l + C_R_l) * grid**2)}: A_l and R_l mean-pooled over time and a grid x grid spatial grid."""
        check_frames(clip, self.cfg.in_channels, clip=True)
        was_training = self.training
        self.eval()
        try:
            state, sums = None, {}
            T = clip.shape[1]
            for t in range(T):
                out, state = self.step(clip[:, t], state, compute_losses=False)
                for l in range(self.num_layers):
                    f = F.adaptive_avg_pool2d(torch.cat([out.targets[l], out.states[l]], dim=1), grid).flatten(1)
                    sums[l] = f if t == 0 else sums[l] + f
            return {l: s / T for l, s in sums.items()}
        finally:
            self.train(was_training)


def _check_size(hw, m: int, L: int) -> None:
    h, w = int(hw[0]), int(hw[1])
    if h % m or w % m:
        raise ValueError(
            f"input size {h}x{w} is not a multiple of {m} (the total stride 2^(L-1) of {L} PredNet layers); "
            f"resize or crop to e.g. {max(m, h // m * m)}x{max(m, w // m * m)} (data.size)"
        )
