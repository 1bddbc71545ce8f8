"""train.py: exit codes and one-line messages, the run folder it writes, --steps as a total, SIGTERM."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import TINY_SETS

from prednet2.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("train_cli", REPO / "train.py")
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)

SUMMARY_KEYS = {"steps", "final_loss", "n_skipped", "wall_s", "frames_per_s", "mode", "preset", "params", "device"}


def _args(*sets: str) -> list[str]:
    return [a for s in (*TINY_SETS, *sets) for a in ("--set", s)] + ["--no-progress"]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("train.py: error: ")
    return lines[0]


# fmt: off
@pytest.mark.parametrize(
    "argv,expect",
    [
        (["--data", "synthetic:shapes", "--out", "X", "--bogus"], "unrecognized arguments: --bogus"),
        (["--out", "X"], "--data"),
        (["--data", "/nonexistent/videos", "--out", "X"], "/nonexistent/videos: no such file or folder"),
        (["--data", "synthetic:shapes", "--out", "X", "--set", "train.lrr=1"], "'train.lrr'"),
        (["--data", "synthetic:shapes", "--out", "X", "--set", "train.steps=abc"], "train.steps: expected an integer"),
        (["--data", "synthetic:shapes", "--out", "X", "--set", "noequals"], "expected key=value"),
        (["--data", "synthetic:nope", "--out", "X"], "unknown synthetic data"),
        (["--data", "synthetic:shapes+/no/such/dir", "--out", "X"], "'/no/such/dir': no such file or folder"),
        (["--data", "synthetic:shapes++synthetic:mix", "--out", "X"], "an empty part in a '+' mixture"),
        (["--data", "synthetic:shapes+synthetic:nope", "--out", "X"], "'synthetic:nope': unknown synthetic data"),
        (["--data", "synthetic:shapes*0+synthetic:mix", "--out", "X"], "'synthetic:shapes*0' is not SPEC*N"),
        (["--data", "synthetic:shapes", "--out", "X", "--steps", "0"], "--steps"),
        (["--data", "synthetic:shapes", "--out", "X", "--config", "/no/such.yaml"], "config file not found"),
        (["--data", "synthetic:shapes", "--out", "X", "--set", "model.preset=prednet",
          "--set", "train.encoder_lr_scale=0.5"], "train.encoder_lr_scale needs the stack's target encoders"),
        (["--data", "synthetic:textures", "--out", "X", "--set", "data.synthetic_speed=[0.5,2]"],
         "data.synthetic_speed shapes the motion of synthetic:shapes"),
        (["--data", "synthetic:moving_mnist", "--out", "X", "--set", "data.synthetic_pan=1"],
         "--data synthetic:moving_mnist has none"),
        # a file as the cache folder: one line naming it, not a traceback from mkdir in the motion-mask cache
        (["--data", "synthetic:shapes", "--out", "X", "--set", f"data.cache_dir={REPO / 'README.md'}"],
         "README.md (data.cache_dir) is a file, not a folder"),
        (["--data", "synthetic:shapes"], "the following arguments are required: --out"),
        (["--data", "synthetic:shapes", "--prepare", "--resume"], "--prepare cannot be combined with --resume"),
        (["--data", "synthetic:shapes", "--prepare", "--set", "model.flow_weight=2", "--set", "motion=off"],
         "model.flow_weight=2.0 needs the stack with motion on"),
    ],
)
# fmt: on
def test_bad_input_exits_2_with_one_line(argv, expect, capsys, tmp_path):
    argv = [str(tmp_path / a) if a == "X" else a for a in argv]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert expect in _one_error_line(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_cuda_requested_without_gpu(capsys, tmp_path):
    code, _, err = _run(["--data", "synthetic:shapes", "--out", str(tmp_path), "--device", "cuda", *_args()], capsys)
    assert code == 2 and "CUDA is not available" in _one_error_line(err)


@pytest.mark.parametrize(
    "raised, said",
    [
        (KeyboardInterrupt, "train.py: interrupted before training started; nothing to save"),  # e.g. decoding
        ("second", "train.py: aborted (second interrupt) without saving"),
    ],
)
def test_an_interrupt_outside_the_loop_says_which_it_was(raised, said, capsys, tmp_path, monkeypatch):
    # The loop turns a first Ctrl-C into a checkpoint; one during data preparation was reported as a second one.
    import prednet2.trainer
    from prednet2.train_state import SecondInterrupt

    def interrupted(*a, **k):
        raise SecondInterrupt if raised == "second" else raised

    monkeypatch.setattr(prednet2.trainer, "train", interrupted)
    code, _, err = _run(["--data", "synthetic:shapes", "--out", str(tmp_path / "r"), *_args()], capsys)
    assert code == 130 and err.strip() == said


def test_run_folder_steps_total_and_resume(capsys, tmp_path):
    run = tmp_path / "run"
    base = ["--data", "synthetic:shapes", "--out", str(run), *_args()]
    code, out, _ = _run([*base, "--steps", "3"], capsys)
    tb = Path(sys.executable).parent / "tensorboard"  # the venv's: the printed command runs as printed
    assert code == 0 and f"TensorBoard: {tb} --logdir" in out
    summary = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["steps"] == 3 and set(summary["final_loss"]) == {"0", "1"}
    assert summary["mode"] == "local" and summary["preset"] == "tiny" and summary["device"] == "cpu"
    assert summary["params"] > 0 and summary["frames_per_s"] > 0 and summary["n_skipped"] == 0
    env = summary["environment"]  # what the figures depend on beyond config and seed
    assert env["torch"] == torch.__version__ and env["kernels"].startswith(torch.backends.cpu.get_cpu_capability())
    header = (run / "config.yaml").read_text().splitlines()[0]
    assert header.startswith("# prednet2 ") and "git commit" in header
    assert (run / "checkpoints" / "last.pt").is_file() and any((run / "tb").iterdir())

    # The folder holds a run: without --resume that is refused, with it --steps counts the total.
    code, _, err = _run([*base, "--steps", "5"], capsys)
    assert code == 2 and "--resume" in _one_error_line(err)
    code, _, err = _run([*base, "--steps", "5", "--resume"], capsys)
    assert code == 0 and "warning" not in err  # the run's own config.yaml reads as its checkpoint's config
    assert json.loads((run / "summary.json").read_text())["steps"] == 5
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 5
    # A hand edit of RUN/config.yaml is not what a resume reads: said, not silently overwritten.
    cfg_file = run / "config.yaml"
    cfg_file.write_text(cfg_file.read_text().replace("  lr: ", "  lr: 0.5  # was "))
    code, _, err = _run([*base, "--steps", "6", "--resume"], capsys)
    assert code == 0 and f"warning: {cfg_file} differs from the config stored in " in err
    assert "--resume continues with the checkpoint's (give changes as --set key=value)" in err

    # A different architecture on resume is refused before any weight is loaded, naming the field and both values.
    code, _, err = _run([*base, "--steps", "7", "--resume", "--set", "model.channels=[4,6]"], capsys)
    line = _one_error_line(err)
    assert code == 2 and "--resume cannot change model.channels ([4, 8] -> [4, 6])" in line
    code, _, err = _run([*base, "--resume", "--config", "configs/tiny.yaml"], capsys)
    assert code == 2 and "--config cannot be combined with --resume" in _one_error_line(err)


def test_sigterm_saves_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "train.py"), "--data", "synthetic:shapes", "--out", str(run),
           *_args("train.ckpt_every=1"), "--steps", "100000"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The first checkpoint means the loop (and its signal handlers) is running.
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err and "--resume" in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == summary["steps"] >= 1


def test_no_progress_hides_the_decoding_bar_of_a_video_folder(capsys, tmp_path):
    """--no-progress reaches the first decode of a folder: stderr holds no bar, only the skipped file's warning."""
    from test_stream import write_video

    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.mp4", 12, h=32, w=32)
    (videos / "bad.mp4").write_bytes(b"not a video")
    spec = importlib.util.spec_from_file_location("video_helpers", REPO / "tests" / "datasets" / "conftest.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    helpers.write_broken_mp4(videos / "broken.mp4")  # decodes about half its frames, then FFmpeg raises
    argv = ["--data", str(videos), "--out", str(tmp_path / "run"), "--steps", "1", *_args()]
    code, _, err = _run([*argv, "--set", f"data.cache_dir={tmp_path / 'cache'}"], capsys)
    assert code == 0
    assert "decoding videos" not in err and "%|" not in err, err
    assert "bad.mp4" in err  # the skip is still reported
    assert "1 video(s) of" in err and "cut short or damaged, read up to the damage: broken.mp4" in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["n_skipped"] == 1 and summary["n_truncated"] == 1
    assert Path(summary["truncated"][0]["path"]).name == "broken.mp4" and 4 <= summary["truncated"][0]["frames"] < 24


def test_prepare_fills_the_motion_cache_and_trains_nothing(capsys, tmp_path):
    """--prepare: every clip's motion (masks and flow) computed into the cache, no run folder; a second call, or the
    run after it, computes none."""
    cache = tmp_path / "cache"
    sets = [s for s in TINY_SETS if s != "motion=off"] + [f"data.cache_dir={cache}", "data.n_synthetic=6"]
    argv = ["--data", "synthetic:shapes", "--prepare", *[a for s in sets for a in ("--set", s)], "--no-progress"]
    code, out, _ = _run(argv, capsys)
    assert code == 0 and "prepared synthetic:shapes: 6 clips (motion: 6 newly computed" in out
    assert "nothing trained" in out and not (tmp_path / "run").exists()
    files = sorted((cache / "motion" / "clips").rglob("*.npy"))
    assert len([f for f in files if f.name.endswith("-flow.npy")]) == 6  # the default flow target's flow, too
    assert len(files) == 12
    code, out, _ = _run(argv, capsys)
    assert code == 0 and "(motion: 0 newly computed" in out
    code, out, _ = _run([*argv, "--set", "motion=off"], capsys)
    assert code == 0 and "6 clips (motion off)" in out
