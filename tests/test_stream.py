"""prednet2.stream: the surprise gate, online learning, outputs (csv/json/mp4) and CLI errors (frame sources:
test_frame_source.py)."""

from __future__ import annotations

import csv
import json
import math

import av
import numpy as np
import pytest
import torch
from stream_helpers import write_video

import prednet2
from prednet2.checkpoint import load_checkpoint, save_checkpoint
from prednet2.config import Config
from prednet2.stream import FrameSource, StreamOptionError, SurpriseGate, main, run_stream


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A fresh tiny model with a motion stream, saved as a normal checkpoint (32x32 input)."""
    torch.manual_seed(0)
    cfg = Config.from_dict(
        {
            "model": {"channels": [8, 16], "motion_channels": 4},
            "data": {"size": [32, 32]},
            "train": {"lr": 1e-2, "window": 3},
        }
    )
    model = prednet2.build_model(cfg.model)
    from prednet2.trainer import build_optimizer

    opt, _ = build_optimizer(model, cfg)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model=model, optimizer=opt, config=cfg, step=0)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("vid") / "clip.mp4"
    write_video(path, 20)
    return path


def test_surprise_gate():
    g = SurpriseGate("threshold", z_threshold=1.0, history=5, min_history=3)
    zs = [g.zscore(s) for s in (1.0, 1.0, 1.0)]
    assert all(math.isinf(z) for z in zs)  # no baseline yet: counts as surprising
    assert g.zscore(1.0) == pytest.approx(0.0, abs=1e-6)
    g.past.extend([1.0, 2.0, 1.0, 2.0, 1.0])  # window of 5: mean 1.4, std ~0.49
    z = g.zscore(3.0)
    assert z == pytest.approx((3.0 - 1.4) / np.std([1, 2, 1, 2, 1]), rel=1e-6)
    assert g.frame_open(z) and not g.frame_open(0.5)
    assert g.lr_scale([0.2, 5.0]) == 1.0  # threshold mode never scales lr
    lr = SurpriseGate("lr", z_threshold=2.0)
    assert lr.frame_open(-3.0)
    assert lr.lr_scale([0.5, 1.0]) == pytest.approx(0.5) and lr.lr_scale([-1.0]) == 0.0 and lr.lr_scale([9]) == 1.0
    with pytest.raises(ValueError, match="unknown mode"):
        SurpriseGate("sometimes")


def test_stream_learns_and_writes_outputs(tmp_path, ckpt, video):
    before = load_checkpoint(ckpt)["model"]
    s = run_stream(str(video), str(ckpt), tmp_path, learn=True, gate="always", progress=False, panel_height=64)
    assert s["n_frames"] == 20 and s["window"] == 3
    assert s["optimizer"] == "checkpoint"  # the trainer's per-unit AdamW state is reused
    assert s["n_windows"] == 6 and s["n_updates"] == 6  # gate "always": every full window of 3 frames
    # Surprise per frame in the csv, with per-layer errors; the first frame has nothing predicted yet.
    rows = list(csv.DictReader(open(tmp_path / "surprise.csv")))
    assert [int(r["frame"]) for r in rows] == list(range(20))
    assert float(rows[0]["surprise"]) == 0 and all(float(r["surprise"]) > 0 for r in rows[1:])
    assert set(rows[0]) >= {"z", "gate", "update", "error_0", "error_1"}
    assert sum(int(r["update"]) for r in rows) == 6
    assert [r["lr"] for r in rows if r["update"] == "1"] == ["0.01"] * 6 and rows[0]["lr"] == ""  # gate always: lr
    # The mp4 decodes with PyAV: one frame per input frame, frame + 2 error maps + motion mask side by side.
    with av.open(str(tmp_path / "stream.mp4")) as c:
        dec = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(dec) == 20 and dec[0].shape[0] == 64 and dec[0].shape[1] >= 4 * 64
    assert s["motion_panel"]
    # RSS marks: the end is always recorded (frame 100 only when the stream is that long).
    j = json.loads((tmp_path / "stream.json").read_text())
    assert j["rss"]["20"]["peak_rss_mb"] > 0 and "100" not in j["rss"]
    # Online learning changed the weights and saved them.
    after = load_checkpoint(tmp_path / "last.pt")["model"]
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_stream_learning_trains_the_further_horizon_heads(tmp_path, video, capsys):
    """model.horizon=2: online learning must move the t+2 head too (it only gets gradient from the ahead terms)."""
    torch.manual_seed(0)
    cfg = Config.from_dict({"model": {"channels": [8, 16], "horizon": 2}, "data": {"size": [32, 32]},
                            "train": {"lr": 1e-2, "window": 4}})  # fmt: skip
    model = prednet2.build_model(cfg.model)
    path = tmp_path / "h2.pt"
    save_checkpoint(path, model=model, optimizer=None, config=cfg, step=0)
    before = load_checkpoint(path)["model"]
    run_stream(str(video), str(path), tmp_path / "out", learn=True, gate="always", video=False, progress=False)
    after = load_checkpoint(tmp_path / "out" / "last.pt")["model"]
    ahead = [k for k in before if ".heads_ahead." in k]
    assert ahead and all(not torch.equal(before[k], after[k]) for k in ahead)
    with pytest.raises(StreamOptionError, match="--window 1 is shorter than the checkpoint's model.horizon=2"):
        run_stream(str(video), str(path), tmp_path / "w1", learn=True, window=1, video=False, progress=False)
    # The CLI: one line, exit 2.
    assert main([str(video), "--checkpoint", str(path), "--learn", "--window", "1", "--out", str(tmp_path / "w2")]) == 2
    assert "shorter than the checkpoint's model.horizon=2" in capsys.readouterr().err


def test_stream_threshold_gate_skips_unsurprising_windows(tmp_path, ckpt, video):
    # A huge threshold: only the warm-up frames (no baseline yet) open the gate, so only early windows update.
    s = run_stream(
        str(video), str(ckpt), tmp_path, learn=True, z_threshold=1e9, min_history=4, history=8, video=False,
        progress=False,
    )  # fmt: skip
    rows = list(csv.DictReader(open(tmp_path / "surprise.csv")))
    opened = [int(r["frame"]) for r in rows if r["gate"] == "1"]
    assert opened == [1, 2, 3, 4]  # frame 0 predicts nothing; frames 1-4 have < min_history past surprises
    assert s["n_updates"] == 2 and s["n_windows"] == 6  # windows [0-2] and [3-5] hold open frames
    assert s["video"] is None and not (tmp_path / "stream.mp4").exists()
    # --gate lr: every window updates, at the rate scaled by its largest z over --z-threshold (warm-up z is inf: 1x)
    run_stream(str(video), str(ckpt), tmp_path / "lr", learn=True, gate="lr", z_threshold=50.0, min_history=4,
               history=8, video=False, progress=False)  # fmt: skip
    rows = list(csv.DictReader(open(tmp_path / "lr" / "surprise.csv")))
    rates = [float(r["lr"]) for r in rows if r["update"] == "1"]
    assert rates[:2] == [0.01, 0.01] and all(0 < x < 0.01 for x in rates[2:]), rates


def test_stream_without_learning_keeps_weights(tmp_path, ckpt, video):
    s = run_stream(str(video), str(ckpt), tmp_path, max_frames=7, video=False, progress=False)
    assert s["n_frames"] == 7 and s["n_updates"] == 0
    assert not (tmp_path / "last.pt").exists()


def test_cli_errors_exit_2(tmp_path, ckpt, video, capsys):
    for argv in (
        [str(video), "--checkpoint", str(tmp_path / "nope.pt")],
        [str(video), "--checkpoint", str(ckpt), "--max-frames", "-1"],
        [str(video), "--checkpoint", str(ckpt), "--gate", "sometimes"],
        [str(video), "--checkpoint", str(ckpt), "--reset", "clip"],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    capsys.readouterr()
    assert main(["/dev/video57", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot open camera /dev/video57" in err[0]
    assert main([str(tmp_path / "none.avi"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main([str(video), "--checkpoint", str(ckpt), "--out", str(tmp_path / "afile"), "--no-video"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--out {tmp_path / 'afile'} is a file, not a folder" in err[0]
    assert main([str(video), "--checkpoint", str(ckpt), "--out", str(tmp_path / "afile" / "o"), "--no-video"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # a folder inside a file: not a traceback from mkdir
    assert (
        len(err) == 1 and f"--out {tmp_path / 'afile' / 'o'} is inside {tmp_path / 'afile'}, which is a file" in err[0]
    )
    for extra, msg in (
        (["--fresh-optimizer"], "--fresh-optimizer only matters with --learn"),
        (["--lr", "1e-3"], "--lr 0.001 only matters with --learn"),
        (["--window", "4"], "--window 4 only matters with --learn"),  # the truncated window of online updates
        (["--learn", "--gate", "lr", "--z-threshold", "0"], "needs --z-threshold > 0"),
        (["--learn", "--z-threshold", "nan"], "--z-threshold nan: need a finite number"),  # the gate never opened
        (["--learn", "--lr", "-0.1"], "--lr -0.1: need a rate > 0"),  # was the checkpoint's rate, without a word
        (["--history", "5", "--min-history", "8"], "--history 5 and --min-history 8: need 2 <= min-history"),
    ):
        assert main([str(video), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o2"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0]
    with pytest.raises(StreamOptionError, match="--reset 'clip': choose one of video, never"):
        run_stream(str(video), str(ckpt), tmp_path / "o3", reset="clip")  # the Python API checks it too


def test_stream_learning_with_a_full_anchor_keeps_the_checkpoints_weights(tmp_path, video, capsys):
    """--anchor-weight (or train.anchor_weight in the checkpoint's config): stream --learn pulls toward the weights
    it started from; at lr * anchor_weight = 1 every update is undone, and at 0 the weights move. A stored
    train.anchor_end (a late schedule of train.py) is not applied to the stream, nor refuses --anchor-weight 0."""
    torch.manual_seed(0)
    cfg = Config.from_dict({"model": {"channels": [8, 16]}, "data": {"size": [32, 32]},
                            "train": {"lr": 1e-2, "window": 4, "anchor_weight": 100.0, "anchor_end": 0.3}})  # fmt: skip
    path = tmp_path / "anchored.pt"
    save_checkpoint(path, model=prednet2.build_model(cfg.model), optimizer=None, config=cfg, step=0)
    before = load_checkpoint(path)["model"]
    kw = dict(learn=True, gate="always", video=False, progress=False)
    s = run_stream(str(video), str(path), tmp_path / "full", **kw)
    assert s["n_updates"] > 0
    after = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    for k in before:
        torch.testing.assert_close(after[k], before[k], rtol=1e-5, atol=1e-6, msg=k)
    run_stream(str(video), str(path), tmp_path / "off", anchor_weight=0.0, **kw)
    free = load_checkpoint(tmp_path / "off" / "last.pt")["model"]
    assert any(not torch.equal(before[k], free[k]) for k in before)
    # the command's last line names the learned weights, --learn's main output
    assert main([str(video), "--checkpoint", str(path), "--out", str(tmp_path / "cli"), "--learn", "--no-video"]) == 0
    assert f"the learned weights: {tmp_path / 'cli' / 'last.pt'}" in capsys.readouterr().out
    for argv, msg in (
        (["--anchor-weight", "-1", "--learn"], "--anchor-weight -1: need a weight >= 0"),
        (["--anchor-weight", "1"], "--anchor-weight only matters with --learn"),
        (["--anchor-weight", "1e9", "--learn"], "--anchor-weight: train.anchor_weight=1e+09 with train.lr=0.01"),
        (["--lr", "1", "--learn"], "--lr: train.anchor_weight=100 with train.lr=1"),
    ):
        assert main([str(video), "--checkpoint", str(path), "--out", str(tmp_path / "e"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err


def test_ctrl_c_ends_the_stream_after_its_frame_and_saves_everything(tmp_path, ckpt, video, monkeypatch, capsys):
    """The first SIGINT (how a camera stream ends) stops after the current frame: surprise.csv, stream.json and the
    learned weights are written as at the end, the last line says so, exit 130. Before: a traceback, nothing saved."""
    import os
    import signal

    import prednet2.stream as stream_mod

    class InterruptedSource(FrameSource):
        def __iter__(self):
            for i, frame in enumerate(super().__iter__()):
                if i == 8:
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while frame 8 is being read
                yield frame

    monkeypatch.setattr(stream_mod, "FrameSource", InterruptedSource)
    before = signal.getsignal(signal.SIGINT)
    code = main([str(video), "--checkpoint", str(ckpt), "--out", str(tmp_path), "--learn", "--gate", "always",
                 "--no-video", "--no-progress"])  # fmt: skip
    assert code == 130 and signal.getsignal(signal.SIGINT) is before  # Python's handler is back
    out = capsys.readouterr()
    assert out.out.startswith("stopped by Ctrl-C: 8 frames") and "the learned weights" in out.out  # 0-7 done
    j = json.loads((tmp_path / "stream.json").read_text())
    assert j["interrupted"] and j["n_frames"] == 8 and j["n_updates"] == 2  # windows of 3: frames 0-5
    assert len(list(csv.DictReader(open(tmp_path / "surprise.csv")))) == 8
    assert (tmp_path / "last.pt").exists()
    assert not run_stream(str(video), str(ckpt), tmp_path / "b", max_frames=4, video=False, progress=False)[
        "interrupted"
    ]


def test_learned_checkpoint_resumes_with_train_py(tmp_path, video, capsys):
    """stream --learn from a train.py checkpoint writes one train.py --resume continues: the source's step, schedule
    and data position carried over (online updates counted in extra.stream). Before: a traceback in train.py (the
    scheduler state was None). A checkpoint without training state is refused in one line, not a traceback."""
    import shutil

    from train_helpers import tiny_config

    from prednet2.trainer import RunFolderError, train

    cfg = tiny_config(steps=3)
    train(cfg, "synthetic:shapes", tmp_path / "run", progress=False)
    kw = dict(learn=True, gate="always", video=False, progress=False)
    s = run_stream(str(video), str(tmp_path / "run" / "checkpoints" / "last.pt"), tmp_path / "s", window=2, **kw)
    ck = load_checkpoint(tmp_path / "s" / "last.pt")
    src = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert s["n_updates"] == 10 and ck["extra"]["stream"]["n_updates"] == 10
    assert ck["step"] == src["step"] == 3 and ck["scheduler"] == src["scheduler"]
    assert ck["extra"]["epoch"] == src["extra"]["epoch"] and "batch_in_epoch" in ck["extra"]
    run2 = tmp_path / "run2"
    (run2 / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "run" / "config.yaml", run2)
    shutil.copy(tmp_path / "s" / "last.pt", run2 / "checkpoints" / "last.pt")
    assert train(tiny_config(steps=5), "synthetic:shapes", run2, resume=True, progress=False)["steps"] == 5
    # the fixture-like checkpoint (no schedule, no data position): its stream output keeps step 0, resume refused
    bare = tmp_path / "bare.pt"
    save_checkpoint(bare, model=prednet2.build_model(cfg.model), optimizer=None, config=cfg, step=0)
    run_stream(str(video), str(bare), tmp_path / "s2", **kw)
    assert load_checkpoint(tmp_path / "s2" / "last.pt")["step"] == 0
    run3 = tmp_path / "run3"
    (run3 / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "run" / "config.yaml", run3)
    shutil.copy(tmp_path / "s2" / "last.pt", run3 / "checkpoints" / "last.pt")
    with pytest.raises(RunFolderError, match="holds weights but no training state"):
        train(tiny_config(steps=5), "synthetic:shapes", run3, resume=True, progress=False)


def test_out_with_an_earlier_streams_outputs(tmp_path, ckpt, video, capsys, monkeypatch):
    """An --out holding a last.pt of an earlier --learn stream (or a stream.mp4 under --no-video) that this run would
    not replace is refused in one line, exit 2 (before: left beside the new outputs as if this run's); the input
    checkpoint itself may sit there; the old stream.json is dropped when the run starts."""
    out = tmp_path / "o"
    assert main([str(video), "--checkpoint", str(ckpt), "--out", str(out), "--learn", "--no-progress"]) == 0
    capsys.readouterr()
    for extra, what in (
        (["--no-video"], "last.pt of an earlier --learn stream (this one does not learn) and stream.mp4"),
        ([], "last.pt"),
    ):
        assert main([str(video), "--checkpoint", str(ckpt), "--out", str(out), "--no-progress", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--out {out} holds {what}" in err[0], err
    assert json.loads((out / "stream.json").read_text())["learn"]  # the refused runs touched nothing
    # the learned model streamed again into its own folder (it is the input, not a stale output): fine
    assert main([str(video), "--checkpoint", str(out / "last.pt"), "--out", str(out), "--no-progress"]) == 0
    assert not json.loads((out / "stream.json").read_text())["learn"]
    (out / "last.pt").unlink()

    class AbortedSource(FrameSource):  # a second Ctrl-C aborts without saving
        def __iter__(self):
            yield next(super().__iter__())
            raise KeyboardInterrupt

    import prednet2.stream as stream_mod

    monkeypatch.setattr(stream_mod, "FrameSource", AbortedSource)
    with pytest.raises(KeyboardInterrupt):
        run_stream(str(video), str(ckpt), out, progress=False)
    assert not (out / "stream.json").exists()  # not the earlier run's summary beside this run's partial csv


def test_a_folder_records_where_each_video_starts(tmp_path, ckpt):
    """A folder plays video after video; stream.json's ``videos`` says which frames came from which file, sizes and
    rates differing, a broken file skipped and counted. The state and the motion mask start afresh at each video
    (``--reset video``), so a video's frames read as when it is streamed alone; ``--reset never`` carries them over."""
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a.mp4", 7, seed=1)
    write_video(folder / "b.mp4", 5, h=64, w=64, seed=2)
    (folder / "c.mp4").write_bytes(b"not a video")
    s = run_stream(str(folder), str(ckpt), tmp_path / "o", video=False, progress=False)
    assert s["n_frames"] == 12 and [x["path"] for x in s["skipped"]] == [str(folder / "c.mp4")]
    assert s["videos"] == [
        {"path": str(folder / "a.mp4"), "first_frame": 0, "n_frames": 7},
        {"path": str(folder / "b.mp4"), "first_frame": 7, "n_frames": 5},
    ]
    rows = list(csv.DictReader(open(tmp_path / "o" / "surprise.csv")))
    assert float(rows[7]["surprise"]) == 0 and s["reset"] == "video"  # b's first frame: a fresh state, no prediction
    alone = run_stream(str(folder / "b.mp4"), str(ckpt), tmp_path / "q", video=False, progress=False)
    solo = list(csv.DictReader(open(tmp_path / "q" / "surprise.csv")))
    assert [r["surprise"] for r in rows[7:]] == [r["surprise"] for r in solo]  # as if b were streamed alone
    assert alone["surprise_mean"] is not None
    s = run_stream(str(folder), str(ckpt), tmp_path / "n", video=False, progress=False, reset="never")
    rows = list(csv.DictReader(open(tmp_path / "n" / "surprise.csv")))
    assert float(rows[7]["surprise"]) > 0 and s["reset"] == "never"  # one stream: the cut is predicted, badly
    one = run_stream(str(folder / "b.mp4"), str(ckpt), tmp_path / "p", max_frames=3, video=False, progress=False)
    assert one["videos"] == [{"path": str(folder / "b.mp4"), "first_frame": 0, "n_frames": 3}]


def test_learning_needs_a_window_that_closes(tmp_path, ckpt, video, capsys):
    """--learn with --max-frames below the window can never update: refused in one line, exit 2. A stream that ends
    before its first window closes says so on stderr (before: "the learned weights" of an unchanged model)."""
    assert main([str(video), "--checkpoint", str(ckpt), "--out", str(tmp_path / "a"), "--learn", "--window", "5",
                 "--max-frames", "4", "--no-video"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-frames 4 is shorter than the learning window of 5 frames" in err[0]
    assert not (tmp_path / "a").exists()
    s = run_stream(str(video), str(ckpt), tmp_path / "b", learn=True, window=50, video=False, progress=False)
    assert s["n_windows"] == s["n_updates"] == 0 and s["n_frames"] == 20
    assert "before its first learning window of 50 closed: nothing was learned" in capsys.readouterr().err


def test_the_first_frame_is_a_placeholder_not_a_surprise(tmp_path, ckpt, video):
    """Frame 0 predicts nothing: its csv surprise 0 stays out of surprise_mean, and its mp4 error panels are blank
    (before: the mean was pulled toward 0, and the panels drew the unpredicted error and set the colour scale)."""
    s = run_stream(str(video), str(ckpt), tmp_path, max_frames=6, progress=False, panel_height=32)
    rows = list(csv.DictReader(open(tmp_path / "surprise.csv")))
    assert float(rows[0]["surprise"]) == 0 and s["min_history"] == 10
    assert s["surprise_mean"] == pytest.approx(np.mean([float(r["surprise"]) for r in rows[1:]]), rel=1e-5)
    with av.open(str(tmp_path / "stream.mp4")) as c:
        dec = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    err0, err1 = (d[18:, 38:66].astype(int) for d in dec[:2])  # the first error panel, below its label
    assert np.ptp(err0) < 12 and np.ptp(err1) > 30  # flat (blank) at frame 0, a map at frame 1
