"""Layer-parallel local training: the stack's units on different processes, pipelined over time steps.

In local mode no gradient crosses units, so unit l needs from its neighbours only *values*: the input x_l(t) from
unit l-1 (same t) and the top-down state r_{l+1}(t-1) from unit l+1 (one step late). Units can therefore live on
different processes (or GPUs) that exchange those tensors point to point, each doing its own forward, backward
and optimiser step.

Schedule. Split a unit's time step into its top-down part C (the cell update and the prediction, ``unit.predict``)
and its bottom-up part B (encode the input, error units, local loss terms, pass up, ``unit.encode``). Dependencies:

    C(l, t) <- C(l, t-1), B(l, t-1)   (own state, a_l(t-1), e_l(t-1))      and  C(l+1, t-1)  (r_{l+1}(t-1))
    B(l, t) <- C(l, t)                (the prediction)                      and  B(l-1, t)    (x_l(t))

The plain tick ``t + l`` does not work (C(l, t) would need C(l+1, t-1) from the same tick). Giving each half-step
its own tick does:

    tick(C(l, t)) = 2t + l        tick(B(l, t)) = 2t + l + 1

Every dependency then comes from a strictly earlier tick (C(l+1, t-1): 2t+l-1; B(l-1, t): 2t+l; B(l, t-1):
2t+l-1), so all units run at once: at tick 2t+l+1 unit l does B of step t while unit l+1 does C of step t and
unit l-1 does C of step t+1 -- unit l+1 trails unit l by half a step to a step, the pipeline of the issue. Each
process runs the ops of its units in tick order, sends with ``isend`` and blocks on ``recv`` only for a value made
at an earlier tick, which cannot deadlock. Truncated windows are per unit: after B(l, t) closes a window, unit l
backpropagates its window loss, clips its own gradient, steps and detaches its state; its next C comes later.

Equivalence. Each unit computes exactly what ``PredictiveStack.forward`` computes for it (same ops, same inputs,
same parameters at every step: unit l's step t always uses its parameters after floor(t/k) updates), and the
per-unit loss of a window is aggregated as ``forward`` does (error over valid steps, anti-collapse over all steps,
binding over all (step, sample) pairs). The per-unit optimiser is ``AdamW`` over that unit's param group, with
``trainer.build_optimizer``'s warmup, per-unit clipping as ``trainer.train_step`` does in local mode, and the
trainer's pull toward the initial weights (``anchor_weight``, ``train.anchor_weight``) after each unit's step. So
losses and parameters equal the sequential local mode's up to float rounding (the tests use 1e-5 relative on
losses). ``LayerParallelWorker.from_config`` takes all of that from a config, as ``train.py`` does.

Only ``train.mode=local`` can be layer-parallel (end-to-end BPTT sends gradients across units).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .cells import upsample2
from .losses import ahead_loss
from .optim import InitAnchor, lr_factor
from .outputs import detach as _detach
from .readout import FLOW_PARTS, asked_parts, base_part
from .stack_checks import flow_weights_of
from .stack_parts import passed_up, up_channels, window_terms

__all__ = ["partition_units", "unit_costs", "LayerParallelWorker", "tick_schedule"]

_TAG_X, _TAG_R = 1, 2  # message kinds: bottom-up input x_{l+1}(t), top-down state r_l(t)


def unit_costs(model: nn.Module, size: tuple[int, int]) -> list[float]:
    """Rough per-unit cost: parameters x spatial positions at that unit (conv FLOPs scale with both)."""
    s = int(getattr(model.cfg, "stem", 1))
    H, W = size[0] // s, size[1] // s
    return [sum(p.numel() for p in u.parameters()) * (H >> l) * (W >> l) for l, u in enumerate(model.units)]


def partition_units(costs: list[float], world: int) -> list[list[int]]:
    """Contiguous blocks of units, one per process, minimising the largest block's cost (ties: earlier splits).

    Contiguous blocks keep every message between neighbouring processes. Needs ``world <= len(costs)``.
    """
    L = len(costs)
    if not 1 <= world <= L:
        raise ValueError(f"layer-parallel: {world} processes for {L} units; use at most one process per unit")
    best, best_cost = None, math.inf
    for cuts in itertools.combinations(range(1, L), world - 1):
        bounds = (0, *cuts, L)
        blocks = [list(range(bounds[i], bounds[i + 1])) for i in range(world)]
        worst = max(sum(costs[l] for l in b) for b in blocks)
        if worst < best_cost:
            best, best_cost = blocks, worst
    assert best is not None
    return best


def tick_schedule(units: list[int], T: int) -> list[tuple[int, str, int, int]]:
    """The ops of ``units`` over T steps in tick order: (tick, "C" | "B", unit, t). See the module docstring."""
    ops = []
    for t in range(T):
        for l in units:
            ops.append((2 * t + l, "C", l, t))
            ops.append((2 * t + l + 1, "B", l, t))
    ops.sort(key=lambda o: (o[0], o[2], o[1] == "B"))
    return ops


@dataclass
class _UnitState:
    cell: object = None
    r: Tensor | None = None
    a: Tensor | None = None
    e: Tensor | None = None
    pred: Tensor | None = None  # â(t) from C, consumed by B of the same step
    ahead: list[Tensor] | None = None  # C's predictions of t+1 .. t+K-1 (model.horizon K > 1)
    steps: list[dict] = field(default_factory=list)  # this window's per-step loss terms


class LayerParallelWorker:
    """The units of one process, their optimiser, and the pipelined loop over a batch of clips.

    Build one per process after ``dist.init_process_group`` (gloo on CPU, nccl on GPU). Every process builds the
    whole model from the same seed (cheap) and trains only ``units``; ``state_dicts`` gathers the trained units.

    Args:
        model: a ``PredictiveStack`` (local mode), identical on every process.
        lr, weight_decay, warmup_steps, grad_clip, window: as ``cfg.train``.
        lr_schedule, decay_start, steps: as ``cfg.train`` (the schedule after warmup; ``steps`` ends a cosine).
        batch_size, clip_len, size: the shape of every batch (fixed: receivers pre-allocate their buffers).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        lr_schedule: str = "constant",
        decay_start: int = 0,
        steps: int = 1,
        grad_clip: float = 1.0,
        window: int = 5,
        batch_size: int,
        clip_len: int,
        size: tuple[int, int],
        units: list[list[int]] | None = None,
        device: torch.device | str = "cpu",
        anchor_weight: float = 0.0,
    ):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.model = model.to(device)
        self.device = torch.device(device)
        cfg = model.cfg
        self.L = model.num_layers
        blocks = units or partition_units(unit_costs(model, size), self.world)
        if len(blocks) != self.world or sorted(sum(blocks, [])) != list(range(self.L)):
            raise ValueError(f"layer-parallel: bad unit blocks {blocks} for {self.L} units on {self.world} processes")
        self.blocks = blocks
        self.mine = blocks[self.rank]
        self.owner = {l: r for r, b in enumerate(blocks) for l in b}
        self.B, self.T, self.size = batch_size, clip_len, (int(size[0]), int(size[1]))
        self.stem = int(getattr(cfg, "stem", 1))
        if self.size[0] % model.stride or self.size[1] % model.stride:
            raise ValueError(f"layer-parallel: size {self.size} is not a multiple of the model's stride {model.stride}")
        self.grid = (self.size[0] // self.stem, self.size[1] // self.stem)  # unit 0's grid after the stem
        self.window = max(1, min(window, clip_len))
        self.grad_clip = grad_clip
        if cfg.motion_error_weight > 0:  # the masks live on unit 0's process only
            raise ValueError("layer-parallel: model.motion_error_weight is not supported; train without it")
        # The flow target (model.flow_weight) is not computed here: the batches carry no flow. Training without the
        # term asked for would be another model than the config names, and heads kept only to be read (readout part
        # f, model.flow_detach) would stay at their random init: all refused.
        if any(flow_weights_of(cfg)):
            raise ValueError("layer-parallel: model.flow_weight / model.flow_weights above 0 are not supported (the "
                             "batches carry no optical flow; the default puts the flow target on the first and the "
                             "last unit); build the model with model.flow_weight=0 or train with train.py")  # fmt: skip
        if cfg.flow_detach or set(FLOW_PARTS) & {base_part(p) for p in asked_parts(cfg.readout, has_flow_heads=False)}:
            raise ValueError("layer-parallel: model.flow_detach and the readout parts f and fo need trained flow "
                             "heads, and this mode has no flow target; train with the sequential trainer "
                             "(train.py)")  # fmt: skip
        if cfg.blind_prob > 0:  # hiding a frame is decided per clip across every unit's process
            raise ValueError("layer-parallel: model.blind_prob is not supported; train without it")
        self.feedback = bool(cfg.feedback)
        self.pass_up = cfg.pass_up
        # One AdamW per unit: AdamW is elementwise per parameter, so this equals the trainer's one optimiser with a
        # param group per unit; the schedule is trainer.build_optimizer's (optim.lr_factor, one step per batch).
        factor = lr_factor(lr_schedule, warmup=warmup_steps, total=steps, decay_start=decay_start)
        self.optimizers = {
            l: torch.optim.AdamW(
                [{"params": model.unit_parameters(l), "name": f"unit{l}"}], lr=lr, weight_decay=weight_decay
            )
            for l in self.mine
        }
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in self.optimizers.values()]
        # train.anchor_weight: the trainer's pull toward the initial weights, per unit after its own step (the
        # initial weights are the model's now, as the trainer's anchor is built before a resume loads anything)
        if anchor_weight < 0:
            raise ValueError(f"layer-parallel: anchor_weight={anchor_weight} must be >= 0 (train.anchor_weight)")
        self.anchors = {l: InitAnchor(o, anchor_weight) for l, o in self.optimizers.items()} if anchor_weight else {}
        self._pending: list = []
        model.train()

    @classmethod
    def from_config(cls, model: nn.Module, cfg, *, units: list[list[int]] | None = None, device="cpu"):
        """A worker that trains as ``train.py`` would with ``cfg`` (a ``prednet2.Config``): its learning rate,
        schedule, weight decay, clipping, window and anchor, on ``cfg.data``'s batch, clip length and size. Train
        keys this mode cannot follow are refused: ``train.mode=end_to_end``, ``train.encoder_lr_scale`` and the late
        schedules (``train.flow_end``, ``train.anchor_end``)."""
        t, d = cfg.train, cfg.data
        for key, off in (("mode", "local"), ("encoder_lr_scale", 1.0), ("flow_end", 1.0), ("anchor_end", 1.0)):
            if getattr(t, key) != off:
                raise ValueError(f"layer-parallel: train.{key}={getattr(t, key)!r} is not supported; set it to "
                                 f"{off!r} or train with train.py")  # fmt: skip
        return cls(
            model, lr=t.lr, weight_decay=t.weight_decay, warmup_steps=t.warmup_steps, lr_schedule=t.lr_schedule,
            decay_start=t.decay_start, steps=t.steps, grad_clip=t.grad_clip, window=t.window,
            anchor_weight=t.anchor_weight, batch_size=d.batch_size, clip_len=d.clip_len, size=tuple(d.size),
            units=units, device=device,
        )  # fmt: skip

    # ---- message shapes ------------------------------------------------------------------------------------
    def _x_shape(self, l: int) -> tuple[int, ...]:
        below = self.model.units[l - 1]
        c = up_channels(self.pass_up, below)
        return (self.B, c, self.grid[0] >> l, self.grid[1] >> l)

    def _r_shape(self, l: int) -> tuple[int, ...]:
        return (self.B, self.model.units[l].hidden_channels, self.grid[0] >> l, self.grid[1] >> l)

    def _send(self, t: Tensor, dst: int, tag: int) -> None:
        self._pending.append(dist.isend(t.contiguous(), dst=dst, tag=tag))

    def _recv(self, shape, src: int, tag: int) -> Tensor:
        buf = torch.empty(shape, device=self.device)
        dist.recv(buf, src=src, tag=tag)
        return buf

    # ---- one batch -----------------------------------------------------------------------------------------
    def train_batch(self, clip: Tensor | None, mask: Tensor | None = None) -> dict[int, float]:
        """One optimisation step of the trainer (all windows of one batch) for this process's units.

        clip: (B, T, C, H, W) float in [0, 1] on the process that holds unit 0 (None elsewhere); mask likewise.
        Returns {unit: loss}, each unit's loss averaged over the clip as ``trainer.train_step`` reports it.
        """
        model = self.model
        if 0 in self.mine:
            if clip is None or tuple(clip.shape[:2]) != (self.B, self.T) or tuple(clip.shape[-2:]) != self.size:
                got = None if clip is None else tuple(clip.shape)
                want = (self.B, self.T, self.size)
                raise ValueError(f"layer-parallel: unit 0 needs a clip of (B, T, ., H, W) = {want}, got {got}")
            clip = clip.to(self.device)
            mask = None if mask is None else mask.to(self.device)
            if self.stem > 1:  # the stack's space-to-depth stem, as in PredictiveStack.step
                clip = rearrange(F.pixel_unshuffle(rearrange(clip, "b t c h w -> (b t) c h w"), self.stem),
                                 "(b t) c h w -> b t c h w", b=self.B)  # fmt: skip
                if mask is not None:
                    mask = rearrange(F.pixel_unshuffle(rearrange(mask, "b t c h w -> (b t) c h w"), self.stem),
                                     "(b t) c h w -> b t c h w", b=self.B)  # fmt: skip
        st = {l: _UnitState() for l in self.mine}
        local: dict[int, Tensor] = {}  # messages between two units of this process, keyed (kind, unit, t)
        loss_acc = {l: 0.0 for l in self.mine}
        for _, op, l, t in tick_schedule(self.mine, self.T):
            u = model.units[l]
            s = st[l]
            h, w = self.grid[0] >> l, self.grid[1] >> l
            if op == "C":
                # Step C. Top-down: the cell update from t-1 and the prediction of what step t brings.
                a_prev = s.a if s.a is not None else torch.zeros(self.B, u.target_channels, h, w, device=self.device)
                e_prev = (
                    s.e if s.e is not None else torch.zeros(self.B, 2 * u.target_channels, h, w, device=a_prev.device)
                )
                td = None
                if u.td_channels:
                    if t == 0:  # the stack's first step: no state above yet
                        r_above = torch.zeros(self.B, u.td_channels, h >> 1, w >> 1, device=self.device)
                    elif self.owner[l + 1] == self.rank:
                        r_above = local.pop(("r", l + 1, t - 1))
                    else:
                        r_above = self._recv(self._r_shape(l + 1), self.owner[l + 1], _TAG_R)
                    td = upsample2(r_above)
                s.pred, r, s.cell = u.predict(a_prev, e_prev, td, s.cell)
                s.r = r
                if model.cfg.horizon > 1:
                    s.ahead = u.predict_ahead(r, a_prev)
                if l > 0 and self.feedback and t + 1 < self.T:  # unit l-1 reads r_l(t) at its step t+1
                    if self.owner[l - 1] == self.rank:
                        local[("r", l, t)] = r.detach()
                    else:
                        self._send(r.detach(), self.owner[l - 1], _TAG_R)
                continue
            # Step B. Bottom-up: what arrived, the error units, the loss terms, and the input of the unit above.
            if l == 0:
                x = clip[:, t]
            elif self.owner[l - 1] == self.rank:
                x = local.pop(("x", l, t))
            else:
                x = self._recv(self._x_shape(l), self.owner[l - 1], _TAG_X)
            a, target = u.encode(x, mask[:, t] if (l == 0 and mask is not None) else None)
            e, per_sample = model._error(s.pred, target, None, u)  # u: model.motion_loss reads its channels
            valid = t > 0
            terms = {f"err/{l}": per_sample.mean() if valid else 0.0 * per_sample.sum()}
            terms.update(model._unit_terms(l, a, s.pred, s.a, s.r))
            bind = u.bind_projections(a) if u.motion_channels else None
            s.steps.append({"terms": terms, "valid": valid, "bind": bind, "ahead": s.ahead, "target": target})
            s.a, s.e = a, e
            if l + 1 < self.L:
                up = passed_up(self.pass_up, e, a, s.r)
                x_next = F.max_pool2d(up.detach(), 2)
                if self.owner[l + 1] == self.rank:
                    local[("x", l + 1, t)] = x_next
                else:
                    self._send(x_next, self.owner[l + 1], _TAG_X)
            if (t + 1) % self.window == 0 or t + 1 == self.T:
                # Step W. The window closes for unit l: its loss, backward, own clip, own step, detach.
                n_steps = len(s.steps)
                loss = self._window_loss(l, s.steps)
                self._step_unit(l, loss)
                loss_acc[l] += float(loss.detach()) * n_steps / self.T
                s.steps = []
                s.cell = _detach(s.cell)
                s.r, s.a, s.e, s.pred, s.ahead = _detach(s.r), _detach(s.a), _detach(s.e), None, None
        for work in self._pending:  # every isend of this batch has been matched by its recv
            work.wait()
        self._pending.clear()
        for sched in self.schedulers:
            sched.step()
        return loss_acc

    def _window_loss(self, l: int, steps: list[dict]) -> Tensor:
        """Unit l's loss over one window, aggregated exactly as ``PredictiveStack.forward`` does."""
        model, cfg = self.model, self.model.cfg
        terms = window_terms(
            [s["terms"] for s in steps], [s["valid"] for s in steps], [s["bind"] for s in steps], cfg.bind_temperature
        )
        if cfg.horizon > 1:
            ahead = ahead_loss(
                [s["ahead"] for s in steps], [s["target"] for s in steps], [s["valid"] for s in steps], model._error
            )
            if ahead is not None:
                terms[f"ahead/{l}"] = ahead
        # Compose with the stack's own rule; the other units' terms are zeros (their losses are not used here).
        zero = torch.zeros((), device=self.device)
        full = {f"err/{k}": zero for k in range(self.L)}
        full.update(terms)
        return model._compose(full)[l]

    def _step_unit(self, l: int, loss: Tensor) -> None:
        opt = self.optimizers[l]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = opt.param_groups[0]["params"]
        nn.utils.clip_grad_norm_(params, self.grad_clip if self.grad_clip > 0 else math.inf)  # per unit, as local
        opt.step()
        if l in self.anchors:
            self.anchors[l](opt)
        self.model.units[l].update_ema(self.model.cfg.ema_momentum)

    # ---- results -------------------------------------------------------------------------------------------
    def gather_state_dict(self) -> dict[str, Tensor] | None:
        """The whole model's state dict with every unit's trained weights, on rank 0 (None elsewhere)."""
        mine = {k: v.detach().cpu() for k, v in self.model.state_dict().items() if _unit_of(k) in self.mine}
        parts: list = [None] * self.world
        dist.all_gather_object(parts, mine)
        if self.rank != 0:
            return None
        full = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        for p in parts:
            full.update(p)
        return full


def _unit_of(key: str) -> int | None:
    parts = key.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[0] == "units" and parts[1].isdigit() else None
