"""eval.surprise: scores and AUROC on constructed frame errors; plot and TensorBoard outputs."""

import numpy as np
import pytest
from prednet2.eval.surprise import auroc, frame_scores, per_kind_auroc, plot_curves, scored_frames, write_tensorboard


def constructed(n=60, L=2, T=8, seed=0):
    """Frame errors whose clips differ 10x in base level, with a spike on the anomalous frame of half the clips."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 1.0, size=(n, 1, 1))  # clip difficulty
    e = base * (1 + 0.1 * rng.standard_normal((n, L, T)))
    labels = np.zeros((n, T), dtype=bool)
    for i in range(0, n, 2):
        t = rng.integers(2, T)
        labels[i, t] = True
        e[i, :, t] *= 1.6  # the surprise: +60% over the clip's own level
    e[:, :, 0] = 0.0  # t = 0: nothing predicted (as the model reports it)
    return e, labels


def test_clip_relative_score_separates_a_spike():
    e, labels = constructed()
    s = frame_scores(e, scored_frames(len(e), e.shape[2], 1))
    assert set(s) == {"layer0", "layer1", "sum_z", "clip_rel"}
    assert np.isnan(s["clip_rel"][:, 0]).all()  # t = 0 is not scored
    # The spike is small next to the clip-to-clip spread, so raw errors rank poorly; the clip-relative score
    # removes each clip's level and ranks the anomalous frames first.
    assert auroc(s["clip_rel"], labels) > 0.97
    assert auroc(s["layer0"], labels) < auroc(s["clip_rel"], labels)


def test_auroc_of_constant_score_is_half_and_needs_both_classes():
    labels = np.array([[False, True, False, False]])
    assert auroc(np.ones((1, 4)), labels) == pytest.approx(0.5)
    assert np.isnan(auroc(np.ones((1, 4)), np.zeros((1, 4), bool)))
    assert auroc(np.array([[np.nan, 3.0, 1.0, 2.0]]), labels) == pytest.approx(1.0)  # NaN frames are ignored


def test_frame_scores_rejects_bad_shapes():
    with pytest.raises(ValueError, match="N, L, T"):
        frame_scores(np.zeros((3, 4)), np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="skip"):
        scored_frames(2, 3, skip=3)
    with pytest.raises(ValueError, match="scored"):
        frame_scores(np.zeros((2, 1, 3)), np.ones((2, 4), bool))


def test_scored_mask_excludes_frames_from_statistics():
    e, labels = constructed(n=20)
    keep = scored_frames(20, e.shape[2], 3)
    s = frame_scores(e, keep)
    assert np.isnan(s["sum_z"][:, :3]).all() and not np.isnan(s["sum_z"][:, 3:]).any()


def test_per_kind_auroc():
    # kinds 1 and 2 (teleport, reverse): kind 1's anomalies spike, kind 2's do not.
    score = np.zeros((4, 5))
    labels = np.zeros((4, 5), bool)
    kind = np.array([0, 1, 2, 0])
    labels[1, 3] = labels[2, 3] = True
    score[1, 3] = 5.0
    score[:, 1] = np.array([0.1, 0.2, 0.3, 0.4])  # some spread among normal frames
    r = per_kind_auroc(score, labels, kind)
    assert r["teleport"] == pytest.approx(1.0)
    assert r["reverse"] < 0.7


def test_png_and_tensorboard(tmp_path):
    e, labels = constructed(n=10)
    s = frame_scores(e, scored_frames(len(e), e.shape[2], 1))["clip_rel"]
    png = plot_curves(tmp_path / "s.png", s, labels, "clip_rel")
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    bare = plot_curves(tmp_path / "curve", s, labels, "clip_rel")  # no extension: written where asked, as PNG
    assert bare.read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "curve.png").exists()
    write_tensorboard(tmp_path / "tb", s, labels, {"auroc": 0.9, "per_layer_auroc": {"0": 0.8}})
    assert list((tmp_path / "tb").glob("events.out.tfevents*"))


def test_cli_end_to_end(tiny_run, tmp_path):
    import json

    from prednet2.eval.surprise import main

    out = tmp_path / "surprise.json"
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    assert main(["--checkpoint", ckpt, "--out", str(out), "--n-clips", "8", "--device", "cpu"]) == 0
    r = json.loads(out.read_text())
    assert {"auroc", "n_clips", "per_layer_auroc"} <= set(r)
    assert r["n_clips"] == 8 and set(r["per_layer_auroc"]) == {"0", "1"}
    assert r["n_anomalous_frames"] == 4  # odd clips hold one anomalous onset frame each
    assert 0.0 <= r["auroc"] <= 1.0
    assert (tmp_path / "surprise.png").is_file()


@pytest.mark.parametrize(
    "extra,needle",
    [
        # surprise has no --data: the line names the clip length it used and the option that sets it
        (["--clip-len", "3"], "the anomaly set synthetic:anomaly with --clip-len 3 and --split test: clip_len must"),
        # --tb that is a file: refused before any work, not a makedirs traceback after the PNG was written
        (["--tb", "FILE"], "argument --tb: FILE is a file, not a folder"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tiny_run, tmp_path, capsys, extra, needle):
    from prednet2.eval.surprise import main

    (tmp_path / "FILE").write_text("not a folder")
    extra = [str(tmp_path / a) if a == "FILE" else a for a in extra]
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(tiny_run), "--out", str(tmp_path / "s.json"), "--n-clips", "4", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and needle.replace("FILE", str(tmp_path / "FILE")) in err[0], err
    assert not (tmp_path / "s.png").exists()
