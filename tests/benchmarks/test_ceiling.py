"""benchmarks/ceiling.py: a one-epoch supervised run end to end (table, JSON keys) and its bad options."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ceiling  # noqa: E402

TINY = ["--set", "motion=off", "--set", "model.channels=[4,8]", "--clip-len", "4", "--n-train", "24",
        "--n-test", "8", "--batch-size", "8"]  # fmt: skip


def test_one_epoch_run(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert ceiling.main(["--tasks", "direction", "--epochs", "2", "--json", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "| direction | 16 / 8 / 8 | " in text  # a stratified tenth, at least one clip per class, held out
    assert "the random-init probe on these clips (C=" in text
    got = json.loads(out.read_text())
    row = got["tasks"][0]
    assert row["task"] == "direction" and row["classes"] == 8 and row["best_epoch"] in (1, 2)
    assert [h["epoch"] for h in row["history"]] == [1, 2] and row["history"][0]["loss"] > 0
    assert {"loss", "train", "val", "test"} <= row["history"][1].keys()
    assert 0 <= row["test"] <= 100 and 0 <= row["start_test"] <= 100 and row["probe_c"] > 0
    # the figure is the test top-1 of the epoch best on validation
    assert row["test"] == next(h["test"] for h in row["history"] if h["epoch"] == row["best_epoch"])
    # the readout with two time bins and the whole clip: 3 means of a, r, da over 4 + 8 channels
    assert row["features"] == 3 * 3 * (4 + 8)


def test_eval_reads_the_features_on_their_current_scale():
    """After recalibration the BatchNorm in eval mode gives the training-mode logits of the same batch (it did not:
    running averages lagged the stack by orders of magnitude, and eval read chance)."""
    import torch

    from prednet2 import build_model

    cfg = ceiling.load_config(["motion=off", "model.channels=[4,8]"])
    torch.manual_seed(0)
    video = torch.randint(0, 255, (6, 4, 3, 64, 64), dtype=torch.uint8)
    model = ceiling.Supervised(build_model(cfg), 3 * 3 * 12, 8)
    with torch.no_grad():
        model.stack.units[0].enc.conv.weight.mul_(0.01)  # features at another scale than the defaults (0, 1)
        model.train()
        train_logits = model(video, None)
        ceiling.recalibrate(model, (video, None, None), torch.arange(6), 6)
        model.eval()
        assert torch.allclose(model(video, None), train_logits, atol=1e-4)


def test_bad_options_exit_2(capsys):
    for argv, expect in [
        (["--tasks", "basketball"], "--tasks: ['basketball'] not among the synthetic tasks"),
        (["--tasks", "direction", "--epochs", "0"], "--epochs 0: need at least 1"),
        (["--tasks", "direction", "--clip-len", "1"], "--clip-len 1: need at least 2 frames"),
        (["--tasks", "direction", "--lr", "0"], "--lr 0.0: must be > 0"),
        (["--tasks", "direction", "--set", "model.nokey=1"], "--set: unknown config key 'model.nokey'"),
    ]:
        assert ceiling.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expect in err and len(err.strip().splitlines()) == 1, (argv, err)
