"""prednet2.envcheck: a python without prednet2's dependencies gets one line saying which python to use."""

import subprocess
import sys
from pathlib import Path

import pytest

from prednet2.envcheck import require_installed


@pytest.mark.parametrize("argv", [["train.py", "--data", "synthetic:shapes", "--out", "x"],
                                  ["-m", "eval.linear_probe", "--help"], ["-m", "datasets.inspect", "x"],
                                  ["-m", "prednet2.stream", "x.mp4", "--checkpoint", "y"]])  # fmt: skip
def test_a_python_without_prednet2s_dependencies_is_told_which_to_use(argv):
    """`python train.py` with a python outside .venv (here: without site-packages) finds the sources in the repository
    root but not torch: one line naming the python and .venv, exit 2, not a ModuleNotFoundError traceback."""
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-S", *argv], cwd=root, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    [line] = p.stderr.strip().splitlines()
    tool = "train.py" if argv[0] == "train.py" else f"python -m {argv[1]}"
    assert line.startswith(f"{tool}: error: {sys.executable} has no torch") and ".venv/bin/python" in line
    require_installed()  # this python has them: nothing happens
