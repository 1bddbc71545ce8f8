"""What the predictive stack returns and carries between steps: ``StackState``, ``StepOutput``, ``StackOutput``.

Shared by ``PredictiveStack`` and the faithful PredNet (``prednet2.prednet``), so that training, streaming and
evaluation read both the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .cells import State


@dataclass
class StackState:
    """What one step hands the next: per layer the cell state, r, a and e from t-1, and the step count t."""

    t: int
    cell: list[State | None]
    r: list[Tensor | None]
    a: list[Tensor | None]
    e: list[Tensor | None]


def detach(x: Tensor | tuple[Tensor, ...] | None):
    """A tensor, a cell state (a tuple of tensors, e.g. an LSTM's (h, c)) or None, cut from the autograd graph."""
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(v.detach() for v in x)
    return x.detach()


def detach_state(state: StackState | None) -> StackState | None:
    """The same state cut from the autograd graph: call it between truncated windows (memory flat in T)."""
    if state is None:
        return None
    return StackState(
        t=state.t,
        cell=[detach(c) for c in state.cell],
        r=[detach(x) for x in state.r],
        a=[detach(x) for x in state.a],
        e=[detach(x) for x in state.e],
    )


@dataclass
class StepOutput:
    """One time step. Lists are per layer; tensors are (B, C, H, W) (errors 2C), frame_errors (B,).

    ``losses[l]`` is unit l's local loss for this step alone (what ``step``-based online learning minimises);
    ``terms`` holds its raw parts (``err/l``, ``var/l``, ``cov/l``, ``nce/l``, ``bind``); ``valid`` is False at t=0
    (no prediction yet, so no error loss: PredNet's time weight 0 at t=0).
    """

    preds: list[Tensor]
    targets: list[Tensor]
    errors: list[Tensor]
    states: list[Tensor]
    frame_errors: list[Tensor]
    losses: list[Tensor]
    terms: dict[str, Tensor]
    valid: bool
    bind_pair: tuple[Tensor, Tensor] | None = None
    ahead: list[list[Tensor]] | None = None  # per layer, the predictions of t+1 .. t+K-1 (model.horizon > 1)
    # per layer, the flow head's motion of frames t+1 .. t+K-1, (B, 2(K-1), h, w), or None (model.flow_horizon > 1)
    flow_ahead: list[Tensor | None] | None = None


class StackOutput:
    """A clip. Lists are per layer; tensors are (B, T, C_l, H_l, W_l) (errors 2*C_l), frame_errors (B, T).

    ``losses[l]``: unit l's scalar local loss = layer_weight_l * mean error loss over valid steps + anti-collapse
    terms (+ binding at unit 0). ``stats``: detached scalars for logging. ``state``: final state for the next window.
    ``frame_errors[l][:, t]`` is the per-sample error-unit mean at t (surprise); it is 0 at the clip's first step
    when no state was passed in (nothing was predicted there).

    ``preds``, ``targets``, ``errors`` and ``states`` are stacked over time on first access: a training step that
    only reads ``losses`` pays no copy for them.
    """

    def __init__(self, steps: list[StepOutput], losses: list[Tensor], stats: dict[str, Tensor], state: StackState):
        self.steps = steps
        self.losses = losses
        self.stats = stats
        self.state = state
        self._cache: dict[str, list[Tensor]] = {}

    def _stacked(self, key: str) -> list[Tensor]:
        if key not in self._cache:
            n = len(getattr(self.steps[0], key))
            self._cache[key] = [torch.stack([getattr(s, key)[l] for s in self.steps], dim=1) for l in range(n)]
        return self._cache[key]  # per layer (B, T, ...)

    @property
    def preds(self) -> list[Tensor]:
        return self._stacked("preds")

    @property
    def targets(self) -> list[Tensor]:
        return self._stacked("targets")

    @property
    def errors(self) -> list[Tensor]:
        return self._stacked("errors")

    @property
    def states(self) -> list[Tensor]:
        return self._stacked("states")

    @property
    def frame_errors(self) -> list[Tensor]:
        return self._stacked("frame_errors")
