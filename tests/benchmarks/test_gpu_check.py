"""Tests of benchmarks/gpu_check.sh's own logic (steps, log, deadline) with a stand-in for python: CI has no GPU."""

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _run(tmp_path, py: str, deadline: str) -> tuple[subprocess.CompletedProcess, str]:
    env = dict(os.environ, PY=py)
    res = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out"), deadline], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    return res, (tmp_path / "out" / "log.txt").read_text()


def test_every_step_runs_and_a_failed_step_does_not_stop_the_rest(tmp_path):
    res, log = _run(tmp_path, "false", "60")
    assert res.returncode == 0, res.stderr
    steps = re.findall(r"^== (\w+): rc=(\d+)", log, flags=re.M)
    names = [n for n, _ in steps]
    assert names[:3] == ["info", "build", "ext"] and names[-2:] == ["throughput", "suite"], names
    assert {"test_ops", "test_ops_errors", "bench_error_unit", "train_cuda", "probe_cuda"} <= set(names)
    assert all(rc != "0" for n, rc in steps if n != "info")  # `false` fails every python step, each is still run
    assert log.rstrip().endswith("== done")


def test_deadline_skips_the_steps_left(tmp_path):
    res, log = _run(tmp_path, "true", "5")  # under the 10 s a step needs: every step is skipped
    assert res.returncode == 0, res.stderr
    assert "rc=" not in log and log.count("SKIPPED (deadline)") >= 8
