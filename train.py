#!/usr/bin/env python
"""Train a prednet2 stack: ``python train.py --data DATA --out RUN ...``, the same as ``prednet2 train ...``.

The command lives in ``prednet2/train_cli.py`` (so the installed ``prednet2`` console script reaches it too);
``python train.py --help`` lists its options.
"""

import sys

try:
    from prednet2.envcheck import require_installed

    require_installed()  # a python outside .venv: one line saying which to use, not a ModuleNotFoundError
    from prednet2.interrupt import run_cli
    from prednet2.train_cli import main
except KeyboardInterrupt:  # Ctrl-C while torch loads: nothing has started, so no traceback, one line as elsewhere
    print("train.py: interrupted (Ctrl-C) while loading", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(run_cli(main))  # main loads torch while checking --data: a Ctrl-C there is one line too
