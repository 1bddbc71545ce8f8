"""Evaluation of frozen prednet2 features: linear probes, next-step prediction, surprise (prednet2.eval)."""

import sys

if sys.argv[:1] == ["-m"]:  # `python -m eval.TOOL`: load the heavy libraries here, where a Ctrl-C can end quietly
    from prednet2.envcheck import require_installed

    require_installed()
    try:
        import sklearn.linear_model  # noqa: F401
        import torch  # noqa: F401
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C) while loading", file=sys.stderr)
        raise SystemExit(130) from None
