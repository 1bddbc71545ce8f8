"""PredictiveStack: locally trained recurrent units that predict their own future representation (DESIGN §2).

Per time step, in PredNet's order:

    for l = L-1 .. 0:
        r_l(t) = cell_l(r_l(t-1), cat(a_l(t-1), e_l(t-1), up(r_{l+1}(t-1))));  â_l(t) = head_l(r_l(t))
    x_0 = frame(t)
    for l = 0 .. L-1:
        a_l(t) = enc_l(x_l);  e_l(t) = [relu(a - â), relu(â - a)] against sg(a_l(t));  x_{l+1} = pool(sg(e_l))

``forward`` is a loop over ``step``, so training and streaming cannot diverge. Tensor layout: (B, T, C, H, W).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import readout
from .cells import State, upsample2
from .config import ModelConfig
from .losses import (
    ahead_loss,
    arrow_loss,
    covariance_penalty,
    error_loss,
    flow_loss,
    info_nce,
    mean_error,
    repr_part,
    squared_error,
    variance_hinge,
)
from .ops import reference_error_unit
from .outputs import StackOutput, StackState, StepOutput
from .stack_checks import (
    check_frames,
    check_mask,
    check_state,
    check_value_range,
    flow_weights_of,
    validate_model_config,
)
from .stack_parts import error_mask, flow_ahead_terms, passed_up, up_channels, window_terms
from .units import PredictiveUnit


class PredictiveStack(nn.Module):
    """The prednet2 model. Build it with ``prednet2.build_model(cfg)``; see docs/model.md."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        validate_model_config(cfg)
        self.cfg = cfg
        L = len(cfg.channels)
        hidden = cfg.hidden_channels or cfg.channels
        pixel0 = cfg.target == "pixel"
        units = []
        in_ch = cfg.in_channels * cfg.stem**2
        self.flow_weights = flow_weights = flow_weights_of(cfg)
        # a multiplier of every flow weight, set by the trainer before each step (train.flow_end); 1 elsewhere
        self.flow_scale = 1.0
        for l in range(L):
            pixel = pixel0 and l == 0
            head_input = cfg.flow_head_input  # "mixed": unit 0's a sees one frame (no heading), its head reads r
            if head_input == "mixed":
                head_input = "state" if l == 0 else "repr"
            unit = PredictiveUnit(
                in_channels=in_ch,
                channels=cfg.channels[l],
                hidden_channels=hidden[l],
                td_channels=hidden[l + 1] if (cfg.feedback and l + 1 < L) else 0,
                cell=cfg.cell,
                lateral=cfg.lateral,
                kernel_size=cfg.kernel_size,
                head_kernel=cfg.head_kernel,
                encoder_norm=cfg.encoder_norm,
                pixel=pixel,
                motion_channels=cfg.motion_channels if l == 0 else 0,
                mask_channels=cfg.stem**2,
                input_kernel=cfg.input_kernel or None,
                ema=cfg.target_mode == "ema",
                target_grad=cfg.target_grad,
                residual=cfg.predict == "residual",
                warp=cfg.predict == "warp",
                warp_head=cfg.warp_weight > 0,
                warp_max=cfg.warp_max,
                horizon=cfg.horizon,
                flow_head=flow_weights[l] > 0,
                flow_head_hidden=cfg.flow_head_hidden,
                flow_head_share=cfg.flow_head_share,
                flow_head_input=head_input,
                flow_horizon=cfg.flow_horizon,
            )
            units.append(unit)
            in_ch = up_channels(cfg.pass_up, unit)
        self.units = nn.ModuleList(units)
        self.layer_weights = tuple(cfg.error_weight * w for w in (tuple(cfg.layer_weights) or (1.0,) * L))
        self.cov_weights = tuple(cfg.cov_weights) or (cfg.cov_weight,) * L

    @property
    def num_layers(self) -> int:
        return len(self.units)

    @property
    def stride(self) -> int:
        """Total downsampling: input sizes must be a multiple of it."""
        return self.cfg.stem * 2 ** (self.num_layers - 1)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The online target encoders' trainable parameters (``enc``, ``enc_motion``; not EMA copies), for
        ``train.encoder_lr_scale``."""
        encs = [m for u in self.units for m in (u.enc, u.enc_motion) if m is not None]
        return [p for m in encs for p in m.parameters() if p.requires_grad]

    def unit_parameters(self, l: int) -> list[nn.Parameter]:
        """Trainable parameters of unit l (what its local loss updates)."""
        return [p for p in self.units[l].parameters() if p.requires_grad]

    # ---- streaming ------------------------------------------------------------------------------------------
    def step(
        self,
        frame: Tensor,
        state: StackState | None = None,
        mask: Tensor | None = None,
        *,
        detach_between: bool = True,
        compute_losses: bool = True,
        step_losses: bool = True,
        blind: Tensor | None = None,
        flow: Tensor | None = None,
    ) -> tuple[StepOutput, StackState]:
        """One time step. frame (B, C, H, W) in [0, 1]; mask (B, 1, H, W) or None; state None on the first call.

        ``detach_between=True`` (local mode) cuts every gradient path between units; False is end-to-end BPTT.
        ``step_losses=False`` leaves ``losses`` empty and skips this step's binding loss (``forward`` computes both
        over the whole clip from ``terms`` and ``bind_pair``). ``blind`` (B,) bool: these clips' units keep their own
        prediction of this frame, not what came, for the next step (``model.blind_prob``); the losses are unchanged.
        ``flow`` (B, 2, H, W): the motion vectors frame t brings (px per frame), the target of the units' flow heads
        (``model.flow_weight``); without it the flow term is left out (streaming, evaluation), with it every unit
        that has a head adds its term. Training passes it (``train.py`` makes the data carry it).
        """
        cfg = self.cfg
        L = self.num_layers
        self.check_call(frame, mask, state, clip=False)
        if state is None:
            check_value_range(frame)
        if cfg.stem > 1:  # space-to-depth: (B, C, H, W) -> (B, C*s*s, H/s, W/s); nothing is thrown away
            frame = F.pixel_unshuffle(frame, cfg.stem)
            mask = None if mask is None else F.pixel_unshuffle(mask, cfg.stem)
        B, _, H, W = frame.shape
        if state is None:
            state = StackState(t=0, cell=[None] * L, r=[None] * L, a=[None] * L, e=[None] * L)

        # Step 1. Top-down: states from t-1, then the predictions of what frame t will bring.
        preds: list[Tensor] = [frame] * L
        r_new: list[Tensor] = [frame] * L
        cell_new: list[State | None] = [None] * L
        ahead: list[list[Tensor]] | None = [[] for _ in range(L)] if (compute_losses and cfg.horizon > 1) else None
        for l in reversed(range(L)):
            u = self.units[l]
            h, w = H >> l, W >> l
            a_prev = state.a[l] if state.a[l] is not None else frame.new_zeros(B, u.target_channels, h, w)
            e_prev = state.e[l] if state.e[l] is not None else frame.new_zeros(B, 2 * u.target_channels, h, w)
            td = None
            if u.td_channels:
                r_above = state.r[l + 1]
                if r_above is None:
                    r_above = frame.new_zeros(B, u.td_channels, h >> 1, w >> 1)
                td = upsample2(r_above.detach() if detach_between else r_above)
            preds[l], r_new[l], cell_new[l] = u.predict(a_prev, e_prev, td, state.cell[l])
            if ahead is not None:
                ahead[l] = u.predict_ahead(r_new[l], a_prev)

        # Step 2. Bottom-up: what arrived, and how wrong the predictions were.
        valid = state.t > 0
        x = frame
        a_new: list[Tensor] = []
        targets: list[Tensor] = []
        errors: list[Tensor] = []
        frame_errors: list[Tensor] = []
        terms: dict[str, Tensor] = {}
        bind_pair = None
        flow_ahead: list[Tensor | None] = [None] * L  # model.flow_horizon > 1: the flow heads' t+1.. outputs
        m = error_mask(mask) if cfg.motion_error_weight > 0 else None
        for l in range(L):
            u = self.units[l]
            a, target = u.encode(x, mask if l == 0 else None)
            e, per_sample = self._error(preds[l], target, self._error_weight(m, l), u)
            a_new.append(a)
            targets.append(target)
            errors.append(e)
            frame_errors.append(per_sample.detach() if valid else torch.zeros_like(per_sample.detach()))
            if compute_losses:
                terms[f"err/{l}"] = per_sample.mean() if valid else 0.0 * per_sample.sum()
                terms.update(self._unit_terms(l, a, preds[l], state.a[l], r_new[l]))
                if u.flow_head is not None and flow is not None:
                    r_in, a_in = (r_new[l].detach(), a.detach()) if cfg.flow_detach else (r_new[l], a)
                    v = u.predict_flow(r_in, a_in)  # (B, 2K, h, w): frame t's motion, then t+1's, ...
                    terms[f"flow/{l}"] = flow_loss(v[:, :2], flow, cfg.stem << l, valid)
                    if cfg.flow_horizon > 1:
                        flow_ahead[l] = v[:, 2:]
                if u.motion_channels:
                    bind_pair = u.bind_projections(a)
            if l + 1 < L:
                up = passed_up(cfg.pass_up, e, a, r_new[l])
                x = F.max_pool2d(up.detach() if detach_between else up, 2)

        losses: list[Tensor] = []
        if compute_losses and step_losses:
            if bind_pair is not None:
                terms["bind"] = info_nce(*bind_pair, cfg.bind_temperature) if B > 1 else 0.0 * bind_pair[0].sum()
            losses = self._compose(terms)
        mem_a, mem_e = a_new, errors
        if blind is not None:  # model.blind_prob: these clips' units remember their own prediction, not frame t
            seen = ~blind.view(-1, 1, 1, 1)
            mem_a = [torch.where(seen, a, p.detach()) for a, p in zip(a_new, preds)]
            mem_e = [torch.where(seen, e, torch.zeros_like(e)) for e in errors]
        new_state = StackState(t=state.t + 1, cell=cell_new, r=r_new, a=mem_a, e=mem_e)
        out = StepOutput(
            preds, targets, errors, r_new, frame_errors, losses, terms, valid, bind_pair, ahead, flow_ahead
        )
        return out, new_state

    def forward(
        self,
        clip: Tensor,
        mask: Tensor | None = None,
        state: StackState | None = None,
        *,
        detach_between: bool = True,
        flow: Tensor | None = None,
    ) -> StackOutput:
        """A clip (B, T, C, H, W) in [0, 1]; mask (B, T, 1, H, W) or None; flow (B, T, 2, H, W) or None (the flow
        head's target, ``model.flow_weight``). See StackOutput for what comes back."""
        self.check_call(clip, mask, state, clip=True)
        T = clip.shape[1]
        steps: list[StepOutput] = []
        hide = self.cfg.blind_prob if self.training else 0.0
        for t in range(T):
            blind = None
            if hide > 0 and state is not None and state.t > 0:  # a first frame has no prediction to stand in for it
                blind = torch.rand(clip.shape[0], device=clip.device) < hide
            out, state = self.step(
                clip[:, t],
                state,
                None if mask is None else mask[:, t],
                detach_between=detach_between,
                step_losses=False,
                blind=blind,
                flow=None if flow is None else flow[:, t],
            )
            steps.append(out)

        terms = window_terms(
            [s.terms for s in steps], [s.valid for s in steps], [s.bind_pair for s in steps], self.cfg.bind_temperature
        )
        if self.cfg.horizon > 1:
            terms.update(self._ahead_terms(steps))
        if self.cfg.flow_horizon > 1 and flow is not None:
            terms.update(flow_ahead_terms(terms, steps, flow, self.cfg.stem))
        losses = self._compose(terms)

        stats = {k: v.detach() for k, v in terms.items()}
        return StackOutput(steps, losses, stats, state)

    @torch.no_grad()
    def extract_features(self, clip: Tensor, mask: Tensor | None = None, *, grid: int = 1) -> dict[int, Tensor]:
        """Per-layer features for probes: {l: (B, F_l)}, the ``model.readout`` parts pooled over space and time.

        See ``prednet2.readout.extract_features`` (eval mode, no grad; the training mode is restored).
        """
        return readout.extract_features(self, clip, mask, grid=grid)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move EMA target encoders toward the online ones (call after each optimizer step; no-op in stopgrad)."""
        for u in self.units:
            u.update_ema(self.cfg.ema_momentum)

    # ---- helpers --------------------------------------------------------------------------------------------
    def _error(self, pred: Tensor, target: Tensor, weight: Tensor | None = None, u=None) -> tuple[Tensor, Tensor]:
        """(E, per-sample loss): E from the fused op (or the reference), the loss per ``model.error_loss``; with
        ``model.motion_loss=false`` the loss reads unit ``u``'s representation channels only (E keeps them all)."""
        E, l1 = error_loss(pred, target, weight) if self.cfg.use_ext_op else reference_error_unit(pred, target, weight)
        part = repr_part(E, u.repr_channels) if u is not None and u.motion_channels and not self.cfg.motion_loss else E
        if self.cfg.error_loss == "l1":
            return E, (l1 if part is E else mean_error(part, weight))
        return E, squared_error(part, weight)

    def _error_weight(self, m: Tensor | None, l: int) -> Tensor | None:
        """1 + lambda * (the motion mask on unit l's grid); None: the plain mean (``model.motion_error_weight``)."""
        if m is None:
            return None
        m = F.max_pool2d(m, 2**l) if l else m
        return 1.0 + self.cfg.motion_error_weight * m

    def _unit_terms(
        self, l: int, a: Tensor, a_hat: Tensor, a_prev: Tensor | None = None, r: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Unit l's terms at one step besides its error: anti-collapse (with the change hinge), the time arrow
        (``model.arrow_weight``) and the warp target (``model.warp_weight``). a (online), a_hat (the prediction for
        this step), a_prev (None at the first step), r (the state that made the prediction)."""
        out = self._anti_collapse(l, a, a_hat, a_prev)
        u = self.units[l]
        if self.cfg.warp_weight > 0 and u.warp_head is not None and r is not None:
            # sg(a(t-1)) moved by the displacement the state reads out, against sg(a(t)); zero at the first step
            out[f"warp/{l}"] = 0.0 * r.sum() if a_prev is None else (u.warped(a_prev, r) - a.detach()).pow(2).mean()
        if self.cfg.arrow_weight > 0:  # a zero that keeps the graph at the first step (not counted, see window_terms)
            if a_prev is None:
                out[f"arrow/{l}"] = 0.0 * a.sum()
            else:
                keys = (a, a_prev) if self.cfg.arrow_keys == "online" else (a.detach(), a_prev.detach())
                out[f"arrow/{l}"] = arrow_loss(a_hat, *keys, self.cfg.arrow_temperature)
        return out

    def _anti_collapse(self, l: int, a: Tensor, a_hat: Tensor, a_prev: Tensor | None = None) -> dict[str, Tensor]:
        """Unit l's anti-collapse terms at one step; ``a_prev`` (the step before's a, None at the first step) feeds
        the change hinge (``model.change_weight``)."""
        u = self.units[l]
        mode = self.cfg.anti_collapse
        if mode == "none":
            return {}
        if u.pixel:  # the pixel part is the frame itself; only a motion part can collapse
            if not u.motion_channels:
                return {}
            a = a[:, u.repr_channels :]
            a_hat = a_hat[:, u.repr_channels :]
        if mode == "vicreg":
            out = {f"var/{l}": variance_hinge(a), f"cov/{l}": covariance_penalty(a)}
            if self.cfg.change_weight > 0:
                if a_prev is None:  # no step before: a zero that keeps the graph (not counted, see window_terms)
                    out[f"chg/{l}"] = 0.0 * a.sum()
                else:
                    a_prev = a_prev[:, u.repr_channels :] if u.pixel else a_prev
                    out[f"chg/{l}"] = variance_hinge(a - a_prev, target_std=self.cfg.change_std)
            return out
        # "infonce": the prediction at a position must pick out the actual representation at that position among
        # other positions of the batch (CPC); the key is not detached, so the encoder learns to be discriminative.
        q = a_hat.permute(0, 2, 3, 1).flatten(0, 2)  # (B*H*W, C)
        k = a.permute(0, 2, 3, 1).flatten(0, 2)
        n = q.shape[0]
        if n > 256:  # a fixed, evenly spaced subset keeps the (N, N) logits small
            idx = torch.linspace(0, n - 1, 256, device=a.device).long()
            q, k = q[idx], k[idx]
        return {f"nce/{l}": info_nce(q, k, self.cfg.bind_temperature)}

    def _ahead_terms(self, steps: list[StepOutput]) -> dict[str, Tensor]:
        """Per layer, the further-horizon errors within this clip/window (``losses.ahead_loss``)."""
        valid = [s.valid for s in steps]
        out: dict[str, Tensor] = {}
        for l in range(self.num_layers):
            e = ahead_loss([s.ahead[l] for s in steps], [s.targets[l] for s in steps], valid, self._error)
            if e is not None:
                out[f"ahead/{l}"] = e
        return out

    def ahead_loss(self, steps: list[StepOutput]) -> Tensor | None:
        """The further-horizon part of the summed unit losses over ``steps`` (each unit's ``ahead/l`` term times its
        layer weight, as ``_compose`` adds it); None when the window holds no t+2.. target."""
        terms = self._ahead_terms(steps)
        parts = [self.layer_weights[l] * terms[f"ahead/{l}"] for l in range(self.num_layers) if f"ahead/{l}" in terms]
        return torch.stack(parts).sum() if parts else None

    def _compose(self, terms: dict[str, Tensor]) -> list[Tensor]:
        cfg = self.cfg
        losses = []
        for l in range(self.num_layers):
            loss = self.layer_weights[l] * terms[f"err/{l}"]
            if f"ahead/{l}" in terms:
                loss = loss + self.layer_weights[l] * terms[f"ahead/{l}"]
            if f"var/{l}" in terms:
                loss = loss + cfg.var_weight * terms[f"var/{l}"] + self.cov_weights[l] * terms[f"cov/{l}"]
            if f"chg/{l}" in terms:
                loss = loss + cfg.change_weight * terms[f"chg/{l}"]
            if f"arrow/{l}" in terms:
                loss = loss + cfg.arrow_weight * terms[f"arrow/{l}"]
            if f"nce/{l}" in terms:
                loss = loss + cfg.var_weight * terms[f"nce/{l}"]
            if l == 0 and "bind" in terms:
                loss = loss + cfg.bind_weight * terms["bind"]
            if f"flow/{l}" in terms:
                loss = loss + self.flow_scale * self.flow_weights[l] * terms[f"flow/{l}"]
            if f"warp/{l}" in terms:
                loss = loss + cfg.warp_weight * terms[f"warp/{l}"]
            losses.append(loss)
        return losses

    def check_call(self, x: Tensor, mask: Tensor | None, state: StackState | None, *, clip: bool) -> None:
        """What ``step`` (a frame), ``forward`` and the readout (a clip) refuse, each in one message (stack_checks):
        the frames' type, layout and channels, the state, the size against the stride, the mask."""
        check_frames(x, self.cfg.in_channels, clip=clip)
        check_state(state, x, self.cfg.stem)  # before the mask check: a mask passed positionally lands in state
        self._check_input(x.shape[-2:], mask is not None)
        if self.cfg.motion_channels and mask is not None:
            check_mask(mask, x, clip=clip)

    def _check_input(self, hw, has_mask: bool) -> None:
        h, w = int(hw[0]), int(hw[1])
        m = self.stride
        if h % m or w % m:
            raise ValueError(
                f"input size {h}x{w} is not a multiple of {m} "
                f"(the total stride stem*2^(L-1) of {self.num_layers} units); "
                f"resize or crop to e.g. {max(m, h // m * m)}x{max(m, w // m * m)} (data.size)"
            )
        if self.cfg.motion_channels and not has_mask:
            raise ValueError(
                f"model.motion_channels={self.cfg.motion_channels} needs motion masks: pass mask (B, T, 1, H, W) "
                "(datasets give batch['mask'] when motion is enabled), or turn the stream off with --set motion=off "
                "or model.motion_channels=0"
            )


def with_motion(cfg: ModelConfig, enabled: bool) -> ModelConfig:
    """``cfg`` with the motion stream off when ``enabled`` is False (what ``--set motion=off`` means for the model)."""
    return cfg if enabled else replace(cfg, motion_channels=0)
