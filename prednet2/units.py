"""PredictiveUnit: one level of the stack (DESIGN §2).

A unit owns everything its local loss trains:
- a target encoder ``enc`` (conv3x3 -> optional GroupNorm -> ReLU) mapping its input x to its representation a;
- optionally a motion encoder ``enc_motion`` (layer 0 with the motion stream), so the target is ``cat(a, m)``;
- a recurrent cell (ConvGRU / ConvLSTM / state-free) whose state r sees ``cat(a(t-1), e(t-1), up(r_above(t-1)))``;
- a head mapping r to â, the prediction of the target at t made before seeing frame t;
- optionally EMA copies of the encoders (``target_mode="ema"``) and the binding projections.

The stack wires units together; a unit never sees another unit's parameters, which is what makes local learning
local.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import State, build_cell


class Encoder(nn.Module):
    """conv3x3 -> (GroupNorm) -> ReLU. (B, C_in, H, W) -> (B, C, H, W). ReLU as PredNet's A_l = relu(conv(.))."""

    def __init__(self, in_channels: int, channels: int, *, kernel_size: int = 3, norm: str = "none"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2)
        if norm == "group":
            self.norm: nn.Module = nn.GroupNorm(max(1, channels // 8), channels)
        elif norm == "none":
            self.norm = nn.Identity()
        else:
            raise ValueError(f"model.encoder_norm: unknown norm {norm!r}; choose 'none' or 'group'")
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


def _flow_head(in_channels: int, width: int, horizon: int = 1) -> nn.Module:
    """The flow head r -> 2 * horizon motion channels (frames t .. t+horizon-1, ``model.flow_horizon``): linear
    (width 0) or 1x1 -> ReLU -> 1x1 (``model.flow_head_hidden``)."""
    if not width:
        return nn.Conv2d(in_channels, 2 * horizon, 1)
    return nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.ReLU(), nn.Conv2d(width, 2 * horizon, 1))


def flow_head_inputs(hidden_channels: int, share: float) -> int:
    """How many of a state's ``hidden_channels`` its flow head reads (the last ones): ceil(share * C), at least 1."""
    return max(1, min(hidden_channels, math.ceil(share * hidden_channels - 1e-9)))


class PredictiveUnit(nn.Module):
    """One predictive unit. See the module docstring for what it holds.

    Args:
        in_channels: channels of the unit's input x (frame channels at layer 0, 2*C_below for pass_up="error").
        channels: C, channels of the representation a (ignored for a pixel unit, whose target is x itself).
        hidden_channels: channels of the recurrent state r.
        td_channels: channels of the top-down input (hidden channels of the unit above; 0 for none).
        pixel: the target is the input itself (PredNet's pixel layer); â = sigmoid(head(r)).
        motion_channels: >0 adds a motion encoder (mask -> motion_channels) and the binding projections.
        mask_channels: channels of the mask as the unit sees it (1, or stem**2 after space-to-depth).
        ema: keep EMA copies of the encoders to produce the target (BYOL-style); else the target is sg(a).
        flow_head: a 1x1 head r -> 2 channels, the motion vectors frame t brings (``model.flow_weight``).
        flow_head_hidden: 0 for a linear flow head; N > 0 puts a 1x1 layer of N channels and a ReLU between.
        flow_head_share: the share of the state's channels the flow head reads (the last ceil(share * C)).
        flow_head_input: "state" (the head reads r) or "repr" (it reads a, the representation of frame t).
        flow_horizon: K, the frames whose motion the flow head predicts (t .. t+K-1): 2K output channels.
        residual: â = sg(a(t-1)) + head(r) (``model.predict=residual``).
        warp: â = sg(a(t-1)) warped by a displacement read from r, + head(r) (``model.predict=warp``).
        warp_head: a displacement head without the warped prediction, for the warp target (``model.warp_weight``).
        warp_max: the largest displacement, in cells of this unit's grid (``model.warp_max``).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int,
        hidden_channels: int,
        td_channels: int,
        cell: str = "gru",
        lateral: bool = True,
        kernel_size: int = 3,
        head_kernel: int = 1,
        encoder_norm: str = "none",
        pixel: bool = False,
        motion_channels: int = 0,
        mask_channels: int = 1,
        input_kernel: int | None = None,
        ema: bool = False,
        target_grad: bool = False,
        bind_dim: int = 32,
        residual: bool = False,
        warp: bool = False,
        warp_head: bool = False,
        warp_max: float = 3.0,
        horizon: int = 1,
        flow_head: bool = False,
        flow_head_hidden: int = 0,
        flow_head_share: float = 1.0,
        flow_head_input: str = "state",
        flow_horizon: int = 1,
    ):
        super().__init__()
        self.pixel = pixel
        self.repr_channels = in_channels if pixel else channels  # channels of a (without the motion part)
        self.motion_channels = motion_channels
        self.target_channels = self.repr_channels + motion_channels
        self.hidden_channels = hidden_channels
        self.td_channels = td_channels

        self.enc = None if pixel else Encoder(in_channels, channels, kernel_size=kernel_size, norm=encoder_norm)
        self.enc_motion = (
            Encoder(mask_channels, motion_channels, kernel_size=kernel_size, norm=encoder_norm)
            if motion_channels
            else None
        )
        # cell input: a(t-1) (target channels), e(t-1) (2x target channels), up(r_above(t-1)) (td channels)
        self.cell = build_cell(
            cell,
            lateral=lateral,
            in_channels=3 * self.target_channels + td_channels,
            hidden_channels=hidden_channels,
            kernel_size=kernel_size,
            input_kernel=input_kernel,
        )
        self.head = nn.Conv2d(hidden_channels, self.target_channels, head_kernel, padding=head_kernel // 2)
        # Residual prediction (â = sg(a(t-1)) + head(r)) for representation units; a pixel unit stays direct.
        self.residual = residual and not pixel
        # Heads for the further horizons k = 2..K: the state at t predicts the target at t+k-1.
        self.heads_ahead = nn.ModuleList(
            nn.Conv2d(hidden_channels, self.target_channels, head_kernel, padding=head_kernel // 2)
            for _ in range(max(0, horizon - 1))
        )
        # Warped prediction (â = warp(sg(a(t-1)), d(r)) + head(r)): the state must say where each position's content
        # comes from, a displacement d of at most warp_max cells (tanh-bounded) read from r by a 1x1 head.
        # warp_head alone (``model.warp_weight``): the same displacement head for an auxiliary warp target; the
        # prediction stays as it is.
        self.warp = warp and not pixel
        self.warp_head = nn.Conv2d(hidden_channels, 2, 1) if ((warp or warp_head) and not pixel) else None
        self.warp_max = warp_max
        if self.warp_head is not None:  # no displacement at first
            nn.init.zeros_(self.warp_head.weight)
            nn.init.zeros_(self.warp_head.bias)
        if self.residual or self.warp:  # start at copy-last: the heads begin at zero
            for h in [self.head, *self.heads_ahead]:
                nn.init.zeros_(h.weight)
                nn.init.zeros_(h.bias)
        self.flow_reads_repr = flow_head_input == "repr"
        read = self.target_channels if self.flow_reads_repr else hidden_channels
        self.flow_inputs = flow_head_inputs(read, flow_head_share)
        self.flow_head = _flow_head(self.flow_inputs, flow_head_hidden, flow_horizon) if flow_head else None
        if motion_channels:
            self.bind_rgb = nn.Linear(self.repr_channels, bind_dim)
            self.bind_motion = nn.Linear(motion_channels, bind_dim)
        self.ema = ema
        self.target_grad = target_grad  # read only without EMA (the stack refuses both together)
        if ema:
            # Target encoders: not trained by gradient, moved toward the online ones by update_ema().
            self.enc_target = copy.deepcopy(self.enc)
            self.enc_motion_target = copy.deepcopy(self.enc_motion)
            for p in list(_params(self.enc_target)) + list(_params(self.enc_motion_target)):
                p.requires_grad_(False)

    # ---- bottom-up ------------------------------------------------------------------------------------------
    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """What arrived: x (B, C_in, H, W), mask (B, 1, H, W) or None -> (a, target), each (B, C_target, H, W).

        ``a`` is the online representation (trains the encoder through the recurrence and the anti-collapse
        terms); ``target`` is what the error compares the prediction with: sg(a), a itself (``target_grad``: the
        error trains the encoder too), or the EMA encoders' output.
        """
        parts = [x if self.enc is None else self.enc(x)]
        if self.enc_motion is not None:
            if mask is None:
                raise ValueError("this unit has a motion stream (motion_channels > 0) but no mask was given")
            parts.append(self.enc_motion(mask))
        a = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if not self.ema:
            return a, (a if self.target_grad else a.detach())
        with torch.no_grad():
            t_parts = [x if self.enc_target is None else self.enc_target(x)]
            if self.enc_motion_target is not None:
                t_parts.append(self.enc_motion_target(mask))
            target = t_parts[0] if len(t_parts) == 1 else torch.cat(t_parts, dim=1)
        return a, target

    # ---- top-down -------------------------------------------------------------------------------------------
    def predict(
        self, a_prev: Tensor, e_prev: Tensor, td: Tensor | None, state: State | None
    ) -> tuple[Tensor, Tensor, State]:
        """The state update and the prediction. a_prev (B, C_t, H, W), e_prev (B, 2C_t, H, W), td (B, C_td, H, W).

        Returns (â (B, C_t, H, W), r (B, C_h, H, W), cell state).
        """
        inputs = [a_prev, e_prev] if td is None else [a_prev, e_prev, td]
        r, state = self.cell(torch.cat(inputs, dim=1), state)
        a_hat = self.head(r)
        base = self._base(a_prev, r, 1)
        if base is not None:  # the base's values are not trained through: the heads alone predict the change
            a_hat = a_hat + base
        if self.pixel:
            # Pixels live in [0, 1]; the motion part (if any) is a representation and stays linear.
            px, rest = a_hat.split([self.repr_channels, self.motion_channels], dim=1)
            a_hat = torch.sigmoid(px) if self.motion_channels == 0 else torch.cat([torch.sigmoid(px), rest], dim=1)
        return a_hat, r, state

    def predict_ahead(self, r: Tensor, a_prev: Tensor) -> list[Tensor]:
        """Predictions of the targets at t+1 .. t+K-1 from the state r (B, C_h, H, W) made at t (before frame t).

        a_prev (B, C_t, H, W) is the base of residual prediction. Returns K-1 tensors (B, C_t, H, W).
        """
        bases = [self._base(a_prev, r, k) for k in range(2, len(self.heads_ahead) + 2)]
        return [h(r) if b is None else h(r) + b for h, b in zip(self.heads_ahead, bases)]

    def displacement(self, r: Tensor) -> Tensor:
        """The warp head's displacement (B, 2, H, W) in cells (x, y), each within ±warp_max. Needs ``warp``."""
        return torch.tanh(self.warp_head(r)) * self.warp_max

    def warped(self, a_prev: Tensor, r: Tensor, k: int = 1) -> Tensor:
        """sg(a(t-1)) sampled at each position plus k times the displacement read from r (bilinear, border values
        outside): the warp's prediction of the target k steps on. Needs a warp head."""
        return warp(a_prev.detach(), k * self.displacement(r))

    def _base(self, a_prev: Tensor, r: Tensor, k: int) -> Tensor | None:
        """What the head's output adds to for horizon k: None (direct), sg(a(t-1)) (residual) or ``warped`` (warp)."""
        if self.warp:
            return self.warped(a_prev, r, k)
        return a_prev.detach() if self.residual else None

    def predict_flow(self, r: Tensor, a: Tensor | None = None) -> Tensor:
        """The flow head on the state r (B, C_h, H, W), or on the representation a (B, C_t, H, W) with
        ``flow_head_input="repr"``, -> (B, 2K, H, W) (K = ``model.flow_horizon``: frame t's motion first, then t+1's,
        ...), reading the last ``flow_inputs`` channels."""
        x = a if self.flow_reads_repr else r
        return self.flow_head(x if self.flow_inputs == x.shape[1] else x[:, -self.flow_inputs :])

    def bind_projections(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """Spatially pooled projections for the RGB<->motion binding loss. a (B, C_t, H, W) -> two (B, D)."""
        rgb, motion = a.split([self.repr_channels, self.motion_channels], dim=1)
        return self.bind_rgb(rgb.mean(dim=(2, 3))), self.bind_motion(motion.mean(dim=(2, 3)))

    @torch.no_grad()
    def update_ema(self, momentum: float) -> None:
        """target <- momentum * target + (1 - momentum) * online (BYOL, Grill et al. 2020, eq. 1). No-op without EMA."""
        if not self.ema:
            return
        for online, target in ((self.enc, self.enc_target), (self.enc_motion, self.enc_motion_target)):
            for p_o, p_t in zip(_params(online), _params(target)):
                p_t.lerp_(p_o, 1.0 - momentum)


def warp(x: Tensor, d: Tensor) -> Tensor:
    """x (B, C, H, W) sampled at each position p + d(p): d (B, 2, H, W) in cells, channel 0 along x (width), 1 along y.

    Bilinear, with border values outside the grid; differentiable in d (and in x). d = 0 returns x.
    """
    H, W = x.shape[-2:]
    ys = torch.linspace(-1.0, 1.0, H, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1.0, 1.0, W, device=x.device, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    scale = torch.tensor([2.0 / max(W - 1, 1), 2.0 / max(H - 1, 1)], device=x.device, dtype=x.dtype)
    grid = torch.stack([gx, gy], dim=-1) + d.permute(0, 2, 3, 1) * scale
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _params(m: nn.Module | None):
    return iter(()) if m is None else m.parameters()
