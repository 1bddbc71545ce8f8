"""One embedding per video of a folder (or a synthetic split): ``python -m eval.embed``.

    python -m eval.embed --checkpoint RUN/checkpoints/last.pt --data FOLDER --out emb.npz [--per-clip]
        [--clips-per-video N] [--random-init | --baseline pixels] [--layers all|0,1]

The embedding of a clip is ``model.extract_features`` of every selected layer concatenated (the probe's
``concat``), raw (not standardised: ``eval.search`` and ``eval.cluster`` standardise over the file's rows); a
video's embedding is the mean over its ``--clips-per-video`` spread clips (default 1: the centre clip). A folder
whose sub-folders hold the videos is read as labelled, one class per sub-folder (``--no-labels`` reads every video
without labels).

emb.npz holds:

- ``embedding`` (V, F) float32, ``paths`` (V,) str (absolute file paths; ``SPEC/SPLIT/INDEX`` for synthetic
  clips), ``labels`` (V,) int64 (-1 without labels), ``classes`` (C,) str;
- with ``--per-clip``: ``clip_embedding`` (N, F), ``clip_video`` (N,) index into ``paths``, ``clip_start`` (N,)
  first frame of each clip;
- ``meta``: a JSON string (checkpoint, run, variant, data spec and split, data options, layer dimensions).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from prednet2.cli import OneLineParser, int_at_least, out_file, prog_name
from prednet2.interrupt import run_cli

from .common import fail, skipped_text
from .featureset import FeatureSource, add_feature_args
from .video_level import pool_by_video, video_ids


@dataclasses.dataclass
class Embeddings:
    """The contents of an emb.npz (see the module docstring for shapes)."""

    embedding: np.ndarray  # (V, F)
    paths: np.ndarray  # (V,) str
    labels: np.ndarray  # (V,) int64, -1 when unlabelled
    classes: list[str]
    meta: dict
    clip_embedding: np.ndarray | None = None  # (N, F)
    clip_video: np.ndarray | None = None  # (N,)
    clip_start: np.ndarray | None = None  # (N,)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels) and np.all(self.labels >= 0))


def save_embeddings(path: str | os.PathLike, emb: Embeddings) -> Path:
    """Atomic write of an emb.npz (temporary file + os.replace)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"embedding": emb.embedding, "paths": np.asarray(emb.paths, dtype=str), "labels": emb.labels,
              "classes": np.asarray(emb.classes, dtype=str), "meta": np.array(json.dumps(emb.meta))}  # fmt: skip
    if emb.clip_embedding is not None:
        arrays |= {"clip_embedding": emb.clip_embedding, "clip_video": emb.clip_video, "clip_start": emb.clip_start}
    fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".npz.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def load_embeddings(path: str | os.PathLike) -> Embeddings:
    """Read an emb.npz written by ``eval.embed``. Raises ValueError naming the file when it is not one."""
    try:
        z = np.load(path, allow_pickle=False)
    except OSError as e:
        raise ValueError(f"{path}: not readable as an emb.npz ({e.strerror or e})") from None
    except (ValueError, zipfile.BadZipFile):  # numpy's own text here is about unpickling, which would mislead
        raise ValueError(
            f"{path}: not a numpy .npz file, or a damaged one; give an emb.npz written by prednet2 embed"
        ) from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a .npy: one bare array, no paths or labels
        raise ValueError(f"{path}: a single numpy array (.npy), not an emb.npz; write one with prednet2 embed")
    try:
        with z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a cut or damaged member
        raise ValueError(f"{path}: damaged or truncated emb.npz ({e}); write it again with prednet2 embed") from None
    missing = {"embedding", "paths", "labels", "meta"} - set(d)
    if missing:
        raise ValueError(f"{path}: not an eval.embed file (missing {sorted(missing)})")
    return Embeddings(
        embedding=d["embedding"], paths=d["paths"], labels=d["labels"], classes=[str(c) for c in d.get("classes", [])],
        meta=json.loads(str(d["meta"])), clip_embedding=d.get("clip_embedding"), clip_video=d.get("clip_video"),
        clip_start=d.get("clip_start"),
    )  # fmt: skip


def concat_layers(feats: dict[str, np.ndarray]) -> np.ndarray:
    """{layer: (N, F_l)} in layer order -> (N, sum F_l) float32."""
    return np.concatenate([feats[k] for k in sorted(feats, key=int)], axis=1).astype(np.float32)


def is_labelled_folder(path: str | os.PathLike) -> bool:
    """True when a sub-folder of ``path`` holds a video (the UCF101 layout root/<class>/<video>)."""
    from prednet2.datasets.decode import scan_videos

    root = Path(path)
    return root.is_dir() and any(
        d.is_dir() and not d.name.startswith(".") and scan_videos(d) for d in sorted(root.iterdir())
    )


def loose_videos(path: str | os.PathLike) -> list[Path]:
    """The video files directly in ``path`` (not in a sub-folder): no class of a labelled folder holds them."""
    from prednet2.datasets.decode import VIDEO_EXTENSIONS

    return sorted(f for f in Path(path).iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)


def npz_out(text: str) -> str:
    """An argparse ``type``: ``out_file``, named ``*.npz`` (search and cluster read it by that name)."""
    if Path(text).suffix.lower() != ".npz":
        raise argparse.ArgumentTypeError(f"{text}: embeddings are written as a .npz archive; name it e.g. emb.npz")
    return out_file(text)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog_name("python -m eval.embed"), description=__doc__.splitlines()[0])
    add_feature_args(
        p,
        data_help="a folder of videos (labelled when it has class sub-folders), a labels file (FOLDER/labels.csv: "
        "path,class per video) or a synthetic spec",
    )
    p.add_argument("--out", required=True, type=npz_out, help="emb.npz to write")
    p.add_argument("--per-clip", action="store_true", help="also store every clip's embedding")
    p.add_argument("--split", help="which split (default: all of a folder; test of a synthetic set)")
    p.add_argument("--no-labels", action="store_true", help="read a folder without labels even with sub-folders")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="--random-init: the seed of the fresh weights")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from prednet2.datasets.labelled import DEFAULT_LABEL_FILES, is_labels_file

    synthetic = args.data.startswith("synthetic:")
    table = not synthetic and is_labels_file(args.data) and Path(args.data).is_file()
    if table and args.no_labels:
        fail(f"--data {args.data} is a labels file; with --no-labels give its folder ({Path(args.data).parent})")
    if not synthetic and not table and Path(args.data).is_file():  # it said "no such folder" of a video that is there
        fail(f"--data {args.data}: a file; give the folder of videos to embed (eval.search --query takes one video)")
    if not synthetic and not table and not Path(args.data).is_dir():
        fail(f"--data {args.data}: no such folder (expected a folder of videos or synthetic:NAME)")
    if not synthetic and not table and not args.no_labels and not is_labelled_folder(args.data):
        table = any((Path(args.data) / n).is_file() for n in DEFAULT_LABEL_FILES)  # flat, labels beside: read them
    labelled = (synthetic and args.data.count(":") >= 2) or table or (
        not synthetic and not args.no_labels and is_labelled_folder(args.data)
    )  # fmt: skip
    loose = loose_videos(args.data) if labelled and not synthetic and not table else []
    if loose:  # a labelled folder is root/<class>/<video>: these have no class, and were dropped without a word
        print(
            f"warning: --data {args.data}: {len(loose)} video(s) directly in the folder (e.g. {loose[0].name}) are in "
            "no class folder and are left out; --no-labels embeds every video",
            file=sys.stderr,
        )
    split = args.split or ("test" if synthetic else "all")
    if not synthetic and split != "all" and not labelled:
        fail(f"--split {split}: an unlabelled folder has no splits; leave --split out")
    src = FeatureSource(args, labelled=labelled)
    feats, labels = src.clip_features(split, args.seed)
    ds = src.dataset(split)
    clip_emb = concat_layers(src.select(feats))  # (N_clips, F)
    vids = video_ids(ds)
    pooled, video_labels, uniq = pool_by_video({"0": clip_emb}, labels, vids)
    if hasattr(ds, "videos"):
        paths = [str(ds.videos[v]) for v in uniq]
    else:
        paths = [f"{args.data}/{split}/{int(v)}" for v in uniq]
    dims = {k: int(v.shape[1]) for k, v in sorted(src.select(feats).items(), key=lambda kv: int(kv[0]))}
    meta = {
        "dataset": args.data,
        "split": split,
        "data_seed": args.data_seed,
        "data_options": dataclasses.asdict(src.dcfg),
        "layers": dims,
        "init_seed": args.seed if args.random_init else None,
        **src.provenance(),
    }
    starts = np.asarray([s for _, s in ds.clips], dtype=np.int64) if hasattr(ds, "clips") else np.zeros(len(vids))
    emb = Embeddings(
        embedding=pooled["0"], paths=np.asarray(paths),
        labels=video_labels if labelled else np.full_like(video_labels, -1),
        classes=list(getattr(ds, "classes", []) or []), meta=meta,
        clip_embedding=clip_emb if args.per_clip else None,
        clip_video=np.searchsorted(uniq, vids) if args.per_clip else None,
        clip_start=starts.astype(np.int64) if args.per_clip else None,
    )  # fmt: skip
    save_embeddings(args.out, emb)
    print(
        f"{len(paths)} videos ({len(vids)} clips) x {emb.embedding.shape[1]} dims [{src.variant}]"
        f"{', labelled' if labelled else ''}{skipped_text(meta['skipped'])} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
