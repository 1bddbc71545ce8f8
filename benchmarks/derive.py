"""Copy a trained run with a different probe readout, so a readout is compared on the same weights.

    python benchmarks/derive.py runs/study/default_s0 runs/study/default_da_s0 --set model.readout=a,r,da
    python benchmarks/peers.py --steps 600 --out runs/study --variant 'default_da=model.readout=a,r,da'

Only probe-time keys (``model.readout``, ``model.readout_bins``, ``model.readout_whole``, ``model.readout_trend``,
``model.readout_pool``, ``model.readout_warmup``, ``model.readout_reverse``) may change: they decide what
``extract_features`` pools, not what was trained. The new run folder gets the checkpoint (its config updated),
config.yaml and summary.json, so ``peers.py`` / ``curve.py`` treat it as trained and only probe it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from prednet2.interrupt import run_cli

PROBE_TIME = (
    "model.readout",
    "model.readout_bins",
    "model.readout_whole",
    "model.readout_trend",
    "model.readout_pool",
    "model.readout_warmup",
    "model.readout_reverse",
)


def derive(src: Path, dst: Path, sets: list[str]) -> Path:
    from prednet2.checkpoint import atomic_torch_save, load_checkpoint
    from prednet2.config import Config

    bad = [s for s in sets if s.split("=", 1)[0].strip() not in PROBE_TIME]
    if bad:
        raise ValueError(f"--set {bad[0]!r}: only {', '.join(PROBE_TIME)} can change without retraining")
    ckpt = load_checkpoint(src / "checkpoints" / "last.pt")
    cfg = Config.from_stored(ckpt["config"]).replace(sets)
    ckpt["config"] = cfg.to_dict()
    out = dst / "checkpoints" / "last.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(ckpt, out)
    (dst / "config.yaml").write_text(cfg.to_yaml({"derived_from": str(src), "derived_sets": sets}))
    shutil.copy2(src / "summary.json", dst / "summary.json")
    return out


def main(argv: list[str] | None = None) -> int:
    from prednet2.cli import OneLineParser

    p = OneLineParser(prog="benchmarks/derive.py", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="a finished run folder (checkpoints/last.pt, summary.json)")
    p.add_argument("dst", help="the new run folder")
    p.add_argument("--set", action="append", default=[], dest="sets", help="model.readout=... / model.readout_bins=N")
    args = p.parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    if not (src / "checkpoints" / "last.pt").is_file() or not (src / "summary.json").is_file():
        p.error(f"{src}: not a finished run folder (needs checkpoints/last.pt and summary.json)")
    if dst.exists():
        p.error(f"{dst} exists; pick a new folder")
    try:
        print(derive(src, dst, args.sets))
    except ValueError as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
