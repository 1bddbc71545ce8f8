"""benchmarks/derive.py: a run copied with another probe-time readout key; training keys refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import derive  # noqa: E402

from prednet2 import build_model  # noqa: E402
from prednet2.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from prednet2.config import Config  # noqa: E402


@pytest.fixture
def run(tmp_path) -> Path:
    cfg = Config.from_dict({"model": {"channels": [4, 8]}, "motion": {"enabled": False}})
    src = tmp_path / "src"
    save_checkpoint(src / "checkpoints" / "last.pt", model=build_model(cfg.model), optimizer=None, config=cfg, step=1)
    (src / "summary.json").write_text(json.dumps({"steps": 1}))
    return src


def test_every_readout_key_of_the_docstring_can_change(run, tmp_path):
    """The docstring's probe-time keys are the ones accepted (model.readout_reverse was listed but refused)."""
    for key in derive.PROBE_TIME:
        assert f"``{key}``" in derive.__doc__
    dst = tmp_path / "dst"
    sets = ["model.readout_reverse=true", "model.readout_warmup=2"]
    assert derive.main([str(run), str(dst), *sum([["--set", s] for s in sets], [])]) == 0
    model_cfg = load_checkpoint(dst / "checkpoints" / "last.pt")["config"]["model"]
    assert model_cfg["readout_reverse"] is True and model_cfg["readout_warmup"] == 2


def test_a_training_key_is_refused(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        derive.main([str(run), str(tmp_path / "dst"), "--set", "model.channels=[4,4]"])
    assert e.value.code == 2 and "can change without retraining" in capsys.readouterr().err
