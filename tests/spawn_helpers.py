"""Two (or more) gloo processes for a test: a free port, the Python stack on a fatal signal, one retry after one.

A worker that raises fails the test at once (``ProcessRaisedException``), and so does any wrong figure it writes.
Only a process killed by a signal with no Python error is retried, once: CI saw one SIGABRT ("terminate called
without an active exception", from C++ code, not ours) in ~40 sessions of these tests, and 54 stress runs of the
same test did not repeat it. ``faulthandler`` prints where each process was when a signal kills it, so a
repeat shows its stack in the test's captured stderr.
"""

from __future__ import annotations

import faulthandler
import socket
import warnings
from pathlib import Path

import torch.multiprocessing as mp
from torch.multiprocessing import ProcessExitedException


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _traced(rank: int, worker, *args) -> None:
    faulthandler.enable(all_threads=True)
    worker(rank, *args)


def spawn_workers(worker, *args, nprocs: int = 2, outputs: tuple[str, ...] = ()) -> None:
    """Run ``worker(rank, nprocs, port, *args)`` on ``nprocs`` spawned processes, a fresh port per try.

    ``outputs``: files the workers write (or append to), removed before each try, so a retry starts from nothing.
    """
    for attempt in (1, 2):
        for path in outputs:
            Path(path).unlink(missing_ok=True)
        try:
            mp.start_processes(
                _traced, args=(worker, nprocs, free_port(), *args), nprocs=nprocs, join=True, start_method="spawn"
            )
            return
        except ProcessExitedException as e:
            if attempt == 2 or not e.signal_name:
                raise
            warnings.warn(
                f"process {e.error_index} died by {e.signal_name} with no Python error; retrying once", stacklevel=2
            )
