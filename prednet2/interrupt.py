"""Ctrl-C in the command-line tools: a line and exit status 130, never a traceback; a stream stops and saves.

- ``run_cli(main)``: what each tool's ``if __name__ == "__main__"`` runs. A KeyboardInterrupt anywhere in ``main``
  (reading videos, extracting features, fitting) ends the tool with one line on stderr and exit status 130 (128 +
  SIGINT, the shell's convention). JSON results, feature caches and embeddings are written whole (temporary file
  and rename), so an interrupt leaves each either complete or absent; cached features are reused by the next call.
- ``quiet_loading(__name__)``: the same for a script's imports (``benchmarks/*.py`` load torch before ``main``).
- ``stop_on_sigint()``: for a loop that should end cleanly (``prednet2.stream``, where Ctrl-C is how a camera stream
  ends): the first Ctrl-C sets ``flag.stop`` and the loop finishes its frame, then saves; a second one aborts at once.
  ``train.py`` has its own handler (``prednet2.train_state``), which saves a checkpoint.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EXIT_INTERRUPTED = 130  # 128 + SIGINT


def run_cli(main: Callable[[], int | None], prog: str | None = None) -> int:
    """``main()``'s exit status; Ctrl-C is one line on stderr and 130 instead of a traceback."""
    try:
        return int(main() or 0)
    except KeyboardInterrupt:
        name = prog or _tool_name()
        print(f"{name}: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED


@contextmanager
def quiet_loading(module: str) -> Iterator[None]:
    """Around a script's imports: ``with quiet_loading(__name__): import torch ...``. Run as a script (``module`` is
    ``"__main__"``), a Ctrl-C while they load is one line and exit 130, as ``run_cli`` makes it once ``main`` runs;
    imported by another module (a test, another script), the interrupt goes on to the importer's own guard."""
    try:
        yield
    except KeyboardInterrupt:
        if module != "__main__":
            raise
        print(f"{_tool_name()}: interrupted (Ctrl-C) while loading", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None


def _tool_name() -> str:
    """``python -m eval.linear_probe`` for a module run with -m, else the script's file name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return f"python -m {spec.name}" if spec is not None and spec.name else Path(sys.argv[0]).name


@dataclass
class StopFlag:
    stop: bool = False


@contextmanager
def stop_on_sigint() -> Iterator[StopFlag]:
    """While inside, the first SIGINT sets ``flag.stop`` (the caller's loop checks it and ends cleanly) and a second
    raises KeyboardInterrupt at once. Outside the main thread, where signal handlers cannot be set, Ctrl-C keeps
    Python's behaviour and the flag is never set."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.stop:
            raise KeyboardInterrupt
        flag.stop = True
        print("\nCtrl-C: stopping after this frame and saving (Ctrl-C again aborts without saving)", file=sys.stderr)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)
