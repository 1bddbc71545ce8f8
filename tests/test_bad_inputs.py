"""Plausible mistakes of a new user, through the ``prednet2`` command: each exits 2 with one clear line, no traceback.

The CLIs run in-process (``prednet2.cli.main(argv)``, SystemExit caught, stderr captured), so the whole module
takes seconds; ``test_subprocess_*`` run two cases as real processes to check the exit status end to end.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from train_helpers import TINY_SETS

from prednet2 import build_model, cli
from prednet2.checkpoint import save_checkpoint
from prednet2.config import Config

REPO = Path(__file__).resolve().parents[1]
TINY = [a for s in TINY_SETS for a in ("--set", s)] + ["--no-progress"]


def _write_clip(path: Path, brightness: int, n: int = 8, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(brightness)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=Fraction(10))
        s.height = s.width = size
        s.pix_fmt = "bgr0"
        for _ in range(n):
            f = np.clip(brightness + rng.integers(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _save(path: Path, cfg: Config, model: torch.nn.Module) -> Path:
    save_checkpoint(path, model=model, optimizer=None, config=cfg, step=1)
    return path


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> SimpleNamespace:
    """Every bad (and the few good) files the cases below point at, written once."""
    d = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    tiny = Config.from_yaml(None, [*TINY_SETS, "data.size=[32,32]", "data.clip_len=6"])
    ckpt = _save(d / "tiny/checkpoints/last.pt", tiny, build_model(tiny.model))
    # A run of the small preset (the resume cases only read its config, so it needs no training).
    small = Config.from_yaml(None, ["model.preset=small", "motion=off"])
    _save(d / "small_run/checkpoints/last.pt", small, build_model(small.model))
    # Weights of another architecture under this config: 4/6 channels where the config says 4/8.
    other = build_model(tiny.replace(["model.channels=[4,6]"]).model)
    _save(d / "other_arch.pt", tiny, other)
    (d / "text.pt").write_text("not a checkpoint\n")
    (d / "empty.pt").write_bytes(b"")
    (d / "truncated.pt").write_bytes(ckpt.read_bytes()[:1000])
    with open(d / "pickle.pt", "wb") as fh:  # a pickle, but of an object weights_only=True refuses to load
        pickle.dump(argparse.Namespace(model=1), fh)
    # A folder whose every "video" is unusable: empty, text, random bytes named .mp4.
    bad = d / "bad_videos"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mp4").write_text("this is a text file, not a video\n")
    (bad / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    (d / "bad.yaml").write_text("model: [unclosed\n")
    (d / "list.yaml").write_text("- model\n- train\n")
    (d / "unknown.yaml").write_text("train:\n  stepz: 3\n")
    (d / "a_file").write_text("I am a file\n")
    # A labelled folder whose split list names a video that is not there.
    ucf = d / "ucf"
    for cls, b in [("dark", 40), ("bright", 200)]:
        for i in range(2):
            _write_clip(ucf / cls / f"v{i}.mkv", b)
    splits = d / "splits"
    splits.mkdir()
    (splits / "trainlist01.txt").write_text("dark/v0.mkv 1\ndark/missing.mkv 1\nbright/v0.mkv 2\n")
    (splits / "testlist01.txt").write_text("dark/v1.mkv\nbright/v1.mkv\n")
    return SimpleNamespace(d=d, ckpt=ckpt, small_run=d / "small_run", ucf=ucf, splits=splits)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    _, err = capsys.readouterr()
    return code, err


def assert_one_clear_line(code: int, err: str, expect: str, *, progress_before: bool = False) -> None:
    """Exit 2, no traceback, one line of error. ``progress_before``: decoding progress and per-file skip warnings
    (useful, and printed before the error is known) may come first; the error is then the last line."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if progress_before:
        assert sum("error:" in line for line in lines) == 1, err
        lines = lines[-1:]
    assert len(lines) == 1, err
    assert "error" in lines[0] and expect in lines[0], lines[0]


def _train(f, *extra: str) -> list[str]:
    return ["train", "--data", "synthetic:shapes", "--out", str(f.d / "new_run"), *TINY, *extra]


def _probe(f) -> list[str]:
    return ["probe", "--checkpoint", str(f.ckpt), "--data", "synthetic:shapes:direction", "--out", str(f.d / "p.json")]


# (id, argv built from the files, what the line must say)
CASES = [
    # ---- the rows of issue #12 ------------------------------------------------------------------------------
    ("lr_negative", lambda f: _train(f, "--set", "train.lr=-1"), "train.lr=-1.0 is out of range; expected > 0"),
    ("batch_zero", lambda f: _train(f, "--set", "data.batch_size=0"), "data.batch_size=0 is out of range"),
    ("window_zero", lambda f: _train(f, "--set", "train.window=0"), "train.window=0 is out of range; expected >= 1"),
    (
        "horizon_beyond_window",
        lambda f: _train(f, "--set", "model.horizon=4", "--set", "train.window=3"),
        "model.horizon=4 needs 4 frames in one training window, but train.window=3 gives 3",
    ),
    (
        "flow_horizon_beyond_window",
        lambda f: _train(f, "--set", "model.flow_horizon=4", "--set", "train.window=3"),
        "model.flow_horizon=4 needs 4 frames in one training window, but train.window=3 gives 3",
    ),
    ("fps_negative", lambda f: _train(f, "--set", "data.fps=-5"), "data.fps=-5.0 is out of range; expected >= 0"),
    ("out_is_a_file", lambda f: [*_train(f), "--out", str(f.d / "a_file")], "is a file, not a folder"),
    ("out_under_a_file", lambda f: [*_train(f), "--out", str(f.d / "a_file/run")], "which is a file"),
    (
        "resume_changes_preset",
        lambda f: [
            "train",
            "--data",
            "synthetic:shapes",
            "--out",
            str(f.small_run),
            "--resume",
            "--set",
            "model.preset=tiny",
            "--no-progress",
        ],  # fmt: skip
        "--resume cannot change model.preset ('small' -> 'tiny')",
    ),
    (
        "resume_changes_input",
        lambda f: [
            "train",
            "--data",
            "synthetic:shapes",
            "--out",
            str(f.small_run),
            "--resume",
            "--set",
            "data.size=[32,32]",
            "--set",
            "data.clip_len=4",
            "--no-progress",
        ],  # fmt: skip
        f"--resume cannot change data.clip_len ({Config().data.clip_len} -> 4), data.size ([64, 64] -> [32, 32])",
    ),
    ("steps_twice", lambda f: _train(f, "--steps", "2", "--set", "train.steps=abc"), "both give the step count"),
    # ---- more ranges ----------------------------------------------------------------------------------------
    ("clip_len_one", lambda f: _train(f, "--set", "data.clip_len=1"), "data.clip_len=1 is out of range"),
    ("size_zero", lambda f: _train(f, "--set", "data.size=[0,0]"), "data.size=[0, 0] (entry 0: 0) is out of range"),
    ("size_not_stride", lambda f: _train(f, "--set", "data.size=[18,18]"), "not a multiple of the model's total"),
    ("weight_negative", lambda f: _train(f, "--set", "model.bind_weight=-1"), "model.bind_weight=-1.0 is out"),
    ("enum", lambda f: _train(f, "--set", "model.cell=rnn"), "model.cell: unknown value 'rnn'"),
    ("steps_zero", lambda f: _train(f, "--steps", "0"), "--steps"),
    # ---- files and paths ------------------------------------------------------------------------------------
    ("missing_data", lambda f: ["train", "--data", "/no/such/videos", "--out", str(f.d / "r")], "no such file"),
    (
        "unusable_videos",
        lambda f: ["train", "--data", str(f.d / "bad_videos"), *TINY[:-1], "--out", str(f.d / "r2")],
        "bad_videos",
    ),  # fmt: skip
    ("inspect_unusable", lambda f: ["inspect", str(f.d / "bad_videos")], "bad_videos"),
    ("inspect_missing", lambda f: ["inspect", "/no/such/videos"], "/no/such/videos"),
    ("inspect_synthetic", lambda f: ["inspect", "synthetic:shapes"], "built-in synthetic video has no files"),
    ("inspect_clip_len_one", lambda f: ["inspect", str(f.ucf), "--clip-len", "1"], "--clip-len 1: must be >= 2"),
    ("bad_yaml", lambda f: _train(f, "--config", str(f.d / "bad.yaml")), "not valid YAML (line "),
    # RAFT without weights: a data error of the flow backend, not a traceback
    (
        "raft_no_weights",
        lambda f: _train(f, "--set", "motion=on", "--set", "motion.backend=raft"),
        "motion.backend=raft needs torchvision",
    ),
    ("negative_data_seed", lambda f: [*_probe(f), "--data-seed", "-1"], "--data-seed: -1: need at least 0"),
    ("yaml_not_mapping", lambda f: _train(f, "--config", str(f.d / "list.yaml")), "top level must be a mapping"),
    ("yaml_unknown_key", lambda f: _train(f, "--config", str(f.d / "unknown.yaml")), "'train.stepz'"),
    ("set_unknown_key", lambda f: _train(f, "--set", "train.lrr=1"), "'train.lrr'"),
    ("set_wrong_type", lambda f: _train(f, "--set", "train.steps=abc"), "train.steps: expected an integer"),
    ("missing_config", lambda f: _train(f, "--config", "/no/such.yaml"), "config file not found"),
    ("resume_nothing", lambda f: [*_train(f), "--resume"], "no checkpoint to resume"),
    # ---- checkpoints given to the eval tools ----------------------------------------------------------------
    (
        "ckpt_missing",
        lambda f: [
            "next-step",
            "--checkpoint",
            "/no/such.pt",
            "--data",
            "synthetic:shapes",
            "--out",
            str(f.d / "n.json"),
        ],
        "/no/such.pt",
    ),  # fmt: skip
    *[
        (
            f"ckpt_{name}",
            lambda f, name=name: [
                "next-step",
                "--checkpoint",
                str(f.d / f"{name}.pt"),
                "--data",
                "synthetic:shapes",
                "--out",
                str(f.d / "n.json"),
            ],
            f"{name}.pt",
        )
        for name in ("text", "empty", "truncated", "pickle")
    ],  # fmt: skip
    (
        "ckpt_folder_without_checkpoint",
        lambda f: [
            "probe",
            "--checkpoint",
            str(f.d),
            "--data",
            "synthetic:shapes:direction",
            "--out",
            str(f.d / "p.json"),
        ],
        "without checkpoints/last.pt",
    ),  # fmt: skip
    (
        "ckpt_other_arch",
        lambda f: [
            "probe",
            "--checkpoint",
            str(f.d / "other_arch.pt"),
            "--data",
            "synthetic:shapes:direction",
            "--out",
            str(f.d / "p.json"),
        ],
        "other_arch.pt",
    ),  # fmt: skip
    # ---- eval options out of range (argparse's own errors are one line too) -----------------------------------
    ("probe_clip_len_zero", lambda f: [*_probe(f), "--clip-len", "0"], "--clip-len 0: data.clip_len=0 is out of range"),
    ("probe_workers_negative", lambda f: [*_probe(f), "--num-workers", "-1"], "--num-workers: -1: need at least 0"),
    ("probe_threads_word", lambda f: [*_probe(f), "--threads", "all"], "--threads: expected an integer, got 'all'"),
    (
        "next_step_batch_zero",
        lambda f: [
            "next-step",
            "--checkpoint",
            str(f.ckpt),
            "--data",
            "synthetic:shapes",
            "--batch-size",
            "0",
            "--out",
            str(f.d / "n.json"),
        ],
        "--batch-size: 0: need at least 1",
    ),  # fmt: skip
    ("knn_no_train_clips", lambda f: ["knn", *_probe(f)[1:], "--n-train", "0"], "--n-train: 0: need at least 1"),
    (
        "stream_panel_zero",
        lambda f: ["stream", str(f.d / "bad_videos"), "--checkpoint", str(f.ckpt), "--panel-height", "0"],
        "--panel-height: 0: need at least 16",
    ),
    ("surprise_without_out", lambda f: ["surprise", "--checkpoint", str(f.ckpt)], "required: --out"),
    # ---- an output path that is a folder: refused before any work, not a traceback when the result is written ----
    ("probe_out_is_a_folder", lambda f: [*_probe(f)[:-1], str(f.d)], "is a folder; give the path of a file to write"),
    ("report_png_is_a_folder", lambda f: ["report", str(f.d), "--png", str(f.d)], "--png: "),
    ("report_of_a_checkpoint", lambda f: ["report", str(f.ckpt)], "last.pt: not readable JSON"),
    (
        "stream_of_unreadable_videos",
        lambda f: ["stream", str(f.d / "bad_videos"), "--checkpoint", str(f.ckpt), "--out", str(f.d / "stream_out")],
        "none of its 3 video files is readable",
    ),
    ("stream_missing_source", lambda f: ["stream", "/no/such/video.mp4", "--checkpoint", str(f.ckpt)], "/no/such"),
    (
        "split_names_missing_video",
        lambda f: [
            "probe",
            "--checkpoint",
            str(f.ckpt),
            "--data",
            str(f.ucf),
            "--baseline",
            "pixels",
            "--seeds",
            "1",
            "--splits",
            str(f.splits),
            "--fold",
            "1",
            "--out",
            str(f.d / "s.json"),
        ],  # fmt: skip
        "missing.mkv",
    ),
]


@pytest.mark.parametrize("make_argv,expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(make_argv, expect, f, capsys):
    code, err = run_cli(make_argv(f), capsys)
    assert_one_clear_line(code, err, expect, progress_before=str(f.d / "bad_videos") in make_argv(f))


def test_resume_with_a_text_checkpoint_names_it(f, capsys):
    run = f.d / "text_run" / "checkpoints"
    run.mkdir(parents=True, exist_ok=True)
    (run / "last.pt").write_text("not a checkpoint")
    code, err = run_cli(["train", "--data", "synthetic:shapes", "--out", str(run.parent), "--resume"], capsys)
    assert_one_clear_line(code, err, "last.pt")


def test_unwritable_out(f, capsys, monkeypatch):
    # As root every folder is writable, so the refusal is simulated where the check asks the OS.
    from prednet2 import run_folder

    monkeypatch.setattr(run_folder.os, "access", lambda p, mode: False)
    code, err = run_cli(_train(f), capsys)
    assert_one_clear_line(code, err, "is not writable; pick a folder you can write to")


@pytest.mark.parametrize("sub", ["tb", "checkpoints"])
def test_out_whose_run_subfolder_is_a_file_is_refused_before_training(f, capsys, sub):
    # Found before any data is prepared: the checkpoint folder was made only at the first save, so a file there
    # lost the whole training.
    out = f.d / f"sub_is_file_{sub}"
    out.mkdir(exist_ok=True)
    (out / sub).write_text("")
    code, err = run_cli(["train", "--data", "synthetic:shapes", "--out", str(out), "--steps", "1"], capsys)
    assert_one_clear_line(code, err, f"{out / sub} is a file where the run keeps a folder")


@pytest.mark.parametrize(
    "extra, msg",
    [
        (["--steps", "3"], "is already at step 5, past train.steps=3; the step count is the total"),
        (["--steps", "5"], "is already at step 5, already at train.steps=5; the step count is the total"),
        (["--steps", "9", "--set", "motion=on"], "--resume cannot change motion.enabled (False -> True)"),
    ],
)
def test_resume_that_would_train_nothing_or_misload(f, capsys, tmp_path, extra, msg):
    # --steps is the total: resuming a run at step 5 with --steps 3 or 5 would train nothing, exit 0 and overwrite
    # the run's summary; switching motion would fail deep in the weight loading.
    tiny = Config.from_yaml(None, [*TINY_SETS, "data.size=[32,32]", "data.clip_len=6", "motion=off"])
    save_checkpoint(
        tmp_path / "checkpoints/last.pt", model=build_model(tiny.model), optimizer=None, config=tiny, step=5
    )
    code, err = run_cli(["train", "--data", "synthetic:shapes", "--out", str(tmp_path), "--resume", *extra], capsys)
    assert_one_clear_line(code, err, msg)


def test_resume_may_change_data_and_training_fields(f):
    """Continual learning: another --data and train.* overrides stay allowed on resume."""
    from prednet2.run_folder import config_for_resume

    cfg = config_for_resume(f.small_run, ["train.lr=1e-4", "train.steps=5", "data.batch_size=2", "motion=off"])
    assert (cfg.train.lr, cfg.train.steps, cfg.data.batch_size, cfg.model.preset) == (1e-4, 5, 2, "small")


@pytest.mark.parametrize(
    "argv,expect",
    [
        (["train.py", "--data", "synthetic:shapes", "--out", "RUN", "--set", "train.lr=-1"], "train.lr=-1.0"),
        (
            [
                "-m",
                "prednet2.cli",
                "train",
                "--data",
                "synthetic:shapes",
                "--out",
                "RUN",
                "--steps",
                "2",
                "--set",
                "train.steps=abc",
            ],
            "both give the step count",
        ),  # fmt: skip
    ],
)
def test_subprocess_exit_status(argv, expect, tmp_path):
    argv = [str(tmp_path / "run") if a == "RUN" else a for a in argv]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert_one_clear_line(p.returncode, p.stderr, expect)
