"""prednet2.busy: the note advising one thread on a busy machine, and where the tools print it."""

from __future__ import annotations

import argparse

import pytest

from prednet2 import busy
from prednet2.busy import busy_note


@pytest.mark.parametrize(
    "threads, load, cores, env, says",
    [
        (2, 1.2, 2, {}, True),  # one other job on 2 cores, torch's 2 threads beside it
        (16, 1.0, 16, {}, True),  # one more thread than the cores left free
        (2, 0.3, 2, {}, False),  # idle
        (2, 1.2, 8, {}, False),  # room for both
        (1, 4.0, 2, {}, False),  # one thread already
        (2, 1.2, 2, {"OMP_NUM_THREADS": "2"}, False),  # the user chose
        (2, 1.2, 2, {"PYTEST_CURRENT_TEST": "t"}, False),  # pytest's own load: no note in every test's output
    ],
)
def test_the_note_appears_only_where_threads_would_fight_other_work(threads, load, cores, env, says):
    note = busy_note(threads, "--set train.threads=1", load=load, cores=cores, others=1, env=env)
    assert (note is not None) == says
    if says:
        assert note.startswith("note: this machine is busy (load ") and f"on {cores} cores" in note
        assert f"torch will run {threads} threads" in note and "--set train.threads=1 (or OMP_NUM_THREADS=1)" in note
        assert "\n" not in note


def test_a_load_that_lags_behind_ones_own_last_command_is_no_busy_machine():
    # the 1-minute load stays high for a minute after the user's own last command; nothing else runs now
    assert busy_note(2, "--threads 1", load=1.2, cores=2, others=0, env={}) is None
    assert busy_note(2, "--threads 1", load=1.2, cores=2, others=None, env={}) is not None  # the OS does not say


def test_others_running_reads_the_runnable_count_without_this_process(monkeypatch, tmp_path):
    f = tmp_path / "loadavg"
    f.write_text("1.20 0.90 0.50 3/187 4242\n")
    monkeypatch.setattr(busy, "Path", lambda _: f)
    assert busy.others_running() == 2
    f.write_text("garbled\n")
    assert busy.others_running() is None


def test_an_eval_tool_prints_it_at_torchs_default_threads_on_the_cpu_only(monkeypatch, capsys):
    from eval import common

    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.getloadavg", lambda: (4.0, 4.0, 4.0))
    monkeypatch.setattr(busy, "usable_cores", lambda: 2)
    monkeypatch.setattr(busy, "others_running", lambda: 1)
    monkeypatch.setattr(common.torch, "get_num_threads", lambda: 2)
    common.apply_runtime(argparse.Namespace(threads=0, no_progress=True, device="cpu"))
    assert "--threads 1 (or OMP_NUM_THREADS=1) avoids that" in capsys.readouterr().err
    common.apply_runtime(argparse.Namespace(threads=0, no_progress=True, device="cuda"))  # the GPU does the work
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(common, "set_threads", lambda n: None)  # --threads 1: the user chose, nothing said
    common.apply_runtime(argparse.Namespace(threads=1, no_progress=True, device="cpu"))
    assert capsys.readouterr().err == ""
