"""Report tables for few labels and no labels: label-efficiency curves, k-NN, clusters (used by ``eval.report``).

- **Label efficiency**: probe files with a ``shots`` key (``eval.linear_probe --shots K`` and ``eval.knn
  --shots K``), one row per (run, task, method, variant), one column per K; and a PNG of top-1 against K.
- **k-NN**: ``eval.knn`` files without ``shots``, trained vs random init vs pixels side by side.
- **Clusters**: ``eval.cluster`` files: NMI, ARI and purity per variant.
"""

from __future__ import annotations

from pathlib import Path

VARIANTS = ("trained", "random_init", "pixels")
TITLES = {"trained": "trained", "random_init": "random init", "pixels": "pixels"}


def _pct(x, std=None) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _shot_key(k) -> float:
    return float("inf") if k == "all" else float(k)


def task_of(d: dict) -> str:
    """The dataset, with the clips per video when more than the one centre clip."""
    n = d.get("clips_per_video", 1) or 1
    return d["dataset"] + (f" ({n} clips/video)" if n != 1 else "")


def curves(items: list[tuple[Path, dict]], run_of, dup_error) -> dict[tuple, dict]:
    """{(run, task, method): {variant: {K: (top1, std, n_train, n_seeds, chance)}}}; a second file for one point
    raises ``dup_error``."""
    out: dict[tuple, dict] = {}
    for f, d in items:
        key = (run_of(d), task_of(d), d.get("method", "linear"))
        pts = out.setdefault(key, {}).setdefault(d.get("variant", "trained"), {})
        k = d["shots"]
        if k in pts:
            raise dup_error(f"{f}: a second {d.get('variant')} point at {k} shots for {key[1]} ({key[2]})")
        pts[k] = (d["top1"], d.get("top1_std", 0.0), d.get("n_train"), len(d.get("seeds", [])), d.get("chance"))
    return out


def shots_table(items, run_of, name_of, dup_error) -> str:
    cs = curves(items, run_of, dup_error)
    if not cs:
        return ""
    ks = sorted({k for v in cs.values() for pts in v.values() for k in pts}, key=_shot_key)
    head = "| run | task | method | seeds | variant | " + " | ".join(f"K={k}" for k in ks) + " |\n"
    lines = [head + "|---" * (5 + len(ks)) + "|"]
    for (run, task, method), by_var in cs.items():
        seeds = "/".join(map(str, sorted({p[3] for pts in by_var.values() for p in pts.values()})))
        for v in VARIANTS:
            if v in by_var:
                cells = [_pct(*by_var[v][k][:2]) if k in by_var[v] else "–" for k in ks]
                row = f"| {name_of(run)} | {task} | {method} | {seeds} | {TITLES[v]} | "
                lines.append(row + " | ".join(cells) + " |")
        tr, ri = by_var.get("trained", {}), by_var.get("random_init", {})
        if tr and ri:
            cells = [f"**{100 * (tr[k][0] - ri[k][0]):+.1f}**" if k in tr and k in ri else "–" for k in ks]
            row = f"| {name_of(run)} | {task} | {method} | {seeds} | trained − random | "
            lines.append(row + " | ".join(cells) + " |")
    note = (
        "\nTest top-1 in %, mean ± std over seeds; K labelled videos per class drawn from train per seed (the std "
        "includes which videos were drawn), the whole test split scored. Linear probe: at K < 5 a fixed C = 1; from "
        "K = 5 C is chosen by 5-fold cross-validation over the K shots; K = all is the full-label protocol. "
        "*trained − random* is in points.\n"
    )
    return "### Label efficiency (few labels)\n\n" + "\n".join(lines) + "\n" + note


def curve_chart(items, run_of, name_of, dup_error, path: str | Path) -> Path | None:
    """One panel per (run, task, method): top-1 against K (log axis, ``all`` at the right end) per variant."""
    cs = curves(items, run_of, dup_error)
    if not cs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(cs), figsize=(4.2 * len(cs), 3.4), squeeze=False)
    for ax, ((run, task, method), by_var) in zip(axes[0], cs.items()):
        ks = sorted({k for pts in by_var.values() for k in pts}, key=_shot_key)
        numeric = [k for k in ks if k != "all"]
        x_all = (max(numeric) * 3) if numeric else 1
        xpos = {k: (x_all if k == "all" else k) for k in ks}
        for v in VARIANTS:
            if v in by_var:
                pts = sorted(by_var[v].items(), key=lambda kv: _shot_key(kv[0]))
                ax.errorbar([xpos[k] for k, _ in pts], [100 * p[0] for _, p in pts],
                            yerr=[100 * p[1] for _, p in pts], marker="o", capsize=3, label=TITLES[v])  # fmt: skip
        chance = next((p[4] for pts in by_var.values() for p in pts.values() if p[4]), None)
        if chance:
            ax.axhline(100 * chance, color="black", linestyle=":", linewidth=1, label="chance")
        ax.set_xscale("log")
        ax.set_xticks([xpos[k] for k in ks], [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("labelled videos per class (K)")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(f"{task.replace('synthetic:', '')} ({method}, {name_of(run)})", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90, format="png")  # at the path given, with or without .png
    plt.close(fig)
    return path


def knn_table(items, run_of, name_of, dup_error) -> str:
    rows: dict[tuple, dict] = {}
    for f, d in items:
        row = rows.setdefault((run_of(d), task_of(d)), {})
        v = d.get("variant", "trained")
        if v in row:
            raise dup_error(f"{f}: a second {v} k-NN result for {name_of(run_of(d))} / {task_of(d)}")
        row[v] = d
    if not rows:
        return ""
    lines = ["| run | task | trained | random init | pixels | trained − random | k chosen (trained) | chance "
             "| seeds | train/test videos |", "|---" * 10 + "|"]  # fmt: skip
    for (run, task), r in rows.items():
        tr, ri, px = r.get("trained"), r.get("random_init"), r.get("pixels")
        any_d = tr or ri or px
        delta = f"{100 * (tr['top1'] - ri['top1']):+.1f}" if tr and ri else "–"
        ks = "/".join(map(str, sorted(set(tr["chosen_k"]["concat"])))) if tr and "chosen_k" in tr else "–"
        cells = [_pct(d and d["top1"], d and d.get("top1_std")) if d else "–" for d in (tr, ri, px)]
        lines.append(
            f"| {name_of(run)} | {task} | " + " | ".join(cells) + f" | {delta} | {ks} | {_pct(any_d.get('chance'))} "
            f"| {len(any_d.get('seeds', []))} | {any_d['n_train']}/{any_d['n_test']} |"
        )
    note = (
        "\nCosine k-NN top-1 on test in % (mean ± std over seeds): features standardised on the memory bank "
        "(train), all layers concatenated, k from the `--k` list chosen on a validation carve of train.\n"
    )
    return "### k-NN (no fitting)\n\n" + "\n".join(lines) + "\n" + note


def cluster_table(items, run_of, name_of) -> str:
    if not items:
        return ""
    lines = ["| run | data | variant | k | NMI | ARI | purity | videos | seeds |", "|---" * 9 + "|"]
    order = {v: i for i, v in enumerate(VARIANTS)}
    for _, d in sorted(items, key=lambda fd: (run_of(fd[1]), str(fd[1].get("dataset")),
                                               order.get(fd[1].get("variant"), 9))):  # fmt: skip
        nmi, ari, pur = (
            (f"{d['nmi']:.3f} ± {d['nmi_std']:.3f}", f"{d['ari']:.3f}", f"{d['purity']:.3f}") if "nmi" in d else "–––"
        )
        lines.append(
            f"| {name_of(run_of(d))} | {d.get('dataset')} | {TITLES.get(d.get('variant'), '?')} | {d['k']} "
            f"| {nmi} | {ari} | {pur} | {d.get('n_videos')} | {len(d.get('seeds', []))} |"
        )
    note = (
        "\nk-means on standardised, unit-length video embeddings (`eval.embed` → `eval.cluster`); NMI and ARI "
        "against the labels (1 = the classes exactly, ~0 = chance); purity reads each cluster as its commonest "
        "class.\n"
    )
    return "### Clusters (no labels)\n\n" + "\n".join(lines) + "\n" + note
