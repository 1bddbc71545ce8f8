"""Search by example: the videos nearest to a query in an emb.npz: ``python -m eval.search``.

    python -m eval.search emb.npz --query VIDEO [-k 5] [--png sheet.png]

Distances are cosine distances (1 - cosine similarity) between embeddings standardised over the file's rows
(each feature to zero mean and unit variance, so no layer or channel dominates by its scale). The query is a
video of the file (its path, or any unique tail of it such as ``class/video.mp4``; it is left out of its own
results), or any other video file, which is then embedded with the checkpoint, variant and options the file
records. ``--png`` draws a contact sheet: the query and its neighbours, a few frames each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from prednet2.cli import OneLineParser, int_at_least, out_file, prog_name
from prednet2.interrupt import run_cli

from .common import fail
from .contact_sheet import draw_sheet, short_name, video_frames
from .embed import Embeddings, load_embeddings


def standardise_rows(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """(N, F) -> (N, F): z-score each feature with ``ref``'s mean/std (default ``x``'s), then unit L2 rows."""
    ref = x if ref is None else ref
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    z = (np.asarray(x, np.float64) - mean) / np.where(std > 1e-8, std, 1.0)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def nearest(bank: np.ndarray, query: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``bank`` (N, F) nearest to ``query`` (F,), both unit-norm: (indices (k,), cosine
    distances (k,)), nearest first (ties: the lower index). ``exclude`` leaves one row out (the query itself)."""
    dist = 1.0 - bank @ query  # (N,)
    if exclude is not None:
        dist[exclude] = np.inf
    order = np.lexsort((np.arange(len(dist)), dist))[: min(k, len(dist) - (exclude is not None))]
    return order, dist[order]


def find_query(paths: np.ndarray, query: str) -> int | None:
    """Index of ``query`` in ``paths``: the same file, else the one path ending in ``/query``; None when none.
    Raises ValueError when several paths end with it."""
    q = Path(query)
    if q.exists():
        hits = [i for i, p in enumerate(paths) if Path(p).exists() and Path(p).resolve() == q.resolve()]
        if hits:
            return hits[0]
    tail = str(query).replace("\\", "/")
    tail = "/" + (tail[2:] if tail.startswith("./") else tail).lstrip("/")
    hits = [i for i, p in enumerate(paths) if str(p).endswith(tail) or str(p) == query]
    if len(hits) > 1:
        raise ValueError(f"--query {query}: matches {len(hits)} videos, e.g. {paths[hits[0]]}; give more of the path")
    return hits[0] if hits else None


def embed_file(path: str, meta: dict, emb_name: str = "the embeddings file", dim: int | None = None) -> np.ndarray:
    """Embed one video file as ``eval.embed`` embedded the file's rows (checkpoint, variant, layers, clips): (F,).

    The file is linked into a temporary folder so the ordinary folder pipeline (decode cache, motion masks,
    ``extract_features``) reads it.
    """
    import tempfile

    from .embed import build_parser, concat_layers
    from .featureset import FeatureSource
    from .video_level import pool_by_video, video_ids

    ckpt, trained = meta["checkpoint"], meta.get("variant") == "trained"
    stale = f"re-run eval.embed to embed the folder and the query alike, or give a video of {emb_name}"
    if not Path(ckpt).is_file():
        fail(f"--query {path}: a new video is embedded with {emb_name}'s checkpoint, {ckpt}, which is gone; {stale}")
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / Path(path).name
        link.symlink_to(Path(path).resolve())
        unused = str(Path(tmp) / "unused.npz")  # embed's parser wants an --out; nothing is written
        argv = ["--checkpoint", meta["checkpoint"], "--data", tmp, "--out", unused, "--no-labels", "--no-cache",
                "--clips-per-video", str(meta.get("clips_per_video", 1)), "--clip-len", str(meta["clip_len"]),
                "--layers", ",".join(meta["layers"]) if meta.get("variant") != "pixels" else "all"]  # fmt: skip
        if meta.get("variant") == "random_init":
            argv += ["--random-init", "--seed", str(meta.get("init_seed") or 0)]
        elif meta.get("variant") == "pixels":
            argv += ["--baseline", "pixels"]
        args = _parse_quietly(build_parser(), argv)
        src = FeatureSource(args, labelled=False)
        if trained and meta.get("checkpoint_step") not in (None, src.loaded.step):  # resumed or retrained since
            fail(f"--query {path}: {ckpt} is at step {src.loaded.step} now, but {emb_name} was embedded from step "
                 f"{meta['checkpoint_step']}: the query would be read by other weights; {stale}")  # fmt: skip
        _check_decodes(path, tmp, src.dcfg)
        feats, labels = src.clip_features("all", args.seed)
        pooled, _, _ = pool_by_video({"0": concat_layers(src.select(feats))}, labels, video_ids(src.dataset("all")))
    if dim is not None and pooled["0"].shape[1] != dim:  # another architecture or readout in the same place
        fail(f"--query {path}: {ckpt} now gives {pooled['0'].shape[1]} features a video, {emb_name} holds {dim}: "
             f"the checkpoint changed since the folder was embedded; {stale}")  # fmt: skip
    return pooled["0"][0]


def _parse_quietly(parser, argv: list[str]):
    """Parse eval.embed's options for the query without making eval.embed the tool that later errors name (a
    parser that parses records its prog for ``fail``'s prefix; this process is still eval.search)."""
    from prednet2 import cli

    running = cli._last_prog
    try:
        return parser.parse_args(argv)
    finally:
        cli._last_prog = running


def _check_video(path: str) -> None:
    """Exit 2 naming ``--query`` when the file is not a video or its first second does not decode (embedding it would
    fail inside a temporary folder, with a message naming that folder)."""
    from prednet2.datasets.decode import VIDEO_EXTENSIONS, decode_video, is_video_file
    from prednet2.datasets.errors import DecodeError

    if not is_video_file(path):
        fail(f"--query {path}: not a video file (expected {' '.join(VIDEO_EXTENSIONS)})")
    try:
        decode_video(path, size=(16, 16), duration=1.0)
    except DecodeError as err:
        fail(f"--query {path}: {err.reason}")


def _check_decodes(path: str, folder: str, dcfg) -> None:
    """Decode the query (into ``folder``'s frame cache, which the embedding then reads) as the file's videos were;
    a query the pipeline skips (too short for a clip, damaged past its first second) exits 2 naming ``--query``, not
    the temporary ``folder``."""
    import logging

    from prednet2.datasets import DataError, build_dataset

    log = logging.getLogger("prednet2.datasets")
    level = log.level
    log.setLevel(logging.ERROR)  # its "skipping <temporary path>" warning would only repeat the line below
    try:
        build_dataset(folder, cfg=dcfg, split="all", labelled=False)
    except DataError as err:
        skipped = getattr(err, "skipped", None)
        fail(f"--query {path}: {skipped[0].reason if skipped else err}")
    finally:
        log.setLevel(level)


def _caption(e: Embeddings, i: int) -> str:
    label = f" [{e.classes[e.labels[i]]}]" if e.labelled and e.classes else ""
    return f"{short_name(e.paths[i])}{label}"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog_name("python -m eval.search"), description=__doc__.splitlines()[0])
    p.add_argument("embeddings", help="emb.npz from eval.embed")
    p.add_argument("--query", required=True, help="a video of the file (path or unique tail) or any video file")
    p.add_argument("-k", type=int, default=5, help="neighbours to list (default 5)")
    p.add_argument("--png", type=out_file, help="contact sheet of the query and its neighbours")
    p.add_argument(
        "--frames", type=int_at_least(1), default=4, help="frames per video on the contact sheet (default 4)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.k < 1:
        fail(f"-k {args.k}: need at least 1 neighbour")
    try:
        e = load_embeddings(args.embeddings)
        qi = find_query(e.paths, args.query)
    except ValueError as err:
        fail(str(err))
    bank = standardise_rows(e.embedding)
    if qi is not None:
        q, name = bank[qi], _caption(e, qi)
    elif Path(args.query).is_file():
        _check_video(args.query)
        emb = embed_file(args.query, e.meta, Path(args.embeddings).name, e.embedding.shape[1])
        q = standardise_rows(emb[None], ref=e.embedding)[0]
        name = f"{short_name(args.query)} (not in {Path(args.embeddings).name}; embedded now)"
    elif Path(args.query).is_dir():
        fail(f"--query {args.query}: a folder; give one video file, or the path of one of {args.embeddings}'s rows")
    else:
        fail(f"--query {args.query}: not a video in {args.embeddings} and no such file")
    idx, dist = nearest(bank, q, args.k, exclude=qi)
    print(f"query: {name}")
    for r, (i, d) in enumerate(zip(idx, dist), 1):
        print(f"{r:3d}  {d:.4f}  {_caption(e, i)}  {e.paths[i]}")
    if args.png:
        qpath = e.paths[qi] if qi is not None else str(args.query)
        rows = [(f"query\n{name}", video_frames(qpath, e.meta, args.frames))]
        rows += [(f"{r}. d={d:.3f}\n{_caption(e, i)}", video_frames(e.paths[i], e.meta, args.frames))
                 for r, (i, d) in enumerate(zip(idx, dist), 1)]  # fmt: skip
        draw_sheet(rows, args.png, title=f"nearest to {short_name(qpath)} [{e.meta.get('variant', '?')}]",
                   n=args.frames)  # fmt: skip
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
