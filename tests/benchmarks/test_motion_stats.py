"""benchmarks/motion_stats.py: the table's keys, the data keys reaching the sources, and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import motion_stats  # noqa: E402
from prednet2.datasets.flow import make_flow  # noqa: E402


def test_a_still_clip_does_not_move_and_a_shift_moves_by_its_step():
    rng = np.random.default_rng(0)
    tex = (rng.random((40, 40)) * 255).astype(np.uint8)
    tex = np.kron(tex, np.ones((4, 4), dtype=np.uint8))  # blobs the flow can track
    still = np.repeat(tex[None, 40:104, 40:104, None], 4, axis=0)
    assert motion_stats.clip_speeds(still, make_flow("dis")).max() < 0.3
    shift = np.stack([tex[40:104, 40 + 2 * t : 104 + 2 * t, None] for t in range(4)])  # 2 px/frame
    assert abs(np.median(motion_stats.clip_speeds(shift, make_flow("dis"))) - 2.0) < 0.5


def test_table_keys_and_the_speed_key_reaching_the_source(tmp_path, capsys):
    out = tmp_path / "m.json"
    still_bg = ["--set", "data.synthetic_pan=0.0"]
    assert motion_stats.main(["synthetic:shapes", "--clips", "3", "--json", str(out), *still_bg]) == 0
    base = json.loads(out.read_text())
    assert motion_stats.main(["synthetic:shapes", "--clips", "3", "--json", str(out), *still_bg,
                              "--set", "data.synthetic_speed=[0.5,0.5]"]) == 0  # fmt: skip
    slow = json.loads(out.read_text())
    row = base["results"][0]
    assert set(row) == {"source", "clips", "moving_share", "p25", "p50", "p75", "p90"} and row["clips"] == 3
    assert 0 < row["moving_share"] < 1 and row["p25"] <= row["p50"] <= row["p75"] <= row["p90"]
    assert slow["results"][0]["p50"] < 0.8 * row["p50"]  # half the object speed, no pan: slower motion
    assert "synthetic:shapes" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["/no/such/folder"], "no such folder; SOURCE takes a folder"),  # a positional: not train.py's --data
        ([__file__], "file, not a folder; SOURCE takes a folder"),
        (["--set", "model.cell=lstm"], "data keys only"),
        (["--set", "data.synthetic_speed=[2,1]"], "not a [low, high] range"),
        (["--clips", "0"], "--clips >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, expect, capsys):
    try:
        rc = motion_stats.main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert expect in err and "--data" not in err
