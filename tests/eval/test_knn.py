"""eval.knn: cosine k-NN recovers a planted signal, falls to chance on shuffled labels, and its CLI."""

import json

import numpy as np
import pytest
from prednet2.eval.knn import knn_one_set, knn_predict, knn_top1, main, parse_ks


def _planted(n, n_cls=4, dim=32, seed=0):
    """Class c shifts feature c by +3 over unit-variance noise; the other features are noise with large scale."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_cls)  # balanced, so chance is 1 / n_cls
    x = rng.normal(size=(n, dim)) * np.r_[np.ones(n_cls), 5 * np.ones(dim - n_cls)]
    x[np.arange(n), y] += 3.0
    return x.astype(np.float32), y


def test_recovers_a_planted_signal():
    xtr, ytr = _planted(400)
    xte, yte = _planted(200, seed=1)
    # Only features 0..3 carry the class; the other 28 are noise: standardised cosine k-NN must still find it.
    signal = {"0": xtr[:, :4]}
    assert knn_top1(signal["0"], ytr, xte[:, :4], yte, k=20) > 0.85
    assert knn_top1(xtr, ytr, xte, yte, k=20) > 0.4  # diluted but far above chance (0.25)


def test_shuffled_labels_fall_to_chance():
    xtr, ytr = _planted(400)
    xte, yte = _planted(400, seed=1)
    shuffled = np.random.default_rng(2).permutation(ytr)
    accs = [knn_top1(xtr[:, :4], shuffled, xte[:, :4], yte, k=k) for k in (1, 5, 20)]
    assert all(abs(a - 0.25) < 0.08 for a in accs), accs


def test_knn_predict_exact_neighbours_and_ties():
    bank = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    y = np.array([0, 1, 1])
    assert list(knn_predict(bank, y, np.array([[1.0, 0.05]]), k=1)) == [0]
    # k=2: one vote each; the tie goes to the larger summed similarity (class 0's [1, 0] beats class 1's [0.9, .1])
    assert list(knn_predict(bank[[0, 2]], np.array([0, 1]), np.array([[1.0, -0.2]]), k=2)) == [0]
    assert list(knn_predict(bank, y, np.array([[1.0, 0.0]]), k=10)) == [1]  # k capped at the bank: 2 vs 1


def test_one_set_picks_k_by_leave_one_out():
    xtr, ytr = _planted(200)
    xte, yte = _planted(100, seed=1)
    r = knn_one_set(xtr[:, :4], ytr, xte[:, :4], yte, np.arange(150), np.arange(150, 200), ks=(1, 20))
    # noisy classes: 20 neighbours vote better than 1 on the held-out rows, so leave-one-out must pick 20
    assert r.c == 20.0 and 0.7 < r.val_top1 <= 1 and r.test_top1 > 0.7
    # the carve is not used: another carve gives the same result
    assert knn_one_set(xtr[:, :4], ytr, xte[:, :4], yte, np.arange(50), np.arange(50, 200), ks=(1, 20)) == r


def test_leave_one_out_excludes_the_query_itself():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 8)), rng.integers(0, 3, 60)  # labels carry no signal
    assert np.mean(knn_predict(x, y, x, k=1) == y) == 1.0  # each row's nearest neighbour is itself
    assert np.mean(knn_predict(x, y, None, k=1) == y) < 0.6  # leave-one-out: near chance (1/3)
    # one item per class (one shot): nobody has a neighbour of its class, every k scores 0, the smallest k is kept
    r = knn_one_set(x[:3], np.arange(3), x[3:6], np.arange(3), np.arange(3), np.zeros(0, np.int64), ks=(1, 5))
    assert r.c == 1.0 and r.val_top1 == 0.0
    # a k past the bank is the whole bank: recorded as the k it acts as (here 59 of the other rows), not as asked
    assert knn_one_set(x, y, x, y, np.arange(60), np.zeros(0, np.int64), ks=(100,)).c == 59.0


def test_parse_ks():
    assert parse_ks("20,1,5") == [1, 5, 20]
    for bad in ("", "0", "a"):
        with pytest.raises(ValueError, match="--k"):
            parse_ks(bad)


def test_cli_writes_probe_like_json(tiny_run, tmp_path, capsys):
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    out = tmp_path / "knn.json"
    base = ["--checkpoint", ckpt, "--data", "synthetic:shapes:direction", "--n-train", "48", "--n-test", "24",
            "--seeds", "2", "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main([*base, "--out", str(out), "--k", "1,5"]) == 0
    r = json.loads(out.read_text())
    assert {"dataset", "top1", "top1_std", "per_layer", "n_train", "n_test", "n_classes", "seeds"} <= set(r)
    assert r["method"] == "knn" and r["ks"] == [1, 5] and set(r["chosen_k"]["concat"]) <= {1, 5}
    assert set(r["per_layer"]) == {"0", "1"} and r["n_train"] == 48 and r["variant"] == "trained"
    capsys.readouterr()
    # a k past the 48-video bank (47 others to vote) runs as 47: said in one warning line naming --k, not silently
    assert main([*base, "--out", str(out), "--k", "1,5,100,200"]) == 0
    warn = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warn) == 1 and warn[0].startswith("warning: --k 100,200: the memory bank holds 48 train videos")
    assert "k = 47 was used instead" in warn[0]
    assert set(json.loads(out.read_text())["chosen_k"]["concat"]) <= {1, 5, 47}
    with pytest.raises(SystemExit) as e:
        main([*base, "--out", str(tmp_path / "bad.json"), "--k", "0"])
    assert e.value.code == 2 and "--k" in capsys.readouterr().err
