"""Train a prednet2 stack on a video folder or a synthetic set.

    prednet2 train --data DATA --out RUN ...     (the same as python train.py ...)
    python train.py --data DATA --out RUN [--config YAML] [--set key=value ...] [--steps N]
                    [--device auto|cpu|cuda] [--resume]

DATA is a folder of videos (searched recursively) or ``synthetic:NAME``. ``--steps`` is the TOTAL step count, so
``--resume --steps 30`` after a 20-step run trains 10 more. See docs/training.md.

Exit status: 0 done; 2 bad option, path, config or checkpoint (one line on stderr); 1 the loss became
non-finite; 130/143 stopped by SIGINT/SIGTERM after saving RUN/checkpoints/last.pt.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import NoReturn

from prednet2.cli import OneLineParser, int_at_least, prog_name, user_path

PROG = "train.py"


def _exit(prog: str, msg: str, code: int = 2) -> NoReturn:
    """One line ``PROG: error: MSG`` on stderr, then exit with ``code`` (2: bad input)."""
    print(f"{prog}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def parse_args(argv: list[str] | None, prog: str = PROG) -> argparse.Namespace:
    p = OneLineParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True,
                   help="folder of videos, or synthetic:shapes / synthetic:moving_mnist; join several with + "
                   "(synthetic:shapes+videos/) to train on an equal share of each, or N shares with SPEC*N "
                   "(synthetic:shapes*3+videos/)")  # fmt: skip
    p.add_argument("--out", type=user_path, help="run folder: config.yaml, checkpoints/, tb/, summary.json (required)")
    p.add_argument(
        "--config", type=user_path, help="YAML config (sections model, data, motion, train); configs/tiny.yaml is one"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="sets",
        help="override a config field by dotted name, e.g. train.lr=1e-3 or motion=off (repeatable)",
    )
    p.add_argument("--steps", type=int_at_least(1), help="total number of training steps (overrides train.steps)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides train.device (default auto)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--prepare", action="store_true",
                   help="build the training data and fill its caches (decoded frames, motion masks, flow), then exit "
                   "without training: the run after it, or a timed comparison, starts on a warm cache")  # fmt: skip
    a = p.parse_args(argv)
    if a.out is None and not a.prepare:
        p.error("the following arguments are required: --out")
    return a


def main(argv: list[str] | None = None) -> int:
    """``train.py`` and ``prednet2 train`` (``prog_name`` names the command in messages). Returns the exit status."""
    prog = prog_name(PROG)
    args = parse_args(argv, prog)

    _fail = functools.partial(_exit, prog)
    _check_data(args.data, _fail)
    if args.resume and args.config:
        _fail("--config cannot be combined with --resume: the run continues with its own config (use --set)")
    if args.prepare and args.resume:
        _fail("--prepare cannot be combined with --resume: --prepare trains nothing (give it --data and a config)")

    # Imported after parsing so --help and bad options answer at once.
    from prednet2.checkpoint import CheckpointError
    from prednet2.config import Config, ConfigError
    from prednet2.datasets import DataError
    from prednet2.train_data import prepare_train_data
    from prednet2.train_state import SecondInterrupt
    from prednet2.trainer import NonFiniteLossError, RunFolderError, TrainingInterrupted, config_for_resume, train

    sets = list(args.sets)
    set_steps = [s for s in sets if s.partition("=")[0].strip() == "train.steps"]
    if args.steps is not None and set_steps:  # two step counts: refuse rather than silently keep one
        _fail(f"--steps {args.steps} and --set {set_steps[-1]} both give the step count; give only one")
    if args.steps is not None:
        sets.append(f"train.steps={args.steps}")
    if args.device is not None:
        sets.append(f"train.device={args.device}")
    try:
        cfg = config_for_resume(args.out, sets) if args.resume else Config.from_yaml(args.config, sets)
        if args.prepare:
            got = prepare_train_data(cfg, args.data, progress=not args.no_progress)
        else:
            summary = train(cfg, args.data, args.out, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, DataError, CheckpointError, RunFolderError) as e:
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    except NonFiniteLossError as e:
        _fail(str(e), code=1)
    except TrainingInterrupted as e:
        print(f"{prog}: {e}; continue with --resume", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # the loop turns a first SIGINT into a checkpoint; this one came before or twice
        if isinstance(e, SecondInterrupt):
            print(f"{prog}: aborted (second interrupt) without saving", file=sys.stderr)
        else:
            print(f"{prog}: interrupted before training started; nothing to save", file=sys.stderr)
        return 130
    if args.prepare:
        motion = f"motion: {got['computed']} newly computed, the rest from the cache" if got["motion"] else "motion off"
        print(f"{prog}: prepared {args.data}: {got['clips']} clips ({motion}); nothing trained")
        return 0
    from prednet2.distributed import is_main_process

    if not is_main_process():  # torchrun: rank 0 reports for the whole run
        return 0
    run = Path(args.out)
    losses = ", ".join(f"{l}: {v:.4g}" for l, v in summary["final_loss"].items())
    print(
        f"done: {summary['steps']} steps, {summary['frames_per_s']:.0f} frames/s, final loss per layer {{{losses}}}\n"
        f"summary:     {run / 'summary.json'}\n"
        f"checkpoint:  {run / 'checkpoints' / 'last.pt'}\n"
        f"TensorBoard: {tensorboard_command()} --logdir {run / 'tb'}"
    )
    return 0


def tensorboard_command() -> str:
    """How to start TensorBoard from this environment: the executable beside this Python (a venv's, which a shell
    without the venv active does not find by name), else the bare name."""
    exe = Path(sys.executable).parent / "tensorboard"
    return str(exe) if exe.is_file() else "tensorboard"


if __name__ == "__main__":
    sys.exit(main())


def _check_data(spec: str, fail) -> None:
    """Exit 2 naming the bad part when ``--data`` is no training data (datasets.check_spec), before any import of the
    trainer."""
    from prednet2.datasets import DataError, check_spec

    try:
        check_spec(spec)
    except DataError as e:
        fail(f"--data {e}")
