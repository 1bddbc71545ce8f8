"""tests/spawn_helpers.py: a signal death is retried once, a Python error never, a second signal death fails."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from spawn_helpers import spawn_workers
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException


def _abort_first_try(rank: int, world: int, port: int, marker: str) -> None:
    """Rank 1 aborts the first time it runs (no marker yet); every later try succeeds."""
    if rank == 1 and not os.path.exists(marker):
        Path(marker).write_text("aborted once")
        os.kill(os.getpid(), signal.SIGABRT)


def _abort_first_try_logged(rank: int, world: int, port: int, marker: str, log: str) -> None:
    with open(log, "a") as f:
        f.write(f"{rank}\n")
    _abort_first_try(rank, world, port, marker)


def _always_abort(rank: int, world: int, port: int, log: str) -> None:
    with open(log, "a") as f:
        f.write(f"{rank}\n")
    if rank == 1:
        os.kill(os.getpid(), signal.SIGABRT)


def _raise(rank: int, world: int, port: int, log: str) -> None:
    with open(log, "a") as f:
        f.write(f"{rank}\n")
    if rank == 1:
        raise RuntimeError("a bug in the worker")


def test_one_signal_death_is_retried_with_a_warning(tmp_path):
    marker = str(tmp_path / "marker")
    with pytest.warns(UserWarning, match="process 1 died by SIGABRT with no Python error; retrying once"):
        spawn_workers(_abort_first_try, marker)
    assert Path(marker).exists()


def test_a_second_signal_death_fails(tmp_path):
    log = tmp_path / "log"
    with pytest.warns(UserWarning), pytest.raises(ProcessExitedException, match="SIGABRT"):
        spawn_workers(_always_abort, str(log))
    assert log.read_text().split().count("1") == 2  # tried twice, no more


def test_outputs_are_removed_before_each_try(tmp_path):
    """A retry starts from an empty log: the first try's lines are gone."""
    log, marker = tmp_path / "log", str(tmp_path / "marker")
    with pytest.warns(UserWarning):
        spawn_workers(_abort_first_try_logged, marker, str(log), outputs=(str(log),))
    assert sorted(log.read_text().split()) == ["0", "1"]


def test_a_python_error_is_never_retried(tmp_path):
    log = tmp_path / "log"
    with pytest.raises(ProcessRaisedException, match="a bug in the worker"):
        spawn_workers(_raise, str(log))
    assert log.read_text().split().count("1") == 1
