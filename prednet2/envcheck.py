"""Whether this Python can run prednet2's tools: one line naming the fix instead of a ModuleNotFoundError.

Standard library only, and no prednet2 import: the entry points (``train.py``, ``python -m eval.TOOL``,
``python -m datasets.inspect``, ``python -m prednet2.stream``) call it before anything else is loaded.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def require_installed() -> None:
    """Exit 2 with one line when this Python cannot run prednet2 (``python train.py`` with a python outside
    ``.venv``: from the repository's root ``import prednet2`` finds the sources, and the first tool import failed
    with a traceback). Cheap: it finds the modules without importing them."""
    import importlib.util

    for name in ("torch", "prednet2.datasets"):  # the dependencies; the installed package (datasets/ is mapped in)
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            argv = getattr(sys, "orig_argv", sys.argv)
            tool = f"python -m {argv[argv.index('-m') + 1]}" if "-m" in argv[:-1] else Path(sys.argv[0]).name
            fix = "prednet2 and its dependencies are installed in .venv (make install); run .venv/bin/python"
            print(f"{tool}: error: {sys.executable} has no {name}: {fix}, or `source .venv/bin/activate` first",
                  file=sys.stderr)  # fmt: skip
            raise SystemExit(2)


@contextmanager
def tool_loading(*preload: str) -> Iterator[None]:
    """Around a package's imports (``prednet2``, ``eval``, ``datasets``): under ``python -m PACKAGE.TOOL``, check this
    Python (``require_installed``), import ``preload`` (the heavy libraries) and the block, and turn a Ctrl-C while
    they load into one line and exit 130. Imported as a library, the block runs as is and an interrupt goes on to the
    caller's own guard."""
    if sys.argv[:1] != ["-m"]:
        yield
        return
    require_installed()
    try:
        for name in preload:
            importlib.import_module(name)
        yield
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C) while loading", file=sys.stderr)
        raise SystemExit(130) from None  # 128 + SIGINT, as prednet2.interrupt.run_cli
