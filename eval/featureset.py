"""Frozen features of a dataset for the eval CLIs: the shared options, the checkpoint, the data, the cache.

``eval.linear_probe``, ``eval.knn`` and ``eval.embed`` all need the same steps: load the checkpoint (its config
fixes architecture and input format), build the data in that format, pick the feature source (the trained model,
the same architecture at random init, or pooled pixels), extract per-layer features through
``model.extract_features`` with the on-disk cache, and average clips per video. ``add_feature_args`` adds the
options, ``FeatureSource`` does the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from prednet2.cli import int_at_least
from prednet2.config import Config, ConfigError, DataConfig
from prednet2.readout import PARTS as READOUT_PARTS

from .common import (
    add_runtime_args,
    apply_runtime,
    build_or_exit,
    data_config,
    fail,
    input_motion,
    load_or_exit,
    padded_files,
    parse_layers,
    random_init_model,
    resolve_device,
    run_dir_of,
    skipped_files,
    truncated_files,
)
from .features import Features, cached_features, checkpoint_id, extract_model_features, extract_pixel_features
from .features import select_layers as _select
from .video_level import pool_by_video, spread_clips, video_ids

PIXEL_POOL, PIXEL_BINS = 8, 4


def add_feature_args(p: argparse.ArgumentParser, *, data_help: str) -> argparse.ArgumentParser:
    """The options every frozen-feature CLI shares (checkpoint, data, variant, input format, cache)."""
    p.add_argument("--checkpoint", required=True, help="RUN/checkpoints/last.pt (its config sets model and data)")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--random-init", action="store_true", help="same architecture, fresh weights (seeded per seed)")
    p.add_argument("--baseline", choices=["pixels"], help="pooled raw pixels instead of the model")
    p.add_argument("--layers", default="all", help="'all' or comma-separated layers, e.g. 0,2")
    p.add_argument("--splits", help="folder with trainlistKK.txt/testlistKK.txt (UCF101 style)")
    p.add_argument("--fold", type=int, help="split fold K with --splits (default 1)")
    p.add_argument("--resplit", action="store_true",
                   help="labelled folders: each seed s draws its own stratified train/test split (salted by "
                   "--data-seed + s), so the mean over seeds also averages which videos are tested; for small "
                   "sets, where one fixed test split moves a figure by several points")  # fmt: skip
    p.add_argument("--clips-per-video", type=int, default=1,
                   help="folders: N clips spread over each video, features averaged per video (default 1: the "
                   "centre clip)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--clip-len", type=int, help="frames per clip (default: the checkpoint's data.clip_len)")
    p.add_argument("--readout", metavar="PARTS",
                   help="what each layer's features pool, e.g. a,r,da (default: the checkpoint's model.readout; "
                   "parts: " + ", ".join(READOUT_PARTS) + "; PART@G pools that part over a GxG grid, "
                   "e.g. f@4)")  # fmt: skip
    p.add_argument("--readout-bins", type=int, metavar="N",
                   help="time segments the readout pools apart (default: the checkpoint's model.readout_bins); "
                   "2 keeps a heading that a mean over a long clip blurs")  # fmt: skip
    p.add_argument("--readout-whole", action=argparse.BooleanOptionalAction, default=None,
                   help="with --readout-bins > 1, also the mean over the whole clip (default: the checkpoint's "
                   "model.readout_whole)")  # fmt: skip
    p.add_argument("--readout-trend", action=argparse.BooleanOptionalAction, default=None,
                   help="with --readout-bins > 1, the whole clip's mean and then the bins' change (bin k+1 minus bin "
                   "k) in place of the bins' means (default: the checkpoint's model.readout_trend)")  # fmt: skip
    p.add_argument(
        "--readout-pool",
        choices=["mean", "max", "meanmax"],
        help="spatial pooling of the readout (default: the checkpoint's model.readout_pool)",
    )
    p.add_argument("--readout-warmup", type=int_at_least(0), metavar="W",
                   help="steps on each clip's first frame before it is read, nothing pooled (default: the "
                   "checkpoint's model.readout_warmup)")  # fmt: skip
    p.add_argument("--readout-reverse", action=argparse.BooleanOptionalAction, default=None,
                   help="also read each clip reversed in time (b): features [f, f - b] (default: the checkpoint's "
                   "model.readout_reverse)")  # fmt: skip
    p.add_argument("--batch-size", type=int_at_least(1), default=32, help="clips per forward pass")
    p.add_argument("--n-train", type=int_at_least(1), default=1024, help="synthetic sets: train clips (default 1024)")
    p.add_argument("--n-test", type=int_at_least(1), default=512, help="synthetic sets: test clips (default 512)")
    p.add_argument("--data-seed", type=int_at_least(0), default=0,
                   help="synthetic sets: dataset seed, fixed across seeds")  # fmt: skip
    p.add_argument("--num-workers", type=int_at_least(0), default=0, help="DataLoader workers")
    add_runtime_args(p)
    p.add_argument("--cache-dir", help="feature cache folder (default RUN/feature_cache)")
    p.add_argument("--no-cache", action="store_true", help="always recompute features")
    return p


def _data_options(dcfg) -> dict:
    """The data options that change features (not how many threads or workers prepare or load them)."""
    d = dataclasses.asdict(dcfg)
    d.pop("prep_workers", None)  # added after caches were keyed; left out so theirs still hit
    return d | {"batch_size": None, "num_workers": None}


def variant_of(args) -> str:
    return "pixels" if args.baseline else ("random_init" if args.random_init else "trained")


@contextmanager
def quiet_datasets(quiet: bool) -> Iterator[None]:
    """Within the block the data pipeline's warnings (skipped, cut or padded videos) are not printed, when
    ``quiet``; errors are raised as ever."""
    lg = logging.getLogger("prednet2.datasets")
    old = lg.level
    if quiet:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(old)


class FeatureSource:
    """Per-video features of one checkpoint's variant on one data spec; exits 2 with one line on bad input.

    ``features_of(split, seed)`` -> ({layer: (V, F_l)}, labels (V,), video ids (V,)); the seed matters only for
    ``--random-init`` (fresh weights per seed). Every split is extracted once per seed and kept in memory.
    """

    def __init__(self, args, *, labelled: bool = True):
        if args.random_init and args.baseline:
            fail("--random-init and --baseline pixels are two different baselines: pass one of them")
        if args.splits and not Path(args.splits).is_dir():
            fail(f"--splits {args.splits}: no such folder")
        if args.fold is not None and not args.splits:  # it would be ignored
            fail(f"--fold {args.fold} picks a fold of --splits DIR (the folder of trainlistKK.txt); give --splits too")
        args.fold = 1 if args.fold is None else args.fold
        if args.clips_per_video < 1:
            fail(f"--clips-per-video {args.clips_per_video}: need at least 1")
        self.resplit = bool(getattr(args, "resplit", False))
        if self.resplit and (args.splits or args.data.startswith("synthetic:") or not labelled):
            fail(f"--resplit draws new splits of a labelled folder; it does not apply to --data {args.data}"
                 + (f" with --splits {args.splits}" if args.splits else ""))  # fmt: skip
        try:
            self.layers = parse_layers(args.layers)
        except ValueError as e:
            fail(str(e))
        apply_runtime(args)
        self.args, self.labelled = args, labelled
        self.device = resolve_device(args.device)
        # Step 1. The checkpoint: its config fixes the architecture and the input format (size, grayscale, clip).
        self.loaded = load_or_exit(args.checkpoint, self.device)
        self.cfg, self.readout_changed = readout_config(args, self.loaded)
        n_layers = int(getattr(self.loaded.model, "num_layers", 0) or 0)
        if args.baseline:
            self.layers = None  # the pixel baseline is a single feature set
        elif self.layers is not None and n_layers and max(self.layers) >= n_layers:
            fail(f"--layers {args.layers}: the model has {n_layers} layers (0..{n_layers - 1})")
        self.dcfg = data_config(self.cfg, clip_len=args.clip_len, batch_size=args.batch_size, **_synthetic_sizes(args))
        self.motion = None if args.baseline else input_motion(self.cfg)
        self.variant = variant_of(args)
        default_cache = run_dir_of(self.loaded.path) / "feature_cache"
        self.cache_dir = None if args.no_cache else Path(args.cache_dir or default_cache)
        self.cache_hits: list[bool] = []
        self._datasets: dict[str, object] = {}
        self._memo: dict[tuple, tuple] = {}

    # ---- data --------------------------------------------------------------------------------------------
    def dataset(self, split: str):
        """The ``split`` of ``--data`` in the checkpoint's input format (built once), re-clipped for
        ``--clips-per-video``."""
        if split not in self._datasets:
            a = self.args
            kw = {"splits_dir": a.splits, "fold": a.fold} if a.splits else {}
            if not self.labelled:
                kw = {}
            # with --resplit the probe reads split "all": it alone says which videos are skipped or padded (the
            # fixed train split, built for its label checks, would say it again with other counts)
            with quiet_datasets(self.resplit and split != "all"):
                ds = build_or_exit(a.data, cfg=self.dcfg, split=split, seed=a.data_seed, motion=self.motion,
                                   labelled=self.labelled, **kw)  # fmt: skip
            if len(ds) == 0:
                fail(f"--data {a.data}: the {split} split is empty")
            # An unlabelled folder yields every clip of every video: cut it to the same N spread clips per video.
            if a.clips_per_video != 1 or (not self.labelled and hasattr(ds, "videos")):
                try:
                    spread_clips(ds, a.clips_per_video)
                except ValueError as e:
                    fail(f"--data {a.data}: {e}")
            self._datasets[split] = ds
        return self._datasets[split]

    def _cache_parts(self, split: str, seed: int) -> dict:
        a = self.args
        if a.baseline == "pixels":
            source = {"source": f"pixels:pool{PIXEL_POOL}:bins{PIXEL_BINS}"}
        elif a.random_init:
            source = {"source": "random-init", "config": dataclasses.asdict(self.cfg.model),
                      "ckpt": checkpoint_id(self.loaded.path), "init_seed": seed}  # fmt: skip
        else:
            source = {"source": checkpoint_id(self.loaded.path)}
            if self.readout_changed:  # only then, so caches of the checkpoint's own readout still hit
                source["readout"] = self.readout_changed
        parts = {
            **source,
            "data": a.data,
            "data_options": _data_options(self.dcfg),
            "data_seed": a.data_seed,
            "motion": dataclasses.asdict(self.motion) if self.motion is not None else None,
            "splits": [str(Path(a.splits).resolve()), a.fold] if a.splits else None,
            "layers": "all",  # every layer is cached; --layers selects after loading
            "split": split,
        }
        ds = self.dataset(split)
        version = getattr(ds, "version", None)  # a synthetic generator's, bumped when its clips change
        if version is not None:  # (caches of synthetic sets written before the key held it are computed once more)
            parts["generator_version"] = version
        if a.clips_per_video != 1:  # only then, so one-centre-clip caches written before this option still hit
            parts["clips_per_video"] = a.clips_per_video
        if hasattr(ds, "videos") and hasattr(ds, "cache_key"):  # a folder: the key holds what is in it now
            # Each usable video's decode key (its real path, size and mtime), and whether it is read with labels: a
            # video added, removed or edited since, or the same folder read by embed --no-labels, gave the old
            # listing's features (a traceback when the count changed, stale rows under new paths when it did not).
            keys = "\n".join(ds.cache_key(v) for v in range(len(ds.videos)))
            parts["videos"] = hashlib.sha1(keys.encode()).hexdigest()
            parts["labelled"] = hasattr(ds, "video_labels")
            if getattr(ds, "labels_file", None) is not None:  # classes from a table: an edited row relabels videos
                parts["labels_file"] = hashlib.sha1(ds.labels_file.read_bytes()).hexdigest()
        return parts

    # ---- features ----------------------------------------------------------------------------------------
    def clip_features(self, split: str, seed: int = 0) -> tuple[Features, np.ndarray]:
        """All layers' clip features of ``split``: ({layer: (N_clips, F_l)}, labels (N_clips,)), cached."""
        ds, a = self.dataset(split), self.args
        seed = seed if a.random_init else 0  # a trained model and pixels do not depend on the seed

        def compute():
            if a.baseline == "pixels":
                return extract_pixel_features(ds, batch_size=a.batch_size, num_workers=a.num_workers,
                                              pool=PIXEL_POOL, bins=PIXEL_BINS, desc=f"pixels {split}")  # fmt: skip
            model = random_init_model(self.cfg, seed, self.device, like=self.loaded.model) if a.random_init else (
                self.loaded.model)  # fmt: skip
            return extract_model_features(model, ds, batch_size=a.batch_size, device=self.device,
                                          num_workers=a.num_workers, desc=f"features {split}")  # fmt: skip

        feats, labels, hit = cached_features(self.cache_dir, self._cache_parts(split, seed), compute)
        self.cache_hits.append(hit)
        return feats, labels

    def features_of(self, split: str, seed: int = 0) -> tuple[Features, np.ndarray, np.ndarray]:
        """Per-video features of ``split``, layers selected: ({layer: (V, F_l)}, labels (V,), video ids (V,))."""
        key = (split, seed if self.args.random_init else 0)
        if key not in self._memo:
            feats, labels = self.clip_features(split, seed)
            feats, labels, vids = pool_by_video(feats, labels, video_ids(self.dataset(split)))
            self._memo[key] = (self.select(feats), labels, vids)
        return self._memo[key]

    def select(self, feats: Features) -> Features:
        try:
            return _select(feats, self.layers)
        except ValueError as e:
            fail(str(e))

    def train_test(self, seed: int) -> tuple[Features, np.ndarray, Features, np.ndarray]:
        """(train, y_train, test, y_test) per video: the callback ``eval.probe.run_probe`` takes.

        With ``--resplit`` the features of every video are extracted once (split ``all``) and seed ``s`` takes the
        stratified split that ``LabelledVideoFolder`` would make with seed ``--data-seed + s``.
        """
        if not self.resplit:
            tr, y_tr, _ = self.features_of("train", seed)
            te, y_te, _ = self.features_of("test", seed)
            return tr, y_tr, te, y_te
        feats, y, vids = self.features_of("all", seed)
        is_test = self.resplit_test_mask(vids, self.args.data_seed + seed)
        train = {k: x[~is_test] for k, x in feats.items()}
        test = {k: x[is_test] for k, x in feats.items()}
        return train, y[~is_test], test, y[is_test]

    def resplit_test_mask(self, vids: np.ndarray, split_seed: int) -> np.ndarray:
        """(V,) bool: which of the videos ``vids`` (indices into the ``all`` split) are test under ``split_seed``."""
        ds = self.dataset("all")
        test = ds.test_paths(split_seed)
        root = os.path.abspath(ds.root)  # the videos' paths are absolute; --data may be relative
        return np.array([Path(os.path.abspath(ds.videos[v])).relative_to(root).as_posix() in test for v in vids], bool)

    # ---- what the JSON files quote -----------------------------------------------------------------------
    def provenance(self) -> dict:
        a, ds = self.args, self._datasets.get("train") or next(iter(self._datasets.values()), None)
        skipped = skipped_files(*self._datasets.values())  # files of --data no split could use, each once
        return {
            "resplit": self.resplit,
            "variant": self.variant,
            "random_init": bool(a.random_init),
            "baseline": a.baseline,
            "checkpoint": str(self.loaded.path),
            "run": str(run_dir_of(self.loaded.path)),
            "steps": 0 if (a.random_init or a.baseline) else self.loaded.step,
            "checkpoint_step": self.loaded.step,
            "features": describe_features(a),
            "readout": None if a.baseline else {k: getattr(self.cfg.model, k) for k in READOUT_KEYS},
            "clip_len": self.dcfg.clip_len,
            "size": list(self.dcfg.size),
            "motion": self.motion is not None,
            "clips_per_video": a.clips_per_video,
            "classes": list(getattr(ds, "classes", []) or []),
            "cache_hits": sum(self.cache_hits),
            "n_skipped": len(skipped),
            "skipped": skipped,
            **truncated_files(*self._datasets.values()),  # videos read up to damage partway (cut or broken)
            **padded_files(*self._datasets.values()),  # videos shorter than a clip, read with their last frame repeated
        }

    def num_classes(self, *ys: np.ndarray) -> int:
        ds = self._datasets.get("train") or next(iter(self._datasets.values()))
        n = getattr(ds, "num_classes", 0) or 0
        return int(n) if n else int(max(int(y.max()) for y in ys) + 1)


READOUT_KEYS = (
    "readout",
    "readout_bins",
    "readout_whole",
    "readout_trend",
    "readout_pool",
    "readout_warmup",
    "readout_reverse",
)


def readout_config(args, loaded) -> tuple[Config, dict]:
    """The checkpoint's config with --readout / --readout-bins / --readout-whole / --readout-pool applied to its model.

    Returns (config, the keys that differ from the checkpoint's); exits 2 with one line naming the option when a
    value is out of range, the source is pooled pixels, or the model has no configurable readout (PredNet)."""
    given = {k: getattr(args, k, None) for k in READOUT_KEYS}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return loaded.cfg, {}
    opt = "--" + next(iter(given)).replace("_", "-")
    if args.baseline:
        fail(f"{opt}: the readout is what the model's features pool; --baseline {args.baseline} has none, drop it")
    from prednet2.readout import check_parts, heads_of
    from prednet2.stack import PredictiveStack

    if not isinstance(loaded.model, PredictiveStack):
        fail(f"{opt}: {loaded.path} is a {type(loaded.model).__name__} (model.preset={loaded.cfg.model.preset}), "
             "whose readout is fixed; the readout options apply to the predictive stack")  # fmt: skip
    for k, v in given.items():
        try:
            if k == "readout":
                check_parts(v, *heads_of(loaded.model))
            loaded.cfg.replace({"model": {k: v}})  # its range check, naming this option
        except (ValueError, ConfigError) as e:
            fail(f"--{k.replace('_', '-')} {v}: {e}")
    cfg = loaded.cfg.replace({"model": given})
    for k in ("readout_whole", "readout_trend"):  # both shape the bins: with one bin they would change nothing
        if given.get(k) and cfg.model.readout_bins < 2:
            opt = "--" + k.replace("_", "-")
            if "readout_bins" in given:
                fail(f"{opt}: needs --readout-bins 2 or more (got --readout-bins {cfg.model.readout_bins})")
            fail(f"{opt}: needs more than one time bin, and {loaded.path} has model.readout_bins="
                 f"{cfg.model.readout_bins}; add --readout-bins 2")  # fmt: skip
    loaded.model.cfg = cfg.model  # extract_features reads the readout from the model's config
    changed = {k: v for k, v in given.items() if getattr(loaded.cfg.model, k) != v}
    return cfg, changed


def _synthetic_sizes(args) -> dict:
    """--n-train/--n-test as the synthetic set sizes (folders ignore them)."""
    known = {f.name for f in dataclasses.fields(DataConfig)}
    out = {}
    if "n_synthetic" in known:
        out["n_synthetic"] = args.n_train
    if "n_synthetic_test" in known:
        out["n_synthetic_test"] = args.n_test
    return out


def describe_features(args) -> str:
    if args.baseline == "pixels":
        return (
            f"raw pixels: each frame average-pooled to {PIXEL_POOL}x{PIXEL_POOL}, frames averaged in "
            f"{PIXEL_BINS} contiguous temporal bins, flattened"
        )
    pooled = f"; {args.clips_per_video} clips per video averaged" if args.clips_per_video != 1 else ""
    return "model.extract_features per layer (pooled over space and time)" + pooled
