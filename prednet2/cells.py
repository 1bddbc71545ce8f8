"""Convolutional recurrent cells: the lateral recurrence of a predictive unit.

Every cell has the same face so units can swap them:

    h, state = cell(x, state)      # x (B, C_in, H, W); state None at the first step; h (B, C_h, H, W)

``state`` is a tuple of tensors (``(h,)`` for GRU, ``(h, c)`` for LSTM, ``()`` for the state-free ablation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = tuple[Tensor, ...]


class ConvGRUCell(nn.Module):
    """Convolutional GRU (Ballas et al. 2016), in the cuDNN form ``n = tanh(W x + r * (U h))``.

    The input and hidden paths are two convolutions (not one over ``cat(x, r*h)``): that form needs the reset gate
    before the candidate's conv, i.e. three convs, and this one is as expressive in practice and cheaper.
    """

    def __init__(
        self, *, in_channels: int, hidden_channels: int, kernel_size: int = 3, input_kernel: int | None = None
    ):
        super().__init__()
        self.hidden_channels = hidden_channels
        ki = kernel_size if input_kernel is None else input_kernel
        self.conv_x = nn.Conv2d(in_channels, 3 * hidden_channels, ki, padding=ki // 2)
        self.conv_h = nn.Conv2d(hidden_channels, 3 * hidden_channels, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        gx = self.conv_x(x)  # (B, 3*C_h, H, W)
        if state is None:  # h = 0: the hidden path contributes nothing, skip its conv
            z, _, n = gx.chunk(3, dim=1)
            h = (1 - torch.sigmoid(z)) * torch.tanh(n)
            return h, (h,)
        (h_prev,) = state
        gh = self.conv_h(h_prev)
        zx, rx, nx = gx.chunk(3, dim=1)
        zh, rh, nh = gh.chunk(3, dim=1)
        z = torch.sigmoid(zx + zh)
        r = torch.sigmoid(rx + rh)
        n = torch.tanh(nx + r * nh)
        h = torch.lerp(n, h_prev, z)  # (1 - z) * n + z * h_prev
        return h, (h,)


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM (Shi et al. 2015): convs of x and h give the gates i, f, o and the candidate g.

    With equal kernels this is PredNet's one conv over ``cat(x, h)`` split in two (same function, and the h conv
    is skipped while h = 0). ``hard_gates`` uses Keras' hard_sigmoid, as PredNet's code does.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        input_kernel: int | None = None,
        hard_gates: bool = False,
    ):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.hard_gates = hard_gates
        ki = kernel_size if input_kernel is None else input_kernel
        self.conv_x = nn.Conv2d(in_channels, 4 * hidden_channels, ki, padding=ki // 2)
        self.conv_h = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2, bias=False)

    def _gate(self, x: Tensor) -> Tensor:
        # Keras hard_sigmoid: clip(0.2 x + 0.5, 0, 1)
        return (0.2 * x + 0.5).clamp(0, 1) if self.hard_gates else torch.sigmoid(x)

    def forward(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        g = self.conv_x(x)  # (B, 4*C_h, H, W)
        if state is not None:
            h_prev, c_prev = state
            g = g + self.conv_h(h_prev)
        i, f, o, c_new = g.chunk(4, dim=1)
        c = self._gate(i) * torch.tanh(c_new)
        if state is not None:
            c = c + self._gate(f) * c_prev
        h = self._gate(o) * torch.tanh(c)
        return h, (h, c)


class StatelessCell(nn.Module):
    """The ``lateral=False`` ablation: ``h = tanh(conv(x))``, no memory of its own past."""

    def __init__(
        self, *, in_channels: int, hidden_channels: int, kernel_size: int = 3, input_kernel: int | None = None
    ):
        super().__init__()
        self.hidden_channels = hidden_channels
        ki = kernel_size if input_kernel is None else input_kernel
        self.conv = nn.Conv2d(in_channels, hidden_channels, ki, padding=ki // 2)

    def forward(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        return torch.tanh(self.conv(x)), ()


def build_cell(
    kind: str,
    *,
    lateral: bool,
    in_channels: int,
    hidden_channels: int,
    kernel_size: int,
    input_kernel: int | None = None,
) -> nn.Module:
    """``kind`` is ``"gru"`` or ``"lstm"``; ``lateral=False`` gives the state-free ablation whatever the kind.

    ``kernel_size`` is the hidden-to-hidden kernel; ``input_kernel`` (default: the same) the input-to-hidden one.
    """
    kw = dict(
        in_channels=in_channels, hidden_channels=hidden_channels, kernel_size=kernel_size, input_kernel=input_kernel
    )
    if not lateral:
        return StatelessCell(**kw)
    if kind == "gru":
        return ConvGRUCell(**kw)
    if kind == "lstm":
        return ConvLSTMCell(**kw)
    raise ValueError(f"model.cell: unknown cell {kind!r}; choose 'gru' or 'lstm'")


def upsample2(x: Tensor) -> Tensor:
    """Nearest-neighbour x2 upsampling: (B, C, H, W) -> (B, C, 2H, 2W)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
