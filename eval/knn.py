"""Cosine k-NN on frozen features, no fitting: ``python -m eval.knn``.

    python -m eval.knn --checkpoint RUN/checkpoints/last.pt --data LABELLED --out knn.json [--k 1,5,20]
        [--random-init | --baseline pixels] [--splits DIR --fold K] [--clips-per-video N] [--shots K]

Protocol per feature set (each layer, and all layers concatenated):

1. Standardise with the train split's mean/std and L2-normalise.
2. Pick k by leave-one-out on train: every train video is classified by a majority vote of its k most
   cosine-similar *other* train videos (ties go to the class with the larger summed similarity). The k with the
   best leave-one-out top-1 wins (ties: the smaller k). No validation carve, so every label counts, and it works
   the same with ``--shots`` (one shot per class: no other video of its class, every k scores 0, k = the smallest).
   A k past the bank (``n_train - 1`` other videos) runs as ``n_train - 1``, with one warning line naming it.
3. The whole train split is the memory bank, and test videos are the queries.

Seeds only matter with ``--shots`` (which videos each seed draws); the leave-one-out top-1 picks the best layer.

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

from prednet2.cli import OneLineParser, out_file, prog_name
from prednet2.interrupt import run_cli

from .common import fail, skipped_text, write_json
from .featureset import FeatureSource, add_feature_args
from .probe import SetResult, Standardiser
from .seeds import add_seed_args, parse_seed_args, per_layer_text, run_seeds

DEFAULT_KS: tuple[int, ...] = (1, 5, 20)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, F) rows scaled to unit L2 norm (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 1e-12, n, 1.0)


def knn_predict(
    bank: np.ndarray, y_bank: np.ndarray, queries: np.ndarray | None, k: int, chunk: int = 1024
) -> np.ndarray:
    """Majority vote of the ``k`` most cosine-similar bank rows.

    Args:
        bank: (N_b, F) features of the memory bank (already standardised as wanted).
        y_bank: (N_b,) int labels of the bank.
        queries: (N_q, F) features to classify, or None for leave-one-out: each bank row is classified by the
            other rows (itself excluded).
        k: neighbours per query (capped at the rows available).
    Returns:
        (N_q,) predicted labels (N_b for leave-one-out). A tie between classes goes to the larger summed similarity.
    """
    b, y_bank = _unit_rows(np.asarray(bank, np.float64)), np.asarray(y_bank)
    loo = queries is None
    q = b if loo else np.asarray(queries, np.float64)
    k = int(min(k, len(b) - 1 if loo else len(b)))
    n_cls = int(y_bank.max()) + 1
    out = np.empty(len(q), dtype=np.int64)
    if k < 1:  # leave-one-out on a single row: nothing to vote
        out[:] = -1
        return out
    for s in range(0, len(q), chunk):  # chunks keep the (N_q, N_b) similarity matrix small
        sims = _unit_rows(q[s : s + chunk]) @ b.T  # (n, N_b)
        if loo:
            sims[np.arange(len(sims)), np.arange(s, s + len(sims))] = -np.inf
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
    """Pick k by leave-one-out on all of train, then bank = all of train, queries = test (steps 1-3). ``c`` holds k.

    ``tr_idx``/``val_idx`` (the probe's carve) are not used: leave-one-out needs no carve, so k-NN scores the
    same rows with and without ``--shots``.
    """
    z = Standardiser.fit(x_train)
    bank, y = z(x_train), np.asarray(y_train)
    # a k past the bank acts as the whole bank (leave-one-out: all but the row): count it as the k it really is
    ks = sorted({max(1, min(int(k), len(y) - 1)) for k in ks})
    best_k, best_val = min(ks), -1.0
    for k in ks:  # ascending: only a strictly better score replaces, so ties keep the smaller k
        acc = float(np.mean(knn_predict(bank, y, None, k) == y))
        if acc > best_val:
            best_k, best_val = k, acc
    test = float(np.mean(knn_predict(bank, y, z(x_test), best_k) == np.asarray(y_test)))  # the same standardised bank
    return SetResult(c=float(best_k), val_top1=best_val, test_top1=test, converged=True)


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise ValueError(f"--k {text!r}: expected comma-separated positive neighbour counts like 1,5,20")
    return ks


def warn_capped_ks(ks: Sequence[int], n_bank: int) -> None:
    """One stderr line when some of ``--k`` exceed what a bank of ``n_bank`` train videos can vote with (leave-one-out
    leaves ``n_bank - 1`` neighbours): those k run as ``n_bank - 1``, as ``knn_one_set`` counts them."""
    capped = [k for k in ks if k > n_bank - 1]
    if capped:
        print(f"warning: --k {','.join(map(str, capped))}: the memory bank holds {n_bank} train videos, so "
              f"leave-one-out votes among at most {n_bank - 1} others; k = {max(1, n_bank - 1)} was used instead "
              "(chosen_k holds the k used; more train videos or a smaller --k)", file=sys.stderr)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog_name("python -m eval.knn"),
        description="Cosine k-NN top-1 on standardised frozen features: train is the memory bank, test the "
        "queries, k picked by leave-one-out on train; mean ± std over seeds.",
    )
    add_feature_args(
        p,
        data_help="synthetic:shapes:{shape,direction,speed}, ..., a class folder (root/<class>/<video>) or a "
        "labels file (FOLDER/labels.csv: path,class per video)",
    )
    p.add_argument("--out", required=True, type=out_file, help="knn.json to write")
    p.add_argument("--k", default=",".join(map(str, DEFAULT_KS)), help="neighbour counts to try (default 1,5,20)")
    add_seed_args(
        p, shots_help="K labelled videos per class in the memory bank, or 'all' (default: all)", val_frac=False
    )
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
    warn_capped_ks(ks, result["n_train"])
    result |= {"ks": ks, "chosen_k": chosen, "wall_s": round(time.time() - t0, 2)}
    write_json(args.out, result)
    print(
        f"{args.data} [{result['variant']}] k-NN top1 {result['top1']:.3f} ± {result['top1_std']:.3f} (concat, "
        f"k chosen {sorted(set(chosen['concat']))}); per layer {per_layer_text(result)}; "
        f"chance {result['chance']:.3f}{skipped_text(result['skipped'])} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
