"""Cosine k-NN on frozen features, no fitting: ``python -m eval.knn``.

    python -m eval.knn --checkpoint RUN/checkpoints/last.pt --data LABELLED --out knn.json [--k 1,5,20]
        [--random-init | --baseline pixels] [--splits DIR --fold K] [--clips-per-video N] [--shots K]

Protocol for one seed, per feature set (each layer, and all layers concatenated), like the linear probe:

1. Carve a stratified validation split from train (the seed picks which videos).
2. Standardise with the carved train part's mean/std, L2-normalise, and classify each validation video by a
   majority vote of its k most cosine-similar carved-train videos (ties go to the class with the larger summed
   similarity). The k with the best validation top-1 wins (ties: the smaller k).
3. The whole train split becomes the memory bank (standardised on it), and test videos are the queries.

``top1`` is the test top-1 at the chosen k of all layers concatenated, mean over seeds; knn.json has the
probe.json keys plus ``method: "knn"``, ``ks`` and ``chosen_k``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from functools import partial

import numpy as np

from prednet2.cli import prog_name

from .common import fail, write_json
from .featureset import FeatureSource, add_feature_args, add_seed_args, parse_seed_args, per_layer_text, run_seeds
from .probe import SetResult, Standardiser

DEFAULT_KS: tuple[int, ...] = (1, 5, 20)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, F) rows scaled to unit L2 norm (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 1e-12, n, 1.0)


def knn_predict(bank: np.ndarray, y_bank: np.ndarray, queries: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Majority vote of the ``k`` most cosine-similar bank rows.

    Args:
        bank: (N_b, F) features of the memory bank (already standardised as wanted).
        y_bank: (N_b,) int labels of the bank.
        queries: (N_q, F) features to classify.
        k: neighbours per query (capped at N_b).
    Returns:
        (N_q,) predicted labels. A tie between classes goes to the larger summed similarity.
    """
    b, y_bank = _unit_rows(np.asarray(bank, np.float64)), np.asarray(y_bank)
    k = int(min(k, len(b)))
    n_cls = int(y_bank.max()) + 1
    out = np.empty(len(queries), dtype=np.int64)
    for s in range(0, len(queries), chunk):  # chunks keep the (N_q, N_b) similarity matrix small
        sims = _unit_rows(np.asarray(queries[s : s + chunk], np.float64)) @ b.T  # (n, N_b)
        nn = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (n, k) unordered top-k
        nn_sim = np.take_along_axis(sims, nn, axis=1)
        votes = np.zeros((len(sims), n_cls))
        rows = np.repeat(np.arange(len(sims)), k)
        np.add.at(votes, (rows, y_bank[nn].ravel()), 1.0 + 1e-6 * nn_sim.ravel())  # count, then similarity
        out[s : s + chunk] = votes.argmax(axis=1)
    return out


def knn_top1(bank: np.ndarray, y_bank: np.ndarray, queries: np.ndarray, y_queries: np.ndarray, k: int) -> float:
    """Top-1 of cosine k-NN on features standardised with the bank's mean/std: bank (N_b, F), queries (N_q, F)."""
    z = Standardiser.fit(bank)
    return float(np.mean(knn_predict(z(bank), y_bank, z(queries), k) == np.asarray(y_queries)))


def knn_one_set(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    tr_idx: np.ndarray,
    val_idx: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
) -> SetResult:
    """Pick k on (tr_idx -> val_idx), then bank = all of train, queries = test (steps 2-3). ``c`` holds k."""
    best_k, best_val = ks[0], -1.0
    for k in sorted(ks):  # ascending: only a strictly better score replaces, so ties keep the smaller k
        acc = knn_top1(x_train[tr_idx], y_train[tr_idx], x_train[val_idx], y_train[val_idx], k)
        if acc > best_val:
            best_k, best_val = k, acc
    test = knn_top1(x_train, y_train, x_test, y_test, best_k)
    return SetResult(c=float(best_k), val_top1=best_val, test_top1=test, converged=True)


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise ValueError(f"--k {text!r}: expected comma-separated positive neighbour counts like 1,5,20")
    return ks


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("python -m eval.knn"),
        description="Cosine k-NN top-1 on standardised frozen features: train is the memory bank, test the "
        "queries, k picked on a validation split of train; mean ± std over seeds.",
    )
    add_feature_args(p, data_help="synthetic:shapes:{shape,direction,speed}, ... or a class folder")
    p.add_argument("--out", required=True, help="knn.json to write")
    p.add_argument("--k", default=",".join(map(str, DEFAULT_KS)), help="neighbour counts to try (default 1,5,20)")
    add_seed_args(p, shots_help="K labelled videos per class in the memory bank, or 'all' (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ks = parse_ks(args.k)
    except ValueError as e:
        fail(str(e))
    shots = parse_seed_args(args)
    t0 = time.time()
    src = FeatureSource(args)
    result = {"method": "knn", **run_seeds(args, src, shots, one_set=partial(knn_one_set, ks=ks))}
    chosen = {k: [int(c) for c in v] for k, v in result.pop("chosen_c").items()}  # SetResult.c holds k
    result |= {"ks": ks, "chosen_k": chosen, "wall_s": round(time.time() - t0, 2)}
    write_json(args.out, result)
    print(
        f"{args.data} [{result['variant']}] k-NN top1 {result['top1']:.3f} ± {result['top1_std']:.3f} (concat, "
        f"k chosen {sorted(set(chosen['concat']))}); per layer {per_layer_text(result)}; "
        f"chance {result['chance']:.3f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
