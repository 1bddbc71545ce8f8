"""eval.shots: exactly K per class, deterministic by seed, and a clear refusal when a class is too small."""

import json

import numpy as np
import pytest
from prednet2.eval.linear_probe import main as probe_main
from prednet2.eval.shots import FIXED_C, ShotsError, draw_shots, parse_shots, protocol_for, with_shots


def test_draws_exactly_k_per_class_and_is_deterministic():
    y = np.repeat(np.arange(4), [7, 5, 9, 6])
    for k in (1, 3, 5):
        idx = draw_shots(y, k, seed=0)
        assert np.array_equal(np.bincount(y[idx]), [k] * 4)
        assert len(np.unique(idx)) == len(idx)  # without replacement
        assert np.array_equal(idx, draw_shots(y, k, seed=0))
    assert not np.array_equal(draw_shots(y, 3, seed=0), draw_shots(y, 3, seed=1))


def test_refuses_k_above_the_smallest_class():
    y = np.repeat(np.arange(3), [8, 2, 6])
    with pytest.raises(ShotsError, match=r"--shots 3: the smallest class .* has only 2 .* use --shots 2"):
        draw_shots(y, 3, seed=0)


def test_parse_and_c_rule():
    assert parse_shots("all") is None and parse_shots(None) is None and parse_shots("5") == 5
    for bad in ("0", "x", "-1"):
        with pytest.raises(ShotsError):
            parse_shots(bad)
    assert protocol_for(1) == {"fixed_c": FIXED_C} and protocol_for(4) == {"fixed_c": FIXED_C}
    assert protocol_for(5) == {"cv_folds": 5} and protocol_for(None) == {}


def test_with_shots_keeps_test_whole():
    tr = {"0": np.arange(20, dtype=np.float32)[:, None]}
    y = np.repeat([0, 1], 10)
    te = {"0": np.zeros((6, 1), np.float32)}
    f = with_shots(lambda seed: (tr, y, te, np.zeros(6, int)), 2)
    a, ya, b, yb = f(3)
    assert a["0"].shape == (4, 1) and np.array_equal(np.bincount(ya), [2, 2])
    assert np.array_equal(a["0"][:, 0].astype(int), np.flatnonzero(np.isin(np.arange(20), a["0"][:, 0])))
    assert b is te and len(yb) == 6


def _probe(tiny_run, out, *extra):
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    argv = ["--checkpoint", ckpt, "--out", str(out), "--data", "synthetic:shapes:direction", "--n-train", "128",
            "--n-test", "24", "--seeds", "2", "--device", "cpu", "--baseline", "pixels", *extra]  # fmt: skip
    assert probe_main(argv) == 0
    return json.loads(out.read_text())


def test_cli_shots(tiny_run, tmp_path):
    one = _probe(tiny_run, tmp_path / "k1.json", "--shots", "1")
    assert one["shots"] == 1 and one["n_train"] == 8 and one["fixed_c"] == FIXED_C
    assert one["chosen_c"]["concat"] == [FIXED_C, FIXED_C] and one["val_top1"]["concat"] is None
    five = _probe(tiny_run, tmp_path / "k5.json", "--shots", "5")
    assert five["shots"] == 5 and five["n_train"] == 40 and five["fixed_c"] is None and five["cv_folds"] == 5
    assert all(v is not None for v in five["val_top1"].values())  # the cross-validated top-1
    full = _probe(tiny_run, tmp_path / "all.json", "--shots", "all")
    assert full["shots"] == "all" and full["n_train"] == 128
    assert "shots" not in _probe(tiny_run, tmp_path / "plain.json")


def test_cli_refuses_too_many_shots(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _probe(tiny_run, tmp_path / "k.json", "--shots", "50")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    # 128 train clips cannot hold 50 of each of 8 classes: refused from the sizes, before extracting
    assert len(err.splitlines()) == 1 and "--shots 50: --n-train 128 gives fewer than 50 train clips per class" in err
    with pytest.raises(SystemExit) as e:  # enough clips in all, too few in the smallest class: refused after drawing
        _probe(tiny_run, tmp_path / "k.json", "--shots", "15")
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "--shots 15" in err and "smallest class" in err


def test_cli_refuses_val_frac_with_shots(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # K shots fix C or cross-validate it: no validation carve to size
        _probe(tiny_run, tmp_path / "k.json", "--shots", "5", "--val-frac", "0.3")
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "--val-frac 0.3 with --shots 5" in err


def test_folder_refuses_too_many_shots_before_extracting(tiny_run, labelled_videos, tmp_path, capsys):
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    with pytest.raises(SystemExit) as e:  # 4 videos per class, 20% to test: 3 per class in train
        probe_main(["--checkpoint", ckpt, "--data", str(labelled_videos), "--shots", "4", "--device", "cpu",
                    "--out", str(tmp_path / "k.json"), "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert e.value.code == 2 and "has only 3 labelled videos; use --shots 3" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # refused before any feature was extracted
