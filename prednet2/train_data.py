"""The training data of a run: build the dataset, and resolve the config fields that follow from it."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Dataset

from prednet2.config import Config, ConfigError, ModelConfig, given_keys, preset_overrides
from prednet2.distributed import get_local_rank, get_world_size, is_distributed
from prednet2.optim import decay_begins
from prednet2.readout import asked_parts
from prednet2.stack_checks import flow_weights_of
from prednet2.train_state import say

# Channels of the motion stream's encoder when motion is on and the config leaves model.motion_channels at 0.
DEFAULT_MOTION_CHANNELS = 8


def resolve_config(cfg: Config, sample: dict[str, Tensor] | None = None) -> Config:
    """Fill the fields that follow from other sections or from the data, so config.yaml states what ran.

    - motion on and ``model.motion_channels == 0`` -> DEFAULT_MOTION_CHANNELS; motion off -> 0 (no mask arrives);
    - motion on but the dataset yields no ``"mask"`` -> motion turned off, with a warning;
    - ``model.in_channels`` follows the data's channel count (1 for grayscale/MNIST, 3 for RGB) from its default;
      another value the data contradicts is a ConfigError (it would be silently ignored);
    - ``model.arch == "prednet"`` (the baseline) -> ``train.mode=end_to_end`` and motion off;
    - ``motion.flow`` follows the flow heads (``model.flow_weight`` with the motion stream): the data computes the
      target; a flow weight set away from its default where no head can be built is a ConfigError.

    Called once before the data is built (``sample=None``) and once with the first item.
    """
    over: dict[str, dict[str, Any]] = {"model": {}, "motion": {}, "train": {}}
    motion_on = cfg.motion.enabled
    if cfg.model.arch == "prednet":
        # The PredNet baseline is what Lotter et al. trained: end-to-end, pixels only, no motion stream.
        if cfg.train.mode != "end_to_end":
            over["train"]["mode"] = "end_to_end"
        if motion_on:
            motion_on = False
            over["motion"]["enabled"] = False
    if sample is not None:
        channels = int(sample["video"].shape[1])
        if channels != cfg.model.in_channels and cfg.model.in_channels != ModelConfig.in_channels:
            # a value set away from the default (which follows the data) that the data contradicts: following the
            # data would ignore it
            hint = "set data.grayscale=true to read it as 1 channel, or " if cfg.model.in_channels == 1 else ""
            raise ConfigError(
                f"model.in_channels={cfg.model.in_channels} but the data has {channels} channel(s) per frame; "
                f"{hint}leave model.in_channels out (it follows the data)"
            )
        if channels != cfg.model.in_channels:
            over["model"]["in_channels"] = channels
        if motion_on and "mask" not in sample:
            say("warning: motion is enabled but the dataset yields no motion masks; training without motion")
            motion_on = False
            over["motion"]["enabled"] = False
    _resolve_flow(cfg, motion_on, sample, over)
    if motion_on and cfg.model.motion_channels == 0:
        over["model"]["motion_channels"] = DEFAULT_MOTION_CHANNELS
    if not motion_on and cfg.model.motion_channels != 0:
        over["model"]["motion_channels"] = 0
    over = {k: v for k, v in over.items() if v}
    _check_horizon(cfg)
    return cfg.replace(over) if over else cfg


def _resolve_flow(cfg: Config, motion_on: bool, sample: dict[str, Tensor] | None, over: dict) -> None:
    """``motion.flow`` follows whether the model has flow heads (the stack with motion on and a flow weight above
    0). Where no head can be built (motion off, the PredNet baseline) the default flow weight is set to 0, so
    config.yaml states what ran; a weight asked for there (set away from the default, or given by hand: see
    ``given_keys``) is a ConfigError, not a silent no-op, and so is a readout with ``f`` given by hand; so is
    ``model.flow_weight`` set beside ``model.flow_weights``, which replaces it."""
    m, given = cfg.model, given_keys(cfg)
    base_weight = preset_overrides(m.preset).get("flow_weight", ModelConfig.flow_weight)  # the PredNet preset's is 0
    default = not m.flow_weights and m.flow_weight == base_weight > 0 and "model.flow_weight" not in given
    no_flow = sample is not None and "flow" not in sample
    if default and (not (motion_on and m.arch == "stack") or no_flow):
        if m.readout == ModelConfig.readout and "model.readout" in given:  # f asked for by hand: it would go unread
            why = 'the dataset yields no "flow"' if motion_on and m.arch == "stack" else _no_head(m.arch)
            raise ConfigError(
                f"model.readout={m.readout} reads the flow heads' prediction (f), but {why}, so no flow head is "
                "built; drop f (model.readout=a,r,da)"
            )
        if motion_on and no_flow:  # a dataset of one's own with masks and no flow: train without the target
            say('note: the dataset yields motion masks but no "flow", so the default flow target '
                "(model.flow_weight) is off; datasets.motion adds it")  # fmt: skip
        over["model"]["flow_weight"] = 0.0  # no head can be built: the default target is off, quietly
        if m.readout == ModelConfig.readout:  # and the default readout without the heads' part, as the model reads it
            over["model"]["readout"] = ",".join(asked_parts(m.readout, has_flow_heads=False))
        if cfg.motion.flow:
            over["motion"]["flow"] = False
        return
    if m.flow_weights and m.flow_weight not in (0, ModelConfig.flow_weight):  # flow_weight would go unread
        raise ConfigError(
            f"model.flow_weight={m.flow_weight} and model.flow_weights={list(m.flow_weights)}: the list sets each "
            "unit's weight and replaces flow_weight; give one of them (e.g. model.flow_weights alone)"
        )
    if m.flow_weights and m.flow_weight != 0:  # the default weight beside a list: the list is what the units get
        over["model"]["flow_weight"] = 0.0
    key = "model.flow_weights" if m.flow_weights else "model.flow_weight"
    value = list(m.flow_weights) if m.flow_weights else m.flow_weight
    asked = any(w > 0 for w in (m.flow_weights or (m.flow_weight,)))  # flow_weights, when given, replaces flow_weight
    heads = asked and motion_on and m.arch == "stack"
    if asked and not heads:
        why = _no_head(m.arch)
        raise ConfigError(
            f"{key}={value} needs the stack with motion on (the flow target comes with the motion masks), but {why}; "
            f"drop {key} or turn motion on"
        )
    if heads and sample is not None and "flow" not in sample:
        fix = (  # the trainer sets motion.flow before it builds the data: then a dataset of one's own dropped the key
            'a dataset or wrapper of your own must pass the "flow" key on (datasets.motion adds it)'
            if cfg.motion.flow
            else "set motion.flow=true"
        )
        raise ConfigError(f'{key}={value}: the dataset yields no "flow" for the flow target; {fix}')
    if heads != cfg.motion.flow:
        over["motion"]["flow"] = heads


def _no_head(arch: str) -> str:
    return "the PredNet baseline has no flow head" if arch != "stack" else "motion is off"


def _check_horizon(cfg: Config) -> None:
    """The furthest head (t -> t+K-1; ``model.horizon``, and ``model.flow_horizon``'s last outputs) only learns from
    pairs inside one training window: refuse a horizon that no window can hold, instead of training outputs of
    which some never get a loss."""
    if cfg.model.arch != "stack":
        return
    T = cfg.data.clip_len
    span = T if cfg.train.mode == "end_to_end" else min(cfg.train.window, T)
    for name in ("horizon", "flow_horizon"):
        K = getattr(cfg.model, name)
        if K > span:
            key = "data.clip_len" if span == T else "train.window"
            raise ConfigError(
                f"model.{name}={K} needs {K} frames in one training window, but {key}={span} gives {span}; "
                f"raise {key} to at least {K} or lower model.{name}"
            )


def build_train_data(cfg: Config, data_spec: str, *, progress: bool = True) -> Dataset:
    """The training split of ``data_spec`` (with motion masks when ``cfg.motion.enabled``).

    Building a video folder decodes every video into the cache and computes the motion-mask cache. Under torchrun
    the first process of each node (LOCAL_RANK 0; rank 0 on one machine) does that alone while the others wait,
    then they build theirs from the finished cache (cache hits), so N processes neither decode N times nor race on
    the same cache files. If a first process fails, every process stops with it. ``progress=False`` hides the
    decoding bar (``--no-progress``).
    """
    if not is_distributed():
        return _build(cfg, data_spec, progress)
    ds, err = None, None
    if get_local_rank() == 0:
        try:
            ds = _build(cfg, data_spec, progress)
        except Exception as e:  # noqa: BLE001 - re-raised below, after releasing the waiting processes
            err = e
    oks = [None] * get_world_size()
    dist.all_gather_object(oks, err is None)  # the others wait here until their node's cache is complete
    if err is not None:
        raise err
    if not all(oks):
        from prednet2.datasets import DataError

        bad = [r for r, ok in enumerate(oks) if not ok]
        raise DataError(f"{data_spec}: rank {bad[0]} could not build the training data (its error says why)")
    return ds if ds is not None else _build(cfg, data_spec, progress)


# data.* keys that shape the motion of the built-in training sets (datasets.MOTION_SHAPED_SPECS read them)
MOTION_SHAPING_KEYS = ("synthetic_speed", "synthetic_pan", "synthetic_deform")


def check_motion_keys(cfg: Config, data_spec: str) -> None:
    """A ConfigError when a motion-shaping key is set but no part of ``data_spec`` reads it (it would do nothing)."""
    from prednet2.datasets import MOTION_SHAPED_SPECS, split_spec

    default = type(cfg.data)()
    changed = [k for k in MOTION_SHAPING_KEYS if getattr(cfg.data, k) != getattr(default, k)]
    if changed and not any(name in MOTION_SHAPED_SPECS for name, _ in split_spec(data_spec)):
        raise ConfigError(
            f"data.{changed[0]} shapes the motion of {', '.join(MOTION_SHAPED_SPECS)} only, and --data {data_spec} "
            "has none of them: drop the key, or add one of those sets to the mixture (e.g. synthetic:shapes+videos/)"
        )


def _build(cfg: Config, data_spec: str, progress: bool = True) -> Dataset:
    from prednet2.datasets import build_dataset

    check_motion_keys(cfg, data_spec)
    motion = cfg.motion if cfg.motion.enabled else None
    return build_dataset(data_spec, cfg=cfg.data, split="train", seed=cfg.train.seed, motion=motion, progress=progress)


def resolved_train_data(cfg: Config, data_spec: str, *, progress: bool = True) -> tuple[Config, Dataset]:
    """The config resolved before the data is built (``motion.flow``: whether it carries the flow), the training data,
    and the config resolved again by its first item (``in_channels``, masks, ``"flow"``): what training reads."""
    cfg = resolve_config(cfg)
    dataset = build_train_data(cfg, data_spec, progress=progress)
    cfg = resolve_config(cfg, dataset[0])
    _check_late(cfg)
    return cfg, dataset


def _check_late(cfg: Config) -> None:
    """``train.flow_end`` / ``train.anchor_end`` that would change nothing in this run are refused (checked on the
    run's final config: a study may set them before it sets the steps)."""
    t = cfg.train
    if t.flow_end != 1.0 and not any(flow_weights_of(cfg.model)):
        raise ConfigError(
            f"train.flow_end={t.flow_end:g} scales the flow target, but this model has none "
            "(model.flow_weight=0, motion off or the PredNet preset); drop train.flow_end"
        )
    late = [f"train.{k}={getattr(t, k):g}" for k in ("flow_end", "anchor_end") if getattr(t, k) != 1.0]
    begins = decay_begins(t.warmup_steps, t.decay_start)
    if late and begins >= t.steps:
        if t.warmup_steps < t.steps:  # the warmup ends in time: decay_start is the step to move
            where, fix = f"train.decay_start={t.decay_start}", "lower train.decay_start below train.steps"
        else:  # the warmup outlasts the run too: lowering decay_start alone would not do
            where = f"step {begins}, the later of train.warmup_steps={t.warmup_steps}"
            where += f" and train.decay_start={t.decay_start}"
            fix = "lower train.warmup_steps (and train.decay_start) below train.steps"
        raise ConfigError(
            f"{late[0]} takes effect after {where}, but train.steps={t.steps} ends there: nothing would change; "
            f"{fix} or drop {late[0].split('=')[0]}"
        )


def prepare_train_data(cfg: Config, data_spec: str, *, progress: bool = True) -> dict[str, Any]:
    """Build the training data of ``cfg`` and fill its caches without training (``train.py --prepare``): a video
    folder's frames and motion masks (built with the dataset), and the per-clip motion cache (masks and, with the
    flow target, the flow) of every clip that is made on the fly, such as a synthetic set's. A run, or a
    comparison at equal compute (``benchmarks/peers.py --budget-s``), then starts on a warm cache: without this the
    first run of a fresh machine spends part of its budget filling the cache that later runs read for free.
    Returns ``{"clips": N, "motion": bool, "computed": M}`` (M: the videos or clips whose motion this call computed;
    the rest came from the cache)."""
    from prednet2.datasets.prep import ordered_map, prep_workers

    cfg, ds = resolved_train_data(cfg, data_spec, progress=progress)  # refuses what training would refuse
    motion = cfg.motion.enabled and cfg.motion.cache
    if motion:
        workers = 1 if cfg.motion.backend == "raft" else prep_workers(cfg.data.prep_workers)
        ordered_map(lambda i: ds[i] is None, range(len(ds)), workers=workers, desc="motion cache", unit="clip",
                    progress=progress)  # fmt: skip
    return {"clips": len(ds), "motion": motion, "computed": _computed(ds)}


def _computed(ds: Dataset) -> int:
    """Motion computed by this process so far (MotionDataset.n_computed), through a mixture's parts too."""
    parts = getattr(ds, "parts", None) or [ds]
    return sum(int(getattr(p, "n_computed", 0)) for p in parts)
