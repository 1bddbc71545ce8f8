"""The training loop behind ``train.py``: local (per-unit, truncated window) or end-to-end training of a stack.

``train(cfg, data_spec, out_dir)`` runs a whole job and returns the summary it writes to ``RUN/summary.json``;
``train_one_epoch`` walks the data loader with numbered steps. The parts live one concept per file:

    run_folder.py   RunPaths, the --out checks, config_for_resume, config.yaml
    train_data.py   the dataset and the config fields that follow from it (resolve_config)
    sampler.py      ResumableBatchSampler: the data order, exact on resume and per DDP rank
    optim.py        build_optimizer, unit_param_groups
    train_step.py   train_step: one optimisation step on one batch (the benchmark calls it directly)
    train_state.py  TrainState, the finite-loss check, save_run_checkpoint, signals
    train_log.py    TensorBoard scalars, representation statistics and images

This module re-exports their public names, so ``from prednet2.trainer import train_step`` keeps working.
"""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from prednet2 import tblog, train_data
from prednet2.busy import busy_note
from prednet2.checkpoint import CheckpointError, load_checkpoint, load_model_state, set_rng_state, unwrap_model
from prednet2.config import Config, ConfigError
from prednet2.distributed import (
    batch_sync,
    broadcast_parameters,
    cleanup,
    get_rank,
    get_world_size,
    is_main_process,
    setup_distributed,
)
from prednet2.optim import build_anchor, build_optimizer, late_factor, unit_param_groups
from prednet2.run_folder import (
    RunFolderError,
    RunPaths,
    check_out_dir,
    config_for_resume,
    make_run_dir,
    write_config,
)
from prednet2.runinfo import environment, git_commit, prednet2_version, resolve_device
from prednet2.sampler import ResumableBatchSampler
from prednet2.train_data import DEFAULT_MOTION_CHANNELS, resolve_config
from prednet2.train_log import log_step
from prednet2.train_state import (
    NonFiniteLossError,
    TrainingInterrupted,
    TrainState,
    save_run_checkpoint,
    say,
    stop_on_signals,
)
from prednet2.train_step import StepResult, encoder_params, train_step


def _late_schedules(ts: TrainState) -> None:
    """``train.flow_end`` and ``train.anchor_end`` at this step: the flow target's and the anchor's multipliers
    (``prednet2.optim.late_factor``), recomputed from the step so a resumed run gets the same ones."""
    t = ts.cfg.train
    if t.flow_end == 1.0 and t.anchor_end == 1.0:
        return
    kw = {"warmup": t.warmup_steps, "total": t.steps, "decay_start": t.decay_start}
    model = unwrap_model(ts.model)
    if t.flow_end != 1.0 and hasattr(model, "flow_scale"):
        model.flow_scale = late_factor(t.flow_end, **kw)(ts.step)
    if t.anchor_end != 1.0 and ts.anchor is not None:
        ts.anchor.scale = late_factor(t.anchor_end, **kw)(ts.step)


def train_one_epoch(ts: TrainState, loader: DataLoader, total_steps: int) -> bool:
    """Train on the loader's batches until the epoch ends (True) or the run must stop (False)."""
    tc = ts.cfg.train
    for batch in loader:
        t0 = time.perf_counter()
        # Step 1. Batch to the device: uint8 (B, T, C, H, W) travels, the float copy is made there.
        video = batch["video"].to(ts.device, non_blocking=True)
        clip = video.float().div_(255.0)  # (B, T, C, H, W) in [0, 1]
        mask = batch["mask"].to(ts.device, non_blocking=True).float() if "mask" in batch else None
        flow = batch["flow"].to(ts.device, non_blocking=True) if "flow" in batch else None
        step = ts.step + 1
        # The session's first step and the run's last one log everything, so a run shorter than an interval
        # still fills every TensorBoard panel; otherwise scalars, repr statistics and images keep their intervals.
        edge = step == ts.start_step + 1 or step == total_steps
        stats_now = edge or step % tc.stats_every == 0
        images_now = edge or step % tc.image_every == 0
        log_now = edge or step % tc.log_every == 0 or stats_now or images_now
        # Step 2. Forward, backward, optimiser: per window (local) or over the whole clip (end_to_end).
        _late_schedules(ts)
        res = train_step(
            ts.model,
            ts.optimizer,
            clip,
            mask,
            mode=tc.mode,
            window=tc.window,
            grad_clip=tc.grad_clip,
            amp=tc.amp,
            encoder_lr_scale=tc.encoder_lr_scale,
            anchor=ts.anchor,
            want_stats=log_now,
            want_outputs=stats_now or images_now,
            flow=flow,
        )
        # Step 3. Advance the schedule and the counters (the data position is part of the resume state).
        ts.scheduler.step()
        ts.step, ts.batch_in_epoch = step, ts.batch_in_epoch + 1
        ts.pending.append((step, res.losses))
        ts.frames += clip.shape[0] * clip.shape[1] * get_world_size()  # global frames under DDP
        # Step 4. Log (the only host syncs: every log_every steps) and check the losses are finite.
        if log_now:
            log_step(ts, res, clip, mask, stats=stats_now, images=images_now)
        ts.train_s += time.perf_counter() - t0
        if ts.pbar is not None:
            ts.pbar.update(1)
        # Step 5. Checkpoint (atomic; after checking every pending loss is finite).
        if step % tc.ckpt_every == 0 or step == total_steps:
            save_run_checkpoint(ts)
        # Step 6. Stop on a signal (after the step, so the saved state is a step boundary) or at the end.
        if ts.stop_signal is not None or step >= total_steps:
            return False
    return True


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    cfg: Config,
    data_spec: str,
    out_dir: str | Path,
    *,
    resume: bool = False,
    model_factory: Callable[[Any], nn.Module] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train for ``cfg.train.steps`` total steps and return the summary written to ``RUN/summary.json``.

    ``resume`` continues from ``RUN/checkpoints/last.pt`` (model, optimiser, schedule, RNG and data position are
    restored, so on CPU the result matches an uninterrupted run). ``model_factory`` replaces
    ``prednet2.build_model`` (tests). Raises RunFolderError, ConfigError, CheckpointError, DataError (bad input),
    NonFiniteLossError, TrainingInterrupted (after saving).
    """
    t_start = time.perf_counter()
    paths = RunPaths(Path(out_dir))
    main = is_main_process()
    # Step 1. The run folder: a new run needs a free --out, a resumed one its last.pt.
    check_out_dir(paths, resume)
    ckpt = load_checkpoint(paths.last) if resume else None
    if ckpt is not None and (ckpt.get("scheduler") is None or not _RESUME_EXTRA <= set(ckpt.get("extra") or {})):
        raise RunFolderError(
            f"--resume: {paths.last} holds weights but no training state (schedule, data position): it was not "
            "written by train.py (nor by prednet2.stream --learn from a train.py checkpoint); start a new run"
        )

    # Step 2. The device: torchrun gives one process per device (gloo on CPU, nccl on GPU).
    if get_world_size() > 1:
        device = setup_distributed(cfg.train.device).device
    else:
        device = resolve_device(cfg.train.device)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    elif main and device.type == "cpu" and (note := busy_note(torch.get_num_threads(), "--set train.threads=1")):
        say(note)

    # Step 3. Data first (it decides in_channels and whether masks exist), then the config it resolves.
    _seed_everything(cfg.train.seed)
    cfg, dataset = train_data.resolved_train_data(cfg, data_spec, progress=progress)
    skipped = [{"path": str(s.path), "reason": str(s.reason)} for s in getattr(dataset, "skipped", [])]
    n_skipped = int(getattr(dataset, "n_skipped", 0))
    if n_skipped and main:
        reasons = "; ".join(f"{Path(s['path']).name}: {s['reason']}" for s in skipped[:3])
        say(f"warning: skipped {n_skipped} file(s) of {data_spec}: {reasons}{' ...' if n_skipped > 3 else ''}")
    cut = [{"path": str(t.path), "frames": int(t.frames)} for t in getattr(dataset, "truncated", [])]
    if cut and main:  # used up to a decode error partway: fewer frames than the file holds
        names = ", ".join(Path(t["path"]).name for t in cut[:3]) + (" ..." if len(cut) > 3 else "")
        say(f"warning: {len(cut)} video(s) of {data_spec} cut short or damaged, read up to the damage: {names}")
    skipped_report = {"n_skipped": n_skipped, "skipped": skipped[:20], "n_truncated": len(cut), "truncated": cut[:20]}

    # Step 4. The model from the resolved config, and its optimiser.
    _seed_everything(cfg.train.seed)
    model = _build_model(cfg, model_factory).to(device)
    model.train()
    if cfg.train.encoder_lr_scale != 1.0:
        encoder_params(model)  # refuses a model without target encoders now, not at the first step
    optimizer, scheduler = build_optimizer(model, cfg)
    ts = TrainState(cfg=cfg, model=model, optimizer=optimizer, scheduler=scheduler, device=device, paths=paths,
                    logger=tblog.TBLogger(paths.tb, enabled=False), main=main)  # fmt: skip
    ts.anchor = build_anchor(optimizer, cfg)  # the initial weights, before a resume loads later ones

    # Step 5. Resume: weights, optimiser, schedule, RNG and data position; then every rank takes rank 0's weights.
    if ckpt is not None:
        _restore(ts, ckpt)
    broadcast_parameters(model)  # DDP: no-op in one process
    start_step = ts.step

    # Step 6. The run folder's config.yaml and the TensorBoard writer (rank 0 only; a resume purges later events).
    if main:
        make_run_dir(paths)
        write_config(paths, cfg, data_spec)
    ts.logger = tblog.TBLogger(paths.tb, enabled=main, purge_step=ts.step + 1 if ckpt is not None else None)

    # Step 7. The data order: the same global batches in every process and after a resume.
    sampler = ResumableBatchSampler(
        len(dataset), cfg.data.batch_size, cfg.train.seed, rank=get_rank(), world_size=get_world_size()
    )
    if ts.batch_in_epoch >= len(sampler):
        ts.epoch, ts.batch_in_epoch = ts.epoch + 1, 0
    # A dedicated generator, re-seeded per epoch: otherwise creating the loader iterator draws worker seeds from
    # the global torch RNG, and a run resumed mid-epoch would drift from a straight one.
    loader_gen = torch.Generator()
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                        pin_memory=device.type == "cuda", generator=loader_gen)  # fmt: skip

    # Step 8. The loop: epochs until cfg.train.steps steps in all, or a signal (then save and stop).
    total = cfg.train.steps
    status = "completed"
    if main and progress:
        ts.pbar = tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)
    ts.start_step = start_step
    ts.t_log = time.perf_counter()
    try:
        with stop_on_signals(ts), batch_sync(True):
            while ts.step < total and ts.stop_signal is None:
                sampler.set_position(ts.epoch, ts.batch_in_epoch)
                loader_gen.manual_seed(cfg.train.seed * 1_000_003 + ts.epoch)
                if train_one_epoch(ts, loader, total):
                    ts.epoch, ts.batch_in_epoch = ts.epoch + 1, 0
            if ts.stop_signal is not None:
                status = "interrupted"
                if ts.last_saved_step != ts.step:
                    save_run_checkpoint(ts)
    except NonFiniteLossError:
        status = "non_finite"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        # Step 9. The summary, whatever happened (rank 0 writes it), and the process group torn down.
        if ts.pbar is not None:
            ts.pbar.close()
        ts.logger.close()
        summary = _summary(ts, status, data_spec, resume, start_step, skipped_report, t_start)
        if main:
            paths.root.mkdir(parents=True, exist_ok=True)
            paths.summary.write_text(json.dumps(summary, indent=2) + "\n")
        cleanup()  # DDP: destroy the process group (no-op in one process)
    if status == "interrupted":
        raise TrainingInterrupted(ts.stop_signal or signal.SIGTERM, ts.step, paths.last)
    return summary


_RESUME_EXTRA = {"epoch", "batch_in_epoch", "best_loss", "last_losses"}  # what _restore reads from extra


def _build_model(cfg: Config, model_factory: Callable[[Any], nn.Module] | None) -> nn.Module:
    """``model_factory(cfg.model)`` (default ``prednet2.build_model``), with its config errors as ConfigError."""
    if model_factory is None:
        from prednet2 import build_model

        model_factory = build_model
    try:
        model = model_factory(cfg.model)
    except ValueError as e:  # the model validates its config fields; to the user that is a config error
        raise ConfigError(str(e)) from e
    stride = int(getattr(model, "stride", 1))
    if any(s % stride for s in cfg.data.size):
        raise ConfigError(
            f"data.size {list(cfg.data.size)} is not a multiple of the model's total stride {stride}; "
            f"use e.g. --set data.size=[{cfg.data.size[0] // stride * stride or stride},"
            f"{cfg.data.size[1] // stride * stride or stride}]"
        )
    return model


def _restore(ts: TrainState, ckpt: dict[str, Any]) -> None:
    """Load last.pt's weights (strict), optimiser, schedule, RNG and data position into ``ts``."""
    load_model_state(ts.model, ckpt["model"], source=ts.paths.last, ckpt_config=ckpt["config"],
                     model_config=ts.cfg.to_dict())  # fmt: skip
    ts.optimizer.load_state_dict(ckpt["optimizer"])
    ts.scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
    ex = ckpt["extra"]
    ts.step, ts.epoch, ts.batch_in_epoch = int(ckpt["step"]), int(ex["epoch"]), int(ex["batch_in_epoch"])
    ts.best_loss, ts.last_losses = float(ex["best_loss"]), list(ex["last_losses"])
    ts.train_s_before = float(ex.get("train_s_total", 0.0))  # checkpoints from before the key: unknown, 0
    ts.last_saved_step = ts.step


def _summary(
    ts: TrainState,
    status: str,
    data_spec: str,
    resume: bool,
    start_step: int,
    skipped_report: dict[str, Any],
    t_start: float,
) -> dict[str, Any]:
    """RUN/summary.json (DESIGN §7): steps, final per-layer losses, throughput, what was skipped, the setup."""
    cfg, paths = ts.cfg, ts.paths
    return {
        "steps": ts.step,
        "final_loss": {str(l): v for l, v in enumerate(ts.last_losses)},
        **skipped_report,  # n_skipped, skipped, n_truncated, truncated (the first 20 of each)
        "wall_s": time.perf_counter() - t_start,
        "train_s": ts.train_s,
        "train_s_total": ts.train_s_before + ts.train_s,  # every session's, when resumed (train_s: this one's)
        "frames_per_s": ts.frames / ts.train_s if ts.train_s > 0 else 0.0,
        "steps_per_s": (ts.step - start_step) / ts.train_s if ts.train_s > 0 else 0.0,
        "status": status,
        "mode": cfg.train.mode,
        "window": cfg.train.window,
        "preset": cfg.model.preset,
        "params": sum(p.numel() for p in ts.model.parameters()),
        "device": str(ts.device),
        "amp": bool(cfg.train.amp and ts.device.type == "cuda"),
        "batch_size": cfg.data.batch_size,
        "clip_len": cfg.data.clip_len,
        "size": list(cfg.data.size),
        "data": data_spec,
        "resumed_from": start_step if resume else None,
        "best_loss": ts.best_loss if math.isfinite(ts.best_loss) else None,
        "checkpoint": str(paths.last) if ts.last_saved_step is not None else None,
        "tb": str(paths.tb),
        "git_commit": git_commit(),
        "prednet2_version": prednet2_version(),
        "environment": environment(ts.device),
    }


__all__ = [
    "DEFAULT_MOTION_CHANNELS",
    "CheckpointError",
    "NonFiniteLossError",
    "ResumableBatchSampler",
    "RunFolderError",
    "RunPaths",
    "TrainState",
    "StepResult",
    "TrainingInterrupted",
    "build_optimizer",
    "config_for_resume",
    "resolve_config",
    "save_run_checkpoint",
    "train",
    "train_one_epoch",
    "train_step",
    "unit_param_groups",
]
