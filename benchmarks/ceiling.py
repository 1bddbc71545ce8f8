"""The supervised reference: the same stack trained end to end with labels, read through the same readout.

    python benchmarks/ceiling.py --tasks direction,kind --json ceiling.json
    python benchmarks/ceiling.py --tasks direction --n-train 4096 --epochs 4 --set model.readout_bins=1

A linear probe on frozen self-supervised features is bounded by what the architecture and its readout can carry
at all. This script measures what labels buy the same network, task by task: the default ``tiny`` stack (or
``--set`` overrides, resolved as ``train.py`` resolves them) starts at random init with a linear head on its probe
readout (``prednet2.readout.readout_features``: the parts, pooling and time bins of ``model.readout*``, every layer
concatenated, standardised by a BatchNorm without affine), and both are trained on the task's labels with
cross-entropy, backpropagating through every unit and every frame (AdamW, the head at 10x the stack's rate). Before
each evaluation the BatchNorm's statistics are set from 256 train clips' current features ("precise BN"). The same
train and test clips as ``eval.linear_probe --n-train/--n-test`` (data seed 0); a stratified tenth of train picks
the epoch. Prints one table (test top-1 at the epoch best on validation, beside the random-init probe of the same
clips, frames/s) and writes ``--json``. The figure is what labels buy the same network at this size of labelled
set: the reference that margins over random init are read against, not a method of the library.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prednet2.interrupt import quiet_loading, run_cli

with quiet_loading(__name__):  # a Ctrl-C while these load: one line and exit 130, no traceback
    import numpy as np
    import torch
    import torch.nn.functional as F
    from prednet2.eval.common import progress, set_threads, write_json
    from study import TASKS, StudyError, main_guard
    from tables import markdown_table
    from torch import nn

    from prednet2.cli import OneLineParser, int_at_least, out_file

HEAD_LR = 10.0  # the head's rate as a multiple of --lr: a linear layer on standardised features takes larger steps
RECALIBRATE = 256  # train clips whose features set the BatchNorm statistics before each evaluation
SYNTHETIC = [t for t, (spec, _) in TASKS.items() if spec.startswith("synthetic:")]


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/ceiling.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="direction,kind", help=f"synthetic probe tasks (default direction,kind; "
                   f"known: {', '.join(SYNTHETIC)})")  # fmt: skip
    p.add_argument("--set", action="append", default=[], dest="sets", help="config override (train.py's --set)")
    p.add_argument("--n-train", type=int, default=1024, help="labelled train clips (default 1024, the peers probe)")
    p.add_argument("--n-test", type=int, default=512, help="test clips (default 512)")
    p.add_argument("--clip-len", type=int, help="frames per clip (default: the config's data.clip_len)")
    p.add_argument("--epochs", type=int, default=8, help="passes over train (default 8)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per step (default 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="the stack's AdamW rate; the head's is 10x (default 1e-3)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="init and shuffling seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", type=out_file, help="write the figures here")
    return p


def check_args(a) -> list[str]:
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    bad = [t for t in tasks if t not in SYNTHETIC]
    if bad or not tasks:
        raise StudyError(f"--tasks: {bad or a.tasks!r} not among the synthetic tasks {', '.join(SYNTHETIC)}")
    for name, lo in [("n_train", 10), ("n_test", 1), ("epochs", 1), ("batch_size", 2), ("threads", 1)]:
        if getattr(a, name) < lo:
            raise StudyError(f"--{name.replace('_', '-')} {getattr(a, name)}: need at least {lo}")
    if a.clip_len is not None and a.clip_len < 2:
        raise StudyError(f"--clip-len {a.clip_len}: need at least 2 frames")
    if not a.lr > 0:
        raise StudyError(f"--lr {a.lr}: must be > 0")
    return tasks


def load_config(sets: list[str]):
    from prednet2.config import Config, ConfigError
    from prednet2.train_data import resolve_config

    try:  # resolved as train.py resolves it: motion on gives the motion stream its channels
        return resolve_config(Config.from_yaml(None, sets=list(sets)))
    except ConfigError as e:
        raise StudyError(f"--set: {e}") from None


def materialise(spec: str, cfg, split: str, n: int, clip_len: int | None):
    """(videos uint8 (N, T, C, H, W), masks (N, T, 1, H, W) or None, labels (N,)): the probe's clips, made once."""
    from prednet2.datasets import build_dataset

    over = {"n_synthetic": n, "n_synthetic_test": n} | ({"clip_len": clip_len} if clip_len else {})
    dcfg = dataclasses.replace(cfg.data, **over)
    motion = cfg.motion if cfg.model.motion_channels else None
    ds = build_dataset(spec, cfg=dcfg, split=split, seed=0, motion=motion, labelled=True)
    items = [ds[i] for i in progress(range(len(ds)), f"{split} clips")]
    videos = torch.stack([torch.as_tensor(x["video"]) for x in items])
    masks = torch.stack([torch.as_tensor(x["mask"]) for x in items]) if motion is not None else None
    labels = torch.as_tensor([int(x["label"]) for x in items])
    return videos, masks, labels


def val_carve(labels: torch.Tensor, frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified (train_idx, val_idx): ``frac`` of each class (at least one) held out."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in labels.unique().tolist():
        idx = rng.permutation(np.flatnonzero(labels.numpy() == c))
        k = max(1, int(round(frac * len(idx))))
        va.extend(idx[:k])
        tr.extend(idx[k:])
    return torch.as_tensor(sorted(tr)), torch.as_tensor(sorted(va))


class Supervised(nn.Module):
    """The stack and a linear head on its readout (every layer concatenated, standardised by a BatchNorm without
    affine, which follows the features as the stack learns)."""

    def __init__(self, stack: nn.Module, n_features: int, n_classes: int):
        super().__init__()
        self.stack = stack
        self.norm = nn.BatchNorm1d(n_features, affine=False)
        self.head = nn.Linear(n_features, n_classes)

    def features(self, video: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        from prednet2.readout import readout_features

        x = video.float() / 255.0
        m = None if mask is None else mask.float()
        feats = readout_features(self.stack, x, m, detach_between=False)
        return torch.cat([feats[l] for l in sorted(feats)], dim=1)

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.head(self.norm(self.features(video, mask)))


def clips(data, b: torch.Tensor):
    """(videos, masks or None) of the clips ``b`` of ``data`` = (videos, masks or None, labels): a model's inputs."""
    videos, masks, _ = data
    return videos[b], None if masks is None else masks[b]


def features_of(model: Supervised, data, idx: torch.Tensor, batch: int) -> torch.Tensor:
    """(len(idx), F): the current readout of clips ``idx``, ``batch`` at a time, without gradients."""
    with torch.no_grad():
        return torch.cat([model.features(*clips(data, b)) for b in idx.split(batch)])


def random_init_probe(model: Supervised, train, test, tr_idx: torch.Tensor, va_idx: torch.Tensor, batch: int):
    """The reference row: ``eval.probe``'s standardiser and L2 logistic regression (C picked on the validation tenth,
    fitted on the carved train part) on the frozen random-init features of these clips. Returns (C, test top-1)."""
    from prednet2.eval.probe import DEFAULT_CS, Standardiser, accuracy, fit_logreg

    x = features_of(model, train, torch.arange(len(train[2])), batch).numpy()
    xte = features_of(model, test, torch.arange(len(test[2])), batch).numpy()
    y = train[2].numpy()
    std = Standardiser.fit(x[tr_idx])
    xt, xv = std(x[tr_idx]), std(x[va_idx])
    best = max(DEFAULT_CS, key=lambda c: (accuracy(fit_logreg(xt, y[tr_idx], c)[0], xv, y[va_idx]), -c))
    clf, _ = fit_logreg(xt, y[tr_idx], best)
    return best, 100.0 * accuracy(clf, std(xte), test[2].numpy())


def recalibrate(model: Supervised, data, idx: torch.Tensor, batch: int) -> None:
    """Set the BatchNorm's running statistics to the current features of clips ``idx`` ("precise BN"): the features
    of a stack in training change scale by orders of magnitude between steps, so the running averages lag behind
    and eval would read the features mis-scaled (measured: 100% on a batch in training mode, 25% in eval). Called
    before every evaluation, so the running averages kept in training mode are never read."""
    x = features_of(model, data, idx, batch)
    model.norm.running_mean.copy_(x.mean(0))
    model.norm.running_var.copy_(x.var(0, unbiased=False))


def top1(model: Supervised, data, idx: torch.Tensor, batch: int) -> float:
    model.eval()
    with torch.no_grad():
        right = sum(int((model(*clips(data, b)).argmax(1) == data[2][b]).sum()) for b in idx.split(batch))
    return 100.0 * right / max(1, len(idx))


def run_task(task: str, cfg, a) -> dict:
    from prednet2 import build_model

    spec = TASKS[task][0]
    train = materialise(spec, cfg, "train", a.n_train, a.clip_len)
    test = materialise(spec, cfg, "test", a.n_test, a.clip_len)
    n_classes = int(max(train[2].max(), test[2].max())) + 1
    torch.manual_seed(a.seed)
    stack = build_model(cfg)
    with torch.no_grad():
        n_feat = Supervised(stack, 1, 1).features(*clips(train, torch.arange(2))).shape[1]
    model = Supervised(stack, n_feat, n_classes)
    tr_idx, va_idx = val_carve(train[2], 0.1, a.seed)
    c, probe_test = random_init_probe(model, train, test, tr_idx, va_idx, 64)
    print(f"[{task}] the random-init probe on these clips (C={c:g}): test {probe_test:.1f}", flush=True)
    every_test = torch.arange(len(test[2]))
    history = []
    groups = [{"params": list(model.stack.parameters()), "lr": a.lr},
              {"params": list(model.head.parameters()), "lr": a.lr * HEAD_LR}]  # fmt: skip
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(a.seed)
    T = train[0].shape[1]
    frames, spent = 0, 0.0
    for epoch in range(1, a.epochs + 1):
        model.train()
        order = tr_idx[torch.randperm(len(tr_idx), generator=gen)]
        t0, losses, right, seen = time.perf_counter(), [], 0, 0
        for s in progress(range(0, len(order), a.batch_size), f"{task} epoch {epoch}/{a.epochs}"):
            b = order[s : s + a.batch_size]
            if len(b) < 2:  # a BatchNorm step needs two clips
                continue
            logits = model(*clips(train, b))
            loss = F.cross_entropy(logits, train[2][b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            right, seen = right + int((logits.argmax(1) == train[2][b]).sum()), seen + len(b)
            frames += len(b) * T
        spent += time.perf_counter() - t0
        recalibrate(model, train, tr_idx[torch.randperm(len(tr_idx), generator=gen)[:RECALIBRATE]], 64)
        # train top-1 over the epoch's own batches (in training mode, as they were seen): a second pass would cost
        # as much as the epoch's forward
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "train": 100.0 * right / max(1, seen),
               "val": top1(model, train, va_idx, 64), "test": top1(model, test, every_test, 64)}  # fmt: skip
        history.append(row)
        print(f"[{task}] epoch {epoch}: loss {row['loss']:.3f}  train {row['train']:.1f}  val {row['val']:.1f}  "
              f"test {row['test']:.1f}", flush=True)  # fmt: skip
    best = max(history, key=lambda r: (r["val"], -r["epoch"]))  # the earliest of equal validation scores
    return {"task": task, "n_train": len(tr_idx), "n_val": len(va_idx), "n_test": len(test[2]), "classes": n_classes,
            "features": n_feat, "probe_c": c, "start_test": probe_test, "best_epoch": best["epoch"],
            "test": best["test"], "train": best["train"], "val": best["val"], "last_test": history[-1]["test"],
            "frames_per_s": frames / max(spent, 1e-9), "history": history}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    return main_guard(lambda: _main(a), resumes=False)


def _main(a) -> int:
    tasks = check_args(a)
    cfg = load_config(a.sets)
    set_threads(a.threads)
    rows = [run_task(t, cfg, a) for t in tasks]
    head = ["task", "train / val / test clips", "random-init probe", "best epoch", "test top-1",
            "train top-1", "last epoch's test", "frames/s"]  # fmt: skip
    body = [[r["task"], f"{r['n_train']} / {r['n_val']} / {r['n_test']}", f"{r['start_test']:.1f}",
             f"{r['best_epoch']} of {a.epochs}", f"{r['test']:.1f}", f"{r['train']:.1f}", f"{r['last_test']:.1f}",
             f"{r['frames_per_s']:.0f}"] for r in rows]  # fmt: skip
    print(markdown_table(head, body))
    if a.json:
        write_json(a.json, {"sets": a.sets, "epochs": a.epochs, "lr": a.lr, "batch_size": a.batch_size,
                            "seed": a.seed, "tasks": rows})  # fmt: skip
        print(f"json: {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
