"""Run configuration: frozen dataclasses, YAML in and out, dotted ``--set`` overrides.

One ``Config`` holds every knob of a run. It is built in this order, later sources winning:

    dataclass defaults  <-  model preset (``model.preset``)  <-  YAML file  <-  ``--set key=value``

Unknown keys and values of the wrong type raise ``ConfigError`` with the dotted key's name, so a typo in a
YAML file or on the command line never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Value ranges are declared at each field (``_r``/``_one_of``) and checked by ``check_ranges``: config_ranges.py.
# Parsing --set strings and YAML, and building the dataclasses from dicts: config_parse.py (parse_set re-exported).
from .config_parse import (  # noqa: F401  (parse_set: re-exported)
    UniqueKeyLoader,
    build,
    deep_merge,
    dotted_keys,
    normalise_shortcuts,
    parse_set,
    set_list,
    to_plain,
    yaml_problem,
)
from .config_ranges import ConfigError, _one_of, _r, check_ranges  # noqa: F401  (ConfigError, check_ranges: re-exported)


@dataclass(frozen=True)
class ModelConfig:
    """The predictive stack. Field defaults are the ``tiny`` preset; ``preset`` selects another when the config is
    read by ``Config.from_dict`` / ``from_yaml`` (``--set model.preset=small``). ``ModelConfig(preset="small")`` built
    directly only records the name and keeps tiny's fields: build a ``Config`` and take its ``.model``."""

    preset: str = "tiny"
    in_channels: int = _r(3, ge=1)  # 3 for RGB, 1 for grayscale
    # one entry per unit; unit l has channels[l] representation channels
    channels: tuple[int, ...] = _r((16, 32, 64), ge=1, min_len=1)
    cell: str = _one_of("gru", "lstm")  # lateral recurrence
    kernel_size: int = _r(3, ge=1)
    # "repr": every unit predicts its target encoder's next output; "pixel": layer 0 predicts pixels
    target: str = _one_of("repr", "pixel")
    # what unit l hands to unit l+1: E (as PredNet), a, its state r (as PVM: what it expects), or E and r together
    pass_up: str = _one_of("error", "repr", "state", "error+state")
    lateral: bool = True  # ablation switch: the unit's own recurrence
    feedback: bool = True  # ablation switch: time-delayed top-down input from the unit above
    # "vicreg" (variance hinge + covariance) | "none" | "infonce"
    anti_collapse: str = _one_of("vicreg", "none", "infonce")
    target_mode: str = _one_of("stopgrad", "ema")
    # True: the error also trains the encoder through the target (|â - a| with gradient to both sides, as VICReg's
    # invariance term), so a is pushed to be predictable from the past; False: the target is sg(a). stopgrad only.
    target_grad: bool = False
    ema_momentum: float = _r(0.95, ge=0, le=1)
    var_weight: float = _r(1.0, ge=0)
    cov_weight: float = _r(0.04, ge=0)
    cov_weights: tuple[float, ...] = _r((), ge=0)  # per-unit covariance weights; () means cov_weight for every unit
    layer_weights: tuple[float, ...] = _r((), ge=0)  # per-unit loss weights; () means all ones
    motion_channels: int = _r(0, ge=0)  # channels of the motion stream's own encoder at layer 0; 0 = no motion stream
    # Anti-slowness (vicreg only): a hinge on the per-channel std of the change a(t) - a(t-1) over positions, so a
    # channel cannot settle on what never moves; 0 turns it off. change_std is the std the hinge asks for.
    change_weight: float = _r(0.0, ge=0)
    change_std: float = _r(0.5, gt=0)
    # Time-arrow contrast: at each position the prediction â(t) must be nearer (cosine) to a(t), what came, than to
    # a(t-1), what was: a two-way InfoNCE whose keys train the encoder, so the state must know which way things
    # move (copying the present picks the past). 0 turns it off; any anti_collapse mode.
    arrow_weight: float = _r(0.0, ge=0)
    arrow_temperature: float = _r(0.1, gt=0)
    # "online": the keys a(t), a(t-1) carry gradient, so the encoder learns too; "detached": only the prediction
    # (the state and head) learns to point forward, and an encoder cannot satisfy the contrast by recoding.
    arrow_keys: str = _one_of("online", "detached")
    # What the error units' loss is: "l2", the mean squared error (the default since round 33: the conditional mean,
    # so an expected change moves the prediction), or "l1", their mean (PredNet's and the default to round 32; the
    # optimal prediction is the conditional median, which is copy-last wherever a change is less likely than not).
    # E, what goes up and the surprise signal's units are the same; with l2 the per-frame error is squared.
    error_loss: str = _one_of("l2", "l1")
    # scales every unit's error terms (with layer_weights) against anti-collapse; 2 with l2 since round 33 (1 before;
    # docs/results/dynamics_rounds32.md)
    error_weight: float = _r(2.0, ge=0)
    # lambda: each unit's one-step error is the mean weighted by 1 + lambda * m, m the motion mask max-pooled to the
    # unit's grid, so moving positions count more; 0 = the plain mean. Needs the motion stream.
    motion_error_weight: float = _r(0.0, ge=0)
    bind_weight: float = _r(0.1, ge=0)  # weight of the RGB<->motion InfoNCE binding loss
    # Unit 0's prediction of its motion part is a loss (true), or the motion part is input only (false): it still
    # enters the state (a(t-1), and E, whose motion half stays in the error units) but the error's loss reads the
    # appearance channels alone (round 147). Needs the motion stream.
    motion_loss: bool = True
    # Flow target: each unit's state r(t), made before frame t, also predicts the signed motion that frame t brings
    # (classical optical flow, camera removed, averaged onto the unit's grid; squared error in px per frame), through
    # a 1x1 head of its own. Masks say that something moves; this asks the states which way. A part of the motion
    # modality: a model without the motion stream has no flow heads. 0: off (the default). At 1 (round 104,
    # docs/results/dynamics_rounds99.md): +1.35 on the five-task mean over two seeds, direction +4.8, kind +4.6,
    # digit -4.3, and direction +10.3 over random init at 5 labels per class; not the default because round 105's
    # rule, written before its probes, also asked that no measure fall, and kind at 5 labels fell 2.85 +- 0.25.
    # [1,0,1] over five seeds (round 117, docs/results/dynamics_rounds115.md): +2.1 on the seven acceptance measures,
    # basketball level, kind at 5 labels -1.28 +- 0.59, 2.17 standard errors: off by the study's rule, by a hair.
    # The default since round 152 (session 40): 1 at the first and the last unit (flow_units=ends), read by the probes
    # with the heads' prediction (readout part f), under train.anchor_weight=1: rounds 150-151
    # (docs/results/flow_anchor_round150.md, anchor_mid_round151.md). Off by itself where no flow head can be built
    # (motion off, the PredNet preset): only a weight set away from this default is refused there.
    flow_weight: float = _r(1.0, ge=0)
    # per-unit flow-target weights; () means flow_weight at the units flow_units names
    flow_weights: tuple[float, ...] = _r((), ge=0)
    # where flow_weight goes when flow_weights is not given: "ends" (the default: the first and the last unit,
    # [1,0,1] on three units, [1,0,0,1] on four), "all" units, "first" or "last". A placement, not a list, so one
    # config fits any number of units (model.channels).
    flow_units: str = _one_of("ends", "all", "first", "last")
    # the flow heads' hidden width: 0 (the default) is a 1x1 linear head r -> 2; N > 0 puts a 1x1 layer of N channels
    # and a ReLU between, so the states need not hold the motion vectors linearly (round 115)
    flow_head_hidden: int = _r(0, ge=0)
    # how many frames ahead each flow head predicts the motion of: K = 1 (the default) asks r(t) for frame t's motion
    # alone; K > 1 gives the head 2K outputs, the motion of frames t .. t+K-1, so a state that only carries the present
    # velocity cannot meet it (round 155). The term is the mean over the K offsets (its scale stays flow_weight's);
    # offsets past the training window are left out, as model.horizon's are, and K past the window is refused. The
    # readout's f reads all 2K channels.
    flow_horizon: int = _r(1, ge=1)
    # the share of each unit's state channels its flow head reads: 1 (the default) reads them all; s < 1 reads only
    # the last ceil(s * C) channels, so the flow target is asked of a part of the state and the rest is left to the
    # unit's own prediction (round 121: at 0.25 with [1,0,1], 0.48 below [1,0,1] on the seven acceptance measures, and
    # digit at 5 labels still -2.81 against the default: the cost is in the recurrent states as a whole, round 122)
    flow_head_share: float = _r(1.0, gt=0, le=1)
    # What each flow head reads: "state" (r, the unit's recurrent state) or "repr" (a, its representation of frame t,
    # from what the unit below passed up; round 129); "mixed": unit 0's head reads its state (its a sees one frame and
    # its mask, no heading), the heads above read a (round 131: with flow_weight=1 the better of [1,0,1] and [0,1,1]
    # on each measure, not their sum, and both costs)
    flow_head_input: str = _one_of("state", "repr", "mixed")
    # true: the flow heads learn from detached states and representations, so the flow target trains the heads alone
    # and the stack learns as without it; the heads' prediction is then read by the readout part ``f`` (round 148)
    flow_detach: bool = False
    bind_temperature: float = _r(0.1, gt=0)
    use_ext_op: bool = True  # use the fused error-unit op when built (falls back to the torch reference)
    # "stack" (PredictiveStack) | "prednet" (faithful PredNet baseline, end-to-end only)
    arch: str = _one_of("stack", "prednet")
    hidden_channels: tuple[int, ...] = _r((), ge=1)  # recurrent state channels per unit; () means = channels
    encoder_norm: str = _one_of("none", "group")  # target encoder norm
    head_kernel: int = _r(1, ge=1)  # kernel of the head r -> a_hat (1 or 3)
    input_kernel: int = _r(1, ge=0)  # kernel of the cell's input-to-hidden conv; 0 means kernel_size
    stem: int = _r(2, ge=1)  # space-to-depth factor applied to frames (and masks) before unit 0: layer 0 runs at H/stem
    # What the head predicts: "direct" (â = head(r)) | "residual" (â = sg(a(t-1)) + head(r): the change, so copying
    # the present costs nothing and the state must hold what moves). Pixel units always predict directly.
    # "warp" (â = sg(a(t-1)) sampled where a displacement d(r) points, + head(r)): the state must hold where each
    # position's content moves, a velocity field, to predict (heads at zero: starts at copy-last).
    predict: str = _one_of("direct", "residual", "warp")
    warp_max: float = _r(3.0, gt=0)  # the largest warp displacement per step, in cells of each unit's grid
    # An auxiliary warp target beside a direct (or residual) prediction: each unit's state also moves sg(a(t-1)) by a
    # displacement it reads out (as predict=warp does) to match sg(a(t)), at this weight (squared error; 0: off).
    # The prediction and the error units are unchanged; the state is asked for a velocity field on the side.
    warp_weight: float = _r(0.0, ge=0)
    horizon: int = _r(1, ge=1)  # K: the state at t also predicts the targets at t+1 .. t+K-1 (extra heads; summed)
    # Training only: each frame after the first is hidden from the units' memory with this probability (per clip and
    # step): the next step gets each unit's own prediction as a(t) and no error, so the state must carry what moves
    # forward on its own; the losses still score every step against the real frame. 0: off; probes never hide.
    blind_prob: float = _r(0.0, ge=0, lt=1)
    # Probe readout (extract_features): comma-separated parts pooled per layer: a (what is there), r (the state),
    # e (the error units), da (|a(t) - a(t-1)|, what changed), dr (|r(t) - r(t-1)|), rw/aw (r/a pooled where the
    # error units fire), am/rm (a/r times the x and y coordinate: where each channel's mass lies), f / fo (the flow
    # heads' prediction split by sign / as an 8-direction orientation histogram); each mean-pooled over
    # readout_bins time segments.
    # a,r,da: measured best on the mean over 4 probe tasks, same weights (docs/results/dynamics.md); a,r,da,f, the
    # default since round 152: f (the flow heads' prediction) is left out by itself where the model has no
    # flow heads; named in another readout there, it is refused
    readout: str = "a,r,da,f"
    # Two time bins with the whole clip's mean beside them (round 92, docs/results/dynamics_rounds89.md): one mean
    # over 20 frames blurs a heading (direction -9.2), two bins alone cost digit 7.2; both side by side are above
    # either on the mean over five tasks on each of three training seeds
    readout_bins: int = _r(2, ge=1)
    # With readout_bins > 1, also the mean over the whole clip beside the bins' means (what stays, and when it moved)
    readout_whole: bool = True
    # With readout_bins > 1, the bins as their change (bin k+1 minus bin k) after the whole clip's mean, in place of the
    # bins' own means: the same information without repeating the level. Off: round 98 read it 5.65 / 4.17 lower on
    # the five-task mean (512/256 / 1024/512 probes), every task: given its own weights the change is over-fitted
    readout_trend: bool = False
    # How each part is pooled over space at each step: "mean", "max" (the strongest response, wherever it is) or
    # "meanmax" (both side by side: twice the features)
    readout_pool: str = _one_of("mean", "max", "meanmax")
    # Steps the stack runs on a clip's first frame (motion mask empty) before the clip is read; nothing pooled during
    # them: the readout starts from a settled state instead of the onset transient (round 127)
    readout_warmup: int = _r(0, ge=0)
    # Read each clip forwards (f) and reversed in time (b) and give [f, f - b] per layer: beside the features, what
    # time's arrow changes in them (twice the features, twice the extraction; round 128)
    readout_reverse: bool = False


@dataclass(frozen=True)
class DataConfig:
    # 20 frames at batch 4 since round 89 (docs/results/dynamics_rounds89.md): the same frames per step as 10 x 8,
    # longer runs of motion per clip; configs store both keys, so older runs keep their own.
    clip_len: int = _r(20, ge=2)  # T, frames per clip (a prediction needs at least 2)
    stride: int = _r(1, ge=1)  # frame step inside a clip
    size: tuple[int, int] = _r((64, 64), ge=1)  # (H, W) after resize + centre crop; a multiple of the model's stride
    fps: float = _r(0.0, ge=0)  # resample videos to this frame rate; 0 keeps the native rate
    grayscale: bool = False
    batch_size: int = _r(4, ge=1)
    num_workers: int = _r(0, ge=0)
    # Threads that decode a folder's uncached videos and make their motion masks on its first read (each video is
    # independent: the same cache with any number); 0 = the usable cores, at most 8 and at most torch's threads.
    prep_workers: int = _r(0, ge=0)
    cache_dir: str = ""  # decode-once cache; "" means <data>/.prednet2_cache or ~/.cache/prednet2
    clip_step: int = _r(0, ge=0)  # frames between the starts of consecutive clips of a video; 0 = the clip span
    n_synthetic: int = _r(2048, ge=1)  # clips in a synthetic training set
    n_synthetic_test: int = _r(512, ge=1)  # clips in a synthetic val or test split
    # Chance that a clip of the unlabelled synthetic:shapes / synthetic:trajectories training sets (and so
    # synthetic:mix) has a panning background. The probe tasks always keep 0.5, so their clips never change.
    synthetic_pan: float = _r(0.5, ge=0, le=1)
    # [lo, hi]: the object speeds of each clip of those training sets are scaled by a factor drawn log-uniformly in
    # [lo, hi] ([1, 1], the default, draws nothing: the same clips as before). The probe tasks never change.
    synthetic_speed: tuple[float, float] = _r((1.0, 1.0), gt=0, le=10, ordered=True)
    # Non-rigid motion in those training sets: every object spins and stretches as it moves (0: rigid, as before).
    synthetic_deform: float = _r(0.0, ge=0, le=1)
    mnist_path: str = ""  # folder with the MNIST idx files; "" means ../shared/data/mnist


@dataclass(frozen=True)
class MotionConfig:
    enabled: bool = True
    # OpenCV DIS ("fast" preset) by default: better masks than Farneback on shapes with pans and distractors at a
    # similar cost (docs/results/motion.md).
    backend: str = _one_of("dis", "farneback", "raft")
    raft_weights: str = ""  # path to torchvision RAFT weights (this machine cannot download them)
    min_component: float = _r(0.002, ge=0, le=1)  # drop connected components smaller than this fraction of the frame
    static_floor: float = _r(0.5, ge=0)  # residual flow magnitude (pixels) below which nothing counts as moving
    camera: str = _one_of("median", "affine", "none")  # dominant-motion model removed before thresholding
    photo_margin: float = _r(0.02, ge=0)  # drop mask pixels the camera motion explains better by this margin; 0: off
    flow_size: int = _r(0, ge=0)  # compute flow with the shorter side upsampled to >= this many px (0: data resolution)
    cache: bool = True  # cache masks on disk (video folders); synthetic sets compute them on the fly
    # Items also carry "flow" (T, 2, H, W): the signed motion per pixel (px per frame, camera removed as by
    # motion.camera), the training target of model.flow_weight. Set for you when the model has flow heads.
    flow: bool = False


@dataclass(frozen=True)
class TrainConfig:
    # "local" (per-unit losses, detached inputs, truncated window) | "end_to_end" (BPTT)
    mode: str = _one_of("local", "end_to_end")
    window: int = _r(5, ge=1)  # k: truncated window in local mode (update every k steps, state detached between)
    steps: int = _r(1000, ge=1)
    lr: float = _r(3e-3, gt=0)
    weight_decay: float = _r(0.0, ge=0)
    # after each optimiser step, pull every weight toward its initial value by lr * anchor_weight of the way
    # (prednet2.optim.InitAnchor); 0 = off. 0.3 from round 86c (the curve keeps rising past 1000 steps); 1 since
    # round 152, with the flow target (model.flow_weight): it keeps what random weights read of looming and counts
    anchor_weight: float = _r(1.0, ge=0)
    # Late schedules, for long runs (round 154): each is a multiplier held at 1 until the learning rate's decay starts
    # (train.decay_start) and then falling by half a cosine to this value at train.steps, so a run of decay_start
    # steps or fewer is the same as without it. flow_end scales the flow target (model.flow_weight), anchor_end the
    # pull toward the initial weights (train.anchor_weight). 1 (the default): no late change.
    flow_end: float = _r(1.0, ge=0, le=1)
    anchor_end: float = _r(1.0, ge=0, le=1)
    # the target encoders' learning rate as a fraction of train.lr (their AdamW step scaled after each update); 1 = the
    # same rate as the predictors. Stack only (its units' enc and enc_motion).
    encoder_lr_scale: float = _r(1.0, gt=0, le=1)
    warmup_steps: int = _r(20, ge=0)
    # after warmup (and the hold below): "cosine" (to 0.1x at train.steps; the default since round 33) | "constant" |
    # "inv_sqrt" (sqrt(start/step), open-ended)
    lr_schedule: str = _one_of("cosine", "constant", "inv_sqrt")
    # hold train.lr constant until this step, then decay by train.lr_schedule from here (0 = right after warmup):
    # "inv_sqrt" becomes sqrt(decay_start / step), "cosine" runs from decay_start to train.steps. The default holds
    # to 1000, so a run of 1000 steps or fewer keeps a constant rate and a longer one ends at 0.1x
    decay_start: int = _r(1000, ge=0)
    grad_clip: float = _r(1.0, ge=0)  # per-unit gradient norm clip; 0 turns clipping off
    seed: int = _r(0, ge=0)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" (checked when the device is resolved)
    amp: bool = True  # bf16/fp16 autocast on CUDA only
    log_every: int = _r(10, ge=1)
    image_every: int = _r(100, ge=1)
    stats_every: int = _r(50, ge=1)  # representation std / effective rank
    ckpt_every: int = _r(100, ge=1)
    keep_numbered: int = _r(0, ge=0)  # also keep checkpoints/step_XXXXXX.pt for the last N saves; 0: only last.pt
    keep_best: bool = True  # also copy last.pt to best.pt when its interval's mean total loss is the lowest yet
    threads: int = _r(0, ge=0)  # torch CPU threads; 0 leaves torch's default

    def __post_init__(self) -> None:
        end = self.anchor_end  # a late schedule of a pull that is off (the run-dependent checks: train_data)
        if isinstance(end, float) and end != 1.0 and self.anchor_weight == 0:
            raise ConfigError(
                f"train.anchor_end={end:g} scales the pull toward the initial weights, but "
                "train.anchor_weight=0 turns it off; drop train.anchor_end or set anchor_weight"
            )
        # Ranges are checked after construction (check_ranges); this cross-key check needs both keys finite. At
        # lr x anchor_weight = 1 every update is undone (a diagnostic the tests use); above it the pull is capped there.
        a, lr = self.anchor_weight, self.lr
        if isinstance(a, float) and isinstance(lr, float) and 0 < a < math.inf and 0 < lr < math.inf:
            if a * lr > 1 + 1e-9:
                raise ConfigError(
                    f"train.anchor_weight={a:g} with train.lr={lr:g}: lr x anchor_weight = {a * lr:g} > 1 pulls every "
                    f"weight all the way back to its initial value after each step, so nothing would be learned; keep "
                    f"anchor_weight well below 1 / lr = {1 / lr:g} (the default is 1; 0 turns the anchor off)"
                )


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Config:
        """Build from a nested dict, applying the model preset first. Raises ConfigError naming bad keys."""
        if d is not None and not isinstance(d, dict):
            hint = "; for 'key=value' strings use Config.from_yaml(None, [...])" if isinstance(d, str | list) else ""
            raise ConfigError(
                f"Config.from_dict: expected a dict such as {{'train': {{'lr': 0.001}}}}, got {d!r}{hint}"
            )
        d = normalise_shortcuts(dict(d or {}))
        model = d.get("model") or {}
        if not isinstance(model, dict):  # `--set model=small`: a guess at the preset
            hint = f"; a preset is model.preset={model}" if isinstance(model, str) else ""
            raise ConfigError(f"model: expected a mapping of model keys, got {model!r}{hint}")
        preset = model.get("preset", ModelConfig.preset)
        merged = deep_merge({"model": preset_overrides(preset)}, d)
        return _with_given(build(cls, merged, prefix=""), dotted_keys(d))

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> Config:
        """``from_dict`` for a config stored by an earlier version (a checkpoint's, a run folder's): a key it lacks
        takes its value from before the key existed (``STORED_BEFORE``), not today's default, so an old checkpoint
        loads, resumes and probes as it was trained."""
        d = dict(d or {})
        for section, old in STORED_BEFORE.items():
            stored = d.get(section)
            if isinstance(stored, dict):
                d[section] = {**old, **stored}
        return _with_given(cls.from_dict(d), frozenset())  # as trained: nothing in it was asked for by hand

    @classmethod
    def from_yaml(cls, path: str | Path | None, sets: list[str] | None = None) -> Config:
        """Load a YAML file (or nothing) and apply ``key=value`` overrides on top."""
        d: dict[str, Any] = {}
        if path is not None:
            p = Path(path)
            if p.is_dir():
                ys = [p / "config.yaml"] if (p / "config.yaml").is_file() else sorted(p.glob("*.y*ml"))  # configs/
                hint = f", e.g. {' or '.join(map(str, ys[:3]))}" if ys else " (a run folder's own is RUN/config.yaml)"
                raise ConfigError(f"config {p} is a folder; give a YAML file{hint}")
            if not p.is_file():
                raise ConfigError(f"config file not found: {p}")
            try:
                d = yaml.load(p.read_text(), Loader=UniqueKeyLoader) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{p}: not valid YAML ({yaml_problem(e)})") from None
            except UnicodeDecodeError:  # e.g. a checkpoint passed as --config
                raise ConfigError(f"{p}: a binary file, not a YAML config (such as configs/*.yaml)") from None
            if not isinstance(d, dict):
                raise ConfigError(f"{p}: top level must be a mapping of sections (model, data, motion, train)")
        d = normalise_shortcuts(d)  # `motion: off` before any motion.* key merges over it
        for s in set_list(sets, "Config.from_yaml"):
            d = deep_merge(d, normalise_shortcuts(parse_set(s)))
        return cls.from_dict(d)

    def replace(self, sets: list[str] | dict[str, Any]) -> Config:
        """A copy with overrides applied (``["train.lr=1e-3"]`` or a nested dict). Presets are not re-applied."""
        over: dict[str, Any] = {}
        if isinstance(sets, dict):
            over = sets
        else:
            for s in set_list(sets, "Config.replace"):
                over = deep_merge(over, normalise_shortcuts(parse_set(s)))
        over = normalise_shortcuts(over)
        new = build(type(self), deep_merge(self.to_dict(), over), prefix="")
        return _with_given(new, given_keys(self) | dotted_keys(over))

    def to_dict(self) -> dict[str, Any]:
        return to_plain(dataclasses.asdict(self))

    def to_yaml(self, extra: dict[str, Any] | None = None) -> str:
        d = self.to_dict()
        if extra:
            d = {**extra, **d}
        return yaml.safe_dump(d, sort_keys=False)


# ---- presets ----------------------------------------------------------------------------------------------
# Model presets are plain dicts of ModelConfig fields. prednet2.presets registers the real ones; config.py
# only knows how to look them up, so configs can be parsed without importing torch.
_PRESETS: dict[str, dict[str, Any]] = {"tiny": {}}


# What a key meant before it existed, for configs stored before it: a default that changes needs its old value
# here (configs store every key they know, so only keys newer than the config can be missing). These four were the
# defaults until round 33 (docs/results/dynamics_rounds32.md) made the default l2 at weight 2 with a cosine from
# step 1000; a config stored without them was trained with these values.
STORED_BEFORE: dict[str, dict[str, Any]] = {
    "model": {"error_loss": "l1", "error_weight": 1.0, "flow_weight": 0.0, "flow_units": "all"},
    "train": {"lr_schedule": "constant", "decay_start": 0, "anchor_weight": 0.0},
}


def given_keys(cfg: Config) -> frozenset[str]:
    """The dotted keys the config's maker set (a YAML file, ``--set``, ``from_dict``'s dict, ``replace``), as opposed
    to dataclass defaults and presets: where a default follows the data (``model.flow_weight`` is off without flow
    heads), a value asked for is refused instead. Empty for a stored config (``from_stored``)."""
    return getattr(cfg, "_given", frozenset())


def _with_given(cfg: Config, given: frozenset[str]) -> Config:
    object.__setattr__(cfg, "_given", given)  # not a field: to_dict, equality and config.yaml leave it out
    return cfg


def register_preset(name: str, fields: dict[str, Any]) -> None:
    """Register a model preset: a dict of ModelConfig fields applied before the user's own."""
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    bad = set(fields) - known
    if bad:
        raise ConfigError(f"preset {name!r}: unknown model fields {sorted(bad)}")
    _PRESETS[name] = dict(fields, preset=name)


def preset_overrides(name: str) -> dict[str, Any]:
    try:
        import prednet2.presets  # noqa: F401  (registers the presets)
    except ImportError:
        pass
    if name not in _PRESETS:
        raise ConfigError(f"model.preset: unknown preset {name!r}; choose one of {sorted(_PRESETS)}")
    return dict(_PRESETS[name])


def preset_names() -> list[str]:
    preset_overrides("tiny")
    return sorted(_PRESETS)
