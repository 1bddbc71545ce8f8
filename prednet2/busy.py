"""A one-line note when torch would run several CPU threads on a machine that other work already keeps busy.

OpenMP's threads wait on each other, and beside another process on the same cores they can slow a run tens of
times: on 2 cores beside one other training run, `train.py` at torch's default 2 threads made 3 frames/s against
120-160 with one thread (session 45's docs walk). Standard library only; the callers print the note.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def others_running() -> int | None:
    """Tasks runnable right now besides this one (``/proc/loadavg``'s fourth field, ``running/total``), or None where
    the OS does not say. The 1-minute load lags: it stays high for a minute after one's own last command ended."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - 1)


def busy_note(threads: int, fix: str, *, load: float | None = None, cores: int | None = None,
              others: int | None = -1, env: Mapping[str, str] | None = None) -> str | None:  # fmt: skip
    """The note for ``threads`` torch threads, naming ``fix`` (e.g. ``--set train.threads=1``); None when there is
    nothing to say: one thread, OMP_NUM_THREADS set by the user, an idle machine (1-minute load below 0.9, or the
    threads fit beside it, or no other task runnable now where the OS says: ``others``, read by ``others_running``
    unless given), or under pytest (its own load would print the note in every test's output)."""
    env = os.environ if env is None else env
    if threads <= 1 or env.get("OMP_NUM_THREADS") or env.get("PYTEST_CURRENT_TEST"):
        return None
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this OS: say nothing
            return None
    cores = usable_cores() if cores is None else cores
    others = others_running() if others == -1 else others
    if load < 0.9 or load + threads <= cores + 0.5 or others == 0:
        return None
    busy = f"note: this machine is busy (load {load:.1f} on {cores} cores) and torch will run {threads} threads"
    return f"{busy}, which beside other work can slow this many times over; {fix} (or OMP_NUM_THREADS=1) avoids that"
