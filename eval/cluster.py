"""Categories without names: k-means on video embeddings, scored against labels: ``python -m eval.cluster``.

    python -m eval.cluster emb.npz [--k N] --out cluster.json [--seeds 3] [--png-dir DIR]

Embeddings are standardised over the file's rows and scaled to unit length (as ``eval.search`` compares them), so
k-means groups by cosine similarity. With labels, the clustering is scored by normalised mutual information
(``nmi``, arithmetic normalisation) and the adjusted Rand index (``ari``) against them: 1 is a perfect match, and
about 0 is chance for both (NMI of a random assignment is slightly above 0 when clusters are many and videos few).
``--k`` defaults to the number of classes. Each seed restarts k-means (``n_init=10``); figures are mean ± std over
seeds. ``--png-dir`` draws one contact sheet per cluster of the first seed (a few members, a few frames each).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from prednet2.cli import OneLineParser, int_at_least, out_file, out_folder, prog_name
from prednet2.interrupt import run_cli

from .common import fail, write_json
from .contact_sheet import draw_sheet, short_name, video_frames
from .embed import load_embeddings
from .search import standardise_rows


def kmeans_labels(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means (scikit-learn, ``n_init=10``) of rows ``x`` (N, F): cluster ids (N,) in 0..k-1."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(x, np.float64))


def cluster_scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """``{"nmi", "ari", "purity"}`` of cluster ids (N,) against true labels (N,)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels, clusters = np.asarray(labels), np.asarray(clusters)
    table = np.zeros((clusters.max() + 1, labels.max() + 1))
    np.add.at(table, (clusters, labels), 1)  # (clusters, classes) counts
    return {
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
        "purity": float(table.max(axis=1).sum() / len(labels)),  # each cluster read as its commonest class
    }


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog_name("python -m eval.cluster"), description=__doc__.splitlines()[0])
    p.add_argument("embeddings", help="emb.npz from eval.embed")
    p.add_argument("--k", type=int_at_least(2), help="number of clusters, 2 or more (default: the number of classes)")
    p.add_argument("--out", required=True, type=out_file, help="cluster.json to write")
    p.add_argument("--seeds", type=int_at_least(1), default=3, help="k-means restarts 0..N-1 (default 3)")
    p.add_argument("--png-dir", type=out_folder, help="folder for one contact sheet per cluster (first seed)")
    p.add_argument("--per-sheet", type=int_at_least(1), default=6, help="videos per cluster sheet (default 6)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    try:
        e = load_embeddings(args.embeddings)
    except ValueError as err:
        fail(str(err))
    k = args.k if args.k is not None else (len(e.classes) if e.labelled and e.classes else None)
    if k is None:
        fail(f"--k: {args.embeddings} has no labels to take the number of clusters from; pass --k N")
    if not 2 <= k <= len(e.embedding):
        fail(f"--k {k}: need 2 <= k <= {len(e.embedding)} (the number of videos)")
    if args.seeds < 1:
        fail(f"--seeds {args.seeds}: need at least 1")
    x = standardise_rows(e.embedding)
    runs = [kmeans_labels(x, k, s) for s in range(args.seeds)]
    result: dict = {
        "dataset": e.meta.get("dataset"),
        "method": "kmeans",
        "k": int(k),
        "n_videos": int(len(x)),
        "n_classes": len(e.classes) if e.labelled else None,
        "seeds": list(range(args.seeds)),
        "cluster_sizes": np.bincount(runs[0], minlength=k).tolist(),
    }
    if e.labelled:
        scores = [cluster_scores(e.labels, c) for c in runs]
        for name in ("nmi", "ari", "purity"):
            v = np.array([s[name] for s in scores])
            result[name], result[name + "_std"] = float(v.mean()), float(v.std())
    meta_keys = ("variant", "random_init", "baseline", "checkpoint", "run", "steps", "clips_per_video", "clip_len")
    result |= {key: e.meta.get(key) for key in meta_keys}
    result |= {"embeddings": str(args.embeddings), "assignments": runs[0].tolist()}
    result["wall_s"] = round(time.time() - t0, 2)
    write_json(args.out, result)
    scored = f"NMI {result['nmi']:.3f} ± {result['nmi_std']:.3f}, ARI {result['ari']:.3f}; " if e.labelled else ""
    print(f"k-means k={k} on {len(x)} videos [{result['variant']}]: {scored}sizes {result['cluster_sizes']} "
          f"-> {args.out}")  # fmt: skip
    if args.png_dir:
        for c in range(k):
            members = np.flatnonzero(runs[0] == c)[: args.per_sheet]
            rows = []
            for i in members:
                label = f" [{e.classes[e.labels[i]]}]" if e.labelled and e.classes else ""
                rows.append((short_name(e.paths[i]) + label, video_frames(e.paths[i], e.meta)))
            if rows:
                size = result["cluster_sizes"][c]
                draw_sheet(rows, Path(args.png_dir) / f"cluster_{c:02d}.png", title=f"cluster {c} ({size} videos)")
        print(f"wrote {k} contact sheets to {args.png_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
