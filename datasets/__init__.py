"""Video data for prednet2: raw folders, labelled folders, synthetic generators (installed as prednet2.datasets).

``build_dataset(spec, cfg=...)`` is the one entry point: a folder path or a ``synthetic:`` name in, a Dataset of
dict items out (``"video"`` uint8 (T, C, H, W), ``"label"`` int64, ``"index"``; ``"mask"`` with motion on).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from prednet2.envcheck import tool_loading

with tool_loading("av"):  # `python -m datasets.inspect` loads torch and av here: a Ctrl-C then is one line
    import torch
    from torch.utils.data import Dataset

    from .anomaly import AnomalyDataset, make_anomaly_set, render_anomaly_clip
    from .errors import DataError
    from .heldout import TASKS as HELDOUT_TASKS
    from .heldout import HeldoutDataset
    from .heldout2 import TASKS as HELDOUT2_TASKS
    from .heldout2 import Heldout2Dataset
    from .moving_mnist import MovingMNIST, load_mnist
    from .shapes import SHAPES, ShapesDataset, render_shapes_clip
    from .synthetic import InterleavedDataset, SyntheticVideoDataset
    from .textures import TexturesDataset, render_textures_clip
    from .trajectories import KINDS, TrajectoriesDataset

if TYPE_CHECKING:
    from prednet2.config import DataConfig, MotionConfig

__all__ = [
    "AnomalyDataset",
    "SHAPES",
    "SYNTHETIC_SPECS",
    "DataError",
    "MovingMNIST",
    "ShapesDataset",
    "SyntheticVideoDataset",
    "TexturesDataset",
    "KINDS",
    "MOTION_SHAPED_SPECS",
    "TrajectoriesDataset",
    "HeldoutDataset",
    "Heldout2Dataset",
    "build_dataset",
    "load_mnist",
    "make_anomaly_set",
    "render_anomaly_clip",
    "render_shapes_clip",
    "render_textures_clip",
    "check_spec",
    "split_spec",
    "to_float",
]


def to_float(video: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., C, H, W) -> float32 in [0, 1], the model's input range."""
    if video.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 frames, got {video.dtype}")
    return video.float().div_(255.0)


# ---- the synthetic registry ------------------------------------------------------------------------------------
def _split_size(cfg: DataConfig, split: str) -> int:
    return cfg.n_synthetic if split == "train" else cfg.n_synthetic_test


# The specs whose training sets read data.synthetic_pan, _speed and _deform (see _moving_objects; mix is both).
MOTION_SHAPED_SPECS = ("synthetic:shapes", "synthetic:trajectories", "synthetic:mix")


def _moving_objects(cls: type, task: str | None) -> Callable[..., Dataset]:
    """Factory of a moving-objects set (ShapesDataset, TrajectoriesDataset) sized by the data config."""

    # data.synthetic_pan, _speed and _deform reach the unlabelled training sets of shapes and trajectories only:
    # probe tasks (a task given) keep the generators' own defaults, and textures has its own camera model.
    training_set = task is None and cls in (ShapesDataset, TrajectoriesDataset)

    def make(cfg: DataConfig, split: str, seed: int) -> Dataset:
        extra = (
            {"pan_prob": cfg.synthetic_pan, "speed_range": tuple(cfg.synthetic_speed), "deform": cfg.synthetic_deform}
            if training_set
            else {}
        )
        return cls(
            n=_split_size(cfg, split),
            size=tuple(cfg.size),
            clip_len=cfg.clip_len,
            grayscale=cfg.grayscale,
            seed=seed,
            split=split,
            task=task,
            **extra,
        )

    return make


def _shapes(task: str | None) -> Callable[..., Dataset]:
    return _moving_objects(ShapesDataset, task)


def _moving_mnist(task: str | None) -> Callable[..., Dataset]:
    def make(cfg: DataConfig, split: str, seed: int) -> Dataset:
        return MovingMNIST(
            n=_split_size(cfg, split),
            size=tuple(cfg.size),
            clip_len=cfg.clip_len,
            grayscale=cfg.grayscale,
            seed=seed,
            split=split,
            task=task,
            mnist_path=cfg.mnist_path or None,
        )

    return make


def _trajectories(task: str | None) -> Callable[..., Dataset]:
    return _moving_objects(TrajectoriesDataset, task)


def _mix(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """Moving shapes and trajectories in turn (half the clips each): more kinds of motion to learn from."""
    half = replace(cfg, n_synthetic=max(1, cfg.n_synthetic // 2), n_synthetic_test=max(1, cfg.n_synthetic_test // 2))
    return InterleavedDataset([_shapes(None)(half, split, seed), _trajectories(None)(half, split, seed)])


def _anomaly(cfg: DataConfig, split: str, seed: int) -> Dataset:
    return AnomalyDataset(
        n=_split_size(cfg, split),
        size=tuple(cfg.size),
        clip_len=cfg.clip_len,
        grayscale=cfg.grayscale,
        seed=seed,
        split=split,
    )


# spec -> (factory, labelled?). Labelled specs are the probe tasks; the others are for training.
SYNTHETIC_SPECS: dict[str, tuple[Callable[..., Dataset], bool]] = {
    "synthetic:shapes": (_shapes(None), False),
    "synthetic:shapes:shape": (_shapes("shape"), True),
    "synthetic:shapes:direction": (_shapes("direction"), True),
    "synthetic:shapes:speed": (_shapes("speed"), True),
    "synthetic:moving_mnist": (_moving_mnist(None), False),
    "synthetic:moving_mnist:digit": (_moving_mnist("digit"), True),
    "synthetic:trajectories": (_trajectories(None), False),
    "synthetic:trajectories:kind": (_trajectories("kind"), True),
    "synthetic:mix": (_mix, False),
    "synthetic:textures": (_moving_objects(TexturesDataset, None), False),
    "synthetic:anomaly": (_anomaly, True),
    **{f"synthetic:heldout:{t}": (_moving_objects(HeldoutDataset, t), True) for t in HELDOUT_TASKS},
    **{f"synthetic:heldout2:{t}": (_moving_objects(Heldout2Dataset, t), True) for t in HELDOUT2_TASKS},
}


def build_dataset(
    spec: str | os.PathLike,
    *,
    cfg: DataConfig,
    split: str = "train",
    seed: int = 0,
    motion: MotionConfig | None = None,
    labelled: bool = False,
    splits_dir: str | os.PathLike | None = None,
    fold: int = 1,
    progress: bool = True,
) -> Dataset:
    """The dataset a ``--data``/``--labelled`` spec names.

    Args:
        spec: a folder of videos; a UCF101-layout folder ``root/<class>/<video>`` when ``labelled``; one of
            ``SYNTHETIC_SPECS`` (``synthetic:shapes``, ``synthetic:shapes:direction``, ...); or, for training,
            several of these joined by ``+`` (``synthetic:shapes+videos/``): an ``InterleavedDataset`` that gives
            each part an equal share of the clips, or ``N`` shares with ``SPEC*N`` (``synthetic:shapes*3+videos/``:
            a quarter real). A path that exists as written is never split.
        cfg: clip length, size, grayscale, cache and synthetic sizes (``cfg.n_synthetic`` train clips,
            ``cfg.n_synthetic_test`` val/test clips).
        split: "train" | "val" | "test". Synthetic splits never share seeds.
        seed: synthetic sets are a pure function of (spec, split, seed, index).
        motion: when given and enabled, items also carry ``"mask"`` float32 (T, 1, H, W) from datasets.motion.
        labelled: a folder is read as a labelled (class per subfolder) set, a ``.csv``/``.tsv`` file as a labels
            table (path,class per video, paths relative to its folder); a synthetic spec must then name a task.
        splits_dir, fold: UCF101-style split lists (``trainlist01.txt``/``testlist01.txt`` for fold 1) for a
            labelled folder; without them the folder reader makes a deterministic stratified split.
        progress: tqdm bars while a folder's uncached videos decode and their motion masks are made.
    Returns:
        A Dataset of dict items: ``"video"`` uint8 (T, C, H, W), ``"label"`` int64 scalar (-1 when unlabelled),
        ``"index"`` int, plus per-set extras.
    Raises:
        DataError: an unknown synthetic name (the message lists the valid ones) or a path with no usable video.
    """
    spec = _check_args(spec, cfg, motion)
    if splits_dir is not None and (spec.startswith("synthetic:") or not labelled):
        raise DataError(f"split lists ({splits_dir}) apply to labelled video folders only, not to {spec!r}")
    parts = split_spec(spec)
    if len(parts) > 1:
        if labelled:
            raise DataError(f"{spec!r}: a '+' mixture is training data with no labels; probe one labelled set")
        sets = [build_dataset(p, cfg=cfg, split=split, seed=seed, motion=motion, progress=progress) for p, _ in parts]
        return InterleavedDataset(sets, [w for _, w in parts])
    if spec.startswith("synthetic:"):
        check_spec(spec)  # an unknown name: check_spec's one message, listing the valid ones
        factory, is_labelled = SYNTHETIC_SPECS[spec]
        if labelled and not is_labelled:
            tasks = [s for s, (_, lab) in SYNTHETIC_SPECS.items() if lab and s.startswith(spec + ":")]
            raise DataError(
                f"{spec!r} has no labels to probe; use a labelled task: {', '.join(tasks) or 'none available'}"
            )
        ds = factory(cfg, split, seed)
    else:
        ds = _build_folder(spec, cfg=cfg, split=split, seed=seed, labelled=labelled, splits_dir=splits_dir, fold=fold,
                           progress=progress)  # fmt: skip
    if motion is not None and motion.enabled:
        try:
            from .motion import with_motion
        except ImportError as e:
            raise DataError(
                f"motion masks were asked for (motion.enabled) but datasets/motion.py is not usable ({e}); "
                "turn the modality off with --set motion=off"
            ) from e
        ds = with_motion(ds, motion, cfg, progress=progress)
    return ds


def _check_args(spec, cfg, motion) -> str:
    """``spec`` as a string (a path object is fine); a TypeError naming the argument for a ``cfg`` that is not a
    DataConfig or a ``motion`` that is not a MotionConfig, a DataError naming a ``data.*`` key out of range."""
    from prednet2.config import Config, DataConfig, MotionConfig, check_ranges

    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"spec: expected a folder path or 'synthetic:NAME', got {type(spec).__name__} {spec!r}")
    if not isinstance(cfg, DataConfig):
        hint = "; pass its data section: cfg=cfg.data" if isinstance(cfg, Config) else ""
        raise TypeError(f"cfg: expected a prednet2.config.DataConfig, got {type(cfg).__name__}{hint}")
    if motion is not None and not isinstance(motion, MotionConfig):
        hint = "; pass cfg.motion (or MotionConfig()) for masks, None for none" if isinstance(motion, bool) else ""
        raise TypeError(f"motion: expected a prednet2.config.MotionConfig or None, got {motion!r}{hint}")
    try:
        check_ranges(cfg, "data.")
    except ValueError as e:
        raise DataError(str(e)) from None
    return spec


def split_spec(spec: str) -> list[tuple[str, int]]:
    """The parts of a ``+`` mixture with their weights: ``"synthetic:shapes*3+videos/"`` ->
    ``[("synthetic:shapes", 3), ("videos/", 1)]``; ``[(spec, 1)]`` for one set.

    A spec that exists on disk as written is one folder, ``+`` or ``*`` in its name or not; so is a part. An empty
    part (``"a++b"``, a trailing ``+``) or a weight below 1 is an error, not a silent skip.
    """
    if not spec.strip():  # Path("") is the current folder: an empty --data would read it, or fail naming nothing
        raise DataError(f"{spec!r}: empty; give a folder of videos or synthetic:NAME (see prednet2 inspect --help)")
    if os.path.exists(os.path.expanduser(spec)):
        return [(spec, 1)]
    parts = [p.strip() for p in spec.split("+")]
    if len(parts) > 1 and any(not p for p in parts):
        raise DataError(f"{spec!r}: an empty part in a '+' mixture; join specs as A+B, e.g. synthetic:shapes+videos/")
    out = []
    for p in parts:
        name, star, w = p.rpartition("*")
        if not star or os.path.exists(os.path.expanduser(p)):
            out.append((p, 1))
        elif not w.strip().isdigit() or int(w) < 1 or not name.strip():
            raise DataError(f"{spec!r}: {p!r} is not SPEC*N with a whole number N >= 1 (e.g. synthetic:shapes*3)")
        elif len(parts) == 1:
            raise DataError(f"{spec!r}: a weight *N applies to a part of a '+' mixture, e.g. {name.strip()}*3+videos/")
        else:
            out.append((name.strip(), int(w)))
    return out


def check_spec(spec: str) -> list[tuple[str, int]]:
    """``split_spec(spec)``, each part checked before anything is built: a DataError for an unknown
    ``synthetic:`` name (listing the valid ones) or a path that does not exist, naming the part in a mixture.

    What ``train.py --data`` and the benchmarks' ``--data``/``data=`` answer in one line before any training starts.
    """
    parts = split_spec(spec)
    for part, _ in parts:
        where = spec if part == spec else f"{spec}: {part!r}"
        if part.startswith("synthetic:") and part not in SYNTHETIC_SPECS:
            raise DataError(f"{where}: unknown synthetic data; valid specs: {', '.join(SYNTHETIC_SPECS)}")
        if not part.startswith("synthetic:") and not os.path.exists(os.path.expanduser(part)):
            raise DataError(f"{where}: no such file or folder (give a folder of videos or synthetic:NAME, joined by +)")
    return parts


def _build_folder(
    spec: str,
    *,
    cfg: DataConfig,
    split: str,
    seed: int,
    labelled: bool,
    splits_dir: str | os.PathLike | None,
    fold: int,
    progress: bool = True,
) -> Dataset:
    path = os.path.expanduser(spec)
    from .labelled import is_labels_file

    table = is_labels_file(path) and os.path.isfile(path)
    if table and not labelled:
        raise DataError(f"{spec}: a labels file names a labelled set for probes; to train, give its folder of videos")
    if labelled and is_labels_file(path) and not os.path.exists(path):
        raise DataError(f"{spec}: no such labels file; give a .csv/.tsv table (path,class per video) or a folder")
    if not os.path.isdir(path) and not table:
        what = "file, not a folder" if os.path.exists(path) else "no such folder"
        raise DataError(f"{spec}: {what}; --data takes a folder of videos or one of: {', '.join(SYNTHETIC_SPECS)}")
    # Imported here so the synthetic sets work without PyAV or the folder code.
    if labelled:
        from .labelled import LabelledVideoFolder

        return LabelledVideoFolder(
            path, cfg=cfg, split=split, seed=seed, splits_dir=splits_dir, fold=fold, progress=progress
        )
    from .folder import VideoFolder

    return VideoFolder(path, cfg=cfg, progress=progress)
